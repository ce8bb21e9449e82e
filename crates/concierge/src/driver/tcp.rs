//! SIP over TCP: one reader task per connection frames messages by Content-Length and
//! hands them to the shard; one writer task per connection sends what the shard wants.
//! Connections are keyed by the remote address, so in-dialog requests and responses reuse
//! the connection the caller opened (RFC 3261 §18.2.2, §18.1.1); when none is open we
//! connect.
//!
//! Every connection is a peer's claim on a file descriptor, buffers and a task, so each
//! claim is bounded ([`TcpLimits`]): connections in all and per source IP, an idle timeout,
//! a deadline for finishing a message once it started (slowloris), and a bounded write
//! queue (a peer that does not read is disconnected instead of growing our memory). When
//! accept fails for want of descriptors the loop pauses instead of spinning.
//!
//! SIP over TLS runs on the same machinery (its own registry and listeners): the
//! connection tasks are generic over the byte stream, and a TLS connection is a TCP one
//! with a handshake first, bounded by the message deadline and counted against the
//! connection limit while it runs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use concierge_sip::untrusted::LogLimiter;
use concierge_sip::wire::{StreamFramer, StreamItem, Transport};
use concierge_sip::Untrusted;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

mod names;
mod registry;

use super::tls::TlsSetup;
use super::StreamInput;
use crate::config::TcpConfig;
pub(super) use names::ServerNames;
use registry::{Conn, Registry};

/// The limits in force (the config's, with the connection cap fitted to the fd limit).
#[derive(Debug, Clone)]
pub(super) struct TcpLimits {
    max_connections: usize,
    per_source: usize,
    idle: Duration,
    message: Duration,
    write_queue: usize,
    accept_backoff: Duration,
}

impl TcpLimits {
    /// Connections at most, each a descriptor.
    pub(super) fn max_connections(&self) -> usize {
        self.max_connections
    }

    pub(super) fn from_config(cfg: &TcpConfig) -> Self {
        let mut max_connections = cfg.max_connections;
        if let Some(fds) = open_files_limit() {
            let fit = fds.saturating_sub(cfg.fd_reserve as u64).max(1) as usize;
            if fit < max_connections {
                info!(
                    configured = max_connections,
                    fd_limit = fds,
                    reserve = cfg.fd_reserve,
                    max_connections = fit,
                    "tcp.max_connections lowered to fit the open-files limit"
                );
                max_connections = fit;
            }
        }
        Self {
            max_connections,
            per_source: cfg.max_connections_per_source,
            idle: Duration::from_secs(cfg.idle_timeout_s),
            message: Duration::from_secs(cfg.message_timeout_s),
            write_queue: cfg.write_queue_messages,
            accept_backoff: Duration::from_millis(cfg.accept_backoff_ms),
        }
    }
}

/// The soft RLIMIT_NOFILE, read from procfs (the crate forbids the unsafe a libc call
/// needs); `None` where there is no procfs or the limit is unlimited.
pub(super) fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Shared by the accept loop, the connection tasks and the shard's sends.
struct Shared {
    registry: Mutex<Registry>,
    limits: TcpLimits,
    to_shard: mpsc::Sender<StreamInput>,
    next_id: AtomicU64,
    /// Connections refused at the limits so far (for the metrics).
    refused: AtomicU64,
    /// Lines about refused and closed connections: a few per interval, then a summary.
    log: Mutex<LogLimiter>,
    /// `Tcp` or `Tls`: what messages from these connections arrive as.
    transport: Transport,
    /// Present for SIP over TLS.
    tls: Option<TlsSetup>,
    /// Host names that addresses were resolved from (RFC 3263), so an outbound TLS
    /// connection verifies the certificate against the name, not the address.
    server_names: ServerNames,
}

impl Shared {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().expect("TCP registry lock poisoned")
    }

    /// Logs one event about a misbehaving or excess peer within the log budget.
    fn note(&self, what: &str, peer: SocketAddr) {
        let mut log = self.log.lock().expect("TCP log lock poisoned");
        super::log_within(
            &mut log,
            "TCP connections refused or closed",
            || warn!(%peer, "{what}"),
        );
    }
}

pub(super) struct Tcp {
    /// The first listener's address (none when only connecting out).
    pub(super) local_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
}

impl Tcp {
    /// The host names TLS targets were resolved from (see [`ServerNames`]).
    pub(super) fn server_names(&self) -> ServerNames {
        self.shared.server_names.clone()
    }

    /// Listens on every address of `addrs` (IPv4 and IPv6 alike), SIP over TLS when `tls`
    /// is given; with no addresses it only connects out.
    pub(super) async fn start(
        addrs: &[SocketAddr],
        limits: TcpLimits,
        to_shard: mpsc::Sender<StreamInput>,
        tls: Option<TlsSetup>,
    ) -> Result<Self, (SocketAddr, std::io::Error)> {
        let shared = Arc::new(Shared {
            registry: Mutex::default(),
            limits,
            to_shard,
            next_id: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            log: Mutex::new(LogLimiter::new(Duration::from_secs(10), 10)),
            transport: if tls.is_some() {
                Transport::Tls
            } else {
                Transport::Tcp
            },
            tls,
            server_names: ServerNames::default(),
        });
        let mut local_addr = None;
        let mut listeners = Vec::new();
        for &addr in addrs {
            let listener = bind(addr).map_err(|e| (addr, e))?;
            let bound = listener.local_addr().map_err(|e| (addr, e))?;
            local_addr.get_or_insert(bound);
            listeners.push(listener);
        }
        for listener in listeners {
            tokio::spawn(accept_loop(listener, shared.clone()));
        }
        Ok(Self { local_addr, shared })
    }

