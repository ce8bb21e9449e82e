//! The live console's "Shared state" section: whether the store answers and what the
//! other instances carry, as each heartbeat finds them. The section changes only when
//! what it says changes, so a steady cluster does not wake every console page once a
//! heartbeat.

use std::sync::Arc;

use concierge_b2bua::PeerLoad;

use crate::console::hub::StatusLine;
use crate::console::Hub;

/// The console section's name.
const SECTION: &str = "Shared state";

/// What the console was last told, and where to tell it.
pub(super) struct ConsoleStatus {
    hub: Arc<Hub>,
    /// `scheme://host:port/db`, never a password.
    location: String,
    shown: Option<Vec<StatusLine>>,
}

impl ConsoleStatus {
    pub(super) fn new(hub: Arc<Hub>, location: String) -> Self {
        Self {
            hub,
            location,
            shown: None,
        }
    }

    /// One heartbeat's outcome: the store answered (with the others' load) or not.
    pub(super) fn report(&mut self, beat: Option<PeerLoad>) {
        let lines = lines(&self.location, beat);
        if self.shown.as_ref() == Some(&lines) {
            return;
        }
        self.hub.set_status(SECTION, lines.clone());
        self.shown = Some(lines);
    }
}

/// The section's lines for one heartbeat's outcome.
fn lines(location: &str, beat: Option<PeerLoad>) -> Vec<StatusLine> {
    let line = |name: &str, state: String, ok| StatusLine {
        name: name.to_owned(),
        state,
        ok,
    };
    match beat {
        Some(peers) => vec![
            line("store", format!("{location}: up"), true),
            line(
                "other instances",
                format!("{} ({} calls in progress)", peers.instances, peers.calls),
                true,
            ),
            line(
                "shared",
                "lockout, lookup cache, call limits".to_owned(),
                true,
            ),
        ],
        None => vec![
            line(
                "store",
                format!("{location}: unreachable; this instance counts, caches and limits alone"),
                false,
            ),
            line("other instances", "unknown".to_owned(), false),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_says_up_with_the_peers_or_down_and_changes_only_when_that_does() {
        let hub = Hub::new();
        let mut status = ConsoleStatus::new(hub.clone(), "redis://127.0.0.1:6379/0".into());
        let peers = PeerLoad {
            calls: 25,
            invite_rate: 3,
            instances: 1,
        };
        status.report(Some(peers));
        let view = |hub: &Hub| {
            hub.console_view(&Default::default(), 1, 1).status[SECTION]
                .iter()
                .map(|l| format!("{}: {} ({})", l.name, l.state, l.ok))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            view(&hub),
            [
                "store: redis://127.0.0.1:6379/0: up (true)",
                "other instances: 1 (25 calls in progress) (true)",
                "shared: lockout, lookup cache, call limits (true)",
            ]
        );
        let mut changes = hub.subscribe();
        changes.mark_unchanged();
        status.report(Some(peers));
        assert!(!changes.has_changed().expect("hub alive"), "nothing new");
        status.report(None);
        assert!(changes.has_changed().expect("hub alive"));
        assert_eq!(
            view(&hub)[0],
            "store: redis://127.0.0.1:6379/0: unreachable; this instance counts, caches and limits alone (false)"
        );
    }
}
