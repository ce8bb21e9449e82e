//! A call's deadlines: one table indexed by [`CallTimer`], as quinn keeps a connection's.
//! Deadlines the call sets itself (answer, comfort audio, the HTTP watchdog, the REFER's
//! and the bridge's timeouts) live only here; those of the machines the call holds (the
//! 200's retransmission, reliable 18x, session timers, the keypad, silence) are copied in
//! from them after every input, so the table never disagrees with them. The switch keeps
//! one heap entry per call, at the table's earliest deadline; the maximum call duration is
//! the switch's own (`Call::expires`).

use std::time::Instant;

/// One kind of deadline a call has. When several are due at once they fire in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallTimer {
    /// Nothing answered the INVITE yet: 100 Trying goes out (RFC 3261 §17.2.1).
    Trying,
    /// Answer the ringing call (`SwitchConfig::answer_after`).
    Answer,
    /// An HTTP request is slow: comfort audio starts (its node's `comfort.after_ms`).
    Comfort,
    /// The shared store's lockout answer is overdue (`SwitchConfig::shared_lockout`): a
    /// keypad waiting for it starts on the switch's own counts.
    StoreAnswer,
    /// The keypad's first-digit or next-digit timeout.
    Collect,
    /// The driver never reported an HTTP result: taken as a timeout (the node's timeout
    /// plus a grace).
    HttpOverdue,
    /// A bridge target's address sent nothing at all: try its next one (RFC 3263 §4.3).
    Failover,
    /// The bridge target did not answer in `bridge_ring_timeout`.
    Ring,
    /// Resend a reliable 18x, or give up on its PRACK (RFC 3262 §3).
    Prack,
    /// The caller's leg session timer: refresh, or the session expired (RFC 4028).
    Session,
    /// The bridge leg's session timer.
    LegSession,
    /// No RTP from the caller for `media_timeout`.
    Silence,
    /// No final NOTIFY for our REFER in `transfer_timeout`.
    Refer,
    /// Resend our 200 OK until the ACK, or give up at 64·T1 (§13.3.1.4).
    Retransmit200,
}

impl CallTimer {
    const ALL: [Self; 14] = [
        Self::Trying,
        Self::Answer,
        Self::Comfort,
        Self::StoreAnswer,
        Self::Collect,
        Self::HttpOverdue,
        Self::Failover,
        Self::Ring,
        Self::Prack,
        Self::Session,
        Self::LegSession,
        Self::Silence,
        Self::Refer,
        Self::Retransmit200,
    ];
}

/// The call's deadlines by kind, and the one the switch's heap holds for it.
#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    at: [Option<Instant>; CallTimer::ALL.len()],
    /// The deadline this call has in the switch's heap.
    armed: Option<Instant>,
}

impl TimerTable {
    pub(crate) fn set(&mut self, timer: CallTimer, at: Instant) {
        self.at[timer as usize] = Some(at);
    }

    /// Sets `timer` to `at`, or stops it.
    pub(crate) fn mirror(&mut self, timer: CallTimer, at: Option<Instant>) {
        self.at[timer as usize] = at;
    }

    pub(crate) fn stop(&mut self, timer: CallTimer) {
        self.at[timer as usize] = None;
    }

    pub(crate) fn get(&self, timer: CallTimer) -> Option<Instant> {
        self.at[timer as usize]
    }

    /// The first timer (in [`CallTimer`] order) due at `now`, skipping those in `fired`
    /// (a bit per timer).
    pub(crate) fn first_due(&self, now: Instant, fired: u16) -> Option<CallTimer> {
        CallTimer::ALL.into_iter().find(|&t| {
            fired & (1 << t as u16) == 0 && self.at[t as usize].is_some_and(|at| at <= now)
        })
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }

    /// Whether the switch's heap entry for this call is the one at `at` (older entries of a
    /// call stay in the heap until their time and are skipped).
    pub(crate) fn is_armed_at(&self, at: Instant) -> bool {
        self.armed == Some(at)
    }

    /// The earliest deadline, when it is not the one the heap holds already: the switch
    /// then pushes it.
    pub(crate) fn rearm(&mut self) -> Option<Instant> {
        let next = self.next();
        if next == self.armed {
            return None;
        }
        self.armed = next;
        next
    }

    /// The heap entry at `at` was taken: the call is not armed until it asks again.
    pub(crate) fn disarm(&mut self, at: Instant) -> bool {
        if self.armed != Some(at) {
            return false;
        }
        self.armed = None;
        true
    }
}

