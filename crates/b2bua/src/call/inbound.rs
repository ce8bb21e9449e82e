//! The caller's INVITE as carrier networks send it: reliable provisional responses and
//! PRACK (RFC 3262), the session timer agreed from the INVITE (RFC 4028), early media (183
//! with SDP before the 200) and requests in the early dialog.
//!
//! The decisions are made once, when the INVITE arrives ([`carrier_for_invite`]): a
//! Session-Expires below our minimum is refused with 422 there, before any port is taken.

use concierge_sip::dialog::prack::{has_option_tag, RAck, ReliableEvent, ReliableProvisionals};
use concierge_sip::dialog::session_timer::{negotiate_uas, Negotiation, SessionTimer};
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::{
    dialog_response_to, response_to, HeaderName, Headers, Method, Request, Response, StatusCode,
};
use tracing::{debug, info, warn};

use super::{Call, CallTimer, Cx};
use crate::family;
use crate::leg::{push_session_expires, SessionRefresh};
use crate::record::EndedBy;
use crate::switch::{Key, ALLOW, SUPPORTED};

/// What the INVITE asked of the extensions.
pub(super) struct Extensions {
    /// The caller's leg's session (the timer agreed; how we refresh).
    pub(super) session: SessionRefresh,
    /// Reliable 18x, when the caller requires or supports 100rel.
    pub(super) reliable: Option<ReliableProvisionals>,
}

/// What `invite` asks of the extensions: the session timer (or the 422 to send) and
/// whether its 18x go reliably.
pub(super) fn carrier_for_invite(
    cx: &mut Cx<'_>,
    invite: &Request,
) -> Result<Extensions, Box<Response>> {
    let agreed = match negotiate_uas(&invite.headers, &cx.cfg.session_timer) {
        Negotiation::TooSmall { min_se } => {
            let tag = cx.endpoint.new_tag();
            let mut r =
                cx.response_tagged(invite, StatusCode::SESSION_INTERVAL_TOO_SMALL, tag.as_str());
            r.headers.push(HeaderName::MIN_SE, min_se.to_string());
            return Err(Box::new(r));
        }
        Negotiation::Agreed(a) => a,
    };
    let requires = has_option_tag(&invite.headers, &HeaderName::REQUIRE, "100rel");
    let supports = has_option_tag(&invite.headers, &HeaderName::SUPPORTED, "100rel");
    let reliable = (requires || (supports && cx.cfg.prefer_100rel)).then(|| {
        // RFC 3262 §3: the first RSeq is random in 1 ..= 2³¹−1.
        let first = (cx.endpoint.random_u64() % ((1 << 31) - 1)) as u32 + 1;
        ReliableProvisionals::new(first, invite.cseq.seq, cx.cfg.timers)
    });
    Ok(Extensions {
        session: SessionRefresh::answering(Some(agreed), allows_update(&invite.headers)),
        reliable,
    })
}

/// Whether a message's Allow lists UPDATE.
pub(crate) fn allows_update(headers: &Headers) -> bool {
    headers
        .get_all(&HeaderName::ALLOW)
        .flat_map(|v| v.split(','))
        .any(|m| m.trim() == "UPDATE")
}

impl Call {
    /// The call's first 18x: 183 with our SDP when its flow asks for early media and the
    /// INVITE carried an offer (prompts then play before the 200), else 180.
    pub(super) fn send_ringing(&mut self, cx: &mut Cx<'_>) {
        let called = self.inbound.invite.uri.user().unwrap_or_default();
        let early = self.caller.audio.is_some()
            && cx.program.flow_for(called).is_some_and(|f| f.early_media);
        if !early {
            self.send_provisional(cx, StatusCode::RINGING, false);
            return;
        }
        self.send_provisional(cx, StatusCode::SESSION_PROGRESS, true);
        self.inbound.early_media = true;
        self.inbound.early_answer_reliable = self.inbound.reliable.is_some();
        info!("early media: prompts play in 183 Session Progress");
        self.start_media(cx);
    }

