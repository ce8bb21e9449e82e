//! The reference VIP flow's transfers in virtual time: a REFER the caller's phone accepts
//! and reports on, a REFER refused (the flow's `refer_or_bridge` then bridges to the same
//! desk), a NOTIFY reporting failure, a transfer that never reports, and a bridge leg that
//! fails too.

mod testkit;

use std::time::Duration;

use concierge_sip::wire::HeaderName;
use testkit::vip::*;
use testkit::*;

/// An unknown caller who keyed 101010: the REFER to the VIP desk as gold is out.
fn gold_refer(kit: &mut Kit, call_id: &str) -> (Caller, concierge_sip::wire::Request) {
    let mut c = unknown_at_keypad(kit, call_id);
    c.keys(kit, "101010");
    let refer = refer_after_prompt(kit, &mut c);
    (c, refer)
}

/// The bridge leg's INVITE, once the REFER was refused with `code`.
fn refused_to_bridge(kit: &mut Kit, call_id: &str, code: u16) -> (Caller, Desk) {
    let (mut c, refer) = gold_refer(kit, call_id);
    c.reply(kit, &refer, code);
    let mut desk = Desk::ours();
    let out = desk.inbox(kit);
    assert_eq!(methods(&out), vec!["INVITE"], "the bridge leg to the desk");
    (c, desk)
}

#[test]
fn the_refer_goes_to_the_callers_contact_and_names_us_as_referrer() {
    let mut kit = Kit::vip();
    let (_c, refer) = gold_refer(&mut kit, "contact");
    assert_eq!(refer.uri.as_str(), "sip:caller@127.0.0.1:5061");
    assert_eq!(
        refer.header(&HeaderName::REFERRED_BY),
        Some("<sip:concierge@192.0.2.10:5060>")
    );
}

#[test]
fn a_notify_of_100_trying_keeps_the_call_waiting() {
    let mut kit = Kit::vip();
    let (mut c, refer) = gold_refer(&mut kit, "trying");
    c.reply(&mut kit, &refer, 202);
    let out = c.notify(&mut kit, "SIP/2.0 100 Trying", "active;expires=60");
    assert_eq!(answers(&out), vec!["200 NOTIFY"]);
    assert!(methods(&out).is_empty(), "no BYE yet");
    assert!(!kit.ended("trying"));
}

#[test]
fn a_notify_of_200_ends_our_dialog_with_bye() {
    let mut kit = Kit::vip();
    let (mut c, refer) = gold_refer(&mut kit, "done");
    let out = accept_transfer(&mut kit, &mut c, &refer);
    assert_eq!(answers(&out), vec!["200 NOTIFY"]);
    assert_eq!(methods(&out), vec!["BYE"]);
    assert!(kit.open_ports.is_empty(), "the port goes with our BYE");
}

#[test]
fn a_transferred_call_is_recorded_as_transferred_by_refer() {
    let mut kit = Kit::vip();
    let (mut c, refer) = gold_refer(&mut kit, "xfer");
    let out = accept_transfer(&mut kit, &mut c, &refer);
    c.reply(&mut kit, &find_request(&out, "BYE"), 200);
    let rec = kit.record("xfer");
    let t = rec.transfer.as_ref().expect("a transfer");
    assert_eq!(
        (t.mode, t.target.as_str(), t.result.to_string().as_str()),
        (
            concierge_b2bua::TransferMode::Refer,
            format!("{}?X-Concierge-Tier=gold", vip_desk()).as_str(),
            "succeeded"
        )
    );
    assert_eq!(
        (
            rec.outcome.as_str(),
            rec.ended_by.as_str(),
            rec.reason.as_str()
        ),
        ("transferred", "concierge", "transferred")
    );
    assert!(t
        .started_ms
        .is_some_and(|s| s > rec.answered_ms.expect("answered")));
}

#[test]
fn a_refused_refer_falls_back_to_a_bridge_to_the_same_desk_with_the_tier() {
    let mut kit = Kit::vip();
    let (_c, desk) = refused_to_bridge(&mut kit, "refused", 403);
    let invite = desk.invite.as_ref().expect("the leg's INVITE");
    assert_eq!(invite.uri.as_str(), vip_desk());
    assert_eq!(
        invite.header(&HeaderName::new("X-Concierge-Tier")),
        Some("gold")
    );
    assert_eq!(
        invite.from.uri.user(),
        Some(UNKNOWN_NUMBER),
        "the caller's number"
    );
}

