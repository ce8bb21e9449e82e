//! A real softphone with only a TCP transport (PJSIP's pjsua2 from PyPI) calls the VIP
//! flow over TCP: it must get a Contact it can use (`;transport=tcp`, RFC 3261 §19.1.4),
//! so its ACK and BYE reach us, hear the welcome prompt, receive our REFER on its own
//! connection, and end the call cleanly. And RFC 5626 §3.5.1 keep-alives on TCP.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::{pjsua2_python, repo_root, scratch_dir, start_vip, wait_record, Server};

#[test]
fn a_tcp_only_pjsip_phone_hears_the_prompt_is_referred_and_ends_cleanly() {
    let python = pjsua2_python();
    let server = start_vip("pjsua2-tcp", |f| f, "");
    let dir = scratch_dir("pjsua2");
    let wav = dir.join("heard.wav");
    let log = dir.join("pjsip.log");
    let out = Command::new(python)
        .arg(repo_root().join("tests/peers/pjsua2/tcp_caller.py"))
        .arg("--uri")
        .arg(format!("sip:ivr@127.0.0.1:{};transport=tcp", server.port))
        .arg("--wav")
        .arg(&wav)
        .arg("--log")
        .arg(&log)
        .output()
        .expect("run the pjsua2 caller");
    let common::proxy::PhoneRun {
        summary,
        pjsip_log,
        context,
    } = common::proxy::phone_run(&out, &log, &server.log(), 60);
    assert_eq!(summary["confirmed"], true, "{context}");
    assert_eq!(
        summary["tx_errors"],
        serde_json::json!([]),
        "every send worked: {context}"
    );
    assert!(
        summary["rms"].as_f64().unwrap_or(0.0) > 300.0,
        "the welcome prompt was heard: {summary}"
    );
    let refer_to = summary["refer_to"].as_str().unwrap_or_default();
    assert!(refer_to.contains("vip-desk@"), "{context}");
    assert_eq!(
        summary["disconnect_code"], 200,
        "our 200 to its BYE: {context}"
    );
    // Everything went over TCP, and the phone's ACK reached us.
    let our_contact = format!(
        "Contact: <sip:concierge@127.0.0.1:{};transport=tcp>",
        server.port
    );
    assert!(
        pjsip_log.contains(&our_contact),
        "{our_contact} in the 180/200\n{context}"
    );
    let rec = wait_record(&server, &call_id(&pjsip_log));
    assert_eq!(
        (rec["ended_by"].as_str(), rec["reason"].as_str()),
        (Some("caller"), Some("hung up")),
        "{rec}"
    );
    assert!(!server.log().contains("no ACK"), "{context}");
}

/// The Call-ID of the phone's INVITE, from PJSIP's message log.
fn call_id(log: &str) -> String {
    log.lines()
        .find_map(|l| l.trim().strip_prefix("Call-ID: "))
        .expect("a Call-ID in the PJSIP log")
        .trim()
        .to_owned()
}

#[test]
fn rfc5626_3_5_1_a_crlf_crlf_ping_on_tcp_gets_a_crlf_pong_and_the_connection_stays() {
    let server = Server::start("tcp-keepalive", "", "");
    let mut conn = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for _ in 0..2 {
        conn.write_all(b"\r\n\r\n").expect("ping");
        let mut pong = [0u8; 2];
        conn.read_exact(&mut pong).expect("a pong");
        assert_eq!(&pong, b"\r\n");
    }
    // The same connection still carries SIP.
    let options = common::options_request(server.port).replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    conn.write_all(options.as_bytes()).expect("OPTIONS");
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).expect("answer");
    assert!(
        buf[..n].starts_with(b"SIP/2.0 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}
