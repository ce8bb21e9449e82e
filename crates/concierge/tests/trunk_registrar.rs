//! The real binary against a real registrar (issue 23): Kamailio with `registrar`,
//! `usrloc` (in memory) and Digest auth (`tests/kamailio/registrar.cfg`), started on free
//! loopback ports. Concierge registers and the location table holds its contact; a SIPp
//! caller dialling the address-of-record through Kamailio reaches Concierge's flow and is
//! REFERred for 101010; a short grant is refreshed before it lapses (with SHA-256);
//! shutdown, and a reload that removes the trunk, remove the binding; a wrong password
//! stops with a warning; over TCP a closed connection makes the trunk register again at
//! once; a bridged transfer through the trunk answers Kamailio's 407 with
//! the trunk's credentials — and the password is in no log, record, metric, status or
//! `check` output.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::proxy::sipp_from;
use common::registrar::{Binding, Registrar, RegistrarOptions};
use common::trunk::{table, TrunkServer};
use common::{free_port, scenario, scratch_dir, wait_records, wait_until, Server, PATIENCE};

/// The binary with trunk `carrier` registering `+4612345` at `registrar` with its user and
/// password, `more` lines in the trunk's table.
fn concierge(name: &str, registrar: &Registrar, more: &str) -> TrunkServer {
    let trunk = table(
        &format!("sip:127.0.0.1:{}", registrar.port),
        &registrar.options.user,
        more,
    );
    TrunkServer::start(name, "", &trunk, &registrar.options.password)
}

/// Our binding in the location table: the AoR's contact at our SIP port.
fn ours(table: &[Binding], server: &Server) -> Option<Binding> {
    let contact = format!("sip:+4612345@127.0.0.1:{}", server.port);
    table
        .iter()
        .find(|b| b.aor == "+4612345" && b.contact == contact)
        .cloned()
}

/// Waits for Kamailio to hold our binding.
#[track_caller]
fn wait_bound(registrar: &Registrar, server: &Server) -> Binding {
    let table = registrar.wait_for(PATIENCE, |t| ours(t, server).is_some());
    ours(&table, server).unwrap_or_else(|| {
        panic!(
            "no binding of ours: {table:?}\n--- Kamailio\n{}\n--- server\n{}",
            registrar.log(),
            common::tail(&server.log(), 40)
        )
    })
}

/// Waits for Kamailio to have dropped our binding.
#[track_caller]
fn wait_unbound(registrar: &Registrar, server: &Server) {
    let table = registrar.wait_for(PATIENCE, |t| ours(t, server).is_none());
    assert!(
        ours(&table, server).is_none(),
        "still bound: {table:?}\n{}",
        registrar.log()
    );
}

#[test]
fn harness_sipp_registers_with_digest_and_the_location_table_holds_its_contact() {
    let registrar = Registrar::start(RegistrarOptions::default());
    let dir = scratch_dir("sipp-register");
    let port = free_port();
    let out = Command::new("sipp")
        .args(["-sf", &scenario("register_once.xml"), "-s", "+4699"])
        .args([
            "-au",
            &registrar.options.user,
            "-ap",
            &registrar.options.password,
        ])
        .args(["-key", "expires", "600", "-m", "1", "-nostdin"])
        .args(["-timeout", "10", "-timeout_error"])
        .args(["-p", &port.to_string(), "-i", "127.0.0.1"])
        .arg(format!("127.0.0.1:{}", registrar.port))
        .current_dir(&dir)
        .output()
        .expect("SIPp runs (apt-get install -y sip-tester)");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        registrar.log()
    );
    let table = registrar.bindings();
    assert!(
        table
            .iter()
            .any(|b| b.aor == "+4699" && b.contact == format!("sip:+4699@127.0.0.1:{port}")),
        "{table:?}"
    );
}