    /// For the metrics, read at each scrape: open connections, and connections refused at
    /// the limits since start. (Connections close in their own tasks, with no turn of the
    /// shard's loop to report it.)
    pub(super) fn probe(&self) -> crate::metrics::TcpProbe {
        let shared = self.shared.clone();
        Box::new(move || {
            (
                shared.registry().conns.len(),
                shared.refused.load(Ordering::Relaxed),
            )
        })
    }

    /// Queues `bytes` for `peer`, connecting first when no connection is open. A peer
    /// whose queue is full is not reading: it is disconnected and the message dropped.
    pub(super) fn send(&self, peer: SocketAddr, bytes: Bytes) {
        let existing = {
            let mut reg = self.shared.registry();
            if reg.is_shunned(peer, Instant::now()) {
                return;
            }
            reg.conns.get(&peer).map(|c| (c.tx.clone(), c.id))
        };
        if let Some((tx, id)) = existing {
            match tx.try_send(bytes) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    close(&self.shared, peer, id);
                    self.shared.registry().shun(peer, Instant::now());
                    self.shared
                        .note("TCP peer does not read its messages; disconnected", peer);
                    return;
                }
                // The connection just went; open a new one below.
                Err(mpsc::error::TrySendError::Closed(b)) => return self.connect(peer, b),
            }
        }
        self.connect(peer, bytes);
    }

    fn connect(&self, peer: SocketAddr, bytes: Bytes) {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let stream = match TcpStream::connect(peer).await {
                Ok(stream) => stream,
                Err(e) => {
                    return shared.note(&format!("TCP connect failed ({e}); message dropped"), peer)
                }
            };
            let _ = stream.set_nodelay(true);
            let tx = match &shared.tls {
                None => attach(stream, peer, &shared, false),
                Some(tls) => {
                    // A target found by DNS must present a certificate for its name; one
                    // given as an address, for the address.
                    let name = shared.server_names.for_peer(peer);
                    let handshake = tls.connector.connect(name, stream);
                    match tokio::time::timeout(shared.limits.message, handshake).await {
                        Ok(Ok(stream)) => attach(stream, peer, &shared, false),
                        Ok(Err(e)) => {
                            return shared.note(
                                &format!(
                                    "TLS handshake with the server failed ({e}); message dropped"
                                ),
                                peer,
                            )
                        }
                        Err(_) => {
                            return shared.note(
                                "TLS handshake with the server timed out; message dropped",
                                peer,
                            )
                        }
                    }
                }
            };
            let _ = tx.try_send(bytes);
        });
    }
}

/// A listener on `addr`; an IPv6 one takes only IPv6, so `[::]:5060` can sit beside
/// `0.0.0.0:5060`.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut out_of_fds = LogLimiter::new(Duration::from_secs(10), 1);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => admit(stream, peer, &shared),
            Err(e) if is_out_of_fds(&e) => {
                // The pending connection stays in the backlog and accept would fail again
                // at once: a tight loop at 100 % CPU. Free a descriptor held by a peer that
                // never sent a message, and pause.
                super::log_within(
                    &mut out_of_fds,
                    "TCP accepts out of file descriptors",
                    || warn!(error = %e, backoff = ?shared.limits.accept_backoff, "TCP accept out of file descriptors; pausing accepts"),
                );
                shared.registry().evict_unproven();
                tokio::time::sleep(shared.limits.accept_backoff).await;
            }
            Err(e) => {
                debug!(error = %e, "TCP accept failed");
                // Whatever it is, never spin on it.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn is_out_of_fds(e: &std::io::Error) -> bool {
    // EMFILE (24) and ENFILE (23) on Linux; also the kernel being out of socket memory.
    matches!(e.raw_os_error(), Some(23 | 24 | 105))
}

