//! The caller's RTP: started on the ACK (or in early media), sent on the shard's pacing
//! tick, received on its port — checked and decrypted on an SRTP leg, relayed to a bridge's
//! other leg, or fed to the IVR (RFC 4733 digits, in-band tones) — and its silence, which
//! ends a call whose BYE was lost.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use concierge_media::sdes::SrtpSession;
use tracing::{debug, warn};

use super::{Call, Cx, Transfer};
use crate::record::EndedBy;
use crate::switch::{RtpOut, TICK};

impl Call {
    /// RTP starts once the call is confirmed (or its early media begins) and the codec is
    /// agreed; SSRC, sequence number and timestamp start at random (RFC 3550 §5.1).
    pub(crate) fn start_media(&mut self, cx: &mut Cx<'_>) {
        let r = cx.endpoint.random_u64();
        let Some(audio) = self.caller.audio.clone() else {
            warn!("no agreed audio; the call has no media");
            return;
        };
        self.caller.srtp.keyed(audio.srtp.as_ref());
        let (ssrc, seq, ts) = (r as u32, (r >> 32) as u16, (r >> 48) as u32 * 7919);
        let signalling = self.caller.peer.addr.ip();
        self.media.start(cx.now, &audio, ssrc, seq, ts, signalling);
        debug!(codec = audio.codec, remote = ?audio.remote, "media started");
        self.media.next_send = Some(cx.pacer.start(cx.now, cx.id));
        self.media_ready(cx);
    }

    /// A datagram arrived on one of the call's ports. On an encrypted leg it is checked
    /// and decrypted first into `plain` (a forged or replayed packet goes no further);
    /// after that the relay, RFC 4733 events and in-band detection see plain RTP either
    /// way. Returns whether the flow heard of it (a digit): only then may the call's
    /// deadlines have changed.
    pub(crate) fn on_rtp(
        &mut self,
        cx: &mut Cx<'_>,
        port: u16,
        from: SocketAddr,
        data: &[u8],
        plain: &mut Vec<u8>,
    ) -> bool {
        let data = match self.unprotect(port, data, plain) {
            Some(true) => plain.as_slice(),
            Some(false) => data,
            None => return false,
        };
        if matches!(self.transfer, Transfer::Bridge(_)) && self.relay(cx, port, from, data) {
            return false;
        }
        if self.media.handle_datagram(cx.now, from, data).is_none() {
            return false;
        }
        let span = self.span.clone();
        let _entered = span.enter();
        // Never the key itself: it may be part of a code (see `CallMedia::shown`).
        debug!("digit received by RTP");
        self.digit_arrived(cx);
        true
    }

    /// Decrypts a packet that arrived on `port` into `out`. `Some(false)`: the leg is
    /// plain, use the packet as it is; `Some(true)`: `out` holds the RTP packet; `None`:
    /// drop it (forged, replayed, or SRTCP on the RTP port, which we do not use).
    fn unprotect(&mut self, port: u16, data: &[u8], out: &mut Vec<u8>) -> Option<bool> {
        let session = if self.caller.port.is(port) {
            self.caller.srtp.session.as_deref_mut()
        } else {
            self.transfer
                .bridge_mut()
                .filter(|b| b.leg.port.is(port))
                .and_then(|b| b.leg.srtp.session.as_deref_mut())
        };
        let Some(session) = session else {
            return Some(false);
        };
        // RFC 5761 §4: RTCP packet types 192–223 in the second byte.
        if data.len() >= 2 && (192..=223).contains(&data[1]) {
            return None;
        }
        match session.unprotect(data, out) {
            Ok(()) => Some(true),
            Err(e) => {
                let n = session.rejected;
                // The first refusal and then every power of two: a flood stays a few lines.
                if n.is_power_of_two() {
                    self.span
                        .in_scope(|| debug!(port, error = %e, rejected = n, "SRTP packet refused"));
                }
                None
            }
        }
    }

    /// The pacing tick: sends what the caller's ptime grid owes by `now` (prompt frames
    /// or silence), each packet written once into `out` — header, frame and SRTP tag in
    /// place. A late tick sends up to three frames, then starts afresh: a longer burst
    /// would only pile up in the caller's jitter buffer. `scheduled` is the send time the
    /// pacer holds the call for; `None` when that is not the call's next send time any
    /// more (its media restarted or stopped): nothing is sent. Else returns whether the
    /// playlist ran out; the next send time is `media.next_send`.
    pub(crate) fn send_due(
        &mut self,
        now: Instant,
        scheduled: Instant,
        out: &mut RtpOut,
    ) -> Option<bool> {
        if self.media.next_send != Some(scheduled) {
            return None;
        }
        let port = self.caller.port.number()?;
        let mut due = scheduled;
        let ptime = self.media.ptime.max(TICK);
        let mut finished = false;
        let mut sent = 0;
        while due <= now && sent < 3 {
            let room = out.room();
            let (n, done) = self.media.next_packet(room);
            if let (true, Some(to)) = (n > 0, self.media.remote()) {
                if let Some(n) = protect(self.caller.srtp.session.as_deref_mut(), room, n) {
                    out.commit(port, to, now, n);
                }
            }
            finished |= done;
            due += ptime;
            sent += 1;
        }
        if due <= now {
            due = now + ptime;
        }
        self.media.next_send = Some(due);
        Some(finished)
    }

    /// When the caller's silence ends the call: `timeout` after the last RTP packet it
    /// sent (or after the ACK started its media). Only for an up call whose caller is
    /// meant to send: a caller holding us (`sendonly`/`inactive`) sends nothing.
    pub(crate) fn media_deadline(&self, timeout: Duration) -> Option<Instant> {
        if timeout.is_zero() || !self.caller.state.is_confirmed() {
            return None;
        }
        if !self.caller.audio.as_ref().is_some_and(|a| a.send) {
            return None;
        }
        self.media.last_heard().map(|t| t + timeout)
    }

    /// The caller has sent no RTP for `media_timeout` (its BYE was lost, or it vanished):
    /// the call ends with BYE.
    pub(crate) fn silence_due(&mut self, cx: &mut Cx<'_>) {
        let timeout = cx.cfg.media_timeout;
        if self.media_deadline(timeout).is_none_or(|d| d > cx.now) {
            return;
        }
        let secs = timeout.as_secs();
        warn!(secs, "no RTP from the caller; ending the call");
        let why = format!("no RTP from the caller for {secs} s");
        self.notes.ending = Some((EndedBy::Network, why));
        self.flow_hung_up();
        self.hang_up(cx, "no RTP from the caller");
    }
}

/// Encrypts, in place, the RTP packet in `packet[..len]` for a leg with `session` (its
/// tag written after it); a plain leg's packet stays as it is. Returns the length to send,
/// `None` when it cannot be protected (not an RTP packet, or an index already used): it is
/// not sent.
pub(crate) fn protect(
    session: Option<&mut SrtpSession>,
    packet: &mut [u8],
    len: usize,
) -> Option<usize> {
    match session {
        Some(session) => session.protect_in_place(packet, len).ok(),
        None => Some(len),
    }
}
