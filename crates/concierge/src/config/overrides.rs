//! The command line's say over the file: [`Overrides`], parsed by the CLI and applied
//! by [`Config::apply`] with the file's own checks.

use std::net::SocketAddr;
use std::path::Path;

use super::{Config, ConfigError, Listen};

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
    /// `--console-listen`: `[console] listen`.
    pub(crate) console_listen: Option<SocketAddr>,
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

impl Config {
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
        if let Some(addr) = o.console_listen {
            self.console.listen = Some(addr);
        }
        self.validate(Path::new("the command line"))
            .map_err(|e| match e {
                ConfigError::Field { field, message, .. } => ConfigError::Flag {
                    flag: match field {
                        "rtp.port_min" => "--rtp-ports",
                        "sip.advertised_host" => "--listen",
                        "console.token_env" => "--console-listen",
                        other => other,
                    },
                    message,
                },
                other => other,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_and_are_checked_with_the_flag_s_name() {
        let mut c = Config::default();
        c.apply(&Overrides {
            listen: Some("127.0.0.1:5999".parse().unwrap()),
            rtp_ports: Some((30000, 30100)),
            directory_listen: Some("0.0.0.0:8092".parse().unwrap()),
            metrics_listen: Some("127.0.0.1:9999".parse().unwrap()),
            console_listen: Some("127.0.0.1:9998".parse().unwrap()),
        })
        .unwrap();
        assert_eq!(c.sip.listen.port(), 5999);
        assert_eq!(c.metrics.listen, Some("127.0.0.1:9999".parse().unwrap()));
        assert_eq!(c.console.listen, Some("127.0.0.1:9998".parse().unwrap()));
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
