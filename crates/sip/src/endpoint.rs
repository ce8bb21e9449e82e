//! The transaction layer of one shard: owns every transaction, matches each incoming
//! message to one (RFC 3261 §17.1.3, §17.2.3, §9.2), runs their timers and tells the
//! transaction user (the call logic) what needs a decision.
//!
//! Calling contract: after every `handle_*` or TU call, drain [`Endpoint::poll_transmit`]
//! and [`Endpoint::poll_event`] until both return `None`, then wake up at
//! [`Endpoint::poll_timeout`] and call [`Endpoint::handle_timeout`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tracing::{debug, warn};

use crate::transaction::{
    InviteClient, InviteServer, InviteServerState, NonInviteClient, NonInviteServer, TimerConfig,
    TsxKey, TsxOutput,
};
use crate::untrusted::{LogLimiter, Untrusted};
use crate::wire::{
    bad_request_for, check_request, frame_datagram, parse_message, response_to, Message, Method,
    ParseError, Request, Response, StatusCode, Transport, Via, MAGIC_COOKIE,
};

/// Where a message came from or goes to. On TCP the driver maps the address to its
/// connection (one per remote address), so in-dialog requests reuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The transport it came over or goes out on.
    pub transport: Transport,
    /// The peer's address.
    pub addr: SocketAddr,
}

/// Bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send.
    pub peer: Peer,
    /// The serialised message.
    pub bytes: Bytes,
}

/// What the transaction user must handle.
#[derive(Debug, Clone)]
pub enum EndpointEvent {
    /// A new request (never an ACK) with its server transaction; answer with
    /// [`Endpoint::respond`].
    Request {
        /// The server transaction to answer through.
        key: TsxKey,
        /// The request.
        request: Request,
        /// Who sent it.
        peer: Peer,
    },
    /// An ACK outside any INVITE server transaction in Completed: the ACK for a 2xx.
    Ack {
        /// The ACK.
        request: Request,
        /// Who sent it.
        peer: Peer,
    },
    /// A CANCEL matched an INVITE still in Proceeding; the CANCEL got its 200 already,
    /// and the TU should now end the INVITE with 487 (§9.2).
    Cancelled {
        /// The INVITE server transaction the CANCEL matched.
        invite: TsxKey,
        /// The CANCEL.
        cancel: Request,
    },
    /// A response to one of our client transactions.
    Response {
        /// Our client transaction.
        key: TsxKey,
        /// The response.
        response: Response,
    },
    /// A 2xx to an INVITE that matches no transaction: a retransmission after the
    /// transaction ended, or a forgery. `peer` is only where it came from, which anyone
    /// can claim: the TU acts only when the response matches a dialog of its own, and
    /// then sends to addresses it chose itself (never to this `peer` or the Contact).
    StrayResponse {
        /// The response.
        response: Response,
        /// Where it claims to come from.
        peer: Peer,
    },
    /// Timer B/F (no answer to our request) or H (no ACK for our non-2xx final response).
    Timeout {
        /// The transaction that timed out.
        key: TsxKey,
    },
}

#[derive(Debug, Clone)]
/// How an [`Endpoint`] behaves: its timers and what it writes in its Via.
pub struct EndpointConfig {
    /// RFC 3261 timer values (T1, T2, T4).
    pub timers: TimerConfig,
    /// Option tags we implement, for Require checks and our Supported header.
    pub supported: Vec<String>,
    /// Host and port we put in our Via headers.
    pub via_host: String,
    /// The port our Via carries.
    pub via_port: u16,
    /// The port our Via carries for requests over TLS (`None`: `via_port`).
    pub via_tls_port: Option<u16>,
    /// The host our Via carries for requests to IPv6 peers (`None`: `via_host`).
    pub via_host_v6: Option<String>,
    /// Seed for tags and branches, so tests are reproducible.
    pub seed: u64,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            timers: TimerConfig::default(),
            supported: vec!["replaces".into(), "norefersub".into()],
            via_host: "127.0.0.1".into(),
            via_port: 5060,
            via_tls_port: None,
            via_host_v6: None,
            seed: 0,
        }
    }
}

