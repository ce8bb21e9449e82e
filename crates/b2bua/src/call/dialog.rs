//! Requests and answers in a call's dialogs: what the caller sends (BYE, INFO digits, the
//! NOTIFYs of our REFER, a re-INVITE or UPDATE — hold, resume, a new offer), requests of a
//! bridge's target (`bridge/dialog.rs`), the answers to what we sent (REFER, BYE, a
//! refresh, the bridge leg's INVITE) and their transaction timeouts.

use std::net::SocketAddr;

use concierge_media::sdp::OfferError;
use concierge_sip::dialog::DialogKey;
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::{response_to, HeaderName, Method, Request, Response, StatusCode};
use tracing::{debug, info, warn};

use super::{Call, Cx};
use crate::family;
use crate::leg::RefreshAnswer;
use crate::record::{EndedBy, TransferFailure};
use crate::switch::Key;
use crate::transfer::{self, ReferProgress};

impl Call {
    /// A request in one of the call's dialogs (the one its Call-ID and tags name): the
    /// caller's, or the bridge leg's.
    pub(crate) fn on_request(&mut self, cx: &mut Cx<'_>, key: TsxKey, request: Request) {
        let leg_dialog = self
            .transfer
            .bridge()
            .and_then(|b| b.leg.state.dialog())
            .is_some_and(|d| DialogKey::of_incoming(&request) == Some(d.id.key()));
        if leg_dialog {
            return self.on_leg_request(cx, key, request);
        }
        let request = if self.caller.state.is_early() {
            match self.on_early_request(cx, key.clone(), request) {
                Some(r) => r,
                None => return,
            }
        } else {
            request
        };
        if !self.caller.admit(cx, &key, &request) {
            return;
        }
        match request.method {
            Method::Bye => {
                cx.respond(&key, response_to(&request, StatusCode::OK, None));
                info!("caller hung up");
                self.flow_hung_up();
                self.end(cx, EndedBy::Caller, "hung up");
            }
            Method::Notify if self.transfer.refer_mut().is_some() => {
                cx.respond(&key, response_to(&request, StatusCode::OK, None));
                let terminated = request
                    .header(&HeaderName::SUBSCRIPTION_STATE)
                    .is_some_and(|s| s.trim().to_ascii_lowercase().starts_with("terminated"));
                match transfer::progress(&request.body, terminated) {
                    ReferProgress::Trying => debug!("transfer in progress"),
                    ReferProgress::Succeeded => self.refer_finished(cx, Ok(())),
                    ReferProgress::Failed(s) => {
                        self.refer_finished(cx, Err(TransferFailure::ReferredCallFailed(s)))
                    }
                    ReferProgress::Ended => {
                        self.refer_finished(cx, Err(TransferFailure::SubscriptionEnded))
                    }
                }
            }
            Method::Invite => self.on_offer(cx, key, request),
            Method::Update => self.on_update(cx, key, request),
            Method::Prack => self.on_prack(cx, key, request),
            Method::Info => self.on_info(cx, key, request),
            _ => cx.respond(&key, response_to(&request, StatusCode::OK, None)),
        }
    }

    /// SIP INFO: a digit (`application/dtmf-relay` or `application/dtmf`) goes to the
    /// flow; an empty INFO is a keep-alive probe; other bodies we do not read (415).
    fn on_info(&mut self, cx: &mut Cx<'_>, key: TsxKey, request: Request) {
        let digit = request
            .content_type()
            .and_then(|ct| concierge_media::info_dtmf::parse(ct, &request.body));
        let status = match (digit, request.body.is_empty()) {
            (Some(_), _) | (None, true) => StatusCode::OK,
            (None, false) => StatusCode(415),
        };
        cx.respond(&key, response_to(&request, status, None));
        if let Some(d) = digit {
            // Never the key itself: it may be part of a code (see `CallMedia::shown`).
            debug!("digit received by INFO");
            self.media.add_digit(d, crate::call_media::INFO);
            self.digit_arrived(cx);
        }
    }

