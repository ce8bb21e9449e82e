use std::time::{Duration, Instant};

use super::{Endpoint, EndpointConfig, EndpointEvent, Peer};
use crate::transaction::TsxKey;
use crate::wire::{response_to, Message, Method, Request, StatusCode, Transport};

#[test]
fn our_via_names_the_tls_port_over_tls_and_the_ipv6_host_to_ipv6_peers() {
    // RFC 3261 §18.1.1: the Via's sent-by is where the response must reach us.
    let mut ep = Endpoint::new(EndpointConfig {
        via_host: "192.0.2.1".into(),
        via_port: 5060,
        via_tls_port: Some(5061),
        via_host_v6: Some("[2001:db8::1]".into()),
        ..EndpointConfig::default()
    });
    let udp4 = Peer {
        transport: Transport::Udp,
        addr: "198.51.100.7:5060".parse().unwrap(),
    };
    let tls4 = Peer {
        transport: Transport::Tls,
        ..udp4
    };
    let udp6 = Peer {
        transport: Transport::Udp,
        addr: "[2001:db8::7]:5060".parse().unwrap(),
    };
    assert_eq!(ep.new_via(udp4).sent_by(), "192.0.2.1:5060");
    assert_eq!(ep.new_via(tls4).sent_by(), "192.0.2.1:5061");
    assert_eq!(ep.new_via(udp6).sent_by(), "[2001:db8::1]:5060");
}

const INVITE: &str = concat!(
    "INVITE sip:ivr@127.0.0.1 SIP/2.0\r\n",
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKinv1;rport\r\n",
    "From: <sip:alice@127.0.0.1>;tag=a1\r\n",
    "To: <sip:ivr@127.0.0.1>\r\n",
    "Call-ID: e1\r\n",
    "CSeq: 1 INVITE\r\n",
    "Max-Forwards: 70\r\n",
    "\r\n"
);

fn peer() -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: "127.0.0.1:5061".parse().unwrap(),
    }
}

fn drain(ep: &mut Endpoint) -> (Vec<String>, Vec<EndpointEvent>) {
    let mut sent = Vec::new();
    while let Some(t) = ep.poll_transmit() {
        sent.push(String::from_utf8_lossy(&t.bytes).into_owned());
    }
    let mut events = Vec::new();
    while let Some(e) = ep.poll_event() {
        events.push(e);
    }
    (sent, events)
}

fn invite_key(ep: &mut Endpoint, now: Instant) -> (TsxKey, Request) {
    ep.handle_datagram(now, peer(), INVITE.as_bytes());
    let (_, events) = drain(ep);
    match events.into_iter().next() {
        Some(EndpointEvent::Request { key, request, .. }) => (key, request),
        other => panic!("expected the INVITE, got {other:?}"),
    }
}

#[test]
fn invite_retransmission_is_absorbed_and_answered_with_the_last_provisional() {
    let now = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig::default());
    let (key, invite) = invite_key(&mut ep, now);
    ep.respond(
        now,
        &key,
        response_to(&invite, StatusCode::RINGING, Some("t1")),
    );
    drain(&mut ep);
    ep.handle_datagram(now, peer(), INVITE.as_bytes());
    let (sent, events) = drain(&mut ep);
    assert!(events.is_empty(), "a retransmission is not a new request");
    assert_eq!(sent.len(), 1);
    assert!(sent[0].starts_with("SIP/2.0 180 Ringing"));
    assert!(sent[0].contains("received=127.0.0.1;rport=5061") || sent[0].contains("rport=5061"));
}

#[test]
fn cancel_gets_200_and_the_tu_is_told() {
    let now = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig::default());
    let (key, _) = invite_key(&mut ep, now);
    let cancel = INVITE
        .replace("INVITE sip", "CANCEL sip")
        .replace("1 INVITE", "1 CANCEL");
    ep.handle_datagram(now, peer(), cancel.as_bytes());
    let (sent, events) = drain(&mut ep);
    assert!(sent[0].starts_with("SIP/2.0 200 OK") && sent[0].contains("CSeq: 1 CANCEL"));
    assert!(matches!(&events[0], EndpointEvent::Cancelled { invite, .. } if *invite == key));
}

#[test]
fn cancel_for_an_unknown_invite_gets_481() {
    let now = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig::default());
    let cancel = INVITE
        .replace("INVITE sip", "CANCEL sip")
        .replace("1 INVITE", "1 CANCEL");
    ep.handle_datagram(now, peer(), cancel.as_bytes());
    let (sent, events) = drain(&mut ep);
    assert!(sent[0].starts_with("SIP/2.0 481"));
    assert!(events.is_empty());
}

