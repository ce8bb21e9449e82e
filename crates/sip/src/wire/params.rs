//! `;name=value` parameters: of a Via (RFC 3261 §20.42), of a name-addr (§20.10) and of a
//! URI (§19.1.1).
//!
//! Kept as one string in the form we write them (`;a=1;b;c="x;y"`), not as a list of
//! owned pairs: a parameter is looked up by scanning that string, which for the few short
//! parameters of a SIP header costs less than the two allocations per parameter a list
//! would make on every message.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use super::shared::Shared;
use super::{find_byte, split_at_byte, trim};

/// Parameters in the order they arrived, each written `;name` or `;name=value`, name and
/// value trimmed, empty ones left out. The text is shared: a header copied into a
/// response (every Via, From and To) shares its parameters with the request's, and
/// parameters parsed from a message share its header section (see [`Shared`]).
#[derive(Clone, Default)]
pub(crate) struct Params {
    /// `None` when there are none.
    text: Option<Arc<str>>,
    /// Where the parameters lie in `text`.
    span: Range<usize>,
    /// Where a parameter with an unclosed quote ends (0: none has one). A peer's last
    /// parameter may open a quote it never closes (`;x="abc`); it then takes in every
    /// `;` after it, so a parameter we append (`received`, `tag`) must not be read as
    /// part of it: the text is split in two here.
    open_until: usize,
    /// Where each of [`LOOKED_UP`] is, found once when the text is made.
    found: [Found; LOOKED_UP.len()],
}

/// The parameters read several times for every message (transaction keys, response
/// routing, dialog ids): found once when the parameters are made, not by a scan per look.
const LOOKED_UP: [&str; 4] = ["branch", "tag", "rport", "received"];
// [`note`] tells these apart by length alone: the build fails if a name changes length.
const _: () = assert!(
    LOOKED_UP[0].len() == 6
        && LOOKED_UP[1].len() == 3
        && LOOKED_UP[2].len() == 5
        && LOOKED_UP[3].len() == 8
);

/// Whether and where a parameter of [`LOOKED_UP`] is in the text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Found {
    #[default]
    Absent,
    /// Present without a value.
    Bare,
    /// Its value's place in the text.
    Value(u16, u16),
    /// Beyond 64 KiB into the text (never from the wire, where a message is smaller;
    /// possible in text we write): looked up by a scan. The places are 16 bits so that a
    /// `Params`, moved about with every URI and name-addr, stays small.
    Unplaced,
}

impl Params {
    /// The parameters of `text` (`;a=1;b`). With `uri_part`, the text before the first
    /// `;` is a URI's body and is skipped; otherwise it is a parameter like the others.
    #[cfg(test)]
    pub(crate) fn parse(text: &str, uri_part: bool) -> Self {
        Self::parse_in(None, text, uri_part)
    }

    /// [`Params::parse`] of `text`, keeping a share of `shared` when `text` is written
    /// as we write parameters and lies in it.
    pub(crate) fn parse_in(shared: Option<&Shared<'_>>, text: &str, uri_part: bool) -> Self {
        if text.is_empty() {
            return Self::default();
        }
        // Nearly always the text is already in our form: `;` first, no whitespace to trim
        // (every byte printable ASCII), no empty piece. It is then kept as it is.
        if let Some(scan) = (!uri_part).then(|| written_form(text)).flatten() {
            let (kept, span) = Shared::keep(shared, text);
            return match scan {
                Written::Plain(found) => Self {
                    text: Some(kept),
                    span,
                    open_until: 0,
                    found,
                },
                Written::Quoted => {
                    let open = ends_quoted(text);
                    Self::indexed(
                        Some(kept),
                        span,
                        if open { text.len() } else { 0 },
                        Some(true),
                    )
                }
            };
        }
        let mut out = Text::default();
        let mut pieces = split_unquoted(text);
        if uri_part {
            pieces.next();
        }
        for piece in pieces {
            let piece = trim(piece);
            if piece.is_empty() {
                continue;
            }
            match split_at_byte(piece, b'=') {
                Some((n, v)) => out.pair(trim(n), Some(trim(v))),
                None => out.pair(piece, None),
            }
        }
        let open_until = if ends_quoted(out.as_str()) {
            out.len()
        } else {
            0
        };
        Self::indexed(out.shared(), 0..out.len(), open_until, None)
    }

