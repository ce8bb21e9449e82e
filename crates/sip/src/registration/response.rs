//! Reading the registrar's answers: what a 2xx grants (RFC 3261 §10.2.4), the routes it
//! returns (RFC 3608 Service-Route, RFC 3327 Path), a 423's Min-Expires (§10.2.8) and a
//! Retry-After (§20.33). Every number is checked and bounded; a list is cut short.

use std::time::Duration;

use super::config::MAX_EXPIRES;
use crate::wire::{HeaderName, NameAddr, Response, SipUri};

/// Contacts of a 2xx we look through for ours: an address-of-record with more bindings
/// than this (other phones of a hosted PBX account) still finds ours among the first.
const MAX_CONTACTS: usize = 64;

/// Service-Route or Path entries kept: a route set longer than this is not a real one.
pub(super) const MAX_ROUTES: usize = 8;

/// The longest Retry-After we honour (RFC 3261 §20.33); a registrar asking for more is
/// tried again after this anyway.
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// RFC 3261 §10.2.4: how long a 2xx binds `ours`. The `expires` parameter of our Contact
/// in the response's Contact list, else its `Expires` header, else what we asked. Other
/// bindings of the address-of-record (other devices) are skipped. When our Contact is not
/// listed but exactly one is (a registrar that rewrote it, e.g. behind NAT), that one is
/// ours. Never more than we `asked` for: refreshing early costs nothing, late loses calls.
pub(super) fn granted(response: &Response, ours: &SipUri, asked: u32) -> u32 {
    let contacts: Vec<NameAddr> = response
        .headers
        .get_all(&HeaderName::CONTACT)
        .take(MAX_CONTACTS)
        .filter_map(|c| NameAddr::parse(c).ok())
        .collect();
    let mine = contacts
        .iter()
        .find(|c| same_binding(&c.uri, ours))
        .or(match contacts.as_slice() {
            [only] => Some(only),
            _ => None,
        });
    let from_contact = mine.and_then(|c| seconds(c.param("expires").flatten()?));
    let from_header = || seconds(response.header(&HeaderName::EXPIRES)?);
    from_contact
        .or_else(from_header)
        .unwrap_or(asked)
        .min(asked)
}

/// §10.2.8: the interval a 423 asks for at least.
pub(super) fn min_expires(response: &Response) -> Option<u32> {
    seconds(response.header(&HeaderName::MIN_EXPIRES)?)
}

/// §20.33: `Retry-After: 120` (a comment or parameters may follow), bounded.
pub(super) fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.header(&HeaderName::RETRY_AFTER)?;
    let digits = value.trim().split([' ', '(', ';']).next()?;
    let secs: u64 = digits.parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// The entries of a route list header (Service-Route, Path), in order, at most
/// [`MAX_ROUTES`]; entries that are no SIP URI (nothing we could send to) are dropped.
pub(super) fn routes(response: &Response, name: &HeaderName) -> Vec<NameAddr> {
    response
        .headers
        .get_all(name)
        .filter_map(|v| NameAddr::parse(v).ok())
        .filter(|r| r.uri.is_sip() && !r.uri.host().is_empty())
        .take(MAX_ROUTES)
        .collect()
}

/// A delta-seconds value (§25.1) up to [`MAX_EXPIRES`]; larger values are cut to it,
/// junk is `None`.
fn seconds(text: &str) -> Option<u32> {
    let text = text.trim();
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = text.parse().ok()?;
    Some(n.min(u64::from(MAX_EXPIRES)) as u32)
}

/// Whether a Contact of the response is the one we registered: same scheme, user, host
/// (case aside), port and transport, an absent port or transport taken as the default
/// (registrars write them back either way).
fn same_binding(theirs: &SipUri, ours: &SipUri) -> bool {
    let transport = |u: &SipUri| {
        u.param("transport")
            .flatten()
            .unwrap_or(if u.scheme() == "sips" { "tls" } else { "udp" })
            .to_ascii_lowercase()
    };
    let port = |u: &SipUri| {
        u.port()
            .unwrap_or(if transport(u) == "tls" { 5061 } else { 5060 })
    };
    theirs.scheme() == ours.scheme()
        && theirs.user() == ours.user()
        && theirs.host().eq_ignore_ascii_case(ours.host())
        && port(theirs) == port(ours)
        && transport(theirs) == transport(ours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{parse_datagram, Message};

    fn ok(extra: &str) -> Response {
        let text = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKr\r\nFrom: <sip:u@c.example>;tag=f\r\nTo: <sip:u@c.example>;tag=t\r\nCall-ID: r1\r\nCSeq: 2 REGISTER\r\n{extra}\r\n"
        );
        match parse_datagram(text.as_bytes()).unwrap().unwrap() {
            Message::Response(r) => r,
            _ => unreachable!(),
        }
    }

    fn ours() -> SipUri {
        SipUri::parse("sip:concierge@192.0.2.10:5060").unwrap()
    }

    #[test]
    fn our_contact_s_expires_wins_over_the_header() {
        let r = ok("Contact: <sip:concierge@192.0.2.10>;expires=600\r\nExpires: 900\r\n");
        assert_eq!(granted(&r, &ours(), 3600), 600);
    }

    #[test]
    fn without_a_contact_the_expires_header_then_what_we_asked() {
        assert_eq!(granted(&ok("Expires: 900\r\n"), &ours(), 3600), 900);
        assert_eq!(granted(&ok(""), &ours(), 3600), 3600);
    }

    #[test]
    fn a_grant_above_what_we_asked_or_junk_is_not_believed() {
        let r = ok("Contact: <sip:concierge@192.0.2.10:5060>;expires=99999999999999\r\n");
        assert_eq!(granted(&r, &ours(), 3600), 3600);
        let r = ok("Contact: <sip:concierge@192.0.2.10:5060>;expires=-5\r\nExpires: 120\r\n");
        assert_eq!(granted(&r, &ours(), 3600), 120);
    }

    #[test]
    fn retry_after_takes_its_seconds_and_is_bounded() {
        let r = ok("Retry-After: 18000 (maintenance);duration=60\r\n");
        assert_eq!(retry_after(&r), Some(MAX_RETRY_AFTER));
        let r = ok("Retry-After: 30\r\n");
        assert_eq!(retry_after(&r), Some(Duration::from_secs(30)));
        assert_eq!(retry_after(&ok("Retry-After: soon\r\n")), None);
    }

    #[test]
    fn route_lists_keep_sip_uris_only_and_at_most_eight() {
        let many: String = (0..20)
            .map(|i| format!("Service-Route: <sip:p{i}.example;lr>\r\n"))
            .collect();
        let r = ok(&format!("Service-Route: <tel:+1>\r\n{many}"));
        let got = routes(&r, &HeaderName::SERVICE_ROUTE);
        assert_eq!(got.len(), MAX_ROUTES);
        assert_eq!(got[0].uri.as_str(), "sip:p0.example;lr");
    }
}
