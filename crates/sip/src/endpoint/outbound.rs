//! What the transaction user starts: responses through server transactions, new client
//! transactions and CANCELs of our INVITEs.

use std::time::Instant;

use bytes::Bytes;
use tracing::debug;

use super::{Endpoint, Entry, Machine, Peer, Transmit};
use crate::transaction::{InviteClient, NonInviteClient, TsxKey, TsxOutput};
use crate::wire::{Method, Request, Response};

impl Endpoint {
    /// The transaction user answers the request of server transaction `key` (from an
    /// [`EndpointEvent::Request`](super::EndpointEvent::Request)) with `response`; the transaction sends it, and
    /// retransmits a non-2xx final answer over UDP until the ACK (§17.2.1) — a 2xx is
    /// retransmitted by the dialog layer ([`crate::dialog::AnswerRetransmit`]). A response
    /// for a transaction that already ended is logged and dropped.
    pub fn respond(&mut self, now: Instant, key: &TsxKey, response: Response) {
        let Some(entry) = self.tsxs.get_mut(key) else {
            debug!(status = %response.status, "response for a finished transaction not sent");
            return;
        };
        let bytes = response.to_bytes();
        let output = match &mut entry.machine {
            Machine::InviteServer(m) => m.send_response(now, response.status, bytes),
            Machine::NonInviteServer(m) => m.send_response(now, response.status, bytes),
            _ => None,
        };
        if let Some(TsxOutput::Transmit(bytes)) = output {
            self.transmits.push_back(Transmit {
                peer: entry.peer,
                bytes,
            });
        }
        self.rearm(key);
    }

    /// Starts a client transaction for `request` (not ACK) towards `peer`, adding our Via
    /// with a fresh branch. Returns the transaction's key.
    pub fn send_request(&mut self, now: Instant, mut request: Request, peer: Peer) -> TsxKey {
        let branch = self.new_branch();
        request.vias.insert(0, self.via_with(peer, &branch));
        let key = TsxKey::client(branch, &request.method);
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
        self.tsxs.insert(key.clone(), Entry::boxed(machine, peer));
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
        // §9.1: the CANCEL's top Via, branch included, is the INVITE's.
        let key = TsxKey::client(invite.branch().clone(), &Method::Cancel);
        let reliable = peer.transport.is_reliable();
        let (tsx, first) =
            NonInviteClient::start(now, cancel.to_bytes(), reliable, self.cfg.timers);
        if let TsxOutput::Transmit(bytes) = first {
            self.transmits.push_back(Transmit { peer, bytes });
        }
        self.tsxs.insert(
            key.clone(),
            Entry::boxed(Machine::NonInviteClient(tsx), peer),
        );
        self.rearm(&key);
        Some(key)
    }
}