enum Machine {
    InviteServer(InviteServer),
    NonInviteServer(NonInviteServer),
    /// The INVITE is kept to build the ACK for a non-2xx answer (§17.1.1.3).
    InviteClient {
        tsx: InviteClient,
        request: Box<Request>,
    },
    NonInviteClient(NonInviteClient),
}

struct Entry {
    machine: Machine,
    peer: Peer,
    /// The deadline this entry has in the heap, so stale heap entries can be skipped.
    armed: Option<Instant>,
}

impl Entry {
    fn poll_timeout(&self) -> Option<Instant> {
        match &self.machine {
            Machine::InviteServer(m) => m.poll_timeout(),
            Machine::NonInviteServer(m) => m.poll_timeout(),
            Machine::InviteClient { tsx, .. } => tsx.poll_timeout(),
            Machine::NonInviteClient(m) => m.poll_timeout(),
        }
    }
}

/// All transactions of one shard: the driver feeds it datagrams, stream frames and timeouts
/// with the current time, and drains what to send, what happened and when to wake. See the
/// crate documentation for the run loop.
pub struct Endpoint {
    cfg: EndpointConfig,
    tsxs: HashMap<TsxKey, Entry>,
    /// Min-heap of (deadline, key); one entry per armed transaction plus stale ones.
    timers: BinaryHeap<Reverse<(Instant, TsxKey)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<EndpointEvent>,
    rng: SmallRng,
    /// Lines about unparsable or rejected messages: a few per interval, then a summary.
    bad_input: LogLimiter,
}

/// Unparsable or rejected messages logged one by one per [`BAD_INPUT_LOG_INTERVAL`];
/// the rest are counted into one summary line.
pub const BAD_INPUT_LOG_BURST: u32 = 10;
/// The interval of the bad-input summary lines.
pub const BAD_INPUT_LOG_INTERVAL: Duration = Duration::from_secs(10);

