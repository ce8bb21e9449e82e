use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Instant;

use concierge_sip::dialog::DialogId;
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::{response_to, HeaderName, Request, Response, StatusCode};
use concierge_sip::{Endpoint, EndpointConfig, EndpointEvent, Peer};

mod admit;
mod bridge;
mod carrier;
mod comfort;
mod contract;
mod dns;
mod family;
mod flow;
mod in_dialog;
mod leg_dialog;
mod leg_timer;
mod lockout;
mod lookup;
mod media;
mod ports;
mod records;
mod refer;
mod refresh;
mod relay;
mod rtp_in;
mod setup;
mod srtp;
mod teardown;
mod timers;

pub(crate) use comfort::Comfort;

use crate::admission::Admission;
use crate::call::Call;
use crate::config::SwitchConfig;
use crate::output::{CallRef, Output};
use crate::program::Program;
use crate::record::WallClock;
use concierge_media::RtpPorts;

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, REFER, UPDATE, PRACK";
const ACCEPT: &str = "application/sdp, application/dtmf-relay, application/dtmf, message/sipfrag";

/// All calls of one shard. See the crate docs for the run loop.
pub struct Switch {
    cfg: SwitchConfig,
    endpoint: Endpoint,
    calls: HashMap<CallRef, Call>,
    by_dialog: HashMap<DialogId, CallRef>,
    by_invite: HashMap<TsxKey, CallRef>,
    by_client_tsx: HashMap<TsxKey, CallRef>,
    by_port: HashMap<u16, CallRef>,
    /// Call-IDs of the live calls and their bridge legs: an INVITE with one of them is
    /// not a new call.
    call_ids: HashMap<Vec<u8>, CallRef>,
    admission: Admission,
    timers: BinaryHeap<Reverse<(Instant, CallRef)>>,
    /// Each live call's maximum-duration deadline (removed when the call goes).
    expiry: std::collections::BTreeSet<(Instant, CallRef)>,
    next_ref: CallRef,
    draining: bool,
    outputs: VecDeque<Output>,
    wall: WallClock,
    ports: RtpPorts,
    /// What new calls run; each call keeps the one it started with (see `Command::Install`).
    program: std::sync::Arc<Program>,
    stats: crate::stats::SwitchStats,
    /// Calls with media, for the paced sender.
    media_calls: Vec<CallRef>,
    next_tick: Option<Instant>,
    rtp_buf: Vec<u8>,
    frame_buf: Vec<u8>,
    /// Failed code attempts across this switch's calls.
    lockout: crate::lockout::Lockout,
    /// The input being handled came over a connection whose client certificate a
    /// configured CA verified (mutual TLS): its sender is a trusted peer.
    authenticated_input: bool,
    /// Draws SRTP master keys (a CSPRNG; see `SwitchConfig::key_seed`).
    key_rng: rand::rngs::StdRng,
    srtp_buf: Vec<u8>,
    /// Names waiting for the driver's resolver, and which call asked.
    resolves: VecDeque<crate::output::Resolve>,
    pending_dns: HashMap<crate::output::ResolveId, CallRef>,
    next_dns: u64,
    /// Answers of caching `http` nodes, shared by this switch's calls.
    lookups: concierge_flow::LookupCache,
}

/// A transfer target as logs may show it: not when it was rendered from a secret.
fn shown(redact: bool, target: &str) -> &str {
    if redact {
        "<redacted>"
    } else {
        target
    }
}

/// Ports tried for one call before it is refused with 503.
pub(super) const MAX_PORT_ATTEMPTS: u8 = 8;

