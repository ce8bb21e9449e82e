//! The switch's SIP trunks in virtual time (issue 23): the program's `[[trunks]]` register
//! at start, their answers and timers reach them through the switch, a named registrar is
//! located through the driver, a reload replaces or removes them (Expires: 0 first), a
//! drain un-registers them and the switch is idle only once that is done, a closed
//! connection registers again, and a trusted trunk's addresses are trusted peers.

use std::time::Duration;

use concierge_b2bua::TrunkStatus;
use concierge_sip::registration::StatusState;
use concierge_sip::wire::{HeaderName, Request, SipUri, Transport};
use concierge_sip::Peer;

mod testkit;

use testkit::trunk::{carrier, program, trunk, Registrar, REGISTRAR};
use testkit::{Caller, Kit};

fn kit(trunks: Vec<concierge_b2bua::Trunk>) -> Kit {
    Kit::with(testkit::config(), program(None, trunks))
}

fn expires(r: &Request) -> Option<&str> {
    r.header(&HeaderName::EXPIRES)
}

fn last_report(kit: &Kit) -> Vec<TrunkStatus> {
    kit.trunk_reports.last().cloned().unwrap_or_default()
}

fn state_of(kit: &Kit, name: &str) -> Option<StatusState> {
    last_report(kit)
        .into_iter()
        .find(|t| t.name == name)
        .map(|t| t.status.state)
}

fn registered(kit: &Kit, name: &str) -> bool {
    matches!(state_of(kit, name), Some(StatusState::Registered { .. }))
}

#[test]
fn rfc3261_10_2_a_program_s_trunk_registers_at_start_and_its_state_is_reported() {
    let mut kit = kit(vec![carrier()]);
    let registrar = Registrar::at(REGISTRAR);
    let reg = registrar.register(&mut kit);
    assert_eq!(reg.uri.as_str(), "sip:198.51.100.1:5070");
    assert_eq!(reg.to.uri.as_str(), "sip:+4612345@198.51.100.1");
    assert_eq!(
        reg.header(&HeaderName::CONTACT),
        Some("<sip:ivr@192.0.2.10:5060>")
    );
    assert_eq!(state_of(&kit, "carrier"), Some(StatusState::Starting));
    registrar.bind(&mut kit, &reg, 600, "");
    let report = last_report(&kit);
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].aor, "sip:+4612345@198.51.100.1");
    assert_eq!(
        report[0].status.state,
        StatusState::Registered {
            expires_at: kit.now + Duration::from_secs(600)
        }
    );
    assert_eq!(report[0].status.last_response.map(|s| s.0), Some(200));
}

#[test]
fn a_program_without_trunks_reports_none_and_sends_nothing() {
    let kit = kit(Vec::new());
    assert!(kit.sip.is_empty());
    assert!(kit.trunk_reports.is_empty());
    assert!(kit.is_idle());
}

#[test]
fn rfc3261_10_2_4_the_switch_wakes_for_the_refresh_at_half_the_grant() {
    let mut kit = kit(vec![carrier()]);
    let registrar = Registrar::at(REGISTRAR);
    let reg = registrar.register(&mut kit);
    registrar.bind(&mut kit, &reg, 60, "");
    kit.advance(Duration::from_secs(29));
    assert!(registrar.requests(&mut kit).is_empty());
    kit.advance(Duration::from_secs(1));
    let refresh = registrar.register(&mut kit);
    assert_eq!(refresh.call_id, reg.call_id);
    assert_eq!(refresh.cseq.seq, reg.cseq.seq + 1);
}

#[test]
fn rfc3263_a_named_registrar_is_located_by_the_driver_and_registered_at_its_address() {
    let mut kit = kit(vec![trunk("carrier", "sip:registrar.carrier.test")]);
    assert!(kit.sip.is_empty(), "no REGISTER before the name is located");
    let resolve = kit.resolves.front().expect("a lookup").clone();
    assert_eq!(resolve.uri.host(), "registrar.carrier.test");
    kit.resolved(Ok(vec![testkit::peer("203.0.113.8:5060")]));
    let reg = Registrar::at("203.0.113.8:5060").register(&mut kit);
    assert_eq!(reg.uri.as_str(), "sip:registrar.carrier.test");
    assert_eq!(reg.to.uri.as_str(), "sip:+4612345@registrar.carrier.test");
}

