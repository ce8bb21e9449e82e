use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use super::host::parse_host_port;
use super::params::{self, Params};
use super::parse::ParseError;
use super::shared::Shared;
use super::{find_byte, split_at_byte, trim};

/// A SIP (or other scheme) URI, kept as it arrived plus the parts we route on.
///
/// The text is kept verbatim so that a URI we echo (Request-URI of an ACK, Contact of a
/// dialog's remote target) is byte-for-byte what the peer sent. The parts are places in
/// that text, so a URI is one allocation (and a copy of it none; one parsed from a
/// message shares the message's head, see `wire/shared.rs`); only an IP address written other than
/// in its canonical form (`[2001:DB8:0::1]`) and a scheme other than `sip`/`sips` keep a
/// copy.
#[derive(Clone)]
pub struct SipUri {
    /// Shared: a URI is copied into responses (From, To) and dialogs.
    raw: Arc<str>,
    /// Where the URI lies in `raw`; the places below are in the URI.
    span: Place,
    scheme: Scheme,
    user: Option<Place>,
    host: Host,
    port: Option<u16>,
    /// The URI parameters (`;transport=tcp;lr`), before any `?headers`.
    params: Place,
}

#[derive(Clone, PartialEq, Eq)]
enum Scheme {
    Sip,
    Sips,
    /// Another scheme, lower case.
    Other(Box<str>),
}

#[derive(Clone, PartialEq, Eq)]
enum Host {
    /// As written (also the empty host of another scheme).
    Raw(Place),
    /// An IP address rewritten in its canonical form.
    Canonical(Box<str>),
}

/// What [`SipUri::parse_in`] looks for after the scheme, found in one pass.
struct Marks {
    /// The last `@`: the user part ends there.
    last_at: Option<usize>,
    /// The first `:` (a password follows it when it is in the user part).
    first_colon: Option<usize>,
    /// The first `;` or `?` after the last `@`: the host and port end there.
    cut: Option<usize>,
}

impl Marks {
    /// `None` when a byte may not be in a URI: whitespace or a control byte, `<`, `>`,
    /// `"`.
    fn of(bytes: &[u8]) -> Option<Self> {
        let mut marks = Self {
            last_at: None,
            first_colon: None,
            cut: None,
        };
        for (i, b) in bytes.iter().enumerate() {
            match URI_BYTES.get(usize::from(*b)) {
                Some(UriByte::Plain) => {}
                Some(UriByte::At) => (marks.last_at, marks.cut) = (Some(i), None),
                Some(UriByte::Colon) => {
                    marks.first_colon = marks.first_colon.or(Some(i));
                }
                Some(UriByte::Cut) => marks.cut = marks.cut.or(Some(i)),
                Some(UriByte::Forbidden) | None => return None,
            }
        }
        Some(marks)
    }
}

/// What a byte is to [`Marks::of`].
#[derive(Clone, Copy)]
enum UriByte {
    Plain,
    Forbidden,
    At,
    Colon,
    Cut,
}

/// [`UriByte`] of every byte value.
#[allow(
    clippy::indexing_slicing,
    reason = "built at compile time, where an index out of bounds fails the build"
)]
static URI_BYTES: [UriByte; 256] = {
    let mut table = [UriByte::Plain; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match b as u8 {
            0..=b' ' | b'<' | b'>' | b'"' => UriByte::Forbidden,
            b'@' => UriByte::At,
            b':' => UriByte::Colon,
            b';' | b'?' => UriByte::Cut,
            _ => UriByte::Plain,
        };
        b += 1;
    }
    table
};

/// Where `inner`, a slice of `outer`, lies in it.
fn place(outer: &str, inner: &str) -> Place {
    let start = (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize);
    Place::new(start..start + inner.len())
}

/// A range of a URI's text in 32 bits a bound: a `SipUri`, moved with every message, name
/// and dialog, stays small. (A URI is never near 4 GiB; one that was would read its parts
/// as empty rather than wrong.)
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Place {
    start: u32,
    end: u32,
}

