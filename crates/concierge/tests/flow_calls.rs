//! The reference VIP flow through the real server: SIPp and raw-socket callers, the demo
//! customer directory as the real HTTP API, transfers by REFER and 302.

mod common;

use std::time::{Duration, Instant};

use common::calls::sipp_caller;
use common::http_stub::{Reply, Stub};
use common::{assert_sipp_ok, free_port, path_of, scenario, start_vip, tail, wait_record, RawCall};

const WAIT: Duration = Duration::from_secs(15);

/// Runs a SIPp caller scenario and returns the Refer-To it logged and the call record.
fn sipp_call(server: &common::Server, file: &str, caller: &str) -> (String, serde_json::Value) {
    let refer_to = sipp_caller(server, file, caller).unwrap_or_default();
    let record = common::wait_records(server, 1).pop().expect("a record");
    (refer_to, record)
}

#[test]
fn vip_by_number_is_referred_to_the_vip_desk() {
    let server = start_vip("vip-number", |f| f, "");
    let (refer_to, rec) = sipp_call(&server, "vip_refer.xml", "+46706170786");
    assert_eq!(
        refer_to,
        format!(
            "<sip:vip-desk@127.0.0.1:{}?X-Concierge-Tier=member&Priority=urgent>",
            server.port
        )
    );
    assert_eq!(rec["transfer"]["mode"], "refer");
    assert_eq!(rec["transfer"]["result"], "succeeded");
    assert_eq!(
        (rec["ended_by"].as_str(), rec["reason"].as_str()),
        (Some("concierge"), Some("transferred"))
    );
    assert_eq!(
        path_of(&rec),
        [
            "lookup:success",
            "is_vip:case 1",
            "is_verified:case 1",
            "verstat_ok:case 1",
            "vip_by_number:next",
            "fast_track:transferred"
        ]
    );
    assert_eq!(rec["http"][0]["status"], 200);
}