#[test]
fn a_name_without_addresses_backs_off_and_is_looked_up_again() {
    let mut kit = kit(vec![trunk("carrier", "sip:registrar.carrier.test")]);
    kit.resolved(Err("no such name".into()));
    assert!(matches!(
        state_of(&kit, "carrier"),
        Some(StatusState::BackingOff { .. })
    ));
    kit.advance(Duration::from_secs(11));
    assert_eq!(kit.resolves.len(), 1, "the next attempt locates it afresh");
}

#[test]
fn a_reload_removing_a_trunk_unregisters_its_binding() {
    let mut kit = kit(vec![carrier()]);
    let registrar = Registrar::at(REGISTRAR);
    registrar.registers(&mut kit);
    kit.set_program(program(None, Vec::new()));
    let bye = registrar.register(&mut kit);
    assert_eq!(expires(&bye), Some("0"));
    assert_eq!(
        bye.header(&HeaderName::CONTACT),
        Some("<sip:ivr@192.0.2.10:5060>")
    );
    registrar.reply(&mut kit, &bye, 200, "");
    assert!(last_report(&kit).is_empty());
    assert!(kit.is_idle(), "nothing left to un-register");
}

#[test]
fn a_reload_changing_a_trunk_removes_the_old_binding_and_registers_the_new() {
    let mut kit = kit(vec![carrier()]);
    let registrar = Registrar::at(REGISTRAR);
    registrar.registers(&mut kit);
    let mut changed = carrier();
    changed.registration.expires = 300;
    kit.set_program(program(None, vec![changed]));
    let sent = registrar.requests(&mut kit);
    let asked: Vec<Option<&str>> = sent.iter().map(expires).collect();
    assert_eq!(
        asked,
        [Some("0"), Some("300")],
        "the old binding goes first"
    );
    assert_ne!(sent[0].call_id, sent[1].call_id, "a new registration");
    registrar.bind(&mut kit, &sent[1], 300, "");
    assert!(registered(&kit, "carrier"));
}

#[test]
fn a_reload_with_the_trunk_unchanged_leaves_its_registration_alone() {
    let mut kit = kit(vec![carrier()]);
    let registrar = Registrar::at(REGISTRAR);
    registrar.registers(&mut kit);
    kit.set_program(program(None, vec![carrier()]));
    assert!(registrar.requests(&mut kit).is_empty());
    assert!(registered(&kit, "carrier"));
}

#[test]
fn draining_unregisters_every_trunk_and_the_switch_is_idle_once_the_registrar_confirms() {
    let mut kit = kit(vec![carrier()]);
    let registrar = Registrar::at(REGISTRAR);
    registrar.registers(&mut kit);
    assert!(!kit.drain_now(), "the un-REGISTER is out");
    let bye = registrar.register(&mut kit);
    assert_eq!(expires(&bye), Some("0"));
    assert!(!kit.is_idle());
    registrar.reply(&mut kit, &bye, 200, "");
    assert!(kit.is_idle());
}

#[test]
fn a_drained_switch_whose_registrar_never_answers_is_idle_after_timer_f() {
    let mut kit = kit(vec![carrier()]);
    let registrar = Registrar::at(REGISTRAR);
    registrar.registers(&mut kit);
    kit.drain_now();
    kit.advance(Duration::from_secs(31));
    assert!(!kit.is_idle());
    kit.advance(Duration::from_secs(2));
    assert!(kit.is_idle(), "64·T1 without an answer: the binding lapses");
}

#[test]
fn a_reload_while_draining_registers_nothing_new() {
    let mut kit = kit(Vec::new());
    assert!(kit.drain_now());
    kit.set_program(program(None, vec![carrier()]));
    assert!(kit.sip.is_empty());
    assert!(kit.is_idle());
}

