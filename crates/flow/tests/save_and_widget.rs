//! One lookup feeds the desk's call widget: an `http` node saves several values from one
//! JSON answer (`save`), and a transfer node marks the variables the widget shows
//! (`widget`) and how the caller was recognised (`recognised`).

use std::path::Path;
use std::time::{Duration, Instant};

use concierge_flow::{
    parse_flow, Action, Diagnostic, Environment, Event, Flow, HttpResponse, LookupCache,
    Recognition, Run, TransferContext, TransferOutcome, Vars,
};

const ANSWER: &str = r#"{"customer": {"number": "+46706170786", "name": "Astrid Lindqvist",
    "hasVIPMembership": true, "tier": "gold", "customerId": "101010", "manager": null}}"#;

/// A lookup that saves the membership flag and three more values, then a VIP transfer
/// that shows them, and a secret keypad for the validation cases.
fn flow_text(lookup_extra: &str, transfer_extra: &str) -> String {
    format!(
        r#"start = "lookup"

[nodes.lookup]
type = "http"
url = "http://crm.test/customers/{{system.caller}}"
json_path = "customer.hasVIPMembership"
save_as = "isVIPCustomer"
save = {{ "customer.name" = "customer.name", "customer.tier" = "$.customer.tier", "customer.id" = "customer.customerId", manager = "customer.manager", fax = "customer.fax" }}
cache = {{ ttl_s = 300 }}
{lookup_extra}
success = "desk"
failure = "ask"

[nodes.ask]
type = "keypad"
prompt = "enter_code"
save_as = "code"
max_digits = 6
secret = true
done = "desk"
no_input = "desk"
invalid = "desk"

[nodes.desk]
type = "transfer"
target = "sip:vip-desk@example.com"
widget = ["customer.name", "customer.tier", "customer.id", "manager", "system.caller"]
recognised = "number"
{transfer_extra}
"#
    )
}

fn compile(text: &str) -> Result<std::sync::Arc<Flow>, Vec<Diagnostic>> {
    parse_flow(Path::new("widget.toml"), text, &|_| true).map(|l| l.flow)
}

