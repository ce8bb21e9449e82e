//! Finding one message's bytes: in a datagram (RFC 3261 §18.3, message per datagram) or in
//! a byte stream (TCP, where Content-Length is the only frame boundary).

use std::sync::LazyLock;

use super::content_length::content_length_of;
use bytes::{Buf, Bytes, BytesMut};
use memchr::memmem::Finder;
use thiserror::Error;

/// Upper bound for one message on any transport. A UDP datagram cannot be larger; on TCP
/// it bounds what a peer can make us buffer before we give up on the connection.
pub const MAX_MESSAGE_SIZE: usize = 65_535;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
/// Why bytes do not frame as one SIP message.
pub enum FramingError {
    #[error("message larger than {MAX_MESSAGE_SIZE} bytes")]
    /// Larger than [`MAX_MESSAGE_SIZE`].
    TooLarge,
    #[error("no empty line after the headers")]
    /// No empty line ends the header section.
    NoHeaderEnd,
    #[error("header section is not UTF-8")]
    /// The header section is not UTF-8.
    NotUtf8,
    #[error("invalid Content-Length")]
    /// Content-Length is not a number.
    BadContentLength,
    #[error("Content-Length {declared} but only {available} body bytes")]
    /// The body is shorter than Content-Length says.
    BodyTruncated {
        /// Bytes Content-Length announced.
        declared: usize,
        /// Bytes there were.
        available: usize,
    },
    #[error("Content-Length missing on a stream transport")]
    /// A stream message without Content-Length (RFC 3261 §18.3 requires it).
    MissingContentLength,
}

/// One framed message: the header section (start line to the empty line, inclusive) and
/// the body as delimited by Content-Length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed<'a> {
    /// Start line and header section, including the empty line.
    pub head: &'a [u8],
    /// Exactly Content-Length bytes of body.
    pub body: &'a [u8],
}

/// Frames a datagram. `Ok(None)` is a keep-alive (only CR/LF bytes, RFC 5626 §3.5.1).
///
/// RFC 3261 §18.3: on a datagram transport a missing Content-Length means the body runs to
/// the end of the datagram, bytes beyond Content-Length are discarded, and a
/// Content-Length larger than what arrived makes the message unusable (a request gets
/// 400, which the caller builds from [`FramingError`] and the head).
pub fn frame_datagram(data: &[u8]) -> Result<Option<Framed<'_>>, FramingError> {
    let Some((head, rest)) = datagram_head(data)? else {
        return Ok(None);
    };
    let body = datagram_body(rest, content_length_of(head)?)?;
    Ok(Some(Framed {
        head: head.as_bytes(),
        body,
    }))
}

/// The first steps of [`frame_datagram`]: the header section as text and every byte after
/// it, Content-Length not yet read. `Ok(None)` is a keep-alive.
pub(crate) fn datagram_head(data: &[u8]) -> Result<Option<(&str, &[u8])>, FramingError> {
    if data.len() > MAX_MESSAGE_SIZE {
        return Err(FramingError::TooLarge);
    }
    // §7.5: CRLFs before the start line are ignored.
    let start = data.iter().position(|b| *b != b'\r' && *b != b'\n');
    let Some(start) = start else { return Ok(None) };
    let data = data.get(start..).unwrap_or_default();
    let head_len = head_length(data).ok_or(FramingError::NoHeaderEnd)?;
    let (head, rest) = data
        .split_at_checked(head_len)
        .ok_or(FramingError::NoHeaderEnd)?;
    let head = std::str::from_utf8(head).map_err(|_| FramingError::NotUtf8)?;
    Ok(Some((head, rest)))
}

/// The last step of [`frame_datagram`]: the body, given what follows the header section
/// and the Content-Length it declared.
pub(crate) fn datagram_body(rest: &[u8], declared: Option<usize>) -> Result<&[u8], FramingError> {
    match declared {
        None => Ok(rest),
        Some(declared) => rest.get(..declared).ok_or(FramingError::BodyTruncated {
            declared,
            available: rest.len(),
        }),
    }
}

/// What a [`StreamFramer`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    /// One whole message.
    Message {
        /// Start line and header section.
        head: Bytes,
        /// The body.
        body: Bytes,
    },
    /// A CRLFCRLF keep-alive ping; RFC 5626 §4.4.1 asks for a CRLF pong.
    Ping,
}

/// Splits a TCP byte stream into messages, however the reads cut it: several messages in
/// one read, or one message across many.
///
/// A peer may send a message a byte per segment. Each byte is therefore looked at once:
/// the search for the end of the headers resumes where it stopped, and the header section
/// is read for Content-Length once, not on every read of the body (both used to be
/// repeated per read: CPU quadratic in the message size for a byte-per-segment sender).
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: BytesMut,
    /// How far `buf` was searched for the empty line without finding it.
    scanned: usize,
    /// Header and body length of the message at the front, once its headers are complete.
    pending: Option<(usize, usize)>,
}

