//! RTP packets as a caller sends them: audio frames and RFC 4733 key presses, each press a
//! sequence of event packets sharing one timestamp (marker on the first, end bit on the
//! last three, §2.5.1).

/// One RTP stream of a caller: its SSRC, and the sequence number and timestamp of the
/// next packet.
#[derive(Debug, Clone)]
pub(crate) struct Stream {
    pub(crate) ssrc: u32,
    pub(crate) seq: u16,
    pub(crate) ts: u32,
}

impl Stream {
    pub(crate) fn new(ssrc: u32) -> Self {
        Self {
            ssrc,
            seq: 1,
            ts: 8000,
        }
    }

    fn header(&mut self, pt: u8, marker: bool, ts: u32) -> Vec<u8> {
        let mut p = vec![0x80, if marker { 0x80 | pt } else { pt }];
        p.extend(self.seq.to_be_bytes());
        p.extend(ts.to_be_bytes());
        p.extend(self.ssrc.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
        p
    }

    /// One 20 ms audio frame of `payload_type` filled with `byte`.
    pub(crate) fn audio(&mut self, payload_type: u8, byte: u8) -> Vec<u8> {
        let ts = self.ts;
        let mut p = self.header(payload_type, false, ts);
        p.extend([byte; 160]);
        self.ts = self.ts.wrapping_add(160);
        p
    }

    /// One key press as RFC 4733 events of payload type `event_pt`: a start packet with
    /// the marker bit, one update, then the end packet three times (redundancy, §2.5.1.4).
    pub(crate) fn press(&mut self, event_pt: u8, key: char) -> Vec<Vec<u8>> {
        let event = event_code(key);
        let ts = self.ts;
        let mut packets = Vec::new();
        for (i, (end, duration)) in [
            (false, 160u16),
            (false, 320),
            (true, 480),
            (true, 480),
            (true, 480),
        ]
        .into_iter()
        .enumerate()
        {
            let mut p = self.header(event_pt, i == 0, ts);
            p.extend(event_payload(event, end, duration));
            packets.push(p);
        }
        // The next press (or frame) starts after this one.
        self.ts = self.ts.wrapping_add(800);
        packets
    }
}

/// The RFC 4733 event code of a key (§3.2).
pub(crate) fn event_code(key: char) -> u8 {
    match key {
        '0'..='9' => key as u8 - b'0',
        '*' => 10,
        '#' => 11,
        'A'..='D' => key as u8 - b'A' + 12,
        other => panic!("{other:?} is not a key"),
    }
}

/// The four payload bytes of a telephone-event (§2.3): event, E bit and volume 10,
/// duration.
pub(crate) fn event_payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
    let d = duration.to_be_bytes();
    [event, if end { 0x80 | 10 } else { 10 }, d[0], d[1]]
}

/// The payload type of an RTP packet.
pub(crate) fn payload_type(packet: &[u8]) -> u8 {
    packet[1] & 0x7f
}

/// Whether the marker bit is set.
pub(crate) fn marker(packet: &[u8]) -> bool {
    packet[1] & 0x80 != 0
}

/// The payload of a plain RTP packet (no CSRCs, no extension).
pub(crate) fn payload(packet: &[u8]) -> &[u8] {
    &packet[12..]
}
