//! Hanging up at every step of the reference VIP flow, the races of CANCEL with our
//! answer, and a draining switch — each in virtual time, each leaving one record and no
//! port behind.

mod testkit;

use std::time::Duration;

use concierge_sip::wire::HeaderName;
use testkit::vip::*;
use testkit::*;

/// The call ended by its caller: one record, no port left, no call left.
fn assert_ended_by_caller(kit: &Kit, call_id: &str, reason: &str) {
    let rec = kit.record(call_id);
    assert_eq!(
        (rec.ended_by.as_str(), rec.reason.as_str()),
        ("caller", reason)
    );
    assert_eq!(
        kit.records.iter().filter(|r| r.call_id == call_id).count(),
        1
    );
    assert!(
        kit.open_ports.is_empty(),
        "ports left open: {:?}",
        kit.open_ports
    );
    assert_eq!(kit.call_count(), 0);
}

#[test]
fn a_caller_cancelling_while_the_lookup_runs_gets_487() {
    let mut kit = Kit::vip();
    let mut c = Caller::carrier("cancel", VIP_NUMBER);
    c.invite(&mut kit);
    let out = c.cancel(&mut kit);
    assert_eq!(answers(&out), vec!["200 CANCEL", "487 INVITE"]);
    c.ack_error(&mut kit);
    assert_ended_by_caller(&kit, "cancel", "cancelled before the answer");
    let rec = kit.record("cancel");
    assert_eq!((rec.outcome.as_str(), rec.answered_ms), ("hung_up", None));
    assert_eq!(path(rec), "lookup(-)");
}

#[test]
fn a_crm_answer_after_the_cancel_changes_nothing() {
    let mut kit = Kit::vip();
    let mut c = Caller::carrier("cancel2", VIP_NUMBER);
    c.invite(&mut kit);
    c.cancel(&mut kit);
    c.ack_error(&mut kit);
    kit.http_reply(200, &customer(VIP_NUMBER, true, "gold"));
    kit.advance_ms(500);
    assert!(c.inbox(&mut kit).is_empty(), "no answer, no REFER");
    assert_eq!(kit.records.len(), 1);
}

#[test]
fn a_caller_hanging_up_during_the_comfort_audio_ends_the_call() {
    let mut kit = Kit::vip();
    let mut c = Caller::carrier("comfort", VIP_NUMBER);
    c.invite(&mut kit);
    kit.advance_ms(1000);
    c.inbox(&mut kit);
    c.ack(&mut kit);
    kit.advance_ms(500);
    let out = c.bye(&mut kit);
    assert_eq!(answers(&out), vec!["200 BYE"]);
    let hung_up = kit.now;
    kit.advance_ms(200);
    assert!(
        kit.rtp_to(c.media, hung_up + Duration::from_millis(1))
            .is_empty(),
        "silence after the BYE"
    );
    assert_ended_by_caller(&kit, "comfort", "hung up");
    let rec = kit.record("comfort");
    assert!(rec.http.is_empty(), "the lookup never finished");
    assert!(rec.answered_ms.is_some());
}

#[test]
fn a_caller_hanging_up_during_the_welcome_ends_the_call() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_welcome(&mut kit, "welcome");
    kit.advance_ms(40);
    assert_eq!(answers(&c.bye(&mut kit)), vec!["200 BYE"]);
    assert_ended_by_caller(&kit, "welcome", "hung up");
    assert_eq!(path(kit.record("welcome")), "lookup(failure) > welcome(-)");
}

#[test]
fn a_caller_hanging_up_mid_code_leaves_the_keys_masked_and_no_code() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "midcode");
    c.keys(&mut kit, "101");
    assert_eq!(answers(&c.bye(&mut kit)), vec!["200 BYE"]);
    assert_ended_by_caller(&kit, "midcode", "hung up");
    let rec = kit.record("midcode");
    assert_eq!(rec.digits, vec![('*', "rfc4733"); 3]);
    assert_eq!(var(rec, "securityCode"), None);
    assert!(path(rec).ends_with("ask_code(-)"));
}

