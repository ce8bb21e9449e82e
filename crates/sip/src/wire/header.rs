use super::method::is_token_byte;
use super::trim;
use std::fmt;

/// A header field name in its canonical spelling.
///
/// Names compare case-insensitively (RFC 3261 §7.3.1) and compact forms are expanded when
/// a message is parsed (§7.3.3), so `i:` and `CALL-ID:` both become `Call-ID`. A name we
/// know is a number into [`KNOWN`], so comparing two of them (every header of every
/// message is compared with the core ones) is one integer comparison, and making one
/// allocates nothing; any other name keeps its own spelling.
#[derive(Debug, Clone)]
pub struct HeaderName(Name);

#[derive(Debug, Clone)]
enum Name {
    /// An index into [`KNOWN`].
    Known(u8),
    /// A name not in [`KNOWN`] (so never equal to a known one), as written.
    Other(Box<str>),
}

macro_rules! known_headers {
    ($($konst:ident = $name:literal: $($lower:literal)|+;)*) => {
        /// The canonical spelling of each known name, by its index.
        const KNOWN: &[&str] = &[$($name),*];

        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[repr(u8)]
        enum Index { $($konst),* }

        impl HeaderName {
            $(
                #[doc = concat!("`", $name, "`.")]
                pub const $konst: Self = Self(Name::Known(Index::$konst as u8));
            )*

            /// The known name `lower` (lower case) spells, long or compact form.
            fn known(lower: &[u8]) -> Option<Self> {
                match lower {
                    $($($lower)|+ => Some(Self::$konst),)*
                    _ => None,
                }
            }

            /// The known name `raw` is in its canonical spelling.
            #[inline]
            fn canonical(raw: &str) -> Option<Self> {
                match raw {
                    $($name => Some(Self::$konst),)*
                    _ => None,
                }
            }
        }
    };
}

known_headers! {
    ACCEPT = "Accept": b"accept";
    ALLOW = "Allow": b"allow";
    ALLOW_EVENTS = "Allow-Events": b"allow-events" | b"u";
    AUTHORIZATION = "Authorization": b"authorization";
    CALL_ID = "Call-ID": b"call-id" | b"i";
    CONTACT = "Contact": b"contact" | b"m";
    CONTENT_ENCODING = "Content-Encoding": b"content-encoding" | b"e";
    CONTENT_LENGTH = "Content-Length": b"content-length" | b"l";
    CONTENT_TYPE = "Content-Type": b"content-type" | b"c";
    CSEQ = "CSeq": b"cseq";
    EVENT = "Event": b"event" | b"o";
    EXPIRES = "Expires": b"expires";
    FROM = "From": b"from" | b"f";
    MAX_FORWARDS = "Max-Forwards": b"max-forwards";
    MIN_EXPIRES = "Min-Expires": b"min-expires";
    MIN_SE = "Min-SE": b"min-se";
    P_ASSERTED_IDENTITY = "P-Asserted-Identity": b"p-asserted-identity";
    PATH = "Path": b"path";
    PROXY_AUTHENTICATE = "Proxy-Authenticate": b"proxy-authenticate";
    PROXY_AUTHORIZATION = "Proxy-Authorization": b"proxy-authorization";
    PROXY_REQUIRE = "Proxy-Require": b"proxy-require";
    RACK = "RAck": b"rack";
    REASON = "Reason": b"reason";
    RECORD_ROUTE = "Record-Route": b"record-route";
    REFER_TO = "Refer-To": b"refer-to" | b"r";
    REFERRED_BY = "Referred-By": b"referred-by" | b"b";
    REQUIRE = "Require": b"require";
    RETRY_AFTER = "Retry-After": b"retry-after";
    ROUTE = "Route": b"route";
    RSEQ = "RSeq": b"rseq";
    SERVER = "Server": b"server";
    SERVICE_ROUTE = "Service-Route": b"service-route";
    SESSION_EXPIRES = "Session-Expires": b"session-expires" | b"x";
    SUBJECT = "Subject": b"subject" | b"s";
    SUBSCRIPTION_STATE = "Subscription-State": b"subscription-state";
    SUPPORTED = "Supported": b"supported" | b"k";
    TIMESTAMP = "Timestamp": b"timestamp";
    TO = "To": b"to" | b"t";
    UNSUPPORTED = "Unsupported": b"unsupported";
    USER_AGENT = "User-Agent": b"user-agent";
    VIA = "Via": b"via" | b"v";
    WWW_AUTHENTICATE = "WWW-Authenticate": b"www-authenticate";
}

