use std::fmt;

/// A request method. RFC 3261 §7.1: method names are case-sensitive, so `invite` is an
/// unknown extension method, not INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `INVITE`.
    Invite,
    /// `ACK`.
    Ack,
    /// `BYE`.
    Bye,
    /// `CANCEL`.
    Cancel,
    /// `OPTIONS`.
    Options,
    /// `REGISTER`.
    Register,
    /// `INFO`.
    Info,
    /// `NOTIFY`.
    Notify,
    /// `REFER`.
    Refer,
    /// `SUBSCRIBE`.
    Subscribe,
    /// `UPDATE`.
    Update,
    /// `PRACK`.
    Prack,
    /// `MESSAGE`.
    Message,
    /// An extension method, as its case-sensitive token.
    Other(String),
}

impl Method {
    /// The method named by `token` (case-sensitive, RFC 3261 §7.1); `None` if not a token.
    pub fn parse(token: &str) -> Option<Self> {
        Some(match token {
            "INVITE" => Self::Invite,
            "ACK" => Self::Ack,
            "BYE" => Self::Bye,
            "CANCEL" => Self::Cancel,
            "OPTIONS" => Self::Options,
            "REGISTER" => Self::Register,
            "INFO" => Self::Info,
            "NOTIFY" => Self::Notify,
            "REFER" => Self::Refer,
            "SUBSCRIBE" => Self::Subscribe,
            "UPDATE" => Self::Update,
            "PRACK" => Self::Prack,
            "MESSAGE" => Self::Message,
            // RFC 3261 §25.1: a method is a token; anything else is not a method at all.
            // (The names above are tokens: only another needs the check.)
            other if !other.is_empty() && other.bytes().all(is_token_byte) => {
                Self::Other(other.to_owned())
            }
            _ => return None,
        })
    }

    /// The method's token.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Options => "OPTIONS",
            Self::Register => "REGISTER",
            Self::Info => "INFO",
            Self::Notify => "NOTIFY",
            Self::Refer => "REFER",
            Self::Subscribe => "SUBSCRIBE",
            Self::Update => "UPDATE",
            Self::Prack => "PRACK",
            Self::Message => "MESSAGE",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 3261 §25.1 `token` characters.
pub(crate) fn is_token_byte(b: u8) -> bool {
    // One pattern: compiled to a table test, not a scan of the punctuation list.
    matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~')
}
