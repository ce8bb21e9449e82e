//! Bridge legs to named targets in virtual time (RFC 3263): the switch asks the driver to
//! resolve the name, sends the INVITE to the first address it gets back, and moves on to
//! the next on 503 or when the first stays silent.

use std::net::SocketAddr;
use std::time::Duration;

use concierge_b2bua::{Resolve, SwitchConfig, TransferMode};
use concierge_sip::wire::{response_to, Message, Request, StatusCode, Transport};
use concierge_sip::Peer;

const FAILOVER: Duration = Duration::from_secs(2);

mod testkit;

use testkit::Kit;

/// The testkit with one scripted phone: what the switch sends the phone comes back from
/// `from(phone, …)` and `drain`; everything else is the kit's (through `Deref`).
struct Rig {
    kit: Kit,
    phone: Peer,
}

testkit::rig_derefs_to_kit!(Rig);

impl Rig {
    fn new() -> Self {
        Self::with(SwitchConfig {
            seed: 3,
            dns_failover: FAILOVER,
            ..SwitchConfig::default()
        })
    }

    fn with(cfg: SwitchConfig) -> Self {
        Self {
            kit: Kit::with(cfg, Default::default()),
            phone: Peer {
                transport: Transport::Udp,
                addr: "127.0.0.1:5061".parse().unwrap(),
            },
        }
    }

    /// `text` from `peer`; returns what the switch sent the phone since it last looked.
    fn from(&mut self, peer: SocketAddr, text: &str) -> Vec<Message> {
        self.kit.sip_from(peer, text);
        self.drain()
    }

    fn drain(&mut self) -> Vec<Message> {
        let phone = self.phone.addr;
        self.kit.inbox(phone)
    }

    /// SIP the switch sent to anyone but the phone: (to, message).
    fn to_others(&self) -> Vec<(SocketAddr, Message)> {
        let phone = self.phone.addr;
        self.kit
            .sip
            .iter()
            .filter(|s| s.to != phone)
            .map(|s| (s.to, s.message.clone()))
            .collect()
    }

