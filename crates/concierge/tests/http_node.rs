//! The HTTP node against a real HTTP server on 127.0.0.1, through `concierge simulate`
//! (the same interpreter and HTTP client calls use): what arrives at the server, and
//! which exit each kind of answer takes.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the server saw it.
#[derive(Debug, Clone, Default)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// Serves each request by its path: `/true` → plain `true`, `/json` → a customer object,
/// `/500`, `/badjson`, `/slow` (3 s), anything else 404. Records every request.
fn api() -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut parts = line.split_whitespace();
                let mut req = Seen {
                    method: parts.next().unwrap_or("").into(),
                    target: parts.next().unwrap_or("").into(),
                    ..Seen::default()
                };
                let mut length = 0;
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    let (n, v) = h.split_once(':').unwrap();
                    if n.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap();
                    }
                    req.headers.push((n.to_ascii_lowercase(), v.trim().into()));
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                req.body = String::from_utf8_lossy(&body).into();
                let path = req.target.split('?').next().unwrap_or("").to_owned();
                log.lock().unwrap().push(req);
                let (status, body) = match path.as_str() {
                    p if p.starts_with("/true") => ("200 OK", "true\n".to_string()),
                    p if p.starts_with("/json") => (
                        "200 OK",
                        r#"{"customer":{"hasVIPMembership":true,"tier":"gold"}}"#.into(),
                    ),
                    p if p.starts_with("/500") => ("500 Internal Server Error", "boom".into()),
                    p if p.starts_with("/badjson") => ("200 OK", "{not json".into()),
                    p if p.starts_with("/slow") => {
                        std::thread::sleep(Duration::from_secs(3));
                        ("200 OK", "true".into())
                    }
                    _ => ("404 Not Found", "".into()),
                };
                let mut s = stream;
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (port, seen)
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
    let (port, _) = api();
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
    let (port, _) = api();
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
    let (port, seen) = api();
    let r = simulate(
        &flow_with(&format!(
            "url = \"http://127.0.0.1:{port}/500\"\nretries = 2\nretry_backoff_ms = 50"
        )),
        "+1",
    );
    assert_eq!(r["path"][0]["exit"], "failure");
    assert_eq!(seen.lock().unwrap().len(), 3, "one try and two retries");
}

#[test]
fn headers_and_post_body_are_delivered_and_the_caller_id_is_escaped() {
    let (port, seen) = api();
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
        seen.lock().unwrap().clear();
        let r = simulate(&flow, caller);
        assert_eq!(r["path"][0]["exit"], "success", "{r}");
        let req = seen.lock().unwrap()[0].clone();
        assert_eq!(req.method, "POST");
        assert_eq!(
            req.target,
            format!("/true/{escaped}?n={escaped}"),
            "caller {caller:?}"
        );
        let h = |n: &str| {
            req.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(h("authorization").as_deref(), Some("Bearer s3cret-token"));
        assert_eq!(h("x-tenant").as_deref(), Some("acme"));
        assert_eq!(h("content-type").as_deref(), Some("application/json"));
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
    let (port, seen) = api();
    let flow = flow_with(&format!(
        "url = \"http://127.0.0.1:{port}/true/{{system.caller}}?called=ivr\""
    ));
    for caller in ["..", "."] {
        seen.lock().unwrap().clear();
        let r = simulate(&flow, caller);
        assert_eq!(r["path"][0]["exit"], "failure", "{caller:?}: {r}");
        assert!(
            seen.lock().unwrap().is_empty(),
            "{caller:?}: no request was sent: {:?}",
            seen.lock().unwrap()
        );
    }
    // Dots inside a value are only encoded; the request goes where the flow says.
    seen.lock().unwrap().clear();
    let r = simulate(&flow, "a..b");
    assert_eq!(r["path"][0]["exit"], "success", "{r}");
    assert_eq!(seen.lock().unwrap()[0].target, "/true/a%2E%2Eb?called=ivr");
}
