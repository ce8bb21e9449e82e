//! A call's set-up: a new INVITE admitted (the session timer, a port, the SDP answer, who is
//! calling) and rung once its port is bound; the answer (200 with SDP, retransmitted until
//! the ACK), the ACK that starts the media, and a CANCEL before the answer.

use std::net::SocketAddr;

use concierge_media::sdp::{self, OfferError};
use concierge_media::srtp::MasterKey;
use concierge_media::AudioSession;
use concierge_sip::dialog::{AnswerRetransmit, Dialog, DialogId};
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::{dialog_response_to, HeaderName, Request, StatusCode};
use concierge_sip::{Peer, Tag, Untrusted};
use tracing::{info, info_span, warn};

use super::{Call, CallTimer, Cx, Inbound, Notes, Transfer};
use crate::family;
use crate::leg::{LegState, SipLeg};
use crate::output::PortError;
use crate::record::EndedBy;
use crate::switch::{Key, ALLOW, SUPPORTED};

/// How long the INVITE may go unanswered before 100 Trying is sent. RFC 3261 §17.2.1: the
/// server transaction sends 100 "unless it knows that the TU will generate a provisional or
/// final response within 200 ms". The call rings (180) as soon as its RTP port is bound,
/// nearly always in the turn the INVITE arrived: a 100 there would reach the caller a few
/// microseconds before the 180, one datagram more a call for nothing. It still goes out
/// whenever the answer is slower.
pub(crate) const TRYING_WITHIN: std::time::Duration = std::time::Duration::from_millis(200);

impl Call {
    /// A new INVITE the switch admitted: the session timer (422), an RTP port (503 when
    /// none is free), the SDP answer (488 when nothing fits), who is calling; then the
    /// port to bind, and 100 Trying owed should nothing answer the INVITE within
    /// [`TRYING_WITHIN`]. `None` when the INVITE was refused (and answered).
    pub(crate) fn accept(
        cx: &mut Cx<'_>,
        key: TsxKey,
        invite: Request,
        peer: Peer,
    ) -> Option<Self> {
        let span = info_span!("call", call_id = %Untrusted(&invite.call_id));
        let carrier = match super::inbound::carrier_for_invite(cx, &invite) {
            Ok(c) => c,
            Err(r) => {
                span.in_scope(|| info!(status = %r.status, "INVITE refused by the session timer"));
                cx.respond(&key, *r);
                return None;
            }
        };
        let Some(port) = cx.ports.allocate(cx.now) else {
            span.in_scope(|| warn!("no free RTP port; INVITE refused with 503"));
            cx.stats.refused_no_port += 1;
            let r = cx.unavailable(&invite, None);
            cx.respond(&key, r);
            return None;
        };
        let srtp_key = cx.new_srtp_key();
        let local = SocketAddr::new(family::media_ip_for(cx.cfg, peer.addr.ip()), port);
        let (audio, local_sdp) = match local_sdp(cx, &invite.body, local, 1, &srtp_key) {
            Ok(answer) => answer,
            Err(OfferError::NotAcceptable(why)) => {
                cx.ports.release(port, cx.now);
                span.in_scope(|| info!(why = %Untrusted(&why), "offer refused with 488"));
                let tag = cx.endpoint.new_tag();
                let mut r =
                    cx.response_tagged(&invite, StatusCode::NOT_ACCEPTABLE_HERE, tag.as_str());
                r.headers.push(
                    HeaderName::new("Warning"),
                    format!("304 concierge \"{why}\""),
                );
                cx.respond(&key, r);
                return None;
            }
        };
        let local_tag = cx.endpoint.new_tag();
        let identity = crate::identity::identify_source(
            &invite,
            cx.authenticated
                || cx.cfg.trusted_peers.contains(peer.addr.ip())
                || cx.trunks.trusts(peer.addr.ip()),
        );
        span.in_scope(|| {
            info!(
                caller = %identity.for_log(),
                verified = identity.verified,
                to = %Untrusted(&invite.uri),
                "incoming call"
            )
        });
        cx.index(Key::Invite(key.clone()));
        cx.index(Key::CallId(invite.call_id.clone()));
        let mut caller = SipLeg::new(peer, local_tag, LegState::Early, srtp_key);
        caller.audio = audio;
        caller.session = carrier.session;
        // The port goes into an SDP only once the driver has bound it (`Input::PortBound`).
        caller.port.open(cx, port);
        let mut call = Self {
            span,
            caller,
            inbound: Inbound {
                invite,
                key,
                local_sdp,
                sdp_version: 1,
                reliable: carrier.reliable,
                early_media: false,
                early_answer_reliable: false,
                answer_waiting: false,
            },
            identity,
            media: Default::default(),
            flow: None,
            transfer: Transfer::Idle,
            notes: Notes {
                arrived: cx.now,
                answered: None,
                ending: None,
                transfer: None,
                transfer_started: None,
                redact_target: false,
                lockout: None,
            },
            timers: Default::default(),
            expires: cx.now + cx.cfg.max_call_duration,
            finished: false,
        };
        call.timers.set(CallTimer::Trying, cx.now + TRYING_WITHIN);
        call.tell_arrived(cx);
        Some(call)
    }

