//! Outbound registration of one SIP trunk (RFC 3261 §10.2), sans-IO.
//!
//! A [`Registration`] keeps one binding — our Contact for the trunk's address-of-record —
//! alive at a registrar: REGISTER with digest credentials, refresh at about half the
//! granted interval, 423 Min-Expires, back-off on failure, stop on answers that say "never"
//! (403, 404, rejected credentials), keep-alives, and Expires: 0 when told to stop. It owns
//! no socket, clock or resolver; its owner (the switch) drives it:
//!
//! 1. [`Registration::new`], then [`Registration::start`];
//! 2. after every call, drain [`Registration::poll_output`] until `None`:
//!    * [`RegistrationOutput::Send`]: start a non-INVITE client transaction for the request
//!      towards the peer ([`Endpoint::send_request`](crate::Endpoint::send_request)) and
//!      remember its [`TsxKey`](crate::transaction::TsxKey) with the [`RequestId`];
//!    * [`RegistrationOutput::Resolve`]: locate the URI (RFC 3263) and hand the addresses
//!      to [`Registration::handle_resolved`];
//!    * [`RegistrationOutput::KeepAlive`]: write a CRLF keep-alive on the connection to the
//!      peer (RFC 5626 §3.5.1);
//!    * [`RegistrationOutput::Event`]: log it;
//! 3. a response on a remembered key goes to [`Registration::handle_response`], the
//!    transaction's timeout to [`Registration::handle_no_response`];
//! 4. wake at [`Registration::poll_timeout`] and call [`Registration::handle_timeout`].
//!
//! [`Registrations`] does steps 2 and 3 for a set of trunks over one
//! [`Endpoint`](crate::Endpoint).
//!
//! Files: `config` (what a trunk registers as), `request` (REGISTER and the OPTIONS ping),
//! `response` (what an answer grants or asks), `auth` (challenges and their answers),
//! `hop` (the first hop and its addresses), `transitions` (what each answer and timer
//! moves the machine to), `timers`, `status`, `failure`, and `set` ([`Registrations`]).
//!
//! Everything from the registrar is hostile: every number is parsed and bounded, lists
//! are cut short, echoed challenge values are length-checked, a registrar that challenges
//! or answers 423 forever is given up on, and no peer text reaches a [`Failure`] or an
//! event. Nothing here panics on any response.

mod auth;
mod config;
mod failure;
mod hop;
mod request;
mod response;
mod set;
mod status;
mod timers;
mod transitions;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

pub use config::{
    ConfigError, Credentials, Password, RegistrationConfig, DEFAULT_STREAM_KEEPALIVE, MAX_EXPIRES,
};
pub use failure::{ChallengeProblem, Failure};
pub use set::{Registrations, TrunkOutput};
pub use status::{RegistrationEvent, Removal, Status, StatusState};
pub use timers::RegTimer;

use auth::{Auth, Kind};
use hop::Hop;
use timers::RegTimers;

use crate::endpoint::Peer;
use crate::ids::{CallId, Tag};
use crate::wire::{Method, NameAddr, Response, SipUri, StatusCode};

/// The first wait after a failed attempt; it doubles with each further failure.
pub const RETRY_BASE: Duration = Duration::from_secs(10);
/// The longest wait between attempts (the back-off's ceiling), before jitter.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A binding is never refreshed more often than this, however little the registrar
/// grants: a registrar granting 1 s does not get a REGISTER every half second.
pub const MIN_REFRESH: Duration = Duration::from_secs(5);
/// Challenges answered within one attempt before it counts as failed: a registrar (or a
/// proxy then a registrar) needs at most two; a fresh nonce every time is a loop.
const MAX_CHALLENGES: u8 = 3;

/// Names one request of a registration, so its answer or timeout can be routed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