impl Endpoint {
    /// An endpoint with no transactions.
    pub fn new(cfg: EndpointConfig) -> Self {
        let rng = SmallRng::seed_from_u64(cfg.seed);
        Self {
            cfg,
            tsxs: HashMap::new(),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            rng,
            bad_input: LogLimiter::new(BAD_INPUT_LOG_INTERVAL, BAD_INPUT_LOG_BURST),
        }
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    /// Live transactions, for metrics and tests.
    pub fn transaction_count(&self) -> usize {
        self.tsxs.len()
    }

    /// A datagram arrived.
    pub fn handle_datagram(&mut self, now: Instant, peer: Peer, data: &[u8]) {
        match frame_datagram(data) {
            Ok(None) => {}
            Ok(Some(f)) => self.handle_framed(now, peer, f.head, f.body),
            Err(e) => self.reject_unparsable(now, peer, data, &ParseError::from(e)),
        }
    }

    /// A message framed by the driver (a stream transport).
    pub fn handle_framed(&mut self, now: Instant, peer: Peer, head: &[u8], body: &[u8]) {
        match parse_message(head, body) {
            Ok(Message::Request(r)) => self.handle_request(now, peer, r),
            Ok(Message::Response(r)) => self.handle_response(now, peer, r),
            Err(e) => self.reject_unparsable(now, peer, head, &e),
        }
    }

    fn reject_unparsable(&mut self, now: Instant, peer: Peer, raw: &[u8], error: &ParseError) {
        let answer = bad_request_for(raw, error.status(), &error.to_string());
        self.log_bad_input_summary(now);
        if self.bad_input.admit(now) {
            // The error quotes the peer's text: bounded and escaped.
            let error = Untrusted(error);
            match answer {
                Some(_) => {
                    warn!(%error, from = %peer.addr, "unparsable request answered {}", error.0.status())
                }
                None => warn!(%error, from = %peer.addr, "unparsable message dropped"),
            }
        }
        if let Some(bytes) = answer {
            self.transmits.push_back(Transmit { peer, bytes });
        }
    }

    /// The summary line of a bad-input interval that ended, if it held unlogged messages.
    fn log_bad_input_summary(&mut self, now: Instant) {
        if let Some(s) = self.bad_input.poll_summary(now) {
            warn!(
                malformed = s.seen,
                not_logged = s.suppressed,
                "{} malformed or rejected messages in the last {} s ({} not logged one by one)",
                s.seen,
                s.interval.as_secs(),
                s.suppressed
            );
        }
    }

    fn handle_request(&mut self, now: Instant, source: Peer, mut request: Request) {
        if let Some(top) = request.vias.first_mut() {
            top.stamp_source(source.addr);
        }
        let peer = reply_peer(&request, source);
        let key = TsxKey::server(&request);
        if let Some(entry) = self.tsxs.get_mut(&key) {
            let out = match (&mut entry.machine, &request.method) {
                (Machine::InviteServer(m), Method::Ack) => m.handle_ack(now),
                (Machine::InviteServer(m), Method::Invite) => m.handle_invite_retransmission(),
                (Machine::NonInviteServer(m), _) => m.handle_request_retransmission(),
                _ => None,
            };
            match out {
                Some(TsxOutput::Transmit(bytes)) => self.transmits.push_back(Transmit {
                    peer: entry.peer,
                    bytes,
                }),
                Some(TsxOutput::Deliver) => {
                    self.events.push_back(EndpointEvent::Ack { request, peer })
                }
                _ => {}
            }
            self.rearm(&key);
            return;
        }
        match request.method {
            Method::Ack => self.events.push_back(EndpointEvent::Ack { request, peer }),
            Method::Cancel => self.handle_cancel(now, peer, key, request),
            _ => {
                let reliable = peer.transport.is_reliable();
                let machine = if request.method == Method::Invite {
                    Machine::InviteServer(InviteServer::new(reliable, self.cfg.timers))
                } else {
                    Machine::NonInviteServer(NonInviteServer::new(reliable, self.cfg.timers))
                };
                self.tsxs.insert(
                    key.clone(),
                    Entry {
                        machine,
                        peer,
                        armed: None,
                    },
                );
                let supported: Vec<&str> = self.cfg.supported.iter().map(String::as_str).collect();
                if let Err(rejection) = check_request(&request, &supported) {
                    debug!(call_id = %Untrusted(&request.call_id), status = %rejection.status, why = %Untrusted(&rejection.why), "request rejected");
                    let tag = self.new_tag();
                    let response = rejection.response(&request, &tag);
                    self.respond(now, &key, response);
                    return;
                }
                self.events
                    .push_back(EndpointEvent::Request { key, request, peer });
            }
        }
    }

    /// §9.2: a CANCEL is answered by the server that received it; it matches the INVITE
    /// with the same branch and sent-by, and has no effect once a final answer was sent.
    fn handle_cancel(&mut self, now: Instant, peer: Peer, key: TsxKey, cancel: Request) {
        let invite = TsxKey::cancelled_invite(&cancel);
        let in_progress = match self.tsxs.get(&invite).map(|e| &e.machine) {
            Some(Machine::InviteServer(m)) => Some(m.state() == InviteServerState::Proceeding),
            _ => None,
        };
        let reliable = peer.transport.is_reliable();
        self.tsxs.insert(
            key.clone(),
            Entry {
                machine: Machine::NonInviteServer(NonInviteServer::new(reliable, self.cfg.timers)),
                peer,
                armed: None,
            },
        );
        let status = if in_progress.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CALL_DOES_NOT_EXIST
        };
        let tag = self.new_tag();
        let response = response_to(&cancel, status, Some(&tag));
        self.respond(now, &key, response);
        if in_progress == Some(true) {
            self.events
                .push_back(EndpointEvent::Cancelled { invite, cancel });
        }
    }

    fn handle_response(&mut self, now: Instant, source: Peer, response: Response) {
        // §18.1.2: a response whose top Via is not ours is discarded.
        let ours = response
            .top_via()
            .is_some_and(|v| v.branch().is_some_and(|b| b.starts_with(MAGIC_COOKIE)));
        let key = match TsxKey::for_response(&response) {
            Some(k) if ours => k,
            _ => {
                debug!(from = %source.addr, "response without our Via dropped");
                return;
            }
        };
        let Some(entry) = self.tsxs.get_mut(&key) else {
            if response.cseq.method == Method::Invite && response.status.is_success() {
                self.events.push_back(EndpointEvent::StrayResponse {
                    response,
                    peer: source,
                });
            }
            return;
        };
        let peer = entry.peer;
        let outputs = match &mut entry.machine {
            Machine::InviteClient { tsx, request } => {
                let request = &*request;
                tsx.handle_response(now, response.status, || {
                    non_2xx_ack(request, &response).to_bytes()
                })
            }
            Machine::NonInviteClient(m) => m
                .handle_response(now, response.status)
                .into_iter()
                .collect(),
            _ => Vec::new(),
        };
        for out in outputs {
            match out {
                TsxOutput::Transmit(bytes) => self.transmits.push_back(Transmit { peer, bytes }),
                TsxOutput::Deliver => self.events.push_back(EndpointEvent::Response {
                    key: key.clone(),
                    response: response.clone(),
                }),
                _ => {}
            }
        }
        self.rearm(&key);
    }

