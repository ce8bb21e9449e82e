//! The reference VIP flow (`config/flows/vip.toml`) through a real switch in virtual time:
//! who goes straight to the VIP desk by number, and the security code everyone else is
//! asked for — gold, silver, wrong, none, retries and the lockout across calls.

mod testkit;

use std::time::Duration;

use testkit::vip::*;
use testkit::*;

#[test]
fn the_lookup_runs_while_the_phone_rings_and_asks_the_crm_for_the_caller() {
    let mut kit = Kit::vip();
    let mut c = Caller::carrier("ring", VIP_NUMBER);
    let out = c.invite(&mut kit);
    assert_eq!(answers(&out), vec!["180 INVITE"]);
    let req = kit.http_request();
    assert_eq!(
        (req.method.as_str(), req.url.as_str()),
        ("GET", "http://crm.test/customers/%2B46706170786")
    );
    assert_eq!(req.timeout, Duration::from_secs(3));
    kit.advance_ms(900);
    assert!(
        c.inbox(&mut kit).is_empty(),
        "not answered while the CRM is quick"
    );
}

#[test]
fn a_vip_asserted_by_a_trusted_carrier_is_greeted_and_referred_to_the_vip_desk_as_member() {
    let mut kit = Kit::vip();
    let mut c = Caller::carrier("vip1", VIP_NUMBER);
    c.invite(&mut kit);
    kit.http_reply(200, &customer(VIP_NUMBER, true, "gold"));
    assert_eq!(answers(&c.inbox(&mut kit)), vec!["200 INVITE"]);
    let acked = kit.now;
    c.ack(&mut kit);
    let refer = refer_after_prompt(&mut kit, &mut c);
    assert_eq!(
        refer_to(&refer),
        format!("<{}?X-Concierge-Tier=member&Priority=urgent>", vip_desk())
    );
    assert_eq!(c.heard(&kit, acked), vec!["vip_greeting"]);
}

#[test]
fn a_vip_by_number_is_referred_with_the_greetings_last_frame() {
    let mut kit = Kit::vip();
    let mut c = Caller::carrier("fast", VIP_NUMBER);
    c.invite(&mut kit);
    kit.http_reply(200, &customer(VIP_NUMBER, true, "gold"));
    let answered = kit.request_sent_at(c.addr, "REFER");
    assert_eq!(answered, None);
    let answered = kit.now;
    c.inbox(&mut kit);
    c.ack(&mut kit);
    refer_after_prompt(&mut kit, &mut c);
    let refer = kit.request_sent_at(c.addr, "REFER").expect("a REFER");
    let greeting = kit.sounded(c.media, "vip_greeting");
    assert_eq!(greeting.len(), 5, "the whole greeting, five frames");
    assert_eq!(Some(&refer), greeting.last(), "no pause after the greeting");
    assert!(refer - answered < Duration::from_secs(2));
}

#[test]
fn a_vip_by_number_transferred_is_recorded_with_its_path_and_tier() {
    let mut kit = Kit::vip();
    let mut c = vip_at_greeting(&mut kit, "vrec");
    let refer = refer_after_prompt(&mut kit, &mut c);
    let out = accept_transfer(&mut kit, &mut c, &refer);
    c.reply(&mut kit, &find_request(&out, "BYE"), 200);
    let rec = kit.record("vrec");
    assert_eq!(
        path(rec),
        "lookup(success) > is_vip(case 1) > is_verified(case 1) > verstat_ok(case 1) > vip_by_number(next) > fast_track(transferred)"
    );
    assert_eq!((rec.caller.as_str(), rec.verified), (VIP_NUMBER, true));
    assert_eq!(var(rec, "tier"), Some("member"));
    assert_eq!(rec.outcome.as_str(), "transferred");
    let t = rec.transfer.as_ref().expect("a transfer");
    assert_eq!(
        (t.mode, t.target.as_str(), t.result.to_string().as_str()),
        (
            concierge_b2bua::TransferMode::Refer,
            format!("{}?X-Concierge-Tier=member&Priority=urgent", vip_desk()).as_str(),
            "succeeded"
        )
    );
}

