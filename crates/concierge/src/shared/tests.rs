//! The store against a real redis-server on a free loopback port, started per test:
//! atomic lockout counting by two instances at once, windows and TTLs, the lookup cache's
//! entries and cap, the load heartbeat and its expiry, an outage (kill -9, restart) and
//! the keyspace holding no number or code.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use concierge_b2bua::{LockoutConfig, LockoutSubject, PeerLoad};
use concierge_flow::{CacheSpec, HttpResponse, ShareSpec, SharedValue};

use super::Shared;
use crate::config::{Config, SharedConfig};
use crate::metrics::Metrics;

#[path = "../../tests/common/redis.rs"]
mod redis_server;
use redis_server::RedisServer;

const VIP: &str = "+46706170786";

fn config(url: &str, extra: &str) -> SharedConfig {
    // A generous timeout: these tests share a loaded 2-core machine.
    let timeout = if extra.contains("timeout_ms") {
        ""
    } else {
        "timeout_ms = 1000\n"
    };
    let text = format!("[shared]\nurl = \"{url}\"\n{timeout}{extra}\n");
    Config::parse(Path::new("test.toml"), &text)
        .expect("a valid [shared]")
        .shared
        .expect("[shared] set")
}

fn lockout(window: Duration) -> LockoutConfig {
    LockoutConfig {
        max_per_number: 5,
        max_per_source: 20,
        window,
    }
}

/// An instance's store, connected.
async fn instance(
    redis: &RedisServer,
    name: &str,
    extra: &str,
    window: Duration,
) -> (Shared, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let shared = Shared::start(
        &config(&redis.url(), extra),
        name,
        lockout(window),
        metrics.clone(),
    )
    .expect("the store starts");
    until(Duration::from_secs(10), "connected", || shared.is_up()).await;
    (shared, metrics)
}

async fn until(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "not {what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn number(verified: bool) -> Vec<LockoutSubject> {
    vec![
        LockoutSubject::Number {
            number: VIP.into(),
            verified,
        },
        LockoutSubject::Source("192.0.2.7".parse().expect("an address")),
    ]
}

/// How much longer `group` is locked for each of `subjects` (`None`: not locked), from
/// one `locks` question.
async fn left(
    store: &Shared,
    group: &str,
    subjects: &[LockoutSubject],
) -> Result<Vec<Option<Duration>>, super::SharedError> {
    let locks = store.locks(&[group.to_owned()], subjects).await?;
    Ok(subjects
        .iter()
        .map(|s| {
            locks
                .iter()
                .find(|l| l.group == group && &l.subject == s)
                .map(|l| l.remaining)
        })
        .collect())
}

#[tokio::test]
async fn two_instances_counting_at_once_lock_at_exactly_the_limit() {
    let redis = RedisServer::start();
    let window = Duration::from_secs(900);
    let (a, _) = instance(&redis, "a", "", window).await;
    let (b, _) = instance(&redis, "b", "", window).await;
    let subjects = number(false);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (store, subjects) = (
            if i % 2 == 0 { a.clone() } else { b.clone() },
            subjects.clone(),
        );
        tasks.push(tokio::spawn(async move {
            store
                .count_failure("codes", &subjects)
                .await
                .expect("counted")
        }));
    }
    let mut rows = Vec::new();
    for t in tasks {
        rows.push(t.await.expect("task")[0]);
    }
    let locked_now: Vec<_> = rows.iter().filter(|c| c.now_locked).collect();
    assert_eq!(
        locked_now.len(),
        1,
        "one failure reached the limit: {rows:?}"
    );
    assert_eq!(locked_now[0].failures, 5);
    let mut counts: Vec<u32> = rows.iter().map(|c| c.failures).filter(|&n| n > 0).collect();
    counts.sort_unstable();
    assert_eq!(
        counts,
        [1, 2, 3, 4, 5],
        "each failure counted once: {rows:?}"
    );
    assert!(
        rows.iter()
            .all(|c| c.now_locked || c.failures > 0 || c.locked_for.is_some()),
        "the ones after the lock found it in force: {rows:?}"
    );
    // Both instances see the lock; the source (limit 20) is not locked; the verified
    // number is another subject.
    for store in [&a, &b] {
        let remaining = left(store, "codes", &subjects).await.expect("answered");
        assert!(remaining[0].is_some_and(|d| d <= window), "{remaining:?}");
        assert_eq!(remaining[1], None);
        assert_eq!(
            left(store, "codes", &number(true)).await.expect("answered")[0],
            None
        );
        assert_eq!(
            left(store, "other", &subjects).await.expect("answered")[0],
            None
        );
    }
}

