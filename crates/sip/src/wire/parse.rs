use std::borrow::Cow;

use bytes::Bytes;
use thiserror::Error;

use super::content_length::{content_length_of, DeclaredLength};
use super::framing::{datagram_body, datagram_head, FramingError};
use super::header::{split_list, HeaderName, Headers};
use super::message::{CSeq, Message, Request, Response, StatusCode};
use super::method::Method;
use super::shared::Shared;
use super::uri::{NameAddr, SipUri};
use super::via::Via;
use super::{decimal, split_at_byte, split_bytes, trim};
use crate::ids::CallId;

/// Why bytes are not a usable SIP message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error(transparent)]
    /// The bytes do not frame as one message.
    Framing(#[from] FramingError),
    #[error("bad start line {0:?}")]
    /// The start line is neither a Request-Line nor a Status-Line.
    StartLine(String),
    #[error("unsupported SIP version {0:?}")]
    /// A SIP version other than 2.0 (answered 505).
    Version(String),
    #[error("malformed header line {0:?}")]
    /// A header line that is not `name: value` or a continuation, or a bare CR/LF.
    HeaderLine(String),
    #[error("bad {name} header: {why}")]
    /// A core header's value is malformed.
    Header {
        /// The header's canonical name.
        name: &'static str,
        /// What is wrong, for the log.
        why: String,
    },
    #[error("missing {0} header")]
    /// A mandatory header is missing.
    Missing(&'static str),
    #[error("{0} header appears more than once")]
    /// A header that must appear once appears again.
    Duplicate(&'static str),
    #[error("bad URI: {0}")]
    /// A URI is malformed.
    Uri(String),
}

impl ParseError {
    /// The status a request with this defect gets (RFC 3261 §8.2, §21.5.6).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Version(_) => StatusCode::VERSION_NOT_SUPPORTED,
            Self::Framing(FramingError::TooLarge) => StatusCode(513),
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Parses one whole datagram. `Ok(None)` is a keep-alive.
pub fn parse_datagram(data: &[u8]) -> Result<Option<Message>, ParseError> {
    match datagram_head(data)? {
        None => Ok(None),
        Some((head, rest)) => parse_datagram_head(head, rest).map(Some),
    }
}

/// Parses a datagram from its header section (as [`datagram_head`] found it) and `rest`,
/// every byte after it: the same answer as framing it with
/// [`frame_datagram`](super::frame_datagram) and parsing the frame, for one walk over the
/// header lines instead of two. The parser reads Content-Length on its way, by framing's
/// rules, and cuts the body with it. Framing's errors come first, as they would: when the
/// parse fails, Content-Length is read again the framing way to see whether one of them
/// is the answer (only a broken message pays for the second walk).
pub(crate) fn parse_datagram_head(head: &str, rest: &[u8]) -> Result<Message, ParseError> {
    parse_text(head, After::Datagram(rest)).map_err(|parse_error| {
        match content_length_of(head).and_then(|declared| datagram_body(rest, declared)) {
            Err(framing) => framing.into(),
            Ok(_) => parse_error,
        }
    })
}

/// Parses a framed message: `head` is the header section including its empty line.
pub fn parse_message(head: &[u8], body: &[u8]) -> Result<Message, ParseError> {
    let head = std::str::from_utf8(head).map_err(|_| FramingError::NotUtf8)?;
    parse_text(head, After::Body(body))
}

/// What follows the header section given to [`parse_text`].
enum After<'a> {
    /// Exactly the body: the message was framed.
    Body(&'a [u8]),
    /// The rest of a datagram, to cut the body from by its Content-Length.
    Datagram(&'a [u8]),
}

/// [`parse_message`] of a header section known to be text. Inlined into its two callers:
/// the message it returns is then built where the caller keeps it, not copied out.
#[inline(always)]
fn parse_text(head: &str, after: After<'_>) -> Result<Message, ParseError> {
    check_line_ends(head)?;
    let (start_line, header_section) = split_crlf_once(head).ok_or(FramingError::NoHeaderEnd)?;
    // §8.2: an unsupported version is 505 whatever else is wrong; decide it first.
    let last_space = start_line.bytes().rposition(|b| b == b' ');
    if let Some(version) = start_line.get(last_space.map_or(0, |i| i + 1)..) {
        let is_response = start_line.starts_with("SIP/") || start_line.starts_with("sip/");
        if !is_response
            && version.len() > 4
            && starts_with_ignore_case(version, "SIP/")
            && !version.eq_ignore_ascii_case("SIP/2.0")
        {
            return Err(ParseError::Version(version.into()));
        }
    }

    // The URIs and parameters kept from this message share one copy of its head.
    let shared = Shared::new(head);
    let mut core = CoreHeaders::default();
    let mut declared = DeclaredLength::default();
    let reads_length = matches!(after, After::Datagram(_));
    for_each_header(
        header_section,
        reads_length.then_some(&mut declared),
        |name, value| core.take(name, value, &shared),
    )?;
    let body = match after {
        After::Body(body) => body,
        After::Datagram(rest) => datagram_body(rest, declared.value())?,
    };
    let body = Bytes::copy_from_slice(body);

    if let Some(rest) = start_line
        .strip_prefix("SIP/")
        .or_else(|| start_line.strip_prefix("sip/"))
    {
        let (version, rest) =
            split_at_byte(rest, b' ').ok_or_else(|| ParseError::StartLine(start_line.into()))?;
        if version != "2.0" {
            return Err(ParseError::Version(format!("SIP/{version}")));
        }
        let (code, reason) = split_at_byte(rest, b' ').unwrap_or((rest, ""));
        let code: u16 = code
            .parse()
            .ok()
            .filter(|c| (100..=699).contains(c) && code.len() == 3)
            .ok_or_else(|| ParseError::StartLine(start_line.into()))?;
        let c = core.finish()?;
        return Ok(Message::Response(Response {
            status: StatusCode(code),
            reason: reason.to_owned(),
            vias: c.vias,
            from: c.from,
            to: c.to,
            call_id: c.call_id,
            cseq: c.cseq,
            headers: c.headers,
            body,
        }));
    }

    // Request-Line = Method SP Request-URI SP SIP-Version (§7.1): single spaces, no LWS.
    let mut parts = split_bytes(start_line, b' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::StartLine(start_line.into()));
    };
    let method = Method::parse(method).ok_or_else(|| ParseError::StartLine(start_line.into()))?;
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        if version.len() > 4 && starts_with_ignore_case(version, "SIP/") {
            return Err(ParseError::Version(version.into()));
        }
        return Err(ParseError::StartLine(start_line.into()));
    }
    let uri = SipUri::parse_in(Some(&shared), uri)?;
    let max_forwards = core.max_forwards.take();
    let c = core.finish()?;
    Ok(Message::Request(Request {
        method,
        uri,
        vias: c.vias,
        from: c.from,
        to: c.to,
        call_id: c.call_id,
        cseq: c.cseq,
        max_forwards,
        headers: c.headers,
        body,
    }))
}

/// Whether `text` starts with `prefix`, ASCII case aside. Compares bytes: the peer's text
/// may hold multi-byte characters where a `str` slice at `prefix.len()` would panic.
fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// CR and LF appear only as the CRLF that ends a line (RFC 3261 §7.3.1; folding is CRLF
/// then whitespace). A bare one inside a value would pass the splitter and come out of our
/// writer as a line end: a header the peer injected into our answer (found by fuzzing).
fn check_line_ends(head: &str) -> Result<(), ParseError> {
    let bytes = head.as_bytes();
    // Each byte is a CR exactly when the next is an LF, the first is no LF and the last
    // no CR. Folded over every pair without stopping early, so the loop vectorises (a
    // search that stops at each of the many CRs and LFs costs several times more).
    let next = bytes.get(1..).unwrap_or_default();
    let unpaired = bytes
        .iter()
        .zip(next)
        .fold(false, |bad, (a, b)| bad | ((*a == b'\r') != (*b == b'\n')));
    if !unpaired && bytes.first() != Some(&b'\n') && bytes.last() != Some(&b'\r') {
        return Ok(());
    }
    // Where, for the answer.
    let bare = memchr::memchr2_iter(b'\r', b'\n', bytes).find(|&i| match bytes.get(i) {
        Some(b'\r') => bytes.get(i + 1) != Some(&b'\n'),
        _ => i == 0 || bytes.get(i - 1) != Some(&b'\r'),
    });
    match bare {
        None => Ok(()),
        Some(i) => Err(ParseError::HeaderLine(format!("bare CR or LF at byte {i}"))),
    }
}

/// `text.split_once("\r\n")`, with the line end found by memchr.
fn split_crlf_once(text: &str) -> Option<(&str, &str)> {
    let bytes = text.as_bytes();
    let lf =
        memchr::memchr_iter(b'\n', bytes).find(|&i| i > 0 && bytes.get(i - 1) == Some(&b'\r'))?;
    Some((text.get(..lf - 1)?, text.get(lf + 1..)?))
}

/// The lines of `text` split at each CRLF, as `text.split("\r\n")` yields them: one
/// memchr pass over the text, however many lines.
pub(crate) fn crlf_lines(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut line_ends = memchr::memchr_iter(b'\n', bytes)
        .filter(move |&i| i > 0 && bytes.get(i - 1) == Some(&b'\r'));
    let mut start = Some(0);
    std::iter::from_fn(move || {
        let from = start?;
        match line_ends.next() {
            Some(lf) => {
                start = Some(lf + 1);
                text.get(from..lf - 1)
            }
            None => {
                start = None;
                text.get(from..)
            }
        }
    })
}

/// Splits the header section into fields and hands each to `field` as name and value,
/// both trimmed. Every line is `token HCOLON value` (§7.3.1) or a continuation: a line
/// starting with whitespace joins the field above with one space (§7.3.1 folding); one
/// before any field has nothing to continue and is ignored. A line without a colon, or
/// whose name is not a token, is an error. The section ends at the first empty line.
/// With `declared`, each line is also read for Content-Length as framing reads it.
fn for_each_header<'a>(
    section: &'a str,
    mut declared: Option<&mut DeclaredLength>,
    mut field: impl FnMut(HeaderName, &str) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    let mut pending: Option<(HeaderName, Cow<'a, str>)> = None;
    for line in crlf_lines(section).take_while(|l| !l.is_empty()) {
        if let Some(declared) = declared.as_deref_mut() {
            declared.line(line)?;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = pending.as_mut() {
                let value = value.to_mut();
                value.push(' ');
                value.push_str(trim(line));
            }
            continue;
        }
        if let Some((name, value)) = pending.take() {
            field(name, joined_trim(&value))?;
        }
        let name_value = split_at_byte(line, b':').and_then(|(n, v)| {
            // A name nearly always ends at its colon: nothing to trim.
            let n = match n.as_bytes().last() {
                Some(b' ' | b'\t') => n.trim_end_matches([' ', '\t']),
                _ => n,
            };
            let name = HeaderName::from_token(n)?;
            Some((name, v))
        });
        match name_value {
            // The one space after the colon goes first: what is left then usually has
            // printable ends, the trim's quick case.
            Some((name, v)) => {
                let v = v.strip_prefix(' ').unwrap_or(v);
                pending = Some((name, Cow::Borrowed(trim(v))));
            }
            None => return Err(ParseError::HeaderLine(line.chars().take(80).collect())),
        }
    }
    if let Some((name, value)) = pending {
        field(name, joined_trim(&value))?;
    }
    Ok(())
}

/// A field's value as [`for_each_header`] hands it on: one cut from a single line was
/// trimmed when cut; one joined from folded lines is trimmed now.
#[allow(
    clippy::ptr_arg,
    reason = "whether the value was joined (owned) or cut (borrowed) is what it reads"
)]
fn joined_trim<'v>(value: &'v Cow<'_, str>) -> &'v str {
    match value {
        Cow::Borrowed(value) => value,
        Cow::Owned(joined) => trim(joined),
    }
}

#[derive(Default)]
struct CoreHeaders {
    vias: Vec<Via>,
    from: Option<NameAddr>,
    to: Option<NameAddr>,
    call_id: Option<CallId>,
    cseq: Option<CSeq>,
    max_forwards: Option<u32>,
    headers: Headers,
}

struct Core {
    vias: Vec<Via>,
    from: NameAddr,
    to: NameAddr,
    call_id: CallId,
    cseq: CSeq,
    headers: Headers,
}

impl CoreHeaders {
    /// Takes one header field; `value` comes trimmed from [`for_each_header`]. What is
    /// kept of it shares `shared` (the message's head) where it can.
    fn take(
        &mut self,
        name: HeaderName,
        value: &str,
        shared: &Shared<'_>,
    ) -> Result<(), ParseError> {
        if name == HeaderName::VIA {
            for v in split_list(value) {
                self.vias.push(Via::parse_in(Some(shared), v)?);
            }
        } else if name == HeaderName::FROM {
            set_once(&mut self.from, "From", name_addr("From", value, shared)?)?;
        } else if name == HeaderName::TO {
            set_once(&mut self.to, "To", name_addr("To", value, shared)?)?;
        } else if name == HeaderName::CALL_ID {
            // §25.1: callid = word [ "@" word ]; no whitespace inside.
            // Printable ASCII throughout (nearly always) holds no whitespace: only other
            // text needs the look at each character.
            let printable = value
                .bytes()
                .fold(true, |ok, b| ok & (b'!'..=b'~').contains(&b));
            if value.is_empty() || (!printable && value.contains(char::is_whitespace)) {
                return Err(ParseError::Header {
                    name: "Call-ID",
                    why: format!("{value:?}"),
                });
            }
            set_once(&mut self.call_id, "Call-ID", CallId::from(value))?;
        } else if name == HeaderName::CSEQ {
            set_once(&mut self.cseq, "CSeq", parse_cseq(value)?)?;
        } else if name == HeaderName::MAX_FORWARDS {
            let n = decimal(value)
                .filter(|n| *n <= 255)
                .ok_or_else(|| ParseError::Header {
                    name: "Max-Forwards",
                    why: format!("{value:?}"),
                })?;
            set_once(&mut self.max_forwards, "Max-Forwards", n)?;
        } else if name == HeaderName::CONTENT_LENGTH {
            // Framing already used it; the writer recomputes it.
        } else if name.is_list() {
            for v in split_list(value) {
                self.headers.push(name.clone(), v);
            }
        } else {
            self.headers.push(name, value);
        }
        Ok(())
    }

    fn finish(self) -> Result<Core, ParseError> {
        if self.vias.is_empty() {
            return Err(ParseError::Missing("Via"));
        }
        Ok(Core {
            vias: self.vias,
            from: self.from.ok_or(ParseError::Missing("From"))?,
            to: self.to.ok_or(ParseError::Missing("To"))?,
            call_id: self.call_id.ok_or(ParseError::Missing("Call-ID"))?,
            cseq: self.cseq.ok_or(ParseError::Missing("CSeq"))?,
            headers: self.headers,
        })
    }
}

fn set_once<T>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(ParseError::Duplicate(name));
    }
    *slot = Some(value);
    Ok(())
}