    /// The INVITEs sent so far, with where they went.
    fn invites(&self) -> Vec<(SocketAddr, Request)> {
        self.to_others()
            .into_iter()
            .filter_map(|(to, m)| match m {
                Message::Request(r) if r.method.as_str() == "INVITE" => Some((to, r)),
                _ => None,
            })
            .collect()
    }
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// An answered call (plain RTP) whose flow-less switch we then bridge by hand.
fn answered_call(rig: &mut Rig) -> String {
    let phone = rig.phone.addr;
    let out = rig.from(phone, &format!(
        "INVITE sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKd1;rport\r\nFrom: <sip:+46706170786@127.0.0.1>;tag=ph\r\nTo: <sip:ivr@127.0.0.1>\r\nCall-ID: d1\r\nCSeq: 1 INVITE\r\nContact: <sip:phone@127.0.0.1:5061>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    ));
    let Message::Response(ok) = &out[1] else {
        panic!("200 expected: {out:?}")
    };
    let tag = ok.to.tag().unwrap().to_owned();
    rig.from(phone, &format!(
        "ACK sip:concierge@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKda;rport\r\nFrom: <sip:+46706170786@127.0.0.1>;tag=ph\r\nTo: <sip:ivr@127.0.0.1>;tag={tag}\r\nCall-ID: d1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    ));
    tag
}

fn bridge_to_name(rig: &mut Rig) -> Resolve {
    answered_call(rig);
    rig.transfer("d1", TransferMode::Bridge, "sip:queue@desk.test");
    rig.drain();
    let resolve = rig
        .resolves
        .pop_front()
        .expect("the name goes to the resolver");
    assert_eq!(resolve.uri.host(), "desk.test");
    assert!(rig.resolves.pop_front().is_none());
    assert!(
        rig.invites().is_empty(),
        "no INVITE before the name is resolved"
    );
    resolve
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn udp(a: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr(a),
    }
}

fn answer(req: &Request, code: u16, body: &str) -> String {
    let mut r = response_to(req, StatusCode(code), Some("q"));
    if !body.is_empty() {
        r.headers.push(
            concierge_sip::wire::HeaderName::CONTENT_TYPE,
            "application/sdp",
        );
        r.headers.push(
            concierge_sip::wire::HeaderName::CONTACT,
            "<sip:queue@127.0.0.1:7002>",
        );
        r.body = body.to_owned().into();
    }
    String::from_utf8(r.to_bytes().to_vec()).unwrap()
}

#[test]
fn a_silent_first_address_is_given_up_for_the_second() {
    let mut rig = Rig::new();
    let resolve = bridge_to_name(&mut rig);
    rig.answer_resolve(
        resolve.id,
        Ok(vec![udp("127.0.0.1:7001"), udp("127.0.0.1:7002")]),
    );
    rig.drain();
    let first = rig.invites();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, addr("127.0.0.1:7001"));
    assert_eq!(
        first[0].1.uri.as_str(),
        "sip:queue@desk.test",
        "the name stays the Request-URI"
    );
    // Retransmissions go to the first address until the failover time…
    rig.advance(FAILOVER - Duration::from_millis(10));
    assert!(rig
        .invites()
        .iter()
        .all(|(to, _)| *to == addr("127.0.0.1:7001")));
    // …then the request goes to the second, as a new transaction.
    rig.advance(Duration::from_millis(20));
    let (to, second) = rig.invites().pop().unwrap();
    assert_eq!(to, addr("127.0.0.1:7002"));
    assert_eq!(second.cseq.seq, first[0].1.cseq.seq + 1);
    assert_ne!(second.vias[0].branch(), first[0].1.vias[0].branch());
    assert_eq!(second.call_id, first[0].1.call_id);
    // The second answers: the bridge is up.
    let ok = answer(&second, 200, SDP);
    rig.from(addr("127.0.0.1:7002"), &ok);
    let acked = rig.to_others().iter().any(|(to, m)| {
        *to == addr("127.0.0.1:7002")
            && matches!(m, Message::Request(r) if r.method.as_str() == "ACK")
    });
    assert!(acked, "the 2xx from the second address is ACKed");
}

#[test]
fn a_503_moves_on_to_the_next_address_at_once() {
    let mut rig = Rig::new();
    let resolve = bridge_to_name(&mut rig);
    rig.answer_resolve(
        resolve.id,
        Ok(vec![udp("127.0.0.1:7001"), udp("127.0.0.1:7002")]),
    );
    rig.drain();
    let (_, first) = rig.invites().pop().unwrap();
    rig.from(addr("127.0.0.1:7001"), &answer(&first, 503, ""));
    let invites = rig.invites();
    assert_eq!(invites.len(), 2);
    assert_eq!(invites[1].0, addr("127.0.0.1:7002"));
}

#[test]
fn a_503_from_the_last_address_fails_the_bridge() {
    let mut rig = Rig::new();
    let resolve = bridge_to_name(&mut rig);
    rig.answer_resolve(resolve.id, Ok(vec![udp("127.0.0.1:7001")]));
    rig.drain();
    let (_, first) = rig.invites().pop().unwrap();
    rig.from(addr("127.0.0.1:7001"), &answer(&first, 503, ""));
    rig.advance(Duration::from_secs(1));
    assert_eq!(rig.invites().len(), 1, "nowhere else to go");
    rig.hang_up("d1", "test over");
    rig.drain();
    rig.advance(Duration::from_secs(40));
    let t = rig.records[0].transfer.as_ref().expect("a transfer record");
    assert!(t.result.to_string().contains("503"), "{t:?}");
}

#[test]
fn a_name_that_does_not_resolve_fails_the_bridge_without_an_invite() {
    let mut rig = Rig::new();
    let resolve = bridge_to_name(&mut rig);
    rig.answer_resolve(resolve.id, Err("no such name".into()));
    rig.drain();
    // A late duplicate answer is ignored.
    rig.answer_resolve(resolve.id, Ok(vec![udp("127.0.0.1:7001")]));
    rig.drain();
    assert!(rig.invites().is_empty());
    rig.hang_up("d1", "test over");
    rig.drain();
    rig.advance(Duration::from_secs(40));
    let t = rig.records[0].transfer.as_ref().expect("a transfer record");
    assert!(
        t.result.to_string().contains("cannot resolve the target"),
        "{t:?}"
    );
}

#[test]
fn an_ip_target_needs_no_lookup() {
    let mut rig = Rig::new();
    answered_call(&mut rig);
    rig.transfer("d1", TransferMode::Bridge, "sip:queue@127.0.0.1:7003");
    rig.drain();
    assert!(rig.resolves.pop_front().is_none());
    assert_eq!(rig.invites()[0].0, addr("127.0.0.1:7003"));
}

#[test]
fn a_named_outbound_proxy_is_resolved_and_the_target_stays_the_request_uri() {
    let cfg = SwitchConfig {
        seed: 3,
        outbound_proxy: Some(
            concierge_sip::wire::SipUri::parse("sip:proxy.example.test;lr").unwrap(),
        ),
        ..SwitchConfig::default()
    };
    let mut rig = Rig::with(cfg);
    answered_call(&mut rig);
    rig.transfer("d1", TransferMode::Bridge, "sip:queue@127.0.0.1:7003");
    rig.drain();
    let resolve = rig
        .resolves
        .pop_front()
        .expect("the proxy's name is looked up");
    assert_eq!(resolve.uri.host(), "proxy.example.test");
    rig.answer_resolve(resolve.id, Ok(vec![udp("127.0.0.1:7010")]));
    rig.drain();
    let (to, invite) = rig.invites().pop().expect("an INVITE");
    assert_eq!(to, addr("127.0.0.1:7010"), "sent to the proxy's address");
    assert_eq!(invite.uri.as_str(), "sip:queue@127.0.0.1:7003");
    let route = invite
        .header(&concierge_sip::wire::HeaderName::ROUTE)
        .unwrap_or_default();
    assert!(route.contains("proxy.example.test"), "{route}");
}
