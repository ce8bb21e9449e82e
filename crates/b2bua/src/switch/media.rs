//! The shard's paced sender: one 10 ms tick for every call of the shard, no timer per
//! call. Each call sends when its own ptime grid point is due, so packets leave on the
//! tick grid whatever the number of calls.

use std::time::{Duration, Instant};

use tracing::warn;

use super::Switch;
use crate::output::{CallRef, Output};
use crate::record::EndedBy;

pub(super) const TICK: Duration = Duration::from_millis(10);

impl Switch {
    /// The first tick at or after `now`.
    pub(super) fn grid_at_or_after(&self, now: Instant) -> Instant {
        let since = now.saturating_duration_since(self.wall.instant);
        let ticks = since.as_nanos().div_ceil(TICK.as_nanos()) as u32;
        self.wall.instant + TICK * ticks
    }

    pub(super) fn start_pacing(&mut self, now: Instant, id: CallRef) {
        let first = self.grid_at_or_after(now);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.media.next_send = Some(first);
        if !self.media_calls.contains(&id) {
            self.media_calls.push(id);
        }
        if self.next_tick.is_none_or(|t| t > first) {
            self.next_tick = Some(first);
        }
    }

    /// Sends every due frame.
    pub(super) fn media_tick(&mut self, now: Instant) {
        let Some(scheduled) = self.next_tick.take() else {
            return;
        };
        let mut finished: Vec<CallRef> = Vec::new();
        self.media_calls.retain(|id| self.calls.contains_key(id));
        for id in &self.media_calls {
            let Some(call) = self.calls.get_mut(id) else {
                continue;
            };
            let (Some(port), Some(mut due)) = (call.rtp_port, call.media.next_send) else {
                continue;
            };
            let ptime = call.media.ptime.max(TICK);
            // A late tick sends what is owed, up to three frames, then starts afresh: a
            // burst longer than that would only pile up in the caller's jitter buffer.
            let mut sent = 0;
            while due <= now && sent < 3 {
                let (n, done) = call
                    .media
                    .next_packet(&mut self.rtp_buf, &mut self.frame_buf);
                if let (true, Some(to)) = (n > 0, call.media.remote()) {
                    let packet = super::srtp::protect(call.media.srtp.as_mut(), &self.rtp_buf[..n]);
                    if let Some(packet) = packet {
                        self.outputs.push_back(Output::Rtp { port, to, packet });
                    }
                }
                if done {
                    finished.push(*id);
                }
                due += ptime;
                sent += 1;
            }
            if due <= now {
                due = now + ptime;
            }
            call.media.next_send = Some(due);
        }
        for id in finished {
            self.prompt_finished(now, id);
        }
        if !self.media_calls.is_empty() {
            let mut next = scheduled + TICK;
            if next <= now {
                next = self.grid_at_or_after(now + Duration::from_nanos(1));
            }
            self.next_tick = Some(next);
        }
    }
}

impl Switch {
    /// The caller has sent no RTP for `media_timeout` (its BYE was lost, or it vanished):
    /// the call ends with BYE. Returns whether it did.
    pub(super) fn media_inactive(&mut self, now: Instant, id: CallRef) -> bool {
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        if call.media_deadline().is_none_or(|d| d > now) {
            return false;
        }
        let secs = call.media_timeout.as_secs();
        call.span
            .in_scope(|| warn!(secs, "no RTP from the caller; ending the call"));
        call.ending = Some((
            EndedBy::Network,
            format!("no RTP from the caller for {secs} s"),
        ));
        self.flow_hung_up(id);
        self.hang_up(now, id, "no RTP from the caller");
        true
    }
}
