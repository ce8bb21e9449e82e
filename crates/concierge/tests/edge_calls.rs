//! The real server against what a hostile network does to calls: forged responses,
//! injected RTP, floods of new INVITEs (answered or never ACKed) and packet loss. All on
//! 127.0.0.1, with SIPp and raw UDP sockets.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::ops::{metrics_on, wait_metric};
use common::rtp::{audio, press};
use common::{
    assert_sipp_ok, collect, free_port, options_request, rand_token, recv_until, scenario, sipp,
    start_vip, udp_exchange, wait_record, wait_records, wait_until, RawCall, Server, PATIENCE,
};

const WAIT: Duration = Duration::from_secs(20);

/// The RTP sequence number of `packet`.
fn seq_of(packet: &[u8]) -> u16 {
    u16::from_be_bytes([packet[2], packet[3]])
}

/// Reads `sock` until the server's RTP arrives on it, sent after the packet numbered
/// `after` when one is given; returns the sequence number of what arrived.
#[track_caller]
fn rtp_after(sock: &UdpSocket, after: Option<u16>) -> u16 {
    let mut older = 0;
    recv_until(sock, PATIENCE, |packet| {
        let seq = seq_of(packet.get(..12)?);
        // Later in the stream (sequence numbers wrap).
        if after.is_none_or(|a| (seq.wrapping_sub(a) as i16) > 0) {
            return Some(seq);
        }
        older += 1;
        None
    })
    .unwrap_or_else(|| {
        panic!("no RTP after packet {after:?} within {PATIENCE:?} ({older} older ones)")
    })
}

#[test]
fn a_stray_2xx_sends_nothing_anywhere() {
    let server = Server::start("stray", "", "");
    let victim = UdpSocket::bind("127.0.0.1:0").unwrap();
    let victim_addr = victim.local_addr().unwrap();
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    for (i, via) in [
        format!("127.0.0.1:{}", server.port),
        victim_addr.to_string(),
    ]
    .iter()
    .enumerate()
    {
        let forged = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK{}\r\nFrom: <sip:a@127.0.0.1>;tag=f{i}\r\nTo: <sip:victim@{victim_addr}>;tag=t{i}\r\nCall-ID: reflect-{}\r\nCSeq: 1 INVITE\r\nContact: <sip:victim@{victim_addr}>\r\nContent-Length: 0\r\n\r\n",
            rand_token(),
            rand_token()
        );
        attacker
            .send_to(forged.as_bytes(), ("127.0.0.1", server.port))
            .unwrap();
    }
    let to_victim = collect(&victim, Duration::from_secs(2));
    let to_attacker = collect(&attacker, Duration::from_millis(100));
    assert!(to_victim.is_empty(), "the Contact got {to_victim:?}");
    assert!(to_attacker.is_empty(), "the sender got {to_attacker:?}");
    let replies = udp_exchange(
        server.port,
        &options_request(server.port),
        Duration::from_secs(1),
    );
    assert!(replies.iter().any(|r| r.starts_with("SIP/2.0 200")));
}

