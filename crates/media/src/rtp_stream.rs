//! One call's RTP: what we send (sequence, timestamp, SSRC, marker) and what we receive
//! (parsing, symmetric-RTP latching, telephone-events, audio for the in-band detector).
// Peer bytes reach every function here: a slice at a byte offset inside a multi-byte
// character, or an index past the end, would be a remote panic. Use `get(..)` instead.
#![deny(clippy::string_slice, clippy::indexing_slicing)]

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use rtp_rs::RtpReader;

use crate::g711::Law;
use crate::goertzel::ToneDetector;
use crate::source::SourcePolicy;
use crate::telephone_event::{EventDecoder, EventPayload};

/// Bytes of the RTP header we send (RFC 3550 §5.1: no CSRCs, no extension).
pub const RTP_HEADER: usize = 12;

/// Packetises one frame per ptime. Sequence numbers and timestamps run on across prompts
/// and silence (RFC 3550 §5.1); the marker bit flags the first packet of a talkspurt.
#[derive(Debug)]
pub struct RtpSender {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    payload_type: u8,
}

impl RtpSender {
    /// `ssrc`, `seq` and `timestamp` start random in production (RFC 3550 §5.1).
    pub fn new(ssrc: u32, seq: u16, timestamp: u32, payload_type: u8) -> Self {
        Self {
            ssrc,
            seq,
            timestamp,
            payload_type,
        }
    }

    /// Writes the next packet into `out`; the timestamp then advances by the frame's
    /// sample count (8 kHz clock: one byte per sample for G.711). Returns its length, or 0
    /// (and nothing advances) when `out` is too short.
    pub fn write(&mut self, payload: &[u8], talkspurt_start: bool, out: &mut [u8]) -> usize {
        let Some(body) = out.get_mut(RTP_HEADER..RTP_HEADER + payload.len()) else {
            return 0;
        };
        body.copy_from_slice(payload);
        self.write_header(talkspurt_start, payload.len() as u32, out) + payload.len()
    }

    /// Writes the next packet's header into the first [`RTP_HEADER`] bytes of `out`, for a
    /// payload of `samples` bytes that the caller writes straight after it (a prompt frame
    /// copied once into the packet): the sequence number moves on by one and the timestamp
    /// by `samples`. Returns [`RTP_HEADER`], or 0 (and nothing advances) when `out` is
    /// shorter.
    pub fn write_header(&mut self, talkspurt_start: bool, samples: u32, out: &mut [u8]) -> usize {
        let n = self.header(self.payload_type, self.timestamp, talkspurt_start, out);
        if n > 0 {
            self.timestamp = self.timestamp.wrapping_add(samples);
        }
        n
    }

    /// Writes one RFC 4733 event packet (for relaying a key press). The timestamp stays at
    /// the press's start for all its packets; call [`Self::skip`] after the last one.
    pub fn write_event(
        &mut self,
        pt: u8,
        event: EventPayload,
        start_ts: u32,
        first: bool,
        out: &mut [u8],
    ) -> usize {
        let payload = event.write();
        let Some(body) = out.get_mut(RTP_HEADER..RTP_HEADER + payload.len()) else {
            return 0;
        };
        body.copy_from_slice(&payload);
        self.header(pt, start_ts, first, out) + payload.len()
    }

    /// Advances the timestamp without sending (time passed without audio).
    pub fn skip(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
    }

    /// The RTP timestamp the next packet will carry.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// The SSRC this stream sends with.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// RFC 3550 §5.1: version 2, no padding, extension or CSRCs; the marker bit, payload
    /// type, the next sequence number, `ts` and our SSRC. Moves the sequence on.
    fn header(&mut self, pt: u8, ts: u32, marker: bool, out: &mut [u8]) -> usize {
        let Some(h) = out.get_mut(..RTP_HEADER) else {
            return 0;
        };
        let [s0, s1] = self.seq.to_be_bytes();
        let [t0, t1, t2, t3] = ts.to_be_bytes();
        let [c0, c1, c2, c3] = self.ssrc.to_be_bytes();
        let m = if marker { 0x80 } else { 0 };
        h.copy_from_slice(&[
            0x80,
            m | (pt & 0x7f),
            s0,
            s1,
            t0,
            t1,
            t2,
            t3,
            c0,
            c1,
            c2,
            c3,
        ]);
        self.seq = self.seq.wrapping_add(1);
        RTP_HEADER
    }
}

