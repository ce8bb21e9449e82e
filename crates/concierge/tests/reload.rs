//! Hot reload of the real server: a call in progress when the flow file changes and
//! SIGHUP arrives finishes on the flow it started with; the next call runs the new one; a
//! broken flow is refused with a log line naming file, line and field while calls keep
//! working; the demo directory is re-read; SIGHUP never stops the process.

mod common;

use std::time::Duration;

use common::ops::{http, metric, scrape};
use common::{
    free_port, header, options_request, path_of, repo_root, scratch_dir, udp_request, wait_record,
    RawCall, Server,
};

const WAIT: Duration = Duration::from_secs(10);

/// A flow that asks for one key, then passes `marker` (a `set` node) and hangs up: which
/// flow a call ran shows in its path.
fn flow(marker: &str) -> String {
    format!(
        r#"name = "reloadable"
start = "ask"

[nodes.ask]
type = "keypad"
prompt = "enter_code"
save_as = "key"
max_digits = 1
first_digit_timeout_ms = 30000
done = "{marker}"
no_input = "{marker}"
invalid = "{marker}"

[nodes.{marker}]
type = "set"
values = {{ flow = "{marker}" }}
next = "bye"

[nodes.bye]
type = "hangup"
"#
    )
}

/// Keys one digit by SIP INFO and waits for the flow's BYE, which it answers.
fn key_and_expect_bye(call: &mut RawCall) {
    call.request(
        "INFO",
        0,
        "Content-Type: application/dtmf-relay\r\n",
        "Signal=5\r\nDuration=160\r\n",
    );
    let bye = call.sip.expect("BYE ", WAIT);
    call.reply(&bye, 200);
}

fn hup_and_wait_for(server: &Server, log_line: &str, seen_before: usize) {
    server.signal("-HUP");
    server.wait_log_count(log_line, seen_before + 1);
}

