//! `[sip]`: listeners, timers, who we trust and who we read, RFC 4028 session timers and
//! the TLS files; and what the switch and the driver get from it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Config, Listen};

/// `[sip]`: how SIP is reached and spoken. Read by the driver (sockets, TLS, ACL) and,
/// through the `Config` accessors below, by the switch's set-up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SipConfig {
    /// Address and port for the UDP and TCP listeners: one (`"0.0.0.0:5060"`) or a list
    /// (`["0.0.0.0:5060", "[::]:5060"]`, IPv4 and IPv6).
    pub(crate) listen: Listen,
    /// Host callers reach us on, for Contact, Via and SDP. Default: the listen address, or
    /// 127.0.0.1 when listening on all interfaces.
    pub(crate) advertised_host: Option<String>,
    /// Listen on UDP.
    pub(crate) udp: bool,
    /// Listen on TCP (limits in `[tcp]`).
    pub(crate) tcp: bool,
    /// RFC 3261 T1: the round-trip estimate retransmissions start from.
    pub(crate) t1_ms: u64,
    /// RFC 3261 T2: the longest interval between retransmissions.
    pub(crate) t2_ms: u64,
    /// RFC 3261 T4: how long a message may stay in the network.
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
    /// The private key (PEM) for `tls_cert`.
    pub(crate) tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that verify the servers of outbound TLS (bridge legs);
    /// `None`: the Mozilla root set (webpki-roots).
    pub(crate) tls_ca_file: Option<PathBuf>,
    /// CA certificates (PEM) for mutual TLS: a client presenting a certificate they
    /// verify is a trusted peer (its P-Asserted-Identity is believed). `None`: no client
    /// certificates are asked for.
    pub(crate) tls_client_ca: Option<PathBuf>,
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

/// `sip.session_refresher`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RefresherConfig {
    /// The caller refreshes.
    Uac,
    /// We refresh, by UPDATE or re-INVITE.
    Uas,
}

impl Config {
    /// `[sip] trusted_peers` parsed for the switch (whose P-Asserted-Identity to
    /// believe; a trusted `[[trunks]]` entry's addresses the switch adds itself, as it
    /// locates them); an error names the entry that is no address or CIDR block. Called
    /// by `validate` and by the driver when it builds the switch.
    pub(crate) fn trusted_peers(
        &self,
    ) -> Result<concierge_b2bua::TrustedPeers, concierge_b2bua::CidrError> {
        concierge_b2bua::TrustedPeers::parse(self.sip.trusted_peers.iter().map(String::as_str))
    }

    /// The `[sip] allow` / `deny` lists (validated when the config was loaded).
    pub(crate) fn acl(&self) -> crate::driver::Acl {
        crate::driver::Acl::new(
            parse_nets(&self.sip.allow).unwrap_or_default(),
            parse_nets(&self.sip.deny).unwrap_or_default(),
        )
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

    /// RFC 3261 T1, T2 and T4 for the transaction layer; read by the driver when it
    /// builds the switch.
    pub(crate) fn timers(&self) -> concierge_sip::transaction::TimerConfig {
        concierge_sip::transaction::TimerConfig {
            t1: Duration::from_millis(self.sip.t1_ms),
            t2: Duration::from_millis(self.sip.t2_ms),
            t4: Duration::from_millis(self.sip.t4_ms),
        }
    }
}

/// CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`) or bare addresses (one host).
pub(super) fn parse_nets(list: &[String]) -> Result<Vec<ipnet::IpNet>, String> {
    list.iter()
        .map(|text| {
            let t = text.trim();
            t.parse::<ipnet::IpNet>()
                .or_else(|_| t.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("{text:?} is not an address or CIDR block"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, Overrides};

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
