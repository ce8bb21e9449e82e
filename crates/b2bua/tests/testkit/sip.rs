//! Scripted SIP peers: a [`Caller`] (a softphone or a carrier gateway placing one call)
//! and a [`Desk`] (the target a bridged transfer calls). Each builds its requests and
//! answers as text, the way a peer would put them on the wire, keeps its side of the
//! dialog (tags, CSeq, branches) and reads what the switch sent it.

use std::net::SocketAddr;

use concierge_sip::wire::{response_to, Message, Request, StatusCode};

use super::rtp::Stream;
use super::{sdp_port, Kit, HOST, PHONE, SIP_PORT};

/// The codecs a caller offers: PCMA, PCMU and telephone-event.
pub(crate) const EVENT_PT: u8 = 101;

/// A caller's SDP at `media`, version `version`, with `direction`.
pub(crate) fn caller_sdp(media: SocketAddr, version: u32, direction: &str) -> String {
    let ip = media.ip();
    format!(
        "v=0\r\no=- 4711 {version} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP 8 0 {EVENT_PT}\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:{EVENT_PT} telephone-event/8000\r\na=fmtp:{EVENT_PT} 0-15\r\na={direction}\r\n",
        media.port()
    )
}

/// One call placed to the switch, from the caller's side.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) call_id: String,
    /// Where the caller's SIP comes from (and where ours goes).
    pub(crate) addr: SocketAddr,
    /// The caller's RTP address, in its SDP.
    pub(crate) media: SocketAddr,
    /// The number in From.
    pub(crate) number: String,
    /// The Request-URI user dialled.
    pub(crate) dialled: String,
    pub(crate) tag: String,
    /// Our To tag, once a response carried one.
    pub(crate) to_tag: Option<String>,
    /// Header lines added to the INVITE (`P-Asserted-Identity: …`).
    pub(crate) headers: Vec<String>,
    /// The INVITE carries an SDP offer (else we offer in the 200 and the ACK answers).
    pub(crate) offer: bool,
    /// Our RTP port for this call, from the SDP of our 200.
    pub(crate) port: Option<u16>,
    /// The audio payload type agreed (the first of our 200's SDP): 0 PCMU or 8 PCMA.
    pub(crate) audio_pt: u8,
    /// The caller's RTP stream (audio and key presses).
    pub(crate) rtp: Stream,
    cseq: u32,
    /// CSeq of the last INVITE (initial or re-INVITE): its ACK carries it.
    invite_cseq: u32,
    invite_branch: String,
    branches: u32,
    sdp_version: u32,
}

impl Caller {
    /// A softphone on the untrusted [`PHONE`] address calling from `number`.
    pub(crate) fn phone(call_id: &str, number: &str) -> Self {
        Self {
            call_id: call_id.into(),
            addr: PHONE.parse().expect("an address"),
            media: "127.0.0.1:4000".parse().expect("an address"),
            number: number.into(),
            dialled: "ivr".into(),
            tag: format!("{call_id}-ph"),
            to_tag: None,
            headers: Vec::new(),
            offer: true,
            port: None,
            audio_pt: 0,
            rtp: Stream::new(0x1234_5678),
            cseq: 0,
            invite_cseq: 1,
            invite_branch: String::new(),
            branches: 0,
            sdp_version: 1,
        }
    }

    /// A call through the trusted [`super::CARRIER`], which asserts `number` in
    /// P-Asserted-Identity (From says the same).
    pub(crate) fn carrier(call_id: &str, number: &str) -> Self {
        let mut c = Self::phone(call_id, number);
        c.addr = super::CARRIER.parse().expect("an address");
        c.media = "127.0.0.2:4000".parse().expect("an address");
        c.headers.push(format!(
            "P-Asserted-Identity: <sip:{number}@carrier.example>"
        ));
        c
    }

    /// From `addr` (SIP) instead.
    pub(crate) fn at(mut self, addr: &str) -> Self {
        self.addr = addr.parse().expect("host:port");
        self
    }

    /// With one more INVITE header line (`Name: value`).
    pub(crate) fn header(mut self, line: &str) -> Self {
        self.headers.push(line.into());
        self
    }

    /// Without an SDP offer in the INVITE (late offer: the ACK answers ours).
    pub(crate) fn without_offer(mut self) -> Self {
        self.offer = false;
        self
    }

    fn branch(&mut self) -> String {
        self.branches += 1;
        format!("z9hG4bK{}-{}", self.call_id, self.branches)
    }