    /// The driver bound `port`: the caller's, and the call rings; or the bridge leg's.
    pub(crate) fn on_port_bound(&mut self, cx: &mut Cx<'_>, port: u16) {
        if !self.caller.port.is(port) {
            return self.leg_port_bound(cx, port);
        }
        if !(self.caller.state.is_early() && self.caller.port.is_binding()) {
            return;
        }
        self.caller.port.set_bound();
        self.ring(cx);
    }

    /// The driver could not bind `port`: the caller's leg tries another before the
    /// INVITE is refused with 503 (the bridge leg's, before the transfer fails).
    pub(crate) fn on_port_failed(&mut self, cx: &mut Cx<'_>, port: u16, error: PortError) {
        if !self.caller.port.is(port) {
            return self.leg_port_failed(cx, port, error);
        }
        let why = match error {
            PortError::InUse => "another program holds it",
            PortError::Other => "bind failed",
        };
        warn!(port, why, "RTP port could not be bound");
        if !(self.caller.state.is_early() && self.caller.port.is_binding()) {
            self.caller.port.drop_failed(cx, error);
            return;
        }
        let Some(next) = self.caller.port.rebind(cx, error) else {
            warn!("no RTP port could be bound; INVITE refused with 503");
            return self.refuse_unbound(cx);
        };
        // The same offer answered again: only the port changes.
        let ip = family::media_ip_for(cx.cfg, self.caller.peer.addr.ip());
        let version = self.inbound.sdp_version;
        let body = &self.inbound.invite.body;
        match local_sdp(
            cx,
            body,
            SocketAddr::new(ip, next),
            version,
            &self.caller.srtp.key,
        ) {
            Ok((_, sdp)) => self.inbound.local_sdp = sdp,
            // It was acceptable a moment ago.
            Err(_) => self.refuse_unbound(cx),
        }
    }

    fn refuse_unbound(&mut self, cx: &mut Cx<'_>) {
        let tag = self.caller.local_tag.clone();
        let r = cx.unavailable(&self.inbound.invite, Some(tag.as_str()));
        cx.stats.refused_no_port += 1;
        self.respond_to_invite(cx, r);
        self.end(cx, EndedBy::Concierge, "no RTP port");
    }

    /// The call's RTP port is ours: 180 (§12.1.1: it creates the early dialog), then the
    /// flow — which answers when it first needs media — or the plain answer.
    fn ring(&mut self, cx: &mut Cx<'_>) {
        self.send_ringing(cx);
        if self.start_flow(cx) {
            // The flow answers when it first needs media.
        } else if cx.cfg.answer_after.is_zero() {
            self.answer(cx);
        } else {
            self.timers
                .set(CallTimer::Answer, cx.now + cx.cfg.answer_after);
        }
    }

    /// `answer_after` passed while ringing.
    pub(crate) fn answer_due(&mut self, cx: &mut Cx<'_>) {
        if self.caller.state.is_early() {
            self.answer(cx);
        }
    }

    /// Sends the 200 OK and sets up the dialog (§13.3.1.4).
    pub(crate) fn answer(&mut self, cx: &mut Cx<'_>) {
        self.timers.stop(CallTimer::Answer);
        if self.answer_waits_for_prack() {
            return;
        }
        let invite = &self.inbound.invite;
        let contact = family::uas_contact(cx.cfg, cx.contacts, self.caller.peer, &invite.uri);
        let tag = self.caller.local_tag.as_str();
        let mut ok = dialog_response_to(invite, StatusCode::OK, tag, &contact);
        ok.headers.push(HeaderName::ALLOW, ALLOW);
        ok.headers.push(HeaderName::SUPPORTED, SUPPORTED);
        ok.headers.push(HeaderName::SERVER, &cx.cfg.user_agent);
        self.answer_session_timer(cx, &mut ok.headers);
        ok.headers.push(HeaderName::CONTENT_TYPE, "application/sdp");
        ok.body = self.inbound.local_sdp.clone().into();
        let bytes = ok.to_bytes();
        let dialog = Dialog::uas(&self.inbound.invite, &self.caller.local_tag, contact, 0);
        cx.index(Key::Dialog(dialog.id.clone()));
        let reliable = self.caller.peer.transport.is_reliable();
        let retransmit = AnswerRetransmit::new(cx.now, bytes, reliable, cx.cfg.timers);
        self.caller.state = LegState::Answered { dialog, retransmit };
        self.notes.answered = Some(cx.now);
        self.respond_to_invite(cx, ok);
        info!("answered");
    }

