use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use super::host::parse_host_port;
use super::params::Params;
use super::parse::ParseError;
use super::shared::Shared;
use super::{find_byte, split_at_byte, trim};

/// The transport named in a Via (RFC 3261 §20.42).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// SCTP.
    Sctp,
    /// WebSocket.
    Ws,
    /// Secure WebSocket.
    Wss,
    /// A transport we do not speak (RFC 4475 §3.1.1.10: still a valid Via to echo).
    Other,
}

impl Transport {
    /// The transport a Via token names, case aside; `None` if it is not a token.
    pub fn parse(token: &str) -> Option<Self> {
        const KNOWN: [(&str, Transport); 6] = [
            ("UDP", Transport::Udp),
            ("TCP", Transport::Tcp),
            ("TLS", Transport::Tls),
            ("SCTP", Transport::Sctp),
            ("WS", Transport::Ws),
            ("WSS", Transport::Wss),
        ];
        if let Some((_, t)) = KNOWN.iter().find(|(n, _)| token.eq_ignore_ascii_case(n)) {
            return Some(*t);
        }
        (!token.is_empty() && token.bytes().all(crate::wire::method::is_token_byte))
            .then_some(Self::Other)
    }

    /// The token as written in a Via.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Sctp => "SCTP",
            Self::Ws => "WS",
            Self::Wss => "WSS",
            Self::Other => "OTHER",
        }
    }

    /// RFC 3261 §17.1.1.2 and §17.2.1: on a reliable transport the retransmission timers
    /// are not used and the "wait for retransmissions" timers are zero.
    pub fn is_reliable(self) -> bool {
        !matches!(self, Self::Udp)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Via header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// The transport named.
    pub transport: Transport,
    /// The token of a transport we do not know (upper case), kept to echo it.
    other_token: Option<Box<str>>,
    /// `sent-by` host as written; an IPv6 reference keeps its brackets. Shared: it is
    /// copied into every response's Via and into the transaction's key.
    pub host: Arc<str>,
    /// `sent-by` port, if written.
    pub port: Option<u16>,
    /// Via parameters (`branch`, `received`, `rport`, …), in order.
    params: Params,
}

/// RFC 3261 §8.1.1.7: a branch starting with this cookie was made by an RFC 3261 element
/// and is unique per transaction, so matching may use it alone.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

impl Via {
    /// Our own Via for a request we send: the branch and a bare `rport` (RFC 3581).
    pub fn new(
        transport: Transport,
        host: impl Into<Arc<str>>,
        port: Option<u16>,
        branch: &str,
    ) -> Self {
        let params = Params::from_pairs(&[("branch", Some(branch)), ("rport", None)]);
        Self {
            transport,
            other_token: None,
            host: host.into(),
            port,
            params,
        }
    }

