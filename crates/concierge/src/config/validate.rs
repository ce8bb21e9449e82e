//! The checks a loaded config must pass beyond its types: ranges, consistency between
//! fields, addresses and URIs that must parse. The first failure is reported, named by its
//! dotted field.

use std::path::Path;

use super::sip::parse_nets;
use super::{Config, ConfigError};

impl Config {
    /// Checks everything types cannot: called by [`Config::parse`] on a file and by
    /// [`Config::apply`] after the overrides; the first failure is a [`ConfigError::Field`]
    /// naming the dotted field (`file` says where the values came from).
    pub(super) fn validate(&self, file: &Path) -> Result<(), ConfigError> {
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
        self.console
            .check()
            .map_err(|m| field("console.token_env", m))?;
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
        if let Some(shared) = &self.shared {
            shared
                .validate()
                .map_err(|(name, message)| field(name, message))?;
        }
        let host = self.advertised_host();
        if concierge_sip::wire::SipUri::parse(&format!("sip:x@{host}")).is_err() {
            return Err(field(
                "sip.advertised_host",
                format!("{host:?} is not a host name or IP address"),
            ));
        }
        self.validate_trunks(file)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    #[test]
    fn odd_rtp_port_is_refused_with_the_field_name() {
        let e = Config::parse(Path::new("c.toml"), "[rtp]\nport_min = 10001\n").unwrap_err();
        assert!(e.to_string().contains("rtp.port_min"), "{e}");
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
    fn the_default_server_header_names_no_version() {
        let c = Config::default();
        assert_eq!(c.sip.user_agent, "Concierge");
        let e = Config::parse(Path::new("c.toml"), "[sip]\nuser_agent = \"a\\r\\nX: y\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("sip.user_agent"), "{e}");
    }
}
