//! Running a call: the switch finds it once, lends it a [`crate::call::Cx`], and when the
//! call returns applies its index changes and re-arms its deadline once — or, when the
//! call finished, drops it with every key that still leads to it.

use std::net::SocketAddr;
use std::time::Instant;

use super::{Books, Switch};
use crate::call::{Call, Cx};
use crate::config::SwitchConfig;
use crate::output::CallRef;

impl Switch {
    /// Runs `handle` on call `id` at `now` (in the call's log span); `None` when the call
    /// is not here (any more).
    pub(super) fn run<R>(
        &mut self,
        now: Instant,
        id: CallRef,
        handle: impl FnOnce(&mut Call, &mut Cx<'_>) -> R,
    ) -> Option<R> {
        let call = self.calls.get_mut(id)?;
        let span = call.span.clone();
        let _entered = span.enter();
        let mut cx = self.shared.cx(now, id, &mut self.books.changes);
        let r = handle(call, &mut cx);
        if self.books.settle(&self.shared.cfg, call, id, true) {
            self.forget(id);
        }
        Some(r)
    }

    /// An RTP datagram on one of our ports: the fast path — the port's call found by two
    /// indexes (no hashing), no span, and the call's deadlines are looked at only when the
    /// packet reached its flow (a digit).
    pub(super) fn on_rtp(&mut self, now: Instant, port: u16, from: SocketAddr, data: &[u8]) {
        let Some(id) = self.books.index.port(port) else {
            return;
        };
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        let mut plain = std::mem::take(&mut self.srtp_buf);
        let mut cx = self.shared.cx(now, id, &mut self.books.changes);
        let heard = call.on_rtp(&mut cx, port, from, data, &mut plain);
        self.srtp_buf = plain;
        if self.books.settle(&self.shared.cfg, call, id, heard) {
            self.forget(id);
        }
    }

    /// A call the switch just accepted: indexed, armed and kept.
    pub(super) fn admit(&mut self, id: CallRef, mut call: Call) {
        if self.books.settle(&self.shared.cfg, &mut call, id, true) {
            let index = &mut self.books.index;
            return call.into_keys(|key| index.forget(id, key));
        }
        self.books.deadlines.expire_at(call.expires, id);
        self.calls.insert(id, call);
    }

    /// Drops a finished call (its record is out) and every key that still leads to it.
    fn forget(&mut self, id: CallRef) {
        let Some(call) = self.calls.remove(id) else {
            return;
        };
        self.books.deadlines.forget(call.expires, id);
        let index = &mut self.books.index;
        call.into_keys(|key| index.forget(id, key));
    }
}

impl Books {
    /// After `call` handled an input: its index changes applied; unless it finished, its
    /// deadlines copied from its machines (`sync`) and its heap entry re-armed. Returns
    /// whether it finished.
    fn settle(&mut self, cfg: &SwitchConfig, call: &mut Call, id: CallRef, sync: bool) -> bool {
        // Most inputs (every RTP packet) change no key: no drain to set up and drop.
        if !self.changes.is_empty() {
            self.index.apply(id, self.changes.drain(..));
        }
        if call.finished {
            return true;
        }
        if sync {
            call.sync_timers(cfg);
            if let Some(at) = call.timers.rearm() {
                self.deadlines.arm(at, id);
            }
        }
        false
    }
}