#[tokio::test]
async fn the_switch_hears_of_each_lock_a_count_finds_and_of_every_lock_on_its_groups() {
    let redis = RedisServer::start();
    let window = Duration::from_secs(900);
    let (a, _) = instance(&redis, "a", "", window).await;
    let (b, _) = instance(&redis, "b", "", window).await;
    let subjects = number(false);
    for _ in 0..4 {
        let counted = a.count_failure("codes", &subjects).await.expect("counted");
        assert!(super::locks_after("codes", &subjects, &counted).is_empty());
    }
    let fifth = b.count_failure("codes", &subjects).await.expect("counted");
    let locks = super::locks_after("codes", &subjects, &fifth);
    assert_eq!(locks.len(), 1, "the number, not the source: {locks:?}");
    assert_eq!(
        (locks[0].group.as_str(), &locks[0].subject),
        ("codes", &subjects[0])
    );
    assert!(locks[0].remaining <= window && locks[0].remaining > window / 2);
    // A failure counted on a subject already locked reports the lock too.
    let after = a.count_failure("codes", &subjects).await.expect("counted");
    assert_eq!(super::locks_after("codes", &subjects, &after).len(), 1);
    // One question about several groups: only the lock in force comes back.
    let asked = ["codes".to_owned(), "pins".to_owned()];
    let found = a.locks(&asked, &subjects).await.expect("answered");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].group.as_str(), &found[0].subject),
        ("codes", &subjects[0])
    );
}

#[tokio::test]
async fn failures_leave_the_window_and_a_lock_lasts_one_window() {
    let redis = RedisServer::start();
    let window = Duration::from_millis(1500);
    let (a, _) = instance(&redis, "a", "", window).await;
    let one = &number(false)[..1];
    for _ in 0..4 {
        a.count_failure("codes", one).await.expect("counted");
    }
    tokio::time::sleep(window + Duration::from_millis(200)).await;
    let after = a.count_failure("codes", one).await.expect("counted")[0];
    assert_eq!(
        (after.failures, after.now_locked),
        (1, false),
        "the old four expired"
    );
    for _ in 0..4 {
        a.count_failure("codes", one).await.expect("counted");
    }
    assert!(left(&a, "codes", one).await.expect("answered")[0].is_some());
    tokio::time::sleep(window + Duration::from_millis(200)).await;
    assert_eq!(
        left(&a, "codes", one).await.expect("answered")[0],
        None,
        "the lock ended"
    );
    assert_eq!(redis.cli(&["--scan"]).trim(), "", "nothing is left behind");
}

fn vip_lookup() -> (ShareSpec, CacheSpec) {
    let request = vip_request("http://crm");
    (
        request.share.expect("shareable"),
        request.cache.expect("cached"),
    )
}

/// The lookup of a VIP flow whose CRM is at `base`, as the flow asks for it.
fn vip_request(base: &str) -> concierge_flow::HttpRequest {
    let request = concierge_flow::parse_flow(
        Path::new("l.toml"),
        r#"
start = "lookup"
[nodes.lookup]
type = "http"
url = "{system.directory_url}/customers/{system.caller}"
json_path = "customer.hasVIPMembership"
save_as = "vip"
cache = { ttl_s = 300, stale_if_error_s = 3600 }
success = "bye"
failure = "bye"
[nodes.bye]
type = "hangup"
"#,
        &|_| true,
    )
    .map(|loaded| {
        let vars = [
            ("system.caller".to_string(), VIP.to_string()),
            ("system.directory_url".to_string(), base.to_string()),
        ]
        .into_iter()
        .collect();
        concierge_flow::Run::start(loaded.flow, vars, concierge_flow::Environment::default()).1
    })
    .expect("a valid flow");
    let concierge_flow::Action::Http(request) = request else {
        panic!("the flow starts with its lookup");
    };
    *request
}

