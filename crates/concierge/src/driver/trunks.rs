//! What the switch reports about its trunks (`Output::Trunks`) goes to the operator's
//! three views: the metrics (and `concierge status`, which reads the same board) and the
//! live console's Trunks section. Logging is the switch's own (one line per transition).

use concierge_b2bua::TrunkStatus;

use super::shard::Shard;
use crate::console::hub::StatusLine;
use crate::trunk_status::{describe_at, is_up};

impl Shard {
    /// The trunks' statuses changed: every view gets them.
    pub(super) fn report_trunks(&self, trunks: Vec<TrunkStatus>) {
        if let Some(console) = &self.records.console {
            let now = std::time::Instant::now();
            let unix_now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let lines = trunks
                .iter()
                .map(|t| StatusLine {
                    name: t.name.clone(),
                    // The page shows it until the next change: clock times, not "in N s".
                    state: describe_at(t, now, unix_now),
                    ok: is_up(&t.status.state),
                })
                .collect();
            console.set_status("Trunks", lines);
        }
        self.metrics.set_trunks(trunks);
    }
}
