use std::time::Instant;

use bytes::Bytes;

use super::{TimerConfig, TsxOutput, TsxTimer, TsxTimers};
use crate::wire::StatusCode;

/// RFC 3261 Figure 7 with the RFC 6026 `Accepted` state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteServerState {
    /// The RFC 3261 §17 state of the same name.
    Proceeding,
    /// A 2xx was sent; the dialog layer retransmits it and receives the ACK.
    Accepted,
    /// A 300–699 was sent and is retransmitted until the ACK arrives.
    Completed,
    /// The ACK for the non-2xx final response arrived.
    Confirmed,
    /// The RFC 3261 §17 state of the same name.
    Terminated,
}

/// The INVITE server transaction (§17.2.1).
///
/// Created when an INVITE arrives; the transaction user answers through
/// [`Self::send_response`]. Retransmitted INVITEs get the last response again, and a
/// non-2xx final response is retransmitted on timer G until the ACK or timer H.
#[derive(Debug, Clone)]
pub struct InviteServer {
    state: InviteServerState,
    reliable: bool,
    cfg: TimerConfig,
    timers: TsxTimers,
    last_response: Option<Bytes>,
    /// Current timer G interval; doubles up to T2.
    g_interval: std::time::Duration,
}

impl InviteServer {
    /// A transaction for a request just received (`reliable`: no retransmissions).
    pub fn new(reliable: bool, cfg: TimerConfig) -> Self {
        Self {
            state: InviteServerState::Proceeding,
            reliable,
            cfg,
            timers: TsxTimers::default(),
            last_response: None,
            g_interval: cfg.t1,
        }
    }

    /// The current state.
    pub fn state(&self) -> InviteServerState {
        self.state
    }

    /// A retransmission of the INVITE arrived: §17.2.1 resends the most recent
    /// provisional response in Proceeding and the final one in Completed.
    pub fn handle_invite_retransmission(&mut self) -> Option<TsxOutput> {
        match self.state {
            InviteServerState::Proceeding | InviteServerState::Completed => {
                self.last_response.clone().map(TsxOutput::Transmit)
            }
            _ => None,
        }
    }

    /// The transaction user sends a response (already serialised as `bytes`): in
    /// Proceeding a 1xx is sent and kept for INVITE retransmissions, a 2xx moves to
    /// Accepted (RFC 6026) and a 300–699 to Completed with timers G and H. Afterwards only
    /// a 2xx in Accepted is sent (its retransmissions); anything else is dropped.
    pub fn send_response(
        &mut self,
        now: Instant,
        status: StatusCode,
        bytes: Bytes,
    ) -> Option<TsxOutput> {
        if self.state != InviteServerState::Proceeding {
            // A final answer was already given; RFC 6026 lets 2xx retransmissions through.
            if self.state == InviteServerState::Accepted && status.is_success() {
                return Some(TsxOutput::Transmit(bytes));
            }
            return None;
        }
        if status.is_provisional() {
            // Stays in Proceeding; the response is kept for INVITE retransmissions.
            self.last_response = Some(bytes.clone());
        } else if status.is_success() {
            // Accepted absorbs INVITE retransmissions without answering (RFC 6026;
            // the 2xx's own retransmissions are the dialog's): nothing to keep for the
            // 32 s of timer L, which at thousands of calls a second is memory that counts.
            self.last_response = None;
            self.state = InviteServerState::Accepted;
            self.timers.set(TsxTimer::L, now + self.cfg.timeout());
        } else {
            self.last_response = Some(bytes.clone());
            self.state = InviteServerState::Completed;
            if !self.reliable {
                self.timers.set(TsxTimer::G, now + self.g_interval);
            }
            self.timers.set(TsxTimer::H, now + self.cfg.timeout());
        }
        Some(TsxOutput::Transmit(bytes))
    }

    /// An ACK matched this transaction. Returns whether it is for the transaction
    /// (non-2xx) — an ACK in Accepted belongs to the dialog and is passed up.
    pub fn handle_ack(&mut self, now: Instant) -> Option<TsxOutput> {
        match self.state {
            InviteServerState::Completed => {
                self.state = InviteServerState::Confirmed;
                self.timers.clear(TsxTimer::G);
                self.timers.clear(TsxTimer::H);
                let wait = if self.reliable {
                    std::time::Duration::ZERO
                } else {
                    self.cfg.t4
                };
                self.timers.set(TsxTimer::I, now + wait);
                None
            }
            InviteServerState::Accepted => Some(TsxOutput::Deliver),
            _ => None,
        }
    }

