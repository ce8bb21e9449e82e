//! `concierge.toml`: every field has a default, so `concierge run` needs no file at all.
//! Unknown fields are errors, and every error names the file and the field. Relative paths
//! in a file are relative to the file's own directory, so a config works from anywhere.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub(crate) enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Invalid { file: PathBuf, message: String },
    #[error("{file}: field `{field}`: {message}")]
    Field {
        file: PathBuf,
        field: &'static str,
        message: String,
    },
    #[error("{flag}: {message}")]
    Flag { flag: &'static str, message: String },
}

/// Command-line settings that win over the config file (and the built-in demo's), for the
/// usual reason to touch a config at all: a port someone else holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Overrides {
    /// `--listen`: `[sip] listen`.
    pub(crate) listen: Option<SocketAddr>,
    /// `--rtp-ports MIN-MAX`: `[rtp] port_min` and `port_max`.
    pub(crate) rtp_ports: Option<(u16, u16)>,
    /// `--directory-listen`: `[demo] directory_listen`.
    pub(crate) directory_listen: Option<SocketAddr>,
    /// `--metrics-listen`: `[metrics] listen`.
    pub(crate) metrics_listen: Option<SocketAddr>,
}

/// Parses `--rtp-ports` as `MIN-MAX`.
pub(crate) fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (min, max) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?}: write the range as MIN-MAX, e.g. 30000-30999"))?;
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|e| format!("{p:?} is not a port: {e}"))
    };
    Ok((port(min)?, port(max)?))
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    pub(crate) server: ServerConfig,
    pub(crate) sip: SipConfig,
    pub(crate) rtp: RtpConfig,
    pub(crate) calls: CallsConfig,
    pub(crate) records: RecordsConfig,
    pub(crate) demo: DemoConfig,
    pub(crate) flows: FlowsConfig,
    pub(crate) prompts: PromptsConfig,
    pub(crate) log: LogConfig,
    pub(crate) bridge: BridgeConfig,
    /// The file this was read from (`None`: the defaults, no file at all).
    #[serde(skip)]
    pub(crate) source: Option<PathBuf>,
    pub(crate) lockout: LockoutConfig,
    pub(crate) transfer: TransferConfig,
    pub(crate) dns: DnsConfig,
    pub(crate) tcp: TcpConfig,
    pub(crate) metrics: MetricsConfig,
}

/// The operator's HTTP listener: `/metrics` (Prometheus), `/healthz`, `POST /-/reload`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MetricsConfig {
    /// Where to serve it; `None` (the default) serves nothing. Keep it on loopback or a
    /// management network: it answers anyone who reaches it, and may trigger a reload.
    pub(crate) listen: Option<SocketAddr>,
}

/// Looking up named bridge targets and the outbound proxy (RFC 3263).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DnsConfig {
    /// DNS servers to ask (UDP), e.g. `["127.0.0.1:5353"]`; empty: the system's
    /// (`/etc/resolv.conf`).
    pub(crate) servers: Vec<std::net::SocketAddr>,
    /// An address of a resolved target that sends no response at all within this is given
    /// up for the next SRV/A record.
    pub(crate) failover_ms: u64,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            failover_ms: 4000,
        }
    }
}

/// Failed code attempts across calls (a keypad with `lockout = "…"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LockoutConfig {
    /// Failed attempts from one caller number within the window before code entry locks.
    pub(crate) max_failures_per_number: u32,
    /// Failed attempts from one source address that is not a trusted peer.
    pub(crate) max_failures_per_source: u32,
    /// How far back failures count, and how long a lock lasts.
    pub(crate) window_s: u64,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        Self {
            max_failures_per_number: 5,
            max_failures_per_source: 20,
            window_s: 15 * 60,
        }
    }
}

/// The signed transfer context (`X-Concierge-Token`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TransferConfig {
    /// The environment variable holding the HMAC key. When it is unset or empty, transfer
    /// headers go unsigned (and the log says so at start-up).
    pub(crate) token_key_env: String,
    /// How long a token is accepted after the transfer.
    pub(crate) token_ttl_s: u64,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            token_key_env: "CONCIERGE_TRANSFER_KEY".into(),
            token_ttl_s: 120,
        }
    }
}

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

/// The second leg of a bridged transfer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct BridgeConfig {
    /// A target that has not answered by then is cancelled and the transfer fails.
    pub(crate) ring_timeout_s: u64,
    /// Digest credentials for a target that challenges our INVITE (401/407).
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    /// The environment variable holding the password (keeps it out of the file).
    pub(crate) password_env: Option<String>,
    /// A SIP URI every bridge leg goes through (a preloaded Route, RFC 3261 §8.1.2), e.g.
    /// `sip:192.0.2.5:5060;lr` or `sip:proxy.example.com;lr` (a name is located by RFC 3263:
    /// NAPTR, SRV, A/AAAA). Unset: straight to the target.
    pub(crate) outbound_proxy: Option<String>,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            ring_timeout_s: 30,
            username: None,
            password: None,
            password_env: None,
            outbound_proxy: None,
        }
    }
}

/// Which flow runs a call: by Request-URI user, else the default. With neither, calls are
/// answered and held (a plain SIP endpoint).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FlowsConfig {
    pub(crate) default: Option<PathBuf>,
    pub(crate) routes: std::collections::BTreeMap<String, PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct PromptsConfig {
    /// Every `*.wav` here is a prompt, named by its file stem.
    pub(crate) dir: PathBuf,
}

