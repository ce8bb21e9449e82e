//! Transfers through a registered trunk in virtual time (issue 23): a bridge to
//! `sip:USER@trunk:NAME` is called at the registrar's domain through the trunk's
//! Service-Route, else its outbound proxy, else the registrar itself; the trunk's
//! challenge is answered with the trunk's credentials; a 302 names the registrar's
//! domain; a trunk a reload removed fails the transfer into the flow's `failed` exit.

use concierge_b2bua::Trunk;
use concierge_sip::digest::Challenge;
use concierge_sip::wire::{HeaderName, Request, SipUri};

mod testkit;

use testkit::trunk::{carrier, program, Registrar, PASSWORD, REGISTRAR};
use testkit::{Caller, Desk, Kit};

/// A flow that transfers every call to `+4699` through `carrier` by `mode`; a failed
/// transfer hangs up.
fn flow(mode: &str, target: &str) -> String {
    format!(
        "start = \"out\"\n[nodes.out]\ntype = \"transfer\"\ntarget = \"{target}\"\nmode = \"{mode}\"\nfailed = \"sorry\"\n[nodes.sorry]\ntype = \"hangup\"\n"
    )
}

/// A switch running `flow` with `trunk`, registered (the registrar's 200 carrying
/// `extra`), and an answered call whose flow has started its transfer.
fn transferring(flow: &str, trunk: Trunk, extra: &str) -> (Kit, Caller) {
    let mut kit = Kit::with(testkit::config(), program(Some(flow), vec![trunk]));
    let registrar = Registrar::at(REGISTRAR);
    let reg = registrar.register(&mut kit);
    registrar.bind(&mut kit, &reg, 600, extra);
    let mut caller = Caller::phone("c1", "+46700000001");
    caller.invite(&mut kit);
    caller.ack(&mut kit);
    (kit, caller)
}

fn invite_at(kit: &mut Kit, addr: &str) -> Request {
    let mut desk = Desk::at(addr);
    desk.inbox(kit);
    desk.invite
        .unwrap_or_else(|| panic!("an INVITE to {addr}: {:?}", kit.sip))
}