#[test]
fn rfc5626_a_tcp_trunk_keeps_its_connection_with_crlf_and_registers_again_when_it_closes() {
    let mut tcp = carrier();
    tcp.registration.transport = Transport::Tcp;
    tcp.registration.keepalive = Some(Duration::from_secs(30));
    let mut kit = kit(vec![tcp]);
    let registrar = Registrar::at(REGISTRAR);
    let reg = registrar.register(&mut kit);
    let over = kit.sip.last().map(|s| s.transport);
    assert_eq!(over, Some(Transport::Tcp));
    registrar.bind(&mut kit, &reg, 600, "");
    kit.advance(Duration::from_secs(30));
    let peer = Peer {
        transport: Transport::Tcp,
        addr: REGISTRAR.parse().unwrap(),
    };
    assert_eq!(kit.keepalives, [(kit.now, peer)]);
    kit.connection_lost(peer);
    let again = registrar.register(&mut kit);
    assert_eq!(again.call_id, reg.call_id, "the same registration, at once");
}

#[test]
fn a_udp_peer_or_another_connection_closing_changes_nothing() {
    let mut kit = kit(vec![carrier()]);
    let registrar = Registrar::at(REGISTRAR);
    registrar.registers(&mut kit);
    kit.connection_lost(testkit::peer(REGISTRAR));
    kit.connection_lost(Peer {
        transport: Transport::Tcp,
        addr: "198.51.100.1:40000".parse().unwrap(),
    });
    assert!(registrar.requests(&mut kit).is_empty());
}

/// A call from `addr` asserting `+46706170786`; its record says whether it was believed.
fn asserted_call_from(kit: &mut Kit, id: &str, addr: &str) -> bool {
    let mut caller = Caller::phone(id, "+46700000009")
        .at(addr)
        .header("P-Asserted-Identity: <sip:+46706170786@carrier.example>");
    caller.invite(kit);
    caller.ack(kit);
    caller.bye(kit);
    let rec = kit.record(id);
    assert_eq!(
        rec.caller,
        if rec.verified {
            "+46706170786"
        } else {
            "+46700000009"
        }
    );
    rec.verified
}

#[test]
fn rfc3325_a_trusted_trunk_s_registrar_is_a_trusted_peer_and_an_untrusted_one_s_is_not() {
    let mut trusted = carrier();
    trusted.trusted = true;
    let mut kit = kit(vec![trusted]);
    assert!(asserted_call_from(&mut kit, "t1", REGISTRAR));
    assert!(!asserted_call_from(&mut kit, "t2", "198.51.100.2:5060"));
    let mut kit = self::kit(vec![carrier()]);
    assert!(!asserted_call_from(&mut kit, "t3", REGISTRAR));
}

#[test]
fn rfc3325_a_trusted_trunk_s_located_addresses_are_trusted_and_a_reload_withdraws_them() {
    let mut named = trunk("carrier", "sip:registrar.carrier.test");
    named.trusted = true;
    let mut kit = kit(vec![named.clone()]);
    kit.resolved(Ok(vec![
        testkit::peer("203.0.113.8:5060"),
        testkit::peer("203.0.113.9:5060"),
    ]));
    assert!(asserted_call_from(&mut kit, "n1", "203.0.113.9:5060"));
    named.trusted = false;
    kit.set_program(program(None, vec![named]));
    assert!(!asserted_call_from(&mut kit, "n2", "203.0.113.9:5060"));
}

#[test]
fn an_ipv6_registrar_is_given_our_ipv6_contact() {
    let mut v6 = trunk("carrier", "sip:[2001:db8::1]:5070");
    v6.registration.contact_v6 =
        Some(SipUri::parse("sip:ivr@[2001:db8::10]:5060").expect("a SIP URI"));
    let mut kit = kit(vec![v6]);
    let reg = Registrar::at("[2001:db8::1]:5070").register(&mut kit);
    assert_eq!(
        reg.header(&HeaderName::CONTACT),
        Some("<sip:ivr@[2001:db8::10]:5060>")
    );
}

#[test]
fn a_403_stops_the_trunk_and_the_report_says_why() {
    let mut kit = kit(vec![carrier()]);
    let registrar = Registrar::at(REGISTRAR);
    let reg = registrar.register(&mut kit);
    registrar.reply(&mut kit, &reg, 403, "");
    assert!(matches!(
        state_of(&kit, "carrier"),
        Some(StatusState::Failed { .. })
    ));
    kit.advance(Duration::from_secs(3600));
    assert!(registrar.requests(&mut kit).is_empty(), "never again");
    let shown = format!("{:?}", kit.trunk_reports);
    assert!(!shown.contains(testkit::trunk::PASSWORD), "{shown}");
}
