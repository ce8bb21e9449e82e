//! The call record: one per call, written when the call ends, whatever way it ended.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Converts the switch's monotonic `Instant`s to wall-clock times for records, from one
/// pair of readings the driver took at start-up (the core never reads a clock).
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    pub instant: Instant,
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
    pub call_id: String,
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
    pub called: String,
    pub arrived_ms: u64,
    pub answered_ms: Option<u64>,
    pub ended_ms: u64,
    /// Nodes of the flow in the order visited, with the exit each took.
    pub path: Vec<PathStep>,
    pub http: Vec<HttpOutcome>,
    /// Flow variables at the end of the call; secret ones redacted.
    pub variables: Vec<(String, String)>,
    pub transfer: Option<TransferRecord>,
    /// `caller`, `concierge` or `network`.
    pub ended_by: &'static str,
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

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PathStep {
    pub node: String,
    pub exit: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HttpOutcome {
    pub node: String,
    pub status: Option<u16>,
    pub outcome: String,
    pub latency_ms: u64,
    /// `hit`, `miss` or `stale` when the node caches (`stale`: the server failed and a
    /// kept answer stood in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TransferRecord {
    pub mode: &'static str,
    pub target: String,
    pub result: String,
    /// Bridge only: RTP packets relayed each way while the legs were connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relayed: Option<RelayedPackets>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct RelayedPackets {
    pub to_target: u64,
    pub to_caller: u64,
}
