//! Caller identity, the code lockout and secrets through the real server on 127.0.0.1:
//! raw-socket and SIPp callers, the reference flow and its demo customer directory.

mod common;

use std::time::Duration;

use common::{
    assert_sipp_ok, header, path_of, scenario, sipp, start_vip, start_vip_with, wait_record,
    RawCall,
};

const WAIT: Duration = Duration::from_secs(30);

use common::calls::code_call_with as code_call;

const NOBODY_TRUSTED: &str = "trusted_peers = []\n";
const VIP_PAI: &str = "P-Asserted-Identity: <sip:+46706170786@carrier.example;user=phone>\r\n";

#[test]
fn with_no_trusted_peers_a_vip_number_in_from_or_pai_must_give_the_code() {
    let server = start_vip_with("untrusted", |f| f, NOBODY_TRUSTED, "");
    // The VIP's number in From: only claimed.
    let (to, rec) = code_call(&server, "+46706170786", "claimed-from", "999999", "");
    assert!(to.starts_with("<sip:service-desk@"), "{to}");
    assert_eq!(
        (rec["caller"].as_str(), rec["verified"].as_bool()),
        (Some("+46706170786"), Some(false))
    );
    assert!(
        path_of(&rec).contains(&"is_verified:default".to_string()),
        "{:?}",
        path_of(&rec)
    );
    // The VIP's number in P-Asserted-Identity, From anonymous: the PAI is ignored.
    let (to, rec) = code_call(&server, "anonymous", "claimed-pai", "999999", VIP_PAI);
    assert!(to.starts_with("<sip:service-desk@"), "{to}");
    assert_eq!(
        (rec["caller"].as_str(), rec["verified"].as_bool()),
        (Some(""), Some(false))
    );
    assert!(
        path_of(&rec).contains(&"ask_code:done".to_string()),
        "{:?}",
        path_of(&rec)
    );
    // With the code, the claimed VIP gets through like anyone with the code.
    let (to, _) = code_call(&server, "+46706170786", "claimed-code", "101010", "");
    assert!(
        to.starts_with("<sip:vip-desk@") && to.contains("X-Concierge-Tier=gold"),
        "{to}"
    );
}

#[test]
fn a_trusted_peer_s_pai_identifies_a_vip() {
    let server = start_vip("trusted-pai", |f| f, "");
    let mut call = RawCall::invite_with(server.port, "anonymous", "asserted", "0 101", VIP_PAI);
    call.answer_and_ack();
    let refer = call.sip.expect("REFER ", WAIT);
    let to = header(&refer, "Refer-To").unwrap();
    assert!(
        to.starts_with("<sip:vip-desk@") && to.contains("X-Concierge-Tier=member"),
        "{to}"
    );
    call.bye();
    let rec = wait_record(&server, "asserted");
    assert_eq!(
        (rec["caller"].as_str(), rec["verified"].as_bool()),
        (Some("+46706170786"), Some(true))
    );
    // A carrier that says the number failed STIR/SHAKEN: the code is asked for.
    let failed = VIP_PAI.replace(";user=phone", ";user=phone;verstat=TN-Validation-Failed");
    let (to, rec) = code_call(&server, "anonymous", "verstat-failed", "999999", &failed);
    assert!(to.starts_with("<sip:service-desk@"), "{to}");
    assert_eq!(rec["verstat"], "TN-Validation-Failed");
    assert!(
        path_of(&rec).contains(&"verstat_ok:default".to_string()),
        "{:?}",
        path_of(&rec)
    );
}

/// [`code_call`] on a thread of its own; the thread returns the Refer-To.
fn code_call_thread(
    port: u16,
    caller: &str,
    call_id: &str,
    code: &str,
) -> std::thread::JoinHandle<String> {
    let (caller, call_id, code) = (caller.to_owned(), call_id.to_owned(), code.to_owned());
    std::thread::spawn(move || {
        let mut call = RawCall::invite(port, &caller, &call_id, "0 101");
        call.answer_and_ack();
        for d in code.chars() {
            call.request(
                "INFO",
                0,
                "Content-Type: application/dtmf-relay\r\n",
                &format!("Signal={d}\r\nDuration=160\r\n"),
            );
            call.sip.expect("SIP/2.0 200", WAIT);
        }
        let refer = call.sip.expect("REFER ", WAIT);
        call.bye();
        header(&refer, "Refer-To").unwrap().to_owned()
    })
}

