//! The lookup cache of `http` nodes with `cache = { … }`: answers kept per node, keyed by
//! the rendered request, bounded (least recently used out first), and the stale answer
//! used when the server fails.
//!
//! It lives where calls run (one per switch, shared by its calls; one per `simulate`) and
//! takes the time as an argument like every core. The interpreter does not consult it: the
//! caller of [`crate::Run`] asks [`LookupCache::fresh`] before performing an
//! [`crate::HttpRequest`] and hands the outcome through [`LookupCache::settle`], then tells
//! the run with [`crate::Run::note_cache`] so the record says `hit`, `miss` or `stale`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::{HttpFailure, HttpRequest, HttpResponse};

/// `cache = { ttl_s, negative_ttl_s, stale_if_error_s, max_entries }` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CacheFile {
    #[serde(default = "default_ttl")]
    pub(crate) ttl_s: u64,
    #[serde(default = "default_negative_ttl")]
    pub(crate) negative_ttl_s: u64,
    #[serde(default)]
    pub(crate) stale_if_error_s: u64,
    #[serde(default = "default_max_entries")]
    pub(crate) max_entries: usize,
}

fn default_ttl() -> u64 {
    300
}
fn default_negative_ttl() -> u64 {
    60
}
fn default_max_entries() -> usize {
    10_000
}

/// The most entries one node may keep, whatever the flow says: a bound on memory.
pub(crate) const MAX_ENTRIES_LIMIT: usize = 1_000_000;

/// How an `http` node caches (its `cache = { … }`), carried on each [`HttpRequest`] so the
/// caller's [`LookupCache`] knows what to keep and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSpec {
    /// A 2xx answer is reused this long.
    pub ttl: Duration,
    /// A 404/410 ("no such customer") is reused this long.
    pub negative_ttl: Duration,
    /// When the server fails (refused, timeout, 5xx), an answer younger than this is used.
    pub stale_if_error: Duration,
    /// Entries kept for the node; the least recently used goes first.
    pub max_entries: usize,
}

impl CacheSpec {
    pub(crate) fn from_file(f: &CacheFile) -> Self {
        Self {
            ttl: Duration::from_secs(f.ttl_s),
            negative_ttl: Duration::from_secs(f.negative_ttl_s),
            stale_if_error: Duration::from_secs(f.stale_if_error_s),
            max_entries: f.max_entries,
        }
    }
}

/// What the cache did for one request, as records and `simulate` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// A fresh answer was reused; no request went out.
    Hit,
    /// The request went out (and its answer, if cacheable, was kept).
    Miss,
    /// The server failed and an older answer stood in for it.
    Stale,
}

impl CacheUse {
    /// `hit`, `miss` or `stale`: the word call records, metrics and `simulate` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Stale => "stale",
        }
    }
}

/// Every cached node's answers, kept by the caller across calls (the interpreter only
/// describes requests).
///
/// For each [`crate::Action::Http`] whose request has a `cache`, the caller first asks
/// [`Self::fresh`]; with no fresh answer it performs the request and hands the result to
/// [`Self::settle`], then tells the run how the cache took part
/// ([`crate::Run::note_cache`]) before reporting the result. Memory is bounded by each
/// node's `max_entries`.
#[derive(Debug, Default)]
pub struct LookupCache {
    nodes: HashMap<String, Lru>,
    hits: u64,
    misses: u64,
    stale: u64,
}

#[derive(Debug, Default)]
struct Lru {
    entries: HashMap<String, Entry>,
    /// Use order: tick → key; the smallest tick is the least recently used.
    order: BTreeMap<u64, String>,
    tick: u64,
}

#[derive(Debug)]
struct Entry {
    /// As received (latency aside), or as a shared cache gave it.
    response: HttpResponse,
    stored: Instant,
    tick: u64,
}

impl LookupCache {
    /// An empty cache. The switch keeps one for all its calls; `simulate` one per run.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh answer for `req`, if its node caches and one is kept: use it instead of
    /// performing the request (the result is then a [`CacheUse::Hit`]).
    pub fn fresh(&mut self, now: Instant, req: &HttpRequest) -> Option<HttpResponse> {
        let (spec, key) = (req.cache?, req.cache_key.as_ref()?);
        let lru = self.nodes.get_mut(&req.node)?;
        let entry = lru.entries.get(key)?;
        let ttl = if is_negative(entry.response.status) {
            spec.negative_ttl
        } else {
            spec.ttl
        };
        if now.saturating_duration_since(entry.stored) >= ttl {
            return None;
        }
        let response = entry.response();
        lru.touch(key);
        self.hits += 1;
        Some(response)
    }