#[test]
fn a_vip_number_only_claimed_in_from_is_asked_for_the_code() {
    let mut kit = Kit::vip();
    let mut c = Caller::phone("claim", VIP_NUMBER);
    c.invite(&mut kit);
    kit.http_reply(200, &customer(VIP_NUMBER, true, "gold"));
    c.inbox(&mut kit);
    let acked = kit.now;
    c.ack(&mut kit);
    kit.advance_ms(300);
    assert_eq!(c.heard(&kit, acked), vec!["welcome", "enter_code"]);
    c.bye(&mut kit);
    assert_eq!(
        path(kit.record("claim")),
        "lookup(success) > is_vip(case 1) > is_verified(default) > welcome(next) > ask_code(-)"
    );
    assert!(!kit.record("claim").verified);
}

#[test]
fn a_vip_whose_carrier_reports_a_failed_stir_shaken_check_is_asked_for_the_code() {
    let mut kit = Kit::vip();
    let mut c = Caller::carrier("shaken", VIP_NUMBER);
    c.headers = vec![format!(
        "P-Asserted-Identity: <sip:{VIP_NUMBER};@carrier.example;user=phone;verstat=TN-Validation-Failed>"
    )];
    c.invite(&mut kit);
    kit.http_reply(200, &customer(VIP_NUMBER, true, "gold"));
    c.inbox(&mut kit);
    c.ack(&mut kit);
    kit.advance_ms(300);
    assert!(methods(&c.inbox(&mut kit)).is_empty(), "no REFER");
    c.bye(&mut kit);
    let rec = kit.record("shaken");
    assert_eq!(rec.verstat.as_deref(), Some("TN-Validation-Failed"));
    assert!(
        path(rec).starts_with("lookup(success) > is_vip(case 1) > is_verified(case 1) > verstat_ok(default) > welcome"),
        "{}",
        path(rec)
    );
}

#[test]
fn a_vip_whose_carrier_reports_a_passed_stir_shaken_check_goes_to_the_desk() {
    let mut kit = Kit::vip();
    let mut c = Caller::carrier("passed", VIP_NUMBER);
    c.headers = vec![format!(
        "P-Asserted-Identity: <sip:{VIP_NUMBER};@carrier.example;user=phone;verstat=TN-Validation-Passed>"
    )];
    c.invite(&mut kit);
    kit.http_reply(200, &customer(VIP_NUMBER, true, "gold"));
    c.inbox(&mut kit);
    c.ack(&mut kit);
    let refer = refer_after_prompt(&mut kit, &mut c);
    assert!(refer_to(&refer).contains("X-Concierge-Tier=member"));
}

#[test]
fn a_known_customer_without_vip_membership_is_asked_for_the_code() {
    let mut kit = Kit::vip();
    let mut c = Caller::carrier("plain", "+46701111111");
    c.invite(&mut kit);
    kit.http_reply(200, &customer("+46701111111", false, "none"));
    c.inbox(&mut kit);
    let acked = kit.now;
    c.ack(&mut kit);
    kit.advance_ms(300);
    assert_eq!(c.heard(&kit, acked), vec!["welcome", "enter_code"]);
    c.bye(&mut kit);
    assert!(
        path(kit.record("plain")).starts_with("lookup(success) > is_vip(default) > welcome(next)")
    );
}

#[test]
fn an_unknown_caller_is_answered_and_hears_the_welcome_then_the_code_prompt() {
    let mut kit = Kit::vip();
    let mut c = Caller::phone("unk", UNKNOWN_NUMBER);
    c.invite(&mut kit);
    kit.http_reply(404, "");
    assert_eq!(answers(&c.inbox(&mut kit)), vec!["200 INVITE"]);
    let acked = kit.now;
    c.ack(&mut kit);
    kit.advance_ms(500);
    assert_eq!(c.heard(&kit, acked), vec!["welcome", "enter_code"]);
}

#[test]
fn an_unknown_caller_keying_101010_reaches_the_vip_desk_as_gold() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "gold");
    let typed = kit.now;
    c.keys(&mut kit, "101010");
    let refer = refer_after_prompt(&mut kit, &mut c);
    assert_eq!(
        refer_to(&refer),
        format!("<{}?X-Concierge-Tier=gold>", vip_desk())
    );
    assert_eq!(c.heard(&kit, typed), vec!["transfer_vip"]);
    let out = accept_transfer(&mut kit, &mut c, &refer);
    c.reply(&mut kit, &find_request(&out, "BYE"), 200);
    let rec = kit.record("gold");
    assert_eq!(
        path(rec),
        "lookup(failure) > welcome(next) > ask_code(done) > check_code(case 1) > gold(next) > transfer_vip(transferred)"
    );
    assert_eq!(var(rec, "tier"), Some("gold"));
    assert_eq!(rec.outcome.as_str(), "transferred");
}

