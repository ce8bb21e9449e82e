//! Failed code attempts counted across calls, so a keypad cannot be brute-forced one
//! guess per call.
//!
//! A flow names a lockout group (`codes`) on the keypad that collects a code and on the
//! condition that judges it; each time the condition takes its `default` exit the call
//! reports a failure here, counted per caller number and — for callers from untrusted
//! addresses — per source address. When a count reaches its limit within the window, the
//! group is locked for that number or address for one window: keypads of the group take
//! their `locked` exit instead of collecting.
//!
//! Sans-IO like the rest of the switch: every method takes the time. State is in memory,
//! per switch. With a shared store (`[shared]`) the driver counts each failure there too
//! and tells the switch of the locks the store holds ([`SharedLock`]); each goes into this
//! table for its remaining time ([`Lockout::lock_for`]), so a lock another instance brought
//! about stops code entry here as a local one does, and a local lock stands whatever the
//! store says.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Limits of the lockout (`[lockout]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutConfig {
    /// Failed attempts from one caller number within `window` before it is locked.
    pub max_per_number: u32,
    /// Failed attempts from one untrusted source address within `window`.
    pub max_per_source: u32,
    /// How far back failures count, and how long a lock lasts.
    pub window: Duration,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        Self {
            max_per_number: 5,
            max_per_source: 20,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// What a failure or a lock is counted against: a caller's number, and — for a caller from
/// an address that is not a trusted peer — that address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LockoutSubject {
    /// A caller number, kept apart by whether it was verified: a stranger claiming a
    /// VIP's number in From must not be able to lock the real VIP out.
    Number {
        /// The number as the call's identity has it (empty when withheld).
        number: String,
        /// Asserted by a trusted peer, not merely claimed.
        verified: bool,
    },
    /// The source address of an untrusted caller (IPv4-mapped addresses as IPv4).
    Source(IpAddr),
}

/// A lock the shared store holds (`[shared]`): `group` is locked for `subject` for
/// `remaining` more. The driver hands these in ([`crate::Input::SharedLocks`]); the switch
/// keeps each in its own table for that long (at most one window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedLock {
    /// The lockout group (`codes`).
    pub group: String,
    /// Who is locked.
    pub subject: LockoutSubject,
    /// How much longer the lock lasts, as the store said when asked.
    pub remaining: Duration,
}

impl LockoutSubject {
    /// `number` or `source`, as records and logs name the lock.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Number { .. } => "number",
            Self::Source(_) => "source",
        }
    }
}

#[derive(Debug, Default)]
struct Count {
    /// Failure times inside the window, oldest first; at most the limit.
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

/// Entries kept before expired ones are swept; each is about a hundred bytes.
const SWEEP_AT: usize = 100_000;
/// The most entries ever kept (~100 MB). Beyond it — only a flood of failures from more
/// numbers and addresses than a window can hold — a subject not yet counted is not
/// counted: memory stays bounded and the subjects already counted stay locked.
const MAX_ENTRIES: usize = 1_000_000;

/// The counts of one switch.
#[derive(Debug, Default)]
pub(crate) struct Lockout {
    cfg: LockoutConfig,
    counts: HashMap<(String, LockoutSubject), Count>,
    /// No sweep before this (`None` before the first).
    next_sweep: Option<Instant>,
}

/// What a failure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Counted {
    Counted,
    /// This failure reached the limit: the subject is now locked (log it, once).
    NowLocked(LockoutSubject),
}

impl Lockout {
    pub(crate) fn new(cfg: LockoutConfig) -> Self {
        Self {
            cfg,
            counts: HashMap::new(),
            next_sweep: None,
        }
    }

    /// The subjects a caller is counted as: the number always, the source address only
    /// when it is not a trusted peer (a trunk carries many callers).
    pub(crate) fn subjects(
        number: &str,
        verified: bool,
        source: IpAddr,
        trusted_source: bool,
    ) -> Vec<LockoutSubject> {
        let mut v = vec![LockoutSubject::Number {
            number: number.to_owned(),
            verified,
        }];
        if !trusted_source {
            v.push(LockoutSubject::Source(source.to_canonical()));
        }
        v
    }

