//! The SIP trunks the switch registers with (issue 23): one sans-IO
//! [`Registration`](concierge_sip::registration::Registration) per `[[trunks]]` entry of the
//! installed [`Program`](crate::Program), beside the calls. The switch routes to them what
//! is theirs — answers and timeouts of their client transactions, their name lookups, a
//! closed connection, the time — through the same index that finds calls
//! ([`Owner::Trunk`](crate::switch::Owner)); their requests go out through the switch's
//! endpoint, their lookups as [`Output::Resolve`], their CRLF keep-alives as SIP bytes, and
//! what they report as log lines and [`Output::Trunks`].
//!
//! A call reads a trunk through [`Trunks::route`] (a bridged transfer or a 302 through it,
//! `route.rs`) and [`Trunks::trusts`] (a trusted trunk's calls).

mod report;
mod route;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

use concierge_sip::registration::{Registration, Registrations, Status, TrunkOutput};
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::{Response, Transport};
use concierge_sip::{Endpoint, Peer, Transmit};
use tracing::warn;

pub(crate) use route::{loose, TrunkRoute};

use crate::output::{Output, Resolve, ResolveId};
use crate::switch::{Index, Key};

/// One `[[trunks]]` entry as the switch runs it: what it registers as, and whether its
/// calls are believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    /// Its name: how flows (`trunk = "carrier"`, `sip:USER@trunk:carrier`), logs, status
    /// and metrics name it.
    pub name: String,
    /// The registration (registrar, address-of-record, credentials, our Contact …).
    pub registration: concierge_sip::registration::RegistrationConfig,
    /// Calls from the addresses this trunk registers through (its registrar or outbound
    /// proxy, as located) count as from a trusted peer: their P-Asserted-Identity is
    /// believed (RFC 3325).
    pub trusted: bool,
}

/// A trunk's registration as the switch reports it in [`Output::Trunks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkStatus {
    /// The trunk's name.
    pub name: String,
    /// The address-of-record it registers (`sip:+4612345@carrier.example`).
    pub aor: String,
    /// Where its registration stands.
    pub status: Status,
}

/// The CRLF keep-alive of RFC 5626 §3.5.1, written on the connection to the registrar.
const CRLF_KEEPALIVE: &[u8] = b"\r\n\r\n";

/// Every trunk the installed program names, and their registrations.
pub(crate) struct Trunks {
    registrations: Registrations,
    /// The trunks as last installed, by name.
    specs: BTreeMap<String, Trunk>,
    /// Lookups the registrations wait for: the switch's id, theirs.
    resolves: HashMap<ResolveId, u64>,
    /// What [`Output::Trunks`] said last.
    reported: Vec<TrunkStatus>,
    /// Something reached the registrations since they were last drained: drain them, and
    /// report their statuses if they changed.
    touched: bool,
    /// Seeds the next registration (Call-ID, tags, nonces, jitter).
    seed: u64,
    /// Shutting down: nothing new is registered.
    stopping: bool,
}