    /// The request went out and `result` came back: keep a cacheable answer, or, when the
    /// server failed, stand in an answer younger than `stale_if_error`. Returns what the
    /// flow should see and how the cache took part.
    pub fn settle(
        &mut self,
        now: Instant,
        req: &HttpRequest,
        result: Result<HttpResponse, HttpFailure>,
    ) -> (Result<HttpResponse, HttpFailure>, Option<CacheUse>) {
        let (Some(spec), Some(key)) = (req.cache, req.cache_key.as_ref()) else {
            return (result, None);
        };
        // A cache shared by several instances answered for the server: keep the answer as
        // old as it is (a stale one must not turn fresh here) and say how it was used.
        if let Ok(Some(shared)) = result.as_ref().map(|r| r.shared.as_ref()) {
            let used = shared.used;
            let stored = now.checked_sub(shared.age).unwrap_or(now);
            if let Ok(r) = &result {
                let lru = self.nodes.entry(req.node.clone()).or_default();
                lru.insert(key.clone(), r, stored, spec.max_entries);
            }
            match used {
                CacheUse::Hit => self.hits += 1,
                CacheUse::Stale => self.stale += 1,
                CacheUse::Miss => self.misses += 1,
            }
            return (result, Some(used));
        }
        let failed = match &result {
            Ok(r) => r.status >= 500,
            Err(_) => true,
        };
        let lru = self.nodes.entry(req.node.clone()).or_default();
        if failed {
            let stale = lru
                .entries
                .get(key)
                .filter(|e| now.saturating_duration_since(e.stored) < spec.stale_if_error)
                .map(Entry::response);
            if let Some(r) = stale {
                lru.touch(key);
                self.stale += 1;
                return (Ok(r), Some(CacheUse::Stale));
            }
        } else if let Ok(r) = &result {
            if (200..300).contains(&r.status) || is_negative(r.status) {
                lru.insert(key.clone(), r, now, spec.max_entries);
            }
        }
        self.misses += 1;
        (result, Some(CacheUse::Miss))
    }

    /// Hits, misses and stale answers since start.
    pub fn counts(&self) -> (u64, u64, u64) {
        (self.hits, self.misses, self.stale)
    }

    /// Entries kept for `node`.
    pub fn len(&self, node: &str) -> usize {
        self.nodes.get(node).map_or(0, |l| l.entries.len())
    }
}

/// "No such record": worth remembering, for less long than an answer.
fn is_negative(status: u16) -> bool {
    matches!(status, 404 | 410)
}

impl Entry {
    fn response(&self) -> HttpResponse {
        HttpResponse {
            latency: Duration::ZERO,
            ..self.response.clone()
        }
    }
}

impl Lru {
    fn touch(&mut self, key: &str) {
        self.tick += 1;
        if let Some(e) = self.entries.get_mut(key) {
            self.order.remove(&e.tick);
            e.tick = self.tick;
            self.order.insert(self.tick, key.to_owned());
        }
    }

    fn insert(&mut self, key: String, r: &HttpResponse, now: Instant, max: usize) {
        self.tick += 1;
        if let Some(old) = self.entries.remove(&key) {
            self.order.remove(&old.tick);
        }
        while self.entries.len() >= max.max(1) {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.order.insert(self.tick, key.clone());
        self.entries.insert(
            key,
            Entry {
                response: r.clone(),
                stored: now,
                tick: self.tick,
            },
        );
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "a test's base instant")]
mod tests {
    use super::*;

    fn spec() -> CacheSpec {
        CacheSpec {
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(10),
            stale_if_error: Duration::from_secs(3600),
            max_entries: 2,
        }
    }

    fn req(url: &str) -> HttpRequest {
        HttpRequest {
            node: "lookup".into(),
            method: "GET".into(),
            url: url.into(),
            headers: vec![],
            body: None,
            timeout: Duration::from_secs(3),
            delay: Duration::ZERO,
            redact: false,
            cache: Some(spec()),
            cache_key: Some(format!("GET {url}")),
            share: None,
            comfort: None,
            auth: None,
        }
    }

    fn ok(status: u16, body: &str) -> Result<HttpResponse, HttpFailure> {
        Ok(HttpResponse {
            status,
            body: body.into(),
            latency: Duration::from_millis(5),
            shared: None,
        })
    }

