//! `[[trunks]]`: SIP trunks we register with (issue 23), one table each. Each becomes a
//! [`Trunk`](concierge_b2bua::Trunk) of the switch's program (a sans-IO
//! [`Registration`](concierge_sip::registration::Registration) there); here it is read,
//! checked, and turned into that registration's configuration.
//!
//! The password is never in the file: `password_env` names the environment variable that
//! holds it. Checks and messages name the variable, never its value, and a `password_env`
//! that does not look like a variable name (a password pasted in its place) is refused
//! without being echoed.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use concierge_sip::registration::{
    ConfigError as RegistrationError, Credentials, Password, RegistrationConfig,
};
use concierge_sip::wire::{SipUri, Transport};
use serde::Deserialize;

use super::{Config, ConfigError};

/// One `[[trunks]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrunkConfig {
    /// How flows (`trunk = "carrier"`, `sip:USER@trunk:carrier`), logs and status name it.
    pub(crate) name: String,
    /// The registrar: a `sip:`/`sips:` URI without a user part (`sip:sip.carrier.example`,
    /// `sip:192.0.2.1:5070`); a name is located by RFC 3263. Its host is also the domain
    /// of the address-of-record.
    pub(crate) registrar: String,
    /// The user part of the address-of-record we register (`sip:USER@registrar-host`).
    pub(crate) username: String,
    /// The digest username, when the trunk's differs from `username`.
    #[serde(default)]
    pub(crate) auth_username: Option<String>,
    /// The environment variable holding the password.
    pub(crate) password_env: String,
    /// The registration interval we ask for, in seconds.
    #[serde(default = "default_expires")]
    pub(crate) expires_s: u32,
    /// The user part of our Contact: the Request-URI user of the calls the trunk delivers
    /// (route them with `[flows] routes`). Default: `username`.
    #[serde(default)]
    pub(crate) contact_user: Option<String>,
    /// A proxy every REGISTER, and every call out through the trunk, goes through.
    #[serde(default)]
    pub(crate) outbound_proxy: Option<String>,
    /// `udp`, `tcp` or `tls`; default: the URI's `transport`, else TLS for `sips:`, else UDP.
    #[serde(default)]
    pub(crate) transport: Option<TrunkTransport>,
    /// Keep the path to the registrar open: an OPTIONS ping this often over UDP (none
    /// when unset); over TCP/TLS a CRLF keep-alive this often (120 s when unset).
    #[serde(default)]
    pub(crate) keepalive_s: Option<u64>,
    /// Calls from this trunk's registrar and proxy addresses count as from a trusted peer
    /// (their P-Asserted-Identity is believed), as if listed in `[sip] trusted_peers`.
    #[serde(default)]
    pub(crate) trusted: bool,
}

/// `trunks.transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TrunkTransport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS.
    Tls,
}

fn default_expires() -> u32 {
    3600
}

/// `expires_s` bounds: below 10 s a registrar would be asked to refresh constantly; above
/// a day the sans-IO registration refuses it.
const EXPIRES_RANGE: std::ops::RangeInclusive<u32> = 10..=concierge_sip::registration::MAX_EXPIRES;
/// `keepalive_s` bounds.
const KEEPALIVE_RANGE: std::ops::RangeInclusive<u64> = 5..=3600;

impl TrunkConfig {
    /// The transport towards the first hop: the configured one, else the URI's.
    pub(crate) fn transport(&self) -> Transport {
        match self.transport {
            Some(TrunkTransport::Udp) => Transport::Udp,
            Some(TrunkTransport::Tcp) => Transport::Tcp,
            Some(TrunkTransport::Tls) => Transport::Tls,
            None => self
                .first_hop()
                .map(|u| uri_transport(&u))
                .unwrap_or(Transport::Udp),
        }
    }

