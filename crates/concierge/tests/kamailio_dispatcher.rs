//! Two real Concierge instances behind Kamailio running the shipped
//! `deploy/kamailio/kamailio.cfg` on free loopback ports, SIPp calling through it and
//! following its Record-Route. Calls spread over both instances and complete; `kill -9`
//! of one loses only the calls it had; SIGTERM of one loses none (it answers 503 while it
//! drains, so the dispatcher fails new calls over to the other). And a real softphone
//! (PJSIP) whose ACK and BYE go through Kamailio.

mod common;

use std::time::Duration;

use common::proxy::{sipp_from, Kamailio, SippRun};
use common::{free_port, scenario, wait_records, wait_until, Server, PATIENCE};

/// An instance named `name` (plain answer-and-hold, no flow).
fn instance(name: &str) -> Server {
    Server::start(
        &format!("kam-{name}"),
        "",
        &format!("[server]\ninstance = \"{name}\"\n[calls]\ndrain_timeout_s = 30\n"),
    )
}

/// `calls` calls at `rate`/s through Kamailio, each lasting `hold_ms`.
fn calls_through(kamailio: &Kamailio, calls: u32, rate: u32, hold_ms: u32) -> SippRun {
    sipp_from(
        free_port(),
        kamailio.port,
        &[
            "-sf",
            &scenario("kamailio_caller.xml"),
            "-m",
            &calls.to_string(),
            "-r",
            &rate.to_string(),
            "-d",
            &hold_ms.to_string(),
            "-timeout",
            "40",
            "-timeout_error",
        ],
    )
}

fn report(run: &SippRun, kamailio: &Kamailio, servers: &[&Server]) -> String {
    let mut s = format!("--- SIPp\n{}\n--- Kamailio\n{}", run.report, kamailio.log());
    for server in servers {
        s.push_str(&format!(
            "\n--- {}\n{}",
            server.dir.display(),
            common::tail(&server.log(), 30)
        ));
    }
    s
}

/// The log line of a call set up on an instance (the ACK came, the call is up).
const CONFIRMED: &str = "call confirmed by ACK";

/// Waits until `calls` calls are up across `servers` (each holds its calls for a while).
#[track_caller]
fn wait_calls_up(servers: &[&Server], calls: usize) {
    wait_until(PATIENCE, format_args!("{calls} calls up"), || {
        let up: Vec<usize> = servers
            .iter()
            .map(|s| s.log().matches(CONFIRMED).count())
            .collect();
        if up.iter().sum::<usize>() >= calls {
            Ok(())
        } else {
            Err(format!("calls up per instance: {up:?}"))
        }
    });
}

/// The records of both instances once there are `n` between them.
#[track_caller]
fn records_of_both(
    a: &Server,
    b: &Server,
    n: usize,
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    wait_until(PATIENCE, format_args!("{n} records on a and b"), || {
        let (ra, rb) = (a.records(), b.records());
        if ra.len() + rb.len() >= n {
            Ok((ra, rb))
        } else {
            Err(format!("{} on a, {} on b", ra.len(), rb.len()))
        }
    })
}

#[test]
fn calls_through_kamailio_spread_over_both_instances_and_all_complete() {
    let (a, b) = (instance("a"), instance("b"));
    let kamailio = Kamailio::start(&[a.port, b.port], 1);
    let run = calls_through(&kamailio, 10, 10, 500);
    assert!(
        run.ok && run.successful == 10,
        "{}",
        report(&run, &kamailio, &[&a, &b])
    );
    let (ra, rb) = records_of_both(&a, &b, 10);
    assert_eq!(ra.len() + rb.len(), 10);
    assert!(
        !ra.is_empty() && !rb.is_empty(),
        "both instances took calls: {} / {}",
        ra.len(),
        rb.len()
    );
    for (records, name) in [(&ra, "a"), (&rb, "b")] {
        for r in records.iter() {
            assert_eq!(r["instance"], name);
            assert_eq!(
                r["reason"], "hung up",
                "ended by the caller's BYE through Kamailio: {r}"
            );
        }
    }
    // Each instance's log lines name it.
    assert!(a
        .log()
        .lines()
        .filter(|l| l.contains("incoming call"))
        .all(|l| l.contains("instance=a")));
    assert!(b.log().contains("instance=b"));
}

