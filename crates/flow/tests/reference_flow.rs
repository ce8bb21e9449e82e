//! The shipped reference flow, walked with scripted events: no network, no clock.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use concierge_flow::{
    load_flow, Action, Environment, Event, Flow, HttpFailure, HttpResponse, Run, TransferOutcome,
    Vars,
};

mod common;

const PROMPTS: &[&str] = &[
    "welcome",
    "enter_code",
    "invalid_code",
    "transfer_vip",
    "transfer_service",
    "goodbye",
    "echo_intro",
    "you_entered",
    "vip_desk",
    "service_desk",
    "please_hold",
    "code_locked",
    "vip_greeting",
    "one_moment",
    "hold_music",
];

fn known(p: &str) -> bool {
    PROMPTS.contains(&p) || p.starts_with("digit_")
}

fn flow(name: &str) -> Arc<Flow> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../config/flows")
        .join(name);
    let loaded = load_flow(&common::Disk, &path, &known).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    loaded.flow
}

/// A caller a trusted peer asserted, with no STIR/SHAKEN result.
fn caller(number: &str) -> Vars {
    caller_as(number, "true", "")
}

fn caller_as(number: &str, verified: &str, verstat: &str) -> Vars {
    [
        ("system.caller", number),
        ("system.caller_verified", verified),
        ("system.caller_verstat", verstat),
        ("system.called", "ivr"),
        ("system.call_id", "c1"),
        ("system.local_host", "127.0.0.1:5060"),
        ("system.directory_url", "http://127.0.0.1:8089"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The environment the shipped lookups read: only their bearer token is set.
fn crm_token() -> Environment {
    Environment::from_pairs([("CRM_TOKEN", "t0ken")])
}

fn start(name: &str, number: &str) -> (Run, Action) {
    Run::start(flow(name), caller(number), crm_token())
}

fn ok(body: &str) -> Event {
    Event::HttpResult(Ok(HttpResponse {
        status: 200,
        body: body.as_bytes().to_vec(),
        latency: Duration::from_millis(12),
        shared: None,
    }))
}

fn expect_http(a: Action) -> concierge_flow::HttpRequest {
    match a {
        Action::Http(r) => *r,
        other => panic!("expected an HTTP request, got {other:?}"),
    }
}

fn expect_transfer(a: &Action) -> (String, Vec<(String, String)>) {
    match a {
        Action::Transfer {
            target, headers, ..
        } => (target.clone(), headers.clone()),
        other => panic!("expected a transfer, got {other:?}"),
    }
}

#[test]
fn vip_by_number_goes_straight_to_the_vip_desk() {
    // The lookup comes first, while the phone rings; no welcome for a known VIP.
    let (mut run, a) = start("vip.toml", "+46706170786");
    let req = expect_http(a);
    assert!(req.cache.is_some() && req.comfort.is_some());
    assert_eq!(req.url, "http://127.0.0.1:8089/customers/%2B46706170786");
    assert!(req
        .headers
        .contains(&("Authorization".into(), "Bearer t0ken".into())));
    assert!(
        !format!("{req:?}").contains("t0ken"),
        "secrets stay out of Debug output"
    );
    let a = run.handle(ok(r#"{"customer":{"hasVIPMembership":true}}"#));
    let (target, headers) = expect_transfer(&a);
    assert_eq!(target, "sip:vip-desk@127.0.0.1:5060");
    assert_eq!(
        headers,
        vec![
            ("X-Concierge-Tier".into(), "member".into()),
            ("Priority".into(), "urgent".into())
        ]
    );
    match &a {
        Action::Transfer { prompt, .. } => {
            assert_eq!(
                prompt.as_deref(),
                Some("vip_greeting"),
                "the short greeting"
            )
        }
        _ => unreachable!(),
    }
    assert_eq!(
        run.handle(Event::TransferResult(TransferOutcome::Succeeded)),
        Action::Done
    );
    let path: Vec<_> = run
        .trace()
        .iter()
        .map(|s| (s.node.as_str(), s.exit.as_deref()))
        .collect();
    assert_eq!(
        path,
        vec![
            ("lookup", Some("success")),
            ("is_vip", Some("case 1")),
            ("is_verified", Some("case 1")),
            ("verstat_ok", Some("case 1")),
            ("vip_by_number", Some("next")),
            ("fast_track", Some("transferred"))
        ]
    );
    assert_eq!(run.http_steps()[0].status, Some(200));
}

fn to_keypad(number: &str, lookup: Event) -> Run {
    let (mut run, a) = start("vip.toml", number);
    expect_http(a);
    assert_eq!(
        run.handle(lookup),
        Action::Play {
            prompts: vec!["welcome".into()],
            interruptible: true
        },
        "everyone else hears the welcome, and a key skips it"
    );
    match run.handle(Event::PromptFinished) {
        Action::CollectDigits(spec) => {
            assert_eq!(spec.prompts, vec!["enter_code".to_string()]);
            assert_eq!((spec.min, spec.max, spec.terminator), (6, 6, Some('#')));
        }
        other => panic!("expected the keypad, got {other:?}"),
    }
    run
}

#[test]
fn unknown_number_then_101010_is_gold() {
    let not_found = Event::HttpResult(Ok(HttpResponse {
        status: 404,
        body: vec![],
        latency: Duration::ZERO,
        shared: None,
    }));
    let mut run = to_keypad("+46700000009", not_found);
    let a = run.handle(Event::Digits("101010".into()));
    let (target, headers) = expect_transfer(&a);
    assert_eq!(target, "sip:vip-desk@127.0.0.1:5060");
    assert_eq!(headers[0].1, "gold");
    assert_eq!(
        run.vars_redacted()["securityCode"],
        "***",
        "secret codes never reach records"
    );
}

#[test]
fn not_a_vip_then_202020_is_silver_and_999999_is_service() {
    let mut run = to_keypad(
        "+46700000003",
        ok(r#"{"customer":{"hasVIPMembership":false}}"#),
    );
    assert_eq!(
        expect_transfer(&run.handle(Event::Digits("202020".into()))).1[0].1,
        "silver"
    );
    let mut run = to_keypad(
        "+46700000003",
        ok(r#"{"customer":{"hasVIPMembership":false}}"#),
    );
    assert_eq!(
        expect_transfer(&run.handle(Event::Digits("999999".into()))).0,
        "sip:service-desk@127.0.0.1:5060"
    );
}

#[test]
fn api_down_or_slow_or_broken_goes_to_the_keypad() {
    to_keypad(
        "+1",
        Event::HttpResult(Err(HttpFailure::Connect("refused".into()))),
    );
    to_keypad("+1", Event::HttpResult(Err(HttpFailure::Timeout)));
    to_keypad("+1", ok("not json"));
    to_keypad("+1", ok(r#"{"other":1}"#));
    to_keypad(
        "+1",
        Event::HttpResult(Ok(HttpResponse {
            status: 500,
            body: vec![],
            latency: Duration::ZERO,
            shared: None,
        })),
    );
}

#[test]
fn short_code_retries_with_the_retry_prompt_then_goes_to_service() {
    let mut run = to_keypad("+1", Event::HttpResult(Err(HttpFailure::Timeout)));
    for _ in 0..2 {
        match run.handle(Event::Digits("12".into())) {
            Action::CollectDigits(spec) => assert_eq!(
                spec.prompts,
                vec!["invalid_code".to_string(), "enter_code".to_string()]
            ),
            other => panic!("expected a retry, got {other:?}"),
        }
    }
    assert_eq!(
        expect_transfer(&run.handle(Event::Digits("12".into()))).0,
        "sip:service-desk@127.0.0.1:5060"
    );
    assert!(run
        .trace()
        .iter()
        .any(|s| s.node == "ask_code" && s.exit.as_deref() == Some("invalid")));
}

#[test]
fn silence_at_the_keypad_is_no_input_after_retries() {
    let mut run = to_keypad("+1", Event::HttpResult(Err(HttpFailure::Timeout)));
    assert!(matches!(
        run.handle(Event::InputTimeout),
        Action::CollectDigits(_)
    ));
    assert!(matches!(
        run.handle(Event::InputTimeout),
        Action::CollectDigits(_)
    ));
    let a = run.handle(Event::InputTimeout);
    assert_eq!(expect_transfer(&a).0, "sip:service-desk@127.0.0.1:5060");
}

#[test]
fn failed_transfer_plays_goodbye_and_hangs_up() {
    let (mut run, _) = start("vip.toml", "+46706170786");
    run.handle(ok(r#"{"customer":{"hasVIPMembership":true}}"#));
    assert_eq!(
        run.handle(Event::TransferResult(TransferOutcome::Failed("486".into()))),
        Action::Play {
            prompts: vec!["goodbye".into()],
            interruptible: false
        }
    );
    assert!(matches!(
        run.handle(Event::PromptFinished),
        Action::Hangup { .. }
    ));
}

#[test]
fn hang_up_mid_flow_ends_the_run() {
    let (mut run, _) = start("vip.toml", "+1");
    assert_eq!(run.handle(Event::HungUp), Action::Done);
    assert_eq!(run.trace().last().unwrap().node, "lookup");
    assert_eq!(run.handle(Event::PromptFinished), Action::Done);
}

#[test]
fn customer_id_flow_checks_the_id_with_a_second_request() {
    let (mut run, _) = start("vip-by-customer-id.toml", "+1");
    run.handle(Event::PromptFinished);
    assert!(matches!(
        run.handle(ok(r#"{"customer":{"hasVIPMembership":false}}"#)),
        Action::CollectDigits(_)
    ));
    let req = expect_http(run.handle(Event::Digits("505050".into())));
    assert_eq!(req.url, "http://127.0.0.1:8089/customers/by-id/505050");
    assert_eq!(
        expect_transfer(&run.handle(ok(r#"{"customer":{"tier":"platinum"}}"#))).0,
        "sip:vip-desk@127.0.0.1:5060"
    );
}

#[test]
fn echo_flow_spells_the_digits_back() {
    let (mut run, a) = start("echo.toml", "+1");
    assert!(matches!(a, Action::CollectDigits(_)));
    assert_eq!(
        run.handle(Event::Digits("4*#".into())),
        Action::Play {
            prompts: vec![
                "you_entered".into(),
                "digit_4".into(),
                "digit_star".into(),
                "digit_pound".into()
            ],
            interruptible: false
        }
    );
}

fn start_as(number: &str, verified: &str, verstat: &str) -> (Run, Action) {
    Run::start(
        flow("vip.toml"),
        caller_as(number, verified, verstat),
        crm_token(),
    )
}

#[test]
fn a_claimed_or_carrier_failed_vip_number_is_asked_for_the_code() {
    for (verified, verstat) in [
        ("false", ""),
        ("false", "TN-Validation-Passed"),
        ("true", "TN-Validation-Failed"),
        ("true", "No-TN-Validation"),
    ] {
        let (mut run, _) = start_as("+46706170786", verified, verstat);
        run.handle(ok(r#"{"customer":{"hasVIPMembership":true}}"#));
        match run.handle(Event::PromptFinished) {
            Action::CollectDigits(spec) => {
                assert!(spec.secret);
                assert_eq!(spec.lockout.as_deref(), Some("codes"));
            }
            other => panic!("{verified}/{verstat}: expected the keypad, got {other:?}"),
        }
    }
    let (mut run, _) = start_as("+46706170786", "true", "TN-Validation-Passed");
    let a = run.handle(ok(r#"{"customer":{"hasVIPMembership":true}}"#));
    assert_eq!(expect_transfer(&a).1[0].1, "member");
}

#[test]
fn a_wrong_code_is_reported_as_a_failed_attempt_and_a_right_one_is_not() {
    let mut run = to_keypad("+1", Event::HttpResult(Err(HttpFailure::Timeout)));
    run.handle(Event::Digits("999999".into()));
    assert_eq!(run.take_failed_attempts(), vec!["codes".to_string()]);
    assert!(run.take_failed_attempts().is_empty(), "taken once");
    let mut run = to_keypad("+1", Event::HttpResult(Err(HttpFailure::Timeout)));
    run.handle(Event::Digits("101010".into()));
    assert!(run.take_failed_attempts().is_empty());
}

#[test]
fn a_locked_keypad_goes_to_customer_service_with_the_locked_prompt() {
    let mut run = to_keypad("+1", Event::HttpResult(Err(HttpFailure::Timeout)));
    match run.handle(Event::Locked) {
        Action::Transfer { target, prompt, .. } => {
            assert_eq!(target, "sip:service-desk@127.0.0.1:5060");
            assert_eq!(prompt.as_deref(), Some("code_locked"));
        }
        other => panic!("expected the locked transfer, got {other:?}"),
    }
    assert!(run
        .trace()
        .iter()
        .any(|s| s.node == "ask_code" && s.exit.as_deref() == Some("locked")));
    assert!(
        run.take_failed_attempts().is_empty(),
        "a lock is no attempt"
    );
}

#[test]
fn digits_never_show_in_debug_output() {
    let shown = format!("{:?}", Event::Digits("101010".into()));
    assert!(!shown.contains("101010"), "{shown}");
    assert_eq!(shown, "Digits(6 keys)");
}

#[test]
fn a_url_or_transfer_built_from_a_secret_or_the_environment_is_marked_for_redaction() {
    let text = r#"
start = "ask"
[nodes.ask]
type = "keypad"
prompt = "enter_code"
save_as = "pin"
max_digits = 4
secret = true
done = "check"
no_input = "bye"
invalid = "bye"
[nodes.check]
type = "http"
url = "https://bank.example/pins/{pin}"
save_as = "ok"
success = "go"
failure = "bye"
[nodes.go]
type = "transfer"
target = "sip:desk@127.0.0.1"
headers = { X-Pin = "{pin}" }
[nodes.bye]
type = "hangup"
"#;
    let loaded = concierge_flow::parse_flow(Path::new("pin.toml"), text, &known)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let (mut run, a) = Run::start(loaded.flow, caller("+1"), Environment::default());
    assert!(matches!(a, Action::CollectDigits(ref s) if s.secret));
    let req = expect_http(run.handle(Event::Digits("4711".into())));
    assert!(req.redact);
    assert_eq!(req.url_for_log(), "<redacted>");
    assert!(!format!("{req:?}").contains("4711"), "{req:?}");
    match run.handle(ok("yes")) {
        Action::Transfer { redact, .. } => assert!(redact),
        other => panic!("{other:?}"),
    }
    // The shipped lookup's URL holds only the caller; its ${CRM_TOKEN} is in a header,
    // whose values are never shown.
    let (_, a) = start("vip.toml", "+46706170786");
    let req = expect_http(a);
    assert!(!req.redact);
    assert!(!format!("{req:?}").contains("t0ken"));
}

#[test]
fn an_answer_from_the_shared_cache_carries_only_the_saved_values_and_fast_tracks_the_vip() {
    let (mut run, a) = start("vip.toml", "+46706170786");
    let req = expect_http(a);
    let share = req.share.as_ref().expect("the caller lookup may be shared");
    assert!(
        !share.key().contains("t0ken"),
        "a header from ${{ENV}} is no part of the key"
    );
    let kept = concierge_flow::SharedValue {
        status: 200,
        value: Some("true".into()),
        saved: [
            ("customer.name", "Astrid Lindqvist"),
            ("customer.tier", "gold"),
            ("customer.id", "101010"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec(),
    };
    let a = run.handle(Event::HttpResult(Ok(
        kept.answer(concierge_flow::CacheUse::Stale, Duration::from_secs(600))
    )));
    assert_eq!(expect_transfer(&a).0, "sip:vip-desk@127.0.0.1:5060");
    assert_eq!(run.http_steps()[0].outcome.to_string(), "ok: true");
    // The desk's widget is filled from the kept values as from the CRM's own answer.
    let widget = run.transfer_context().expect("at fast_track").widget;
    assert!(widget.contains(&("customer.name".to_owned(), "Astrid Lindqvist".to_owned())));
}

#[test]
fn the_demo_lookup_fills_the_vip_desk_s_widget() {
    let (mut run, _) = start("vip.toml", "+46706170786");
    run.handle(ok(
        r#"{"customer":{"number":"+46706170786","name":"Astrid Lindqvist","hasVIPMembership":true,"tier":"gold","customerId":"101010"}}"#,
    ));
    let context = run.transfer_context().expect("at fast_track");
    assert_eq!(context.node, "fast_track");
    assert_eq!(
        context.recognised,
        Some(concierge_flow::Recognition::Number)
    );
    assert_eq!(
        context.widget,
        [
            ("customer.name", "Astrid Lindqvist"),
            ("customer.tier", "gold"),
            ("customer.id", "101010"),
            ("tier", "member"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
}
