//! One two-way 20 ms PCMU stream: what a phone sends (with RFC 4733 keys when asked) and
//! how regularly the other side's packets arrive.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use concierge_media::rtp_stream::RtpSender;
use concierge_media::telephone_event::{event_for, EventPayload};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::summary::Jitter;

pub(crate) const PTIME: Duration = Duration::from_millis(20);
const FRAME: usize = 160;
/// RFC 4733 payload type we offer for telephone-event.
pub(crate) const EVENT_PT: u8 = 101;

pub(crate) struct Stream {
    pub(crate) socket: UdpSocket,
    pub(crate) to: Option<SocketAddr>,
    sender: RtpSender,
    pub(crate) next_send: Instant,
    /// Frames still to send for the key being pressed: (event payload, first frame).
    keying: VecDeque<(EventPayload, bool)>,
    key_start_ts: u32,
    pending_keys: VecDeque<u8>,
    last_rx: Option<Instant>,
    pub(crate) jitter: Jitter,
    pub(crate) sent: u64,
    pub(crate) received: u64,
    buf: Vec<u8>,
}

impl Stream {
    pub(crate) async fn bind(seed: u64) -> std::io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        Ok(Self {
            socket,
            to: None,
            sender: RtpSender::new(seed as u32, (seed >> 32) as u16, (seed >> 16) as u32, 0),
            next_send: Instant::now(),
            keying: VecDeque::new(),
            key_start_ts: 0,
            pending_keys: VecDeque::new(),
            last_rx: None,
            jitter: Jitter::default(),
            sent: 0,
            received: 0,
            buf: vec![0u8; 2048],
        })
    }

    pub(crate) fn port(&self) -> u16 {
        self.socket.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Queues `digits` to be keyed, one after another with 100 ms between them.
    pub(crate) fn key(&mut self, digits: &str) {
        self.pending_keys
            .extend(digits.chars().filter_map(event_for));
    }

    /// Sends the frame that is due: an event frame while a key is down, else audio.
    pub(crate) async fn send_due(&mut self) {
        let Some(to) = self.to else {
            self.next_send += PTIME;
            return;
        };
        let mut out = [0u8; 12 + FRAME];
        if self.keying.is_empty() {
            if let Some(event) = self.pending_keys.pop_front() {
                self.start_key(event);
            }
        }
        let n = match self.keying.pop_front() {
            Some((payload, first)) => {
                let n =
                    self.sender
                        .write_event(EVENT_PT, payload, self.key_start_ts, first, &mut out);
                if self.keying.is_empty() {
                    // The key lasted six frames; audio resumes on the clock after it.
                    self.sender.skip(6 * FRAME as u32);
                }
                n
            }
            None => {
                // Quiet µ-law noise: not silence, so nothing downstream can skip it.
                let payload: [u8; FRAME] = std::array::from_fn(|i| 0xf0 | (i as u8 & 0x0f));
                self.sender.write(&payload, self.sent == 0, &mut out)
            }
        };
        if self.socket.try_send_to(&out[..n], to).is_ok() {
            self.sent += 1;
        }
        self.next_send += PTIME;
    }

    fn start_key(&mut self, event: u8) {
        self.key_start_ts = self.sender.timestamp();
        let frame = |duration: u16, end: bool| EventPayload {
            event,
            end,
            volume: 10,
            duration,
        };
        // Three growing updates, then the end packet three times (RFC 4733 §2.5.1.4),
        // then five frames of audio before the next key.
        for (i, d) in [160u16, 320, 480].into_iter().enumerate() {
            self.keying.push_back((frame(d, false), i == 0));
        }
        for _ in 0..3 {
            self.keying.push_back((frame(640, true), false));
        }
    }

    /// Reads one datagram (call after the socket is readable in a select).
    pub(crate) fn on_readable(&mut self) {
        while let Ok((n, from)) = self.socket.try_recv_from(&mut self.buf) {
            if n < 12 {
                continue;
            }
            // Symmetric RTP: answer where the other side really sends from.
            if self.to.is_none() {
                self.to = Some(from);
            }
            let now = Instant::now();
            if let Some(last) = self.last_rx {
                self.jitter.push(now - last, PTIME);
            }
            self.last_rx = Some(now);
            self.received += 1;
        }
    }
}
