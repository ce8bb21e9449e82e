//! RTP as the tests' callers send it: audio packets and RFC 4733 key presses, over plain
//! UDP sockets.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// One 20 ms PCMU packet of silence.
pub fn audio(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend(seq.to_be_bytes());
    p.extend((u32::from(seq) * 160).to_be_bytes());
    p.extend(ssrc.to_be_bytes());
    p.extend([0xff; 160]);
    p
}

/// The RTP packets of one RFC 4733 key press (payload type 101): a start packet and three
/// end packets, all with the press's timestamp.
pub fn key_press(digit: u8, ts: u32, ssrc: u32, seq: &mut u16) -> Vec<Vec<u8>> {
    (0..4)
        .map(|i| {
            let mut p = vec![0x80, if i == 0 { 0x80 | 101 } else { 101 }];
            *seq = seq.wrapping_add(1);
            p.extend(seq.to_be_bytes());
            p.extend(ts.to_be_bytes());
            p.extend(ssrc.to_be_bytes());
            let end = if i == 0 { 0 } else { 0x80 };
            p.extend([digit, end | 10]);
            p.extend((160u16 * (i + 1)).to_be_bytes());
            p
        })
        .collect()
}

/// Keys `digits` from `sock` to `to`: 10 ms between a press's packets, 80 ms between presses.
pub fn press(sock: &UdpSocket, to: SocketAddr, digits: &str, ssrc: u32, ts0: u32) {
    let mut seq = 0u16;
    for (i, d) in digits.chars().enumerate() {
        let digit = d.to_digit(10).expect("a digit") as u8;
        for p in key_press(digit, ts0 + i as u32 * 8000, ssrc, &mut seq) {
            sock.send_to(&p, to).unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(80));
    }
}
