//! `concierge.toml`: every field has a default, so `concierge run` needs no file at all.
//! Unknown fields are errors, and every error names the file and the field. Relative paths
//! in a file are relative to the file's own directory, so a config works from anywhere.
//!
//! This file holds the whole [`Config`] and its entry points ([`Config::load`],
//! [`Config::parse`]); each table lives in a file named for it: `sip` (with `listen`,
//! the addresses we are reached on), `tcp`, `rtp`, `calls`, `bridge` (with `[dns]`),
//! `trust` (`[lockout]`, `[transfer]`), `trunks` (`[[trunks]]`), `flows` (with `[prompts]`, `[demo]`), `server`
//! (with `[metrics]`, `[log]`, `[records]`). `validate` checks a loaded file, `overrides`
//! applies the command line, `error` reports problems at their line and field.

use std::path::{Path, PathBuf};

use serde::Deserialize;

mod bridge;
mod calls;
mod console;
mod error;
mod flows;
mod listen;
mod overrides;
mod rtp;
mod server;
mod shared;
mod sip;
mod tcp;
mod trunks;
mod trust;
mod validate;

use error::describe_toml_error;

pub(crate) use bridge::{BridgeConfig, DnsConfig};
pub(crate) use calls::CallsConfig;
pub(crate) use console::ConsoleConfig;
pub(crate) use error::ConfigError;
pub(crate) use flows::{DemoConfig, FlowsConfig, PromptsConfig};
pub(crate) use listen::Listen;
pub(crate) use overrides::{parse_port_range, Overrides};
pub(crate) use rtp::RtpConfig;
pub(crate) use server::{LogConfig, MetricsConfig, RecordsConfig, ServerConfig};
pub(crate) use shared::SharedConfig;
pub(crate) use sip::SipConfig;
pub(crate) use tcp::TcpConfig;
pub(crate) use trunks::TrunkConfig;
pub(crate) use trust::{LockoutConfig, TransferConfig};

/// The whole `concierge.toml`, one field per table. Made by [`Config::load`] (the CLI's
/// `run`, `check` and `simulate`, and `POST /-/reload`), then adjusted by
/// [`Config::apply`]; the driver and the program builder read it, never write it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    /// `[server]`.
    pub(crate) server: ServerConfig,
    /// `[sip]`.
    pub(crate) sip: SipConfig,
    /// `[rtp]`.
    pub(crate) rtp: RtpConfig,
    /// `[calls]`.
    pub(crate) calls: CallsConfig,
    /// `[records]`.
    pub(crate) records: RecordsConfig,
    /// `[demo]`.
    pub(crate) demo: DemoConfig,
    /// `[flows]`.
    pub(crate) flows: FlowsConfig,
    /// `[prompts]`.
    pub(crate) prompts: PromptsConfig,
    /// `[log]`.
    pub(crate) log: LogConfig,
    /// `[bridge]`.
    pub(crate) bridge: BridgeConfig,
    /// The file this was read from (`None`: the defaults, no file at all).
    #[serde(skip)]
    pub(crate) source: Option<PathBuf>,
    /// `[lockout]`.
    pub(crate) lockout: LockoutConfig,
    /// `[transfer]`.
    pub(crate) transfer: TransferConfig,
    /// `[dns]`.
    pub(crate) dns: DnsConfig,
    /// `[tcp]`.
    pub(crate) tcp: TcpConfig,
    /// `[metrics]`.
    pub(crate) metrics: MetricsConfig,
    /// `[console]`.
    pub(crate) console: ConsoleConfig,
    /// `[[trunks]]`: the SIP trunks we register with.
    pub(crate) trunks: Vec<TrunkConfig>,
    /// `[shared]`: state kept with other instances; `None` keeps it all in this process.
    pub(crate) shared: Option<SharedConfig>,
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
        if let Some(f) = cfg.shared.as_mut().and_then(|s| s.tls_ca_file.as_mut()) {
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
    fn shipped_config_parses() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/concierge.toml"
        ));
        Config::load(Some(path)).unwrap();
    }

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
}
