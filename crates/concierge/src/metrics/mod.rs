//! Prometheus metrics: the registry, and how the driver feeds it.
//!
//! Nothing here is called from the sans-IO crates. The driver feeds it three ways: each
//! [`CallRecord`] as a call ends ([`Metrics::observe_record`] — outcomes, node visits, HTTP
//! latency, transfers, digits, lockouts), the switch's plain counters
//! ([`Metrics::observe_switch`] — what has no record, such as INVITEs refused before a call
//! existed), and what only the driver sees (RTP packets, TCP connections, webhook
//! deliveries). Every label value comes from configuration (flow and node names, exit
//! names, transfer modes) or a fixed list: never a caller number, a Call-ID or free text,
//! so the number of series stays bounded whatever callers do.

mod labels;
mod process;
mod shared;
#[cfg(test)]
pub(crate) mod tests;
mod text;
mod trunks;

use concierge_b2bua::{transfer_succeeded, CacheUse, CallRecord, HttpStepOutcome, SwitchStats};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use labels::*;

/// Reads `(open connections, refused since start)` of the SIP TCP transport.
pub(crate) type TcpProbe = Box<dyn Fn() -> (usize, u64) + Send + Sync>;

/// Every metric of the process; shared (`Arc`) by the shard, the webhook, the reload task
/// and the HTTP listener. All updates are atomic adds; only a scrape walks the registry.
pub(crate) struct Metrics {
    registry: Registry,
    calls_in_progress: Gauge,
    calls: Family<CallLabels, Counter>,
    refused: Family<ReasonLabels, Counter>,
    node_visits: Family<NodeExitLabels, Counter>,
    http_duration: Family<HttpLabels, Histogram>,
    http_cache: Family<CacheLabels, Counter>,
    transfers: Family<TransferLabels, Counter>,
    answer_to_transfer: Family<FlowNodeLabels, Histogram>,
    digits: Family<MethodLabels, Counter>,
    lockouts: Family<LockoutLabels, Counter>,
    rtp_received: Counter,
    rtp_sent: Counter,
    rtp_foreign_dropped: Counter,
    tcp_connections: Gauge,
    tcp_refused: Counter,
    tcp_refused_seen: std::sync::atomic::AtomicU64,
    tcp_probe: std::sync::OnceLock<TcpProbe>,
    draining: Gauge,
    reloads: Family<ResultLabels, Counter>,
    flow_info: Family<FlowVersionLabels, Gauge>,
    webhook_delivered: Counter,
    webhook_retries: Counter,
    webhook_dropped: Family<ReasonLabels, Counter>,
    webhook_queued: Gauge,
    /// The switch's counters as last seen, to add only what is new.
    seen: std::sync::Mutex<SwitchStats>,
    /// The shared state store's health (a collector reads it at each scrape).
    shared: std::sync::Arc<shared::SharedState>,
    /// The trunks' registrations as last reported (a collector reads them too).
    trunks: std::sync::Arc<trunks::TrunkBoard>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        // The process metrics keep their standard names (no `concierge_` prefix).
        let mut root = Registry::default();
        root.register_collector(Box::new(process::ProcessCollector));
        let shared = std::sync::Arc::new(shared::SharedState::default());
        root.register_collector(Box::new(shared::SharedCollector(shared.clone())));
        let trunks = std::sync::Arc::new(trunks::TrunkBoard::default());
        root.register_collector(Box::new(trunks::TrunkCollector(trunks.clone())));
        let registry = root.sub_registry_with_prefix("concierge");
        let calls_in_progress = Gauge::default();
        registry.register(
            "calls_in_progress",
            "Calls in progress (ringing, in the IVR, or being transferred)",
            calls_in_progress.clone(),
        );
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "calls",
            "Calls ended, by flow, outcome (transferred, hung_up, failed, refused) and the flow node they ended at",
            calls.clone(),
        );
        let refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "invites_refused",
            "New INVITEs answered 503, by reason (max_calls, draining, no_port, rate_limit, source_rate_limit, overloaded)",
            refused.clone(),
        );
        let node_visits = Family::<NodeExitLabels, Counter>::default();
        registry.register(
            "flow_node_visits",
            "Flow nodes visited by ended calls, by flow, node and the exit taken",
            node_visits.clone(),
        );
        let http_duration =
            Family::<HttpLabels, Histogram>::new_with_constructor(|| Histogram::new(HTTP_BUCKETS));
        registry.register_with_unit(
            "http_request_duration",
            "Flow HTTP requests, by flow, node and outcome",
            Unit::Seconds,
            http_duration.clone(),
        );
        let http_cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "http_cache",
            "Lookups of HTTP nodes with a cache, by flow, node and result (hit, miss, stale: the server failed and a kept answer stood in)",
            http_cache.clone(),
        );
        let transfers = Family::<TransferLabels, Counter>::default();
        registry.register(
            "transfers",
            "Transfers, by flow, transfer node, mode (refer, redirect, bridge) and result (succeeded, failed)",
            transfers.clone(),
        );
        let answer_to_transfer = Family::<FlowNodeLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(TRANSFER_BUCKETS)
        });
        registry.register_with_unit(
            "answer_to_transfer",
            "Time from answering a call to its flow starting a transfer, by flow and transfer node",
            Unit::Seconds,
            answer_to_transfer.clone(),
        );
        let digits = Family::<MethodLabels, Counter>::default();
        registry.register(
            "digits",
            "DTMF digits received, by method (rfc4733, info, inband)",
            digits.clone(),
        );
        let lockouts = Family::<LockoutLabels, Counter>::default();
        registry.register(
            "lockouts",
            "Calls whose code entry was locked, by lockout group and scope (number, source)",
            lockouts.clone(),
        );
        let rtp_received = Counter::default();
        registry.register(
            "rtp_packets_received",
            "RTP packets received on call ports",
            rtp_received.clone(),
        );
        let rtp_sent = Counter::default();
        registry.register(
            "rtp_packets_sent",
            "RTP packets sent from call ports",
            rtp_sent.clone(),
        );
        let rtp_foreign_dropped = Counter::default();
        registry.register(
            "rtp_foreign_dropped",
            "RTP packets dropped because they came from a source that was not the caller's or the bridged target's (counted as calls end)",
            rtp_foreign_dropped.clone(),
        );
        let tcp_connections = Gauge::default();
        registry.register(
            "sip_tcp_connections",
            "Open SIP TCP connections",
            tcp_connections.clone(),
        );
        let tcp_refused = Counter::default();
        registry.register(
            "sip_tcp_connections_refused",
            "SIP TCP connections refused at [tcp] max_connections or max_connections_per_source",
            tcp_refused.clone(),
        );
        let draining = Gauge::default();
        registry.register(
            "draining",
            "1 while shutting down (new calls get 503), else 0",
            draining.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "reloads",
            "Reloads asked for (SIGHUP, POST /-/reload), by result (applied, refused)",
            reloads.clone(),
        );
        let flow_info = Family::<FlowVersionLabels, Gauge>::default();
        registry.register(
            "flow_version_info",
            "1 for each flow new calls run, with its version (content hash)",
            flow_info.clone(),
        );
        let webhook_delivered = Counter::default();
        registry.register(
            "record_webhook_delivered",
            "Call records the webhook accepted (2xx)",
            webhook_delivered.clone(),
        );
        let webhook_retries = Counter::default();
        registry.register(
            "record_webhook_retries",
            "Webhook POSTs retried after a failure",
            webhook_retries.clone(),
        );
        let webhook_dropped = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "record_webhook_dropped",
            "Call records never delivered to the webhook, by reason (queue_full, attempts)",
            webhook_dropped.clone(),
        );
        let webhook_queued = Gauge::default();
        registry.register(
            "record_webhook_queued",
            "Call records waiting for the webhook",
            webhook_queued.clone(),
        );
        // Series that should read 0 rather than be absent before the first event.
        for reason in [
            "max_calls",
            "draining",
            "no_port",
            "rate_limit",
            "source_rate_limit",
            "overloaded",
        ] {
            drop(refused.get_or_create(&ReasonLabels { reason }));
        }
        for reason in ["queue_full", "attempts"] {
            drop(webhook_dropped.get_or_create(&ReasonLabels { reason }));
        }
        for result in ["applied", "refused"] {
            drop(reloads.get_or_create(&ResultLabels { result }));
        }
        Self {
            registry: root,
            calls_in_progress,
            calls,
            refused,
            node_visits,
            http_duration,
            http_cache,
            transfers,
            answer_to_transfer,
            digits,
            lockouts,
            rtp_received,
            rtp_sent,
            rtp_foreign_dropped,
            tcp_connections,
            tcp_refused,
            tcp_refused_seen: Default::default(),
            tcp_probe: Default::default(),
            draining,
            reloads,
            flow_info,
            webhook_delivered,
            webhook_retries,
            webhook_dropped,
            webhook_queued,
            seen: Default::default(),
            shared,
            trunks,
        }
    }

    /// Counts what an ended call did.
    pub(crate) fn observe_record(&self, r: &CallRecord) {
        let flow = r.flow.clone().unwrap_or_default();
        let last = r.path.last().map(|s| s.node.clone()).unwrap_or_default();
        self.calls
            .get_or_create(&CallLabels {
                flow: flow.clone(),
                outcome: r.outcome.as_str(),
                node: last.clone(),
            })
            .inc();
        for step in &r.path {
            self.node_visits
                .get_or_create(&NodeExitLabels {
                    flow: flow.clone(),
                    node: step.node.clone(),
                    exit: step.exit.clone().unwrap_or_default(),
                })
                .inc();
        }
        for h in &r.http {
            if let Some(result) = h.cache {
                self.http_cache
                    .get_or_create(&CacheLabels {
                        flow: flow.clone(),
                        node: h.node.clone(),
                        result: result.as_str(),
                    })
                    .inc();
            }
            // A cache hit made no request: it has no latency to count.
            if h.cache == Some(CacheUse::Hit) {
                continue;
            }
            self.http_duration
                .get_or_create(&HttpLabels {
                    flow: flow.clone(),
                    node: h.node.clone(),
                    outcome: http_outcome(&h.outcome),
                })
                .observe(h.latency_ms as f64 / 1000.0);
        }
        if let Some(t) = &r.transfer {
            // The node that transferred: the last one whose exit is a transfer's.
            let node = r
                .path
                .iter()
                .rev()
                .find(|s| matches!(s.exit.as_deref(), Some("transferred" | "failed")))
                .map_or(last, |s| s.node.clone());
            let result = if transfer_succeeded(&t.result) {
                "succeeded"
            } else {
                "failed"
            };
            self.transfers
                .get_or_create(&TransferLabels {
                    flow: flow.clone(),
                    node: node.clone(),
                    mode: t.mode.as_str(),
                    result,
                })
                .inc();
            if let (Some(answered), Some(started)) = (r.answered_ms, t.started_ms) {
                self.answer_to_transfer
                    .get_or_create(&FlowNodeLabels { flow, node })
                    .observe(started.saturating_sub(answered) as f64 / 1000.0);
            }
        }
        self.rtp_foreign_dropped.inc_by(r.rtp_foreign_dropped);
        for &(_, method) in &r.digits {
            self.digits.get_or_create(&MethodLabels { method }).inc();
        }
        if let Some(lock) = &r.lockout {
            // `<group>: number|source`, as the switch writes it.
            let (group, scope) = lock.split_once(": ").unwrap_or((lock, ""));
            let scope = match scope {
                "number" => "number",
                "source" => "source",
                _ => "other",
            };
            self.lockouts
                .get_or_create(&LockoutLabels {
                    group: group.to_owned(),
                    scope,
                })
                .inc();
        }
    }

    /// Brings the switch's counters and gauges up to date (cheap: called every loop turn).
    pub(crate) fn observe_switch(&self, calls: usize, draining: bool, stats: SwitchStats) {
        self.calls_in_progress.set(calls as i64);
        self.draining.set(i64::from(draining));
        let mut seen = self.seen.lock().expect("metrics lock poisoned");
        if *seen == stats {
            return;
        }
        let add = |reason, now: u64, before: u64| {
            if now > before {
                self.refused
                    .get_or_create(&ReasonLabels { reason })
                    .inc_by(now - before);
            }
        };
        add("max_calls", stats.refused_max_calls, seen.refused_max_calls);
        add("draining", stats.refused_draining, seen.refused_draining);
        add("no_port", stats.refused_no_port, seen.refused_no_port);
        add(
            "rate_limit",
            stats.refused_rate_limit,
            seen.refused_rate_limit,
        );
        add(
            "source_rate_limit",
            stats.refused_source_rate_limit,
            seen.refused_source_rate_limit,
        );
        add(
            "overloaded",
            stats.refused_overloaded,
            seen.refused_overloaded,
        );
        *seen = stats;
    }

    pub(crate) fn rtp_received_many(&self, n: u64) {
        self.rtp_received.inc_by(n);
    }

    pub(crate) fn rtp_sent_many(&self, n: u64) {
        self.rtp_sent.inc_by(n);
    }

    /// Where a scrape reads the SIP TCP connections from.
    pub(crate) fn set_tcp_probe(&self, probe: TcpProbe) {
        let _ = self.tcp_probe.set(probe);
    }

    /// Open SIP TCP connections, and how many were refused at the limits since start.
    fn set_tcp(&self, open: usize, refused_total: u64) {
        self.tcp_connections.set(open as i64);
        let before = self
            .tcp_refused_seen
            .swap(refused_total, std::sync::atomic::Ordering::Relaxed);
        if refused_total > before {
            self.tcp_refused.inc_by(refused_total - before);
        }
    }

    pub(crate) fn reload(&self, applied: bool) {
        let result = if applied { "applied" } else { "refused" };
        self.reloads.get_or_create(&ResultLabels { result }).inc();
    }

    /// The flows new calls run from now on, `(name, version)`.
    pub(crate) fn set_flows<'a>(&self, flows: impl IntoIterator<Item = (&'a str, &'a str)>) {
        self.flow_info.clear();
        for (flow, version) in flows {
            self.flow_info
                .get_or_create(&FlowVersionLabels {
                    flow: flow.to_owned(),
                    version: version.to_owned(),
                })
                .set(1);
        }
    }

    pub(crate) fn webhook_delivered(&self) {
        self.webhook_delivered.inc();
    }

    pub(crate) fn webhook_retried(&self) {
        self.webhook_retries.inc();
    }

    /// Counts a record the webhook will never get.
    pub(crate) fn webhook_dropped(&self, reason: &'static str) {
        self.webhook_dropped
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub(crate) fn set_webhook_queued(&self, n: usize) {
        self.webhook_queued.set(n as i64);
    }

    /// The exposition: OpenMetrics when the scraper asks for it (Prometheus does), else
    /// the classic Prometheus text format (curl, promtool).
    pub(crate) fn render(&self, openmetrics: bool) -> String {
        if let Some(probe) = self.tcp_probe.get() {
            let (open, refused) = probe();
            self.set_tcp(open, refused);
        }
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        if openmetrics {
            out
        } else {
            text::to_prometheus_text(&out)
        }
    }
}

/// An HTTP step's outcome as a bounded label: never the value the API returned or an
/// error's text.
fn http_outcome(outcome: &HttpStepOutcome) -> &'static str {
    match outcome {
        HttpStepOutcome::Value(_) | HttpStepOutcome::SecretValue | HttpStepOutcome::Saved(_) => {
            "success"
        }
        HttpStepOutcome::BadBody(_) => "bad_body",
        HttpStepOutcome::Status(400..=499) => "http_4xx",
        HttpStepOutcome::Status(500..=599) => "http_5xx",
        HttpStepOutcome::Status(_) => "http_other",
        HttpStepOutcome::Timeout => "timeout",
        HttpStepOutcome::Connect(_) => "connect_error",
        HttpStepOutcome::Other(_) => "error",
    }
}