/// Longer than every known name: such a name is not looked up.
const LONGEST_KNOWN: usize = 24;

impl HeaderName {
    /// The canonical name for `raw`, expanding compact forms.
    pub fn new(raw: &str) -> Self {
        let raw = trim(raw);
        Self::lookup(raw).unwrap_or_else(|| Self(Name::Other(raw.into())))
    }

    /// The name of a header line as the parser cut it (no whitespace around it): `None`
    /// when it is not a token (RFC 3261 §7.3.1). The same name as [`HeaderName::new`]
    /// gives: a token has nothing to trim. A known name is all token characters, so only
    /// an unknown one is checked byte by byte.
    pub(crate) fn from_token(name: &str) -> Option<Self> {
        if let Some(known) = Self::lookup(name) {
            return Some(known);
        }
        (!name.is_empty() && name.bytes().all(is_token_byte))
            .then(|| Self(Name::Other(name.into())))
    }

    /// The known name `raw` spells, case aside. Senders nearly always write the canonical
    /// spelling, which is matched as it is; any other is lowered first.
    #[inline]
    fn lookup(raw: &str) -> Option<Self> {
        if let Some(known) = Self::canonical(raw) {
            return Some(known);
        }
        let mut lower = [0u8; LONGEST_KNOWN];
        let buf = lower.get_mut(..raw.len())?;
        // Lowered while copied: names are short, a memcpy call costs more.
        for (to, from) in buf.iter_mut().zip(raw.bytes()) {
            *to = from.to_ascii_lowercase();
        }
        Self::known(buf)
    }

    /// The canonical spelling.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Name::Known(i) => KNOWN.get(usize::from(*i)).copied().unwrap_or_default(),
            Name::Other(name) => name,
        }
    }

    /// Headers whose value is a comma-separated list that RFC 3261 §7.3.1 lets a sender
    /// split over several lines or join on one; we always hold one entry per element.
    #[inline]
    pub(crate) fn is_list(&self) -> bool {
        [
            Self::VIA,
            Self::ROUTE,
            Self::RECORD_ROUTE,
            Self::CONTACT,
            // RFC 3327 §4 and RFC 3608 §5: lists of name-addrs like Route.
            Self::PATH,
            Self::SERVICE_ROUTE,
        ]
        .iter()
        .any(|n| n == self)
    }
}

impl PartialEq for HeaderName {
    // Inlined: the parser compares every header's name with the core ones, and a known
    // name against a constant then folds to one byte comparison.
    #[inline(always)]
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Name::Known(a), Name::Known(b)) => a == b,
            (Name::Other(a), Name::Other(b)) => a.eq_ignore_ascii_case(b),
            // `new` makes every spelling of a known name the known one.
            _ => false,
        }
    }
}
impl Eq for HeaderName {}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The headers of a message other than the ones [`super::Request`] and
/// [`super::Response`] keep parsed, in the order they arrived.
///
/// The values share one buffer (a field is its name and where its value lies), so a
/// message's headers cost two allocations however many there are. A removed field's text
/// stays in the buffer until the headers are dropped.
#[derive(Clone, Default)]
pub struct Headers {
    text: String,
    fields: Vec<(HeaderName, Span)>,
}