#[test]
fn an_unknown_caller_keying_202020_reaches_the_vip_desk_as_silver() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "silver");
    c.keys(&mut kit, "202020");
    let refer = refer_after_prompt(&mut kit, &mut c);
    assert_eq!(
        refer_to(&refer),
        format!("<{}?X-Concierge-Tier=silver>", vip_desk())
    );
    c.bye(&mut kit);
    assert!(path(kit.record("silver")).contains("check_code(case 2) > silver(next) > transfer_vip"));
}

#[test]
fn a_wrong_code_goes_to_customer_service_without_a_tier() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "wrong");
    let typed = kit.now;
    c.keys(&mut kit, "123456");
    let refer = refer_after_prompt(&mut kit, &mut c);
    assert_eq!(refer_to(&refer), format!("<{}>", service_desk()));
    assert_eq!(c.heard(&kit, typed), vec!["transfer_service"]);
    c.bye(&mut kit);
    assert!(path(kit.record("wrong"))
        .ends_with("ask_code(done) > check_code(default) > transfer_service(-)"));
}

#[test]
fn no_input_is_asked_for_twice_more_then_goes_to_customer_service() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "quiet");
    let since = kit.now;
    // Each attempt waits the first-digit timeout (5 s) after its prompt.
    kit.advance(Duration::from_millis(4900));
    assert!(
        c.heard(&kit, since).is_empty(),
        "silence until the first timeout"
    );
    kit.advance(Duration::from_millis(200));
    kit.advance(Duration::from_secs(11));
    assert_eq!(
        c.heard(&kit, since),
        vec![
            "invalid_code",
            "enter_code",
            "invalid_code",
            "enter_code",
            "transfer_service"
        ],
        "each retry's prompt and the code prompt again, then the transfer's"
    );
    let refer = find_request(&c.inbox(&mut kit), "REFER");
    assert_eq!(refer_to(&refer), format!("<{}>", service_desk()));
    c.bye(&mut kit);
    assert!(path(kit.record("quiet")).ends_with("ask_code(no_input) > transfer_service(-)"));
}

#[test]
fn each_no_input_retry_asks_again_without_transferring() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "retry");
    let since = kit.now;
    kit.advance(Duration::from_millis(5300));
    assert_eq!(c.heard(&kit, since), vec!["invalid_code", "enter_code"]);
    assert!(
        methods(&c.inbox(&mut kit)).is_empty(),
        "no transfer after one retry"
    );
    let second = kit.now;
    kit.advance(Duration::from_millis(5300));
    assert_eq!(c.heard(&kit, second), vec!["invalid_code", "enter_code"]);
    assert!(
        methods(&c.inbox(&mut kit)).is_empty(),
        "no transfer after two retries"
    );
}

#[test]
fn a_short_code_ended_with_the_pound_key_is_asked_again_and_a_good_one_then_passes() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "short");
    let typed = kit.now;
    c.keys(&mut kit, "12#");
    kit.advance_ms(200);
    assert_eq!(c.heard(&kit, typed), vec!["invalid_code", "enter_code"]);
    c.keys(&mut kit, "101010");
    let refer = refer_after_prompt(&mut kit, &mut c);
    assert!(refer_to(&refer).ends_with("?X-Concierge-Tier=gold>"));
}

#[test]
fn three_short_codes_go_to_customer_service_as_invalid() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "invalid");
    for _ in 0..3 {
        c.keys(&mut kit, "9#");
        kit.advance_ms(200);
    }
    let refer = refer_after_prompt(&mut kit, &mut c);
    assert_eq!(refer_to(&refer), format!("<{}>", service_desk()));
    c.bye(&mut kit);
    assert!(path(kit.record("invalid")).ends_with("ask_code(invalid) > transfer_service(-)"));
}

#[test]
fn a_key_during_the_welcome_skips_it_and_counts_as_the_codes_first_digit() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_welcome(&mut kit, "barge");
    kit.advance_ms(30);
    let pressed = kit.now;
    c.key(&mut kit, '1');
    kit.advance_ms(100);
    assert!(
        c.heard(&kit, pressed + Duration::from_millis(40))
            .is_empty(),
        "neither the welcome's rest nor the code prompt"
    );
    c.keys(&mut kit, "01010");
    let refer = refer_after_prompt(&mut kit, &mut c);
    assert!(refer_to(&refer).ends_with("?X-Concierge-Tier=gold>"));
}

