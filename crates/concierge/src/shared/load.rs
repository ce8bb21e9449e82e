//! Each instance's load in the store, so `max_calls` and `invite_rate` hold for all of
//! them together: every `heartbeat_ms` an instance writes its calls in progress and its
//! recent new-call rate, with an expiry `load_ttl_ms` ahead, and reads the sum of the
//! others' (one Lua script, one round trip). The shard hands that sum to the switch
//! (`Command::Peers`). An instance killed without a goodbye stops counting when its
//! expiry passes; one that stops cleanly takes its entry out ([`Shared::leave`]).
//!
//! All entries are fields of one hash (one key: also fine on a cluster), each
//! `calls rate_milli expires_ms` by the server's clock (`TIME`), so the instances' clocks
//! do not matter. While the store is unreachable the shard is told "nobody else"
//! ([`PeerLoad::default`]): each instance keeps its own limits rather than refusing calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use concierge_b2bua::PeerLoad;
use redis::Script;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Op, Shared, SharedError};

/// Writes this instance's entry and sums the others' (KEYS: the hash; ARGV: instance,
/// calls, rate in thousandths of a call per second, TTL in ms). Expired entries are
/// removed on the way. Returns `{calls, rate_milli, instances}` of the others.
const BEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. (now + ttl))
redis.call('PEXPIRE', KEYS[1], ttl)
local calls, rate, n = 0, 0, 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local c, r, e = string.match(all[i + 1], '^(%d+) (%d+) (%d+)$')
  if not e or tonumber(e) <= now then
    redis.call('HDEL', KEYS[1], all[i])
  elseif all[i] ~= ARGV[1] then
    calls = calls + tonumber(c)
    rate = rate + tonumber(r)
    n = n + 1
  end
end
return {calls, rate, n}
";

/// What the shard tells the heartbeat: its calls now, and how many calls it has taken
/// since start (ended ones plus those in progress), from which the rate comes.
#[derive(Debug, Default)]
pub(crate) struct LocalLoad {
    calls: AtomicU64,
    ended: AtomicU64,
}

impl LocalLoad {
    /// The calls in progress (every loop turn).
    pub(crate) fn set_calls(&self, calls: usize) {
        self.calls.store(calls as u64, Ordering::Relaxed);
    }

    /// A call ended (its record was written).
    pub(crate) fn call_ended(&self) {
        self.ended.fetch_add(1, Ordering::Relaxed);
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn taken(&self) -> u64 {
        self.ended.load(Ordering::Relaxed) + self.calls()
    }
}

impl Shared {
    /// Writes this instance's load and returns the others'. `rate_milli` is new calls
    /// per second, times 1000.
    pub(super) async fn beat(&self, calls: u64, rate_milli: u64) -> Result<PeerLoad, SharedError> {
        static SCRIPT: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| Script::new(BEAT));
        let mut invocation = SCRIPT.key(self.inner.keys.load());
        invocation
            .arg(&self.inner.instance)
            .arg(calls)
            .arg(rate_milli)
            .arg(self.inner.load_ttl.as_millis() as u64);
        let (calls, rate_milli, instances): (u64, u64, u64) = self
            .run(Op::Load, |mut c| async move {
                invocation.invoke_async(&mut c).await
            })
            .await?;
        Ok(PeerLoad {
            calls: usize::try_from(calls).unwrap_or(usize::MAX),
            invite_rate: u32::try_from(rate_milli.div_ceil(1000)).unwrap_or(u32::MAX),
            instances: u32::try_from(instances).unwrap_or(u32::MAX),
        })
    }

    /// Takes this instance's entry out (a clean stop): its calls stop counting at once
    /// rather than when the entry expires.
    pub(crate) async fn leave(&self) {
        let (key, field) = (self.inner.keys.load(), self.inner.instance.clone());
        let _ = self
            .run(Op::Load, |mut c| async move {
                redis::cmd("HDEL")
                    .arg(key)
                    .arg(field)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
    }
}

/// The heartbeat task: every `heartbeat_ms`, this instance's load out and the others' in,
/// sent to the shard when it changed (and "nobody" once when the store cannot be
/// reached), and to the live console's "Shared state" section when there is a console.
/// Ends when the shard is gone.
pub(crate) async fn heartbeat(
    shared: Shared,
    local: Arc<LocalLoad>,
    to_shard: mpsc::Sender<PeerLoad>,
    console: Option<Arc<crate::console::Hub>>,
) {
    let location = shared.inner.health.location().to_owned();
    let mut status = console.map(|hub| super::status::ConsoleStatus::new(hub, location));
    let mut tick = tokio::time::interval(shared.inner.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<(Instant, u64)> = None;
    let mut told: Option<PeerLoad> = None;
    loop {
        tick.tick().await;
        let now = Instant::now();
        let taken = local.taken();
        let rate_milli = match last {
            Some((at, before)) => {
                let secs = now.duration_since(at).as_secs_f64().max(0.001);
                (taken.saturating_sub(before) as f64 * 1000.0 / secs) as u64
            }
            None => 0,
        };
        last = Some((now, taken));
        let beat = shared.beat(local.calls(), rate_milli).await.ok();
        if let Some(status) = status.as_mut() {
            status.report(beat);
        }
        let peers = beat.unwrap_or_default();
        if told != Some(peers) {
            told = Some(peers);
            if to_shard.send(peers).await.is_err() {
                return;
            }
        }
    }
}
