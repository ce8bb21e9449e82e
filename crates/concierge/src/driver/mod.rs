//! The tokio side: sockets, the clock and signals around one sans-IO [`Switch`].
//!
//! One shard task owns the switch and runs the loop the switch documents: wait for a
//! datagram, a framed TCP message, the next deadline or a shutdown signal; hand it in with
//! the time it happened; drain the outputs. `start.rs` builds the server, `shard/` runs
//! the loop; RTP socket IO has a thread of its own (`rtp_io.rs`). One switch per process
//! keeps the lockout, the lookup cache and the limits one (the profile in
//! `bench/issue-22-phase1.md` shows one switch is not the limit on two cores).

mod acl;
mod lockout;
mod records;
mod rtp;
mod rtp_io;
mod shard;
mod start;
mod tcp;
mod tls;
mod trunks;
mod webhook;

pub(crate) use acl::Acl;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use concierge_b2bua::{
    CallRef, Command, Input, Output, PortError, Program, ResolveId, RtpBatch, Switch, SwitchConfig,
    WallClock,
};
use concierge_flow::{HttpFailure, HttpResponse};

use crate::http::HttpClient;
use concierge_sip::wire::Transport;
use concierge_sip::Peer;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::shared::{LocalLoad, Shared};

/// A finished RFC 3263 lookup: the switch's request id and the addresses to try.
type DnsAnswer = (ResolveId, Result<Vec<Peer>, String>);

/// Input from the TCP side to the shard.
pub(crate) enum StreamInput {
    Message {
        peer: SocketAddr,
        head: Bytes,
        body: Bytes,
        /// `Tcp` or `Tls`.
        transport: Transport,
        /// A client certificate verified against `[sip] tls_client_ca` came with the
        /// connection: the sender is a trusted peer.
        authenticated: bool,
    },
    /// The connection to `peer` closed (a trunk registered through it registers again).
    Closed {
        peer: SocketAddr,
        transport: Transport,
    },
}

/// What the operator side hands the shard: the metrics it updates and the programs a
/// reload installs.
pub(crate) struct Operate {
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// New flows and prompts after a reload; each call keeps the one it started with.
    pub(crate) programs: mpsc::Receiver<Program>,
    /// The live console's state, fed each call record and event (`None`: no console).
    pub(crate) console: Option<Arc<crate::console::Hub>>,
}

/// For `concierge check`: whether the TLS files load as `run` would load them, and what TLS
/// will use.
pub(crate) fn check_tls(cfg: &Config) -> Result<String, String> {
    let sip = &cfg.sip;
    if sip.tls_cert.is_none() && sip.tls_ca_file.is_none() && sip.tls_client_ca.is_none() {
        return Ok(match sip.tls_listen {
            Some(a) => format!("TLS on {a}: a self-signed certificate is made at start-up"),
            None => "TLS: no listener; outbound TLS verifies against the Mozilla roots".into(),
        });
    }
    tls::TlsSetup::from_config(sip, &cfg.advertised_host()).map_err(|e| e.to_string())?;
    Ok(match (sip.tls_listen, &sip.tls_cert) {
        (Some(a), Some(c)) => format!("TLS on {a}: certificate {}", c.display()),
        (Some(a), None) => format!("TLS on {a}: a self-signed certificate is made at start-up"),
        (None, _) => "TLS: no listener; the configured files load".into(),
    })
}

/// Why the server could not start; each names the setting that changes it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("cannot bind SIP over {transport} on {addr}: {source}; change `[sip] listen` in the config or pass --listen ADDR:PORT")]
    Bind {
        transport: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "cannot bind SIP over TLS on {addr}: {source}; change `[sip] tls_listen` in the config"
    )]
    BindTls {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Shared(#[from] crate::shared::StartError),
    #[error("cannot start the RTP thread: {0}")]
    Rtp(std::io::Error),
    #[error(
        "cannot open the call records file {path}: {source}; change `[records] path` in the config"
    )]
    Records {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// The running server: its bound addresses and a way to stop it.
pub(crate) struct Server {
    pub(crate) udp_addr: Option<SocketAddr>,
    pub(crate) tcp_addr: Option<SocketAddr>,
    pub(crate) tls_addr: Option<SocketAddr>,
    /// The store `[shared]` names, when there is one.
    pub(crate) shared: Option<Shared>,
    shard: tokio::task::JoinHandle<()>,
}
impl Server {
    /// Waits for the shard to stop; an error is a shard that panicked or was cancelled.
    /// A clean stop takes this instance's load out of the shared store, so its calls stop
    /// counting at once (within `timeout_ms`, or at its expiry).
    pub(crate) async fn wait(self) -> Result<(), tokio::task::JoinError> {
        let result = self.shard.await;
        if let Some(shared) = &self.shared {
            shared.leave().await;
        }
        result
    }
}

/// Shutdown requests: the first drains, the second (or the drain timeout) ends all calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Shutdown {
    Running,
    Drain,
    Now,
}

/// Logs one error with `log` within `limiter`'s budget, after a summary of the interval
/// before (`what` names the errors in it): a peer can cause an error per datagram (ICMP
/// unreachable for answers to spoofed sources), so such errors are never logged one by one
/// without a bound.
fn log_within(limiter: &mut concierge_sip::LogLimiter, what: &str, log: impl FnOnce()) {
    let now = std::time::Instant::now();
    if let Some(s) = limiter.poll_summary(now) {
        warn!(
            errors = s.seen,
            "{} {what} in the last {} s ({} not logged one by one)",
            s.seen,
            s.interval.as_secs(),
            s.suppressed
        );
    }
    if limiter.admit(now) {
        log();
    }
}
