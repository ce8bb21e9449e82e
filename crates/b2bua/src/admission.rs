//! INVITE admission: token buckets for new calls, over all sources and per source IP, and
//! the driver's overload signal. Checked on the raw datagram before anything is allocated
//! (no parse, no transaction, no RTP port), so a flood of new INVITEs is refused for about
//! the cost of reading it and the calls already admitted keep their ACKs and BYEs.
//!
//! Several instances sharing state (`[shared]`) hold one budget between them: the driver
//! reports the others' load ([`PeerLoad`], `Command::Peers`), their calls count against
//! `max_calls`, and the new-call rate left to this instance is what the others do not use
//! — never less than an equal share, so that instances all at their limit settle on
//! `rate / n` each instead of taking turns at refusing everything.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Rates of new INVITEs the switch admits. A rate of 0 switches that limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// New calls per second over all sources.
    pub invite_rate: u32,
    /// How many may arrive at once above the rate (the bucket's size).
    pub invite_burst: u32,
    /// New calls per second from one source IP.
    pub source_invite_rate: u32,
    /// How many one source may send at once above its rate.
    pub source_invite_burst: u32,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            invite_rate: 2_000,
            invite_burst: 2_000,
            source_invite_rate: 100,
            source_invite_burst: 200,
        }
    }
}

/// The load the other instances sharing state carry, as the driver last heard it
/// (`Command::Peers`). All zero — the default, and what the driver reports while the
/// shared store is unreachable — leaves this instance its own limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerLoad {
    /// Calls in progress on the other instances.
    pub calls: usize,
    /// New calls per second the other instances admitted lately.
    pub invite_rate: u32,
    /// How many other instances are alive.
    pub instances: u32,
}

/// Why a new INVITE was refused (with 503 and Retry-After).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The driver reports a backlog of waiting input.
    Overloaded,
    /// Over `invite_rate`.
    Rate,
    /// Over `source_invite_rate` for this source.
    SourceRate,
}

impl Refusal {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Overloaded => "overloaded",
            Self::Rate => "over the INVITE rate",
            Self::SourceRate => "over the per-source INVITE rate",
        }
    }
}

/// A token bucket in virtual time: `rate` tokens a second up to `burst`, counted in
/// millionths of a token so the refill is exact integer arithmetic.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    micro: u64,
    at: Instant,
}

const MICRO: u64 = 1_000_000;

impl Bucket {
    fn full(burst: u32, now: Instant) -> Self {
        Self {
            micro: u64::from(burst) * MICRO,
            at: now,
        }
    }

    /// Millionths of a token at `now` (refilled, not taken).
    fn level(&self, now: Instant, rate: u32, burst: u32) -> u64 {
        let nanos = now.saturating_duration_since(self.at).as_nanos();
        // rate tokens/s = rate·10⁶ micro-tokens per 10⁹ ns.
        let added = (nanos * u128::from(rate) / 1_000).min(u128::from(u64::MAX));
        (self.micro.saturating_add(added as u64)).min(u64::from(burst) * MICRO)
    }

    fn has_token(&self, now: Instant, rate: u32, burst: u32) -> bool {
        self.level(now, rate, burst) >= MICRO
    }

    fn is_full(&self, now: Instant, rate: u32, burst: u32) -> bool {
        self.level(now, rate, burst) >= u64::from(burst) * MICRO
    }

    fn take(&mut self, now: Instant, rate: u32, burst: u32) {
        self.micro = self.level(now, rate, burst).saturating_sub(MICRO);
        self.at = self.at.max(now);
    }
}

/// Sources tracked at most; beyond it the full (idle) buckets are swept first, and a source
/// that still finds no room is refused. Only admitted INVITEs create entries, so the global
/// rate bounds how fast the map can grow.
const MAX_SOURCES: usize = 65_536;

/// How often the per-source map is swept of buckets that have filled up again.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The admission state of one switch.
#[derive(Debug)]
pub(crate) struct Admission {
    cfg: AdmissionConfig,
    global: Bucket,
    sources: HashMap<IpAddr, Bucket>,
    next_sweep: Instant,
    overloaded: bool,
    /// What the other instances carry.
    peers: PeerLoad,
    /// New INVITEs refused so far.
    pub(crate) refused: u64,
}

