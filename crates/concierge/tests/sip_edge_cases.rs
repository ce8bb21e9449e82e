//! Requests a server meets from broken or hostile peers, and its own limits, sent with a
//! raw UDP socket so every byte is under the test's control.

mod common;

use std::time::{Duration, Instant};

use common::{header, udp_exchange, RawPeer, Server};

const WAIT: Duration = Duration::from_secs(3);

#[test]
fn malformed_request_gets_400_and_garbage_gets_nothing() {
    let server = Server::start("malformed", "", "");
    let bad = "INVITE sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKbad;rport\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:ivr@127.0.0.1>\r\nCall-ID: bad1\r\nCSeq: not-a-number INVITE\r\nContent-Length: 0\r\n\r\n";
    let peer = RawPeer::new(server.port);
    peer.send(bad);
    let reply = peer.expect("SIP/2.0 400", WAIT);
    assert_eq!(header(&reply, "Call-ID"), Some("bad1"));
    let replies = udp_exchange(
        server.port,
        "\u{1}\u{2} not sip at all\r\n\r\n",
        Duration::from_millis(500),
    );
    assert!(replies.is_empty(), "{replies:?}");
    // And the server still works.
    assert!(
        common::udp_options_answered(server.port, WAIT),
        "OPTIONS still answered"
    );
}

#[test]
fn content_length_beyond_the_datagram_gets_400() {
    let server = Server::start("bad-cl", "", "");
    let peer = RawPeer::new(server.port);
    let msg = peer.invite("cl1", "cl1").replace(
        &format!("Content-Length: {}", common::SDP.len()),
        "Content-Length: 9999",
    );
    peer.send(&msg);
    peer.expect("SIP/2.0 400", WAIT);
}

#[test]
fn unknown_method_gets_501_and_bye_for_no_dialog_gets_481() {
    let server = Server::start("501-481", "", "");
    let peer = RawPeer::new(server.port);
    let invite = peer.invite("m1", "m1");
    peer.send(
        &invite
            .replace("INVITE", "FROBNICATE")
            .replace("Content-Type: application/sdp\r\n", ""),
    );
    let r = peer.expect("SIP/2.0 501", WAIT);
    assert!(header(&r, "Allow").is_some_and(|a| a.contains("INVITE")));
    let bye = invite
        .replace("INVITE sip", "BYE sip")
        .replace("1 INVITE", "2 BYE")
        .replace(
            &format!("To: <sip:ivr@127.0.0.1:{}>", server.port),
            &format!("To: <sip:ivr@127.0.0.1:{}>;tag=nosuch", server.port),
        );
    peer.send(&bye);
    peer.expect("SIP/2.0 481", WAIT);
}

#[test]
fn rfc3261_17_2_1_a_call_that_rings_at_once_gets_no_100_trying_before_its_180() {
    // A 100 is owed only when nothing answers the INVITE within 200 ms. The server rings in
    // the turn the INVITE arrives, so the caller sees 180 then 200; a 100 could only come
    // from a server that took 200 ms to ring, and never after the 180.
    let server = Server::start("no-trying", "", "");
    let peer = RawPeer::new(server.port);
    let sent = Instant::now();
    peer.send(&peer.invite("nt1", "nt1"));
    let mut seen: Vec<(Duration, String)> = Vec::new();
    common::recv_until(&peer.sock, WAIT, |bytes| {
        let m = String::from_utf8_lossy(bytes);
        if header(&m, "Call-ID") != Some("nt1") {
            // The kernel may hand this socket a port whose last owner is still answered.
            return None;
        }
        let status = m.lines().next().unwrap_or_default().to_owned();
        let done = status.starts_with("SIP/2.0 200");
        seen.push((sent.elapsed(), status));
        done.then_some(())
    })
    .unwrap_or_else(|| panic!("no 200 within {WAIT:?}: {seen:?}"));
    let without_trying: Vec<&str> = seen
        .iter()
        .map(|(_, s)| s.as_str())
        .filter(|s| !s.starts_with("SIP/2.0 100"))
        .collect();
    assert_eq!(without_trying, ["SIP/2.0 180 Ringing", "SIP/2.0 200 OK"]);
    let ringing_at = seen.iter().position(|(_, s)| s.starts_with("SIP/2.0 180"));
    for (i, (at, status)) in seen.iter().enumerate() {
        if status.starts_with("SIP/2.0 100") {
            assert!(
                *at >= Duration::from_millis(200) && Some(i) < ringing_at,
                "a 100 the caller did not need: {seen:?}"
            );
        }
    }
}

#[test]
fn beyond_max_calls_an_invite_gets_503_with_retry_after() {
    let server = Server::start(
        "max-calls",
        "",
        "[calls]\nmax_calls = 1\nanswer_after_ms = 10000\nretry_after_s = 7\n",
    );
    let first = RawPeer::new(server.port);
    first.send(&first.invite("mc1", "mc1"));
    first.expect("SIP/2.0 180", WAIT);
    let second = RawPeer::new(server.port);
    second.send(&second.invite("mc2", "mc2"));
    let r = second.expect("SIP/2.0 503", WAIT);
    assert_eq!(header(&r, "Retry-After"), Some("7"));
}

#[test]
fn sigterm_drains_new_calls_get_503_and_the_server_exits_when_calls_end() {
    let mut server = Server::start("drain", "", "");
    let caller = RawPeer::new(server.port);
    caller.send(&caller.invite("d1", "d1"));
    let ok = caller.expect("SIP/2.0 200", WAIT);
    let to = header(&ok, "To").expect("To").to_owned();
    let ack = format!(
        "ACK sip:concierge@127.0.0.1:{s} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bKack1;rport\r\nFrom: <sip:+46700000009@127.0.0.1:{p}>;tag=rawd1\r\nTo: {to}\r\nCall-ID: d1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        s = server.port,
        p = caller.port
    );
    caller.send(&ack);
    server.wait_confirmed("d1");
    server.signal("-TERM");
    server.wait_log("draining: new calls get 503");

    let late = RawPeer::new(server.port);
    late.send(&late.invite("d2", "d2"));
    late.expect("SIP/2.0 503", WAIT);
    assert_eq!(
        server.wait_exit(Duration::from_millis(500)),
        None,
        "the call in progress keeps the server up"
    );

    let bye = ack
        .replace("ACK sip", "BYE sip")
        .replace("1 ACK", "2 BYE")
        .replace("z9hG4bKack1", "z9hG4bKbye1");
    caller.send(&bye);
    caller.expect("SIP/2.0 200", WAIT);
    assert_eq!(
        server.wait_exit(Duration::from_secs(5)),
        Some(true),
        "exits cleanly once the last call ended"
    );
    let records = server.records();
    let ends: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["call_id"].as_str().unwrap(),
                r["ended_by"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        ends.contains(&("d1", "caller")),
        "the drained call has its record: {records:?}"
    );
}
