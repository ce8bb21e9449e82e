//! Who is calling, and how much to believe it.
//!
//! RFC 3325 lets a network of mutually trusted SIP elements assert a caller's identity in
//! `P-Asserted-Identity`; anyone else can write anything in that header, and in `From`.
//! So identity is *verified* only when the INVITE came from a trusted peer (a carrier
//! trunk, an SBC, the Kamailio in front, listed by CIDR in `[sip] trusted_peers`): then
//! PAI is used when present, else From (the peer vouches for the whole request). From
//! anyone else PAI is ignored and From is only *claimed*.
//!
//! A trusted carrier may add the STIR/SHAKEN verification result as a `verstat` URI
//! parameter (3GPP TS 24.229 §7.2A.20): it is exposed only from a trusted peer, since an
//! untrusted caller could write `verstat=TN-Validation-Passed` itself.

use std::net::IpAddr;

use concierge_sip::wire::{split_list, HeaderName, NameAddr, Request};
use ipnet::IpNet;
use thiserror::Error;

/// The `[sip] trusted_peers` list: source addresses whose identity headers we believe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedPeers(Vec<IpNet>);

/// A `trusted_peers` entry that is neither a CIDR block nor an address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0:?} is not a CIDR block (203.0.113.0/24, 2001:db8::/32) or an IP address")]
pub struct CidrError(pub String);

