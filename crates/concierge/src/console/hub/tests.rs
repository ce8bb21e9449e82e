//! The hub as the pages read it: records fill the recent calls, today's counts and the
//! desks' cards; events list the calls in progress at their node and pop a desk's card up
//! at the transfer, completed by its result; everything stays bounded.

use std::sync::Arc;
use std::time::Instant;

use concierge_b2bua::{
    Arrival, CallEvent, CallEventKind, CallRecord, Outcome, Program, Transfer, TransferFailure,
    TransferResult,
};
use concierge_flow::{Recognition, TransferMode};
use concierge_sip::wire::{StatusCode, Transport};

use super::*;
use crate::console::card::tests::{vip_flow, vip_record};
use crate::console::card::Source;

fn hub() -> Arc<Hub> {
    let hub = Hub::new();
    hub.install(&Program {
        default_flow: Some(vip_flow()),
        ..Program::default()
    });
    hub
}

/// A record that ended now (today's counts are of the current UTC day).
fn today(mut r: CallRecord) -> CallRecord {
    let now = wall_now_ms();
    r.arrived_ms = now - 2_000;
    r.transfer.as_mut().unwrap().started_ms = Some(now - 500);
    r.ended_ms = now;
    r
}

fn event(call_id: &str, kind: CallEventKind) -> CallEvent {
    CallEvent {
        call_id: call_id.into(),
        at: Instant::now(),
        kind,
    }
}

fn arrived(hub: &Hub, call_id: &str) {
    hub.event(&event(
        call_id,
        CallEventKind::Arrived(Arrival {
            caller: "+46706170786".into(),
            verified: true,
            private: false,
            called: "ivr".into(),
            flow: Some("vip".into()),
            transport: Transport::Tls,
            srtp: true,
        }),
    ));
}

fn entered(hub: &Hub, call_id: &str, nodes: &[&str]) {
    for node in nodes {
        hub.event(&event(
            call_id,
            CallEventKind::NodeEntered {
                flow: "vip".into(),
                node: (*node).into(),
            },
        ));
    }
}

fn transferred(hub: &Hub, call_id: &str, name: &str) {
    hub.event(&event(
        call_id,
        CallEventKind::Transferred(Transfer {
            node: "fast_track".into(),
            target: "sip:vip-desk@127.0.0.1".into(),
            desk: Some("vip-desk".into()),
            mode: TransferMode::Refer,
            widget: vec![
                ("customer.name".into(), name.into()),
                ("customer.tier".into(), "gold".into()),
            ],
            recognised: Some(Recognition::Number),
        }),
    ));
}

fn ended(hub: &Hub, call_id: &str, outcome: Outcome) {
    hub.event(&event(call_id, CallEventKind::Ended { outcome }));
}

fn here(view: &ConsoleView, node: &str) -> Option<u64> {
    view.here.get(&("vip".to_owned(), node.to_owned())).copied()
}

#[test]
fn records_fill_recent_calls_today_s_counts_and_the_desk_s_card() {
    let hub = hub();
    let changed = hub.subscribe();
    hub.record(&today(vip_record("c1", "Astrid Lindqvist")));
    assert!(changed.has_changed().unwrap());
    let mut hung_up = today(vip_record("c2", "Björn"));
    hung_up.outcome = Outcome::HungUp;
    hub.record(&hung_up);
    let view = hub.console_view(&Filter::default(), 10, 10);
    assert_eq!(view.rows.len(), 2);
    assert_eq!(view.rows[0].call_id, "c2", "newest first");
    assert_eq!(view.today.calls, 2);
    assert_eq!(view.today.outcomes["transferred"], 1);
    let at = |node: &str| view.today.nodes[&("vip".to_owned(), node.to_owned())];
    assert_eq!(
        (at("lookup"), at("fast_track"), at("transferred")),
        (2, 2, 1)
    );
    let (card, _) = hub.card(Some("vip-desk")).expect("the desk's card");
    assert_eq!(card.name.as_deref(), Some("Astrid Lindqvist"));
    assert_eq!(card.result.as_deref(), Some("succeeded"));
    assert_eq!(hub.card(None).unwrap().0.call_id, "c1");
    assert_eq!(hub.card_of_call("c1").unwrap().desk, "vip-desk");
    assert!(hub.card(Some("service-desk")).is_none());
}

#[test]
fn filters_pick_outcome_vip_and_desk() {
    let hub = hub();
    hub.record(&today(vip_record("vip", "A")));
    let mut other = today(vip_record("other", "B"));
    other.outcome = Outcome::Failed;
    hub.record(&other);
    let rows = |f: Filter| {
        hub.console_view(&f, 10, 10)
            .rows
            .iter()
            .map(|r| r.call_id.clone())
            .collect::<Vec<_>>()
    };
    let f = |o: &str, v: &str, t: &str| Filter {
        outcome: Some(o.into()),
        vip: Some(v.into()),
        to: Some(t.into()),
    };
    assert_eq!(rows(f("transferred", "", "")), ["vip"]);
    assert_eq!(rows(f("", "no", "")), ["other"]);
    assert_eq!(rows(f("", "yes", "vip-desk")), ["vip"]);
    assert_eq!(rows(f("", "", "service-desk")), Vec::<String>::new());
    assert_eq!(rows(Filter::default()), ["other", "vip"]);
}

