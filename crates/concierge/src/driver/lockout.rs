//! The switch's lockout questions to the shared store (`[shared]`): each
//! `Output::LockoutCheck` and `Output::LockoutFailure` becomes one task that asks the store
//! (bounded by `timeout_ms`, like every store operation) and hands what it said back to
//! the shard as `Input::SharedLocks`. A check is always answered — with the locks, or
//! with `None` when the store could not say — so the call waiting for it moves on at once
//! rather than at its own deadline; a counted failure comes back only when it found a
//! lock in force, which the switch then keeps for the calls that follow.

use concierge_b2bua::{CallRef, LockoutSubject, Output, SharedLock};
use tokio::sync::mpsc;

use crate::shared::{locks_after, Shared};

/// What the store said, for the shard: the call whose check it answers (none for a
/// counted failure) and the locks in force (`None`: no answer).
pub(super) type LockAnswer = (Option<CallRef>, Option<Vec<SharedLock>>);

/// Asks the store for the shard; answers go to the shard's channel.
pub(super) struct StoreLockout {
    shared: Shared,
    answers: mpsc::Sender<LockAnswer>,
}

impl StoreLockout {
    pub(super) fn new(shared: Shared, answers: mpsc::Sender<LockAnswer>) -> Self {
        Self { shared, answers }
    }

    /// Does what a lockout output of the switch asks (any other output is not the
    /// store's and is ignored).
    pub(super) fn ask(&self, output: Output) {
        match output {
            Output::LockoutCheck {
                call,
                groups,
                subjects,
            } => self.check(call, groups, subjects),
            Output::LockoutFailure { group, subjects } => self.count(group, subjects),
            _ => {}
        }
    }

    /// Whether `groups` are locked for `subjects`: the answer goes back for `call`.
    fn check(&self, call: CallRef, groups: Vec<String>, subjects: Vec<LockoutSubject>) {
        let (shared, answers) = (self.shared.clone(), self.answers.clone());
        tokio::spawn(async move {
            let locks = shared.locks(&groups, &subjects).await.ok();
            let _ = answers.send((Some(call), locks)).await;
        });
    }

    /// Counts one failure in `group` against `subjects`; a lock in force afterwards (this
    /// failure's, or another instance's) goes back to the shard.
    fn count(&self, group: String, subjects: Vec<LockoutSubject>) {
        let (shared, answers) = (self.shared.clone(), self.answers.clone());
        tokio::spawn(async move {
            // A store that cannot count leaves the failure to the switch's own table,
            // which counted it already.
            let Ok(counted) = shared.count_failure(&group, &subjects).await else {
                return;
            };
            let locks = locks_after(&group, &subjects, &counted);
            if !locks.is_empty() {
                let _ = answers.send((None, Some(locks))).await;
            }
        });
    }
}
