//! Carrier signalling against the real binary on 127.0.0.1: reliable 18x and PRACK
//! (RFC 3262), session timers (RFC 4028), UPDATE (RFC 3311) with SIPp as the carrier
//! gateway, and early media observed on a raw RTP socket.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{assert_sipp_ok, header, repo_root, scenario, scratch_dir, sipp, wait_record, Server};

fn run(server: &Server, file: &str, timeout_s: &str) -> std::process::Output {
    sipp(
        server,
        &[
            "-sf",
            &scenario(file),
            "-m",
            "1",
            "-timeout",
            timeout_s,
            "-timeout_error",
        ],
    )
}

/// The retransmission count SIPp reports for the first message row starting with `row`.
fn retransmissions_of_first(screen: &str, row: &str) -> u32 {
    screen
        .lines()
        .find(|l| l.trim_start().starts_with(row))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {row:?} row in the SIPp report:\n{screen}"))
}

/// A server whose only flow plays `welcome` in early media, then needs the keypad.
fn early_media_server(name: &str, sip_extra: &str) -> Server {
    let root = repo_root();
    let dir = scratch_dir(&format!("{name}-flow"));
    let flow = r#"
name = "early"
start = "welcome"
early_media = true

[nodes.welcome]
type = "play"
prompts = ["welcome"]
next = "menu"

[nodes.menu]
type = "keypad"
prompt = "enter_code"
save_as = "code"
max_digits = 4
done = "bye"
no_input = "bye"
invalid = "bye"

[nodes.bye]
type = "hangup"
"#;
    let path = dir.join("early.toml");
    std::fs::write(&path, flow).expect("write flow");
    let extra = format!(
        "[prompts]\ndir = \"{}\"\n[flows]\ndefault = \"{}\"\n",
        root.join("prompts").display(),
        path.display()
    );
    Server::start(name, sip_extra, &extra)
}

#[test]
fn require_100rel_gets_reliable_180_then_prack_200_then_the_calls_200() {
    let server = Server::start("prack", "", "");
    let out = sipp(
        &server,
        &[
            "-sf",
            &scenario("prack_100rel.xml"),
            "-m",
            "3",
            "-r",
            "3",
            "-timeout",
            "20",
            "-timeout_error",
        ],
    );
    assert_sipp_ok(&out, &server);
    let records = common::wait_records(&server, 3);
    assert!(records.iter().all(|r| r["ended_by"] == "caller"));
}

#[test]
fn without_prack_the_180_is_retransmitted_then_the_invite_fails_with_504() {
    let server = Server::start("prack-withheld", "t1_ms = 100\nt2_ms = 400\n", "");
    let out = run(&server, "prack_withheld.xml", "30");
    assert_sipp_ok(&out, &server);
    // T1 = 100 ms, doubling without cap: 0.1 0.3 0.7 1.5 3.1 6.3 s, then 504 at 6.4 s.
    let retrans =
        retransmissions_of_first(&String::from_utf8_lossy(&out.stdout), "180 <----------");
    assert!(
        (5..=7).contains(&retrans),
        "180 retransmitted {retrans} times"
    );
    let rec = common::wait_records(&server, 1).remove(0);
    assert_eq!(
        rec["reason"],
        "no PRACK for a reliable provisional response"
    );
    assert!(rec["answered_ms"].is_null());
}

#[test]
fn require_timer_90_is_answered_with_session_expires_and_require_timer() {
    let server = Server::start("timer-required", "", "");
    assert_sipp_ok(&run(&server, "session_timer_required.xml", "20"), &server);
}

#[test]
fn session_expires_30_gets_422_with_min_se_90_by_default() {
    let server = Server::start("timer-small", "", "");
    assert_sipp_ok(&run(&server, "session_timer_too_small.xml", "20"), &server);
    assert!(server.records().is_empty(), "no call was created");
}

#[test]
fn as_refresher_we_send_update_before_half_the_interval_plus_a_margin() {
    let server = Server::start("timer-uas", "min_se_s = 2\n", "");
    assert_sipp_ok(
        &run(&server, "session_timer_uas_refresh.xml", "20"),
        &server,
    );
    let rec = common::wait_records(&server, 1).remove(0);
    assert_eq!(
        rec["ended_by"], "caller",
        "the refreshed call lasted until the BYE"
    );
}

