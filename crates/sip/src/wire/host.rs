//! `host [":" port]`: the part of a SIP URI (RFC 3261 §19.1.1) and of a Via `sent-by`
//! (§20.42) that says where to send. Peer bytes: every step looks at bytes through
//! `get`/`split_once`, never at a computed index.

use super::{decimal, split_at_byte, trim};
use std::borrow::Cow;
use std::net::Ipv6Addr;

/// Why a `hostport` is not one.
pub(crate) type HostError = &'static str;

/// Splits and checks `host [":" port]`, whitespace around the colon allowed (`COLON`,
/// §25.1). The host comes back as written, except that an IP address is written in its
/// canonical form (`[2001:DB8:0::1]` becomes `[2001:db8::1]`), so two spellings of one
/// address compare equal; an IPv6 reference keeps its brackets. Only a rewritten IPv6
/// reference is a new string: std's IPv4 parser takes exactly the canonical dotted quad
/// (no leading zeros, four decimal octets), so an IPv4 address that parses is already in
/// the form it would be written in.
pub(crate) fn parse_host_port(text: &str) -> Result<(Cow<'_, str>, Option<u16>), HostError> {
    match usual_host_port(text) {
        Some((host, port)) => Ok((Cow::Borrowed(host), port)),
        None => any_host_port(text),
    }
}

/// [`parse_host_port`] of any text, the general way.
fn any_host_port(text: &str) -> Result<(Cow<'_, str>, Option<u16>), HostError> {
    let text = trim(text);
    if let Some(rest) = text.strip_prefix('[') {
        // IPv6reference = "[" IPv6address "]"
        let (inside, after) = rest.split_once(']').ok_or("unclosed IPv6 reference")?;
        let ip: Ipv6Addr = inside.parse().map_err(|_| "bad IPv6 address")?;
        let port = match after.trim_start() {
            "" => None,
            after => Some(parse_port(
                after.strip_prefix(':').ok_or("junk after IPv6 reference")?,
            )?),
        };
        return Ok((Cow::Owned(format!("[{ip}]")), port));
    }
    let (host, port) = match split_at_byte(text, b':') {
        Some((host, port)) => (trim_end(host), Some(parse_port(port)?)),
        None => (text, None),
    };
    check_host_name(host)?;
    Ok((Cow::Borrowed(host), port))
}

/// `hostname [":" port]` written with nothing to trim, as nearly every one is: the host
/// and port in one pass over the bytes. `None` for anything else (also for a broken
/// one), which [`parse_host_port`] then reads the general way; what this accepts, that
/// way reads the same.
fn usual_host_port(text: &str) -> Option<(&str, Option<u16>)> {
    let bytes = text.as_bytes();
    // As check_host_name: no dot first or after another; one may end the name.
    let mut after_dot = true;
    let mut colon = None;
    for (i, b) in bytes.iter().enumerate() {
        after_dot = match HOST_BYTES.get(usize::from(*b)) {
            Some(HostByte::Label) => false,
            Some(HostByte::Dot) if !after_dot => true,
            _ if *b == b':' => {
                colon = Some(i);
                break;
            }
            _ => return None,
        };
    }
    let Some(colon) = colon else {
        return (!bytes.is_empty()).then_some((text, None));
    };
    let (host, port) = (text.get(..colon)?, text.get(colon + 1..)?);
    if host.is_empty() {
        return None;
    }
    let port = decimal(port).and_then(|n| u16::try_from(n).ok())?;
    Some((host, Some(port)))
}

/// `port = 1*DIGIT`, and it must fit a port number.
fn parse_port(text: &str) -> Result<u16, HostError> {
    // Nearly always a digit comes first: nothing to trim.
    let text = match text.as_bytes().first() {
        Some(b'0'..=b'9') => text,
        _ => text.trim_start(),
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("bad port");
    }
    // Digits only, so nothing but its size can fail it (leading zeros allowed, as
    // `str::parse` allows them).
    decimal(text)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or("port out of range")
}

/// `hostname / IPv4address` (§25.1): labels of letters, digits and `-`, joined by dots,
/// an optional trailing dot. `_` is let through as deployed DNS names carry it.
fn check_host_name(host: &str) -> Result<(), HostError> {
    if host.is_empty() {
        return Err("empty host");
    }
    let labels = host.strip_suffix('.').unwrap_or(host);
    // Every label non-empty: no dot first, last or after another.
    let mut after_dot = true;
    for b in labels.bytes() {
        after_dot = match HOST_BYTES.get(usize::from(b)) {
            Some(HostByte::Label) => false,
            Some(HostByte::Dot) if !after_dot => true,
            _ => return Err("bad host name"),
        };
    }
    if after_dot {
        return Err("bad host name");
    }
    Ok(())
}

