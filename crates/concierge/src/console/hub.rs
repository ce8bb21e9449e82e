//! The console's state: what the pages show, fed by the shard as calls happen.
//!
//! Two feeds, both non-blocking for the shard (a short lock, no IO, no await): every call
//! record as the driver writes it ([`Hub::record`]), and the switch's per-call events
//! ([`Hub::event`]; phase 2: the switch does not emit them yet). Records give the recent
//! calls, the counts of today and a card for each desk a transferred call reached; events
//! add the calls in progress at their current node ("now there") and the card the moment
//! a transfer starts.
//!
//! Pages never wait on the shard and the shard never waits on a page: every change bumps a
//! generation number on a `watch` channel, and each live page wakes on it, waits a moment
//! to coalesce what else changes, and renders the state as it then is. A slow or stalled
//! page therefore has no queue to fill — it skips to the latest state when it reads again.
//!
//! Everything kept is bounded: [`MAX_RECORDS`] recent calls, [`MAX_DESKS`] desks' cards,
//! [`MAX_LIVE`] calls in progress, [`MAX_FLOW_VERSIONS`] flow versions.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use concierge_b2bua::{CallEvent, CallEventKind, CallRecord, Outcome, Program};
use concierge_flow::{Flow, Recognition};
use concierge_sip::wire::Transport;
use tokio::sync::watch;

use super::card::{self, Card, Source};

/// Recent call records kept (the newest).
pub(crate) const MAX_RECORDS: usize = 500;
/// Desks whose last card is kept (the least recently updated goes first).
pub(crate) const MAX_DESKS: usize = 1_000;
/// Calls in progress followed; beyond, new calls are counted but not listed.
pub(crate) const MAX_LIVE: usize = 20_000;
/// Flow versions kept to read old calls' records by (a reload adds versions).
pub(crate) const MAX_FLOW_VERSIONS: usize = 32;
/// Nodes kept of a call in progress's path.
const MAX_LIVE_PATH: usize = 64;
const DAY_MS: u64 = 86_400_000;

/// The console's shared state; see the module doc.
pub(crate) struct Hub {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    /// One reading of both clocks, to show events' `Instant`s as wall time.
    epoch: (Instant, SystemTime),
}

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
    path: Vec<String>,
}

