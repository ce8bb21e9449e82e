//! How far behind the shard's loop is: the SIP datagrams already waiting are taken before
//! the timers, and the overload signal goes on when input waits too long.

use super::*;

/// At most this many waiting SIP datagrams are taken before the timers run, so a flood
/// cannot starve them (RTP pacing runs on the same deadline).
const MAX_WAITING_DATAGRAMS: usize = 256;

/// SIP input waiting longer than this (the socket not once empty) means overload. Below
/// T1 (500 ms), where callers start retransmitting and a backlog feeds itself, but well
/// above a scheduling hiccup: at 100 ms a busy 2-core machine flipped it for a few
/// milliseconds at 4,000 calls/s, and the calls that arrived then got 503 for nothing.
const OVERLOAD_LAG: Duration = Duration::from_millis(300);

/// The overload warning is logged at most this often.
const OVERLOAD_LOG_EVERY: Duration = Duration::from_secs(10);

impl Shard {
    /// Hands the switch the SIP datagrams already waiting, before its timers fire: after
    /// any stall of this loop, an answer that arrived in time must stop a retransmission,
    /// not cross it (a REFER resent after its 202 came in derails the peer's dialog).
    /// Returns whether the socket was emptied.
    pub(super) fn take_waiting_datagrams(&mut self, buf: &mut [u8]) -> bool {
        let Some(udp) = self.udp.clone() else {
            return true;
        };
        let mut taken = 0;
        while taken < MAX_WAITING_DATAGRAMS {
            let received = match receive::read_batch(&udp, buf) {
                Ok(r) => r,
                Err(e) => {
                    // ICMP errors of earlier sends surface here on some platforms.
                    self.udp_error(&e, None);
                    return true;
                }
            };
            for (i, &(from, len)) in received.datagrams[..received.count].iter().enumerate() {
                if let Some(from) = from {
                    self.handle_udp(from, receive::slot(buf, i, len));
                }
            }
            taken += received.count;
            if received.emptied {
                return true;
            }
        }
        false
    }

    /// Tells the switch when the loop falls behind and when it has caught up. Behind means
    /// the SIP socket has not once been found empty for `OVERLOAD_LAG` (what waits there
    /// waits at least that long: the caller's timers start retransmitting at 500 ms), or
    /// the RTP packets still queued waited that long too (the last one handled did), or
    /// the RTP thread is that far behind with its sends (or so far that it held every send
    /// batch and packets were dropped: it is not reading the sockets either). A
    /// queue's length is no measure of time: 2,000 calls put 100 packets a millisecond into
    /// it, so "half full" was an 80 ms hiccup, and refused calls the machine could carry.
    /// While behind, new calls are refused cheaply, so the ACKs and BYEs of admitted calls
    /// in the same queue are not lost behind a flood.
    pub(super) fn report_load(&mut self, sip_emptied: bool) {
        let now = Instant::now();
        if sip_emptied {
            self.sip_drained_at = now;
        }
        let rtp_waiting = !self.rtp_rx.is_empty();
        let rtp_thread_lag = self.rtp.behind_by();
        let behind = now.duration_since(self.sip_drained_at) > OVERLOAD_LAG
            || (rtp_waiting && self.rtp_lag > OVERLOAD_LAG)
            || rtp_thread_lag > OVERLOAD_LAG;
        if behind != self.overloaded {
            self.overloaded = behind;
            let signal = Input::Command(Command::Overloaded(behind));
            self.switch.handle_input(std::time::Instant::now(), signal);
            debug!(behind, "load state changed");
            // Near capacity the state flips many times a second: one line per interval.
            if behind
                && self
                    .overload_logged
                    .is_none_or(|t| now >= t + OVERLOAD_LOG_EVERY)
            {
                self.overload_logged = Some(now);
                warn!(
                    refused_so_far = self.switch.refused_invites(),
                    sip_wait_ms = now.duration_since(self.sip_drained_at).as_millis() as u64,
                    rtp_wait_ms = self.rtp_lag.as_millis() as u64,
                    rtp_queued = self.rtp_rx.len(),
                    rtp_thread_dropping = rtp_thread_lag == Duration::MAX,
                    rtp_thread_behind_ms = if rtp_thread_lag == Duration::MAX {
                        0
                    } else {
                        rtp_thread_lag.as_millis() as u64
                    },
                    "overloaded: new calls get 503 until the backlog is worked off"
                );
            }
        }
    }
}
