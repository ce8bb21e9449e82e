//! The code lockout shared with other instances (`SwitchConfig::shared_lockout`, issue 24)
//! through the reference VIP flow in virtual time: a call asks the driver about its
//! lockout groups as it arrives; a lock the store holds stops the keypad, no lock lets it
//! start, no answer in time leaves it to this switch's own counts, a lock counted here wins
//! whatever the store says; every failed attempt is reported for the store, and a lock it
//! brought about holds for the calls that follow. Without a shared store nothing is asked.

mod testkit;

use std::time::Duration;

use concierge_b2bua::{LockoutSubject, SharedLock, SwitchConfig};
use testkit::vip::*;
use testkit::*;

/// A caller on the phone (an untrusted address) the CRM does not know.
const NUMBER: &str = "+46701111111";

/// The kit's configuration with a shared store whose answer a keypad waits for `wait`.
fn shared(wait: Duration) -> SwitchConfig {
    SwitchConfig {
        shared_lockout: Some(wait),
        ..config()
    }
}

/// What a call from `number` on the phone counts against.
fn phone_subjects(number: &str) -> Vec<LockoutSubject> {
    let phone: std::net::SocketAddr = PHONE.parse().expect("an address");
    vec![
        LockoutSubject::Number {
            number: number.into(),
            verified: false,
        },
        LockoutSubject::Source(phone.ip()),
    ]
}

/// The store's lock of `codes` on `subject` for ten more minutes.
fn lock_on(subject: LockoutSubject) -> SharedLock {
    SharedLock {
        group: "codes".into(),
        subject,
        remaining: Duration::from_secs(600),
    }
}

/// A caller from `number` on the phone: INVITE, the store's answer to its check (`locks`;
/// `None`: no answer at all), the CRM's 404 (or, within a minute of the last, the cached
/// one), the ACK. Returns the caller, the welcome
/// playing.
fn arrives(kit: &mut Kit, call_id: &str, number: &str, answer: Option<Vec<SharedLock>>) -> Caller {
    let mut c = Caller::phone(call_id, number);
    c.invite(kit);
    if let Some(locks) = answer {
        let check = kit.lockout_checks.last().expect("asked at arrival").clone();
        kit.shared_locks(Some(check.call), Some(locks));
    }
    if !kit.http.is_empty() {
        kit.http_reply(404, "");
    }
    c.inbox(kit);
    c.ack(kit);
    c
}

/// What the caller hears from the welcome on, over the next 300 ms (the welcome, then the
/// code prompt or the lockout's).
fn hears(kit: &mut Kit, c: &Caller) -> Vec<String> {
    let from = kit.now;
    kit.advance_ms(300);
    c.heard(kit, from)
}

/// The locked caller hangs up; the lockout its record gives.
fn lockout_of(kit: &mut Kit, mut c: Caller, call_id: &str) -> Option<String> {
    c.bye(kit);
    kit.record(call_id).lockout.clone()
}

/// A wrong code keyed during the welcome; returns the Refer-To that follows, and ends
/// the call.
fn keys_wrong_code(kit: &mut Kit, mut c: Caller) -> String {
    kit.advance_ms(30);
    c.keys(kit, "999999");
    let refer = refer_after_prompt(kit, &mut c);
    c.bye(kit);
    refer_to(&refer)
}

#[test]
fn a_call_asks_about_its_flows_lockout_groups_as_it_arrives() {
    let mut kit = Kit::vip_with(shared(Duration::from_millis(50)));
    let mut c = Caller::phone("ask", NUMBER);
    c.invite(&mut kit);
    assert_eq!(kit.lockout_checks.len(), 1, "while the phone rings");
    let check = &kit.lockout_checks[0];
    assert_eq!(check.groups, ["codes"]);
    assert_eq!(check.subjects, phone_subjects(NUMBER));
    assert_eq!(kit.http.len(), 1, "beside the CRM lookup");
}

