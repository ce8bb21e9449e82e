//! The calls' events for the live console (`SwitchConfig::call_events`) in virtual time:
//! a call arrives, its flow's nodes are entered in order, a transfer goes out (the desk's
//! widget pops up with the REFER, not with the outcome) and settles, the call ends — and
//! with the switch off, a call emits none of it.

mod testkit;

use concierge_b2bua::{
    CallEvent, CallEventKind, Outcome, SwitchConfig, TransferMode, TransferResult,
};
use concierge_flow::Recognition;
use concierge_sip::wire::Transport;
use testkit::vip::*;
use testkit::*;

fn events_on() -> SwitchConfig {
    SwitchConfig {
        call_events: true,
        ..config()
    }
}

/// What the CRM says about the VIP: the name, tier and ID the flow saves for the widget.
fn astrid() -> String {
    format!(
        r#"{{"customer": {{"number": "{VIP_NUMBER}", "name": "Astrid Lindqvist", "hasVIPMembership": true, "tier": "gold", "customerId": "7001"}}}}"#
    )
}

/// The events of call `call_id`, as short words: `arrived`, `node lookup`, `transferred
/// vip-desk by refer`, `transfer succeeded`, `ended transferred`.
fn story(kit: &Kit, call_id: &str) -> Vec<String> {
    of(kit, call_id)
        .map(|e| match &e.kind {
            CallEventKind::Arrived(_) => "arrived".to_owned(),
            CallEventKind::NodeEntered { node, .. } => format!("node {node}"),
            CallEventKind::Transferred(t) => format!(
                "transferred {} by {}",
                t.desk.as_deref().unwrap_or("-"),
                t.mode.as_str()
            ),
            CallEventKind::TransferEnded(result) => format!("transfer {result}"),
            CallEventKind::Ended { outcome } => format!("ended {}", outcome.as_str()),
        })
        .collect()
}

fn of<'a>(kit: &'a Kit, call_id: &'a str) -> impl Iterator<Item = &'a CallEvent> {
    kit.events.iter().filter(move |e| e.call_id == call_id)
}

/// The transfer of call `call_id` that went out last.
fn transfer(kit: &Kit, call_id: &str) -> concierge_b2bua::Transfer {
    of(kit, call_id)
        .filter_map(|e| match &e.kind {
            CallEventKind::Transferred(t) => Some(t.clone()),
            _ => None,
        })
        .last()
        .expect("a transfer went out")
}

/// A VIP through the trusted carrier, found by the CRM, its REFER to the VIP desk out.
fn vip_refer(kit: &mut Kit, call_id: &str) -> (Caller, concierge_sip::wire::Request) {
    let mut c = Caller::carrier(call_id, VIP_NUMBER);
    c.invite(kit);
    kit.http_reply(200, &astrid());
    c.inbox(kit);
    c.ack(kit);
    let refer = refer_after_prompt(kit, &mut c);
    (c, refer)
}

#[test]
fn a_vip_arrives_walks_the_flow_is_transferred_and_ends_in_that_order() {
    let mut kit = Kit::vip_with(events_on());
    let (mut c, refer) = vip_refer(&mut kit, "vip");
    let out = accept_transfer(&mut kit, &mut c, &refer);
    c.reply(&mut kit, &find_request(&out, "BYE"), 200);
    assert_eq!(
        story(&kit, "vip"),
        [
            "arrived",
            "node lookup",
            "node is_vip",
            "node is_verified",
            "node verstat_ok",
            "node vip_by_number",
            "node fast_track",
            "transferred vip-desk by refer",
            "transfer succeeded",
            "ended transferred",
        ]
    );
    assert_eq!(kit.record("vip").outcome, Outcome::Transferred);
}

#[test]
fn the_arrival_says_who_calls_over_what_and_which_flow_runs() {
    let mut kit = Kit::vip_with(events_on());
    Caller::carrier("who", VIP_NUMBER).invite(&mut kit);
    let CallEventKind::Arrived(a) = &kit.events[0].kind else {
        panic!("the first event is the arrival: {:?}", kit.events[0]);
    };
    assert_eq!(
        (a.caller.as_str(), a.verified, a.private, a.called.as_str()),
        (VIP_NUMBER, true, false, "ivr")
    );
    assert_eq!(a.flow.as_deref(), Some("vip"));
    assert_eq!((a.transport, a.srtp), (Transport::Udp, false));
    assert_eq!(kit.events[0].at, kit.now);
}

#[test]
fn the_widget_s_transfer_event_goes_out_with_the_refer_before_any_outcome() {
    let mut kit = Kit::vip_with(events_on());
    let (_c, _refer) = vip_refer(&mut kit, "popup");
    let refer_at = kit
        .request_sent_at(caller_addr(), "REFER")
        .expect("the REFER went out");
    let last = kit.events.last().expect("events");
    assert_eq!(last.at, refer_at, "told in the turn the REFER left");
    let CallEventKind::Transferred(t) = &last.kind else {
        panic!("the REFER's event is the transfer: {last:?}");
    };
    assert_eq!(t.node, "fast_track");
    assert_eq!(t.target, vip_desk(), "without the URI headers");
    assert_eq!(
        (t.desk.as_deref(), t.mode, t.recognised),
        (
            Some("vip-desk"),
            TransferMode::Refer,
            Some(Recognition::Number)
        )
    );
    let widget: Vec<(&str, &str)> = t
        .widget
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        widget,
        [
            ("customer.name", "Astrid Lindqvist"),
            ("customer.tier", "gold"),
            ("customer.id", "7001"),
            ("tier", "member"),
        ]
    );
}