#[test]
fn a_caller_refresher_that_stops_refreshing_gets_our_bye() {
    let server = Server::start("timer-expiry", "min_se_s = 2\n", "");
    let started = Instant::now();
    assert_sipp_ok(&run(&server, "session_timer_expiry.xml", "20"), &server);
    // 4 s less min(32 s, 4/3 s): the BYE leaves about 2.7 s after the answer.
    assert!(started.elapsed() >= Duration::from_millis(2500));
    let rec = common::wait_records(&server, 1).remove(0);
    assert_eq!(
        (rec["ended_by"].as_str(), rec["reason"].as_str()),
        (
            Some("network"),
            Some("session expired: no refresh (RFC 4028)")
        )
    );
}

#[test]
fn update_with_an_offer_mid_call_gets_an_sdp_answer() {
    let server = Server::start("update", "", "");
    assert_sipp_ok(&run(&server, "update_offer.xml", "20"), &server);
}

#[test]
fn update_in_the_early_dialog_of_a_reliable_183() {
    let server = early_media_server("update-early", "");
    assert_sipp_ok(&run(&server, "update_early.xml", "30"), &server);
}

/// Sends `INVITE` from a raw SIP socket with an SDP that points at `rtp`, plus `extra`.
fn raw_invite(sip: &common::RawPeer, rtp: &UdpSocket, call_id: &str, extra: &str) {
    let rtp_port = rtp.local_addr().expect("addr").port();
    let sdp = format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n");
    sip.send(&format!(
        "INVITE sip:ivr@127.0.0.1:{s} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK{call_id};rport\r\nFrom: <sip:+46700000003@127.0.0.1:{p}>;tag=em\r\nTo: <sip:ivr@127.0.0.1:{s}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:raw@127.0.0.1:{p}>\r\nMax-Forwards: 70\r\n{extra}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len(),
        s = sip.server,
        p = sip.port,
    ));
}

/// Waits for RTP on `rtp`; meanwhile no SIP message on `sip` may be a 200 to the INVITE.
fn rtp_before_any_200(sip: &common::RawPeer, rtp: &UdpSocket) -> usize {
    rtp.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut packets = 0;
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline && packets < 25 {
        if let Ok((n, _)) = rtp.recv_from(&mut buf) {
            assert!(n >= 12 && buf[0] >> 6 == 2, "an RTP packet");
            packets += 1;
        }
        for m in common::collect(&sip.sock, Duration::from_millis(1)) {
            assert!(
                !(m.starts_with("SIP/2.0 200") && m.contains("INVITE")),
                "a 200 before early media: {m}"
            );
        }
    }
    packets
}

#[test]
fn early_media_plays_the_prompt_in_a_183_before_the_200() {
    let server = early_media_server("early-media", "");
    let sip = common::RawPeer::new(server.port);
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("rtp");
    raw_invite(&sip, &rtp, "early-1", "");
    let progress = sip.expect("SIP/2.0 183", Duration::from_secs(5));
    assert!(progress.contains("m=audio"), "183 with SDP:\n{progress}");
    assert_eq!(header(&progress, "RSeq"), None, "unreliable without 100rel");
    let packets = rtp_before_any_200(&sip, &rtp);
    assert!(packets >= 25, "RTP before the 200: {packets} packets");
    // The prompt ends, the keypad needs the call answered.
    let ok = sip.expect("SIP/2.0 200", Duration::from_secs(15));
    assert!(ok.contains("CSeq: 1 INVITE"));
    let rec_tag = header(&ok, "To")
        .unwrap()
        .split("tag=")
        .nth(1)
        .unwrap()
        .to_owned();
    let ack = format!(
        "ACK sip:concierge@127.0.0.1:{s} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bKearlyack;rport\r\nFrom: <sip:+46700000003@127.0.0.1:{p}>;tag=em\r\nTo: <sip:ivr@127.0.0.1:{s}>;tag={rec_tag}\r\nCall-ID: early-1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        s = server.port,
        p = sip.port,
    );
    sip.send(&ack);
    sip.send(
        &ack.replace("ACK sip", "BYE sip")
            .replace("1 ACK", "2 BYE")
            .replace("earlyack", "earlybye"),
    );
    sip.expect("SIP/2.0 200", Duration::from_secs(5));
    let rec = wait_record(&server, "early-1");
    assert!(rec["answered_ms"].is_number());
}

