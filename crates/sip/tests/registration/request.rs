//! What a REGISTER holds (RFC 3261 §10.2) and where it goes.

use concierge_sip::wire::{HeaderName, Method, SipUri};

use crate::rig::{config, udp, Rig};

#[test]
fn rfc3261_10_2_register_names_the_registrar_the_aor_our_contact_and_the_interval() {
    let rig = Rig::start(config());
    let (_, r) = rig.last_register();
    assert_eq!(r.method, Method::Register);
    assert_eq!(
        r.uri.as_str(),
        "sip:192.0.2.1:5070",
        "the registrar, no user part"
    );
    assert_eq!(
        r.to.uri.as_str(),
        "sip:+4612345@192.0.2.1",
        "To: the address-of-record"
    );
    assert_eq!(r.to.tag(), None);
    assert_eq!(
        r.from.uri, r.to.uri,
        "From: the address-of-record too (§10.2)"
    );
    assert!(r.from.tag().is_some());
    assert_eq!(
        r.header(&HeaderName::CONTACT),
        Some("<sip:concierge@192.0.2.10:5060>")
    );
    assert_eq!(r.header(&HeaderName::EXPIRES), Some("3600"));
    assert_eq!(r.max_forwards, Some(70));
    assert!(
        r.vias.is_empty(),
        "the endpoint adds our Via with a fresh branch"
    );
    assert_eq!(
        rig.sent[0].2,
        udp("192.0.2.1:5070"),
        "sent to the registrar itself"
    );
}

#[test]
fn rfc3327_5_1_register_says_it_supports_path() {
    let rig = Rig::start(config());
    assert_eq!(rig.header("Supported").as_deref(), Some("path"));
}

#[test]
fn rfc3261_10_2_every_register_keeps_the_call_id_and_raises_the_cseq() {
    let mut rig = Rig::registered(config());
    rig.step(); // the refresh
    let regs = rig.registers();
    assert_eq!(regs.len(), 2);
    assert_eq!(
        regs[0].call_id, regs[1].call_id,
        "§10.2.4: one Call-ID for every refresh"
    );
    assert_eq!(regs[0].from.tag(), regs[1].from.tag());
    assert_eq!(regs[1].cseq.seq, regs[0].cseq.seq + 1);
}

#[test]
fn rfc3261_8_1_2_an_outbound_proxy_is_the_next_hop_and_the_only_route() {
    let mut cfg = config();
    cfg.outbound_proxy = Some(SipUri::parse("sip:192.0.2.5:5080").unwrap());
    let rig = Rig::start(cfg);
    let (_, r) = rig.last_register();
    assert_eq!(
        r.uri.as_str(),
        "sip:192.0.2.1:5070",
        "the registrar stays the Request-URI"
    );
    let routes: Vec<&str> = r.headers.get_all(&HeaderName::ROUTE).collect();
    assert_eq!(
        routes,
        ["<sip:192.0.2.5:5080;lr>"],
        "a loose route, `lr` added"
    );
    assert_eq!(rig.sent[0].2, udp("192.0.2.5:5080"));
}

#[test]
fn the_configured_transport_carries_the_register() {
    let mut cfg = config();
    cfg.transport = concierge_sip::wire::Transport::Tcp;
    let rig = Rig::start(cfg);
    assert_eq!(rig.sent[0].2.transport, concierge_sip::wire::Transport::Tcp);
}

#[test]
fn rfc3263_a_named_registrar_is_located_before_the_first_register() {
    let mut cfg = config();
    cfg.registrar = SipUri::parse("sip:sip.carrier.example").unwrap();
    cfg.transport = concierge_sip::wire::Transport::Tcp;
    let mut rig = Rig::start(cfg);
    assert!(
        rig.sent.is_empty(),
        "nothing is sent before the name is located"
    );
    assert_eq!(
        rig.resolves.iter().map(SipUri::as_str).collect::<Vec<_>>(),
        ["sip:sip.carrier.example;transport=tcp"],
        "the lookup asks for the configured transport"
    );
    let now = rig.now;
    rig.reg.handle_resolved(now, vec![udp("192.0.2.7:5060")]);
    rig.drain();
    assert_eq!(rig.sent[0].2, udp("192.0.2.7:5060"));
    assert_eq!(
        rig.last_register().1.uri.as_str(),
        "sip:sip.carrier.example"
    );
}

#[test]
fn a_user_agent_is_named_when_configured() {
    let mut cfg = config();
    cfg.user_agent = Some("Concierge".into());
    let rig = Rig::start(cfg);
    assert_eq!(rig.header("User-Agent").as_deref(), Some("Concierge"));
}

#[test]
fn an_ipv6_registrar_is_given_our_ipv6_contact_and_its_grant_is_read_for_it() {
    let mut cfg = config();
    cfg.registrar = SipUri::parse("sip:[2001:db8::1]:5070").unwrap();
    cfg.contact_v6 = Some(SipUri::parse("sip:concierge@[2001:db8::10]:5060").unwrap());
    let mut rig = Rig::start(cfg);
    assert_eq!(
        rig.header("Contact").as_deref(),
        Some("<sip:concierge@[2001:db8::10]:5060>"),
        "the registrar calls us back over the family it was reached on"
    );
    rig.answer(
        200,
        &[
            ("Contact", "<sip:concierge@192.0.2.10:5060>;expires=3600"),
            ("Contact", "<sip:concierge@[2001:db8::10]:5060>;expires=90"),
        ],
    );
    let concierge_sip::registration::StatusState::Registered { expires_at } = rig.status().state
    else {
        panic!("{:?}", rig.status())
    };
    assert_eq!(
        expires_at - rig.now,
        crate::rig::secs(90),
        "our IPv6 binding's grant"
    );
}

#[test]
fn an_ipv4_registrar_keeps_the_ipv4_contact_and_its_address_is_located() {
    let mut cfg = config();
    cfg.contact_v6 = Some(SipUri::parse("sip:concierge@[2001:db8::10]:5060").unwrap());
    let rig = Rig::start(cfg);
    assert_eq!(
        rig.header("Contact").as_deref(),
        Some("<sip:concierge@192.0.2.10:5060>")
    );
    assert_eq!(rig.reg.located(), [udp("192.0.2.1:5070")]);
}
