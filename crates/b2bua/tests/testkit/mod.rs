//! A testkit for whole calls through a [`Switch`] in virtual time: the switch and a virtual
//! clock, everything it sends captured (SIP by destination, RTP, records, ports, HTTP
//! requests), and scripted peers — callers ([`Caller`]), a bridge target ([`Desk`]) and the
//! customer API (answered by the test through [`Kit::http_reply`] and friends).
//!
//! Test files use it with `mod testkit;`. Every call to a [`Switch`] method is in
//! `contract.rs`: when the switch's calling contract changes, only that file changes.
//!
//! No sockets, no sleeps: time moves only by [`Kit::advance`], which fires every deadline
//! the switch asked for on the way, at its exact time.
#![allow(dead_code, reason = "each test binary uses its own part of the kit")]
#![allow(
    clippy::disallowed_methods,
    reason = "the kit's one base instant; the rest is virtual time"
)]

mod contract;
mod read;
pub(crate) mod rtp;
pub(crate) mod sip;
pub(crate) mod trunk;
pub(crate) mod vip;

pub(crate) use read::*;

/// Lets a test file's rig — a struct with a `kit: Kit` field and the few helpers its
/// tests share — be used as the kit itself (`rig.advance(…)`, `rig.records`).
#[allow(
    unused_macros,
    reason = "only the test files with a rig of their own use it"
)]
macro_rules! rig_derefs_to_kit {
    ($rig:ty) => {
        impl std::ops::Deref for $rig {
            type Target = $crate::testkit::Kit;
            fn deref(&self) -> &Self::Target {
                &self.kit
            }
        }

        impl std::ops::DerefMut for $rig {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.kit
            }
        }
    };
}
#[allow(
    unused_imports,
    reason = "only the test files with a rig of their own use it"
)]
pub(crate) use rig_derefs_to_kit;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use concierge_b2bua::{
    CallEvent, CallRecord, CallRef, LockoutSubject, Program, Resolve, Switch, SwitchConfig,
    WallClock,
};
use concierge_flow::{HttpFailure, HttpRequest, HttpResponse};
use concierge_sip::wire::{Message, Transport};
use concierge_sip::Peer;

#[allow(unused_imports, reason = "not every test file places calls this way")]
pub(crate) use sip::{Caller, Desk};

/// Our host as the kit's switch advertises it (Contact, Via, `system.local_host`): a
/// documentation address, so nothing in a test can reach a real host by mistake.
pub(crate) const HOST: &str = "192.0.2.10";
/// Our SIP port (`system.local_host` is `HOST:SIP_PORT`).
pub(crate) const SIP_PORT: u16 = 5060;
/// A softphone on an untrusted address: its From is only claimed.
pub(crate) const PHONE: &str = "127.0.0.1:5061";
/// A carrier gateway listed in `trusted_peers`: its P-Asserted-Identity is believed.
pub(crate) const CARRIER: &str = "127.0.0.2:5060";
/// The customer API's base URL (`system.directory_url`).
pub(crate) const CRM: &str = "http://crm.test";
/// Wall-clock time of the kit's base instant (Unix seconds), for records.
pub(crate) const EPOCH_S: u64 = 1_800_000_000;

/// One SIP message the switch sent.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    /// Virtual time it left.
    pub(crate) at: Instant,
    pub(crate) to: SocketAddr,
    /// How it went (a stream transport: over the peer's connection).
    pub(crate) transport: Transport,
    pub(crate) message: Message,
    /// Handed out by an inbox already.
    pub(crate) read: bool,
}

/// One RTP packet the switch sent.
#[derive(Debug, Clone)]
pub(crate) struct RtpSent {
    pub(crate) at: Instant,
    /// Our port it left from.
    pub(crate) port: u16,
    pub(crate) to: SocketAddr,
    pub(crate) packet: bytes::Bytes,
}

/// An HTTP request of a flow, as the driver would have performed it.
#[derive(Debug, Clone)]
pub(crate) struct HttpCall {
    pub(crate) call: CallRef,
    pub(crate) request: HttpRequest,
    /// When the switch asked for it (the answer's latency counts from here).
    pub(crate) at: Instant,
}

