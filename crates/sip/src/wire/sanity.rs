//! RFC 3261 §8.2 request checks that come before any processing, each mapped to the
//! response the RFC prescribes. §16.3 (proxy checks) applies to us only in part: we are a
//! UAS for the caller, but a B2BUA forwards calls onward, so Max-Forwards matters.

use super::header::HeaderName;
use super::message::{Request, StatusCode};
use super::method::Method;
use super::reply::response_to;
use super::Response;

/// A request refused before it reached a transaction user, with the status to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The error response to send.
    pub status: StatusCode,
    /// Why, for the log.
    pub why: String,
    /// Option tags for the Unsupported header of a 420.
    pub unsupported: Vec<String>,
}

impl Rejection {
    fn new(status: StatusCode, why: impl Into<String>) -> Self {
        Self {
            status,
            why: why.into(),
            unsupported: Vec::new(),
        }
    }

    /// The response to send for `request`.
    pub fn response(&self, request: &Request, to_tag: &str) -> Response {
        let mut r = response_to(request, self.status, Some(to_tag));
        if !self.unsupported.is_empty() {
            r.headers
                .push(HeaderName::UNSUPPORTED, self.unsupported.join(", "));
        }
        r.headers.push(
            HeaderName::new("Warning"),
            format!("399 concierge \"{}\"", self.why.replace('"', "'")),
        );
        r
    }
}

/// Checks `request` against §8.2.1–§8.2.2. `supported` lists the option tags we implement.
pub fn check_request(request: &Request, supported: &[impl AsRef<str>]) -> Result<(), Rejection> {
    // §8.1.1.5: the CSeq method matches the request method (CANCEL and ACK included).
    if request.cseq.method != request.method {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "CSeq method does not match the request",
        ));
    }
    // §8.2.2.1: a scheme we do not understand is 416.
    if !matches!(request.uri.scheme(), "sip" | "sips" | "tel") {
        return Err(Rejection::new(
            StatusCode::UNSUPPORTED_URI_SCHEME,
            format!("Request-URI scheme {:?}", request.uri.scheme()),
        ));
    }
    // §8.1.1.3: a request is identified by the From tag; RFC 2543 peers may omit it, so it
    // is not enforced here, but From and To must be usable URIs.
    for (which, uri) in [("From", &request.from.uri), ("To", &request.to.uri)] {
        if uri.is_sip() && uri.host().is_empty() {
            return Err(Rejection::new(
                StatusCode::BAD_REQUEST,
                format!("{which} URI has no host"),
            ));
        }
    }
    // §16.3 step 3, applied because a B2BUA may forward the call: no hops left.
    if request.max_forwards == Some(0)
        && request.method != Method::Options
        && request.method != Method::Ack
    {
        return Err(Rejection::new(
            StatusCode::TOO_MANY_HOPS,
            "Max-Forwards is 0",
        ));
    }
    // §8.2.2.3: unknown Require option tags are 420, except for ACK and CANCEL.
    if request.method != Method::Ack && request.method != Method::Cancel {
        let unsupported: Vec<String> = request
            .headers
            .get_all(&HeaderName::REQUIRE)
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| {
                !t.is_empty() && !supported.iter().any(|s| s.as_ref().eq_ignore_ascii_case(t))
            })
            .map(str::to_owned)
            .collect();
        if !unsupported.is_empty() {
            let mut r = Rejection::new(StatusCode::BAD_EXTENSION, "unsupported Require");
            r.unsupported = unsupported;
            return Err(r);
        }
    }
    Ok(())
}