#[test]
fn a_lock_the_store_holds_takes_the_keypads_locked_exit() {
    let mut kit = Kit::vip_with(shared(Duration::from_millis(50)));
    let number_lock = lock_on(phone_subjects(NUMBER)[0].clone());
    let mut c = arrives(&mut kit, "elsewhere", NUMBER, Some(vec![number_lock]));
    assert_eq!(hears(&mut kit, &c), vec!["welcome", "code_locked"]);
    let refer = find_request(&c.inbox(&mut kit), "REFER");
    assert_eq!(refer_to(&refer), format!("<{}>", service_desk()));
    c.bye(&mut kit);
    let rec = kit.record("elsewhere");
    assert_eq!(rec.lockout.as_deref(), Some("codes: number"));
    assert!(path(rec).ends_with("ask_code(locked) > locked(-)"));
}

#[test]
fn a_source_locked_in_the_store_stops_a_new_number_from_that_address() {
    let mut kit = Kit::vip_with(shared(Duration::from_millis(50)));
    let source_lock = lock_on(phone_subjects(NUMBER)[1].clone());
    let c = arrives(&mut kit, "fresh", "+46709999999", Some(vec![source_lock]));
    assert_eq!(hears(&mut kit, &c), vec!["welcome", "code_locked"]);
    assert_eq!(
        lockout_of(&mut kit, c, "fresh").as_deref(),
        Some("codes: source")
    );
}

#[test]
fn a_keypad_waits_for_the_stores_answer_and_starts_when_it_finds_no_lock() {
    let mut kit = Kit::vip_with(shared(Duration::from_secs(2)));
    let mut c = arrives(&mut kit, "wait", NUMBER, None);
    let acked = kit.now;
    kit.advance_ms(300);
    assert_eq!(
        c.heard(&kit, acked),
        vec!["welcome"],
        "no code prompt before the store answered"
    );
    let answered = kit.now;
    let call = kit.lockout_checks[0].call;
    kit.shared_locks(Some(call), Some(vec![]));
    kit.advance_ms(100);
    assert_eq!(c.heard(&kit, answered), vec!["enter_code"]);
    c.keys(&mut kit, "101010");
    let refer = refer_after_prompt(&mut kit, &mut c);
    assert!(refer_to(&refer).ends_with("?X-Concierge-Tier=gold>"));
}

#[test]
fn no_answer_in_time_leaves_the_keypad_to_this_switchs_counts() {
    let wait = Duration::from_secs(2);
    let mut kit = Kit::vip_with(shared(wait));
    let mut c = arrives(&mut kit, "silent-store", NUMBER, None);
    let asked = kit.lockout_checks[0].at;
    let acked = kit.now;
    kit.advance_to(asked + wait - Duration::from_millis(1));
    assert_eq!(
        c.heard(&kit, acked),
        vec!["welcome"],
        "waiting for the store"
    );
    let overdue = asked + wait;
    kit.advance_ms(100);
    assert_eq!(c.heard(&kit, overdue), vec!["enter_code"]);
    c.keys(&mut kit, "101010");
    let refer = refer_after_prompt(&mut kit, &mut c);
    assert!(refer_to(&refer).ends_with("?X-Concierge-Tier=gold>"));
    c.bye(&mut kit);
    assert_eq!(kit.record("silent-store").lockout, None);
}

#[test]
fn a_store_that_cannot_answer_starts_the_waiting_keypad_at_once() {
    let mut kit = Kit::vip_with(shared(Duration::from_secs(2)));
    let c = arrives(&mut kit, "store-down", NUMBER, None);
    kit.advance_ms(300);
    let failed = kit.now;
    let call = kit.lockout_checks[0].call;
    kit.shared_locks(Some(call), None);
    kit.advance_ms(100);
    assert_eq!(c.heard(&kit, failed), vec!["enter_code"]);
}

