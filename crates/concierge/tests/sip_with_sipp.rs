//! The SIP core against SIPp, the tool load tests and carriers use: every scenario runs
//! the real binary on 127.0.0.1 and requires SIPp to report zero failed calls.

mod common;

use common::{assert_sipp_ok, scenario, sipp, Server};

#[test]
fn sipp_uac_completes_500_calls_over_udp() {
    let server = Server::start("uac-udp", "", "");
    let out = sipp(
        &server,
        &[
            "-sn",
            "uac",
            "-m",
            "500",
            "-r",
            "50",
            "-l",
            "200",
            "-timeout",
            "60",
            "-timeout_error",
        ],
    );
    assert_sipp_ok(&out, &server);
    assert_eq!(server.records().len(), 500, "a record for every call");
}

#[test]
fn sipp_uac_completes_500_calls_over_tcp() {
    let server = Server::start("uac-tcp", "", "");
    let out = sipp(
        &server,
        &[
            "-sn",
            "uac",
            "-t",
            "t1",
            "-m",
            "500",
            "-r",
            "50",
            "-l",
            "200",
            "-timeout",
            "60",
            "-timeout_error",
        ],
    );
    assert_sipp_ok(&out, &server);
}

#[test]
fn cancel_before_answer_gets_200_then_487() {
    let server = Server::start("cancel", "", "[calls]\nanswer_after_ms = 5000\n");
    let out = sipp(
        &server,
        &[
            "-sf",
            &scenario("cancel_before_answer.xml"),
            "-m",
            "5",
            "-r",
            "5",
            "-timeout",
            "30",
            "-timeout_error",
        ],
    );
    assert_sipp_ok(&out, &server);
    assert!(server
        .log()
        .contains("cancelled by the caller before the answer"));
    let records = common::wait_records(&server, 5);
    assert_eq!(
        records.len(),
        5,
        "one record per call, abandoned ones included"
    );
    assert!(records
        .iter()
        .all(|r| r["reason"] == "cancelled before the answer" && r["answered_ms"].is_null()));
}

#[test]
fn withheld_ack_gets_200_retransmitted_then_bye() {
    // T1 = 100 ms: retransmissions at 0.1, 0.3, 0.7 s …, BYE at 64·T1 = 6.4 s.
    let server = Server::start("no-ack", "t1_ms = 100\nt2_ms = 400\n", "");
    let out = sipp(
        &server,
        &[
            "-sf",
            &scenario("no_ack.xml"),
            "-m",
            "1",
            "-timeout",
            "30",
            "-timeout_error",
        ],
    );
    assert_sipp_ok(&out, &server);
    assert!(server.log().contains("no ACK for our 200 OK"));
    // With T1 = 100 ms and T2 = 400 ms, 6.4 s hold 0.1, 0.3, 0.7, 1.1 … : about 16.
    let retrans =
        retransmissions_of_first(&String::from_utf8_lossy(&out.stdout), "200 <----------");
    assert!(
        (10..=20).contains(&retrans),
        "200 OK retransmitted {retrans} times"
    );
}

#[test]
fn options_ping_gets_200_with_allow_accept_supported() {
    let server = Server::start("options", "", "");
    let out = sipp(
        &server,
        &[
            "-sf",
            &scenario("options_ping.xml"),
            "-m",
            "3",
            "-timeout",
            "15",
            "-timeout_error",
        ],
    );
    assert_sipp_ok(&out, &server);
}

#[test]
fn options_ping_over_tcp() {
    let server = Server::start("options-tcp", "", "");
    let out = sipp(
        &server,
        &[
            "-sf",
            &scenario("options_ping.xml"),
            "-t",
            "t1",
            "-m",
            "3",
            "-timeout",
            "15",
            "-timeout_error",
        ],
    );
    assert_sipp_ok(&out, &server);
}

/// The Retrans column of the first scenario-screen line that starts with `row`.
fn retransmissions_of_first(screen: &str, row: &str) -> u32 {
    screen
        .lines()
        .find(|l| l.trim_start().starts_with(row))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {row:?} row in the SIPp report:\n{screen}"))
}