    /// Sends a 18x that creates the early dialog (§12.1.1), with our SDP when `sdp`,
    /// reliably when 100rel is in use.
    fn send_provisional(&mut self, cx: &mut Cx<'_>, status: StatusCode, sdp: bool) {
        let invite = &self.inbound.invite;
        let contact = family::uas_contact(cx.cfg, cx.contacts, self.caller.peer, &invite.uri);
        let tag = self.caller.local_tag.as_str();
        let mut r = dialog_response_to(invite, status, tag, &contact);
        r.headers.push(HeaderName::SERVER, &cx.cfg.user_agent);
        if sdp {
            r.headers.push(HeaderName::CONTENT_TYPE, "application/sdp");
            r.body = self.inbound.local_sdp.clone().into();
        }
        let send_now = match self.inbound.reliable.as_mut() {
            Some(rel) => {
                let rseq = rel.take_rseq();
                r.headers.push(HeaderName::REQUIRE, "100rel");
                r.headers.push(HeaderName::RSEQ, rseq.to_string());
                r.headers.push(HeaderName::ALLOW, ALLOW);
                r.headers.push(HeaderName::SUPPORTED, SUPPORTED);
                rel.send(cx.now, rseq, r.to_bytes(), sdp).is_some()
            }
            None => true,
        };
        // Requests in the early dialog (PRACK, UPDATE) find the call by it.
        let early = super::setup::early_dialog_id(invite, &self.caller.local_tag);
        cx.index(Key::Dialog(early));
        if send_now {
            self.respond_to_invite(cx, r);
        } else {
            debug!(peer = %self.caller.peer.addr, "reliable 18x queued behind an unacknowledged one");
        }
    }

    /// RFC 3262 §3: the 200 may not overtake an unacknowledged reliable 18x. Returns
    /// whether the answer has to wait (it goes out when the PRACK arrives).
    pub(super) fn answer_waits_for_prack(&mut self) -> bool {
        let wait = self
            .inbound
            .reliable
            .as_ref()
            .is_some_and(ReliableProvisionals::blocks_answer);
        self.inbound.answer_waiting = wait;
        if wait {
            debug!("200 OK waits for the PRACK of a reliable 18x");
        }
        wait
    }

    /// Our 200 OK: the session timer's Session-Expires (RFC 4028 §9) and `Require: timer`
    /// when the caller knows the extension; the timer starts now.
    pub(super) fn answer_session_timer(&mut self, cx: &Cx<'_>, headers: &mut Headers) {
        let Some(agreed) = self.caller.session.agreed else {
            return;
        };
        push_session_expires(headers, &agreed.expires, agreed.peer_supports);
        self.caller.session.timer = Some(SessionTimer::new(
            cx.now,
            agreed.interval(),
            agreed.we_refresh(),
        ));
    }

    /// A request in the early dialog, before our 200. Returns it when it is not one the
    /// early dialog handles.
    pub(super) fn on_early_request(
        &mut self,
        cx: &mut Cx<'_>,
        key: TsxKey,
        request: Request,
    ) -> Option<Request> {
        match request.method {
            Method::Prack => self.on_prack(cx, key, request),
            Method::Update => self.on_update(cx, key, request),
            Method::Invite => {
                // RFC 3261 §14.2: a second INVITE before the first one's final answer.
                let mut r = response_to(&request, StatusCode::SERVER_INTERNAL_ERROR, None);
                r.headers.push(HeaderName::RETRY_AFTER, "1");
                cx.respond(&key, r);
            }
            Method::Bye => {
                // §15: a BYE in an early dialog ends it; the INVITE gets its 487.
                cx.respond(&key, response_to(&request, StatusCode::OK, None));
                self.answer_invite(cx, StatusCode::REQUEST_TERMINATED);
                self.flow_hung_up();
                self.end(cx, EndedBy::Caller, "hung up before the answer");
            }
            _ => return Some(request),
        }
        None
    }