#[test]
fn kill_9_of_one_instance_loses_only_its_calls_in_progress_and_new_calls_go_to_the_other() {
    let (a, b) = (instance("a"), instance("b"));
    let kamailio = Kamailio::start(&[a.port, b.port], 1);
    // Ten calls of 4 s, all set up within a second, alternating between the instances;
    // a dies while they are all up.
    let long = std::thread::scope(|s| {
        let k = &kamailio;
        let long = s.spawn(move || calls_through(k, 10, 10, 4000));
        wait_calls_up(&[&a, &b], 10);
        a.signal("-KILL");
        long.join().expect("SIPp thread")
    });
    // A record for each call on b that SIPp saw complete.
    let rb = wait_records(&b, long.successful as usize);
    assert_eq!(
        long.successful + long.failed,
        10,
        "{}",
        report(&long, &kamailio, &[&b])
    );
    assert_eq!(
        long.successful as usize,
        rb.len(),
        "every call on b completed, every call on a was lost\n{}",
        report(&long, &kamailio, &[&b])
    );
    assert!(
        long.failed >= 1 && !rb.is_empty(),
        "{}",
        report(&long, &kamailio, &[&b])
    );
    // New calls: a is dead; the dispatcher fails over (408 after its timer) and then
    // takes a out of the set. All complete, on b.
    let after = calls_through(&kamailio, 6, 6, 200);
    assert!(
        after.ok && after.successful == 6,
        "{}",
        report(&after, &kamailio, &[&b])
    );
    assert_eq!(wait_records(&b, rb.len() + 6).len(), rb.len() + 6);
}

#[test]
fn sigterm_of_one_instance_loses_no_call() {
    let (mut a, b) = (instance("a"), instance("b"));
    let kamailio = Kamailio::start(&[a.port, b.port], 1);
    let (long, more) = std::thread::scope(|s| {
        let k = &kamailio;
        let long = s.spawn(move || calls_through(k, 10, 10, 3000));
        // Told to stop while all ten calls are up.
        wait_calls_up(&[&a, &b], 10);
        a.signal("-TERM");
        a.wait_log("draining: new calls get 503");
        // Draining with calls in progress: a's answer to a probe is 503 (issue 9).
        let probe = common::udp_exchange(
            a.port,
            &common::options_request(a.port),
            Duration::from_millis(500),
        );
        assert!(
            probe
                .iter()
                .any(|r| r.starts_with("SIP/2.0 503") && r.contains("Retry-After")),
            "{probe:?}"
        );
        // New calls while a drains: each one a still gets is failed over to b.
        let more = calls_through(k, 10, 10, 200);
        (long.join().expect("SIPp thread"), more)
    });
    assert!(
        long.ok && long.successful == 10,
        "{}",
        report(&long, &kamailio, &[&a, &b])
    );
    assert!(
        more.ok && more.successful == 10,
        "{}",
        report(&more, &kamailio, &[&a, &b])
    );
    // a finished its calls and stopped by itself.
    assert_eq!(
        a.wait_exit(Duration::from_secs(10)),
        Some(true),
        "a exits once drained"
    );
    let ra = a.records();
    let rb = wait_records(&b, 20 - ra.len());
    assert!(!ra.is_empty(), "a had calls when it was told to stop");
    assert!(ra.iter().all(|r| r["reason"] == "hung up"), "{ra:?}");
    assert_eq!(ra.len() + rb.len(), 20, "every call has exactly one record");
}

#[test]
fn a_pjsip_phone_through_kamailio_sends_its_ack_and_bye_along_the_record_route() {
    let python = common::pjsua2_python();
    let a = common::start_vip("kam-vip", |f| f, "[server]\ninstance = \"a\"\n");
    let kamailio = Kamailio::start(&[a.port], 1);
    let dir = common::scratch_dir("pjsua2-kamailio");
    let log = dir.join("pjsip.log");
    let out = std::process::Command::new(python)
        .arg(common::repo_root().join("tests/peers/pjsua2/tcp_caller.py"))
        .args(["--transport", "udp", "--after-refer", "1"])
        .arg("--uri")
        .arg(format!("sip:ivr@127.0.0.1:{}", kamailio.port))
        .arg("--wav")
        .arg(dir.join("heard.wav"))
        .arg("--log")
        .arg(&log)
        .output()
        .expect("run the pjsua2 caller");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pjsip_log = std::fs::read_to_string(&log).unwrap_or_default();
    let context = format!(
        "stdout: {stdout}\n--- PJSIP log (tail)\n{}\n--- Kamailio\n{}\n--- server\n{}",
        common::tail(&pjsip_log, 80),
        kamailio.log(),
        common::tail(&a.log(), 40)
    );
    let summary: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no summary from the caller\n{context}"));
    assert_eq!(summary["confirmed"], true, "{context}");
    assert!(
        summary["refer_to"]
            .as_str()
            .unwrap_or_default()
            .contains("vip-desk@"),
        "{context}"
    );
    assert_eq!(summary["disconnect_code"], 200, "{context}");
    // The phone's ACK and BYE carried Kamailio's Record-Route as Route.
    let route = format!("Route: <sip:127.0.0.1:{};lr", kamailio.port);
    for method in ["ACK", "BYE"] {
        let sent = pjsip_log
            .split("TX ")
            .find(|m| m.contains(&format!("\n{method} sip:")))
            .unwrap_or_else(|| panic!("no {method} sent\n{context}"));
        assert!(sent.contains(&route), "{method} without {route}: {sent}");
    }
    let rec = common::wait_records(&a, 1).pop().unwrap();
    assert_eq!(
        (rec["ended_by"].as_str(), rec["reason"].as_str()),
        (Some("caller"), Some("hung up")),
        "{rec}"
    );
    assert_eq!(rec["instance"], "a");
    assert!(!a.log().contains("no ACK"), "{context}");
}