#[test]
fn five_wrong_codes_lock_a_number_while_another_number_s_code_works() {
    let server = start_vip("lockout", |f| f, "");
    // Five wrong codes from one number, in five calls at once.
    let wrong: Vec<_> = (0..5)
        .map(|i| code_call_thread(server.port, "+46700000009", &format!("wrong{i}"), "999999"))
        .collect();
    for call in wrong {
        let to = call.join().unwrap();
        assert!(to.starts_with("<sip:service-desk@"), "{to}");
    }
    for i in 0..5 {
        let rec = wait_record(&server, &format!("wrong{i}"));
        assert!(
            path_of(&rec).contains(&"check_code:default".to_string()),
            "{rec}"
        );
    }
    // Now the right code from that number, and from another number at the same time.
    let other = code_call_thread(server.port, "+46700000003", "other-right", "101010");
    let (to, rec) = code_call(&server, "+46700000009", "locked-right", "101010", "");
    assert!(
        to.starts_with("<sip:service-desk@"),
        "the locked number: {to}"
    );
    assert!(
        path_of(&rec).contains(&"ask_code:locked".to_string()),
        "{:?}",
        path_of(&rec)
    );
    assert_eq!(rec["lockout"], "codes: number");
    let to = other.join().unwrap();
    assert!(
        to.starts_with("<sip:vip-desk@") && to.contains("X-Concierge-Tier=gold"),
        "another number: {to}"
    );
    // The lock was logged once, when it came into force.
    let log = server.log();
    assert_eq!(
        log.matches("too many failed attempts from this number")
            .count(),
        1,
        "{}",
        common::tail(&log, 40)
    );
}

#[test]
fn codes_appear_in_no_record_no_debug_log_and_no_simulate_output() {
    // The server's log is at RUST_LOG=debug (the harness sets it).
    let server = start_vip("secrets", |f| f, "");
    let out = sipp(
        &server,
        &[
            "-sf",
            &scenario("keypad_101010_refer.xml"),
            "-key",
            "caller",
            "+46700000009",
            "-m",
            "1",
            "-timeout",
            "40",
            "-timeout_error",
        ],
    );
    assert_sipp_ok(&out, &server);
    code_call(&server, "+46700000003", "secret-silver", "202020", "");
    code_call(&server, "+46700000004", "secret-wrong", "999999", "");
    common::wait_records(&server, 3);
    let records = std::fs::read_to_string(server.dir.join("calls.jsonl")).unwrap();
    let log = std::fs::read_to_string(server.dir.join("server.log")).unwrap();
    assert!(log.contains("DEBUG"), "the log is at debug level");
    assert!(
        records.contains("\"*\""),
        "the keys are in the records, as stars"
    );
    for code in ["101010", "202020", "999999"] {
        assert!(!records.contains(code), "{code} in the records:\n{records}");
        assert!(
            !log.contains(code),
            "{code} in the log:\n{}",
            grep(&log, code)
        );
    }

    // `simulate` prints the path and variables but not what was typed, unless asked.
    let root = common::repo_root();
    let dir = common::scratch_dir("simulate-secrets");
    let crm = common::free_port();
    std::fs::write(
        dir.join("concierge.toml"),
        // Paths in a config are read from its own directory: name the repository's.
        format!(
            "[demo]\ndirectory_listen = \"127.0.0.1:{crm}\"\ncustomers = \"{}\"\n[prompts]\ndir = \"{}\"\n",
            root.join("config/customers.csv").display(),
            root.join("prompts").display()
        ),
    )
    .unwrap();
    let simulate = |code: &str, extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_concierge"))
            .args(["simulate", "--flow"])
            // The shipped flow reaches this config's directory as {system.directory_url}.
            .arg(root.join("config/flows/vip.toml"))
            .args(["--caller", "+46700000009", "--digits", code, "--config"])
            .arg(dir.join("concierge.toml"))
            .args(extra)
            .current_dir(&root)
            .output()
            .expect("concierge simulate");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    for code in ["101010", "202020", "999999"] {
        for extra in [&[][..], &["--json"][..]] {
            let shown = simulate(code, extra);
            assert!(shown.contains("check_code"), "{shown}");
            assert!(
                !shown.contains(code),
                "{code} in simulate {extra:?}:\n{shown}"
            );
        }
    }
    assert!(
        simulate("202020", &["--json", "--reveal-secrets"]).contains("202020"),
        "--reveal-secrets shows them"
    );
}

fn grep(text: &str, needle: &str) -> String {
    text.lines()
        .filter(|l| l.contains(needle))
        .collect::<Vec<_>>()
        .join("\n")
}