#[test]
fn a_caller_hanging_up_after_the_code_before_the_refer_gets_no_refer() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "prerefer");
    c.keys(&mut kit, "101010");
    kit.advance_ms(20);
    assert_eq!(answers(&c.bye(&mut kit)), vec!["200 BYE"]);
    kit.advance_ms(500);
    assert!(
        methods(&c.inbox(&mut kit)).is_empty(),
        "no REFER after the BYE"
    );
    assert_ended_by_caller(&kit, "prerefer", "hung up");
    let rec = kit.record("prerefer");
    assert_eq!(rec.transfer, None);
    assert!(path(rec).ends_with("gold(next) > transfer_vip(-)"));
}

#[test]
fn a_caller_hanging_up_while_the_refer_is_pending_ends_the_call_without_our_bye() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "pending");
    c.keys(&mut kit, "101010");
    let refer = refer_after_prompt(&mut kit, &mut c);
    c.reply(&mut kit, &refer, 202);
    c.notify(&mut kit, "SIP/2.0 100 Trying", "active;expires=60");
    let out = c.bye(&mut kit);
    assert_eq!(answers(&out), vec!["200 BYE"]);
    kit.advance(Duration::from_secs(35));
    assert!(methods(&c.inbox(&mut kit)).is_empty(), "no BYE, no bridge");
    assert!(Desk::ours().inbox(&mut kit).is_empty());
    assert_ended_by_caller(&kit, "pending", "hung up");
}

#[test]
fn a_refer_accepted_but_never_concluded_is_in_the_record_with_an_unknown_result() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "unconcluded");
    c.keys(&mut kit, "101010");
    let refer = refer_after_prompt(&mut kit, &mut c);
    c.reply(&mut kit, &refer, 202);
    c.bye(&mut kit);
    let rec = kit.record("unconcluded");
    let t = rec
        .transfer
        .as_ref()
        .expect("the transfer attempt is recorded");
    assert_eq!(
        (
            t.mode,
            t.target.as_str(),
            t.result.to_string().as_str(),
            rec.outcome.as_str()
        ),
        (
            concierge_b2bua::TransferMode::Refer,
            refer_to(&refer).trim_matches(['<', '>']),
            "unknown: the call ended before the final NOTIFY",
            "hung_up"
        )
    );
}

#[test]
fn a_refer_the_caller_never_answered_is_recorded_as_abandoned() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "unanswered");
    c.keys(&mut kit, "101010");
    refer_after_prompt(&mut kit, &mut c);
    c.bye(&mut kit);
    let t = kit.record("unanswered").transfer.clone().expect("recorded");
    assert_eq!(
        t.result.to_string(),
        "abandoned: the call ended before the REFER was answered"
    );
}

#[test]
fn a_bridge_leg_still_ringing_when_the_caller_hangs_up_is_recorded_as_abandoned() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "legabandoned");
    c.keys(&mut kit, "202020");
    let refer = refer_after_prompt(&mut kit, &mut c);
    c.reply(&mut kit, &refer, 403);
    let mut desk = Desk::ours();
    desk.inbox(&mut kit);
    desk.reply(&mut kit, 180);
    c.bye(&mut kit);
    let t = kit
        .record("legabandoned")
        .transfer
        .clone()
        .expect("recorded");
    assert_eq!(
        (t.mode, t.result.to_string().as_str()),
        (
            concierge_b2bua::TransferMode::Bridge,
            "abandoned: the call ended while the target rang"
        ),
        "the bridge attempt, not the REFER that failed before it"
    );
}

