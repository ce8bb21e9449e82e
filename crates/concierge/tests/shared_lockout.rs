//! The keypad lockout across instances (`[shared]`, issue 24) with the real binary: two
//! instances running the shipped VIP flow behind Kamailio (the shipped dispatcher config,
//! round robin) share one real redis-server, and SIPp callers key their codes by SIP INFO
//! through the proxy. Wrong codes spread over both instances lock the number (and an
//! untrusted address) for both, where instances without `[shared]` each count too few;
//! the store killed while 300 such calls run fails none of them, the lockout keeps
//! counting in each instance meanwhile, and both find the store again by themselves (the
//! live console's "Shared state" section says so too). The keyspace never holds a code or
//! a number.

mod common;

use common::calls::code_call as direct_code_call;
use common::ops::{metric_sum, scrape, wait_metric};
use common::proxy::{header_values, sipp_from, Kamailio, SippRun};
use common::redis::RedisServer;
use common::{
    free_port, path_of, scenario, scratch_dir, start_vip_with, tail, wait_until, Server, PATIENCE,
    TRUST_LOOPBACK,
};
use serde_json::Value;

/// A caller the demo directory does not know: asked for a code.
const NUMBER: &str = "+46700000009";
const WRONG: &str = "999999";
const RIGHT: &str = "101010";

/// Instance `id` of the cluster `name`: the shipped VIP flow, `[shared]` on `store` when
/// given, `sip_extra` in `[sip]` (who is trusted), `extra` appended to the config.
fn instance(
    name: &str,
    id: &str,
    store: Option<&RedisServer>,
    sip_extra: &str,
    extra: &str,
) -> Server {
    let shared = store.map_or(String::new(), |r| {
        format!(
            "[shared]\nurl = \"{}\"\ntimeout_ms = 500\nheartbeat_ms = 200\n",
            r.url()
        )
    });
    start_vip_with(
        &format!("{name}-{id}"),
        |f| f,
        sip_extra,
        &format!("[server]\ninstance = \"{id}\"\n{shared}{extra}"),
    )
}

/// Two instances (`a`, `b`) behind one Kamailio.
struct Cluster {
    a: Server,
    b: Server,
    kamailio: Kamailio,
}

impl Cluster {
    /// Instances `a` and `b` as [`instance`] makes them, behind Kamailio.
    fn start(name: &str, store: Option<&RedisServer>, sip_extra: &str, extra: &str) -> Self {
        let a = instance(name, "a", store, sip_extra, extra);
        let b = instance(name, "b", store, sip_extra, extra);
        Self::of(a, b)
    }

    fn of(a: Server, b: Server) -> Self {
        let kamailio = Kamailio::start(&[a.port, b.port], 1);
        Self { a, b, kamailio }
    }

    /// A SIPp caller from `number` keys `code` through Kamailio; returns the record the
    /// call left on whichever instance took it.
    fn code_call(&self, number: &str, code: &str) -> Value {
        let run = self.callers(&[(number.to_owned(), code)], &[]);
        assert!(run.ok && run.successful == 1, "{}", self.report(&run));
        let call_id = run
            .sent
            .first()
            .and_then(|invite| header_values(invite, "Call-ID").pop())
            .expect("the INVITE's Call-ID");
        wait_until(PATIENCE, format_args!("the record of {call_id}"), || {
            [&self.a, &self.b]
                .iter()
                .flat_map(|s| s.records())
                .find(|r| r["call_id"] == call_id.as_str())
                .ok_or_else(|| self.report(&run))
        })
    }

    /// One SIPp run through Kamailio: a call per `(number, code)`, in order, with `args`
    /// (rate, limits) added.
    fn callers(&self, calls: &[(String, &str)], args: &[&str]) -> SippRun {
        let dir = scratch_dir("code-callers");
        let inf = dir.join("callers.csv");
        let mut lines = String::from("SEQUENTIAL\n");
        for (number, code) in calls {
            let digits: Vec<String> = code.chars().map(String::from).collect();
            lines.push_str(&format!("{number};{}\n", digits.join(";")));
        }
        std::fs::write(&inf, lines).expect("injection file");
        let (sf, inf, total) = (
            scenario("kamailio_code_call.xml"),
            inf.display().to_string(),
            calls.len().to_string(),
        );
        let mut all = vec![
            "-sf",
            &sf,
            "-inf",
            &inf,
            "-m",
            &total,
            "-timeout",
            "120",
            "-timeout_error",
        ];
        all.extend_from_slice(args);
        sipp_from(free_port(), self.kamailio.port, &all)
    }

