//! The timer heap over all transactions: the next deadline and firing what is due.

use std::cmp::Reverse;
use std::time::Instant;

use super::{Endpoint, EndpointEvent, Machine, Transmit};
use crate::transaction::{TsxKey, TsxOutput};

impl Endpoint {
    /// When [`Self::handle_timeout`] must next be called; `None` when nothing is pending.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let summary = self.bad_input.poll_timeout();
        // Drop stale heap entries so the answer is the real next deadline.
        while let Some(Reverse((at, key))) = self.timers.peek() {
            if self.tsxs.get(key).is_some_and(|e| e.armed == Some(*at)) {
                return Some(summary.map_or(*at, |s| s.min(*at)));
            }
            self.timers.pop();
        }
        summary
    }

    /// Called by the driver at (or after) the deadline from [`Self::poll_timeout`]: fires every
    /// due timer (retransmissions, timeouts reported as [`EndpointEvent::Timeout`], ended
    /// transactions forgotten); then drain as after any input.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.log_bad_input_summary(now);
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, key))) = self.timers.pop() else {
                break;
            };
            let Some(entry) = self.tsxs.get_mut(&key) else {
                continue;
            };
            if entry.armed != Some(at) {
                continue;
            }
            entry.armed = None;
            let outputs = match &mut entry.machine {
                Machine::InviteServer(m) => m.handle_timeout(now),
                Machine::NonInviteServer(m) => m.handle_timeout(now).into_iter().collect(),
                Machine::InviteClient { tsx, .. } => tsx.handle_timeout(now),
                Machine::NonInviteClient(m) => m.handle_timeout(now),
            };
            let peer = entry.peer;
            let mut finished = false;
            for out in outputs {
                match out {
                    TsxOutput::Transmit(bytes) => {
                        self.transmits.push_back(Transmit { peer, bytes })
                    }
                    TsxOutput::Timeout => {
                        finished = true;
                        self.events
                            .push_back(EndpointEvent::Timeout { key: key.clone() });
                    }
                    TsxOutput::Terminated => finished = true,
                    TsxOutput::Deliver => {}
                }
            }
            if finished {
                self.tsxs.remove(&key);
            } else {
                self.rearm(&key);
            }
        }
    }

    pub(super) fn rearm(&mut self, key: &TsxKey) {
        let Some(entry) = self.tsxs.get_mut(key) else {
            return;
        };
        let next = entry.poll_timeout();
        if next != entry.armed {
            entry.armed = next;
            if let Some(at) = next {
                self.timers.push(Reverse((at, key.clone())));
            }
        }
    }
}
