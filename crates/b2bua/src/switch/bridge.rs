//! Bridged transfer (what makes this a B2BUA): a second call leg from us to the target,
//! the caller on hold meanwhile, RTP relayed both ways once the target answers, and each
//! leg torn down when the other ends.

use std::time::Instant;

use concierge_media::sdp;
use concierge_sip::dialog::Dialog;
use concierge_sip::digest::Challenge;
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::{CSeq, HeaderName, Method, NameAddr, Request, Response, SipUri};
use tracing::{debug, info, warn};

use super::Switch;
use crate::leg::{peer_for, Leg, LegState};
use crate::output::{CallRef, Output, PortError};
use crate::record::{RelayedPackets, TransferRecord};
use crate::record::{TransferFailure, TransferResult};
use crate::transfer::TransferMode;

/// The prompt the caller hears while the target rings, when the catalogue has it.
const HOLD_PROMPT: &str = "please_hold";

impl Switch {
    /// Places the second leg to `target` for an answered call.
    pub(super) fn start_bridge(
        &mut self,
        now: Instant,
        id: CallRef,
        target: &str,
        headers: Vec<(String, String)>,
        after_refer: Option<TransferFailure>,
    ) {
        let deadline = now + self.cfg.bridge_ring_timeout;
        let Ok(uri) = SipUri::parse(target) else {
            let why = TransferFailure::NotSipUri(target.to_owned());
            return self.bridge_failed(now, id, target, why);
        };
        // RFC 3261 §8.1.2: with an outbound proxy the INVITE goes to it, the target stays
        // the Request-URI and the proxy is the preloaded Route.
        let hop = self
            .cfg
            .outbound_proxy
            .clone()
            .unwrap_or_else(|| uri.clone());
        // A name is looked up by the driver (RFC 3263); the INVITE waits for the answer.
        let (peer, needs_dns) = match peer_for(&hop) {
            Some(peer) => (peer, false),
            None => (
                concierge_sip::Peer {
                    transport: concierge_sip::wire::Transport::Udp,
                    addr: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
                },
                true,
            ),
        };
        let Some(port) = self.ports.allocate(now) else {
            return self.bridge_failed(now, id, target, TransferFailure::NoPort);
        };
        let call_id = format!("{:016x}-b2b", self.endpoint.random_u64());
        let local_tag = self.endpoint.new_tag();
        let key = self.new_srtp_key();
        let srtp_key = super::srtp::offer_key(self.cfg.srtp, &key).cloned();
        let Some(call) = self.calls.get_mut(&id) else {
            self.ports.release(port, now);
            return;
        };
        call.span
            .in_scope(|| info!(target = %super::shown(call.redact_target, target), "bridging: calling the target"));
        // The target's re-INVITEs in this leg are not new calls for admission control.
        self.call_ids.insert(call_id.as_bytes().to_vec(), id);
        call.bridge = Some(Box::new(Leg {
            target: target.to_owned(),
            uri,
            headers,
            peer,
            state: LegState::Binding,
            port: Some(port),
            port_attempts: 1,
            call_id,
            local_tag,
            cseq: 1,
            invite: None,
            key: None,
            auth_tried: false,
            dialog: None,
            ack: None,
            audio: None,
            source: None,
            deadline,
            after_refer,
            relayed: [0, 0],
            srtp_key,
            srtp: None,
            dns: None,
            port_bound: false,
            alternates: Default::default(),
            attempt_deadline: None,
        }));
        if let Some(hold) = self.program.prompts.get(HOLD_PROMPT) {
            call.media.play([hold]);
        }
        self.by_port.insert(port, id);
        self.outputs.push_back(Output::MediaOpen { port });
        if needs_dns {
            self.request_resolve(id, hop);
        }
        self.rearm(id);
    }

