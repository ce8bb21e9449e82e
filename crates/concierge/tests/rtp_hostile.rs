//! The RTP thread against hostile media traffic, on 127.0.0.1: a flood of datagrams on one
//! call's port (garbage, empty, oversized and RTP-shaped, from a stranger and from the
//! caller's own address) must not keep another call's keys from counting, and datagrams for
//! a port whose call has ended reach nothing — not the next call given the port either (its
//! socket stays bound between calls); the server keeps answering throughout.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::rtp::{audio, key_press, press};
use common::{options_request, start_vip, udp_exchange, wait_record, RawCall};

const WAIT: Duration = Duration::from_secs(20);

/// `n` hostile datagrams to `to`: every shape the RTP thread and the switch must survive.
fn flood(from: &UdpSocket, to: SocketAddr, n: usize) {
    let shapes: [Vec<u8>; 6] = [
        Vec::new(),
        vec![0x80],
        vec![0xde; 11],
        // RTP-shaped audio from an SSRC the call never saw.
        audio(7, 0xf100d),
        // An RFC 4733 press of the gold code's first key: must never count.
        key_press(1, 77, 0xf100d, &mut 0).remove(0),
        // Larger than any RTP packet (and than the thread's buffer for one datagram).
        vec![0x80; 4000],
    ];
    for i in 0..n {
        // The socket's buffer may be full for a moment: the flood goes on regardless.
        let _ = from.send_to(&shapes[i % shapes.len()], to);
    }
}

#[test]
fn a_flood_on_one_calls_port_leaves_another_calls_keys_counting() {
    let server = start_vip("rtp-flood", |f| f, "");
    // Two unknown numbers: the flow asks each for a code.
    let mut flooded = RawCall::invite(server.port, "+46700000021", "flooded1", "0 101");
    let flooded_media = flooded.answer_and_ack();
    let mut keyer = RawCall::invite(server.port, "+46700000022", "keyer1", "0 101");
    let keyer_media = keyer.answer_and_ack();
    for i in 0..5 {
        flooded
            .rtp
            .send_to(&audio(i, 0xca11), flooded_media)
            .unwrap();
        keyer.rtp.send_to(&audio(i, 0xcafe), keyer_media).unwrap();
    }
    // A stranger and the flooded caller's own address both flood its port while the other
    // caller keys the gold code.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let own = flooded.rtp.try_clone().unwrap();
    let floods = [
        std::thread::spawn(move || flood(&stranger, flooded_media, 100_000)),
        std::thread::spawn(move || flood(&own, flooded_media, 100_000)),
    ];
    press(&keyer.rtp, keyer_media, "101010", 0xcafe, 1_000_000);
    let refer = keyer.sip.expect("REFER ", WAIT);
    let refer_to = common::header(&refer, "Refer-To").unwrap().to_owned();
    assert!(refer_to.contains("vip-desk"), "{refer_to}");
    for f in floods {
        f.join().unwrap();
    }
    let answers = udp_exchange(
        server.port,
        &options_request(server.port),
        Duration::from_secs(2),
    );
    assert!(
        answers.iter().any(|m| m.starts_with("SIP/2.0 200")),
        "{answers:?}"
    );
    keyer.bye();
    flooded.bye();
    let rec = wait_record(&server, "flooded1");
    // The stranger's packets were dropped as foreign, whatever the flood did to the rest; no
    // key reached the flooded call's keypad from them.
    assert!(rec["rtp_foreign_dropped"].as_u64().unwrap() > 0, "{rec}");
    let keys = rec["digits"].as_array().map_or(0, Vec::len);
    assert!(keys <= 1, "only the caller's own address could key: {rec}");
    wait_record(&server, "keyer1");
}

#[test]
fn datagrams_for_a_port_whose_call_ended_reach_nothing() {
    let server = start_vip("rtp-closed", |f| f, "");
    let mut call = RawCall::invite(server.port, "+46700000023", "closed1", "0 101");
    let media = call.answer_and_ack();
    call.rtp.send_to(&audio(0, 0xca11), media).unwrap();
    call.bye();
    wait_record(&server, "closed1");
    // The port rests, its socket parked: the RTP thread reads and drops these.
    flood(&call.rtp, media, 10_000);
    // A new call works, and hears its prompt.
    let mut next = RawCall::invite(server.port, "+46700000024", "closed2", "0 101");
    let next_media = next.answer_and_ack();
    next.rtp.send_to(&audio(0, 0xbeef), next_media).unwrap();
    let heard = common::collect(&next.rtp, Duration::from_millis(500));
    assert!(!heard.is_empty(), "the next call hears its prompt");
    next.bye();
    wait_record(&server, "closed2");
}

#[test]
fn a_port_back_from_its_rest_carries_the_next_call_and_none_of_the_last() {
    // One port in the range, so the next call is given the first call's port. Few TCP
    // connections, so even a low open-files limit leaves room to keep its socket bound.
    let (min, _) = common::free_rtp_range(2);
    let server = start_vip(
        "rtp-reuse",
        |f| f,
        &format!(
            "[rtp]\nport_min = {min}\nport_max = {}\n[tcp]\nmax_connections = 10\n",
            min + 2
        ),
    );
    let mut first = RawCall::invite(server.port, "+46700000025", "reuse1", "0 101");
    let media = first.answer_and_ack();
    assert_eq!(media.port(), min);
    first.rtp.send_to(&audio(0, 0xca11), media).unwrap();
    first.bye();
    wait_record(&server, "reuse1");
    // Late packets of the old call, and a stranger's, while the port rests.
    flood(&first.rtp, media, 2_000);
    flood(&UdpSocket::bind("127.0.0.1:0").unwrap(), media, 2_000);
    // The rest is 4 s (until then a new call would find the pool empty).
    std::thread::sleep(Duration::from_millis(4_500));
    let mut next = RawCall::invite(server.port, "+46700000026", "reuse2", "0 101");
    let next_media = next.answer_and_ack();
    assert_eq!(next_media, media, "the only port, back from its rest");
    for i in 0..5 {
        next.rtp.send_to(&audio(i, 0xbeef), next_media).unwrap();
    }
    press(&next.rtp, next_media, "101010", 0xbeef, 1_000_000);
    let refer = next.sip.expect("REFER ", WAIT);
    let refer_to = common::header(&refer, "Refer-To").unwrap().to_owned();
    assert!(refer_to.contains("vip-desk"), "{refer_to}");
    next.bye();
    let rec = wait_record(&server, "reuse2");
    // Nothing that arrived while the port rested reached the new call.
    assert_eq!(rec["rtp_foreign_dropped"].as_u64(), Some(0), "{rec}");
}