    /// Our 200 went unACKed for a while: resend it, or give up at 64·T1 with BYE.
    pub(crate) fn retransmit_due(&mut self, cx: &mut Cx<'_>) {
        use concierge_sip::dialog::AnswerEvent;
        let event = self
            .caller
            .state
            .retransmit_mut()
            .and_then(|a| a.handle_timeout(cx.now));
        match event {
            Some(AnswerEvent::Retransmit(bytes)) => cx.send_raw(self.caller.peer, bytes),
            // Our BYE is already out: the 200 simply stops.
            Some(AnswerEvent::AckTimeout) if self.caller.state.is_ending() => {}
            Some(AnswerEvent::AckTimeout) => {
                warn!("no ACK for our 200 OK; ending the call with BYE");
                self.notes.ending = Some((EndedBy::Network, "no ACK".into()));
                self.hang_up(cx, "no ACK");
            }
            None => {}
        }
    }

    /// The ACK: the 200 stops, and a confirmed call's media starts.
    pub(crate) fn on_ack(&mut self, cx: &mut Cx<'_>, ack: Request) {
        // An ACK ends the 200's retransmission, in whatever state it finds the call.
        let confirmed = self.caller.state.confirm();
        // Late offer: the ACK carries the answer to the offer in our 200 (§13.2.1).
        if self.caller.audio.is_none() && !ack.body.is_empty() {
            let ours = self.caller.srtp.offer_key(cx.cfg.srtp);
            match sdp::accept_with(&String::from_utf8_lossy(&ack.body), ours) {
                Ok(audio) => self.caller.audio = Some(audio),
                Err(OfferError::NotAcceptable(why)) => {
                    warn!(%why, "unusable answer in the ACK; hanging up");
                    self.hang_up(cx, "unusable SDP answer");
                    return;
                }
            }
        }
        if confirmed {
            info!("call confirmed by ACK");
            self.start_media(cx);
        }
    }

    /// A CANCEL before our final answer: 487 to the INVITE, and the call is over.
    pub(crate) fn on_cancel(&mut self, cx: &mut Cx<'_>) {
        if !self.caller.state.is_early() {
            return;
        }
        self.answer_invite(cx, StatusCode::REQUEST_TERMINATED);
        info!("cancelled by the caller before the answer");
        self.flow_hung_up();
        self.end(cx, EndedBy::Caller, "cancelled before the answer");
    }

    /// Timer H: our error response to the INVITE was never ACKed; nothing left to do.
    pub(crate) fn on_invite_timeout(&mut self, cx: &mut Cx<'_>) {
        self.finish(cx);
    }
}

/// RFC 3264: our answer to the offer in `body` at `local`, or our own offer when the
/// INVITE had none (it goes in the 200, and the ACK answers it).
pub(crate) fn local_sdp(
    cx: &Cx<'_>,
    body: &[u8],
    local: SocketAddr,
    version: u64,
    key: &MasterKey,
) -> Result<(Option<AudioSession>, String), OfferError> {
    let policy = cx.cfg.srtp;
    if body.is_empty() {
        let ours = crate::leg::offer_key(policy, key);
        return Ok((None, sdp::offer_with(local, version, ours)));
    }
    // Valid UTF-8 (nearly every offer) is read in place; `from_utf8_lossy` checks it more
    // slowly.
    let offer = match std::str::from_utf8(body) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(body),
    };
    let (audio, sdp) = sdp::answer_with(&offer, local, version, policy, Some(key))?;
    Ok((Some(audio), sdp))
}

/// The early dialog our 18x created: what the confirmed dialog will be too.
pub(crate) fn early_dialog_id(invite: &Request, local_tag: &Tag) -> DialogId {
    DialogId {
        call_id: invite.call_id.clone(),
        local_tag: local_tag.clone(),
        remote_tag: invite.from.tag().unwrap_or_default().into(),
    }
}