impl Default for PromptsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("prompts"),
        }
    }
}

/// The embedded demo: a customer directory served by this process, so the shipped flow
/// works with no other service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DemoConfig {
    pub(crate) directory: bool,
    pub(crate) directory_listen: SocketAddr,
    pub(crate) customers: PathBuf,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            directory: true,
            directory_listen: "127.0.0.1:8089".parse().expect("literal address"),
            customers: PathBuf::from("config/customers.csv"),
        }
    }
}

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SipConfig {
    /// Address and port for the UDP and TCP listeners: one (`"0.0.0.0:5060"`) or a list
    /// (`["0.0.0.0:5060", "[::]:5060"]`, IPv4 and IPv6).
    pub(crate) listen: Listen,
    /// Host callers reach us on, for Contact, Via and SDP. Default: the listen address, or
    /// 127.0.0.1 when listening on all interfaces.
    pub(crate) advertised_host: Option<String>,
    pub(crate) udp: bool,
    pub(crate) tcp: bool,
    pub(crate) t1_ms: u64,
    pub(crate) t2_ms: u64,
    pub(crate) t4_ms: u64,
    /// SO_RCVBUF of the SIP UDP socket. A burst (a load test, a trunk failing over) must
    /// wait in it while the loop is busy; the kernel's 208 KiB default holds ~350 INVITEs.
    /// Linux caps it at `net.core.rmem_max`.
    pub(crate) udp_receive_buffer_kib: usize,
    /// CIDR blocks (or addresses) of peers whose P-Asserted-Identity we believe: carrier
    /// trunks, SBCs, the proxy in front. Everyone else's caller ID is only claimed.
    pub(crate) trusted_peers: Vec<String>,
    /// The `Server` / `User-Agent` value. The default names no version, so a scanner
    /// learns nothing to match against advisories.
    pub(crate) user_agent: String,
    /// Sources (CIDR, or a bare address) whose SIP is read; empty: everyone. Anything
    /// else is dropped silently, before parsing.
    pub(crate) allow: Vec<String>,
    /// Sources whose SIP is always dropped silently, whatever `allow` says.
    pub(crate) deny: Vec<String>,
    /// RFC 4028: the session interval we ask for when the caller names none (or a longer
    /// one), in seconds.
    pub(crate) session_expires_s: u32,
    /// RFC 4028: a caller's Session-Expires below this gets 422 with this Min-SE. The RFC
    /// floor is 90; lower values are for tests.
    pub(crate) min_se_s: u32,
    /// Who refreshes the session when the caller leaves it to us: `uac` (the caller) or
    /// `uas` (we do, by UPDATE or re-INVITE).
    pub(crate) session_refresher: RefresherConfig,
    /// RFC 3262: send 18x reliably (PRACK) also when the caller only supports `100rel`;
    /// a caller that requires it always gets it.
    pub(crate) prefer_100rel: bool,
    /// SIP over TLS listener; `None`: no TLS listener (outbound TLS still works).
    pub(crate) tls_listen: Option<SocketAddr>,
    /// Our certificate chain and private key (PEM). Neither: a self-signed certificate is
    /// made at start and its SHA-256 fingerprint logged.
    pub(crate) tls_cert: Option<PathBuf>,
    pub(crate) tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that verify the servers of outbound TLS (bridge legs);
    /// `None`: the Mozilla root set (webpki-roots).
    pub(crate) tls_ca_file: Option<PathBuf>,
    /// CA certificates (PEM) for mutual TLS: a client presenting a certificate they
    /// verify is a trusted peer (its P-Asserted-Identity is believed). `None`: no client
    /// certificates are asked for.
    pub(crate) tls_client_ca: Option<PathBuf>,
}

/// `[sip] listen`: one address, or several (IPv4 and IPv6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listen(Vec<SocketAddr>);

impl Listen {
    pub(crate) fn one(addr: SocketAddr) -> Self {
        Self(vec![addr])
    }

    /// Every address, the first being the primary one (its port goes into Via).
    pub(crate) fn all(&self) -> &[SocketAddr] {
        &self.0
    }

    /// The primary address.
    pub(crate) fn first(&self) -> SocketAddr {
        self.0
            .first()
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 5060)))
    }

    pub(crate) fn port(&self) -> u16 {
        self.first().port()
    }

    pub(crate) fn ip(&self) -> IpAddr {
        self.first().ip()
    }

    /// The first IPv6 address, when one is listened on beside an IPv4 one.
    pub(crate) fn v6(&self) -> Option<SocketAddr> {
        self.0.iter().copied().find(SocketAddr::is_ipv6)
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            One(SocketAddr),
            Many(Vec<SocketAddr>),
        }
        match Form::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected \"ADDR:PORT\" or a list of them, e.g. [\"0.0.0.0:5060\", \"[::]:5060\"]",
            )
        })? {
            Form::One(a) => Ok(Self(vec![a])),
            Form::Many(v) if v.is_empty() => Err(serde::de::Error::custom(
                "the list of listen addresses is empty",
            )),
            Form::Many(v) => Ok(Self(v)),
        }
    }
}