#[test]
fn a_lock_counted_here_wins_whatever_the_store_says() {
    let mut kit = Kit::vip_with(shared(Duration::from_secs(2)));
    for i in 0..5 {
        let c = arrives(&mut kit, &format!("bad{i}"), NUMBER, Some(vec![]));
        assert_eq!(
            keys_wrong_code(&mut kit, c),
            format!("<{}>", service_desk())
        );
    }
    // The store (restarted empty, say) knows of no lock.
    let c = arrives(&mut kit, "locked-here", NUMBER, Some(vec![]));
    assert_eq!(hears(&mut kit, &c), vec!["welcome", "code_locked"]);
    assert_eq!(
        lockout_of(&mut kit, c, "locked-here").as_deref(),
        Some("codes: number")
    );
}

#[test]
fn a_lock_counted_here_does_not_wait_for_the_store() {
    let mut kit = Kit::vip_with(shared(Duration::from_secs(2)));
    for i in 0..5 {
        let c = arrives(&mut kit, &format!("bad{i}"), NUMBER, Some(vec![]));
        keys_wrong_code(&mut kit, c);
    }
    let c = arrives(&mut kit, "no-wait", NUMBER, None);
    assert_eq!(
        hears(&mut kit, &c),
        vec!["welcome", "code_locked"],
        "well before the store's two seconds"
    );
}

#[test]
fn each_failed_attempt_is_reported_for_the_store_and_the_call_goes_on() {
    let mut kit = Kit::vip_with(shared(Duration::from_millis(50)));
    let c = arrives(&mut kit, "wrong", NUMBER, Some(vec![]));
    assert!(kit.lockout_failures.is_empty());
    assert_eq!(
        keys_wrong_code(&mut kit, c),
        format!("<{}>", service_desk()),
        "nothing waits for the store's count"
    );
    assert_eq!(
        kit.lockout_failures,
        vec![("codes".to_owned(), phone_subjects(NUMBER))]
    );
    let c = arrives(&mut kit, "right", NUMBER, Some(vec![]));
    kit.advance_ms(30);
    let mut c = c;
    c.keys(&mut kit, "101010");
    refer_after_prompt(&mut kit, &mut c);
    assert_eq!(kit.lockout_failures.len(), 1, "a right code is no failure");
}

#[test]
fn a_lock_the_stores_count_brought_about_holds_for_the_next_call_without_asking() {
    let mut kit = Kit::vip_with(shared(Duration::from_millis(50)));
    let c = arrives(&mut kit, "fifth-in-the-cluster", NUMBER, Some(vec![]));
    keys_wrong_code(&mut kit, c);
    // The store's count of that failure was the cluster's fifth for this number.
    let number_lock = lock_on(phone_subjects(NUMBER)[0].clone());
    kit.shared_locks(None, Some(vec![number_lock]));
    // The next call's check goes unanswered (the store is gone now).
    let c = arrives(&mut kit, "next", NUMBER, None);
    assert_eq!(hears(&mut kit, &c), vec!["welcome", "code_locked"]);
}

#[test]
fn without_a_shared_store_nothing_is_asked_or_reported() {
    let mut kit = Kit::vip();
    let c = arrives(&mut kit, "alone-wrong", NUMBER, None);
    keys_wrong_code(&mut kit, c);
    let c = arrives(&mut kit, "alone-right", NUMBER, None);
    assert_eq!(hears(&mut kit, &c), vec!["welcome", "enter_code"]);
    assert!(kit.lockout_checks.is_empty());
    assert!(kit.lockout_failures.is_empty());
}

#[test]
fn a_verified_caller_through_a_trusted_carrier_is_asked_about_by_number_only() {
    let mut kit = Kit::vip_with(shared(Duration::from_millis(50)));
    let mut c = Caller::carrier("carrier", NUMBER);
    c.invite(&mut kit);
    assert_eq!(
        kit.lockout_checks[0].subjects,
        vec![LockoutSubject::Number {
            number: NUMBER.into(),
            verified: true,
        }],
        "a trunk's address carries many callers: never a subject"
    );
}