    /// The registration's configuration: our Contact at `host:port` (and at `v6`, our
    /// IPv6 host and port, for a registrar reached over IPv6), `password` read from
    /// `password_env` by the caller, `user_agent` our `[sip] user_agent`. Fails on what
    /// `validate` refuses.
    pub(crate) fn registration(
        &self,
        host: &str,
        port: u16,
        v6: Option<(&str, u16)>,
        password: Password,
        user_agent: &str,
    ) -> Result<RegistrationConfig, RegistrationError> {
        let registrar = parse_sip(&self.registrar).ok_or(RegistrationError::Registrar)?;
        let outbound_proxy = match &self.outbound_proxy {
            Some(p) => Some(parse_sip(p).ok_or(RegistrationError::OutboundProxy)?),
            None => None,
        };
        let transport = self.transport();
        let user = self.contact_user.as_deref().unwrap_or(&self.username);
        let contact = concierge_sip::dialog::local_contact(user, host, port, transport);
        let contact_v6 = v6
            .map(|(host, port)| concierge_sip::dialog::local_contact(user, host, port, transport));
        let cfg = RegistrationConfig {
            registrar,
            user: self.username.clone(),
            credentials: Credentials {
                username: self
                    .auth_username
                    .clone()
                    .unwrap_or_else(|| self.username.clone()),
                password,
            },
            contact,
            contact_v6,
            expires: self.expires_s,
            outbound_proxy,
            transport,
            keepalive: self.keepalive_s.map(Duration::from_secs),
            user_agent: Some(user_agent.to_owned()),
        };
        cfg.check()?;
        Ok(cfg)
    }

    /// The proxy, else the registrar: where requests go first.
    fn first_hop(&self) -> Option<SipUri> {
        parse_sip(self.outbound_proxy.as_deref().unwrap_or(&self.registrar))
    }
}

impl Config {
    /// Each trunk as the switch runs it, its password read from the environment now. Our
    /// Contact is the advertised host at the SIP port of the trunk's transport, and our
    /// IPv6 host and port when we listen on IPv6 too (for a registrar reached over it).
    pub(crate) fn trunk_registrations(&self) -> Result<Vec<concierge_b2bua::Trunk>, String> {
        let host = self.advertised_host();
        let host_v6 = self.advertised_host_v6();
        self.trunks
            .iter()
            .map(|t| {
                let (port, port_v6) = match t.transport() {
                    Transport::Tls => {
                        let port = self.sip.tls_listen.map_or(5061, |a| a.port());
                        (port, port)
                    }
                    _ => (
                        self.sip.listen.port(),
                        self.sip
                            .listen
                            .v6()
                            .map_or(self.sip.listen.port(), |a| a.port()),
                    ),
                };
                let v6 = host_v6.as_deref().map(|h| (h, port_v6));
                let password = Password::new(std::env::var(&t.password_env).unwrap_or_default());
                t.registration(&host, port, v6, password, &self.sip.user_agent)
                    .map(|registration| concierge_b2bua::Trunk {
                        name: t.name.clone(),
                        registration,
                        trusted: t.trusted,
                    })
                    .map_err(|e| format!("trunk {:?}: {e}", t.name))
            })
            .collect()
    }