impl Admission {
    pub(crate) fn new(cfg: AdmissionConfig, now: Instant) -> Self {
        Self {
            cfg,
            global: Bucket::full(cfg.invite_burst.max(1), now),
            sources: HashMap::new(),
            next_sweep: now + SWEEP_EVERY,
            overloaded: false,
            peers: PeerLoad::default(),
            refused: 0,
        }
    }

    /// The driver's latest view of the other instances' load.
    pub(crate) fn set_peers(&mut self, peers: PeerLoad) {
        self.peers = peers;
    }

    /// Calls in progress on the other instances: they count against `max_calls` too.
    pub(crate) fn peer_calls(&self) -> usize {
        self.peers.calls
    }

    /// This instance's part of the global rate and burst: what the others leave, at least
    /// an equal share (the burst scaled alike).
    fn global_budget(&self) -> (u32, u32) {
        let (rate, burst) = (self.cfg.invite_rate, self.cfg.invite_burst.max(1));
        if self.peers.instances == 0 || rate == 0 {
            return (rate, burst);
        }
        let fair = rate / (self.peers.instances.saturating_add(1));
        let share = rate.saturating_sub(self.peers.invite_rate).max(fair).max(1);
        let burst = (u64::from(burst) * u64::from(share) / u64::from(rate)).max(1);
        (share, burst as u32)
    }

    /// The driver's view: its input queue is deep (set) or drained (clear).
    pub(crate) fn set_overloaded(&mut self, on: bool) {
        self.overloaded = on;
    }

    /// Takes a token for a new call from `source`, or says why not. A `trusted` source (a
    /// trunk, an SBC, the proxy in front: `[sip] trusted_peers`) carries many callers, so
    /// only the global budget applies to it.
    pub(crate) fn admit(
        &mut self,
        now: Instant,
        source: IpAddr,
        trusted: bool,
    ) -> Result<(), Refusal> {
        let refusal = self.check(now, source, trusted);
        if refusal.is_err() {
            self.refused += 1;
        }
        refusal
    }

    fn check(&mut self, now: Instant, source: IpAddr, trusted: bool) -> Result<(), Refusal> {
        if self.overloaded {
            return Err(Refusal::Overloaded);
        }
        let c = self.cfg;
        let global = c.invite_rate > 0;
        let per_source = c.source_invite_rate > 0 && !trusted;
        let (rate, burst) = self.global_budget();
        let (s_rate, s_burst) = (c.source_invite_rate, c.source_invite_burst.max(1));
        if global && !self.global.has_token(now, rate, burst) {
            return Err(Refusal::Rate);
        }
        if per_source {
            if now >= self.next_sweep || self.sources.len() >= MAX_SOURCES {
                self.sources.retain(|_, b| !b.is_full(now, s_rate, s_burst));
                self.next_sweep = now + SWEEP_EVERY;
            }
            let room = self.sources.len() < MAX_SOURCES;
            let bucket = match self.sources.get_mut(&source) {
                Some(b) => b,
                None if room => self
                    .sources
                    .entry(source)
                    .or_insert(Bucket::full(s_burst, now)),
                None => return Err(Refusal::SourceRate),
            };
            if !bucket.has_token(now, s_rate, s_burst) {
                return Err(Refusal::SourceRate);
            }
            bucket.take(now, s_rate, s_burst);
        }
        if global {
            self.global.take(now, rate, burst);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "a test's base instant")]
mod tests {
    use super::*;