    /// The leg's RTP port is bound: send the INVITE.
    pub(super) fn leg_port_ready(&mut self, now: Instant, id: CallRef) {
        let outbound_route = self.outbound_route();
        let session_timer = self.cfg.session_timer;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(leg) = call
            .bridge
            .as_mut()
            .filter(|l| l.state == LegState::Binding)
        else {
            return;
        };
        leg.port_bound = true;
        if leg.dns.is_some() {
            // The INVITE goes once the name is resolved (`Input::Resolved`).
            return;
        }
        let Some(caller_audio) = call.audio.clone() else {
            let target = leg.target.clone();
            return self.bridge_failed(now, id, &target, TransferFailure::NoCallerAudio);
        };
        let Some(port) = leg.port else { return };
        let leg_peer = leg.peer;
        let local = std::net::SocketAddr::new(
            super::family::media_ip_for(&self.cfg, leg_peer.addr.ip()),
            port,
        );
        let offer = sdp::offer_for_with(local, 1, &caller_audio, leg.srtp_key.as_ref());
        let contact = super::family::local_contact(&self.cfg, leg_peer);
        // The target sees who is calling: the number the flow used, at our host. Only a
        // number a trusted peer asserted goes on as P-Asserted-Identity (RFC 3325 §9.1);
        // the caller's own PAI is never copied. A caller who asked for privacy is
        // anonymous to the target (RFC 3323 §4.1): no number in From or PAI.
        let identity = &call.identity;
        let private = identity.private || identity.number.is_empty();
        let from = if private {
            NameAddr::parse(&format!(
                "\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag={}",
                leg.local_tag
            ))
        } else {
            NameAddr::parse(&format!(
                "<sip:{}@{}>;tag={}",
                identity.number, self.cfg.advertised_host, leg.local_tag
            ))
        };
        let asserted = (identity.verified && !private)
            .then(|| format!("<sip:{}@{}>", identity.number, self.cfg.advertised_host));
        let to = NameAddr::parse(&format!("<{}>", leg.uri));
        let (Ok(from), Ok(to)) = (from, to) else {
            let target = leg.target.clone();
            return self.bridge_failed(now, id, &target, TransferFailure::CannotBuildInvite);
        };
        let mut invite = Request {
            method: Method::Invite,
            uri: leg.uri.clone(),
            vias: Vec::new(),
            from,
            to,
            call_id: leg.call_id.clone(),
            cseq: CSeq {
                seq: leg.cseq,
                method: Method::Invite,
            },
            max_forwards: Some(70),
            headers: Default::default(),
            body: offer.into(),
        };
        if let Some(route) = outbound_route {
            invite.headers.push(HeaderName::ROUTE, route.to_string());
        }
        invite
            .headers
            .push(HeaderName::CONTACT, format!("<{contact}>"));
        invite
            .headers
            .push(HeaderName::CONTENT_TYPE, "application/sdp");
        invite
            .headers
            .push(HeaderName::USER_AGENT, self.cfg.user_agent.clone());
        if let Some(pai) = asserted {
            invite.headers.push(HeaderName::P_ASSERTED_IDENTITY, pai);
        }
        if identity.private {
            invite.headers.push(HeaderName::new("Privacy"), "id");
        }
        for (name, value) in &leg.headers {
            invite.headers.push(HeaderName::new(name), value.clone());
        }
        super::leg_timer::push_invite_session_timer(&session_timer, &mut invite.headers);
        leg.state = LegState::Calling;
        leg.invite = Some(invite.clone());
        if !leg.alternates.is_empty() {
            leg.attempt_deadline = Some(now + self.cfg.dns_failover);
        }
        let peer = leg.peer;
        let key = self.endpoint.send_request(now, invite, peer);
        self.set_leg_key(id, key);
    }

    pub(super) fn set_leg_key(&mut self, id: CallRef, key: TsxKey) {
        if let Some(leg) = self.calls.get_mut(&id).and_then(|c| c.bridge.as_mut()) {
            if let Some(old) = leg.key.replace(key.clone()) {
                self.by_client_tsx.remove(&old);
            }
        }
        self.by_client_tsx.insert(key, id);
        self.rearm(id);
    }

