//! Whole calls through the VIP flow on raw sockets, as several tests place them: a verified
//! VIP waiting for the REFER, and a caller keying a code by SIP INFO.

use std::time::Duration;

use super::{assert_sipp_ok, header, scenario, sipp, wait_record, RawCall, Server};

const WAIT: Duration = Duration::from_secs(30);

/// Runs the SIPp caller scenario `file` (`tests/sipp`) once from `caller` to its end,
/// failing the test unless the call succeeded; returns the Refer-To the scenario logged
/// (`REFER-TO <uri>`), if it logged one.
pub fn sipp_caller(server: &Server, file: &str, caller: &str) -> Option<String> {
    let out = sipp(
        server,
        &[
            "-sf",
            &scenario(file),
            "-key",
            "caller",
            caller,
            "-m",
            "1",
            "-timeout",
            "40",
            "-timeout_error",
            "-trace_logs",
        ],
    );
    assert_sipp_ok(&out, server);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("REFER-TO "))
        .map(str::to_owned)
}

/// A caller (verified when loopback is trusted) is answered, waits for the REFER and hangs
/// up; returns the Refer-To and the record.
pub fn vip_call(server: &Server, caller: &str, call_id: &str) -> (String, serde_json::Value) {
    let mut call = RawCall::invite(server.port, caller, call_id, "0 101");
    call.answer_and_ack();
    let refer = call.sip.expect("REFER ", WAIT);
    let refer_to = header(&refer, "Refer-To").expect("Refer-To").to_owned();
    call.bye();
    (refer_to, wait_record(server, call_id))
}

/// A caller that keys `code` by SIP INFO after the ACK (type-ahead skips the welcome);
/// returns the Refer-To and the record.
pub fn code_call(
    server: &Server,
    caller: &str,
    call_id: &str,
    code: &str,
) -> (String, serde_json::Value) {
    code_call_with(server, caller, call_id, code, "")
}

/// As [`code_call`], with `extra` header lines in the INVITE (each ending in CRLF).
pub fn code_call_with(
    server: &Server,
    caller: &str,
    call_id: &str,
    code: &str,
    extra: &str,
) -> (String, serde_json::Value) {
    let mut call = RawCall::invite_with(server.port, caller, call_id, "0 101", extra);
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
    let refer_to = header(&refer, "Refer-To").expect("Refer-To").to_owned();
    call.bye();
    (refer_to, wait_record(server, call_id))
}