    /// The parameters at `span` in `text`, with [`LOOKED_UP`] found. `quoted`: whether
    /// the text may hold a quote (`None`: not known yet).
    fn indexed(
        text: Option<Arc<str>>,
        span: Range<usize>,
        open_until: usize,
        quoted: Option<bool>,
    ) -> Self {
        let mut params = Self {
            text,
            span,
            open_until,
            found: Default::default(),
        };
        let whole = params.as_str().as_bytes();
        let mut found = [Found::Absent; LOOKED_UP.len()];
        let mut index = |piece: &[u8]| {
            let start = (piece.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize);
            let eq = piece.iter().position(|b| *b == b'=').map(|i| start + i);
            note(&mut found, whole, start, eq, start + piece.len());
        };
        // Without a quote (nearly always) every `;` separates: a plain split, not the
        // quote-tracking one (both give these pieces; an empty one matches nothing).
        let quoted = quoted.unwrap_or_else(|| find_byte(b'"', whole).is_some());
        if !quoted {
            whole.split(|b| *b == b';').for_each(&mut index);
        } else {
            let (peer, ours) = params.halves();
            split_unquoted(peer)
                .chain(split_unquoted(ours))
                .for_each(|piece| index(piece.as_bytes()));
        }
        params.found = found;
        params
    }

    /// Our own parameters, in order.
    pub(crate) fn from_pairs(pairs: &[(&str, Option<&str>)]) -> Self {
        Self::default().replace(|_| false, pairs)
    }

    /// Each parameter as name and value (`None` without `=`).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        let (peer, ours) = self.halves();
        pairs(peer).chain(pairs(ours))
    }

    /// The peer's text up to the end of an unclosed quote, and what follows it.
    fn halves(&self) -> (&str, &str) {
        let text = self.as_str();
        text.split_at_checked(self.open_until).unwrap_or((text, ""))
    }

    /// The first parameter `name` (case aside): `Some(None)` when present without a value.
    pub(crate) fn get(&self, name: &str) -> Option<Option<&str>> {
        if let Some(i) = LOOKED_UP.iter().position(|k| *k == name) {
            match self.found.get(i) {
                Some(Found::Absent) => return None,
                Some(Found::Bare) => return Some(None),
                Some(Found::Value(start, end)) => {
                    if let Some(value) = self.as_str().get(*start as usize..*end as usize) {
                        return Some(Some(value));
                    }
                }
                Some(Found::Unplaced) | None => {}
            }
        }
        let (peer, ours) = self.halves();
        find_written(peer, name).or_else(|| find_written(ours, name))
    }

    /// These parameters without every one for which `remove(name)` holds, and with `add`
    /// appended: written anew once.
    pub(crate) fn replace(
        &self,
        mut remove: impl FnMut(&str) -> bool,
        add: &[(&str, Option<&str>)],
    ) -> Self {
        let mut text = Text::default();
        let mut open_until = 0;
        for (n, v) in self.iter().filter(|(n, _)| !remove(n)) {
            text.pair(n, v);
            if open_until == 0 && ends_quoted(text.as_str()) {
                open_until = text.len();
            }
        }
        for (n, v) in add {
            text.pair(n, *v);
        }
        Self::indexed(text.shared(), 0..text.len(), open_until, None)
    }

    /// As written: `;a=1;b`, or nothing.
    pub(crate) fn as_str(&self) -> &str {
        self.text
            .as_deref()
            .and_then(|text| text.get(self.span.clone()))
            .unwrap_or_default()
    }
}

/// Equal when written alike, wherever the text lies (`found` is placed in that text).
impl PartialEq for Params {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
            && self.open_until == other.open_until
            && self.found == other.found
    }
}
impl Eq for Params {}

/// As the derived one printed it when each held its own text (the codec's verdicts are
/// compared as text).
impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text.as_ref().map(|_| self.as_str());
        f.debug_struct("Params")
            .field("text", &text)
            .field("open_until", &self.open_until)
            .field("found", &self.found)
            .finish()
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`written_form`] found in text in the form we write parameters.
enum Written {
    /// No quote: every `;` separates, and [`LOOKED_UP`] were found on the way.
    Plain([Found; LOOKED_UP.len()]),
    /// A quote: the pieces need the quote-tracking split.
    Quoted,
}

/// Whether `text` is parameters in the form we write them: `;` first and not last, every
/// byte printable ASCII (nothing to trim), no `;;` (no empty piece). One pass over the
/// bytes, which also cuts the pieces and finds [`LOOKED_UP`] in them (as
/// [`Params::indexed`] would) while no quote has been seen.
fn written_form(text: &str) -> Option<Written> {
    let bytes = text.as_bytes();
    if bytes.first() != Some(&b';') || bytes.last() == Some(&b';') {
        return None;
    }
    let mut found = [Found::Absent; LOOKED_UP.len()];
    let mut quoted = false;
    // The piece being read starts after its `;`; `eq` is where its first `=` is.
    let (mut start, mut eq) = (1, None);
    for (i, &b) in bytes.iter().enumerate().skip(1) {
        match b {
            b';' if i == start => return None,
            b';' => {
                note(&mut found, bytes, start, eq, i);
                (start, eq) = (i + 1, None);
            }
            b'=' if eq.is_none() => eq = Some(i),
            b'"' => quoted = true,
            b'!'..=b'~' => {}
            _ => return None,
        }
    }
    note(&mut found, bytes, start, eq, bytes.len());
    Some(if quoted {
        Written::Quoted
    } else {
        Written::Plain(found)
    })
}