    /// Sends `response` through the server transaction `key`.
    pub fn respond(&mut self, now: Instant, key: &TsxKey, response: Response) {
        let Some(entry) = self.tsxs.get_mut(key) else {
            debug!(status = %response.status, "response for a finished transaction not sent");
            return;
        };
        let bytes = response.to_bytes();
        let outputs = match &mut entry.machine {
            Machine::InviteServer(m) => m.send_response(now, response.status, bytes),
            Machine::NonInviteServer(m) => m
                .send_response(now, response.status, bytes)
                .into_iter()
                .collect(),
            _ => Vec::new(),
        };
        for out in outputs {
            if let TsxOutput::Transmit(bytes) = out {
                self.transmits.push_back(Transmit {
                    peer: entry.peer,
                    bytes,
                });
            }
        }
        self.rearm(key);
    }

    /// Starts a client transaction for `request` (not ACK) towards `peer`, adding our Via
    /// with a fresh branch. Returns the transaction's key.
    pub fn send_request(&mut self, now: Instant, mut request: Request, peer: Peer) -> TsxKey {
        let via = self.new_via(peer);
        let branch = via.branch().unwrap_or_default().to_owned();
        request.vias.insert(0, via);
        let key = TsxKey::client(&branch, &request.method);
        let reliable = peer.transport.is_reliable();
        let bytes = request.to_bytes();
        let (machine, first) = if request.method == Method::Invite {
            let (tsx, first) = InviteClient::start(now, bytes, reliable, self.cfg.timers);
            (
                Machine::InviteClient {
                    tsx,
                    request: Box::new(request),
                },
                first,
            )
        } else {
            let (tsx, first) = NonInviteClient::start(now, bytes, reliable, self.cfg.timers);
            (Machine::NonInviteClient(tsx), first)
        };
        if let TsxOutput::Transmit(bytes) = first {
            self.transmits.push_back(Transmit { peer, bytes });
        }
        self.tsxs.insert(
            key.clone(),
            Entry {
                machine,
                peer,
                armed: None,
            },
        );
        self.rearm(&key);
        key
    }

    /// §9.1: cancels our INVITE `invite` (still without a final answer) with a CANCEL that
    /// copies its Request-URI, top Via, Call-ID, From, To, CSeq number and Route, sent as a
    /// non-INVITE client transaction of its own. `None` when the INVITE is not ours or
    /// already finished.
    pub fn cancel(&mut self, now: Instant, invite: &TsxKey) -> Option<TsxKey> {
        let entry = self.tsxs.get(invite)?;
        let Machine::InviteClient { tsx, request } = &entry.machine else {
            return None;
        };
        // §9.1: only a request still waiting for its final response is cancelled.
        if !matches!(
            tsx.state(),
            crate::transaction::InviteClientState::Calling
                | crate::transaction::InviteClientState::Proceeding
        ) {
            return None;
        }
        let mut headers = crate::wire::Headers::new();
        for route in request.headers.get_all(&crate::wire::HeaderName::ROUTE) {
            headers.push(crate::wire::HeaderName::ROUTE, route);
        }
        let cancel = Request {
            method: Method::Cancel,
            uri: request.uri.clone(),
            vias: request.vias.first().cloned().into_iter().collect(),
            from: request.from.clone(),
            to: request.to.clone(),
            call_id: request.call_id.clone(),
            cseq: crate::wire::CSeq {
                seq: request.cseq.seq,
                method: Method::Cancel,
            },
            max_forwards: Some(70),
            headers,
            body: Bytes::new(),
        };
        let peer = entry.peer;
        let branch = cancel.vias.first()?.branch()?.to_owned();
        let key = TsxKey::client(&branch, &Method::Cancel);
        let reliable = peer.transport.is_reliable();
        let (tsx, first) =
            NonInviteClient::start(now, cancel.to_bytes(), reliable, self.cfg.timers);
        if let TsxOutput::Transmit(bytes) = first {
            self.transmits.push_back(Transmit { peer, bytes });
        }
        self.tsxs.insert(
            key.clone(),
            Entry {
                machine: Machine::NonInviteClient(tsx),
                peer,
                armed: None,
            },
        );
        self.rearm(&key);
        Some(key)
    }

