//! `/metrics` and `/healthz` of the real server: the page passes `promtool check metrics`,
//! and after a VIP call and a normal call through the reference flow every counter moved
//! by exactly what those two calls did; refusals are counted by reason and `/healthz`
//! turns 503 while draining.

mod common;

use std::time::Duration;

use common::calls::sipp_caller;
use common::ops::{http, metric, metric_sum, metrics_on, promtool_check, scrape, wait_metric};
use common::{free_port, start_vip, wait_records, wait_until, RawCall, PATIENCE};

/// Runs a SIPp caller scenario from `caller` to completion.
fn call(server: &common::Server, file: &str, caller: &str) {
    sipp_caller(server, file, caller);
}

/// The difference of one series between two pages (absent counts as 0).
fn moved(before: &str, after: &str, series: &str) -> f64 {
    metric(after, series).unwrap_or(0.0) - metric(before, series).unwrap_or(0.0)
}

#[test]
fn a_vip_call_and_a_normal_call_move_the_counters_by_exactly_what_happened() {
    let port = free_port();
    let server = start_vip("metrics-calls", |f| f, &metrics_on(port));
    let before = scrape(port);
    promtool_check(&before);
    assert_eq!(metric(&before, "concierge_calls_in_progress"), Some(0.0));

    // A known VIP number from a trusted peer: straight to the VIP desk.
    call(&server, "vip_refer.xml", "+46706170786");
    wait_records(&server, 1);
    // An unknown number keys a wrong code: customer service.
    call(&server, "keypad_999999_refer.xml", "+46700000009");
    let records = wait_records(&server, 2);
    let after = scrape(port);
    promtool_check(&after);

    let version = records[0]["flow_version"].as_str().expect("flow_version");
    assert_eq!(version.len(), 12, "a content hash: {version}");
    assert_eq!(records[1]["flow_version"], version);
    for r in &records {
        assert_eq!(r["flow"], "vip");
        assert_eq!(r["outcome"], "transferred");
    }
    let moved = |series: &str| moved(&before, &after, series);
    // Where each call was transferred from: the node whose exit was `transferred` (the VIP
    // desk's node and customer service's; the flow names them).
    let transfer_node = |r: &serde_json::Value| -> String {
        r["path"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["exit"] == "transferred")
            .and_then(|s| s["node"].as_str())
            .expect("a transferred exit")
            .to_owned()
    };
    let (vip_node, normal_node) = (transfer_node(&records[0]), transfer_node(&records[1]));
    assert_ne!(vip_node, normal_node);
    assert!(records[0]["transfer"]["target"]
        .as_str()
        .unwrap()
        .contains("vip-desk"));
    assert!(records[1]["transfer"]["target"]
        .as_str()
        .unwrap()
        .contains("service-desk"));
    let calls = |outcome: &str, node: &str| {
        format!("concierge_calls_total{{flow=\"vip\",outcome=\"{outcome}\",node=\"{node}\"}}")
    };
    assert_eq!(moved(&calls("transferred", &vip_node)), 1.0);
    assert_eq!(moved(&calls("transferred", &normal_node)), 1.0);
    assert_eq!(
        metric_sum(&after, "concierge_calls_total") - metric_sum(&before, "concierge_calls_total"),
        2.0,
        "two calls, nothing else:\n{after}"
    );
    let transfers = |node: &str| {
        format!("concierge_transfers_total{{flow=\"vip\",node=\"{node}\",mode=\"refer\",result=\"succeeded\"}}")
    };
    assert_eq!(moved(&transfers(&vip_node)), 1.0);
    assert_eq!(moved(&transfers(&normal_node)), 1.0);
    assert_eq!(metric_sum(&after, "concierge_transfers_total"), 2.0);
    for node in [&vip_node, &normal_node] {
        assert_eq!(
            moved(&format!(
                "concierge_answer_to_transfer_seconds_count{{flow=\"vip\",node=\"{node}\"}}"
            )),
            1.0
        );
    }

    // Node visits: exactly the steps of the two paths the records show.
    let mut steps = std::collections::BTreeMap::<(String, String), f64>::new();
    for r in &records {
        for s in r["path"].as_array().unwrap() {
            let key = (
                s["node"].as_str().unwrap().to_owned(),
                s["exit"].as_str().unwrap_or_default().to_owned(),
            );
            *steps.entry(key).or_default() += 1.0;
        }
    }
    for ((node, exit), n) in &steps {
        assert_eq!(
            moved(&format!(
                "concierge_flow_node_visits_total{{flow=\"vip\",node=\"{node}\",exit=\"{exit}\"}}"
            )),
            *n,
            "{node} → {exit}"
        );
    }
    // The known turns of the reference flow: the lookup found one caller and not the other,
    // and a wrong code went to customer service.
    assert_eq!(steps[&("lookup".into(), "success".into())], 1.0);
    assert_eq!(steps[&("check_code".into(), "default".into())], 1.0);
    assert_eq!(
        metric_sum(&after, "concierge_flow_node_visits_total"),
        steps.values().sum::<f64>()
    );

    // The customer lookup: found for the VIP, 404 for the unknown number.
    let http_count = |outcome: &str| {
        format!("concierge_http_request_duration_seconds_count{{flow=\"vip\",node=\"lookup\",outcome=\"{outcome}\"}}")
    };
    assert_eq!(moved(&http_count("success")), 1.0);
    assert_eq!(moved(&http_count("http_4xx")), 1.0);
    // The lookup's cache, as the records say it took part (two numbers: two misses).
    let mut cache = std::collections::BTreeMap::<String, f64>::new();
    for r in &records {
        for h in r["http"].as_array().unwrap() {
            if let Some(result) = h["cache"].as_str() {
                *cache.entry(result.to_owned()).or_default() += 1.0;
            }
        }
    }
    assert_eq!(cache.get("miss"), Some(&2.0), "{records:?}");
    for (result, n) in &cache {
        assert_eq!(
            moved(&format!(
                "concierge_http_cache_total{{flow=\"vip\",node=\"lookup\",result=\"{result}\"}}"
            )),
            *n
        );
    }

    // Six keys by RFC 4733, and none any other way.
    let digits = records[1]["digits"].as_array().unwrap().len();
    assert_eq!(digits, 6);
    assert_eq!(
        moved("concierge_digits_total{method=\"rfc4733\"}"),
        digits as f64
    );
    assert_eq!(metric_sum(&after, "concierge_digits_total"), 6.0);

    // Media both ways, no call left, nothing refused, no lockout, this flow version live.
    assert!(moved("concierge_rtp_packets_sent_total") > 0.0);
    assert!(moved("concierge_rtp_packets_received_total") > 0.0);
    assert_eq!(metric(&after, "concierge_calls_in_progress"), Some(0.0));
    assert_eq!(metric_sum(&after, "concierge_invites_refused_total"), 0.0);
    assert_eq!(metric_sum(&after, "concierge_lockouts_total"), 0.0);
    assert_eq!(moved("concierge_rtp_foreign_dropped_total"), 0.0);
    assert_eq!(
        metric(
            &after,
            &format!("concierge_flow_version_info{{flow=\"vip\",version=\"{version}\"}}")
        ),
        Some(1.0)
    );
    assert!(metric(&after, "process_resident_memory_bytes").is_some_and(|b| b > 1e6));
    assert!(metric(&after, "process_cpu_seconds_total").is_some());
    // Never a caller number or a Call-ID in a label.
    assert!(!after.contains("+4670"), "{after}");
    for r in &records {
        assert!(!after.contains(r["call_id"].as_str().unwrap()));
    }
    // Every metric on the page is in README's table.
    let readme = std::fs::read_to_string(common::repo_root().join("README.md")).unwrap();
    for name in after.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = name.split(' ').next().unwrap();
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "{name} is not in README's metrics table"
        );
    }
}

