//! The bodies of the fuzz targets in `fuzz/` (outside the workspace), here so the normal
//! test run replays every committed corpus file through exactly the code libFuzzer ran
//! (`tests/fuzz_corpus.rs`). Each function takes arbitrary bytes and must not panic.
//!
//! Not part of the API: nothing outside the fuzz targets and their replay test calls it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::g711::Law;
use crate::rtp_stream::RtpReceiver;
use crate::sdp;
use crate::telephone_event::EventDecoder;

/// An SDP offer answered, and the answer read back as the offerer would: an answer we
/// make must be one we accept, with the codec we chose. Also read as an answer to ours.
pub fn sdp_offer_answer(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let local = SocketAddr::from(([127, 0, 0, 1], 10_000));
    if let Ok((session, answer)) = sdp::answer(&text, local, 1) {
        match sdp::accept(&answer) {
            Ok(back) => assert_eq!(back.payload_type, session.payload_type, "{answer}"),
            Err(e) => panic!("our answer is not acceptable: {e:?}\n{answer}"),
        }
        let leg = sdp::offer_for(local, 2, &session);
        assert!(
            sdp::accept(&leg).is_ok(),
            "our offer is not acceptable: {leg}"
        );
    }
    let _ = sdp::accept(&text);
}

/// RTP datagrams (each prefixed by one length byte; bit 7 of it picks a second source
/// address) into a call's receiver that expects PCMU and telephone-events at 101, then
/// 9-byte records (timestamp, marker, payload) straight into an RFC 4733 decoder.
pub fn rtp_and_telephone_events(now: Instant, data: &[u8]) {
    let caller = SocketAddr::from(([127, 0, 0, 1], 6000));
    let other = SocketAddr::from(([127, 0, 0, 2], 6002));
    let mut rx = RtpReceiver::new(
        Law::Ulaw,
        0,
        Some(101),
        Some(caller),
        Some(caller.ip()),
        true,
    );
    let mut rest = data;
    let mut at = now;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len & 0x7f).min(tail.len());
        let (packet, tail) = tail.split_at_checked(n).unwrap_or((tail, &[]));
        let from = if len & 0x80 == 0 { caller } else { other };
        let _ = rx.handle_datagram(at, from, packet);
        at += Duration::from_millis(20);
        rest = tail;
    }
    let mut decoder = EventDecoder::new();
    for record in data.chunks_exact(9) {
        if let [t0, t1, t2, t3, marker, payload @ ..] = record {
            let _ = decoder.handle(
                u32::from_be_bytes([*t0, *t1, *t2, *t3]),
                marker & 1 == 1,
                payload,
            );
        }
    }
}

/// A SIP INFO body under a Content-Type the first byte picks.
pub fn info_body(data: &[u8]) {
    const TYPES: [&str; 4] = [
        "application/dtmf-relay",
        "application/dtmf",
        "Application/DTMF-Relay; charset=utf-8",
        "text/plain",
    ];
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let content_type = TYPES
        .get(usize::from(pick) % TYPES.len())
        .copied()
        .unwrap_or_default();
    if let Some(key) = crate::info_dtmf::parse(content_type, body) {
        assert!(matches!(key, '0'..='9' | '*' | '#' | 'A'..='D'), "{key:?}");
    }
}
