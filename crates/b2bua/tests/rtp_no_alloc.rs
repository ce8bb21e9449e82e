//! Media in its steady state costs no allocation: once calls are up, every RTP packet in
//! (audio with RFC 4733 offered, audio through the in-band detector, SRTP checked and
//! decrypted) and out (paced silence, SRTP encrypted in place, a bridge's relay both
//! ways) is handled without touching the heap — the switch writes its packets into
//! batches the driver gives back, and its buffers and pacing wheel are reused. Counted by
//! an allocator wrapped around this whole test binary, which has one test so nothing else
//! runs meanwhile; the kit captures no RTP here (its copies would be the kit's).

use std::alloc::System;
use std::net::SocketAddr;
use std::time::Duration;

use concierge_b2bua::SwitchConfig;
use concierge_media::sdes::{CryptoAttribute, SrtpSession};
use concierge_media::sdp;
use concierge_media::srtp::{MasterKey, SrtpProfile};
use concierge_media::Law;
use concierge_sip::wire::{response_to, Message, Request, StatusCode};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

mod testkit;

use testkit::{sdp_port, Kit};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const PHONE: &str = "127.0.0.1:5061";
const QUEUE: &str = "127.0.0.2:5070";
const QUEUE_MEDIA: &str = "127.0.0.2:7000";
/// Packet times before the count starts (every buffer has grown to its size), and counted.
const WARM_UP: usize = 50;
const COUNTED: usize = 250;

fn phone_key() -> MasterKey {
    MasterKey::from_bytes(&[0x5a; 30])
}

/// The caller's SDP at media port `port`: PCMU, with telephone-event 101 or not, over
/// SRTP or not.
fn offer(port: u16, events: bool, srtp: bool) -> String {
    let (proto, fmts) = match (srtp, events) {
        (true, _) => ("RTP/SAVP", "0 101"),
        (false, true) => ("RTP/AVP", "0 101"),
        (false, false) => ("RTP/AVP", "0"),
    };
    let mut sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} {proto} {fmts}\r\na=rtpmap:0 PCMU/8000\r\n"
    );
    if events || srtp {
        sdp.push_str("a=rtpmap:101 telephone-event/8000\r\n");
    }
    if srtp {
        let crypto = CryptoAttribute {
            tag: 1,
            profile: SrtpProfile::AesCm128HmacSha1_80,
            key: phone_key(),
        };
        sdp.push_str(&crypto.line());
        sdp.push_str("\r\n");
    }
    sdp
}