/// One line of a status section (`Trunks`, `Shared state`): a name and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusLine {
    pub(crate) name: String,
    pub(crate) state: String,
    /// Whether the state is a good one (shown green) or not (red).
    pub(crate) ok: bool,
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
    fn admits(&self, row: &Row) -> bool {
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
    day: u64,
    pub(crate) calls: u64,
    pub(crate) outcomes: BTreeMap<&'static str, u64>,
    /// `(flow, node)` → calls whose path visited it (once per call).
    pub(crate) nodes: HashMap<(String, String), u64>,
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
    live: HashMap<String, LiveCall>,
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

    /// A call ended: its record joins the recent calls and today's counts, and a transfer
    /// to a desk becomes that desk's card.
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
        let recognised = card.as_ref().and_then(|c| c.recognised);
        let desk = card.as_ref().map(|c| c.desk.clone());
        let flow_name = record.flow.clone().unwrap_or_default();
        // Today's counts (a record of another day starts a new one).
        let day = record.ended_ms / DAY_MS;
        if day > state.today.day {
            state.today = Today {
                day,
                ..Today::default()
            };
        }
        if day == state.today.day {
            let today = &mut state.today;
            today.calls += 1;
            *today.outcomes.entry(record.outcome.as_str()).or_default() += 1;
            let mut seen: Vec<&str> = Vec::new();
            for s in &record.path {
                if !seen.contains(&s.node.as_str()) {
                    seen.push(&s.node);
                    *today
                        .nodes
                        .entry((flow_name.clone(), s.node.clone()))
                        .or_default() += 1;
                }
            }
            if record.outcome == Outcome::Transferred {
                *today
                    .nodes
                    .entry((flow_name.clone(), "transferred".into()))
                    .or_default() += 1;
            }
        }
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
            recognised,
            desk,
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

    /// Something happened to a call in progress (phase 2: the switch's call events).
    #[allow(
        dead_code,
        reason = "phase 2: the driver hands it each Output::Event once the switch emits them"
    )]
    pub(crate) fn event(&self, event: &CallEvent) {
        let mut state = self.lock();
        match &event.kind {
            CallEventKind::Arrived(a) => {
                if state.live.len() < MAX_LIVE {
                    let withheld = a.private || a.caller.is_empty();
                    state.live.insert(
                        event.call_id.clone(),
                        LiveCall {
                            call_id: card::bounded(&event.call_id),
                            caller: (!withheld).then(|| card::bounded(&a.caller)),
                            verified: a.verified,
                            flow: a.flow.clone(),
                            node: None,
                            arrived: event.at,
                            transport: a.transport,
                            srtp: a.srtp,
                            path: Vec::new(),
                        },
                    );
                }
            }
            CallEventKind::NodeEntered { flow, node } => {
                let Some(call) = state.live.get_mut(&event.call_id) else {
                    return;
                };
                let previous = call.node.replace(node.clone());
                if call.path.len() < MAX_LIVE_PATH {
                    call.path.push(node.clone());
                }
                if let Some(p) = previous {
                    state.leave(flow, &p);
                }
                *state.here.entry((flow.clone(), node.clone())).or_default() += 1;
            }
            CallEventKind::Transferred(t) => {
                let Some(call) = state.live.get(&event.call_id) else {
                    return;
                };
                let Some(desk) = t.desk.clone() else {
                    return;
                };
                let card = Card::from_event(
                    call,
                    desk,
                    t,
                    event.at.saturating_duration_since(call.arrived),
                    self.wall_ms(event.at),
                );
                state.set_card(card);
            }
            CallEventKind::Ended { .. } => {
                if let Some(call) = state.live.remove(&event.call_id) {
                    if let (Some(flow), Some(node)) = (&call.flow, &call.node) {
                        state.leave(flow, node);
                    }
                }
            }
        }
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
        let today_now = wall_now_ms() / DAY_MS;
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

    /// The card of `desk`'s current or last call (any desk's, without one), and when it
    /// was set (a page shows it again only when that changes).
    pub(crate) fn card(&self, desk: Option<&str>) -> Option<(Arc<Card>, u64)> {
        let state = self.lock();
        match desk {
            Some(d) => state.desks.get(d).cloned(),
            None => state.latest.clone(),
        }
    }

    /// The card of a recent transferred call, by its Call-ID (a token link names it).
    pub(crate) fn card_of_call(&self, call_id: &str) -> Option<Arc<Card>> {
        let state = self.lock();
        state
            .cards
            .iter()
            .rev()
            .find(|c| c.call_id == call_id)
            .cloned()
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

impl State {
    /// A call left `node` of `flow` (to another node, or the end).
    fn leave(&mut self, flow: &str, node: &str) {
        let key = (flow.to_owned(), node.to_owned());
        if let Some(n) = self.here.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.here.remove(&key);
            }
        }
    }

    /// `card` becomes its desk's, unless the desk already shows a later transfer (a
    /// record can arrive after the next call's transfer event).
    fn set_card(&mut self, card: Card) {
        if let Some((current, _)) = self.desks.get(&card.desk) {
            let later =
                current.call_id != card.call_id && current.transferred_ms > card.transferred_ms;
            // The event's card stays for its own call's record: it says the call is live.
            let same_from_event =
                current.call_id == card.call_id && current.source == Source::Event;
            if later || same_from_event {
                return;
            }
        }
        if !self.desks.contains_key(&card.desk) && self.desks.len() >= MAX_DESKS {
            if let Some(oldest) = self
                .desks
                .iter()
                .min_by_key(|(_, (_, set))| *set)
                .map(|(d, _)| d.clone())
            {
                self.desks.remove(&oldest);
            }
        }
        let card = Arc::new(card);
        let set = self.generation + 1;
        self.desks.insert(card.desk.clone(), (card.clone(), set));
        self.latest = Some((card.clone(), set));
        self.cards.retain(|c| c.call_id != card.call_id);
        if self.cards.len() >= MAX_RECORDS {
            self.cards.pop_front();
        }
        self.cards.push_back(card);
    }
}

impl LiveCall {
    /// Its path so far, for the card a transfer event makes.
    pub(crate) fn path(&self) -> &[String] {
        &self.path
    }
}

