//! Keeping the path to the registrar open while registered: OPTIONS over UDP when
//! `keepalive` is set, CRLF over TCP/TLS (RFC 5626 §3.5.1).

use concierge_sip::registration::{StatusState, DEFAULT_STREAM_KEEPALIVE};
use concierge_sip::wire::{Method, Transport};

use crate::rig::{config, secs, Rig};

#[test]
fn over_udp_an_options_ping_goes_every_keepalive_interval_while_registered() {
    let mut cfg = config();
    cfg.keepalive = Some(secs(25));
    let mut rig = Rig::registered(cfg);
    rig.advance(secs(80));
    let pings: Vec<_> = rig
        .sent
        .iter()
        .filter(|(_, r, _)| r.method == Method::Options)
        .collect();
    assert_eq!(
        pings.len(),
        1,
        "one at a time: the first is still unanswered"
    );
    let ping = &pings[0].1;
    assert_eq!(ping.uri.as_str(), "sip:192.0.2.1:5070");
    assert_ne!(
        ping.call_id,
        rig.registers()[0].call_id,
        "a Call-ID of its own"
    );
}

#[test]
fn an_answered_ping_of_any_status_keeps_the_pings_going() {
    let mut cfg = config();
    cfg.keepalive = Some(secs(25));
    let mut rig = Rig::registered(cfg);
    for _ in 0..3 {
        rig.advance(secs(25));
        let (id, ping, _) = rig.sent.last().unwrap().clone();
        assert_eq!(ping.method, Method::Options);
        rig.answer_request(id, &ping, 405, &[]);
    }
    assert_eq!(rig.registers().len(), 1, "no REGISTER needed");
}

#[test]
fn an_unanswered_ping_re_registers_at_once() {
    let mut cfg = config();
    cfg.keepalive = Some(secs(25));
    let mut rig = Rig::registered(cfg);
    rig.advance(secs(25));
    let (id, _, _) = rig.sent.last().unwrap().clone();
    let now = rig.now;
    rig.reg.handle_no_response(now, id);
    rig.drain();
    assert_eq!(rig.registers().len(), 2);
    assert_eq!(rig.sent.last().unwrap().1.method, Method::Register);
}

#[test]
fn over_udp_without_keepalive_nothing_is_pinged() {
    let mut rig = Rig::registered(config());
    rig.advance(secs(1700));
    assert_eq!(rig.sent.len(), 1);
    assert!(rig.keepalives.is_empty());
}

#[test]
fn rfc5626_over_tcp_a_crlf_keepalive_goes_to_the_connection() {
    let mut cfg = config();
    cfg.transport = Transport::Tcp;
    let mut rig = Rig::registered(cfg);
    rig.advance(DEFAULT_STREAM_KEEPALIVE * 3);
    assert_eq!(rig.keepalives.len(), 3);
    assert!(rig
        .keepalives
        .iter()
        .all(|(_, peer)| peer.transport == Transport::Tcp && peer.addr.port() == 5070));
    assert_eq!(rig.sent.len(), 1, "no OPTIONS over a connection");
}

#[test]
fn a_lost_connection_re_registers_at_once() {
    let mut cfg = config();
    cfg.transport = Transport::Tcp;
    let mut rig = Rig::registered(cfg);
    let peer = rig.sent[0].2;
    let now = rig.now;
    rig.reg.handle_connection_lost(now, peer);
    rig.drain();
    assert_eq!(rig.registers().len(), 2);
}

#[test]
fn nothing_is_kept_alive_once_stopped() {
    let mut cfg = config();
    cfg.keepalive = Some(secs(25));
    let mut rig = Rig::start(cfg);
    rig.answer(403, &[]);
    rig.advance(secs(300));
    assert_eq!(rig.sent.len(), 1);
    assert!(matches!(rig.status().state, StatusState::Failed { .. }));
}