    #[test]
    fn fresh_answers_are_reused_until_their_ttl() {
        let t0 = Instant::now();
        let mut c = LookupCache::new();
        let a = req("http://crm/a");
        assert_eq!(c.fresh(t0, &a), None);
        let (r, used) = c.settle(t0, &a, ok(200, "yes"));
        assert_eq!(
            (r.map(|r| r.body), used),
            (Ok(b"yes".to_vec()), Some(CacheUse::Miss))
        );
        let hit = c.fresh(t0 + Duration::from_secs(59), &a).expect("fresh");
        assert_eq!(hit.body, b"yes");
        assert_eq!(c.fresh(t0 + Duration::from_secs(60), &a), None, "expired");
        // A 404 is kept for the shorter negative TTL.
        let b = req("http://crm/b");
        let _ = c.settle(t0, &b, ok(404, ""));
        assert_eq!(
            c.fresh(t0 + Duration::from_secs(9), &b).map(|r| r.status),
            Some(404)
        );
        assert_eq!(c.fresh(t0 + Duration::from_secs(10), &b), None);
        assert_eq!(c.counts(), (2, 2, 0));
    }

    #[test]
    fn a_failing_server_gets_the_stale_answer_within_stale_if_error() {
        let t0 = Instant::now();
        let mut c = LookupCache::new();
        let a = req("http://crm/a");
        let _ = c.settle(t0, &a, ok(200, "yes"));
        for failure in [
            Err(HttpFailure::Connect("refused".into())),
            Err(HttpFailure::Timeout),
            ok(503, "busy"),
        ] {
            let (r, used) = c.settle(t0 + Duration::from_secs(600), &a, failure);
            assert_eq!(used, Some(CacheUse::Stale));
            assert_eq!(r.expect("stale answer").body, b"yes");
        }
        // Too old to stand in: the failure goes through.
        let (r, used) = c.settle(
            t0 + Duration::from_secs(3600),
            &a,
            Err(HttpFailure::Timeout),
        );
        assert_eq!((r, used), (Err(HttpFailure::Timeout), Some(CacheUse::Miss)));
        // A failure for an unknown key has nothing to stand in.
        let (r, _) = c.settle(t0, &req("http://crm/x"), Err(HttpFailure::Timeout));
        assert!(r.is_err());
        // Neither a 5xx nor a 401 is kept.
        let u = req("http://crm/u");
        let _ = c.settle(t0, &u, ok(401, ""));
        assert_eq!(c.fresh(t0, &u), None);
    }

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let t0 = Instant::now();
        let mut c = LookupCache::new();
        let (a, b, d) = (
            req("http://crm/a"),
            req("http://crm/b"),
            req("http://crm/d"),
        );
        let _ = c.settle(t0, &a, ok(200, "a"));
        let _ = c.settle(t0, &b, ok(200, "b"));
        assert!(c.fresh(t0, &a).is_some(), "a is now the most recent");
        let _ = c.settle(t0, &d, ok(200, "d"));
        assert_eq!(c.len("lookup"), 2);
        assert!(c.fresh(t0, &b).is_none(), "b was evicted");
        assert!(c.fresh(t0, &a).is_some());
        assert!(c.fresh(t0, &d).is_some());
    }

    #[test]
    fn a_shared_answer_is_kept_as_old_as_it_is_and_counted_as_the_shared_cache_used_it() {
        let t0 = Instant::now() + Duration::from_secs(10_000);
        let mut c = LookupCache::new();
        let a = req("http://crm/a");
        let gold = crate::SharedValue {
            status: 200,
            value: Some("gold".into()),
            saved: Vec::new(),
        };
        // Fresh elsewhere (10 s old): a hit, and reused here for the rest of its TTL only.
        let (r, used) = c.settle(
            t0,
            &a,
            Ok(gold.clone().answer(CacheUse::Hit, Duration::from_secs(10))),
        );
        assert_eq!(used, Some(CacheUse::Hit));
        assert!(r.is_ok());
        assert!(c.fresh(t0 + Duration::from_secs(49), &a).is_some());
        assert!(c.fresh(t0 + Duration::from_secs(50), &a).is_none());
        // Stale elsewhere (2 h old): it stood in once, and does not turn fresh here.
        let b = req("http://crm/b");
        let (_, used) = c.settle(
            t0,
            &b,
            Ok(gold.answer(CacheUse::Stale, Duration::from_secs(7200))),
        );
        assert_eq!(used, Some(CacheUse::Stale));
        assert!(c.fresh(t0, &b).is_none());
        assert_eq!(c.counts(), (2, 0, 1));
    }

    #[test]
    fn requests_without_a_cache_pass_through() {
        let t0 = Instant::now();
        let mut c = LookupCache::new();
        let mut a = req("http://crm/a");
        a.cache = None;
        let (r, used) = c.settle(t0, &a, ok(200, "yes"));
        assert!(r.is_ok());
        assert_eq!(used, None);
        assert_eq!(c.fresh(t0, &a), None);
    }
}