    /// RFC 3264 §8: an offer in the caller's dialog (a re-INVITE, an UPDATE or PRACK with
    /// SDP) changes the session (hold, resume, new address); we answer from the same port
    /// with the next `o=` version. An offerless re-INVITE gets our current SDP as a fresh
    /// offer.
    pub(super) fn on_offer(&mut self, cx: &mut Cx<'_>, key: TsxKey, request: Request) {
        if self.caller.refuse_glare(cx, &key, &request) {
            return;
        }
        let Some(port) = self.caller.port.number() else {
            // Our BYE is on its way (the port went back with it): the session is over.
            let r = response_to(&request, StatusCode::CALL_DOES_NOT_EXIST, None);
            cx.respond(&key, r);
            return;
        };
        let peer = self.caller.peer;
        let contact = family::uas_contact(cx.cfg, cx.contacts, peer, &self.inbound.invite.uri);
        let local = SocketAddr::new(family::media_ip_for(cx.cfg, peer.addr.ip()), port);
        self.inbound.sdp_version += 1;
        let version = self.inbound.sdp_version;
        let sdp =
            match super::setup::local_sdp(cx, &request.body, local, version, &self.caller.srtp.key)
            {
                Ok((None, sdp)) => sdp,
                Ok((Some(audio), sdp)) => {
                    info!(send = audio.send, "session changed by re-INVITE");
                    // Early media runs before the ACK: an UPDATE changes it too.
                    if self.caller.state.is_confirmed() || self.media.is_started() {
                        let r = cx.endpoint.random_u64();
                        self.caller.srtp.keyed(audio.srtp.as_ref());
                        let ip = peer.addr.ip();
                        self.media.start(
                            cx.now,
                            &audio,
                            r as u32,
                            (r >> 32) as u16,
                            (r >> 48) as u32,
                            ip,
                        );
                    }
                    self.caller.audio = Some(audio);
                    sdp
                }
                Err(OfferError::NotAcceptable(why)) => {
                    // §14.2: a refused re-INVITE leaves the session as it was.
                    let mut r = response_to(&request, StatusCode::NOT_ACCEPTABLE_HERE, None);
                    r.headers.push(
                        HeaderName::new("Warning"),
                        format!("304 concierge \"{why}\""),
                    );
                    cx.respond(&key, r);
                    return;
                }
            };
        self.inbound.local_sdp = sdp.clone();
        let mut ok = response_to(&request, StatusCode::OK, None);
        ok.headers
            .push_joined(HeaderName::CONTACT, &["<", contact.as_str(), ">"]);
        ok.headers.push(HeaderName::CONTENT_TYPE, "application/sdp");
        ok.body = sdp.into();
        self.caller.refreshed_by_peer(cx, &request, &mut ok.headers);
        cx.respond(&key, ok);
    }

    /// RFC 3311: UPDATE in the early or confirmed dialog. With SDP it is an offer,
    /// answered as a re-INVITE's is; without, a target and session refresh.
    pub(super) fn on_update(&mut self, cx: &mut Cx<'_>, key: TsxKey, request: Request) {
        if !request.body.is_empty() {
            if self.caller.state.is_early() && !self.inbound.early_answer_reliable {
                // §5.2: the INVITE's offer has no reliably delivered answer yet.
                let mut r = response_to(&request, StatusCode::SERVER_INTERNAL_ERROR, None);
                r.headers.push(HeaderName::RETRY_AFTER, "1");
                cx.respond(&key, r);
                return;
            }
            return self.on_offer(cx, key, request);
        }
        let contact = family::uas_contact(
            cx.cfg,
            cx.contacts,
            self.caller.peer,
            &self.inbound.invite.uri,
        );
        let mut ok = response_to(&request, StatusCode::OK, None);
        ok.headers
            .push_joined(HeaderName::CONTACT, &["<", contact.as_str(), ">"]);
        self.caller.refreshed_by_peer(cx, &request, &mut ok.headers);
        cx.respond(&key, ok);
    }

    /// The answer to a request of ours in one of the call's dialogs: a refresh on
    /// either leg, the bridge leg's INVITE, our REFER or our BYE.
    pub(crate) fn on_response(&mut self, cx: &mut Cx<'_>, key: TsxKey, response: Response) {
        if let Some(answer) = self.caller.on_refresh_answer(cx, &key, Some(&response)) {
            return self.caller_refresh_answered(cx, answer);
        }
        if let Some(answer) = self.leg_refresh_answer(cx, &key, Some(&response)) {
            return self.leg_refresh_answered(cx, answer);
        }
        if response.cseq.method == Method::Invite {
            return self.on_leg_response(cx, response);
        }
        if !response.status.is_final() {
            return;
        }
        cx.unindex(Key::Request(key.clone()));
        match response.cseq.method {
            Method::Refer => self.on_refer_answer(cx, &key, response.status),
            Method::Bye => {
                debug!(status = %response.status, "BYE answered");
                self.finish(cx);
            }
            _ => {}
        }
    }

