//! The record feed: each call's record, as the driver writes it, joins the recent calls
//! and today's counts, and a transfer that reached a desk becomes (or completes) that
//! desk's card.

use std::collections::{BTreeMap, HashMap};

use concierge_b2bua::{CallRecord, Outcome};
use concierge_flow::Recognition;

use super::{Hub, MAX_RECORDS};
use crate::console::card::{self, Card};

pub(super) const DAY_MS: u64 = 86_400_000;

/// A call record as the recent-calls table shows it.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) call_id: String,
    pub(crate) ended_ms: u64,
    /// The number, or `None` when withheld.
    pub(crate) caller: Option<String>,
    pub(crate) flow: String,
    pub(crate) outcome: &'static str,
    pub(crate) recognised: Option<Recognition>,
    /// The desk a successful transfer reached.
    pub(crate) desk: Option<String>,
    pub(crate) duration_ms: u64,
    pub(crate) path: String,
}

/// What the recent-calls table is filtered by (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub(crate) struct Filter {
    pub(crate) outcome: Option<String>,
    /// `yes` or `no`.
    pub(crate) vip: Option<String>,
    /// The desk a call was transferred to.
    pub(crate) to: Option<String>,
}

impl Filter {
    pub(super) fn admits(&self, row: &Row) -> bool {
        fn given(v: &Option<String>) -> Option<&str> {
            v.as_deref().filter(|s| !s.is_empty())
        }
        given(&self.outcome).is_none_or(|o| o == row.outcome)
            && given(&self.vip).is_none_or(|v| (v == "yes") == row.recognised.is_some())
            && given(&self.to).is_none_or(|t| row.desk.as_deref() == Some(t))
    }
}

/// Counts of one day (UTC): calls by outcome, and by node the calls that visited it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Today {
    /// Days since the Unix epoch.
    pub(super) day: u64,
    pub(crate) calls: u64,
    pub(crate) outcomes: BTreeMap<&'static str, u64>,
    /// `(flow, node)` → calls whose path visited it (once per call).
    pub(crate) nodes: HashMap<(String, String), u64>,
}

impl Today {
    /// Counts `record` if it ended today; a record of a later day starts a new one.
    fn count(&mut self, record: &CallRecord, flow: &str) {
        let day = record.ended_ms / DAY_MS;
        if day > self.day {
            *self = Self {
                day,
                ..Self::default()
            };
        }
        if day != self.day {
            return;
        }
        self.calls += 1;
        *self.outcomes.entry(record.outcome.as_str()).or_default() += 1;
        let mut seen: Vec<&str> = Vec::new();
        let transferred = (record.outcome == Outcome::Transferred).then_some("transferred");
        let visited = record
            .path
            .iter()
            .map(|s| s.node.as_str())
            .chain(transferred);
        for node in visited {
            if !seen.contains(&node) {
                seen.push(node);
                let key = (flow.to_owned(), node.to_owned());
                *self.nodes.entry(key).or_default() += 1;
            }
        }
    }
}

impl Hub {
    /// A call ended: its record joins the recent calls and today's counts, and a transfer
    /// to a desk becomes that desk's card (completing the one its transfer event made).
    pub(crate) fn record(&self, record: &CallRecord) {
        let mut state = self.lock();
        let flow = match (&record.flow, &record.flow_version) {
            (Some(name), Some(version)) => state
                .versions
                .iter()
                .find(|((n, v), _)| n == name && v == version)
                .map(|(_, f)| f.clone()),
            _ => None,
        };
        let card = Card::from_record(record, flow.as_deref());
        let flow_name = record.flow.clone().unwrap_or_default();
        state.today.count(record, &flow_name);
        if state.records.len() >= MAX_RECORDS {
            state.records.pop_front();
        }
        let withheld = record.private || record.caller.is_empty();
        state.records.push_back(Row {
            call_id: card::bounded(&record.call_id),
            ended_ms: record.ended_ms,
            caller: (!withheld).then(|| card::bounded(&record.caller)),
            flow: flow_name,
            outcome: record.outcome.as_str(),
            recognised: card.as_ref().and_then(|c| c.recognised),
            desk: card.as_ref().map(|c| c.desk.clone()),
            duration_ms: record.ended_ms.saturating_sub(record.arrived_ms),
            path: record
                .path
                .iter()
                .take(32)
                .map(|s| card::step(&s.node, s.exit.as_deref()))
                .collect::<Vec<_>>()
                .join(" › "),
        });
        if let Some(card) = card {
            state.set_card(card);
        }
        self.bump(state);
    }
}