#[tokio::test]
async fn a_lookup_answer_is_kept_as_its_saved_value_with_its_age_and_ttl() {
    let redis = RedisServer::start();
    let (a, _) = instance(&redis, "a", "", Duration::from_secs(900)).await;
    let (b, _) = instance(&redis, "b", "", Duration::from_secs(900)).await;
    let (share, spec) = vip_lookup();
    assert_eq!(b.kept(&share).await.expect("answered"), None);
    let response = HttpResponse {
        status: 200,
        body: br#"{"customer": {"hasVIPMembership": true, "name": "Astrid"}}"#.to_vec(),
        latency: Duration::from_millis(4),
        shared: None,
    };
    let value = share.keep(&response).expect("a 2xx with its value");
    a.keep(&share, &spec, value.clone()).await.expect("kept");
    let kept = b
        .kept(&share)
        .await
        .expect("answered")
        .expect("the other instance finds it");
    assert_eq!(kept.value, value);
    assert!(kept.age < Duration::from_secs(5), "{:?}", kept.age);
    // One key, living as long as its longest use (stale_if_error: 1 h), holding no body.
    let dump = redis.dump();
    assert_eq!(dump.len(), 1, "{dump:?}");
    let ttl: u64 = redis
        .cli(&["TTL", &dump[0].0])
        .trim()
        .parse()
        .expect("a TTL");
    assert!((3500..=3600).contains(&ttl), "{ttl}");
    assert!(!dump[0].1.contains("Astrid"), "{dump:?}");
    // Over the cap: not kept.
    let (c, _) = instance(
        &redis,
        "c",
        "max_value_bytes = 16",
        Duration::from_secs(900),
    )
    .await;
    redis.cli(&["FLUSHALL"]);
    c.keep(&share, &spec, value).await.expect("answered");
    assert_eq!(redis.cli(&["--scan"]).trim(), "");
    // Something else under our key is no answer.
    let (key, _) = (dump[0].0.clone(), ());
    redis.cli(&["SET", &key, "{\"s\":500,\"x\":1000}", "PX", "60000"]);
    assert_eq!(a.kept(&share).await.expect("answered"), None);
    redis.cli(&["SET", &key, "garbage", "PX", "60000"]);
    assert_eq!(a.kept(&share).await.expect("answered"), None);
}

#[tokio::test]
async fn each_instance_sees_the_others_load_until_it_expires_or_leaves() {
    let redis = RedisServer::start();
    let extra = "heartbeat_ms = 200\nload_ttl_ms = 800";
    let (a, _) = instance(&redis, "a", extra, Duration::from_secs(900)).await;
    let (b, _) = instance(&redis, "b", extra, Duration::from_secs(900)).await;
    let (c, _) = instance(&redis, "c", extra, Duration::from_secs(900)).await;
    assert_eq!(a.beat(25, 3_500).await.expect("beat"), PeerLoad::default());
    b.beat(20, 1_000).await.expect("beat");
    let seen = c.beat(1, 0).await.expect("beat");
    assert_eq!(
        seen,
        PeerLoad {
            calls: 45,
            invite_rate: 5,
            instances: 2
        }
    );
    // b stops cleanly; a is killed and says nothing more.
    b.leave().await;
    assert_eq!(c.beat(1, 0).await.expect("beat").calls, 25);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        c.beat(1, 0).await.expect("beat"),
        PeerLoad::default(),
        "a's share expired"
    );
    let fields = redis.cli(&["HKEYS", "concierge:load"]);
    assert_eq!(
        fields.lines().count(),
        1,
        "only c's entry is left: {fields}"
    );
}