#[test]
fn rfc4733_keys_from_a_second_source_are_ignored_and_the_callers_own_keys_work() {
    let metrics = free_port();
    let server = start_vip("inject-keys", |f| f, &metrics_on(metrics));
    // An unknown number: the flow asks for a code (101010 would be the VIP desk, gold).
    let mut call = RawCall::invite(server.port, "+46700000009", "inject1", "0 101");
    let media = call.answer_and_ack();
    // Media starts with the ACK: audio the RTP thread hands over before the shard has
    // read the ACK from the SIP socket is dropped, and would leave the stream unlatched.
    server.wait_confirmed("inject1");
    for i in 0..5 {
        call.rtp.send_to(&audio(i, 0xca11), media).unwrap();
    }
    // The server has taken the caller's audio: the stream belongs to the caller before
    // the injector sends.
    wait_metric(metrics, "concierge_rtp_packets_received_total", |n| {
        n >= 5.0
    });
    // The injector, on this host but another port, keys the gold code first.
    let injector = UdpSocket::bind("127.0.0.1:0").unwrap();
    press(&injector, media, "101010", 0x0bad, 1_000_000);
    // The caller keys a wrong code: customer service, not the VIP desk.
    press(&call.rtp, media, "999999", 0xca11, 2_000_000);
    let refer = call.sip.expect("REFER ", WAIT);
    let refer_to = common::header(&refer, "Refer-To").unwrap().to_owned();
    assert!(refer_to.contains("service-desk"), "{refer_to}");
    call.bye();
    let rec = wait_record(&server, "inject1");
    let digits: String = rec["digits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d[0].as_str().unwrap())
        .collect();
    // Six keys, the caller's own (the code is secret: stars in the record); the injected
    // ones never reached the keypad.
    assert_eq!(digits, "******", "{rec}");
    assert!(
        rec["rtp_foreign_dropped"].as_u64().unwrap() >= 24,
        "six presses of four packets each: {rec}"
    );
}

#[test]
fn a_source_that_sends_before_the_caller_does_not_take_the_media() {
    let server = start_vip("early-source", |f| f, "");
    let mut call = RawCall::invite(server.port, "+46700000003", "early1", "0 101");
    let media = call.answer_and_ack();
    let early = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..5 {
        early.send_to(&audio(i, 0xbad), media).unwrap();
    }
    // From this host, it may be the caller behind a NAT: the prompt goes to it for now.
    let taken = rtp_after(&early, None);
    for i in 0..5 {
        call.rtp.send_to(&audio(i, 0xca11), media).unwrap();
    }
    // The caller's own address won the stream back: the prompt comes to it again.
    rtp_after(&call.rtp, Some(taken));
    // Whatever went to the early source before the caller spoke up is past; from now on
    // the prompt goes to the caller alone.
    collect(&early, Duration::from_millis(50));
    collect(&call.rtp, Duration::from_millis(50));
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut seq = 5;
    while Instant::now() < deadline {
        early.send_to(&audio(seq, 0xbad), media).unwrap();
        call.rtp.send_to(&audio(seq, 0xca11), media).unwrap();
        seq += 1;
        // Both send like phones, a packet every 20 ms, for the second in which the
        // caller alone must hear the prompt (pacing the peers).
        std::thread::sleep(Duration::from_millis(20));
    }
    let to_caller = collect(&call.rtp, Duration::from_millis(100));
    let to_early = collect(&early, Duration::from_millis(100));
    assert!(
        to_caller.len() >= 30,
        "the caller hears the prompt: {}",
        to_caller.len()
    );
    assert!(
        to_early.is_empty(),
        "{} packets to the early source",
        to_early.len()
    );
    call.bye();
    let rec = wait_record(&server, "early1");
    assert!(rec["rtp_foreign_dropped"].as_u64().unwrap() >= 40, "{rec}");
}

/// The `count` column of the first row of SIPp's scenario screen that starts with `row`.
fn count_of(screen: &str, row: &str) -> u64 {
    screen
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with(row))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn at_three_times_the_admitted_rate_admitted_calls_complete_and_the_rest_get_503() {
    // 50 new calls/s admitted (burst 50); SIPp offers 150/s for 10 s.
    let server = Server::start(
        "overload",
        "",
        "[calls]\ninvite_rate = 50\ninvite_burst = 50\nsource_invite_rate = 0\n",
    );
    let started = Instant::now();
    let out = sipp(
        &server,
        &[
            "-sf",
            &scenario("uac_or_503.xml"),
            "-m",
            "1500",
            "-r",
            "150",
            "-l",
            "400",
            "-timeout",
            "30",
            "-timeout_error",
        ],
    );
    assert_sipp_ok(&out, &server);
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    let refused = count_of(&screen, "503 <----------");
    let admitted = count_of(&screen, "180 <----------");
    assert_eq!(
        admitted + refused,
        1500,
        "every call was admitted or refused:\n{screen}"
    );
    // 50 at once, then 50 a second over the run (10 s when SIPp keeps its rate).
    let most = 50 + 50 * started.elapsed().as_secs() + 25;
    assert!(
        (300..=most).contains(&admitted),
        "{admitted} admitted, at most {most}\n{screen}"
    );
    assert!(refused >= 500, "{refused} refused");
    let records = wait_records(&server, admitted as usize);
    assert_eq!(
        records.len() as u64,
        admitted,
        "one record per admitted call"
    );
    assert!(
        records.iter().all(|r| r["reason"] == "hung up"),
        "every admitted call completed"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn with_ten_percent_packet_loss_no_call_record_is_lost() {
    // T1 = 100 ms: a call whose ACK or BYE was lost for good ends (and is recorded)
    // within 2·64·T1 = 12.8 s instead of a minute.
    let server = Server::start("lost", "t1_ms = 100\nt2_ms = 400\n", "");
    let out = sipp(
        &server,
        &[
            "-sn", "uac", "-m", "200", "-r", "50", "-l", "200", "-lost", "10", "-timeout", "60",
        ],
    );
    // SIPp may give up on a call whose every retransmission was lost; the server must
    // still end and record every call it saw.
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    // A call whose last message was lost ends by a timer (12.8 s at most).
    let records = wait_until(Duration::from_secs(60), "a record of each call", || {
        let records = server.records();
        if records.len() >= 200 {
            Ok(records)
        } else {
            Err(format!("{} records\n{screen}", records.len()))
        }
    });
    let mut ids: Vec<&str> = records
        .iter()
        .map(|r| r["call_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), records.len(), "one record per call");
    assert_eq!(records.len(), 200, "{screen}");
}

#[test]
fn after_a_flood_of_invites_never_acked_new_calls_succeed_within_seconds() {
    // One source may start 20 calls a second; its un-ACKed answers hold at most that many
    // ports for 64·T1, so the flood cannot empty the pool.
    let server = Server::start(
        "unacked-flood",
        "",
        "[calls]\nsource_invite_rate = 20\nsource_invite_burst = 20\n",
    );
    let flood = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = flood.local_addr().unwrap().port();
    // Everything the server answers, read while the flood goes on: (Call-ID, status).
    let reader = flood.try_clone().unwrap();
    let answers = std::thread::spawn(move || {
        let mut seen = std::collections::HashMap::<String, Vec<u16>>::new();
        for m in collect(&reader, Duration::from_secs(4)) {
            let status = m.get(8..11).and_then(|s| s.parse().ok()).unwrap_or(0);
            let id = common::header(&m, "Call-ID").unwrap_or_default().to_owned();
            seen.entry(id).or_default().push(status);
        }
        seen
    });
    let sdp = common::SDP;
    let mut sent = 0;
    // 3,000 INVITEs in about 2 s, never ACKed.
    while sent < 3000 {
        for _ in 0..15 {
            let id = rand_token();
            let invite = format!(
                "INVITE sip:ivr@127.0.0.1:{s} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{id}\r\nFrom: <sip:flood@127.0.0.1>;tag={id}\r\nTo: <sip:ivr@127.0.0.1>\r\nCall-ID: flood-{id}\r\nCSeq: 1 INVITE\r\nContact: <sip:flood@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len(),
                s = server.port
            );
            flood
                .send_to(invite.as_bytes(), ("127.0.0.1", server.port))
                .unwrap();
            sent += 1;
        }
        // The flood's pace, 15 INVITEs every 10 ms, is part of what is tested.
        std::thread::sleep(Duration::from_millis(10));
    }
    let answers = answers.join().unwrap();
    let refused = answers.values().filter(|s| s.contains(&503)).count();
    let admitted = answers.values().filter(|s| s.contains(&180)).count();
    assert!(
        refused + admitted >= 2900,
        "{refused} refused and {admitted} admitted of {sent}"
    );
    assert!(
        admitted <= 20 + 20 * 3,
        "the per-source rate bounds what one source holds: {admitted}"
    );
    // The flood has stopped: a real caller gets through within a few seconds.
    let stopped = Instant::now();
    let out = sipp(
        &server,
        &[
            "-sn",
            "uac",
            "-m",
            "5",
            "-r",
            "5",
            "-timeout",
            "20",
            "-timeout_error",
        ],
    );
    assert_sipp_ok(&out, &server);
    assert!(stopped.elapsed() < Duration::from_secs(10));
    let records = server.records();
    assert!(
        records.iter().filter(|r| r["reason"] == "hung up").count() >= 5,
        "{records:?}"
    );
    let _ = wait_records(&server, 5);
}

#[test]
fn a_caller_that_stops_sending_rtp_is_hung_up_after_the_media_timeout() {
    let server = Server::start("media-timeout", "", "[calls]\nmedia_timeout_s = 2\n");
    let mut call = RawCall::invite(server.port, "+46700000009", "mute1", "0 101");
    let media = call.answer_and_ack();
    let mut last_sent = Instant::now();
    for i in 0..50 {
        // Read before the send: the server hears the packet no earlier.
        last_sent = Instant::now();
        call.rtp.send_to(&audio(i, 0xca11), media).unwrap();
        // A second of audio at a phone's pace, then silence: the timeout under test counts
        // from the last packet.
        std::thread::sleep(Duration::from_millis(20));
    }
    let bye = call.sip.expect("BYE ", Duration::from_secs(6));
    // 1 s of RTP, then 2 s of silence counted from the last packet. (A bound of 3 s from
    // the first packet was the server's own time to the BYE, within milliseconds: an idle
    // machine failed it now and then.)
    assert!(
        last_sent.elapsed() >= Duration::from_secs(2),
        "the BYE came {:?} after the last packet",
        last_sent.elapsed()
    );
    call.reply(&bye, 200);
    let rec = wait_record(&server, "mute1");
    assert_eq!(rec["ended_by"], "network");
    assert_eq!(rec["reason"], "no RTP from the caller for 2 s");
}

#[test]
fn sources_outside_allow_or_in_deny_are_dropped_silently() {
    for (name, lists) in [
        ("deny", "deny = [\"127.0.0.0/8\"]\n"),
        ("allow", "allow = [\"192.0.2.0/24\", \"2001:db8::1\"]\n"),
    ] {
        let server = Server::start_unprobed(name, lists, "");
        let options = udp_exchange(
            server.port,
            &options_request(server.port),
            Duration::from_millis(500),
        );
        assert!(options.is_empty(), "{name}: {options:?}");
        let call = RawCall::invite(server.port, "+46700000009", "acl1", "0");
        let replies = collect(&call.sip.sock, Duration::from_millis(500));
        assert!(replies.is_empty(), "{name}: {replies:?}");
        assert!(server.records().is_empty());
        assert!(
            !server.log().contains("acl1"),
            "dropped before parsing, without a log line"
        );
    }
}