/// What the owner of a [`Registration`] must do; see the module documentation.
#[derive(Debug, Clone)]
pub enum RegistrationOutput {
    /// Send `request` as a non-INVITE client transaction towards `peer`; route its final
    /// response back with `id`.
    Send {
        /// Names the request in `handle_response` / `handle_no_response`.
        id: RequestId,
        /// A REGISTER or OPTIONS without Via (boxed: by far the largest output).
        request: Box<crate::wire::Request>,
        /// The next hop.
        peer: Peer,
    },
    /// Locate this URI (RFC 3263: NAPTR, SRV, A/AAAA) and call
    /// [`Registration::handle_resolved`].
    Resolve(SipUri),
    /// Write a CRLF keep-alive (`\r\n\r\n`) on the connection to this peer.
    KeepAlive(Peer),
    /// A transition to log.
    Event(RegistrationEvent),
}

/// One REGISTER in flight and what it asked for. A challenge, a 423 or a failover to the
/// next address sends the same attempt again (a new request, the next CSeq).
#[derive(Debug, Clone, Copy)]
struct Attempt {
    /// The request in flight (set when it is sent).
    id: RequestId,
    /// The interval asked for (0: the un-REGISTER).
    expires: u32,
    /// Challenges answered so far in this attempt.
    challenges: u8,
    /// Which kinds of challenge (401, 407) this attempt answered.
    answered: Answered,
    /// A 423 was already answered in this attempt.
    raised: bool,
}

impl Attempt {
    /// A new attempt asking for `expires`.
    fn fresh(expires: u32) -> Self {
        Self {
            id: RequestId(0),
            expires,
            challenges: 0,
            answered: Answered::default(),
            raised: false,
        }
    }
}

/// The kinds of challenge one attempt answered (at most one of each is ever held).
#[derive(Debug, Clone, Copy, Default)]
struct Answered {
    www: bool,
    proxy: bool,
}

impl Answered {
    fn kinds(self) -> Vec<Kind> {
        [(self.www, Kind::Www), (self.proxy, Kind::Proxy)]
            .into_iter()
            .filter_map(|(yes, k)| yes.then_some(k))
            .collect()
    }

    fn with(mut self, kind: Kind) -> Self {
        match kind {
            Kind::Www => self.www = true,
            Kind::Proxy => self.proxy = true,
        }
        self
    }
}

/// Where the machine is. Each state holds what exists only in it; the binding itself
/// lives beside the state (see [`Registration::binding`]).
#[derive(Debug, Clone)]
enum State {
    /// Made, not started.
    Idle,
    /// Waiting for the owner to locate the first hop.
    Locating,
    /// A REGISTER is out.
    Registering(Attempt),
    /// The last REGISTER succeeded; the refresh timer runs.
    Registered,
    /// The last attempt failed; the retry timer runs.
    BackingOff { until: Instant, why: Failure },
    /// Stopped for good.
    Failed { why: Failure },
    /// The Expires: 0 REGISTER is out.
    Unregistering(Attempt),
    /// Over.
    Unregistered,
}

/// One trunk's registration; see the module documentation for how to drive it.
#[derive(Debug)]
pub struct Registration {
    cfg: RegistrationConfig,
    aor: SipUri,
    /// RFC 3261 §10.2: one Call-ID for every REGISTER to this registrar.
    call_id: CallId,
    /// The keep-alive pings' own Call-ID.
    ping_call_id: CallId,
    from_tag: Tag,
    cseq: u32,
    ping_cseq: u32,
    /// What we ask for: the configured interval, raised by a 423's Min-Expires.
    expires: u32,
    rng: SmallRng,
    auth: Auth,
    hop: Hop,
    state: State,
    /// When the registrar's binding of our Contact runs out, while we hold one. Kept
    /// beside the state because a binding outlives the states around it: it stays valid
    /// while a refresh is out and while a failed refresh backs off, until it expires.
    binding: Option<Instant>,
    /// Failed attempts since the last success: the back-off's exponent.
    failures: u32,
    last_failure: Option<Failure>,
    timers: RegTimers,
    /// An OPTIONS keep-alive in flight.
    ping: Option<RequestId>,
    service_route: Vec<NameAddr>,
    path: Vec<NameAddr>,
    last_response: Option<StatusCode>,
    outputs: VecDeque<RegistrationOutput>,
    next_id: u64,
}