/// What one received datagram amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// A key press by RFC 4733.
    EventDigit(char),
    /// A key press heard in the audio.
    ToneDigit(char),
    /// Audio or a repeated event packet: nothing to report.
    Nothing,
    /// RTCP on the RTP port (RFC 5761 demultiplexing): ignored.
    Rtcp,
    /// Not RTP, or a payload type we did not agree on.
    Ignored,
    /// From a source that is not the peer's: dropped and counted.
    Foreign,
}

/// Receives one call's RTP.
#[derive(Debug)]
pub struct RtpReceiver {
    law: Law,
    audio_pt: u8,
    event_pt: Option<u8>,
    events: EventDecoder,
    tones: Option<ToneDetector>,
    /// Which sources may feed the stream, and where we send (symmetric RTP).
    source: SourcePolicy,
    /// When the peer's last accepted packet arrived.
    last_heard: Option<Instant>,
    scratch: Vec<i16>,
    /// Packets accepted.
    pub packets: u64,
    /// Datagrams dropped as not RTP or not ours.
    pub bad: u64,
}

impl RtpReceiver {
    /// `sdp_remote` is the peer's SDP address, `signalling_ip` where its SIP came from
    /// (see [`SourcePolicy`]); `latching` allows a NAT's address in place of the SDP's.
    pub fn new(
        law: Law,
        audio_pt: u8,
        event_pt: Option<u8>,
        sdp_remote: Option<SocketAddr>,
        signalling_ip: Option<IpAddr>,
        latching: bool,
    ) -> Self {
        Self {
            law,
            audio_pt,
            event_pt,
            events: EventDecoder::new(),
            // In-band detection is on only when the peer cannot send telephone-events.
            tones: event_pt.is_none().then(ToneDetector::new),
            source: SourcePolicy::new(sdp_remote, signalling_ip, latching),
            last_heard: None,
            scratch: Vec::with_capacity(320),
            packets: 0,
            bad: 0,
        }
    }

    /// Turns in-band detection on or off regardless of the SDP.
    pub fn set_inband(&mut self, on: bool) {
        self.tones = on.then(ToneDetector::new);
    }

