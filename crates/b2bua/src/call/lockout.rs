//! A call's side of the code lockout: failures its flow reports are counted across the
//! shard's calls (`crate::lockout`), and a keypad of a locked group is not offered.
//!
//! With a shared store (`SwitchConfig::shared_lockout`) the call also asks the driver, as
//! its flow starts, whether the store holds a lock on any of the flow's lockout groups for
//! this caller. Asked then, the answer comes while the phone rings and the lookup runs, so
//! a keypad rarely waits for it; one that comes first waits at most until the answer is
//! overdue ([`CallTimer::StoreAnswer`]), then goes by the switch's own table. The answer's
//! locks go into that table (the switch does that before the call hears of it), so the
//! keypad's decision is always one look at the table: a lock known here — counted here or
//! learnt from the store — stops code entry; no answer leaves the local counts in charge.
//! Each failed attempt goes to the store too, and nothing waits for that.

use tracing::{debug, info, warn};

use super::{Call, CallTimer, Cx, StoreCheck, Waiting};
use crate::lockout::{Counted, Lockout, LockoutSubject};
use crate::output::Output;

impl Call {
    /// What the call's failures count against: its number, and its source address unless
    /// that is a trusted peer.
    fn lockout_subjects(&self) -> Vec<LockoutSubject> {
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

    /// As the flow starts: with a shared store and a flow that has lockout groups, asks
    /// the driver about them and arms the deadline of the answer. Returns how the check
    /// stands.
    pub(super) fn ask_store(&mut self, cx: &mut Cx<'_>, flow: &concierge_flow::Flow) -> StoreCheck {
        let Some(wait) = cx.cfg.shared_lockout else {
            return StoreCheck::Settled;
        };
        let groups: Vec<String> = flow
            .lockout_groups()
            .into_iter()
            .map(String::from)
            .collect();
        if groups.is_empty() {
            return StoreCheck::Settled;
        }
        cx.emit(Output::LockoutCheck {
            call: cx.id,
            groups,
            subjects: self.lockout_subjects(),
        });
        self.timers.set(CallTimer::StoreAnswer, cx.now + wait);
        StoreCheck::Pending
    }

    /// Whether a keypad of a lockout group must wait for the store's answer (asked for
    /// only once no lock known here stopped it: a local lock wins without waiting).
    pub(super) fn waits_for_store(&self) -> bool {
        self.flow
            .as_ref()
            .is_some_and(|f| f.store == StoreCheck::Pending)
    }

    /// The store answered the call's check (`answered`), or said it cannot: its locks are
    /// in the switch's table already. A keypad that waited starts now.
    pub(crate) fn on_store_answer(&mut self, cx: &mut Cx<'_>, answered: bool) {
        if !answered {
            debug!("no lockout answer from the shared store: this instance's counts decide");
        }
        self.store_settled(cx);
    }

    /// No answer from the store in time: keypads go by the switch's own counts.
    pub(crate) fn store_overdue(&mut self, cx: &mut Cx<'_>) {
        if self.waits_for_store() {
            debug!("the shared store's lockout answer is overdue: this instance's counts decide");
        }
        self.store_settled(cx);
    }

    /// The store's answer is in or given up: no more waiting, and a keypad that waited
    /// starts (or takes `locked`).
    fn store_settled(&mut self, cx: &mut Cx<'_>) {
        self.timers.stop(CallTimer::StoreAnswer);
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        flow.store = StoreCheck::Settled;
        match std::mem::replace(&mut flow.waiting, Waiting::Nothing) {
            Waiting::Lockout(spec) => {
                if let Some(event) = self.collect(cx, spec) {
                    self.feed(cx, event);
                }
            }
            other => flow.waiting = other,
        }
    }

    /// Counts the failed attempts the call's flow reported since the last look — here,
    /// and in the shared store when there is one.
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
                    Counted::NowLocked(LockoutSubject::Number { .. }) => warn!(
                        group = %group,
                        caller = %who,
                        window_s,
                        "too many failed attempts from this number; code entry locked"
                    ),
                    Counted::NowLocked(LockoutSubject::Source(_)) => warn!(
                        group = %group,
                        %source,
                        window_s,
                        "too many failed attempts from this address; code entry locked"
                    ),
                    _ => {}
                }
            }
            if cx.cfg.shared_lockout.is_some() {
                cx.emit(Output::LockoutFailure {
                    group,
                    subjects: subjects.clone(),
                });
            }
        }
    }
}
