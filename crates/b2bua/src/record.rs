//! The call record: one per call, written when the call ends, whatever way it ended.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use concierge_flow::{CacheUse, HttpStepOutcome};
use concierge_sip::wire::StatusCode;
use serde::Serialize;

use crate::TransferMode;

/// Converts the switch's monotonic `Instant`s to wall-clock times for records, from one
/// pair of readings the driver took at start-up (the core never reads a clock).
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    /// A monotonic reading …
    pub instant: Instant,
    /// … and the wall-clock time at the same moment.
    pub system: SystemTime,
}

impl WallClock {
    /// Milliseconds since the Unix epoch at `at`.
    pub fn unix_ms(&self, at: Instant) -> u64 {
        let wall = if at >= self.instant {
            self.system + (at - self.instant)
        } else {
            self.system - (self.instant - at)
        };
        wall.duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64
    }
}

/// One JSON line in the call-record file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CallRecord {
    /// The caller's Call-ID.
    pub call_id: String,
    /// The flow the call ran (its `name`), when one handled the called number.
    pub flow: Option<String>,
    /// That flow's version, the content hash of its file: a call keeps the version it
    /// started with across reloads.
    pub flow_version: Option<String>,
    /// How the call ended, for counting: `transferred`, `hung_up`, `failed` or `refused`.
    pub outcome: Outcome,
    /// The caller's number as the flow used it (`system.caller`): P-Asserted-Identity
    /// from a trusted peer, else From; empty when anonymous.
    pub caller: String,
    /// Whether `caller` was asserted by a trusted peer.
    pub verified: bool,
    /// The carrier's STIR/SHAKEN result (`verstat`), from a trusted peer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verstat: Option<String>,
    /// The caller asked for privacy: `caller` must not leave this record.
    pub private: bool,
    /// Code entry was locked for this call (`<group>: number|source`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lockout: Option<String>,
    /// The Request-URI user the caller dialled.
    pub called: String,
    /// When the INVITE arrived (ms since the Unix epoch).
    pub arrived_ms: u64,
    /// When we answered (200 OK sent); `None` for a call never answered.
    pub answered_ms: Option<u64>,
    /// When the call left the switch.
    pub ended_ms: u64,
    /// Nodes of the flow in the order visited, with the exit each took.
    pub path: Vec<PathStep>,
    /// Every HTTP request the flow made, in order.
    pub http: Vec<HttpOutcome>,
    /// Flow variables at the end of the call; secret ones redacted.
    pub variables: Vec<(String, String)>,
    /// The last transfer the flow asked for, if any.
    pub transfer: Option<TransferRecord>,
    /// Who ended the call; written as `caller`, `concierge`, `network` or `target`.
    pub ended_by: EndedBy,
    /// Why it ended, in words (`BYE from the caller`, `no ACK`, …).
    pub reason: String,
    /// Digits received, by the way they arrived (`rfc4733`, `info`, `inband`); `*` for
    /// every key a non-secret keypad did not take.
    pub digits: Vec<(char, &'static str)>,
    /// The instance that served the call (`[server] instance`), so records of several
    /// instances behind one dispatcher can be told apart.
    pub instance: String,
    /// RTP packets dropped because they came from a source that was not the caller's (or
    /// the bridged target's): injected media and key presses.
    pub rtp_foreign_dropped: u64,
}

/// Who ended a call, as the record's `ended_by` says it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EndedBy {
    /// The caller hung up or cancelled.
    Caller,
    /// We did: the flow ended it, it was transferred or redirected, a limit was reached,
    /// the server shut down.
    Concierge,
    /// The network did: a lost ACK or PRACK, no RTP, an expired session timer, a
    /// transaction that timed out.
    Network,
    /// The target of a bridged transfer hung up.
    Target,
}

impl EndedBy {
    /// The word the record and the logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Caller => "caller",
            Self::Concierge => "concierge",
            Self::Network => "network",
            Self::Target => "target",
        }
    }
}

impl std::fmt::Display for EndedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One node a call visited.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PathStep {
    /// The node's name in the flow.
    pub node: String,
    /// The exit it took; `None` for the node the call ended in.
    pub exit: Option<String>,
}

