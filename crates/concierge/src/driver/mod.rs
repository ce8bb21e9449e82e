//! The tokio side: sockets, the clock and signals around one sans-IO [`Switch`].
//!
//! One shard task owns the switch and runs the loop the switch documents: wait for a
//! datagram, a framed TCP message, the next deadline or a shutdown signal; hand it in with
//! the time it happened; drain the outputs. Several shards (hashed by Call-ID) fit the
//! same loop; today there is one.

mod acl;
mod lockout;
mod records;
mod rtp;
mod rtp_batch;
mod rtp_io;
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
    CallRef, Command, Input, Output, PortError, Program, ResolveId, Switch, SwitchConfig, WallClock,
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
    pub(crate) async fn start(
        cfg: &Config,
        program: Program,
        shutdown: watch::Receiver<Shutdown>,
        operate: Operate,
    ) -> Result<Self, StartError> {
        let addr = cfg.sip.listen.first();
        let bind = |transport, addr| {
            move |source| StartError::Bind {
                transport,
                addr,
                source,
            }
        };
        let (extra_udp_tx, extra_udp_rx) = mpsc::channel(4096);
        let mut udp = None;
        let mut extra_udp = Vec::new();
        if cfg.sip.udp {
            for &a in cfg.sip.listen.all() {
                let socket = Arc::new(
                    bind_udp(a, cfg.sip.udp_receive_buffer_kib * 1024).map_err(bind("UDP", a))?,
                );
                if udp.is_none() {
                    udp = Some(socket);
                } else {
                    tokio::spawn(read_extra_udp(socket.clone(), extra_udp_tx.clone()));
                    extra_udp.push(socket);
                }
            }
        }
        let (stream_tx, stream_rx) = mpsc::channel(4096);
        let limits = tcp::TcpLimits::from_config(&cfg.tcp);
        let tcp = if cfg.sip.tcp {
            Some(
                tcp::Tcp::start(
                    cfg.sip.listen.all(),
                    limits.clone(),
                    stream_tx.clone(),
                    None,
                )
                .await
                .map_err(|(a, e)| bind("TCP", a)(e))?,
            )
        } else {
            None
        };
        // Outbound TLS (bridge legs to sips: targets) works without a listener.
        let tls_setup = tls::TlsSetup::from_config(&cfg.sip, &cfg.advertised_host())?;
        let tls_addrs: Vec<SocketAddr> = cfg.sip.tls_listen.into_iter().collect();
        let tls = tcp::Tcp::start(&tls_addrs, limits, stream_tx, Some(tls_setup))
            .await
            .map_err(|(addr, source)| StartError::BindTls { addr, source })?;
        let tls_addr = tls.local_addr;
        let udp_addr = udp
            .as_ref()
            .map(|u| u.local_addr())
            .transpose()
            .map_err(bind("UDP", addr))?;
        let media_ip = cfg.media_ip();
        let media_ip_v6 = cfg.media_ip_v6();
        let (rtp, rtp_rx) =
            rtp::RtpSockets::start(media_ip, media_ip_v6).map_err(StartError::Rtp)?;
        if let Some(tcp) = &tcp {
            operate.metrics.set_tcp_probe(tcp.probe());
        }
        let tcp_addr = tcp.as_ref().and_then(|t| t.local_addr);
        let mut records =
            records::Records::open(&cfg.records.path).map_err(|source| StartError::Records {
                path: cfg.records.path.clone(),
                source,
            })?;
        records.webhook = webhook::Webhook::start(&cfg.records, operate.metrics.clone());
        records.console = operate.console.clone();
        let wall = WallClock {
            instant: std::time::Instant::now(),
            system: std::time::SystemTime::now(),
        };
        if cfg.transfer_signer().is_none() {
            warn!(
                variable = %cfg.transfer.token_key_env,
                "no transfer token key in the environment: flow variables ride transfers unsigned"
            );
        }
        let switch = Switch::new(
            SwitchConfig {
                advertised_host: cfg.advertised_host(),
                sip_port: udp_addr
                    .or(tcp_addr)
                    .map(|a| a.port())
                    .unwrap_or(cfg.sip.listen.port()),
                advertised_host_v6: cfg.advertised_host_v6(),
                tls_port: tls_addr.map(|a| a.port()),
                media_ip,
                media_ip_v6,
                rtp_ports: (cfg.rtp.port_min, cfg.rtp.port_max),
                max_calls: cfg.calls.max_calls,
                retry_after: Duration::from_secs(cfg.calls.retry_after_s),
                answer_after: Duration::from_millis(cfg.calls.answer_after_ms),
                transfer_timeout: Duration::from_secs(cfg.calls.transfer_timeout_s),
                max_call_duration: Duration::from_secs(cfg.calls.max_duration_s),
                bridge_ring_timeout: Duration::from_secs(cfg.bridge.ring_timeout_s),
                outbound_auth: cfg.outbound_auth(),
                outbound_proxy: cfg.outbound_proxy(),
                instance: cfg.server.instance.clone(),
                trusted_peers: cfg
                    .trusted_peers()
                    .expect("trusted_peers was validated when the config was loaded"),
                lockout: cfg.lockout(),
                // With [shared] a keypad waits for the store's lockout answer at most this.
                shared_lockout: cfg.shared.as_ref().map(|s| s.timeout()),
                transfer_signer: cfg.transfer_signer(),
                timers: cfg.timers(),
                directory_url: cfg.directory_url(),
                user_agent: cfg.sip.user_agent.clone(),
                media_timeout: Duration::from_secs(cfg.calls.media_timeout_s),
                admission: cfg.admission(),
                session_timer: cfg.session_timer(),
                prefer_100rel: cfg.sip.prefer_100rel,
                seed: rand::random(),
                srtp: cfg.rtp.srtp.policy(),
                dns_failover: Duration::from_millis(cfg.dns.failover_ms),
                // 256 bits from the system's CSPRNG: SRTP keys must not be guessable.
                key_seed: rand::random(),
                // Calls tell what they do only when a console shows it.
                call_events: operate.console.is_some(),
                ..SwitchConfig::default()
            },
            wall,
            program,
        );
        // State shared with other instances: the lookup cache in the HTTP path, and the
        // load each heartbeat exchanges for the others' (their calls count against
        // `max_calls`).
        let shared = cfg
            .shared
            .as_ref()
            .map(|s| {
                Shared::start(
                    s,
                    &cfg.server.instance,
                    cfg.lockout(),
                    operate.metrics.clone(),
                )
            })
            .transpose()?;
        let (peers_tx, peers_rx) = mpsc::channel(4);
        let (locks_tx, locks_rx) = mpsc::channel(1024);
        let store_lockout = shared
            .as_ref()
            .map(|s| lockout::StoreLockout::new(s.clone(), locks_tx));
        let local_load = shared.as_ref().map(|s| {
            let load = Arc::new(LocalLoad::default());
            let console = operate.console.clone();
            tokio::spawn(crate::shared::heartbeat(
                s.clone(),
                load.clone(),
                peers_tx,
                console,
            ));
            load
        });
        let (http_tx, http_rx) = mpsc::channel(4096);
        let (dns_tx, dns_rx) = mpsc::channel(1024);
        let resolver = match crate::dns::SipResolver::new(&cfg.dns.servers) {
            Ok(r) => Some(Arc::new(r)),
            Err(e) => {
                warn!(error = %e, "no DNS resolver (set `[dns] servers`): named bridge targets will fail");
                None
            }
        };
        let shard = Shard {
            switch,
            records,
            http: HttpClient::new(),
            shared: shared.clone(),
            local_load,
            peers_rx,
            store_lockout,
            locks_rx,
            http_tx,
            http_rx,
            resolver,
            dns_tx,
            dns_rx,
            rtp,
            rtp_rx,
            udp,
            extra_udp,
            extra_udp_rx,
            tcp,
            tls,
            stream_rx,
            shutdown,
            drain_timeout: Duration::from_secs(cfg.calls.drain_timeout_s),
            metrics: operate.metrics,
            programs: operate.programs,
            acl: cfg.acl(),
            overloaded: false,
            overload_logged: None,
            sip_drained_at: Instant::now(),
            rtp_lag: Duration::ZERO,
            udp_errors: concierge_sip::LogLimiter::new(Duration::from_secs(10), 10),
        };
        let shard = tokio::spawn(shard.run());
        Ok(Self {
            udp_addr,
            tcp_addr,
            tls_addr,
            shared,
            shard,
        })
    }

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