    pub(super) fn leg_port_failed(
        &mut self,
        now: Instant,
        id: CallRef,
        port: u16,
        error: PortError,
    ) {
        let Some(leg) = self.calls.get_mut(&id).and_then(|c| c.bridge.as_mut()) else {
            return;
        };
        leg.port = None;
        let (target, attempts) = (leg.target.clone(), leg.port_attempts);
        let Some(next) = self.rebind(now, id, port, error, attempts) else {
            return self.bridge_failed(now, id, &target, TransferFailure::PortUnbound);
        };
        if let Some(leg) = self.calls.get_mut(&id).and_then(|c| c.bridge.as_mut()) {
            leg.port = Some(next);
            leg.port_attempts += 1;
        }
    }

    /// A response to the leg's INVITE (any, including 2xx retransmissions).
    pub(super) fn on_leg_response(&mut self, now: Instant, id: CallRef, response: Response) {
        // RFC 4028 §7.3: the target wants a longer session interval.
        if response.status.0 == 422 && self.leg_retry_after_422(now, id, &response) {
            return;
        }
        let Some(leg_peer) = self
            .calls
            .get(&id)
            .and_then(|c| c.bridge.as_ref())
            .map(|l| l.peer)
        else {
            return;
        };
        let contact = self.local_contact(leg_peer);
        let outbound_route = self.outbound_route();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let _g = call.span.clone().entered();
        let Some(leg) = call.bridge.as_mut() else {
            return;
        };
        let status = response.status;
        // Someone answers at this address: no failover for silence any more.
        leg.attempt_deadline = None;
        if status.is_provisional() {
            if status.0 > 100 && leg.state == LegState::Calling {
                debug!(%status, "target ringing");
                leg.state = LegState::Ringing;
            }
            return;
        }
        if status.is_success() {
            if let Some(ack) = &leg.ack {
                // A retransmitted 2xx: our ACK was lost (§13.2.2.4).
                let peer = leg
                    .dialog
                    .as_ref()
                    .map_or(leg.peer, |d| d.next_hop(leg.peer));
                let ack = ack.clone();
                self.endpoint.send_raw(peer, ack);
                return;
            }
            let Some(invite) = leg.invite.clone() else {
                return;
            };
            let Some(mut dialog) = Dialog::uac(&invite, &response, contact) else {
                warn!("2xx without a To tag from the target; ignored");
                return;
            };
            if dialog.route_set.is_empty() {
                // The outbound proxy did not record-route; the leg still goes through it.
                dialog.route_set.extend(outbound_route);
            }
            // §13.2.2.4: the ACK for a 2xx follows the dialog's route set.
            let peer = dialog.next_hop(leg.peer);
            let via = self.endpoint.new_via(peer);
            let ack = dialog.ack(invite.cseq.seq, via).to_bytes();
            self.endpoint.send_raw(peer, ack.clone());
            leg.ack = Some(ack);
            self.by_dialog.insert(dialog.id.clone(), id);
            leg.dialog = Some(dialog);
            if leg.state == LegState::Over {
                // Answered after we gave up (CANCEL crossed the 200): end it at once.
                info!("target answered after the transfer was abandoned; hanging it up");
                self.bye_leg(now, id);
                return;
            }
            let caller_pt = call.audio.as_ref().map(|a| a.payload_type);
            match sdp::accept_with(
                &String::from_utf8_lossy(&response.body),
                leg.srtp_key.as_ref(),
            ) {
                Ok(audio) if Some(audio.payload_type) == caller_pt => {
                    leg.srtp = audio
                        .srtp
                        .as_ref()
                        .map(concierge_media::sdes::SrtpSession::new);
                    leg.set_audio(audio);
                    leg.state = LegState::Up;
                    let target = leg.target.clone();
                    let after_refer = leg.after_refer.take();
                    info!(target = %super::shown(call.redact_target, &target), "target answered; relaying media");
                    // The caller's own sender stops: from now on it hears the target.
                    call.media.stop_playing();
                    call.media.next_send = None;
                    call.transfer_record = Some(TransferRecord {
                        mode: TransferMode::Bridge,
                        target,
                        result: TransferResult::Answered { after_refer },
                        started_ms: None,
                        relayed: None,
                    });
                    self.flow_transfer_result(now, id, Ok(()));
                    self.leg_answered_session_timer(now, id, &response);
                    self.rearm(id);
                }
                Ok(_) | Err(_) => {
                    let target = leg.target.clone();
                    warn!("the target's SDP answer does not keep the caller's codec");
                    self.bye_leg(now, id);
                    self.bridge_failed(now, id, &target, TransferFailure::OtherCodec);
                }
            }
            return;
        }
        // 3xx–6xx: the transaction has ACKed it.
        if leg.state == LegState::Over {
            return;
        }
        // RFC 3263 §4.3: 503 from one address of a name sends the request to the next.
        if status.0 == 503 && self.try_next_address(now, id, "503") {
            return;
        }
        let Some(leg) = self.calls.get_mut(&id).and_then(|c| c.bridge.as_mut()) else {
            return;
        };
        if matches!(status.0, 401 | 407) && !leg.auth_tried {
            if let Some(auth) = self.cfg.outbound_auth.clone() {
                let (challenge_header, answer_header) = if status.0 == 401 {
                    (HeaderName::WWW_AUTHENTICATE, HeaderName::AUTHORIZATION)
                } else {
                    (
                        HeaderName::PROXY_AUTHENTICATE,
                        HeaderName::PROXY_AUTHORIZATION,
                    )
                };
                match Challenge::best(response.headers.get_all(&challenge_header)) {
                    Ok(challenge) => {
                        let Some(mut invite) = leg.invite.clone() else {
                            return;
                        };
                        let cnonce = format!("{:016x}", self.endpoint.random_u64());
                        let line = challenge.answer(
                            &auth.username,
                            &auth.password,
                            "INVITE",
                            invite.uri.as_str(),
                            &cnonce,
                            1,
                        );
                        info!(realm = %concierge_sip::Untrusted(&challenge.realm), "target challenged; INVITE again with credentials");
                        leg.auth_tried = true;
                        leg.cseq += 1;
                        invite.cseq.seq = leg.cseq;
                        invite.headers.push(answer_header, line);
                        leg.invite = Some(invite.clone());
                        let peer = leg.peer;
                        let key = self.endpoint.send_request(now, invite, peer);
                        self.set_leg_key(id, key);
                        return;
                    }
                    Err(e) => warn!(error = %e, "cannot answer the target's challenge"),
                }
            }
        }
        let target = leg.target.clone();
        let reason = match response.reason.as_str() {
            "" => status.default_reason(),
            r => r,
        };
        let why = TransferFailure::TargetRefused {
            status,
            reason: reason.to_owned(),
        };
        self.bridge_failed(now, id, &target, why);
    }