/// One `http` node's request, as the record shows it (never its URL's secrets).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HttpOutcome {
    /// The `http` node's name.
    pub node: String,
    /// The HTTP status, when a response came.
    pub status: Option<u16>,
    /// The value it gave, or why it failed; written as `ok: <value>` (`ok: ***` for a
    /// secret), `HTTP 503`, `timeout`, `connect: …`, or what was wrong with the body.
    #[serde(serialize_with = "as_text")]
    pub outcome: HttpStepOutcome,
    /// From the request to its result.
    pub latency_ms: u64,
    /// How the lookup cache took part, when the node caches; written `hit`, `miss` or
    /// `stale` (the server failed and a kept answer stood in).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "cache_word")]
    pub cache: Option<CacheUse>,
}

/// A call's transfer, as its record shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TransferRecord {
    /// How the transfer was made: `refer`, `redirect` or `bridge` (a `refer_or_bridge`
    /// says which of the two it came to).
    pub mode: TransferMode,
    /// Where the call went (`<redacted>` when rendered from a secret).
    pub target: String,
    /// How it ended; written as `succeeded`, `redirected`, `answered…`, `failed: <why>`,
    /// `unknown: …` or `abandoned: …` (see [`TransferResult`]).
    #[serde(serialize_with = "as_text")]
    pub result: TransferResult,
    /// When the flow started the transfer (ms since the Unix epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    /// Bridge only: RTP packets relayed each way while the legs were connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relayed: Option<RelayedPackets>,
}

/// RTP packets a bridge relayed, each way.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct RelayedPackets {
    /// From the caller to the target.
    pub to_target: u64,
    /// From the target to the caller.
    pub to_caller: u64,
}

/// Whether a transfer's `result` means the caller reached the target: a REFER the target
/// accepted (`succeeded`), a 302 sent (`redirected`) or a bridge answered (`answered…`).
pub fn transfer_succeeded(result: &TransferResult) -> bool {
    result.succeeded()
}

/// How a transfer ended. The record writes it as text (its [`std::fmt::Display`]); readers
/// ask the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferResult {
    /// The REFER's target took the call (final NOTIFY 2xx): `succeeded`.
    Succeeded,
    /// Answered with 302 before the answer: `redirected`.
    Redirected,
    /// The bridge's target answered: `answered`, or `answered (after <why>)` when the
    /// bridge stood in for a REFER that failed so.
    Answered {
        /// Why the REFER before it failed, for `refer_or_bridge`.
        after_refer: Option<TransferFailure>,
    },
    /// The call is still here: `failed: <why>`.
    Failed(TransferFailure),
    /// The call ended after the target accepted the REFER and before the final NOTIFY:
    /// `unknown: the call ended before the final NOTIFY`.
    Unknown,
    /// The call ended with the REFER unanswered (`abandoned: the call ended before the
    /// REFER was answered`) or the bridge target still ringing (`abandoned: the call ended
    /// while the target rang`).
    Abandoned(TransferMode),
}

impl TransferResult {
    /// Whether the caller reached the target.
    pub fn succeeded(&self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Redirected | Self::Answered { .. }
        )
    }

    /// Whether the transfer came to an end of its own (not cut short by the call ending).
    pub fn settled(&self) -> bool {
        !matches!(self, Self::Unknown | Self::Abandoned(_))
    }
}

impl std::fmt::Display for TransferResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Succeeded => f.write_str("succeeded"),
            Self::Redirected => f.write_str("redirected"),
            Self::Answered { after_refer: None } => f.write_str("answered"),
            Self::Answered {
                after_refer: Some(why),
            } => write!(f, "answered (after {why})"),
            Self::Failed(why) => write!(f, "failed: {why}"),
            Self::Unknown => f.write_str("unknown: the call ended before the final NOTIFY"),
            Self::Abandoned(TransferMode::Bridge) => {
                f.write_str("abandoned: the call ended while the target rang")
            }
            Self::Abandoned(_) => {
                f.write_str("abandoned: the call ended before the REFER was answered")
            }
        }
    }
}

