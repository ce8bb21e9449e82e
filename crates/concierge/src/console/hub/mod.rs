//! The console's state: what the pages show, fed by the shard as calls happen.
//!
//! Two feeds, both non-blocking for the shard (a short lock, no IO, no await): every call
//! record as the driver writes it ([`Hub::record`], `records.rs`: the recent calls, the
//! counts of today, the card of a desk a transferred call reached), and the switch's
//! per-call events ([`Hub::event`], `calls.rs`: the calls in progress at their current
//! node — "now there" — and the desk's card the moment a transfer goes out, completed by
//! its outcome, `desks.rs`).
//!
//! Pages never wait on the shard and the shard never waits on a page: every change bumps a
//! generation number on a `watch` channel, and each live page wakes on it, waits a moment
//! to coalesce what else changes, and renders the state as it then is. A slow or stalled
//! page therefore has no queue to fill — it skips to the latest state when it reads again.
//!
//! Everything kept is bounded: [`MAX_RECORDS`] recent calls, [`MAX_DESKS`] desks' cards,
//! [`MAX_LIVE`] calls in progress (and none the switch no longer has: [`Hub::resync`]),
//! [`MAX_FLOW_VERSIONS`] flow versions.

mod calls;
mod desks;
mod records;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use concierge_b2bua::Program;
use concierge_flow::Flow;
use tokio::sync::watch;

pub(crate) use calls::LiveCall;
pub(crate) use records::{Filter, Row, Today};

use super::card::Card;

/// Recent call records kept (the newest).
pub(crate) const MAX_RECORDS: usize = 500;
/// Desks whose last card is kept (the least recently updated goes first).
pub(crate) const MAX_DESKS: usize = 1_000;
/// Calls in progress followed; beyond, new calls are not listed.
pub(crate) const MAX_LIVE: usize = 20_000;
/// Flow versions kept to read old calls' records by (a reload adds versions).
pub(crate) const MAX_FLOW_VERSIONS: usize = 32;

/// The console's shared state; see the module doc.
pub(crate) struct Hub {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    /// One reading of both clocks, to show events' `Instant`s as wall time.
    epoch: (Instant, SystemTime),
    /// When the calls in progress are next checked against the switch (ms after
    /// `epoch`): read without the lock, so the shard's check costs a load until then.
    resync_at_ms: AtomicU64,
}

/// One line of a status section (`Trunks`, `Shared state`): a name and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusLine {
    pub(crate) name: String,
    pub(crate) state: String,
    /// Whether the state is a good one (shown green) or not (red).
    pub(crate) ok: bool,
}

/// What the console page shows, copied out of the hub for one render.
pub(crate) struct ConsoleView {
    pub(crate) live: Vec<LiveCall>,
    pub(crate) live_total: usize,
    pub(crate) rows: Vec<Row>,
    pub(crate) today: Today,
    /// `(flow, node)` → calls there now.
    pub(crate) here: HashMap<(String, String), u64>,
    /// The flows new calls run: `(route, flow)`, the default flow first (route `""`).
    pub(crate) flows: Vec<(String, Arc<Flow>)>,
    pub(crate) status: BTreeMap<&'static str, Vec<StatusLine>>,
}

#[derive(Default)]
struct State {
    generation: u64,
    /// `(name, version)` → flow, oldest first.
    versions: VecDeque<((String, String), Arc<Flow>)>,
    /// What new calls run, by route (`""`: the default flow).
    current: Vec<(String, Arc<Flow>)>,
    records: VecDeque<Row>,
    /// Desk → (its last card, when it was set: the generation).
    desks: HashMap<String, (Arc<Card>, u64)>,
    /// The card set last, whatever the desk (`/widget` without `?desk=`).
    latest: Option<(Arc<Card>, u64)>,
    /// Recent transferred calls' cards by Call-ID (for token links), oldest first.
    cards: VecDeque<Arc<Card>>,
    today: Today,
    /// Calls in progress by Call-ID.
    live: HashMap<String, LiveCall>,
    /// `(flow, node)` → calls there now.
    here: HashMap<(String, String), u64>,
    status: BTreeMap<&'static str, Vec<StatusLine>>,
}

impl Hub {
    pub(crate) fn new() -> Arc<Self> {
        let (changed, _) = watch::channel(0);
        let mut status = BTreeMap::new();
        // The sections other parts of the server fill in as they come to exist.
        status.insert("Trunks", Vec::new());
        status.insert("Shared state", Vec::new());
        Arc::new(Self {
            state: Mutex::new(State {
                status,
                ..State::default()
            }),
            changed,
            epoch: (Instant::now(), SystemTime::now()),
            resync_at_ms: AtomicU64::new(0),
        })
    }

    /// A receiver that wakes whenever anything changes.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere ends the process (fatal.rs); a poisoned lock's data is whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self, mut state: MutexGuard<'_, State>) {
        state.generation += 1;
        let generation = state.generation;
        drop(state);
        self.changed.send_replace(generation);
    }

    /// The flows a program runs: new calls run them, and old calls' records are read
    /// against the version they ran. Called at start-up and after each applied reload.
    pub(crate) fn install(&self, program: &Program) {
        let mut state = self.lock();
        let mut current: Vec<(String, Arc<Flow>)> = program
            .default_flow
            .iter()
            .map(|f| (String::new(), f.clone()))
            .collect();
        let mut routes: Vec<_> = program.routes.iter().collect();
        routes.sort_by(|a, b| a.0.cmp(b.0));
        current.extend(routes.into_iter().map(|(r, f)| (r.clone(), f.clone())));
        for (_, flow) in &current {
            let key = (flow.name.clone(), flow.version.clone());
            if !state.versions.iter().any(|(k, _)| *k == key) {
                if state.versions.len() >= MAX_FLOW_VERSIONS {
                    state.versions.pop_front();
                }
                state.versions.push_back((key, flow.clone()));
            }
        }
        state.current = current;
        self.bump(state);
    }

    /// Sets the lines of a status section (`Trunks`, `Shared state`, or a new one): the
    /// place the parts of the server that have such a state report it to the console.
    pub(crate) fn set_status(&self, section: &'static str, lines: Vec<StatusLine>) {
        let mut state = self.lock();
        state.status.insert(section, lines);
        self.bump(state);
    }

    /// What the console page shows, with recent calls through `filter` (newest first).
    pub(crate) fn console_view(&self, filter: &Filter, rows: usize, live: usize) -> ConsoleView {
        let state = self.lock();
        let mut calls: Vec<LiveCall> = state.live.values().cloned().collect();
        calls.sort_by_key(|c| c.arrived);
        calls.truncate(live);
        let today_now = wall_now_ms() / records::DAY_MS;
        ConsoleView {
            live_total: state.live.len(),
            live: calls,
            rows: state
                .records
                .iter()
                .rev()
                .filter(|r| filter.admits(r))
                .take(rows)
                .cloned()
                .collect(),
            today: if state.today.day == today_now {
                state.today.clone()
            } else {
                Today::default()
            },
            here: state.here.clone(),
            flows: state.current.clone(),
            status: state.status.clone(),
        }
    }

    /// Wall-clock ms of an event's `Instant`.
    fn wall_ms(&self, at: Instant) -> u64 {
        let (instant, system) = self.epoch;
        let wall = if at >= instant {
            system + (at - instant)
        } else {
            system - (instant - at)
        };
        wall.duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

fn wall_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
