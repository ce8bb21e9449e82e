//! The shard's paced sender: one 2 ms tick grid for every call of the shard, no timer per
//! call. Each call sends when its own ptime grid point is due, so packets leave on the
//! tick grid whatever the number of calls. The tick is short so that the calls' phases
//! spread over ten ticks of a 20 ms ptime: at 4,000 calls a 10 ms tick sent 2,000 packets
//! at once, and the last of such a burst left milliseconds after the first, which was most
//! of the send jitter's p99.
//!
//! The calls wait in a wheel of tick slots, each in the slot of the tick its next packet is
//! due at: a tick visits only the calls due then (a 20 ms call every other tick), and a call
//! that sent goes into the slot of its next packet. No tick scans every call or looks up a
//! call that is not due, and the switch wakes only for ticks some call is due at. A call
//! that ended, or whose media restarted or stopped, is dropped from its slot when the slot
//! comes round (its entry names the send time it was put in for, which no longer matches).

use std::time::{Duration, Instant};

use super::Switch;
use crate::output::CallRef;

/// The pacing tick.
pub(crate) const TICK: Duration = Duration::from_millis(2);

/// Slots in the wheel: 128 ms of ticks, beyond the longest ptime (40 ms) and a late tick's
/// catch-up. A call due further ahead waits in its slot for its round.
const SLOTS: u64 = 64;

/// A call in the wheel, and the send time it was put in for.
#[derive(Debug, Clone, Copy)]
struct Paced {
    id: CallRef,
    at: Instant,
}

/// The wheel of paced calls and when the next tick is due (see the module docs).
pub(crate) struct Pacer {
    /// The grid's origin (the switch's wall-clock instant): tick `n` is at `base + n·TICK`.
    base: Instant,
    /// Slot `n % SLOTS` holds the calls due at tick `n` (or a round of the wheel later).
    slots: Vec<Vec<Paced>>,
    /// The first tick not yet run.
    next: u64,
    /// When the next tick with calls in its slot is due.
    wake: Option<Instant>,
    /// A slot's calls while it is worked through (its place taken by this buffer, so no
    /// tick allocates), and the calls whose playlist ran out in this tick.
    visiting: Vec<Paced>,
    finished: Vec<CallRef>,
}

impl Pacer {
    pub(super) fn new(base: Instant) -> Self {
        Self {
            base,
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            next: 0,
            wake: None,
            visiting: Vec::new(),
            finished: Vec::new(),
        }
    }

    /// Call `id`'s media started at `now`: it is paced from the first tick at or after
    /// `now`, which this returns (the call keeps it as its next send time).
    pub(crate) fn start(&mut self, now: Instant, id: CallRef) -> Instant {
        let tick = self.tick_at_or_after(now);
        let first = self.instant(tick);
        self.put(id, first, tick);
        first
    }

    pub(super) fn next_tick(&self) -> Option<Instant> {
        self.wake
    }

    pub(super) fn due(&self, now: Instant) -> bool {
        self.wake.is_some_and(|t| t <= now)
    }

    /// Puts call `id` in the slot of `tick`, for its packet due at `at`.
    fn put(&mut self, id: CallRef, at: Instant, tick: u64) {
        // A tick already run (the media started in the same instant, after it): the
        // call goes in that tick's slot and the tick runs again — nothing else in its slot
        // is due before its round.
        self.next = self.next.min(tick);
        self.slot(tick).push(Paced { id, at });
        let when = self.instant(tick);
        if self.wake.is_none_or(|w| w > when) {
            self.wake = Some(when);
        }
    }

    fn slot(&mut self, tick: u64) -> &mut Vec<Paced> {
        let i = (tick % SLOTS) as usize;
        &mut self.slots[i]
    }

    /// The first tick at or after `at`.
    fn tick_at_or_after(&self, at: Instant) -> u64 {
        nanos(at.saturating_duration_since(self.base)).div_ceil(nanos(TICK))
    }

    /// The last tick at or before `at`.
    fn tick_at_or_before(&self, at: Instant) -> u64 {
        nanos(at.saturating_duration_since(self.base)) / nanos(TICK)
    }

    fn instant(&self, tick: u64) -> Instant {
        self.base + Duration::from_nanos(tick.saturating_mul(nanos(TICK)))
    }

    /// After the ticks up to `current` ran: the next tick whose slot holds a call (it may
    /// only be waiting for its round: an early wake-up sends nothing and costs little).
    fn rearm(&mut self, current: u64) {
        self.next = current + 1;
        self.wake = (self.next..self.next + SLOTS)
            .find(|t| !self.slots[(t % SLOTS) as usize].is_empty())
            .map(|t| self.instant(t));
    }
}

impl Switch {
    /// Runs every tick due by `now` (one, unless the driver woke late): each call in their
    /// slots sends what its grid owes; a call whose playlist ran out hears of it
    /// afterwards.
    pub(super) fn media_tick(&mut self, now: Instant) {
        let pacer = &mut self.shared.pacer;
        let current = pacer.tick_at_or_before(now);
        // After a stall longer than the wheel, every slot once.
        let first = pacer.next.max((current + 1).saturating_sub(SLOTS));
        let due_by = pacer.instant(current);
        for tick in first..=current {
            let i = (tick % SLOTS) as usize;
            std::mem::swap(&mut pacer.visiting, &mut pacer.slots[i]);
            for n in 0..pacer.visiting.len() {
                let paced = pacer.visiting[n];
                if paced.at > due_by {
                    // Due a round (or more) of the wheel later.
                    pacer.slots[i].push(paced);
                    continue;
                }
                let Some(call) = self.calls.get_mut(paced.id) else {
                    continue;
                };
                let Some(finished) = call.send_due(now, paced.at, &mut self.shared.rtp) else {
                    continue;
                };
                if finished {
                    pacer.finished.push(paced.id);
                }
                if let Some(at) = call.media.next_send {
                    let tick = pacer.tick_at_or_after(at);
                    pacer.put(paced.id, at, tick);
                }
            }
            pacer.visiting.clear();
        }
        pacer.rearm(current);
        let mut finished = std::mem::take(&mut pacer.finished);
        for id in finished.drain(..) {
            self.run(now, id, |call, cx| call.prompt_finished(cx));
        }
        self.shared.pacer.finished = finished;
    }
}

/// Nanoseconds of `d`, saturating (centuries).
fn nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}
