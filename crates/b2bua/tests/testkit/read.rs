//! Reading what the switch sent: responses and requests among messages, SDP bodies,
//! call records.

use concierge_b2bua::CallRecord;
use concierge_sip::wire::{Message, Request, Response};

pub(crate) fn response(m: &Message) -> &Response {
    match m {
        Message::Response(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

pub(crate) fn request(m: &Message) -> &Request {
    match m {
        Message::Request(r) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

/// The status codes among `out`, in order.
pub(crate) fn statuses(out: &[Message]) -> Vec<u16> {
    out.iter()
        .filter_map(|m| match m {
            Message::Response(r) => Some(r.status.0),
            _ => None,
        })
        .collect()
}

/// `"200 INVITE"`-style summaries of the responses among `out`.
pub(crate) fn answers(out: &[Message]) -> Vec<String> {
    out.iter()
        .filter_map(|m| match m {
            Message::Response(r) => Some(format!("{} {}", r.status.0, r.cseq.method.as_str())),
            _ => None,
        })
        .collect()
}

/// The methods of the requests among `out`, in order.
pub(crate) fn methods(out: &[Message]) -> Vec<String> {
    out.iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r.method.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

/// The first `method` request among `out`.
pub(crate) fn find_request(out: &[Message], method: &str) -> Request {
    out.iter()
        .find_map(|m| match m {
            Message::Request(r) if r.method.as_str() == method => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {method} in {:?}", methods(out)))
}

/// The first response with `code` among `out`.
pub(crate) fn find_response(out: &[Message], code: u16) -> Response {
    out.iter()
        .find_map(|m| match m {
            Message::Response(r) if r.status.0 == code => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {code} in {:?}", statuses(out)))
}

/// A header of a request or response.
pub(crate) fn header<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    let name = concierge_sip::wire::HeaderName::new(name);
    match m {
        Message::Request(r) => r.header(&name),
        Message::Response(r) => r.header(&name),
    }
}

/// The port of the `m=audio` line of an SDP body.
pub(crate) fn sdp_port(body: &[u8]) -> Option<u16> {
    String::from_utf8_lossy(body)
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next()?.parse().ok())
}

/// The payload types of the `m=audio` line of an SDP body, in order.
pub(crate) fn sdp_formats(body: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(body)
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .map(|r| {
            r.split(' ')
                .skip(2)
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The direction attribute of an SDP body (`sendrecv` when none is written).
pub(crate) fn sdp_direction(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    ["sendrecv", "sendonly", "recvonly", "inactive"]
        .into_iter()
        .find(|d| text.lines().any(|l| l == format!("a={d}")))
        .unwrap_or("sendrecv")
        .to_owned()
}

/// A record's path as `node(exit) > node(exit)`; `-` for a node left without an exit.
pub(crate) fn path(rec: &CallRecord) -> String {
    rec.path
        .iter()
        .map(|s| format!("{}({})", s.node, s.exit.as_deref().unwrap_or("-")))
        .collect::<Vec<_>>()
        .join(" > ")
}

/// A flow variable of a record.
pub(crate) fn var<'a>(rec: &'a CallRecord, name: &str) -> Option<&'a str> {
    rec.variables
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
