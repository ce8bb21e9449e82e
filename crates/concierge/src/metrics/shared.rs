//! The shared store (`[shared]`) as the operator sees it: `concierge_shared_up` (1 while
//! it answers, 0 during an outage) and `concierge_shared_errors_total` by operation. Both
//! series appear only once [`Metrics::shared_configured`] was called, so an instance
//! without `[shared]` shows no 0 that an alert would take for an outage.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Metrics;

/// No labels at all: a family so that the series exists only once it is set.
type Unlabelled = Vec<(&'static str, &'static str)>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct OpLabels {
    /// `connect`, `lockout`, `lookup` or `load`.
    op: &'static str,
}

pub(super) struct SharedMetrics {
    up: Family<Unlabelled, Gauge>,
    errors: Family<OpLabels, Counter>,
}

impl SharedMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let up = Family::<Unlabelled, Gauge>::default();
        registry.register(
            "shared_up",
            "1 while the shared state store ([shared]) answers, 0 while it does not (calls then run on this instance's own state); absent without [shared]",
            up.clone(),
        );
        let errors = Family::<OpLabels, Counter>::default();
        registry.register(
            "shared_errors",
            "Operations on the shared state store that failed or timed out, by operation (connect, lockout, lookup, load)",
            errors.clone(),
        );
        Self { up, errors }
    }
}

impl Metrics {
    /// The store is configured: its series start at 0 (down until the first answer).
    pub(crate) fn shared_configured(&self, ops: &[&'static str]) {
        self.shared.up.get_or_create(&Vec::new()).set(0);
        for &op in ops {
            drop(self.shared.errors.get_or_create(&OpLabels { op }));
        }
    }

    pub(crate) fn set_shared_up(&self, up: bool) {
        self.shared.up.get_or_create(&Vec::new()).set(i64::from(up));
    }

    /// One failed or timed-out operation.
    pub(crate) fn shared_error(&self, op: &'static str) {
        self.shared.errors.get_or_create(&OpLabels { op }).inc();
    }
}
