//! What one trunk registers as: the registrar, the address-of-record, the credentials, our
//! Contact, how long to ask for and how to keep the path open. Checked once, when a
//! [`Registration`](super::Registration) is made, so every header built from it is sound.

use std::fmt;
use std::time::Duration;

use crate::digest::Challenge;
use crate::wire::{SipUri, Transport};

/// The longest registration we ask for or accept a registrar's `Min-Expires` up to: one
/// day. A registrar wanting more is refused (a binding that outlives a day of silence is
/// not what a trunk needs).
pub const MAX_EXPIRES: u32 = 86_400;

/// A password that never prints: `Debug` shows `<redacted>` and there is no `Display`,
/// so neither a log line nor an error message can carry it (house rule: secrets appear in
/// no log, record, metric or output).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps the secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the digest computation only.
    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Digest credentials (RFC 3261 §22.4): `username` in the `Authorization` line (the
/// trunk's `auth_username`, else its `username`) and the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The digest username.
    pub username: String,
    /// The password.
    pub password: Password,
}

impl Credentials {
    /// The credentials line answering `challenge` for `method` on `uri` (see
    /// [`Challenge::answer`]): for a request sent through the trunk, such as a bridged
    /// call's INVITE challenged by the trunk's proxy. The password is used here and never
    /// leaves this crate.
    pub fn answer(
        &self,
        challenge: &Challenge,
        method: &str,
        uri: &str,
        cnonce: &str,
        nc: u32,
    ) -> String {
        challenge.answer(
            &self.username,
            self.password.expose(),
            method,
            uri,
            cnonce,
            nc,
        )
    }
}

/// One trunk's registration, as the owner configured it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationConfig {
    /// The registrar: the Request-URI of every REGISTER (RFC 3261 §10.2: the domain of the
    /// location service, no user part). Its host also makes the address-of-record's domain.
    pub registrar: SipUri,
    /// The user part of the address-of-record (To and From: `sip:USER@registrar-host`).
    pub user: String,
    /// What answers the registrar's challenges.
    pub credentials: Credentials,
    /// Our Contact: where the registrar sends the calls for the address-of-record.
    pub contact: SipUri,
    /// Our Contact when the registrar (or outbound proxy) is reached over IPv6: our IPv6
    /// address, so the calls come back over the family the binding was made on. `None`:
    /// [`Self::contact`] whatever the family.
    pub contact_v6: Option<SipUri>,
    /// The registration interval we ask for (Expires), in seconds.
    pub expires: u32,
    /// Every REGISTER goes to this proxy first, as a preloaded loose Route (RFC 3261
    /// §8.1.2); `None`: straight to the registrar.
    pub outbound_proxy: Option<SipUri>,
    /// The transport towards the first hop when its URI names none (`sips:` means TLS).
    pub transport: Transport,
    /// How often the path to the registrar is kept open while registered: an OPTIONS ping
    /// over UDP, a CRLF keep-alive over TCP/TLS. `None`: no OPTIONS over UDP, and CRLF
    /// every [`DEFAULT_STREAM_KEEPALIVE`] over a connection.
    pub keepalive: Option<Duration>,
    /// The `User-Agent` header, if any.
    pub user_agent: Option<String>,
}

/// The CRLF keep-alive interval on TCP/TLS when none is configured: RFC 5626 §4.4.1
/// suggests 95–120 s for connection-oriented transports; NATs and firewalls keep idle TCP
/// mappings at least that long.
pub const DEFAULT_STREAM_KEEPALIVE: Duration = Duration::from_secs(120);

/// Why a [`RegistrationConfig`] cannot be used. Each names the field; none quotes a value
/// (a password must never be echoed, and the rest is the operator's own text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The registrar is not a `sip:`/`sips:` URI with a host, or has a user part.
    #[error("registrar: must be a sip: or sips: URI with a host and no user part")]
    Registrar,
    /// The outbound proxy is not a `sip:`/`sips:` URI with a host.
    #[error("outbound proxy: must be a sip: or sips: URI with a host")]
    OutboundProxy,
    /// The user part holds characters a SIP URI user part cannot carry unescaped.
    #[error("username: use letters, digits and - _ . ! ~ * ' ( ) & = + $ , ; ? / only")]
    User,
    /// The digest username is empty or holds a quote, backslash or control character.
    #[error("auth username: must be non-empty, without quotes, backslashes or control characters")]
    AuthUser,
    /// Our Contact is not a `sip:`/`sips:` URI with a host.
    #[error("contact: must be a sip: or sips: URI with a host")]
    Contact,
    /// The interval is outside 1..=[`MAX_EXPIRES`].
    #[error("expires: must be 1 to 86400 seconds")]
    Expires,
    /// A keep-alive interval of zero.
    #[error("keepalive: must be at least 1 second")]
    Keepalive,
    /// The transport is not one we speak to a registrar (UDP, TCP, TLS).
    #[error("transport: must be udp, tcp or tls")]
    Transport,
    /// The `User-Agent` value holds a control character.
    #[error("user agent: must be one line of text")]
    UserAgent,
}

