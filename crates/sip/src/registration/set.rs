//! The registrations of several trunks over one [`Endpoint`]: their requests go out as
//! client transactions of that endpoint, the answers come back by transaction key, and
//! each output that is left for the owner says which trunk it is for. A trunk replaced or
//! removed (a reload) un-registers in the background until it is done.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use super::{Registration, RegistrationEvent, RegistrationOutput, RequestId, Status};
use crate::endpoint::{Endpoint, Peer};
use crate::transaction::{TsxKey, TsxMap};
use crate::wire::{Response, SipUri};

/// What the owner of [`Registrations`] must do besides sending (which they do themselves).
#[derive(Debug, Clone)]
pub enum TrunkOutput {
    /// A request went out as client transaction `key`: its answers and timeout belong to
    /// [`Registrations::handle_response`] / [`Registrations::handle_transaction_timeout`]
    /// (an owner that routes by key notes it; others may ignore this).
    Sent(TsxKey),
    /// Locate `uri` (RFC 3263) and answer with [`Registrations::handle_resolved`] and `id`.
    Resolve {
        /// Names the lookup.
        id: u64,
        /// What to locate.
        uri: SipUri,
    },
    /// Write a CRLF keep-alive on the connection to this peer.
    KeepAlive(Peer),
    /// A transition of trunk `trunk`, to log.
    Event {
        /// The trunk's name.
        trunk: String,
        /// What happened.
        event: RegistrationEvent,
    },
}

/// One registration and the trunk it belongs to.
#[derive(Debug)]
struct Slot {
    trunk: String,
    registration: Registration,
    /// Replaced or removed: un-registering, forgotten once done.
    retiring: bool,
}

/// Every trunk's registration; see the module documentation.
#[derive(Debug, Default)]
pub struct Registrations {
    slots: BTreeMap<u64, Slot>,
    /// The live slot of each trunk name.
    by_name: BTreeMap<String, u64>,
    /// Our client transactions: which slot and request each belongs to.
    keys: TsxMap<(u64, RequestId)>,
    /// Lookups under way: which slot waits for each.
    resolves: HashMap<u64, u64>,
    next_slot: u64,
    next_resolve: u64,
}

impl Registrations {
    /// No trunks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts registering `trunk` with `registration`. A trunk of that name already here
    /// is un-registered and replaced.
    pub fn insert(&mut self, now: Instant, trunk: &str, mut registration: Registration) {
        self.remove(trunk);
        registration.start(now);
        let slot = self.next_slot;
        self.next_slot += 1;
        self.by_name.insert(trunk.to_owned(), slot);
        self.slots.insert(
            slot,
            Slot {
                trunk: trunk.to_owned(),
                registration,
                retiring: false,
            },
        );
    }

    /// Un-registers `trunk` (removed by a reload); `false` when there is none.
    pub fn remove(&mut self, trunk: &str) -> bool {
        let Some(slot) = self.by_name.remove(trunk) else {
            return false;
        };
        if let Some(s) = self.slots.get_mut(&slot) {
            s.retiring = true;
            s.registration.unregister();
        }
        true
    }

    /// Un-registers every trunk (shutdown); [`Self::is_idle`] says when they are done.
    pub fn unregister_all(&mut self) {
        let names: Vec<String> = self.by_name.keys().cloned().collect();
        for name in names {
            self.remove(&name);
        }
    }

    /// Whether no trunk is registered or un-registering any more.
    pub fn is_idle(&self) -> bool {
        self.slots.values().all(|s| s.registration.is_done())
    }

    /// The registration of `trunk` (its Service-Route, next hop, status).
    pub fn get(&self, trunk: &str) -> Option<&Registration> {
        let slot = self.by_name.get(trunk)?;
        self.slots.get(slot).map(|s| &s.registration)
    }

    /// Each trunk's status, in name order.
    pub fn statuses(&self) -> impl Iterator<Item = (&str, Status)> + '_ {
        self.by_name.iter().filter_map(|(name, slot)| {
            let s = self.slots.get(slot)?;
            Some((name.as_str(), s.registration.status()))
        })
    }

    /// A response on client transaction `key`; `false` when the key is none of ours (the
    /// owner handles it). A final response ends the transaction's routing.
    pub fn handle_response(&mut self, now: Instant, key: &TsxKey, response: &Response) -> bool {
        let Some(&(slot, id)) = self.keys.get(key) else {
            return false;
        };
        if response.status.is_final() {
            self.keys.remove(key);
        }
        if let Some(s) = self.slots.get_mut(&slot) {
            s.registration.handle_response(now, id, response);
        }
        true
    }

    /// Client transaction `key` timed out; `false` when it is none of ours.
    pub fn handle_transaction_timeout(&mut self, now: Instant, key: &TsxKey) -> bool {
        let Some((slot, id)) = self.keys.remove(key) else {
            return false;
        };
        if let Some(s) = self.slots.get_mut(&slot) {
            s.registration.handle_no_response(now, id);
        }
        true
    }

    /// The answer to [`TrunkOutput::Resolve`] `id`: the addresses, best first (empty: none).
    pub fn handle_resolved(&mut self, now: Instant, id: u64, peers: Vec<Peer>) {
        let Some(slot) = self.resolves.remove(&id) else {
            return;
        };
        if let Some(s) = self.slots.get_mut(&slot) {
            s.registration.handle_resolved(now, peers);
        }
    }

    /// A connection to `peer` closed.
    pub fn handle_connection_lost(&mut self, now: Instant, peer: Peer) {
        for s in self.slots.values_mut() {
            s.registration.handle_connection_lost(now, peer);
        }
    }

    /// Fires every registration's due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        for s in self.slots.values_mut() {
            s.registration.handle_timeout(now);
        }
    }

    /// The earliest deadline of any registration.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.slots
            .values()
            .filter_map(|s| s.registration.poll_timeout())
            .min()
    }

    /// Sends what the registrations queued through `endpoint`, and returns the next thing
    /// left for the owner; `None` when all is drained. Call after every input, like the
    /// endpoint's own polls.
    pub fn poll(&mut self, now: Instant, endpoint: &mut Endpoint) -> Option<TrunkOutput> {
        for (&slot, s) in self.slots.iter_mut() {
            let Some(output) = s.registration.poll_output() else {
                continue;
            };
            return Some(match output {
                RegistrationOutput::Send { id, request, peer } => {
                    let key = endpoint.send_request(now, *request, peer);
                    self.keys.insert(key.clone(), (slot, id));
                    TrunkOutput::Sent(key)
                }
                RegistrationOutput::Resolve(uri) => {
                    let id = self.next_resolve;
                    self.next_resolve += 1;
                    self.resolves.insert(id, slot);
                    TrunkOutput::Resolve { id, uri }
                }
                RegistrationOutput::KeepAlive(peer) => TrunkOutput::KeepAlive(peer),
                RegistrationOutput::Event(event) => TrunkOutput::Event {
                    trunk: s.trunk.clone(),
                    event,
                },
            });
        }
        // Drained: forget the retired trunks that are done, and their stale keys.
        let done: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| s.retiring && s.registration.is_done())
            .map(|(k, _)| *k)
            .collect();
        for slot in done {
            self.slots.remove(&slot);
            self.keys.retain(|_, (s, _)| *s != slot);
            self.resolves.retain(|_, s| *s != slot);
        }
        None
    }
}