    fn header_from(&self) -> String {
        format!(
            "From: <sip:{}@{}>;tag={}",
            self.number,
            self.addr.ip(),
            self.tag
        )
    }

    fn header_to(&self) -> String {
        match &self.to_tag {
            Some(t) => format!("To: <sip:{}@{HOST}>;tag={t}", self.dialled),
            None => format!("To: <sip:{}@{HOST}>", self.dialled),
        }
    }

    fn body_lines(content_type: &str, body: &str) -> String {
        if body.is_empty() {
            "Content-Length: 0\r\n\r\n".into()
        } else {
            format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        }
    }

    /// What the switch sent this call since the caller last looked; learns our To tag
    /// and RTP port from the answers to its INVITEs.
    pub(crate) fn inbox(&mut self, kit: &mut Kit) -> Vec<Message> {
        let (addr, id) = (self.addr, self.call_id.clone());
        let out = kit.take_sent(|s| s.to == addr && s.message.call_id() == id);
        for m in &out {
            if let Message::Response(r) = m {
                if r.cseq.method.as_str() != "INVITE" || r.status.0 == 100 {
                    continue;
                }
                if self.to_tag.is_none() {
                    self.to_tag = r.to.tag().map(str::to_owned);
                }
                if r.status.is_success() {
                    if let Some(port) = sdp_port(&r.body) {
                        self.port = Some(port);
                    }
                    if let Some(pt) = super::sdp_formats(&r.body).first() {
                        self.audio_pt = *pt;
                    }
                }
            }
        }
        out
    }

    /// The INVITE as it goes on the wire.
    pub(crate) fn invite_text(&mut self) -> String {
        self.invite_branch = self.branch();
        self.cseq = 1;
        self.invite_cseq = 1;
        let extra: String = self.headers.iter().map(|h| format!("{h}\r\n")).collect();
        let body = if self.offer {
            caller_sdp(self.media, self.sdp_version, "sendrecv")
        } else {
            String::new()
        };
        format!(
            "INVITE sip:{}@{HOST}:{SIP_PORT} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={};rport\r\n{}\r\n{}\r\nCall-ID: {}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{}>\r\nMax-Forwards: 70\r\n{extra}{}",
            self.dialled,
            self.addr,
            self.invite_branch,
            self.header_from(),
            self.header_to(),
            self.call_id,
            self.addr,
            Self::body_lines("application/sdp", &body)
        )
    }

    /// Sends the INVITE; returns what came back (100, 180 …).
    pub(crate) fn invite(&mut self, kit: &mut Kit) -> Vec<Message> {
        let text = self.invite_text();
        kit.sip_from(self.addr, &text);
        self.inbox(kit)
    }

    /// ACKs the 200 to the last INVITE (a new transaction, §13.2.2.4); with a late offer
    /// the ACK carries the answer.
    pub(crate) fn ack(&mut self, kit: &mut Kit) -> Vec<Message> {
        let branch = self.branch();
        let body = if self.offer {
            String::new()
        } else {
            caller_sdp(self.media, self.sdp_version, "sendrecv")
        };
        let text = format!(
            "ACK sip:concierge@{HOST}:{SIP_PORT} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={branch};rport\r\n{}\r\n{}\r\nCall-ID: {}\r\nCSeq: {} ACK\r\nMax-Forwards: 70\r\n{}",
            self.addr,
            self.header_from(),
            self.header_to(),
            self.call_id,
            self.invite_cseq,
            Self::body_lines("application/sdp", &body)
        );
        kit.sip_from(self.addr, &text);
        self.inbox(kit)
    }

    /// ACKs a non-2xx final answer to the INVITE (the same transaction, §17.1.1.3).
    pub(crate) fn ack_error(&mut self, kit: &mut Kit) -> Vec<Message> {
        let text = format!(
            "ACK sip:{}@{HOST}:{SIP_PORT} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={};rport\r\n{}\r\n{}\r\nCall-ID: {}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            self.dialled,
            self.addr,
            self.invite_branch,
            self.header_from(),
            self.header_to(),
            self.call_id,
        );
        kit.sip_from(self.addr, &text);
        self.inbox(kit)
    }

    /// CANCELs the INVITE (same branch and CSeq number, §9.1).
    pub(crate) fn cancel(&mut self, kit: &mut Kit) -> Vec<Message> {
        let text = format!(
            "CANCEL sip:{}@{HOST}:{SIP_PORT} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={};rport\r\n{}\r\nTo: <sip:{}@{HOST}>\r\nCall-ID: {}\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            self.dialled,
            self.addr,
            self.invite_branch,
            self.header_from(),
            self.dialled,
            self.call_id,
        );
        kit.sip_from(self.addr, &text);
        self.inbox(kit)
    }