    fn cfg(rate: u32, burst: u32, s_rate: u32, s_burst: u32) -> AdmissionConfig {
        AdmissionConfig {
            invite_rate: rate,
            invite_burst: burst,
            source_invite_rate: s_rate,
            source_invite_burst: s_burst,
        }
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn a_trusted_peer_is_held_to_the_global_budget_only() {
        let now = Instant::now();
        let mut a = Admission::new(cfg(0, 0, 1, 2), now);
        assert_eq!(
            (0..10).filter(|_| a.admit(now, A, false).is_ok()).count(),
            2
        );
        assert_eq!(
            (0..10).filter(|_| a.admit(now, B, true).is_ok()).count(),
            10
        );
        let mut g = Admission::new(cfg(1, 3, 1, 1), now);
        assert_eq!((0..10).filter(|_| g.admit(now, B, true).is_ok()).count(), 3);
    }

    #[test]
    fn the_global_bucket_admits_its_burst_then_its_rate() {
        let now = Instant::now();
        let mut a = Admission::new(cfg(10, 5, 0, 0), now);
        let admitted = (0..20).filter(|_| a.admit(now, A, false).is_ok()).count();
        assert_eq!(admitted, 5, "the burst");
        assert_eq!(a.admit(now, B, false), Err(Refusal::Rate));
        // 10/s: one more every 100 ms.
        let later = now + Duration::from_millis(100);
        assert!(a.admit(later, B, false).is_ok());
        assert_eq!(a.admit(later, B, false), Err(Refusal::Rate));
        let mut n = 0;
        for ms in 101..=1100 {
            n += a.admit(now + Duration::from_millis(ms), A, false).is_ok() as u32;
        }
        assert_eq!(n, 10, "ten a second, whatever the offer");
        assert_eq!(a.refused, 15 + 1 + 1 + 990);
    }

    #[test]
    fn one_source_over_its_rate_does_not_take_the_others_share() {
        let now = Instant::now();
        let mut a = Admission::new(cfg(1000, 1000, 2, 2), now);
        assert!(a.admit(now, A, false).is_ok());
        assert!(a.admit(now, A, false).is_ok());
        assert_eq!(a.admit(now, A, false), Err(Refusal::SourceRate));
        assert!(
            a.admit(now, B, false).is_ok(),
            "another source still gets in"
        );
        assert!(a.admit(now + Duration::from_millis(500), A, false).is_ok());
    }

    #[test]
    fn overload_refuses_everything_until_cleared_and_zero_means_no_limit() {
        let now = Instant::now();
        let mut a = Admission::new(cfg(0, 0, 0, 0), now);
        assert!((0..10_000).all(|_| a.admit(now, A, false).is_ok()));
        a.set_overloaded(true);
        assert_eq!(a.admit(now, A, false), Err(Refusal::Overloaded));
        a.set_overloaded(false);
        assert!(a.admit(now, A, false).is_ok());
    }

    #[test]
    fn the_rate_the_other_instances_use_is_not_this_one_s_but_an_equal_share_always_is() {
        let now = Instant::now();
        let mut a = Admission::new(cfg(100, 100, 0, 0), now);
        let admitted = |a: &mut Admission, at: Instant| {
            (0..1000).filter(|_| a.admit(at, A, false).is_ok()).count()
        };
        // One other instance admitting 70/s: 30/s (and a burst of 30) are left here.
        a.set_peers(PeerLoad {
            calls: 0,
            invite_rate: 70,
            instances: 1,
        });
        let t1 = now + Duration::from_secs(10);
        assert_eq!(
            admitted(&mut a, t1),
            50,
            "at least the equal share: 100 / 2"
        );
        a.set_peers(PeerLoad {
            calls: 0,
            invite_rate: 20,
            instances: 1,
        });
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!(admitted(&mut a, t2), 80, "what the other leaves");
        // Three others at their limit: a quarter each, never nothing.
        a.set_peers(PeerLoad {
            calls: 0,
            invite_rate: 300,
            instances: 3,
        });
        let t3 = t2 + Duration::from_secs(10);
        assert_eq!(admitted(&mut a, t3), 25);
        // The store unreachable: the driver reports nobody, and the whole budget is back.
        a.set_peers(PeerLoad::default());
        assert_eq!(admitted(&mut a, t3 + Duration::from_secs(10)), 100);
    }

    #[test]
    fn idle_sources_are_swept() {
        let now = Instant::now();
        let mut a = Admission::new(cfg(0, 0, 1, 1), now);
        for i in 0..100u8 {
            assert!(a.admit(now, IpAddr::from([10, 0, 0, i]), false).is_ok());
        }
        assert_eq!(a.sources.len(), 100);
        assert!(a.admit(now + SWEEP_EVERY, A, false).is_ok());
        assert_eq!(a.sources.len(), 1, "only the bucket just used is kept");
    }
}
