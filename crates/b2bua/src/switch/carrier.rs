//! Carrier signalling on the caller's leg: reliable 18x and PRACK (RFC 3262), session
//! timers (RFC 4028), UPDATE (RFC 3311) and early media (183 with SDP before the 200).
//!
//! The decisions are made once, when the INVITE arrives ([`Switch::carrier_for_invite`]):
//! a Session-Expires below our minimum is refused with 422 there, before any port is
//! taken. The rest hooks into the call's life: the first 18x, the 200 (which waits for
//! outstanding PRACKs), requests in the early or confirmed dialog, and the call's timer.

use std::time::Instant;

use concierge_sip::dialog::prack::{has_option_tag, RAck, ReliableEvent, ReliableProvisionals};
use concierge_sip::dialog::session_timer::{
    negotiate_uas, Negotiation, Refresher, SessionExpires, SessionTimer, SessionTimerEvent,
};
use concierge_sip::dialog::DialogId;
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::{
    dialog_response_to, response_to, HeaderName, Headers, Method, Request, Response, StatusCode,
};
use tracing::{debug, info, warn};

use super::refresh::{self, TimerTurn};
use super::{Switch, ALLOW};
use crate::call::Call;
use crate::carrier::{Carrier, Refresh, SUPPORTED};
use crate::output::CallRef;
use crate::record::EndedBy;

impl Switch {
    /// What the INVITE asks of the extensions: the session timer (or a 422 to send) and
    /// whether its 18x go reliably.
    pub(super) fn carrier_for_invite(
        &mut self,
        invite: &Request,
    ) -> Result<Carrier, Box<Response>> {
        let mut carrier = Carrier::default();
        match negotiate_uas(&invite.headers, &self.cfg.session_timer) {
            Negotiation::TooSmall { min_se } => {
                let mut r = self.response(invite, StatusCode::SESSION_INTERVAL_TOO_SMALL);
                r.headers.push(HeaderName::MIN_SE, min_se.to_string());
                return Err(Box::new(r));
            }
            Negotiation::Agreed(a) => carrier.agreed = Some(a),
        }
        let requires = has_option_tag(&invite.headers, &HeaderName::REQUIRE, "100rel");
        let supports = has_option_tag(&invite.headers, &HeaderName::SUPPORTED, "100rel");
        if requires || (supports && self.cfg.prefer_100rel) {
            // RFC 3262 §3: the first RSeq is random in 1 ..= 2³¹−1.
            let first = (self.endpoint.random_u64() % ((1 << 31) - 1)) as u32 + 1;
            carrier.reliable = Some(ReliableProvisionals::new(
                first,
                invite.cseq.seq,
                self.cfg.timers,
            ));
        }
        carrier.peer_allows_update = invite
            .headers
            .get_all(&HeaderName::ALLOW)
            .flat_map(|v| v.split(','))
            .any(|m| m.trim() == "UPDATE");
        Ok(carrier)
    }