fn routes(r: &Request) -> Vec<String> {
    r.headers
        .get_all(&HeaderName::ROUTE)
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_bridge_to_a_trunk_target_calls_the_user_at_the_registrar_s_domain_on_the_registrar() {
    let (mut kit, _) = transferring(
        &flow("bridge", "sip:+4699@trunk:carrier;user=phone"),
        carrier(),
        "",
    );
    let invite = invite_at(&mut kit, REGISTRAR);
    assert_eq!(invite.uri.as_str(), "sip:+4699@198.51.100.1;user=phone");
    assert!(
        routes(&invite).is_empty(),
        "the registrar is the next hop itself"
    );
}

#[test]
fn rfc3608_the_service_route_of_the_registration_is_the_leg_s_route_set() {
    let extra = "Service-Route: <sip:orig@203.0.113.20:5099;lr>\r\nService-Route: <sip:core.carrier.test;lr>\r\n";
    let (mut kit, _) = transferring(&flow("bridge", "sip:+4699@trunk:carrier"), carrier(), extra);
    let invite = invite_at(&mut kit, "203.0.113.20:5099");
    assert_eq!(invite.uri.as_str(), "sip:+4699@198.51.100.1");
    assert_eq!(
        routes(&invite),
        [
            "<sip:orig@203.0.113.20:5099;lr>",
            "<sip:core.carrier.test;lr>"
        ]
    );
}

#[test]
fn rfc3261_8_1_2_without_a_service_route_the_trunk_s_outbound_proxy_is_the_route() {
    let mut trunk = carrier();
    trunk.registration.outbound_proxy = Some(SipUri::parse("sip:203.0.113.30:5080").unwrap());
    let mut kit = Kit::with(
        testkit::config(),
        program(
            Some(&flow("bridge", "sip:+4699@trunk:carrier")),
            vec![trunk],
        ),
    );
    // The REGISTER itself goes through the proxy.
    let proxy = Registrar::at("203.0.113.30:5080");
    let reg = proxy.register(&mut kit);
    proxy.bind(&mut kit, &reg, 600, "");
    let mut caller = Caller::phone("c1", "+46700000001");
    caller.invite(&mut kit);
    caller.ack(&mut kit);
    let invite = invite_at(&mut kit, "203.0.113.30:5080");
    assert_eq!(invite.uri.as_str(), "sip:+4699@198.51.100.1");
    assert_eq!(routes(&invite), ["<sip:203.0.113.30:5080;lr>"]);
}

#[test]
fn rfc3261_22_3_the_trunk_s_challenge_is_answered_with_the_trunk_s_credentials() {
    let (mut kit, _) = transferring(&flow("bridge", "sip:+4699@trunk:carrier"), carrier(), "");
    let invite = invite_at(&mut kit, REGISTRAR);
    let challenge = "Digest realm=\"carrier.test\", nonce=\"n0nce\", qop=\"auth\", algorithm=MD5";
    let registrar = Registrar::at(REGISTRAR);
    registrar.reply(
        &mut kit,
        &invite,
        407,
        &format!("Proxy-Authenticate: {challenge}\r\n"),
    );
    let again = registrar
        .requests(&mut kit)
        .into_iter()
        .find(|r| r.method.as_str() == "INVITE")
        .expect("the INVITE again");
    let line = again
        .header(&HeaderName::PROXY_AUTHORIZATION)
        .expect("credentials")
        .to_owned();
    assert!(line.contains("username=\"acct-17\""), "{line}");
    let cnonce = line
        .split("cnonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a cnonce");
    let expected = Challenge::parse(challenge).unwrap().answer(
        "acct-17",
        PASSWORD,
        "INVITE",
        again.uri.as_str(),
        cnonce,
        1,
    );
    assert_eq!(
        line, expected,
        "the trunk's password answered the challenge"
    );
    assert!(!format!("{:?}", kit.records).contains(PASSWORD));
}

#[test]
fn rfc3261_21_3_3_a_redirect_through_a_trunk_names_the_registrar_s_domain() {
    let mut kit = Kit::with(
        testkit::config(),
        program(
            Some(&flow("redirect", "sip:+4699@trunk:carrier")),
            vec![carrier()],
        ),
    );
    Registrar::at(REGISTRAR).registers(&mut kit);
    let mut caller = Caller::phone("c1", "+46700000001");
    let out = caller.invite(&mut kit);
    let moved = testkit::find_response(&out, 302);
    assert_eq!(
        moved.header(&HeaderName::CONTACT),
        Some("<sip:+4699@198.51.100.1>")
    );
}

#[test]
fn a_transfer_through_a_trunk_a_reload_removed_takes_the_failed_exit() {
    let mut kit = Kit::with(
        testkit::config(),
        program(
            Some(&flow("bridge", "sip:+4699@trunk:carrier")),
            vec![carrier()],
        ),
    );
    Registrar::at(REGISTRAR).registers(&mut kit);
    let mut caller = Caller::phone("c1", "+46700000001");
    caller.invite(&mut kit);
    // The call's flow keeps its program; the trunk goes with the reload. The bridge
    // waits for the media, so it starts after the reload.
    kit.set_program(program(None, Vec::new()));
    let out = caller.ack(&mut kit);
    let bye = testkit::find_request(&out, "BYE");
    caller.reply(&mut kit, &bye, 200);
    let rec = kit.record("c1");
    let transfer = rec.transfer.as_ref().expect("a transfer record");
    assert_eq!(
        transfer.result.to_string(),
        "failed: no trunk named \"carrier\" is configured"
    );
    assert_eq!(testkit::path(rec), "out(failed) > sorry(-)");
}

#[test]
fn a_bridge_with_a_trunk_and_a_target_of_its_own_keeps_the_target_s_host() {
    let text = "start = \"out\"\n[nodes.out]\ntype = \"transfer\"\ntarget = \"sip:+4699@sbc.carrier.test\"\ntrunk = \"carrier\"\nmode = \"bridge\"\n";
    let (mut kit, _) = transferring(text, carrier(), "");
    let invite = invite_at(&mut kit, REGISTRAR);
    assert_eq!(invite.uri.as_str(), "sip:+4699@sbc.carrier.test");
}
