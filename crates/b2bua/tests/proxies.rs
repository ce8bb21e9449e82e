//! A switch behind proxies and NATs, in virtual time: what RFC 3261 §12 asks of a UAS
//! whose caller's INVITE was record-routed, where our in-dialog requests go (§12.2.1.1,
//! RFC 5923, RFC 3581), bridge legs through an outbound proxy (§8.1.2, §12.1.2), and
//! the 503s a draining instance gives its dispatcher.
use std::time::Duration;

use concierge_b2bua::{SwitchConfig, TransferMode};
use concierge_sip::wire::{
    response_to, HeaderName, Message, Request, Response, SipUri, StatusCode, Transport,
};
use concierge_sip::Peer;

/// The proxy in front of us; the caller's INVITE arrives from it.
const PROXY: &str = "127.0.0.9:5070";

mod testkit;

use testkit::Kit;

/// The testkit; what the switch sends comes back with where (and how) it went.
struct Rig {
    kit: Kit,
}

testkit::rig_derefs_to_kit!(Rig);

impl Rig {
    fn new(cfg: SwitchConfig, program: concierge_b2bua::Program) -> Self {
        Self {
            kit: Kit::with(SwitchConfig { seed: 11, ..cfg }, program),
        }
    }

    fn receive(&mut self, from: Peer, text: &str) -> Vec<(Peer, Message)> {
        match from.transport {
            Transport::Udp => self.kit.sip_from(from.addr, text),
            _ => {
                let (head, body) = text.split_once("\r\n\r\n").unwrap();
                let head = format!("{head}\r\n\r\n");
                self.kit
                    .sip_framed(from, head.as_bytes(), body.as_bytes(), false)
            }
        }
        self.drain()
    }

    /// What the switch sent since the last look, with where it went.
    fn drain(&mut self) -> Vec<(Peer, Message)> {
        self.kit
            .take_sent_full(|_| true)
            .into_iter()
            .map(|s| (peer_of(&s), s.message))
            .collect()
    }

    /// Every SIP message the switch sent, with where it went.
    fn sent(&self) -> Vec<(Peer, Message)> {
        self.kit
            .sip
            .iter()
            .map(|s| (peer_of(s), s.message.clone()))
            .collect()
    }
}

fn peer_of(s: &testkit::Sent) -> Peer {
    Peer {
        transport: s.transport,
        addr: s.to,
    }
}

