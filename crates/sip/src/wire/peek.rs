//! A look at a raw INVITE without parsing it, and a stateless refusal built from its bytes.
//!
//! Under a flood of new INVITEs the expensive part is everything a message costs before the
//! call logic can say no: the codec, a server transaction, its timers. Admission control
//! decides on what this module reads with a byte scan (the method, the Call-ID, whether the
//! To has a tag) and refuses with a response copied line by line from the request, so an
//! INVITE beyond the budget costs about as much as reading it. Everything here works on
//! bytes and never indexes past what it checked: the input is hostile.

use bytes::Bytes;

/// What admission control needs to know about a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvitePeek<'a> {
    /// The Call-ID's value, trimmed.
    pub call_id: &'a [u8],
    /// Whether the To header has a tag: an in-dialog re-INVITE, not a new call.
    pub to_tag: bool,
}

/// The request line says INVITE: returns its Call-ID and whether the To is tagged.
/// `None` for anything else, and for an INVITE without a Call-ID (the parser answers
/// that one with 400).
pub fn peek_invite(message: &[u8]) -> Option<InvitePeek<'_>> {
    let message = skip_leading_crlf(message);
    if !message.starts_with(b"INVITE ") {
        return None;
    }
    let mut call_id = None;
    let mut to_tag = false;
    // Only a line whose first byte can start `call-id`, `i`, `to` or `t`, or is
    // whitespace `trim` strips, can name one of them: the others are not cut at their
    // colon at all.
    let wanted = |line: &[u8]| {
        matches!(
            line.first(),
            Some(b'c' | b'C' | b'i' | b'I' | b't' | b'T' | b'\r' | b'\n' | b'\x0c')
        )
    };
    for (name, value) in header_lines(message, wanted) {
        if is_header(name, b"call-id", b"i") {
            call_id = Some(trim(value));
        } else if is_header(name, b"to", b"t") {
            to_tag = has_tag(value);
        }
    }
    Some(InvitePeek {
        call_id: call_id.filter(|c| !c.is_empty())?,
        to_tag,
    })
}

