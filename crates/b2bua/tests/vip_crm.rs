//! The reference VIP flow's customer lookup in virtual time: a CRM that is down, slow,
//! answers garbage or never answers, and the cache that answers repeat calls and stands in
//! for a failing CRM.

mod testkit;

use std::time::Duration;

use concierge_flow::{CacheUse, HttpFailure};
use testkit::vip::*;
use testkit::*;

/// A VIP through the trusted carrier whose INVITE is in; the lookup is out.
fn vip_ringing(kit: &mut Kit, call_id: &str) -> Caller {
    let mut c = Caller::carrier(call_id, VIP_NUMBER);
    c.invite(kit);
    c
}

/// After the lookup: the caller is answered, ACKs, and `ms` pass; returns what it heard.
fn ack_and_listen(kit: &mut Kit, c: &mut Caller, ms: u64) -> Vec<String> {
    find_response(&c.inbox(kit), 200);
    let acked = kit.now;
    c.ack(kit);
    kit.advance_ms(ms);
    c.heard(kit, acked)
}

#[test]
fn a_crm_that_refuses_the_connection_sends_even_a_vip_to_the_code() {
    let mut kit = Kit::vip();
    let mut c = vip_ringing(&mut kit, "down");
    kit.http_fail(HttpFailure::Connect("connection refused".into()));
    assert_eq!(
        ack_and_listen(&mut kit, &mut c, 300),
        vec!["welcome", "enter_code"]
    );
    c.bye(&mut kit);
    let rec = kit.record("down");
    assert!(path(rec).starts_with("lookup(failure) > welcome(next)"));
    assert_eq!(
        (
            rec.http[0].status,
            rec.http[0].outcome.to_string().as_str(),
            rec.http[0].cache
        ),
        (None, "connect: connection refused", Some(CacheUse::Miss))
    );
}

#[test]
fn a_crm_server_error_takes_the_failure_exit() {
    let mut kit = Kit::vip();
    let mut c = vip_ringing(&mut kit, "5xx");
    kit.http_reply(503, "busy");
    assert_eq!(
        ack_and_listen(&mut kit, &mut c, 300),
        vec!["welcome", "enter_code"]
    );
    c.bye(&mut kit);
    let rec = kit.record("5xx");
    assert_eq!(
        (rec.http[0].status, rec.http[0].outcome.to_string().as_str()),
        (Some(503), "HTTP 503")
    );
}

#[test]
fn a_crm_not_found_takes_the_failure_exit() {
    let mut kit = Kit::vip();
    let mut c = vip_ringing(&mut kit, "404");
    kit.http_reply(404, "");
    assert_eq!(
        ack_and_listen(&mut kit, &mut c, 300),
        vec!["welcome", "enter_code"]
    );
    c.bye(&mut kit);
    assert_eq!(kit.record("404").http[0].outcome.to_string(), "HTTP 404");
}

#[test]
fn a_crm_answer_that_is_not_json_takes_the_failure_exit() {
    let mut kit = Kit::vip();
    let mut c = vip_ringing(&mut kit, "html");
    kit.http_reply(200, "<html>maintenance</html>");
    assert_eq!(
        ack_and_listen(&mut kit, &mut c, 300),
        vec!["welcome", "enter_code"]
    );
    c.bye(&mut kit);
    let rec = kit.record("html");
    assert!(
        rec.http[0].outcome.to_string().starts_with("invalid JSON"),
        "{:?}",
        rec.http
    );
    assert!(path(rec).starts_with("lookup(failure)"));
}