#[test]
fn a_caller_hanging_up_during_the_goodbye_after_failed_transfers_is_recorded_as_failed() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "goodbye");
    c.keys(&mut kit, "101010");
    let refer = refer_after_prompt(&mut kit, &mut c);
    c.reply(&mut kit, &refer, 403);
    let mut desk = Desk::ours();
    desk.inbox(&mut kit);
    desk.reply(&mut kit, 486);
    kit.advance_ms(20);
    assert_eq!(answers(&c.bye(&mut kit)), vec!["200 BYE"]);
    assert_ended_by_caller(&kit, "goodbye", "hung up");
    let rec = kit.record("goodbye");
    assert_eq!(
        rec.outcome.as_str(),
        "failed",
        "the transfer failed before the caller left"
    );
    assert!(
        path(rec).ends_with("transfer_vip(failed) > sorry(-)"),
        "{}",
        path(rec)
    );
}

#[test]
fn a_caller_hanging_up_while_the_bridge_rings_cancels_the_desk_leg() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "legring");
    c.keys(&mut kit, "202020");
    let refer = refer_after_prompt(&mut kit, &mut c);
    c.reply(&mut kit, &refer, 403);
    let mut desk = Desk::ours();
    desk.inbox(&mut kit);
    desk.reply(&mut kit, 180);
    c.bye(&mut kit);
    let cancel = find_request(&desk.inbox(&mut kit), "CANCEL");
    let invite = desk.invite.clone().expect("the leg's INVITE");
    assert_eq!(
        (cancel.call_id.as_str(), cancel.vias[0].branch()),
        (invite.call_id.as_str(), invite.vias[0].branch())
    );
    assert_ended_by_caller(&kit, "legring", "hung up");
}

/// An unknown caller whose INVITE our 200 answered (not ACKed yet).
fn answered_not_acked(kit: &mut Kit, call_id: &str) -> Caller {
    let mut c = Caller::phone(call_id, UNKNOWN_NUMBER);
    c.invite(kit);
    kit.http_reply(404, "");
    find_response(&c.inbox(kit), 200);
    c
}

#[test]
fn a_cancel_crossing_our_200_is_answered_without_a_487() {
    let mut kit = Kit::vip();
    let mut c = answered_not_acked(&mut kit, "crossing");
    // The phone had not seen our 200 when it cancelled: the CANCEL is answered, the
    // INVITE's 200 stands (RFC 3261 §9.2).
    let out = c.cancel(&mut kit);
    assert_eq!(answers(&out), vec!["200 CANCEL"]);
    assert!(!kit.ended("crossing"));
}

#[test]
fn after_a_crossed_cancel_the_callers_ack_and_bye_end_the_answered_call() {
    let mut kit = Kit::vip();
    let mut c = answered_not_acked(&mut kit, "crossed");
    c.cancel(&mut kit);
    c.ack(&mut kit);
    assert_eq!(answers(&c.bye(&mut kit)), vec!["200 BYE"]);
    assert_ended_by_caller(&kit, "crossed", "hung up");
    let rec = kit.record("crossed");
    assert_eq!(rec.outcome.as_str(), "hung_up");
    assert!(rec.answered_ms.is_some());
}

#[test]
fn after_a_crossed_cancel_the_acked_call_goes_on_with_the_welcome() {
    let mut kit = Kit::vip();
    let mut c = answered_not_acked(&mut kit, "goeson");
    c.cancel(&mut kit);
    let acked = kit.now;
    c.ack(&mut kit);
    kit.advance_ms(300);
    assert_eq!(c.heard(&kit, acked), vec!["welcome", "enter_code"]);
}

#[test]
fn a_cancel_after_the_ack_is_answered_and_the_call_goes_on() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "late");
    kit.advance(Duration::from_secs(1));
    let out = c.cancel(&mut kit);
    // RFC 6026: the INVITE's transaction is still there (Accepted), so the CANCEL
    // matches it; it has no effect on the answered call.
    assert_eq!(answers(&out), vec!["200 CANCEL"]);
    c.keys(&mut kit, "101010");
    let refer = refer_after_prompt(&mut kit, &mut c);
    assert!(refer_to(&refer).ends_with("?X-Concierge-Tier=gold>"));
}

