//! A call's media as the switch sees it: the RTP receiver and sender once the SDP
//! exchange settled them, the prompts queued for playing, and the digits that arrived by
//! any of the three ways.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use concierge_media::rtp_stream::RTP_HEADER;
use concierge_media::{Law, Received, RtpReceiver, RtpSender};
use concierge_prompts::Prompt;

use concierge_media::AudioSession;

/// How a digit reached us, as call records name it.
pub(crate) const RFC4733: &str = "rfc4733";
pub(crate) const INFO: &str = "info";
pub(crate) const INBAND: &str = "inband";

#[derive(Debug, Default)]
pub(crate) struct CallMedia {
    pub(crate) receiver: Option<RtpReceiver>,
    pub(crate) sender: Option<RtpSender>,
    pub(crate) law: Option<Law>,
    /// Samples per packet (ptime × 8).
    pub(crate) frame_samples: usize,
    pub(crate) ptime: Duration,
    /// Whether the SDP lets us send (not on hold).
    pub(crate) may_send: bool,
    /// When the next packet is due; on the switch's 2 ms grid.
    pub(crate) next_send: Option<Instant>,
    /// Prompts still to play; the front one is playing at `frame`.
    pub(crate) playlist: VecDeque<Arc<Prompt>>,
    pub(crate) frame: usize,
    /// Whether the last packet carried audio (the next prompt frame after silence starts
    /// a talkspurt and gets the marker bit).
    pub(crate) talking: bool,
    /// Every digit of the call with its source, for the record.
    pub(crate) digits: Vec<(char, &'static str)>,
    /// Per digit: whether the record may show it. Only keys a non-secret keypad took are
    /// shown; a key that arrives is a potential secret until a keypad says otherwise
    /// (type-ahead reaches the flow before it knows which keypad will take it).
    pub(crate) shown: Vec<bool>,
    /// Digits not yet taken by the flow (type-ahead), with their index in `digits`.
    pub(crate) pending: VecDeque<(char, usize)>,
    pub(crate) packets_sent: u64,
    /// Foreign packets dropped by receivers a re-INVITE has since replaced.
    foreign_before: u64,
    /// When the caller's media started (ACK); with the last packet heard, the base of the
    /// inactivity timeout.
    pub(crate) started_at: Option<Instant>,
}

impl CallMedia {
    /// Sets up RTP for the agreed session at `now`. `ssrc`, `seq`, `ts` are the call's
    /// random starts; `signalling_ip` is where the caller's SIP comes from (a NAT's
    /// address RTP may come from instead of the SDP's). A new session (re-INVITE) keeps
    /// SSRC and sequence; only the payload type may change.
    pub(crate) fn start(
        &mut self,
        now: Instant,
        audio: &AudioSession,
        ssrc: u32,
        seq: u16,
        ts: u32,
        signalling_ip: IpAddr,
    ) {
        let law = Law::from_payload_type(audio.payload_type).unwrap_or(Law::Ulaw);
        self.law = Some(law);
        self.foreign_before += self.receiver.as_ref().map_or(0, |r| r.foreign_dropped());
        self.started_at = Some(now);
        self.receiver = Some(RtpReceiver::new(
            law,
            audio.payload_type,
            audio.telephone_event,
            audio.remote,
            Some(signalling_ip),
            true,
        ));
        self.ptime = Duration::from_millis(audio.ptime_ms as u64);
        self.frame_samples = audio.ptime_ms as usize * 8;
        self.may_send = audio.send;
        if self.sender.is_none() {
            self.sender = Some(RtpSender::new(ssrc, seq, ts, audio.payload_type));
        }
    }

    pub(crate) fn is_started(&self) -> bool {
        self.sender.is_some()
    }

    pub(crate) fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Option<char> {
        let receiver = self.receiver.as_mut()?;
        let (digit, source) = match receiver.handle_datagram(now, from, data) {
            Received::EventDigit(d) => (d, RFC4733),
            Received::ToneDigit(d) => (d, INBAND),
            _ => return None,
        };
        self.add_digit(digit, source);
        Some(digit)
    }

    pub(crate) fn add_digit(&mut self, digit: char, source: &'static str) {
        self.pending.push_back((digit, self.digits.len()));
        self.digits.push((digit, source));
        self.shown.push(false);
    }

    /// The digits for the call record: `*` for every key not known to be harmless.
    pub(crate) fn digits_for_record(&self) -> Vec<(char, &'static str)> {
        self.digits
            .iter()
            .zip(&self.shown)
            .map(|(&(d, how), &shown)| (if shown { d } else { '*' }, how))
            .collect()
    }

    pub(crate) fn remote(&self) -> Option<SocketAddr> {
        self.receiver.as_ref().and_then(RtpReceiver::remote)
    }

    /// Adds packets another stream of the call (a bridge leg) dropped.
    pub(crate) fn add_foreign(&mut self, n: u64) {
        self.foreign_before += n;
    }

    /// RTP packets dropped over the call because a stranger sent them.
    pub(crate) fn foreign_dropped(&self) -> u64 {
        self.foreign_before + self.receiver.as_ref().map_or(0, |r| r.foreign_dropped())
    }

    /// When the caller was last heard (or its media started, if it never sent).
    pub(crate) fn last_heard(&self) -> Option<Instant> {
        let heard = self.receiver.as_ref().and_then(RtpReceiver::last_heard);
        match (heard, self.started_at) {
            (Some(h), Some(s)) => Some(h.max(s)),
            (h, s) => h.or(s),
        }
    }

    pub(crate) fn play(&mut self, prompts: impl IntoIterator<Item = Arc<Prompt>>) {
        self.playlist.extend(prompts);
    }

    pub(crate) fn is_playing(&self) -> bool {
        !self.playlist.is_empty()
    }

    /// Barge-in: a key press stops what is playing.
    pub(crate) fn stop_playing(&mut self) {
        self.playlist.clear();
        self.frame = 0;
    }

    /// Writes the next packet (prompt frame or silence) into `out`, once: the header and,
    /// straight after it, the frame copied from the prompt (or silence). Returns its
    /// length — 0 when nothing is to be sent (on hold: the timestamp moves on all the
    /// same) — and whether the playlist just ran out.
    pub(crate) fn next_packet(&mut self, out: &mut [u8]) -> (usize, bool) {
        let (Some(law), Some(sender)) = (self.law, self.sender.as_mut()) else {
            return (0, false);
        };
        let samples = self.frame_samples;
        let mut payload = out.get_mut(RTP_HEADER..RTP_HEADER + samples);
        let mut finished = false;
        let mut audio = false;
        while let Some(p) = self.playlist.front() {
            let frames = p.frame_count(samples);
            if self.frame < frames {
                if let Some(payload) = payload.as_deref_mut() {
                    p.frame_into(law, self.frame, payload);
                }
                self.frame += 1;
                audio = true;
                if self.frame >= frames {
                    self.playlist.pop_front();
                    self.frame = 0;
                    finished = self.playlist.is_empty();
                }
                break;
            }
            self.playlist.pop_front();
            self.frame = 0;
            finished = self.playlist.is_empty();
        }
        let start = audio && !self.talking;
        self.talking = audio;
        let Some(payload) = payload.filter(|_| self.may_send) else {
            sender.skip(samples as u32);
            return (0, finished);
        };
        if !audio {
            payload.fill(law.silence());
        }
        self.packets_sent += 1;
        let header = sender.write_header(start, samples as u32, out);
        (header + samples, finished)
    }
}