#[test]
fn a_bridge_answered_by_the_desk_is_recorded_as_transferred_by_bridge() {
    let mut kit = Kit::vip();
    let (mut c, mut desk) = refused_to_bridge(&mut kit, "bridged", 405);
    desk.reply(&mut kit, 180);
    let out = desk.reply(&mut kit, 200);
    assert_eq!(methods(&out), vec!["ACK"]);
    assert!(
        methods(&c.inbox(&mut kit)).is_empty(),
        "the caller stays with us"
    );
    c.bye(&mut kit);
    let bye = find_request(&desk.inbox(&mut kit), "BYE");
    desk.reply_to(&mut kit, &bye, 200);
    let rec = kit.record("bridged");
    let t = rec.transfer.as_ref().expect("a transfer");
    assert_eq!(t.mode, concierge_b2bua::TransferMode::Bridge);
    assert!(
        t.result
            .to_string()
            .starts_with("answered (after REFER rejected with 405"),
        "{}",
        t.result
    );
    assert_eq!(
        (rec.outcome.as_str(), rec.ended_by.as_str()),
        ("transferred", "caller")
    );
}

#[test]
fn a_bridged_callers_audio_reaches_the_desk_from_the_legs_port() {
    let mut kit = Kit::vip();
    let (mut c, mut desk) = refused_to_bridge(&mut kit, "relay", 403);
    desk.reply(&mut kit, 200);
    let leg_port = sdp_port(&desk.invite.as_ref().expect("INVITE").body).expect("a port");
    let since = kit.now;
    c.audio(&mut kit);
    let relayed = kit.rtp_to(desk.media, since);
    assert_eq!(relayed.len(), 1);
    assert_eq!(relayed[0].port, leg_port);
}

#[test]
fn the_desk_hanging_up_a_bridged_call_hangs_up_the_caller() {
    let mut kit = Kit::vip();
    let (mut c, mut desk) = refused_to_bridge(&mut kit, "deskbye", 403);
    desk.reply(&mut kit, 200);
    let out = desk.bye(&mut kit);
    assert_eq!(answers(&out), vec!["200 BYE"]);
    let bye = find_request(&c.inbox(&mut kit), "BYE");
    c.reply(&mut kit, &bye, 200);
    let rec = kit.record("deskbye");
    assert_eq!(
        (rec.ended_by.as_str(), rec.reason.as_str()),
        ("target", "transfer target hung up")
    );
}

#[test]
fn a_notify_reporting_failure_falls_back_to_a_bridge() {
    let mut kit = Kit::vip();
    let (mut c, refer) = gold_refer(&mut kit, "busy");
    c.reply(&mut kit, &refer, 202);
    let out = c.notify(
        &mut kit,
        "SIP/2.0 486 Busy Here",
        "terminated;reason=noresource",
    );
    assert_eq!(answers(&out), vec!["200 NOTIFY"]);
    assert!(methods(&out).is_empty(), "no BYE to the caller");
    let mut desk = Desk::ours();
    assert_eq!(methods(&desk.inbox(&mut kit)), vec!["INVITE"]);
    desk.reply(&mut kit, 200);
    c.bye(&mut kit);
    let t = kit.record("busy").transfer.clone().expect("a transfer");
    assert!(
        t.result
            .to_string()
            .starts_with("answered (after transfer target answered 486"),
        "{}",
        t.result
    );
}

#[test]
fn a_refer_without_a_final_notify_falls_back_to_a_bridge_at_the_transfer_timeout() {
    let mut kit = Kit::vip();
    let (mut c, refer) = gold_refer(&mut kit, "silent");
    c.reply(&mut kit, &refer, 202);
    c.notify(&mut kit, "SIP/2.0 100 Trying", "active;expires=60");
    let mut desk = Desk::ours();
    let sent = kit.request_sent_at(c.addr, "REFER").expect("a REFER");
    kit.advance_to(sent + Duration::from_millis(29_900));
    assert!(desk.inbox(&mut kit).is_empty(), "still waiting at 29.9 s");
    kit.advance(Duration::from_millis(200));
    assert_eq!(methods(&desk.inbox(&mut kit)), vec!["INVITE"]);
    desk.reply(&mut kit, 200);
    c.bye(&mut kit);
    let t = kit.record("silent").transfer.clone().expect("a transfer");
    assert!(
        t.result
            .to_string()
            .starts_with("answered (after no final NOTIFY in time"),
        "{}",
        t.result
    );
}