    fn report(&self, run: &SippRun) -> String {
        format!(
            "--- SIPp\n{}\n--- Kamailio\n{}\n--- a\n{}\n--- b\n{}",
            tail(&run.report, 60),
            self.kamailio.log(),
            tail(&self.a.log(), 30),
            tail(&self.b.log(), 30)
        )
    }
}

/// Where a call's record says it was transferred to.
fn desk(record: &Value) -> &str {
    record["transfer"]["target"].as_str().unwrap_or_default()
}

/// Five wrong codes from `number` through the cluster, then the right one twice; returns
/// the records of the wrong ones and of the right ones.
fn guesses_then_the_right_code(cluster: &Cluster, number: &str) -> (Vec<Value>, Vec<Value>) {
    let wrong: Vec<Value> = (0..5).map(|_| cluster.code_call(number, WRONG)).collect();
    let right: Vec<Value> = (0..2).map(|_| cluster.code_call(number, RIGHT)).collect();
    (wrong, right)
}

/// How many of `records` each instance took, `a` first.
fn split(records: &[Value]) -> (usize, usize) {
    let on = |id: &str| records.iter().filter(|r| r["instance"] == id).count();
    (on("a"), on("b"))
}

#[test]
fn wrong_codes_through_both_instances_lock_the_number_on_both_and_not_without_shared_state() {
    let redis = RedisServer::start();
    let shared = Cluster::start("lock-shared", Some(&redis), TRUST_LOOPBACK, "");
    // Shows the test can fail: the same calls, each instance counting alone.
    let alone = Cluster::start("lock-alone", None, TRUST_LOOPBACK, "");
    let ((wrong, right), (alone_wrong, alone_right)) = std::thread::scope(|s| {
        let alone = s.spawn(|| guesses_then_the_right_code(&alone, NUMBER));
        let shared = guesses_then_the_right_code(&shared, NUMBER);
        (shared, alone.join().expect("the cluster without [shared]"))
    });

    // Round robin: three wrong codes through one instance and two through the other —
    // neither reaches the limit of five on its own.
    for (records, name) in [(&wrong, "shared"), (&alone_wrong, "alone")] {
        let (a, b) = split(records);
        assert!(
            (a, b) == (3, 2) || (a, b) == (2, 3),
            "{name}: {a} on a, {b} on b"
        );
        for r in records {
            assert!(desk(r).starts_with("sip:service-desk@"), "{r}");
            assert_eq!(r["lockout"], Value::Null, "{r}");
        }
    }
    // With [shared] the right code reaches the locked exit on both instances — the one
    // whose count locked the number, and the one that learnt it from the store.
    assert_eq!(split(&right), (1, 1), "one right code on each instance");
    for r in &right {
        assert_eq!(r["lockout"], "codes: number", "{r}");
        assert!(desk(r).starts_with("sip:service-desk@"), "{r}");
        assert!(
            path_of(r).iter().any(|step| step == "ask_code:locked"),
            "{r}"
        );
    }
    // Without it each instance counted too few: the right code reaches the VIP desk.
    for r in &alone_right {
        assert_eq!(r["lockout"], Value::Null, "{r}");
        assert!(desk(r).starts_with("sip:vip-desk@"), "{r}");
    }
    // The store holds counts and locks under digests: no code, no number.
    let dump = redis.dump();
    assert!(
        dump.iter().any(|(k, _)| k.contains(":lockout:")),
        "{dump:?}"
    );
    for (key, value) in &dump {
        for secret in [RIGHT, WRONG, &NUMBER[1..]] {
            assert!(
                !key.contains(secret) && !value.contains(secret),
                "{secret} in the store: {key} = {value}"
            );
        }
    }
}

#[test]
fn wrong_codes_from_one_untrusted_address_through_both_instances_lock_that_address() {
    let redis = RedisServer::start();
    // Nobody trusted: the proxy's address is the source every call is counted against.
    let cluster = Cluster::start(
        "lock-source",
        Some(&redis),
        "",
        "[lockout]\nmax_failures_per_source = 3\n",
    );
    let wrong: Vec<Value> = (1..=3)
        .map(|i| cluster.code_call(&format!("+4670000010{i}"), WRONG))
        .collect();
    let (a, b) = split(&wrong);
    assert!(a >= 1 && b >= 1, "{a} on a, {b} on b");
    // A number never seen, from the same address, on either instance.
    let right: Vec<Value> = (4..=5)
        .map(|i| cluster.code_call(&format!("+4670000010{i}"), RIGHT))
        .collect();
    assert_eq!(split(&right), (1, 1));
    for r in &right {
        assert_eq!(r["lockout"], "codes: source", "{r}");
        assert!(desk(r).starts_with("sip:service-desk@"), "{r}");
    }
}