    /// The outbound proxy as a loose-routing Route entry (`;lr` added when missing: a
    /// preloaded route to a strict router would need the Request-URI rewritten).
    fn outbound_route(&self) -> Option<NameAddr> {
        let proxy = self.cfg.outbound_proxy.as_ref()?;
        if proxy.param("lr").is_some() {
            return Some(NameAddr::new(proxy.clone()));
        }
        SipUri::parse(&format!("{proxy};lr"))
            .ok()
            .map(NameAddr::new)
    }

    /// No answer from the target in time (the ring timeout or Timer B).
    pub(super) fn leg_timeout(&mut self, now: Instant, id: CallRef) -> bool {
        let Some(leg) = self.calls.get_mut(&id).and_then(|c| c.bridge.as_mut()) else {
            return false;
        };
        if !leg.is_pending() {
            return false;
        }
        if leg
            .attempt_deadline
            .is_some_and(|at| at <= now && at < leg.deadline)
        {
            leg.attempt_deadline = None;
            return self.try_next_address(now, id, "no response");
        }
        if leg.deadline > now {
            return false;
        }
        let target = leg.target.clone();
        let secs = self.cfg.bridge_ring_timeout.as_secs();
        self.bridge_failed(now, id, &target, TransferFailure::RingTimeout(secs));
        true
    }