#[test]
fn a_refer_never_answered_falls_back_to_a_bridge_at_the_transfer_timeout() {
    let mut kit = Kit::vip();
    let (mut c, _refer) = gold_refer(&mut kit, "deaf");
    let mut desk = Desk::ours();
    kit.advance(Duration::from_secs(30));
    assert_eq!(methods(&desk.inbox(&mut kit)), vec!["INVITE"]);
    desk.reply(&mut kit, 200);
    c.bye(&mut kit);
    let t = kit.record("deaf").transfer.clone().expect("a transfer");
    assert!(
        t.result.to_string().contains("REFER not accepted in time")
            || t.result.to_string().contains("no answer to REFER"),
        "{}",
        t.result
    );
}

#[test]
fn when_the_refer_and_the_bridge_both_fail_the_caller_hears_goodbye_and_is_hung_up() {
    let mut kit = Kit::vip();
    let (mut c, mut desk) = refused_to_bridge(&mut kit, "sorry", 403);
    let failed = kit.now;
    let out = desk.reply(&mut kit, 486);
    assert_eq!(methods(&out), vec!["ACK"]);
    kit.advance_ms(300);
    assert_eq!(c.heard(&kit, failed), vec!["goodbye"]);
    let bye = find_request(&c.inbox(&mut kit), "BYE");
    c.reply(&mut kit, &bye, 200);
    let rec = kit.record("sorry");
    assert!(
        path(rec).ends_with("transfer_vip(failed) > sorry(-)"),
        "{}",
        path(rec)
    );
    assert_eq!(
        (rec.outcome.as_str(), rec.ended_by.as_str()),
        ("failed", "concierge")
    );
    let t = rec.transfer.as_ref().expect("a transfer");
    assert!(
        t.result
            .to_string()
            .starts_with("failed: target answered 486"),
        "{}",
        t.result
    );
}

#[test]
fn a_desk_that_never_answers_is_cancelled_at_the_ring_timeout() {
    let mut kit = Kit::vip();
    let (mut c, mut desk) = refused_to_bridge(&mut kit, "ringing", 403);
    desk.reply(&mut kit, 180);
    kit.advance(Duration::from_millis(29_900));
    assert!(desk.inbox(&mut kit).is_empty());
    kit.advance(Duration::from_millis(200));
    let cancel = find_request(&desk.inbox(&mut kit), "CANCEL");
    assert_eq!(
        cancel.vias[0].branch(),
        desk.invite.as_ref().expect("INVITE").vias[0].branch()
    );
    desk.reply_to(&mut kit, &cancel, 200);
    desk.reply(&mut kit, 487);
    kit.advance_ms(300);
    let bye = find_request(&c.inbox(&mut kit), "BYE");
    c.reply(&mut kit, &bye, 200);
    assert_eq!(kit.record("ringing").outcome.as_str(), "failed");
}

#[test]
fn a_final_notify_overtaking_the_202_completes_the_transfer() {
    let mut kit = Kit::vip();
    let (mut c, refer) = gold_refer(&mut kit, "overtaken");
    let out = c.notify(&mut kit, "SIP/2.0 200 OK", "terminated;reason=noresource");
    assert_eq!(answers(&out), vec!["200 NOTIFY"]);
    let bye = find_request(&out, "BYE");
    assert!(
        c.reply(&mut kit, &refer, 202).is_empty(),
        "the late 202 changes nothing"
    );
    c.reply(&mut kit, &bye, 200);
    let rec = kit.record("overtaken");
    assert_eq!(rec.outcome.as_str(), "transferred");
    assert_eq!(
        rec.transfer.as_ref().map(|t| t.result.to_string()),
        Some("succeeded".to_owned())
    );
}

#[test]
fn a_subscription_ended_without_a_final_status_falls_back_to_a_bridge() {
    let mut kit = Kit::vip();
    let (mut c, refer) = gold_refer(&mut kit, "nostatus");
    c.reply(&mut kit, &refer, 202);
    let out = c.request(
        &mut kit,
        "NOTIFY",
        "Event: refer\r\nSubscription-State: terminated;reason=timeout\r\n",
        "",
        "",
    );
    assert_eq!(answers(&out), vec!["200 NOTIFY"]);
    let mut desk = Desk::ours();
    assert_eq!(methods(&desk.inbox(&mut kit)), vec!["INVITE"]);
    desk.reply(&mut kit, 200);
    c.bye(&mut kit);
    let t = kit.record("nostatus").transfer.clone().expect("a transfer");
    assert!(
        t.result
            .to_string()
            .starts_with("answered (after subscription ended without a final status"),
        "{}",
        t.result
    );
}