#[test]
fn calls_keep_their_flow_across_sighup_and_a_broken_flow_is_refused() {
    let dir = scratch_dir("reload-files");
    let flow_path = dir.join("flow.toml");
    std::fs::write(&flow_path, flow("old")).unwrap();
    let customers = dir.join("customers.csv");
    std::fs::write(
        &customers,
        "number,name,vip,tier,customer_id\n+46700000001,Old,false,,1\n",
    )
    .unwrap();
    let (metrics, crm) = (free_port(), free_port());
    let server = Server::start(
        "reload",
        "",
        &format!(
            "[flows]\ndefault = \"{}\"\n[prompts]\ndir = \"{}\"\n\
             [demo]\ndirectory = true\ndirectory_listen = \"127.0.0.1:{crm}\"\ncustomers = \"{}\"\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n",
            flow_path.display(),
            repo_root().join("prompts").display(),
            customers.display()
        ),
    );

    // A call in progress at the keypad of the old flow.
    let mut first = RawCall::invite(server.port, "+46700000001", "reload-first", "0 101");
    first.answer_and_ack();

    // The flow and the directory change; SIGHUP reloads them.
    std::fs::write(&flow_path, flow("new")).unwrap();
    std::fs::write(
        &customers,
        "number,name,vip,tier,customer_id\n+46700000002,New,true,gold,2\n",
    )
    .unwrap();
    hup_and_wait_for(&server, "reload applied", 0);
    assert_eq!(
        http(crm, "GET", "/customers/+46700000002").0,
        200,
        "the directory was re-read"
    );
    assert_eq!(http(crm, "GET", "/customers/+46700000001").0, 404);

    // The call in progress finishes on the flow it started with...
    key_and_expect_bye(&mut first);
    let old = wait_record(&server, "reload-first");
    assert_eq!(path_of(&old), ["ask:done", "old:next", "bye:-"]);
    // ...and the next call runs the new one, under a new version.
    let mut second = RawCall::invite(server.port, "+46700000001", "reload-second", "0 101");
    second.answer_and_ack();
    key_and_expect_bye(&mut second);
    let new = wait_record(&server, "reload-second");
    assert_eq!(path_of(&new), ["ask:done", "new:next", "bye:-"]);
    assert_eq!(old["flow"], "reloadable");
    assert_ne!(old["flow_version"], new["flow_version"]);

    // A broken flow (an exit to a node that does not exist) is refused, saying where.
    let broken = flow("newer").replace("next = \"bye\"", "next = \"nowhere\"");
    std::fs::write(&flow_path, &broken).unwrap();
    hup_and_wait_for(&server, "reload refused", 0);
    let log = server.log();
    let refused = log
        .lines()
        .find(|l| l.contains("reload refused: error:"))
        .expect("a refusal naming the problem");
    let line = broken.lines().position(|l| l.contains("nowhere")).unwrap() + 1;
    assert!(
        refused.contains(&format!("{}:{line}", flow_path.display())),
        "file and line: {refused}"
    );
    assert!(refused.contains("field \"next\""), "field: {refused}");

    // The new flow keeps serving.
    let mut third = RawCall::invite(server.port, "+46700000001", "reload-third", "0 101");
    third.answer_and_ack();
    key_and_expect_bye(&mut third);
    assert_eq!(
        path_of(&wait_record(&server, "reload-third")),
        ["ask:done", "new:next", "bye:-"]
    );
    let page = scrape(metrics);
    assert_eq!(
        metric(&page, "concierge_reloads_total{result=\"applied\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&page, "concierge_reloads_total{result=\"refused\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &page,
            &format!(
                "concierge_flow_version_info{{flow=\"reloadable\",version=\"{}\"}}",
                new["flow_version"].as_str().unwrap()
            )
        ),
        Some(1.0)
    );

    // A fixed flow over POST /-/reload: the answer says it was applied.
    std::fs::write(&flow_path, flow("newest")).unwrap();
    let (status, body) = http(metrics, "POST", "/-/reload");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("reloadable@"), "{body}");
    // `concierge reload` posts to the config's [metrics] listen and says what it answered.
    std::fs::write(&flow_path, &broken).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_concierge"))
        .args(["reload", "--config"])
        .arg(server.dir.join("concierge.toml"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a refused reload fails the command: {said}"
    );
    assert!(
        said.contains("reload refused") && said.contains("nowhere"),
        "{said}"
    );
    assert_eq!(
        metric(
            &scrape(metrics),
            "concierge_reloads_total{result=\"refused\"}"
        ),
        Some(2.0)
    );
}

#[test]
fn sighup_never_stops_the_process_and_restart_only_settings_are_named() {
    let dir = scratch_dir("reload-restart");
    let flow_path = dir.join("flow.toml");
    std::fs::write(&flow_path, flow("only")).unwrap();
    let mut server = Server::start(
        "reload-hup",
        "",
        &format!(
            "[flows]\ndefault = \"{}\"\n[prompts]\ndir = \"{}\"\n",
            flow_path.display(),
            repo_root().join("prompts").display()
        ),
    );
    // A burst of SIGHUPs, one while a call is up.
    let mut call = RawCall::invite(server.port, "+46700000001", "hup-call", "0 101");
    call.answer_and_ack();
    // Each signal as soon as the one before was taken (so the kernel cannot merge two
    // pending ones into one); the reloads they ask for still overlap.
    for _ in 0..5 {
        let taken = server.log().matches("SIGHUP: reloading").count();
        hup_and_wait_for(&server, "SIGHUP: reloading", taken);
    }
    key_and_expect_bye(&mut call);
    assert_eq!(path_of(&wait_record(&server, "hup-call"))[1], "only:next");
    assert_eq!(
        server.wait_exit(Duration::from_millis(500)),
        None,
        "still running"
    );
    let reply = udp_request(server.port, &options_request(server.port), WAIT, |_| true);
    let reply = reply.expect("an answer to OPTIONS");
    assert!(reply.starts_with("SIP/2.0 200"), "{reply}");
    assert!(header(&reply, "Call-ID").is_some(), "{reply}");

    // A setting only a restart applies: the reload goes ahead and names it.
    let config = server.dir.join("concierge.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\n[calls]\nmax_calls = 7\n")).unwrap();
    let applied = server.log().matches("reload applied").count();
    hup_and_wait_for(&server, "reload applied", applied);
    let log = server.log();
    let note = log
        .lines()
        .find(|l| l.contains("take effect only after a restart"))
        .expect("a restart note");
    assert!(note.contains("calls.max_calls"), "{note}");
    assert!(!note.contains("flows"), "{note}");
}
