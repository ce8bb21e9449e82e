//! One two-way 20 ms PCMU stream: what a phone sends (with RFC 4733 keys when asked) and
//! how regularly the other side's packets arrive, by the kernel's receive timestamps. The
//! streams live on the media engine's thread (`engine.rs`); this file holds one stream's
//! state and no IO loop.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use concierge_media::rtp_stream::RtpSender;
use concierge_media::telephone_event::{event_for, EventPayload};
use std::net::UdpSocket;

use crate::summary::Jitter;

pub(crate) const PTIME: Duration = Duration::from_millis(20);
const FRAME: usize = 160;
/// RFC 4733 payload type we offer for telephone-event.
pub(crate) const EVENT_PT: u8 = 101;

/// What a stream measured, handed back when it ends.
#[derive(Default)]
pub(crate) struct StreamStats {
    pub(crate) jitter: Jitter,
    pub(crate) sent: u64,
    pub(crate) received: u64,
}

pub(crate) struct Stream {
    pub(crate) socket: UdpSocket,
    pub(crate) to: Option<SocketAddr>,
    /// Whether the socket is connected to `to`, as a phone's RTP socket often is: its
    /// sends then take the socket's cached route, and what arrives for it is found by the
    /// kernel's early demultiplexing. On loopback the server's sends pay for this socket's
    /// receiving, so the unconnected socket charged the server for a route lookup per
    /// packet that no network would make it pay.
    connected: bool,
    sender: RtpSender,
    /// When the next frame is due; `None` until the stream starts sending.
    pub(crate) next_send: Option<Instant>,
    /// When to key `pending_keys`; `None` once they are queued.
    key_at: Option<Instant>,
    /// Frames still to send for the key being pressed: (event payload, first frame).
    keying: VecDeque<(EventPayload, bool)>,
    key_start_ts: u32,
    pending_keys: VecDeque<u8>,
    /// The kernel's receive timestamp of the last packet (since the Unix epoch).
    last_rx: Option<Duration>,
    pub(crate) stats: StreamStats,
}

impl Stream {
    pub(crate) fn new(socket: UdpSocket, seed: u64) -> Self {
        Self {
            socket,
            to: None,
            connected: false,
            sender: RtpSender::new(seed as u32, (seed >> 32) as u16, (seed >> 16) as u32, 0),
            next_send: None,
            key_at: None,
            keying: VecDeque::new(),
            key_start_ts: 0,
            pending_keys: VecDeque::new(),
            last_rx: None,
            stats: StreamStats::default(),
        }
    }

    /// Starts sending at `now` to `to` (or, with `None`, to wherever the other side's
    /// packets come from), keying `digits` `key_after` from now, one after another.
    pub(crate) fn start(
        &mut self,
        now: Instant,
        to: Option<SocketAddr>,
        digits: &str,
        key_after: Duration,
    ) {
        if let Some(to) = to {
            self.aim(to);
        }
        self.next_send = Some(now);
        self.pending_keys
            .extend(digits.chars().filter_map(event_for));
        if !self.pending_keys.is_empty() {
            self.key_at = Some(now + key_after);
        }
    }

    /// Sends the frame that is due: an event frame while a key is down, else audio.
    pub(crate) fn send_due(&mut self, now: Instant) {
        let Some(due) = self.next_send else {
            return;
        };
        self.next_send = Some(due + PTIME);
        let Some(to) = self.to else {
            return;
        };
        let mut out = [0u8; 12 + FRAME];
        if self.keying.is_empty() && self.key_at.is_some_and(|at| at <= now) {
            if let Some(event) = self.pending_keys.pop_front() {
                self.start_key(event);
            }
            if self.pending_keys.is_empty() {
                self.key_at = None;
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
                self.sender.write(&payload, self.stats.sent == 0, &mut out)
            }
        };
        let sent = if self.connected {
            self.socket.send(&out[..n])
        } else {
            self.socket.send_to(&out[..n], to)
        };
        if sent.is_ok() {
            self.stats.sent += 1;
        }
    }

    /// Sends to `to` from now on, over a connected socket where the kernel allows it (from
    /// then on it takes only what `to` sends: symmetric RTP, as the server promises).
    fn aim(&mut self, to: SocketAddr) {
        self.to = Some(to);
        self.connected = self.socket.connect(to).is_ok();
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

    /// One datagram arrived from `from`, `len` bytes, stamped `at` by the kernel (so the
    /// gap is the sender's, not this thread's wake-up). Returns whether the stream learnt
    /// where to send (symmetric RTP) and should start.
    pub(crate) fn on_packet(&mut self, len: usize, from: SocketAddr, at: Option<Duration>) -> bool {
        if len < 12 {
            return false;
        }
        let mut learnt = false;
        // Symmetric RTP: answer where the other side really sends from.
        if self.to.is_none() {
            self.aim(from);
            learnt = true;
        }
        if let (Some(last), Some(at)) = (self.last_rx, at) {
            self.stats.jitter.push(at.saturating_sub(last), PTIME);
        }
        if at.is_some() {
            self.last_rx = at;
        }
        self.stats.received += 1;
        learnt
    }
}
