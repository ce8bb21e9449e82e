//! DTMF in SIP INFO bodies: `application/dtmf-relay` (`Signal=5` / `Duration=160`) and
//! `application/dtmf` (the key alone). No SIP types here: the caller passes the
//! Content-Type and the body.
// Peer bytes reach every function here: a slice at a byte offset inside a multi-byte
// character, or an index past the end, would be a remote panic. Use `get(..)` instead.
#![deny(clippy::string_slice, clippy::indexing_slicing)]

/// The key an INFO body carries, or `None` for any other or garbled body.
pub fn parse(content_type: &str, body: &[u8]) -> Option<char> {
    let mime = content_type.split(';').next()?.trim().to_ascii_lowercase();
    let text = std::str::from_utf8(body).ok()?;
    let value = match mime.as_str() {
        "application/dtmf-relay" => text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?,
        "application/dtmf" => text.trim(),
        _ => return None,
    };
    // Some devices send the RFC 4733 event number instead of the key: 10 is *, 11 is #.
    match value {
        "10" => Some('*'),
        "11" => Some('#'),
        v if v.chars().count() == 1 => {
            let c = v.chars().next()?.to_ascii_uppercase();
            matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
        }
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::parse;

    #[test]
    fn dtmf_relay_bodies() {
        assert_eq!(
            parse("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n"),
            Some('5')
        );
        assert_eq!(
            parse("Application/DTMF-Relay", b"signal= #\nduration=100"),
            Some('#')
        );
        assert_eq!(parse("application/dtmf-relay", b"Signal=10\r\n"), Some('*'));
        assert_eq!(parse("application/dtmf-relay", b"Signal=11\r\n"), Some('#'));
        assert_eq!(parse("application/dtmf-relay", b"Signal=b\r\n"), Some('B'));
    }

    #[test]
    fn dtmf_bodies_and_garbage() {
        assert_eq!(parse("application/dtmf", b"7"), Some('7'));
        assert_eq!(parse("application/dtmf", b"77"), None);
        assert_eq!(parse("application/dtmf-relay", b"Duration=100"), None);
        assert_eq!(parse("text/plain", b"5"), None);
        assert_eq!(parse("application/dtmf", &[0xff, 0xfe]), None);
        assert_eq!(parse("application/dtmf-relay", b"Signal=X"), None);
    }
}