    /// An in-dialog request with the next CSeq; `extra` are header lines ending in CRLF.
    pub(crate) fn request(
        &mut self,
        kit: &mut Kit,
        method: &str,
        extra: &str,
        content_type: &str,
        body: &str,
    ) -> Vec<Message> {
        self.cseq += 1;
        let branch = self.branch();
        let text = format!(
            "{method} sip:concierge@{HOST}:{SIP_PORT} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={branch};rport\r\n{}\r\n{}\r\nCall-ID: {}\r\nCSeq: {} {method}\r\nContact: <sip:caller@{}>\r\nMax-Forwards: 70\r\n{extra}{}",
            self.addr,
            self.header_from(),
            self.header_to(),
            self.call_id,
            self.cseq,
            self.addr,
            Self::body_lines(content_type, body)
        );
        kit.sip_from(self.addr, &text);
        self.inbox(kit)
    }

    pub(crate) fn bye(&mut self, kit: &mut Kit) -> Vec<Message> {
        self.request(kit, "BYE", "", "", "")
    }

    /// A re-INVITE offering the same media with `direction` (`sendonly` holds the call,
    /// `sendrecv` resumes it).
    pub(crate) fn reinvite(&mut self, kit: &mut Kit, direction: &str) -> Vec<Message> {
        self.sdp_version += 1;
        let sdp = caller_sdp(self.media, self.sdp_version, direction);
        self.invite_cseq = self.cseq + 1;
        self.request(kit, "INVITE", "", "application/sdp", &sdp)
    }

    /// A re-INVITE without an offer: we offer in the 200, the ACK answers.
    pub(crate) fn reinvite_without_offer(&mut self, kit: &mut Kit) -> Vec<Message> {
        self.invite_cseq = self.cseq + 1;
        self.request(kit, "INVITE", "", "", "")
    }

    /// A key by SIP INFO (application/dtmf-relay).
    pub(crate) fn info_key(&mut self, kit: &mut Kit, key: char) -> Vec<Message> {
        self.request(
            kit,
            "INFO",
            "",
            "application/dtmf-relay",
            &format!("Signal={key}\r\nDuration=160\r\n"),
        )
    }

    /// A NOTIFY of the REFER subscription carrying `status_line` (`SIP/2.0 200 OK`).
    pub(crate) fn notify(&mut self, kit: &mut Kit, status_line: &str, state: &str) -> Vec<Message> {
        self.request(
            kit,
            "NOTIFY",
            &format!("Event: refer\r\nSubscription-State: {state}\r\n"),
            "message/sipfrag",
            &format!("{status_line}\r\n"),
        )
    }

    /// The caller's answer `code` to a request the switch sent it.
    pub(crate) fn reply(&mut self, kit: &mut Kit, req: &Request, code: u16) -> Vec<Message> {
        let text = reply_text(req, code, &self.tag, "", "");
        kit.sip_from(self.addr, &text);
        self.inbox(kit)
    }

    /// One key press by RFC 4733 from the caller's media address to its port. What the
    /// switch sends in answer stays in the inbox.
    pub(crate) fn key(&mut self, kit: &mut Kit, key: char) {
        let port = self.port.expect("the call has an RTP port (answered)");
        for p in self.rtp.press(EVENT_PT, key) {
            kit.rtp_in(port, self.media, &p);
        }
    }

    /// Keys by RFC 4733, 100 ms apart (no wait after the last).
    pub(crate) fn keys(&mut self, kit: &mut Kit, keys: &str) {
        for (i, k) in keys.chars().enumerate() {
            if i > 0 {
                kit.advance_ms(100);
            }
            self.key(kit, k);
        }
    }

    /// One 20 ms frame of silence from the caller, in the agreed codec.
    pub(crate) fn audio(&mut self, kit: &mut Kit) {
        let port = self.port.expect("the call has an RTP port (answered)");
        let silence = if self.audio_pt == 8 { 0xd5 } else { 0xff };
        let p = self.rtp.audio(self.audio_pt, silence);
        kit.rtp_in(port, self.media, &p);
    }

    /// The prompts the caller heard since `since` (see [`Kit::heard`]).
    pub(crate) fn heard(&self, kit: &Kit, since: std::time::Instant) -> Vec<String> {
        kit.heard(self.media, since)
    }
}