impl Registration {
    /// A registration that does nothing until [`Self::start`]. `seed` feeds its Call-ID,
    /// tag, client nonces and back-off jitter (tests pass a constant, the driver a random
    /// one).
    pub fn new(cfg: RegistrationConfig, seed: u64) -> Result<Self, ConfigError> {
        cfg.check()?;
        let mut rng = SmallRng::seed_from_u64(seed);
        let call_id = CallId::from(format!(
            "{:016x}{:016x}",
            rng.gen::<u64>(),
            rng.gen::<u64>()
        ));
        let ping_call_id = CallId::from(format!("{:016x}-ka", rng.gen::<u64>()));
        let from_tag = Tag::from(format!("{:012x}", rng.gen::<u64>() & 0xffff_ffff_ffff));
        Ok(Self {
            aor: cfg.aor(),
            hop: Hop::new(&cfg),
            expires: cfg.expires,
            call_id,
            ping_call_id,
            from_tag,
            cseq: 0,
            ping_cseq: 0,
            rng,
            auth: Auth::default(),
            state: State::Idle,
            binding: None,
            failures: 0,
            last_failure: None,
            timers: RegTimers::default(),
            ping: None,
            service_route: Vec::new(),
            path: Vec::new(),
            last_response: None,
            outputs: VecDeque::new(),
            next_id: 0,
            cfg,
        })
    }

    /// Starts registering (once; later calls do nothing).
    pub fn start(&mut self, now: Instant) {
        if matches!(self.state, State::Idle) {
            self.begin_attempt(now);
        }
    }

    /// The addresses the owner located for [`RegistrationOutput::Resolve`], best first;
    /// empty when the name has none (or the lookup failed).
    pub fn handle_resolved(&mut self, now: Instant, peers: Vec<Peer>) {
        if !matches!(self.state, State::Locating) {
            return;
        }
        if self.hop.located(peers) {
            self.send_register(now, Attempt::fresh(self.expires));
        } else {
            self.fail(now, Failure::Unresolvable, None);
        }
    }

    /// A response to request `id`. Provisional responses, answers to requests this
    /// registration no longer waits for, and anything not ours are ignored.
    pub fn handle_response(&mut self, now: Instant, id: RequestId, response: &Response) {
        if response.status.is_provisional() {
            return;
        }
        if self.ping == Some(id) {
            // Any final answer, even 404 or 405, shows the path to the registrar is open.
            self.ping = None;
            return;
        }
        let attempt = match &self.state {
            State::Registering(a) | State::Unregistering(a) if a.id == id => *a,
            _ => return,
        };
        if response.call_id != self.call_id.as_str() || response.cseq.method != Method::Register {
            return;
        }
        self.last_response = Some(response.status);
        if matches!(self.state, State::Unregistering(_)) {
            return self.unregister_answered(attempt, response);
        }
        match response.status.0 {
            200..=299 => self.registered(now, attempt, response),
            401 | 407 => self.challenged(now, attempt, response),
            423 => self.too_brief(now, attempt, response),
            // RFC 3263 §4.3: a 503 from one address sends the request to the next.
            503 if self.hop.advance().is_some() => self.send_register(now, attempt),
            _ => self.fail(
                now,
                Failure::Refused(response.status),
                response::retry_after(response),
            ),
        }
    }

    /// Request `id` got no final response in time (timer F).
    pub fn handle_no_response(&mut self, now: Instant, id: RequestId) {
        if self.ping == Some(id) {
            self.ping = None;
            // The path may be gone (a NAT mapping timed out): a REGISTER opens it again,
            // or shows that it is down.
            if matches!(self.state, State::Registered) {
                self.send_register(now, Attempt::fresh(self.expires));
            }
            return;
        }
        match self.state {
            State::Registering(a) if a.id == id => {
                if self.hop.advance().is_some() {
                    self.send_register(now, a);
                } else {
                    self.fail(now, Failure::NoResponse, None);
                }
            }
            State::Unregistering(a) if a.id == id => self.finish(Removal::Unconfirmed),
            _ => {}
        }
    }