impl Switch {
    /// `wall` pairs an `Instant` with the wall-clock time, for call records.
    pub fn new(cfg: SwitchConfig, wall: WallClock, program: Program) -> Self {
        let endpoint = Endpoint::new(EndpointConfig {
            timers: cfg.timers,
            via_host: cfg.advertised_host.clone(),
            via_port: cfg.sip_port,
            via_tls_port: cfg.tls_port,
            via_host_v6: cfg.advertised_host_v6.clone(),
            seed: cfg.seed,
            supported: crate::carrier::SUPPORTED
                .split(", ")
                .map(str::to_owned)
                .collect(),
        });
        Self {
            endpoint,
            calls: HashMap::new(),
            by_dialog: HashMap::new(),
            by_invite: HashMap::new(),
            by_client_tsx: HashMap::new(),
            by_port: HashMap::new(),
            call_ids: HashMap::new(),
            admission: Admission::new(cfg.admission, wall.instant),
            timers: BinaryHeap::new(),
            expiry: Default::default(),
            next_ref: CallRef(1),
            draining: false,
            outputs: VecDeque::new(),
            ports: RtpPorts::new(
                cfg.rtp_ports.0,
                cfg.rtp_ports.1,
                cfg.rtp_port_rest,
                cfg.seed ^ 0x5eed_0f4a_110c_4700,
            ),
            wall,
            program: std::sync::Arc::new(program),
            stats: Default::default(),
            media_calls: Vec::new(),
            next_tick: None,
            rtp_buf: vec![0u8; 1500],
            frame_buf: Vec::with_capacity(320),
            lockout: crate::lockout::Lockout::new(cfg.lockout),
            authenticated_input: false,
            key_rng: rand::SeedableRng::from_seed(cfg.key_seed),
            srtp_buf: Vec::with_capacity(1500),
            resolves: VecDeque::new(),
            pending_dns: HashMap::new(),
            next_dns: 1,
            lookups: concierge_flow::LookupCache::new(),
            cfg,
        }
    }

    /// Counters of what has no call record (see [`crate::SwitchStats`]).
    pub fn stats(&self) -> crate::stats::SwitchStats {
        self.stats
    }

    /// Whether new INVITEs are refused because the switch is draining.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Calls in the switch now (ringing, up or ending).
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// The call whose Call-ID (or whose bridge leg's) is `call_id`, if it is here.
    pub fn find_call(&self, call_id: &str) -> Option<CallRef> {
        self.call_ids.get(call_id.as_bytes()).copied()
    }

    /// Whether a draining switch has no calls left and can be dropped.
    pub fn is_idle(&self) -> bool {
        self.calls.is_empty()
    }

    fn on_datagram(&mut self, now: Instant, peer: Peer, data: &[u8]) {
        if self.refuse_early(now, peer, data) {
            return;
        }
        self.endpoint.handle_datagram(now, peer, data);
        self.pump(now);
    }

    fn on_stream_message(&mut self, now: Instant, peer: Peer, head: &[u8], body: &[u8]) {
        if self.refuse_early(now, peer, head) {
            return;
        }
        self.endpoint.handle_framed(now, peer, head, body);
        self.pump(now);
    }

    /// Hands endpoint events to the calls until the endpoint has nothing more to say.
    fn pump(&mut self, now: Instant) {
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                EndpointEvent::Request { key, request, peer } => {
                    self.on_request(now, key, request, peer)
                }
                EndpointEvent::Ack { request, .. } => self.on_ack(now, request),
                EndpointEvent::Cancelled { invite, .. } => self.on_cancelled(now, invite),
                EndpointEvent::Response { key, response } => self.on_response(now, key, response),
                EndpointEvent::Timeout { key } => self.on_tsx_timeout(now, key),
                EndpointEvent::StrayResponse { response, .. } => {
                    self.on_stray_answer(now, response, None)
                }
            }
        }
    }

    fn response(&mut self, request: &Request, status: StatusCode) -> Response {
        let tag = self.endpoint.new_tag();
        self.response_tagged(request, status, tag.as_str())
    }

    fn response_tagged(&self, request: &Request, status: StatusCode, tag: &str) -> Response {
        let mut r = response_to(request, status, Some(tag));
        if status == StatusCode::OK || status.class() >= 4 {
            r.headers.push(HeaderName::ALLOW, ALLOW);
            r.headers
                .push(HeaderName::SUPPORTED, crate::carrier::SUPPORTED);
        }
        r.headers
            .push(HeaderName::SERVER, self.cfg.user_agent.clone());
        r
    }
}
