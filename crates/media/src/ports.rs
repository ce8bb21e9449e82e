//! RTP ports for calls: even ports from a range (the odd one above stays free for RTCP),
//! handed out in turn and held back for a while after a call ends so late packets of the
//! old call never reach the next one.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct RtpPorts {
    free: VecDeque<u16>,
    /// Released ports with the time they become usable again, oldest first.
    resting: VecDeque<(Instant, u16)>,
    quarantine: Duration,
    /// Ports another program holds: never handed out again.
    retired: HashSet<u16>,
}

impl RtpPorts {
    pub fn new(min: u16, max: u16, quarantine: Duration) -> Self {
        let first = min + min % 2;
        let free = (first..max).step_by(2).collect();
        Self {
            free,
            resting: VecDeque::new(),
            quarantine,
            retired: HashSet::new(),
        }
    }

    pub fn allocate(&mut self, now: Instant) -> Option<u16> {
        while let Some((at, port)) = self.resting.front().copied() {
            if at > now {
                break;
            }
            self.resting.pop_front();
            self.free.push_back(port);
        }
        self.free.pop_front()
    }

    pub fn release(&mut self, port: u16, now: Instant) {
        if !self.retired.contains(&port) {
            self.resting.push_back((now + self.quarantine, port));
        }
    }

    /// The port could not be bound (another program has it): take it out of the pool.
    pub fn retire(&mut self, port: u16) {
        if self.retired.insert(port) {
            self.free.retain(|p| *p != port);
            self.resting.retain(|(_, p)| *p != port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ports_in_turn_and_none_when_exhausted() {
        let now = Instant::now();
        let mut p = RtpPorts::new(10_001, 10_006, Duration::from_secs(4));
        assert_eq!(p.allocate(now), Some(10_002));
        assert_eq!(p.allocate(now), Some(10_004));
        assert_eq!(p.allocate(now), None);
    }

    #[test]
    fn a_retired_port_never_comes_back() {
        let now = Instant::now();
        let mut p = RtpPorts::new(10_000, 10_004, Duration::ZERO);
        let port = p.allocate(now).unwrap();
        p.retire(port);
        p.release(port, now);
        assert_eq!(p.allocate(now), Some(10_002));
        assert_eq!(p.allocate(now), None);
    }

    #[test]
    fn a_released_port_rests_before_reuse() {
        let now = Instant::now();
        let mut p = RtpPorts::new(10_000, 10_002, Duration::from_secs(4));
        let port = p.allocate(now).unwrap();
        p.release(port, now);
        assert_eq!(p.allocate(now + Duration::from_secs(3)), None);
        assert_eq!(p.allocate(now + Duration::from_secs(4)), Some(port));
    }
}
