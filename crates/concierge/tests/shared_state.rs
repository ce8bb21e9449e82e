//! Two instances sharing one real redis-server (`[shared]`, issue 24) through the real
//! binary on 127.0.0.1: a VIP recognised by one instance is fast-tracked by the other from
//! the shared stale entry while the CRM is down; the concurrent-call limit holds across
//! both, and a killed instance's share is released when its TTL passes; the store killed
//! mid-run fails no call, is warned about once, and is found again by itself; no secret in
//! the keyspace.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::calls::{code_call, vip_call};
use common::http_stub::{Reply, Stub};
use common::ops::{metric, metric_sum, scrape, wait_metric};
use common::redis::RedisServer;
use common::{free_port, header, start_vip_env, RawPeer, Server, TRUST_LOOPBACK};

const WAIT: Duration = Duration::from_secs(30);
const VIP: &str = "+46706170786";
const VIP_JSON: &str = r#"{"customer": {"number": "+46706170786", "name": "Astrid Lindqvist", "hasVIPMembership": true, "tier": "gold", "notes": "prefers the window seat"}}"#;
const TOKEN: &str = "crm-token-5f0c2a9e7d";

/// `[shared]` on `redis`, quick heartbeats, and a timeout a loaded machine meets.
fn shared(redis: &RedisServer) -> String {
    format!(
        "[shared]\nurl = \"{}\"\ntimeout_ms = 500\nheartbeat_ms = 200\nload_ttl_ms = 1500\n",
        redis.url()
    )
}

/// A VIP flow instance whose lookup goes to `crm`, cached with a 1 s TTL (so a later call
/// asks again) and the shipped day of stale-if-error.
fn vip_instance(name: &str, crm: &str, extra: &str) -> Server {
    start_vip_env(
        name,
        |f| {
            f.replace("CRM/customers", &format!("{crm}/customers"))
                .replace("{ ttl_s = 300", "{ ttl_s = 1")
        },
        TRUST_LOOPBACK,
        extra,
        &[("CRM_TOKEN", TOKEN)],
    )
}

#[test]
fn a_vip_known_to_instance_a_is_fast_tracked_by_instance_b_while_the_crm_is_down() {
    let redis = RedisServer::start();
    let crm = Stub::start(|req| {
        if req.path.ends_with("/customers/%2B46706170786") {
            Reply::json(200, VIP_JSON)
        } else {
            Reply::json(404, "{}")
        }
    });
    let base = crm.url();
    let a = vip_instance("shared-a", &base, &shared(&redis));
    let b = vip_instance("shared-b", &base, &shared(&redis));
    // Shows the test can fail: an instance with no [shared] knows nothing of A's answer.
    let alone = vip_instance("shared-alone", &base, "");

    let (to, rec) = vip_call(&a, VIP, "shared-1");
    assert!(to.starts_with("<sip:vip-desk@"), "{to}");
    assert_eq!(rec["http"][0]["cache"], "miss", "{rec}");
    assert_eq!(crm.seen().len(), 1);

    crm.stop();
    // Part of what is tested: the kept answer must outlive its 1 s TTL, so that B's
    // lookup goes to the (stopped) CRM and the entry stands in stale, not fresh.
    std::thread::sleep(Duration::from_millis(1200));
    let (to, rec) = vip_call(&b, VIP, "shared-2");
    assert!(
        to.starts_with("<sip:vip-desk@"),
        "B fast-tracks the VIP from A's answer: {to}\n{}",
        common::tail(&b.log(), 30)
    );
    assert_eq!(rec["http"][0]["cache"], "stale", "{rec}");
    assert_eq!(rec["http"][0]["outcome"], "ok: true", "{rec}");
    // What the flow saves for the desk's widget comes with the kept answer.
    assert!(
        rec["variables"]
            .as_array()
            .is_some_and(|v| v.contains(&serde_json::json!(["customer.name", "Astrid Lindqvist"]))),
        "{rec}"
    );
    assert!(
        b.log().contains("shared cache's answer stands in (stale)"),
        "{}",
        common::tail(&b.log(), 30)
    );

    let (to, _) = code_call(&alone, VIP, "alone-1", "999999");
    assert!(
        to.starts_with("<sip:service-desk@"),
        "without [shared] the VIP is a stranger while the CRM is down: {to}"
    );

    // A code typed on A, and the CRM's token in every lookup: none of it is in the store,
    // and neither is the caller's number or anything of the CRM's answer but the values
    // the flow saves (its name and tier, for the desk's widget).
    let (to, _) = code_call(&a, "+46700000009", "shared-3", "101010");
    assert!(to.starts_with("<sip:vip-desk@"), "{to}");
    let dump = redis.dump();
    assert!(!dump.is_empty());
    for (key, value) in &dump {
        for secret in ["101010", TOKEN, "46706170786", "46700000009", "window seat"] {
            assert!(
                !key.contains(secret) && !value.contains(secret),
                "{secret} in the store: {key} = {value}"
            );
        }
    }
}

/// SIPp calls `n` calls into `server` and holds them (answered, no flow) for a minute.
struct HeldCalls(Child);

impl HeldCalls {
    fn start(server: &Server, n: u32) -> Self {
        let dir = common::scratch_dir("shared-sipp");
        let child = Command::new("sipp")
            .args(["-sn", "uac", "-m", &n.to_string(), "-l", &n.to_string()])
            .args(["-r", "50", "-d", "60000", "-i", "127.0.0.1", "-nostdin"])
            .args([
                "-p",
                &free_port().to_string(),
                "-mp",
                &free_port().to_string(),
            ])
            .arg(format!("127.0.0.1:{}", server.port))
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("SIPp is required for this test (apt-get install -y sip-tester)");
        Self(child)
    }
}