    /// The second leg could not be set up: CANCEL what is still ringing, free its port and
    /// let the flow take the transfer's `failed` exit.
    pub(super) fn bridge_failed(
        &mut self,
        now: Instant,
        id: CallRef,
        target: &str,
        why: TransferFailure,
    ) {
        if let Some(call) = self.calls.get_mut(&id) {
            call.span
                .in_scope(|| info!(target = %super::shown(call.redact_target, target), %why, "bridged transfer failed"));
            call.transfer_record = Some(TransferRecord {
                mode: TransferMode::Bridge,
                target: target.to_owned(),
                result: TransferResult::Failed(why.clone()),
                started_ms: None,
                relayed: None,
            });
        }
        self.cancel_leg(now, id);
        self.close_leg_port(now, id);
        self.flow_transfer_result(now, id, Err(&why));
        self.rearm(id);
    }

    /// CANCEL a leg still waiting for its final answer; the leg is over either way.
    fn cancel_leg(&mut self, now: Instant, id: CallRef) {
        let Some(leg) = self.calls.get_mut(&id).and_then(|c| c.bridge.as_mut()) else {
            return;
        };
        let pending = leg.is_pending();
        leg.state = LegState::Over;
        if pending {
            if let Some(key) = leg.key.clone() {
                self.endpoint.cancel(now, &key);
            }
        }
    }

    /// BYE on an answered leg.
    pub(super) fn bye_leg(&mut self, now: Instant, id: CallRef) {
        let Some(leg) = self.calls.get_mut(&id).and_then(|c| c.bridge.as_mut()) else {
            return;
        };
        leg.state = LegState::Over;
        let Some(dialog) = leg.dialog.as_mut() else {
            return;
        };
        let bye = dialog.new_request(Method::Bye);
        let peer = dialog.next_hop(leg.peer);
        self.endpoint.send_request(now, bye, peer);
    }

    pub(super) fn close_leg_port(&mut self, now: Instant, id: CallRef) {
        let Some(leg) = self.calls.get_mut(&id).and_then(|c| c.bridge.as_mut()) else {
            return;
        };
        if let Some(port) = leg.port.take() {
            self.by_port.remove(&port);
            self.ports.release(port, now);
            self.outputs.push_back(Output::MediaClose { port });
        }
    }

    /// The caller's call is going away: the second leg goes with it.
    pub(super) fn end_leg(&mut self, now: Instant, id: CallRef) {
        let Some(leg) = self.calls.get_mut(&id).and_then(|c| c.bridge.as_mut()) else {
            return;
        };
        match leg.state {
            LegState::Up => self.bye_leg(now, id),
            LegState::Binding | LegState::Calling | LegState::Ringing => self.cancel_leg(now, id),
            LegState::Over => {}
        }
        self.close_leg_port(now, id);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(leg) = call.bridge.take() else {
            return;
        };
        call.media.add_foreign(leg.foreign_dropped());
        if leg.dialog.is_some() {
            if let Some(t) = call.transfer_record.as_mut() {
                t.relayed = Some(RelayedPackets {
                    to_target: leg.relayed[0],
                    to_caller: leg.relayed[1],
                });
            }
        }
        self.call_ids.remove(leg.call_id.as_bytes());
        if let Some(k) = &leg.key {
            self.by_client_tsx.remove(k);
        }
        if let Some(d) = &leg.dialog {
            self.by_dialog.remove(&d.id);
        }
    }
}