#[test]
fn the_code_is_a_secret_kept_out_of_the_record() {
    let mut kit = Kit::vip();
    let mut c = unknown_at_keypad(&mut kit, "secret");
    c.keys(&mut kit, "101010");
    refer_after_prompt(&mut kit, &mut c);
    c.bye(&mut kit);
    let rec = kit.record("secret");
    assert_eq!(var(rec, "securityCode"), Some("***"));
    assert_eq!(rec.digits, vec![('*', "rfc4733"); 6]);
    let json = serde_json::to_string(rec).expect("json");
    assert!(!json.contains("101010"), "{json}");
}

/// A caller from `number` on the phone keys a wrong code and is referred to customer
/// service; the call then ends.
fn wrong_code_call(kit: &mut Kit, call_id: &str, number: &str) {
    let mut c = unknown_numbered_at_welcome(kit, call_id, number);
    kit.advance_ms(300);
    c.keys(kit, "999999");
    let refer = refer_after_prompt(kit, &mut c);
    assert_eq!(refer_to(&refer), format!("<{}>", service_desk()));
    c.bye(kit);
}

#[test]
fn five_wrong_codes_from_one_number_lock_its_code_entry() {
    let mut kit = Kit::vip();
    for i in 0..5 {
        wrong_code_call(&mut kit, &format!("bad{i}"), "+46702222222");
        kit.advance_ms(1000);
    }
    let mut c = unknown_numbered_at_welcome(&mut kit, "locked", "+46702222222");
    let acked = kit.now;
    kit.advance_ms(300);
    assert_eq!(c.heard(&kit, acked), vec!["welcome", "code_locked"]);
    let refer = find_request(&c.inbox(&mut kit), "REFER");
    assert_eq!(refer_to(&refer), format!("<{}>", service_desk()));
    c.bye(&mut kit);
    let rec = kit.record("locked");
    assert_eq!(rec.lockout.as_deref(), Some("codes: number"));
    assert!(path(rec).ends_with("ask_code(locked) > locked(-)"));
}

#[test]
fn four_wrong_codes_do_not_lock_the_number() {
    let mut kit = Kit::vip();
    for i in 0..4 {
        wrong_code_call(&mut kit, &format!("bad{i}"), "+46703333333");
    }
    let mut c = unknown_numbered_at_welcome(&mut kit, "fifth", "+46703333333");
    kit.advance_ms(300);
    c.keys(&mut kit, "101010");
    let refer = refer_after_prompt(&mut kit, &mut c);
    assert!(refer_to(&refer).ends_with("?X-Concierge-Tier=gold>"));
    c.bye(&mut kit);
    assert_eq!(kit.record("fifth").lockout, None);
}

#[test]
fn a_locked_number_does_not_lock_another_number_on_the_same_address() {
    let mut kit = Kit::vip();
    for i in 0..5 {
        wrong_code_call(&mut kit, &format!("bad{i}"), "+46704444444");
    }
    let c = unknown_numbered_at_welcome(&mut kit, "other", "+46705555555");
    let acked = kit.now;
    kit.advance_ms(300);
    assert_eq!(c.heard(&kit, acked), vec!["welcome", "enter_code"]);
}

#[test]
fn a_lock_ends_after_its_fifteen_minute_window() {
    let mut kit = Kit::vip();
    for i in 0..5 {
        wrong_code_call(&mut kit, &format!("bad{i}"), "+46706666666");
    }
    kit.advance(Duration::from_secs(15 * 60 + 1));
    let c = unknown_numbered_at_welcome(&mut kit, "later", "+46706666666");
    let acked = kit.now;
    kit.advance_ms(300);
    assert_eq!(c.heard(&kit, acked), vec!["welcome", "enter_code"]);
}

#[test]
fn an_invite_retransmitted_while_the_lookup_runs_is_not_a_second_call() {
    let mut kit = Kit::vip();
    let mut c = Caller::carrier("again", VIP_NUMBER);
    let invite = c.invite_text();
    kit.sip_from(c.addr, &invite);
    c.inbox(&mut kit);
    kit.advance_ms(500);
    kit.sip_from(c.addr, &invite);
    assert_eq!(
        answers(&c.inbox(&mut kit)),
        vec!["180 INVITE"],
        "the last provisional again"
    );
    assert_eq!(kit.http_log.len(), 1, "one lookup");
    assert_eq!(kit.call_count(), 1);
}