impl Place {
    fn new(range: Range<usize>) -> Self {
        match (u32::try_from(range.start), u32::try_from(range.end)) {
            (Ok(start), Ok(end)) => Self { start, end },
            _ => Self {
                start: u32::MAX,
                end: 0,
            },
        }
    }

    /// This place in `text` (empty when it is not in it).
    fn of(self, text: &str) -> &str {
        text.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

impl SipUri {
    /// Parses a URI; a non-SIP scheme is kept opaque, a SIP one must have a valid host and
    /// port.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        Self::parse_in(None, text)
    }

    /// [`SipUri::parse`], keeping a share of `shared` when `text` lies in it.
    pub(crate) fn parse_in(shared: Option<&Shared<'_>>, text: &str) -> Result<Self, ParseError> {
        let text = trim(text);
        let bad = |why: &str| ParseError::Uri(format!("{why}: {text:?}"));
        let bytes = text.as_bytes();
        // Nearly every URI is `sip:` as written here: no scheme to search for and check.
        let (scheme, rest) = match text.strip_prefix("sip:") {
            Some(rest) => ("sip", rest),
            None => {
                let colon = find_byte(b':', bytes).ok_or_else(|| bad("no scheme"))?;
                let scheme = text.get(..colon).unwrap_or_default();
                if scheme.is_empty()
                    || !scheme
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                {
                    return Err(bad("bad scheme"));
                }
                (scheme, text.get(colon + 1..).unwrap_or_default())
            }
        };
        let sips = scheme.eq_ignore_ascii_case("sips");
        if !sips && !scheme.eq_ignore_ascii_case("sip") {
            // tel:, urn: … are legal Request-URIs we may not route; keep them opaque.
            let user = rest.split(';').next().unwrap_or("");
            let (raw, span) = Shared::keep(shared, text);
            return Ok(Self {
                raw,
                span: Place::new(span),
                scheme: Scheme::Other(scheme.to_ascii_lowercase().into()),
                user: Some(place(text, user)),
                host: Host::Raw(Place::default()),
                port: None,
                params: Place::default(),
            });
        }
        // One pass over what follows the scheme finds what the steps below need.
        let Some(marks) = Marks::of(rest.as_bytes()) else {
            return Err(bad("forbidden character"));
        };
        // RFC 3261 §19.1.1 / RFC 4475 §3.1.1.2: the user part may hold unescaped `;`, `?`,
        // `/` and `,`, so it ends at the last `@`; the codec then reads what follows.
        // (The separators are ASCII: every place found is a character boundary.)
        let (user, host_part, cut) = match marks.last_at {
            Some(at) => {
                let user = rest.get(..at).unwrap_or_default();
                let password = marks.first_colon.filter(|c| *c < at).unwrap_or(at);
                (
                    Some(place(text, user.get(..password).unwrap_or_default())),
                    rest.get(at + 1..).unwrap_or_default(),
                    marks.cut.map(|c| c - (at + 1)),
                )
            }
            None => (None, rest, marks.cut),
        };
        // hostport ends where the URI parameters or headers begin; the parameters end
        // where the headers begin.
        let host_port = host_part
            .get(..cut.unwrap_or(host_part.len()))
            .unwrap_or_default();
        let (host, port) = parse_host_port(host_port).map_err(bad)?;
        let host = match host {
            Cow::Borrowed(h) => Host::Raw(place(text, h)),
            Cow::Owned(h) => Host::Canonical(h.into()),
        };
        let params = match cut {
            Some(i) if host_part.as_bytes().get(i) == Some(&b';') => {
                let after = host_part.get(i + 1..).unwrap_or_default();
                let end = find_byte(b'?', after.as_bytes()).unwrap_or(after.len());
                place(text, after.get(..end).unwrap_or_default())
            }
            _ => Place::default(),
        };
        let (raw, span) = Shared::keep(shared, text);
        Ok(Self {
            raw,
            span: Place::new(span),
            scheme: if sips { Scheme::Sips } else { Scheme::Sip },
            user,
            host,
            port,
            params,
        })
    }

    fn part(&self, place: Place) -> &str {
        place.of(self.as_str())
    }

    /// `sip` or `sips`; another scheme (`tel`, …) is carried but not routable by us.
    pub fn scheme(&self) -> &str {
        match &self.scheme {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Other(s) => s,
        }
    }

    /// Whether the scheme is `sip` or `sips`.
    pub fn is_sip(&self) -> bool {
        !matches!(self.scheme, Scheme::Other(_))
    }

    /// The user part, without a password (the opaque part of another scheme).
    pub fn user(&self) -> Option<&str> {
        self.user.map(|u| self.part(u))
    }

    /// The host as written, an IPv6 reference in brackets.
    pub fn host(&self) -> &str {
        match &self.host {
            Host::Raw(place) => self.part(*place),
            Host::Canonical(host) => host,
        }
    }

    /// The port, if written.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// A URI parameter: `Some(None)` when present without a value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        params::find(self.part(self.params), name)
    }

