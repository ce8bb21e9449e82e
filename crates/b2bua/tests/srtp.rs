//! SRTP calls through a [`Switch`] in virtual time: an `RTP/SAVP` offer answered with our
//! own key, the prompt leaving encrypted, digits arriving encrypted, forged and replayed
//! packets dropped, and the `srtp` policy's 488s.

use std::net::SocketAddr;
use std::time::Duration;

use concierge_b2bua::SwitchConfig;
use concierge_media::sdes::{CryptoAttribute, SrtpPolicy, SrtpSession};
use concierge_media::sdp;
use concierge_media::srtp::{MasterKey, SrtpProfile};
use concierge_sip::wire::{Message, Response};

const PHONE_MEDIA: &str = "127.0.0.1:4000";

mod testkit;

use testkit::Kit;

/// The testkit with one scripted phone: the SIP the switch sends (to anyone) comes back
/// from `send` and `drain`; everything else is the kit's (through `Deref`).
struct Rig {
    kit: Kit,
    phone: SocketAddr,
    /// RTP sent before this index counts as cleared.
    rtp_from: usize,
}

testkit::rig_derefs_to_kit!(Rig);

impl Rig {
    fn new(srtp: SrtpPolicy) -> Self {
        let cfg = SwitchConfig {
            seed: 7,
            key_seed: [9; 32],
            srtp,
            ..SwitchConfig::default()
        };
        Self {
            kit: Kit::with(cfg, Default::default()),
            phone: "127.0.0.1:5061".parse().unwrap(),
            rtp_from: 0,
        }
    }

    fn send(&mut self, text: &str) -> Vec<Message> {
        let phone = self.phone;
        self.kit.sip_from(phone, text);
        self.drain()
    }

    /// The SIP the switch sent since the last look, to anyone.
    fn drain(&mut self) -> Vec<Message> {
        self.kit.take_sent(|_| true)
    }

    /// A datagram from the phone's media address on the call's port.
    fn rtp_in(&mut self, packet: &[u8]) {
        let port = self.kit.open_ports[0];
        self.kit.rtp_in(port, PHONE_MEDIA.parse().unwrap(), packet);
    }

    /// RTP sent since the last `clear_rtp`: (from port, to, packet).
    fn rtp_out(&self) -> Vec<(u16, SocketAddr, bytes::Bytes)> {
        self.kit.rtp[self.rtp_from..]
            .iter()
            .map(|p| (p.port, p.to, p.packet.clone()))
            .collect()
    }

    fn clear_rtp(&mut self) {
        self.rtp_from = self.kit.rtp.len();
    }
}