/// A response to `request` made from its own lines, with no transaction behind it: its
/// Via, From, To (tagged with `to_tag` when untagged), Call-ID and CSeq, then `extra`
/// header lines. `None` when one of the five is missing.
pub fn stateless_response(
    request: &[u8],
    status: u16,
    reason: &str,
    to_tag: &str,
    extra: &[(&str, &str)],
) -> Option<Bytes> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(format!("SIP/2.0 {status} {reason}\r\n").as_bytes());
    let mut seen = [false; 5];
    for (name, value) in header_lines(skip_leading_crlf(request), |_| true) {
        let which = [
            is_header(name, b"via", b"v"),
            is_header(name, b"from", b"f"),
            is_header(name, b"to", b"t"),
            is_header(name, b"call-id", b"i"),
            is_header(name, b"cseq", b""),
        ];
        let Some(i) = which.iter().position(|w| *w) else {
            continue;
        };
        if let Some(s) = seen.get_mut(i) {
            *s = true;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(trim(value));
        if i == 2 && !has_tag(value) {
            out.extend_from_slice(b";tag=");
            out.extend_from_slice(to_tag.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    if !seen.iter().all(|s| *s) {
        return None;
    }
    for (name, value) in extra {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Some(Bytes::from(out))
}

/// The header lines of a message as (name, value) byte slices, up to the blank line,
/// of those lines `wanted` keeps (it sees each line before it is cut at its colon).
/// A folded continuation line (leading space or tab) is not joined: it is skipped, and a
/// header that needs it comes out with its first line only, which is still a valid value
/// for the five headers a refusal copies.
fn header_lines(
    message: &[u8],
    wanted: impl Fn(&[u8]) -> bool,
) -> impl Iterator<Item = (&[u8], &[u8])> {
    lines(message)
        .skip(1)
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
        .filter(|line| !matches!(line.first(), Some(b' ' | b'\t')))
        .filter(move |line| wanted(line))
        .filter_map(|line| {
            let colon = line.iter().position(|b| *b == b':')?;
            let (name, rest) = line.split_at(colon);
            Some((trim(name), rest.get(1..).unwrap_or_default()))
        })
}

/// `message.split(|b| *b == b'\n')`, each line found by memchr rather than a test per byte.
fn lines(message: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(message);
    std::iter::from_fn(move || {
        let text = rest?;
        match memchr::memchr(b'\n', text) {
            Some(lf) => {
                rest = text.get(lf + 1..);
                text.get(..lf)
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

/// RFC 3261 §7.5: CRLFs before the start line are ignored; they must not hide an INVITE.
fn skip_leading_crlf(message: &[u8]) -> &[u8] {
    let start = message
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(message.len());
    message.get(start..).unwrap_or_default()
}

fn is_header(name: &[u8], long: &[u8], compact: &[u8]) -> bool {
    name.eq_ignore_ascii_case(long) || (!compact.is_empty() && name.eq_ignore_ascii_case(compact))
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// Whether a From/To value carries a `tag` parameter (outside the `<…>` URI).
fn has_tag(value: &[u8]) -> bool {
    let params = match value.iter().rposition(|b| *b == b'>') {
        Some(end) => value.get(end..).unwrap_or_default(),
        None => value,
    };
    params.split(|b| *b == b';').skip(1).any(|p| {
        let name = p.split(|b| *b == b'=').next().unwrap_or_default();
        trim(name).eq_ignore_ascii_case(b"tag")
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKa;rport\r\nv: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKb\r\nf: <sip:a@127.0.0.1>;tag=x\r\nTo: <sip:ivr@127.0.0.1;tag=uri-param-not-a-tag>\r\ni:  abc@host \r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn a_new_invite_is_seen_with_its_call_id_and_untagged_to() {
        let p = peek_invite(INVITE.as_bytes()).unwrap();
        assert_eq!(p.call_id, b"abc@host");
        assert!(!p.to_tag, "a tag inside the URI is not the To's tag");
        let re = INVITE.replace("Content-Length", "t: <sip:ivr@h>;tag=9\r\nContent-Length");
        assert!(peek_invite(re.as_bytes()).unwrap().to_tag);
        let padded = format!("\r\n\r\n{INVITE}");
        assert_eq!(peek_invite(padded.as_bytes()).unwrap().call_id, b"abc@host");
        assert!(stateless_response(padded.as_bytes(), 503, "x", "t", &[]).is_some());
        assert!(peek_invite(b"ACK sip:x SIP/2.0\r\nCall-ID: a\r\n\r\n").is_none());
        assert!(peek_invite(b"INVITE sip:x SIP/2.0\r\nTo: <sip:y>\r\n\r\n").is_none());
    }

    #[test]
    fn a_stateless_refusal_copies_the_transaction_headers_and_tags_the_to() {
        let r = stateless_response(
            INVITE.as_bytes(),
            503,
            "Service Unavailable",
            "t1",
            &[("Retry-After", "5")],
        )
        .unwrap();
        let parsed = crate::wire::parse_datagram(&r).unwrap().unwrap();
        let crate::wire::Message::Response(resp) = parsed else {
            panic!("a response")
        };
        assert_eq!(resp.status.0, 503);
        assert_eq!(resp.vias.len(), 2, "every Via, in order");
        assert_eq!(resp.to.tag(), Some("t1"));
        assert_eq!(resp.call_id, "abc@host");
        assert_eq!(resp.cseq.seq, 1);
        assert_eq!(
            resp.headers
                .get(&crate::wire::HeaderName::RETRY_AFTER)
                .map(str::to_owned),
            Some("5".to_owned())
        );
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let mut x: u32 = 0x1234_5678;
        for len in 0..2000usize {
            let mut bytes = b"INVITE ".to_vec();
            bytes.extend((0..len % 300).map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                const ALPHABET: &[u8] = b"\r\n:;<> it\xc3";
                ALPHABET
                    .get(x as usize % ALPHABET.len())
                    .copied()
                    .unwrap_or(b' ')
            }));
            let _ = peek_invite(&bytes);
            let _ = stateless_response(&bytes, 503, "x", "t", &[]);
        }
        assert!(stateless_response(b"INVITE x SIP/2.0\r\n\r\n", 503, "x", "t", &[]).is_none());
    }
}