fn wall_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::card::tests::{vip_flow, vip_record};
    use concierge_b2bua::{Arrival, Transfer};
    use concierge_flow::TransferMode;

    fn hub() -> Arc<Hub> {
        let hub = Hub::new();
        hub.install(&Program {
            default_flow: Some(vip_flow()),
            ..Program::default()
        });
        hub
    }

    /// A record that ended now (today's counts are of the current UTC day).
    fn today(mut r: CallRecord) -> CallRecord {
        let now = wall_now_ms();
        r.arrived_ms = now - 2_000;
        r.transfer.as_mut().unwrap().started_ms = Some(now - 500);
        r.ended_ms = now;
        r
    }

    #[test]
    fn records_fill_recent_calls_today_s_counts_and_the_desk_s_card() {
        let hub = hub();
        let changed = hub.subscribe();
        hub.record(&today(vip_record("c1", "Astrid Lindqvist")));
        assert!(changed.has_changed().unwrap());
        let mut hung_up = today(vip_record("c2", "Björn"));
        hung_up.outcome = Outcome::HungUp;
        hub.record(&hung_up);
        let view = hub.console_view(&Filter::default(), 10, 10);
        assert_eq!(view.rows.len(), 2);
        assert_eq!(view.rows[0].call_id, "c2", "newest first");
        assert_eq!(view.today.calls, 2);
        assert_eq!(view.today.outcomes["transferred"], 1);
        let at = |node: &str| view.today.nodes[&("vip".to_owned(), node.to_owned())];
        assert_eq!(
            (at("lookup"), at("fast_track"), at("transferred")),
            (2, 2, 1)
        );
        let (card, _) = hub.card(Some("vip-desk")).expect("the desk's card");
        assert_eq!(card.name.as_deref(), Some("Astrid Lindqvist"));
        assert_eq!(hub.card(None).unwrap().0.call_id, "c1");
        assert_eq!(hub.card_of_call("c1").unwrap().desk, "vip-desk");
        assert!(hub.card(Some("service-desk")).is_none());
    }

    #[test]
    fn filters_pick_outcome_vip_and_desk() {
        let hub = hub();
        hub.record(&today(vip_record("vip", "A")));
        let mut other = today(vip_record("other", "B"));
        other.outcome = Outcome::Failed;
        hub.record(&other);
        let rows = |f: Filter| {
            hub.console_view(&f, 10, 10)
                .rows
                .iter()
                .map(|r| r.call_id.clone())
                .collect::<Vec<_>>()
        };
        let f = |o: &str, v: &str, t: &str| Filter {
            outcome: Some(o.into()),
            vip: Some(v.into()),
            to: Some(t.into()),
        };
        assert_eq!(rows(f("transferred", "", "")), ["vip"]);
        assert_eq!(rows(f("", "no", "")), ["other"]);
        assert_eq!(rows(f("", "yes", "vip-desk")), ["vip"]);
        assert_eq!(rows(f("", "", "service-desk")), Vec::<String>::new());
        assert_eq!(rows(Filter::default()), ["other", "vip"]);
    }

    #[test]
    fn memory_is_bounded_records_and_desks() {
        let hub = hub();
        for i in 0..MAX_RECORDS + 20 {
            let mut r = today(vip_record(&format!("c{i}"), "A"));
            r.transfer.as_mut().unwrap().target = format!("sip:desk{}@x", i % (MAX_DESKS + 5));
            hub.record(&r);
        }
        let state = hub.lock();
        assert_eq!(state.records.len(), MAX_RECORDS);
        assert_eq!(state.records.front().unwrap().call_id, "c20");
        assert!(state.desks.len() <= MAX_DESKS && state.cards.len() <= MAX_RECORDS);
    }

    fn event(call_id: &str, kind: CallEventKind) -> CallEvent {
        CallEvent {
            call_id: call_id.into(),
            at: Instant::now(),
            kind,
        }
    }

    #[test]
    fn events_show_calls_in_progress_at_their_node_and_pop_the_card_at_the_transfer() {
        let hub = hub();
        hub.event(&event(
            "live1",
            CallEventKind::Arrived(Arrival {
                caller: "+46706170786".into(),
                verified: true,
                private: false,
                called: "ivr".into(),
                flow: Some("vip".into()),
                transport: Transport::Tls,
                srtp: true,
            }),
        ));
        for node in ["lookup", "is_vip", "fast_track"] {
            hub.event(&event(
                "live1",
                CallEventKind::NodeEntered {
                    flow: "vip".into(),
                    node: node.into(),
                },
            ));
        }
        let view = hub.console_view(&Filter::default(), 10, 10);
        assert_eq!(view.live.len(), 1);
        assert_eq!(view.live[0].node.as_deref(), Some("fast_track"));
        assert!(view.live[0].srtp);
        assert_eq!(
            view.here.get(&("vip".to_owned(), "fast_track".to_owned())),
            Some(&1)
        );
        assert!(!view
            .here
            .contains_key(&("vip".to_owned(), "lookup".to_owned())));
        hub.event(&event(
            "live1",
            CallEventKind::Transferred(Transfer {
                node: "fast_track".into(),
                target: "sip:vip-desk@127.0.0.1".into(),
                desk: Some("vip-desk".into()),
                mode: TransferMode::Refer,
                widget: vec![("customer.name".into(), "Astrid Lindqvist".into())],
                recognised: Some(Recognition::Number),
            }),
        ));
        let (card, _) = hub.card(Some("vip-desk")).expect("popped up");
        assert_eq!(card.source, Source::Event);
        assert_eq!(card.name.as_deref(), Some("Astrid Lindqvist"));
        assert_eq!(card.path, ["lookup", "is_vip", "fast_track"]);
        hub.event(&event(
            "live1",
            CallEventKind::Ended {
                outcome: Outcome::Transferred,
            },
        ));
        let view = hub.console_view(&Filter::default(), 10, 10);
        assert!(view.live.is_empty() && view.here.is_empty());
        // The card stays after the call ends, until the next call reaches the desk.
        assert_eq!(hub.card(Some("vip-desk")).unwrap().0.call_id, "live1");
    }

    #[test]
    fn a_status_section_shows_what_is_reported_to_it() {
        let hub = hub();
        assert_eq!(
            hub.console_view(&Filter::default(), 1, 1).status["Trunks"],
            []
        );
        let line = StatusLine {
            name: "carrier-a".into(),
            state: "registered".into(),
            ok: true,
        };
        hub.set_status("Trunks", vec![line.clone()]);
        assert_eq!(
            hub.console_view(&Filter::default(), 1, 1).status["Trunks"],
            [line]
        );
    }
}
