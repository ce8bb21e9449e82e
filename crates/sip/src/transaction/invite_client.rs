use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{TimerConfig, TsxOutput, TsxTimer, TsxTimers};
use crate::wire::StatusCode;

/// RFC 3261 Figure 5 with the RFC 6026 `Accepted` state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteClientState {
    /// The RFC 3261 §17 state of the same name.
    Calling,
    /// The RFC 3261 §17 state of the same name.
    Proceeding,
    /// A 2xx arrived; further 2xx retransmissions are passed up so the TU re-sends ACK.
    Accepted,
    /// A 300–699 arrived and was ACKed by the transaction.
    Completed,
    /// The RFC 3261 §17 state of the same name.
    Terminated,
}

/// The INVITE client transaction (§17.1.1). The ACK for a non-2xx final response is part
/// of the transaction (§17.1.1.3); the transaction user supplies its bytes because the ACK
/// takes the To tag of the response.
#[derive(Debug, Clone)]
pub struct InviteClient {
    state: InviteClientState,
    reliable: bool,
    cfg: TimerConfig,
    timers: TsxTimers,
    request: Bytes,
    ack: Option<Bytes>,
    a_interval: Duration,
}

impl InviteClient {
    /// Sends the request at `now` and arms its timers.
    pub fn start(
        now: Instant,
        request: Bytes,
        reliable: bool,
        cfg: TimerConfig,
    ) -> (Self, TsxOutput) {
        let mut timers = TsxTimers::default();
        if !reliable {
            timers.set(TsxTimer::A, now + cfg.t1);
        }
        timers.set(TsxTimer::B, now + cfg.timeout());
        let tsx = Self {
            state: InviteClientState::Calling,
            reliable,
            cfg,
            timers,
            request: request.clone(),
            ack: None,
            a_interval: cfg.t1,
        };
        (tsx, TsxOutput::Transmit(request))
    }

    /// The current state.
    pub fn state(&self) -> InviteClientState {
        self.state
    }

    /// A response matched. `make_ack` builds the ACK for a non-2xx final response.
    pub fn handle_response(
        &mut self,
        now: Instant,
        status: StatusCode,
        make_ack: impl FnOnce() -> Bytes,
    ) -> Vec<TsxOutput> {
        use InviteClientState::*;
        match (self.state, status) {
            (Calling | Proceeding, s) if s.is_provisional() => {
                self.state = Proceeding;
                self.timers.clear(TsxTimer::A);
                vec![TsxOutput::Deliver]
            }
            (Calling | Proceeding, s) if s.is_success() => {
                self.state = Accepted;
                self.timers.clear_all();
                self.timers.set(TsxTimer::M, now + self.cfg.timeout());
                vec![TsxOutput::Deliver]
            }
            (Calling | Proceeding, _) => {
                self.state = Completed;
                self.timers.clear_all();
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    Duration::from_secs(32)
                };
                self.timers.set(TsxTimer::D, now + wait);
                let ack = make_ack();
                self.ack = Some(ack.clone());
                vec![TsxOutput::Transmit(ack), TsxOutput::Deliver]
            }
            (Accepted, s) if s.is_success() => vec![TsxOutput::Deliver],
            (Completed, s) if s.is_final() && !s.is_success() => self
                .ack
                .clone()
                .map(TsxOutput::Transmit)
                .into_iter()
                .collect(),
            _ => Vec::new(),
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
                TsxTimer::A => {
                    out.push(TsxOutput::Transmit(self.request.clone()));
                    self.a_interval *= 2;
                    self.timers.set(TsxTimer::A, now + self.a_interval);
                }
                TsxTimer::B => {
                    self.terminate();
                    out.push(TsxOutput::Timeout);
                }
                TsxTimer::D | TsxTimer::M => {
                    self.terminate();
                    out.push(TsxOutput::Terminated);
                }
                _ => {}
            }
        }
        out
    }

    fn terminate(&mut self) {
        self.state = InviteClientState::Terminated;
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
    fn invite_retransmits_on_timer_a_doubling_until_timer_b() {
        // §17.1.1.2: A doubles without a cap (0.5, 1, 2, 4, 8, 16 s); B fires at 64·T1.
        let t0 = Instant::now();
        let (mut tsx, _) = InviteClient::start(
            t0,
            Bytes::from_static(b"INVITE"),
            false,
            TimerConfig::default(),
        );
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
        assert_eq!(
            sent,
            vec![
                ms(500),
                ms(1500),
                ms(3500),
                ms(7500),
                ms(15_500),
                ms(31_500)
            ]
        );
        assert_eq!(timed_out, Some(ms(32_000)));
    }

    #[test]
    fn provisional_stops_timer_a() {
        let t0 = Instant::now();
        let (mut tsx, _) = InviteClient::start(
            t0,
            Bytes::from_static(b"INVITE"),
            false,
            TimerConfig::default(),
        );
        tsx.handle_response(t0 + ms(50), StatusCode::RINGING, || {
            unreachable!("no ACK for 1xx")
        });
        assert_eq!(tsx.poll_timeout(), Some(t0 + ms(32_000)), "only B remains");
    }

    #[test]
    fn non_2xx_final_is_acked_by_the_transaction_and_retransmissions_reacked() {
        let t0 = Instant::now();
        let (mut tsx, _) = InviteClient::start(
            t0,
            Bytes::from_static(b"INVITE"),
            false,
            TimerConfig::default(),
        );
        let out = tsx.handle_response(t0 + ms(50), StatusCode(486), || Bytes::from_static(b"ACK"));
        assert_eq!(
            out,
            vec![
                TsxOutput::Transmit(Bytes::from_static(b"ACK")),
                TsxOutput::Deliver
            ]
        );
        let again = tsx.handle_response(t0 + ms(60), StatusCode(486), || unreachable!());
        assert_eq!(again, vec![TsxOutput::Transmit(Bytes::from_static(b"ACK"))]);
        assert_eq!(tsx.poll_timeout(), Some(t0 + ms(32_050)), "timer D");
    }

    #[test]
    fn every_2xx_is_passed_up_in_accepted() {
        let t0 = Instant::now();
        let (mut tsx, _) = InviteClient::start(
            t0,
            Bytes::from_static(b"INVITE"),
            true,
            TimerConfig::default(),
        );
        assert_eq!(
            tsx.handle_response(t0, StatusCode::OK, || unreachable!()),
            vec![TsxOutput::Deliver]
        );
        assert_eq!(
            tsx.handle_response(t0, StatusCode::OK, || unreachable!()),
            vec![TsxOutput::Deliver]
        );
        assert_eq!(tsx.state(), InviteClientState::Accepted);
    }
}
