//! Metrics from records and switch counters, and both exposition formats.

use super::*;
use concierge_b2bua::{CallRecord, SwitchStats};

#[test]
fn http_outcomes_are_a_fixed_set_whatever_the_api_said() {
    use HttpStepOutcome::*;
    for (outcome, label) in [
        (Value("true".into()), "success"),
        (SecretValue, "success"),
        (BadBody("no value at customer.vip".into()), "bad_body"),
        (Status(404), "http_4xx"),
        (Status(503), "http_5xx"),
        (Status(302), "http_other"),
        (Timeout, "timeout"),
        (Connect("refused".into()), "connect_error"),
        (Other("tls handshake eof".into()), "error"),
    ] {
        assert_eq!(http_outcome(&outcome), label, "{outcome:?}");
    }
}

/// A failed call's record with a path, a transfer and a lockout: every kind of field.
pub(crate) fn record() -> CallRecord {
    let step = |node: &str, exit: &str| concierge_b2bua::PathStep {
        node: node.into(),
        exit: Some(exit.into()),
    };
    CallRecord {
        call_id: "c1".into(),
        flow: Some("vip".into()),
        flow_version: Some("0123456789ab".into()),
        outcome: concierge_b2bua::Outcome::Failed,
        caller: "+46700000009".into(),
        verified: false,
        verstat: None,
        private: false,
        lockout: Some("codes: source".into()),
        called: "ivr".into(),
        arrived_ms: 1_000,
        answered_ms: Some(2_000),
        ended_ms: 30_000,
        path: vec![step("xfer", "failed"), step("sorry", "hung up")],
        http: Vec::new(),
        variables: Vec::new(),
        transfer: Some(concierge_b2bua::TransferRecord {
            mode: concierge_b2bua::TransferMode::Refer,
            target: "sip:desk@example.com".into(),
            result: concierge_b2bua::TransferResult::Failed(
                concierge_b2bua::TransferFailure::TargetRefused {
                    status: concierge_sip::wire::StatusCode(486),
                    reason: "Busy Here".into(),
                },
            ),
            started_ms: Some(9_500),
            relayed: None,
        }),
        ended_by: concierge_b2bua::EndedBy::Concierge,
        reason: "hung up".into(),
        digits: vec![('*', "info")],
        rtp_foreign_dropped: 4,
        instance: "concierge".into(),
    }
}

#[test]
fn a_failed_transfer_counts_at_its_node_and_free_text_never_becomes_a_label() {
    let m = Metrics::new();
    m.observe_record(&record());
    let page = m.render(false);
    for line in [
        "concierge_calls_total{flow=\"vip\",outcome=\"failed\",node=\"sorry\"} 1",
        "concierge_transfers_total{flow=\"vip\",node=\"xfer\",mode=\"refer\",result=\"failed\"} 1",
        "concierge_answer_to_transfer_seconds_sum{flow=\"vip\",node=\"xfer\"} 7.5",
        "concierge_lockouts_total{group=\"codes\",scope=\"source\"} 1",
        "concierge_digits_total{method=\"info\"} 1",
        "concierge_rtp_foreign_dropped_total 4",
    ] {
        assert!(
            page.contains(&format!("{line}\n")),
            "{line} not in:\n{page}"
        );
    }
    assert!(!page.contains("Busy") && !page.contains("+4670"), "{page}");
}

#[test]
fn switch_counters_are_added_once() {
    let m = Metrics::new();
    let stats = SwitchStats {
        refused_max_calls: 2,
        ..SwitchStats::default()
    };
    m.observe_switch(3, false, stats);
    m.observe_switch(3, false, stats);
    let page = m.render(false);
    assert!(page.contains("concierge_invites_refused_total{reason=\"max_calls\"} 2\n"));
    assert!(page.contains("concierge_calls_in_progress 3\n"));
}

#[test]
fn a_rendered_page_names_counters_with_total_in_both_formats() {
    let m = Metrics::new();
    m.reload(true);
    let text = m.render(false);
    assert!(
        text.contains("# TYPE concierge_reloads_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("concierge_reloads_total{result=\"applied\"} 1\n"),
        "{text}"
    );
    let om = m.render(true);
    assert!(om.contains("# TYPE concierge_reloads counter\n") && om.ends_with("# EOF\n"));
}

#[test]
fn cache_hits_are_counted_and_kept_out_of_the_latency_histogram() {
    let lookup = |cache: Option<CacheUse>, latency_ms| concierge_b2bua::HttpOutcome {
        node: "lookup".into(),
        status: Some(200),
        outcome: HttpStepOutcome::Value("true".into()),
        latency_ms,
        cache,
    };
    let m = Metrics::new();
    let mut r = record();
    r.http = vec![
        lookup(Some(CacheUse::Miss), 120),
        lookup(Some(CacheUse::Hit), 0),
        lookup(None, 80),
    ];
    m.observe_record(&r);
    let page = m.render(false);
    for line in [
        "concierge_http_cache_total{flow=\"vip\",node=\"lookup\",result=\"miss\"} 1",
        "concierge_http_cache_total{flow=\"vip\",node=\"lookup\",result=\"hit\"} 1",
        "concierge_http_request_duration_seconds_count{flow=\"vip\",node=\"lookup\",outcome=\"success\"} 2",
        "concierge_http_request_duration_seconds_sum{flow=\"vip\",node=\"lookup\",outcome=\"success\"} 0.2",
    ] {
        assert!(page.contains(&format!("{line}\n")), "{line} not in:\n{page}");
    }
}