fn errors(text: &str) -> Vec<String> {
    match compile(text) {
        Ok(_) => panic!("the flow passed validation:\n{text}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn caller() -> Vars {
    Vars::from([("system.caller".to_owned(), "+46706170786".to_owned())])
}

fn answer(body: &str) -> Event {
    Event::HttpResult(Ok(HttpResponse {
        status: 200,
        body: body.as_bytes().to_vec(),
        latency: Duration::from_millis(3),
        shared: None,
    }))
}

fn request(action: Action) -> concierge_flow::HttpRequest {
    match action {
        Action::Http(r) => *r,
        other => panic!("expected the lookup, got {other:?}"),
    }
}

#[test]
fn one_answer_fills_every_saved_variable() {
    let flow = compile(&flow_text("", "")).unwrap();
    let (mut run, first) = Run::start(flow, caller(), Environment::default());
    request(first);
    let next = run.handle(answer(ANSWER));
    assert!(matches!(next, Action::Transfer { .. }), "{next:?}");
    let vars = run.vars();
    assert_eq!(vars["isVIPCustomer"], "true");
    assert_eq!(vars["customer.name"], "Astrid Lindqvist");
    assert_eq!(vars["customer.tier"], "gold");
    assert_eq!(vars["customer.id"], "101010");
    // A `null` and a missing field save nothing but do not fail the node.
    assert_eq!(vars["manager"], "");
    assert_eq!(vars["fax"], "");
    assert_eq!(
        run.http_steps()[0].outcome,
        concierge_flow::HttpStepOutcome::Value("true".into())
    );
}

#[test]
fn the_json_path_alone_decides_success() {
    let flow = compile(&flow_text("", "")).unwrap();
    let (mut run, _) = Run::start(flow, caller(), Environment::default());
    // The membership flag is missing: the node fails, whatever `save` found.
    let next = run.handle(answer(r#"{"customer": {"name": "Astrid"}}"#));
    assert!(matches!(next, Action::CollectDigits(_)), "{next:?}");
    assert_eq!(run.trace()[0].exit.as_deref(), Some("failure"));
    assert!(!run.vars().contains_key("customer.name"));
}

#[test]
fn a_node_with_only_save_needs_a_json_answer() {
    let text = flow_text("", "")
        .replace("json_path = \"customer.hasVIPMembership\"\n", "")
        .replace("save_as = \"isVIPCustomer\"\n", "");
    let flow = compile(&text).unwrap();
    let (mut run, _) = Run::start(flow.clone(), caller(), Environment::default());
    run.handle(answer(ANSWER));
    assert_eq!(run.vars()["customer.name"], "Astrid Lindqvist");
    assert_eq!(
        run.http_steps()[0].outcome.to_string(),
        "ok: saved customer.id, customer.name, customer.tier, fax, manager"
    );
    let (mut run, _) = Run::start(flow, caller(), Environment::default());
    run.handle(answer("<html>not JSON</html>"));
    assert_eq!(run.trace()[0].exit.as_deref(), Some("failure"));
    assert!(run.http_steps()[0]
        .outcome
        .to_string()
        .starts_with("invalid JSON"));
}

#[test]
fn a_cached_answer_fills_every_saved_variable_again() {
    let flow = compile(&flow_text("", "")).unwrap();
    let mut cache = LookupCache::new();
    #[allow(clippy::disallowed_methods, reason = "a test's base instant")]
    let t0 = Instant::now();
    let (mut first, action) = Run::start(flow.clone(), caller(), Environment::default());
    let req = request(action);
    assert!(cache.fresh(t0, &req).is_none());
    let ok = Ok(HttpResponse {
        status: 200,
        body: ANSWER.as_bytes().to_vec(),
        latency: Duration::from_millis(3),
        shared: None,
    });
    let (result, used) = cache.settle(t0, &req, ok);
    first.note_cache(used);
    first.handle(Event::HttpResult(result));

    // The next caller's lookup is a hit: no request, and the same variables.
    let (mut second, action) = Run::start(flow, caller(), Environment::default());
    let hit = cache
        .fresh(t0 + Duration::from_secs(10), &request(action))
        .expect("a fresh answer");
    second.note_cache(Some(concierge_flow::CacheUse::Hit));
    second.handle(Event::HttpResult(Ok(hit)));
    for name in ["customer.name", "customer.tier", "customer.id"] {
        assert_eq!(second.vars()[name], first.vars()[name], "{name}");
    }
    assert_eq!(
        second.http_steps()[0].cache,
        Some(concierge_flow::CacheUse::Hit)
    );
}

#[test]
fn the_transfer_tells_the_widget_its_variables_and_how_the_caller_was_recognised() {
    let flow = compile(&flow_text("", "")).unwrap();
    let (mut run, _) = Run::start(flow.clone(), caller(), Environment::default());
    assert_eq!(run.transfer_context(), None, "not at a transfer node yet");
    run.handle(answer(ANSWER));
    let context = run.transfer_context().expect("waiting at the transfer");
    assert_eq!(
        context,
        TransferContext {
            node: "desk".into(),
            widget: vec![
                ("customer.name".into(), "Astrid Lindqvist".into()),
                ("customer.tier".into(), "gold".into()),
                ("customer.id".into(), "101010".into()),
                ("manager".into(), String::new()),
                ("system.caller".into(), "+46706170786".into()),
            ],
            recognised: Some(Recognition::Number),
        }
    );
    assert_eq!(Recognition::Number.as_str(), "number lookup");
    // From a record's last node and variables, the same context.
    assert_eq!(flow.transfer_context("desk", run.vars()), Some(context));
    assert_eq!(flow.transfer_context("lookup", run.vars()), None);
    run.handle(Event::TransferResult(TransferOutcome::Succeeded));
    assert_eq!(run.transfer_context(), None, "the run is over");
}

#[test]
fn a_widget_variable_the_call_never_set_is_left_out() {
    let flow = compile(&flow_text("", "")).unwrap();
    let (mut run, _) = Run::start(flow, caller(), Environment::default());
    // The lookup fails: nothing saved, the caller types a code and is transferred.
    run.handle(Event::HttpResult(Ok(HttpResponse {
        status: 404,
        body: Vec::new(),
        latency: Duration::ZERO,
        shared: None,
    })));
    run.handle(Event::Digits("101010".into()));
    let context = run.transfer_context().expect("at the transfer");
    assert_eq!(
        context.widget,
        vec![("system.caller".to_owned(), "+46706170786".to_owned())]
    );
}

#[test]
fn save_is_checked_like_json_path() {
    let e = errors(&flow_text("", "").replace(
        "\"customer.id\" = \"customer.customerId\"",
        "\"customer.id\" = \"customer[\"",
    ));
    assert!(
        e[0].starts_with("error: widget.toml:8: node \"lookup\", field \"save.customer.id\""),
        "{e:?}"
    );
    let e = errors(&flow_text("", "").replace("manager = ", "\"system.caller\" = "));
    assert!(
        e[0].contains("\"system.caller\" is not a variable name"),
        "{e:?}"
    );
    let e = errors(&flow_text("", "").replace("manager = ", "isVIPCustomer = "));
    assert!(
        e[0].contains("\"isVIPCustomer\" is also `save_as`"),
        "{e:?}"
    );
    let e = errors(&flow_text("", "").replace("save_as = \"isVIPCustomer\"\n", ""));
    assert!(
        e[0].contains("field \"json_path\": needs `save_as`"),
        "{e:?}"
    );
}

#[test]
fn an_http_node_must_save_something() {
    let text = flow_text("", "")
        .replace("json_path = \"customer.hasVIPMembership\"\n", "")
        .replace("save_as = \"isVIPCustomer\"\n", "");
    let text = text
        .lines()
        .filter(|l| !l.starts_with("save = "))
        .collect::<Vec<_>>()
        .join("\n");
    let e = errors(&text);
    assert!(
        e[0].contains("field \"save_as\": nothing is saved"),
        "{e:?}"
    );
}

#[test]
fn the_widget_never_shows_a_secret() {
    let e = errors(&flow_text("", "").replace("\"system.caller\"]", "\"code\"]"));
    assert!(
        e[0].contains("node \"desk\", field \"widget\": \"code\" is a secret"),
        "{e:?}"
    );
}

#[test]
fn the_widget_shows_only_what_the_flow_can_have_set() {
    let e = errors(&flow_text("", "").replace("\"manager\"", "\"nickname\""));
    assert!(
        e[0].contains("field \"widget\": no node sets \"nickname\""),
        "{e:?}"
    );
    let e = errors(&flow_text("", "").replace("\"system.caller\"]", "\"system.nope\"]"));
    assert!(e[0].contains("unknown variable \"system.nope\""), "{e:?}");
    let e =
        errors(&flow_text("", "").replace("recognised = \"number\"", "recognised = \"psychic\""));
    assert!(e[0].contains("psychic"), "{e:?}");
}