impl RegistrationConfig {
    /// Checks every field that goes into a header.
    pub fn check(&self) -> Result<(), ConfigError> {
        let routable = |u: &SipUri| u.is_sip() && !u.host().is_empty();
        if !routable(&self.registrar) || self.registrar.user().is_some() {
            return Err(ConfigError::Registrar);
        }
        if self.outbound_proxy.as_ref().is_some_and(|p| !routable(p)) {
            return Err(ConfigError::OutboundProxy);
        }
        if self.user.is_empty() || !self.user.bytes().all(is_user_byte) {
            return Err(ConfigError::User);
        }
        let auth = &self.credentials.username;
        if auth.is_empty()
            || auth
                .chars()
                .any(|c| c.is_control() || c == '"' || c == '\\')
        {
            return Err(ConfigError::AuthUser);
        }
        if !routable(&self.contact) || self.contact_v6.as_ref().is_some_and(|c| !routable(c)) {
            return Err(ConfigError::Contact);
        }
        if !(1..=MAX_EXPIRES).contains(&self.expires) {
            return Err(ConfigError::Expires);
        }
        if self.keepalive.is_some_and(|k| k.as_secs() == 0) {
            return Err(ConfigError::Keepalive);
        }
        if !matches!(
            self.transport,
            Transport::Udp | Transport::Tcp | Transport::Tls
        ) {
            return Err(ConfigError::Transport);
        }
        if self
            .user_agent
            .as_ref()
            .is_some_and(|u| u.is_empty() || u.chars().any(char::is_control))
        {
            return Err(ConfigError::UserAgent);
        }
        Ok(())
    }

    /// The address-of-record (RFC 3261 §10.2: To and From): the user at the registrar's
    /// domain, in the registrar's scheme, without its port or parameters.
    pub fn aor(&self) -> SipUri {
        let text = format!(
            "{}:{}@{}",
            self.registrar.scheme(),
            self.user,
            self.registrar.host()
        );
        // `check` admitted the user part and the host came out of a parsed URI.
        SipUri::parse(&text).expect("a checked user at a parsed host is a SIP URI")
    }

    /// Our Contact towards `peer`: the IPv6 one for an IPv6 peer when there is one.
    pub fn contact_for(&self, peer: Option<std::net::SocketAddr>) -> &SipUri {
        match (&self.contact_v6, peer) {
            (Some(v6), Some(addr)) if addr.is_ipv6() => v6,
            _ => &self.contact,
        }
    }

    /// How often the path is kept open while registered, and whether by OPTIONS (UDP) or
    /// CRLF (a connection). `None`: not at all.
    pub(super) fn keepalive_every(&self, transport: Transport) -> Option<Duration> {
        match transport {
            Transport::Udp => self.keepalive,
            _ => Some(self.keepalive.unwrap_or(DEFAULT_STREAM_KEEPALIVE)),
        }
    }
}

/// RFC 3261 §25.1 `user`: unreserved characters and the user-unreserved marks. `%` escapes
/// are left out on purpose: a trunk's username never needs them.
fn is_user_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RegistrationConfig {
        RegistrationConfig {
            registrar: SipUri::parse("sip:carrier.example:5070;transport=tcp").unwrap(),
            user: "+4612345".into(),
            credentials: Credentials {
                username: "acct-17".into(),
                password: Password::new("s3cret"),
            },
            contact: SipUri::parse("sip:concierge@192.0.2.10:5060").unwrap(),
            contact_v6: None,
            expires: 3600,
            outbound_proxy: None,
            transport: Transport::Udp,
            keepalive: None,
            user_agent: None,
        }
    }

    #[test]
    fn the_aor_is_the_user_at_the_registrar_s_domain() {
        assert_eq!(config().aor().as_str(), "sip:+4612345@carrier.example");
    }

    #[test]
    fn the_password_never_prints() {
        let shown = format!("{:?}", config());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn fields_that_go_into_headers_are_checked() {
        assert_eq!(config().check(), Ok(()));
        let mut c = config();
        c.registrar = SipUri::parse("sip:someone@carrier.example").unwrap();
        assert_eq!(c.check(), Err(ConfigError::Registrar));
        let mut c = config();
        c.user = "a b".into();
        assert_eq!(c.check(), Err(ConfigError::User));
        let mut c = config();
        c.credentials.username = "x\"y".into();
        assert_eq!(c.check(), Err(ConfigError::AuthUser));
        let mut c = config();
        c.expires = 0;
        assert_eq!(c.check(), Err(ConfigError::Expires));
        let mut c = config();
        c.user_agent = Some("a\r\nX: y".into());
        assert_eq!(c.check(), Err(ConfigError::UserAgent));
    }
}
