//! What a call runs: `[flows]` (which flow by Request-URI user), `[prompts]` (the WAV
//! directory) and `[demo]` (the embedded customer directory the shipped flow asks).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

use super::Config;

/// Which flow runs a call: by Request-URI user, else the default. With neither, calls are
/// answered and held (a plain SIP endpoint).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FlowsConfig {
    /// The flow for calls whose Request-URI user has no route; `None`: those calls are
    /// answered and held.
    pub(crate) default: Option<PathBuf>,
    /// Request-URI user → flow file.
    pub(crate) routes: std::collections::BTreeMap<String, PathBuf>,
}

/// `[prompts]`: where the prompt WAV files are; read at start-up and on reload by the
/// program builder, which turns each into G.711 frames.
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
    /// Serve the directory at all.
    pub(crate) directory: bool,
    /// Where it listens; flows reach it as `{system.directory_url}`.
    pub(crate) directory_listen: SocketAddr,
    /// The CSV file of customers it serves.
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

impl Config {
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
}