/// The SIP UDP socket, with the receive buffer `receive_buffer` bytes asks for.
fn bind_udp(addr: SocketAddr, receive_buffer: usize) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Beside an IPv4 socket on the same port.
        socket.set_only_v6(true)?;
    }
    if let Err(e) = socket.set_recv_buffer_size(receive_buffer) {
        warn!(error = %e, bytes = receive_buffer, "cannot set the SIP UDP receive buffer");
    }
    // Linux doubles what it grants (bookkeeping) and caps it at net.core.rmem_max.
    if let Ok(granted) = socket.recv_buffer_size() {
        if granted < receive_buffer {
            warn!(
                asked = receive_buffer,
                granted, "SIP UDP receive buffer capped by the kernel (net.core.rmem_max)"
            );
        }
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// At most this many waiting SIP datagrams are taken before the timers run, so a flood
/// cannot starve them (RTP pacing runs on the same deadline).
const MAX_WAITING_DATAGRAMS: usize = 256;

/// SIP input waiting longer than this (the socket not once empty) means overload. Below
/// T1 (500 ms), where callers start retransmitting and a backlog feeds itself, but well
/// above a scheduling hiccup: at 100 ms a busy 2-core machine flipped it for a few
/// milliseconds at 4,000 calls/s, and the calls that arrived then got 503 for nothing.
const OVERLOAD_LAG: Duration = Duration::from_millis(300);

/// The overload warning is logged at most this often.
const OVERLOAD_LOG_EVERY: Duration = Duration::from_secs(10);

/// Why the calls left at shutdown were hung up, in their records.
const SHUTTING_DOWN: &str = "server shutting down";

/// After hanging up at shutdown, how long BYEs may take before the calls are dropped.
const BYE_GRACE: Duration = Duration::from_secs(4);

struct Shard {
    switch: Switch,
    records: records::Records,
    http: HttpClient,
    /// The store `[shared]` names: the HTTP path asks its lookup cache.
    shared: Option<Shared>,
    /// What the heartbeat reports as this instance's load (with `shared` only).
    local_load: Option<Arc<LocalLoad>>,
    /// The other instances' load after each heartbeat, for the switch.
    peers_rx: mpsc::Receiver<concierge_b2bua::PeerLoad>,
    /// Asks the store about lockouts for the switch (with `shared` only).
    store_lockout: Option<lockout::StoreLockout>,
    /// What the store said about them.
    locks_rx: mpsc::Receiver<lockout::LockAnswer>,
    http_tx: mpsc::Sender<(CallRef, Result<HttpResponse, HttpFailure>)>,
    http_rx: mpsc::Receiver<(CallRef, Result<HttpResponse, HttpFailure>)>,
    /// Looks up named bridge targets; `None` when the system's DNS config is unreadable.
    resolver: Option<Arc<crate::dns::SipResolver>>,
    dns_tx: mpsc::Sender<DnsAnswer>,
    dns_rx: mpsc::Receiver<DnsAnswer>,
    rtp: rtp::RtpSockets,
    /// Received RTP, in batches from the RTP thread.
    rtp_rx: mpsc::Receiver<rtp_batch::Batch>,
    udp: Option<Arc<UdpSocket>>,
    /// The UDP sockets of the other `[sip] listen` addresses (IPv6 beside IPv4); their
    /// datagrams come through `extra_udp_rx`.
    extra_udp: Vec<Arc<UdpSocket>>,
    extra_udp_rx: mpsc::Receiver<(SocketAddr, Bytes)>,
    tcp: Option<tcp::Tcp>,
    /// SIP over TLS: the listener's connections, and outbound ones to `sips:` targets.
    tls: tcp::Tcp,
    stream_rx: mpsc::Receiver<StreamInput>,
    shutdown: watch::Receiver<Shutdown>,
    drain_timeout: Duration,
    metrics: Arc<crate::metrics::Metrics>,
    programs: mpsc::Receiver<Program>,
    /// `[sip] allow` / `deny`.
    acl: Acl,
    /// What the switch was last told about overload.
    overloaded: bool,
    /// When the overload warning was last logged.
    overload_logged: Option<Instant>,
    /// When the SIP socket was last found empty.
    sip_drained_at: Instant,
    /// How long the last RTP packet handled had waited since it arrived.
    rtp_lag: Duration,
    /// UDP send/receive errors: a peer can cause one per datagram (ICMP unreachable for
    /// answers to spoofed sources), so they are logged within a budget.
    udp_errors: concierge_sip::LogLimiter,
}

impl Shard {
    async fn run(mut self) {
        let mut buf = vec![0u8; 65_536];
        let mut drain_deadline: Option<Instant> = None;
        // Whether the remaining calls were hung up; the next deadline then drops them.
        let mut hung_up = false;
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let mut next = self.flush().await;
        loop {
            let wake = next.map(Instant::from_std).unwrap_or(far);
            let wake = drain_deadline.map_or(wake, |d| wake.min(d));
            tokio::select! {
                r = recv(self.udp.as_deref(), &mut buf) => match r {
                    Ok((n, from)) => {
                        self.handle_udp(from, &buf[..n]);
                        // Whatever else is waiting comes in the same turn.
                        let emptied = self.take_waiting_datagrams(&mut buf);
                        self.report_load(emptied);
                    }
                    // ICMP errors from earlier sends surface here on some platforms; not fatal.
                    Err(e) => self.udp_error(&e, None),
                },
                Some(input) = self.stream_rx.recv() => match input {
                    StreamInput::Message { peer, head, body, transport, authenticated } => {
                        if self.acl.permits(peer.ip()) {
                            let peer = Peer { transport, addr: peer };
                            let input = Input::Stream { peer, head: &head, body: &body, authenticated };
                            self.switch.handle_input(std::time::Instant::now(), input);
                        }
                    }
                    StreamInput::Closed { peer, transport } => {
                        let input = Input::ConnectionLost { peer: Peer { transport, addr: peer } };
                        self.switch.handle_input(std::time::Instant::now(), input);
                    }
                },
                Some((from, data)) = self.extra_udp_rx.recv() => self.handle_udp(from, &data),
                Some((call, result)) = self.http_rx.recv() => {
                    self.switch.handle_input(std::time::Instant::now(), Input::Http { call, result });
                }
                Some(program) = self.programs.recv() => {
                    info!(calls = self.switch.call_count(), "new flows installed; calls in progress keep theirs");
                    let install = Input::Command(Command::Install(Box::new(program)));
                    self.switch.handle_input(std::time::Instant::now(), install);
                }
                Some(load) = self.peers_rx.recv() => {
                    self.metrics.set_shared_peer_calls(load.calls as u64);
                    self.switch.handle_input(std::time::Instant::now(), Input::Command(Command::Peers(load)));
                }
                Some((call, locks)) = self.locks_rx.recv() => {
                    self.switch.handle_input(std::time::Instant::now(), Input::SharedLocks { call, locks });
                }
                Some((id, result)) = self.dns_rx.recv() => {
                    self.switch.handle_input(std::time::Instant::now(), Input::Resolved { id, result });
                }
                Some(batch) = self.rtp_rx.recv() => {
                    self.metrics.rtp_received_many(batch.len() as u64);
                    self.rtp_lag = batch.oldest().map_or(Duration::ZERO, |at| at.elapsed());
                    for (d, data) in batch.iter() {
                        let input = Input::Rtp { port: d.port, from: d.peer, data };
                        self.switch.handle_input(d.at, input);
                    }
                    self.rtp.recycle(batch);
                }
                _ = tokio::time::sleep_until(wake) => {
                    let now = std::time::Instant::now();
                    if drain_deadline.is_some_and(|d| Instant::from_std(now) >= d) {
                        if hung_up {
                            // BYEs nobody answered: the calls go, with their records.
                            info!(calls = self.switch.call_count(), "shutdown: dropping the calls left");
                            self.switch.handle_input(now, Input::Command(Command::AbandonAll));
                            drain_deadline = None;
                        } else {
                            info!(calls = self.switch.call_count(), "drain timeout: hanging up the remaining calls");
                            self.switch.handle_input(now, Input::Command(Command::HangUpAll { why: SHUTTING_DOWN }));
                            hung_up = true;
                            drain_deadline = Some(Instant::from_std(now) + BYE_GRACE);
                        }
                    }
                    let emptied = self.take_waiting_datagrams(&mut buf);
                    self.report_load(emptied);
                    self.switch.handle_input(std::time::Instant::now(), Input::Timeout);
                }
                changed = self.shutdown.changed() => {
                    let state = if changed.is_ok() { *self.shutdown.borrow() } else { Shutdown::Now };
                    let now = std::time::Instant::now();
                    match state {
                        Shutdown::Running => {}
                        Shutdown::Drain => {
                            info!(calls = self.switch.call_count(), "draining: new calls get 503");
                            self.switch.handle_input(now, Input::Command(Command::Drain));
                            drain_deadline = Some(Instant::from_std(now) + self.drain_timeout);
                        }
                        Shutdown::Now => {
                            self.switch.handle_input(now, Input::Command(Command::Drain));
                            self.switch.handle_input(now, Input::Command(Command::HangUpAll { why: SHUTTING_DOWN }));
                            hung_up = true;
                            drain_deadline = Some(Instant::from_std(now) + BYE_GRACE);
                        }
                    }
                }
            }
            next = self.flush().await;
            self.publish();
            if *self.shutdown.borrow() != Shutdown::Running && self.switch.is_idle() {
                info!("all calls ended; stopping");
                return;
            }
        }
    }

    /// Hands the switch the SIP datagrams already waiting, before its timers fire: after
    /// any stall of this loop, an answer that arrived in time must stop a retransmission,
    /// not cross it (a REFER resent after its 202 came in derails the peer's dialog).
    /// Returns whether the socket was emptied.
    fn take_waiting_datagrams(&mut self, buf: &mut [u8]) -> bool {
        for _ in 0..MAX_WAITING_DATAGRAMS {
            let Some(Ok((n, from))) = self.udp.as_ref().map(|u| u.try_recv_from(buf)) else {
                return true;
            };
            self.handle_udp(from, &buf[..n]);
        }
        false
    }

    /// Tells the switch when the loop falls behind and when it has caught up. Behind means
    /// the SIP socket has not once been found empty for `OVERLOAD_LAG` (what waits there
    /// waits at least that long: the caller's timers start retransmitting at 500 ms), or
    /// the RTP packets still queued waited that long too (the last one handled did), or
    /// the RTP thread is that far behind with its sends (or so far that it held every send
    /// batch and packets were dropped: it is not reading the sockets either). A
    /// queue's length is no measure of time: 2,000 calls put 100 packets a millisecond into
    /// it, so "half full" was an 80 ms hiccup, and refused calls the machine could carry.
    /// While behind, new calls are refused cheaply, so the ACKs and BYEs of admitted calls
    /// in the same queue are not lost behind a flood.
    fn report_load(&mut self, sip_emptied: bool) {
        let now = Instant::now();
        if sip_emptied {
            self.sip_drained_at = now;
        }
        let rtp_waiting = !self.rtp_rx.is_empty();
        let rtp_thread_lag = self.rtp.behind_by();
        let behind = now.duration_since(self.sip_drained_at) > OVERLOAD_LAG
            || (rtp_waiting && self.rtp_lag > OVERLOAD_LAG)
            || rtp_thread_lag > OVERLOAD_LAG;
        if behind != self.overloaded {
            self.overloaded = behind;
            let signal = Input::Command(Command::Overloaded(behind));
            self.switch.handle_input(std::time::Instant::now(), signal);
            debug!(behind, "load state changed");
            // Near capacity the state flips many times a second: one line per interval.
            if behind
                && self
                    .overload_logged
                    .is_none_or(|t| now >= t + OVERLOAD_LOG_EVERY)
            {
                self.overload_logged = Some(now);
                warn!(
                    refused_so_far = self.switch.refused_invites(),
                    sip_wait_ms = now.duration_since(self.sip_drained_at).as_millis() as u64,
                    rtp_wait_ms = self.rtp_lag.as_millis() as u64,
                    rtp_queued = self.rtp_rx.len(),
                    rtp_thread_dropping = rtp_thread_lag == Duration::MAX,
                    rtp_thread_behind_ms = if rtp_thread_lag == Duration::MAX {
                        0
                    } else {
                        rtp_thread_lag.as_millis() as u64
                    },
                    "overloaded: new calls get 503 until the backlog is worked off"
                );
            }
        }
    }

    fn handle_udp(&mut self, from: SocketAddr, data: &[u8]) {
        if !self.acl.is_open() && !self.acl.permits(from.ip()) {
            return;
        }
        let peer = Peer {
            transport: Transport::Udp,
            addr: from,
        };
        self.switch
            .handle_input(std::time::Instant::now(), Input::Datagram { peer, data });
    }

    /// Gauges and the switch's counters into the metrics (a few atomic stores).
    fn publish(&self) {
        if let Some(load) = &self.local_load {
            load.set_calls(self.switch.call_count());
        }
        self.metrics.observe_switch(
            self.switch.call_count(),
            self.switch.is_draining(),
            self.switch.stats(),
        );
        self.records
            .resync(|call_id| self.switch.find_call(call_id).is_some());
    }

    /// Logs a UDP error within the budget, and the summary of the interval before.
    fn udp_error(&mut self, e: &std::io::Error, to: Option<SocketAddr>) {
        log_within(
            &mut self.udp_errors,
            "UDP send/receive errors",
            || match to {
                Some(to) => warn!(error = %e, %to, "UDP send failed"),
                None => warn!(error = %e, "UDP receive failed"),
            },
        );
    }

    /// Does what the switch asks until it names its next deadline, and returns that.
    /// A port bound (or not) is reported once the drain is over, as its own input, so the
    /// switch is never re-entered mid-drain.
    async fn flush(&mut self) -> Option<std::time::Instant> {
        let mut ports = Vec::new();
        loop {
            match self.switch.poll_output() {
                Output::Timeout(at) => {
                    if ports.is_empty() {
                        self.rtp.flush();
                        return at;
                    }
                    let now = std::time::Instant::now();
                    for input in ports.drain(..) {
                        self.switch.handle_input(now, input);
                    }
                }
                Output::Sip(t) => match t.peer.transport {
                    Transport::Udp => {
                        // From the socket of the destination's family (IPv6 beside IPv4).
                        let to = t.peer.addr;
                        let socket = self
                            .udp
                            .iter()
                            .chain(self.extra_udp.iter())
                            .find(|s| s.local_addr().is_ok_and(|a| a.is_ipv4() == to.is_ipv4()))
                            .or(self.udp.as_ref());
                        if let Some(udp) = socket {
                            if let Err(e) = udp.send_to(&t.bytes, to).await {
                                self.udp_error(&e, Some(to));
                            }
                        }
                    }
                    Transport::Tls => self.tls.send(t.peer.addr, t.bytes),
                    _ => match &self.tcp {
                        Some(tcp) => tcp.send(t.peer.addr, t.bytes),
                        None => warn!(to = %t.peer.addr, "no TCP transport for this message"),
                    },
                },
                Output::Record(record) => {
                    if let Some(load) = &self.local_load {
                        load.call_ended();
                    }
                    self.metrics.observe_record(&record);
                    self.records.write(&record);
                }
                Output::Event(event) => self.records.event(&event),
                Output::MediaOpen { port } => match self.rtp.open(port) {
                    Ok(()) => ports.push(Input::PortBound { port }),
                    Err(e) => {
                        let error = if e.kind() == std::io::ErrorKind::AddrInUse {
                            PortError::InUse
                        } else {
                            PortError::Other
                        };
                        warn!(error = %e, port, "cannot bind the RTP port");
                        ports.push(Input::PortFailed { port, error });
                    }
                },
                Output::MediaClose { port } => self.rtp.close(port),
                Output::Rtp { port, to, packet } => {
                    self.metrics.rtp_sent();
                    self.rtp.send(port, to, &packet);
                }
                Output::Http { call, request } => {
                    let (client, tx) = (self.http.clone(), self.http_tx.clone());
                    let shared = self.shared.clone();
                    tokio::spawn(async move {
                        let result =
                            crate::shared::perform(&client, shared.as_ref(), *request).await;
                        let _ = tx.send((call, result)).await;
                    });
                }
                Output::Trunks(trunks) => self.report_trunks(trunks),
                ask @ (Output::LockoutCheck { .. } | Output::LockoutFailure { .. }) => {
                    // Sent only with [shared]; without a store the call's deadline moves it on.
                    if let Some(store) = &self.store_lockout {
                        store.ask(ask);
                    }
                }
                Output::Resolve(resolve) => {
                    let (resolver, tx) = (self.resolver.clone(), self.dns_tx.clone());
                    let names = self.tls.server_names();
                    tokio::spawn(async move {
                        let result = match resolver {
                            Some(r) => r.locate(&resolve.uri).await.map_err(|e| e.to_string()),
                            None => Err("no DNS resolver configured".to_owned()),
                        };
                        // RFC 5922: a TLS target is verified against the domain it was found
                        // under, so the driver remembers which name each address came from.
                        if let Ok(peers) = &result {
                            for p in peers.iter().filter(|p| p.transport == Transport::Tls) {
                                names.insert(p.addr, resolve.uri.host());
                            }
                        }
                        let _ = tx.send((resolve.id, result)).await;
                    });
                }
            }
        }
    }
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

async fn recv(udp: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match udp {
        Some(u) => u.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Reads one of the extra SIP UDP sockets into the shard's channel.
async fn read_extra_udp(socket: Arc<UdpSocket>, tx: mpsc::Sender<(SocketAddr, Bytes)>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let data = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                if tx.send((from, data)).await.is_err() {
                    return;
                }
            }
            // ICMP errors from earlier sends surface here; never spin on them.
            Err(e) => {
                debug!(error = %e, "SIP UDP receive failed");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}