#[test]
fn unknown_number_and_101010_by_rfc2833_goes_to_the_vip_desk() {
    let server = start_vip("code-gold", |f| f, "");
    let (refer_to, rec) = sipp_call(&server, "keypad_101010_refer.xml", "+46700000009");
    assert!(
        refer_to.starts_with("<sip:vip-desk@") && refer_to.contains("X-Concierge-Tier=gold"),
        "{refer_to}"
    );
    assert_eq!(rec["http"][0]["status"], 404);
    // The code is a secret: the record counts its keys but never shows them.
    let digits: String = rec["digits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d[0].as_str().unwrap())
        .collect();
    assert_eq!(digits, "******");
    assert!(!rec.to_string().contains("101010"), "{rec}");
    assert!(rec["digits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d[1] == "rfc4733"));
    assert!(rec["variables"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v[0] == "securityCode" && v[1] == "***"));
}

#[test]
fn unknown_number_and_a_wrong_code_goes_to_customer_service() {
    let server = start_vip("code-wrong", |f| f, "");
    let (refer_to, rec) = sipp_call(&server, "keypad_999999_refer.xml", "+46700000009");
    assert!(refer_to.starts_with("<sip:service-desk@"), "{refer_to}");
    assert!(
        path_of(&rec).contains(&"check_code:default".to_string()),
        "{:?}",
        path_of(&rec)
    );
}

#[test]
fn api_down_goes_to_the_keypad() {
    let closed = free_port();
    let server = start_vip(
        "api-down",
        move |f| f.replace("CRM", &format!("http://127.0.0.1:{closed}")),
        "",
    );
    let (refer_to, rec) = sipp_call(&server, "keypad_101010_refer.xml", "+46706170786");
    assert!(refer_to.starts_with("<sip:vip-desk@"), "{refer_to}");
    let outcome = rec["http"][0]["outcome"].as_str().unwrap();
    assert!(outcome.starts_with("connect"), "{outcome}");
    assert!(path_of(&rec).contains(&"lookup:failure".to_string()));
}

/// An HTTP server that takes every request and says nothing for `silence`, then that
/// the caller is a VIP.
fn slow_api(silence: Duration) -> Stub {
    Stub::start(move |_| Reply {
        delay: silence,
        ..Reply::json(200, r#"{"customer":{"hasVIPMembership":true}}"#)
    })
}

#[test]
fn slow_api_times_out_to_the_keypad() {
    let api = slow_api(Duration::from_secs(5));
    let server = start_vip(
        "api-slow",
        |f| {
            f.replace("CRM", &api.url())
                .replace("timeout_ms = 3000", "timeout_ms = 800")
        },
        "",
    );
    let (refer_to, rec) = sipp_call(&server, "keypad_101010_refer.xml", "+46706170786");
    assert!(refer_to.starts_with("<sip:vip-desk@"), "{refer_to}");
    assert_eq!(rec["http"][0]["outcome"], "timeout");
}

#[test]
fn redirect_mode_answers_302_before_any_200() {
    // The shipped alternative flow: lookup while ringing, then 302.
    let server = start_vip(
        "redirect",
        |_| {
            std::fs::read_to_string(common::repo_root().join("config/flows/vip-redirect.toml"))
                .expect("vip-redirect.toml")
                .replace("{system.directory_url}", "CRM")
        },
        "",
    );
    let mut call = RawCall::invite(server.port, "+46706170786", "redir1", "0 101");
    let r = call.sip.expect("SIP/2.0 302", WAIT);
    let contact = common::header(&r, "Contact").unwrap();
    assert!(
        contact.starts_with("<sip:vip-desk@127.0.0.1:")
            && contact.contains("X-Concierge-Tier=member")
            && contact.contains("Priority=urgent"),
        "{contact}"
    );
    call.request("ACK", 1, "", "");
    let rec = wait_record(&server, "redir1");
    assert_eq!(rec["transfer"]["mode"], "redirect");
    assert!(rec["answered_ms"].is_null(), "never answered");
    assert!(!server.log().contains("answered"), "no 200 was sent");
}

#[test]
fn prompt_audio_arrives_as_pcmu_paced_at_20_ms() {
    let server = start_vip("pacing", |f| f, "");
    let mut call = RawCall::invite(server.port, "+46700000003", "pace1", "0 101");
    call.answer_and_ack();
    let welcome =
        concierge_prompts::load_wav(&common::repo_root().join("prompts/welcome.wav")).unwrap();
    let mut arrivals = Vec::new();
    let mut packets: Vec<Vec<u8>> = Vec::new();
    let mut buf = [0u8; 2048];
    call.rtp
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    while packets.len() < 100 {
        let (n, _) = call.rtp.recv_from(&mut buf).expect("RTP from the server");
        arrivals.push(Instant::now());
        packets.push(buf[..n].to_vec());
    }
    call.bye();
    // RTP header: PT 0, sequence +1 and timestamp +160 per packet, one SSRC.
    for w in packets.windows(2) {
        assert_eq!(w[1][1] & 0x7f, 0);
        let seq = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
        let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        assert_eq!(seq(&w[1]), seq(&w[0]).wrapping_add(1));
        assert_eq!(ts(&w[1]), ts(&w[0]).wrapping_add(160));
        assert_eq!(w[0][8..12], w[1][8..12]);
    }
    assert_ne!(
        packets[0][1] & 0x80,
        0,
        "the first packet of the talkspurt has the marker bit"
    );
    // The payload is the welcome prompt, µ-law encoded.
    for (i, p) in packets.iter().take(50).enumerate() {
        let expected: Vec<u8> = welcome[i * 160..(i + 1) * 160]
            .iter()
            .map(|s| audio_codec_algorithms::encode_ulaw(*s))
            .collect();
        assert_eq!(&p[12..], &expected[..], "packet {i}");
    }
    // Pacing, statistically: the median gap is 20 ms and the whole run takes 99 × 20 ms.
    let mut gaps: Vec<f64> = arrivals
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)
        .collect();
    gaps.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = gaps[gaps.len() / 2];
    let total = (arrivals[99] - arrivals[0]).as_secs_f64() * 1000.0;
    assert!((17.0..=23.0).contains(&median), "median gap {median:.1} ms");
    assert!(
        (1800.0..=2200.0).contains(&total),
        "99 gaps took {total:.0} ms"
    );
}

#[test]
fn sip_info_digits_are_collected() {
    let server = start_vip("info", |f| f, "");
    let mut call = RawCall::invite(server.port, "+46700000009", "info1", "0");
    call.answer_and_ack();
    for d in "101010".chars() {
        call.request(
            "INFO",
            0,
            "Content-Type: application/dtmf-relay\r\n",
            &format!("Signal={d}\r\nDuration=160\r\n"),
        );
        call.sip.expect("SIP/2.0 200", WAIT);
    }
    let refer = call.sip.expect("REFER ", Duration::from_secs(20));
    assert!(
        common::header(&refer, "Refer-To")
            .unwrap()
            .contains("X-Concierge-Tier=gold"),
        "{refer}"
    );
    call.reply(&refer, 603);
    let bye = call.sip.expect("BYE ", Duration::from_secs(20));
    call.reply(&bye, 200);
    let rec = wait_record(&server, "info1");
    assert!(rec["digits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d[1] == "info"));
    // 603 to the REFER: the flow's refer_or_bridge bridges to the desk, which greets and
    // hangs up.
    assert_eq!(rec["transfer"]["mode"], "bridge");
    assert_eq!(
        rec["transfer"]["result"],
        "answered (after REFER rejected with 603)"
    );
}

/// G.711 µ-law RTP carrying DTMF tones: 80 ms per key, 80 ms gaps, at -15 dBFS per tone.
fn tone_packets(keys: &str) -> Vec<Vec<u8>> {
    let freq = |k: char| -> (f32, f32) {
        let rows = [697.0, 770.0, 852.0, 941.0];
        let cols = [1209.0, 1336.0, 1477.0, 1633.0];
        let pos = "123A456B789C*0#D".find(k).unwrap();
        (rows[pos / 4], cols[pos % 4])
    };
    let mut samples: Vec<i16> = vec![0; 800];
    let amp = 32767.0 * 10f32.powf(-15.0 / 20.0);
    for k in keys.chars() {
        let (a, b) = freq(k);
        for i in 0..640 {
            let t = i as f32 / 8000.0;
            samples.push(
                (amp * ((2.0 * std::f32::consts::PI * a * t).sin()
                    + (2.0 * std::f32::consts::PI * b * t).sin())) as i16,
            );
        }
        samples.extend(std::iter::repeat_n(0, 640));
    }
    samples
        .chunks(160)
        .enumerate()
        .map(|(i, c)| {
            let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
            p[2..4].copy_from_slice(&(i as u16).to_be_bytes());
            p[4..8].copy_from_slice(&((i * 160) as u32).to_be_bytes());
            p.extend(c.iter().map(|s| audio_codec_algorithms::encode_ulaw(*s)));
            p
        })
        .collect()
}

#[test]
fn inband_dtmf_tones_are_collected_when_no_telephone_event_was_offered() {
    let server = start_vip("inband", |f| f, "");
    let mut call = RawCall::invite(server.port, "+46700000009", "inband1", "0");
    let media = call.answer_and_ack();
    for p in tone_packets("101010") {
        call.rtp.send_to(&p, media).unwrap();
        // Audio at a phone's pace, one 20 ms packet every 20 ms (pacing the peer).
        std::thread::sleep(Duration::from_millis(20));
    }
    let refer = call.sip.expect("REFER ", Duration::from_secs(20));
    assert!(
        common::header(&refer, "Refer-To")
            .unwrap()
            .contains("X-Concierge-Tier=gold"),
        "{refer}"
    );
    call.reply(&refer, 405);
    let bye = call.sip.expect("BYE ", Duration::from_secs(20));
    call.reply(&bye, 200);
    let rec = wait_record(&server, "inband1");
    let digits: String = rec["digits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d[0].as_str().unwrap())
        .collect();
    assert_eq!(digits, "******", "{}", tail(&server.log(), 30));
    assert!(rec["digits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d[1] == "inband"));
}

#[test]
fn caller_hanging_up_is_recorded_where_it_happened() {
    // During the welcome prompt.
    let server = start_vip("hangup-welcome", |f| f, "");
    let mut call = RawCall::invite(server.port, "+46700000009", "hw1", "0 101");
    call.answer_and_ack();
    call.wait_prompt("welcome");
    call.bye();
    let rec = wait_record(&server, "hw1");
    assert_eq!(rec["ended_by"], "caller");
    assert_eq!(path_of(&rec).last().unwrap(), "welcome:-");

    // During digit entry.
    let mut call = RawCall::invite(server.port, "+46700000009", "hd1", "0 101");
    call.answer_and_ack();
    // The welcome played out and the keypad asks for the code; one key of it.
    call.wait_prompt("enter_code");
    call.request("INFO", 0, "Content-Type: application/dtmf\r\n", "1");
    call.sip.expect("SIP/2.0 200", WAIT);
    call.bye();
    let rec = wait_record(&server, "hd1");
    assert_eq!(
        path_of(&rec).last().unwrap(),
        "ask_code:-",
        "{:?}",
        path_of(&rec)
    );

    // While the HTTP lookup is in flight: the lookup comes first, and the comfort audio
    // answers the call after 1 s; hang up during it, before the 3 s timeout.
    let api = slow_api(Duration::from_secs(15));
    let server = start_vip("hangup-http", |f| f.replace("CRM", &api.url()), "");
    let mut call = RawCall::invite(server.port, "+46700000009", "hh1", "0 101");
    call.answer_and_ack();
    call.wait_prompt("one_moment");
    call.bye();
    let rec = wait_record(&server, "hh1");
    assert_eq!(
        path_of(&rec).last().unwrap(),
        "lookup:-",
        "{:?}",
        path_of(&rec)
    );
    assert!(
        rec["http"].as_array().unwrap().is_empty(),
        "the lookup never finished"
    );
}

#[test]
fn an_rtp_port_another_program_holds_is_never_offered() {
    // Two ports, the first taken by another program: whichever the random pick tries first,
    // the server finds out when it binds, before any SDP names it, and the call gets the
    // other one; the welcome prompt comes from there.
    // Below the ephemeral ports, so no other test's client socket can take the free one
    // between this check and the server's bind.
    let (first, last) = common::capture::quiet_rtp_range(4);
    let held = std::net::UdpSocket::bind(("127.0.0.1", first)).expect("hold the first port");
    let server = start_vip(
        "rtp-held",
        |f| f,
        &format!("[rtp]\nport_min = {first}\nport_max = {last}\n"),
    );
    let mut call = RawCall::invite(server.port, "+46700000003", "held1", "0 101");
    let media = call.answer_and_ack();
    assert_eq!(media.port(), first + 2);
    call.rtp
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = call.rtp.recv_from(&mut buf).expect("RTP from the server");
    assert_eq!(
        (n, from),
        (172, media),
        "a 20 ms PCMU packet from the SDP's port"
    );
    call.bye();
    drop(held);
}

#[test]
fn refer_refused_with_405_falls_back_to_a_bridge_with_rtp_both_ways() {
    // The reference flow transfers with `refer_or_bridge`. The queue: a SIPp UAS that
    // answers the second leg and echoes the RTP it gets.
    let queue_port = common::free_port();
    let queue_dir = common::scratch_dir("queue");
    let queue = std::process::Command::new("sipp")
        .args(["-sf", &common::scenario("queue_uas.xml")])
        .args(["-i", "127.0.0.1", "-p", &queue_port.to_string()])
        .args(["-mp", &common::sipp_media_port().to_string(), "-rtp_echo"])
        .args(["-m", "1", "-nostdin", "-timeout", "40", "-timeout_error"])
        .args(["-trace_err", "-trace_screen"])
        .current_dir(&queue_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("SIPp for the queue");
    let server = start_vip(
        "bridge-fallback",
        move |f| {
            f.replace(
                "target = \"sip:vip-desk@{system.local_host}\"",
                &format!("target = \"sip:vip-queue@127.0.0.1:{queue_port}\""),
            )
        },
        "",
    );
    let out = common::sipp(
        &server,
        &[
            "-sf",
            &scenario("refer_405_bridge.xml"),
            "-key",
            "caller",
            "+46706170786",
            "-m",
            "1",
            "-timeout",
            "40",
            "-timeout_error",
        ],
    );
    assert_sipp_ok(&out, &server);
    let status = queue.wait_with_output().expect("queue SIPp").status;
    assert!(
        status.success(),
        "the queue's SIPp failed ({status}): {}",
        std::fs::read_dir(&queue_dir)
            .unwrap()
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>()
    );
    let rec = common::wait_records(&server, 1).pop().expect("a record");
    assert_eq!(rec["transfer"]["mode"], "bridge", "{rec}");
    assert!(
        rec["transfer"]["result"]
            .as_str()
            .unwrap()
            .starts_with("answered (after REFER rejected with 405"),
        "{rec}"
    );
    // 4 s of 30 ms speech one way, and SIPp's echo of it back: both directions carried.
    let to_target = rec["transfer"]["relayed"]["to_target"].as_u64().unwrap();
    let to_caller = rec["transfer"]["relayed"]["to_caller"].as_u64().unwrap();
    assert!(to_target >= 100, "caller → queue packets: {to_target}");
    assert!(to_caller >= 100, "queue → caller packets: {to_caller}");
    assert_eq!(rec["ended_by"], "caller");
}

#[test]
fn a_caller_that_refuses_refer_is_bridged_to_the_built_in_vip_desk() {
    // The demo as shipped: the VIP desk is an extension of the same server, so the bridge's
    // second leg loops back into it and the caller hears the desk's greeting through the
    // relay; when the desk hangs up, so does the caller's leg.
    let server = start_vip("bridge-desk", |f| f, "");
    let mut call = RawCall::invite(server.port, "+46706170786", "hairpin1", "0 101");
    call.answer_and_ack();
    let refer = call.sip.expect("REFER ", Duration::from_secs(20));
    call.reply(&refer, 405);

    // The desk's greeting reaches the caller through the relay.
    call.wait_prompt("vip_desk");

    let bye = call.sip.expect("BYE ", Duration::from_secs(15));
    call.reply(&bye, 200);
    let rec = wait_record(&server, "hairpin1");
    assert_eq!(rec["transfer"]["mode"], "bridge", "{rec}");
    assert_eq!(rec["ended_by"], "target", "{rec}");
    assert!(
        rec["transfer"]["relayed"]["to_caller"].as_u64().unwrap() > 100,
        "{rec}"
    );
}
