//! The shard's paced sender: one 10 ms tick for every call of the shard, no timer per
//! call. Each call sends when its own ptime grid point is due, so packets leave on the
//! tick grid whatever the number of calls.

use std::time::{Duration, Instant};

use super::Switch;
use crate::output::CallRef;

/// The pacing tick.
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// The calls with media and when the tick is next due; the buffers every packet is
/// written into.
pub(crate) struct Pacer {
    /// The grid's origin (the switch's wall-clock instant).
    base: Instant,
    calls: Vec<CallRef>,
    next_tick: Option<Instant>,
    rtp_buf: Vec<u8>,
    frame_buf: Vec<u8>,
}

impl Pacer {
    pub(super) fn new(base: Instant) -> Self {
        Self {
            base,
            calls: Vec::new(),
            next_tick: None,
            rtp_buf: vec![0u8; 1500],
            frame_buf: Vec::with_capacity(320),
        }
    }

    /// Call `id`'s media started at `now`: it is paced from the first tick at or after
    /// `now`, which this returns.
    pub(crate) fn start(&mut self, now: Instant, id: CallRef) -> Instant {
        let first = self.grid_at_or_after(now);
        if !self.calls.contains(&id) {
            self.calls.push(id);
        }
        if self.next_tick.is_none_or(|t| t > first) {
            self.next_tick = Some(first);
        }
        first
    }

    pub(super) fn next_tick(&self) -> Option<Instant> {
        self.next_tick
    }

    pub(super) fn due(&self, now: Instant) -> bool {
        self.next_tick.is_some_and(|t| t <= now)
    }

    /// The first tick at or after `now`.
    fn grid_at_or_after(&self, now: Instant) -> Instant {
        let since = now.saturating_duration_since(self.base);
        let ticks = since.as_nanos().div_ceil(TICK.as_nanos()) as u32;
        self.base + TICK * ticks
    }
}

impl Switch {
    /// Sends every due frame; a call whose playlist ran out hears of it afterwards.
    pub(super) fn media_tick(&mut self, now: Instant) {
        let pacer = &mut self.shared.pacer;
        let Some(scheduled) = pacer.next_tick.take() else {
            return;
        };
        let calls = &mut self.calls;
        pacer.calls.retain(|id| calls.contains_key(id));
        let mut finished: Vec<CallRef> = Vec::new();
        for id in &pacer.calls {
            let Some(call) = calls.get_mut(id) else {
                continue;
            };
            let out = &mut self.shared.outputs;
            if call.send_due(now, out, &mut pacer.rtp_buf, &mut pacer.frame_buf) {
                finished.push(*id);
            }
        }
        for id in finished {
            self.run(now, id, |call, cx| call.prompt_finished(cx));
        }
        let pacer = &mut self.shared.pacer;
        if !pacer.calls.is_empty() {
            let mut next = scheduled + TICK;
            if next <= now {
                next = pacer.grid_at_or_after(now + Duration::from_nanos(1));
            }
            pacer.next_tick = Some(next);
        }
    }
}