/// Records the piece `bytes[start..end]` (its first `=` at `eq`) in `found` if it is the
/// first of a [`LOOKED_UP`] name.
#[inline(always)]
fn note(
    found: &mut [Found; LOOKED_UP.len()],
    bytes: &[u8],
    start: usize,
    eq: Option<usize>,
    end: usize,
) {
    let name = bytes.get(start..eq.unwrap_or(end)).unwrap_or_default();
    // The four names differ in length: one comparison finds the candidate.
    let slot = match name.len() {
        6 => 0,
        3 => 1,
        5 => 2,
        8 => 3,
        _ => return,
    };
    let wanted = LOOKED_UP.get(slot).map_or(&[][..], |w| w.as_bytes());
    if let Some(slot @ Found::Absent) = found.get_mut(slot) {
        if name.eq_ignore_ascii_case(wanted) {
            *slot = match eq {
                None => Found::Bare,
                Some(eq) => match (u16::try_from(eq + 1), u16::try_from(end)) {
                    (Ok(start), Ok(end)) => Found::Value(start, end),
                    _ => Found::Unplaced,
                },
            };
        }
    }
}

/// Parameter text being written: on the stack while it fits (nearly always), so that
/// sharing it costs one allocation, the `Arc`'s, where a `String` made into one costs two.
enum Text {
    Short([u8; SHORT], usize),
    Long(String),
}

/// What parameters we write (a tag, received and rport added to a peer's) nearly always
/// fit in.
const SHORT: usize = 192;

impl Default for Text {
    fn default() -> Self {
        Self::Short([0; SHORT], 0)
    }
}

impl Text {
    fn push(&mut self, s: &str) {
        match self {
            Self::Short(buf, len) => match buf.get_mut(*len..*len + s.len()) {
                Some(room) => {
                    room.copy_from_slice(s.as_bytes());
                    *len += s.len();
                }
                None => {
                    let mut long = String::with_capacity(*len + s.len() + SHORT);
                    long.push_str(self.as_str());
                    long.push_str(s);
                    *self = Self::Long(long);
                }
            },
            Self::Long(text) => text.push_str(s),
        }
    }

    fn pair(&mut self, name: &str, value: Option<&str>) {
        self.push(";");
        self.push(name);
        if let Some(v) = value {
            self.push("=");
            self.push(v);
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Only whole `str`s were copied in: always UTF-8.
            Self::Short(buf, len) => buf
                .get(..*len)
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or_default(),
            Self::Long(text) => text,
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Short(_, len) => *len,
            Self::Long(text) => text.len(),
        }
    }

    /// The text to keep; `None` when empty.
    fn shared(&self) -> Option<Arc<str>> {
        (self.len() > 0).then(|| Arc::from(self.as_str()))
    }
}

/// The pairs of parameter text as [`Params`] writes it, or as a URI carries it: pieces,
/// names and values trimmed (a no-op for our own text), empty pieces skipped.
pub(crate) fn pairs(text: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    split_unquoted(text)
        .map(trim)
        .filter(|p| !p.is_empty())
        .map(|p| match split_at_byte(p, b'=') {
            Some((n, v)) => (trim(n), Some(trim(v))),
            None => (p, None),
        })
}

/// The first parameter `name` (case aside) of parameter text, as [`pairs`] reads it.
pub(crate) fn find<'a>(text: &'a str, name: &str) -> Option<Option<&'a str>> {
    pairs(text)
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// [`find`] for text as [`Params`] writes it (names trimmed, no empty piece): a piece is
/// the one wanted when it starts with `name` followed by `=` or its end, which spares the
/// trimming and splitting of every piece before it (branch, tag and rport are looked up
/// several times per message).
fn find_written<'a>(text: &'a str, name: &str) -> Option<Option<&'a str>> {
    split_unquoted(text).find_map(|piece| {
        let (head, rest) = piece.split_at_checked(name.len())?;
        if piece.is_empty() || !head.eq_ignore_ascii_case(name) {
            return None;
        }
        match rest.strip_prefix('=') {
            Some(value) => Some(Some(value)),
            None => rest.is_empty().then_some(None),
        }
    })
}