impl StreamFramer {
    /// A framer with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Called by the driver with every read from the connection; then drain the framed items.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete item, `Ok(None)` when more bytes are needed. An error means the
    /// stream can no longer be framed and the connection must be closed.
    pub fn next_item(&mut self) -> Result<Option<StreamItem>, FramingError> {
        if self.pending.is_none() && self.buf.starts_with(b"\r\n\r\n") {
            self.buf.advance(4);
            self.scanned = 0;
            return Ok(Some(StreamItem::Ping));
        }
        // A lone CRLF between messages is allowed (§7.5); wait if it may become a ping.
        let (head_len, body_len) = match self.pending {
            Some(lengths) => lengths,
            None => {
                if self.scanned == 0 {
                    let skip = self.buf.iter().position(|b| *b != b'\r' && *b != b'\n');
                    match skip {
                        None if self.buf.len() >= 4 => self.buf.clear(),
                        None => return Ok(None),
                        Some(n) if n > 0 => self.buf.advance(n),
                        Some(_) => {}
                    }
                }
                // The empty line may straddle the end of what was searched: back up 3.
                let from = self.scanned.saturating_sub(3);
                let Some(head_len) = head_length_from(&self.buf, from) else {
                    self.scanned = self.buf.len();
                    if self.buf.len() > MAX_MESSAGE_SIZE {
                        return Err(FramingError::TooLarge);
                    }
                    return Ok(None);
                };
                let head = self.buf.get(..head_len).unwrap_or_default();
                let body_len = content_length(head)?.ok_or(FramingError::MissingContentLength)?;
                if head_len.saturating_add(body_len) > MAX_MESSAGE_SIZE {
                    return Err(FramingError::TooLarge);
                }
                self.pending = Some((head_len, body_len));
                (head_len, body_len)
            }
        };
        if self.buf.len() < head_len + body_len {
            return Ok(None);
        }
        self.pending = None;
        self.scanned = 0;
        let head = self.buf.split_to(head_len).freeze();
        let body = self.buf.split_to(body_len).freeze();
        Ok(Some(StreamItem::Message { head, body }))
    }

    /// Bytes held that do not yet form a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Like [`head_length`], searching from byte `from` on.
fn head_length_from(data: &[u8], from: usize) -> Option<usize> {
    head_length(data.get(from..)?).map(|n| n + from)
}

/// Length of the header section including the terminating empty line.
fn head_length(data: &[u8]) -> Option<usize> {
    // Built once: `memmem::find` would build a searcher for every message.
    static EMPTY_LINE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\r\n\r\n"));
    EMPTY_LINE.find(data).map(|i| i + 4)
}

/// The Content-Length the header section declares, if any (see [`content_length_of`]).
fn content_length(head: &[u8]) -> Result<Option<usize>, FramingError> {
    content_length_of(std::str::from_utf8(head).map_err(|_| FramingError::NotUtf8)?)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    const OPTIONS: &str =
        "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 5\r\n\r\nhello";

    #[test]
    fn datagram_without_content_length_takes_the_rest() {
        let f = frame_datagram(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\nbody!")
            .unwrap()
            .unwrap();
        assert_eq!(f.body, b"body!");
    }

    #[test]
    fn datagram_extra_bytes_after_content_length_are_discarded() {
        let f = frame_datagram(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 2\r\n\r\nbody!")
            .unwrap()
            .unwrap();
        assert_eq!(f.body, b"bo");
    }

    #[test]
    fn datagram_with_too_large_content_length_is_rejected() {
        let e = frame_datagram(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 50\r\n\r\nbody!")
            .unwrap_err();
        assert_eq!(
            e,
            FramingError::BodyTruncated {
                declared: 50,
                available: 5
            }
        );
    }

    #[test]
    fn keepalive_datagram_is_not_a_message() {
        assert_eq!(frame_datagram(b"\r\n\r\n").unwrap(), None);
    }

    #[test]
    fn stream_with_two_messages_in_one_read() {
        let mut f = StreamFramer::new();
        f.push(format!("{OPTIONS}{OPTIONS}").as_bytes());
        for _ in 0..2 {
            match f.next_item().unwrap() {
                Some(StreamItem::Message { body, .. }) => assert_eq!(&body[..], b"hello"),
                other => panic!("expected a message, got {other:?}"),
            }
        }
        assert_eq!(f.next_item().unwrap(), None);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn stream_with_one_message_across_many_reads() {
        let mut f = StreamFramer::new();
        let bytes = OPTIONS.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            f.push(&[*b]);
            let item = f.next_item().unwrap();
            if i + 1 < bytes.len() {
                assert_eq!(item, None, "complete too early at byte {i}");
            } else {
                assert!(matches!(item, Some(StreamItem::Message { .. })));
            }
        }
    }

    #[test]
    fn stream_ping_and_missing_content_length() {
        let mut f = StreamFramer::new();
        f.push(b"\r\n\r\n");
        assert_eq!(f.next_item().unwrap(), Some(StreamItem::Ping));
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(f.next_item(), Err(FramingError::MissingContentLength));
    }

    #[test]
    fn stream_rejects_oversized_without_header_end() {
        let mut f = StreamFramer::new();
        f.push(&vec![b'a'; MAX_MESSAGE_SIZE + 1]);
        assert_eq!(f.next_item(), Err(FramingError::TooLarge));
    }

    #[test]
    fn stream_of_a_large_message_a_byte_at_a_time() {
        let padding = "x".repeat(30_000);
        let body = "b".repeat(20_000);
        let msg = format!(
            "OPTIONS sip:a@b SIP/2.0\r\nSubject: {padding}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut f = StreamFramer::new();
        f.push(b"\r\n");
        let bytes = msg.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            f.push(&[*b]);
            match f.next_item().unwrap() {
                None => assert!(i + 1 < bytes.len(), "incomplete at the end"),
                Some(StreamItem::Message { head, body: got }) => {
                    assert_eq!(i + 1, bytes.len(), "complete too early at byte {i}");
                    assert!(head.ends_with(b"\r\n\r\n"));
                    assert_eq!(got.len(), body.len());
                }
                other => panic!("{other:?}"),
            }
        }
        // And the next message after it, with the empty line cut across two reads.
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r");
        assert_eq!(f.next_item().unwrap(), None);
        f.push(b"\n");
        assert!(matches!(
            f.next_item().unwrap(),
            Some(StreamItem::Message { .. })
        ));
        assert_eq!(f.buffered(), 0);
    }
}
