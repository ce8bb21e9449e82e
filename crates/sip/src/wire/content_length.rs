//! Content-Length as framing reads it (RFC 3261 §18.3, §20.14): the one header whose
//! value decides where a message ends, so it is read from the raw lines, before the
//! parser unfolds or checks anything.

use super::framing::FramingError;
use super::parse::crlf_lines;
use super::{decimal, find_byte, trim};

/// The Content-Length a header section (start line to the empty line, as text) declares,
/// if any (full or compact name `l`). Two different values make the message unframeable.
pub(crate) fn content_length_of(head: &str) -> Result<Option<usize>, FramingError> {
    let mut declared = DeclaredLength::default();
    for line in crlf_lines(head).skip(1) {
        declared.line(line)?;
    }
    Ok(declared.value())
}

/// Content-Length read line by line: [`content_length_of`] feeds it every line of a
/// header section, and so does the parser while it walks a datagram's lines, which then
/// need no second pass (reading lines costs more than the check of each).
///
/// The lines are those the parser cuts (at each CRLF; a bare CR or LF is inside a line,
/// refused by the parser later), each as it is: a folded value is not joined.
#[derive(Debug, Default)]
pub(crate) struct DeclaredLength(Option<usize>);

impl DeclaredLength {
    /// Reads one header line (not the start line).
    #[inline]
    pub(crate) fn line(&mut self, line: &str) -> Result<(), FramingError> {
        if !may_declare(line.as_bytes()) {
            return Ok(());
        }
        if let Some(n) = declared_length(line)? {
            if self.0.is_some_and(|f| f != n) {
                return Err(FramingError::BadContentLength);
            }
            self.0 = Some(n);
        }
        Ok(())
    }

    /// The length declared by the lines read so far.
    pub(crate) fn value(&self) -> Option<usize> {
        self.0
    }
}

/// Whether a line may be a Content-Length line: only one that starts `content-length`
/// (case aside), or `l` and not another letter, digit or `-`, or with a byte that is
/// neither whitespace nor a letter or digit, can have this name once trimmed (trimming
/// strips whitespace, ASCII or not, only after the name here); a line that starts with
/// whitespace continues the one above. Inlined into the walk: most lines stop here.
#[inline(always)]
fn may_declare(line: &[u8]) -> bool {
    match line.first() {
        None | Some(b' ' | b'\t') => false,
        // Byte 8 first: it tells this name from the other `c` names (Content-Type,
        // Contact, CSeq, Call-ID) before the whole name is compared.
        Some(b'c' | b'C') => {
            matches!(line.get(8), Some(b'l' | b'L'))
                && line
                    .get(..14)
                    .is_some_and(|name| name.eq_ignore_ascii_case(b"content-length"))
        }
        Some(b'l' | b'L') => !line
            .get(1)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'-'),
        Some(b) => !b.is_ascii_alphanumeric(),
    }
}

/// The length one header line declares, if it is a Content-Length line.
fn declared_length(line: &str) -> Result<Option<usize>, FramingError> {
    let value = match line.as_bytes().get(..15) {
        // The usual spelling, the colon right after the name: no colon to search for
        // and no name to trim.
        Some([name @ .., b':']) if name.eq_ignore_ascii_case(b"content-length") => {
            line.get(15..).unwrap_or_default()
        }
        _ => {
            let Some(colon) = find_byte(b':', line.as_bytes()) else {
                return Ok(None);
            };
            let name = trim(line.get(..colon).unwrap_or_default());
            if !name.eq_ignore_ascii_case("content-length") && !name.eq_ignore_ascii_case("l") {
                return Ok(None);
            }
            line.get(colon + 1..).unwrap_or_default()
        }
    };
    let value = trim(value.strip_prefix(' ').unwrap_or(value));
    // At most nine digits, so the number fits whatever it is.
    if value.len() > 9 {
        return Err(FramingError::BadContentLength);
    }
    decimal(value)
        .and_then(|n| usize::try_from(n).ok())
        .map(Some)
        .ok_or(FramingError::BadContentLength)
}