/// Why a transfer failed: the flow takes its `failed` exit with this text, and the record
/// writes `failed: <it>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferFailure {
    /// The caller's side refused our REFER.
    #[error("REFER rejected with {0}")]
    ReferRejected(StatusCode),
    /// No answer to the REFER within the transfer timeout.
    #[error("REFER not accepted in time")]
    ReferNotAccepted,
    /// The REFER's transaction timed out.
    #[error("no answer to REFER")]
    NoAnswerToRefer,
    /// Accepted, but no final NOTIFY within the transfer timeout.
    #[error("no final NOTIFY in time")]
    NoFinalNotify,
    /// The subscription ended with no final status in any NOTIFY.
    #[error("subscription ended without a final status")]
    SubscriptionEnded,
    /// The new call the REFER made was refused (the NOTIFY's sipfrag).
    #[error("transfer target answered {0}")]
    ReferredCallFailed(StatusCode),
    /// The bridge target is not a SIP URI. The words never spell the target out: it may
    /// have been rendered from a secret (the record's `target` says `<redacted>` then).
    #[error("cannot place a call: the target is not a SIP URI")]
    NotSipUri,
    /// No RTP port for the bridge leg.
    #[error("no free RTP port")]
    NoPort,
    /// Every port tried for the bridge leg failed to bind.
    #[error("no RTP port could be bound")]
    PortUnbound,
    /// The caller's codec is not settled, so there is nothing to offer the target.
    #[error("the caller has no agreed audio")]
    NoCallerAudio,
    /// The caller's identity made no valid From or To.
    #[error("cannot build the INVITE")]
    CannotBuildInvite,
    /// The bridge target's name did not resolve.
    #[error("cannot resolve the target: {0}")]
    Unresolved(String),
    /// The bridge target's name has no address.
    #[error("the name has no address")]
    NoAddress,
    /// The target answered with a codec other than the caller's.
    #[error("target answered with another codec")]
    OtherCodec,
    /// The target refused the bridge leg's INVITE.
    #[error("target answered {status} {reason}")]
    TargetRefused {
        /// Its final status.
        status: StatusCode,
        /// Its reason phrase (or the status's usual one).
        reason: String,
    },
    /// The bridge leg's INVITE timed out.
    #[error("no answer from the target")]
    NoAnswer,
    /// The target rang past the bridge's ring timeout.
    #[error("no answer within {0} s")]
    RingTimeout(u64),
    /// The transfer names a trunk the switch does not run (a reload removed it while the
    /// call's flow, which still names it, was running).
    #[error("no trunk named {0:?} is configured")]
    NoTrunk(String),
}

/// How a call ended, for counting (the record's `outcome`).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A transfer reached its target.
    Transferred,
    /// The caller hung up, or the flow did.
    HungUp,
    /// A transfer failed, or the network ended the call (no ACK, timeouts).
    Failed,
    /// Never answered and ended by us (no RTP port, no flow, shutdown).
    Refused,
}