/// Whether `text` ends inside a quoted string.
fn ends_quoted(text: &str) -> bool {
    let (mut quoted, mut escaped) = (false, false);
    for c in text.bytes() {
        match c {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ => {}
        }
    }
    quoted
}

/// Splits at each `;` outside a quoted string (a backslash escapes inside one).
fn split_unquoted(text: &str) -> impl Iterator<Item = &str> {
    // A byte loop, not memchr: parameter text is short, and a search call costs more
    // than the few bytes it would skip.
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        let (mut quoted, mut escaped) = (false, false);
        let semicolon = text.bytes().position(|c| {
            match c {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                b';' if !quoted => return true,
                _ => {}
            }
            false
        });
        match semicolon {
            Some(i) => {
                rest = text.get(i + 1..);
                text.get(..i)
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_trimmed_and_quoted_semicolons_kept() {
        let p = Params::parse(r#" ; tag = a ;; lr; x="1;2" ;q=0.5"#, false);
        assert_eq!(p.as_str(), r#";tag=a;lr;x="1;2";q=0.5"#);
        assert_eq!(p.get("TAG"), Some(Some("a")));
        assert_eq!(p.get("lr"), Some(None));
        assert_eq!(p.get("x"), Some(Some(r#""1;2""#)));
        assert_eq!(p.get("nope"), None);
    }

    #[test]
    fn parameters_longer_than_the_stack_buffer_are_kept_whole() {
        let long = "v".repeat(300);
        let p = Params::parse(&format!(" ; a = 1 ; long = {long} ; b"), false);
        assert_eq!(p.as_str(), format!(";a=1;long={long};b"));
        assert_eq!(p.get("long"), Some(Some(long.as_str())));
        let p = p.replace(|n| n == "a", &[("tag", Some("t"))]);
        assert_eq!(p.as_str(), format!(";long={long};b;tag=t"));
        assert_eq!(p.get("tag"), Some(Some("t")));
    }

    #[test]
    fn the_one_pass_over_written_text_finds_what_indexing_finds() {
        for text in [
            ";branch=z9hG4bK1;rport;received=1.2.3.4",
            ";TAG=a;tag=b;Branch;rport=5060;x=y=z",
            ";branchx=1;tags=2;rport5=3;received",
            ";a=\"x;tag=1\";tag=2",
            ";=1;tag=",
        ] {
            let parsed = Params::parse(text, false);
            let indexed = Params::indexed(Some(text.into()), 0..text.len(), 0, None);
            assert_eq!(parsed.as_str(), text);
            assert_eq!(parsed.found, indexed.found, "{text}");
        }
    }

    #[test]
    fn a_parameter_beyond_64_kib_is_found_by_a_scan() {
        let long = "v".repeat(70_000);
        let p = Params::parse(&format!(";a={long};tag=t;branch=b"), false);
        assert_eq!(p.get("tag"), Some(Some("t")));
        assert_eq!(p.get("branch"), Some(Some("b")));
        assert_eq!(p.get("a"), Some(Some(long.as_str())));
    }

    #[test]
    fn a_uri_body_before_the_first_semicolon_is_skipped() {
        let p = Params::parse("host:5060;transport=tcp;lr", true);
        assert_eq!(p.as_str(), ";transport=tcp;lr");
        assert_eq!(Params::parse("host:5060", true).as_str(), "");
    }

    #[test]
    fn removing_and_adding_keeps_the_order_of_the_rest() {
        let p = Params::parse(";branch=z9hG4bK1;rport;received=1.2.3.4", false);
        let p = p.replace(
            |n| n.eq_ignore_ascii_case("received") || n == "rport",
            &[("received", Some("5.6.7.8")), ("rport", Some("4000"))],
        );
        assert_eq!(p.as_str(), ";branch=z9hG4bK1;received=5.6.7.8;rport=4000");
    }

    #[test]
    fn an_unclosed_quote_takes_the_rest_of_the_peers_text_but_not_ours() {
        let p = Params::parse(r#";x="abc;y=1"#, false);
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            vec![("x", Some(r#""abc;y=1"#))]
        );
        let p = p.replace(|_| false, &[("received", Some("192.0.2.1"))]);
        assert_eq!(p.get("received"), Some(Some("192.0.2.1")));
        let p = p.replace(|n| n == "received", &[("tag", Some("t"))]);
        assert_eq!(p.as_str(), r#";x="abc;y=1;tag=t"#);
        assert_eq!(p.get("tag"), Some(Some("t")));
        assert_eq!(p.get("x"), Some(Some(r#""abc;y=1"#)));
    }
}