#[test]
fn garbage_with_usable_headers_gets_400_and_pure_garbage_nothing() {
    let now = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig::default());
    let broken = INVITE.replace("CSeq: 1 INVITE", "CSeq: one INVITE");
    ep.handle_datagram(now, peer(), broken.as_bytes());
    let (sent, _) = drain(&mut ep);
    assert!(
        sent[0].starts_with("SIP/2.0 400 Bad Request"),
        "{}",
        sent[0]
    );
    ep.handle_datagram(now, peer(), b"\x00\xff garbage \r\n\r\n");
    assert_eq!(drain(&mut ep).0.len(), 0);
}

#[test]
fn non_2xx_final_is_retransmitted_by_timer_g_through_the_endpoint() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig::default());
    let (key, invite) = invite_key(&mut ep, t0);
    ep.respond(t0, &key, response_to(&invite, StatusCode(486), Some("t")));
    drain(&mut ep);
    let mut retransmits = Vec::new();
    let mut timed_out = false;
    while let Some(at) = ep.poll_timeout() {
        ep.handle_timeout(at);
        let (sent, events) = drain(&mut ep);
        retransmits.extend(sent.iter().map(|_| (at - t0).as_millis()));
        timed_out |= events
            .iter()
            .any(|e| matches!(e, EndpointEvent::Timeout { .. }));
    }
    assert_eq!(&retransmits[..4], &[500, 1500, 3500, 7500]);
    assert!(timed_out, "timer H reports the missing ACK");
    assert_eq!(ep.transaction_count(), 0);
}

#[test]
fn client_transaction_gets_its_response_and_unknown_branches_are_dropped() {
    let t0 = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig::default());
    let (_, invite) = invite_key(&mut ep, t0);
    let mut bye = invite.clone();
    bye.method = Method::Bye;
    bye.cseq = crate::wire::CSeq {
        seq: 2,
        method: Method::Bye,
    };
    bye.vias.clear();
    let key = ep.send_request(t0, bye, peer());
    let (sent, _) = drain(&mut ep);
    let parsed = match crate::wire::parse_datagram(sent[0].as_bytes())
        .unwrap()
        .unwrap()
    {
        Message::Request(r) => r,
        _ => unreachable!(),
    };
    let ok = response_to(&parsed, StatusCode::OK, None).to_bytes();
    ep.handle_datagram(t0 + Duration::from_millis(10), peer(), &ok);
    let (_, events) = drain(&mut ep);
    assert!(
        matches!(&events[0], EndpointEvent::Response { key: k, response } if *k == key && response.status == StatusCode::OK)
    );
}

#[test]
fn our_tags_and_branches_are_fresh_and_a_branch_keys_its_transaction() {
    // RFC 3261 §8.1.1.7: our branches start with the magic cookie; §19.3: tags are random.
    let t0 = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig::default());
    let (a, b) = (ep.new_tag(), ep.new_tag());
    assert_ne!(a, b);
    assert!(a.as_str().len() == 12 && a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
    let (_, invite) = invite_key(&mut ep, t0);
    let mut options = invite.clone();
    options.method = Method::Options;
    options.cseq.method = Method::Options;
    options.vias.clear();
    let key = ep.send_request(t0, options, peer());
    let (sent, _) = drain(&mut ep);
    let sent = match crate::wire::parse_datagram(sent[0].as_bytes())
        .unwrap()
        .unwrap()
    {
        Message::Request(r) => r,
        _ => unreachable!(),
    };
    assert!(key.branch().is_rfc3261());
    assert_eq!(
        sent.top_via().and_then(|v| v.branch()),
        Some(key.branch().as_str())
    );
}

#[test]
fn tags_and_branches_are_the_hex_digits_format_writes() {
    for value in [
        0,
        1,
        0xabc,
        0xffff_ffff_ffff,
        u64::MAX,
        0x0123_4567_89ab_cdef,
    ] {
        let mut tag = [0u8; 12];
        super::write_hex(&mut tag, value & 0xffff_ffff_ffff);
        assert_eq!(
            super::ascii(&tag),
            format!("{:012x}", value & 0xffff_ffff_ffff)
        );
        let mut branch = [0u8; 16];
        super::write_hex(&mut branch, value);
        assert_eq!(super::ascii(&branch), format!("{value:016x}"));
    }
}