#[test]
fn a_bye_before_the_ack_ends_the_call_and_the_200_is_not_repeated() {
    let mut kit = Kit::vip();
    let mut c = answered_not_acked(&mut kit, "noack");
    assert_eq!(answers(&c.bye(&mut kit)), vec!["200 BYE"]);
    kit.advance(Duration::from_secs(5));
    assert!(
        c.inbox(&mut kit).is_empty(),
        "no 200 retransmission after the BYE"
    );
    assert_ended_by_caller(&kit, "noack", "hung up");
}

#[test]
fn a_200_never_acked_is_retransmitted_then_the_network_is_blamed() {
    let mut kit = Kit::vip();
    let mut c = Caller::phone("lost", UNKNOWN_NUMBER);
    c.invite(&mut kit);
    kit.http_reply(404, "");
    c.inbox(&mut kit);
    kit.advance(Duration::from_secs(33));
    let out = c.inbox(&mut kit);
    assert_eq!(
        statuses(&out),
        vec![200; 10],
        "T1 doubling up to T2 until 64·T1"
    );
    let bye = find_request(&out, "BYE");
    c.reply(&mut kit, &bye, 200);
    let rec = kit.record("lost");
    assert_eq!(
        (
            rec.outcome.as_str(),
            rec.ended_by.as_str(),
            rec.reason.as_str()
        ),
        ("failed", "network", "no ACK")
    );
}

#[test]
fn a_draining_switch_refuses_a_new_invite_with_503_and_retry_after() {
    let mut kit = Kit::vip();
    kit.start_draining();
    let mut c = Caller::carrier("drained", VIP_NUMBER);
    let out = c.invite(&mut kit);
    let refused = find_response(&out, 503);
    assert_eq!(refused.header(&HeaderName::RETRY_AFTER), Some("5"));
    assert!(kit.http.is_empty(), "no lookup for a refused call");
    assert!(kit.records.is_empty(), "no record: no call existed");
    assert_eq!(kit.stats().refused_draining, 1);
}

#[test]
fn a_draining_switch_lets_the_call_in_progress_reach_the_vip_desk() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "inflight");
    kit.start_draining();
    c.keys(&mut kit, "101010");
    let refer = refer_after_prompt(&mut kit, &mut c);
    let out = accept_transfer(&mut kit, &mut c, &refer);
    c.reply(&mut kit, &find_request(&out, "BYE"), 200);
    assert_eq!(kit.record("inflight").outcome.as_str(), "transferred");
    assert!(kit.is_idle(), "the draining switch can go");
}

#[test]
fn a_draining_switch_answers_a_dispatchers_options_with_503() {
    let mut kit = Kit::vip();
    kit.start_draining();
    kit.sip_from(
        CARRIER.parse().expect("an address"),
        &format!("OPTIONS sip:{HOST}:{SIP_PORT} SIP/2.0\r\nVia: SIP/2.0/UDP {CARRIER};branch=z9hG4bKping\r\nFrom: <sip:ping@127.0.0.2>;tag=p\r\nTo: <sip:{HOST}>\r\nCall-ID: ping\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"),
    );
    let out = kit.inbox(CARRIER.parse().expect("an address"));
    assert_eq!(answers(&out), vec!["503 OPTIONS"]);
}

#[test]
fn a_shutdown_ends_the_answered_call_with_bye_and_the_ringing_one_with_503() {
    let mut kit = Kit::vip();
    let mut up = unknown_at_keypad(&mut kit, "up");
    let mut ringing = Caller::phone("ringing", "+46701231231");
    ringing.invite(&mut kit);
    kit.hang_up_all("shutdown");
    let bye = find_request(&up.inbox(&mut kit), "BYE");
    assert_eq!(answers(&ringing.inbox(&mut kit)), vec!["503 INVITE"]);
    up.reply(&mut kit, &bye, 200);
    ringing.ack_error(&mut kit);
    let rec = kit.record("up");
    assert_eq!(
        (rec.ended_by.as_str(), rec.reason.as_str()),
        ("concierge", "shutdown")
    );
    assert_eq!(kit.record("ringing").outcome.as_str(), "refused");
    assert!(kit.is_idle());
}