    /// Checks every `[[trunks]]` table; called by `validate`.
    pub(super) fn validate_trunks(&self, file: &Path) -> Result<(), ConfigError> {
        let mut names = BTreeSet::new();
        for t in &self.trunks {
            let fail = |field: &'static str, message: String| ConfigError::Field {
                file: file.into(),
                field,
                message: format!("trunk {:?}: {message}", t.name),
            };
            if !concierge_flow::is_trunk_name(&t.name) {
                return Err(fail(
                    "trunks.name",
                    "a trunk name is 1 to 64 letters, digits, '-', '_' or '.'".into(),
                ));
            }
            if !names.insert(t.name.as_str()) {
                return Err(fail("trunks.name", "defined twice".into()));
            }
            check_password_env(&t.password_env).map_err(|m| fail("trunks.password_env", m))?;
            let registrar = parse_sip(&t.registrar)
                .filter(|u| u.user().is_none())
                .ok_or_else(|| {
                    fail(
                        "trunks.registrar",
                        format!(
                            "{:?} is not a sip: or sips: URI with a host and no user part",
                            t.registrar
                        ),
                    )
                })?;
            let proxy = match &t.outbound_proxy {
                Some(p) => Some(parse_sip(p).ok_or_else(|| {
                    fail(
                        "trunks.outbound_proxy",
                        format!("{p:?} is not a sip: or sips: URI with a host"),
                    )
                })?),
                None => None,
            };
            self.check_trunk_transport(t, proxy.as_ref().unwrap_or(&registrar))
                .map_err(|m| fail("trunks.transport", m))?;
            if !EXPIRES_RANGE.contains(&t.expires_s) {
                return Err(fail(
                    "trunks.expires_s",
                    format!("{} is not between 10 and 86400", t.expires_s),
                ));
            }
            if t.keepalive_s.is_some_and(|k| !KEEPALIVE_RANGE.contains(&k)) {
                return Err(fail(
                    "trunks.keepalive_s",
                    "must be between 5 and 3600".into(),
                ));
            }
            // The rest (usernames, the contact's user) exactly as the registration checks
            // it, with a stand-in for the password: its value is never looked at here.
            let user = t.contact_user.as_deref().unwrap_or(&t.username);
            if user.is_empty() || !user.bytes().all(is_user_byte) {
                return Err(fail(
                    "trunks.contact_user",
                    "use letters, digits and - _ . ! ~ * ' ( ) & = + $ , ; ? / only".into(),
                ));
            }
            let standin = Password::new("");
            let host = self.advertised_host();
            if let Err(e) = t.registration(&host, 5060, None, standin, &self.sip.user_agent) {
                let field = match e {
                    RegistrationError::AuthUser => "trunks.auth_username",
                    RegistrationError::Registrar => "trunks.registrar",
                    RegistrationError::OutboundProxy => "trunks.outbound_proxy",
                    RegistrationError::Contact => "sip.advertised_host",
                    RegistrationError::Expires => "trunks.expires_s",
                    RegistrationError::Keepalive => "trunks.keepalive_s",
                    RegistrationError::Transport => "trunks.transport",
                    RegistrationError::User | RegistrationError::UserAgent => "trunks.username",
                };
                return Err(fail(field, e.to_string()));
            }
        }
        Ok(())
    }

    /// The trunk's transport must agree with its URIs and have a listener of ours, or the
    /// registrar could not reach the Contact we register.
    fn check_trunk_transport(&self, t: &TrunkConfig, first_hop: &SipUri) -> Result<(), String> {
        let transport = t.transport();
        if first_hop.scheme() == "sips" && transport != Transport::Tls {
            return Err("a sips: URI is reached over TLS only".into());
        }
        if t.transport.is_some()
            && transport != uri_transport(first_hop)
            && first_hop.param("transport").is_some()
        {
            return Err("differs from the transport the URI names".into());
        }
        let (listening, what) = match transport {
            Transport::Udp => (self.sip.udp, "[sip] udp"),
            Transport::Tcp => (self.sip.tcp, "[sip] tcp"),
            _ => (self.sip.tls_listen.is_some(), "[sip] tls_listen"),
        };
        if !listening {
            return Err(format!(
                "{} needs {what}: the registrar sends the trunk's calls to our Contact over it",
                transport.as_str().to_ascii_lowercase()
            ));
        }
        Ok(())
    }
}

/// A `sip:`/`sips:` URI with a host.
fn parse_sip(text: &str) -> Option<SipUri> {
    SipUri::parse(text)
        .ok()
        .filter(|u| u.is_sip() && !u.host().is_empty())
}

/// The transport a URI implies: its `transport` parameter, else TLS for `sips:`, else UDP.
fn uri_transport(uri: &SipUri) -> Transport {
    match uri.param("transport").flatten().and_then(Transport::parse) {
        Some(t) => t,
        None if uri.scheme() == "sips" => Transport::Tls,
        None => Transport::Udp,
    }
}