    /// The URI exactly as received.
    pub fn as_str(&self) -> &str {
        self.span.of(&self.raw)
    }
}

/// Equal when written alike, wherever the text lies.
impl PartialEq for SipUri {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
            && self.scheme == other.scheme
            && self.user == other.user
            && self.host == other.host
            && self.port == other.port
            && self.params == other.params
    }
}
impl Eq for SipUri {}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SipUri").field(&self.as_str()).finish()
    }
}

/// `name-addr` / `addr-spec` with header parameters: the value of From, To, Contact,
/// Route, Record-Route, Refer-To (RFC 3261 §20.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, unquoted.
    pub display: Option<String>,
    /// The URI inside the angle brackets.
    pub uri: SipUri,
    /// Header parameters (`tag`, …), in order.
    params: Params,
}

impl NameAddr {
    /// A name-addr of just `uri`.
    pub fn new(uri: SipUri) -> Self {
        Self {
            display: None,
            uri,
            params: Params::default(),
        }
    }

    /// Parses a name-addr or an addr-spec with header parameters.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        // The URI and the parameters share one copy of the text.
        Self::parse_in(Some(&Shared::new(text)), text)
    }

    /// [`NameAddr::parse`], the URI and parameters keeping a share of `shared` when they
    /// lie in it.
    pub(crate) fn parse_in(shared: Option<&Shared<'_>>, text: &str) -> Result<Self, ParseError> {
        let text = trim(text);
        // The codec's name-addr splitter handles quoted display names and both forms; we
        // only take its boundaries and keep our own copies of the parts.
        if let Some(lt) = find_unquoted(text, b'<') {
            let (display, rest) = text.split_at_checked(lt).unwrap_or_default();
            let (display, rest) = (trim(display), rest.strip_prefix('<').unwrap_or(rest));
            let (uri, after) = split_at_byte(rest, b'>')
                .ok_or_else(|| ParseError::Uri(format!("missing '>': {text:?}")))?;
            let uri = SipUri::parse_in(shared, uri)?;
            let params = Params::parse_in(shared, trim(after), false);
            // RFC 3261 §25.1: display-name = *(token LWS) / quoted-string.
            let quoted = display.starts_with('"');
            if quoted && !(display.len() >= 2 && display.ends_with('"')) {
                return Err(ParseError::Uri(format!("unbalanced quotes: {text:?}")));
            }
            if !quoted
                && !display
                    .bytes()
                    .all(|b| crate::wire::method::is_token_byte(b) || b == b' ' || b == b'\t')
            {
                return Err(ParseError::Uri(format!(
                    "display name must be tokens or quoted: {display:?}"
                )));
            }
            // Nearly always there is none: nothing to unquote.
            let display = (!display.is_empty())
                .then(|| unquote(display))
                .filter(|d| !d.is_empty());
            return Ok(Self {
                display,
                uri,
                params,
            });
        }
        // addr-spec form: RFC 3261 §20.10, parameters after the URI are header parameters.
        let semicolon = find_byte(b';', text.as_bytes());
        let (uri_part, params) = match semicolon.and_then(|i| text.split_at_checked(i)) {
            Some((uri_part, params)) => (uri_part, Params::parse_in(shared, params, false)),
            None => (text, Params::default()),
        };
        Ok(Self::new(SipUri::parse_in(shared, uri_part)?)).map(|mut na| {
            na.params = params;
            na
        })
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        self.params.get("tag").flatten()
    }

    /// A header parameter: `Some(None)` when present without a value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params.get(name)
    }

    /// The same with `tag` set (replacing any other).
    pub fn with_tag(mut self, tag: &str) -> Self {
        self.params = self
            .params
            .replace(|n| n.eq_ignore_ascii_case("tag"), &[("tag", Some(tag))]);
        self
    }

    /// Writes the name-addr as [`fmt::Display`] does, without the formatting machinery
    /// (what the message writer calls for every From and To).
    pub(crate) fn write(&self, out: &mut impl fmt::Write) -> fmt::Result {
        if let Some(d) = &self.display {
            out.write_char('"')?;
            for c in d.chars() {
                if c == '\\' || c == '"' {
                    out.write_char('\\')?;
                }
                out.write_char(c)?;
            }
            out.write_str("\" ")?;
        }
        out.write_char('<')?;
        out.write_str(self.uri.as_str())?;
        out.write_char('>')?;
        out.write_str(self.params.as_str())
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f)
    }
}

