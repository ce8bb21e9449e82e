//! Requests and responses inside a call's dialog: BYE, INFO digits, NOTIFYs of a REFER,
//! re-INVITE (hold, resume, a new offer), the answers to what we sent (REFER, BYE, a
//! refresh) and their transaction timeouts.

use std::time::Instant;

use concierge_media::sdp::{self, OfferError};
use concierge_sip::dialog::DialogId;
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::{response_to, HeaderName, Method, Request, Response, StatusCode};
use tracing::{debug, info, warn};

use super::{family, srtp, Switch};
use crate::output::CallRef;
use crate::record::EndedBy;
use crate::record::TransferFailure;
use crate::transfer::{self, ReferProgress};

impl Switch {
    pub(super) fn on_in_dialog(
        &mut self,
        now: Instant,
        key: TsxKey,
        request: Request,
        dialog: DialogId,
    ) {
        let Some(id) = self.by_dialog.get(&dialog).copied() else {
            let r = self.response(&request, StatusCode::CALL_DOES_NOT_EXIST);
            self.endpoint.respond(now, &key, r);
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call
            .bridge
            .as_ref()
            .and_then(|l| l.dialog.as_ref())
            .is_some_and(|d| d.id == dialog)
        {
            return self.on_leg_request(now, id, key, request);
        }
        let _g = call.span.clone().entered();
        let request = if call.state.is_early() {
            match self.on_early_dialog_request(now, id, key.clone(), request) {
                Some(r) => r,
                None => return,
            }
        } else {
            request
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let Some(d) = call.state.dialog_mut() {
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
                info!("caller hung up");
                self.flow_hung_up(id);
                self.end_call(now, id, EndedBy::Caller, "hung up");
            }
            Method::Notify if call.refer.is_some() => {
                let r = response_to(&request, StatusCode::OK, None);
                self.endpoint.respond(now, &key, r);
                let terminated = request
                    .header(&HeaderName::SUBSCRIPTION_STATE)
                    .is_some_and(|s| s.trim().to_ascii_lowercase().starts_with("terminated"));
                match transfer::progress(&request.body, terminated) {
                    ReferProgress::Trying => debug!("transfer in progress"),
                    ReferProgress::Succeeded => self.refer_finished(now, id, Ok(())),
                    ReferProgress::Failed(s) => {
                        let why = TransferFailure::ReferredCallFailed(s);
                        self.refer_finished(now, id, Err(why))
                    }
                    ReferProgress::Ended => {
                        self.refer_finished(now, id, Err(TransferFailure::SubscriptionEnded))
                    }
                }
            }
            Method::Invite => self.on_reinvite(now, id, key, request),
            Method::Update => self.on_update(now, id, key, request),
            Method::Prack => self.on_prack(now, id, key, request),
            Method::Info => {
                let mut info_digit = false;
                // SIP INFO DTMF (application/dtmf-relay or application/dtmf).
                let digit = request
                    .content_type()
                    .and_then(|ct| concierge_media::info_dtmf::parse(ct, &request.body));
                let status = match (digit, request.body.is_empty()) {
                    (Some(d), _) => {
                        debug!("digit received by INFO");
                        call.media.add_digit(d, crate::call_media::INFO);
                        info_digit = true;
                        StatusCode::OK
                    }
                    // An empty INFO is a keep-alive probe; other bodies we do not read.
                    (None, true) => StatusCode::OK,
                    (None, false) => StatusCode(415),
                };
                let r = response_to(&request, status, None);
                self.endpoint.respond(now, &key, r);
                if info_digit {
                    self.digit_arrived(now, id);
                }
            }
            _ => {
                let r = response_to(&request, StatusCode::OK, None);
                self.endpoint.respond(now, &key, r);
            }
        }
    }

    /// RFC 3264 §8: a re-INVITE offers a changed session (hold, resume, new address); we
    /// answer from the same port with the next `o=` version. An offerless re-INVITE gets
    /// our current SDP as a fresh offer.
    pub(super) fn on_reinvite(&mut self, now: Instant, id: CallRef, key: TsxKey, request: Request) {
        if self.refuse_glare(now, id, &key, &request) {
            return;
        }
        let Some(call_peer) = self.calls.get(&id).map(|c| c.peer) else {
            return;
        };
        let media_ip = family::media_ip_for(&self.cfg, call_peer.addr.ip());
        let Some(contact) = self.uas_contact_of(id) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(port) = call.rtp_port else {
            // Our BYE is on its way (the port went back with it): the session is over.
            let r = response_to(&request, StatusCode::CALL_DOES_NOT_EXIST, None);
            self.endpoint.respond(now, &key, r);
            return;
        };
        call.sdp_version += 1;
        let local = std::net::SocketAddr::new(media_ip, port);
        let policy = self.cfg.srtp;
        let sdp = if request.body.is_empty() {
            sdp::offer_with(
                local,
                call.sdp_version,
                srtp::offer_key(policy, &call.srtp_key),
            )
        } else {
            match sdp::answer_with(
                &String::from_utf8_lossy(&request.body),
                local,
                call.sdp_version,
                policy,
                Some(&call.srtp_key),
            ) {
                Ok((audio, sdp)) => {
                    call.span
                        .in_scope(|| info!(send = audio.send, "session changed by re-INVITE"));
                    // Early media runs before the ACK: an UPDATE changes it too.
                    if call.state.is_confirmed() || call.media.is_started() {
                        let r = self.endpoint.random_u64();
                        call.media.start(
                            now,
                            &audio,
                            r as u32,
                            (r >> 32) as u16,
                            (r >> 48) as u32,
                            call.peer.addr.ip(),
                            true,
                        );
                    }
                    call.audio = Some(audio);
                    sdp
                }
                Err(OfferError::NotAcceptable(why)) => {
                    // §14.2: a refused re-INVITE leaves the session as it was.
                    let mut r = response_to(&request, StatusCode::NOT_ACCEPTABLE_HERE, None);
                    r.headers.push(
                        HeaderName::new("Warning"),
                        format!("304 concierge \"{why}\""),
                    );
                    self.endpoint.respond(now, &key, r);
                    return;
                }
            }
        };
        call.local_sdp = Some(sdp.clone());
        let mut ok = response_to(&request, StatusCode::OK, None);
        ok.headers.push(HeaderName::CONTACT, format!("<{contact}>"));
        ok.headers.push(HeaderName::CONTENT_TYPE, "application/sdp");
        ok.body = sdp.into();
        self.session_refreshed_by_peer(now, id, &request, &mut ok.headers);
        self.endpoint.respond(now, &key, ok);
    }

    pub(super) fn on_response(&mut self, now: Instant, key: TsxKey, response: Response) {
        if self.on_refresh_response(now, &key, &response)
            || self.on_leg_refresh_answer(now, &key, Some(&response))
        {
            return;
        }
        let Some(id) = self.by_client_tsx.get(&key).copied() else {
            if response.cseq.method == Method::Invite && response.status.is_success() {
                // Our own INVITE, answered after its leg was given up: the transaction
                // knows where we sent it, and only there do the ACK and BYE go.
                let peer = self.endpoint.peer_of(&key);
                self.on_stray_answer(now, response, peer);
            }
            return;
        };
        if response.cseq.method == Method::Invite {
            self.on_leg_response(now, id, response);
            return;
        }
        if response.status.is_final() {
            self.by_client_tsx.remove(&key);
            if response.cseq.method == Method::Refer {
                let Some(refer) = self.calls.get_mut(&id).and_then(|c| c.refer.as_mut()) else {
                    return;
                };
                refer.key = None;
                if response.status.is_success() {
                    refer.accepted = true;
                } else {
                    let why = TransferFailure::ReferRejected(response.status);
                    self.refer_finished(now, id, Err(why));
                }
            } else if response.cseq.method == Method::Bye {
                if let Some(call) = self.calls.get(&id) {
                    call.span
                        .in_scope(|| debug!(status = %response.status, "BYE answered"));
                }
                self.forget(now, id);
            }
        }
    }

    pub(super) fn on_tsx_timeout(&mut self, now: Instant, key: TsxKey) {
        if self.on_refresh_timeout(now, &key) || self.on_leg_refresh_answer(now, &key, None) {
            return;
        }
        if let Some(id) = self.by_client_tsx.remove(&key) {
            let Some(call) = self.calls.get_mut(&id) else {
                return;
            };
            call.span
                .in_scope(|| warn!(method = %key.method(), "no answer to our request"));
            if *key.method() == Method::Invite {
                // RFC 3263 §4.3: a transaction timeout moves on to the next address.
                if self.try_next_address(now, id, "no answer") {
                    return;
                }
                let Some(call) = self.calls.get_mut(&id) else {
                    return;
                };
                let target = call
                    .bridge
                    .as_ref()
                    .map(|l| l.target.clone())
                    .unwrap_or_default();
                self.bridge_failed(now, id, &target, TransferFailure::NoAnswer);
            } else if *key.method() == Method::Refer {
                if let Some(r) = call.refer.as_mut() {
                    r.key = None;
                }
                self.refer_finished(now, id, Err(TransferFailure::NoAnswerToRefer));
            } else {
                call.ending
                    .get_or_insert((EndedBy::Network, "no answer to BYE".into()));
                self.forget(now, id);
            }
        } else if let Some(id) = self.by_invite.get(&key).copied() {
            // Timer H: our error response was never ACKed; nothing left to do.
            self.forget(now, id);
        }
    }
}
