//! Messages to bytes. Content-Length is always written, computed from the body, so that a
//! message we send is framed correctly on every transport.

use std::fmt::Write as _;

use bytes::Bytes;

use super::header::Headers;
use super::message::{CSeq, Message, Request, Response};
use super::uri::NameAddr;
use super::via::Via;

impl Request {
    /// The message on the wire, Content-Length computed from the body.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = String::with_capacity(512 + self.body.len());
        let _ = write!(out, "{} {} SIP/2.0\r\n", self.method, self.uri);
        write_vias(&mut out, &self.vias);
        if let Some(mf) = self.max_forwards {
            let _ = write!(out, "Max-Forwards: {mf}\r\n");
        }
        write_rest(
            &mut out,
            &self.from,
            &self.to,
            &self.call_id,
            &self.cseq,
            &self.headers,
            &self.body,
        )
    }
}

impl Response {
    /// The request on the wire, Content-Length computed from the body.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = String::with_capacity(512 + self.body.len());
        let reason = if self.reason.is_empty() {
            self.status.default_reason()
        } else {
            &self.reason
        };
        let _ = write!(out, "SIP/2.0 {} {}\r\n", self.status, reason);
        write_vias(&mut out, &self.vias);
        write_rest(
            &mut out,
            &self.from,
            &self.to,
            &self.call_id,
            &self.cseq,
            &self.headers,
            &self.body,
        )
    }
}

impl Message {
    /// The response on the wire, Content-Length computed from the body.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Self::Request(r) => r.to_bytes(),
            Self::Response(r) => r.to_bytes(),
        }
    }
}

fn write_vias(out: &mut String, vias: &[Via]) {
    for via in vias {
        let _ = write!(out, "Via: {via}\r\n");
    }
}

fn write_rest(
    out: &mut String,
    from: &NameAddr,
    to: &NameAddr,
    call_id: &str,
    cseq: &CSeq,
    headers: &Headers,
    body: &[u8],
) -> Bytes {
    let _ = write!(
        out,
        "From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\n"
    );
    for (name, value) in headers.iter() {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
    let mut bytes = out.clone().into_bytes();
    bytes.extend_from_slice(body);
    Bytes::from(bytes)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::super::parse::parse_datagram;

    #[test]
    fn what_we_write_parses_back_to_the_same_message() {
        let text = concat!(
            "INVITE sip:ivr@127.0.0.1:5060 SIP/2.0\r\n",
            "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport\r\n",
            "Max-Forwards: 70\r\n",
            "From: \"Alice\" <sip:alice@a.example>;tag=1\r\n",
            "To: <sip:ivr@127.0.0.1>\r\n",
            "Call-ID: c1\r\n",
            "CSeq: 7 INVITE\r\n",
            "Contact: <sip:alice@10.0.0.1>\r\n",
            "Content-Type: application/sdp\r\n",
            "Content-Length: 5\r\n",
            "\r\n",
            "v=0\r\n"
        );
        let m = parse_datagram(text.as_bytes()).unwrap().unwrap();
        let again = parse_datagram(&m.to_bytes()).unwrap().unwrap();
        assert_eq!(m, again);
        assert_eq!(std::str::from_utf8(&m.to_bytes()).unwrap(), text);
    }
}
