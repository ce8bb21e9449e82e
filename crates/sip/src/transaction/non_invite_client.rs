use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{TimerConfig, TsxOutput, TsxTimer, TsxTimers};
use crate::wire::StatusCode;

/// RFC 3261 Figure 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonInviteClientState {
    /// The RFC 3261 §17 state of the same name.
    Trying,
    /// The RFC 3261 §17 state of the same name.
    Proceeding,
    /// The RFC 3261 §17 state of the same name.
    Completed,
    /// The RFC 3261 §17 state of the same name.
    Terminated,
}

/// The non-INVITE client transaction (§17.1.2): retransmits the request on timer E
/// (T1 doubling to T2; T2 once a provisional arrived) until a final response or timer F.
#[derive(Debug, Clone)]
pub struct NonInviteClient {
    state: NonInviteClientState,
    reliable: bool,
    cfg: TimerConfig,
    timers: TsxTimers,
    request: Bytes,
    e_interval: Duration,
}

impl NonInviteClient {
    /// Starts the transaction; the first output transmits the request.
    pub fn start(
        now: Instant,
        request: Bytes,
        reliable: bool,
        cfg: TimerConfig,
    ) -> (Self, TsxOutput) {
        let mut timers = TsxTimers::default();
        if !reliable {
            timers.set(TsxTimer::E, now + cfg.t1);
        }
        timers.set(TsxTimer::F, now + cfg.timeout());
        let tsx = Self {
            state: NonInviteClientState::Trying,
            reliable,
            cfg,
            timers,
            request: request.clone(),
            e_interval: cfg.t1,
        };
        (tsx, TsxOutput::Transmit(request))
    }

    /// The current state.
    pub fn state(&self) -> NonInviteClientState {
        self.state
    }

    /// A response matched this transaction; `Deliver` passes it to the TU.
    pub fn handle_response(&mut self, now: Instant, status: StatusCode) -> Option<TsxOutput> {
        match self.state {
            NonInviteClientState::Trying | NonInviteClientState::Proceeding => {}
            _ => return None,
        }
        if status.is_provisional() {
            self.state = NonInviteClientState::Proceeding;
        } else {
            self.state = NonInviteClientState::Completed;
            self.timers.clear(TsxTimer::E);
            self.timers.clear(TsxTimer::F);
            let wait = if self.reliable {
                Duration::ZERO
            } else {
                self.cfg.t4
            };
            self.timers.set(TsxTimer::K, now + wait);
        }
        Some(TsxOutput::Deliver)
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
                TsxTimer::E => {
                    out.push(TsxOutput::Transmit(self.request.clone()));
                    self.e_interval = match self.state {
                        NonInviteClientState::Proceeding => self.cfg.t2,
                        _ => (self.e_interval * 2).min(self.cfg.t2),
                    };
                    self.timers.set(TsxTimer::E, now + self.e_interval);
                }
                TsxTimer::F => {
                    self.terminate();
                    out.push(TsxOutput::Timeout);
                }
                TsxTimer::K => {
                    self.terminate();
                    out.push(TsxOutput::Terminated);
                }
                _ => {}
            }
        }
        out
    }

    fn terminate(&mut self) {
        self.state = NonInviteClientState::Terminated;
        self.timers.clear_all();
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "a test's base instant")]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn request_retransmits_at_t1_doubling_to_t2_then_times_out_on_timer_f() {
        let t0 = Instant::now();
        let (mut tsx, first) = NonInviteClient::start(
            t0,
            Bytes::from_static(b"BYE"),
            false,
            TimerConfig::default(),
        );
        assert_eq!(first, TsxOutput::Transmit(Bytes::from_static(b"BYE")));
        let mut sent = Vec::new();
        let mut timed_out = None;
        while let Some(at) = tsx.poll_timeout() {
            for o in tsx.handle_timeout(at) {
                match o {
                    TsxOutput::Transmit(_) => sent.push(at - t0),
                    TsxOutput::Timeout => timed_out = Some(at - t0),
                    _ => {}
                }
            }
        }
        // §17.1.2.2: 0.5, 1.5, 3.5, 7.5, 11.5 … every T2 after reaching it.
        assert_eq!(
            &sent[..5],
            &[ms(500), ms(1500), ms(3500), ms(7500), ms(11_500)]
        );
        assert_eq!(timed_out, Some(ms(32_000)));
    }

    #[test]
    fn provisional_response_slows_retransmission_to_t2() {
        let t0 = Instant::now();
        let (mut tsx, _) = NonInviteClient::start(
            t0,
            Bytes::from_static(b"REFER"),
            false,
            TimerConfig::default(),
        );
        assert_eq!(
            tsx.handle_response(t0 + ms(100), StatusCode::TRYING),
            Some(TsxOutput::Deliver)
        );
        let at = tsx.poll_timeout().unwrap();
        assert_eq!(at, t0 + ms(500));
        tsx.handle_timeout(at);
        assert_eq!(tsx.poll_timeout(), Some(t0 + ms(4500)));
    }

    #[test]
    fn final_response_is_delivered_once_and_timer_k_ends_it() {
        let t0 = Instant::now();
        let (mut tsx, _) = NonInviteClient::start(
            t0,
            Bytes::from_static(b"BYE"),
            false,
            TimerConfig::default(),
        );
        assert_eq!(
            tsx.handle_response(t0 + ms(20), StatusCode::OK),
            Some(TsxOutput::Deliver)
        );
        assert_eq!(
            tsx.handle_response(t0 + ms(30), StatusCode::OK),
            None,
            "retransmission absorbed"
        );
        assert_eq!(tsx.poll_timeout(), Some(t0 + ms(5020)));
    }

    #[test]
    fn over_tcp_no_retransmissions() {
        let t0 = Instant::now();
        let (tsx, _) =
            NonInviteClient::start(t0, Bytes::from_static(b"BYE"), true, TimerConfig::default());
        assert_eq!(
            tsx.poll_timeout(),
            Some(t0 + ms(32_000)),
            "only timer F is armed"
        );
    }
}
