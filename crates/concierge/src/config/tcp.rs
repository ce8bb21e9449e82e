//! `[tcp]`: the limits on SIP over TCP (and TLS, which rides on it).

use serde::Deserialize;

/// Limits on SIP over TCP, so no peer can hold the server's file descriptors, memory or
/// CPU with connections (see README, "Security and limits").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TcpConfig {
    /// Open connections in all. At start-up it is lowered to leave `fd_reserve` of the
    /// process's file-descriptor limit for RTP sockets and HTTP. At the cap a newcomer
    /// replaces the oldest connection that never delivered a whole message, or is closed.
    pub(crate) max_connections: usize,
    /// Open connections from one IP address.
    pub(crate) max_connections_per_source: usize,
    /// File descriptors kept free of TCP connections (RTP sockets, HTTP, records).
    pub(crate) fd_reserve: usize,
    /// A connection that sends nothing for this long is closed.
    pub(crate) idle_timeout_s: u64,
    /// A message whose first byte arrived this long ago and is still not complete closes
    /// its connection (slowloris).
    pub(crate) message_timeout_s: u64,
    /// Messages queued for one connection whose peer does not read; beyond it the peer is
    /// disconnected.
    pub(crate) write_queue_messages: usize,
    /// After EMFILE/ENFILE on accept, wait this long before accepting again.
    pub(crate) accept_backoff_ms: u64,
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            max_connections: 1000,
            max_connections_per_source: 100,
            fd_reserve: 128,
            idle_timeout_s: 600,
            message_timeout_s: 10,
            write_queue_messages: 256,
            accept_backoff_ms: 100,
        }
    }
}