impl super::Call {
    /// Copies the deadlines of the machines the call holds into its table. Called after
    /// every input the call handled (the RTP fast path only when something came of it).
    pub(crate) fn sync_timers(&mut self, cfg: &crate::config::SwitchConfig) {
        let collect = match self.flow.as_ref().map(|f| &f.waiting) {
            Some(super::Waiting::Collect(c)) => c.poll_timeout(),
            _ => None,
        };
        let prack = self
            .inbound
            .reliable
            .as_ref()
            .and_then(concierge_sip::dialog::prack::ReliableProvisionals::poll_timeout);
        let leg_session = self
            .transfer
            .bridge()
            .and_then(|b| b.leg.session.deadline());
        let retransmit = self
            .caller
            .state
            .retransmit()
            .and_then(concierge_sip::dialog::AnswerRetransmit::poll_timeout);
        let silence = self.media_deadline(cfg.media_timeout);
        let t = &mut self.timers;
        t.mirror(CallTimer::Collect, collect);
        t.mirror(CallTimer::Prack, prack);
        t.mirror(CallTimer::Session, self.caller.session.deadline());
        t.mirror(CallTimer::LegSession, leg_session);
        t.mirror(CallTimer::Silence, silence);
        t.mirror(CallTimer::Retransmit200, retransmit);
    }

    /// The call's deadline came: every timer due fires, once, in [`CallTimer`] order.
    pub(crate) fn on_timeout(&mut self, cx: &mut super::Cx<'_>) {
        self.sync_timers(cx.cfg);
        let mut fired = 0u16;
        while let Some(timer) = self.timers.first_due(cx.now, fired) {
            fired |= 1 << timer as u16;
            let at = self.timers.get(timer).unwrap_or(cx.now);
            self.timers.stop(timer);
            match timer {
                CallTimer::Trying => self.trying_due(cx),
                CallTimer::Answer => self.answer_due(cx),
                CallTimer::Comfort => self.comfort_due(cx),
                CallTimer::StoreAnswer => self.store_overdue(cx),
                CallTimer::Collect => self.collect_timeout(cx),
                CallTimer::HttpOverdue => self.http_overdue(cx),
                CallTimer::Failover => self.failover_due(cx, at),
                CallTimer::Ring => self.ring_timeout(cx),
                CallTimer::Prack => self.prack_due(cx),
                CallTimer::Session => self.session_due(cx),
                CallTimer::LegSession => self.leg_session_due(cx),
                CallTimer::Silence => self.silence_due(cx),
                CallTimer::Refer => self.refer_timeout(cx),
                CallTimer::Retransmit200 => self.retransmit_due(cx),
            }
            if self.finished {
                return;
            }
            self.sync_timers(cx.cfg);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[allow(
        clippy::disallowed_methods,
        reason = "a base instant for a table that only compares them"
    )]
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn timers_due_together_fire_in_their_order_each_once() {
        let now = t0();
        let mut table = TimerTable::default();
        table.set(CallTimer::Retransmit200, now);
        table.set(CallTimer::Answer, now);
        table.set(CallTimer::Refer, now + Duration::from_secs(1));
        assert_eq!(table.first_due(now, 0), Some(CallTimer::Answer));
        let fired = 1 << CallTimer::Answer as u16;
        assert_eq!(table.first_due(now, fired), Some(CallTimer::Retransmit200));
        let fired = fired | 1 << CallTimer::Retransmit200 as u16;
        assert_eq!(table.first_due(now, fired), None, "Refer is not due yet");
    }

    #[test]
    fn the_heap_is_asked_again_only_when_the_earliest_deadline_moved() {
        let now = t0();
        let mut table = TimerTable::default();
        table.set(CallTimer::Ring, now + Duration::from_secs(30));
        assert_eq!(table.rearm(), Some(now + Duration::from_secs(30)));
        table.set(CallTimer::Refer, now + Duration::from_secs(60));
        assert_eq!(table.rearm(), None, "still armed at the ring timeout");
        assert!(table.is_armed_at(now + Duration::from_secs(30)));
        assert!(table.disarm(now + Duration::from_secs(30)));
        table.stop(CallTimer::Ring);
        assert_eq!(table.rearm(), Some(now + Duration::from_secs(60)));
        assert!(
            !table.disarm(now),
            "a stale heap entry finds the call armed elsewhere"
        );
    }
}