    /// Sends bytes outside any transaction: the ACK for a 2xx, 2xx retransmissions.
    pub fn send_raw(&mut self, peer: Peer, bytes: Bytes) {
        self.transmits.push_back(Transmit { peer, bytes });
    }

    /// A Via for a new request of ours to `peer`, with a fresh RFC 3261 branch. RFC 3261
    /// §18.1.1: it names where responses reach us — over TLS our TLS port, to an IPv6
    /// peer our IPv6 host.
    pub fn new_via(&mut self, peer: Peer) -> Via {
        let branch = format!("{MAGIC_COOKIE}{:016x}", self.rng.gen::<u64>());
        let host = match &self.cfg.via_host_v6 {
            Some(v6) if peer.addr.is_ipv6() => v6.clone(),
            _ => self.cfg.via_host.clone(),
        };
        let port = match (peer.transport, self.cfg.via_tls_port) {
            (Transport::Tls, Some(p)) => p,
            _ => self.cfg.via_port,
        };
        Via::new(peer.transport, host, Some(port), &branch)
    }

    /// Where transaction `key` sends: for one of our client transactions, the next hop
    /// we chose when we sent the request.
    pub fn peer_of(&self, key: &TsxKey) -> Option<Peer> {
        self.tsxs.get(key).map(|e| e.peer)
    }

    /// A fresh random tag for a From or To.
    pub fn new_tag(&mut self) -> String {
        format!("{:012x}", self.rng.gen::<u64>() & 0xffff_ffff_ffff)
    }

    /// A random number from the endpoint's generator (branches, Call-IDs, cnonces).
    pub fn random_u64(&mut self) -> u64 {
        self.rng.gen()
    }

    /// Next message to send; the driver drains this until `None` after every input.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next thing the application must decide; drained like [`Self::poll_transmit`].
    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must next be called; `None` when nothing is pending.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let summary = self.bad_input.poll_timeout();
        // Drop stale heap entries so the answer is the real next deadline.
        while let Some(Reverse((at, key))) = self.timers.peek() {
            if self.tsxs.get(key).is_some_and(|e| e.armed == Some(*at)) {
                return Some(summary.map_or(*at, |s| s.min(*at)));
            }
            self.timers.pop();
        }
        summary
    }

    /// Called by the driver at (or after) the deadline from [`Self::poll_timeout`]: fires every
    /// due timer.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.log_bad_input_summary(now);
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, key))) = self.timers.pop() else {
                break;
            };
            let Some(entry) = self.tsxs.get_mut(&key) else {
                continue;
            };
            if entry.armed != Some(at) {
                continue;
            }
            entry.armed = None;
            let outputs = match &mut entry.machine {
                Machine::InviteServer(m) => m.handle_timeout(now),
                Machine::NonInviteServer(m) => m.handle_timeout(now).into_iter().collect(),
                Machine::InviteClient { tsx, .. } => tsx.handle_timeout(now),
                Machine::NonInviteClient(m) => m.handle_timeout(now),
            };
            let peer = entry.peer;
            let mut finished = false;
            for out in outputs {
                match out {
                    TsxOutput::Transmit(bytes) => {
                        self.transmits.push_back(Transmit { peer, bytes })
                    }
                    TsxOutput::Timeout => {
                        finished = true;
                        self.events
                            .push_back(EndpointEvent::Timeout { key: key.clone() });
                    }
                    TsxOutput::Terminated => finished = true,
                    TsxOutput::Deliver => {}
                }
            }
            if finished {
                self.tsxs.remove(&key);
            } else {
                self.rearm(&key);
            }
        }
    }

    fn rearm(&mut self, key: &TsxKey) {
        let Some(entry) = self.tsxs.get_mut(key) else {
            return;
        };
        let next = entry.poll_timeout();
        if next != entry.armed {
            entry.armed = next;
            if let Some(at) = next {
                self.timers.push(Reverse((at, key.clone())));
            }
        }
    }
}

