//! A call's side of the code lockout: failures its flow reports are counted across the
//! shard's calls (`crate::lockout`), and a keypad of a locked group is not offered.

use tracing::{info, warn};

use super::{Call, Cx};
use crate::lockout::{Counted, Lockout, Subject};

impl Call {
    /// What the call's failures count against: its number, and its source address unless
    /// that is a trusted peer.
    fn lockout_subjects(&self) -> Vec<Subject> {
        Lockout::subjects(
            &self.identity.number,
            self.identity.verified,
            self.caller.peer.addr.ip(),
            self.identity.trusted_source,
        )
    }

    /// Whether `group` is locked for this call now; if so the call's record says why.
    pub(super) fn lockout_applies(&mut self, cx: &mut Cx<'_>, group: &str) -> bool {
        let subjects = self.lockout_subjects();
        let Some(subject) = cx.lockout.locked(cx.now, group, &subjects) else {
            return false;
        };
        info!(
            group,
            by = subject.kind(),
            "code entry locked for this caller"
        );
        self.notes.lockout = Some(format!("{group}: {}", subject.kind()));
        true
    }

    /// Counts the failed attempts the call's flow reported since the last look.
    pub(super) fn count_failed_attempts(&mut self, cx: &mut Cx<'_>) {
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        let groups = flow.run.take_failed_attempts();
        if groups.is_empty() {
            return;
        }
        let subjects = self.lockout_subjects();
        let who = self.identity.for_log();
        let source = self.caller.peer.addr.ip();
        let window_s = cx.cfg.lockout.window.as_secs();
        for group in groups {
            for counted in cx.lockout.failed(cx.now, &group, &subjects) {
                // Once per lock: the moment the limit is reached.
                match counted {
                    Counted::NowLocked(Subject::Number { .. }) => warn!(
                        group = %group,
                        caller = %who,
                        window_s,
                        "too many failed attempts from this number; code entry locked"
                    ),
                    Counted::NowLocked(Subject::Source(_)) => warn!(
                        group = %group,
                        %source,
                        window_s,
                        "too many failed attempts from this address; code entry locked"
                    ),
                    _ => {}
                }
            }
        }
    }
}