/// Takes an accepted connection within the limits, or closes it at once.
fn admit(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>) {
    {
        let mut reg = shared.registry();
        if reg.count_from(peer.ip()) >= shared.limits.per_source {
            drop(reg);
            shared.refused.fetch_add(1, Ordering::Relaxed);
            shared.note("TCP connection refused: too many from this source", peer);
            return;
        }
        if reg.count() >= shared.limits.max_connections && !reg.evict_unproven() {
            drop(reg);
            shared.refused.fetch_add(1, Ordering::Relaxed);
            shared.note("TCP connection refused: connection limit reached", peer);
            return;
        }
        if shared.tls.is_some() {
            *reg.handshaking.entry(peer.ip()).or_default() += 1;
        }
    }
    let _ = stream.set_nodelay(true);
    let Some(tls) = shared.tls.clone() else {
        attach(stream, peer, shared, false);
        return;
    };
    let shared = shared.clone();
    tokio::spawn(async move {
        let handshake = tokio::time::timeout(shared.limits.message, tls.acceptor.accept(stream));
        let outcome = handshake.await;
        shared.registry().handshake_done(peer.ip());
        match outcome {
            Ok(Ok(stream)) => {
                // rustls only hands out a client certificate that `tls_client_ca` verified.
                let authenticated = stream.get_ref().1.peer_certificates().is_some();
                if authenticated {
                    debug!(%peer, "TLS client certificate verified: a trusted peer");
                }
                attach(stream, peer, &shared, authenticated);
            }
            Ok(Err(e)) => shared.note(
                &format!(
                    "TLS handshake failed ({}); connection closed",
                    Untrusted(&e.to_string())
                ),
                peer,
            ),
            Err(_) => shared.note(
                "TLS handshake not completed in time; connection closed",
                peer,
            ),
        }
    });
}

/// Removes `peer`'s connection `id` from the registry (if still there) and stops its tasks.
fn close(shared: &Shared, peer: SocketAddr, id: u64) {
    let mut reg = shared.registry();
    if reg.conns.get(&peer).is_some_and(|c| c.id == id) {
        if let Some(c) = reg.conns.remove(&peer) {
            let _ = c.kill.send(true);
        }
    }
}

/// Registers a connection (plain or TLS) and starts its reader and writer tasks;
/// `authenticated`: its client certificate was verified (mutual TLS).
fn attach<S>(
    stream: S,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    authenticated: bool,
) -> mpsc::Sender<Bytes>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Bytes>(shared.limits.write_queue);
    // Any change, or the registry dropping the sender, means: stop (it only goes to true).
    let (kill, mut killed_w) = watch::channel(false);
    let mut killed_r = kill.subscribe();
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let proven = Arc::new(AtomicBool::new(false));
    let replaced = shared.registry().conns.insert(
        peer,
        Conn {
            id,
            tx: tx.clone(),
            kill,
            opened: Instant::now(),
            proven: proven.clone(),
        },
    );
    if let Some(old) = replaced {
        let _ = old.kill.send(true);
    }
    tokio::spawn(async move {
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(bytes) = msg else { break };
                    // A peer that stops reading blocks this write; the kill ends it.
                    tokio::select! {
                        // TLS buffers inside the stream: flush puts the record on the wire.
                        r = async { wr.write_all(&bytes).await?; wr.flush().await } => if let Err(e) = r {
                            debug!(error = %e, %peer, "TCP write failed");
                            break;
                        },
                        _ = killed_w.changed() => break,
                    }
                }
                _ = killed_w.changed() => break,
            }
        }
    });
    let pong = tx.clone();
    let shared = shared.clone();
    tokio::spawn(async move {
        let limits = shared.limits.clone();
        let mut framer = StreamFramer::new();
        let mut buf = vec![0u8; 16 * 1024];
        // When the message now being received started (its first byte), if one has.
        let mut started: Option<Instant> = None;
        'conn: loop {
            let deadline = match started {
                Some(t) => t + limits.message,
                None => Instant::now() + limits.idle,
            };
            let n = tokio::select! {
                r = rd.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    let what = if started.is_some() {
                        "TCP message not completed in time; closing the connection"
                    } else {
                        "TCP connection idle; closing it"
                    };
                    shared.note(what, peer);
                    break;
                }
                _ = killed_r.changed() => break,
            };
            framer.push(buf.get(..n).unwrap_or_default());
            let mut completed = false;
            loop {
                match framer.next_item() {
                    Ok(None) => break,
                    Ok(Some(StreamItem::Ping)) => {
                        let _ = pong.try_send(Bytes::from_static(b"\r\n"));
                    }
                    Ok(Some(StreamItem::Message { head, body })) => {
                        proven.store(true, Ordering::Relaxed);
                        completed = true;
                        if shared
                            .to_shard
                            .send(StreamInput::Message {
                                peer,
                                head,
                                body,
                                transport: shared.transport,
                                authenticated,
                            })
                            .await
                            .is_err()
                        {
                            break 'conn;
                        }
                    }
                    Err(e) => {
                        shared.note(
                            &format!(
                                "unframeable TCP stream ({}); closing the connection",
                                Untrusted(&e)
                            ),
                            peer,
                        );
                        break 'conn;
                    }
                }
            }
            // A partial message keeps the clock of its first byte; none resets it, and
            // one begun in the read that completed another starts its own.
            started = match (framer.buffered(), started) {
                (0, _) => None,
                (_, Some(t)) if !completed => Some(t),
                _ => Some(Instant::now()),
            };
        }
        close(&shared, peer, id);
        // A trunk registered over this connection must learn that it is gone.
        let closed = StreamInput::Closed {
            peer,
            transport: shared.transport,
        };
        let _ = shared.to_shard.send(closed).await;
    });
    tx
}