/// `sip.session_refresher`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RefresherConfig {
    Uac,
    Uas,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RtpConfig {
    pub(crate) port_min: u16,
    pub(crate) port_max: u16,
    /// SRTP with SDES keys: `off`, `optional` (SRTP when offered) or `mandatory` (488 for
    /// plain offers).
    pub(crate) srtp: SrtpMode,
}

/// `[rtp] srtp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SrtpMode {
    Off,
    #[default]
    Optional,
    Mandatory,
}

impl SrtpMode {
    pub(crate) fn policy(self) -> concierge_media::sdes::SrtpPolicy {
        use concierge_media::sdes::SrtpPolicy;
        match self {
            Self::Off => SrtpPolicy::Off,
            Self::Optional => SrtpPolicy::Optional,
            Self::Mandatory => SrtpPolicy::Mandatory,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct CallsConfig {
    /// Beyond this many concurrent calls, INVITEs get 503 with Retry-After.
    pub(crate) max_calls: usize,
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
    pub(crate) invite_burst: u32,
    /// The same per source IP address. 0: no limit.
    pub(crate) source_invite_rate: u32,
    pub(crate) source_invite_burst: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `concierge_b2bua=debug,info`. `RUST_LOG` wins.
    pub(crate) filter: String,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: Listen::one("0.0.0.0:5060".parse().expect("literal address")),
            advertised_host: None,
            udp: true,
            tcp: true,
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            udp_receive_buffer_kib: 4096,
            trusted_peers: Vec::new(),
            user_agent: "Concierge".into(),
            allow: Vec::new(),
            deny: Vec::new(),
            session_expires_s: 1800,
            min_se_s: 90,
            session_refresher: RefresherConfig::Uac,
            prefer_100rel: false,
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            tls_ca_file: None,
            tls_client_ca: None,
        }
    }
}

impl Default for RtpConfig {
    fn default() -> Self {
        Self {
            port_min: 10_000,
            port_max: 20_000,
            srtp: SrtpMode::Optional,
        }
    }
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

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
        }
    }
}