impl TrustedPeers {
    /// Parses CIDR blocks; a bare address means just that host (/32 or /128).
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, CidrError> {
        entries
            .into_iter()
            .map(|e| {
                let e = e.trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map(|n| n.trunc())
                    .map_err(|_| CidrError(e.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether `ip` is inside one of the blocks. An IPv4-mapped IPv6 address (a dual-stack
    /// socket's view of an IPv4 peer) is matched as the IPv4 address it is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// Whether no block is configured: then no peer is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The caller as the flow, the record and a bridge leg see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The number used, E.164 where it looks like one (`system.caller`); empty when the
    /// caller is anonymous.
    pub number: String,
    /// Asserted by a trusted peer (`system.caller_verified`).
    pub verified: bool,
    /// The carrier's STIR/SHAKEN result, from a trusted peer only (`system.caller_verstat`).
    pub verstat: Option<String>,
    /// The caller asked for privacy (RFC 3323/3325 `Privacy: id`, `user` or `header`):
    /// the number is used for the lookup but never forwarded or logged in clear.
    pub private: bool,
    /// Whether the INVITE came from a trusted peer (lockout counts per number only).
    pub trusted_source: bool,
}

impl CallerIdentity {
    /// The number as log lines may show it.
    pub fn for_log(&self) -> &str {
        if self.private {
            "<private>"
        } else {
            &self.number
        }
    }
}

/// Longest `verstat` value kept; the three defined ones are under 20 bytes.
const MAX_VERSTAT: usize = 40;

/// Works out the caller of `invite`, which arrived from `source`.
pub fn identify(invite: &Request, source: IpAddr, trusted: &TrustedPeers) -> CallerIdentity {
    identify_source(invite, trusted.contains(source))
}

/// Works out the caller of `invite`, which came from a trusted peer or not (by address,
/// or by a verified client certificate).
pub(crate) fn identify_source(invite: &Request, trusted_source: bool) -> CallerIdentity {
    // Only the From URI counts (its display name and parameters are not read).
    let from = &invite.from;
    let asserted = trusted_source
        .then(|| {
            invite
                .headers
                .get_all(&HeaderName::P_ASSERTED_IDENTITY)
                // One header may list a sip: and a tel: address (RFC 3325).
                .flat_map(split_list)
                .filter_map(|v| NameAddr::parse(v).ok())
                .find_map(|na| number_of(&na).map(|number| (na, number)))
        })
        .flatten();
    // A trusted peer that sent PAI without a number in it asserted nothing: its From is
    // then no more than claimed.
    let pai_sent = invite.headers.contains(&HeaderName::P_ASSERTED_IDENTITY);
    let (used, vouched, number) = match &asserted {
        Some((na, number)) => (na, true, number.clone()),
        None => (
            from,
            trusted_source && !pai_sent,
            number_of(from).unwrap_or_default(),
        ),
    };
    let verified = vouched && !number.is_empty();
    let verstat = verified.then(|| verstat_of(used)).flatten();
    let private = invite
        .headers
        .iter()
        .filter(|(name, _)| name.as_str().eq_ignore_ascii_case("Privacy"))
        .flat_map(|(_, v)| v.split(';'))
        .any(|p| {
            let p = p.trim();
            ["id", "user", "header"]
                .iter()
                .any(|w| p.eq_ignore_ascii_case(w))
        });
    CallerIdentity {
        number,
        verified,
        verstat,
        private,
        trusted_source,
    }
}

/// The number in a From or PAI address: its user part (sip:) or subscriber (tel:),
/// normalised; `None` for an anonymous or empty one.
fn number_of(na: &NameAddr) -> Option<String> {
    let user = na.uri.user()?;
    let n = concierge_flow::normalize_e164(user);
    let anonymous = n.is_empty()
        || n.eq_ignore_ascii_case("anonymous")
        || n.eq_ignore_ascii_case("restricted")
        || n.eq_ignore_ascii_case("unavailable");
    (!anonymous).then_some(n)
}

fn verstat_of(na: &NameAddr) -> Option<String> {
    let value = if na.uri.is_sip() {
        na.uri.param("verstat").flatten().map(str::to_owned)
    } else {
        // tel:+4670…;verstat=… keeps its parameters in the opaque text.
        na.uri.as_str().split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("verstat")
                .then(|| v.trim().to_owned())
        })
    }?;
    let ok = !value.is_empty()
        && value.len() <= MAX_VERSTAT
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ok.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use concierge_sip::wire::{parse_datagram, Message};

    fn invite(from: &str, extra: &str) -> Request {
        let text = format!(
            "INVITE sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5061;branch=z9hG4bKx\r\nFrom: {from};tag=a\r\nTo: <sip:ivr@127.0.0.1>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match parse_datagram(text.as_bytes()).unwrap().unwrap() {
            Message::Request(r) => r,
            _ => unreachable!(),
        }
    }

    fn trunk() -> TrustedPeers {
        TrustedPeers::parse(["203.0.113.0/24", "2001:db8::1"]).unwrap()
    }

    const TRUNK: [u8; 4] = [203, 0, 113, 7];
    const STRANGER: [u8; 4] = [198, 51, 100, 9];

    #[test]
    fn pai_from_a_stranger_is_ignored_and_from_is_only_claimed() {
        let r = invite(
            "<sip:anonymous@anonymous.invalid>",
            "P-Asserted-Identity: <sip:+46700000002@evil.example>\r\n",
        );
        let id = identify(&r, STRANGER.into(), &trunk());
        assert_eq!(id.number, "");
        assert!(!id.verified);
        let r = invite("<sip:0046-70-617-07-86@x>", "");
        let id = identify(&r, STRANGER.into(), &trunk());
        assert_eq!((id.number.as_str(), id.verified), ("+46706170786", false));
    }

    #[test]
    fn pai_from_a_trusted_peer_is_the_verified_caller_with_its_verstat() {
        let r = invite(
            "<sip:anonymous@anonymous.invalid>",
            "P-Asserted-Identity: \"A, B\" <sip:+46706170786@trunk;user=phone;verstat=TN-Validation-Passed>, <tel:+46706170786>\r\nPrivacy: id\r\n",
        );
        let id = identify(&r, TRUNK.into(), &trunk());
        assert_eq!(id.number, "+46706170786");
        assert!(id.verified && id.private && id.trusted_source);
        assert_eq!(id.verstat.as_deref(), Some("TN-Validation-Passed"));
        assert_eq!(id.for_log(), "<private>");
    }

    #[test]
    fn a_trusted_peer_vouches_for_from_without_pai_and_tel_verstat_is_read() {
        let id = identify(
            &invite("<sip:+46706170786@pbx>", ""),
            TRUNK.into(),
            &trunk(),
        );
        assert_eq!((id.number.as_str(), id.verified), ("+46706170786", true));
        let r = invite(
            "<sip:x@y>",
            "P-Asserted-Identity: <tel:+46700000002;verstat=TN-Validation-Failed>\r\n",
        );
        let id = identify(&r, TRUNK.into(), &trunk());
        assert_eq!(id.verstat.as_deref(), Some("TN-Validation-Failed"));
        let id = identify(
            &invite("<sip:+4670;verstat=TN-Validation-Passed@x>", ""),
            STRANGER.into(),
            &trunk(),
        );
        assert_eq!(id.verstat, None, "never from a stranger");
    }

    #[test]
    fn a_trusted_pai_without_a_number_leaves_from_only_claimed() {
        let r = invite(
            "<sip:+46706170786@pbx>",
            "P-Asserted-Identity: <sip:anonymous@anonymous.invalid>\r\n",
        );
        let id = identify(&r, TRUNK.into(), &trunk());
        assert_eq!((id.number.as_str(), id.verified), ("+46706170786", false));
    }

    #[test]
    fn cidr_blocks_bare_addresses_and_mapped_v4() {
        let t = trunk();
        assert!(t.contains(IpAddr::from(TRUNK)));
        assert!(!t.contains(IpAddr::from(STRANGER)));
        assert!(t.contains("::ffff:203.0.113.200".parse().unwrap()));
        assert!(t.contains("2001:db8::1".parse().unwrap()));
        assert!(!t.contains("2001:db8::2".parse().unwrap()));
        assert!(TrustedPeers::parse(["10.0.0.0/33"]).is_err());
        assert!(TrustedPeers::parse(["example.com"]).is_err());
        assert!(!TrustedPeers::default().contains("127.0.0.1".parse().unwrap()));
    }
}
