//! The trunks' registrations as Prometheus sees them (issue 23), one series set per
//! `[[trunks]]` name (a name from the configuration: the label stays bounded):
//!
//! - `concierge_trunk_state{trunk, state}`: 1 for the state the registration is in, 0 for
//!   the others (`starting`, `registered`, `backing_off`, `failed`, `unregistering`,
//!   `unregistered`) — alert on `concierge_trunk_state{state="registered"} == 0`;
//! - `concierge_trunk_registration_expires_seconds{trunk}`: how long the registrar holds
//!   our binding from the scrape on (only while registered);
//! - `concierge_trunk_last_response_status{trunk}`: the status code of the registrar's last
//!   final answer to a REGISTER (absent before the first).
//!
//! A collector reads the statuses the switch last reported at each scrape, so "expires
//! in" is as of the scrape. Nothing here can hold a credential: a [`TrunkStatus`] has none.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use concierge_b2bua::TrunkStatus;
use concierge_sip::registration::StatusState;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::Metrics;
use crate::trunk_status::{state_name, STATES};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrunkLabels {
    trunk: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrunkStateLabels {
    trunk: String,
    state: &'static str,
}

/// The statuses the switch last reported (written by the shard, read at each scrape and
/// by `GET /-/status`).
#[derive(Debug, Default)]
pub(super) struct TrunkBoard(Mutex<Vec<TrunkStatus>>);

impl TrunkBoard {
    fn lock(&self) -> MutexGuard<'_, Vec<TrunkStatus>> {
        // A panic while holding it ends the process (fatal.rs): never poisoned in use.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug)]
pub(super) struct TrunkCollector(pub(super) Arc<TrunkBoard>);

impl Collector for TrunkCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let trunks = self.0.lock().clone();
        if trunks.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        let mut m = encoder.encode_descriptor(
            "concierge_trunk_state",
            "Each trunk's registration: 1 for the state it is in (starting, registered, backing_off, failed, unregistering, unregistered), 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        for t in &trunks {
            let current = state_name(&t.status.state);
            for state in STATES {
                let labels = TrunkStateLabels {
                    trunk: t.name.clone(),
                    state,
                };
                ConstGauge::new(i64::from(state == current)).encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = encoder.encode_descriptor(
            "concierge_trunk_registration_expires_seconds",
            "Seconds until the registrar's binding of a registered trunk runs out unless refreshed",
            None,
            MetricType::Gauge,
        )?;
        for t in &trunks {
            if let StatusState::Registered { expires_at } = t.status.state {
                let left = expires_at.saturating_duration_since(now).as_secs() as i64;
                let labels = TrunkLabels {
                    trunk: t.name.clone(),
                };
                ConstGauge::new(left).encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = encoder.encode_descriptor(
            "concierge_trunk_last_response_status",
            "The status code of the registrar's last final answer to a trunk's REGISTER",
            None,
            MetricType::Gauge,
        )?;
        for t in &trunks {
            if let Some(code) = t.status.last_response {
                let labels = TrunkLabels {
                    trunk: t.name.clone(),
                };
                ConstGauge::new(i64::from(code.0)).encode(m.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

impl Metrics {
    /// The trunks' statuses as the switch reported them last (`Output::Trunks`).
    pub(crate) fn set_trunks(&self, trunks: Vec<TrunkStatus>) {
        *self.trunks.lock() = trunks;
    }

    /// `concierge status`'s text: each trunk's state as of now.
    pub(crate) fn trunk_report(&self) -> String {
        crate::trunk_status::report(&self.trunks.lock(), Instant::now())
    }
}