/// A lockout check for the shared store, as the driver would have taken it.
#[derive(Debug, Clone)]
pub(crate) struct LockoutCheck {
    pub(crate) call: CallRef,
    pub(crate) groups: Vec<String>,
    pub(crate) subjects: Vec<LockoutSubject>,
    /// When the switch asked.
    pub(crate) at: Instant,
}

/// A switch, its virtual clock and everything it did.
pub(crate) struct Kit {
    switch: Switch,
    /// The base instant: the switch's wall clock reads [`EPOCH_S`] here.
    pub(crate) base: Instant,
    /// Virtual now.
    pub(crate) now: Instant,
    /// Every SIP message the switch sent, in order.
    pub(crate) sip: Vec<Sent>,
    /// The first byte of each prompt's frames, by law: which prompt a packet carries.
    prompt_bytes: HashMap<u8, String>,
    pub(crate) rtp: Vec<RtpSent>,
    /// Whether RTP is captured into [`Kit::rtp`] (a test of the switch's own allocations
    /// turns it off: a copy per packet would be the kit's).
    pub(crate) keep_rtp: bool,
    /// Every RTP packet the switch sent, captured or not.
    pub(crate) rtp_count: u64,
    pub(crate) records: Vec<CallRecord>,
    /// The calls' events (`SwitchConfig::call_events`), in order.
    pub(crate) events: Vec<CallEvent>,
    /// RTP ports bound now (opened and not yet closed).
    pub(crate) open_ports: Vec<u16>,
    /// Every port the switch asked to open, and to close, in order.
    pub(crate) opened: Vec<u16>,
    pub(crate) closed: Vec<u16>,
    /// Ports "another program" holds: binding them fails.
    pub(crate) held_ports: Vec<u16>,
    /// A slow driver: ports are not bound until `bind_late` (the ones asked for wait
    /// in `late_binds`).
    pub(crate) binds_late: bool,
    pub(crate) late_binds: Vec<u16>,
    /// Requests not answered yet, oldest first.
    pub(crate) http: VecDeque<HttpCall>,
    /// Every request the switch asked for.
    pub(crate) http_log: Vec<HttpCall>,
    /// Names the switch asked to resolve (RFC 3263), not answered yet.
    pub(crate) resolves: VecDeque<Resolve>,
    /// CRLF keep-alives the switch wrote on a connection (RFC 5626 §3.5.1): when, to whom.
    pub(crate) keepalives: Vec<(Instant, Peer)>,
    /// Every report of the trunks' statuses, in order.
    pub(crate) trunk_reports: Vec<Vec<concierge_b2bua::TrunkStatus>>,
    /// The shared store's lockout checks the switch asked for, in order.
    pub(crate) lockout_checks: Vec<LockoutCheck>,
    /// The failed attempts the switch reported for the shared store: group and subjects.
    pub(crate) lockout_failures: Vec<(String, Vec<LockoutSubject>)>,
    /// The wake-up the switch asked for at the end of its last drain.
    deadline: Option<Instant>,
}

/// The configuration the kit's switch runs with unless a test says otherwise: our host is
/// [`HOST`], the [`CARRIER`] is trusted, the CRM is [`CRM`], the seed is fixed.
pub(crate) fn config() -> SwitchConfig {
    SwitchConfig {
        advertised_host: HOST.into(),
        sip_port: SIP_PORT,
        media_ip: HOST.parse().expect("an address"),
        trusted_peers: concierge_b2bua::TrustedPeers::parse([CARRIER.split(':').next().unwrap()])
            .expect("an address"),
        directory_url: CRM.into(),
        seed: 7,
        ..SwitchConfig::default()
    }
}

/// A program whose default flow is `toml` (prompts: none; every prompt name passes).
pub(crate) fn program(toml: &str) -> Program {
    let loaded = concierge_flow::parse_flow(std::path::Path::new("t.toml"), toml, &|_| true)
        .unwrap_or_else(|e| panic!("not a valid flow: {e:?}"));
    Program {
        default_flow: Some(loaded.flow),
        ..Default::default()
    }
}