    /// When `handle_timeout` must next be called; `None` when no timer is armed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Called at the deadline: fires the due timers and says what to send or report.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<TsxOutput> {
        let mut out = Vec::new();
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                TsxTimer::G => {
                    if let Some(b) = &self.last_response {
                        out.push(TsxOutput::Transmit(b.clone()));
                    }
                    self.g_interval = (self.g_interval * 2).min(self.cfg.t2);
                    // Re-armed from `now`: a late wake-up shifts the schedule, never bursts.
                    self.timers.set(TsxTimer::G, now + self.g_interval);
                }
                TsxTimer::H => {
                    self.terminate();
                    out.push(TsxOutput::Timeout);
                }
                TsxTimer::I | TsxTimer::L => {
                    self.terminate();
                    out.push(TsxOutput::Terminated);
                }
                _ => {}
            }
        }
        out
    }

    fn terminate(&mut self) {
        self.state = InviteServerState::Terminated;
        self.timers.clear_all();
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "a test's base instant")]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Runs the machine in virtual time, jumping from deadline to deadline, and returns the
    /// offsets at which it transmitted and the one at which it timed out.
    fn run(tsx: &mut InviteServer, t0: Instant) -> (Vec<Duration>, Option<Duration>) {
        let mut sent = Vec::new();
        while let Some(at) = tsx.poll_timeout() {
            for o in tsx.handle_timeout(at) {
                match o {
                    TsxOutput::Transmit(_) => sent.push(at - t0),
                    TsxOutput::Timeout => return (sent, Some(at - t0)),
                    _ => {}
                }
            }
        }
        (sent, None)
    }

    #[test]
    fn non_2xx_final_is_retransmitted_on_timer_g_and_given_up_on_timer_h() {
        // RFC 3261 §17.2.1: G starts at T1 and doubles up to T2; H fires at 64·T1.
        let t0 = Instant::now();
        let mut tsx = InviteServer::new(false, TimerConfig::default());
        tsx.send_response(t0, StatusCode(486), Bytes::from_static(b"486"));
        assert_eq!(tsx.state(), InviteServerState::Completed);
        let (sent, timeout) = run(&mut tsx, t0);
        let intervals: Vec<Duration> = sent
            .iter()
            .scan(Duration::ZERO, |prev, at| {
                let d = *at - *prev;
                *prev = *at;
                Some(d)
            })
            .collect();
        assert_eq!(
            &intervals[..6],
            &[ms(500), ms(1000), ms(2000), ms(4000), ms(4000), ms(4000)]
        );
        assert_eq!(timeout, Some(ms(32_000)));
        assert_eq!(sent.last(), Some(&ms(31_500)));
        assert_eq!(tsx.state(), InviteServerState::Terminated);
    }

    #[test]
    fn ack_stops_retransmissions_and_timer_i_absorbs_ack_retransmits() {
        let t0 = Instant::now();
        let mut tsx = InviteServer::new(false, TimerConfig::default());
        tsx.send_response(t0, StatusCode(487), Bytes::from_static(b"487"));
        assert_eq!(tsx.handle_ack(t0 + ms(100)), None);
        assert_eq!(tsx.state(), InviteServerState::Confirmed);
        assert_eq!(tsx.poll_timeout(), Some(t0 + ms(5100)));
        assert_eq!(
            tsx.handle_timeout(t0 + ms(5100)),
            vec![TsxOutput::Terminated]
        );
    }

    #[test]
    fn over_tcp_there_is_no_timer_g_and_timer_i_is_zero() {
        let t0 = Instant::now();
        let mut tsx = InviteServer::new(true, TimerConfig::default());
        tsx.send_response(t0, StatusCode(404), Bytes::from_static(b"404"));
        assert_eq!(tsx.poll_timeout(), Some(t0 + ms(32_000)));
        tsx.handle_ack(t0 + ms(10));
        assert_eq!(tsx.poll_timeout(), Some(t0 + ms(10)));
    }

    #[test]
    fn invite_retransmission_gets_the_last_provisional_again() {
        let t0 = Instant::now();
        let mut tsx = InviteServer::new(false, TimerConfig::default());
        assert_eq!(tsx.handle_invite_retransmission(), None);
        tsx.send_response(t0, StatusCode::TRYING, Bytes::from_static(b"100"));
        tsx.send_response(t0, StatusCode::RINGING, Bytes::from_static(b"180"));
        assert_eq!(
            tsx.handle_invite_retransmission(),
            Some(TsxOutput::Transmit(Bytes::from_static(b"180")))
        );
    }

    #[test]
    fn a_2xx_moves_to_accepted_and_ack_goes_to_the_dialog() {
        // RFC 6026 §8.7.
        let t0 = Instant::now();
        let mut tsx = InviteServer::new(false, TimerConfig::default());
        tsx.send_response(t0, StatusCode::OK, Bytes::from_static(b"200"));
        assert_eq!(tsx.state(), InviteServerState::Accepted);
        assert_eq!(tsx.handle_invite_retransmission(), None);
        assert_eq!(tsx.handle_ack(t0 + ms(1)), Some(TsxOutput::Deliver));
        assert_eq!(tsx.poll_timeout(), Some(t0 + ms(32_000)));
        assert_eq!(
            tsx.handle_timeout(t0 + ms(32_000)),
            vec![TsxOutput::Terminated]
        );
    }
}
