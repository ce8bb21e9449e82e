//! Whether the store answers, as the operations find it: one WARN when an outage starts
//! (not one per call), one INFO when it ends, the `concierge_shared_up` gauge and the
//! errors counter. A store that flaps does not flood the log: a new outage within
//! [`WARN_EVERY`] of the last warning is logged at DEBUG.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::{Op, SharedError};
use crate::metrics::Metrics;

/// At most one outage warning this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

pub(super) struct Health {
    /// `scheme://host:port/db`, never a password.
    location: String,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    up: bool,
    /// When the current outage began (`None` while up, or before the first attempt).
    down_since: Option<Instant>,
    /// Failures since it began.
    errors: u64,
    /// Whether this outage was warned about (then its end is logged at INFO).
    warned: bool,
    last_warning: Option<Instant>,
    /// Whether the store ever answered.
    ever_up: bool,
}

impl Health {
    pub(super) fn new(location: String, metrics: Arc<Metrics>) -> Self {
        metrics.shared_configured();
        Self {
            location,
            metrics,
            state: Mutex::default(),
        }
    }

    /// An operation got its answer.
    pub(super) fn ok(&self) {
        let mut s = self.state.lock().expect("health lock poisoned");
        if s.up {
            return;
        }
        self.metrics.set_shared_up(true);
        let down_for = s.down_since.map(|t| t.elapsed());
        if !s.ever_up {
            info!(store = %self.location, "shared state: connected");
        } else if s.warned {
            info!(
                store = %self.location,
                down_s = down_for.map_or(0, |d| d.as_secs()),
                errors = s.errors,
                "shared state reachable again: lockout, lookups and call limits are shared again"
            );
        } else {
            debug!(store = %self.location, errors = s.errors, "shared state answers again (an outage not warned about)");
        }
        *s = State {
            up: true,
            ever_up: true,
            last_warning: s.last_warning,
            ..State::default()
        };
    }

    /// An operation failed or timed out.
    pub(super) fn failed(&self, op: Op, e: &SharedError) {
        self.metrics.shared_error(op.as_str());
        let mut s = self.state.lock().expect("health lock poisoned");
        s.errors += 1;
        if s.down_since.is_some() {
            debug!(op = op.as_str(), error = %e, "shared state: still unreachable");
            return;
        }
        let now = Instant::now();
        s.up = false;
        s.down_since = Some(now);
        self.metrics.set_shared_up(false);
        if s.last_warning.is_some_and(|t| now < t + WARN_EVERY) {
            debug!(op = op.as_str(), error = %e, "shared state lost again (warned less than a minute ago)");
            return;
        }
        s.warned = true;
        s.last_warning = Some(now);
        warn!(
            store = %self.location,
            op = op.as_str(),
            error = %concierge_sip::Untrusted(&e.to_string()),
            "shared state unreachable: calls go on with this instance's own lockout counts, lookup cache and limits until it is back"
        );
    }

    /// Where the store is, as the log names it (never a password).
    pub(super) fn location(&self) -> &str {
        &self.location
    }

    #[cfg(test)]
    pub(super) fn is_up(&self) -> bool {
        self.state.lock().expect("health lock poisoned").up
    }
}