/// The byte each one-level prompt of `program` is made of, in either law.
fn prompt_bytes(program: &Program) -> HashMap<u8, String> {
    let mut bytes = HashMap::new();
    for name in program.prompts.names() {
        let Some(p) = program.prompts.get(name) else {
            continue;
        };
        for law in [concierge_media::Law::Alaw, concierge_media::Law::Ulaw] {
            if let Some(frame) = p.frame(law, 0, 160) {
                if frame.iter().all(|b| *b == frame[0]) {
                    bytes.insert(frame[0], name.to_owned());
                }
            }
        }
    }
    bytes
}

pub(crate) fn peer(addr: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr.parse().expect("host:port"),
    }
}

impl Kit {
    /// The reference VIP flow (`config/flows/vip.toml`) with tiny prompts, on [`config`].
    pub(crate) fn vip() -> Self {
        Self::with(config(), vip::program())
    }

    /// The reference VIP flow on `cfg`.
    pub(crate) fn vip_with(cfg: SwitchConfig) -> Self {
        Self::with(cfg, vip::program())
    }

    /// A switch with `cfg` running `program`; virtual time starts now.
    pub(crate) fn with(cfg: SwitchConfig, program: Program) -> Self {
        Self::with_wall(cfg, program, EPOCH_S)
    }

    /// As [`Self::with`], the switch's wall clock reading `unix_s` at the start.
    pub(crate) fn with_wall(cfg: SwitchConfig, program: Program, unix_s: u64) -> Self {
        let prompt_bytes = prompt_bytes(&program);
        let base = Instant::now();
        let wall = WallClock {
            instant: base,
            system: SystemTime::UNIX_EPOCH + Duration::from_secs(unix_s),
        };
        let mut kit = Self {
            switch: contract::switch(cfg, wall, program),
            base,
            now: base,
            sip: Vec::new(),
            prompt_bytes,
            rtp: Vec::new(),
            keep_rtp: true,
            rtp_count: 0,
            records: Vec::new(),
            events: Vec::new(),
            open_ports: Vec::new(),
            opened: Vec::new(),
            closed: Vec::new(),
            held_ports: Vec::new(),
            binds_late: false,
            late_binds: Vec::new(),
            http: VecDeque::new(),
            http_log: Vec::new(),
            resolves: VecDeque::new(),
            keepalives: Vec::new(),
            trunk_reports: Vec::new(),
            lockout_checks: Vec::new(),
            lockout_failures: Vec::new(),
            deadline: None,
        };
        kit.settle();
        kit
    }

