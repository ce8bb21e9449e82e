//! The switch's side of the code lockout: failures the flows report are counted across
//! calls (`crate::lockout`), and keypads of a locked group are not offered.

use std::time::Instant;

use tracing::{info, warn};

use super::Switch;
use crate::lockout::{Counted, Lockout, Subject};
use crate::output::CallRef;

impl Switch {
    /// What the call's failures count against: its number, and its source address unless
    /// that is a trusted peer.
    fn lockout_subjects(&self, id: CallRef) -> Vec<Subject> {
        let Some(call) = self.calls.get(&id) else {
            return Vec::new();
        };
        Lockout::subjects(
            &call.identity.number,
            call.identity.verified,
            call.peer.addr.ip(),
            call.identity.trusted_source,
        )
    }

    /// Whether `group` is locked for this call now; if so the call's record says why.
    pub(super) fn lockout_applies(&mut self, now: Instant, id: CallRef, group: &str) -> bool {
        let subjects = self.lockout_subjects(id);
        let Some(subject) = self.lockout.locked(now, group, &subjects) else {
            return false;
        };
        if let Some(call) = self.calls.get_mut(&id) {
            call.span.in_scope(|| {
                info!(
                    group,
                    by = subject.kind(),
                    "code entry locked for this caller"
                )
            });
            call.lockout = Some(format!("{group}: {}", subject.kind()));
        }
        true
    }

    /// Counts the failed attempts the call's flow reported since the last look.
    pub(super) fn count_failed_attempts(&mut self, now: Instant, id: CallRef) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(flow) = call.flow.as_mut() else {
            return;
        };
        let groups = flow.run.take_failed_attempts();
        if groups.is_empty() {
            return;
        }
        let subjects = self.lockout_subjects(id);
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let who = call.identity.for_log().to_owned();
        let span = call.span.clone();
        let source = call.peer.addr.ip();
        for group in groups {
            for counted in self.lockout.failed(now, &group, &subjects) {
                if let Counted::NowLocked(subject) = counted {
                    // Once per lock: the moment the limit is reached.
                    span.in_scope(|| match subject {
                        Subject::Number { .. } => warn!(
                            group = %group,
                            caller = %who,
                            window_s = self.cfg.lockout.window.as_secs(),
                            "too many failed attempts from this number; code entry locked"
                        ),
                        Subject::Source(_) => warn!(
                            group = %group,
                            %source,
                            window_s = self.cfg.lockout.window.as_secs(),
                            "too many failed attempts from this address; code entry locked"
                        ),
                    });
                }
            }
        }
    }
}
