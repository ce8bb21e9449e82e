//! `concierge.toml`: every field has a default, so `concierge run` needs no file at all.
//! Unknown fields are errors, and every error names the file and the field.

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
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    pub(crate) sip: SipConfig,
    pub(crate) rtp: RtpConfig,
    pub(crate) calls: CallsConfig,
    pub(crate) records: RecordsConfig,
    pub(crate) demo: DemoConfig,
    pub(crate) flows: FlowsConfig,
    pub(crate) prompts: PromptsConfig,
    pub(crate) log: LogConfig,
    pub(crate) bridge: BridgeConfig,
    pub(crate) tcp: TcpConfig,
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
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            ring_timeout_s: 30,
            username: None,
            password: None,
            password_env: None,
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
}

impl Default for RecordsConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("calls.jsonl"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SipConfig {
    /// Address and port for the UDP and TCP listeners.
    pub(crate) listen: SocketAddr,
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RtpConfig {
    pub(crate) port_min: u16,
    pub(crate) port_max: u16,
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
            listen: "0.0.0.0:5060".parse().expect("literal address"),
            advertised_host: None,
            udp: true,
            tcp: true,
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            udp_receive_buffer_kib: 4096,
        }
    }
}

impl Default for RtpConfig {
    fn default() -> Self {
        Self {
            port_min: 10_000,
            port_max: 20_000,
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

    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let cfg: Self = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            file: path.into(),
            message: describe_toml_error(text, &e),
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let field = |field: &'static str, message: String| ConfigError::Field {
            file: file.into(),
            field,
            message,
        };
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
        let host = self.advertised_host();
        host.trim_matches(|c| c == '[' || c == ']')
            .parse()
            .ok()
            .or_else(|| (!self.sip.listen.ip().is_unspecified()).then(|| self.sip.listen.ip()))
            .unwrap_or(IpAddr::from([127, 0, 0, 1]))
    }

    pub(crate) fn timers(&self) -> concierge_sip::transaction::TimerConfig {
        concierge_sip::transaction::TimerConfig {
            t1: Duration::from_millis(self.sip.t1_ms),
            t2: Duration::from_millis(self.sip.t2_ms),
            t4: Duration::from_millis(self.sip.t4_ms),
        }
    }
}

/// Adds the line and, where the span points into a `key = value` line, the dotted field
/// name (`calls.max_calls`): serde's message for a wrong type does not name the key.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().to_owned();
    let Some(span) = e.span() else { return message };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
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
    fn a_zero_maximum_call_duration_is_refused() {
        let e = Config::parse(Path::new("c.toml"), "[calls]\nmax_duration_s = 0\n").unwrap_err();
        assert!(e.to_string().contains("calls.max_duration_s"), "{e}");
    }

    #[test]
    fn a_receive_buffer_too_small_to_hold_a_burst_is_refused() {
        let e =
            Config::parse(Path::new("c.toml"), "[sip]\nudp_receive_buffer_kib = 8\n").unwrap_err();
        assert!(e.to_string().contains("sip.udp_receive_buffer_kib"), "{e}");
        assert_eq!(Config::default().sip.udp_receive_buffer_kib, 4096);
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
