//! A call's record, built once as it leaves the switch.

use std::time::Instant;

use super::Switch;
use crate::call::Call;
use crate::record::{
    CallRecord, EndedBy, HttpOutcome, Outcome, PathStep, TransferRecord, TransferResult,
};
use crate::transfer::TransferMode;

impl Switch {
    /// The record of `call`, ending at `now`: its path, HTTP outcomes, digits, redacted
    /// variables, transfer and who ended it.
    pub(super) fn record_of(&self, call: &Call, now: Instant) -> CallRecord {
        let flow = call.flow.as_ref();
        let (ended_by, reason) = call
            .ending
            .clone()
            .unwrap_or((EndedBy::Network, "transaction ended".into()));
        let transfer = call.transfer_record.clone().map(|mut t| {
            if call.redact_target {
                t.target = "<redacted>".into();
            }
            t.started_ms = call.transfer_started.map(|at| self.wall.unix_ms(at));
            t
        });
        let outcome = Outcome::of(
            call.answered.is_some(),
            ended_by,
            transfer.as_ref().map(|t| &t.result),
        );
        CallRecord {
            call_id: call.invite.call_id.clone(),
            flow: flow.map(|f| f.run.flow().name.clone()),
            flow_version: flow.map(|f| f.run.flow().version.clone()),
            outcome,
            caller: call.identity.number.clone(),
            verified: call.identity.verified,
            verstat: call.identity.verstat.clone(),
            private: call.identity.private,
            lockout: call.lockout.clone(),
            called: call.invite.uri.user().unwrap_or_default().to_owned(),
            arrived_ms: self.wall.unix_ms(call.arrived),
            answered_ms: call.answered.map(|a| self.wall.unix_ms(a)),
            ended_ms: self.wall.unix_ms(now),
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
            digits: call.media.digits_for_record(),
            instance: self.cfg.instance.clone(),
            rtp_foreign_dropped: call.media.foreign_dropped(),
        }
    }
}

/// The REFER or bridge leg a call was still waiting on when it ended, as its record
/// shows it: a REFER the target accepted whose final NOTIFY never came has an unknown
/// outcome; one not yet answered, or a leg still ringing, was abandoned.
pub(super) fn unfinished_transfer(call: &Call) -> Option<TransferRecord> {
    if let Some(refer) = &call.refer {
        let result = if refer.accepted {
            TransferResult::Unknown
        } else {
            TransferResult::Abandoned(TransferMode::Refer)
        };
        return Some(TransferRecord {
            mode: TransferMode::Refer,
            target: refer.target.clone(),
            result,
            started_ms: None,
            relayed: None,
        });
    }
    let leg = call.bridge.as_ref().filter(|l| l.is_pending())?;
    Some(TransferRecord {
        mode: TransferMode::Bridge,
        target: leg.target.clone(),
        result: TransferResult::Abandoned(TransferMode::Bridge),
        started_ms: None,
        relayed: None,
    })
}