    /// Virtual time since the kit started.
    pub(crate) fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// Advances virtual time by `by`, firing every deadline on the way at its own time.
    pub(crate) fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        let mut same = 0u32;
        while let Some(at) = self.next_deadline().filter(|at| *at <= until) {
            if at <= self.now {
                same += 1;
                assert!(
                    same < 10_000,
                    "the switch keeps asking to be woken at {:?} and does nothing",
                    at - self.base
                );
            } else {
                same = 0;
            }
            self.now = at.max(self.now);
            self.fire();
        }
        self.now = until;
    }

    /// Advances virtual time to `at` (not before now).
    pub(crate) fn advance_to(&mut self, at: Instant) {
        self.advance(at.saturating_duration_since(self.now));
    }

    pub(crate) fn advance_ms(&mut self, ms: u64) {
        self.advance(Duration::from_millis(ms));
    }

    /// SIP sent to `to` not yet handed out by an inbox.
    pub(crate) fn inbox(&mut self, to: SocketAddr) -> Vec<Message> {
        self.take_sent(|s| s.to == to)
    }

    /// The SIP messages not yet handed out that `pick` picks, in order; they count as
    /// handed out from now on.
    pub(crate) fn take_sent(&mut self, pick: impl Fn(&Sent) -> bool) -> Vec<Message> {
        self.take_sent_full(pick)
            .into_iter()
            .map(|s| s.message)
            .collect()
    }

    /// As [`Self::take_sent`], with where and when each went.
    pub(crate) fn take_sent_full(&mut self, pick: impl Fn(&Sent) -> bool) -> Vec<Sent> {
        self.sip
            .iter_mut()
            .filter(|s| !s.read && pick(s))
            .map(|s| {
                s.read = true;
                s.clone()
            })
            .collect()
    }

    /// The prompts whose audio went to `to` at or after `since`, in order (a prompt
    /// sounding over several packets, or looped, once; silence skipped). Only prompts made
    /// of one level (the kit's) are told apart.
    pub(crate) fn heard(&self, to: SocketAddr, since: Instant) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for p in self.rtp_to(to, since) {
            let payload = rtp::payload(&p.packet);
            let Some(first) = payload.first() else {
                continue;
            };
            if payload.iter().any(|b| b != first) {
                continue;
            }
            if let Some(name) = self.prompt_bytes.get(first) {
                if names.last() != Some(name) {
                    names.push(name.clone());
                }
            }
        }
        names
    }

    /// Every SIP message ever sent to `to`, with its time.
    pub(crate) fn sent_to(&self, to: SocketAddr) -> Vec<&Sent> {
        self.sip.iter().filter(|s| s.to == to).collect()
    }

    /// The record of the call `call_id`.
    pub(crate) fn record(&self, call_id: &str) -> &CallRecord {
        self.records
            .iter()
            .find(|r| r.call_id == call_id)
            .unwrap_or_else(|| panic!("no record for {call_id}; records: {:?}", self.records))
    }

    /// Whether the call `call_id` has ended (its record is written).
    pub(crate) fn ended(&self, call_id: &str) -> bool {
        self.records.iter().any(|r| r.call_id == call_id)
    }

    /// The oldest unanswered HTTP request.
    pub(crate) fn http_request(&self) -> &HttpRequest {
        &self
            .http
            .front()
            .expect("the switch asked for an HTTP request")
            .request
    }

    /// Answers the oldest HTTP request with `status` and `body`; its latency is the
    /// virtual time since it was asked for.
    pub(crate) fn http_reply(&mut self, status: u16, body: &str) {
        let call = self.http.pop_front().expect("an HTTP request to answer");
        let latency = self.now - call.at;
        self.input_http(
            call.call,
            Ok(HttpResponse {
                status,
                body: body.as_bytes().to_vec(),
                latency,
                shared: None,
            }),
        );
    }

    /// Answers the oldest HTTP request with `result` as it is.
    pub(crate) fn http_answer(&mut self, result: Result<HttpResponse, HttpFailure>) {
        let call = self.http.pop_front().expect("an HTTP request to answer");
        self.input_http(call.call, result);
    }

    /// Answers the oldest HTTP request with a failure (refused, timed out …).
    pub(crate) fn http_fail(&mut self, failure: HttpFailure) {
        let call = self.http.pop_front().expect("an HTTP request to answer");
        self.input_http(call.call, Err(failure));
    }

    /// Answers the HTTP request of `call` (a late answer, say) with `status` and `body`.
    pub(crate) fn http_reply_to(&mut self, call: CallRef, status: u16, body: &str) {
        self.http.retain(|h| h.call != call);
        self.input_http(
            call,
            Ok(HttpResponse {
                status,
                body: body.as_bytes().to_vec(),
                latency: Duration::from_millis(1),
                shared: None,
            }),
        );
    }

    /// When packets of prompt `name` left for `to`.
    pub(crate) fn sounded(&self, to: SocketAddr, name: &str) -> Vec<Instant> {
        self.rtp_to(to, self.base)
            .into_iter()
            .filter(|p| {
                let payload = rtp::payload(&p.packet);
                payload.iter().all(|b| Some(b) == payload.first())
                    && payload
                        .first()
                        .and_then(|b| self.prompt_bytes.get(b))
                        .is_some_and(|n| n == name)
            })
            .map(|p| p.at)
            .collect()
    }

    /// When the first SIP request `method` left for `to`.
    pub(crate) fn request_sent_at(&self, to: SocketAddr, method: &str) -> Option<Instant> {
        self.sip.iter().find_map(|s| match &s.message {
            Message::Request(r) if s.to == to && r.method.as_str() == method => Some(s.at),
            _ => None,
        })
    }

    /// RTP sent to `to` at or after `since`.
    pub(crate) fn rtp_to(&self, to: SocketAddr, since: Instant) -> Vec<&RtpSent> {
        self.rtp
            .iter()
            .filter(|p| p.to == to && p.at >= since)
            .collect()
    }
}
