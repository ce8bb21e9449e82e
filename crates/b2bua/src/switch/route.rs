//! What the endpoint reports, routed to the call it is for — by dialog, by the caller's
//! INVITE transaction, by a client transaction of ours — and what belongs to no call:
//! requests outside any dialog (OPTIONS, refusals), a new INVITE, and a 2xx that answers
//! an INVITE whose leg was given up.

use std::time::Instant;

use concierge_sip::dialog::DialogKey;
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::{CSeq, HeaderName, Method, Request, Response, StatusCode};
use concierge_sip::{EndpointEvent, Peer, Untrusted};
use tracing::{debug, info};

use super::{Key, Owner, Shared, Switch, ACCEPT, ALLOW};
use crate::call::{response_tagged, Call};

impl Switch {
    /// Hands endpoint events to the calls until the endpoint has nothing more to say.
    /// Called once, at the end of every input.
    pub(super) fn pump(&mut self, now: Instant) {
        while let Some(event) = self.shared.endpoint.poll_event() {
            match event {
                EndpointEvent::Request { key, request, peer } => {
                    self.on_request(now, key, request, peer)
                }
                EndpointEvent::Ack { request, .. } => {
                    match DialogKey::of_incoming(&request).and_then(|d| self.books.index.dialog(d))
                    {
                        Some(id) => _ = self.run(now, id, |call, cx| call.on_ack(cx, request)),
                        None => {
                            debug!(call_id = %Untrusted(&request.call_id), "ACK for no dialog dropped")
                        }
                    }
                }
                EndpointEvent::Cancelled { invite, .. } => {
                    if let Some(id) = self.books.index.invite(&invite) {
                        self.run(now, id, |call, cx| call.on_cancel(cx));
                    }
                }
                EndpointEvent::Response { key, response } => self.on_response(now, key, response),
                EndpointEvent::Timeout { key } => match self.books.index.request(&key) {
                    Some(Owner::Call(id)) => {
                        self.run(now, id, |call, cx| call.on_tsx_timeout(cx, key));
                    }
                    Some(Owner::Trunk) => {
                        self.shared.trunks.on_tsx_timeout(now, &key);
                        self.books.index.remove_trunk(Key::Request(key));
                    }
                    None => {
                        if let Some(id) = self.books.index.invite(&key) {
                            self.run(now, id, |call, cx| call.on_invite_timeout(cx));
                        }
                    }
                },
                EndpointEvent::StrayResponse { response, .. } => {
                    self.on_stray_answer(now, response, None)
                }
            }
        }
        // What the trunks' registrations queued (they send no request the endpoint would
        // report on before the next input).
        if self.shared.trunks.touched() {
            let Shared {
                trunks,
                endpoint,
                outputs,
                next_resolve,
                ..
            } = &mut self.shared;
            trunks.drain(now, endpoint, outputs, &mut self.books.index, next_resolve);
        }
    }

    fn on_request(&mut self, now: Instant, key: TsxKey, request: Request, peer: Peer) {
        let in_dialog = DialogKey::of_incoming(&request).map(|d| self.books.index.dialog(d));
        let r = match (&request.method, in_dialog) {
            (Method::Invite, None) => return self.on_new_invite(now, key, request, peer),
            (Method::Options, None) if self.draining => {
                // A dispatcher probing us (Kamailio's ds_ping) takes the node out of its
                // set on 503, so no new call is sent here while the calls in progress end.
                let mut r = self.response(&request, StatusCode::SERVICE_UNAVAILABLE);
                let retry = self.shared.cfg.retry_after.as_secs().to_string();
                r.headers.push(HeaderName::RETRY_AFTER, retry);
                r
            }
            (Method::Options, None) => {
                let mut r = self.response(&request, StatusCode::OK);
                r.headers.push(HeaderName::ACCEPT, ACCEPT);
                r
            }
            (Method::Other(_), _) => {
                let mut r = self.response(&request, StatusCode::NOT_IMPLEMENTED);
                r.headers.push(HeaderName::ALLOW, ALLOW);
                r
            }
            (_, Some(Some(id))) => {
                self.run(now, id, |call, cx| call.on_request(cx, key, request));
                return;
            }
            (_, Some(None)) => self.response(&request, StatusCode::CALL_DOES_NOT_EXIST),
            (_, None) => {
                // REGISTER, SUBSCRIBE, MESSAGE … outside a dialog: known, but not ours.
                let status = match request.method {
                    Method::Bye
                    | Method::Info
                    | Method::Notify
                    | Method::Refer
                    | Method::Prack
                    | Method::Update => StatusCode::CALL_DOES_NOT_EXIST,
                    _ => StatusCode::METHOD_NOT_ALLOWED,
                };
                let mut r = self.response(&request, status);
                r.headers.push(HeaderName::ALLOW, ALLOW);
                r
            }
        };
        self.shared.endpoint.respond(now, &key, r);
    }

