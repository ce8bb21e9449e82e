//! A testkit for whole calls through a [`Switch`] in virtual time: the switch and a virtual
//! clock, everything it sends captured (SIP by destination, RTP, records, ports, HTTP
//! requests), and scripted peers — callers ([`Caller`]), a bridge target ([`Desk`]) and the
//! customer API (answered by the test through [`Kit::http_reply`] and friends).
//!
//! Test files use it with `mod testkit;`. Every call to a [`Switch`] method is in this
//! file, in the section marked "the switch's inputs and outputs": when the switch's calling
//! contract changes, only that section changes.
//!
//! No sockets, no sleeps: time moves only by [`Kit::advance`], which fires every deadline
//! the switch asked for on the way, at its exact time.
#![allow(dead_code, reason = "each test binary uses its own part of the kit")]
#![allow(
    clippy::disallowed_methods,
    reason = "the kit's one base instant; the rest is virtual time"
)]

pub(crate) mod rtp;
pub(crate) mod sip;
pub(crate) mod vip;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use concierge_b2bua::{
    CallRecord, CallRef, Command, Input, Output, PortError, Program, Resolve, Switch, SwitchConfig,
    SwitchStats, TransferMode, WallClock,
};
use concierge_flow::{HttpFailure, HttpRequest, HttpResponse};
use concierge_sip::wire::{parse_datagram, Message, Request, Response, Transport};
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
    pub(crate) records: Vec<CallRecord>,
    /// RTP ports bound now (opened and not yet closed).
    pub(crate) open_ports: Vec<u16>,
    /// Every port the switch asked to open, and to close, in order.
    pub(crate) opened: Vec<u16>,
    pub(crate) closed: Vec<u16>,
    /// Ports "another program" holds: binding them fails.
    pub(crate) held_ports: Vec<u16>,
    /// Requests not answered yet, oldest first.
    pub(crate) http: VecDeque<HttpCall>,
    /// Every request the switch asked for.
    pub(crate) http_log: Vec<HttpCall>,
    /// Names the switch asked to resolve (RFC 3263), not answered yet.
    pub(crate) resolves: VecDeque<Resolve>,
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
        for law in [concierge_prompts::Law::Alaw, concierge_prompts::Law::Ulaw] {
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
        Self {
            switch: Switch::new(cfg, wall, program),
            base,
            now: base,
            sip: Vec::new(),
            prompt_bytes,
            rtp: Vec::new(),
            records: Vec::new(),
            open_ports: Vec::new(),
            opened: Vec::new(),
            closed: Vec::new(),
            held_ports: Vec::new(),
            http: VecDeque::new(),
            http_log: Vec::new(),
            resolves: VecDeque::new(),
            deadline: None,
        }
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

// ---- The switch's inputs and outputs: the one place that calls its methods ----------------

impl Kit {
    /// Hands the switch `input` at the kit's now and takes everything it has to say.
    fn input(&mut self, input: Input<'_>) {
        self.switch.handle_input(self.now, input);
        self.drain();
    }

    /// A SIP datagram from `from`.
    pub(crate) fn sip_from(&mut self, from: SocketAddr, text: &str) {
        let peer = Peer {
            transport: Transport::Udp,
            addr: from,
        };
        self.input(Input::Datagram {
            peer,
            data: text.as_bytes(),
        });
    }

    /// A SIP message framed from a stream connection of `peer` (TCP, TLS);
    /// `authenticated`: its client certificate was verified.
    pub(crate) fn sip_framed(&mut self, peer: Peer, head: &[u8], body: &[u8], authenticated: bool) {
        self.input(Input::Stream {
            peer,
            head,
            body,
            authenticated,
        });
    }

    /// A datagram from `from` on our RTP port `port`.
    pub(crate) fn rtp_in(&mut self, port: u16, from: SocketAddr, packet: &[u8]) {
        self.input(Input::Rtp {
            port,
            from,
            data: packet,
        });
    }

    fn input_http(&mut self, call: CallRef, result: Result<HttpResponse, HttpFailure>) {
        self.input(Input::Http { call, result });
    }

    /// Answers the oldest name lookup the switch asked for.
    pub(crate) fn resolved(&mut self, result: Result<Vec<Peer>, String>) {
        let r = self.resolves.pop_front().expect("a name to resolve");
        self.answer_resolve(r.id, result);
    }

    /// Answers name lookup `id` (taken from [`Self::resolves`] already, or a duplicate).
    pub(crate) fn answer_resolve(&mut self, id: u64, result: Result<Vec<Peer>, String>) {
        self.input(Input::Resolved { id, result });
    }

    /// The wake-up the last drain ended with.
    fn next_deadline(&mut self) -> Option<Instant> {
        self.deadline
    }

    fn fire(&mut self) {
        self.input(Input::Timeout);
    }

    /// Drains the switch's outputs until its wake-up time, as a driver does. Ports it asks
    /// for are bound after the drain (or fail, when another program holds them) and
    /// reported as inputs, whose outputs are drained in turn.
    fn drain(&mut self) {
        loop {
            let mut to_bind = Vec::new();
            loop {
                match self.switch.poll_output() {
                    Output::Timeout(at) => {
                        self.deadline = at;
                        break;
                    }
                    Output::MediaOpen { port } => {
                        self.opened.push(port);
                        to_bind.push(port);
                    }
                    other => self.take(other),
                }
            }
            if to_bind.is_empty() {
                return;
            }
            for port in to_bind {
                let input = if self.held_ports.contains(&port) {
                    Input::PortFailed {
                        port,
                        error: PortError::InUse,
                    }
                } else {
                    self.open_ports.push(port);
                    Input::PortBound { port }
                };
                self.switch.handle_input(self.now, input);
            }
        }
    }

    fn take(&mut self, output: Output) {
        match output {
            Output::Sip(t) => {
                let message = parse_datagram(&t.bytes)
                    .expect("the switch sends valid SIP")
                    .expect("a whole message");
                self.sip.push(Sent {
                    at: self.now,
                    to: t.peer.addr,
                    transport: t.peer.transport,
                    message,
                    read: false,
                });
            }
            Output::Record(r) => self.records.push(*r),
            Output::MediaClose { port } => {
                self.closed.push(port);
                self.open_ports.retain(|p| *p != port);
            }
            Output::Rtp { port, to, packet } => self.rtp.push(RtpSent {
                at: self.now,
                port,
                to,
                packet,
            }),
            Output::Http { call, request } => {
                let call = HttpCall {
                    call,
                    request: *request,
                    at: self.now,
                };
                self.http_log.push(call.clone());
                self.http.push_back(call);
            }
            Output::Resolve(r) => self.resolves.push_back(r),
            Output::MediaOpen { .. } | Output::Timeout(_) => {
                unreachable!("handled by the drain")
            }
        }
    }

    fn command(&mut self, command: Command<'_>) {
        self.input(Input::Command(command));
    }

    /// Stop taking calls (new INVITEs get 503); calls in progress run to their end.
    pub(crate) fn start_draining(&mut self) {
        self.command(Command::Drain);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.switch.is_draining()
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.switch.is_idle()
    }

    pub(crate) fn call_count(&self) -> usize {
        self.switch.call_count()
    }

    pub(crate) fn stats(&self) -> SwitchStats {
        self.switch.stats()
    }

    pub(crate) fn refused_invites(&self) -> u64 {
        self.switch.refused_invites()
    }

    /// Installs a new program (a reload).
    pub(crate) fn set_program(&mut self, program: Program) {
        self.command(Command::Install(Box::new(program)));
    }

    pub(crate) fn set_overloaded(&mut self, on: bool) {
        self.command(Command::Overloaded(on));
    }

    /// Moves call `call` to `target` (the driver's transfer command).
    pub(crate) fn transfer(&mut self, call: CallRef, mode: TransferMode, target: &str) {
        self.command(Command::Transfer { call, mode, target });
    }

    /// Ends answered call `call` from our side with BYE.
    pub(crate) fn hang_up(&mut self, call: CallRef, why: &str) {
        self.command(Command::HangUp { call, why });
    }

    /// Ends every call (a shutdown): BYE or 503.
    pub(crate) fn hang_up_all(&mut self, why: &str) {
        self.command(Command::HangUpAll { why });
    }

    /// Drops every call still here, each with its record (the last step of a shutdown).
    pub(crate) fn abandon_all(&mut self) {
        self.command(Command::AbandonAll);
    }
}

// ---- Reading what was sent -----------------------------------------------------------------

pub(crate) fn response(m: &Message) -> &Response {
    match m {
        Message::Response(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

pub(crate) fn request(m: &Message) -> &Request {
    match m {
        Message::Request(r) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

/// The status codes among `out`, in order.
pub(crate) fn statuses(out: &[Message]) -> Vec<u16> {
    out.iter()
        .filter_map(|m| match m {
            Message::Response(r) => Some(r.status.0),
            _ => None,
        })
        .collect()
}

/// `"200 INVITE"`-style summaries of the responses among `out`.
pub(crate) fn answers(out: &[Message]) -> Vec<String> {
    out.iter()
        .filter_map(|m| match m {
            Message::Response(r) => Some(format!("{} {}", r.status.0, r.cseq.method.as_str())),
            _ => None,
        })
        .collect()
}

/// The methods of the requests among `out`, in order.
pub(crate) fn methods(out: &[Message]) -> Vec<String> {
    out.iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r.method.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

/// The first `method` request among `out`.
pub(crate) fn find_request(out: &[Message], method: &str) -> Request {
    out.iter()
        .find_map(|m| match m {
            Message::Request(r) if r.method.as_str() == method => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {method} in {:?}", methods(out)))
}

/// The first response with `code` among `out`.
pub(crate) fn find_response(out: &[Message], code: u16) -> Response {
    out.iter()
        .find_map(|m| match m {
            Message::Response(r) if r.status.0 == code => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {code} in {:?}", statuses(out)))
}

/// A header of a request or response.
pub(crate) fn header<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    let name = concierge_sip::wire::HeaderName::new(name);
    match m {
        Message::Request(r) => r.header(&name),
        Message::Response(r) => r.header(&name),
    }
}

/// The port of the `m=audio` line of an SDP body.
pub(crate) fn sdp_port(body: &[u8]) -> Option<u16> {
    String::from_utf8_lossy(body)
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next()?.parse().ok())
}

/// The payload types of the `m=audio` line of an SDP body, in order.
pub(crate) fn sdp_formats(body: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(body)
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .map(|r| {
            r.split(' ')
                .skip(2)
                .filter_map(|f| f.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The direction attribute of an SDP body (`sendrecv` when none is written).
pub(crate) fn sdp_direction(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    ["sendrecv", "sendonly", "recvonly", "inactive"]
        .into_iter()
        .find(|d| text.lines().any(|l| l == format!("a={d}")))
        .unwrap_or("sendrecv")
        .to_owned()
}

/// A record's path as `node(exit) > node(exit)`; `-` for a node left without an exit.
pub(crate) fn path(rec: &CallRecord) -> String {
    rec.path
        .iter()
        .map(|s| format!("{}({})", s.node, s.exit.as_deref().unwrap_or("-")))
        .collect::<Vec<_>>()
        .join(" > ")
}

/// A flow variable of a record.
pub(crate) fn var<'a>(rec: &'a CallRecord, name: &str) -> Option<&'a str> {
    rec.variables
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