#[test]
fn a_registered_concierge_gets_the_aor_s_calls_through_kamailio_and_refers_101010_to_the_vip_desk()
{
    let registrar = Registrar::start(RegistrarOptions::default());
    let concierge = concierge("kam-trunk-call", &registrar, "");
    let bound = wait_bound(&registrar, &concierge.server);
    assert!(bound.expires.is_some_and(|e| e > 3000), "{bound:?}");
    // A caller dials the address-of-record at the registrar, which finds our contact.
    let run = sipp_from(
        free_port(),
        registrar.port,
        &[
            "-sf",
            &scenario("trunk_caller_101010.xml"),
            "-key",
            "aor",
            "+4612345",
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
    let context = format!(
        "{}\n--- Kamailio\n{}\n--- server\n{}",
        run.report,
        registrar.log(),
        common::tail(&concierge.server.log(), 40)
    );
    assert!(run.ok, "{context}");
    assert!(
        registrar.full_log().contains(&format!(
            "relaying INVITE for sip:+4612345@127.0.0.1:{}",
            registrar.port
        )),
        "the call went through the location table: {context}"
    );
    let refer_to = run
        .report
        .lines()
        .find_map(|l| l.strip_prefix("REFER-TO "))
        .unwrap_or_default();
    assert!(refer_to.contains("vip-desk@"), "{context}");
    let record = wait_records(&concierge.server, 1).pop().expect("a record");
    assert_eq!(record["caller"], "+46700000009", "{record}");
    assert_eq!(record["transfer"]["mode"], "refer", "{record}");
    assert_eq!(record["transfer"]["result"], "succeeded", "{record}");
}

#[test]
fn rfc3261_10_2_4_a_short_grant_is_refreshed_before_it_lapses_with_a_sha_256_digest() {
    let registrar = Registrar::start(RegistrarOptions {
        algorithm: "SHA-256".into(),
        max_expires: 10,
        ..RegistrarOptions::default()
    });
    let concierge = concierge("kam-trunk-refresh", &registrar, "");
    wait_bound(&registrar, &concierge.server);
    let registered = || {
        registrar
            .full_log()
            .matches("registered sip:+4612345")
            .count()
    };
    let first = registered();
    // Granted 10 s, refreshed at 5 s: two more successful REGISTERs within 12 s, and the
    // binding never lapses meanwhile.
    wait_until(Duration::from_secs(15), "two refreshes", || {
        let table = registrar.bindings();
        match (ours(&table, &concierge.server), registered()) {
            (None, _) => panic!("the binding lapsed: {}", registrar.log()),
            (Some(_), n) if n >= first + 2 => Ok(()),
            (Some(_), n) => Err(format!("{n} registrations")),
        }
    });
    let status = concierge.status();
    assert!(status.contains("registered, expires in"), "{status}");
}

#[test]
fn shutdown_removes_the_binding_before_the_process_ends() {
    let registrar = Registrar::start(RegistrarOptions::default());
    let mut concierge = concierge("kam-trunk-shutdown", &registrar, "");
    wait_bound(&registrar, &concierge.server);
    concierge.server.signal("-TERM");
    assert_eq!(
        concierge.server.wait_exit(PATIENCE),
        Some(true),
        "{}",
        concierge.server.log()
    );
    // The process waited for the registrar's answer: the binding is gone already.
    assert_eq!(ours(&registrar.bindings(), &concierge.server), None);
    let log = concierge.server.log();
    assert!(
        log.contains("trunk unregistered") && log.contains("binding=\"removed\""),
        "{log}"
    );
}

#[test]
fn rfc5626_over_tcp_a_closed_connection_to_the_registrar_makes_the_trunk_register_again_at_once() {
    let registrar = Registrar::start(RegistrarOptions {
        tcp: true,
        ..RegistrarOptions::default()
    });
    let concierge = concierge("kam-trunk-tcp", &registrar, "transport = \"tcp\"\n");
    concierge.wait_status("registered, expires in");
    let table = registrar.bindings();
    let contact = format!(
        "sip:+4612345@127.0.0.1:{};transport=tcp",
        concierge.server.port
    );
    assert!(table.iter().any(|b| b.contact == contact), "{table:?}");
    // The registrar goes away with its connection. The binding would be refreshed only
    // in half an hour; a closed connection sends the REGISTER now, which finds no one.
    drop(registrar);
    let warning = concierge.log_line("trunk registration failed; retrying");
    assert!(warning.contains("trunk=\"carrier\""), "{warning}");
}

#[test]
fn a_reload_that_removes_the_trunk_removes_its_binding() {
    let registrar = Registrar::start(RegistrarOptions::default());
    let concierge = concierge("kam-trunk-reload", &registrar, "");
    wait_bound(&registrar, &concierge.server);
    let path = concierge.config();
    let text = std::fs::read_to_string(&path).expect("the config");
    let (before, rest) = text.split_once("[[trunks]]").expect("a trunk table");
    let after = rest.find("\n[").map_or("", |i| &rest[i..]);
    std::fs::write(&path, format!("{before}{after}")).expect("write the config");
    let (status, body) = common::ops::http(concierge.metrics, "POST", "/-/reload");
    assert_eq!(status, 200, "{body}");
    wait_unbound(&registrar, &concierge.server);
    concierge.wait_status("trunks: none configured");
}

#[test]
fn a_wrong_password_stops_the_registration_with_a_warning_naming_the_trunk() {
    let registrar = Registrar::start(RegistrarOptions::default());
    let trunk = table(
        &format!("sip:127.0.0.1:{}", registrar.port),
        &registrar.options.user,
        "",
    );
    let concierge = TrunkServer::start("kam-trunk-wrong", "", &trunk, "not-the-password");
    let status = concierge.wait_status("failed (the registrar rejected the credentials)");
    let warning = concierge.log_line("trunk registration stopped");
    assert!(
        warning.contains("WARN")
            && warning.contains("trunk=\"carrier\"")
            && warning.contains("check the trunk's username, auth_username and password"),
        "{warning}"
    );
    assert_eq!(
        registrar.full_log().matches("wrong password for").count(),
        1,
        "one answer to the challenge, no hammering: {}\n{status}",
        registrar.log()
    );
    assert_eq!(ours(&registrar.bindings(), &concierge.server), None);
}

/// Every call out of the flow goes through the trunk: a bridge to `+4699` at the trunk.
const CALL_OUT: &str = r#"start = "out"

[nodes.out]
type = "transfer"
target = "sip:+4699@trunk:carrier"
headers = { X-Concierge-Tier = "member" }
mode = "bridge"
failed = "sorry"

[nodes.sorry]
type = "hangup"
"#;

#[test]
fn a_bridged_transfer_through_the_trunk_answers_its_407_with_the_trunk_s_credentials_and_no_output_shows_the_password(
) {
    // The queue behind the trunk: a SIPp UAS Kamailio relays calls out to.
    let queue_port = free_port();
    let queue = Command::new("sipp")
        .args(["-sf", &scenario("queue_uas.xml")])
        .args(["-i", "127.0.0.1", "-p", &queue_port.to_string()])
        .args(["-mp", &common::sipp_media_port().to_string(), "-rtp_echo"])
        .args(["-m", "1", "-nostdin", "-timeout", "40", "-timeout_error"])
        .args(["-trace_err"])
        .current_dir(scratch_dir("trunk-queue"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("SIPp for the queue");
    let registrar = Registrar::start(RegistrarOptions {
        outbound_uas: Some(queue_port),
        ..RegistrarOptions::default()
    });
    let password = registrar.options.password.clone();
    let trunk = table(
        &format!("sip:127.0.0.1:{}", registrar.port),
        &registrar.options.user,
        "",
    );
    let concierge = TrunkServer::start_with(
        "kam-trunk-bridge",
        |_| CALL_OUT.into(),
        "",
        &trunk,
        &password,
    );
    wait_bound(&registrar, &concierge.server);
    // A caller whose flow bridges it out through the trunk; it talks 4 s and hangs up.
    let out = common::sipp(
        &concierge.server,
        &[
            "-sf",
            &scenario("pcma_caller.xml"),
            "-d",
            "4000",
            "-m",
            "1",
            "-timeout",
            "40",
            "-timeout_error",
        ],
    );
    common::assert_sipp_ok(&out, &concierge.server);
    let queue = queue.wait_with_output().expect("the queue's SIPp");
    let kamailio = registrar.full_log();
    assert!(
        queue.status.success(),
        "the queue got the call and its BYE:\n{kamailio}"
    );
    assert!(
        kamailio.contains(&format!(
            "relaying INVITE for +4699 out to sip:127.0.0.1:{queue_port}"
        )),
        "the INVITE passed Kamailio's challenge: {kamailio}"
    );
    let record = wait_records(&concierge.server, 1).pop().expect("a record");
    assert_eq!(record["transfer"]["mode"], "bridge", "{record}");
    assert!(
        record["transfer"]["result"]
            .as_str()
            .is_some_and(|r| r.starts_with("answered")),
        "{record}"
    );

    // The password went into two Digest answers (REGISTER, INVITE) and nowhere else.
    let config = concierge.config().display().to_string();
    let (checked, check) = concierge.concierge(&["check", &config]);
    assert!(checked, "{check}");
    assert!(check.contains("trunk carrier: registers"), "{check}");
    let outputs = [
        ("log", concierge.server.log()),
        ("records", format!("{:?}", concierge.server.records())),
        ("metrics", concierge.scrape()),
        ("status", concierge.status()),
        ("check", check),
    ];
    for (what, text) in outputs {
        assert!(!text.contains(&password), "the password is in the {what}");
    }
    assert!(concierge
        .scrape()
        .contains("concierge_trunk_state{trunk=\"carrier\",state=\"registered\"} 1"));
}
