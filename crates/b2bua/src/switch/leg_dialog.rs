//! Requests the bridge target sends in its leg's dialog (BYE, re-INVITE, UPDATE, INFO),
//! and 2xx answers that match no transaction of ours — a leg's retransmitted 2xx is ACKed
//! again, anything else is dropped unanswered.

use std::time::Instant;

use concierge_media::sdp;
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::{response_to, CSeq, HeaderName, Method, Request, Response, StatusCode};
use tracing::{debug, info};

use super::Switch;
use crate::leg::LegState;
use crate::output::CallRef;
use crate::record::EndedBy;

impl Switch {
    /// A request in the second leg's dialog.
    pub(super) fn on_leg_request(
        &mut self,
        now: Instant,
        id: CallRef,
        key: TsxKey,
        request: Request,
    ) {
        let Some(leg_peer) = self
            .calls
            .get(&id)
            .and_then(|c| c.bridge.as_ref())
            .map(|l| l.peer)
        else {
            return;
        };
        let contact = self.local_contact(leg_peer);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let _g = call.span.clone().entered();
        let Some(leg) = call.bridge.as_mut() else {
            return;
        };
        if let Some(d) = leg.dialog.as_mut() {
            if let Err(rejection) = d.handle_remote_request(&request) {
                let r = response_to(&request, rejection.status(), None);
                self.endpoint.respond(now, &key, r);
                return;
            }
        }
        match request.method {
            Method::Bye => {
                let r = response_to(&request, StatusCode::OK, None);
                self.endpoint.respond(now, &key, r);
                leg.state = LegState::Over;
                info!(
                    to_target = leg.relayed[0],
                    to_caller = leg.relayed[1],
                    "the transfer target hung up"
                );
                call.ending = Some((EndedBy::Target, "transfer target hung up".into()));
                self.close_leg_port(now, id);
                self.hang_up(now, id, "transfer target hung up");
            }
            Method::Invite | Method::Update
                if call
                    .carrier
                    .leg_refresh
                    .as_ref()
                    .is_some_and(|r| r.is_invite)
                    && (request.method == Method::Invite || !request.body.is_empty()) =>
            {
                // RFC 3261 §14.2 / RFC 3311 §5.2: an offer crossing our refresh re-INVITE.
                let r = response_to(&request, StatusCode::REQUEST_PENDING, None);
                self.endpoint.respond(now, &key, r);
            }
            Method::Invite | Method::Update => {
                // A session refresh or new address from the target: same codec, same port.
                let offer = String::from_utf8_lossy(&request.body);
                if let Ok(audio) = sdp::accept_with(&offer, leg.srtp_key.as_ref()) {
                    if let (Some(keying), Some(session)) = (&audio.srtp, leg.srtp.as_mut()) {
                        session.rekey(keying);
                    }
                    let dropped = leg.foreign_dropped();
                    leg.set_audio(audio);
                    call.media.add_foreign(dropped);
                }
                let mut r = response_to(&request, StatusCode::OK, None);
                super::leg_timer::leg_refreshed_by_peer(
                    &mut call.carrier,
                    now,
                    &request,
                    &mut r.headers,
                    &self.cfg.session_timer,
                );
                // RFC 3311: an UPDATE without SDP is answered without SDP.
                let offered = request.method == Method::Invite || !request.body.is_empty();
                if let (true, Some(port), Some(caller)) = (offered, leg.port, call.audio.as_ref()) {
                    let local = std::net::SocketAddr::new(
                        super::family::media_ip_for(&self.cfg, leg.peer.addr.ip()),
                        port,
                    );
                    r.headers.push(HeaderName::CONTACT, format!("<{contact}>"));
                    r.headers.push(HeaderName::CONTENT_TYPE, "application/sdp");
                    r.body = sdp::offer_for_with(local, 2, caller, leg.srtp_key.as_ref()).into();
                }
                self.endpoint.respond(now, &key, r);
            }
            Method::Info | Method::Options | Method::Notify => {
                let r = response_to(&request, StatusCode::OK, None);
                self.endpoint.respond(now, &key, r);
            }
            _ => {
                let r = response_to(&request, StatusCode::NOT_IMPLEMENTED, None);
                self.endpoint.respond(now, &key, r);
            }
        }
    }

    /// A 2xx to an INVITE that no leg waits for any more. Two cases are ours, and nothing
    /// else is acted on (an unsolicited 2xx must not make us send anything anywhere: that
    /// would be a reflection vector):
    /// - it matches a leg's dialog (our Call-ID and tags): the leg only lost its ACK, which
    ///   goes again to the leg's next hop;
    /// - `transaction_peer` is set: it answers an INVITE client transaction of ours whose
    ///   leg was given up (the CANCEL crossed the 200). It is ACKed and ended with BYE
    ///   (§13.2.2.4) — sent to the next hop we chose for the INVITE, never to an address
    ///   the response names.
    pub(super) fn on_stray_answer(
        &mut self,
        now: Instant,
        response: Response,
        transaction_peer: Option<concierge_sip::Peer>,
    ) {
        let id = concierge_sip::dialog::DialogId {
            call_id: response.call_id.as_str().into(),
            local_tag: response.from.tag().unwrap_or_default().into(),
            remote_tag: response.to.tag().unwrap_or_default().into(),
        };
        if let Some(call) = self.by_dialog.get(&id).copied() {
            if self.reack_refresh(call, &response) {
                return;
            }
            let Some(call) = self.calls.get(&call) else {
                return;
            };
            let refresh_ack = call
                .carrier
                .leg_refresh_ack
                .as_ref()
                .filter(|(seq, _)| *seq == response.cseq.seq);
            if let (Some((_, ack)), Some(leg)) = (refresh_ack, call.bridge.as_ref()) {
                let peer = leg
                    .dialog
                    .as_ref()
                    .map_or(leg.peer, |d| d.next_hop(leg.peer));
                self.endpoint.send_raw(peer, ack.clone());
                return;
            }
            if let Some(leg) = call.bridge.as_ref() {
                if let Some(ack) = leg.ack.clone() {
                    let peer = leg.peer;
                    self.endpoint.send_raw(peer, ack);
                }
            }
            return;
        }
        let Some(peer) = transaction_peer else {
            debug!(call_id = %response.call_id, status = %response.status, "2xx matching none of our INVITEs dropped");
            return;
        };
        // The Request-URI is the remote target (§12.1.2); where the bytes go is `peer`.
        let Some(uri) = response
            .contact()
            .map(|c| c.uri)
            .or_else(|| Some(response.to.uri.clone()))
        else {
            return;
        };
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
        let via = self.endpoint.new_via(peer);
        let ack = request(Method::Ack, response.cseq.seq, via);
        self.endpoint.send_raw(peer, ack.to_bytes());
        let mut bye = request(
            Method::Bye,
            response.cseq.seq + 1,
            self.endpoint.new_via(peer),
        );
        bye.vias.clear();
        self.endpoint.send_request(now, bye, peer);
    }
}