fn response(m: &Message) -> &Response {
    match m {
        Message::Response(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn phone_key() -> MasterKey {
    MasterKey::from_bytes(&[0x5a; 30])
}

fn offer(proto: &str, crypto: bool) -> String {
    let mut body = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 {proto} 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    );
    if crypto {
        let line = CryptoAttribute {
            tag: 1,
            profile: SrtpProfile::AesCm128HmacSha1_32,
            key: phone_key(),
        }
        .line();
        body.push_str(&line);
        body.push_str("\r\n");
    }
    body
}

fn invite(body: &str) -> String {
    format!(
        "INVITE sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKs1;rport\r\nFrom: <sip:+46706170786@127.0.0.1>;tag=ph\r\nTo: <sip:ivr@127.0.0.1>\r\nCall-ID: s1\r\nCSeq: 1 INVITE\r\nContact: <sip:phone@127.0.0.1:5061>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn in_dialog(method: &str, seq: u32, tag: &str) -> String {
    format!(
        "{method} sip:concierge@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK{method}{seq};rport\r\nFrom: <sip:+46706170786@127.0.0.1>;tag=ph\r\nTo: <sip:ivr@127.0.0.1>;tag={tag}\r\nCall-ID: s1\r\nCSeq: {seq} {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

/// An RFC 4733 packet for `event` (payload type 101).
fn dtmf(seq: u16, event: u8, end: bool, duration: u16) -> Vec<u8> {
    let mut p = vec![0x80, 101];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&8000u32.to_be_bytes());
    p.extend_from_slice(&0xdead_beefu32.to_be_bytes());
    p.push(event);
    p.push(if end { 0x80 | 10 } else { 10 });
    p.extend_from_slice(&duration.to_be_bytes());
    p
}

/// The phone's side of an SRTP call: INVITE with `RTP/SAVP`, 200 with our key, ACK.
/// Returns the To tag and the phone's SRTP session (keyed from the answer).
fn srtp_call(rig: &mut Rig) -> (String, SrtpSession) {
    let out = rig.send(&invite(&offer("RTP/SAVP", true)));
    let codes: Vec<u16> = out.iter().map(|m| response(m).status.0).collect();
    assert_eq!(codes, vec![180, 200]);
    let ok = response(&out[1]);
    let answer = String::from_utf8_lossy(&ok.body).into_owned();
    assert!(answer.contains(" RTP/SAVP 0 101\r\n"), "{answer}");
    assert!(
        answer.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:"),
        "{answer}"
    );
    let phone = sdp::accept_with(&answer, Some(&phone_key())).unwrap();
    let keying = phone.srtp.expect("the answer keys the call");
    assert_ne!(
        keying.theirs,
        phone_key(),
        "the switch answers with a key of its own"
    );
    let tag = ok.to.tag().unwrap().to_owned();
    rig.send(&format!(
        "ACK sip:concierge@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKack;rport\r\nFrom: <sip:+46706170786@127.0.0.1>;tag=ph\r\nTo: <sip:ivr@127.0.0.1>;tag={tag}\r\nCall-ID: s1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    ));
    (tag, SrtpSession::new(&keying))
}

#[test]
fn a_savp_offer_is_answered_with_srtp_and_media_leaves_encrypted() {
    let mut rig = Rig::new(SrtpPolicy::Optional);
    let (tag, mut phone) = srtp_call(&mut rig);
    rig.advance(Duration::from_millis(200));
    assert!(rig.rtp_out().len() >= 5, "the switch sends media");
    let mut plain = Vec::new();
    for (_, to, packet) in &rig.rtp_out() {
        assert_eq!(to.to_string(), PHONE_MEDIA);
        phone.unprotect(packet, &mut plain).expect("authentic SRTP");
        // 12 bytes of header, 160 bytes of PCMU silence, 4 bytes of tag.
        assert_eq!((packet.len(), plain.len()), (176, 172));
        assert!(
            plain[12..].iter().all(|b| *b == 0xff),
            "PCMU silence inside"
        );
        assert!(
            packet[12..172].iter().any(|b| *b != 0xff),
            "not on the wire"
        );
    }
    rig.send(&in_dialog("BYE", 2, &tag));
    assert_eq!(rig.records.len(), 1);
}

#[test]
fn rfc4733_digits_arrive_over_srtp_and_forgeries_and_replays_are_dropped() {
    let mut rig = Rig::new(SrtpPolicy::Mandatory);
    let (tag, mut phone) = srtp_call(&mut rig);
    let mut wire = Vec::new();
    // A forged packet (plain RTP, no tag) and a tampered one carry no digit.
    rig.rtp_in(&dtmf(1, 5, false, 160));
    phone.protect(&dtmf(2, 5, true, 800), &mut wire).unwrap();
    let mut tampered = wire.clone();
    tampered[14] ^= 1;
    rig.rtp_in(&tampered);
    // The real key press: 7.
    let mut sent = Vec::new();
    for (seq, end, dur) in [
        (10, false, 160),
        (11, false, 320),
        (12, true, 480),
        (13, true, 480),
    ] {
        phone.protect(&dtmf(seq, 7, end, dur), &mut wire).unwrap();
        sent.push(wire.clone());
        rig.rtp_in(&wire);
    }
    // The same packets replayed (a second "7" if they were believed).
    for p in &sent {
        rig.rtp_in(p);
    }
    rig.send(&in_dialog("BYE", 2, &tag));
    let digits = &rig.records[0].digits;
    assert_eq!(
        digits.len(),
        1,
        "one key press, neither forged nor replayed: {digits:?}"
    );
    assert_eq!(digits[0].1, "rfc4733");
}

#[test]
fn a_plain_offer_to_mandatory_srtp_gets_488() {
    let mut rig = Rig::new(SrtpPolicy::Mandatory);
    let out = rig.send(&invite(&offer("RTP/AVP", false)));
    let r = response(out.last().unwrap());
    assert_eq!(r.status.0, 488);
    let warning = r
        .header(&concierge_sip::wire::HeaderName::new("Warning"))
        .unwrap();
    assert!(warning.contains("mandatory"), "{warning}");
    assert!(rig.open_ports.is_empty());
}

#[test]
fn a_plain_offer_gets_plain_rtp_when_srtp_is_optional() {
    let mut rig = Rig::new(SrtpPolicy::Optional);
    let out = rig.send(&invite(&offer("RTP/AVP", false)));
    let ok = response(&out[1]);
    let answer = String::from_utf8_lossy(&ok.body);
    assert!(
        answer.contains(" RTP/AVP 0 101") && !answer.contains("crypto"),
        "{answer}"
    );
}

#[test]
fn srtp_off_refuses_a_savp_offer_with_488() {
    let mut rig = Rig::new(SrtpPolicy::Off);
    let out = rig.send(&invite(&offer("RTP/SAVP", true)));
    assert_eq!(response(out.last().unwrap()).status.0, 488);
}

#[test]
fn a_late_offer_under_mandatory_srtp_is_a_savp_offer() {
    let mut rig = Rig::new(SrtpPolicy::Mandatory);
    let out = rig.send(&invite(""));
    let ok = response(&out[1]);
    let body = String::from_utf8_lossy(&ok.body);
    assert!(
        body.contains(" RTP/SAVP ") && body.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80"),
        "{body}"
    );
}

#[test]
fn a_bridge_decrypts_the_srtp_leg_and_encrypts_what_goes_back_to_it() {
    // Optional policy: the caller's leg is SRTP, the target's (offered plain) is not; each
    // leg keeps its own protection.
    let mut rig = Rig::new(SrtpPolicy::Optional);
    let (_tag, mut phone) = srtp_call(&mut rig);
    rig.transfer(
        "s1",
        concierge_b2bua::TransferMode::Bridge,
        "sip:queue@127.0.0.1:7003",
    );
    let out = rig.drain();
    let invite = out
        .iter()
        .find_map(|m| match m {
            Message::Request(r) if r.method.as_str() == "INVITE" => Some(r.clone()),
            _ => None,
        })
        .expect("the second leg's INVITE");
    let offer = String::from_utf8_lossy(&invite.body);
    assert!(
        offer.contains("RTP/AVP") && !offer.contains("crypto"),
        "{offer}"
    );
    let body = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7004 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    let mut ok =
        concierge_sip::wire::response_to(&invite, concierge_sip::wire::StatusCode::OK, Some("q"));
    ok.headers.push(
        concierge_sip::wire::HeaderName::CONTENT_TYPE,
        "application/sdp",
    );
    ok.headers.push(
        concierge_sip::wire::HeaderName::CONTACT,
        "<sip:queue@127.0.0.1:7003>",
    );
    ok.body = body.to_owned().into();
    rig.sip_from(
        "127.0.0.1:7003".parse().unwrap(),
        &String::from_utf8_lossy(&ok.to_bytes()),
    );
    rig.drain();
    let leg_port = rig.open_ports[1];
    rig.clear_rtp();

    // Caller → target: SRTP in, plain RTP out.
    let voice: Vec<u8> = [0x80, 0, 0, 50, 0, 0, 1, 0, 0xca, 0xfe, 0xba, 0xbe]
        .into_iter()
        .chain((0..160).map(|i| i as u8))
        .collect();
    let mut wire = Vec::new();
    phone.protect(&voice, &mut wire).unwrap();
    rig.rtp_in(&wire);
    let (from, to, relayed) = rig.rtp_out().pop().expect("relayed to the target");
    assert_eq!(
        (from, to.to_string().as_str()),
        (leg_port, "127.0.0.1:7004")
    );
    assert_eq!(&relayed[..], &voice[..], "the target gets plain RTP");

    // Target → caller: plain RTP in, SRTP out under our key for the caller.
    let back: Vec<u8> = [0x80, 0, 0, 9, 0, 0, 2, 0, 0x0b, 0x0b, 0x0b, 0x0b]
        .into_iter()
        .chain(std::iter::repeat_n(0x55, 160))
        .collect();
    rig.kit
        .rtp_in(leg_port, "127.0.0.1:7004".parse().unwrap(), &back);
    rig.drain();
    let (_, to, packet) = rig.rtp_out().pop().expect("relayed to the caller");
    assert_eq!(to.to_string(), PHONE_MEDIA);
    assert_ne!(&packet[..], &back[..]);
    let mut plain = Vec::new();
    phone
        .unprotect(&packet, &mut plain)
        .expect("SRTP under the caller leg's key");
    assert_eq!(plain, back);
}