    /// The call's first 18x: 183 with our SDP when its flow asks for early media and the
    /// INVITE carried an offer (prompts then play before the 200), else 180.
    pub(super) fn send_ringing(&mut self, now: Instant, id: CallRef) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let called = call.invite.uri.user().unwrap_or_default().to_owned();
        let early = call.audio.is_some()
            && self
                .program
                .flow_for(&called)
                .is_some_and(|f| f.early_media);
        if !early {
            self.send_provisional(now, id, StatusCode::RINGING, None);
            return;
        }
        let sdp = call.local_sdp.clone();
        self.send_provisional(now, id, StatusCode::SESSION_PROGRESS, sdp);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.carrier.early_media = true;
        call.carrier.early_answer_reliable = call.carrier.reliable.is_some();
        call.span
            .in_scope(|| info!("early media: prompts play in 183 Session Progress"));
        self.start_media(now, id);
    }

    /// Sends a 18x that creates the early dialog (§12.1.1), reliably when 100rel is in use.
    fn send_provisional(
        &mut self,
        now: Instant,
        id: CallRef,
        status: StatusCode,
        sdp: Option<String>,
    ) {
        let Some(contact) = self.uas_contact_of(id) else {
            return;
        };
        let user_agent = self.cfg.user_agent.clone();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let mut r = dialog_response_to(&call.invite, status, call.local_tag.as_str(), &contact);
        r.headers.push(HeaderName::SERVER, user_agent);
        let has_sdp = sdp.is_some();
        if let Some(sdp) = sdp {
            r.headers.push(HeaderName::CONTENT_TYPE, "application/sdp");
            r.body = sdp.into();
        }
        let early_id = early_dialog_id(call);
        let key = call.invite_key.clone();
        let peer = call.peer;
        let send_now = match call.carrier.reliable.as_mut() {
            Some(rel) => {
                let rseq = rel.take_rseq();
                r.headers.push(HeaderName::REQUIRE, "100rel");
                r.headers.push(HeaderName::RSEQ, rseq.to_string());
                r.headers.push(HeaderName::ALLOW, ALLOW);
                r.headers.push(HeaderName::SUPPORTED, SUPPORTED);
                rel.send(now, rseq, r.to_bytes(), has_sdp).is_some()
            }
            None => true,
        };
        // Requests in the early dialog (PRACK, UPDATE) find the call by it.
        self.by_dialog.insert(early_id, id);
        if send_now {
            self.endpoint.respond(now, &key, r);
        } else {
            debug!(%peer.addr, "reliable 18x queued behind an unacknowledged one");
        }
        self.rearm(id);
    }

    /// RFC 3262 §3: the 200 may not overtake an unacknowledged reliable 18x. Returns
    /// whether the answer has to wait (it goes out when the PRACK arrives).
    pub(super) fn answer_waits_for_prack(&mut self, id: CallRef) -> bool {
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        let wait = call
            .carrier
            .reliable
            .as_ref()
            .is_some_and(ReliableProvisionals::blocks_answer);
        call.carrier.answer_waiting = wait;
        if wait {
            call.span
                .in_scope(|| debug!("200 OK waits for the PRACK of a reliable 18x"));
        }
        wait
    }

    /// Our 200 OK: the session timer's Session-Expires (RFC 4028 §9) and `Require: timer`
    /// when the caller knows the extension; the timer starts now.
    pub(super) fn answer_session_timer(
        &mut self,
        now: Instant,
        id: CallRef,
        headers: &mut Headers,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(agreed) = call.carrier.agreed else {
            return;
        };
        push_session_expires(headers, &agreed.expires, agreed.peer_supports);
        call.carrier.timer = Some(SessionTimer::new(
            now,
            agreed.interval(),
            agreed.we_refresh(),
        ));
    }

    /// Requests in the early dialog, before our 200. Returns whether it was handled.
    pub(super) fn on_early_dialog_request(
        &mut self,
        now: Instant,
        id: CallRef,
        key: TsxKey,
        request: Request,
    ) -> Option<Request> {
        match request.method {
            Method::Prack => self.on_prack(now, id, key, request),
            Method::Update => self.on_update(now, id, key, request),
            Method::Invite => {
                // RFC 3261 §14.2: a second INVITE before the first one's final answer.
                let mut r = response_to(&request, StatusCode::SERVER_INTERNAL_ERROR, None);
                r.headers.push(HeaderName::RETRY_AFTER, "1");
                self.endpoint.respond(now, &key, r);
            }
            Method::Bye => {
                // §15: a BYE in an early dialog ends it; the INVITE gets its 487.
                let r = response_to(&request, StatusCode::OK, None);
                self.endpoint.respond(now, &key, r);
                let call = self.calls.get(&id)?;
                let r = response_to(
                    &call.invite,
                    StatusCode::REQUEST_TERMINATED,
                    Some(call.local_tag.as_str()),
                );
                let invite_key = call.invite_key.clone();
                self.endpoint.respond(now, &invite_key, r);
                self.flow_hung_up(id);
                self.end_call(now, id, EndedBy::Caller, "hung up before the answer");
            }
            _ => return Some(request),
        }
        None
    }

    /// RFC 3262 §3: a PRACK that acknowledges the outstanding reliable 18x gets 200 and
    /// stops its retransmission; one that matches nothing gets 481.
    pub(super) fn on_prack(&mut self, now: Instant, id: CallRef, key: TsxKey, request: Request) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(rack) = request.header(&HeaderName::RACK).and_then(RAck::parse) else {
            let r = response_to(&request, StatusCode::BAD_REQUEST, None);
            self.endpoint.respond(now, &key, r);
            return;
        };
        let matched = call
            .carrier
            .reliable
            .as_mut()
            .map(|rel| rel.handle_prack(now, &rack));
        let next = match matched {
            Some(Ok(next)) => next,
            _ => {
                call.span
                    .in_scope(|| debug!(rseq = rack.rseq, "PRACK matches no reliable 18x; 481"));
                let r = response_to(&request, StatusCode::CALL_DOES_NOT_EXIST, None);
                self.endpoint.respond(now, &key, r);
                return;
            }
        };
        call.span.in_scope(|| debug!(rseq = rack.rseq, "PRACK"));
        let peer = call.peer;
        let answer_now = call.carrier.answer_waiting
            && !call
                .carrier
                .reliable
                .as_ref()
                .is_some_and(ReliableProvisionals::blocks_answer);
        // RFC 3262 §5: once our reliable 18x carried the answer, a PRACK may carry a new
        // offer; its 200 then carries our answer, as for an UPDATE.
        if !request.body.is_empty() && call.carrier.early_answer_reliable {
            self.on_reinvite(now, id, key, request);
        } else {
            if !request.body.is_empty() {
                call.span
                    .in_scope(|| debug!("PRACK body ignored: no offer/answer pending for it"));
            }
            let r = response_to(&request, StatusCode::OK, None);
            self.endpoint.respond(now, &key, r);
        }
        if let Some(bytes) = next {
            self.endpoint.send_raw(peer, bytes);
        }
        if answer_now {
            if let Some(call) = self.calls.get_mut(&id) {
                call.carrier.answer_waiting = false;
            }
            self.answer(now, id);
        }
        self.rearm(id);
    }

    /// RFC 3311: UPDATE in the early or confirmed dialog. With SDP it is an offer,
    /// answered as a re-INVITE's is; without, a target and session refresh.
    pub(super) fn on_update(&mut self, now: Instant, id: CallRef, key: TsxKey, request: Request) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if !request.body.is_empty() {
            if call.state.is_early() && !call.carrier.early_answer_reliable {
                // §5.2: the INVITE's offer has no reliably delivered answer yet.
                let mut r = response_to(&request, StatusCode::SERVER_INTERNAL_ERROR, None);
                r.headers.push(HeaderName::RETRY_AFTER, "1");
                self.endpoint.respond(now, &key, r);
                return;
            }
            return self.on_reinvite(now, id, key, request);
        }
        let contact = super::family::uas_contact(&self.cfg, call.peer, &call.invite.uri);
        let mut ok = response_to(&request, StatusCode::OK, None);
        ok.headers.push(HeaderName::CONTACT, format!("<{contact}>"));
        self.session_refreshed_by_peer(now, id, &request, &mut ok.headers);
        self.endpoint.respond(now, &key, ok);
    }

    /// RFC 3311 §5.2 / RFC 3261 §14.2: an offer that crosses ours gets 491. Returns
    /// whether `request` was refused so.
    pub(super) fn refuse_glare(
        &mut self,
        now: Instant,
        id: CallRef,
        key: &TsxKey,
        request: &Request,
    ) -> bool {
        if !self
            .calls
            .get(&id)
            .is_some_and(|c| c.carrier.offer_in_flight())
        {
            return false;
        }
        let r = response_to(request, StatusCode::REQUEST_PENDING, None);
        self.endpoint.respond(now, key, r);
        true
    }

    /// The peer refreshed the session (any 2xx to its re-INVITE or UPDATE, RFC 4028 §10):
    /// the timer restarts with what this request negotiates, echoed in our 2xx.
    pub(super) fn session_refreshed_by_peer(
        &mut self,
        now: Instant,
        id: CallRef,
        request: &Request,
        headers: &mut Headers,
    ) {
        let cfg = self.cfg.session_timer;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(timer) = call.carrier.timer.as_mut() else {
            return;
        };
        let agreed = match negotiate_uas(&request.headers, &cfg) {
            Negotiation::Agreed(a) => a,
            // Mid-call we do not refuse the session for it: our minimum stands.
            Negotiation::TooSmall { min_se } => {
                let mut a = call
                    .carrier
                    .agreed
                    .unwrap_or_else(|| unreachable_agreed(min_se));
                a.expires.delta = min_se;
                a
            }
        };
        timer.refreshed(now, agreed.interval(), agreed.we_refresh());
        call.carrier.agreed = Some(agreed);
        push_session_expires(headers, &agreed.expires, agreed.peer_supports);
    }

    /// The call's carrier timers: reliable 18x retransmission, the session timer. Returns
    /// whether one fired.
    pub(super) fn carrier_timeout(&mut self, now: Instant, id: CallRef) -> bool {
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        match call
            .carrier
            .reliable
            .as_mut()
            .and_then(|r| r.handle_timeout(now))
        {
            Some(ReliableEvent::Retransmit(bytes)) => {
                let peer = call.peer;
                self.endpoint.send_raw(peer, bytes);
                return true;
            }
            Some(ReliableEvent::Timeout) => {
                // RFC 3262 §3: no PRACK in 64·T1 → the INVITE is rejected with a 5xx.
                call.span
                    .in_scope(|| warn!("no PRACK for a reliable 18x; INVITE rejected with 504"));
                if call.state.is_early() {
                    let r = response_to(
                        &call.invite,
                        StatusCode::SERVER_TIMEOUT,
                        Some(call.local_tag.as_str()),
                    );
                    let key = call.invite_key.clone();
                    self.endpoint.respond(now, &key, r);
                    self.flow_hung_up(id);
                    self.end_call(
                        now,
                        id,
                        EndedBy::Network,
                        "no PRACK for a reliable provisional response",
                    );
                }
                return true;
            }
            None => {}
        }
        // Ending or not yet answered: nothing to refresh or expire.
        match refresh::turn(&mut call.carrier.timer, call.state.is_up(), now) {
            TimerTurn::Dropped(due) => due,
            TimerTurn::Event(SessionTimerEvent::Refresh) => {
                self.send_refresh(now, id);
                true
            }
            TimerTurn::Event(SessionTimerEvent::Expired) => {
                call.carrier.timer = None;
                call.span
                    .in_scope(|| warn!("session timer expired without a refresh; ending the call"));
                call.ending = Some((
                    EndedBy::Network,
                    "session expired: no refresh (RFC 4028)".into(),
                ));
                self.hang_up(now, id, "session expired");
                true
            }
            TimerTurn::Idle => false,
        }
    }

    /// RFC 4028 §7.4: we are the refresher: an UPDATE without SDP when the caller allows
    /// UPDATE, else a re-INVITE offering our current SDP unchanged.
    fn send_refresh(&mut self, now: Instant, id: CallRef) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.carrier.refresh.is_some() {
            return;
        }
        let (Some(dialog), Some(timer)) = (call.state.dialog_mut(), call.carrier.timer.as_ref())
        else {
            return;
        };
        let use_update = call.carrier.peer_allows_update;
        let interval = timer.interval();
        let sdp = call.local_sdp.clone().map(Into::into);
        let req = refresh::refresh_request(dialog, use_update, interval, sdp);
        let peer = dialog.next_hop(call.peer);
        let method = req.method.clone();
        call.span
            .in_scope(|| info!(%method, interval_s = interval.as_secs(), "refreshing the session"));
        let key = self.endpoint.send_request(now, req, peer);
        self.by_client_tsx.insert(key.clone(), id);
        if let Some(call) = self.calls.get_mut(&id) {
            call.carrier.refresh = Some(Refresh {
                key,
                is_invite: !use_update,
            });
        }
    }

    /// The answer to our refresh. Returns whether `key` was one.
    pub(super) fn on_refresh_response(
        &mut self,
        now: Instant,
        key: &TsxKey,
        response: &Response,
    ) -> bool {
        // A 2xx naming an interval below our floor is a peer error; it must not make the
        // timer fire at once.
        let min_se = self.cfg.session_timer.min_se;
        let Some(&id) = self.by_client_tsx.get(key) else {
            return false;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        if call.carrier.refresh.as_ref().map(|r| &r.key) != Some(key) {
            return false;
        }
        if response.status.is_provisional() {
            return true;
        }
        call.carrier.refresh = None;
        self.by_client_tsx.remove(key);
        if response.cseq.method == Method::Invite && response.status.is_success() {
            // §13.2.2.4: the ACK for our re-INVITE's 2xx is ours to send.
            let via = self.endpoint.new_via(call.peer);
            if let Some(d) = call.state.dialog() {
                let ack = d.ack(response.cseq.seq, via).to_bytes();
                let peer = d.next_hop(call.peer);
                // Kept to answer a retransmitted 2xx whose ACK was lost.
                call.carrier.refresh_ack = Some((response.cseq.seq, ack.clone()));
                self.endpoint.send_raw(peer, ack);
            }
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return true;
        };
        if response.status.is_success() {
            if let Some(timer) = call.carrier.timer.as_mut() {
                let (interval, we_refresh) =
                    refresh::refreshed_interval(response, timer.interval(), min_se);
                timer.refreshed(now, interval, we_refresh);
                call.span.in_scope(|| debug!("session refreshed"));
            }
        } else if matches!(response.status.0, 408 | 481) {
            // §10: the dialog is gone on the far side.
            call.span.in_scope(
                || warn!(status = %response.status, "session refresh failed; ending the call"),
            );
            call.ending = Some((
                EndedBy::Network,
                format!("session refresh answered {}", response.status),
            ));
            self.hang_up(now, id, "session refresh failed");
        } else {
            // Anything else leaves the session as it was; the expiry decides.
            call.span
                .in_scope(|| info!(status = %response.status, "session refresh refused"));
        }
        self.rearm(id);
        true
    }

    /// Our refresh got no answer at all: the peer is gone. Returns whether `key` was one.
    pub(super) fn on_refresh_timeout(&mut self, now: Instant, key: &TsxKey) -> bool {
        let Some(&id) = self.by_client_tsx.get(key) else {
            return false;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        if call.carrier.refresh.as_ref().map(|r| &r.key) != Some(key) {
            return false;
        }
        self.by_client_tsx.remove(key);
        call.carrier.refresh = None;
        call.span
            .in_scope(|| warn!("no answer to our session refresh; ending the call"));
        call.ending = Some((EndedBy::Network, "no answer to session refresh".into()));
        self.hang_up(now, id, "session refresh failed");
        true
    }
}

/// The early dialog our 18x created: what the confirmed dialog will be too.
pub(super) fn early_dialog_id(call: &Call) -> DialogId {
    DialogId {
        call_id: call.invite.call_id.as_str().into(),
        local_tag: call.local_tag.clone(),
        remote_tag: call.invite.from.tag().unwrap_or_default().into(),
    }
}

fn push_session_expires(headers: &mut Headers, se: &SessionExpires, require: bool) {
    headers.push(HeaderName::SESSION_EXPIRES, se.value());
    if require {
        headers.push(HeaderName::REQUIRE, "timer");
    }
}

/// A timer runs only with an agreement, so this is not reached; it keeps the refresh
/// path total rather than panicking on peer input.
fn unreachable_agreed(min_se: u32) -> concierge_sip::dialog::session_timer::Agreed {
    concierge_sip::dialog::session_timer::Agreed {
        expires: SessionExpires {
            delta: min_se,
            refresher: Some(Refresher::Uas),
        },
        peer_supports: false,
    }
}

impl Switch {
    /// A retransmitted 2xx to our refresh re-INVITE (its ACK was lost): ACK it again.
    /// Returns whether it was one.
    pub(super) fn reack_refresh(&mut self, id: CallRef, response: &Response) -> bool {
        let Some(call) = self.calls.get(&id) else {
            return false;
        };
        let Some((seq, ack)) = call.carrier.refresh_ack.clone() else {
            return false;
        };
        if response.cseq.seq != seq {
            return false;
        }
        let peer = call
            .state
            .dialog()
            .map_or(call.peer, |d| d.next_hop(call.peer));
        self.endpoint.send_raw(peer, ack);
        true
    }
}