#[test]
fn memory_is_bounded_records_and_desks() {
    let hub = hub();
    for i in 0..MAX_RECORDS + 20 {
        let mut r = today(vip_record(&format!("c{i}"), "A"));
        r.transfer.as_mut().unwrap().target = format!("sip:desk{}@x", i % (MAX_DESKS + 5));
        hub.record(&r);
    }
    let state = hub.lock();
    assert_eq!(state.records.len(), MAX_RECORDS);
    assert_eq!(state.records.front().unwrap().call_id, "c20");
    assert!(state.desks.len() <= MAX_DESKS && state.cards.len() <= MAX_RECORDS);
}

#[test]
fn events_show_calls_in_progress_at_their_node_and_drop_them_at_the_end() {
    let hub = hub();
    arrived(&hub, "live1");
    entered(&hub, "live1", &["lookup", "is_vip", "fast_track"]);
    let view = hub.console_view(&Filter::default(), 10, 10);
    assert_eq!(view.live.len(), 1);
    assert_eq!(view.live[0].node.as_deref(), Some("fast_track"));
    assert!(view.live[0].srtp);
    assert_eq!(here(&view, "fast_track"), Some(1));
    assert_eq!(here(&view, "lookup"), None, "it left");
    ended(&hub, "live1", Outcome::HungUp);
    let view = hub.console_view(&Filter::default(), 10, 10);
    assert!(view.live.is_empty() && view.here.is_empty());
}

#[test]
fn the_card_pops_up_at_the_transfer_is_completed_by_its_result_and_stays_after_the_call() {
    let hub = hub();
    arrived(&hub, "live1");
    entered(&hub, "live1", &["lookup", "fast_track"]);
    transferred(&hub, "live1", "Astrid Lindqvist");
    let (card, popped) = hub.card(Some("vip-desk")).expect("popped up");
    assert_eq!(card.source, Source::Event);
    assert_eq!(card.name.as_deref(), Some("Astrid Lindqvist"));
    assert_eq!(card.tier.as_deref(), Some("gold"));
    assert_eq!(card.path, ["lookup", "fast_track"]);
    assert_eq!(card.result, None, "under way");
    hub.event(&event(
        "live1",
        CallEventKind::TransferEnded(TransferResult::Succeeded),
    ));
    let (card, settled) = hub.card(Some("vip-desk")).unwrap();
    assert_eq!(card.result.as_deref(), Some("succeeded"));
    assert!(settled > popped, "set again: the page shows it again");
    ended(&hub, "live1", Outcome::Transferred);
    // The record completes it with the whole path; the card stays until the next call.
    let record = today(vip_record("live1", "Astrid Lindqvist"));
    hub.record(&record);
    let (card, _) = hub.card(Some("vip-desk")).unwrap();
    assert_eq!(
        (card.call_id.as_str(), card.source),
        ("live1", Source::Record)
    );
    arrived(&hub, "next");
    transferred(&hub, "next", "Björn");
    assert_eq!(hub.card(Some("vip-desk")).unwrap().0.call_id, "next");
}

#[test]
fn a_failed_transfer_and_a_call_that_ends_mid_transfer_say_so_on_the_card() {
    let hub = hub();
    arrived(&hub, "refused");
    transferred(&hub, "refused", "A");
    let rejected = TransferFailure::ReferRejected(StatusCode(603));
    hub.event(&event(
        "refused",
        CallEventKind::TransferEnded(TransferResult::Failed(rejected)),
    ));
    let result = |hub: &Hub| hub.card(Some("vip-desk")).unwrap().0.result.clone();
    assert_eq!(
        result(&hub).as_deref(),
        Some("failed: REFER rejected with 603")
    );
    arrived(&hub, "gone");
    transferred(&hub, "gone", "B");
    ended(&hub, "gone", Outcome::HungUp);
    assert_eq!(
        result(&hub).as_deref(),
        Some("the call ended first (hung_up)")
    );
}

#[test]
fn a_late_record_does_not_replace_the_next_call_s_card() {
    let hub = hub();
    arrived(&hub, "next");
    transferred(&hub, "next", "Björn");
    // The record of a call transferred before "next" arrives after its transfer event.
    let mut earlier = vip_record("earlier", "Astrid");
    earlier.transfer.as_mut().unwrap().started_ms = Some(1);
    hub.record(&earlier);
    assert_eq!(hub.card(Some("vip-desk")).unwrap().0.call_id, "next");
}

#[test]
fn calls_the_switch_no_longer_has_are_dropped_at_the_resync() {
    let hub = hub();
    for id in ["kept", "lost"] {
        arrived(&hub, id);
        entered(&hub, id, &["ask_code"]);
    }
    hub.resync(|id| id == "kept");
    let view = hub.console_view(&Filter::default(), 10, 10);
    let listed: Vec<&str> = view.live.iter().map(|c| c.call_id.as_str()).collect();
    assert_eq!(listed, ["kept"]);
    assert_eq!(here(&view, "ask_code"), Some(1));
    // Not again until it is due: a call gone since stays listed until then.
    hub.resync(|_| false);
    assert_eq!(hub.console_view(&Filter::default(), 10, 10).live_total, 1);
}

#[test]
fn calls_in_progress_are_bounded() {
    let hub = hub();
    for i in 0..MAX_LIVE + 3 {
        arrived(&hub, &format!("c{i}"));
    }
    assert_eq!(hub.lock().live.len(), MAX_LIVE);
}

#[test]
fn a_status_section_shows_what_is_reported_to_it() {
    let hub = hub();
    assert_eq!(
        hub.console_view(&Filter::default(), 1, 1).status["Trunks"],
        []
    );
    let line = StatusLine {
        name: "carrier-a".into(),
        state: "registered".into(),
        ok: true,
    };
    hub.set_status("Trunks", vec![line.clone()]);
    assert_eq!(
        hub.console_view(&Filter::default(), 1, 1).status["Trunks"],
        [line]
    );
}