impl Drop for HeldCalls {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An instance with no flow (calls are answered and held), `max_calls` 50 across all.
fn held_instance(name: &str, redis: &RedisServer, metrics: u16) -> Server {
    Server::start(
        name,
        "",
        &format!(
            "[calls]\nmax_calls = 50\nmedia_timeout_s = 0\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n{}",
            shared(redis)
        ),
    )
}

/// A new INVITE's final answer's status.
fn new_call_status(server: &Server, call_id: &str) -> u16 {
    let peer = RawPeer::new(server.port);
    peer.send(&peer.invite(call_id, call_id));
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        for m in common::collect(&peer.sock, Duration::from_millis(100)) {
            let status: u16 = m
                .strip_prefix("SIP/2.0 ")
                .and_then(|r| r.get(..3))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            if status >= 200 {
                if status < 300 {
                    // Ours now: ACK and BYE so it does not hold a slot.
                    hang_up(&peer, &m, call_id);
                }
                return status;
            }
        }
    }
    panic!("no final answer to {call_id}");
}

fn hang_up(peer: &RawPeer, ok: &str, call_id: &str) {
    let to = header(ok, "To").expect("To");
    let from = header(ok, "From").expect("From");
    for (method, seq) in [("ACK", 1), ("BYE", 2)] {
        peer.send(&format!(
            "{method} sip:ivr@127.0.0.1:{s} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK{call_id}{method};rport\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {seq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            s = peer.server,
            p = peer.port,
        ));
    }
}

#[test]
fn fifty_calls_across_two_instances_refuse_the_51st_on_either_until_a_killed_one_s_share_expires() {
    let redis = RedisServer::start();
    let (ma, mb) = (free_port(), free_port());
    let a = held_instance("shared-limit-a", &redis, ma);
    let b = held_instance("shared-limit-b", &redis, mb);
    let _on_a = HeldCalls::start(&a, 25);
    let _on_b = HeldCalls::start(&b, 25);
    for m in [ma, mb] {
        wait_metric(m, "concierge_calls_in_progress", |n| n >= 25.0);
    }
    // Each has heard the other's 25 through the store.
    for m in [ma, mb] {
        wait_metric(m, "concierge_shared_peer_calls", |n| n >= 25.0);
    }
    assert_eq!(
        new_call_status(&a, "fifty-first-a"),
        503,
        "{}",
        common::tail(&a.log(), 20)
    );
    assert_eq!(
        new_call_status(&b, "fifty-first-b"),
        503,
        "{}",
        common::tail(&b.log(), 20)
    );
    let page = scrape(ma);
    assert_eq!(metric(&page, "concierge_shared_up"), Some(1.0), "{page}");
    assert_eq!(
        metric(
            &page,
            "concierge_invites_refused_total{reason=\"max_calls\"}"
        ),
        Some(1.0)
    );

    // B dies without a word; its 25 stop counting when its entry expires (1.5 s).
    b.signal("-KILL");
    wait_metric(ma, "concierge_shared_peer_calls", |n| n == 0.0);
    let status = new_call_status(&a, "after-kill");
    assert!(
        status < 300,
        "A takes calls once B's share is gone: {status}"
    );
    let fields = redis.cli(&["HKEYS", "concierge:load"]);
    assert_eq!(
        fields.lines().count(),
        1,
        "only A's entry is left: {fields}"
    );
}

/// Waits until `n` calls have ended on the instance whose metrics are on `metrics`.
#[track_caller]
fn ended_calls_reach(metrics: u16, n: f64) {
    common::wait::wait_until(WAIT, format_args!("{n} ended calls"), || {
        match metric_sum(&scrape(metrics), "concierge_calls_total") {
            ended if ended >= n => Ok(()),
            ended => Err(ended),
        }
    });
}

#[test]
fn the_store_killed_mid_run_fails_no_call_and_its_return_is_noticed_by_itself() {
    let mut redis = RedisServer::start();
    let m = free_port();
    let a = held_instance("shared-outage", &redis, m);
    wait_metric(m, "concierge_shared_up", |v| v == 1.0);
    std::thread::scope(|s| {
        let run =
            s.spawn(|| common::sipp(&a, &["-sn", "uac", "-m", "100", "-r", "20", "-d", "500"]));
        // Some calls complete with the store up, more while it is gone.
        ended_calls_reach(m, 20.0);
        redis.kill9();
        wait_metric(m, "concierge_shared_up", |v| v == 0.0);
        ended_calls_reach(m, 40.0);
        redis.restart();
        wait_metric(m, "concierge_shared_up", |v| v == 1.0);
        let out = run.join().expect("SIPp thread");
        common::assert_sipp_ok(&out, &a);
    });
    let log = a.log();
    assert_eq!(log.matches("shared state: connected").count(), 1);
    assert_eq!(
        log.matches("shared state unreachable").count(),
        1,
        "one warning for the outage, not one per call:\n{}",
        common::tail(&log, 40)
    );
    assert_eq!(log.matches("shared state reachable again").count(), 1);
    let page = scrape(m);
    assert!(
        common::ops::metric_sum(&page, "concierge_shared_errors_total") >= 1.0,
        "{page}"
    );
    common::ops::promtool_check(&page);
}
