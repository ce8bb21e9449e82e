//! The registration's own timers, one table indexed by what each one is for (as the
//! transaction timers are indexed by their RFC 3261 letters).

use std::time::Instant;

/// What a registration waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegTimer {
    /// RFC 3261 §10.2.4: refresh the binding before it expires (at about half of what the
    /// registrar granted).
    Refresh,
    /// Try again after a failed attempt (the back-off).
    Retry,
    /// The binding the registrar granted runs out: unless a refresh succeeded, it is lost.
    Expiry,
    /// Keep the path to the registrar open: OPTIONS over UDP, CRLF over a connection
    /// (RFC 5626 §3.5.1).
    Keepalive,
}

const ALL: [RegTimer; 4] = [
    RegTimer::Refresh,
    RegTimer::Retry,
    RegTimer::Expiry,
    RegTimer::Keepalive,
];

/// A deadline per [`RegTimer`].
#[derive(Debug, Clone, Default)]
pub(super) struct RegTimers {
    deadlines: [Option<Instant>; ALL.len()],
}

impl RegTimers {
    /// Arms `timer` at `at`, replacing an earlier setting.
    pub(super) fn set(&mut self, timer: RegTimer, at: Instant) {
        self.deadlines[timer as usize] = Some(at);
    }

    /// Disarms `timer`.
    pub(super) fn clear(&mut self, timer: RegTimer) {
        self.deadlines[timer as usize] = None;
    }

    /// Disarms them all.
    pub(super) fn clear_all(&mut self) {
        self.deadlines = [None; ALL.len()];
    }

    /// When `timer` fires, if armed.
    pub(super) fn get(&self, timer: RegTimer) -> Option<Instant> {
        self.deadlines[timer as usize]
    }

    /// The earliest deadline.
    pub(super) fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Takes the earliest timer due at `now`, disarming it.
    pub(super) fn pop_expired(&mut self, now: Instant) -> Option<RegTimer> {
        let timer = ALL
            .into_iter()
            .filter(|t| self.get(*t).is_some_and(|at| at <= now))
            .min_by_key(|t| self.get(*t))?;
        self.clear(timer);
        Some(timer)
    }
}