fn udp(addr: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr.parse().unwrap(),
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

/// An INVITE as a record-routing proxy relays it: its Via on top of the phone's, and
/// `record_route` (one or more `Record-Route:` lines).
fn proxied_invite(record_route: &str, contact: &str) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    format!(
        "INVITE sip:ivr@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {PROXY};branch=z9hG4bKprx1\r\n\
         Via: SIP/2.0/UDP 10.0.0.5:5060;received=203.0.113.5;rport=40000;branch=z9hG4bKph1\r\n\
         {record_route}\
         From: <sip:+46706170786@carrier.example>;tag=ph\r\n\
         To: <sip:ivr@127.0.0.1>\r\n\
         Call-ID: rr1\r\nCSeq: 1 INVITE\r\n\
         Contact: <{contact}>\r\nMax-Forwards: 69\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// The proxy relays the INVITE, the switch rings and answers, the ACK comes back through
/// the proxy. Returns the 180 and the 200.
fn answered_through(rig: &mut Rig, from: Peer, invite: &str) -> (Response, Response) {
    let out = rig.receive(from, invite);
    let codes: Vec<u16> = out.iter().map(|(_, m)| response(m).status.0).collect();
    assert_eq!(codes, vec![180, 200]);
    assert!(
        out.iter().all(|(to, _)| *to == from),
        "responses go back the way the INVITE came"
    );
    let ringing = response(&out[0].1).clone();
    let ok = response(&out[1].1).clone();
    let tag = ok.to.tag().unwrap();
    rig.receive(
        from,
        &format!(
            "ACK sip:concierge@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/{} {};branch=z9hG4bKprxack\r\n\
             Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKphack;rport\r\n\
             From: <sip:+46706170786@carrier.example>;tag=ph\r\nTo: <sip:ivr@127.0.0.1>;tag={tag}\r\n\
             Call-ID: rr1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            from.transport, from.addr
        ),
    );
    (ringing, ok)
}

fn record_routes(r: &Response) -> Vec<&str> {
    r.headers.get_all(&HeaderName::RECORD_ROUTE).collect()
}

fn routes(r: &Request) -> Vec<&str> {
    r.headers.get_all(&HeaderName::ROUTE).collect()
}

#[test]
fn rfc3261_12_1_1_ringing_and_ok_copy_every_record_route_in_order_with_our_contact() {
    let mut rig = Rig::new(SwitchConfig::default(), Default::default());
    let rr = "Record-Route: <sip:127.0.0.9:5070;lr;did=x>\r\nRecord-Route: <sip:127.0.0.8:5080>, <sip:127.0.0.7;lr>\r\n";
    let (ringing, ok) = answered_through(
        &mut rig,
        udp(PROXY),
        &proxied_invite(rr, "sip:+46706170786@10.0.0.5:5060"),
    );
    for r in [&ringing, &ok] {
        assert_eq!(
            record_routes(r),
            vec![
                "<sip:127.0.0.9:5070;lr;did=x>",
                "<sip:127.0.0.8:5080>",
                "<sip:127.0.0.7;lr>"
            ],
            "{}",
            r.status
        );
        assert_eq!(r.vias.len(), 2, "both Vias, the proxy's on top");
        assert_eq!(r.vias[0].branch(), Some("z9hG4bKprx1"));
        assert_eq!(
            r.header(&HeaderName::CONTACT),
            Some("<sip:concierge@127.0.0.1:5060>"),
            "a UDP dialog's Contact needs no transport"
        );
    }
    assert_eq!(
        ringing.to.tag(),
        ok.to.tag(),
        "one dialog, early then confirmed"
    );
}

#[test]
fn rfc3261_12_2_1_1_bye_and_refer_follow_the_loose_route_set_not_the_contact() {
    let mut rig = Rig::new(SwitchConfig::default(), Default::default());
    let rr = "Record-Route: <sip:127.0.0.9:5070;lr>, <sip:127.0.0.8:5080;lr>\r\n";
    answered_through(
        &mut rig,
        udp(PROXY),
        &proxied_invite(rr, "sip:+46706170786@10.0.0.5:5060"),
    );
    rig.transfer("rr1", TransferMode::Refer, "sip:vip@127.0.0.2:5070");
    let out = rig.drain();
    let (to, refer) = (&out[0].0, request(&out[0].1));
    assert_eq!(refer.method.as_str(), "REFER");
    assert_eq!(
        *to,
        udp(PROXY),
        "the first route, not the Contact's 10.0.0.5"
    );
    assert_eq!(refer.uri.as_str(), "sip:+46706170786@10.0.0.5:5060");
    assert_eq!(
        routes(refer),
        vec!["<sip:127.0.0.9:5070;lr>", "<sip:127.0.0.8:5080;lr>"]
    );
    // The REFER is refused: the call stays; then we hang up through the same route set.
    let refused = response_to(refer, StatusCode(603), None);
    rig.receive(udp(PROXY), &String::from_utf8_lossy(&refused.to_bytes()));
    rig.hang_up("rr1", "test");
    let out = rig.drain();
    let (to, bye) = (&out[0].0, request(&out[0].1));
    assert_eq!(bye.method.as_str(), "BYE");
    assert_eq!(*to, udp(PROXY));
    assert_eq!(
        routes(bye),
        vec!["<sip:127.0.0.9:5070;lr>", "<sip:127.0.0.8:5080;lr>"]
    );
}

#[test]
fn rfc3261_12_2_1_1_a_strict_router_becomes_the_request_uri_and_the_destination() {
    let mut rig = Rig::new(SwitchConfig::default(), Default::default());
    // The strict router is not where the INVITE came from: the BYE still goes to it.
    let rr = "Record-Route: <sip:127.0.0.8:5080>, <sip:127.0.0.7;lr>\r\n";
    answered_through(
        &mut rig,
        udp(PROXY),
        &proxied_invite(rr, "sip:+46706170786@10.0.0.5:5060"),
    );
    rig.hang_up("rr1", "test");
    let out = rig.drain();
    let (to, bye) = (&out[0].0, request(&out[0].1));
    assert_eq!(*to, udp("127.0.0.8:5080"));
    assert_eq!(bye.uri.as_str(), "sip:127.0.0.8:5080");
    assert_eq!(
        routes(bye),
        vec!["<sip:127.0.0.7;lr>", "<sip:+46706170786@10.0.0.5:5060>"],
        "the rest of the route set, then the remote target"
    );
}

#[test]
fn rfc5923_a_tcp_caller_gets_tcp_contacts_and_our_bye_on_its_own_connection() {
    let mut rig = Rig::new(SwitchConfig::default(), Default::default());
    // A phone that connected from an ephemeral port and whose Contact nobody can reach.
    let conn = Peer {
        transport: Transport::Tcp,
        addr: "127.0.0.1:49152".parse().unwrap(),
    };
    let invite = proxied_invite("", "sip:phone@192.168.1.20:5060;transport=tcp")
        .replace(
            &format!("Via: SIP/2.0/UDP {PROXY};branch=z9hG4bKprx1\r\n"),
            "",
        )
        .replace(
            "Via: SIP/2.0/UDP 10.0.0.5:5060;received=203.0.113.5;rport=40000",
            "Via: SIP/2.0/TCP 192.168.1.20:5060",
        );
    let out = rig.receive(conn, &invite);
    let contacts: Vec<Option<&str>> = out
        .iter()
        .map(|(_, m)| response(m).header(&HeaderName::CONTACT))
        .collect();
    assert_eq!(
        contacts,
        vec![Some("<sip:concierge@127.0.0.1:5060;transport=tcp>"); 2],
        "180 and 200 name TCP"
    );
    assert!(out.iter().all(|(to, _)| *to == conn));
    rig.hang_up("rr1", "test");
    let out = rig.drain();
    let bye = request(&out[0].1);
    assert_eq!(bye.method.as_str(), "BYE");
    assert_eq!(out[0].0, conn, "the caller's connection, not its Contact");
    assert_eq!(
        bye.uri.as_str(),
        "sip:phone@192.168.1.20:5060;transport=tcp"
    );
    assert_eq!(bye.vias[0].transport_token().to_ascii_uppercase(), "TCP");
}

#[test]
fn rfc3581_a_udp_caller_behind_nat_gets_our_bye_at_its_source() {
    let mut rig = Rig::new(SwitchConfig::default(), Default::default());
    let nat = udp("127.0.0.1:40000");
    let invite = proxied_invite("", "sip:phone@10.0.0.5:5060")
        .replace(
            &format!("Via: SIP/2.0/UDP {PROXY};branch=z9hG4bKprx1\r\n"),
            "",
        )
        .replace(";received=203.0.113.5;rport=40000", ";rport");
    let out = rig.receive(nat, &invite);
    // RFC 3581 §4: the response goes to the source port, and says what it saw.
    assert!(out.iter().all(|(to, _)| *to == nat));
    let via = &response(&out[0].1).vias[0];
    assert_eq!(
        (via.received(), via.rport()),
        (Some("127.0.0.1"), Some(Some(40000)))
    );
    rig.hang_up("rr1", "test");
    let out = rig.drain();
    assert_eq!(out[0].0, nat, "not the private Contact 10.0.0.5:5060");
}

#[test]
fn draining_answers_options_and_new_invites_503_while_the_call_in_progress_goes_on() {
    let mut rig = Rig::new(
        SwitchConfig {
            retry_after: Duration::from_secs(7),
            instance: "node-b".into(),
            ..SwitchConfig::default()
        },
        Default::default(),
    );
    let options = |n: u32| {
        format!(
            "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {PROXY};branch=z9hG4bKopt{n}\r\nFrom: <sip:ds@127.0.0.9>;tag=o{n}\r\nTo: <sip:127.0.0.1>\r\nCall-ID: opt{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let out = rig.receive(udp(PROXY), &options(1));
    assert_eq!(response(&out[0].1).status.0, 200);
    let (_, ok) = answered_through(
        &mut rig,
        udp(PROXY),
        &proxied_invite("", "sip:a@127.0.0.9:5070"),
    );
    rig.start_draining();
    let out = rig.receive(udp(PROXY), &options(2));
    let r = response(&out[0].1);
    assert_eq!(
        r.status.0, 503,
        "the dispatcher's probe takes this node out"
    );
    assert_eq!(r.header(&HeaderName::RETRY_AFTER), Some("7"));
    let second = proxied_invite("", "sip:a@127.0.0.9:5070")
        .replace("Call-ID: rr1", "Call-ID: rr2")
        .replace("z9hG4bKprx1", "z9hG4bKprx2");
    let out = rig.receive(udp(PROXY), &second);
    assert_eq!(response(&out[0].1).status.0, 503);
    assert_eq!(rig.call_count(), 1, "the call in progress is still here");
    // It ends normally, and its record names the instance.
    let tag = ok.to.tag().unwrap();
    let out = rig.receive(
        udp(PROXY),
        &format!(
            "BYE sip:concierge@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {PROXY};branch=z9hG4bKbye\r\nFrom: <sip:+46706170786@carrier.example>;tag=ph\r\nTo: <sip:ivr@127.0.0.1>;tag={tag}\r\nCall-ID: rr1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        ),
    );
    assert_eq!(response(&out[0].1).status.0, 200);
    assert!(rig.is_idle());
    let rec = rig.records.iter().find(|r| r.call_id == "rr1").unwrap();
    assert_eq!(
        (rec.instance.as_str(), rec.reason.as_str()),
        ("node-b", "hung up")
    );
}

// ---- Bridge legs through an outbound proxy --------------------------------------------------

const BRIDGE_FLOW: &str = r#"
name = "bridge"
start = "xfer"

[nodes.xfer]
type = "transfer"
target = "sip:queue@127.0.0.2:5070"
mode = "bridge"
failed = "bye"

[nodes.bye]
type = "hangup"
"#;

#[test]
fn rfc3261_8_1_2_bridge_legs_go_through_the_outbound_proxy_and_follow_the_reversed_record_route() {
    let loaded = concierge_flow::parse_flow(std::path::Path::new("t.toml"), BRIDGE_FLOW, &|_| true)
        .expect("a valid flow");
    let program = concierge_b2bua::Program {
        default_flow: Some(loaded.flow),
        ..Default::default()
    };
    let outbound = "127.0.0.6:5066";
    let mut rig = Rig::new(
        SwitchConfig {
            outbound_proxy: Some(SipUri::parse(&format!("sip:{outbound}")).unwrap()),
            ..SwitchConfig::default()
        },
        program,
    );
    let caller = udp("127.0.0.1:5061");
    let invite = proxied_invite("", "sip:phone@127.0.0.1:5061")
        .replace(
            &format!("Via: SIP/2.0/UDP {PROXY};branch=z9hG4bKprx1\r\n"),
            "",
        )
        .replace(
            "10.0.0.5:5060;received=203.0.113.5;rport=40000",
            "127.0.0.1:5061",
        );
    answered_through(&mut rig, caller, &invite);
    let (to, leg_invite) = rig
        .sent()
        .iter()
        .find(|(_, m)| matches!(m, Message::Request(r) if r.method.as_str() == "INVITE"))
        .map(|(p, m)| (*p, request(m).clone()))
        .expect("the leg's INVITE");
    assert_eq!(to, udp(outbound), "the INVITE goes to the proxy");
    assert_eq!(
        leg_invite.uri.as_str(),
        "sip:queue@127.0.0.2:5070",
        "the target stays the Request-URI"
    );
    assert_eq!(routes(&leg_invite), vec![format!("<sip:{outbound};lr>")]);
    assert_eq!(
        leg_invite.header(&HeaderName::CONTACT),
        Some("<sip:concierge@127.0.0.1:5060>")
    );

    // The 200 comes back through two record-routing proxies: the nearest last.
    let sdp = "v=0\r\no=- 2 2 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let mut ok = response_to(&leg_invite, StatusCode::OK, Some("q1"));
    ok.headers
        .push(HeaderName::RECORD_ROUTE, "<sip:127.0.0.5;lr>");
    ok.headers
        .push(HeaderName::RECORD_ROUTE, format!("<sip:{outbound};lr>"));
    ok.headers
        .push(HeaderName::CONTACT, "<sip:agent@127.0.0.2:5070>");
    ok.headers.push(HeaderName::CONTENT_TYPE, "application/sdp");
    ok.body = sdp.as_bytes().to_vec().into();
    let out = rig.receive(udp(outbound), &String::from_utf8_lossy(&ok.to_bytes()));
    let (to, ack) = out
        .iter()
        .find(|(_, m)| matches!(m, Message::Request(r) if r.method.as_str() == "ACK"))
        .map(|(p, m)| (*p, request(m).clone()))
        .expect("the ACK");
    assert_eq!(to, udp(outbound));
    assert_eq!(ack.uri.as_str(), "sip:agent@127.0.0.2:5070");
    assert_eq!(
        routes(&ack),
        vec![
            format!("<sip:{outbound};lr>"),
            "<sip:127.0.0.5;lr>".to_owned()
        ],
        "§12.1.2: the Record-Route reversed"
    );
    // The caller hangs up: the leg's BYE takes the same route.
    let tag = rig
        .sent()
        .iter()
        .find_map(|(_, m)| match m {
            Message::Response(r) if r.status.0 == 200 && r.cseq.method.as_str() == "INVITE" => {
                r.to.tag().map(str::to_owned)
            }
            _ => None,
        })
        .unwrap();
    let out = rig.receive(
        caller,
        &format!(
            "BYE sip:concierge@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKcbye\r\nFrom: <sip:+46706170786@carrier.example>;tag=ph\r\nTo: <sip:ivr@127.0.0.1>;tag={tag}\r\nCall-ID: rr1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        ),
    );
    let (to, bye) = out
        .iter()
        .find(|(_, m)| matches!(m, Message::Request(r) if r.method.as_str() == "BYE"))
        .map(|(p, m)| (*p, request(m).clone()))
        .expect("the leg's BYE");
    assert_eq!(to, udp(outbound));
    assert_eq!(bye.call_id, leg_invite.call_id);
    assert_eq!(routes(&bye).len(), 2);
}
