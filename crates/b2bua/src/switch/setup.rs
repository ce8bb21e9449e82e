//! A call's set-up: a request outside any dialog is routed (OPTIONS, refusals), a new
//! INVITE admitted (capacity, session timer, a port, the SDP answer, who is calling) and
//! rung; the answer (200 with SDP, retransmitted until the ACK), the ACK that starts the
//! media, and a CANCEL before the answer.

use std::time::Instant;

use concierge_media::sdp::{self, OfferError};
use concierge_sip::dialog::{AnswerRetransmit, Dialog, DialogId};
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::{
    dialog_response_to, response_to, HeaderName, Method, Request, StatusCode,
};
use concierge_sip::{Peer, Untrusted};
use tracing::{debug, info, info_span, warn};

use super::{srtp, Switch, ACCEPT, ALLOW};
use crate::call::{Call, CallState};
use crate::output::{CallRef, Output};
use crate::record::EndedBy;

impl Switch {
    pub(super) fn on_request(&mut self, now: Instant, key: TsxKey, request: Request, peer: Peer) {
        let in_dialog = DialogId::of_incoming(&request);
        match (&request.method, in_dialog) {
            (Method::Invite, None) => self.on_new_invite(now, key, request, peer),
            (Method::Options, None) if self.draining => {
                // A dispatcher probing us (Kamailio's ds_ping) takes the node out of its
                // set on 503, so no new call is sent here while the calls in progress end.
                let mut r = self.response(&request, StatusCode::SERVICE_UNAVAILABLE);
                r.headers.push(
                    HeaderName::RETRY_AFTER,
                    self.cfg.retry_after.as_secs().to_string(),
                );
                self.endpoint.respond(now, &key, r);
            }
            (Method::Options, None) => {
                let mut r = self.response(&request, StatusCode::OK);
                r.headers.push(HeaderName::ACCEPT, ACCEPT);
                self.endpoint.respond(now, &key, r);
            }
            (Method::Other(_), _) => {
                let mut r = self.response(&request, StatusCode::NOT_IMPLEMENTED);
                r.headers.push(HeaderName::ALLOW, ALLOW);
                self.endpoint.respond(now, &key, r);
            }
            (_, Some(id)) => self.on_in_dialog(now, key, request, id),
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
                self.endpoint.respond(now, &key, r);
            }
        }
    }

    pub(super) fn on_new_invite(&mut self, now: Instant, key: TsxKey, invite: Request, peer: Peer) {
        if self.draining || self.calls.len() >= self.cfg.max_calls {
            let mut r = self.response(&invite, StatusCode::SERVICE_UNAVAILABLE);
            r.headers.push(
                HeaderName::RETRY_AFTER,
                self.cfg.retry_after.as_secs().to_string(),
            );
            let why = if self.draining {
                self.stats.refused_draining += 1;
                "shutting down"
            } else {
                self.stats.refused_max_calls += 1;
                "at max_calls"
            };
            info!(call_id = %invite.call_id, why, "INVITE refused with 503");
            self.endpoint.respond(now, &key, r);
            return;
        }
        let span = info_span!("call", call_id = %Untrusted(&invite.call_id));
        let carrier = match self.carrier_for_invite(&invite) {
            Ok(c) => c,
            Err(r) => {
                span.in_scope(|| info!(status = %r.status, "INVITE refused by the session timer"));
                self.endpoint.respond(now, &key, *r);
                return;
            }
        };
        let Some(port) = self.ports.allocate(now) else {
            span.in_scope(|| warn!("no free RTP port; INVITE refused with 503"));
            self.stats.refused_no_port += 1;
            let mut r = self.response(&invite, StatusCode::SERVICE_UNAVAILABLE);
            r.headers.push(
                HeaderName::RETRY_AFTER,
                self.cfg.retry_after.as_secs().to_string(),
            );
            self.endpoint.respond(now, &key, r);
            return;
        };
        let local_media = std::net::SocketAddr::new(self.media_ip_for(peer.addr.ip()), port);
        let srtp_key = self.new_srtp_key();
        let policy = self.cfg.srtp;
        // RFC 3264: answer the offer now, or offer ourselves in the 200 (late offer).
        let (audio, local_sdp) = if invite.body.is_empty() {
            let key = srtp::offer_key(policy, &srtp_key);
            (None, sdp::offer_with(local_media, 1, key))
        } else {
            let offer = String::from_utf8_lossy(&invite.body);
            match sdp::answer_with(&offer, local_media, 1, policy, Some(&srtp_key)) {
                Ok((audio, sdp)) => (Some(audio), sdp),
                Err(OfferError::NotAcceptable(why)) => {
                    self.ports.release(port, now);
                    span.in_scope(|| info!(why = %Untrusted(&why), "offer refused with 488"));
                    let mut r = self.response(&invite, StatusCode::NOT_ACCEPTABLE_HERE);
                    r.headers.push(
                        HeaderName::new("Warning"),
                        format!("304 concierge \"{why}\""),
                    );
                    self.endpoint.respond(now, &key, r);
                    return;
                }
            }
        };
        let id = self.next_ref;
        self.next_ref.0 += 1;
        self.by_port.insert(port, id);
        let local_tag = self.endpoint.new_tag();
        let identity = crate::identity::identify_source(
            &invite,
            self.authenticated_input || self.cfg.trusted_peers.contains(peer.addr.ip()),
        );
        span.in_scope(|| {
            info!(
                caller = %identity.for_log(),
                verified = identity.verified,
                to = %Untrusted(&invite.uri),
                "incoming call"
            )
        });

        let trying = response_to(&invite, StatusCode::TRYING, None);
        self.endpoint.respond(now, &key, trying);

        self.by_invite.insert(key.clone(), id);
        self.call_ids.insert(invite.call_id.as_bytes().to_vec(), id);
        self.calls.insert(
            id,
            Call {
                span,
                state: CallState::Early {
                    port_bound: false,
                    answer_at: None,
                },
                invite,
                invite_key: key,
                peer,
                local_tag,
                arrived: now,
                rtp_port: Some(port),
                port_attempts: 1,
                audio,
                local_sdp: Some(local_sdp),
                srtp_key,
                sdp_version: 1,
                media: Default::default(),
                flow: None,
                answered: None,
                ending: None,
                refer: None,
                bridge: None,
                transfer_record: None,
                transfer_started: None,
                identity,
                redact_target: false,
                lockout: None,
                expires: now + self.cfg.max_call_duration,
                media_timeout: self.cfg.media_timeout,
                armed: None,
                carrier,
            },
        );
        self.expiry.insert((now + self.cfg.max_call_duration, id));
        self.rearm(id);
        // The port goes into an SDP only once the driver has bound it (`Input::PortBound`).
        self.outputs.push_back(Output::MediaOpen { port });
    }

    /// The call's RTP port is ours: 180, then the flow (which answers when it first needs
    /// media) or the plain answer.
    pub(super) fn ring(&mut self, now: Instant, id: CallRef) {
        if !self.calls.contains_key(&id) {
            return;
        }
        // §12.1.1: a 180 (or 183) with a To tag creates an early dialog.
        self.send_ringing(now, id);
        if self.start_flow(now, id) {
            // The flow answers when it first needs media.
        } else if self.cfg.answer_after.is_zero() {
            self.answer(now, id);
        } else if let Some(call) = self.calls.get_mut(&id) {
            if let CallState::Early { answer_at, .. } = &mut call.state {
                *answer_at = Some(now + self.cfg.answer_after);
            }
            self.rearm(id);
        }
    }

    /// Sends the 200 OK and sets up the dialog (§13.3.1.4).
    pub(super) fn answer(&mut self, now: Instant, id: CallRef) {
        if self.answer_waits_for_prack(id) {
            return;
        }
        let Some(contact) = self.uas_contact_of(id) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let _g = call.span.clone().entered();
        let mut ok = dialog_response_to(
            &call.invite,
            StatusCode::OK,
            call.local_tag.as_str(),
            &contact,
        );
        ok.headers.push(HeaderName::ALLOW, ALLOW);
        ok.headers
            .push(HeaderName::SUPPORTED, crate::carrier::SUPPORTED);
        ok.headers
            .push(HeaderName::SERVER, self.cfg.user_agent.clone());
        self.answer_session_timer(now, id, &mut ok.headers);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let Some(sdp) = &call.local_sdp {
            ok.headers.push(HeaderName::CONTENT_TYPE, "application/sdp");
            ok.body = sdp.clone().into();
        }
        let bytes = ok.to_bytes();
        let dialog = Dialog::uas(&call.invite, &call.local_tag, contact, 0);
        self.by_dialog.insert(dialog.id.clone(), id);
        let retransmit = AnswerRetransmit::new(
            now,
            bytes,
            call.peer.transport.is_reliable(),
            self.cfg.timers,
        );
        call.state = CallState::Answered { dialog, retransmit };
        call.answered = Some(now);
        let key = call.invite_key.clone();
        self.endpoint.respond(now, &key, ok);
        info!("answered");
        self.rearm(id);
    }

    pub(super) fn on_ack(&mut self, now: Instant, ack: Request) {
        let Some(id) = DialogId::of_incoming(&ack).and_then(|d| self.by_dialog.get(&d).copied())
        else {
            debug!(call_id = %Untrusted(&ack.call_id), "ACK for no dialog dropped");
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        // An ACK ends the 200's retransmission, in whatever state it finds the call.
        let confirmed = call.state.confirm();
        // Late offer: the ACK carries the answer to the offer in our 200 (§13.2.1).
        if call.audio.is_none() && !ack.body.is_empty() {
            let ours = srtp::offer_key(self.cfg.srtp, &call.srtp_key);
            match sdp::accept_with(&String::from_utf8_lossy(&ack.body), ours) {
                Ok(audio) => call.audio = Some(audio),
                Err(OfferError::NotAcceptable(why)) => {
                    call.span
                        .in_scope(|| warn!(%why, "unusable answer in the ACK; hanging up"));
                    self.hang_up(now, id, "unusable SDP answer");
                    return;
                }
            }
        }
        if confirmed {
            call.span.in_scope(|| info!("call confirmed by ACK"));
            self.start_media(now, id);
        }
    }

    /// RTP starts once the call is confirmed and the codec agreed; SSRC, sequence number
    /// and timestamp start at random (RFC 3550 §5.1).
    pub(super) fn start_media(&mut self, now: Instant, id: CallRef) {
        let r = self.endpoint.random_u64();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(audio) = call.audio.clone() else {
            call.span
                .in_scope(|| warn!("no agreed audio; the call has no media"));
            return;
        };
        call.media.start(
            now,
            &audio,
            r as u32,
            (r >> 32) as u16,
            (r >> 48) as u32 * 7919,
            call.peer.addr.ip(),
            true,
        );
        call.span
            .in_scope(|| debug!(codec = audio.codec, remote = ?audio.remote, "media started"));
        self.start_pacing(now, id);
        self.media_ready(now, id);
    }

    pub(super) fn on_cancelled(&mut self, now: Instant, invite: TsxKey) {
        let Some(id) = self.by_invite.get(&invite).copied() else {
            return;
        };
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if !call.state.is_early() {
            return;
        }
        let _g = call.span.clone().entered();
        let r = response_to(
            &call.invite,
            StatusCode::REQUEST_TERMINATED,
            Some(call.local_tag.as_str()),
        );
        self.endpoint.respond(now, &invite, r);
        info!("cancelled by the caller before the answer");
        self.flow_hung_up(id);
        self.end_call(now, id, EndedBy::Caller, "cancelled before the answer");
    }
}
