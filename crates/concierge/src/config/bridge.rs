//! `[bridge]` and `[dns]`: the second leg of a bridged transfer, its credentials and
//! outbound proxy, and how its target's name is looked up.

use serde::Deserialize;

use super::Config;

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

/// The second leg of a bridged transfer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct BridgeConfig {
    /// A target that has not answered by then is cancelled and the transfer fails.
    pub(crate) ring_timeout_s: u64,
    /// Digest credentials for a target that challenges our INVITE (401/407).
    pub(crate) username: Option<String>,
    /// The password, written in the file (prefer `password_env`).
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

impl Config {
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
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::rtp::SrtpMode;
    use crate::config::Config;

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
}