/// Waits until the live console on `port` says `what` in its "Shared state" section.
#[track_caller]
fn console_says(port: u16, what: &str) {
    wait_until(
        PATIENCE,
        format_args!("the console to say {what:?}"),
        || {
            let (_, page) = common::ops::http(port, "GET", "/");
            let section = page
                .split("data-section=\"Shared state\"")
                .nth(1)
                .and_then(|rest| rest.split("</section>").next())
                .unwrap_or_default()
                .to_owned();
            if section.contains(what) {
                Ok(())
            } else {
                Err(section)
            }
        },
    );
}

/// Calls ended so far on the instances whose metrics are on `ports`.
fn ended(ports: &[u16]) -> f64 {
    ports
        .iter()
        .map(|&p| metric_sum(&scrape(p), "concierge_calls_total"))
        .sum()
}

#[test]
fn the_store_killed_while_300_calls_run_through_both_instances_fails_none_and_locks_go_on_locally()
{
    let mut redis = RedisServer::start();
    let (ma, mb, console) = (free_port(), free_port(), free_port());
    let metrics = |p: u16| format!("[metrics]\nlisten = \"127.0.0.1:{p}\"\n");
    let a_extra = format!(
        "{}[console]\nlisten = \"127.0.0.1:{console}\"\n",
        metrics(ma)
    );
    let cluster = Cluster::of(
        instance("outage", "a", Some(&redis), TRUST_LOOPBACK, &a_extra),
        instance("outage", "b", Some(&redis), TRUST_LOOPBACK, &metrics(mb)),
    );
    for m in [ma, mb] {
        wait_metric(m, "concierge_shared_up", |v| v == 1.0);
    }
    console_says(console, "other instances: 1 (");
    // 300 callers, each with a number of its own (no lock in the way), each a wrong code:
    // every call asks the store about its lock and counts a failure there.
    let calls: Vec<(String, &str)> = (0..300)
        .map(|i| (format!("+467100{i:05}"), WRONG))
        .collect();
    let local = "+46700000008";
    let (run, locked) = std::thread::scope(|s| {
        let run = s.spawn(|| cluster.callers(&calls, &["-r", "15", "-l", "100"]));
        let a = &cluster.a;
        wait_until(PATIENCE, "calls ended with the store up", || {
            let n = ended(&[ma, mb]);
            if n >= 30.0 {
                Ok(())
            } else {
                Err(n)
            }
        });
        redis.kill9();
        for m in [ma, mb] {
            wait_metric(m, "concierge_shared_up", |v| v == 0.0);
        }
        console_says(console, "counts, caches and limits alone");
        // The store is gone: five wrong codes straight to a lock the number there.
        std::thread::scope(|s| {
            for i in 0..5 {
                s.spawn(move || direct_code_call(a, local, &format!("outage-{i}"), WRONG));
            }
        });
        let (_, locked) = direct_code_call(a, local, "outage-right", RIGHT);
        redis.restart();
        for m in [ma, mb] {
            wait_metric(m, "concierge_shared_up", |v| v == 1.0);
        }
        console_says(console, "other instances: 1 (");
        (run.join().expect("SIPp thread"), locked)
    });
    assert!(
        run.ok && run.successful == 300 && run.failed == 0,
        "{}",
        cluster.report(&run)
    );
    assert_eq!(locked["lockout"], "codes: number", "{locked}");
    assert!(desk(&locked).starts_with("sip:service-desk@"), "{locked}");
    // Every call of the run has its record, both instances took them, and each went to
    // customer service after its wrong code.
    let records = wait_until(PATIENCE, "306 records", || {
        let all: Vec<Value> = [&cluster.a, &cluster.b]
            .iter()
            .flat_map(|s| s.records())
            .collect();
        if all.len() >= 306 {
            Ok(all)
        } else {
            Err(all.len())
        }
    });
    let (a, b) = split(&records);
    assert!(a > 100 && b > 100, "{a} on a, {b} on b");
    let to_service = records
        .iter()
        .filter(|r| desk(r).starts_with("sip:service-desk@"))
        .count();
    assert_eq!(to_service, 306, "every call ended at customer service");
    for server in [&cluster.a, &cluster.b] {
        let log = server.log();
        assert_eq!(
            log.matches("shared state unreachable").count(),
            1,
            "one warning for the outage:\n{}",
            tail(&log, 40)
        );
        assert_eq!(log.matches("shared state reachable again").count(), 1);
    }
    // The calls' lockout questions and counts that met the outage failed fast and were
    // counted, on both instances.
    for m in [ma, mb] {
        let page = scrape(m);
        let errors = common::ops::metric(&page, "concierge_shared_errors_total{op=\"lockout\"}");
        assert!(errors.is_some_and(|n| n >= 1.0), "{page}");
    }
}
