//! Whole calls through a [`Switch`] in virtual time: a scripted phone on one side, the
//! switch's outputs inspected on the other. No sockets, no sleeps.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use concierge_b2bua::{
    CallRecord, Output, PortError, Switch, SwitchConfig, TransferMode, WallClock,
};
use concierge_sip::wire::{parse_datagram, Message, Request, Response, Transport};
use concierge_sip::Peer;

struct Rig {
    switch: Switch,
    now: Instant,
    phone: Peer,
    records: Vec<CallRecord>,
    open_ports: Vec<u16>,
    /// Ports "another program" holds: binding them fails.
    held_ports: Vec<u16>,
}

impl Rig {
    fn new() -> Self {
        Self::with(SwitchConfig::default(), Default::default())
    }

    /// A switch with `cfg` (the seed is fixed) running `program`.
    fn with(cfg: SwitchConfig, program: concierge_b2bua::Program) -> Self {
        let now = Instant::now();
        let wall = WallClock {
            instant: now,
            system: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        };
        Self {
            switch: Switch::new(SwitchConfig { seed: 7, ..cfg }, wall, program),
            now,
            phone: Peer {
                transport: Transport::Udp,
                addr: "127.0.0.1:5061".parse::<SocketAddr>().unwrap(),
            },
            records: Vec::new(),
            open_ports: Vec::new(),
            held_ports: Vec::new(),
        }
    }

    fn send(&mut self, text: &str) -> Vec<Message> {
        self.switch
            .handle_sip_datagram(self.now, self.phone, text.as_bytes());
        self.drain()
    }

    fn drain(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(o) = self.switch.poll_output() {
            match o {
                Output::Sip(t) => out.push(parse_datagram(&t.bytes).unwrap().unwrap()),
                Output::Record(r) => self.records.push(*r),
                Output::MediaOpen { port } if self.held_ports.contains(&port) => self
                    .switch
                    .media_port_failed(self.now, port, PortError::InUse),
                Output::MediaOpen { port } => {
                    self.open_ports.push(port);
                    self.switch.media_port_ready(self.now, port);
                }
                Output::MediaClose { port } => self.open_ports.retain(|p| *p != port),
                Output::Rtp { .. } | Output::Http { .. } => {}
            }
        }
        out
    }

    /// Advances virtual time to `until`, firing every deadline on the way.
    fn advance(&mut self, by: Duration) -> Vec<Message> {
        let until = self.now + by;
        let mut out = Vec::new();
        while let Some(at) = self.switch.poll_timeout().filter(|at| *at <= until) {
            self.now = at.max(self.now);
            self.switch.handle_timeout(self.now);
            out.extend(self.drain());
        }
        self.now = until;
        out
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

/// INVITE → 100, 180, 200; ACK. Returns our To tag.
fn answered_call(rig: &mut Rig) -> String {
    let out = rig.send(INVITE);
    assert_eq!(rig.open_ports.len(), 1, "one RTP port per call");
    let codes: Vec<u16> = out.iter().map(|m| response(m).status.0).collect();
    assert_eq!(codes, vec![100, 180, 200]);
    let tag = response(&out[2]).to.tag().unwrap().to_owned();
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
    assert_eq!((rec.ended_by, rec.reason.as_str()), ("caller", "hung up"));
    assert_eq!(rec.arrived_ms, 1_800_000_000_000);
    assert!(rec.answered_ms.is_some());
}

#[test]
fn refer_transfer_follows_notify_sipfrag_then_hangs_up() {
    let mut rig = Rig::new();
    let tag = answered_call(&mut rig);
    rig.switch
        .transfer(rig.now, 1, TransferMode::Refer, "sip:vip@queue.example.com");
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
        (t.mode, t.target.as_str(), t.result.as_str()),
        ("refer", "sip:vip@queue.example.com", "succeeded")
    );
    assert_eq!(
        (rec.ended_by, rec.reason.as_str()),
        ("concierge", "transferred")
    );
}

#[test]
fn refer_rejected_keeps_the_call_and_records_the_failure() {
    let mut rig = Rig::new();
    let tag = answered_call(&mut rig);
    rig.switch
        .transfer(rig.now, 1, TransferMode::Refer, "sip:vip@queue.example.com");
    let refer = request(&rig.drain()[0]).clone();
    let out = rig.send(&reply(&refer, 603));
    assert!(out
        .iter()
        .all(|m| !matches!(m, Message::Request(r) if r.method.as_str() == "BYE")));
    assert!(rig.records.is_empty(), "the call goes on");
    rig.send(&in_dialog("BYE", 2, &tag, "bye2", "", ""));
    let t = rig.records[0].transfer.as_ref().unwrap();
    assert_eq!(t.result, "failed: REFER rejected with 603");
}

#[test]
fn refer_without_final_notify_times_out() {
    let mut rig = Rig::new();
    let tag = answered_call(&mut rig);
    rig.switch
        .transfer(rig.now, 1, TransferMode::Refer, "sip:vip@queue.example.com");
    let refer = request(&rig.drain()[0]).clone();
    rig.send(&reply(&refer, 202));
    rig.advance(Duration::from_secs(31));
    rig.send(&in_dialog("BYE", 2, &tag, "bye3", "", ""));
    assert_eq!(
        rig.records[0].transfer.as_ref().unwrap().result,
        "failed: no final NOTIFY in time"
    );
}

#[test]
fn redirect_answers_302_with_the_target_as_contact() {
    let mut rig = Rig::new();
    rig.switch = Switch::new(
        SwitchConfig {
            seed: 7,
            answer_after: Duration::from_secs(10),
            ..SwitchConfig::default()
        },
        WallClock {
            instant: rig.now,
            system: SystemTime::now(),
        },
        Default::default(),
    );
    let out = rig.send(INVITE);
    assert_eq!(out.len(), 2, "100 and 180, not yet answered");
    rig.switch.transfer(
        rig.now,
        1,
        TransferMode::Redirect,
        "sip:vip@queue.example.com",
    );
    let out = rig.drain();
    let r = response(&out[0]);
    assert_eq!(r.status.0, 302);
    assert_eq!(
        r.contact().unwrap().uri.as_str(),
        "sip:vip@queue.example.com"
    );
    assert_eq!(rig.records[0].transfer.as_ref().unwrap().mode, "redirect");
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
    assert_eq!(out.len(), 3);
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
        (rig.records[0].ended_by, rig.records[0].reason.as_str()),
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
        vec![100, 180],
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
    assert_eq!(rec.http[0].outcome, "timeout");
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
    assert_eq!(rig.switch.call_count(), 0);
}

#[test]
fn a_port_another_program_holds_is_skipped_before_any_sdp_names_it() {
    let mut rig = Rig::new();
    rig.held_ports = vec![10_000, 10_002];
    let out = rig.send(INVITE);
    let codes: Vec<u16> = out.iter().map(|m| response(m).status.0).collect();
    assert_eq!(codes, vec![100, 180, 200]);
    let sdp = String::from_utf8_lossy(&response(&out[2]).body).into_owned();
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
    assert_eq!(codes, vec![100, 503]);
    assert!(response(&out[1])
        .headers
        .get(&concierge_sip::wire::HeaderName::RETRY_AFTER)
        .is_some());
    assert_eq!(rig.records[0].reason, "no RTP port");
    assert_eq!(rig.switch.call_count(), 0);
}