    /// A final answer other than 200 to the caller's INVITE, in its early dialog.
    pub(super) fn answer_invite(&mut self, cx: &mut Cx<'_>, status: StatusCode) {
        let tag = self.caller.local_tag.as_str();
        let r = response_to(&self.inbound.invite, status, Some(tag));
        self.respond_to_invite(cx, r);
    }

    /// Every response to the caller's INVITE goes out here: once one has, no 100 Trying
    /// is owed.
    pub(super) fn respond_to_invite(&mut self, cx: &mut Cx<'_>, response: Response) {
        self.timers.stop(CallTimer::Trying);
        cx.respond(&self.inbound.key, response);
    }

    /// The INVITE went [`TRYING_WITHIN`](super::setup::TRYING_WITHIN) without an answer
    /// (the port still binding, or a slow driver): 100 Trying, so the caller stops
    /// retransmitting it (§17.2.1). It carries no To tag: no dialog exists yet.
    pub(crate) fn trying_due(&mut self, cx: &mut Cx<'_>) {
        if self.caller.state.is_early() {
            let r = response_to(&self.inbound.invite, StatusCode::TRYING, None);
            cx.respond(&self.inbound.key, r);
        }
    }

    /// RFC 3262 §3: a PRACK that acknowledges the outstanding reliable 18x gets 200 and
    /// stops its retransmission; one that matches nothing gets 481.
    pub(super) fn on_prack(&mut self, cx: &mut Cx<'_>, key: TsxKey, request: Request) {
        let Some(rack) = request.header(&HeaderName::RACK).and_then(RAck::parse) else {
            cx.respond(&key, response_to(&request, StatusCode::BAD_REQUEST, None));
            return;
        };
        let matched = self
            .inbound
            .reliable
            .as_mut()
            .map(|rel| rel.handle_prack(cx.now, &rack));
        let Some(Ok(next)) = matched else {
            debug!(rseq = rack.rseq, "PRACK matches no reliable 18x; 481");
            let r = response_to(&request, StatusCode::CALL_DOES_NOT_EXIST, None);
            cx.respond(&key, r);
            return;
        };
        debug!(rseq = rack.rseq, "PRACK");
        let answer_now = self.inbound.answer_waiting
            && !self
                .inbound
                .reliable
                .as_ref()
                .is_some_and(ReliableProvisionals::blocks_answer);
        // RFC 3262 §5: once our reliable 18x carried the answer, a PRACK may carry a new
        // offer; its 200 then carries our answer, as for an UPDATE.
        if !request.body.is_empty() && self.inbound.early_answer_reliable {
            self.on_offer(cx, key, request);
        } else {
            if !request.body.is_empty() {
                debug!("PRACK body ignored: no offer/answer pending for it");
            }
            cx.respond(&key, response_to(&request, StatusCode::OK, None));
        }
        if let Some(bytes) = next {
            cx.send_raw(self.caller.peer, bytes);
        }
        if answer_now {
            self.inbound.answer_waiting = false;
            self.answer(cx);
        }
    }

    /// A reliable 18x is due again, or its PRACK never came (RFC 3262 §3: the INVITE is
    /// then rejected with a 5xx).
    pub(crate) fn prack_due(&mut self, cx: &mut Cx<'_>) {
        let event = self
            .inbound
            .reliable
            .as_mut()
            .and_then(|r| r.handle_timeout(cx.now));
        match event {
            Some(ReliableEvent::Retransmit(bytes)) => cx.send_raw(self.caller.peer, bytes),
            Some(ReliableEvent::Timeout) => {
                warn!("no PRACK for a reliable 18x; INVITE rejected with 504");
                if self.caller.state.is_early() {
                    self.answer_invite(cx, StatusCode::SERVER_TIMEOUT);
                    self.flow_hung_up();
                    let why = "no PRACK for a reliable provisional response";
                    self.end(cx, EndedBy::Network, why);
                }
            }
            None => {}
        }
    }
}