    /// The first of `subjects` for which `group` is locked at `now`.
    pub(crate) fn locked(
        &self,
        now: Instant,
        group: &str,
        subjects: &[LockoutSubject],
    ) -> Option<LockoutSubject> {
        subjects
            .iter()
            .find(|s| {
                self.counts
                    .get(&(group.to_owned(), (*s).clone()))
                    .and_then(|c| c.locked_until)
                    .is_some_and(|until| now < until)
            })
            .cloned()
    }

    /// Counts one failed attempt in `group` against every subject.
    pub(crate) fn failed(
        &mut self,
        now: Instant,
        group: &str,
        subjects: &[LockoutSubject],
    ) -> Vec<Counted> {
        self.sweep_now_and_then(now);
        let window = self.cfg.window;
        subjects
            .iter()
            .map(|s| {
                let limit = match s {
                    LockoutSubject::Number { .. } => self.cfg.max_per_number,
                    LockoutSubject::Source(_) => self.cfg.max_per_source,
                } as usize;
                let key = (group.to_owned(), s.clone());
                if self.counts.len() >= MAX_ENTRIES && !self.counts.contains_key(&key) {
                    return Counted::Counted;
                }
                let c = self.counts.entry(key).or_default();
                if c.locked_until.is_some_and(|u| now < u) {
                    return Counted::Counted;
                }
                c.locked_until = None;
                while c
                    .failures
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= window)
                {
                    c.failures.pop_front();
                }
                c.failures.push_back(now);
                if limit > 0 && c.failures.len() >= limit {
                    c.failures.clear();
                    c.locked_until = Some(now + window);
                    Counted::NowLocked(s.clone())
                } else {
                    Counted::Counted
                }
            })
            .collect()
    }

    /// Keeps a lock the shared store holds: `lock.group` is locked for `lock.subject` from
    /// `now` for `lock.remaining` (at most one window: a store's word cannot lock anyone
    /// longer than a failure here could). A lock already in force here that lasts longer
    /// stands. Returns whether this lock is new here (log it, once).
    pub(crate) fn lock_for(&mut self, now: Instant, lock: &SharedLock) -> bool {
        self.sweep_now_and_then(now);
        let key = (lock.group.clone(), lock.subject.clone());
        if self.counts.len() >= MAX_ENTRIES && !self.counts.contains_key(&key) {
            return false;
        }
        let until = now + lock.remaining.min(self.cfg.window);
        let c = self.counts.entry(key).or_default();
        let new = c.locked_until.is_none_or(|u| u <= now);
        if c.locked_until.is_none_or(|u| u < until) {
            c.locked_until = Some(until);
        }
        new
    }

    /// Sweeps once the table is large, at most once a second however hard the flood (a
    /// sweep walks every entry).
    fn sweep_now_and_then(&mut self, now: Instant) {
        if self.counts.len() >= SWEEP_AT && self.next_sweep.is_none_or(|t| now >= t) {
            self.sweep(now);
            self.next_sweep = Some(now + Duration::from_secs(1));
        }
    }

    /// Drops entries with nothing inside the window and no lock in force.
    fn sweep(&mut self, now: Instant) {
        let window = self.cfg.window;
        self.counts.retain(|_, c| {
            c.locked_until.is_some_and(|u| now < u)
                || c.failures
                    .back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < window)
        });
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "a test's base instant")]
mod tests {
    use super::*;

    fn subjects(number: &str) -> Vec<LockoutSubject> {
        Lockout::subjects(number, false, IpAddr::from([192, 0, 2, 1]), false)
    }

