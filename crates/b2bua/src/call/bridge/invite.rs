//! The bridge leg's INVITE: built once its port is bound (and its name resolved) with an
//! offer of the caller's codec, sent again with Digest credentials after 401/407, with the
//! target's Min-SE after 422 (RFC 4028 §7.3), or to the name's next address after 503 or
//! silence (RFC 3263 §4.3); its 2xx ACKed by us (§13.2.2.4).

use std::net::SocketAddr;

use concierge_media::sdp;
use concierge_sip::dialog::session_timer::{min_se_of, Refresher, SessionExpires, SessionTimer};
use concierge_sip::dialog::Dialog;
use concierge_sip::digest::Challenge;
use concierge_sip::wire::{
    CSeq, HeaderName, Method, NameAddr, Request, Response, SipUri, Transport,
};
use concierge_sip::Peer;
use tracing::{debug, info, warn};

use super::Bridge;
use crate::call::{Call, CallTimer, Cx};
use crate::config::SwitchConfig;
use crate::family;
use crate::leg::LegState;
use crate::record::{TransferFailure, TransferRecord, TransferResult};
use crate::switch::{shown, Key};
use crate::transfer::TransferMode;

impl Call {
    /// Sends the bridge leg's INVITE once its port is bound and its next hop known.
    pub(super) fn invite_target(&mut self, cx: &mut Cx<'_>) {
        let Some(bridge) = self.transfer.bridge_mut() else {
            return;
        };
        let ready = matches!(bridge.leg.state, LegState::Binding { dns: None });
        let Some(port) = bridge.leg.port.bound().filter(|_| ready) else {
            return;
        };
        let Some(caller_audio) = self.caller.audio.as_ref() else {
            let target = bridge.target.clone();
            return self.bridge_failed(cx, target, TransferFailure::NoCallerAudio);
        };
        let peer = bridge.leg.peer;
        let local = SocketAddr::new(family::media_ip_for(cx.cfg, peer.addr.ip()), port);
        let key = bridge.leg.srtp.offer_key(cx.cfg.srtp);
        let offer = sdp::offer_for_with(local, 1, caller_audio, key);
        let Some(invite) = bridge.invite_request(cx.cfg, &self.identity, offer) else {
            let target = bridge.target.clone();
            return self.bridge_failed(cx, target, TransferFailure::CannotBuildInvite);
        };
        bridge.leg.state = LegState::Calling { ringing: false };
        if !bridge.alternates.is_empty() {
            self.timers
                .set(CallTimer::Failover, cx.now + cx.cfg.dns_failover);
        }
        bridge.send_invite(cx, invite);
    }

    /// A response to the bridge leg's INVITE (any, including 2xx retransmissions).
    pub(in crate::call) fn on_leg_response(&mut self, cx: &mut Cx<'_>, response: Response) {
        // RFC 4028 §7.3: the target wants a longer session interval.
        if response.status.0 == 422 && self.retry_after_422(cx, &response) {
            return;
        }
        let Some(bridge) = self.transfer.bridge_mut() else {
            return;
        };
        let status = response.status;
        // Someone answers at this address: no failover for silence any more.
        self.timers.stop(CallTimer::Failover);
        if status.is_provisional() {
            if let LegState::Calling { ringing } = &mut bridge.leg.state {
                if status.0 > 100 && !*ringing {
                    debug!(%status, "target ringing");
                    *ringing = true;
                }
            }
            return;
        }
        if status.is_success() {
            return self.leg_answered(cx, response);
        }
        // 3xx–6xx: the transaction has ACKed it.
        if bridge.leg.state.is_over() {
            return;
        }
        // RFC 3263 §4.3: 503 from one address of a name sends the request to the next.
        if status.0 == 503 && self.try_next_address(cx, "503") {
            return;
        }
        let Some(bridge) = self.transfer.bridge_mut() else {
            return;
        };
        if matches!(status.0, 401 | 407)
            && !bridge.auth_tried
            && bridge.retry_with_credentials(cx, &response)
        {
            return;
        }
        let target = bridge.target.clone();
        let reason = match response.reason.as_str() {
            "" => status.default_reason(),
            r => r,
        };
        let why = TransferFailure::TargetRefused {
            status,
            reason: reason.to_owned(),
        };
        self.bridge_failed(cx, target, why);
    }