/// `password_env` must name a variable that is set and not empty. The messages name the
/// variable; a value that is no variable name (likely the password itself) is not shown.
fn check_password_env(var: &str) -> Result<(), String> {
    let plausible = !var.is_empty()
        && var.len() <= 128
        && !var.starts_with(|c: char| c.is_ascii_digit())
        && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !plausible {
        return Err(
            "is not an environment variable name (letters, digits and '_'); put the password in the environment and name its variable here"
                .into(),
        );
    }
    match std::env::var_os(var) {
        None => Err(format!("the environment variable {var} is not set")),
        Some(v) if v.is_empty() => Err(format!("the environment variable {var} is empty")),
        Some(_) => Ok(()),
    }
}

/// RFC 3261 §25.1 `user` characters, as the registration accepts them.
fn is_user_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    /// A variable every test process has, standing for a password variable: setting one
    /// here would race with other tests reading the environment.
    const VAR: &str = "PATH";

    fn secret() -> String {
        std::env::var(VAR).expect("PATH is set")
    }

    fn config(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("c.toml"), text).map_err(|e| e.to_string())
    }

    /// A trunk `carrier` at `sip:192.0.2.1:5070` plus the lines in `more`.
    fn parse(more: &str) -> Result<Config, String> {
        config(&format!(
            "[[trunks]]\nname = \"carrier\"\nregistrar = \"sip:192.0.2.1:5070\"\nusername = \"+4612345\"\npassword_env = \"{VAR}\"\n{more}"
        ))
    }

    #[test]
    fn a_trunk_takes_its_defaults() {
        let c = parse("").unwrap();
        let t = &c.trunks[0];
        assert_eq!(t.expires_s, 3600);
        assert!(!t.trusted);
        let trunk = c.trunk_registrations().unwrap().remove(0);
        assert_eq!(trunk.name, "carrier");
        let reg = trunk.registration;
        assert_eq!(reg.aor().as_str(), "sip:+4612345@192.0.2.1");
        assert_eq!(reg.contact.as_str(), "sip:+4612345@127.0.0.1:5060");
        assert_eq!(reg.contact_v6, None, "no IPv6 listener");
        assert_eq!(reg.credentials.username, "+4612345");
        assert_eq!(reg.transport, concierge_sip::wire::Transport::Udp);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = parse("passwrd = \"x\"\n").unwrap_err();
        assert!(e.contains("passwrd"), "{e}");
    }

    #[test]
    fn two_trunks_of_one_name_are_refused() {
        let e = parse(&format!(
            "[[trunks]]\nname = \"carrier\"\nregistrar = \"sip:192.0.2.2\"\nusername = \"u\"\npassword_env = \"{VAR}\"\n"
        ))
        .unwrap_err();
        assert!(
            e.contains("trunks.name") && e.contains("defined twice"),
            "{e}"
        );
    }

    #[test]
    fn a_registrar_that_is_no_sip_uri_or_names_a_user_is_refused() {
        for bad in [
            "carrier.example",
            "http://carrier.example",
            "sip:me@carrier.example",
        ] {
            let e = config(&format!(
                "[[trunks]]\nname = \"x\"\nregistrar = \"{bad}\"\nusername = \"u\"\npassword_env = \"{VAR}\"\n"
            ))
            .unwrap_err();
            assert!(e.contains("trunks.registrar"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_missing_password_variable_is_named() {
        let e = config(
            "[[trunks]]\nname = \"c\"\nregistrar = \"sip:192.0.2.1\"\nusername = \"u\"\npassword_env = \"CONCIERGE_TEST_SURELY_UNSET_TRUNK\"\n",
        )
        .unwrap_err();
        assert!(
            e.contains("trunks.password_env")
                && e.contains("CONCIERGE_TEST_SURELY_UNSET_TRUNK is not set"),
            "{e}"
        );
    }

    #[test]
    fn a_password_pasted_into_password_env_is_refused_without_being_echoed() {
        let e = config(
            "[[trunks]]\nname = \"c\"\nregistrar = \"sip:192.0.2.1\"\nusername = \"u\"\npassword_env = \"hunter2!pass\"\n",
        )
        .unwrap_err();
        assert!(e.contains("trunks.password_env"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn a_sips_registrar_is_reached_over_tls_only() {
        let e = config(&format!(
            "[sip]\ntls_listen = \"127.0.0.1:5061\"\n[[trunks]]\nname = \"c\"\nregistrar = \"sips:carrier.example\"\nusername = \"u\"\npassword_env = \"{VAR}\"\ntransport = \"udp\"\n"
        ))
        .unwrap_err();
        assert!(
            e.contains("trunks.transport") && e.contains("TLS only"),
            "{e}"
        );
    }

    #[test]
    fn a_transport_needs_our_listener_for_it() {
        let e = parse("transport = \"tls\"\n").unwrap_err();
        assert!(
            e.contains("trunks.transport") && e.contains("tls_listen"),
            "{e}"
        );
        let e = config(&format!(
            "[sip]\ntcp = false\n[[trunks]]\nname = \"c\"\nregistrar = \"sip:192.0.2.1;transport=tcp\"\nusername = \"u\"\npassword_env = \"{VAR}\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("[sip] tcp"), "{e}");
    }

    #[test]
    fn expires_and_keepalive_are_bounded() {
        assert!(parse("expires_s = 5\n")
            .unwrap_err()
            .contains("trunks.expires_s"));
        assert!(parse("expires_s = 100000\n")
            .unwrap_err()
            .contains("trunks.expires_s"));
        assert!(parse("keepalive_s = 0\n")
            .unwrap_err()
            .contains("trunks.keepalive_s"));
        assert_eq!(
            parse("keepalive_s = 30\n").unwrap().trunks[0].keepalive_s,
            Some(30)
        );
    }

    #[test]
    fn usernames_that_cannot_go_into_a_header_are_refused() {
        let e = parse("contact_user = \"a b\"\n").unwrap_err();
        assert!(e.contains("trunks.contact_user"), "{e}");
        let e = parse("auth_username = \"a\\\"b\"\n").unwrap_err();
        assert!(e.contains("trunks.auth_username"), "{e}");
    }

    #[test]
    fn a_trusted_trunk_is_trusted_by_the_switch_not_by_trusted_peers() {
        // The switch trusts the addresses it registers through (located names too), and
        // a reload that removes the trunk withdraws that trust: `[sip] trusted_peers`,
        // fixed at start-up, does not list them.
        let c = parse("trusted = true\n").unwrap();
        assert!(c.trunk_registrations().unwrap()[0].trusted);
        assert!(!c
            .trusted_peers()
            .unwrap()
            .contains("192.0.2.1".parse().unwrap()));
        assert!(!parse("").unwrap().trunk_registrations().unwrap()[0].trusted);
    }

    #[test]
    fn with_an_ipv6_listener_a_trunk_has_an_ipv6_contact_too() {
        let c = config(&format!(
            "[sip]\nlisten = [\"127.0.0.1:5070\", \"[::1]:5072\"]\n[[trunks]]\nname = \"c\"\nregistrar = \"sip:[::1]:5090\"\nusername = \"u\"\npassword_env = \"{VAR}\"\n"
        ))
        .unwrap();
        let reg = &c.trunk_registrations().unwrap()[0].registration;
        assert_eq!(reg.contact.as_str(), "sip:u@127.0.0.1:5070");
        assert_eq!(
            reg.contact_v6.as_ref().map(|u| u.as_str()),
            Some("sip:u@[::1]:5072")
        );
    }

    #[test]
    fn no_error_or_debug_output_shows_the_password() {
        let c = parse("").unwrap();
        let shown = format!("{:?} {:?}", c.trunk_registrations().unwrap(), c.trunks);
        assert!(!shown.contains(&secret()), "{shown}");
        for bad in [
            "expires_s = 1\n",
            "transport = \"tls\"\n",
            "contact_user = \"a b\"\n",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(!e.contains(&secret()), "{e}");
        }
    }
}