    /// A request of ours got no answer at all.
    pub(crate) fn on_tsx_timeout(&mut self, cx: &mut Cx<'_>, key: TsxKey) {
        if let Some(answer) = self.caller.on_refresh_answer(cx, &key, None) {
            return self.caller_refresh_answered(cx, answer);
        }
        if let Some(answer) = self.leg_refresh_answer(cx, &key, None) {
            return self.leg_refresh_answered(cx, answer);
        }
        cx.unindex(Key::Request(key.clone()));
        warn!(method = %key.method(), "no answer to our request");
        match key.method() {
            Method::Invite => self.leg_unanswered(cx),
            Method::Refer => {
                if let Some(refer) = self.transfer.refer_mut() {
                    refer.key = None;
                }
                self.refer_finished(cx, Err(TransferFailure::NoAnswerToRefer));
            }
            _ => {
                self.notes.ended_by(EndedBy::Network, "no answer to BYE");
                self.finish(cx);
            }
        }
    }

    /// A 2xx in one of the call's dialogs that matched no transaction: the ACK we sent
    /// for it was lost, so it goes again (§13.2.2.4).
    pub(crate) fn on_stray_answer(&mut self, cx: &mut Cx<'_>, response: &Response) {
        let dialog = DialogKey::of_response(response);
        if self
            .caller
            .state
            .dialog()
            .is_some_and(|d| d.id.key() == dialog)
        {
            self.caller.reack(cx, response, None);
        } else if let Some(bridge) = self.transfer.bridge() {
            if bridge
                .leg
                .state
                .dialog()
                .is_some_and(|d| d.id.key() == dialog)
            {
                bridge.leg.reack(cx, response, bridge.ack.as_ref());
            }
        }
    }

    /// How our refresh on the caller's leg was answered.
    fn caller_refresh_answered(&mut self, cx: &mut Cx<'_>, answer: RefreshAnswer) {
        match answer {
            RefreshAnswer::Pending => {}
            RefreshAnswer::Refreshed => debug!("session refreshed"),
            RefreshAnswer::Failed(status) => {
                // §10: the dialog is gone on the far side.
                warn!(%status, "session refresh failed; ending the call");
                let why = format!("session refresh answered {status}");
                self.notes.ending = Some((EndedBy::Network, why));
                self.hang_up(cx, "session refresh failed");
            }
            RefreshAnswer::Refused(status) => {
                // Anything else leaves the session as it was; the expiry decides.
                info!(%status, "session refresh refused");
            }
            RefreshAnswer::Unanswered => {
                warn!("no answer to our session refresh; ending the call");
                let why = "no answer to session refresh".to_owned();
                self.notes.ending = Some((EndedBy::Network, why));
                self.hang_up(cx, "session refresh failed");
            }
        }
    }

    /// The caller's session timer is due: refresh (we are the refresher), or the
    /// session expired.
    pub(crate) fn session_due(&mut self, cx: &mut Cx<'_>) {
        use concierge_sip::dialog::session_timer::SessionTimerEvent;
        match self.caller.turn_session(cx.now) {
            crate::leg::TimerTurn::Event(SessionTimerEvent::Refresh) => {
                let sdp = Some(self.inbound.local_sdp.clone().into());
                if let Some((method, interval)) = self.caller.send_refresh(cx, sdp) {
                    info!(%method, interval_s = interval.as_secs(), "refreshing the session");
                }
            }
            crate::leg::TimerTurn::Event(SessionTimerEvent::Expired) => {
                self.caller.session.timer = None;
                warn!("session timer expired without a refresh; ending the call");
                let why = "session expired: no refresh (RFC 4028)".to_owned();
                self.notes.ending = Some((EndedBy::Network, why));
                self.hang_up(cx, "session expired");
            }
            crate::leg::TimerTurn::Idle | crate::leg::TimerTurn::Dropped => {}
        }
    }
}
