//! What arrives from the network: parsing, the §8.2 checks and their answers, matching to a
//! transaction (§17.1.3, §17.2.3) and CANCEL (§9.2).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use tracing::{debug, warn};

use super::{Endpoint, EndpointEvent, Entry, Machine, Peer, Transmit};
use crate::transaction::{InviteServer, InviteServerState, NonInviteServer, TsxKey, TsxOutput};
use crate::untrusted::Untrusted;
use crate::wire::{
    bad_request_for, check_request, datagram_head, parse_datagram_head, parse_message, response_to,
    Message, Method, ParseError, Request, Response, StatusCode, MAGIC_COOKIE,
};

impl Endpoint {
    /// The driver calls this for every UDP datagram, stamped with its receive time. A
    /// request opens or matches a server transaction and becomes an [`EndpointEvent`]; a
    /// response goes to its client transaction; an unparsable request is answered 400 (or
    /// the status its error maps to) when enough of it survives, else dropped; keep-alives
    /// are ignored. Then drain [`Self::poll_transmit`] and [`Self::poll_event`].
    pub fn handle_datagram(&mut self, now: Instant, peer: Peer, data: &[u8]) {
        match datagram_head(data) {
            Ok(None) => {}
            Ok(Some((head, rest))) => match parse_datagram_head(head, rest) {
                Ok(message) => self.handle_message(now, peer, message),
                Err(e) => self.reject_unparsable(now, peer, head.as_bytes(), &e),
            },
            Err(e) => self.reject_unparsable(now, peer, data, &ParseError::from(e)),
        }
    }

    /// The driver calls this for each message its stream framer cut from a TCP or TLS
    /// connection (`head` up to the blank line, `body` exactly Content-Length bytes); it is
    /// then handled as [`Self::handle_datagram`] handles a datagram.
    pub fn handle_framed(&mut self, now: Instant, peer: Peer, head: &[u8], body: &[u8]) {
        match parse_message(head, body) {
            Ok(message) => self.handle_message(now, peer, message),
            Err(e) => self.reject_unparsable(now, peer, head, &e),
        }
    }

    fn handle_message(&mut self, now: Instant, peer: Peer, message: Message) {
        match message {
            Message::Request(r) => self.handle_request(now, peer, r),
            Message::Response(r) => self.handle_response(now, peer, r),
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
    pub(super) fn log_bad_input_summary(&mut self, now: Instant) {
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
                self.tsxs.insert(key.clone(), Entry::boxed(machine, peer));
                if let Err(rejection) = check_request(&request, &self.cfg.supported) {
                    debug!(call_id = %Untrusted(&request.call_id), status = %rejection.status, why = %Untrusted(&rejection.why), "request rejected");
                    let tag = self.new_tag();
                    let response = rejection.response(&request, tag.as_str());
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
            Entry::boxed(
                Machine::NonInviteServer(NonInviteServer::new(reliable, self.cfg.timers)),
                peer,
            ),
        );
        let status = if in_progress.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CALL_DOES_NOT_EXIST
        };
        let tag = self.new_tag();
        let response = response_to(&cancel, status, Some(tag.as_str()));
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
