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
//! per switch; see the README for what that means with several instances.

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

/// What a failure or a lock is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Subject {
    /// A caller number, kept apart by whether it was verified: a stranger claiming a
    /// VIP's number in From must not be able to lock the real VIP out.
    Number {
        number: String,
        verified: bool,
    },
    Source(IpAddr),
}

impl Subject {
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
    counts: HashMap<(String, Subject), Count>,
    /// No sweep before this (`None` before the first).
    next_sweep: Option<Instant>,
}

/// What a failure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Counted {
    Counted,
    /// This failure reached the limit: the subject is now locked (log it, once).
    NowLocked(Subject),
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
    ) -> Vec<Subject> {
        let mut v = vec![Subject::Number {
            number: number.to_owned(),
            verified,
        }];
        if !trusted_source {
            v.push(Subject::Source(source.to_canonical()));
        }
        v
    }

    /// The first of `subjects` for which `group` is locked at `now`.
    pub(crate) fn locked(
        &self,
        now: Instant,
        group: &str,
        subjects: &[Subject],
    ) -> Option<Subject> {
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
        subjects: &[Subject],
    ) -> Vec<Counted> {
        if self.counts.len() >= SWEEP_AT && self.next_sweep.is_none_or(|t| now >= t) {
            self.sweep(now);
            // A sweep walks every entry: at most one a second however hard the flood.
            self.next_sweep = Some(now + Duration::from_secs(1));
        }
        let window = self.cfg.window;
        subjects
            .iter()
            .map(|s| {
                let limit = match s {
                    Subject::Number { .. } => self.cfg.max_per_number,
                    Subject::Source(_) => self.cfg.max_per_source,
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

    fn subjects(number: &str) -> Vec<Subject> {
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
}
