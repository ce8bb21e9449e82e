//! The live console and the call widget through a real browser: headless Chromium on the
//! pages of a real server, real callers (SIPp) transferred by the reference flow, the
//! demo directory (or a stub CRM) as the customer API.
//!
//! `CONCIERGE_SCREENSHOTS=docs/img cargo test -p concierge --test console` also writes the
//! README's screenshots of both pages.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::browser::Browser;
use common::calls::sipp_caller;
use common::http_stub::{Reply, Stub};
use common::ops::http;
use common::{free_port, start_vip_env, RawCall, Server, TRUST_LOOPBACK};

/// A bound against a hung run, never a timing requirement.
const BOUND: Duration = Duration::from_secs(30);
const KEY: (&str, &str) = ("CONCIERGE_TRANSFER_KEY", "console-test-key");

/// The VIP demo with the console on a free port (`console_extra` adds to `[console]`).
fn server(
    name: &str,
    edit: impl Fn(String) -> String,
    console_extra: &str,
    env: &[(&str, &str)],
) -> (Server, u16) {
    let port = free_port();
    let extra = format!("[console]\nlisten = \"127.0.0.1:{port}\"\n{console_extra}");
    let mut env = env.to_vec();
    env.push(KEY);
    (
        start_vip_env(name, edit, TRUST_LOOPBACK, &extra, &env),
        port,
    )
}

/// A VIP caller by number, transferred by REFER; the Refer-To it got.
fn vip_call(server: &Server, caller: &str) -> String {
    sipp_caller(server, "vip_refer.xml", caller).expect("the REFER's Refer-To")
}

