use std::time::{Duration, Instant};

/// RFC 3261 Table 4 base intervals. Configurable because carriers and tests tune them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate, default 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses, default 4 s.
    pub t2: Duration,
    /// Maximum time a message stays in the network, default 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64·T1: the transaction timeout (timers B, F, H, J, L, M).
    pub fn timeout(&self) -> Duration {
        self.t1 * 64
    }
}

/// The transaction timers of RFC 3261 §17 (Table 4) and RFC 6026.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsxTimer {
    /// §17.1.1.2 INVITE request retransmit, unreliable transports only (T1, doubling).
    A,
    /// §17.1.1.2 INVITE client transaction timeout (64·T1).
    B,
    /// §17.1.1.2 wait time for response retransmits in Completed (≥ 32 s UDP, 0 reliable).
    D,
    /// §17.1.2.2 non-INVITE request retransmit (T1 doubling to T2, then T2).
    E,
    /// §17.1.2.2 non-INVITE client transaction timeout (64·T1).
    F,
    /// §17.2.1 INVITE final (non-2xx) response retransmit (T1 doubling to T2).
    G,
    /// §17.2.1 wait time for ACK receipt (64·T1).
    H,
    /// §17.2.1 wait time for ACK retransmits in Confirmed (T4, 0 reliable).
    I,
    /// §17.2.2 wait time for non-INVITE request retransmits (64·T1, 0 reliable).
    J,
    /// §17.1.2.2 wait time for response retransmits (T4, 0 reliable).
    K,
    /// RFC 6026 §8.7: INVITE server waits in Accepted for retransmitted INVITEs (64·T1).
    L,
    /// RFC 6026 §8.4: INVITE client waits in Accepted for 2xx retransmissions (64·T1).
    M,
}

const COUNT: usize = 12;

impl TsxTimer {
    fn index(self) -> usize {
        self as usize
    }
}

/// The armed timers of one transaction: a deadline per [`TsxTimer`].
#[derive(Debug, Clone, Default)]
pub struct TsxTimers {
    deadlines: [Option<Instant>; COUNT],
}

impl TsxTimers {
    /// Arms `timer` to fire at `at`, replacing an earlier setting.
    pub fn set(&mut self, timer: TsxTimer, at: Instant) {
        self.deadlines[timer.index()] = Some(at);
    }

    /// Disarms `timer`.
    pub fn clear(&mut self, timer: TsxTimer) {
        self.deadlines[timer.index()] = None;
    }

    /// Disarms every timer (the transaction terminated).
    pub fn clear_all(&mut self) {
        self.deadlines = [None; COUNT];
    }

    /// When `timer` fires, if armed.
    pub fn get(&self, timer: TsxTimer) -> Option<Instant> {
        self.deadlines[timer.index()]
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Takes the earliest timer due at `now`, disarming it.
    pub fn pop_expired(&mut self, now: Instant) -> Option<TsxTimer> {
        const ALL: [TsxTimer; COUNT] = [
            TsxTimer::A,
            TsxTimer::B,
            TsxTimer::D,
            TsxTimer::E,
            TsxTimer::F,
            TsxTimer::G,
            TsxTimer::H,
            TsxTimer::I,
            TsxTimer::J,
            TsxTimer::K,
            TsxTimer::L,
            TsxTimer::M,
        ];
        let timer = ALL
            .into_iter()
            .filter(|t| self.get(*t).is_some_and(|d| d <= now))
            .min_by_key(|t| self.get(*t))?;
        self.clear(timer);
        Some(timer)
    }
}
