//! Whole calls through a [`Switch`] in virtual time: a scripted phone on one side, the
//! switch's outputs inspected on the other. No sockets, no sleeps.
use std::net::SocketAddr;
use std::time::Duration;

use concierge_b2bua::{SwitchConfig, TransferMode};
use concierge_sip::wire::{Message, Request, Response, Transport};
use concierge_sip::Peer;

mod testkit;

use testkit::Kit;

/// The testkit with one scripted phone: what the switch sends the phone comes back from
/// `send`, `drain` and `advance`; everything else is the kit's (through `Deref`).
struct Rig {
    kit: Kit,
    phone: Peer,
    /// RTP sent before this index counts as cleared.
    rtp_from: usize,
}

testkit::rig_derefs_to_kit!(Rig);

impl Rig {
    fn new() -> Self {
        Self::with(SwitchConfig::default(), Default::default())
    }

    /// A switch with `cfg` (the seed is fixed) running `program`.
    fn with(cfg: SwitchConfig, program: concierge_b2bua::Program) -> Self {
        Self {
            kit: Kit::with(SwitchConfig { seed: 7, ..cfg }, program),
            phone: Peer {
                transport: Transport::Udp,
                addr: "127.0.0.1:5061".parse::<SocketAddr>().unwrap(),
            },
            rtp_from: 0,
        }
    }

    fn send(&mut self, text: &str) -> Vec<Message> {
        let phone = self.phone.addr;
        self.kit.sip_from(phone, text);
        self.drain()
    }

    /// What the switch sent the phone since the phone last looked.
    fn drain(&mut self) -> Vec<Message> {
        let phone = self.phone.addr;
        self.kit.inbox(phone)
    }

    /// Advances virtual time by `by`, firing every deadline on the way.
    fn advance(&mut self, by: Duration) -> Vec<Message> {
        self.kit.advance(by);
        self.drain()
    }

    /// SIP the switch sent to peers other than the phone (the bridge target), not read yet.
    fn sent_to_others(&mut self) -> Vec<(SocketAddr, Message)> {
        let phone = self.phone.addr;
        self.kit
            .take_sent_full(|s| s.to != phone)
            .into_iter()
            .map(|s| (s.to, s.message))
            .collect()
    }