impl Trunks {
    /// No trunks; registrations made later are seeded from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            registrations: Registrations::new(),
            specs: BTreeMap::new(),
            resolves: HashMap::new(),
            reported: Vec::new(),
            touched: false,
            seed,
            stopping: false,
        }
    }

    /// Runs `trunks` from now on (start-up, and every reload): a trunk that is new or
    /// whose registration changed (re)registers — the old binding is removed first with
    /// Expires: 0 — one that is gone un-registers, one that is unchanged runs on untouched.
    pub(crate) fn install(&mut self, now: Instant, trunks: &[Trunk]) {
        self.touched = true;
        if self.stopping {
            return;
        }
        let gone: Vec<String> = self
            .specs
            .keys()
            .filter(|name| !trunks.iter().any(|t| &t.name == *name))
            .cloned()
            .collect();
        for name in gone {
            self.registrations.remove(&name);
            self.specs.remove(&name);
        }
        for trunk in trunks {
            let same = self
                .specs
                .get(&trunk.name)
                .is_some_and(|t| t.registration == trunk.registration);
            if !same {
                self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
                match Registration::new(trunk.registration.clone(), self.seed) {
                    Ok(r) => self.registrations.insert(now, &trunk.name, r),
                    Err(e) => {
                        // The configuration was checked when it was loaded: not reached.
                        warn!(trunk = %trunk.name, error = %e, "trunk not registered");
                        continue;
                    }
                }
            }
            self.specs.insert(trunk.name.clone(), trunk.clone());
        }
    }

    /// Shutting down: every binding is removed (Expires: 0) and nothing new registers;
    /// [`Self::is_idle`] says when they are done.
    pub(crate) fn unregister_all(&mut self) {
        self.stopping = true;
        self.touched = true;
        self.registrations.unregister_all();
    }

    /// The last step of a shutdown: what is still un-registering is dropped (its bindings
    /// lapse at their expiry).
    pub(crate) fn abandon(&mut self) {
        self.stopping = true;
        self.touched = true;
        self.registrations = Registrations::new();
        self.specs.clear();
        self.resolves.clear();
    }

    /// Whether no registration is running or un-registering.
    pub(crate) fn is_idle(&self) -> bool {
        self.registrations.is_idle()
    }

    /// A response on one of the trunks' client transactions.
    pub(crate) fn on_response(&mut self, now: Instant, key: &TsxKey, response: &Response) {
        self.touched = true;
        self.registrations.handle_response(now, key, response);
    }

    /// One of the trunks' client transactions timed out.
    pub(crate) fn on_tsx_timeout(&mut self, now: Instant, key: &TsxKey) {
        self.touched = true;
        self.registrations.handle_transaction_timeout(now, key);
    }

    /// The answer to lookup `id`; a DNS failure is a name without addresses to the
    /// registration (it says why in its own words).
    pub(crate) fn on_resolved(&mut self, now: Instant, id: ResolveId, peers: Vec<Peer>) {
        self.touched = true;
        if let Some(theirs) = self.resolves.remove(&id) {
            self.registrations.handle_resolved(now, theirs, peers);
        }
    }

    /// A TCP or TLS connection to `peer` closed: a registration that went through it
    /// registers again at once (a new connection).
    pub(crate) fn on_connection_lost(&mut self, now: Instant, peer: Peer) {
        if peer.transport == Transport::Udp {
            return;
        }
        self.touched = true;
        self.registrations.handle_connection_lost(now, peer);
    }

    /// Fires the registrations' timers due at `now` (cheap when none is).
    pub(crate) fn on_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|at| at <= now) {
            self.touched = true;
            self.registrations.handle_timeout(now);
        }
    }

    /// The earliest deadline of any registration.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.registrations.poll_timeout()
    }

    /// Whether [`Self::drain`] has something to do.
    pub(crate) fn touched(&self) -> bool {
        self.touched
    }

    /// Sends what the registrations queued through `endpoint` and turns the rest into
    /// outputs: their client transactions and lookups indexed as the trunks'
    /// (`next_resolve` numbers the lookups, shared with the calls'), CRLF keep-alives as
    /// SIP bytes on the connection, transitions as log lines, and — when a status changed
    /// — one [`Output::Trunks`].
    pub(crate) fn drain(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        out: &mut VecDeque<Output>,
        index: &mut Index,
        next_resolve: &mut u64,
    ) {
        self.touched = false;
        while let Some(output) = self.registrations.poll(now, endpoint) {
            match output {
                TrunkOutput::Sent(key) => index.add_trunk(Key::Request(key)),
                TrunkOutput::Resolve { id, uri } => {
                    let ours = ResolveId(*next_resolve);
                    *next_resolve += 1;
                    self.resolves.insert(ours, id);
                    index.add_trunk(Key::Resolve(ours));
                    out.push_back(Output::Resolve(Resolve { id: ours, uri }));
                }
                TrunkOutput::KeepAlive(peer) => out.push_back(Output::Sip(Transmit {
                    peer,
                    bytes: bytes::Bytes::from_static(CRLF_KEEPALIVE),
                })),
                TrunkOutput::Event { trunk, event } => report::log(now, &trunk, &event),
            }
        }
        let statuses = self.statuses();
        if statuses != self.reported {
            self.reported = statuses.clone();
            out.push_back(Output::Trunks(statuses));
        }
    }

    /// Each trunk's status, in name order.
    fn statuses(&self) -> Vec<TrunkStatus> {
        self.registrations
            .statuses()
            .map(|(name, status)| TrunkStatus {
                name: name.to_owned(),
                aor: self
                    .registrations
                    .get(name)
                    .map(|r| r.aor().to_string())
                    .unwrap_or_default(),
                status,
            })
            .collect()
    }

    /// Whether `ip` is an address a trusted trunk registers through (its registrar or
    /// outbound proxy as located, or as written when that is an address).
    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.specs.values().filter(|t| t.trusted).any(|t| {
            let cfg = &t.registration;
            let written = [Some(&cfg.registrar), cfg.outbound_proxy.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(|u| concierge_sip::dialog::peer_for_uri(u, Transport::Udp));
            let located = self
                .registrations
                .get(&t.name)
                .into_iter()
                .flat_map(|r| r.located().iter().copied());
            written
                .chain(located)
                .any(|p| p.addr.ip().to_canonical() == ip)
        })
    }

    /// How a transfer goes through trunk `name`; `None` when no trunk of that name runs.
    pub(crate) fn route(&self, name: &str) -> Option<TrunkRoute> {
        let spec = self.specs.get(name)?;
        let registration = self.registrations.get(name)?;
        Some(TrunkRoute::new(spec, registration))
    }
}