fn invite(call_id: &str, sdp: &str) -> String {
    format!(
        "INVITE sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE};branch=z9hG4bK{call_id}i;rport\r\nFrom: <sip:+46706170786@127.0.0.1>;tag=ph\r\nTo: <sip:ivr@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:phone@{PHONE}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// One call placed and ACKed: our RTP port and the 200's SDP answer.
fn call(kit: &mut Kit, call_id: &str, sdp: &str) -> (u16, String) {
    let phone: SocketAddr = PHONE.parse().unwrap();
    kit.sip_from(phone, &invite(call_id, sdp));
    let ok = kit
        .inbox(phone)
        .into_iter()
        .find_map(|m| match m {
            Message::Response(r) if r.status.0 == 200 => Some(r),
            _ => None,
        })
        .expect("the call is answered");
    let tag = ok.to.tag().expect("our tag").to_owned();
    kit.sip_from(phone, &format!(
        "ACK sip:concierge@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE};branch=z9hG4bK{call_id}a;rport\r\nFrom: <sip:+46706170786@127.0.0.1>;tag=ph\r\nTo: <sip:ivr@127.0.0.1>;tag={tag}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    ));
    let port = sdp_port(&ok.body).expect("our port in the answer");
    (port, String::from_utf8_lossy(&ok.body).into_owned())
}

/// `n` RTP packets of one 20 ms stream with payload type `pt`, each payload from `frame`.
fn stream(n: usize, pt: u8, ssrc: u32, mut frame: impl FnMut(usize) -> Vec<u8>) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut p = vec![0x80, pt];
            p.extend((i as u16).to_be_bytes());
            p.extend((i as u32 * 160).to_be_bytes());
            p.extend(ssrc.to_be_bytes());
            p.extend(frame(i));
            p
        })
        .collect()
}

/// A 1 kHz tone in PCMU: loud enough that the in-band detector runs its filters on every
/// window, and no key.
fn tone(i: usize) -> Vec<u8> {
    (0..160)
        .map(|k| {
            let t = (i * 160 + k) as f32 / 8000.0;
            let s = (8000.0 * (2.0 * std::f32::consts::PI * 1000.0 * t).sin()) as i16;
            Law::Ulaw.encode(s)
        })
        .collect()
}

/// Allocations (reallocations included) since the process started.
fn allocations() -> usize {
    let s = GLOBAL.stats();
    s.allocations + s.reallocations
}

/// Runs the streams' [`WARM_UP`] packet times, then counts over the next [`COUNTED`]:
/// returns the allocations and the RTP packets the switch sent meanwhile.
fn run_media(kit: &mut Kit, streams: &[(u16, SocketAddr, Vec<Vec<u8>>)]) -> (usize, u64) {
    for i in 0..WARM_UP {
        packet_time(kit, streams, i);
    }
    let (before, sent) = (allocations(), kit.rtp_count);
    for i in WARM_UP..WARM_UP + COUNTED {
        packet_time(kit, streams, i);
    }
    (allocations() - before, kit.rtp_count - sent)
}

/// Hands in packet `i` of every stream (each to its port, from its address), then moves
/// virtual time on a packet time, firing the pacing ticks.
fn packet_time(kit: &mut Kit, streams: &[(u16, SocketAddr, Vec<Vec<u8>>)], i: usize) {
    for (port, from, packets) in streams {
        kit.rtp_in(*port, *from, &packets[i]);
    }
    kit.advance(Duration::from_millis(20));
}

#[test]
fn steady_media_in_and_out_allocates_nothing() {
    let n = WARM_UP + COUNTED;

    // Three IVR calls hearing silence: RFC 4733 offered, in-band detection, SRTP.
    let mut kit = Kit::with(
        SwitchConfig {
            seed: 7,
            key_seed: [9; 32],
            ..SwitchConfig::default()
        },
        Default::default(),
    );
    kit.keep_rtp = false;
    let (events_port, _) = call(&mut kit, "events", &offer(4000, true, false));
    let (inband_port, _) = call(&mut kit, "inband", &offer(4002, false, false));
    let (srtp_port, answer) = call(&mut kit, "srtp", &offer(4004, true, true));
    let keying = sdp::accept_with(&answer, Some(&phone_key()))
        .expect("an SRTP answer")
        .srtp
        .expect("keys");
    let mut phone = SrtpSession::new(&keying);
    let mut encrypted = Vec::new();
    let srtp_stream = stream(n, 0, 3, |_| vec![0x7e; 160])
        .into_iter()
        .map(|p| {
            phone.protect(&p, &mut encrypted).expect("an RTP packet");
            encrypted.clone()
        })
        .collect();
    let streams = [
        (
            events_port,
            addr("127.0.0.1:4000"),
            stream(n, 0, 1, |_| vec![0x7e; 160]),
        ),
        (inband_port, addr("127.0.0.1:4002"), stream(n, 0, 2, tone)),
        (srtp_port, addr("127.0.0.1:4004"), srtp_stream),
    ];
    let (allocated, sent) = run_media(&mut kit, &streams);
    assert_eq!(allocated, 0, "allocations while the media ran");
    assert!(
        sent >= 3 * COUNTED as u64,
        "every call was paced: {sent} packets"
    );
    assert_eq!(kit.call_count(), 3, "no call ended");
    assert!(kit.records.is_empty());

    // A call bridged to a queue: each leg's packets relayed out of the other's port.
    let mut kit = Kit::with(
        SwitchConfig {
            seed: 7,
            ..SwitchConfig::default()
        },
        testkit::program(&format!(
            "name = \"bridge\"\nstart = \"xfer\"\n\n[nodes.xfer]\ntype = \"transfer\"\ntarget = \"sip:queue@{QUEUE}\"\nmode = \"bridge\"\nfailed = \"bye\"\n\n[nodes.bye]\ntype = \"hangup\"\n"
        )),
    );
    kit.keep_rtp = false;
    let (caller_port, _) = call(&mut kit, "bridged", &offer(4000, true, false));
    let leg_port = answer_the_queue(&mut kit);
    let streams = [
        (
            caller_port,
            addr("127.0.0.1:4000"),
            stream(n, 0, 4, |_| vec![0x7e; 160]),
        ),
        (
            leg_port,
            addr(QUEUE_MEDIA),
            stream(n, 0, 5, |_| vec![0x7d; 160]),
        ),
    ];
    let (allocated, sent) = run_media(&mut kit, &streams);
    assert_eq!(allocated, 0, "allocations while relaying");
    assert_eq!(
        sent,
        2 * COUNTED as u64,
        "every packet relayed, nothing else sent"
    );
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The queue answers the bridge's INVITE with 200 and PCMU; returns the leg's port.
fn answer_the_queue(kit: &mut Kit) -> u16 {
    let queue: SocketAddr = QUEUE.parse().unwrap();
    let invite: Request = kit
        .take_sent(|s| s.to == queue)
        .into_iter()
        .find_map(|m| match m {
            Message::Request(r) if r.method.as_str() == "INVITE" => Some(r),
            _ => None,
        })
        .expect("the bridge's INVITE");
    let leg_port = sdp_port(&invite.body).expect("the leg's port in the offer");
    let sdp = "v=0\r\no=- 2 2 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    let mut ok = response_to(&invite, StatusCode(200), Some("q1"));
    ok.headers.push(
        concierge_sip::wire::HeaderName::new("Contact"),
        format!("<sip:agent@{QUEUE}>"),
    );
    ok.headers.push(
        concierge_sip::wire::HeaderName::new("Content-Type"),
        "application/sdp",
    );
    ok.body = sdp.as_bytes().to_vec().into();
    kit.sip_from(queue, &String::from_utf8_lossy(&ok.to_bytes()));
    assert!(
        kit.take_sent(|s| s.to == queue)
            .iter()
            .any(|m| matches!(m, Message::Request(r) if r.method.as_str() == "ACK")),
        "the 200 is ACKed"
    );
    leg_port
}
