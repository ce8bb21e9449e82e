//! The event feed: the calls in progress, each at its current node, and the desk's card
//! the moment a transfer goes out, completed when it settles or the call ends.
//!
//! The switch tells every call it admits from its arrival to its end, so a call's entry
//! normally leaves at its `Ended`. One that never comes (a driver that lost its switch,
//! a bug) must not stay listed for ever: [`Hub::resync`] drops every call the switch no
//! longer has.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use concierge_b2bua::{CallEvent, CallEventKind};
use concierge_sip::wire::Transport;

use super::{Hub, State, MAX_LIVE};
use crate::console::card::{self, Card};

/// Nodes kept of a call in progress's path.
const MAX_LIVE_PATH: usize = 64;
/// How often the calls in progress are checked against the switch.
const RESYNC_EVERY: Duration = Duration::from_secs(10);

/// A call in progress, as events describe it.
#[derive(Debug, Clone)]
pub(crate) struct LiveCall {
    pub(crate) call_id: String,
    pub(crate) caller: Option<String>,
    pub(crate) verified: bool,
    pub(crate) flow: Option<String>,
    pub(crate) node: Option<String>,
    pub(crate) arrived: Instant,
    pub(crate) transport: Transport,
    pub(crate) srtp: bool,
    /// The desk of the transfer under way, whose card its outcome completes.
    desk: Option<String>,
    path: Vec<String>,
}

impl LiveCall {
    /// Its path so far, for the card a transfer event makes.
    pub(crate) fn path(&self) -> &[String] {
        &self.path
    }
}

impl Hub {
    /// Something happened to a call in progress (the switch's `Output::Event`).
    pub(crate) fn event(&self, event: &CallEvent) {
        let mut state = self.lock();
        let id = event.call_id.as_str();
        match &event.kind {
            CallEventKind::Arrived(a) => {
                if state.live.len() >= MAX_LIVE {
                    return;
                }
                let withheld = a.private || a.caller.is_empty();
                let call = LiveCall {
                    call_id: card::bounded(id),
                    caller: (!withheld).then(|| card::bounded(&a.caller)),
                    verified: a.verified,
                    flow: a.flow.clone(),
                    node: None,
                    arrived: event.at,
                    transport: a.transport,
                    srtp: a.srtp,
                    desk: None,
                    path: Vec::new(),
                };
                if let Some(old) = state.live.insert(id.to_owned(), call) {
                    state.leave(&old.flow, &old.node);
                }
            }
            CallEventKind::NodeEntered { flow, node } => {
                let Some(call) = state.live.get_mut(id) else {
                    return;
                };
                let left = (
                    call.flow.replace(flow.clone()),
                    call.node.replace(node.clone()),
                );
                if call.path.len() < MAX_LIVE_PATH {
                    call.path.push(node.clone());
                }
                state.leave(&left.0, &left.1);
                *state.here.entry((flow.clone(), node.clone())).or_default() += 1;
            }
            CallEventKind::Transferred(t) => {
                let Some(call) = state.live.get_mut(id) else {
                    return;
                };
                call.desk = t.desk.clone();
                let Some(desk) = t.desk.clone() else {
                    return;
                };
                let waited = event.at.saturating_duration_since(call.arrived);
                let card = Card::from_event(call, desk, t, waited, self.wall_ms(event.at));
                state.set_card(card);
            }
            CallEventKind::TransferEnded(result) => {
                let Some(desk) = state.live.get_mut(id).and_then(|c| c.desk.take()) else {
                    return;
                };
                state.settle_card(&desk, id, &result.to_string());
            }
            CallEventKind::Ended { outcome } => {
                let Some(call) = state.live.remove(id) else {
                    return;
                };
                state.leave(&call.flow, &call.node);
                if let Some(desk) = &call.desk {
                    let why = format!("the call ended first ({})", outcome.as_str());
                    state.settle_card(desk, id, &why);
                }
            }
        }
        self.bump(state);
    }

    /// Drops the calls in progress the switch no longer has (`in_switch` says whether it
    /// has a Call-ID), at most every [`RESYNC_EVERY`]. The shard calls it between two
    /// drains, when every event of a call that left has been handed in: a call listed
    /// here and gone there lost its `Ended`. Until it is due this costs one atomic load.
    pub(crate) fn resync(&self, in_switch: impl Fn(&str) -> bool) {
        let now_ms = self.epoch.0.elapsed().as_millis() as u64;
        if now_ms < self.resync_at_ms.load(Ordering::Relaxed) {
            return;
        }
        let next = now_ms + RESYNC_EVERY.as_millis() as u64;
        self.resync_at_ms.store(next, Ordering::Relaxed);
        let mut state = self.lock();
        let gone: Vec<String> = state
            .live
            .keys()
            .filter(|id| !in_switch(id))
            .cloned()
            .collect();
        if gone.is_empty() {
            return;
        }
        tracing::warn!(
            calls = gone.len(),
            "live console: calls the switch no longer has were still listed; dropped"
        );
        for id in gone {
            if let Some(call) = state.live.remove(&id) {
                state.leave(&call.flow, &call.node);
            }
        }
        self.bump(state);
    }
}

impl State {
    /// A call left `node` of `flow` (for another node, or the end).
    fn leave(&mut self, flow: &Option<String>, node: &Option<String>) {
        let (Some(flow), Some(node)) = (flow, node) else {
            return;
        };
        let key = (flow.clone(), node.clone());
        if let Some(n) = self.here.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.here.remove(&key);
            }
        }
    }
}