impl Config {
    /// Loads `path`, or the defaults when `path` is `None`.
    pub(crate) fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.into(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses `text` as the file `path`; its relative paths become relative to `path`'s
    /// directory.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let mut cfg: Self = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            file: path.into(),
            message: describe_toml_error(text, &e),
        })?;
        cfg.validate(path)?;
        let base = path.parent().unwrap_or(Path::new(""));
        for p in [
            &mut cfg.records.path,
            &mut cfg.demo.customers,
            &mut cfg.prompts.dir,
        ] {
            *p = resolve(base, p);
        }
        for f in [
            &mut cfg.sip.tls_cert,
            &mut cfg.sip.tls_key,
            &mut cfg.sip.tls_ca_file,
            &mut cfg.sip.tls_client_ca,
        ]
        .into_iter()
        .flatten()
        {
            *f = resolve(base, f);
        }
        if let Some(f) = cfg.flows.default.as_mut() {
            *f = resolve(base, f);
        }
        for f in cfg.flows.routes.values_mut() {
            *f = resolve(base, f);
        }
        cfg.source = Some(path.into());
        Ok(cfg)
    }

    /// Applies command-line overrides, checked as the file's own values are.
    pub(crate) fn apply(&mut self, o: &Overrides) -> Result<(), ConfigError> {
        if let Some(listen) = o.listen {
            self.sip.listen = Listen::one(listen);
            // A moved SIP port moves TLS beside it (5060 → 5061 style), so two instances
            // started with different --listen ports do not fight over one TLS port.
            if let Some(tls) = self.sip.tls_listen.as_mut() {
                *tls = SocketAddr::new(listen.ip(), listen.port().saturating_add(1).max(1));
                if listen.port() == 0 {
                    tls.set_port(0);
                }
            }
        }
        if let Some((min, max)) = o.rtp_ports {
            self.rtp.port_min = min;
            self.rtp.port_max = max;
        }
        if let Some(addr) = o.directory_listen {
            self.demo.directory_listen = addr;
        }
        if let Some(addr) = o.metrics_listen {
            self.metrics.listen = Some(addr);
        }
        self.validate(Path::new("the command line"))
            .map_err(|e| match e {
                ConfigError::Field { field, message, .. } => ConfigError::Flag {
                    flag: match field {
                        "rtp.port_min" => "--rtp-ports",
                        "sip.advertised_host" => "--listen",
                        other => other,
                    },
                    message,
                },
                other => other,
            })
    }

    /// The base URL flows reach the demo directory on (`system.directory_url`): its listen
    /// address, loopback when it listens on every interface.
    pub(crate) fn directory_url(&self) -> String {
        let addr = self.demo.directory_listen;
        match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => format!("http://127.0.0.1:{}", addr.port()),
            IpAddr::V6(ip) if ip.is_unspecified() => format!("http://[::1]:{}", addr.port()),
            _ => format!("http://{addr}"),
        }
    }

    fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let field = |field: &'static str, message: String| ConfigError::Field {
            file: file.into(),
            field,
            message,
        };
        if let Some(url) = &self.records.webhook_url {
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                Ok(u) => {
                    return Err(field(
                        "records.webhook_url",
                        format!("must be http or https, got {}", u.scheme()),
                    ))
                }
                Err(e) => return Err(field("records.webhook_url", format!("not a URL: {e}"))),
            }
        }
        if self.records.webhook_queue == 0 || self.records.webhook_attempts == 0 {
            return Err(field(
                "records.webhook_queue",
                "records.webhook_queue and records.webhook_attempts must be at least 1".into(),
            ));
        }
        if !self.sip.udp && !self.sip.tcp {
            return Err(field(
                "sip.udp",
                "at least one of sip.udp and sip.tcp must be on".into(),
            ));
        }
        if !(64..=1 << 20).contains(&self.sip.udp_receive_buffer_kib) {
            return Err(field(
                "sip.udp_receive_buffer_kib",
                format!(
                    "must be 64 to 1048576 KiB, got {}",
                    self.sip.udp_receive_buffer_kib
                ),
            ));
        }
        if self.sip.t1_ms == 0 || self.sip.t2_ms < self.sip.t1_ms {
            return Err(field("sip.t2_ms", "T1 must be > 0 and T2 >= T1".into()));
        }
        if self.rtp.port_min % 2 != 0
            || self.rtp.port_min >= self.rtp.port_max
            || self.rtp.port_min < 1024
        {
            return Err(field(
                "rtp.port_min",
                format!(
                    "need an even port_min >= 1024 below port_max, got {}..{}",
                    self.rtp.port_min, self.rtp.port_max
                ),
            ));
        }
        if self.calls.max_calls == 0 {
            return Err(field("calls.max_calls", "must be at least 1".into()));
        }
        if self.bridge.ring_timeout_s == 0 {
            return Err(field("bridge.ring_timeout_s", "must be at least 1".into()));
        }
        if self.bridge.password.is_some() && self.bridge.password_env.is_some() {
            return Err(field(
                "bridge.password_env",
                "give either password or password_env, not both".into(),
            ));
        }
        if self.bridge.username.is_none()
            && (self.bridge.password.is_some() || self.bridge.password_env.is_some())
        {
            return Err(field(
                "bridge.username",
                "a password needs a username".into(),
            ));
        }
        if let Some(var) = &self.bridge.password_env {
            if std::env::var_os(var).is_none() {
                return Err(field(
                    "bridge.password_env",
                    format!("the environment variable {var} is not set"),
                ));
            }
        }
        if let Some(proxy) = &self.bridge.outbound_proxy {
            let routable = concierge_sip::wire::SipUri::parse(proxy)
                .ok()
                .filter(|u| !u.host().is_empty());
            if routable.is_none() {
                return Err(field(
                    "bridge.outbound_proxy",
                    format!("{proxy:?} is not a SIP URI with a host"),
                ));
            }
        }
        if self.dns.failover_ms == 0 || self.dns.failover_ms > 60_000 {
            return Err(field(
                "dns.failover_ms",
                format!("{} is not between 1 and 60000", self.dns.failover_ms),
            ));
        }
        let instance = &self.server.instance;
        if instance.is_empty()
            || instance.len() > 64
            || !instance
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(field(
                "server.instance",
                format!("{instance:?}: 1 to 64 letters, digits, '-', '_' or '.'"),
            ));
        }
        if let Err(e) = self.trusted_peers() {
            return Err(field("sip.trusted_peers", e.to_string()));
        }
        if self.lockout.max_failures_per_number == 0 {
            return Err(field(
                "lockout.max_failures_per_number",
                "must be at least 1".into(),
            ));
        }
        if self.lockout.max_failures_per_source == 0 {
            return Err(field(
                "lockout.max_failures_per_source",
                "must be at least 1".into(),
            ));
        }
        if self.lockout.window_s == 0 {
            return Err(field("lockout.window_s", "must be at least 1".into()));
        }
        if self.transfer.token_ttl_s == 0 {
            return Err(field("transfer.token_ttl_s", "must be at least 1".into()));
        }
        for (name, list) in [("sip.allow", &self.sip.allow), ("sip.deny", &self.sip.deny)] {
            if let Err(e) = parse_nets(list) {
                return Err(field(name, e));
            }
        }
        if self.sip.user_agent.trim().is_empty()
            || self.sip.user_agent.chars().any(|c| c.is_control())
        {
            return Err(field(
                "sip.user_agent",
                "must be non-empty text on one line".into(),
            ));
        }
        if self.sip.min_se_s == 0 || self.sip.session_expires_s < self.sip.min_se_s {
            return Err(field(
                "sip.session_expires_s",
                format!(
                    "need 1 <= min_se_s <= session_expires_s, got {} and {}",
                    self.sip.min_se_s, self.sip.session_expires_s
                ),
            ));
        }
        if self.calls.max_duration_s == 0 {
            return Err(field("calls.max_duration_s", "must be at least 1".into()));
        }
        let tcp = &self.tcp;
        for (name, value) in [
            ("tcp.max_connections", tcp.max_connections as u64),
            (
                "tcp.max_connections_per_source",
                tcp.max_connections_per_source as u64,
            ),
            ("tcp.idle_timeout_s", tcp.idle_timeout_s),
            ("tcp.message_timeout_s", tcp.message_timeout_s),
            ("tcp.write_queue_messages", tcp.write_queue_messages as u64),
        ] {
            if value == 0 {
                return Err(field(name, "must be at least 1".into()));
            }
        }
        let host = self.advertised_host();
        if concierge_sip::wire::SipUri::parse(&format!("sip:x@{host}")).is_err() {
            return Err(field(
                "sip.advertised_host",
                format!("{host:?} is not a host name or IP address"),
            ));
        }
        Ok(())
    }

    /// Digest credentials for bridge targets, the password read from the environment
    /// when the config names a variable.
    pub(crate) fn outbound_auth(&self) -> Option<concierge_b2bua::OutboundAuth> {
        let username = self.bridge.username.clone()?;
        let password = match (&self.bridge.password, &self.bridge.password_env) {
            (Some(p), _) => p.clone(),
            (None, Some(var)) => std::env::var(var).unwrap_or_default(),
            (None, None) => String::new(),
        };
        Some(concierge_b2bua::OutboundAuth { username, password })
    }

    /// The outbound proxy for bridge legs, checked by `validate`.
    pub(crate) fn outbound_proxy(&self) -> Option<concierge_sip::wire::SipUri> {
        concierge_sip::wire::SipUri::parse(self.bridge.outbound_proxy.as_deref()?).ok()
    }

    pub(crate) fn trusted_peers(
        &self,
    ) -> Result<concierge_b2bua::TrustedPeers, concierge_b2bua::CidrError> {
        concierge_b2bua::TrustedPeers::parse(self.sip.trusted_peers.iter().map(String::as_str))
    }

    pub(crate) fn lockout(&self) -> concierge_b2bua::LockoutConfig {
        concierge_b2bua::LockoutConfig {
            max_per_number: self.lockout.max_failures_per_number,
            max_per_source: self.lockout.max_failures_per_source,
            window: Duration::from_secs(self.lockout.window_s),
        }
    }

    /// The transfer-token signer, with the key from the environment; `None` when the
    /// variable is unset or empty.
    pub(crate) fn transfer_signer(&self) -> Option<concierge_b2bua::TransferSigner> {
        let key = std::env::var(&self.transfer.token_key_env).ok()?;
        (!key.is_empty()).then(|| {
            concierge_b2bua::TransferSigner::new(key.into_bytes(), self.transfer.token_ttl_s)
        })
    }

    pub(crate) fn advertised_host(&self) -> String {
        match &self.sip.advertised_host {
            Some(h) => h.clone(),
            None if self.sip.listen.ip().is_unspecified() => "127.0.0.1".into(),
            None => match self.sip.listen.ip() {
                IpAddr::V6(v6) => format!("[{v6}]"),
                ip => ip.to_string(),
            },
        }
    }

    /// The IP for SDP and RTP sockets: the advertised host when it is an address, else the
    /// listen address, else loopback.
    pub(crate) fn media_ip(&self) -> IpAddr {
        self.media_ip_v4_or_only()
    }

    /// Our host for IPv6 peers when we listen on IPv6 beside IPv4 (bracketed): the IPv6
    /// listen address, `[::1]` when that is unspecified. `None` with an IPv6
    /// `advertised_host` (it is used for everyone) or without an IPv6 listener.
    pub(crate) fn advertised_host_v6(&self) -> Option<String> {
        let ip = self.media_ip_v6()?;
        Some(format!("[{ip}]"))
    }

    /// The media address for IPv6 peers (see [`Self::advertised_host_v6`]).
    pub(crate) fn media_ip_v6(&self) -> Option<IpAddr> {
        if self.media_ip().is_ipv6() {
            return None;
        }
        let v6 = self.sip.listen.v6()?.ip();
        Some(if v6.is_unspecified() {
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        } else {
            v6
        })
    }

    fn media_ip_v4_or_only(&self) -> IpAddr {
        let host = self.advertised_host();
        host.trim_matches(|c| c == '[' || c == ']')
            .parse()
            .ok()
            .or_else(|| (!self.sip.listen.ip().is_unspecified()).then(|| self.sip.listen.ip()))
            .unwrap_or(IpAddr::from([127, 0, 0, 1]))
    }

    /// The `[sip] allow` / `deny` lists (validated when the config was loaded).
    pub(crate) fn acl(&self) -> crate::driver::Acl {
        crate::driver::Acl::new(
            parse_nets(&self.sip.allow).unwrap_or_default(),
            parse_nets(&self.sip.deny).unwrap_or_default(),
        )
    }

    pub(crate) fn admission(&self) -> concierge_b2bua::AdmissionConfig {
        concierge_b2bua::AdmissionConfig {
            invite_rate: self.calls.invite_rate,
            invite_burst: self.calls.invite_burst,
            source_invite_rate: self.calls.source_invite_rate,
            source_invite_burst: self.calls.source_invite_burst,
        }
    }

    /// RFC 4028 settings for the switch.
    pub(crate) fn session_timer(&self) -> concierge_sip::dialog::session_timer::SessionTimerConfig {
        use concierge_sip::dialog::session_timer::{Refresher, SessionTimerConfig};
        SessionTimerConfig {
            interval: self.sip.session_expires_s,
            min_se: self.sip.min_se_s,
            refresher: match self.sip.session_refresher {
                RefresherConfig::Uac => Refresher::Uac,
                RefresherConfig::Uas => Refresher::Uas,
            },
        }
    }

    pub(crate) fn timers(&self) -> concierge_sip::transaction::TimerConfig {
        concierge_sip::transaction::TimerConfig {
            t1: Duration::from_millis(self.sip.t1_ms),
            t2: Duration::from_millis(self.sip.t2_ms),
            t4: Duration::from_millis(self.sip.t4_ms),
        }
    }
}

