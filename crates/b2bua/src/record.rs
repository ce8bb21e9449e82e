//! The call record: one per call, written when the call ends, whatever way it ended.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

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
    /// How the call ended, for counting: `transferred`, `hung_up`, `failed` or `refused`
    /// (see `outcome` in this module).
    pub outcome: &'static str,
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
    /// `ok: <value>` (`ok: ***` for a secret), or why it failed: `HTTP 503`, `timeout`,
    /// `connect: …`, or what was wrong with the body.
    pub outcome: String,
    /// From the request to its result.
    pub latency_ms: u64,
    /// `hit`, `miss` or `stale` when the node caches (`stale`: the server failed and a
    /// kept answer stood in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<&'static str>,
}

/// A call's transfer, as its record shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TransferRecord {
    /// How the transfer was made: `refer`, `redirect` or `bridge` (a `refer_or_bridge`
    /// says which of the two it came to).
    pub mode: crate::TransferMode,
    /// Where the call went (`<redacted>` when rendered from a secret).
    pub target: String,
    /// `succeeded`, `redirected`, `answered…` or `failed: <why>` (see [`transfer_succeeded`]).
    pub result: String,
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
pub fn transfer_succeeded(result: &str) -> bool {
    result == "succeeded" || result == "redirected" || result.starts_with("answered")
}

/// A call's outcome from what its record holds:
/// - `transferred`: a transfer reached its target;
/// - `failed`: a transfer failed, or the network ended the call (no ACK, timeouts);
/// - `refused`: never answered and ended by us (no RTP port, no flow, shutdown);
/// - `hung_up`: anything else — the caller hung up, or the flow did.
///
/// A transfer the call ended in the middle of (`unknown: …`, `abandoned: …`) neither
/// succeeded nor failed: who ended the call decides.
pub(crate) fn outcome(
    answered: bool,
    ended_by: EndedBy,
    transfer: Option<&TransferRecord>,
) -> &'static str {
    let transfer = transfer
        .filter(|t| !(t.result.starts_with("unknown:") || t.result.starts_with("abandoned:")));
    match transfer {
        Some(t) if transfer_succeeded(&t.result) => "transferred",
        Some(_) => "failed",
        None if ended_by == EndedBy::Network => "failed",
        None if !answered && ended_by == EndedBy::Concierge => "refused",
        None => "hung_up",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(result: &str) -> TransferRecord {
        TransferRecord {
            mode: crate::TransferMode::Refer,
            target: "sip:desk@example.com".into(),
            result: result.into(),
            started_ms: None,
            relayed: None,
        }
    }

    #[test]
    fn a_transfer_cut_short_leaves_the_outcome_to_who_ended_the_call() {
        let cut = transfer("unknown: the call ended before the final NOTIFY");
        assert_eq!(outcome(true, EndedBy::Caller, Some(&cut)), "hung_up");
        let abandoned = transfer("abandoned: the call ended while the target rang");
        assert_eq!(outcome(true, EndedBy::Network, Some(&abandoned)), "failed");
    }

    #[test]
    fn outcomes_follow_the_transfer_then_who_ended_the_call() {
        assert_eq!(
            outcome(true, EndedBy::Concierge, Some(&transfer("succeeded"))),
            "transferred"
        );
        assert_eq!(
            outcome(false, EndedBy::Concierge, Some(&transfer("redirected"))),
            "transferred"
        );
        assert_eq!(
            outcome(
                true,
                EndedBy::Caller,
                Some(&transfer("answered (after 405)"))
            ),
            "transferred"
        );
        assert_eq!(
            outcome(true, EndedBy::Concierge, Some(&transfer("failed: 486"))),
            "failed"
        );
        assert_eq!(outcome(true, EndedBy::Network, None), "failed");
        assert_eq!(outcome(false, EndedBy::Concierge, None), "refused");
        assert_eq!(outcome(true, EndedBy::Caller, None), "hung_up");
        assert_eq!(outcome(true, EndedBy::Concierge, None), "hung_up");
        assert_eq!(outcome(false, EndedBy::Caller, None), "hung_up");
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