    /// RTP the switch sent since the last `clear_rtp`: (from port, to, packet).
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

fn request(m: &Message) -> &Request {
    match m {
        Message::Request(r) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

const INVITE: &str = "INVITE sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKcall1;rport\r\nFrom: <sip:+46706170786@127.0.0.1>;tag=ph\r\nTo: <sip:ivr@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:phone@127.0.0.1:5061>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

/// INVITE → 180, 200 (rung in the INVITE's own turn: no 100 Trying); ACK. Returns our
/// To tag.
fn answered_call(rig: &mut Rig) -> String {
    let out = rig.send(INVITE);
    assert_eq!(rig.open_ports.len(), 1, "one RTP port per call");
    let codes: Vec<u16> = out.iter().map(|m| response(m).status.0).collect();
    assert_eq!(codes, vec![180, 200]);
    let tag = response(&out[1]).to.tag().unwrap().to_owned();
    rig.send(&format!(
        "ACK sip:concierge@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKack1;rport\r\nFrom: <sip:+46706170786@127.0.0.1>;tag=ph\r\nTo: <sip:ivr@127.0.0.1>;tag={tag}\r\nCall-ID: c1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    ));
    tag
}

fn in_dialog(method: &str, seq: u32, tag: &str, branch: &str, extra: &str, body: &str) -> String {
    format!(
        "{method} sip:concierge@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK{branch};rport\r\nFrom: <sip:+46706170786@127.0.0.1>;tag=ph\r\nTo: <sip:ivr@127.0.0.1>;tag={tag}\r\nCall-ID: c1\r\nCSeq: {seq} {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn reply(req: &Request, code: u16) -> String {
    let mut r =
        concierge_sip::wire::response_to(req, concierge_sip::wire::StatusCode(code), Some("agent"));
    r.reason = String::new();
    String::from_utf8(r.to_bytes().to_vec()).unwrap()
}

#[test]
fn rfc3261_17_2_1_an_invite_rung_in_its_own_turn_gets_no_100_trying() {
    // "The server transaction MUST generate a 100 (Trying) response unless it knows that
    // the TU will generate a provisional or final response within 200 ms": the 180 is
    // already out, so no 100 follows, then or later.
    let mut rig = Rig::new();
    let out = rig.send(INVITE);
    let codes: Vec<u16> = out.iter().map(|m| response(m).status.0).collect();
    assert_eq!(codes, vec![180, 200]);
    let later = rig.advance(Duration::from_secs(2));
    assert!(
        later.iter().all(|m| response(m).status.0 == 200),
        "only the unACKed 200 again: {later:?}"
    );
}

#[test]
fn rfc3261_17_2_1_an_invite_unanswered_for_200_ms_gets_100_trying_and_its_retransmission_too() {
    // A slow driver: the port is not bound, so nothing can answer the INVITE yet.
    let mut rig = Rig::new();
    rig.binds_late = true;
    assert!(rig.send(INVITE).is_empty());
    assert!(rig.advance(Duration::from_millis(199)).is_empty());
    let out = rig.advance(Duration::from_millis(1));
    assert_eq!(out.len(), 1, "{out:?}");
    let trying = response(&out[0]);
    assert_eq!(trying.status.0, 100);
    assert_eq!(trying.to.tag(), None, "no dialog exists yet");
    assert_eq!(trying.call_id, "c1");
    // §17.2.1: a retransmitted INVITE gets the most recent provisional again.
    let again = rig.send(INVITE);
    let codes: Vec<u16> = again.iter().map(|m| response(m).status.0).collect();
    assert_eq!(codes, vec![100]);
    // Once bound, the call rings and answers as ever.
    rig.bind_late();
    let codes: Vec<u16> = rig.drain().iter().map(|m| response(m).status.0).collect();
    assert_eq!(codes, vec![180, 200]);
}

#[test]
fn answered_call_ends_with_caller_bye_and_a_record() {
    let mut rig = Rig::new();
    let tag = answered_call(&mut rig);
    assert!(
        rig.advance(Duration::from_secs(5)).is_empty(),
        "no 200 retransmission after the ACK"
    );
    let out = rig.send(&in_dialog("BYE", 2, &tag, "bye1", "", ""));
    assert_eq!(response(&out[0]).status.0, 200);
    assert!(
        rig.open_ports.is_empty(),
        "the RTP port is closed with the call"
    );
    let rec = &rig.records[0];
    assert_eq!(
        (
            rec.call_id.as_str(),
            rec.caller.as_str(),
            rec.called.as_str()
        ),
        ("c1", "+46706170786", "ivr")
    );
    assert_eq!(
        (rec.ended_by.as_str(), rec.reason.as_str()),
        ("caller", "hung up")
    );
    assert_eq!(rec.arrived_ms, 1_800_000_000_000);
    assert!(rec.answered_ms.is_some());
}

#[test]
fn refer_transfer_follows_notify_sipfrag_then_hangs_up() {
    let mut rig = Rig::new();
    let tag = answered_call(&mut rig);
    rig.transfer("c1", TransferMode::Refer, "sip:vip@queue.example.com");
    let out = rig.drain();
    let refer = request(&out[0]).clone();
    assert_eq!(refer.method.as_str(), "REFER");
    assert_eq!(
        refer.header(&concierge_sip::wire::HeaderName::REFER_TO),
        Some("<sip:vip@queue.example.com>")
    );
    assert!(refer
        .header(&concierge_sip::wire::HeaderName::REFERRED_BY)
        .is_some());
    assert_eq!(
        refer.uri.as_str(),
        "sip:phone@127.0.0.1:5061",
        "sent to the caller's Contact"
    );
    rig.send(&reply(&refer, 202));

    let notify = |seq, body: &str, state: &str| {
        in_dialog(
            "NOTIFY",
            seq,
            &tag,
            &format!("n{seq}"),
            &format!(
                "Event: refer\r\nSubscription-State: {state}\r\nContent-Type: message/sipfrag\r\n"
            ),
            body,
        )
    };
    let out = rig.send(&notify(2, "SIP/2.0 100 Trying\r\n", "active;expires=60"));
    assert_eq!(response(&out[0]).status.0, 200);
    assert_eq!(out.len(), 1, "still waiting");
    let out = rig.send(&notify(
        3,
        "SIP/2.0 200 OK\r\n",
        "terminated;reason=noresource",
    ));
    assert_eq!(response(&out[0]).status.0, 200);
    let bye = request(&out[1]).clone();
    assert_eq!(bye.method.as_str(), "BYE");
    rig.send(&reply(&bye, 200));
    let rec = &rig.records[0];
    let t = rec.transfer.as_ref().unwrap();
    assert_eq!(
        (t.mode, t.target.as_str(), t.result.to_string().as_str()),
        (
            TransferMode::Refer,
            "sip:vip@queue.example.com",
            "succeeded"
        )
    );
    assert_eq!(
        (rec.ended_by.as_str(), rec.reason.as_str()),
        ("concierge", "transferred")
    );
}

#[test]
fn refer_rejected_keeps_the_call_and_records_the_failure() {
    let mut rig = Rig::new();
    let tag = answered_call(&mut rig);
    rig.transfer("c1", TransferMode::Refer, "sip:vip@queue.example.com");
    let refer = request(&rig.drain()[0]).clone();
    let out = rig.send(&reply(&refer, 603));
    assert!(out
        .iter()
        .all(|m| !matches!(m, Message::Request(r) if r.method.as_str() == "BYE")));
    assert!(rig.records.is_empty(), "the call goes on");
    rig.send(&in_dialog("BYE", 2, &tag, "bye2", "", ""));
    let t = rig.records[0].transfer.as_ref().unwrap();
    assert_eq!(t.result.to_string(), "failed: REFER rejected with 603");
}

#[test]
fn refer_without_final_notify_times_out() {
    let mut rig = Rig::new();
    let tag = answered_call(&mut rig);
    rig.transfer("c1", TransferMode::Refer, "sip:vip@queue.example.com");
    let refer = request(&rig.drain()[0]).clone();
    rig.send(&reply(&refer, 202));
    rig.advance(Duration::from_secs(31));
    rig.send(&in_dialog("BYE", 2, &tag, "bye3", "", ""));
    assert_eq!(
        rig.records[0].transfer.as_ref().unwrap().result.to_string(),
        "failed: no final NOTIFY in time"
    );
}

#[test]
fn redirect_answers_302_with_the_target_as_contact() {
    let mut rig = Rig::with(
        SwitchConfig {
            answer_after: Duration::from_secs(10),
            ..SwitchConfig::default()
        },
        Default::default(),
    );
    let out = rig.send(INVITE);
    assert_eq!(out.len(), 1, "180, not yet answered");
    rig.transfer("c1", TransferMode::Redirect, "sip:vip@queue.example.com");
    let out = rig.drain();
    let r = response(&out[0]);
    assert_eq!(r.status.0, 302);
    assert_eq!(
        r.contact().unwrap().uri.as_str(),
        "sip:vip@queue.example.com"
    );
    assert_eq!(
        rig.records[0].transfer.as_ref().unwrap().mode,
        TransferMode::Redirect
    );
    assert!(
        rig.advance(Duration::from_secs(20))
            .iter()
            .all(|m| response(m).status.0 == 302),
        "never a 200 after the 302"
    );
}

#[test]
fn missing_ack_means_retransmitted_200_then_bye() {
    let mut rig = Rig::new();
    let out = rig.send(INVITE);
    assert_eq!(out.len(), 2);
    let out = rig.advance(Duration::from_secs(40));
    let retransmits = out
        .iter()
        .filter(|m| matches!(m, Message::Response(r) if r.status.0 == 200))
        .count();
    assert_eq!(
        retransmits, 10,
        "0.5 1.5 3.5 7.5 11.5 15.5 19.5 23.5 27.5 31.5 s"
    );
    let bye = out.iter().find_map(|m| match m {
        Message::Request(r) if r.method.as_str() == "BYE" => Some(r.clone()),
        _ => None,
    });
    let bye = bye.expect("BYE after 64·T1");
    rig.send(&reply(&bye, 200));
    assert_eq!(
        (
            rig.records[0].ended_by.as_str(),
            rig.records[0].reason.as_str()
        ),
        ("network", "no ACK")
    );
}

/// A program whose default flow is `toml` (no prompts).
fn program(toml: &str) -> concierge_b2bua::Program {
    let loaded = concierge_flow::parse_flow(std::path::Path::new("t.toml"), toml, &|_| true)
        .expect("a valid flow");
    concierge_b2bua::Program {
        default_flow: Some(loaded.flow),
        ..Default::default()
    }
}

const LOOKUP_FLOW: &str = r#"
name = "lookup"
start = "lookup"

[nodes.lookup]
type = "http"
url = "http://127.0.0.1:9/customers/{system.caller}"
timeout_ms = 1000
save_as = "customer"
success = "found"
failure = "not_found"

[nodes.found]
type = "hangup"

[nodes.not_found]
type = "hangup"
"#;

#[test]
fn an_http_result_that_never_comes_is_taken_as_a_timeout() {
    // The driver enforces the node's timeout; if its result is lost anyway, the switch's
    // own watchdog (timeout + 2 s) takes the failure exit instead of holding the call.
    let mut rig = Rig::with(SwitchConfig::default(), program(LOOKUP_FLOW));
    let out = rig.send(INVITE);
    let codes: Vec<u16> = out.iter().map(|m| response(m).status.0).collect();
    assert_eq!(
        codes,
        vec![180],
        "the lookup runs while the caller hears ringing"
    );
    assert!(rig.advance(Duration::from_millis(2900)).is_empty());
    let out = rig.advance(Duration::from_millis(200));
    assert_eq!(
        response(&out[0]).status.0,
        480,
        "the failure exit's hangup, before answer"
    );
    let rec = &rig.records[0];
    assert_eq!(rec.http[0].outcome.to_string(), "timeout");
    assert_eq!(rec.path[0].exit.as_deref(), Some("failure"));
    assert_eq!(rec.path[1].node, "not_found");
}

#[test]
fn a_call_is_ended_at_its_maximum_duration() {
    let cfg = SwitchConfig {
        max_call_duration: Duration::from_secs(60),
        ..SwitchConfig::default()
    };
    let mut rig = Rig::with(cfg, Default::default());
    let tag = answered_call(&mut rig);
    assert!(rig.advance(Duration::from_secs(59)).is_empty());
    let out = rig.advance(Duration::from_secs(2));
    let bye = request(&out[0]);
    assert_eq!(bye.method.as_str(), "BYE");
    assert_eq!(bye.to.tag(), Some("ph"), "the BYE goes to the caller");
    assert_eq!(bye.from.tag(), Some(tag.as_str()));
    rig.send(&reply(bye, 200));
    assert_eq!(rig.records[0].reason, "maximum call duration");
    assert!(rig.open_ports.is_empty());
}

#[test]
fn a_ringing_call_at_its_maximum_duration_gets_480_and_a_silent_peer_is_forgotten() {
    // A flow that never answers (a lookup whose result never comes, with a watchdog far
    // beyond the limit) rings until the limit; then 480.
    let cfg = SwitchConfig {
        max_call_duration: Duration::from_secs(2),
        ..SwitchConfig::default()
    };
    let mut rig = Rig::with(
        cfg,
        program(&LOOKUP_FLOW.replace("timeout_ms = 1000", "timeout_ms = 60000")),
    );
    rig.send(INVITE);
    let out = rig.advance(Duration::from_millis(2100));
    assert_eq!(response(&out[0]).status.0, 480);
    assert_eq!(rig.records.len(), 1);
    assert_eq!(rig.records[0].reason, "maximum call duration");

    // An answered call whose caller never answers our BYE is forgotten 64·T1 later.
    let cfg = SwitchConfig {
        max_call_duration: Duration::from_secs(10),
        ..SwitchConfig::default()
    };
    let mut rig = Rig::with(cfg, Default::default());
    answered_call(&mut rig);
    let out = rig.advance(Duration::from_secs(11));
    assert_eq!(request(&out[0]).method.as_str(), "BYE");
    rig.advance(Duration::from_secs(40));
    assert_eq!(rig.records.len(), 1, "the call record is written");
    assert!(rig.open_ports.is_empty());
    assert_eq!(rig.call_count(), 0);
}

#[test]
fn a_port_another_program_holds_is_skipped_before_any_sdp_names_it() {
    // Ports are picked at random: with two of the three held, every call that tries one
    // of them must still end up on the third, and no SDP names a held one.
    let cfg = SwitchConfig {
        rtp_ports: (10_000, 10_006),
        ..SwitchConfig::default()
    };
    let mut rig = Rig::with(cfg, Default::default());
    rig.held_ports = vec![10_000, 10_002];
    let out = rig.send(INVITE);
    let codes: Vec<u16> = out.iter().map(|m| response(m).status.0).collect();
    assert_eq!(codes, vec![180, 200]);
    let sdp = String::from_utf8_lossy(&response(&out[1]).body).into_owned();
    assert!(sdp.contains("m=audio 10004 "), "{sdp}");
    assert_eq!(rig.open_ports, vec![10_004]);
}

#[test]
fn a_call_for_which_no_port_can_be_bound_gets_503() {
    let cfg = SwitchConfig {
        rtp_ports: (10_000, 10_006),
        ..SwitchConfig::default()
    };
    let mut rig = Rig::with(cfg, Default::default());
    rig.held_ports = vec![10_000, 10_002, 10_004];
    let out = rig.send(INVITE);
    let codes: Vec<u16> = out.iter().map(|m| response(m).status.0).collect();
    assert_eq!(codes, vec![503]);
    assert!(response(&out[0])
        .headers
        .get(&concierge_sip::wire::HeaderName::RETRY_AFTER)
        .is_some());
    assert_eq!(rig.records[0].reason, "no RTP port");
    assert_eq!(rig.records[0].outcome.as_str(), "refused");
    assert_eq!(rig.stats().refused_no_port, 1);
    assert_eq!(rig.call_count(), 0);
}

// ---- Bridged transfer: a second leg from the switch to the target -------------------------

const QUEUE: &str = "127.0.0.2:5070";

const BRIDGE_FLOW: &str = r#"
name = "bridge"
start = "xfer"

[nodes.xfer]
type = "transfer"
target = "sip:queue@127.0.0.2:5070"
headers = { X-Concierge-Tier = "gold" }
mode = "MODE"
failed = "bye"

[nodes.bye]
type = "hangup"
"#;

/// An INVITE offering PCMA and telephone-event 96 from 127.0.0.1:4000.
fn invite_with_sdp() -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\n";
    INVITE.replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ),
    )
}

/// A caller answered and ACKed by a bridge flow; also returns what the ACK set off.
fn bridge_rig(mode: &str) -> (Rig, String, Vec<Message>) {
    let mut rig = Rig::with(
        SwitchConfig::default(),
        program(&BRIDGE_FLOW.replace("MODE", mode)),
    );
    let out = rig.send(&invite_with_sdp());
    let ok = out
        .iter()
        .map(response)
        .find(|r| r.status.0 == 200)
        .expect("200");
    let tag = ok.to.tag().unwrap().to_owned();
    let out = rig.send(&in_dialog("ACK", 1, &tag, "ack1", "", ""));
    (rig, tag, out)
}

/// What the switch sent to the queue since the last call, as requests.
fn to_queue(rig: &mut Rig) -> Vec<Request> {
    rig.sent_to_others()
        .into_iter()
        .map(|(to, m)| {
            assert_eq!(to, QUEUE.parse::<SocketAddr>().unwrap());
            request(&m).clone()
        })
        .collect()
}

/// The queue's answer to `req`, with its tag and (for 200) an SDP answer.
fn queue_reply(req: &Request, code: u16, extra: &str, sdp: &str) -> String {
    let mut r =
        concierge_sip::wire::response_to(req, concierge_sip::wire::StatusCode(code), Some("q1"));
    r.reason = String::new();
    let mut text = String::from_utf8(r.to_bytes().to_vec()).unwrap();
    let body_at = text.find("Content-Length").unwrap();
    text.truncate(body_at);
    format!(
        "{text}{extra}Contact: <sip:agent@{QUEUE}>\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

const QUEUE_SDP: &str = "v=0\r\no=- 2 2 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 7000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// Hands the queue's message to the switch; returns what went to the caller.
fn from_queue(rig: &mut Rig, text: &str) -> Vec<Message> {
    let queue = Peer {
        transport: Transport::Udp,
        addr: QUEUE.parse().unwrap(),
    };
    rig.sip_from(queue.addr, text);
    rig.drain()
}

#[test]
fn bridge_calls_the_target_relays_rtp_both_ways_and_ends_with_either_leg() {
    let (mut rig, _tag, _) = bridge_rig("bridge");
    let sent = to_queue(&mut rig);
    let invite = &sent[0];
    assert_eq!(invite.method.as_str(), "INVITE");
    assert_eq!(invite.uri.as_str(), "sip:queue@127.0.0.2:5070");
    assert_eq!(
        invite.from.uri.user(),
        Some("+46706170786"),
        "the caller's number"
    );
    assert_eq!(
        invite.header(&concierge_sip::wire::HeaderName::new("X-Concierge-Tier")),
        Some("gold")
    );
    let offer = String::from_utf8_lossy(&invite.body).into_owned();
    assert!(
        offer.contains("RTP/AVP 8 96\r\n"),
        "only the caller's codec: {offer}"
    );
    let leg_port: u16 = offer
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next()?.parse().ok())
        .unwrap();
    assert_eq!(rig.open_ports.len(), 2, "a port for each leg");

    assert!(from_queue(&mut rig, &queue_reply(invite, 180, "", "")).is_empty());
    assert!(from_queue(&mut rig, &queue_reply(invite, 200, "", QUEUE_SDP)).is_empty());
    let ack = &to_queue(&mut rig)[0];
    assert_eq!((ack.method.as_str(), ack.cseq.seq), ("ACK", 1));
    assert_eq!(ack.to.tag(), Some("q1"));

    // Caller → queue, from the leg's port; an RFC 4733 event is renumbered 96 → 101.
    let caller_port = rig.open_ports[0];
    rig.clear_rtp();
    let caller: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let mut audio = vec![0x80, 8, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
    audio.extend([0xd5; 160]);
    rig.rtp_in(caller_port, caller, &audio);
    let mut event = vec![
        0x80,
        0x80 | 96,
        0,
        2,
        0,
        0,
        1,
        64,
        1,
        2,
        3,
        4,
        5,
        10,
        0,
        160,
    ];
    rig.rtp_in(caller_port, caller, &event);
    rig.drain();
    let queue_media: SocketAddr = "127.0.0.2:7000".parse().unwrap();
    let rtp_out = rig.rtp_out();
    assert_eq!(rtp_out.len(), 2);
    assert_eq!((rtp_out[0].0, rtp_out[0].1), (leg_port, queue_media));
    assert_eq!(&rtp_out[0].2[..], &audio[..], "audio passes untouched");
    assert_eq!(rtp_out[1].2[1], 0x80 | 101);

    // Queue → caller, from the caller's port; and nothing of the IVR's own audio.
    rig.clear_rtp();
    event[1] = 0x80 | 101;
    rig.rtp_in(leg_port, queue_media, &event);
    rig.advance(Duration::from_millis(100));
    let rtp_out = rig.rtp_out();
    assert_eq!(rtp_out.len(), 1, "{rtp_out:?}");
    assert_eq!((rtp_out[0].0, rtp_out[0].1), (caller_port, caller));
    assert_eq!(rtp_out[0].2[1], 0x80 | 96);

    // The queue hangs up: 200 to it, BYE to the caller.
    let bye = format!(
        "BYE sip:concierge@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {QUEUE};branch=z9hG4bKqbye\r\nFrom: <sip:queue@127.0.0.2:5070>;tag=q1\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        invite.from, invite.call_id
    );
    let queue = Peer {
        transport: Transport::Udp,
        addr: QUEUE.parse().unwrap(),
    };
    rig.sip_from(queue.addr, &bye);
    let out = rig.drain();
    let ok = response(&rig.sent_to_others().remove(0).1).clone();
    assert_eq!(ok.status.0, 200);
    let caller_bye = request(&out[0]);
    assert_eq!(caller_bye.method.as_str(), "BYE");
    rig.send(&reply(caller_bye, 200));
    let rec = &rig.records[0];
    let t = rec.transfer.as_ref().unwrap();
    assert_eq!(
        (t.mode, t.result.to_string().as_str()),
        (TransferMode::Bridge, "answered")
    );
    let relayed = t.relayed.unwrap();
    assert_eq!((relayed.to_target, relayed.to_caller), (2, 1));
    assert_eq!(
        (rec.ended_by.as_str(), rec.reason.as_str()),
        ("target", "transfer target hung up")
    );
    assert!(rig.open_ports.is_empty(), "both ports closed");
}

#[test]
fn caller_hanging_up_while_the_target_rings_cancels_it() {
    let (mut rig, tag, _) = bridge_rig("bridge");
    let invite = to_queue(&mut rig).remove(0);
    from_queue(&mut rig, &queue_reply(&invite, 180, "", ""));
    rig.send(&in_dialog("BYE", 2, &tag, "cbye", "", ""));
    let cancel = to_queue(&mut rig).remove(0);
    assert_eq!(cancel.method.as_str(), "CANCEL");
    assert_eq!(
        (cancel.cseq.seq, cancel.call_id.as_str()),
        (1, invite.call_id.as_str())
    );
    assert_eq!(
        cancel.vias[0].branch(),
        invite.vias[0].branch(),
        "§9.1: the INVITE's branch"
    );
    assert!(rig.open_ports.is_empty());
    assert_eq!(rig.records[0].ended_by.as_str(), "caller");

    // The queue's 200 crossed the CANCEL: §13.2.2.4, ACK it and end it with BYE.
    from_queue(&mut rig, &queue_reply(&invite, 200, "", QUEUE_SDP));
    let sent = to_queue(&mut rig);
    let methods: Vec<&str> = sent.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, vec!["ACK", "BYE"]);
    assert_eq!(sent[1].to.tag(), Some("q1"));
    assert_eq!(sent[1].cseq.seq, 2);
}

#[test]
fn busy_target_takes_the_failed_exit_and_no_answer_is_cancelled() {
    let (mut rig, _, _) = bridge_rig("bridge");
    let invite = to_queue(&mut rig).remove(0);
    let out = from_queue(&mut rig, &queue_reply(&invite, 486, "", ""));
    assert_eq!(
        to_queue(&mut rig)[0].method.as_str(),
        "ACK",
        "the transaction ACKs the 486"
    );
    // failed → hangup node: BYE to the caller.
    let bye = out
        .iter()
        .map(request)
        .find(|r| r.method.as_str() == "BYE")
        .expect("BYE");
    rig.send(&reply(bye, 200));
    let t = rig.records[0].transfer.clone().unwrap();
    assert_eq!(
        t.result.to_string(),
        "failed: target answered 486 Busy Here"
    );
    assert_eq!(rig.records[0].path[0].exit.as_deref(), Some("failed"));

    let (mut rig, _, _) = bridge_rig("bridge");
    let invite = to_queue(&mut rig).remove(0);
    from_queue(&mut rig, &queue_reply(&invite, 180, "", ""));
    rig.advance(Duration::from_secs(31));
    let sent = to_queue(&mut rig);
    assert!(
        sent.iter().any(|r| r.method.as_str() == "CANCEL"),
        "{sent:?}"
    );
}

#[test]
fn a_challenging_target_gets_the_invite_again_with_digest_credentials() {
    let cfg = SwitchConfig {
        outbound_auth: Some(concierge_b2bua::OutboundAuth {
            username: "concierge".into(),
            password: "s3cret".into(),
        }),
        ..SwitchConfig::default()
    };
    let mut rig = Rig::with(cfg, program(&BRIDGE_FLOW.replace("MODE", "bridge")));
    let out = rig.send(&invite_with_sdp());
    let tag = out
        .iter()
        .map(response)
        .find(|r| r.status.0 == 200)
        .unwrap()
        .to
        .tag()
        .unwrap()
        .to_owned();
    rig.send(&in_dialog("ACK", 1, &tag, "ack1", "", ""));
    let invite = to_queue(&mut rig).remove(0);
    from_queue(
        &mut rig,
        &queue_reply(&invite, 407, "Proxy-Authenticate: Digest realm=\"queue\", nonce=\"abc\", qop=\"auth\", algorithm=SHA-256\r\n", ""),
    );
    let sent = to_queue(&mut rig);
    assert_eq!(sent[0].method.as_str(), "ACK");
    let again = &sent[1];
    assert_eq!((again.method.as_str(), again.cseq.seq), ("INVITE", 2));
    assert_eq!(again.call_id, invite.call_id);
    let auth = again
        .header(&concierge_sip::wire::HeaderName::PROXY_AUTHORIZATION)
        .expect("Proxy-Authorization");
    assert!(
        auth.starts_with("Digest username=\"concierge\", realm=\"queue\", nonce=\"abc\", uri=\"sip:queue@127.0.0.2:5070\"")
            && auth.contains("algorithm=SHA-256")
            && auth.contains("qop=auth, nc=00000001"),
        "{auth}"
    );
    // A second challenge is a failure, not a loop: the flow's failed exit hangs up.
    let out = from_queue(
        &mut rig,
        &queue_reply(
            again,
            407,
            "Proxy-Authenticate: Digest realm=\"queue\", nonce=\"abd\"\r\n",
            "",
        ),
    );
    let bye = request(&out[0]);
    assert_eq!(bye.method.as_str(), "BYE");
    rig.send(&reply(bye, 200));
    let t = rig.records[0].transfer.clone().unwrap();
    assert!(
        t.result
            .to_string()
            .starts_with("failed: target answered 407"),
        "{t:?}"
    );
}

#[test]
fn refer_rejected_falls_back_to_a_bridge() {
    let (mut rig, _, out) = bridge_rig("refer_or_bridge");
    let refer = request(&out[0]).clone();
    assert_eq!(refer.method.as_str(), "REFER", "REFER first");
    assert!(rig.sent_to_others().is_empty());
    let out = rig.send(&reply(&refer, 405));
    assert!(out.is_empty(), "{out:?}");
    let invite = to_queue(&mut rig).remove(0);
    assert_eq!(invite.method.as_str(), "INVITE");
    let mut out = from_queue(&mut rig, &queue_reply(&invite, 200, "", QUEUE_SDP));
    out.extend(rig.advance(Duration::from_millis(10)));
    assert!(out.is_empty(), "the caller stays: {out:?}");
    let tag = refer.from.tag().unwrap().to_owned();
    rig.send(&in_dialog("BYE", 3, &tag, "cbye", "", ""));
    let bye = to_queue(&mut rig)
        .into_iter()
        .find(|r| r.method.as_str() == "BYE")
        .expect("BYE to the queue");
    assert_eq!(bye.to.tag(), Some("q1"));
    let t = rig.records[0].transfer.clone().unwrap();
    assert_eq!(t.mode, TransferMode::Bridge);
    assert!(
        t.result
            .to_string()
            .starts_with("answered (after REFER rejected with 405"),
        "{t:?}"
    );
}

#[test]
fn a_call_keeps_the_flow_it_started_with_when_a_new_program_is_installed() {
    let mut rig = Rig::with(SwitchConfig::default(), program(LOOKUP_FLOW));
    rig.send(INVITE);
    // A reload while the first call waits for its lookup: the new flow names its nodes
    // differently, so the records show which flow each call ran.
    let renamed = LOOKUP_FLOW
        .replace("name = \"lookup\"", "name = \"lookup-v2\"")
        .replace("not_found", "unknown_caller");
    rig.set_program(program(&renamed));
    assert_eq!(rig.stats().programs_installed, 1);
    rig.advance(Duration::from_millis(3100));
    let first = rig.records[0].clone();
    assert_eq!(first.flow.as_deref(), Some("lookup"));
    assert_eq!(first.path[1].node, "not_found", "the old flow to its end");
    assert_eq!(
        first.outcome.as_str(),
        "refused",
        "never answered, ended by the flow"
    );

    let second = INVITE.replace("c1", "c2").replace("call1", "call2");
    rig.send(&second);
    rig.advance(Duration::from_millis(3100));
    let second = &rig.records[1];
    assert_eq!(second.flow.as_deref(), Some("lookup-v2"));
    assert_eq!(second.path[1].node, "unknown_caller");
    assert_ne!(second.flow_version, first.flow_version);
    assert_eq!(second.flow_version.as_deref().map(str::len), Some(12));
}

#[test]
fn invites_refused_before_a_call_exists_are_counted_by_reason() {
    let mut rig = Rig::with(
        SwitchConfig {
            max_calls: 1,
            ..SwitchConfig::default()
        },
        Default::default(),
    );
    let tag = answered_call(&mut rig);
    let full = rig.send(&INVITE.replace("c1", "c2").replace("call1", "call2"));
    assert_eq!(response(&full[0]).status.0, 503);
    rig.start_draining();
    assert!(rig.is_draining());
    let late = rig.send(&INVITE.replace("c1", "c3").replace("call1", "call3"));
    assert_eq!(response(&late[0]).status.0, 503);
    let stats = rig.stats();
    assert_eq!(
        (
            stats.refused_max_calls,
            stats.refused_draining,
            stats.refused_no_port,
            stats.refused_rate_limit
        ),
        (1, 1, 0, 0)
    );
    rig.send(&in_dialog("BYE", 2, &tag, "bye1", "", ""));
    assert_eq!(rig.records.len(), 1, "a refused INVITE leaves no record");
    assert_eq!(rig.records[0].outcome.as_str(), "hung_up");
    assert_eq!(rig.records[0].flow, None);
}

#[test]
fn calls_on_the_other_instances_count_against_max_calls_until_their_share_is_gone() {
    let mut rig = Rig::with(
        SwitchConfig {
            max_calls: 3,
            ..SwitchConfig::default()
        },
        Default::default(),
    );
    answered_call(&mut rig);
    rig.set_peers(concierge_b2bua::PeerLoad {
        calls: 2,
        invite_rate: 0,
        instances: 1,
    });
    let full = rig.send(&INVITE.replace("c1", "c2").replace("call1", "call2"));
    assert_eq!(response(&full[0]).status.0, 503, "1 here + 2 there = 3");
    assert_eq!(rig.stats().refused_max_calls, 1);
    // The other instance died and its share expired: the driver reports nobody.
    rig.set_peers(concierge_b2bua::PeerLoad::default());
    let room = rig.send(&INVITE.replace("c1", "c3").replace("call1", "call3"));
    assert_ne!(response(&room[0]).status.0, 503);
    assert_eq!(rig.call_count(), 2);
}

#[test]
fn invites_over_the_admission_rates_are_counted_apart() {
    let mut rig = Rig::with(
        SwitchConfig {
            admission: concierge_b2bua::AdmissionConfig {
                invite_rate: 1,
                invite_burst: 1,
                source_invite_rate: 1000,
                source_invite_burst: 1000,
            },
            ..SwitchConfig::default()
        },
        Default::default(),
    );
    answered_call(&mut rig);
    let over = rig.send(&INVITE.replace("c1", "c2").replace("call1", "call2"));
    assert_eq!(response(&over[0]).status.0, 503);
    let stats = rig.stats();
    assert_eq!(
        (
            stats.refused_rate_limit,
            stats.refused_source_rate_limit,
            stats.refused_overloaded,
            stats.refused_max_calls
        ),
        (1, 0, 0, 0)
    );
    rig.set_overloaded(true);
    rig.advance(Duration::from_secs(2));
    let overloaded = rig.send(&INVITE.replace("c1", "c3").replace("call1", "call3"));
    assert_eq!(response(&overloaded[0]).status.0, 503);
    assert_eq!(rig.stats().refused_overloaded, 1);
}
