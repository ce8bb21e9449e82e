//! Building responses to requests (RFC 3261 §8.2.6).

use bytes::Bytes;

use super::header::{HeaderName, Headers};
use super::message::{Request, Response, StatusCode};
use super::uri::SipUri;

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

/// A dialog-creating response of a UAS (an 18x with a To tag, or a 2xx, to an INVITE):
/// [`response_to`] plus, as RFC 3261 §12.1.1 requires, every Record-Route value of the
/// request copied in order, and our `contact` (§8.1.1.8, §13.3.1.4). Without the
/// Record-Route the caller builds no route set and sends its ACK and BYE around the
/// proxies that asked to stay on the path.
pub fn dialog_response_to(
    request: &Request,
    status: StatusCode,
    to_tag: &str,
    contact: &SipUri,
) -> Response {
    let mut response = response_to(request, status, Some(to_tag));
    for route in request.headers.get_all(&HeaderName::RECORD_ROUTE) {
        response.headers.push(HeaderName::RECORD_ROUTE, route);
    }
    response
        .headers
        .push_joined(HeaderName::CONTACT, &["<", contact.as_str(), ">"]);
    response
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{parse_datagram, Message};

    fn request(text: &str) -> Request {
        match parse_datagram(text.as_bytes()).unwrap().unwrap() {
            Message::Request(r) => r,
            _ => unreachable!(),
        }
    }

    const INVITE: &str = concat!(
        "INVITE sip:ivr@192.0.2.10 SIP/2.0\r\n",
        "Via: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKp1\r\n",
        "Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKc1\r\n",
        "Record-Route: <sip:p2.example;lr>, <sip:p1.example;lr;ftag=x>\r\n",
        "Record-Route: <sip:198.51.100.9>\r\n",
        "From: <sip:+46706170786@carrier.example>;tag=caller\r\n",
        "To: <sip:ivr@192.0.2.10>\r\n",
        "Call-ID: r1\r\n",
        "CSeq: 10 INVITE\r\n",
        "Contact: <sip:+46706170786@203.0.113.5:5060>\r\n",
        "\r\n"
    );

    #[test]
    fn rfc3261_12_1_1_dialog_response_copies_every_record_route_in_order() {
        let invite = request(INVITE);
        let contact = SipUri::parse("sip:concierge@192.0.2.10:5060;transport=tcp").unwrap();
        for status in [StatusCode::RINGING, StatusCode::OK] {
            let r = dialog_response_to(&invite, status, "ours", &contact);
            let text = String::from_utf8(r.to_bytes().to_vec()).unwrap();
            let rr: Vec<&str> = r.headers.get_all(&HeaderName::RECORD_ROUTE).collect();
            assert_eq!(
                rr,
                vec![
                    "<sip:p2.example;lr>",
                    "<sip:p1.example;lr;ftag=x>",
                    "<sip:198.51.100.9>"
                ],
                "{text}"
            );
            assert_eq!(
                r.headers.get(&HeaderName::CONTACT),
                Some("<sip:concierge@192.0.2.10:5060;transport=tcp>")
            );
            assert_eq!(r.to.tag(), Some("ours"));
            // Both Vias, in order (§8.2.6.2).
            assert_eq!(r.vias.len(), 2);
            assert!(text.find("z9hG4bKp1").unwrap() < text.find("z9hG4bKc1").unwrap());
        }
    }

    #[test]
    fn plain_responses_carry_no_record_route() {
        let invite = request(INVITE);
        let r = response_to(&invite, StatusCode::TRYING, None);
        assert_eq!(r.headers.get(&HeaderName::RECORD_ROUTE), None);
    }
}
