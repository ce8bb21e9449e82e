//! The switch at the edge, in virtual time: what a flood, a stranger's packets or a
//! forged response can and cannot make it do. Admission control, the RTP source policy,
//! stray responses, the media inactivity timeout, and ports given back when a call is
//! abandoned.
use std::net::SocketAddr;
use std::time::Duration;

use concierge_b2bua::{AdmissionConfig, SwitchConfig};
use concierge_sip::wire::{HeaderName, Message, Request, Response};

mod testkit;

use testkit::Kit;

/// The testkit, with what the switch sent returned by destination: to the sender of an
/// input (`send_from`), to the phone (`advance`), and the rest left unread (`sip_out`).
struct Rig {
    kit: Kit,
    /// RTP sent before this index counts as cleared.
    rtp_from: usize,
}

testkit::rig_derefs_to_kit!(Rig);

const PHONE: &str = "127.0.0.1:5061";

impl Rig {
    fn with(cfg: SwitchConfig, program: concierge_b2bua::Program) -> Self {
        Self {
            kit: Kit::with(SwitchConfig { seed: 11, ..cfg }, program),
            rtp_from: 0,
        }
    }

    /// `text` from `from`; returns what went back to `from`.
    fn send_from(&mut self, from: &str, text: &str) -> Vec<Message> {
        let from: SocketAddr = from.parse().unwrap();
        self.kit.sip_from(from, text);
        self.kit.inbox(from)
    }

    fn send(&mut self, text: &str) -> Vec<Message> {
        self.send_from(PHONE, text)
    }

    fn rtp(&mut self, port: u16, from: &str, packet: &[u8]) {
        self.kit.rtp_in(port, from.parse().unwrap(), packet);
    }

    /// Advances virtual time by `by`, firing every deadline on the way; returns what went
    /// to the phone.
    fn advance(&mut self, by: Duration) -> Vec<Message> {
        self.kit.advance(by);
        self.kit.inbox(PHONE.parse().unwrap())
    }

    /// SIP sent and not yet returned: (to, message).
    fn sip_out(&self) -> Vec<(SocketAddr, Message)> {
        self.kit
            .sip
            .iter()
            .filter(|s| !s.read)
            .map(|s| (s.to, s.message.clone()))
            .collect()
    }