/// What a byte can be in a host name: one load per byte tells, where the tests of
/// `is_ascii_alphanumeric` and the punctuation were several.
#[derive(Clone, Copy)]
enum HostByte {
    Bad,
    Label,
    Dot,
}

/// [`HostByte`] of every byte value.
#[allow(
    clippy::indexing_slicing,
    reason = "built at compile time, where an index out of bounds fails the build"
)]
static HOST_BYTES: [HostByte; 256] = {
    let mut table = [HostByte::Bad; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
            table[b] = HostByte::Label;
        } else if c == b'.' {
            table[b] = HostByte::Dot;
        }
        b += 1;
    }
    table
};

/// `text.trim_end()`, without the Unicode look when the last byte is printable ASCII
/// (nothing to trim).
fn trim_end(text: &str) -> &str {
    match text.as_bytes().last() {
        Some(b'!'..=b'~') => text,
        _ => text.trim_end(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_addresses_and_ports() {
        assert_eq!(
            parse_host_port("example.com"),
            Ok(("example.com".into(), None))
        );
        assert_eq!(
            parse_host_port("a-b.example.com."),
            Ok(("a-b.example.com.".into(), None))
        );
        assert_eq!(
            parse_host_port("192.0.2.1:5060"),
            Ok(("192.0.2.1".into(), Some(5060)))
        );
        assert_eq!(
            parse_host_port("host : 5070"),
            Ok(("host".into(), Some(5070)))
        );
    }

    #[test]
    fn ipv6_references_keep_brackets_and_read_canonically() {
        assert_eq!(
            parse_host_port("[2001:DB8:0::1]:5070"),
            Ok(("[2001:db8::1]".into(), Some(5070)))
        );
        assert_eq!(parse_host_port("[::1]"), Ok(("[::1]".into(), None)));
        for bad in [
            "[::1",
            "[nonsense]",
            "[::1]x",
            "[::1]:",
            "2001:db8::1",
            "[1.2.3.4]",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_ipv4_address_that_parses_is_already_written_canonically() {
        // Why an IPv4 host is kept as written: std reads only the canonical form.
        for text in [
            "192.0.2.1",
            "0.0.0.0",
            "255.255.255.255",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.256",
            "1.2.3",
            "1.2.3.4.5",
            "0x1.2.3.4",
            "1.2.3.+4",
            "1.2.3.0000",
            "00.0.0.0",
        ] {
            if let Ok(ip) = text.parse::<std::net::Ipv4Addr>() {
                assert_eq!(ip.to_string(), text);
            }
        }
        assert!(matches!(
            parse_host_port("192.0.2.1:5060"),
            Ok((Cow::Borrowed(_), _))
        ));
    }

    #[test]
    fn the_usual_way_reads_what_the_general_way_reads() {
        for text in [
            "example.com",
            "a-b.example.com.",
            "192.0.2.1:5060",
            "h:0065535",
            "h:65536",
            "a..b",
            ".a",
            "a.:5",
            "_sip.x",
            "host:",
            ":5060",
            "h:5x",
            "h:+5",
            "h:5:6",
            "",
            ".",
        ] {
            if let Some((host, port)) = usual_host_port(text) {
                assert_eq!(
                    any_host_port(text),
                    Ok((Cow::Borrowed(host), port)),
                    "{text:?}"
                );
            }
        }
        // And on strings made of the bytes that matter.
        let mut x: u32 = 0x9e37_79b9;
        for len in 0..12usize {
            for _ in 0..500 {
                let text: String = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        *['a', '.', ':', '5', '0', ' ', '-', '[', 'é']
                            .get(x as usize % 9)
                            .unwrap_or(&'a')
                    })
                    .collect();
                if let Some((host, port)) = usual_host_port(&text) {
                    assert_eq!(any_host_port(&text), Ok((Cow::Borrowed(host), port)));
                }
            }
        }
        assert_eq!(usual_host_port("h:5060"), Some(("h", Some(5060))));
        assert_eq!(usual_host_port("a."), Some(("a.", None)));
        assert_eq!(usual_host_port("a..b"), None);
    }

    #[test]
    fn bad_hosts_and_ports_are_errors() {
        for bad in [
            "",
            ":5060",
            "host:",
            "host:65536",
            "host:-1",
            "host:5x",
            "a..b",
            "ho st",
            "é.example",
            "host:5060:1",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad:?}");
        }
    }
}
