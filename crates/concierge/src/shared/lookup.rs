//! The lookup cache of `http` nodes across instances, where the driver performs a flow's
//! request ([`perform`]): a fresh answer another instance kept answers it without a
//! request; a success is kept for the others; when the server fails, a kept answer young
//! enough for `stale_if_error` stands in. The switch's own cache is asked first and learns
//! from what comes back ([`concierge_flow::LookupCache::settle`]), so the call record says
//! `hit`, `miss` or `stale` whichever cache answered.
//!
//! An entry is the status and the values the node saves (never the body), as a small JSON
//! object of at most `max_value_bytes`, with a TTL of the longest use it has (`ttl` or
//! `negative_ttl`, and `stale_if_error`). Its age is what the TTL has run down, so the
//! instances' clocks play no part.

use std::time::{Duration, Instant};

use concierge_flow::{
    CacheSpec, CacheUse, HttpFailure, HttpRequest, HttpResponse, ShareSpec, SharedValue,
};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use super::{Op, Shared, SharedError};
use crate::http::HttpClient;

/// An entry as stored.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    /// The status.
    s: u16,
    /// The value `save_as` takes (2xx only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<String>,
    /// What the `save` paths found, `(variable, value)` (2xx only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    m: Vec<(String, String)>,
    /// The TTL it was stored with, in ms: its age is this minus what is left.
    x: u64,
}

/// An answer found in the store, with its age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Kept {
    pub(super) value: SharedValue,
    pub(super) age: Duration,
}

impl Kept {
    fn is_fresh(&self, spec: &CacheSpec) -> bool {
        let ttl = if self.value.is_negative() {
            spec.negative_ttl
        } else {
            spec.ttl
        };
        self.age < ttl
    }
}

/// Performs a flow's request with the shared cache around it (when the request may be
/// shared and a store is configured): a fresh kept answer instead of the request, the
/// answer kept after a success, a stale one standing in for a failure. The store adds at
/// most `timeout_ms` before the request; keeping an answer never delays the call.
pub(crate) async fn perform(
    http: &HttpClient,
    shared: Option<&Shared>,
    request: HttpRequest,
) -> Result<HttpResponse, HttpFailure> {
    let (Some(shared), Some(share), Some(spec)) = (shared, request.share.clone(), request.cache)
    else {
        return http.execute(request).await;
    };
    let asked = Instant::now();
    let kept = shared.kept(&share).await.ok().flatten();
    if let Some(k) = kept.clone().filter(|k| k.is_fresh(&spec)) {
        debug!(node = %request.node, "HTTP answer from the shared cache");
        return Ok(k.value.answer(CacheUse::Hit, k.age));
    }
    let node = request.node.clone();
    let result = http.execute(request).await;
    let failed = match &result {
        Ok(r) => r.status >= 500,
        Err(_) => true,
    };
    if !failed {
        if let Some(value) = result.as_ref().ok().and_then(|r| share.keep(r)) {
            let shared = shared.clone();
            tokio::spawn(async move {
                let _ = shared.keep(&share, &spec, value).await;
            });
        }
        return result;
    }
    let age = kept.as_ref().map(|k| k.age + asked.elapsed());
    match (kept, age) {
        (Some(k), Some(age)) if age < spec.stale_if_error => {
            info!(node = %node, "HTTP server failed; the shared cache's answer stands in (stale)");
            Ok(k.value.answer(CacheUse::Stale, age))
        }
        _ => result,
    }
}

impl Shared {
    /// The answer kept for `share`, if any, with its age (one round trip: GET and PTTL).
    /// An entry that is too large or malformed counts as none.
    pub(super) async fn kept(&self, share: &ShareSpec) -> Result<Option<Kept>, SharedError> {
        let key = self.inner.keys.lookup(share.key());
        let mut pipe = redis::pipe();
        pipe.get(&key).pttl(&key);
        let (text, left): (Option<Vec<u8>>, i64) = self
            .run(
                Op::Lookup,
                |mut c| async move { pipe.query_async(&mut c).await },
            )
            .await?;
        let Some(text) = text.filter(|t| t.len() <= self.inner.max_value_bytes) else {
            return Ok(None);
        };
        let Ok(stored) = serde_json::from_slice::<Stored>(&text) else {
            return Ok(None);
        };
        let value = SharedValue {
            status: stored.s,
            value: stored.v,
            saved: stored.m,
        };
        // What `ShareSpec::keep` stores, and nothing else: a 2xx with what the node saves,
        // or a bare 404/410.
        let consistent = match value.status {
            200..=299 => true,
            404 | 410 => value.value.is_none() && value.saved.is_empty(),
            _ => false,
        };
        if !consistent || left <= 0 {
            return Ok(None);
        }
        let age = Duration::from_millis(stored.x.saturating_sub(left as u64));
        Ok(Some(Kept { value, age }))
    }

    /// Keeps `value` for the other instances, for as long as any of its uses lasts
    /// (`ttl` or `negative_ttl`, and `stale_if_error`). A value over `max_value_bytes`
    /// is not kept.
    pub(super) async fn keep(
        &self,
        share: &ShareSpec,
        spec: &CacheSpec,
        value: SharedValue,
    ) -> Result<(), SharedError> {
        let fresh = if value.is_negative() {
            spec.negative_ttl
        } else {
            spec.ttl
        };
        let ttl = fresh.max(spec.stale_if_error).as_millis() as u64;
        if ttl == 0 {
            return Ok(());
        }
        let text = serde_json::to_vec(&Stored {
            s: value.status,
            v: value.value,
            m: value.saved,
            x: ttl,
        })
        .expect("numbers and strings always serialise");
        if text.len() > self.inner.max_value_bytes {
            debug!(
                bytes = text.len(),
                "lookup answer over shared.max_value_bytes: kept in this instance only"
            );
            return Ok(());
        }
        let key = self.inner.keys.lookup(share.key());
        self.run(Op::Lookup, |mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(text)
                .arg("PX")
                .arg(ttl)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }
}
