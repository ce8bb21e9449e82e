//! Call records POSTed to a webhook, against a real local HTTP receiver: every record
//! arrives; with the receiver down calls are unaffected, records are retried until it is
//! back, and what does not fit the bounded queue is dropped and counted.

mod common;

use common::ops::{metric, metrics_on, scrape, wait_metric, Receiver};
use common::{assert_sipp_ok, free_port, sipp, wait_records, wait_until, Server, PATIENCE};

/// A server whose records also go to `127.0.0.1:hook`, with `records_extra` lines in
/// `[records]` and metrics on `metrics`.
fn server(name: &str, hook: u16, records_extra: &str, metrics: u16) -> Server {
    // The harness writes `[records] path = …` last before `extra`: these lines join it.
    Server::start(
        name,
        "",
        &format!(
            "webhook_url = \"http://127.0.0.1:{hook}/records\"\n{records_extra}\n{}",
            metrics_on(metrics)
        ),
    )
}

/// `n` short calls, one after the other, all of which must succeed.
fn calls(server: &Server, n: usize) {
    let out = sipp(
        server,
        &[
            "-sn",
            "uac",
            "-m",
            &n.to_string(),
            "-l",
            "1",
            "-r",
            "20",
            "-d",
            "100",
            "-timeout",
            "30",
            "-timeout_error",
        ],
    );
    assert_sipp_ok(&out, server);
}

#[test]
fn every_record_arrives_at_the_webhook_as_in_the_file() {
    let receiver = Receiver::start(free_port(), 200);
    let metrics = free_port();
    let server = server("webhook-up", receiver.port, "", metrics);
    calls(&server, 3);
    let records = wait_records(&server, 3);
    // Three records at the webhook.
    wait_metric(metrics, "concierge_record_webhook_delivered_total", |n| {
        n == 3.0
    });
    let mut posted = receiver.received();
    posted.sort_by_key(|r| r["call_id"].as_str().unwrap_or_default().to_owned());
    let mut filed = records;
    filed.sort_by_key(|r| r["call_id"].as_str().unwrap_or_default().to_owned());
    assert_eq!(posted, filed, "the webhook gets the same JSON as the file");
    assert_eq!(
        metric(&scrape(metrics), "concierge_record_webhook_retries_total"),
        Some(0.0)
    );
}

#[test]
fn with_the_receiver_down_calls_go_on_records_are_retried_and_overflow_is_counted() {
    let hook = free_port(); // nothing listens here yet
    let metrics = free_port();
    let server = server(
        "webhook-down",
        hook,
        "webhook_queue = 2\nwebhook_attempts = 1000\nwebhook_backoff_ms = 100\n",
        metrics,
    );
    // Every call completes while the receiver is down (SIPp checks each one).
    calls(&server, 6);
    let filed = wait_records(&server, 6);
    assert_eq!(filed.len(), 6);
    wait_metric(metrics, "concierge_record_webhook_retries_total", |n| {
        n >= 2.0
    });
    // One record in delivery, two queued: the other three did not fit.
    let page = scrape(metrics);
    let dropped = metric(
        &page,
        "concierge_record_webhook_dropped_total{reason=\"queue_full\"}",
    )
    .unwrap();
    assert_eq!(dropped, 3.0, "{page}");
    assert_eq!(metric(&page, "concierge_record_webhook_queued"), Some(2.0));
    assert!(server.log().contains("webhook queue full"));

    // The receiver comes up: the retried record and the queued ones arrive.
    let receiver = Receiver::start(hook, 200);
    wait_until(PATIENCE, "3 records delivered", || {
        let received = receiver.received().len();
        if received == 3 {
            Ok(())
        } else {
            Err(format!("{received} received"))
        }
    });
    // (The receiver keeps a body before it answers; the count follows the answer.)
    wait_metric(metrics, "concierge_record_webhook_delivered_total", |n| {
        n == 3.0
    });
    assert_eq!(
        metric(&scrape(metrics), "concierge_record_webhook_queued"),
        Some(0.0)
    );
    // The first three calls are the ones delivered, in order.
    let ids: Vec<_> = receiver
        .received()
        .iter()
        .map(|r| r["call_id"].clone())
        .collect();
    let first: Vec<_> = filed[..3].iter().map(|r| r["call_id"].clone()).collect();
    assert_eq!(ids, first);
}

#[test]
fn a_record_the_receiver_keeps_refusing_is_dropped_after_its_attempts() {
    let receiver = Receiver::start(free_port(), 500);
    let metrics = free_port();
    let server = server(
        "webhook-500",
        receiver.port,
        "webhook_attempts = 3\nwebhook_backoff_ms = 50\n",
        metrics,
    );
    calls(&server, 1);
    // The record dropped after its attempts.
    wait_metric(
        metrics,
        "concierge_record_webhook_dropped_total{reason=\"attempts\"}",
        |n| n == 1.0,
    );
    let page = scrape(metrics);
    assert_eq!(
        metric(&page, "concierge_record_webhook_retries_total"),
        Some(2.0)
    );
    assert_eq!(
        metric(&page, "concierge_record_webhook_delivered_total"),
        Some(0.0)
    );
    assert!(receiver.received().is_empty());
    assert!(server.log().contains("dropped after its last attempt"));
}