    /// The target's 2xx: ACKed (again, when retransmitted), and — when it keeps the
    /// caller's codec — the media is relayed from now on; a leg given up meanwhile is
    /// ended at once.
    fn leg_answered(&mut self, cx: &mut Cx<'_>, response: Response) {
        let Some(bridge) = self.transfer.bridge_mut() else {
            return;
        };
        if let Some(ack) = bridge.ack.clone() {
            // A retransmitted 2xx: our ACK was lost (§13.2.2.4).
            cx.send_raw(bridge.leg.next_hop(), ack);
            return;
        }
        let Some(invite) = bridge.invite.as_ref() else {
            return;
        };
        let contact = family::local_contact(cx.cfg, bridge.leg.peer);
        let Some(mut dialog) = Dialog::uac(invite, &response, contact) else {
            warn!("2xx without a To tag from the target; ignored");
            return;
        };
        if dialog.route_set.is_empty() {
            // The outbound proxy did not record-route; the leg still goes through it.
            dialog.route_set.extend(bridge.routes(cx.cfg));
        }
        // §13.2.2.4: the ACK for a 2xx follows the dialog's route set.
        let peer = dialog.next_hop(bridge.leg.peer);
        let via = cx.endpoint.new_via(peer);
        let ack = dialog.ack(invite.cseq.seq, via).to_bytes();
        cx.send_raw(peer, ack.clone());
        bridge.ack = Some(ack);
        cx.index(Key::Dialog(dialog.id.clone()));
        if bridge.leg.state.is_over() {
            // Answered after we gave up (CANCEL crossed the 200): end it at once.
            info!("target answered after the transfer was abandoned; hanging it up");
            bridge.leg.state = LegState::Over {
                dialog: Some(dialog),
            };
            bridge.bye(cx);
            return;
        }
        bridge.leg.state = LegState::Up { dialog };
        self.timers.stop(CallTimer::Ring);
        let caller_pt = self.caller.audio.as_ref().map(|a| a.payload_type);
        let key = bridge.leg.srtp.offer_key(cx.cfg.srtp);
        let audio = sdp::accept_with(&String::from_utf8_lossy(&response.body), key)
            .ok()
            .filter(|a| Some(a.payload_type) == caller_pt);
        let Some(audio) = audio else {
            let target = bridge.target.clone();
            warn!("the target's SDP answer does not keep the caller's codec");
            bridge.bye(cx);
            return self.bridge_failed(cx, target, TransferFailure::OtherCodec);
        };
        bridge.leg.srtp.keyed(audio.srtp.as_ref());
        bridge.set_audio(audio);
        bridge.leg_session_timer(cx, &response);
        let target = bridge.target.clone();
        let after_refer = bridge.after_refer.take();
        info!(target = %shown(self.notes.redact_target, &target), "target answered; relaying media");
        // The caller's own sender stops: from now on it hears the target.
        self.media.stop_playing();
        self.media.next_send = None;
        self.notes.transfer = Some(TransferRecord {
            mode: TransferMode::Bridge,
            target,
            result: TransferResult::Answered { after_refer },
            started_ms: None,
            relayed: None,
        });
        self.tell_transfer_ended(cx);
        self.flow_transfer_result(cx, Ok(()));
    }

    /// §7.3: a 422 from the target: INVITE once more with its Min-SE as our interval.
    /// Returns whether the INVITE went out again.
    fn retry_after_422(&mut self, cx: &mut Cx<'_>, response: &Response) -> bool {
        let Some(min_se) = min_se_of(&response.headers) else {
            return false;
        };
        let Some(bridge) = self.transfer.bridge_mut() else {
            return false;
        };
        // A Min-SE beyond a day is a peer error, not a session interval.
        if bridge.retried_422 || min_se > 86_400 || !bridge.leg.state.is_pending() {
            return false;
        }
        let Some(mut invite) = bridge.invite.clone() else {
            return false;
        };
        bridge.retried_422 = true;
        invite
            .headers
            .set(HeaderName::SESSION_EXPIRES, min_se.to_string());
        invite.headers.set(HeaderName::MIN_SE, min_se.to_string());
        info!(
            min_se,
            "target wants a longer session interval; INVITE again"
        );
        bridge.send_again(cx, invite);
        true
    }