#[test]
fn a_code_caller_s_transfer_shows_the_widget_and_no_event_carries_the_code() {
    let mut kit = Kit::vip_with(events_on());
    let mut c = unknown_at_keypad(&mut kit, "code");
    c.keys(&mut kit, "202020");
    refer_after_prompt(&mut kit, &mut c);
    let t = transfer(&kit, "code");
    assert_eq!(t.node, "transfer_vip");
    assert_eq!(t.recognised, Some(Recognition::Code));
    assert_eq!(t.widget, [("tier".to_owned(), "silver".to_owned())]);
    assert!(
        !format!("{:?}", kit.events).contains("202020"),
        "the secret code is in an event"
    );
}

#[test]
fn a_caller_waiting_at_the_code_prompt_was_last_seen_entering_it() {
    let mut kit = Kit::vip_with(events_on());
    unknown_at_keypad(&mut kit, "waiting");
    assert_eq!(
        story(&kit, "waiting"),
        ["arrived", "node lookup", "node welcome", "node ask_code"]
    );
    // A keypad asking again is the same visit.
    kit.advance_ms(5_100);
    assert_eq!(story(&kit, "waiting").len(), 4);
}

#[test]
fn a_refused_refer_settles_as_failed_and_the_bridge_goes_out_next() {
    let mut kit = Kit::vip_with(events_on());
    let (mut c, refer) = vip_refer(&mut kit, "fallback");
    c.reply(&mut kit, &refer, 403);
    let mut desk = Desk::ours();
    desk.inbox(&mut kit);
    desk.reply(&mut kit, 200);
    let told = story(&kit, "fallback");
    assert_eq!(
        told[told.len() - 4..],
        [
            "transferred vip-desk by refer",
            "transfer failed: REFER rejected with 403",
            "transferred vip-desk by bridge",
            "transfer answered (after REFER rejected with 403)",
        ]
    );
    assert_eq!(
        transfer(&kit, "fallback").widget.len(),
        4,
        "the widget again"
    );
}

#[test]
fn a_caller_gone_before_the_transfer_settles_ends_without_a_result() {
    let mut kit = Kit::vip_with(events_on());
    let (mut c, _refer) = vip_refer(&mut kit, "gone");
    c.bye(&mut kit);
    let told = story(&kit, "gone");
    assert_eq!(
        told[told.len() - 2..],
        ["transferred vip-desk by refer", "ended hung_up"]
    );
    let record = kit.record("gone");
    assert!(matches!(
        record.transfer.as_ref().map(|t| &t.result),
        Some(TransferResult::Abandoned(_))
    ));
}

#[test]
fn a_target_from_the_environment_is_redacted_and_names_no_desk() {
    let flow = r#"
start = "xfer"
[nodes.xfer]
type = "transfer"
target = "sip:${DESK}@192.0.2.20"
mode = "bridge"
failed = "bye"
[nodes.bye]
type = "hangup"
"#;
    let desk_from_env = concierge_b2bua::Program {
        env: concierge_flow::Environment::from_pairs([("DESK", "s3cret-desk")]),
        ..testkit::program(flow)
    };
    let mut kit = Kit::with(events_on(), desk_from_env);
    let mut c = Caller::phone("env", "+46700000001");
    c.invite(&mut kit);
    c.inbox(&mut kit);
    c.ack(&mut kit);
    let t = transfer(&kit, "env");
    assert_eq!((t.target.as_str(), t.desk), ("<redacted>", None));
    assert!(!format!("{:?}", kit.events).contains("s3cret"));
}

#[test]
fn a_call_refused_before_its_flow_arrives_and_ends_with_nothing_between() {
    let mut kit = Kit::vip_with(SwitchConfig {
        rtp_ports: (20_000, 20_002),
        ..events_on()
    });
    kit.held_ports = vec![20_000];
    Caller::carrier("unbound", VIP_NUMBER).invite(&mut kit);
    assert_eq!(story(&kit, "unbound"), ["arrived", "ended refused"]);
}

#[test]
fn with_events_off_a_whole_call_emits_none() {
    let mut kit = Kit::vip();
    let (mut c, refer) = vip_refer(&mut kit, "quiet");
    let out = accept_transfer(&mut kit, &mut c, &refer);
    c.reply(&mut kit, &find_request(&out, "BYE"), 200);
    assert!(kit.ended("quiet"));
    assert!(kit.events.is_empty(), "{:?}", kit.events);
}

/// Where [`Caller::carrier`] sends from.
fn caller_addr() -> std::net::SocketAddr {
    CARRIER.parse().expect("an address")
}