#[tokio::test]
async fn an_outage_fails_fast_and_the_store_comes_back_by_itself() {
    let mut redis = RedisServer::start();
    let (a, metrics) = instance(&redis, "a", "timeout_ms = 200", Duration::from_secs(900)).await;
    let subjects = number(false);
    a.count_failure("codes", &subjects).await.expect("counted");
    assert!(metrics.render(false).contains("concierge_shared_up 1"));

    redis.kill9();
    let asked = Instant::now();
    assert!(a.count_failure("codes", &subjects).await.is_err());
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "bounded by the timeout, not hung"
    );
    let text = metrics.render(false);
    assert!(text.contains("concierge_shared_up 0"), "{text}");
    let lockout_errors: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("concierge_shared_errors_total{op=\"lockout\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(lockout_errors >= 1, "{text}");
    for _ in 0..5 {
        assert!(left(&a, "codes", &subjects).await.is_err());
    }

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while left(&a, "codes", &subjects).await.is_err() {
        assert!(Instant::now() < deadline, "no reconnection within 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(metrics.render(false).contains("concierge_shared_up 1"));
    assert_eq!(
        a.count_failure("codes", &subjects).await.expect("counted")[0].failures,
        1,
        "a fresh, empty server"
    );
}

#[tokio::test]
async fn a_store_down_at_start_answers_at_once_and_connects_when_it_appears() {
    let port = redis_server::free_port();
    let metrics = Arc::new(Metrics::new());
    let cfg = config(&format!("redis://127.0.0.1:{port}"), "");
    let a = Shared::start(
        &cfg,
        "a",
        lockout(Duration::from_secs(900)),
        metrics.clone(),
    )
    .expect("starts without the store");
    let asked = Instant::now();
    assert!(left(&a, "codes", &number(false)).await.is_err());
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "no waiting for a store that is not there"
    );
    let text = metrics.render(false);
    assert!(text.contains("concierge_shared_up 0"), "{text}");
    // Without [shared] the series does not exist at all.
    assert!(!Metrics::new().render(false).contains("concierge_shared_up"));
    let _redis = RedisServer::start_on(port);
    until(Duration::from_secs(10), "connected", || a.is_up()).await;
    assert!(left(&a, "codes", &number(false)).await.is_ok());
    assert!(metrics.render(false).contains("concierge_shared_up 1"));
}

#[tokio::test]
async fn the_keyspace_holds_no_number_no_address_and_no_code() {
    let redis = RedisServer::start();
    let (a, _) = instance(&redis, "a", "", Duration::from_secs(900)).await;
    a.count_failure("codes", &number(false))
        .await
        .expect("counted");
    a.count_failure("codes", &number(true))
        .await
        .expect("counted");
    let (share, spec) = vip_lookup();
    let value = SharedValue {
        status: 200,
        value: Some("true".into()),
        saved: Vec::new(),
    };
    a.keep(&share, &spec, value).await.expect("kept");
    a.beat(1, 0).await.expect("beat");
    let dump = redis.dump();
    assert_eq!(
        dump.len(),
        5,
        "three failure sets, one answer, the load: {dump:?}"
    );
    for (key, content) in &dump {
        for secret in ["46706170786", "192.0.2.7", "101010", "crm/customers"] {
            assert!(
                !key.contains(secret) && !content.contains(secret),
                "{secret} in {key}: {content}"
            );
        }
    }
}

/// A CRM on a loopback port that knows the VIP, counts requests and can be switched to 503.
async fn crm() -> (
    String,
    Arc<std::sync::atomic::AtomicUsize>,
    Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let (asked, down) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let (a, d) = (asked.clone(), down.clone());
    let app = axum::Router::new().fallback(move || {
        let (a, d) = (a.clone(), d.clone());
        async move {
            a.fetch_add(1, Ordering::SeqCst);
            if d.load(Ordering::SeqCst) {
                (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new())
            } else {
                (
                    axum::http::StatusCode::OK,
                    r#"{"customer": {"hasVIPMembership": true, "name": "Astrid"}}"#.to_owned(),
                )
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), asked, down)
}

#[tokio::test]
async fn the_driver_asks_the_shared_cache_before_the_crm_and_falls_back_on_it() {
    use concierge_flow::CacheUse;
    use std::sync::atomic::Ordering;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let redis = RedisServer::start();
    let (a, _) = instance(&redis, "a", "", Duration::from_secs(900)).await;
    let (b, _) = instance(&redis, "b", "", Duration::from_secs(900)).await;
    let (base, asked, down) = crm().await;
    let http = crate::http::HttpClient::new();
    let request = vip_request(&base);

    // A asks the CRM and keeps the answer (in the background: wait for it).
    let r = super::perform(&http, Some(&a), request.clone())
        .await
        .expect("answered");
    assert_eq!((r.status, r.shared), (200, None));
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    until(Duration::from_secs(10), "kept", || {
        !redis.cli(&["--scan"]).trim().is_empty()
    })
    .await;

    // B finds it fresh: no request at all.
    let r = super::perform(&http, Some(&b), request.clone())
        .await
        .expect("answered");
    let shared = r.shared.expect("from the shared cache");
    assert_eq!(
        (shared.used, shared.value.as_deref()),
        (CacheUse::Hit, Some("true"))
    );
    assert_eq!(asked.load(Ordering::SeqCst), 1);

    // No longer fresh for this node, and the CRM failing: the kept answer stands in.
    down.store(true, Ordering::SeqCst);
    let mut stale_only = request.clone();
    if let Some(c) = stale_only.cache.as_mut() {
        c.ttl = Duration::ZERO;
    }
    let r = super::perform(&http, Some(&b), stale_only.clone())
        .await
        .expect("answered");
    assert_eq!(r.shared.map(|s| s.used), Some(CacheUse::Stale));
    assert_eq!(asked.load(Ordering::SeqCst), 2, "the CRM was asked first");

    // Without a store, or with nothing kept, the CRM's failure goes through.
    let r = super::perform(&http, None, stale_only.clone())
        .await
        .expect("a response");
    assert_eq!((r.status, r.shared), (503, None));
    redis.cli(&["FLUSHALL"]);
    let r = super::perform(&http, Some(&b), stale_only)
        .await
        .expect("a response");
    assert_eq!(r.status, 503);
}
