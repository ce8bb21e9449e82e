//! Building responses to requests (RFC 3261 §8.2.6).

use bytes::Bytes;

use super::header::Headers;
use super::message::{Request, Response, StatusCode};

/// A response to `request` with the headers §8.2.6.2 says to copy: Via (all, in order),
/// From, Call-ID, CSeq, and To with `to_tag` added when the request's To had none.
pub fn response_to(request: &Request, status: StatusCode, to_tag: Option<&str>) -> Response {
    let to = match (request.to.tag(), to_tag) {
        (None, Some(tag)) => request.to.clone().with_tag(tag),
        _ => request.to.clone(),
    };
    Response {
        status,
        reason: String::new(),
        vias: request.vias.clone(),
        from: request.from.clone(),
        to,
        call_id: request.call_id.clone(),
        cseq: request.cseq.clone(),
        headers: Headers::new(),
        body: Bytes::new(),
    }
}

/// An error response for a request we could not parse, built by copying the raw Via,
/// From, To, Call-ID and CSeq lines. `None` when the bytes are not a request or lack one
/// of them: then no response can reach anyone and the message is only logged.
pub fn bad_request_for(raw: &[u8], status: StatusCode, why: &str) -> Option<Bytes> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    if start.starts_with("SIP/") || start.split(' ').count() < 3 {
        return None;
    }
    let mut copied: Vec<&str> = Vec::new();
    let mut have = [false; 5];
    for line in lines {
        let Some((name, _)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let Some(slot) = [
            ("via", "v"),
            ("from", "f"),
            ("to", "t"),
            ("call-id", "i"),
            ("cseq", "cseq"),
        ]
        .iter()
        .position(|(long, short)| {
            name.eq_ignore_ascii_case(long) || name.eq_ignore_ascii_case(short)
        }) else {
            continue;
        };
        if let Some(h) = have.get_mut(slot) {
            *h = true;
        }
        copied.push(line);
    }
    if !have.iter().all(|h| *h) {
        return None;
    }
    let reason = why.replace(['\r', '\n'], " ");
    let mut out = format!("SIP/2.0 {} {}\r\n", status, status.default_reason());
    for line in copied {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "Warning: 399 concierge \"{}\"\r\nContent-Length: 0\r\n\r\n",
        reason.replace('"', "'")
    ));
    Some(Bytes::from(out))
}
