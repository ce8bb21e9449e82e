//! The shard's deadlines: one heap entry per call (the earliest of its timer table,
//! re-armed after every input), each call's maximum duration in a set of its own, the
//! transactions' in the endpoint, the trunks' registrations, and the pacing tick.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::time::Instant;

use super::Switch;
use crate::output::CallRef;

#[derive(Debug, Default)]
pub(super) struct Deadlines {
    /// Each call's earliest deadline when it was last armed; an entry the call has since
    /// moved from stays until its time and is skipped then.
    heap: BinaryHeap<Reverse<(Instant, CallRef)>>,
    /// Each live call's maximum-duration deadline (removed when the call goes).
    expiry: BTreeSet<(Instant, CallRef)>,
}

impl Deadlines {
    pub(super) fn arm(&mut self, at: Instant, id: CallRef) {
        self.heap.push(Reverse((at, id)));
    }

    pub(super) fn expire_at(&mut self, at: Instant, id: CallRef) {
        self.expiry.insert((at, id));
    }

    pub(super) fn forget(&mut self, expires: Instant, id: CallRef) {
        self.expiry.remove(&(expires, id));
    }
}

impl Switch {
    /// Everything due at `now` fires: the transactions' timers, the calls that outlived
    /// their maximum duration, each call whose deadline came (its table says which
    /// timers), and the pacing tick.
    pub(super) fn on_timeout(&mut self, now: Instant) {
        self.shared.endpoint.handle_timeout(now);
        self.shared.trunks.on_timeout(now);
        while let Some(&(at, id)) = self.books.deadlines.expiry.first() {
            if at > now {
                break;
            }
            self.books.deadlines.expiry.pop_first();
            if let Some(Some(next)) = self.run(now, id, |call, cx| call.on_overlong(cx)) {
                self.books.deadlines.expire_at(next, id);
            }
        }
        while let Some(Reverse((at, id))) = self.books.deadlines.heap.peek().copied() {
            if at > now {
                break;
            }
            self.books.deadlines.heap.pop();
            self.run(now, id, |call, cx| {
                if call.timers.disarm(at) {
                    call.on_timeout(cx);
                }
            });
        }
        if self.shared.pacer.due(now) {
            self.media_tick(now);
        }
    }

    /// The earliest deadline of any call, transaction, maximum duration or the pacing tick.
    pub(super) fn next_deadline(&mut self) -> Option<Instant> {
        let heap = &mut self.books.deadlines.heap;
        while let Some(Reverse((at, id))) = heap.peek().copied() {
            if self.calls.get(id).is_some_and(|c| c.timers.is_armed_at(at)) {
                break;
            }
            heap.pop();
        }
        let calls = heap.peek().map(|Reverse((at, _))| *at);
        let expiry = self.books.deadlines.expiry.first().map(|(at, _)| *at);
        let endpoint = self.shared.endpoint.poll_timeout();
        let tick = self.shared.pacer.next_tick();
        let trunks = self.shared.trunks.poll_timeout();
        [calls, expiry, endpoint, tick, trunks]
            .into_iter()
            .flatten()
            .min()
    }
}
