//! SIP messages as Concierge sees them.
//!
//! This module is the whole message codec: no codec crate is used (see the README's
//! dependency section for why). Everything outside sees the types defined here: a
//! [`Request`] or [`Response`] keeps the headers every layer needs (Via, From, To, Call-ID,
//! CSeq) already parsed and checked, and every other header as an ordered name/value list.
//!
//! Parsing is split in steps, each with its own file:
//! `framing` finds one message in a datagram or a stream (size limits, the empty line;
//! `content_length` reads the header that delimits the body), `parse` splits the start
//! line and the header fields and turns them into our types (`via`, `uri` and `host` for
//! the structured values), and `sanity` applies the checks of RFC 3261 §8.2 that decide
//! which error response a broken request gets. A datagram is not walked twice: the parser
//! reads Content-Length by framing's rules on its own walk over the lines, and framing's
//! answers keep their precedence (see `parse_datagram_head`). The URIs and parameters
//! a message keeps share one copy of its header section (`shared`) instead of a copy
//! each. The usual spellings (`sip:`, `SIP/2.0/UDP `, a canonical header name,
//! `host:port` with nothing to trim) take quick ways that give what the general ones
//! give; anything else takes the general way.
// Peer bytes reach every function here: a slice at a byte offset inside a multi-byte
// character, or an index past the end, would be a remote panic. Use `get(..)` instead.
#![deny(clippy::string_slice, clippy::indexing_slicing)]

mod content_length;
mod framing;
mod header;
mod host;
mod message;
mod method;
mod params;
mod parse;
mod peek;
mod reply;
mod sanity;
mod shared;
mod uri;
mod via;
mod write;

/// `text.trim()`, without the Unicode whitespace tables in the usual case: spaces and tabs
/// (the space after every header's colon) are stripped as bytes, and what is left needs
/// the full trim only when an end is not printable ASCII. Stripping whitespace first does
/// not change what `trim` leaves.
pub(crate) fn trim(text: &str) -> &str {
    let printable = |b: Option<&u8>| b.is_some_and(|b| (b'!'..=b'~').contains(b));
    let bytes = text.as_bytes();
    if printable(bytes.first()) && printable(bytes.last()) {
        return text;
    }
    let blank = |b: &u8| matches!(b, b' ' | b'\t');
    let start = bytes.iter().position(|b| !blank(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |i| i + 1);
    let inner = text.get(start..end).unwrap_or_default();
    let inner_bytes = inner.as_bytes();
    if printable(inner_bytes.first()) && printable(inner_bytes.last()) {
        inner
    } else {
        inner.trim()
    }
}

/// `text.split_once(byte)` for an ASCII `byte`, cheaper than str's char search.
pub(crate) fn split_at_byte(text: &str, byte: u8) -> Option<(&str, &str)> {
    let i = find_byte(byte, text.as_bytes())?;
    Some((text.get(..i)?, text.get(i + 1..)?))
}

/// `1*DIGIT` as a number: `None` for anything but ASCII digits, for nothing, and for a
/// number beyond `u32` (what `str::parse` with an all-digits check gave, without the
/// general integer parser). Every number the codec reads (CSeq, Max-Forwards,
/// Content-Length, a port) is read by this one fold.
#[inline]
pub(crate) fn decimal(text: &str) -> Option<u32> {
    if text.is_empty() {
        return None;
    }
    text.bytes().try_fold(0u32, |n, b| {
        let digit = b.wrapping_sub(b'0');
        (digit < 10).then_some(())?;
        n.checked_mul(10)?.checked_add(u32::from(digit))
    })
}

/// `text.split(byte)` for an ASCII `byte`, cut by [`find_byte`].
pub(crate) fn split_bytes(text: &str, byte: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        match split_at_byte(text, byte) {
            Some((piece, after)) => {
                rest = Some(after);
                Some(piece)
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

/// Where `byte` first is in `bytes`. Up to 16 bytes a plain loop costs less than a
/// memchr call's set-up; from there memchr's wide compares win (measured on call_cost:
/// 8 and 32 both cost more than 16).
pub(crate) fn find_byte(byte: u8, bytes: &[u8]) -> Option<usize> {
    if bytes.len() <= 16 {
        bytes.iter().position(|b| *b == byte)
    } else {
        memchr::memchr(byte, bytes)
    }
}

pub(crate) use framing::datagram_head;
pub use framing::{
    frame_datagram, Framed, FramingError, StreamFramer, StreamItem, MAX_MESSAGE_SIZE,
};
pub use header::{split_list, HeaderName, Headers};
pub use message::{CSeq, Message, Request, Response, StatusCode};
pub use method::Method;
pub(crate) use parse::parse_datagram_head;
pub use parse::{parse_datagram, parse_message, ParseError};
pub use peek::{peek_invite, stateless_response, InvitePeek};
pub use reply::{bad_request_for, dialog_response_to, response_to};
pub use sanity::{check_request, Rejection};
pub use uri::{NameAddr, SipUri};
pub use via::{Transport, Via, MAGIC_COOKIE};