fn find_unquoted(text: &str, wanted: u8) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    text.bytes().position(|c| {
        match c {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            c if c == wanted && !quoted => return true,
            _ => {}
        }
        false
    })
}

/// `display` (trimmed) without its quotes and escapes, when quoted.
fn unquote(d: &str) -> String {
    if let Some(inner) = d.strip_prefix('"').and_then(|d| d.strip_suffix('"')) {
        let mut out = String::with_capacity(d.len());
        let mut escaped = false;
        for c in inner.chars() {
            if escaped {
                out.push(c);
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else {
                out.push(c);
            }
        }
        out
    } else {
        d.to_owned()
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_parts() {
        let u = SipUri::parse("sip:+46706170786@example.com:5070;transport=tcp;lr").unwrap();
        assert_eq!(u.user(), Some("+46706170786"));
        assert_eq!(u.host(), "example.com");
        assert_eq!(u.port(), Some(5070));
        assert_eq!(u.param("transport"), Some(Some("tcp")));
        assert_eq!(u.param("lr"), Some(None));
    }

    #[test]
    fn ipv6_host() {
        let u = SipUri::parse("sip:alice@[2001:db8::10]:5060").unwrap();
        assert_eq!(u.host(), "[2001:db8::10]");
        assert_eq!(u.port(), Some(5060));
    }

    #[test]
    fn quoted_display_name_with_specials() {
        let na = NameAddr::parse(r#""Bob \"the\" <Boss>; x" <sip:bob@b.example>;tag=a;x="1;2""#)
            .unwrap();
        assert_eq!(na.display.as_deref(), Some(r#"Bob "the" <Boss>; x"#));
        assert_eq!(na.uri.user(), Some("bob"));
        assert_eq!(na.tag(), Some("a"));
        assert_eq!(na.param("x"), Some(Some("\"1;2\"")));
    }

    #[test]
    fn addr_spec_params_belong_to_the_header() {
        let na = NameAddr::parse("sip:a@b.example;tag=xyz").unwrap();
        assert_eq!(na.uri.as_str(), "sip:a@b.example");
        assert_eq!(na.tag(), Some("xyz"));
    }

    #[test]
    fn tel_uri_is_kept_opaque() {
        let u = SipUri::parse("tel:+1-201-555-0123").unwrap();
        assert!(!u.is_sip());
        assert_eq!(u.user(), Some("+1-201-555-0123"));
    }
}
