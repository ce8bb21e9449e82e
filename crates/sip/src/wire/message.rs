use std::fmt;

use bytes::Bytes;

use super::header::{HeaderName, Headers};
use super::method::Method;
use super::uri::{NameAddr, SipUri};
use super::via::Via;
use crate::ids::CallId;

/// A parsed SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Message {
    /// The Call-ID of either.
    pub fn call_id(&self) -> &str {
        match self {
            Self::Request(r) => r.call_id.as_str(),
            Self::Response(r) => r.call_id.as_str(),
        }
    }
}

/// `CSeq: 4711 INVITE` (RFC 3261 §20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number.
    pub seq: u32,
    /// The method.
    pub method: Method,
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// A response status code. Open: any code 100–699 is carried, known or not
/// (RFC 3261 §21: an unknown code is treated as the x00 of its class).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatusCode(pub u16);

impl StatusCode {
    /// `100 Trying`.
    pub const TRYING: Self = Self(100);
    /// `180 Ringing`.
    pub const RINGING: Self = Self(180);
    /// `183 Session Progress`.
    pub const SESSION_PROGRESS: Self = Self(183);
    /// `200 Ok`.
    pub const OK: Self = Self(200);
    /// `202 Accepted`.
    pub const ACCEPTED: Self = Self(202);
    /// `302 Moved Temporarily`.
    pub const MOVED_TEMPORARILY: Self = Self(302);
    /// `400 Bad Request`.
    pub const BAD_REQUEST: Self = Self(400);
    /// `404 Not Found`.
    pub const NOT_FOUND: Self = Self(404);
    /// `405 Method Not Allowed`.
    pub const METHOD_NOT_ALLOWED: Self = Self(405);
    /// `408 Request Timeout`.
    pub const REQUEST_TIMEOUT: Self = Self(408);
    /// `480 Temporarily Unavailable`.
    pub const TEMPORARILY_UNAVAILABLE: Self = Self(480);
    /// `416 Unsupported Uri Scheme`.
    pub const UNSUPPORTED_URI_SCHEME: Self = Self(416);
    /// `420 Bad Extension`.
    pub const BAD_EXTENSION: Self = Self(420);
    /// `481 Call Does Not Exist`.
    pub const CALL_DOES_NOT_EXIST: Self = Self(481);
    /// `482 Loop Detected`.
    pub const LOOP_DETECTED: Self = Self(482);
    /// `483 Too Many Hops`.
    pub const TOO_MANY_HOPS: Self = Self(483);
    /// `487 Request Terminated`.
    pub const REQUEST_TERMINATED: Self = Self(487);
    /// RFC 4028 §6: the Session-Expires asked for is below our Min-SE.
    pub const SESSION_INTERVAL_TOO_SMALL: Self = Self(422);
    /// RFC 3261 §14.2: an offer crossed one of ours (glare).
    pub const REQUEST_PENDING: Self = Self(491);
    /// `488 Not Acceptable Here`.
    pub const NOT_ACCEPTABLE_HERE: Self = Self(488);
    /// `500 Server Internal Error`.
    pub const SERVER_INTERNAL_ERROR: Self = Self(500);
    /// `501 Not Implemented`.
    pub const NOT_IMPLEMENTED: Self = Self(501);
    /// `503 Service Unavailable`.
    pub const SERVICE_UNAVAILABLE: Self = Self(503);
    /// `504 Server Timeout`.
    pub const SERVER_TIMEOUT: Self = Self(504);
    /// `505 Version Not Supported`.
    pub const VERSION_NOT_SUPPORTED: Self = Self(505);
    /// `603 Decline`.
    pub const DECLINE: Self = Self(603);

    /// 1xx.
    pub fn is_provisional(self) -> bool {
        self.0 < 200
    }

    /// 2xx.
    pub fn is_success(self) -> bool {
        (200..300).contains(&self.0)
    }

    /// 200–699.
    pub fn is_final(self) -> bool {
        self.0 >= 200
    }

    /// The class: 1 for 1xx, 2 for 2xx, …
    pub fn class(self) -> u16 {
        self.0 / 100
    }