/// A response to `req` with `code`, our `tag` when the request's To has none, and `extra`
/// header lines; `sdp` as the body.
pub(crate) fn reply_text(req: &Request, code: u16, tag: &str, extra: &str, sdp: &str) -> String {
    let mut r = response_to(req, StatusCode(code), Some(tag));
    r.reason = String::new();
    let text = String::from_utf8(r.to_bytes().to_vec()).expect("text");
    let at = text.find("Content-Length").expect("a Content-Length");
    let ct = if sdp.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".into()
    };
    format!(
        "{}{extra}{ct}Content-Length: {}\r\n\r\n{sdp}",
        &text[..at],
        sdp.len()
    )
}

/// The target of a bridged transfer (the VIP desk at our own host by default).
#[derive(Debug, Clone)]
pub(crate) struct Desk {
    pub(crate) addr: SocketAddr,
    pub(crate) media: SocketAddr,
    pub(crate) tag: String,
    /// The leg's INVITE, once it arrived.
    pub(crate) invite: Option<Request>,
}

impl Desk {
    /// The desk the reference flow's targets name: `sip:…@HOST:SIP_PORT`.
    pub(crate) fn ours() -> Self {
        Self::at(&format!("{HOST}:{SIP_PORT}"))
    }

    pub(crate) fn at(addr: &str) -> Self {
        Self {
            addr: addr.parse().expect("host:port"),
            media: "127.0.0.3:7000".parse().expect("an address"),
            tag: "desk".into(),
            invite: None,
        }
    }

    /// What the switch sent the desk since it last looked.
    pub(crate) fn inbox(&mut self, kit: &mut Kit) -> Vec<Message> {
        let addr = self.addr;
        let out = kit.take_sent(|s| s.to == addr);
        if let Some(invite) = out.iter().find_map(|m| match m {
            Message::Request(r) if r.method.as_str() == "INVITE" => Some(r.clone()),
            _ => None,
        }) {
            self.invite = Some(invite);
        }
        out
    }

    /// The desk's SDP answer to the leg's offer: the codecs offered, at the desk's media
    /// address.
    pub(crate) fn sdp(&self) -> String {
        let offer = self.invite.as_ref().expect("the leg's INVITE arrived");
        let offer = String::from_utf8_lossy(&offer.body);
        let formats = offer
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|r| r.split_once(" RTP/AVP "))
            .map(|(_, f)| f.to_owned())
            .expect("an audio offer");
        let attributes: String = offer
            .lines()
            .filter(|l| l.starts_with("a=rtpmap:") || l.starts_with("a=fmtp:"))
            .map(|l| format!("{l}\r\n"))
            .collect();
        let ip = self.media.ip();
        format!(
            "v=0\r\no=- 99 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP {formats}\r\n{attributes}",
            self.media.port()
        )
    }

    /// Answers the leg's INVITE with `code` (a 200 with SDP and Contact).
    pub(crate) fn reply(&mut self, kit: &mut Kit, code: u16) -> Vec<Message> {
        let invite = self.invite.clone().expect("the leg's INVITE arrived");
        let sdp = if code == 200 {
            self.sdp()
        } else {
            String::new()
        };
        let text = reply_text(
            &invite,
            code,
            &self.tag,
            &format!("Contact: <sip:agent@{}>\r\n", self.addr),
            &sdp,
        );
        kit.sip_from(self.addr, &text);
        self.inbox(kit)
    }

    /// Answers `req` (a BYE, a CANCEL) with `code`.
    pub(crate) fn reply_to(&mut self, kit: &mut Kit, req: &Request, code: u16) -> Vec<Message> {
        let text = reply_text(req, code, &self.tag, "", "");
        kit.sip_from(self.addr, &text);
        self.inbox(kit)
    }

    /// The desk hangs up the answered leg.
    pub(crate) fn bye(&mut self, kit: &mut Kit) -> Vec<Message> {
        let invite = self.invite.clone().expect("the leg's INVITE arrived");
        let text = format!(
            "BYE sip:concierge@{HOST}:{SIP_PORT} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKdeskbye\r\nFrom: <sip:agent@{}>;tag={}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            self.addr, self.addr, self.tag, invite.from, invite.call_id
        );
        kit.sip_from(self.addr, &text);
        self.inbox(kit)
    }
}

/// The address the phone's RTP comes from, for tests that move it.
pub(crate) fn phone_media() -> SocketAddr {
    "127.0.0.1:4000".parse().expect("an address")
}
