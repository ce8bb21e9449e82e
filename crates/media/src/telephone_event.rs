//! RFC 4733 telephone-events (DTMF sent as RTP payload, the successor of RFC 2833).
//!
//! All packets of one key press share the RTP timestamp of its start (§2.3.1); the first
//! carries the marker bit, the last three have the end bit (§2.5.1.4). So a key press is
//! identified by its timestamp: we report it once, on the first packet we see, whichever
//! that is (the start may be lost), and remember recent timestamps so late, duplicate or
//! reordered packets of the same press never count twice.
// Peer bytes reach every function here: a slice at a byte offset inside a multi-byte
// character, or an index past the end, would be a remote panic. Use `get(..)` instead.
#![deny(clippy::string_slice, clippy::indexing_slicing)]

/// The key for an event code (§3.2); flash (16) and others are not keypad digits.
pub fn digit_for(event: u8) -> Option<char> {
    Some(match event {
        0..=9 => (b'0' + event) as char,
        10 => '*',
        11 => '#',
        12..=15 => (b'A' + event - 12) as char,
        _ => return None,
    })
}

/// The event code for a key, for sending.
pub fn event_for(digit: char) -> Option<u8> {
    Some(match digit {
        '0'..='9' => digit as u8 - b'0',
        '*' => 10,
        '#' => 11,
        'A'..='D' => digit as u8 - b'A' + 12,
        'a'..='d' => digit as u8 - b'a' + 12,
        _ => return None,
    })
}

/// One decoded payload (§2.3): event, end bit, volume, duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPayload {
    /// The event code (0–9, 10 = `*`, 11 = `#`, 12–15 = A–D).
    pub event: u8,
    /// The E bit: this packet ends the event.
    pub end: bool,
    /// Power level in −dBm0 (0–63).
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl EventPayload {
    /// `None` for a payload shorter than the 4 bytes §2.3 defines.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let [event, flags, d0, d1, ..] = *payload else {
            return None;
        };
        Some(Self {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// The four payload bytes of this event (RFC 4733 §2.3).
    pub fn write(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }
}

/// Turns a call's telephone-event packets into key presses.
#[derive(Debug, Default)]
pub struct EventDecoder {
    /// Recent presses as (timestamp, end seen), newest last; a small window is enough
    /// because a press lasts a few packets and reordering on a path spans a few more.
    recent: Vec<(u32, bool)>,
}

const WINDOW: usize = 16;

impl EventDecoder {
    /// A receiver that has seen no event yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles one telephone-event packet's payload with its RTP timestamp and marker
    /// bit; returns the digit when this packet is the first seen of a new press.
    ///
    /// A marker bit on a timestamp whose press already ended starts a new press: senders
    /// that replay recorded events (SIPp's pcaps) reuse the same timestamp for every press
    /// of a key, and RFC 4733 §2.5.1.2 marks each event's first packet.
    pub fn handle(&mut self, timestamp: u32, marker: bool, payload: &[u8]) -> Option<char> {
        let ev = EventPayload::parse(payload)?;
        let digit = digit_for(ev.event)?;
        if let Some(i) = self.recent.iter().position(|(ts, _)| *ts == timestamp) {
            let ended = self.recent.get(i).is_some_and(|r| r.1);
            if let Some(r) = self.recent.get_mut(i) {
                r.1 |= ev.end;
            }
            if !(marker && ended) {
                return None;
            }
            self.recent.remove(i);
        } else if !marker {
            // A press older than the newest one we know is a straggler of an old press
            // whose earlier packets all went missing; RFC 4733 §2.5.2.2 lets us drop it.
            if let Some((newest, _)) = self.recent.last() {
                if (timestamp.wrapping_sub(*newest) as i32) < 0 {
                    return None;
                }
            }
        }
        if self.recent.len() == WINDOW {
            self.recent.remove(0);
        }
        self.recent.push((timestamp, ev.end));
        Some(digit)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    fn pkt(event: u8, end: bool, duration: u16) -> [u8; 4] {
        EventPayload {
            event,
            end,
            volume: 10,
            duration,
        }
        .write()
    }

    #[test]
    fn one_press_over_five_packets_with_three_end_packets_is_one_digit() {
        let mut d = EventDecoder::new();
        let mut got = Vec::new();
        for (end, dur) in [
            (false, 160),
            (false, 320),
            (true, 480),
            (true, 480),
            (true, 480),
        ] {
            got.extend(d.handle(8000, !end && dur == 160, &pkt(5, end, dur)));
        }
        assert_eq!(got, vec!['5']);
    }

    #[test]
    fn a_lost_start_still_gives_the_digit_once() {
        let mut d = EventDecoder::new();
        assert_eq!(d.handle(100, false, &pkt(11, true, 800)), Some('#'));
        assert_eq!(d.handle(100, false, &pkt(11, true, 800)), None);
    }

    #[test]
    fn the_same_key_twice_is_two_presses() {
        let mut d = EventDecoder::new();
        assert_eq!(d.handle(1000, true, &pkt(1, false, 160)), Some('1'));
        assert_eq!(d.handle(1000, false, &pkt(1, true, 640)), None);
        assert_eq!(d.handle(2600, true, &pkt(1, false, 160)), Some('1'));
    }

    #[test]
    fn reordered_packets_never_make_a_ghost_digit() {
        let mut d = EventDecoder::new();
        assert_eq!(d.handle(2000, true, &pkt(2, false, 160)), Some('2'));
        assert_eq!(d.handle(3600, true, &pkt(3, false, 160)), Some('3'));
        assert_eq!(
            d.handle(2000, false, &pkt(2, true, 480)),
            None,
            "late end packet of the '2'"
        );
    }

    #[test]
    fn truncated_payloads_and_flash_are_ignored() {
        let mut d = EventDecoder::new();
        assert_eq!(d.handle(1, true, &[5, 0]), None);
        assert_eq!(d.handle(2, true, &pkt(16, false, 160)), None);
        assert_eq!(d.handle(3, true, &[]), None);
    }

    #[test]
    fn a_replayed_press_with_the_same_timestamp_counts_again_after_its_end() {
        // SIPp replays dtmf_2833_1.pcap with timestamp 13280 every time.
        let mut d = EventDecoder::new();
        let mut got = String::new();
        for _ in 0..3 {
            got.extend(d.handle(13_280, true, &pkt(1, false, 0)));
            got.extend(d.handle(13_280, false, &pkt(1, false, 320)));
            for _ in 0..3 {
                got.extend(d.handle(13_280, false, &pkt(1, true, 1120)));
            }
        }
        assert_eq!(got, "111");
    }

    #[test]
    fn all_sixteen_keys_map_both_ways() {
        for (i, k) in "0123456789*#ABCD".chars().enumerate() {
            assert_eq!(digit_for(i as u8), Some(k));
            assert_eq!(event_for(k), Some(i as u8));
        }
    }
}