    /// The address our RTP goes to.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.source.remote()
    }

    /// Whether a packet from `from` is the peer's (for packets handled elsewhere, such as
    /// a bridge's relay); counts it as heard or as dropped.
    pub fn accept_source(&mut self, now: Instant, from: SocketAddr) -> bool {
        let ok = self.source.accept(from);
        if ok {
            self.last_heard = Some(now);
        }
        ok
    }

    /// Packets dropped because they came from another source than the peer's.
    pub fn foreign_dropped(&self) -> u64 {
        self.source.dropped()
    }

    /// When the peer last sent a packet we accepted.
    pub fn last_heard(&self) -> Option<Instant> {
        self.last_heard
    }

    /// Called by the driver for every datagram on the session's socket; says what it held
    /// (audio, a key press, nothing usable).
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Received {
        // RFC 5761 §4: version 2 with a second byte of 192–223 is RTCP.
        if let [first, second, ..] = data {
            if first >> 6 == 2 && (192..=223).contains(second) {
                return Received::Rtcp;
            }
        }
        let Ok(packet) = RtpReader::new(data) else {
            self.bad += 1;
            return Received::Ignored;
        };
        let pt = packet.payload_type();
        if pt != self.audio_pt && Some(pt) != self.event_pt {
            self.bad += 1;
            return Received::Ignored;
        }
        // The source is checked before anything is decoded: a stranger's events must
        // not become key presses (RFC 3550 §8.2 leaves source validation to us).
        if !self.accept_source(now, from) {
            return Received::Foreign;
        }
        self.packets += 1;
        if Some(pt) == self.event_pt {
            return match self
                .events
                .handle(packet.timestamp(), packet.mark(), packet.payload())
            {
                Some(d) => Received::EventDigit(d),
                None => Received::Nothing,
            };
        }
        if let Some(tones) = self.tones.as_mut() {
            self.scratch.clear();
            self.law.decode_into(packet.payload(), &mut self.scratch);
            // One key a packet: a 20 ms frame cannot start two, and a longer one only when
            // the second tone follows the first with no pause, which no keypad sends.
            let mut first = None;
            tones.push(&self.scratch, |d| _ = first.get_or_insert(d));
            if let Some(d) = first {
                return Received::ToneDigit(d);
            }
        }
        Received::Nothing
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "a test's base instant")]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    fn now() -> Instant {
        Instant::now()
    }

    #[test]
    fn sequence_and_timestamp_continue_and_marker_only_at_talkspurts() {
        let mut s = RtpSender::new(0x1234, 65_534, 1000, 0);
        let mut buf = [0u8; 200];
        let mut seen = Vec::new();
        for (i, start) in [true, false, false, true].into_iter().enumerate() {
            let n = s.write(&[0xff; 160], start, &mut buf);
            let r = RtpReader::new(&buf[..n]).unwrap();
            seen.push((
                u16::from(r.sequence_number()),
                r.timestamp(),
                r.mark(),
                r.ssrc(),
            ));
            if i == 1 {
                s.skip(160); // one frame of nothing sent
            }
        }
        assert_eq!(
            seen,
            vec![
                (65_534, 1000, true, 0x1234),
                (65_535, 1160, false, 0x1234),
                (0, 1480, false, 0x1234),
                (1, 1640, true, 0x1234)
            ]
        );
    }

    #[test]
    fn latches_to_the_real_source_behind_nat() {
        let sdp: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let real: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        let mut r = RtpReceiver::new(Law::Ulaw, 0, Some(101), Some(sdp), Some(real.ip()), true);
        let mut s = RtpSender::new(1, 1, 1, 0);
        let mut buf = [0u8; 200];
        let n = s.write(&[0xff; 160], true, &mut buf);
        assert_eq!(r.remote(), Some(sdp));
        r.handle_datagram(now(), real, &buf[..n]);
        assert_eq!(r.remote(), Some(real));
        let intruder: SocketAddr = "127.0.0.1:6666".parse().unwrap();
        r.handle_datagram(now(), intruder, &buf[..n]);
        assert_eq!(r.remote(), Some(real), "a second source never re-latches");
        assert_eq!(r.foreign_dropped(), 1);
    }

    #[test]
    fn events_from_a_second_source_are_not_digits() {
        let sdp: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let mut r = RtpReceiver::new(Law::Ulaw, 0, Some(101), Some(sdp), None, true);
        let mut s = RtpSender::new(9, 1, 5000, 0);
        let mut buf = [0u8; 200];
        let n = s.write(&[0xff; 160], true, &mut buf);
        assert_eq!(r.handle_datagram(now(), sdp, &buf[..n]), Received::Nothing);
        let intruder: SocketAddr = "127.0.0.1:6666".parse().unwrap();
        let ev = EventPayload {
            event: 1,
            end: true,
            volume: 10,
            duration: 400,
        };
        let n = s.write_event(101, ev, 5000, true, &mut buf);
        assert_eq!(
            r.handle_datagram(now(), intruder, &buf[..n]),
            Received::Foreign
        );
        assert_eq!(
            r.handle_datagram(now(), sdp, &buf[..n]),
            Received::EventDigit('1')
        );
        assert_eq!(r.foreign_dropped(), 1);
    }

    #[test]
    fn rtcp_and_garbage_are_ignored_without_panic() {
        let mut r = RtpReceiver::new(Law::Ulaw, 0, None, None, None, true);
        assert_eq!(
            r.handle_datagram(
                now(),
                "127.0.0.1:1".parse().unwrap(),
                &[0x80, 200, 0, 6, 0, 0, 0, 1]
            ),
            Received::Rtcp
        );
        let mut x: u32 = 0x9e37_79b9;
        for len in 0..3000usize {
            let bytes: Vec<u8> = (0..len % 300)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            r.handle_datagram(now(), "127.0.0.1:1".parse().unwrap(), &bytes);
        }
        assert_eq!(r.remote(), r.remote());
    }

    #[test]
    fn telephone_events_become_digits_once() {
        let mut r = RtpReceiver::new(
            Law::Ulaw,
            0,
            Some(101),
            Some("127.0.0.1:9".parse().unwrap()),
            None,
            true,
        );
        let mut s = RtpSender::new(9, 1, 5000, 0);
        let mut buf = [0u8; 64];
        let mut digits = Vec::new();
        for (first, end) in [
            (true, false),
            (false, false),
            (false, true),
            (false, true),
            (false, true),
        ] {
            let ev = EventPayload {
                event: 9,
                end,
                volume: 10,
                duration: 400,
            };
            let n = s.write_event(101, ev, 5000, first, &mut buf);
            if let Received::EventDigit(d) =
                r.handle_datagram(now(), "127.0.0.1:9".parse().unwrap(), &buf[..n])
            {
                digits.push(d);
            }
        }
        assert_eq!(digits, vec!['9']);
    }
}