    /// Sends the leg's INVITE again, to the next address of its resolved name, as a new
    /// transaction (new branch, next CSeq). False when there is no other address.
    pub(super) fn try_next_address(&mut self, cx: &mut Cx<'_>, why: &str) -> bool {
        let Some(bridge) = self
            .transfer
            .bridge_mut()
            .filter(|b| !b.leg.state.is_over())
        else {
            return false;
        };
        let (Some(next), Some(invite)) =
            (bridge.alternates.front().copied(), bridge.invite.clone())
        else {
            return false;
        };
        bridge.alternates.pop_front();
        let failed = bridge.leg.peer.addr;
        info!(%why, from = %failed, to = %next.addr, "trying the target's next address");
        bridge.leg.peer = next;
        bridge.leg.state = LegState::Calling { ringing: false };
        if bridge.alternates.is_empty() {
            self.timers.stop(CallTimer::Failover);
        } else {
            self.timers
                .set(CallTimer::Failover, cx.now + cx.cfg.dns_failover);
        }
        bridge.send_again(cx, invite);
        true
    }

    /// The leg's INVITE timed out: the next address, or the transfer fails.
    pub(in crate::call) fn leg_unanswered(&mut self, cx: &mut Cx<'_>) {
        // RFC 3263 §4.3: a transaction timeout moves on to the next address.
        if self.try_next_address(cx, "no answer") {
            return;
        }
        let target = self
            .transfer
            .bridge()
            .map(|b| b.target.clone())
            .unwrap_or_default();
        self.bridge_failed(cx, target, TransferFailure::NoAnswer);
    }
}

impl Bridge {
    /// The leg's INVITE with `offer`. The target sees who is calling: the number the flow
    /// used, at our host. Only a number a trusted peer asserted goes on as
    /// P-Asserted-Identity (RFC 3325 §9.1); the caller's own PAI is never copied. A caller
    /// who asked for privacy is anonymous to the target (RFC 3323 §4.1): no number in
    /// From or PAI. `None` when the identity makes no valid From or To.
    fn invite_request(
        &self,
        cfg: &SwitchConfig,
        identity: &crate::identity::CallerIdentity,
        offer: String,
    ) -> Option<Request> {
        let tag = &self.leg.local_tag;
        let private = identity.private || identity.number.is_empty();
        let host = &cfg.advertised_host;
        let from = if private {
            format!("\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag={tag}")
        } else {
            format!("<sip:{}@{host}>;tag={tag}", identity.number)
        };
        let from = NameAddr::parse(&from).ok()?;
        let to = NameAddr::parse(&format!("<{}>", self.uri)).ok()?;
        let mut invite = Request {
            method: Method::Invite,
            uri: self.uri.clone(),
            vias: Vec::new(),
            from,
            to,
            call_id: self.call_id.clone(),
            cseq: CSeq {
                seq: self.cseq,
                method: Method::Invite,
            },
            max_forwards: Some(70),
            headers: Default::default(),
            body: offer.into(),
        };
        let h = &mut invite.headers;
        for route in self.routes(cfg) {
            h.push(HeaderName::ROUTE, route.to_string());
        }
        let contact = family::local_contact(cfg, self.leg.peer);
        h.push_joined(HeaderName::CONTACT, &["<", contact.as_str(), ">"]);
        h.push(HeaderName::CONTENT_TYPE, "application/sdp");
        h.push(HeaderName::USER_AGENT, &cfg.user_agent);
        if identity.verified && !private {
            let pai = format!("<sip:{}@{host}>", identity.number);
            h.push(HeaderName::P_ASSERTED_IDENTITY, pai);
        }
        if identity.private {
            h.push(HeaderName::new("Privacy"), "id");
        }
        for (name, value) in &self.headers {
            h.push(HeaderName::new(name), value);
        }
        // §7.1: the leg's INVITE asks for our interval; we support the extension, so the
        // target may make either side the refresher.
        let st = &cfg.session_timer;
        h.push(HeaderName::SUPPORTED, "timer");
        h.push(HeaderName::SESSION_EXPIRES, st.interval.to_string());
        h.push(HeaderName::MIN_SE, st.min_se.to_string());
        Some(invite)
    }

    /// Sends `invite` as the leg's INVITE: a new client transaction, which the call is
    /// found by instead of the last one.
    fn send_invite(&mut self, cx: &mut Cx<'_>, invite: Request) {
        self.invite = Some(invite.clone());
        let key = cx.send(invite, self.leg.peer);
        if let Some(old) = self.key.replace(key.clone()) {
            cx.unindex(Key::Request(old));
        }
        cx.index(Key::Request(key));
    }

