use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{TimerConfig, TsxOutput, TsxTimer, TsxTimers};
use crate::wire::StatusCode;

/// RFC 3261 Figure 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonInviteServerState {
    /// The RFC 3261 §17 state of the same name.
    Trying,
    /// The RFC 3261 §17 state of the same name.
    Proceeding,
    /// The RFC 3261 §17 state of the same name.
    Completed,
    /// The RFC 3261 §17 state of the same name.
    Terminated,
}

/// The non-INVITE server transaction (§17.2.2): absorbs request retransmissions, answering
/// each with the last response sent, until timer J.
#[derive(Debug, Clone)]
pub struct NonInviteServer {
    state: NonInviteServerState,
    reliable: bool,
    cfg: TimerConfig,
    timers: TsxTimers,
    last_response: Option<Bytes>,
}

impl NonInviteServer {
    /// A transaction for a request just received (`reliable`: no retransmissions).
    pub fn new(reliable: bool, cfg: TimerConfig) -> Self {
        Self {
            state: NonInviteServerState::Trying,
            reliable,
            cfg,
            timers: TsxTimers::default(),
            last_response: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> NonInviteServerState {
        self.state
    }

    /// The request came again: the last response, to resend.
    pub fn handle_request_retransmission(&mut self) -> Option<TsxOutput> {
        match self.state {
            NonInviteServerState::Proceeding | NonInviteServerState::Completed => {
                self.last_response.clone().map(TsxOutput::Transmit)
            }
            _ => None,
        }
    }

    /// Sends a response through the transaction at `now`.
    pub fn send_response(
        &mut self,
        now: Instant,
        status: StatusCode,
        bytes: Bytes,
    ) -> Option<TsxOutput> {
        match self.state {
            NonInviteServerState::Trying | NonInviteServerState::Proceeding => {}
            _ => return None,
        }
        self.last_response = Some(bytes.clone());
        if status.is_provisional() {
            self.state = NonInviteServerState::Proceeding;
        } else {
            self.state = NonInviteServerState::Completed;
            let wait = if self.reliable {
                Duration::ZERO
            } else {
                self.cfg.timeout()
            };
            self.timers.set(TsxTimer::J, now + wait);
        }
        Some(TsxOutput::Transmit(bytes))
    }

    /// When `handle_timeout` must next be called; `None` when no timer is armed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Called at the deadline: fires the due timers and says what to send or report.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TsxOutput> {
        match self.timers.pop_expired(now)? {
            TsxTimer::J => {
                self.state = NonInviteServerState::Terminated;
                self.timers.clear_all();
                Some(TsxOutput::Terminated)
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
    fn retransmitted_request_gets_the_final_response_until_timer_j() {
        let t0 = Instant::now();
        let mut tsx = NonInviteServer::new(false, TimerConfig::default());
        assert_eq!(
            tsx.handle_request_retransmission(),
            None,
            "Trying absorbs silently"
        );
        tsx.send_response(t0, StatusCode::OK, Bytes::from_static(b"200"));
        assert_eq!(
            tsx.handle_request_retransmission(),
            Some(TsxOutput::Transmit(Bytes::from_static(b"200")))
        );
        assert_eq!(tsx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        assert_eq!(
            tsx.handle_timeout(t0 + Duration::from_secs(32)),
            Some(TsxOutput::Terminated)
        );
    }

    #[test]
    fn over_tcp_timer_j_is_zero() {
        let t0 = Instant::now();
        let mut tsx = NonInviteServer::new(true, TimerConfig::default());
        tsx.send_response(t0, StatusCode::OK, Bytes::from_static(b"200"));
        assert_eq!(tsx.poll_timeout(), Some(t0));
    }

    #[test]
    fn a_second_final_response_is_refused() {
        let t0 = Instant::now();
        let mut tsx = NonInviteServer::new(false, TimerConfig::default());
        tsx.send_response(t0, StatusCode::OK, Bytes::from_static(b"200"));
        assert_eq!(
            tsx.send_response(t0, StatusCode(500), Bytes::from_static(b"500")),
            None
        );
    }
}
