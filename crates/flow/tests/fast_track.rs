//! Issue 14's flow features in the interpreter and in validation: opening hours judged
//! against the wall time the call layer supplies (virtual: any instant we like), OAuth2
//! and cache blocks validated, priority headers on transfers, barge-in on play.

use std::path::Path;

use concierge_flow::{parse_flow, Action, Environment, Event, Run, Vars};

fn known(_: &str) -> bool {
    true
}

const HOURS: &str = r#"
start = "open"
[schedules.desk]
time_zone = "Europe/Stockholm"
hours = ["mon-fri 08:00-18:00"]
holidays = ["2026-12-24"]
[nodes.open]
type = "condition"
variable = "system.now"
cases = [{ operator = "WithinSchedule", value = "desk", exit = "desk" }]
default = "callback"
[nodes.desk]
type = "transfer"
target = "sip:vip@127.0.0.1"
priority = "urgent"
priority_header = "X-Queue-Priority"
[nodes.callback]
type = "play"
prompts = ["callback"]
interruptible = true
next = "bye"
[nodes.bye]
type = "hangup"
"#;

/// Starts the flow at the given UTC instant, as the switch does with its wall clock.
fn at(utc: &str) -> Action {
    let loaded =
        parse_flow(Path::new("hours.toml"), HOURS, &known).unwrap_or_else(|e| panic!("{e:?}"));
    let unix: i64 = utc
        .parse::<jiff::Timestamp>()
        .expect("a timestamp")
        .as_second();
    let mut vars = Vars::new();
    vars.insert("system.now".into(), unix.to_string());
    Run::start(loaded.flow, vars, Environment::default()).1
}

fn is_desk(a: &Action) -> bool {
    matches!(a, Action::Transfer { .. })
}

#[test]
fn within_schedule_in_and_out_of_hours_across_a_dst_change() {
    // Friday 27 March 2026, CET (UTC+1): 08:00 local is 07:00 UTC.
    assert!(is_desk(&at("2026-03-27T07:00:00Z")));
    assert!(!is_desk(&at("2026-03-27T06:30:00Z")));
    // Monday 30 March 2026, CEST (UTC+2) since Sunday: 08:00 local is 06:00 UTC, and
    // 07:00 UTC (09:00 local) is open, 16:30 UTC (18:30 local) closed.
    assert!(is_desk(&at("2026-03-30T06:00:00Z")));
    assert!(!is_desk(&at("2026-03-30T05:59:00Z")));
    assert!(!is_desk(&at("2026-03-30T16:30:00Z")));
    // Saturday, and the Christmas Eve holiday (a Thursday), are closed all day.
    assert!(!is_desk(&at("2026-03-28T10:00:00Z")));
    assert!(!is_desk(&at("2026-12-24T10:00:00Z")));
    assert!(is_desk(&at("2026-12-23T10:00:00Z")));
}