    /// The RFC 3261 §21 reason phrase, or the class's generic one.
    pub fn default_reason(self) -> &'static str {
        match self.0 {
            100 => "Trying",
            180 => "Ringing",
            181 => "Call Is Being Forwarded",
            182 => "Queued",
            183 => "Session Progress",
            200 => "OK",
            202 => "Accepted",
            300 => "Multiple Choices",
            301 => "Moved Permanently",
            302 => "Moved Temporarily",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            406 => "Not Acceptable",
            407 => "Proxy Authentication Required",
            408 => "Request Timeout",
            413 => "Request Entity Too Large",
            415 => "Unsupported Media Type",
            416 => "Unsupported URI Scheme",
            420 => "Bad Extension",
            422 => "Session Interval Too Small",
            480 => "Temporarily Unavailable",
            481 => "Call/Transaction Does Not Exist",
            482 => "Loop Detected",
            483 => "Too Many Hops",
            486 => "Busy Here",
            487 => "Request Terminated",
            488 => "Not Acceptable Here",
            491 => "Request Pending",
            500 => "Server Internal Error",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            504 => "Server Time-out",
            505 => "Version Not Supported",
            513 => "Message Too Large",
            600 => "Busy Everywhere",
            603 => "Decline",
            _ => match self.class() {
                1 => "Provisional",
                2 => "Success",
                3 => "Redirection",
                4 => "Client Error",
                5 => "Server Error",
                _ => "Global Failure",
            },
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A SIP request. The headers every layer relies on are parsed and typed; all others
/// stay in [`Headers`] in arrival order. Content-Length is not kept: it is computed from
/// the body when the request is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The Request-URI.
    pub uri: SipUri,
    /// Topmost first.
    pub vias: Vec<Via>,
    /// From.
    pub from: NameAddr,
    /// To.
    pub to: NameAddr,
    /// Call-ID: shared, so a response, a dialog and a key copy it without allocating.
    pub call_id: CallId,
    /// CSeq.
    pub cseq: CSeq,
    /// Max-Forwards, when present.
    pub max_forwards: Option<u32>,
    /// Every other header, in order.
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
}

/// A SIP response; see [`Request`] for what is typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: StatusCode,
    /// The reason phrase as received or to send.
    pub reason: String,
    /// The Vias, top first.
    pub vias: Vec<Via>,
    /// From.
    pub from: NameAddr,
    /// To.
    pub to: NameAddr,
    /// Call-ID: shared, so a response, a dialog and a key copy it without allocating.
    pub call_id: CallId,
    /// CSeq.
    pub cseq: CSeq,
    /// Every other header, in order.
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
}

macro_rules! common_accessors {
    ($ty:ty) => {
        impl $ty {
            /// The topmost Via.
            pub fn top_via(&self) -> Option<&Via> {
                self.vias.first()
            }

            /// The first value of header `name`.
            pub fn header(&self, name: &HeaderName) -> Option<&str> {
                self.headers.get(name)
            }

            /// The first Contact, when it parses.
            pub fn contact(&self) -> Option<NameAddr> {
                self.headers
                    .get(&HeaderName::CONTACT)
                    .and_then(|c| NameAddr::parse(c).ok())
            }

            /// The Content-Type, if any.
            pub fn content_type(&self) -> Option<&str> {
                self.headers.get(&HeaderName::CONTENT_TYPE).map(str::trim)
            }

            /// Whether the body is of the given MIME type (parameters and case ignored).
            pub fn body_is(&self, mime: &str) -> bool {
                !self.body.is_empty()
                    && self
                        .content_type()
                        .and_then(|ct| ct.split(';').next())
                        .is_some_and(|t| t.trim().eq_ignore_ascii_case(mime))
            }

            /// Record-Route or Route entries, one per element.
            pub fn routes(&self, name: &HeaderName) -> Vec<NameAddr> {
                self.headers
                    .get_all(name)
                    .filter_map(|v| NameAddr::parse(v).ok())
                    .collect()
            }
        }
    };
}
common_accessors!(Request);
common_accessors!(Response);