#[test]
fn refusals_are_counted_by_reason_and_healthz_is_503_while_draining() {
    let port = free_port();
    let server = start_vip(
        "metrics-drain",
        |f| f,
        // Two new calls at once, then one a second: the third INVITE in a row is over the rate.
        &format!(
            "[calls]\nmax_calls = 1\ninvite_rate = 1\ninvite_burst = 2\n{}",
            metrics_on(port)
        ),
    );
    assert_eq!(
        http(port, "GET", "/healthz"),
        (200, "accepting calls\n".into())
    );
    // An unknown number waits at the keypad: one call in progress.
    let mut held = RawCall::invite(server.port, "+46700000009", "held-1", "0 101");
    held.answer_and_ack();
    wait_metric(port, "concierge_calls_in_progress", |n| n == 1.0);
    let full = RawCall::invite(server.port, "+46700000001", "full-1", "0");
    full.sip.expect("SIP/2.0 503", Duration::from_secs(5));
    let flood = RawCall::invite(server.port, "+46700000003", "flood-1", "0");
    flood.sip.expect("SIP/2.0 503", Duration::from_secs(5));
    // A token for the next INVITE, which then meets the drain: the rate limiter refills
    // one a second, and nothing but time refills it (a sleep that is part of the test).
    std::thread::sleep(Duration::from_millis(1100));

    server.signal("-TERM");
    wait_until(PATIENCE, "/healthz to say draining", || {
        let answer = http(port, "GET", "/healthz");
        if answer == (503, "draining\n".into()) {
            Ok(())
        } else {
            Err(format!("{answer:?}"))
        }
    });
    let late = RawCall::invite(server.port, "+46700000002", "late-1", "0");
    late.sip.expect("SIP/2.0 503", Duration::from_secs(5));
    let page = scrape(port);
    promtool_check(&page);
    assert_eq!(
        metric(
            &page,
            "concierge_invites_refused_total{reason=\"max_calls\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &page,
            "concierge_invites_refused_total{reason=\"draining\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &page,
            "concierge_invites_refused_total{reason=\"rate_limit\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&page, "concierge_invites_refused_total{reason=\"no_port\"}"),
        Some(0.0)
    );
    assert_eq!(metric_sum(&page, "concierge_invites_refused_total"), 3.0);
    assert_eq!(metric(&page, "concierge_draining"), Some(1.0));
    assert_eq!(metric(&page, "concierge_calls_in_progress"), Some(1.0));
    held.bye();
}

#[test]
fn open_sip_tcp_connections_are_a_gauge_read_at_each_scrape() {
    use std::io::{Read, Write};
    let port = free_port();
    let server = start_vip("metrics-tcp", |f| f, &metrics_on(port));
    assert_eq!(
        metric(&scrape(port), "concierge_sip_tcp_connections"),
        Some(0.0)
    );
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let options = common::options_request(server.port).replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    conn.write_all(options.as_bytes()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 2048];
    let n = conn.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200"));
    assert_eq!(
        metric(&scrape(port), "concierge_sip_tcp_connections"),
        Some(1.0)
    );
    // Closed by the peer: gone at the next scrape, with nothing else happening meanwhile.
    drop(conn);
    wait_metric(port, "concierge_sip_tcp_connections", |n| n == 0.0);
    assert_eq!(
        metric(&scrape(port), "concierge_sip_tcp_connections_refused_total"),
        Some(0.0)
    );
}
