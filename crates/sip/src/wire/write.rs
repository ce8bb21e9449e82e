//! Messages to bytes. Content-Length is always written, computed from the body, so that a
//! message we send is framed correctly on every transport.
//!
//! Each message is written into one buffer sized up front, piece by piece, without the
//! `fmt` machinery (whose per-argument dispatch cost more than the copying itself), and
//! that buffer becomes the [`Bytes`] sent: no copy after writing.

use bytes::Bytes;

use super::header::Headers;
use super::message::{CSeq, Message, Request, Response};
use super::uri::NameAddr;
use super::via::Via;

impl Request {
    /// The message on the wire, Content-Length computed from the body.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Writer::with_capacity(512 + self.body.len());
        out.push(self.method.as_str());
        out.push(" ");
        out.push(self.uri.as_str());
        out.push(" SIP/2.0\r\n");
        out.vias(&self.vias);
        if let Some(mf) = self.max_forwards {
            out.push("Max-Forwards: ");
            out.number(mf);
            out.push("\r\n");
        }
        out.rest(
            &self.from,
            &self.to,
            self.call_id.as_str(),
            &self.cseq,
            &self.headers,
            &self.body,
        )
    }
}

impl Response {
    /// The request on the wire, Content-Length computed from the body.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Writer::with_capacity(512 + self.body.len());
        let reason = if self.reason.is_empty() {
            self.status.default_reason()
        } else {
            &self.reason
        };
        out.push("SIP/2.0 ");
        out.number(self.status.0);
        out.push(" ");
        out.push(reason);
        out.push("\r\n");
        out.vias(&self.vias);
        out.rest(
            &self.from,
            &self.to,
            self.call_id.as_str(),
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

/// The buffer a message is written into.
struct Writer(String);

impl Writer {
    fn with_capacity(n: usize) -> Self {
        Self(String::with_capacity(n))
    }

    fn push(&mut self, s: &str) {
        self.0.push_str(s);
    }

    fn number(&mut self, n: impl itoa::Integer) {
        self.0.push_str(itoa::Buffer::new().format(n));
    }

    fn vias(&mut self, vias: &[Via]) {
        for via in vias {
            self.push("Via: ");
            // Writing into a String cannot fail.
            let _ = via.write(&mut self.0);
            self.push("\r\n");
        }
    }

    fn rest(
        mut self,
        from: &NameAddr,
        to: &NameAddr,
        call_id: &str,
        cseq: &CSeq,
        headers: &Headers,
        body: &[u8],
    ) -> Bytes {
        self.push("From: ");
        let _ = from.write(&mut self.0);
        self.push("\r\nTo: ");
        let _ = to.write(&mut self.0);
        self.push("\r\nCall-ID: ");
        self.push(call_id);
        self.push("\r\nCSeq: ");
        self.number(cseq.seq);
        self.push(" ");
        self.push(cseq.method.as_str());
        self.push("\r\n");
        for (name, value) in headers.iter() {
            self.push(name.as_str());
            self.push(": ");
            self.push(value);
            self.push("\r\n");
        }
        self.push("Content-Length: ");
        self.number(body.len());
        self.push("\r\n\r\n");
        let mut bytes = self.0.into_bytes();
        bytes.extend_from_slice(body);
        Bytes::from(bytes)
    }
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