    /// The owner's connection to `peer` closed (TCP/TLS). While registered through it, a
    /// REGISTER goes at once, which opens a new connection (RFC 5626 §4.4.1's recovery).
    pub fn handle_connection_lost(&mut self, now: Instant, peer: Peer) {
        if self.hop.current() == Some(peer) && matches!(self.state, State::Registered) {
            self.send_register(now, Attempt::fresh(self.expires));
        }
    }

    /// Fires every timer due at `now`; an early or repeated call is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                RegTimer::Refresh => {
                    if matches!(self.state, State::Registered) {
                        self.send_register(now, Attempt::fresh(self.expires));
                    }
                }
                RegTimer::Retry => {
                    if matches!(self.state, State::BackingOff { .. }) {
                        self.begin_attempt(now);
                    }
                }
                RegTimer::Expiry => {
                    if self.binding.is_some_and(|at| at <= now) {
                        self.binding = None;
                        self.timers.clear(RegTimer::Keepalive);
                        let why = self.last_failure.unwrap_or(Failure::Expired);
                        self.emit(RegistrationEvent::Lost { why });
                    }
                }
                RegTimer::Keepalive => self.keepalive(now),
            }
        }
    }

    /// Removes our binding (shutdown, or the trunk was removed): a REGISTER with
    /// Expires: 0 when the registrar may hold one, else nothing. Ends in
    /// [`RegistrationEvent::Unregistered`] and [`Self::is_done`].
    pub fn unregister(&mut self) {
        if matches!(self.state, State::Unregistering(_) | State::Unregistered) {
            return;
        }
        let in_flight = matches!(self.state, State::Registering(_));
        self.timers.clear_all();
        self.ping = None;
        match self.hop.current() {
            Some(peer) if self.binding.is_some() || in_flight => {
                let attempt = self.transmit(peer, Attempt::fresh(0));
                self.state = State::Unregistering(attempt);
            }
            _ => self.finish(Removal::NothingToRemove),
        }
    }

    /// The next thing to do, in order; `None` when there is nothing now.
    pub fn poll_output(&mut self) -> Option<RegistrationOutput> {
        self.outputs.pop_front()
    }

    /// When [`Self::handle_timeout`] must next be called; `None`: not until another input.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Where the registration stands.
    pub fn status(&self) -> Status {
        let state = match (&self.state, self.binding) {
            (State::Unregistering(_), _) => StatusState::Unregistering,
            (State::Unregistered, _) => StatusState::Unregistered,
            (State::Failed { why }, _) => StatusState::Failed { why: *why },
            (_, Some(expires_at)) => StatusState::Registered { expires_at },
            (State::BackingOff { until, why }, None) => StatusState::BackingOff {
                until: *until,
                why: *why,
            },
            (_, None) => StatusState::Starting,
        };
        Status {
            state,
            last_response: self.last_response,
        }
    }

    /// RFC 3608: the Service-Route of the last 2xx, in order — the route set for the
    /// requests we send through this trunk later (never for REGISTER itself). Empty when
    /// the registrar sent none.
    pub fn service_route(&self) -> &[NameAddr] {
        &self.service_route
    }

    /// RFC 3327: the Path the registrar stored with our binding (from the last 2xx).
    pub fn path(&self) -> &[NameAddr] {
        &self.path
    }

    /// The next hop in use (the outbound proxy's or registrar's address), once known:
    /// where requests through this trunk go, and an address its calls come from.
    pub fn peer(&self) -> Option<Peer> {
        self.hop.current()
    }

    /// Every address the last lookup of the first hop found (the literal one when it is
    /// an IP address): where a trusted trunk's calls may come from.
    pub fn located(&self) -> &[Peer] {
        self.hop.found()
    }

    /// Our Contact as the registrar sees it: the IPv6 one when the first hop is reached
    /// over IPv6 and there is one.
    pub fn contact(&self) -> &SipUri {
        self.cfg.contact_for(self.hop.current().map(|p| p.addr))
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &RegistrationConfig {
        &self.cfg
    }

    /// The address-of-record it registers.
    pub fn aor(&self) -> &SipUri {
        &self.aor
    }

    /// Un-registered: nothing more will be sent; the owner may drop it.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Unregistered)
    }
}
