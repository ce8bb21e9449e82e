//! Deadlines: each call has one entry in the switch's heap (its earliest deadline, re-armed
//! after every change), the maximum call duration a set of its own, the transactions theirs
//! in the endpoint, and media one pacing tick per shard.

use std::cmp::Reverse;
use std::time::Instant;

use concierge_sip::dialog::AnswerEvent;
use concierge_sip::wire::StatusCode;
use tracing::warn;

use super::Switch;
use crate::call::CallState;
use crate::output::CallRef;
use crate::record::EndedBy;
use crate::record::TransferFailure;

impl Switch {
    pub(super) fn on_timeout(&mut self, now: Instant) {
        self.endpoint.handle_timeout(now);
        while let Some(&(at, id)) = self.expiry.first() {
            if at > now {
                break;
            }
            self.expiry.pop_first();
            self.end_overlong(now, id);
        }
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match self.calls.get_mut(&id) {
                Some(call) if call.armed == Some(at) => call.armed = None,
                _ => continue,
            }
            self.call_timeout(now, id);
            self.rearm(id);
        }
        if self.next_tick.is_some_and(|t| t <= now) {
            self.media_tick(now);
        }
        self.pump(now);
    }

    /// The earliest deadline of any call, transaction, maximum duration or the pacing tick.
    pub(super) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if self.calls.get(&id).is_some_and(|c| c.armed == Some(at)) {
                break;
            }
            self.timers.pop();
        }
        let calls = self.timers.peek().map(|Reverse((at, _))| *at);
        let expiry = self.expiry.first().map(|(at, _)| *at);
        [calls, expiry, self.endpoint.poll_timeout(), self.next_tick]
            .into_iter()
            .flatten()
            .min()
    }

    pub(super) fn call_timeout(&mut self, now: Instant, id: CallRef) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let CallState::Early { answer_at, .. } = &mut call.state {
            if answer_at.is_some_and(|at| at <= now) {
                *answer_at = None;
                self.answer(now, id);
                return;
            }
        }
        if self.comfort_due(now, id)
            || self.collect_timeout(now, id)
            || self.http_overdue(now, id)
            || self.leg_timeout(now, id)
            || self.carrier_timeout(now, id)
            || self.leg_timer_timeout(now, id)
            || self.media_inactive(now, id)
        {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.refer.as_ref().is_some_and(|r| r.deadline <= now) {
            let why = if call.refer.as_ref().is_some_and(|r| r.accepted) {
                TransferFailure::NoFinalNotify
            } else {
                TransferFailure::ReferNotAccepted
            };
            self.refer_finished(now, id, Err(why));
            return;
        }
        let event = call
            .state
            .retransmit_mut()
            .and_then(|a| a.handle_timeout(now));
        match event {
            Some(AnswerEvent::Retransmit(bytes)) => self.endpoint.send_raw(call.peer, bytes),
            // Our BYE is already out: the 200 simply stops.
            Some(AnswerEvent::AckTimeout) if call.state.is_ending() => {}
            Some(AnswerEvent::AckTimeout) => {
                call.span
                    .in_scope(|| warn!("no ACK for our 200 OK; ending the call with BYE"));
                call.ending = Some((EndedBy::Network, "no ACK".into()));
                self.hang_up(now, id, "no ACK");
            }
            None => {}
        }
    }

    pub(super) fn rearm(&mut self, id: CallRef) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let next = call.poll_timeout();
        if next != call.armed {
            call.armed = next;
            if let Some(at) = next {
                self.timers.push(Reverse((at, id)));
            }
        }
    }

    /// The call outlived `max_call_duration`. A BYE already on its way gets as long as a
    /// transaction can take (64·T1); after that the call is forgotten regardless.
    pub(super) fn end_overlong(&mut self, now: Instant, id: CallRef) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.state.is_ending() {
            self.end_call(now, id, EndedBy::Concierge, "maximum call duration");
            return;
        }
        call.span
            .in_scope(|| warn!("the call reached its maximum duration; ending it"));
        call.expires = now + self.cfg.timers.t1 * 64;
        self.expiry.insert((call.expires, id));
        self.end_from_our_side(
            now,
            id,
            StatusCode::TEMPORARILY_UNAVAILABLE,
            "maximum call duration",
        );
    }
}