/// `rel` read from a file in `base`: joined, with `..` taken off lexically so that the
/// built-in demo's paths (`config/../prompts`) match its file list.
fn resolve(base: &Path, rel: &Path) -> PathBuf {
    use std::path::Component;
    if rel.is_absolute() {
        return rel.to_path_buf();
    }
    let mut out = PathBuf::new();
    for c in base.join(rel).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`) or bare addresses (one host).
fn parse_nets(list: &[String]) -> Result<Vec<ipnet::IpNet>, String> {
    list.iter()
        .map(|text| {
            let t = text.trim();
            t.parse::<ipnet::IpNet>()
                .or_else(|_| t.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("{text:?} is not an address or CIDR block"))
        })
        .collect()
}

/// Adds the line and, where the span points into a `key = value` line, the dotted field
/// name (`calls.max_calls`): serde's message for a wrong type does not name the key.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    // A syntax error's message has a second line (`expected …`): one line reads better.
    let message = e
        .message()
        .trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    let Some(span) = e.span() else { return message };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..start].chars().count() + 1;
    // serde's data errors concern a key's value; anything else is the TOML syntax itself,
    // best pointed at by its character.
    let about_a_value = [
        "invalid type",
        "invalid value",
        "unknown variant",
        "invalid length",
    ]
    .iter()
    .any(|m| message.starts_with(m));
    if !about_a_value && !message.starts_with("unknown field") {
        return format!("line {line_no}, column {column}: {message}");
    }
    let line = text.lines().nth(line_no - 1).unwrap_or_default();
    let table = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    match line
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && !k.starts_with('['))
    {
        Some(key) => {
            let field = table.map_or_else(|| key.to_owned(), |t| format!("{t}.{key}"));
            format!("line {line_no}: field `{field}`: {message}")
        }
        None => format!("line {line_no}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_file_means_defaults() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.sip.listen.port(), 5060);
        assert_eq!(c.advertised_host(), "127.0.0.1");
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let e = Config::parse(
            Path::new("c.toml"),
            "[sip]\nlisten = \"127.0.0.1:5070\"\nlistne = 1\n",
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("c.toml: line 3"), "{msg}");
        assert!(msg.contains("listne"), "{msg}");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let e = Config::parse(Path::new("c.toml"), "[calls]\nmax_calls = \"many\"\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("c.toml: line 2: field `calls.max_calls`: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn srtp_policy_and_dns_servers_are_read_and_checked() {
        let c = Config::parse(
            Path::new("c.toml"),
            "[rtp]\nsrtp = \"mandatory\"\n[dns]\nservers = [\"127.0.0.1:5353\"]\nfailover_ms = 1500\n[bridge]\noutbound_proxy = \"sip:proxy.example.com;lr\"\n",
        )
        .unwrap();
        assert_eq!(c.rtp.srtp, SrtpMode::Mandatory);
        assert_eq!(c.dns.servers, vec!["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(c.dns.failover_ms, 1500);
        assert!(c.outbound_proxy().is_some(), "a named proxy is allowed");
        assert_eq!(Config::default().rtp.srtp, SrtpMode::Optional);
        let e = Config::parse(Path::new("c.toml"), "[rtp]\nsrtp = \"sometimes\"\n").unwrap_err();
        assert!(e.to_string().contains("srtp"), "{e}");
        let e = Config::parse(Path::new("c.toml"), "[dns]\nfailover_ms = 0\n").unwrap_err();
        assert!(e.to_string().contains("dns.failover_ms"), "{e}");
        assert!(Config::parse(Path::new("c.toml"), "[dns]\nserver = []\n").is_err());
    }

    #[test]
    fn odd_rtp_port_is_refused_with_the_field_name() {
        let e = Config::parse(Path::new("c.toml"), "[rtp]\nport_min = 10001\n").unwrap_err();
        assert!(e.to_string().contains("rtp.port_min"), "{e}");
    }

    #[test]
    fn bridge_credentials_need_a_username_and_one_password_source() {
        let e = Config::parse(Path::new("c.toml"), "[bridge]\npassword = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("bridge.username"), "{e}");
        let e = Config::parse(
            Path::new("c.toml"),
            "[bridge]\nusername = \"u\"\npassword_env = \"CONCIERGE_TEST_SURELY_UNSET\"\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("CONCIERGE_TEST_SURELY_UNSET is not set"),
            "{e}"
        );
        let c = Config::parse(
            Path::new("c.toml"),
            "[bridge]\nusername = \"u\"\npassword = \"p\"\n",
        )
        .unwrap();
        let auth = c.outbound_auth().unwrap();
        assert_eq!((auth.username.as_str(), auth.password.as_str()), ("u", "p"));
    }

    #[test]
    fn outbound_proxy_and_instance_are_checked() {
        let e = Config::parse(
            Path::new("c.toml"),
            // Names are located by RFC 3263 now; what is refused is no SIP URI at all.
            "[bridge]\noutbound_proxy = \"proxy.example.com\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("bridge.outbound_proxy"), "{e}");
        let c = Config::parse(
            Path::new("c.toml"),
            "[bridge]\noutbound_proxy = \"sip:192.0.2.5:5070;lr\"\n[server]\ninstance = \"node-2\"\n",
        )
        .unwrap();
        assert_eq!(c.outbound_proxy().unwrap().port(), Some(5070));
        assert_eq!(c.server.instance, "node-2");
        let e = Config::parse(Path::new("c.toml"), "[server]\ninstance = \"a b\"\n").unwrap_err();
        assert!(e.to_string().contains("server.instance"), "{e}");
        assert_eq!(Config::default().server.instance, "concierge");
    }

    #[test]
    fn a_zero_maximum_call_duration_is_refused() {
        let e = Config::parse(Path::new("c.toml"), "[calls]\nmax_duration_s = 0\n").unwrap_err();
        assert!(e.to_string().contains("calls.max_duration_s"), "{e}");
    }

    #[test]
    fn session_timer_options_default_to_the_rfc_and_are_checked() {
        let d = Config::default();
        let st = d.session_timer();
        assert_eq!(
            (st.interval, st.min_se),
            (1800, 90),
            "RFC 4028 floor by default"
        );
        assert!(!d.sip.prefer_100rel);
        let e = Config::parse(
            Path::new("c.toml"),
            "[sip]
min_se_s = 0
",
        )
        .unwrap_err();
        assert!(e.to_string().contains("sip.session_expires_s"), "{e}");
        let e = Config::parse(
            Path::new("c.toml"),
            "[sip]
session_expires_s = 60
",
        )
        .unwrap_err();
        assert!(e.to_string().contains("min_se_s"), "{e}");
        let e = Config::parse(
            Path::new("c.toml"),
            "[sip]
session_refresher = \"me\"
",
        )
        .unwrap_err();
        assert!(e.to_string().contains("session_refresher"), "{e}");
        let c = Config::parse(
            Path::new("c.toml"),
            "[sip]
min_se_s = 2
session_expires_s = 4
session_refresher = \"uas\"
prefer_100rel = true
",
        )
        .unwrap();
        let st = c.session_timer();
        assert_eq!((st.interval, st.min_se), (4, 2));
        assert_eq!(
            st.refresher,
            concierge_sip::dialog::session_timer::Refresher::Uas
        );
        assert!(c.sip.prefer_100rel);
    }

    #[test]
    fn a_receive_buffer_too_small_to_hold_a_burst_is_refused() {
        let e =
            Config::parse(Path::new("c.toml"), "[sip]\nudp_receive_buffer_kib = 8\n").unwrap_err();
        assert!(e.to_string().contains("sip.udp_receive_buffer_kib"), "{e}");
        assert_eq!(Config::default().sip.udp_receive_buffer_kib, 4096);
    }

    #[test]
    fn trusted_peers_and_lockout_limits_are_checked() {
        let e = Config::parse(
            Path::new("c.toml"),
            "[sip]\ntrusted_peers = [\"10.0.0.0/8\", \"carrier.example\"]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("sip.trusted_peers"), "{e}");
        assert!(e.to_string().contains("carrier.example"), "{e}");
        let c = Config::parse(
            Path::new("c.toml"),
            "[sip]\ntrusted_peers = [\"10.0.0.0/8\", \"::1\"]\n",
        )
        .unwrap();
        assert!(c
            .trusted_peers()
            .unwrap()
            .contains("10.1.2.3".parse().unwrap()));
        assert!(Config::default().trusted_peers().unwrap().is_empty());
        let e = Config::parse(Path::new("c.toml"), "[lockout]\nwindow_s = 0\n").unwrap_err();
        assert!(e.to_string().contains("lockout.window_s"), "{e}");
        assert_eq!(
            Config::default().lockout(),
            concierge_b2bua::LockoutConfig::default()
        );
    }

    #[test]
    fn allow_and_deny_take_cidr_blocks_and_addresses_and_name_a_bad_entry() {
        let c = Config::parse(
            Path::new("c.toml"),
            "[sip]\nallow = [\"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::/32\"]\ndeny = [\"10.1.0.0/16\"]\n",
        )
        .unwrap();
        let acl = c.acl();
        assert!(acl.permits("10.2.3.4".parse().unwrap()));
        assert!(!acl.permits("10.1.3.4".parse().unwrap()), "deny wins");
        assert!(acl.permits("192.0.2.7".parse().unwrap()));
        assert!(!acl.permits("192.0.2.8".parse().unwrap()));
        assert!(acl.permits("2001:db8::1".parse().unwrap()));
        assert!(Config::default()
            .acl()
            .permits("198.51.100.1".parse().unwrap()));
        let e =
            Config::parse(Path::new("c.toml"), "[sip]\ndeny = [\"10.0.0.0/33\"]\n").unwrap_err();
        assert!(e.to_string().contains("sip.deny"), "{e}");
    }

    #[test]
    fn the_default_server_header_names_no_version() {
        let c = Config::default();
        assert_eq!(c.sip.user_agent, "Concierge");
        let e = Config::parse(Path::new("c.toml"), "[sip]\nuser_agent = \"a\\r\\nX: y\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("sip.user_agent"), "{e}");
    }

    #[test]
    fn shipped_config_parses() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/concierge.toml"
        ));
        Config::load(Some(path)).unwrap();
    }
}

#[cfg(test)]
mod path_tests {
    use super::*;

    #[test]
    fn relative_paths_are_read_from_the_config_file_s_directory() {
        let c = Config::parse(
            Path::new("/srv/concierge/concierge.toml"),
            "[flows]\ndefault = \"flows/vip.toml\"\nroutes = { a = \"/abs/a.toml\" }\n[prompts]\ndir = \"../prompts\"\n[records]\npath = \"./calls.jsonl\"\n",
        )
        .unwrap();
        assert_eq!(
            c.flows.default.unwrap(),
            Path::new("/srv/concierge/flows/vip.toml")
        );
        assert_eq!(c.flows.routes["a"], Path::new("/abs/a.toml"));
        assert_eq!(c.prompts.dir, Path::new("/srv/prompts"));
        assert_eq!(c.records.path, Path::new("/srv/concierge/calls.jsonl"));
        assert_eq!(
            c.demo.customers,
            Path::new("/srv/concierge/config/customers.csv")
        );
        // The built-in demo's names, as its file list has them.
        let c = Config::parse(
            Path::new("config/concierge.toml"),
            "[prompts]\ndir = \"../prompts\"\n[records]\npath = \"../calls.jsonl\"\n",
        )
        .unwrap();
        assert_eq!(c.prompts.dir, Path::new("prompts"));
        assert_eq!(c.records.path, Path::new("calls.jsonl"));
    }

    #[test]
    fn a_toml_syntax_error_is_shown_at_its_line_and_column() {
        let e = Config::parse(Path::new("c.toml"), "[flows]\nroutes = { a = \"x\" \n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("c.toml: line 2, column "), "{msg}");
        assert!(!msg.contains("field"), "{msg}");
    }

    #[test]
    fn overrides_win_and_are_checked_with_the_flag_s_name() {
        let mut c = Config::default();
        c.apply(&Overrides {
            listen: Some("127.0.0.1:5999".parse().unwrap()),
            rtp_ports: Some((30000, 30100)),
            directory_listen: Some("0.0.0.0:8092".parse().unwrap()),
            metrics_listen: Some("127.0.0.1:9999".parse().unwrap()),
        })
        .unwrap();
        assert_eq!(c.sip.listen.port(), 5999);
        assert_eq!(c.metrics.listen, Some("127.0.0.1:9999".parse().unwrap()));
        assert_eq!((c.rtp.port_min, c.rtp.port_max), (30000, 30100));
        assert_eq!(c.directory_url(), "http://127.0.0.1:8092");
        let e = c
            .apply(&Overrides {
                rtp_ports: Some((30001, 30100)),
                ..Overrides::default()
            })
            .unwrap_err();
        assert!(e.to_string().starts_with("--rtp-ports: "), "{e}");
        assert_eq!(parse_port_range("30000-30099"), Ok((30000, 30099)));
        assert!(parse_port_range("30000").is_err());
    }
}

#[cfg(test)]
mod secure_transport_tests {
    use super::*;

    #[test]
    fn listen_takes_one_address_or_a_list_and_ipv6_gets_its_own_host_and_media_address() {
        let one =
            Config::parse(Path::new("c.toml"), "[sip]\nlisten = \"127.0.0.1:5070\"\n").unwrap();
        assert_eq!(one.sip.listen.all(), ["127.0.0.1:5070".parse().unwrap()]);
        assert_eq!(one.advertised_host_v6(), None);
        let both = Config::parse(
            Path::new("c.toml"),
            "[sip]\nlisten = [\"127.0.0.1:5070\", \"[::1]:5070\"]\n",
        )
        .unwrap();
        assert_eq!(both.sip.listen.port(), 5070);
        assert_eq!(both.advertised_host(), "127.0.0.1");
        assert_eq!(both.advertised_host_v6().as_deref(), Some("[::1]"));
        assert_eq!(both.media_ip_v6(), Some("::1".parse().unwrap()));
        // IPv6 only: the one host is IPv6 and there is no second one.
        let v6 = Config::parse(Path::new("c.toml"), "[sip]\nlisten = \"[::1]:5070\"\n").unwrap();
        assert_eq!(v6.advertised_host(), "[::1]");
        assert_eq!(v6.media_ip_v6(), None);
        for bad in ["listen = []", "listen = [\"nope\"]", "listen = 5"] {
            let e = Config::parse(Path::new("c.toml"), &format!("[sip]\n{bad}\n")).unwrap_err();
            let e = e.to_string();
            assert!(e.contains("ADDR:PORT") || e.contains("empty"), "{bad}: {e}");
        }
    }

    #[test]
    fn tls_files_are_read_from_the_config_file_s_directory_and_listen_moves_tls_beside_it() {
        let mut c = Config::parse(
            Path::new("/srv/c/concierge.toml"),
            "[sip]\ntls_listen = \"0.0.0.0:5061\"\ntls_cert = \"tls/cert.pem\"\ntls_key = \"/k.pem\"\ntls_client_ca = \"ca.pem\"\n",
        )
        .unwrap();
        assert_eq!(
            c.sip.tls_cert.as_deref(),
            Some(Path::new("/srv/c/tls/cert.pem"))
        );
        assert_eq!(c.sip.tls_key.as_deref(), Some(Path::new("/k.pem")));
        assert_eq!(
            c.sip.tls_client_ca.as_deref(),
            Some(Path::new("/srv/c/ca.pem"))
        );
        assert_eq!(c.sip.tls_ca_file, None);
        c.apply(&Overrides {
            listen: Some("127.0.0.1:6000".parse().unwrap()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(c.sip.tls_listen, Some("127.0.0.1:6001".parse().unwrap()));
        assert_eq!(Config::default().sip.tls_listen, None, "off when unset");
    }
}
