//! A call's record, built once as it leaves the switch.

use super::{Call, Cx, Transfer};
use crate::record::{
    CallRecord, EndedBy, HttpOutcome, Outcome, PathStep, TransferRecord, TransferResult,
};
use crate::transfer::TransferMode;

impl Call {
    /// The call's record, ending now: its path, HTTP outcomes, digits, redacted variables,
    /// transfer and who ended it.
    pub(super) fn record(&self, cx: &Cx<'_>) -> CallRecord {
        let flow = self.flow.as_ref();
        let notes = &self.notes;
        let (ended_by, reason) = notes
            .ending
            .clone()
            .unwrap_or((EndedBy::Network, "transaction ended".into()));
        let transfer = notes.transfer.clone().map(|mut t| {
            if notes.redact_target {
                t.target = "<redacted>".into();
            }
            t.started_ms = notes.transfer_started.map(|at| cx.wall.unix_ms(at));
            t
        });
        let outcome = Outcome::of(
            notes.answered.is_some(),
            ended_by,
            transfer.as_ref().map(|t| &t.result),
        );
        let invite = &self.inbound.invite;
        let identity = &self.identity;
        CallRecord {
            call_id: invite.call_id.as_str().to_owned(),
            flow: flow.map(|f| f.run.flow().name.clone()),
            flow_version: flow.map(|f| f.run.flow().version.clone()),
            outcome,
            caller: identity.number.clone(),
            verified: identity.verified,
            verstat: identity.verstat.clone(),
            private: identity.private,
            lockout: notes.lockout.clone(),
            called: invite.uri.user().unwrap_or_default().to_owned(),
            arrived_ms: cx.wall.unix_ms(notes.arrived),
            answered_ms: notes.answered.map(|a| cx.wall.unix_ms(a)),
            ended_ms: cx.wall.unix_ms(cx.now),
            path: flow
                .map(|f| {
                    f.run
                        .trace()
                        .iter()
                        .map(|s| PathStep {
                            node: s.node.clone(),
                            exit: s.exit.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            http: flow
                .map(|f| {
                    f.run
                        .http_steps()
                        .iter()
                        .map(|h| HttpOutcome {
                            node: h.node.clone(),
                            status: h.status,
                            outcome: h.outcome.clone(),
                            latency_ms: h.latency.as_millis() as u64,
                            cache: h.cache,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            variables: flow
                .map(|f| f.run.vars_redacted().into_iter().collect())
                .unwrap_or_default(),
            transfer,
            ended_by,
            reason,
            digits: self.media.digits_for_record(),
            instance: cx.cfg.instance.clone(),
            rtp_foreign_dropped: self.media.foreign_dropped(),
        }
    }

    /// The REFER or bridge leg the call was still waiting on when it ended, as its record
    /// shows it: a REFER the target accepted whose final NOTIFY never came has an unknown
    /// outcome; one not yet answered, or a leg still ringing, was abandoned.
    pub(super) fn unfinished_transfer(&self) -> Option<TransferRecord> {
        let (mode, target, result) = match &self.transfer {
            Transfer::Refer(refer) => {
                let result = if refer.accepted {
                    TransferResult::Unknown
                } else {
                    TransferResult::Abandoned(TransferMode::Refer)
                };
                (TransferMode::Refer, &refer.target, result)
            }
            Transfer::Bridge(b) if b.leg.state.is_pending() => (
                TransferMode::Bridge,
                &b.target,
                TransferResult::Abandoned(TransferMode::Bridge),
            ),
            _ => return None,
        };
        Some(TransferRecord {
            mode,
            target: target.clone(),
            result,
            started_ms: None,
            relayed: None,
        })
    }
}
