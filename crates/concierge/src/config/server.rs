//! This process as its operator sees it: `[server]` (its instance name), `[metrics]`
//! (the operator's HTTP listener), `[log]` and `[records]` (call records and their webhook).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// This process among several (behind a dispatcher).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServerConfig {
    /// The instance's name: a field of every log line and of every call record, so the
    /// calls of several instances behind one proxy can be told apart.
    pub(crate) instance: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            instance: "concierge".into(),
        }
    }
}

/// The operator's HTTP listener: `/metrics` (Prometheus), `/healthz`, `POST /-/reload`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MetricsConfig {
    /// Where to serve it; `None` (the default) serves nothing. Keep it on loopback or a
    /// management network: it answers anyone who reaches it, and may trigger a reload.
    pub(crate) listen: Option<SocketAddr>,
}

/// `[log]`: what `tracing` prints; read once at start-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `concierge_b2bua=debug,info`. `RUST_LOG` wins.
    pub(crate) filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
        }
    }
}

/// `[records]`: where each ended call's JSON record goes — appended to a file, and
/// optionally POSTed to a webhook by the driver's webhook task.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RecordsConfig {
    /// One JSON line per ended call, appended and flushed as each call ends.
    pub(crate) path: PathBuf,
    /// Also POST each record as JSON here (http or https); `None`: the file only.
    pub(crate) webhook_url: Option<String>,
    /// Records waiting for the webhook beyond this many are dropped (and counted).
    pub(crate) webhook_queue: usize,
    /// Tries per record (the first and the retries) before it is dropped.
    pub(crate) webhook_attempts: u32,
    /// Wait before the first retry; doubles on each further one, at most 30 s.
    pub(crate) webhook_backoff_ms: u64,
    /// One POST may take this long.
    pub(crate) webhook_timeout_ms: u64,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("calls.jsonl"),
            webhook_url: None,
            webhook_queue: 10_000,
            webhook_attempts: 5,
            webhook_backoff_ms: 1000,
            webhook_timeout_ms: 5000,
        }
    }
}