impl Outcome {
    /// The word the record and the metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transferred => "transferred",
            Self::HungUp => "hung_up",
            Self::Failed => "failed",
            Self::Refused => "refused",
        }
    }

    /// A call's outcome from what its record holds. A transfer the call ended in the
    /// middle of (`unknown`, `abandoned`) neither succeeded nor failed: who ended the call
    /// decides.
    pub(crate) fn of(answered: bool, ended_by: EndedBy, transfer: Option<&TransferResult>) -> Self {
        match transfer.filter(|t| t.settled()) {
            Some(t) if t.succeeded() => Self::Transferred,
            Some(_) => Self::Failed,
            None if ended_by == EndedBy::Network => Self::Failed,
            None if !answered && ended_by == EndedBy::Concierge => Self::Refused,
            None => Self::HungUp,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Writes a value as the text its `Display` gives: the record's words for an enum.
fn as_text<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn cache_word<S: serde::Serializer>(v: &Option<CacheUse>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(c) => s.serialize_str(c.as_str()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(result: TransferResult) -> TransferRecord {
        TransferRecord {
            mode: crate::TransferMode::Refer,
            target: "sip:desk@example.com".into(),
            result,
            started_ms: None,
            relayed: None,
        }
    }

    #[test]
    fn a_transfer_cut_short_leaves_the_outcome_to_who_ended_the_call() {
        let cut = TransferResult::Unknown;
        assert_eq!(
            Outcome::of(true, EndedBy::Caller, Some(&cut)),
            Outcome::HungUp
        );
        let abandoned = TransferResult::Abandoned(TransferMode::Bridge);
        assert_eq!(
            Outcome::of(true, EndedBy::Network, Some(&abandoned)),
            Outcome::Failed
        );
    }

    #[test]
    fn outcomes_follow_the_transfer_then_who_ended_the_call() {
        let answered_after = TransferResult::Answered {
            after_refer: Some(TransferFailure::ReferRejected(StatusCode(405))),
        };
        let failed = TransferResult::Failed(TransferFailure::ReferredCallFailed(StatusCode(486)));
        for (answered, by, transfer, outcome) in [
            (
                true,
                EndedBy::Concierge,
                Some(TransferResult::Succeeded),
                Outcome::Transferred,
            ),
            (
                false,
                EndedBy::Concierge,
                Some(TransferResult::Redirected),
                Outcome::Transferred,
            ),
            (
                true,
                EndedBy::Caller,
                Some(answered_after),
                Outcome::Transferred,
            ),
            (true, EndedBy::Concierge, Some(failed), Outcome::Failed),
            (true, EndedBy::Network, None, Outcome::Failed),
            (false, EndedBy::Concierge, None, Outcome::Refused),
            (true, EndedBy::Caller, None, Outcome::HungUp),
            (true, EndedBy::Concierge, None, Outcome::HungUp),
            (false, EndedBy::Caller, None, Outcome::HungUp),
        ] {
            assert_eq!(
                Outcome::of(answered, by, transfer.as_ref()),
                outcome,
                "{transfer:?}"
            );
        }
    }

    #[test]
    fn results_and_outcomes_are_written_as_the_words_records_always_had() {
        for (result, text) in [
            (TransferResult::Succeeded, "succeeded"),
            (TransferResult::Redirected, "redirected"),
            (TransferResult::Answered { after_refer: None }, "answered"),
            (
                TransferResult::Answered {
                    after_refer: Some(TransferFailure::ReferRejected(StatusCode(405))),
                },
                "answered (after REFER rejected with 405)",
            ),
            (
                TransferResult::Failed(TransferFailure::TargetRefused {
                    status: StatusCode(486),
                    reason: "Busy Here".into(),
                }),
                "failed: target answered 486 Busy Here",
            ),
            (
                TransferResult::Unknown,
                "unknown: the call ended before the final NOTIFY",
            ),
            (
                TransferResult::Abandoned(TransferMode::Refer),
                "abandoned: the call ended before the REFER was answered",
            ),
            (
                TransferResult::Abandoned(TransferMode::Bridge),
                "abandoned: the call ended while the target rang",
            ),
        ] {
            let json = serde_json::to_value(transfer(result)).expect("serializes");
            assert_eq!(json["result"], text);
        }
        for (outcome, word) in [
            (Outcome::Transferred, "transferred"),
            (Outcome::HungUp, "hung_up"),
            (Outcome::Failed, "failed"),
            (Outcome::Refused, "refused"),
        ] {
            assert_eq!(serde_json::to_value(outcome).ok(), Some(word.into()));
        }
        let http = HttpOutcome {
            node: "lookup".into(),
            status: None,
            outcome: HttpStepOutcome::Timeout,
            latency_ms: 3000,
            cache: Some(CacheUse::Stale),
        };
        let json = serde_json::to_value(http).expect("serializes");
        assert_eq!(
            (&json["outcome"], &json["cache"]),
            (&"timeout".into(), &"stale".into())
        );
    }

    #[test]
    fn ended_by_is_written_as_the_words_records_always_had() {
        for (by, word) in [
            (EndedBy::Caller, "caller"),
            (EndedBy::Concierge, "concierge"),
            (EndedBy::Network, "network"),
            (EndedBy::Target, "target"),
        ] {
            assert_eq!(
                serde_json::to_value(by).ok(),
                Some(serde_json::Value::from(word))
            );
            assert_eq!(by.to_string(), word);
        }
    }
}
