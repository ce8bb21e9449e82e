use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::transaction::TimerConfig;

/// What [`AnswerRetransmit`] asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerEvent {
    /// Send the 2xx again.
    Retransmit(Bytes),
    /// 64·T1 passed without an ACK: §13.3.1.4 says to confirm the dialog anyway and end
    /// the session with BYE.
    AckTimeout,
}

/// RFC 3261 §13.3.1.4: the UAS core retransmits its 2xx to an INVITE at T1, doubling up to
/// T2, until the ACK arrives; over TCP it only waits (no retransmission), for 64·T1.
#[derive(Debug, Clone)]
pub struct AnswerRetransmit {
    answer: Bytes,
    reliable: bool,
    cfg: TimerConfig,
    interval: Duration,
    next: Option<Instant>,
    give_up: Instant,
    acked: bool,
}

impl AnswerRetransmit {
    /// Starts retransmitting the 2xx `answer` at `now` (not over a `reliable` transport).
    pub fn new(now: Instant, answer: Bytes, reliable: bool, cfg: TimerConfig) -> Self {
        Self {
            answer,
            reliable,
            cfg,
            interval: cfg.t1,
            next: (!reliable).then_some(now + cfg.t1),
            give_up: now + cfg.timeout(),
            acked: false,
        }
    }

    /// The call logic calls this when the ACK for the 2xx arrives: retransmissions stop.
    pub fn handle_ack(&mut self) {
        self.acked = true;
    }

    /// Whether the ACK has arrived.
    pub fn is_acked(&self) -> bool {
        self.acked
    }

    /// The 2xx as sent, for the call logic to resend at once when the INVITE is
    /// retransmitted (§13.3.1.4).
    pub fn answer(&self) -> &Bytes {
        &self.answer
    }

    /// When [`Self::handle_timeout`] must next be called; `None` once acknowledged or given up.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.acked {
            return None;
        }
        Some(self.next.map_or(self.give_up, |n| n.min(self.give_up)))
    }

    /// Called at the deadline: a retransmission to send, or that the ACK never came.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<AnswerEvent> {
        if self.acked {
            return None;
        }
        if now >= self.give_up {
            self.acked = true; // Nothing more to wait for.
            return Some(AnswerEvent::AckTimeout);
        }
        match self.next {
            Some(at) if now >= at && !self.reliable => {
                self.interval = (self.interval * 2).min(self.cfg.t2);
                self.next = Some(now + self.interval);
                Some(AnswerEvent::Retransmit(self.answer.clone()))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "a test's base instant")]
mod tests {
    use super::*;

    #[test]
    fn two_hundred_is_retransmitted_until_ack_timeout_then_bye() {
        let t0 = Instant::now();
        let mut r = AnswerRetransmit::new(
            t0,
            Bytes::from_static(b"200"),
            false,
            TimerConfig::default(),
        );
        let mut at_ms = Vec::new();
        loop {
            let at = r.poll_timeout().unwrap();
            match r.handle_timeout(at) {
                Some(AnswerEvent::Retransmit(_)) => at_ms.push((at - t0).as_millis()),
                Some(AnswerEvent::AckTimeout) => {
                    assert_eq!((at - t0).as_millis(), 32_000);
                    break;
                }
                None => {}
            }
        }
        assert_eq!(&at_ms[..6], &[500, 1500, 3500, 7500, 11_500, 15_500]);
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn ack_stops_it() {
        let t0 = Instant::now();
        let mut r = AnswerRetransmit::new(
            t0,
            Bytes::from_static(b"200"),
            false,
            TimerConfig::default(),
        );
        r.handle_ack();
        assert_eq!(r.poll_timeout(), None);
        assert_eq!(r.handle_timeout(t0 + Duration::from_secs(40)), None);
    }

    #[test]
    fn over_tcp_only_the_ack_wait_remains() {
        let t0 = Instant::now();
        let r = AnswerRetransmit::new(t0, Bytes::from_static(b"200"), true, TimerConfig::default());
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    }
}