#[test]
fn a_crm_answer_without_the_membership_field_takes_the_failure_exit() {
    let mut kit = Kit::vip();
    let mut c = vip_ringing(&mut kit, "nofield");
    kit.http_reply(200, r#"{"customer": {"number": "+46706170786"}}"#);
    assert_eq!(
        ack_and_listen(&mut kit, &mut c, 300),
        vec!["welcome", "enter_code"]
    );
    c.bye(&mut kit);
    assert_eq!(
        kit.record("nofield").http[0].outcome.to_string(),
        "JSON path not found"
    );
}

#[test]
fn a_slow_crm_answers_the_call_after_one_second_while_it_still_rings() {
    let mut kit = Kit::vip();
    let mut c = vip_ringing(&mut kit, "slow");
    c.inbox(&mut kit);
    kit.advance_ms(999);
    assert!(c.inbox(&mut kit).is_empty(), "still ringing at 999 ms");
    kit.advance_ms(1);
    assert_eq!(answers(&c.inbox(&mut kit)), vec!["200 INVITE"]);
}

#[test]
fn a_slow_crm_plays_one_moment_then_hold_music_until_it_answers() {
    let mut kit = Kit::vip();
    let mut c = vip_ringing(&mut kit, "comfort");
    kit.advance_ms(1000);
    assert_eq!(
        ack_and_listen(&mut kit, &mut c, 1500),
        vec!["one_moment", "hold_music"]
    );
    let looped = kit.sounded(c.media, "hold_music");
    assert!(
        looped.len() > 2 * 2,
        "the two-frame hold music loops: {} frames",
        looped.len()
    );
}

#[test]
fn a_slow_crms_answer_stops_the_hold_music_and_the_vip_is_greeted_and_referred() {
    let mut kit = Kit::vip();
    let mut c = vip_ringing(&mut kit, "late");
    kit.advance_ms(1000);
    ack_and_listen(&mut kit, &mut c, 800);
    let answered = kit.now;
    kit.http_reply(200, &customer(VIP_NUMBER, true, "gold"));
    let refer = refer_after_prompt(&mut kit, &mut c);
    // (A hold-music frame left at the very instant the answer came, before it.)
    assert_eq!(
        c.heard(&kit, answered + Duration::from_millis(1)),
        vec!["vip_greeting"]
    );
    assert!(refer_to(&refer).contains("X-Concierge-Tier=member"));
    c.bye(&mut kit);
    assert_eq!(kit.record("late").http[0].latency_ms, 1800);
}

#[test]
fn a_crm_timeout_reported_by_the_driver_takes_the_failure_exit() {
    let mut kit = Kit::vip();
    let mut c = vip_ringing(&mut kit, "timeout");
    kit.advance_ms(1000);
    c.inbox(&mut kit);
    c.ack(&mut kit);
    kit.advance_ms(2000);
    let failed = kit.now;
    kit.http_fail(HttpFailure::Timeout);
    kit.advance_ms(300);
    assert_eq!(
        c.heard(&kit, failed + Duration::from_millis(1)),
        vec!["welcome", "enter_code"]
    );
    c.bye(&mut kit);
    let rec = kit.record("timeout");
    assert_eq!(rec.http[0].outcome.to_string(), "timeout");
    assert!(path(rec).starts_with("lookup(failure) > welcome(next)"));
}

#[test]
fn a_crm_that_never_answers_is_given_up_two_seconds_after_its_timeout() {
    let mut kit = Kit::vip();
    let mut c = vip_ringing(&mut kit, "never");
    kit.advance_ms(1000);
    c.inbox(&mut kit);
    c.ack(&mut kit);
    kit.advance_ms(3990);
    assert_eq!(
        c.heard(&kit, kit.now - Duration::from_millis(100)),
        vec!["hold_music"],
        "still waiting at 4.99 s"
    );
    let given_up = kit.now;
    kit.advance_ms(300);
    assert_eq!(
        c.heard(&kit, given_up + Duration::from_millis(20)),
        vec!["welcome", "enter_code"]
    );
    c.bye(&mut kit);
    assert_eq!(kit.record("never").http[0].outcome.to_string(), "timeout");
}

#[test]
fn a_crm_answer_after_the_watchdog_gave_up_is_ignored() {
    let mut kit = Kit::vip();
    let mut c = vip_ringing(&mut kit, "tardy");
    let call = kit.http.front().expect("the lookup").call;
    kit.advance_ms(1000);
    c.inbox(&mut kit);
    c.ack(&mut kit);
    kit.advance_ms(4500);
    kit.http_reply_to(call, 200, &customer(VIP_NUMBER, true, "gold"));
    kit.advance_ms(500);
    assert!(
        methods(&c.inbox(&mut kit)).is_empty(),
        "no REFER from the late VIP answer"
    );
    c.bye(&mut kit);
    let rec = kit.record("tardy");
    assert_eq!(rec.http.len(), 1);
    assert!(path(rec).starts_with("lookup(failure)"));
}

#[test]
fn a_second_call_within_five_minutes_is_answered_from_the_cache() {
    let mut kit = Kit::vip();
    let mut first = vip_at_greeting(&mut kit, "miss");
    first.bye(&mut kit);
    kit.advance(Duration::from_secs(299));
    let mut c = Caller::carrier("hit", VIP_NUMBER);
    let out = c.invite(&mut kit);
    assert!(kit.http.is_empty(), "no request: the cache answered");
    assert_eq!(
        answers(&out),
        vec!["180 INVITE", "200 INVITE"],
        "answered at once"
    );
    c.ack(&mut kit);
    let refer = refer_after_prompt(&mut kit, &mut c);
    assert!(refer_to(&refer).contains("X-Concierge-Tier=member"));
    c.bye(&mut kit);
    assert_eq!(kit.record("miss").http[0].cache, Some(CacheUse::Miss));
    assert_eq!(kit.record("hit").http[0].cache, Some(CacheUse::Hit));
}

#[test]
fn a_cached_answer_is_asked_for_again_after_five_minutes() {
    let mut kit = Kit::vip();
    let mut first = vip_at_greeting(&mut kit, "first");
    first.bye(&mut kit);
    kit.advance(Duration::from_secs(301));
    vip_ringing(&mut kit, "again");
    assert_eq!(kit.http_log.len(), 2, "the CRM is asked again");
}

#[test]
fn a_failing_crm_is_stood_in_for_by_an_answer_up_to_a_day_old() {
    let mut kit = Kit::vip();
    let mut first = vip_at_greeting(&mut kit, "fresh");
    first.bye(&mut kit);
    kit.advance(Duration::from_secs(20 * 3600));
    let mut c = vip_ringing(&mut kit, "stale");
    kit.http_fail(HttpFailure::Connect("connection refused".into()));
    ack_and_listen(&mut kit, &mut c, 0);
    let refer = refer_after_prompt(&mut kit, &mut c);
    assert!(
        refer_to(&refer).contains("X-Concierge-Tier=member"),
        "a VIP still reaches the desk"
    );
    c.bye(&mut kit);
    let rec = kit.record("stale");
    assert_eq!(rec.http[0].cache, Some(CacheUse::Stale));
    assert!(serde_json::to_string(rec)
        .expect("json")
        .contains(r#""cache":"stale""#));
}

#[test]
fn an_answer_older_than_a_day_does_not_stand_in() {
    let mut kit = Kit::vip();
    let mut first = vip_at_greeting(&mut kit, "old");
    first.bye(&mut kit);
    kit.advance(Duration::from_secs(24 * 3600 + 1));
    let mut c = vip_ringing(&mut kit, "gone");
    kit.http_fail(HttpFailure::Connect("connection refused".into()));
    assert_eq!(
        ack_and_listen(&mut kit, &mut c, 300),
        vec!["welcome", "enter_code"]
    );
}

#[test]
fn a_not_found_is_cached_for_one_minute_only() {
    let mut kit = Kit::vip();
    let mut first = unknown_at_welcome(&mut kit, "nf1");
    first.bye(&mut kit);
    kit.advance(Duration::from_secs(59));
    let mut c = Caller::phone("nf2", UNKNOWN_NUMBER);
    c.invite(&mut kit);
    assert!(kit.http.is_empty(), "the 404 is kept for a minute");
    c.cancel(&mut kit);
    kit.advance(Duration::from_secs(2));
    let mut c = Caller::phone("nf3", UNKNOWN_NUMBER);
    c.invite(&mut kit);
    assert_eq!(kit.http.len(), 1, "asked again after a minute");
}