fn name_addr(name: &'static str, value: &str, shared: &Shared<'_>) -> Result<NameAddr, ParseError> {
    NameAddr::parse_in(Some(shared), value).map_err(|e| ParseError::Header {
        name,
        why: e.to_string(),
    })
}

/// `CSeq: 1*DIGIT LWS Method` (§20.16), from `value` trimmed as [`CoreHeaders::take`]
/// hands it on.
fn parse_cseq(value: &str) -> Result<CSeq, ParseError> {
    let bad = || ParseError::Header {
        name: "CSeq",
        why: format!("{value:?}"),
    };
    // `value` comes trimmed: printable ASCII around one space (nearly always) is two
    // words split there, as `split_whitespace` would split them.
    let spaces = value
        .bytes()
        .fold(0usize, |n, b| n + usize::from(b == b' '));
    let printable = value
        .bytes()
        .fold(true, |ok, b| ok & (b == b' ' || (b'!'..=b'~').contains(&b)));
    let (seq, method) = match split_at_byte(value, b' ') {
        Some(words) if spaces == 1 && printable => words,
        _ => {
            let mut parts = value.split_whitespace();
            let (Some(seq), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad());
            };
            (seq, method)
        }
    };
    // §8.1.1.5: the sequence number is a 32-bit unsigned integer less than 2**31.
    let seq: u32 = decimal(seq).filter(|n| *n < 1 << 31).ok_or_else(bad)?;
    Ok(CSeq {
        seq,
        method: Method::parse(method).ok_or_else(bad)?,
    })
}

#[cfg(test)]
mod tests;
