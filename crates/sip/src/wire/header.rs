use std::borrow::Cow;
use std::fmt;

/// A header field name in its canonical spelling.
///
/// Names compare case-insensitively (RFC 3261 §7.3.1) and compact forms are expanded when
/// a message is parsed (§7.3.3), so `i:` and `CALL-ID:` both become `Call-ID`.
#[derive(Debug, Clone)]
pub struct HeaderName(Cow<'static, str>);

macro_rules! known_headers {
    ($($konst:ident = $name:literal $(, $compact:literal)?;)*) => {
        impl HeaderName {
            $(
                #[doc = concat!("`", $name, "`.")]
                pub const $konst: Self = Self(Cow::Borrowed($name));
            )*

            /// The canonical name for `raw`, expanding compact forms.
            pub fn new(raw: &str) -> Self {
                let raw = raw.trim();
                $(
                    if raw.eq_ignore_ascii_case($name) $(|| raw.eq_ignore_ascii_case($compact))? {
                        return Self::$konst;
                    }
                )*
                Self(Cow::Owned(raw.to_owned()))
            }
        }
    };
}

known_headers! {
    ACCEPT = "Accept";
    ALLOW = "Allow";
    ALLOW_EVENTS = "Allow-Events", "u";
    AUTHORIZATION = "Authorization";
    CALL_ID = "Call-ID", "i";
    CONTACT = "Contact", "m";
    CONTENT_ENCODING = "Content-Encoding", "e";
    CONTENT_LENGTH = "Content-Length", "l";
    CONTENT_TYPE = "Content-Type", "c";
    CSEQ = "CSeq";
    EVENT = "Event", "o";
    EXPIRES = "Expires";
    FROM = "From", "f";
    MAX_FORWARDS = "Max-Forwards";
    MIN_EXPIRES = "Min-Expires";
    MIN_SE = "Min-SE";
    P_ASSERTED_IDENTITY = "P-Asserted-Identity";
    PATH = "Path";
    PROXY_AUTHENTICATE = "Proxy-Authenticate";
    PROXY_AUTHORIZATION = "Proxy-Authorization";
    PROXY_REQUIRE = "Proxy-Require";
    RACK = "RAck";
    REASON = "Reason";
    RECORD_ROUTE = "Record-Route";
    REFER_TO = "Refer-To", "r";
    REFERRED_BY = "Referred-By", "b";
    REQUIRE = "Require";
    RETRY_AFTER = "Retry-After";
    ROUTE = "Route";
    RSEQ = "RSeq";
    SERVER = "Server";
    SERVICE_ROUTE = "Service-Route";
    SESSION_EXPIRES = "Session-Expires", "x";
    SUBJECT = "Subject", "s";
    SUBSCRIPTION_STATE = "Subscription-State";
    SUPPORTED = "Supported", "k";
    TIMESTAMP = "Timestamp";
    TO = "To", "t";
    UNSUPPORTED = "Unsupported";
    USER_AGENT = "User-Agent";
    VIA = "Via", "v";
    WWW_AUTHENTICATE = "WWW-Authenticate";
}

impl HeaderName {
    /// The canonical spelling.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Headers whose value is a comma-separated list that RFC 3261 §7.3.1 lets a sender
    /// split over several lines or join on one; we always hold one entry per element.
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
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}
impl Eq for HeaderName {}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The headers of a message other than the ones [`super::Request`] and
/// [`super::Response`] keep parsed, in the order they arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(HeaderName, String)>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The first value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` appears.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.get(name).is_some()
    }

    /// Appends a header field.
    pub fn push(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.push((name, value.into()));
    }

    /// Replaces every value of `name` with one.
    pub fn set(&mut self, name: HeaderName, value: impl Into<String>) {
        self.remove(&name);
        self.push(name, value);
    }

    /// Removes every field named `name`.
    pub fn remove(&mut self, name: &HeaderName) {
        self.0.retain(|(n, _)| n != name);
    }

    /// Every field in order.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &str)> {
        self.0.iter().map(|(n, v)| (n, v.as_str()))
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Splits a header value at the commas that separate list elements, ignoring commas inside
/// quoted strings and `<…>` (a display name or a URI may hold one).
pub(crate) fn split_list(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut in_quotes, mut in_angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '<' if !in_quotes => in_angle = true,
            '>' if !in_quotes => in_angle = false,
            ',' if !in_quotes && !in_angle => {
                parts.push(value.get(start..i).unwrap_or_default().trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value.get(start..).unwrap_or_default().trim());
    parts.retain(|p| !p.is_empty());
    parts
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
            split_list(v),
            vec![r#""Smith, John" <sip:a@b;x=1,2>;q=1"#, "<sip:c@d>"]
        );
    }
}
