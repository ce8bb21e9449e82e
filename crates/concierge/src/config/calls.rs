//! `[calls]`: how many calls, how fast they arrive, and how long each may last.

use serde::Deserialize;

use super::Config;

/// `[calls]`: admission limits and per-call timeouts, read by the switch's set-up and the
/// driver's drain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct CallsConfig {
    /// Beyond this many concurrent calls, INVITEs get 503 with Retry-After.
    pub(crate) max_calls: usize,
    /// The Retry-After of those 503s (and of the admission-rate ones), in seconds.
    pub(crate) retry_after_s: u64,
    /// How long a call rings (180 Ringing) before it is answered.
    pub(crate) answer_after_ms: u64,
    /// A REFER transfer with no final NOTIFY by then has failed.
    pub(crate) transfer_timeout_s: u64,
    /// On SIGINT/SIGTERM, how long existing calls may go on before we hang them up.
    pub(crate) drain_timeout_s: u64,
    /// Any call is ended after this long (BYE, or 480 while ringing).
    pub(crate) max_duration_s: u64,
    /// No RTP from the caller for this long ends an up call with BYE (held calls are
    /// exempt); 0: never.
    pub(crate) media_timeout_s: u64,
    /// New calls admitted per second over all sources; beyond it (and its burst) new
    /// INVITEs get 503 + Retry-After before anything is allocated. 0: no limit.
    pub(crate) invite_rate: u32,
    /// How many INVITEs above `invite_rate` a quiet spell lets through at once.
    pub(crate) invite_burst: u32,
    /// The same per source IP address. 0: no limit.
    pub(crate) source_invite_rate: u32,
    /// The same burst per source IP address.
    pub(crate) source_invite_burst: u32,
}

impl Default for CallsConfig {
    fn default() -> Self {
        Self {
            max_calls: 4_000,
            retry_after_s: 5,
            answer_after_ms: 0,
            transfer_timeout_s: 30,
            drain_timeout_s: 30,
            max_duration_s: 4 * 3600,
            media_timeout_s: 60,
            invite_rate: 2_000,
            invite_burst: 2_000,
            source_invite_rate: 100,
            source_invite_burst: 200,
        }
    }
}

impl Config {
    /// The INVITE-rate limits for the switch's admission control; read once by the driver
    /// when it builds the switch.
    pub(crate) fn admission(&self) -> concierge_b2bua::AdmissionConfig {
        concierge_b2bua::AdmissionConfig {
            invite_rate: self.calls.invite_rate,
            invite_burst: self.calls.invite_burst,
            source_invite_rate: self.calls.source_invite_rate,
            source_invite_burst: self.calls.source_invite_burst,
        }
    }
}
