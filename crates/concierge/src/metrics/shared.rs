//! The shared store (`[shared]`) as the operator sees it: `concierge_shared_up` (1 while
//! it answers, 0 during an outage), `concierge_shared_errors_total` by operation and
//! `concierge_shared_peer_calls` (the other instances' calls, as last heard). A
//! collector rather than registered metrics, so that all are absent until
//! [`Metrics::shared_configured`]: an instance without `[shared]` shows no 0 that an
//! alert would take for an outage.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::Metrics;

/// The operations counted apart, as `op` labels.
const OPS: [&str; 4] = ["connect", "lockout", "lookup", "load"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

/// Written by the store's health, read at each scrape.
#[derive(Debug, Default)]
pub(super) struct SharedState {
    configured: AtomicBool,
    up: AtomicBool,
    errors: [AtomicU64; OPS.len()],
    peer_calls: AtomicU64,
}

#[derive(Debug)]
pub(super) struct SharedCollector(pub(super) Arc<SharedState>);

impl Collector for SharedCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        if !s.configured.load(Ordering::Relaxed) {
            return Ok(());
        }
        let up = ConstGauge::new(i64::from(s.up.load(Ordering::Relaxed)));
        let m = encoder.encode_descriptor(
            "concierge_shared_up",
            "1 while the shared state store ([shared]) answers, 0 while it does not (calls then run on this instance's own state)",
            None,
            up.metric_type(),
        )?;
        up.encode(m)?;
        let peers = ConstGauge::new(s.peer_calls.load(Ordering::Relaxed) as i64);
        let m = encoder.encode_descriptor(
            "concierge_shared_peer_calls",
            "Calls in progress on the other instances sharing state, as last heard (they count against max_calls here; 0 while the store is unreachable)",
            None,
            peers.metric_type(),
        )?;
        peers.encode(m)?;
        let mut m = encoder.encode_descriptor(
            "concierge_shared_errors",
            "Operations on the shared state store that failed or timed out, by operation (connect, lockout, lookup, load)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (op, n) in OPS.iter().zip(&s.errors) {
            let labels = OpLabels { op };
            ConstCounter::new(n.load(Ordering::Relaxed)).encode(m.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Metrics {
    /// The store is configured: its series appear, down until the first answer.
    pub(crate) fn shared_configured(&self) {
        self.shared.configured.store(true, Ordering::Relaxed);
    }

    pub(crate) fn set_shared_up(&self, up: bool) {
        self.shared.up.store(up, Ordering::Relaxed);
    }

    /// The other instances' calls, as the last heartbeat heard them.
    pub(crate) fn set_shared_peer_calls(&self, calls: u64) {
        self.shared.peer_calls.store(calls, Ordering::Relaxed);
    }

    /// One failed or timed-out operation (`connect`, `lockout`, `lookup` or `load`).
    pub(crate) fn shared_error(&self, op: &'static str) {
        if let Some(i) = OPS.iter().position(|&o| o == op) {
            self.shared.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}