#[test]
fn early_media_with_100rel_goes_in_a_reliable_183_and_plays_after_the_prack() {
    let server = early_media_server("early-media-100rel", "");
    let sip = common::RawPeer::new(server.port);
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("rtp");
    raw_invite(&sip, &rtp, "early-2", "Require: 100rel\r\n");
    let progress = sip.expect("SIP/2.0 183", Duration::from_secs(5));
    assert!(progress.contains("m=audio"));
    assert_eq!(header(&progress, "Require"), Some("100rel"));
    let rseq = header(&progress, "RSeq").expect("RSeq").to_owned();
    let tag = header(&progress, "To")
        .unwrap()
        .split("tag=")
        .nth(1)
        .unwrap()
        .to_owned();
    sip.send(&format!(
        "PRACK sip:concierge@127.0.0.1:{s} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bKearlyprack;rport\r\nFrom: <sip:+46700000003@127.0.0.1:{p}>;tag=em\r\nTo: <sip:ivr@127.0.0.1:{s}>;tag={tag}\r\nCall-ID: early-2\r\nCSeq: 2 PRACK\r\nRAck: {rseq} 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        s = server.port,
        p = sip.port,
    ));
    let prack_ok = sip.expect("SIP/2.0 200", Duration::from_secs(5));
    assert!(prack_ok.contains("PRACK"), "{prack_ok}");
    let packets = rtp_before_any_200(&sip, &rtp);
    assert!(packets >= 25, "RTP before the 200: {packets} packets");
    // Hang up before the answer: CANCEL, 200 and 487.
    sip.send(&format!(
        "CANCEL sip:ivr@127.0.0.1:{s} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bKearly-2;rport\r\nFrom: <sip:+46700000003@127.0.0.1:{p}>;tag=em\r\nTo: <sip:ivr@127.0.0.1:{s}>\r\nCall-ID: early-2\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        s = server.port,
        p = sip.port,
    ));
    sip.expect("SIP/2.0 487", Duration::from_secs(5));
    let rec = wait_record(&server, "early-2");
    assert!(rec["answered_ms"].is_null(), "never answered: {rec}");
}

/// A real PJSIP phone that requires 100rel and session timers (as a carrier gateway does)
/// calls an early-media flow: it PRACKs our reliable 183, hears the prompt before the 200,
/// accepts our Session-Expires, and the call ends cleanly.
#[test]
fn a_pjsip_phone_requiring_100rel_and_timer_hears_early_media_and_completes_the_call() {
    let python = common::pjsua2_python();
    let server = early_media_server("pjsua2-carrier", "");
    let dir = scratch_dir("pjsua2-carrier");
    let wav = dir.join("heard.wav");
    let log = dir.join("pjsip.log");
    let out = std::process::Command::new(python)
        .arg(repo_root().join("tests/peers/pjsua2/carrier_caller.py"))
        .arg("--uri")
        .arg(format!("sip:ivr@127.0.0.1:{}", server.port))
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
    } = common::proxy::phone_run(&out, &log, &server.log(), 80);
    assert_eq!(summary["confirmed"], true, "{context}");
    assert_eq!(
        summary["disconnect_code"], 200,
        "our 200 to its BYE: {context}"
    );
    assert!(pjsip_log.contains("Require: 100rel"), "{context}");
    assert!(pjsip_log.contains("RSeq: "), "a reliable 183: {context}");
    assert!(
        pjsip_log.contains("PRACK sip:"),
        "the phone PRACKed: {context}"
    );
    assert!(
        pjsip_log.contains("Session-Expires: 90;refresher="),
        "our 200 carries the session timer: {context}"
    );
    assert!(
        summary["early_s"].as_f64().unwrap_or(0.0) > 1.0,
        "media well before the 200: {summary}"
    );
    assert!(
        summary["early_rms"].as_f64().unwrap_or(0.0) > 300.0,
        "the welcome prompt was heard in early media: {summary}"
    );
    assert!(!server.log().contains("no PRACK"), "{context}");
}