/// Where screenshots for the README go, when asked for.
fn screenshots() -> Option<PathBuf> {
    let dir = std::env::var_os("CONCIERGE_SCREENSHOTS")?;
    let dir = common::repo_root().join(dir);
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

/// The console's counts now, as `GET /api/counts?flow=vip` gives them.
fn counts(console: u16) -> serde_json::Value {
    let (status, body) = http(console, "GET", "/api/counts?flow=vip");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON counts")
}

/// The caller's side of a REFER that works (RFC 3515): 202, then a NOTIFY whose sipfrag
/// says the desk answered; our BYE that follows is answered too.
fn accept_refer(call: &mut RawCall, refer: &str) {
    call.reply(refer, 202);
    call.request(
        "NOTIFY",
        0,
        "Event: refer\r\nSubscription-State: terminated;reason=noresource\r\nContent-Type: message/sipfrag\r\n",
        "SIP/2.0 200 OK\r\n",
    );
    let bye = call.sip.expect("BYE ", BOUND);
    call.reply(&bye, 200);
}

#[test]
fn the_desk_s_widget_pops_up_as_the_refer_goes_out_and_keeps_the_card_after_the_call() {
    let (server, console) = server("widget-vip", |f| f, "", &[]);
    let mut browser = Browser::launch(&server.dir, 900, 760);
    browser.goto(&format!("http://127.0.0.1:{console}/widget?desk=vip-desk"));
    if let Err(text) = browser.wait_for_text(&["No call has reached this desk yet"], BOUND) {
        browser.fail("the widget page did not open", &text);
    }
    // A caller from the VIP number (loopback is trusted), transferred to the VIP desk.
    let mut call = RawCall::invite(server.port, "+46706170786", "widget-vip-1", "0 101");
    call.answer_and_ack();
    let refer = call.sip.expect("REFER ", BOUND);
    // The REFER is out and not answered yet, and no record exists: the card comes from
    // the switch's transfer event.
    if let Err(text) = browser.wait_for_text(
        &[
            "Astrid Lindqvist",
            "gold",
            "number lookup",
            "transferred now",
        ],
        BOUND,
    ) {
        browser.fail("the card did not pop up with the REFER", &text);
    }
    assert!(server.records().is_empty(), "the call is still in progress");
    let text = browser.text();
    for needle in [
        "+46706170786",
        "101010",
        "fast_track",
        "Waited",
        "under way",
    ] {
        assert!(text.contains(needle), "{needle:?} not on the card:\n{text}");
    }
    if let Some(dir) = screenshots() {
        browser.screenshot(&dir.join("widget.png"));
    }
    // The desk answered: the card says so, and stays once the call has ended.
    accept_refer(&mut call, &refer);
    common::wait_record(&server, "widget-vip-1");
    if let Err(text) = browser.wait_for_text(
        &["Astrid Lindqvist", "succeeded", "fast_track (transferred)"],
        BOUND,
    ) {
        browser.fail("the card was not completed by the outcome", &text);
    }
    common::assert_no_demo_ports(server.pid(), server.port);
}

#[test]
fn the_console_lists_a_caller_at_the_code_prompt_and_drops_the_call_when_it_ends() {
    let (server, console) = server("console-live", |f| f, "", &[]);
    // One call already done, for the tables and today's counts.
    vip_call(&server, "+46706170786");
    common::wait_records(&server, 1);
    let mut browser = Browser::launch(&server.dir, 1200, 900);
    browser.goto(&format!("http://127.0.0.1:{console}/"));
    if let Err(text) = browser.wait_for_text(&["Recent calls", "vip-desk"], BOUND) {
        browser.fail("the console did not open", &text);
    }
    // A caller the directory does not know hears the welcome and is asked for a code.
    let caller = "+46700000042";
    let mut call = RawCall::invite(server.port, caller, "console-live-2", "0 101");
    call.answer_and_ack();
    let live = |needle: &str| {
        format!(
            "document.getElementById('live').innerText.includes({})",
            serde_json::json!(needle)
        )
    };
    let at_prompt = format!("{} && {}", live(caller), live("ask_code"));
    if let Err(text) = browser.wait_for(&at_prompt, BOUND) {
        browser.fail("the caller is not listed at the code prompt", &text);
    }
    let now = counts(console);
    assert_eq!(now["calls_in_progress"], 1, "{now}");
    assert_eq!(
        now["nodes_now"],
        serde_json::json!({ "ask_code": 1 }),
        "{now}"
    );
    if let Err(text) = browser.wait_for("document.querySelector('#diagram svg')", BOUND) {
        browser.fail("the flow diagram was not drawn", &text);
    }
    if let Some(dir) = screenshots() {
        browser.resize(1200, 1650);
        // Mermaid redraws at most every 2 s: the shot waits for the count it shows.
        let drawn = "document.querySelector('#diagram svg').textContent.includes('now 1')";
        let _ = browser.wait_for(drawn, BOUND);
        browser.screenshot(&dir.join("console.png"));
    }

    // The caller hangs up: the call leaves the list, and the counts are the records'.
    call.bye();
    if let Err(text) = browser.wait_for(&live("No call in progress."), BOUND) {
        browser.fail("the ended call is still listed", &text);
    }
    let records = common::wait_records(&server, 2);
    let after = counts(console);
    assert_eq!(after["calls_in_progress"], 0, "{after}");
    assert_eq!(after["nodes_now"], serde_json::json!({}), "{after}");
    assert_eq!(after["calls_today"], records.len(), "{after}");
    let mut visits = std::collections::BTreeMap::<String, u64>::new();
    let mut outcomes = std::collections::BTreeMap::<String, u64>::new();
    for record in &records {
        // Each node once per call that visited it.
        let mut nodes: std::collections::BTreeSet<&str> = record["path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["node"].as_str().unwrap())
            .collect();
        if record["outcome"] == "transferred" {
            nodes.insert("transferred");
        }
        for node in nodes {
            *visits.entry(node.to_owned()).or_default() += 1;
        }
        *outcomes
            .entry(record["outcome"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(after["nodes_today"], serde_json::json!(visits), "{after}");
    assert_eq!(
        after["outcomes_today"],
        serde_json::json!(outcomes),
        "{after}"
    );
    let path = records[1]["path"].to_string();
    assert!(path.contains("ask_code"), "the record's path: {path}");
}

#[test]
fn a_crm_name_with_markup_shows_as_text() {
    const NAME: &str = "<script>alert(1)</script>";
    let crm = Stub::start(|_| {
        Reply::json(
            200,
            format!(
                r#"{{"customer": {{"name": "{}", "hasVIPMembership": true, "tier": "gold<b>", "customerId": "1"}}}}"#,
                NAME.replace('"', "\\\"")
            ),
        )
    });
    let url = crm.url();
    let (server, console) = server(
        "widget-xss",
        move |f| f.replace("CRM/customers", &format!("{url}/customers")),
        "",
        &[],
    );
    vip_call(&server, "+46706170786");
    let mut browser = Browser::launch(&server.dir, 900, 700);
    browser.goto(&format!("http://127.0.0.1:{console}/widget?desk=vip-desk"));
    if let Err(text) = browser.wait_for_text(&[NAME, "gold<b>"], BOUND) {
        browser.fail("the name is not shown as text", &text);
    }
    // Text, not markup: no element came from the CRM's strings.
    let injected = browser.eval(
        "document.querySelectorAll('#card script, #card b').length + \
         (document.querySelector('.card h2.name').textContent === '<script>alert(1)</script>' ? 0 : 100)",
    );
    assert_eq!(injected, serde_json::json!(0));
}

#[test]
fn a_transfer_token_link_opens_the_call_s_card_and_a_forged_one_is_refused() {
    let (server, console) = server("widget-token", |f| f, "", &[]);
    let refer_to = vip_call(&server, "+46706170786");
    // The Refer-To's URI headers are the link's query, as a desk phone would pass them on.
    let query = refer_to
        .trim_matches(['<', '>'])
        .split_once('?')
        .map(|(_, q)| q.to_owned())
        .expect("URI headers in the Refer-To");
    assert!(query.contains("X-Concierge-Token="), "{query}");
    common::wait_records(&server, 1);
    let (status, page) = http(console, "GET", &format!("/widget?{query}"));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Astrid Lindqvist"), "{page}");

    let forged = query.replace("X-Concierge-Tier=member", "X-Concierge-Tier=gold");
    assert_ne!(forged, query);
    let mut browser = Browser::launch(&server.dir, 900, 500);
    browser.goto(&format!("http://127.0.0.1:{console}/widget?{forged}"));
    if let Err(text) =
        browser.wait_for_text(&["This link is not valid", "altered or forged"], BOUND)
    {
        browser.fail("a forged token was not refused", &text);
    }
    assert!(!browser.text().contains("Astrid"));
    let (status, _) = http(console, "GET", &format!("/widget?{forged}"));
    assert_eq!(status, 403);
    let (status, _) = http(console, "GET", "/widget?token=v1;exp=1;h=x;sig=00&x=1");
    assert_eq!(status, 403, "a made-up token");
}

#[test]
fn with_a_token_env_every_page_needs_the_token() {
    let token = "console-access-token-for-the-test";
    let (server, console) = server(
        "console-token",
        |f| f,
        "token_env = \"CONCIERGE_CONSOLE_TOKEN\"\n",
        &[("CONCIERGE_CONSOLE_TOKEN", token)],
    );
    for path in [
        "/",
        "/widget?desk=vip-desk",
        "/events/console",
        "/api/counts",
    ] {
        let (status, _) = http(console, "GET", path);
        assert_eq!(status, 401, "{path}");
    }
    let (status, _) = http(console, "GET", "/?access_token=wrong");
    assert_eq!(status, 401);
    // A browser presents it once; the cookie carries it on, the address drops it.
    let mut browser = Browser::launch(&server.dir, 900, 700);
    browser.goto(&format!("http://127.0.0.1:{console}/?access_token={token}"));
    if let Err(text) = browser.wait_for_text(&["Calls in progress", "Recent calls"], BOUND) {
        browser.fail("the console did not open with its token", &text);
    }
    assert_eq!(
        browser.eval("location.search"),
        serde_json::json!(""),
        "the token left the address bar"
    );
    assert_eq!(
        browser.eval("document.cookie"),
        serde_json::json!(""),
        "HttpOnly"
    );
    vip_call(&server, "+46706170786");
    if let Err(text) = browser.wait_for_text(&["vip-desk", "transferred"], BOUND) {
        browser.fail("the live updates did not arrive with the cookie", &text);
    }
    let log = server.log();
    assert!(!log.contains(token), "the token is in the log");
}

/// The flow file the server runs (written by `start_vip_env` into the test's directory).
fn flow_file(server: &Server) -> PathBuf {
    let config = std::fs::read_to_string(server.dir.join("concierge.toml")).unwrap();
    let value: toml::Value = config.parse().unwrap();
    PathBuf::from(value["flows"]["default"].as_str().unwrap())
}

#[test]
fn the_reload_button_shows_why_check_refused_the_new_flows_at_file_and_line() {
    let (server, console) = server("console-reload", |f| f, "", &[]);
    let flow = flow_file(&server);
    let text = std::fs::read_to_string(&flow).unwrap();
    let broken = text.replacen("success = \"is_vip\"", "success = \"nowhere\"", 1);
    let line = broken
        .lines()
        .position(|l| l.contains("\"nowhere\""))
        .unwrap()
        + 1;
    std::fs::write(&flow, broken).unwrap();

    // Only the console page's own button may reload: a POST without its CSRF token is refused.
    let (status, body) = http(console, "POST", "/reload");
    assert_eq!(status, 403, "{body}");

    let mut browser = Browser::launch(&server.dir, 1000, 900);
    browser.goto(&format!("http://127.0.0.1:{console}/"));
    if let Err(text) = browser.wait_for("document.readyState === 'complete'", BOUND) {
        browser.fail("the console did not load", &text);
    }
    browser.eval("document.getElementById('reload').click()");
    let needle = format!("{}:{line}", Path::new(&flow).display());
    if let Err(text) = browser.wait_for_text(
        &["Reload refused", &needle, "unknown node \"nowhere\""],
        BOUND,
    ) {
        browser.fail(
            "the refusal does not show check's error at file:line",
            &text,
        );
    }
    // Mended, the same button applies it.
    std::fs::write(&flow, text).unwrap();
    browser.eval("document.getElementById('reload').click()");
    if let Err(text) = browser.wait_for_text(&["Reload applied"], BOUND) {
        browser.fail("the mended flows were not applied", &text);
    }
}

#[test]
fn a_console_without_its_token_does_not_start() {
    let dir = common::scratch_dir("console-refused");
    let run = |console: &str| {
        let config = dir.join("concierge.toml");
        std::fs::write(
            &config,
            format!(
                "[sip]\nlisten = \"127.0.0.1:{}\"\n[records]\npath = \"{}\"\n[demo]\ndirectory = false\n[console]\n{console}",
                free_port(),
                dir.join("calls.jsonl").display()
            ),
        )
        .unwrap();
        common::concierge_in(&dir, &["run", "--config", config.to_str().unwrap()])
    };
    let (ok, out) = run(&format!("listen = \"0.0.0.0:{}\"\n", free_port()));
    assert!(!ok && out.contains("console.token_env"), "{out}");
    let (ok, out) = run(&format!(
        "listen = \"127.0.0.1:{}\"\ntoken_env = \"CONCIERGE_TEST_UNSET_CONSOLE_TOKEN\"\n",
        free_port()
    ));
    assert!(
        !ok && out.contains("CONCIERGE_TEST_UNSET_CONSOLE_TOKEN") && out.contains("not set"),
        "{out}"
    );
}