/// Where a value lies in [`Headers::text`].
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    fn value(&self, span: Span) -> &str {
        self.text.get(span.start..span.end).unwrap_or_default()
    }

    /// The first value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| self.value(*v))
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| self.value(*v))
    }

    /// Whether `name` appears.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.fields.iter().any(|(n, _)| n == name)
    }

    /// Appends a header field.
    pub fn push(&mut self, name: HeaderName, value: impl AsRef<str>) {
        self.make_room(value.as_ref().len());
        let start = self.text.len();
        self.text.push_str(value.as_ref());
        let end = self.text.len();
        self.fields.push((name, Span { start, end }));
    }

    /// Appends a header field whose value is `parts` one after the other.
    pub fn push_joined(&mut self, name: HeaderName, parts: &[&str]) {
        self.make_room(parts.iter().map(|p| p.len()).sum());
        let start = self.text.len();
        for part in parts {
            self.text.push_str(part);
        }
        let end = self.text.len();
        self.fields.push((name, Span { start, end }));
    }

    /// The first field makes room for a few (a message has several or none): the buffers
    /// then do not grow a few bytes at a time. 256 bytes hold the headers of our 200 OK
    /// to an INVITE (Contact, Allow, Supported, Server, Content-Type), which 160 did not.
    fn make_room(&mut self, bytes: usize) {
        if self.fields.capacity() == 0 {
            self.fields.reserve(6);
            self.text.reserve(bytes.max(256));
        }
    }

    /// Replaces every value of `name` with one.
    pub fn set(&mut self, name: HeaderName, value: impl AsRef<str>) {
        self.remove(&name);
        self.push(name, value);
    }

    /// Removes every field named `name`.
    pub fn remove(&mut self, name: &HeaderName) {
        self.fields.retain(|(n, _)| n != name);
    }

    /// Every field in order.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &str)> {
        self.fields.iter().map(|(n, v)| (n, self.value(*v)))
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}
impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Splits a header value at the commas that separate list elements, ignoring commas inside
/// quoted strings and `<…>` (a display name or a URI may hold one); yields each element
/// trimmed, empty ones left out.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(value);
    std::iter::from_fn(move || loop {
        let text = rest?;
        // Nearly every value is one element: without a comma there is nothing to track.
        if !has_comma(text.as_bytes()) {
            rest = None;
            let part = trim(text);
            return (!part.is_empty()).then_some(part);
        }
        let (mut in_quotes, mut in_angle, mut escaped) = (false, false, false);
        let comma = text.bytes().position(|c| {
            match c {
                _ if escaped => escaped = false,
                b'\\' if in_quotes => escaped = true,
                b'"' => in_quotes = !in_quotes,
                b'<' if !in_quotes => in_angle = true,
                b'>' if !in_quotes => in_angle = false,
                b',' if !in_quotes && !in_angle => return true,
                _ => {}
            }
            false
        });
        let part = match comma {
            Some(i) => {
                rest = text.get(i + 1..);
                text.get(..i).unwrap_or_default()
            }
            None => {
                rest = None;
                text
            }
        };
        let part = trim(part);
        if !part.is_empty() {
            return Some(part);
        }
    })
}

/// Whether `bytes` holds a comma. Folded over every byte without stopping early, so the
/// loop vectorises (values are short; a search call costs more than the bytes it skips).
fn has_comma(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |found, b| found | (*b == b','))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    #[test]
    fn compact_forms_expand_to_canonical_names() {
        for (compact, long) in [
            ("v", "Via"),
            ("f", "From"),
            ("t", "To"),
            ("i", "Call-ID"),
            ("m", "Contact"),
            ("l", "Content-Length"),
            ("c", "Content-Type"),
            ("k", "Supported"),
            ("s", "Subject"),
            ("o", "Event"),
            ("r", "Refer-To"),
            ("b", "Referred-By"),
            ("x", "Session-Expires"),
        ] {
            assert_eq!(HeaderName::new(compact).as_str(), long, "{compact}");
            assert_eq!(HeaderName::new(&long.to_uppercase()).as_str(), long);
        }
    }

    #[test]
    fn list_split_respects_quotes_and_angle_brackets() {
        let v = r#""Smith, John" <sip:a@b;x=1,2>;q=1, <sip:c@d>"#;
        assert_eq!(
            split_list(v).collect::<Vec<_>>(),
            vec![r#""Smith, John" <sip:a@b;x=1,2>;q=1"#, "<sip:c@d>"]
        );
        // One element (no comma): trimmed, and nothing when it is blank.
        assert_eq!(
            split_list(" <sip:c@d> ").collect::<Vec<_>>(),
            vec!["<sip:c@d>"]
        );
        assert_eq!(split_list(" \t ").count(), 0);
        assert_eq!(split_list("a, ").collect::<Vec<_>>(), vec!["a"]);
    }
}
