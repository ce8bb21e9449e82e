//! RTP ports for calls: even ports from a range (the odd one above stays free for RTCP),
//! picked at random among the free ones (an attacker cannot predict the next call's port
//! to inject media into it) and held back for a while after a call ends so late packets
//! of the old call never reach the next one.
//!
//! Ports back from their rest are preferred, at random among them, once there are enough
//! of them to keep the pick unpredictable ([`WARM_CHOICE`]): a driver that keeps released
//! sockets bound then gives most calls a socket already open, instead of opening a fresh
//! port of the range per call.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Ports back from their rest are picked from alone when at least this many are free: a
/// pick among 1,024 is 10 bits an attacker must guess (among every free port of a large
/// range, 13-15 bits), and the ports a call may get stay spread over the whole range.
pub const WARM_CHOICE: usize = 1024;

#[derive(Debug)]
/// The pool of even RTP ports media sessions are given; a released port rests before it is
/// handed out again, so late packets of the old call do not reach a new one.
pub struct RtpPorts {
    /// Free ports not handed out since the pool was made.
    cold: Vec<u16>,
    /// Free ports back from their rest (handed out before).
    warm: Vec<u16>,
    /// Picks among the free ports; seeded, so tests are reproducible.
    rng: SmallRng,
    /// Released ports with the time they become usable again, oldest first.
    resting: VecDeque<(Instant, u16)>,
    quarantine: Duration,
    /// Ports another program holds: never handed out again.
    retired: HashSet<u16>,
}

impl RtpPorts {
    /// Even ports of `min..max`; `seed` seeds the random pick.
    pub fn new(min: u16, max: u16, quarantine: Duration, seed: u64) -> Self {
        let first = min + min % 2;
        let cold = (first..max).step_by(2).collect();
        Self {
            cold,
            warm: Vec::new(),
            rng: SmallRng::seed_from_u64(seed),
            resting: VecDeque::new(),
            quarantine,
            retired: HashSet::new(),
        }
    }

    /// A free port for a new session at `now`, or `None` when the pool is exhausted: at
    /// random among the ports back from their rest when there are [`WARM_CHOICE`] of them,
    /// else at random among all free ports.
    pub fn allocate(&mut self, now: Instant) -> Option<u16> {
        while let Some((at, port)) = self.resting.front().copied() {
            if at > now {
                break;
            }
            self.resting.pop_front();
            if !self.retired.contains(&port) {
                self.warm.push(port);
            }
        }
        loop {
            let (warm, cold) = (self.warm.len(), self.cold.len());
            let choice = if warm >= WARM_CHOICE {
                warm
            } else {
                warm + cold
            };
            if choice == 0 {
                return None;
            }
            let i = self.rng.gen_range(0..choice);
            let port = if i < warm {
                self.warm.swap_remove(i)
            } else {
                self.cold.swap_remove(i - warm)
            };
            // A retired port still in the pool leaves it here (see `retire`).
            if !self.retired.contains(&port) {
                return Some(port);
            }
        }
    }

    /// Gives `port` back at `now`; it becomes free again after its rest.
    pub fn release(&mut self, port: u16, now: Instant) {
        if !self.retired.contains(&port) {
            self.resting.push_back((now + self.quarantine, port));
        }
    }

    /// The port could not be bound (another program has it): it is never handed out
    /// again. Marked only: `allocate` drops it when it meets it, so a retirement costs
    /// no pass over tens of thousands of free ports (other programs' sockets in the range
    /// make this happen on a busy machine).
    pub fn retire(&mut self, port: u16) {
        self.retired.insert(port);
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "a test's base instant")]
mod tests {
    use super::*;

    #[test]
    fn even_ports_of_the_range_and_none_when_exhausted() {
        let now = Instant::now();
        let mut p = RtpPorts::new(10_001, 10_006, Duration::from_secs(4), 1);
        let mut got = [p.allocate(now).unwrap(), p.allocate(now).unwrap()];
        got.sort();
        assert_eq!(got, [10_002, 10_004]);
        assert_eq!(p.allocate(now), None);
    }

    #[test]
    fn ports_are_picked_at_random_and_reproducibly_from_the_seed() {
        let now = Instant::now();
        let picks = |seed| {
            let mut p = RtpPorts::new(10_000, 20_000, Duration::ZERO, seed);
            (0..20)
                .map(|_| p.allocate(now).unwrap())
                .collect::<Vec<_>>()
        };
        let a = picks(7);
        assert_eq!(a, picks(7), "same seed, same ports");
        assert_ne!(a, picks(8));
        let in_turn: Vec<u16> = (0..20).map(|i| 10_000 + 2 * i).collect();
        assert_ne!(a, in_turn, "not handed out in order");
        assert!(a.iter().all(|p| p % 2 == 0 && (10_000..20_000).contains(p)));
    }

    #[test]
    fn a_retired_port_never_comes_back() {
        let now = Instant::now();
        let mut p = RtpPorts::new(10_000, 10_004, Duration::ZERO, 1);
        let port = p.allocate(now).unwrap();
        p.retire(port);
        p.release(port, now);
        assert_eq!(p.allocate(now), Some(20_002 - port));
        assert_eq!(p.allocate(now), None);
    }

    #[test]
    fn a_released_port_rests_before_reuse() {
        let now = Instant::now();
        let mut p = RtpPorts::new(10_000, 10_002, Duration::from_secs(4), 1);
        let port = p.allocate(now).unwrap();
        p.release(port, now);
        assert_eq!(p.allocate(now + Duration::from_secs(3)), None);
        assert_eq!(p.allocate(now + Duration::from_secs(4)), Some(port));
    }

    #[test]
    fn with_enough_ports_back_from_their_rest_a_call_gets_one_of_them() {
        let now = Instant::now();
        let mut p = RtpPorts::new(10_000, 50_000, Duration::ZERO, 3);
        let used: HashSet<u16> = (0..WARM_CHOICE + 100)
            .map(|_| p.allocate(now).unwrap())
            .collect();
        for &port in &used {
            p.release(port, now);
        }
        let next: Vec<u16> = (0..100).map(|_| p.allocate(now).unwrap()).collect();
        assert!(next.iter().all(|port| used.contains(port)), "{next:?}");
        // Still a random pick among them, not the order they came back in.
        let mut sorted = next.clone();
        sorted.sort_unstable();
        assert_ne!(next, sorted);
    }

    #[test]
    fn with_few_ports_back_the_pick_is_among_every_free_port() {
        let now = Instant::now();
        let mut p = RtpPorts::new(10_000, 50_000, Duration::ZERO, 3);
        let used: Vec<u16> = (0..10).map(|_| p.allocate(now).unwrap()).collect();
        for &port in &used {
            p.release(port, now);
        }
        let next: Vec<u16> = (0..50).map(|_| p.allocate(now).unwrap()).collect();
        assert!(next.iter().any(|port| !used.contains(port)), "{next:?}");
    }
}
