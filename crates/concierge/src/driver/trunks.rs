//! What the switch reports about its trunks (`Output::Trunks`) goes to the operator's
//! three views: the metrics (and `concierge status`, which reads the same board) and the
//! live console's Trunks section. Logging is the switch's own (one line per transition).

use concierge_b2bua::TrunkStatus;

use super::Shard;
use crate::console::hub::StatusLine;
use crate::trunk_status::{describe, is_up};

impl Shard {
    /// The trunks' statuses changed: every view gets them.
    pub(super) fn report_trunks(&self, trunks: Vec<TrunkStatus>) {
        if let Some(console) = &self.records.console {
            let now = std::time::Instant::now();
            let lines = trunks
                .iter()
                .map(|t| StatusLine {
                    name: t.name.clone(),
                    state: describe(t, now),
                    ok: is_up(&t.status.state),
                })
                .collect();
            console.set_status("Trunks", lines);
        }
        self.metrics.set_trunks(trunks);
    }
}
