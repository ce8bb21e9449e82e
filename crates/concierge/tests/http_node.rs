//! The HTTP node against a real HTTP server on 127.0.0.1, through `concierge simulate`
//! (the same interpreter and HTTP client calls use): what arrives at the server, and
//! which exit each kind of answer takes.

mod common;

use std::process::Command;
use std::time::Duration;

use common::http_stub::{Reply, Stub};

/// Serves each request by its path: `/true` → plain `true`, `/json` → a customer object,
/// `/500`, `/badjson`, `/slow` (3 s), anything else 404. Records every request.
fn api() -> Stub {
    Stub::start(|req| {
        let path = req.path.split('?').next().unwrap_or("");
        match path {
            p if p.starts_with("/true") => Reply::json(200, "true\n"),
            p if p.starts_with("/json") => Reply::json(
                200,
                r#"{"customer":{"hasVIPMembership":true,"tier":"gold"}}"#,
            ),
            p if p.starts_with("/500") => Reply::json(500, "boom"),
            p if p.starts_with("/badjson") => Reply::json(200, "{not json"),
            p if p.starts_with("/slow") => Reply {
                delay: Duration::from_secs(3),
                ..Reply::json(200, "true")
            },
            _ => Reply::json(404, ""),
        }
    })
}

/// A one-node flow: the HTTP node under test, then hang-ups that say which exit it took.
fn flow_with(http: &str) -> std::path::PathBuf {
    let dir = common::scratch_dir("http-node");
    let path = dir.join("flow.toml");
    let text = format!(
        "start = \"h\"\n[nodes.h]\ntype = \"http\"\nsave_as = \"result\"\nsuccess = \"ok\"\nfailure = \"failed\"\n{http}\n\
         [nodes.ok]\ntype = \"hangup\"\n[nodes.failed]\ntype = \"hangup\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn simulate(flow: &std::path::Path, caller: &str) -> serde_json::Value {
    let dir = common::scratch_dir("http-cfg");
    let cfg = dir.join("concierge.toml");
    std::fs::write(&cfg, "[demo]\ndirectory = false\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_concierge"))
        .args([
            "simulate",
            "--json",
            "--flow",
            flow.to_str().unwrap(),
            "--caller",
            caller,
            "--config",
            cfg.to_str().unwrap(),
        ])
        .env("CRM_TOKEN", "s3cret-token")
        .current_dir(common::repo_root())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn exit_and_value(run: &serde_json::Value) -> (String, String) {
    let exit = run["path"][0]["exit"].as_str().unwrap_or("").to_owned();
    let value = run["variables"]["result"].as_str().unwrap_or("").to_owned();
    (exit, value)
}

#[test]
fn json_path_and_plain_body_are_saved() {
    let api = api();
    let port = api.port;
    let r = simulate(&flow_with(&format!("url = \"http://127.0.0.1:{port}/json/{{system.caller}}\"\njson_path = \"customer.hasVIPMembership\"")), "+1");
    assert_eq!(exit_and_value(&r), ("success".into(), "true".into()));
    let r = simulate(
        &flow_with(&format!(
            "url = \"http://127.0.0.1:{port}/json\"\njson_path = \"$.customer.tier\""
        )),
        "+1",
    );
    assert_eq!(exit_and_value(&r), ("success".into(), "gold".into()));
    let r = simulate(
        &flow_with(&format!("url = \"http://127.0.0.1:{port}/true\"")),
        "+1",
    );
    assert_eq!(
        exit_and_value(&r),
        ("success".into(), "true".into()),
        "no path: the trimmed body"
    );
}

#[test]
fn every_kind_of_failure_takes_the_failure_exit() {
    let api = api();
    let port = api.port;
    let closed = common::free_port();
    for (http, why) in [
        (format!("url = \"http://127.0.0.1:{port}/missing\""), "404"),
        (format!("url = \"http://127.0.0.1:{port}/500\""), "500"),
        (
            format!("url = \"http://127.0.0.1:{port}/badjson\"\njson_path = \"customer.tier\""),
            "invalid JSON",
        ),
        (
            format!("url = \"http://127.0.0.1:{port}/json\"\njson_path = \"customer.nothing\""),
            "path not found",
        ),
        (
            format!("url = \"http://127.0.0.1:{port}/slow\"\ntimeout_ms = 500"),
            "timeout",
        ),
        (
            format!("url = \"http://127.0.0.1:{closed}/x\""),
            "connection refused",
        ),
    ] {
        let r = simulate(&flow_with(&http), "+1");
        assert_eq!(r["path"][0]["exit"], "failure", "{why}: {r}");
    }
}

#[test]
fn retries_try_again_after_a_server_error() {
    let api = api();
    let port = api.port;
    let r = simulate(
        &flow_with(&format!(
            "url = \"http://127.0.0.1:{port}/500\"\nretries = 2\nretry_backoff_ms = 50"
        )),
        "+1",
    );
    assert_eq!(r["path"][0]["exit"], "failure");
    assert_eq!(api.seen().len(), 3, "one try and two retries");
}

#[test]
fn headers_and_post_body_are_delivered_and_the_caller_id_is_escaped() {
    let api = api();
    let port = api.port;
    let flow = flow_with(&format!(
        "url = \"http://127.0.0.1:{port}/true/{{system.caller}}?n={{system.caller}}\"\nmethod = \"POST\"\n\
         headers = {{ Authorization = \"Bearer ${{CRM_TOKEN}}\", X-Tenant = \"acme\" }}\n\
         body = '{{{{\"caller\": \"{{system.caller}}\"}}}}'\ncontent_type = \"application/json\""
    ));
    for (caller, escaped) in [
        ("+4670&admin=1", "%2B4670%26admin%3D1"),
        ("a b\"c'", "a%20b%22c%27"),
        ("ünï", "%C3%BCn%C3%AF"),
    ] {
        let before = api.seen().len();
        let r = simulate(&flow, caller);
        assert_eq!(r["path"][0]["exit"], "success", "{r}");
        let req = api.seen()[before].clone();
        assert_eq!(req.method, "POST");
        assert_eq!(
            req.path,
            format!("/true/{escaped}?n={escaped}"),
            "caller {caller:?}"
        );
        assert_eq!(req.header("authorization"), Some("Bearer s3cret-token"));
        assert_eq!(req.header("x-tenant"), Some("acme"));
        assert_eq!(req.header("content-type"), Some("application/json"));
        let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
        assert_eq!(
            body["caller"], caller,
            "the JSON body carries the caller verbatim, escaped as JSON"
        );
        assert!(
            !r.to_string().contains("s3cret-token"),
            "the token never reaches the output"
        );
    }
}

#[test]
fn a_caller_of_dot_dot_cannot_move_the_lookup_up_the_path() {
    // `/customers/..` would be folded by the URL parser to `/` (also when encoded as
    // `%2E%2E`): the lookup must go to the named resource or nowhere.
    let api = api();
    let port = api.port;
    let flow = flow_with(&format!(
        "url = \"http://127.0.0.1:{port}/true/{{system.caller}}?called=ivr\""
    ));
    for caller in ["..", "."] {
        let r = simulate(&flow, caller);
        assert_eq!(r["path"][0]["exit"], "failure", "{caller:?}: {r}");
        assert!(
            api.seen().is_empty(),
            "{caller:?}: no request was sent: {:?}",
            api.seen()
        );
    }
    // Dots inside a value are only encoded; the request goes where the flow says.
    let r = simulate(&flow, "a..b");
    assert_eq!(r["path"][0]["exit"], "success", "{r}");
    assert_eq!(api.seen()[0].path, "/true/a%2E%2Eb?called=ivr");
}
