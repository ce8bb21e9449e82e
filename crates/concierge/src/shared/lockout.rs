//! The keypad lockout across instances: failed code attempts counted per (group, subject)
//! in one sliding window, and a lock for one window once a subject reaches its limit —
//! the switch's `lockout.rs` rules, kept in the store so that 3 wrong codes through one
//! instance and 2 through another make 5.
//!
//! Counting is one Lua script for all of a call's subjects (its number, and its source
//! address unless that is a trusted peer): atomic, so two instances counting at once
//! cannot both see 4 and neither lock, and one round trip. Times are the server's own
//! (`TIME`), so the instances' clocks do not matter.
//!
//! The caller falls back on its local counts when these answer `Err`, and a subject locked
//! locally stays locked whatever the store says (fail safe).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use concierge_b2bua::{LockoutSubject, SharedLock};
use redis::Script;

use super::{Op, Shared, SharedError};

/// Counts one failure for every subject (KEYS: failures and lock key of each subject,
/// in pairs; ARGV: window in ms, a member unique to this failure, then each subject's
/// limit). Per subject it returns `{failures, lock ms left, 1 if this failure locked it}`.
/// A subject already locked is not counted, like the switch's table.
const COUNT_FAILURE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS / 2 do
  local failures, lock = KEYS[2 * i - 1], KEYS[2 * i]
  local limit = tonumber(ARGV[2 + i])
  local left = redis.call('PTTL', lock)
  if left > 0 then
    out[i] = {0, left, 0}
  else
    redis.call('ZREMRANGEBYSCORE', failures, '-inf', now - window)
    redis.call('ZADD', failures, now, ARGV[2])
    local n = redis.call('ZCARD', failures)
    if n >= limit then
      redis.call('DEL', failures)
      redis.call('SET', lock, '1', 'PX', window)
      out[i] = {n, window, 1}
    else
      redis.call('PEXPIRE', failures, window)
      out[i] = {n, 0, 0}
    end
  end
end
return out
";

/// How the store names a subject: its kind (a number kept apart by whether it was
/// verified: a stranger claiming a VIP's number must not lock the real VIP out) and what
/// it stands for, which only ever goes into a key's digest.
fn name(subject: &LockoutSubject) -> (&'static str, String) {
    match subject {
        LockoutSubject::Number {
            number,
            verified: true,
        } => ("number-verified", number.clone()),
        LockoutSubject::Number {
            number,
            verified: false,
        } => ("number-claimed", number.clone()),
        LockoutSubject::Source(ip) => ("source", ip.to_canonical().to_string()),
    }
}

/// One subject after a failure was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counted {
    /// Failures inside the window, this one included (0 when already locked).
    pub(crate) failures: u32,
    /// How much longer the subject is locked; `None` when it is not.
    pub(crate) locked_for: Option<Duration>,
    /// This failure reached the limit: log the lock, once.
    pub(crate) now_locked: bool,
}

/// Makes each failure's member of the sorted set unique (two at the same millisecond
/// are two failures).
static FAILURE_SEQ: AtomicU64 = AtomicU64::new(0);

impl Shared {
    /// Counts one failed attempt in `group` against every subject, atomically, and says
    /// where each stands; at its limit a subject is locked for one window. Answers within
    /// `timeout_ms` or with `Err` (count locally then).
    pub(crate) async fn count_failure(
        &self,
        group: &str,
        subjects: &[LockoutSubject],
    ) -> Result<Vec<Counted>, SharedError> {
        static SCRIPT: std::sync::LazyLock<Script> =
            std::sync::LazyLock::new(|| Script::new(COUNT_FAILURE));
        let cfg = self.inner.lockout;
        let window = cfg.window.as_millis() as u64;
        let member = format!(
            "{}:{}",
            self.inner.instance,
            FAILURE_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut invocation = SCRIPT.prepare_invoke();
        invocation.arg(window).arg(member);
        for s in subjects {
            let (kind, text) = name(s);
            let (failures, lock) = self.inner.keys.lockout(group, kind, &text);
            invocation.key(failures).key(lock);
            let limit = match s {
                LockoutSubject::Number { .. } => cfg.max_per_number,
                LockoutSubject::Source(_) => cfg.max_per_source,
            };
            invocation.arg(limit.max(1));
        }
        let rows: Vec<(u64, i64, u8)> = self
            .run(Op::Lockout, |mut c| async move {
                invocation.invoke_async(&mut c).await
            })
            .await?;
        if rows.len() != subjects.len() {
            return Err(SharedError::Reply("one row per subject"));
        }
        Ok(rows
            .into_iter()
            .map(|(failures, left, locked)| Counted {
                failures: failures.min(u64::from(u32::MAX)) as u32,
                locked_for: (left > 0).then(|| Duration::from_millis(left as u64)),
                now_locked: locked == 1,
            })
            .collect())
    }

    /// The locks the store holds on any of `groups` for any of `subjects`, with how much
    /// longer each lasts, in one round trip. Answers within `timeout_ms` or with `Err`
    /// (the switch's own table decides then).
    pub(crate) async fn locks(
        &self,
        groups: &[String],
        subjects: &[LockoutSubject],
    ) -> Result<Vec<SharedLock>, SharedError> {
        let mut pipe = redis::pipe();
        let mut asked = Vec::with_capacity(groups.len() * subjects.len());
        for group in groups {
            for s in subjects {
                let (kind, text) = name(s);
                let (_, lock) = self.inner.keys.lockout(group, kind, &text);
                pipe.pttl(lock);
                asked.push((group, s));
            }
        }
        let left: Vec<i64> = self
            .run(Op::Lockout, |mut c| async move {
                pipe.query_async(&mut c).await
            })
            .await?;
        if left.len() != asked.len() {
            return Err(SharedError::Reply("one TTL per group and subject"));
        }
        Ok(asked
            .into_iter()
            .zip(left)
            .filter(|(_, ms)| *ms > 0)
            .map(|((group, subject), ms)| SharedLock {
                group: group.clone(),
                subject: subject.clone(),
                remaining: Duration::from_millis(ms as u64),
            })
            .collect())
    }
}

/// The locks a counted failure left in force (`count_failure`'s rows, one per subject),
/// as the switch takes them.
pub(crate) fn locks_after(
    group: &str,
    subjects: &[LockoutSubject],
    counted: &[Counted],
) -> Vec<SharedLock> {
    subjects
        .iter()
        .zip(counted)
        .filter_map(|(subject, c)| {
            c.locked_for.map(|remaining| SharedLock {
                group: group.to_owned(),
                subject: subject.clone(),
                remaining,
            })
        })
        .collect()
}