    /// A new INVITE: refused while draining or at `max_calls`, else the call takes it.
    fn on_new_invite(&mut self, now: Instant, key: TsxKey, invite: Request, peer: Peer) {
        let cfg = &self.shared.cfg;
        // The other instances' calls count too when state is shared (`Command::Peers`).
        if self.draining || self.calls.len() + self.admission.peer_calls() >= cfg.max_calls {
            let retry = cfg.retry_after.as_secs().to_string();
            let mut r = self.response(&invite, StatusCode::SERVICE_UNAVAILABLE);
            r.headers.push(HeaderName::RETRY_AFTER, retry);
            let why = if self.draining {
                self.shared.stats.refused_draining += 1;
                "shutting down"
            } else {
                self.shared.stats.refused_max_calls += 1;
                "at max_calls"
            };
            info!(call_id = %invite.call_id, why, "INVITE refused with 503");
            self.shared.endpoint.respond(now, &key, r);
            return;
        }
        let id = self.calls.new_ref();
        let mut cx = self.shared.cx(now, id, &mut self.books.changes);
        let Some(call) = Call::accept(&mut cx, key, invite, peer) else {
            self.books.changes.clear();
            return;
        };
        self.admit(id, call);
    }

    /// The answer to a request of ours.
    fn on_response(&mut self, now: Instant, key: TsxKey, response: Response) {
        match self.books.index.request(&key) {
            Some(Owner::Call(id)) => {
                self.run(now, id, |call, cx| call.on_response(cx, key, response));
            }
            Some(Owner::Trunk) => {
                self.shared.trunks.on_response(now, &key, &response);
                if response.status.is_final() {
                    self.books.index.remove_trunk(Key::Request(key));
                }
            }
            None if response.cseq.method == Method::Invite && response.status.is_success() => {
                // Our own INVITE, answered after its leg was given up: the transaction
                // knows where we sent it, and only there do the ACK and BYE go.
                let peer = self.shared.endpoint.peer_of(&key);
                self.on_stray_answer(now, response, peer);
            }
            None => {}
        }
    }

    /// A 2xx to an INVITE that no transaction waits for any more. Two cases are ours, and
    /// nothing else is acted on (an unsolicited 2xx must not make us send anything
    /// anywhere: that would be a reflection vector):
    /// - it matches a dialog of a call (our Call-ID and tags): the leg only lost its ACK,
    ///   which goes again to the leg's next hop;
    /// - `transaction_peer` is set: it answers an INVITE client transaction of ours whose
    ///   leg was given up (the CANCEL crossed the 200). It is ACKed and ended with BYE
    ///   (§13.2.2.4) — sent to the next hop we chose for the INVITE, never to an address
    ///   the response names.
    fn on_stray_answer(
        &mut self,
        now: Instant,
        response: Response,
        transaction_peer: Option<Peer>,
    ) {
        if let Some(id) = self.books.index.dialog(DialogKey::of_response(&response)) {
            self.run(now, id, |call, cx| call.on_stray_answer(cx, &response));
            return;
        }
        let Some(peer) = transaction_peer else {
            debug!(call_id = %response.call_id, status = %response.status, "2xx matching none of our INVITEs dropped");
            return;
        };
        // The Request-URI is the remote target (§12.1.2); where the bytes go is `peer`.
        let uri = response
            .contact()
            .map_or_else(|| response.to.uri.clone(), |c| c.uri);
        info!(call_id = %response.call_id, "answer to an abandoned call leg: ACK and BYE");
        let request = |method: Method, seq: u32, via| Request {
            method: method.clone(),
            uri: uri.clone(),
            vias: vec![via],
            from: response.from.clone(),
            to: response.to.clone(),
            call_id: response.call_id.clone(),
            cseq: CSeq { seq, method },
            max_forwards: Some(70),
            headers: Default::default(),
            body: Default::default(),
        };
        let endpoint = &mut self.shared.endpoint;
        let via = endpoint.new_via(peer);
        let ack = request(Method::Ack, response.cseq.seq, via);
        endpoint.send_raw(peer, ack.to_bytes());
        let mut bye = request(Method::Bye, response.cseq.seq + 1, endpoint.new_via(peer));
        bye.vias.clear();
        endpoint.send_request(now, bye, peer);
    }

    /// Our response to `request`, with a fresh To tag.
    fn response(&mut self, request: &Request, status: StatusCode) -> Response {
        let tag = self.shared.endpoint.new_tag();
        response_tagged(&self.shared.cfg, request, status, tag.as_str())
    }
}