    /// Takes the SIP sent and not yet returned.
    fn take_sip(&mut self) -> Vec<(SocketAddr, Message)> {
        self.kit
            .take_sent_full(|_| true)
            .into_iter()
            .map(|s| (s.to, s.message))
            .collect()
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

fn status(m: &Message) -> u16 {
    match m {
        Message::Response(r) => r.status.0,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn response(m: &Message) -> &Response {
    match m {
        Message::Response(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn request(m: &Message) -> &Request {
    match m {
        Message::Request(r) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

/// An INVITE with Call-ID `call_id` from `from` (`host:port`), with `sdp` as its body.
fn invite(call_id: &str, from: &str, sdp: &str) -> String {
    let body = if sdp.is_empty() {
        "Content-Length: 0\r\n\r\n".to_owned()
    } else {
        format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
    };
    format!(
        "INVITE sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK{call_id};rport\r\nFrom: <sip:+46700000009@127.0.0.1>;tag=ph\r\nTo: <sip:ivr@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:phone@{from}>\r\nMax-Forwards: 70\r\n{body}"
    )
}

fn in_dialog(method: &str, seq: u32, call_id: &str, tag: &str, extra: &str, body: &str) -> String {
    format!(
        "{method} sip:concierge@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE};branch=z9hG4bK{call_id}{method}{seq};rport\r\nFrom: <sip:+46700000009@127.0.0.1>;tag=ph\r\nTo: <sip:ivr@127.0.0.1>;tag={tag}\r\nCall-ID: {call_id}\r\nCSeq: {seq} {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The caller's SDP: PCMU and telephone-event 101 at `addr`, with `direction`.
fn sdp_at(addr: &str, direction: &str) -> String {
    let (ip, port) = addr.split_once(':').unwrap();
    format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na={direction}\r\n")
}

/// INVITE with an SDP at `media`, answered and ACKed. Returns our To tag and RTP port.
fn answered(rig: &mut Rig, call_id: &str, media: &str, direction: &str) -> (String, u16) {
    let out = rig.send(&invite(call_id, PHONE, &sdp_at(media, direction)));
    let ok = out
        .iter()
        .map(response)
        .find(|r| r.status.0 == 200)
        .expect("200 OK");
    let tag = ok.to.tag().unwrap().to_owned();
    let sdp = String::from_utf8_lossy(&ok.body).into_owned();
    let port = sdp
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next()?.parse().ok())
        .unwrap();
    rig.send(&in_dialog("ACK", 1, call_id, &tag, "", ""));
    (tag, port)
}

/// One 20 ms PCMU packet.
fn audio(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend([0xff; 160]);
    p
}

/// The end packet of an RFC 4733 key press (event 0–9), payload type 101.
fn key(digit: u8, ts: u32, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0x80 | 101, 0, 1];
    p.extend(ts.to_be_bytes());
    p.extend(ssrc.to_be_bytes());
    p.extend([digit, 0x80 | 10, 0x03, 0x20]);
    p
}

fn program(toml: &str) -> concierge_b2bua::Program {
    let loaded = concierge_flow::parse_flow(std::path::Path::new("t.toml"), toml, &|_| true)
        .expect("a valid flow");
    concierge_b2bua::Program {
        default_flow: Some(loaded.flow),
        ..Default::default()
    }
}

const KEYPAD_FLOW: &str = r#"
start = "ask"
[nodes.ask]
type = "keypad"
prompt = "enter_code"
save_as = "code"
min_digits = 3
max_digits = 3
first_digit_timeout_ms = 20000
inter_digit_timeout_ms = 20000
done = "bye"
no_input = "bye"
invalid = "bye"
[nodes.bye]
type = "hangup"
"#;

fn limits(rate: u32, burst: u32, source_rate: u32, source_burst: u32) -> SwitchConfig {
    SwitchConfig {
        admission: AdmissionConfig {
            invite_rate: rate,
            invite_burst: burst,
            source_invite_rate: source_rate,
            source_invite_burst: source_burst,
        },
        ..SwitchConfig::default()
    }
}

// ---- Admission --------------------------------------------------------------------------

#[test]
fn new_invites_over_the_rate_get_503_before_anything_is_allocated() {
    let mut rig = Rig::with(limits(10, 2, 0, 0), Default::default());
    let mut refused = 0;
    for i in 0..5 {
        let from = format!("127.0.0.{}:5061", 10 + i);
        let out = rig.send_from(&from, &invite(&format!("flood{i}"), &from, ""));
        let codes: Vec<u16> = out.iter().map(status).collect();
        if codes == [503] {
            refused += 1;
            let r = response(&out[0]);
            assert_eq!(r.headers.get(&HeaderName::RETRY_AFTER), Some("5"));
            assert!(r.to.tag().is_some());
            assert_eq!(r.call_id, format!("flood{i}"));
        } else {
            assert_eq!(codes, [180, 200]);
        }
    }
    assert_eq!(refused, 3, "a burst of two, then the rate");
    assert_eq!(rig.open_ports.len(), 2, "no port for a refused INVITE");
    assert_eq!(rig.call_count(), 2);
    assert_eq!(rig.refused_invites(), 3);
    // 10/s: 100 ms later there is room for one more.
    rig.advance(Duration::from_millis(100));
    let from = "127.0.0.99:5061";
    let out = rig.send_from(from, &invite("later", from, ""));
    assert_eq!(out.iter().map(status).collect::<Vec<_>>(), [180, 200]);
}

#[test]
fn one_source_over_its_rate_does_not_take_the_others_calls() {
    let mut rig = Rig::with(limits(0, 0, 1, 2), Default::default());
    let flooder = "127.0.0.66:5061";
    let codes: Vec<u16> = (0..10)
        .map(|i| status(&rig.send_from(flooder, &invite(&format!("f{i}"), flooder, ""))[0]))
        .collect();
    assert_eq!(codes, [180, 180, 503, 503, 503, 503, 503, 503, 503, 503]);
    let out = rig.send(&invite("honest", PHONE, ""));
    assert_eq!(out.iter().map(status).collect::<Vec<_>>(), [180, 200]);
}

#[test]
fn while_overloaded_new_calls_are_refused_and_admitted_calls_complete() {
    let mut rig = Rig::with(SwitchConfig::default(), Default::default());
    let out = rig.send(&invite("admitted", PHONE, ""));
    let tag = response(&out[1]).to.tag().unwrap().to_owned();
    rig.set_overloaded(true);
    for i in 0..200 {
        let from = format!("127.0.1.{}:5070", i % 250);
        let out = rig.send_from(&from, &invite(&format!("new{i}"), &from, ""));
        assert_eq!(out.iter().map(status).collect::<Vec<_>>(), [503]);
    }
    // The admitted call's INVITE retransmission is not a new call: no 503 for it.
    let again = rig.send(&invite("admitted", PHONE, ""));
    assert!(again.iter().all(|m| status(m) != 503), "{again:?}");
    // Its ACK and BYE go through as usual.
    rig.send(&in_dialog("ACK", 1, "admitted", &tag, "", ""));
    assert!(
        rig.advance(Duration::from_secs(5)).is_empty(),
        "the ACK stopped the 200's retransmissions"
    );
    let out = rig.send(&in_dialog("BYE", 2, "admitted", &tag, "", ""));
    assert_eq!(status(&out[0]), 200);
    assert_eq!(rig.records.len(), 1, "one record: the admitted call");
    assert_eq!(rig.records[0].reason, "hung up");
    rig.set_overloaded(false);
    let out = rig.send(&invite("after", PHONE, ""));
    assert_eq!(out.iter().map(status).collect::<Vec<_>>(), [180, 200]);
}

#[test]
fn an_unacked_200_gives_its_port_back_as_soon_as_the_call_is_given_up() {
    let mut rig = Rig::with(SwitchConfig::default(), Default::default());
    rig.send(&invite("noack", PHONE, ""));
    assert_eq!(rig.open_ports.len(), 1);
    let out = rig.advance(Duration::from_secs(33));
    let bye = out
        .iter()
        .find_map(|m| match m {
            Message::Request(r) if r.method.as_str() == "BYE" => Some(r.clone()),
            _ => None,
        })
        .expect("BYE after 64·T1 without ACK");
    assert!(
        rig.open_ports.is_empty(),
        "the port is closed when the BYE goes, not when it is answered"
    );
    assert!(
        rig.records.is_empty(),
        "the call waits for its BYE's answer"
    );
    // The BYE is never answered: the call goes after Timer F, with its record.
    rig.advance(Duration::from_secs(33));
    assert_eq!(rig.records.len(), 1);
    assert_eq!(rig.records[0].reason, "no ACK");
    assert_eq!(bye.call_id, "noack");
}

// ---- Stray responses ---------------------------------------------------------------------

#[test]
fn an_unsolicited_2xx_makes_the_switch_send_nothing_anywhere() {
    let mut rig = Rig::with(SwitchConfig::default(), Default::default());
    let stray = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKforged1\r\nFrom: <sip:x@127.0.0.1>;tag=a\r\nTo: <sip:victim@192.0.2.9>;tag=b\r\nCall-ID: reflect1\r\nCSeq: 1 INVITE\r\nContact: <sip:victim@192.0.2.9:5060>\r\nContent-Length: 0\r\n\r\n";
    assert!(rig.send_from("127.0.0.77:5060", stray).is_empty());
    assert!(rig.sip_out().is_empty(), "{:?}", rig.sip_out());
    // The same with a call up: still nothing to anyone but the caller.
    rig.send(&invite("real", PHONE, ""));
    assert!(rig
        .send_from("127.0.0.77:5060", &stray.replace("reflect1", "reflect2"))
        .is_empty());
    rig.advance(Duration::from_secs(40));
    assert!(
        rig.sip_out().is_empty(),
        "nothing to any address: {:?}",
        rig.sip_out()
    );
}

// ---- Bridged legs ------------------------------------------------------------------------

const QUEUE: &str = "127.0.0.2:5070";

const BRIDGE_FLOW: &str = r#"
start = "xfer"
[nodes.xfer]
type = "transfer"
target = "sip:queue@127.0.0.2:5070"
mode = "bridge"
failed = "bye"
[nodes.bye]
type = "hangup"
"#;

/// A caller answered by the bridge flow; returns the rig, our tag to the caller, the
/// caller's RTP port, and the INVITE the switch sent to the queue.
fn bridged() -> (Rig, String, u16, Request) {
    bridged_with(SwitchConfig::default())
}

fn bridged_with(cfg: SwitchConfig) -> (Rig, String, u16, Request) {
    let mut rig = Rig::with(cfg, program(BRIDGE_FLOW));
    let (tag, port) = answered(&mut rig, "br", "127.0.0.1:4000", "sendrecv");
    let queue: SocketAddr = QUEUE.parse().unwrap();
    let invite = rig
        .sip_out()
        .iter()
        .find(|(to, m)| {
            *to == queue && matches!(m, Message::Request(r) if r.method.as_str() == "INVITE")
        })
        .map(|(_, m)| request(m).clone())
        .expect("INVITE to the queue");
    rig.take_sip();
    (rig, tag, port, invite)
}

/// The queue's 200 to `invite`, its Contact naming `contact`.
fn queue_ok(invite: &Request, contact: &str) -> String {
    let sdp = "v=0\r\no=- 2 2 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=q1\r\nCall-ID: {}\r\nCSeq: 1 INVITE\r\nContact: <{contact}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        invite.vias[0], invite.from, invite.to, invite.call_id, sdp.len()
    )
}

fn leg_port(invite: &Request) -> u16 {
    String::from_utf8_lossy(&invite.body)
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next()?.parse().ok())
        .unwrap()
}

#[test]
fn a_bridged_target_is_heard_only_from_its_own_address() {
    let (mut rig, tag, caller_port, invite) = bridged();
    rig.send_from(QUEUE, &queue_ok(&invite, "sip:agent@127.0.0.2:5070"));
    let leg = leg_port(&invite);
    rig.rtp(caller_port, "127.0.0.1:4000", &audio(1));
    rig.clear_rtp();
    rig.rtp(leg, "198.51.100.7:7000", &key(9, 100, 1));
    assert!(rig.rtp_out().is_empty(), "a stranger's key is not relayed");
    rig.rtp(leg, "127.0.0.2:7000", &audio(2));
    assert_eq!(rig.rtp_out().len(), 1);
    assert_eq!(
        (rig.rtp_out()[0].0, rig.rtp_out()[0].1),
        (caller_port, "127.0.0.1:4000".parse().unwrap())
    );
    // And towards the target, only the caller's packets go.
    rig.clear_rtp();
    rig.rtp(caller_port, "127.0.0.1:6666", &key(1, 100, 1));
    assert!(rig.rtp_out().is_empty());
    rig.send(&in_dialog("BYE", 2, "br", &tag, "", ""));
    assert_eq!(rig.records[0].rtp_foreign_dropped, 2);
}

#[test]
fn a_2xx_for_an_abandoned_leg_is_ended_at_the_next_hop_we_chose_not_its_contact() {
    let (mut rig, tag, _, invite) = bridged();
    rig.send(&in_dialog("BYE", 2, "br", &tag, "", ""));
    rig.take_sip();
    // The 200 crossed our CANCEL; its Contact names somebody else.
    let to_queue = rig.send_from(QUEUE, &queue_ok(&invite, "sip:victim@192.0.2.66:5099"));
    let methods: Vec<&str> = to_queue
        .iter()
        .map(|m| request(m).method.as_str())
        .collect();
    assert_eq!(methods, ["ACK", "BYE"], "to the queue we called");
    assert_eq!(
        request(&to_queue[1]).uri.as_str(),
        "sip:victim@192.0.2.66:5099",
        "the remote target is the Request-URI"
    );
    assert!(
        rig.sip_out().is_empty(),
        "nothing to the Contact's address: {:?}",
        rig.sip_out()
    );
}

// ---- RTP source policy -------------------------------------------------------------------

#[test]
fn keys_from_a_second_source_are_ignored_and_counted_while_the_callers_own_work() {
    let mut rig = Rig::with(SwitchConfig::default(), program(KEYPAD_FLOW));
    let (tag, port) = answered(&mut rig, "keys", "127.0.0.1:4000", "sendrecv");
    rig.rtp(port, "127.0.0.1:4000", &audio(1));
    // An injector on the same host, another port, keys 9 9 9.
    for (i, ts) in [1000u32, 2000, 3000].into_iter().enumerate() {
        rig.rtp(port, "127.0.0.1:6666", &key(9, ts, 0x1111));
        rig.rtp(port, "192.0.2.50:4000", &key(8, ts + i as u32, 0x2222));
    }
    // The caller's keys 1 2 3.
    for (d, ts) in [(1u8, 5000u32), (2, 6000), (3, 7000)] {
        rig.rtp(port, "127.0.0.1:4000", &key(d, ts, 0xaabb));
    }
    let out = rig.advance(Duration::from_millis(100));
    let bye = out.iter().map(request).find(|r| r.method.as_str() == "BYE");
    let bye = bye.expect("the flow got its three digits and hung up");
    rig.send(&format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: keys\r\nCSeq: {} BYE\r\nContent-Length: 0\r\n\r\n",
        bye.vias[0], bye.from, bye.to, bye.cseq.seq
    ));
    let rec = &rig.records[0];
    let digits: String = rec.digits.iter().map(|(d, _)| *d).collect();
    assert_eq!(digits, "123");
    assert_eq!(rec.rtp_foreign_dropped, 6);
    let _ = tag;
}

#[test]
fn a_source_that_sends_before_the_caller_does_not_take_the_media() {
    let mut rig = Rig::with(SwitchConfig::default(), Default::default());
    let (tag, port) = answered(&mut rig, "early", "127.0.0.1:4000", "sendrecv");
    // A stranger at the caller's IP is first: it may be the caller's NAT, so it is heard.
    rig.rtp(port, "127.0.0.1:5555", &audio(1));
    // Then the caller's declared address sends: from now on it alone is the caller.
    rig.rtp(port, "127.0.0.1:4000", &audio(2));
    rig.clear_rtp();
    rig.rtp(port, "127.0.0.1:5555", &audio(3));
    rig.advance(Duration::from_millis(200));
    assert!(!rig.rtp_out().is_empty(), "the IVR sends");
    assert!(
        rig.rtp_out()
            .iter()
            .all(|(_, to, _)| *to == "127.0.0.1:4000".parse::<SocketAddr>().unwrap()),
        "our media goes to the caller, not the early source"
    );
    rig.send(&in_dialog("BYE", 2, "early", &tag, "", ""));
    assert_eq!(rig.records[0].rtp_foreign_dropped, 1);
}

#[test]
fn a_caller_behind_nat_is_latched_at_its_signalling_address_and_strangers_are_not() {
    let mut rig = Rig::with(SwitchConfig::default(), Default::default());
    // The SDP names a private address; SIP came from 127.0.0.1 (the NAT's public side).
    let (tag, port) = answered(&mut rig, "nat", "10.0.0.5:4000", "sendrecv");
    rig.rtp(port, "192.0.2.50:4000", &audio(1));
    rig.rtp(port, "127.0.0.1:61000", &audio(2));
    rig.rtp(port, "127.0.0.1:62000", &audio(3));
    rig.clear_rtp();
    rig.advance(Duration::from_millis(100));
    let nat: SocketAddr = "127.0.0.1:61000".parse().unwrap();
    assert!(!rig.rtp_out().is_empty() && rig.rtp_out().iter().all(|(_, to, _)| *to == nat));
    rig.send(&in_dialog("BYE", 2, "nat", &tag, "", ""));
    assert_eq!(rig.records[0].rtp_foreign_dropped, 2);
}

#[test]
fn info_digits_count_only_inside_the_dialog() {
    let mut rig = Rig::with(SwitchConfig::default(), program(KEYPAD_FLOW));
    let (tag, _) = answered(&mut rig, "info", "127.0.0.1:4000", "sendrecv");
    let info = |seq, tag: &str| {
        in_dialog(
            "INFO",
            seq,
            "info",
            tag,
            "Content-Type: application/dtmf-relay\r\n",
            "Signal=9\r\nDuration=160\r\n",
        )
    };
    let out = rig.send(&info(2, "not-our-tag"));
    assert_eq!(status(&out[0]), 481, "no such dialog");
    let out = rig.send_from(
        "127.0.0.1:5061",
        &info(3, &tag).replace("Call-ID: info", "Call-ID: other"),
    );
    assert_eq!(status(&out[0]), 481);
    let out = rig.send(&info(4, &tag));
    assert_eq!(status(&out[0]), 200);
    rig.send(&in_dialog("BYE", 5, "info", &tag, "", ""));
    let digits: String = rig.records[0].digits.iter().map(|(d, _)| *d).collect();
    assert_eq!(digits, "9");
}

// ---- Media inactivity --------------------------------------------------------------------

#[test]
fn a_caller_silent_for_the_media_timeout_is_hung_up_with_a_record_saying_so() {
    let cfg = SwitchConfig {
        media_timeout: Duration::from_secs(60),
        ..SwitchConfig::default()
    };
    let mut rig = Rig::with(cfg, Default::default());
    let (_, port) = answered(&mut rig, "silent", "127.0.0.1:4000", "sendrecv");
    // Packets for 30 s keep the call up past the first minute.
    for i in 0..30u16 {
        rig.rtp(port, "127.0.0.1:4000", &audio(i));
        assert!(rig.advance(Duration::from_secs(1)).is_empty());
    }
    // A stranger's packets do not count as the caller's.
    rig.rtp(port, "192.0.2.1:4000", &audio(99));
    let quiet = rig.advance(Duration::from_secs(59) - Duration::from_millis(10));
    assert!(quiet.is_empty(), "{quiet:?}");
    let out = rig.advance(Duration::from_secs(1));
    let bye = request(&out[0]).clone();
    assert_eq!(bye.method.as_str(), "BYE");
    assert!(rig.open_ports.is_empty());
    rig.send(&format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: silent\r\nCSeq: {} BYE\r\nContent-Length: 0\r\n\r\n",
        bye.vias[0], bye.from, bye.to, bye.cseq.seq
    ));
    let rec = &rig.records[0];
    assert_eq!(
        (rec.ended_by.as_str(), rec.reason.as_str()),
        ("network", "no RTP from the caller for 60 s")
    );
}

#[test]
fn a_caller_that_never_sends_is_hung_up_and_a_held_call_is_not() {
    let mut rig = Rig::with(SwitchConfig::default(), Default::default());
    answered(&mut rig, "mute", "127.0.0.1:4000", "sendrecv");
    let out = rig.advance(Duration::from_secs(61));
    assert!(
        out.iter()
            .any(|m| matches!(m, Message::Request(r) if r.method.as_str() == "BYE")),
        "{out:?}"
    );

    let mut rig = Rig::with(SwitchConfig::default(), Default::default());
    answered(&mut rig, "held", "127.0.0.1:4000", "sendonly");
    let out = rig.advance(Duration::from_secs(600));
    assert!(out.is_empty(), "a caller holding us sends nothing: {out:?}");
    assert_eq!(rig.call_count(), 1);
}

// ---- Fingerprint -------------------------------------------------------------------------

#[test]
fn the_server_header_names_no_version_by_default() {
    let mut rig = Rig::with(SwitchConfig::default(), Default::default());
    let out = rig.send(&invite("ua", PHONE, ""));
    for m in &out[1..] {
        assert_eq!(
            response(m).headers.get(&HeaderName::SERVER),
            Some("Concierge")
        );
    }
}

#[test]
fn a_to_tag_is_no_way_around_the_limits_but_a_bridged_targets_reinvite_passes() {
    // One new call a second: the caller's INVITE takes it.
    let (mut rig, tag, _, invite) = bridged_with(limits(1, 1, 0, 0));
    rig.send_from(QUEUE, &queue_ok(&invite, "sip:agent@127.0.0.2:5070"));
    // An INVITE with a To tag but a Call-ID of no call of ours is budgeted as new.
    let forged = in_dialog("INVITE", 1, "nobody", "made-up", "", "");
    let out = rig.send(&forged);
    assert_eq!(out.iter().map(status).collect::<Vec<_>>(), [503]);
    // The target's re-INVITE in the bridge leg is not a new call.
    let reinvite = format!(
        "INVITE sip:concierge@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {QUEUE};branch=z9hG4bKqre\r\nFrom: {};tag=q1\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 2 INVITE\r\nContact: <sip:agent@{QUEUE}>\r\nContent-Length: 0\r\n\r\n",
        invite.to, invite.from, invite.call_id
    );
    let out = rig.send_from(QUEUE, &reinvite);
    assert_eq!(out.iter().map(status).collect::<Vec<_>>(), [200]);
    // And the caller's own re-INVITE neither.
    let out = rig.send(&in_dialog("INVITE", 2, "br", &tag, "", ""));
    assert!(out.iter().all(|m| status(m) != 503), "{out:?}");
}

#[test]
fn after_our_bye_the_port_is_back_and_a_crossing_reinvite_gets_481() {
    let mut rig = Rig::with(SwitchConfig::default(), Default::default());
    let (tag, _) = answered(&mut rig, "crossing", "127.0.0.1:4000", "sendrecv");
    rig.hang_up("crossing", "test");
    assert!(rig.open_ports.is_empty(), "the port went with the BYE");
    let sent: Vec<Message> = rig.take_sip().into_iter().map(|(_, m)| m).collect();
    assert_eq!(request(&sent[0]).method.as_str(), "BYE");
    let out = rig.send(&in_dialog("INVITE", 2, "crossing", &tag, "", ""));
    assert_eq!(out.iter().map(status).collect::<Vec<_>>(), [481]);
}