    #[test]
    fn five_failures_lock_the_number_for_the_window_and_then_it_opens() {
        let t0 = Instant::now();
        let mut l = Lockout::new(LockoutConfig::default());
        let a = subjects("+46700000009");
        for i in 0..4 {
            l.failed(t0 + Duration::from_secs(i), "codes", &a);
            assert_eq!(l.locked(t0 + Duration::from_secs(i), "codes", &a), None);
        }
        let counted = l.failed(t0 + Duration::from_secs(4), "codes", &a);
        assert_eq!(counted[0], Counted::NowLocked(a[0].clone()));
        let locked_at = t0 + Duration::from_secs(4);
        assert_eq!(l.locked(locked_at, "codes", &a), Some(a[0].clone()));
        assert_eq!(l.locked(locked_at, "other-group", &a), None);
        // Another number from another address is not affected.
        let b = Lockout::subjects("+46700000003", false, IpAddr::from([192, 0, 2, 2]), false);
        assert_eq!(l.locked(locked_at, "codes", &b), None);
        // Still locked a moment before the window ends; open at its end.
        let window = Duration::from_secs(15 * 60);
        assert!(l
            .locked(locked_at + window - Duration::from_millis(1), "codes", &a)
            .is_some());
        assert_eq!(l.locked(locked_at + window, "codes", &a), None);
        // And the count starts again from zero.
        l.failed(locked_at + window, "codes", &a);
        assert_eq!(l.locked(locked_at + window, "codes", &a), None);
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let t0 = Instant::now();
        let mut l = Lockout::new(LockoutConfig::default());
        let a = subjects("+46700000009");
        for i in 0..4 {
            l.failed(t0 + Duration::from_secs(i), "codes", &a);
        }
        let later = t0 + Duration::from_secs(15 * 60 + 10);
        assert_eq!(l.failed(later, "codes", &a)[0], Counted::Counted);
        assert_eq!(l.locked(later, "codes", &a), None);
    }

    #[test]
    fn an_untrusted_source_is_locked_after_twenty_whatever_the_numbers() {
        let t0 = Instant::now();
        let mut l = Lockout::new(LockoutConfig::default());
        for i in 0..20u32 {
            l.failed(t0, "codes", &subjects(&format!("+4670000{i:04}")));
        }
        let fresh = subjects("+46799999999");
        assert_eq!(
            l.locked(t0, "codes", &fresh).map(|s| s.kind()),
            Some("source")
        );
        // A trusted trunk is counted per number only.
        let via_trunk = Lockout::subjects("+46799999999", true, IpAddr::from([192, 0, 2, 1]), true);
        assert_eq!(l.locked(t0, "codes", &via_trunk), None);
    }

    #[test]
    fn a_claimed_number_cannot_lock_out_the_verified_one() {
        let t0 = Instant::now();
        let mut l = Lockout::new(LockoutConfig::default());
        let claimed = subjects("+46706170786");
        for _ in 0..5 {
            l.failed(t0, "codes", &claimed);
        }
        let verified =
            Lockout::subjects("+46706170786", true, IpAddr::from([203, 0, 113, 1]), true);
        assert!(l.locked(t0, "codes", &claimed).is_some());
        assert_eq!(l.locked(t0, "codes", &verified), None);
    }

    #[test]
    fn expired_entries_are_swept_so_memory_follows_the_window() {
        let t0 = Instant::now();
        let mut l = Lockout::new(LockoutConfig::default());
        for i in 0..SWEEP_AT {
            let s = Lockout::subjects(&format!("+{i}"), true, IpAddr::from([192, 0, 2, 1]), true);
            l.failed(t0, "codes", &s);
        }
        assert_eq!(l.counts.len(), SWEEP_AT);
        let later = t0 + LockoutConfig::default().window;
        l.failed(later, "codes", &subjects("+1"));
        assert_eq!(l.counts.len(), 2, "the new number and its source");
    }

    #[test]
    fn a_lock_the_store_holds_locks_here_for_its_remaining_time_at_most_a_window() {
        let t0 = Instant::now();
        let mut l = Lockout::new(LockoutConfig::default());
        let a = subjects("+46700000009");
        let lock = |remaining| SharedLock {
            group: "codes".into(),
            subject: a[0].clone(),
            remaining,
        };
        assert!(l.lock_for(t0, &lock(Duration::from_secs(60))), "new here");
        assert_eq!(l.locked(t0, "codes", &a), Some(a[0].clone()));
        assert!(
            !l.lock_for(t0, &lock(Duration::from_secs(30))),
            "already locked: not new, and not shortened"
        );
        let minute = t0 + Duration::from_secs(60);
        assert!(l
            .locked(minute - Duration::from_millis(1), "codes", &a)
            .is_some());
        assert_eq!(l.locked(minute, "codes", &a), None);
        // A store that says "a year" locks for one window.
        l.lock_for(minute, &lock(Duration::from_secs(365 * 86_400)));
        let window = LockoutConfig::default().window;
        assert!(l
            .locked(minute + window - Duration::from_millis(1), "codes", &a)
            .is_some());
        assert_eq!(l.locked(minute + window, "codes", &a), None);
    }
}