#[test]
fn a_priority_rides_as_priority_and_the_configured_header() {
    match at("2026-12-23T10:00:00Z") {
        Action::Transfer { headers, .. } => assert_eq!(
            headers,
            vec![
                ("Priority".to_string(), "urgent".to_string()),
                ("X-Queue-Priority".to_string(), "urgent".to_string())
            ]
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_interruptible_play_says_so_and_a_clock_is_set_by_the_caller() {
    let loaded = parse_flow(Path::new("hours.toml"), HOURS, &known).expect("valid");
    let (mut run, a) = Run::start(loaded.flow, Vars::new(), Environment::default());
    // No clock yet: not within any schedule.
    assert_eq!(
        a,
        Action::Play {
            prompts: vec!["callback".into()],
            interruptible: true
        }
    );
    run.set_clock(1_800_000_000);
    assert_eq!(run.vars()["system.now"], "1800000000");
    assert!(matches!(
        run.handle(Event::PromptFinished),
        Action::Hangup { .. }
    ));
}

fn errors(text: &str) -> Vec<String> {
    match parse_flow(Path::new("f.toml"), text, &known) {
        Ok(_) => Vec::new(),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

const LOOKUP: &str = r#"
start = "lookup"
[nodes.lookup]
type = "http"
url = "https://crm.example/customers/{system.caller}"
save_as = "x"
auth = "crm"
cache = { ttl_s = 60, negative_ttl_s = 10, stale_if_error_s = 3600, max_entries = 100 }
comfort = { after_ms = 800, prompt = "one_moment", hold = "hold_music" }
success = "bye"
failure = "bye"
[nodes.bye]
type = "hangup"
"#;

#[test]
fn auth_cache_and_comfort_blocks_are_validated() {
    let good = format!(
        "{LOOKUP}\n[auth.crm]\ntype = \"oauth2_client_credentials\"\ntoken_url = \"https://login.example/token\"\nclient_id = \"concierge\"\nclient_secret_env = \"CRM_CLIENT_SECRET\"\nscope = \"crm.read\"\n"
    );
    assert_eq!(errors(&good), Vec::<String>::new());
    let loaded = parse_flow(Path::new("f.toml"), &good, &known).expect("valid");
    let (_, a) = Run::start(loaded.flow, Vars::new(), Environment::default());
    let Action::Http(req) = a else {
        panic!("{a:?}")
    };
    assert_eq!(
        req.auth.as_ref().map(|a| a.scope.as_deref()),
        Some(Some("crm.read"))
    );
    assert!(req.cache_key.is_some());

    let missing = errors(LOOKUP);
    assert!(
        missing.iter().any(|e| e.contains("no [auth.crm] block")),
        "{missing:?}"
    );

    let secret_inline = good.replace("CRM_CLIENT_SECRET", "s3cr3t-value");
    let e = errors(&secret_inline);
    assert!(e.iter().any(|e| e.contains("client_secret_env")), "{e:?}");
    assert!(
        e.iter().all(|e| !e.contains("s3cr3t")),
        "the value is not echoed: {e:?}"
    );

    let bad_url = good.replace("https://login.example/token", "login.example");
    assert!(errors(&bad_url).iter().any(|e| e.contains("token_url")));
    let bad_type = good.replace("oauth2_client_credentials", "password");
    assert!(!errors(&bad_type).is_empty());

    let zero = good.replace("max_entries = 100", "max_entries = 0");
    assert!(errors(&zero).iter().any(|e| e.contains("max_entries")));
    let no_audio = good.replace(", prompt = \"one_moment\", hold = \"hold_music\"", "");
    assert!(errors(&no_audio).iter().any(|e| e.contains("comfort")));
}

#[test]
fn schedule_and_priority_mistakes_are_named() {
    let e = errors(&HOURS.replace("value = \"desk\"", "value = \"office\""));
    assert!(
        e.iter().any(|e| e.contains("no [schedules.office]")),
        "{e:?}"
    );
    let e = errors(&HOURS.replace("Europe/Stockholm", "Europe/Atlantis"));
    assert!(e.iter().any(|e| e.contains("unknown time zone")), "{e:?}");
    let e = errors(&HOURS.replace("mon-fri 08:00-18:00", "weekdays 8-6"));
    assert!(e.iter().any(|e| e.contains("hours")), "{e:?}");
    let e = errors(&HOURS.replace("priority = \"urgent\"", "priority = \"asap\""));
    assert!(e.iter().any(|e| e.contains("asap")), "{e:?}");
}

#[test]
fn check_warns_when_the_client_secret_is_not_in_the_environment() {
    let text = format!(
        "{LOOKUP}\n[auth.crm]\ntype = \"oauth2_client_credentials\"\ntoken_url = \"https://login.example/token\"\nclient_id = \"concierge\"\nclient_secret_env = \"CRM_CLIENT_SECRET\"\n"
    );
    let loaded = parse_flow(Path::new("f.toml"), &text, &known).expect("valid");
    let unset = concierge_flow::unset_env(Path::new("f.toml"), &text, &loaded.flow, &|_| false);
    assert!(
        unset
            .iter()
            .any(|d| d.to_string().contains("CRM_CLIENT_SECRET is not set")),
        "{unset:?}"
    );
    let set = concierge_flow::unset_env(Path::new("f.toml"), &text, &loaded.flow, &|_| true);
    assert!(set.is_empty(), "{set:?}");
}

/// A typed ID looked up by URL, cached: once as a plain keypad, once as a secret one.
fn id_lookup(secret: bool) -> String {
    format!(
        r#"
start = "ask"
[nodes.ask]
type = "keypad"
prompt = "enter"
save_as = "id"
min_digits = 1
max_digits = 6
secret = {secret}
done = "lookup"
no_input = "bye"
invalid = "bye"
[nodes.lookup]
type = "http"
url = "http://crm/customers/by-id/{{id}}"
json_path = "customer.tier"
save_as = "tier"
cache = {{ ttl_s = 60, stale_if_error_s = 600 }}
success = "bye"
failure = "bye"
[nodes.bye]
type = "hangup"
"#
    )
}

#[test]
fn a_lookup_built_from_a_secret_is_cached_in_the_process_but_never_shared() {
    for secret in [false, true] {
        let text = id_lookup(secret);
        let loaded =
            parse_flow(Path::new("id.toml"), &text, &known).unwrap_or_else(|e| panic!("{e:?}"));
        let (mut run, _) = Run::start(loaded.flow, Vars::new(), Environment::default());
        let Action::Http(req) = run.handle(Event::Digits("101010".into())) else {
            panic!("the lookup follows the keypad");
        };
        assert!(req.cache.is_some());
        assert_eq!(req.share.is_some(), !secret, "secret = {secret}");
    }
}