    /// Sends the leg's INVITE again (`invite`, changed as the retry needs) with the next
    /// CSeq, to the leg's peer.
    fn send_again(&mut self, cx: &mut Cx<'_>, mut invite: Request) {
        self.cseq += 1;
        invite.cseq.seq = self.cseq;
        self.send_invite(cx, invite);
    }

    /// The preloaded route set of the leg: its trunk's, else the `[bridge]` outbound
    /// proxy.
    fn routes(&self, cfg: &SwitchConfig) -> Vec<NameAddr> {
        match &self.via {
            Some(trunk) => trunk.routes.clone(),
            None => outbound_route(cfg).into_iter().collect(),
        }
    }

    /// A 401/407 from the target: the INVITE once more with Digest credentials — the
    /// trunk's when the leg goes through one, else the `[bridge]` ones — when we have
    /// them and the challenge can be answered. Returns whether it went.
    fn retry_with_credentials(&mut self, cx: &mut Cx<'_>, response: &Response) -> bool {
        if self.via.is_none() && cx.cfg.outbound_auth.is_none() {
            return false;
        }
        let (challenge_header, answer_header) = if response.status.0 == 401 {
            (HeaderName::WWW_AUTHENTICATE, HeaderName::AUTHORIZATION)
        } else {
            (
                HeaderName::PROXY_AUTHENTICATE,
                HeaderName::PROXY_AUTHORIZATION,
            )
        };
        let challenge = match Challenge::best(response.headers.get_all(&challenge_header)) {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "cannot answer the target's challenge");
                return false;
            }
        };
        let Some(mut invite) = self.invite.clone() else {
            return false;
        };
        let cnonce = format!("{:016x}", cx.endpoint.random_u64());
        let uri = invite.uri.as_str();
        let line = match (&self.via, &cx.cfg.outbound_auth) {
            (Some(trunk), _) => trunk
                .credentials
                .answer(&challenge, "INVITE", uri, &cnonce, 1),
            (None, Some(auth)) => {
                challenge.answer(&auth.username, &auth.password, "INVITE", uri, &cnonce, 1)
            }
            (None, None) => return false,
        };
        info!(realm = %concierge_sip::Untrusted(&challenge.realm), "target challenged; INVITE again with credentials");
        self.auth_tried = true;
        invite.headers.push(answer_header, line);
        self.send_again(cx, invite);
        true
    }

    /// §7.2: the target's 2xx. A Session-Expires there starts the leg's timer (`uac` is
    /// us); its Allow says whether the leg is refreshed with UPDATE.
    fn leg_session_timer(&mut self, cx: &Cx<'_>, ok: &Response) {
        let min_se = cx.cfg.session_timer.min_se;
        let session = &mut self.leg.session;
        session.use_update = crate::call::inbound::allows_update(&ok.headers);
        session.timer = SessionExpires::of(&ok.headers).map(|se| {
            let we = se.refresher != Some(Refresher::Uas);
            debug!(
                interval_s = se.delta,
                we_refresh = we,
                "bridge leg session timer"
            );
            let interval = std::time::Duration::from_secs(se.delta.max(min_se).into());
            SessionTimer::new(cx.now, interval, we)
        });
    }
}

/// The outbound proxy as a loose-routing Route entry (`;lr` added when missing: a
/// preloaded route to a strict router would need the Request-URI rewritten).
fn outbound_route(cfg: &SwitchConfig) -> Option<NameAddr> {
    cfg.outbound_proxy.as_ref().map(crate::trunks::loose)
}

/// The next hop for `uri` when its host is an IP address (names go to the driver's
/// resolver); the port defaults to 5060 and `;transport=tcp` selects TCP.
pub(super) fn peer_for(uri: &SipUri) -> Option<Peer> {
    concierge_sip::dialog::peer_for_uri(uri, Transport::Udp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_hop_is_the_uri_host_and_port() {
        let p = peer_for(&SipUri::parse("sip:vip@127.0.0.1:5070").unwrap()).unwrap();
        assert_eq!(
            (p.addr, p.transport),
            ("127.0.0.1:5070".parse().unwrap(), Transport::Udp)
        );
        let p = peer_for(&SipUri::parse("sip:vip@[::1];transport=TCP").unwrap()).unwrap();
        assert_eq!(
            (p.addr, p.transport),
            ("[::1]:5060".parse().unwrap(), Transport::Tcp)
        );
        assert!(peer_for(&SipUri::parse("sip:vip@queue.example.com").unwrap()).is_none());
    }
}