    /// Parses one Via value (`SIP/2.0/UDP host:port;params`).
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        Self::parse_in(None, text)
    }

    /// [`Via::parse`], the parameters keeping a share of `shared` when they lie in it.
    pub(crate) fn parse_in(shared: Option<&Shared<'_>>, text: &str) -> Result<Self, ParseError> {
        let text = trim(text);
        let bad = |why: &str| ParseError::Header {
            name: "Via",
            why: format!("{why}: {text:?}"),
        };
        // Nearly every Via starts as one of these: the protocol, version and transport
        // then need no splitting, trimming or comparing.
        let usual = match text.strip_prefix("SIP/2.0/").map(|t| t.split_at_checked(3)) {
            Some(Some(("UDP", after))) => Some((Transport::Udp, "UDP", after)),
            Some(Some(("TCP", after))) => Some((Transport::Tcp, "TCP", after)),
            Some(Some(("TLS", after))) => Some((Transport::Tls, "TLS", after)),
            _ => None,
        };
        let (transport, transport_token, sent_by_and_params) = match usual {
            Some(usual @ (_, _, after)) if after.starts_with(' ') => usual,
            _ => {
                let (proto, rest) = split_at_byte(text, b'/').ok_or_else(|| bad("no protocol"))?;
                let (version, rest) = split_at_byte(rest, b'/').ok_or_else(|| bad("no version"))?;
                if !trim(proto).eq_ignore_ascii_case("SIP") || trim(version) != "2.0" {
                    return Err(bad("not SIP/2.0"));
                }
                let rest = rest.trim_start();
                let transport_token = until_whitespace(rest);
                let transport =
                    Transport::parse(transport_token).ok_or_else(|| bad("bad transport"))?;
                // sent-protocol LWS sent-by: the host starts after whitespace and ends
                // where the parameters begin.
                let after = rest.get(transport_token.len()..).unwrap_or_default();
                (transport, transport_token, after)
            }
        };
        if !sent_by_and_params.starts_with(|c: char| c.is_whitespace()) {
            return Err(bad("no sent-by"));
        }
        // The first `;` of the value: none can come before the sent-by (the protocol,
        // version and transport are tokens).
        let (sent_by, params) = match find_byte(b';', sent_by_and_params.as_bytes()) {
            Some(i) => sent_by_and_params.split_at_checked(i).unwrap_or_default(),
            None => (sent_by_and_params, ""),
        };
        // The space after the transport goes first (the host is read trimmed), so the
        // usual `host:port` takes parse_host_port's quick way.
        let sent_by = sent_by.strip_prefix(' ').unwrap_or(sent_by);
        let (host, port) = parse_host_port(sent_by).map_err(bad)?;
        let params = match params {
            "" => Params::default(),
            params => Params::parse_in(shared, params, false),
        };
        // RFC 3581 §4: rport carries a port or nothing.
        if let Some(Some(rport)) = params.get("rport") {
            if rport.parse::<u16>().is_err() {
                return Err(bad("bad rport"));
            }
        }
        Ok(Self {
            transport,
            other_token: (transport == Transport::Other)
                .then(|| transport_token.to_ascii_uppercase().into()),
            host: match host {
                Cow::Borrowed(h) => h.into(),
                Cow::Owned(h) => h.into(),
            },
            port,
            params,
        })
    }

    /// The transport token as written in the Via (upper case; kept for one we do not
    /// know).
    pub fn transport_token(&self) -> &str {
        self.other_token
            .as_deref()
            .unwrap_or(self.transport.as_str())
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params.get("branch").flatten()
    }

    /// Whether the branch carries the RFC 3261 magic cookie.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with(MAGIC_COOKIE))
    }

    /// The `received` parameter.
    pub fn received(&self) -> Option<&str> {
        self.params.get("received").flatten()
    }

    /// `Some(None)` for a bare `rport` (RFC 3581 §3: the client asks for it to be filled).
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// RFC 3261 §18.2.1 and RFC 3581 §4: a server stamps the top Via with the address the
    /// request really came from, so the response can find a client behind NAT.
    pub fn stamp_source(&mut self, source: std::net::SocketAddr) {
        let ip = source.ip();
        let host_is_source = self
            .host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .is_ok_and(|h| h == ip);
        let wants_rport = self.rport().is_some();
        if host_is_source && !wants_rport && self.params.get("received").is_none() {
            // The common case: nothing to remove, nothing to add.
            return;
        }
        let received = (!host_is_source || wants_rport).then(|| ip.to_string());
        let mut port = itoa::Buffer::new();
        let rport = wants_rport.then(|| port.format(source.port()));
        let add: Vec<(&str, Option<&str>)> = [
            received.as_deref().map(|r| ("received", Some(r))),
            rport.map(|p| ("rport", Some(p))),
        ]
        .into_iter()
        .flatten()
        .collect();
        self.params = self.params.replace(
            |n| {
                n.eq_ignore_ascii_case("received")
                    || (wants_rport && n.eq_ignore_ascii_case("rport"))
            },
            &add,
        );
    }

    /// `sent-by` as `host[:port]`, used to match CANCEL and RFC 2543 transactions.
    pub fn sent_by(&self) -> String {
        let mut text = String::with_capacity(self.host.len() + 6);
        text.push_str(&self.host);
        if let Some(p) = self.port {
            text.push(':');
            text.push_str(itoa::Buffer::new().format(p));
        }
        text
    }

    /// Writes the Via as [`fmt::Display`] does, without the formatting machinery (what
    /// the message writer calls for every Via).
    pub(crate) fn write(&self, out: &mut impl fmt::Write) -> fmt::Result {
        out.write_str("SIP/2.0/")?;
        out.write_str(self.transport_token())?;
        out.write_char(' ')?;
        out.write_str(&self.host)?;
        if let Some(p) = self.port {
            out.write_char(':')?;
            out.write_str(itoa::Buffer::new().format(p))?;
        }
        out.write_str(self.params.as_str())
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f)
    }
}

/// `text` up to its first whitespace character (all of it if none).
fn until_whitespace(text: &str) -> &str {
    // ASCII first (`char::is_whitespace` takes 0x0B, `u8::is_ascii_whitespace` does not);
    // only a non-ASCII byte needs the Unicode look.
    let end = text
        .bytes()
        .position(|b| b.is_ascii_whitespace() || b == 0x0b || !b.is_ascii());
    match end {
        None => text,
        Some(i) if text.as_bytes().get(i).is_some_and(u8::is_ascii) => {
            text.get(..i).unwrap_or_default()
        }
        Some(_) => text.split(char::is_whitespace).next().unwrap_or_default(),
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_via_with_rport() {
        let v = Via::parse("SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKas3-111;rport").unwrap();
        assert_eq!(&*v.host, "[2001:db8::9:1]");
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.branch(), Some("z9hG4bKas3-111"));
        assert_eq!(v.rport(), Some(None));
    }

    #[test]
    fn rfc3581_received_and_rport_are_stamped() {
        let mut v = Via::parse("SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1;rport").unwrap();
        v.stamp_source("203.0.113.7:40123".parse().unwrap());
        assert_eq!(v.received(), Some("203.0.113.7"));
        assert_eq!(v.rport(), Some(Some(40123)));
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1;received=203.0.113.7;rport=40123"
        );
    }

    #[test]
    fn received_only_when_host_differs_without_rport() {
        let mut v = Via::parse("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1").unwrap();
        v.stamp_source("127.0.0.1:5060".parse().unwrap());
        assert_eq!(v.received(), None);
        let mut v = Via::parse("SIP/2.0/TCP client.example;branch=z9hG4bK1").unwrap();
        v.stamp_source("127.0.0.1:5060".parse().unwrap());
        assert_eq!(v.received(), Some("127.0.0.1"));
    }
}