/// RFC 3261 §18.2.2 (with RFC 3581): where responses to `request` go. Over TCP, back on
/// the connection it came from. Over UDP, to the source address when the client asked for
/// `rport`, else to `received` (the source IP) at the sent-by port.
fn reply_peer(request: &Request, source: Peer) -> Peer {
    if source.transport.is_reliable() {
        return source;
    }
    match request.top_via() {
        Some(via) if via.rport().is_none() => {
            let port = via.port.unwrap_or(5060);
            Peer {
                transport: source.transport,
                addr: SocketAddr::new(source.addr.ip(), port),
            }
        }
        _ => source,
    }
}

/// §17.1.1.3: the ACK a client transaction sends for a non-2xx final response.
fn non_2xx_ack(invite: &Request, response: &Response) -> Request {
    let mut headers = crate::wire::Headers::new();
    for route in invite.headers.get_all(&crate::wire::HeaderName::ROUTE) {
        headers.push(crate::wire::HeaderName::ROUTE, route);
    }
    Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        vias: invite.vias.first().cloned().into_iter().collect(),
        from: invite.from.clone(),
        to: response.to.clone(),
        call_id: invite.call_id.clone(),
        cseq: crate::wire::CSeq {
            seq: invite.cseq.seq,
            method: Method::Ack,
        },
        max_forwards: Some(70),
        headers,
        body: Bytes::new(),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "a test's base instant")]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn our_via_names_the_tls_port_over_tls_and_the_ipv6_host_to_ipv6_peers() {
        // RFC 3261 §18.1.1: the Via's sent-by is where the response must reach us.
        let mut ep = Endpoint::new(EndpointConfig {
            via_host: "192.0.2.1".into(),
            via_port: 5060,
            via_tls_port: Some(5061),
            via_host_v6: Some("[2001:db8::1]".into()),
            ..EndpointConfig::default()
        });
        let udp4 = Peer {
            transport: Transport::Udp,
            addr: "198.51.100.7:5060".parse().unwrap(),
        };
        let tls4 = Peer {
            transport: Transport::Tls,
            ..udp4
        };
        let udp6 = Peer {
            transport: Transport::Udp,
            addr: "[2001:db8::7]:5060".parse().unwrap(),
        };
        assert_eq!(ep.new_via(udp4).sent_by(), "192.0.2.1:5060");
        assert_eq!(ep.new_via(tls4).sent_by(), "192.0.2.1:5061");
        assert_eq!(ep.new_via(udp6).sent_by(), "[2001:db8::1]:5060");
    }

    const INVITE: &str = concat!(
        "INVITE sip:ivr@127.0.0.1 SIP/2.0\r\n",
        "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKinv1;rport\r\n",
        "From: <sip:alice@127.0.0.1>;tag=a1\r\n",
        "To: <sip:ivr@127.0.0.1>\r\n",
        "Call-ID: e1\r\n",
        "CSeq: 1 INVITE\r\n",
        "Max-Forwards: 70\r\n",
        "\r\n"
    );

    fn peer() -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: "127.0.0.1:5061".parse().unwrap(),
        }
    }

    fn drain(ep: &mut Endpoint) -> (Vec<String>, Vec<EndpointEvent>) {
        let mut sent = Vec::new();
        while let Some(t) = ep.poll_transmit() {
            sent.push(String::from_utf8_lossy(&t.bytes).into_owned());
        }
        let mut events = Vec::new();
        while let Some(e) = ep.poll_event() {
            events.push(e);
        }
        (sent, events)
    }

    fn invite_key(ep: &mut Endpoint, now: Instant) -> (TsxKey, Request) {
        ep.handle_datagram(now, peer(), INVITE.as_bytes());
        let (_, events) = drain(ep);
        match events.into_iter().next() {
            Some(EndpointEvent::Request { key, request, .. }) => (key, request),
            other => panic!("expected the INVITE, got {other:?}"),
        }
    }

    #[test]
    fn invite_retransmission_is_absorbed_and_answered_with_the_last_provisional() {
        let now = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let (key, invite) = invite_key(&mut ep, now);
        ep.respond(
            now,
            &key,
            response_to(&invite, StatusCode::RINGING, Some("t1")),
        );
        drain(&mut ep);
        ep.handle_datagram(now, peer(), INVITE.as_bytes());
        let (sent, events) = drain(&mut ep);
        assert!(events.is_empty(), "a retransmission is not a new request");
        assert_eq!(sent.len(), 1);
        assert!(sent[0].starts_with("SIP/2.0 180 Ringing"));
        assert!(
            sent[0].contains("received=127.0.0.1;rport=5061") || sent[0].contains("rport=5061")
        );
    }

    #[test]
    fn cancel_gets_200_and_the_tu_is_told() {
        let now = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let (key, _) = invite_key(&mut ep, now);
        let cancel = INVITE
            .replace("INVITE sip", "CANCEL sip")
            .replace("1 INVITE", "1 CANCEL");
        ep.handle_datagram(now, peer(), cancel.as_bytes());
        let (sent, events) = drain(&mut ep);
        assert!(sent[0].starts_with("SIP/2.0 200 OK") && sent[0].contains("CSeq: 1 CANCEL"));
        assert!(matches!(&events[0], EndpointEvent::Cancelled { invite, .. } if *invite == key));
    }

    #[test]
    fn cancel_for_an_unknown_invite_gets_481() {
        let now = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let cancel = INVITE
            .replace("INVITE sip", "CANCEL sip")
            .replace("1 INVITE", "1 CANCEL");
        ep.handle_datagram(now, peer(), cancel.as_bytes());
        let (sent, events) = drain(&mut ep);
        assert!(sent[0].starts_with("SIP/2.0 481"));
        assert!(events.is_empty());
    }

    #[test]
    fn garbage_with_usable_headers_gets_400_and_pure_garbage_nothing() {
        let now = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let broken = INVITE.replace("CSeq: 1 INVITE", "CSeq: one INVITE");
        ep.handle_datagram(now, peer(), broken.as_bytes());
        let (sent, _) = drain(&mut ep);
        assert!(
            sent[0].starts_with("SIP/2.0 400 Bad Request"),
            "{}",
            sent[0]
        );
        ep.handle_datagram(now, peer(), b"\x00\xff garbage \r\n\r\n");
        assert_eq!(drain(&mut ep).0.len(), 0);
    }

    #[test]
    fn non_2xx_final_is_retransmitted_by_timer_g_through_the_endpoint() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let (key, invite) = invite_key(&mut ep, t0);
        ep.respond(t0, &key, response_to(&invite, StatusCode(486), Some("t")));
        drain(&mut ep);
        let mut retransmits = Vec::new();
        let mut timed_out = false;
        while let Some(at) = ep.poll_timeout() {
            ep.handle_timeout(at);
            let (sent, events) = drain(&mut ep);
            retransmits.extend(sent.iter().map(|_| (at - t0).as_millis()));
            timed_out |= events
                .iter()
                .any(|e| matches!(e, EndpointEvent::Timeout { .. }));
        }
        assert_eq!(&retransmits[..4], &[500, 1500, 3500, 7500]);
        assert!(timed_out, "timer H reports the missing ACK");
        assert_eq!(ep.transaction_count(), 0);
    }

    #[test]
    fn client_transaction_gets_its_response_and_unknown_branches_are_dropped() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(EndpointConfig::default());
        let (_, invite) = invite_key(&mut ep, t0);
        let mut bye = invite.clone();
        bye.method = Method::Bye;
        bye.cseq = crate::wire::CSeq {
            seq: 2,
            method: Method::Bye,
        };
        bye.vias.clear();
        let key = ep.send_request(t0, bye, peer());
        let (sent, _) = drain(&mut ep);
        let parsed = match crate::wire::parse_datagram(sent[0].as_bytes())
            .unwrap()
            .unwrap()
        {
            Message::Request(r) => r,
            _ => unreachable!(),
        };
        let ok = response_to(&parsed, StatusCode::OK, None).to_bytes();
        ep.handle_datagram(t0 + Duration::from_millis(10), peer(), &ok);
        let (_, events) = drain(&mut ep);
        assert!(
            matches!(&events[0], EndpointEvent::Response { key: k, response } if *k == key && response.status == StatusCode::OK)
        );
    }
}
