use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use concierge_sip::dialog::{AnswerEvent, AnswerRetransmit, Dialog, DialogId};
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::{
    dialog_response_to, response_to, HeaderName, Method, Request, Response, StatusCode,
};
use concierge_sip::{Endpoint, EndpointConfig, EndpointEvent, Peer, Untrusted};
use tracing::{debug, info, info_span, warn};

mod admit;
mod bridge;
mod carrier;
mod comfort;
mod dns;
mod family;
mod flow;
mod leg_timer;
mod lockout;
mod lookup;
mod media;
mod srtp;

pub(crate) use comfort::Comfort;

use crate::admission::Admission;
use crate::call::{Call, Phase};
use crate::config::SwitchConfig;
use crate::output::{CallRef, Output, PortError};
use crate::program::Program;
use crate::record::EndedBy;
use crate::record::{CallRecord, HttpOutcome, PathStep, TransferRecord, WallClock};
use crate::transfer::{
    self, ReferProgress, ReferTransfer, TransferMode, TransferOutcome, TransferResult,
};
use concierge_media::sdp::{self, OfferError};
use concierge_media::RtpPorts;

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, REFER, UPDATE, PRACK";
const ACCEPT: &str = "application/sdp, application/dtmf-relay, application/dtmf, message/sipfrag";

/// All calls of one shard. See the crate docs for the run loop.
pub struct Switch {
    cfg: SwitchConfig,
    endpoint: Endpoint,
    calls: HashMap<CallRef, Call>,
    by_dialog: HashMap<DialogId, CallRef>,
    by_invite: HashMap<TsxKey, CallRef>,
    by_client_tsx: HashMap<TsxKey, CallRef>,
    by_port: HashMap<u16, CallRef>,
    /// Call-IDs of the live calls: an INVITE with one of them is not a new call.
    call_ids: HashSet<Vec<u8>>,
    admission: Admission,
    timers: BinaryHeap<Reverse<(Instant, CallRef)>>,
    /// Each live call's maximum-duration deadline (removed when the call goes).
    expiry: std::collections::BTreeSet<(Instant, CallRef)>,
    next_ref: CallRef,
    draining: bool,
    outputs: VecDeque<Output>,
    wall: WallClock,
    ports: RtpPorts,
    /// The time of the input being handled, for records.
    last_now: Instant,
    /// What new calls run; each call keeps the one it started with (see `set_program`).
    program: std::sync::Arc<Program>,
    stats: crate::stats::SwitchStats,
    /// Calls with media, for the paced sender.
    media_calls: Vec<CallRef>,
    next_tick: Option<Instant>,
    rtp_buf: Vec<u8>,
    frame_buf: Vec<u8>,
    /// Failed code attempts across this switch's calls.
    lockout: crate::lockout::Lockout,
    /// The input being handled came over a connection whose client certificate a
    /// configured CA verified (mutual TLS): its sender is a trusted peer.
    authenticated_input: bool,
    /// Draws SRTP master keys (a CSPRNG; see `SwitchConfig::key_seed`).
    key_rng: rand::rngs::StdRng,
    srtp_buf: Vec<u8>,
    /// Names waiting for the driver's resolver, and which call asked.
    resolves: VecDeque<crate::output::Resolve>,
    pending_dns: HashMap<u64, CallRef>,
    next_dns: u64,
    /// Answers of caching `http` nodes, shared by this switch's calls.
    lookups: concierge_flow::LookupCache,
}

/// A transfer target as logs may show it: not when it was rendered from a secret.
fn shown(redact: bool, target: &str) -> &str {
    if redact {
        "<redacted>"
    } else {
        target
    }
}

/// Ports tried for one call before it is refused with 503.
pub(super) const MAX_PORT_ATTEMPTS: u8 = 8;

impl Switch {
    /// `wall` pairs an `Instant` with the wall-clock time, for call records.
    pub fn new(cfg: SwitchConfig, wall: WallClock, program: Program) -> Self {
        let endpoint = Endpoint::new(EndpointConfig {
            timers: cfg.timers,
            via_host: cfg.advertised_host.clone(),
            via_port: cfg.sip_port,
            via_tls_port: cfg.tls_port,
            via_host_v6: cfg.advertised_host_v6.clone(),
            seed: cfg.seed,
            supported: crate::carrier::SUPPORTED
                .split(", ")
                .map(str::to_owned)
                .collect(),
        });
        Self {
            endpoint,
            calls: HashMap::new(),
            by_dialog: HashMap::new(),
            by_invite: HashMap::new(),
            by_client_tsx: HashMap::new(),
            by_port: HashMap::new(),
            call_ids: HashSet::new(),
            admission: Admission::new(cfg.admission, wall.instant),
            timers: BinaryHeap::new(),
            expiry: Default::default(),
            next_ref: 1,
            draining: false,
            outputs: VecDeque::new(),
            ports: RtpPorts::new(
                cfg.rtp_ports.0,
                cfg.rtp_ports.1,
                cfg.rtp_port_rest,
                cfg.seed ^ 0x5eed_0f4a_110c_4700,
            ),
            wall,
            last_now: wall.instant,
            program: std::sync::Arc::new(program),
            stats: Default::default(),
            media_calls: Vec::new(),
            next_tick: None,
            rtp_buf: vec![0u8; 1500],
            frame_buf: Vec::with_capacity(320),
            lockout: crate::lockout::Lockout::new(cfg.lockout),
            authenticated_input: false,
            key_rng: rand::SeedableRng::from_seed(cfg.key_seed),
            srtp_buf: Vec::with_capacity(1500),
            resolves: VecDeque::new(),
            pending_dns: HashMap::new(),
            next_dns: 1,
            lookups: concierge_flow::LookupCache::new(),
            cfg,
        }
    }

    /// Installs a new program (flows and prompts, after a reload): calls that arrive from
    /// now on run it, while every call in progress keeps the flows and prompts it started
    /// with until it ends — a reload never changes a call under a caller's feet.
    pub fn set_program(&mut self, program: Program) {
        self.program = std::sync::Arc::new(program);
        self.stats.programs_installed += 1;
    }

    /// Counters of what has no call record (see [`crate::SwitchStats`]).
    pub fn stats(&self) -> crate::stats::SwitchStats {
        self.stats
    }

    /// Whether new INVITEs are refused because the switch is draining.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// Whether a draining switch has no calls left and can be dropped.
    pub fn is_idle(&self) -> bool {
        self.calls.is_empty()
    }

    /// Stop taking calls: new INVITEs get 503 while existing calls run to their end.
    pub fn start_draining(&mut self) {
        self.draining = true;
    }

    pub fn handle_sip_datagram(&mut self, now: Instant, peer: Peer, data: &[u8]) {
        self.last_now = now;
        if self.refuse_early(now, peer, data) {
            return;
        }
        self.endpoint.handle_datagram(now, peer, data);
        self.pump(now);
    }

    pub fn handle_sip_framed(&mut self, now: Instant, peer: Peer, head: &[u8], body: &[u8]) {
        self.last_now = now;
        if self.refuse_early(now, peer, head) {
            return;
        }
        self.endpoint.handle_framed(now, peer, head, body);
        self.pump(now);
    }

    /// A message framed from a connection whose peer proved who it is (a client
    /// certificate verified against `[sip] tls_client_ca`): an INVITE in it is from a
    /// trusted peer, whatever its address, so its P-Asserted-Identity is believed.
    pub fn handle_sip_framed_authenticated(
        &mut self,
        now: Instant,
        peer: Peer,
        head: &[u8],
        body: &[u8],
    ) {
        // Everything the message causes is handled within this call (pump drains it).
        self.authenticated_input = true;
        self.handle_sip_framed(now, peer, head, body);
        self.authenticated_input = false;
    }

    /// The driver bound `port`: the call it was for rings and its flow starts.
    pub fn media_port_ready(&mut self, now: Instant, port: u16) {
        self.last_now = now;
        let Some(&id) = self.by_port.get(&port) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.rtp_port != Some(port) {
            self.leg_port_ready(now, id);
            self.pump(now);
            return;
        }
        if call.port_bound || call.phase != Phase::Early {
            return;
        }
        call.port_bound = true;
        self.ring(now, id);
        self.pump(now);
    }

    /// The driver could not bind `port`. A port another program holds is never handed out
    /// again; the call waiting for it tries another before giving up with 503.
    pub fn media_port_failed(&mut self, now: Instant, port: u16, error: PortError) {
        self.last_now = now;
        if error == PortError::InUse {
            self.ports.retire(port);
        }
        let Some(id) = self.by_port.remove(&port) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.rtp_port != Some(port) {
            self.leg_port_failed(now, id, port, error);
            self.pump(now);
            return;
        }
        call.rtp_port = None;
        if error == PortError::Other {
            self.ports.release(port, now);
        }
        let _g = call.span.clone().entered();
        let why = match error {
            PortError::InUse => "another program holds it",
            PortError::Other => "bind failed",
        };
        warn!(port, why, "RTP port could not be bound");
        if call.port_bound || call.phase != Phase::Early {
            return;
        }
        let next = (call.port_attempts < MAX_PORT_ATTEMPTS)
            .then(|| self.ports.allocate(now))
            .flatten();
        let Some(next) = next else {
            warn!("no RTP port could be bound; INVITE refused with 503");
            self.refuse_unbound(now, id);
            return;
        };
        let media_ip = family::media_ip_for(&self.cfg, call.peer.addr.ip());
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let local = std::net::SocketAddr::new(media_ip, next);
        // The same offer answered again: only the port changes.
        let policy = self.cfg.srtp;
        call.local_sdp = Some(if call.invite.body.is_empty() {
            sdp::offer_with(
                local,
                call.sdp_version,
                srtp::offer_key(policy, &call.srtp_key),
            )
        } else {
            match sdp::answer_with(
                &String::from_utf8_lossy(&call.invite.body),
                local,
                call.sdp_version,
                policy,
                Some(&call.srtp_key),
            ) {
                Ok((_, sdp)) => sdp,
                // It was acceptable a moment ago.
                Err(_) => return self.refuse_unbound(now, id),
            }
        });
        call.rtp_port = Some(next);
        call.port_attempts += 1;
        self.by_port.insert(next, id);
        self.outputs.push_back(Output::MediaOpen { port: next });
    }

    fn refuse_unbound(&mut self, now: Instant, id: CallRef) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let mut r = self.response_tagged(
            &call.invite,
            StatusCode::SERVICE_UNAVAILABLE,
            call.local_tag.as_str(),
        );
        r.headers.push(
            HeaderName::RETRY_AFTER,
            self.cfg.retry_after.as_secs().to_string(),
        );
        let key = call.invite_key.clone();
        self.stats.refused_no_port += 1;
        self.endpoint.respond(now, &key, r);
        self.end_call(id, EndedBy::Concierge, "no RTP port");
        self.pump(now);
    }

    /// A datagram arrived on a call's RTP port. On an encrypted leg it is checked and
    /// decrypted first (a forged or replayed packet goes no further); after that the relay,
    /// RFC 4733 events and in-band detection see plain RTP either way.
    pub fn handle_rtp(&mut self, now: Instant, port: u16, from: std::net::SocketAddr, data: &[u8]) {
        self.last_now = now;
        let Some(&id) = self.by_port.get(&port) else {
            return;
        };
        let mut plain = std::mem::take(&mut self.srtp_buf);
        match self.unprotect_rtp(id, port, data, &mut plain) {
            Some(true) => self.handle_plain_rtp(now, id, port, from, &plain),
            Some(false) => self.handle_plain_rtp(now, id, port, from, data),
            None => {}
        }
        self.srtp_buf = plain;
    }

    fn handle_plain_rtp(
        &mut self,
        now: Instant,
        id: CallRef,
        port: u16,
        from: std::net::SocketAddr,
        data: &[u8],
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.bridge.is_some() && self.relay_rtp(now, id, port, from, data) {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.media.handle_datagram(now, from, data).is_some() {
            // Never the key itself: it may be part of a code (see `CallMedia::shown`).
            call.span.in_scope(|| debug!("digit received by RTP"));
            self.digit_arrived(now, id);
            self.pump(now);
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        self.endpoint.handle_timeout(now);
        while let Some(&(at, id)) = self.expiry.first() {
            if at > now {
                break;
            }
            self.expiry.pop_first();
            self.end_overlong(now, id);
        }
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match self.calls.get_mut(&id) {
                Some(call) if call.armed == Some(at) => call.armed = None,
                _ => continue,
            }
            self.call_timeout(now, id);
            self.rearm(id);
        }
        if self.next_tick.is_some_and(|t| t <= now) {
            self.media_tick(now);
        }
        self.pump(now);
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if self.calls.get(&id).is_some_and(|c| c.armed == Some(at)) {
                break;
            }
            self.timers.pop();
        }
        let calls = self.timers.peek().map(|Reverse((at, _))| *at);
        let expiry = self.expiry.first().map(|(at, _)| *at);
        [calls, expiry, self.endpoint.poll_timeout(), self.next_tick]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(o) = self.outputs.pop_front() {
            return Some(o);
        }
        self.endpoint.poll_transmit().map(Output::Sip)
    }

    /// Hands endpoint events to the calls until the endpoint has nothing more to say.
    fn pump(&mut self, now: Instant) {
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                EndpointEvent::Request { key, request, peer } => {
                    self.on_request(now, key, request, peer)
                }
                EndpointEvent::Ack { request, .. } => self.on_ack(now, request),
                EndpointEvent::Cancelled { invite, .. } => self.on_cancelled(now, invite),
                EndpointEvent::Response { key, response } => self.on_response(now, key, response),
                EndpointEvent::Timeout { key } => self.on_tsx_timeout(now, key),
                EndpointEvent::StrayResponse { response, .. } => {
                    self.on_stray_answer(now, response, None)
                }
            }
        }
    }

    fn on_request(&mut self, now: Instant, key: TsxKey, request: Request, peer: Peer) {
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

    fn on_new_invite(&mut self, now: Instant, key: TsxKey, invite: Request, peer: Peer) {
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
        self.next_ref += 1;
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
        self.call_ids.insert(invite.call_id.as_bytes().to_vec());
        self.calls.insert(
            id,
            Call {
                span,
                phase: Phase::Early,
                invite,
                invite_key: key,
                peer,
                local_tag,
                dialog: None,
                answer: None,
                bye_key: None,
                arrived: now,
                rtp_port: Some(port),
                port_bound: false,
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
                answer_at: None,
                expires: now + self.cfg.max_call_duration,
                media_timeout: self.cfg.media_timeout,
                armed: None,
                carrier,
            },
        );
        self.expiry.insert((now + self.cfg.max_call_duration, id));
        self.rearm(id);
        // The port goes into an SDP only once the driver has bound it (`media_port_ready`).
        self.outputs.push_back(Output::MediaOpen { port });
    }

    /// The call's RTP port is ours: 180, then the flow (which answers when it first needs
    /// media) or the plain answer.
    fn ring(&mut self, now: Instant, id: CallRef) {
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
            call.answer_at = Some(now + self.cfg.answer_after);
            self.rearm(id);
        }
    }

    /// Sends the 200 OK and sets up the dialog (§13.3.1.4).
    fn answer(&mut self, now: Instant, id: CallRef) {
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
        call.dialog = Some(dialog);
        call.answer = Some(AnswerRetransmit::new(
            now,
            bytes,
            call.peer.transport.is_reliable(),
            self.cfg.timers,
        ));
        call.phase = Phase::Answered;
        call.answered = Some(now);
        let key = call.invite_key.clone();
        self.endpoint.respond(now, &key, ok);
        info!("answered");
        self.rearm(id);
    }

    fn on_ack(&mut self, now: Instant, ack: Request) {
        let Some(id) = DialogId::of_incoming(&ack).and_then(|d| self.by_dialog.get(&d).copied())
        else {
            debug!(call_id = %Untrusted(&ack.call_id), "ACK for no dialog dropped");
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let Some(a) = call.answer.as_mut() {
            a.handle_ack();
        }
        // Late offer: the ACK carries the answer to the offer in our 200 (§13.2.1).
        if call.audio.is_none() && !ack.body.is_empty() {
            let ours = srtp::offer_key(self.cfg.srtp, &call.srtp_key);
            match sdp::accept_with(&String::from_utf8_lossy(&ack.body), ours) {
                Ok(audio) => call.audio = Some(audio),
                Err(OfferError::NotAcceptable(why)) => {
                    call.span
                        .in_scope(|| warn!(%why, "unusable answer in the ACK; hanging up"));
                    call.phase = Phase::Confirmed;
                    self.hang_up(now, id, "unusable SDP answer");
                    return;
                }
            }
        }
        if call.phase == Phase::Answered {
            call.phase = Phase::Confirmed;
            call.span.in_scope(|| info!("call confirmed by ACK"));
            self.start_media(now, id);
        }
    }

    /// RTP starts once the call is confirmed and the codec agreed; SSRC, sequence number
    /// and timestamp start at random (RFC 3550 §5.1).
    fn start_media(&mut self, now: Instant, id: CallRef) {
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

    fn on_cancelled(&mut self, now: Instant, invite: TsxKey) {
        let Some(id) = self.by_invite.get(&invite).copied() else {
            return;
        };
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if call.phase != Phase::Early {
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
        self.end_call(id, EndedBy::Caller, "cancelled before the answer");
    }

    fn on_in_dialog(&mut self, now: Instant, key: TsxKey, request: Request, dialog: DialogId) {
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
        let request = if call.phase == Phase::Early {
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
        if let Some(d) = call.dialog.as_mut() {
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
                self.end_call(id, EndedBy::Caller, "hung up");
            }
            Method::Notify if call.refer.is_some() => {
                let r = response_to(&request, StatusCode::OK, None);
                self.endpoint.respond(now, &key, r);
                let terminated = request
                    .header(&HeaderName::SUBSCRIPTION_STATE)
                    .is_some_and(|s| s.trim().to_ascii_lowercase().starts_with("terminated"));
                match transfer::progress(&request.body, terminated) {
                    ReferProgress::Trying => debug!("transfer in progress"),
                    ReferProgress::Done(TransferResult::Succeeded) => {
                        self.refer_finished(now, id, TransferOutcome::Succeeded)
                    }
                    ReferProgress::Done(TransferResult::Failed(s)) => {
                        let why = if s.0 == 0 {
                            "subscription ended without a final status".into()
                        } else {
                            format!("transfer target answered {s}")
                        };
                        self.refer_finished(now, id, TransferOutcome::Failed(why))
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

    fn on_response(&mut self, now: Instant, key: TsxKey, response: Response) {
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
                    let why = format!("REFER rejected with {}", response.status);
                    self.refer_finished(now, id, TransferOutcome::Failed(why));
                }
            } else if response.cseq.method == Method::Bye {
                if let Some(call) = self.calls.get(&id) {
                    call.span
                        .in_scope(|| debug!(status = %response.status, "BYE answered"));
                }
                self.forget(id);
            }
        }
    }

    fn on_tsx_timeout(&mut self, now: Instant, key: TsxKey) {
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
                self.bridge_failed(now, id, &target, "no answer from the target".into());
            } else if *key.method() == Method::Refer {
                if let Some(r) = call.refer.as_mut() {
                    r.key = None;
                }
                self.refer_finished(
                    now,
                    id,
                    TransferOutcome::Failed("no answer to REFER".into()),
                );
            } else {
                call.ending
                    .get_or_insert((EndedBy::Network, "no answer to BYE".into()));
                self.forget(id);
            }
        } else if let Some(id) = self.by_invite.get(&key).copied() {
            // Timer H: our error response was never ACKed; nothing left to do.
            self.forget(id);
        }
    }

    /// Moves an answered call to `target` by REFER (RFC 3515) in its dialog. The outcome
    /// arrives later through the NOTIFYs, the REFER's response or the transfer timeout.
    pub fn transfer(&mut self, now: Instant, id: CallRef, mode: TransferMode, target: &str) {
        match mode {
            TransferMode::Refer => self.start_refer(now, id, target, None),
            TransferMode::Redirect => self.redirect(now, id, target),
            TransferMode::Bridge => self.start_bridge(now, id, target, Vec::new(), None),
            TransferMode::ReferOrBridge => {
                self.start_refer(now, id, target, Some((target.to_owned(), Vec::new())))
            }
        }
    }

    fn start_refer(
        &mut self,
        now: Instant,
        id: CallRef,
        target: &str,
        fallback: Option<(String, Vec<(String, String)>)>,
    ) {
        let timeout = self.cfg.transfer_timeout;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(dialog) = call.dialog.as_mut() else {
            return;
        };
        let contact = dialog.local_contact.clone();
        let mut refer = dialog.new_request(Method::Refer);
        refer
            .headers
            .push(HeaderName::REFER_TO, format!("<{target}>"));
        refer
            .headers
            .push(HeaderName::REFERRED_BY, format!("<{contact}>"));
        call.span.in_scope(
            || info!(target = %shown(call.redact_target, target), "transferring by REFER"),
        );
        // §12.2.1.1: through the route set, not straight to the caller's Contact.
        let peer = dialog.next_hop(call.peer);
        call.refer = Some(ReferTransfer {
            target: target.to_owned(),
            key: None,
            accepted: false,
            deadline: now + timeout,
            fallback,
        });
        let key = self.endpoint.send_request(now, refer, peer);
        self.by_client_tsx.insert(key.clone(), id);
        if let Some(r) = self.calls.get_mut(&id).and_then(|c| c.refer.as_mut()) {
            r.key = Some(key);
        }
        self.rearm(id);
    }

    /// RFC 3261 §21.3.3: answers a ringing call with 302 and the target as Contact, so the
    /// caller's side places the call itself.
    fn redirect(&mut self, now: Instant, id: CallRef, target: &str) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.phase != Phase::Early {
            call.span
                .in_scope(|| warn!("redirect asked for an answered call; ignored"));
            return;
        }
        call.answer_at = None;
        let mut r = response_to(
            &call.invite,
            StatusCode::MOVED_TEMPORARILY,
            Some(call.local_tag.as_str()),
        );
        r.headers.push(HeaderName::CONTACT, format!("<{target}>"));
        call.transfer_record = Some(TransferRecord {
            mode: "redirect",
            target: target.to_owned(),
            result: "redirected".into(),
            started_ms: None,
            relayed: None,
        });
        call.span
            .in_scope(|| info!(target = %shown(call.redact_target, target), "redirected with 302"));
        let key = call.invite_key.clone();
        self.endpoint.respond(now, &key, r);
        self.end_call(id, EndedBy::Concierge, "redirected");
    }

    fn refer_finished(&mut self, now: Instant, id: CallRef, outcome: TransferOutcome) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(refer) = call.refer.take() else {
            return;
        };
        if let Some(k) = &refer.key {
            self.by_client_tsx.remove(k);
        }
        let outcome_for_flow = outcome.clone();
        let result = match &outcome {
            TransferOutcome::Succeeded => "succeeded".to_owned(),
            TransferOutcome::Failed(why) => format!("failed: {why}"),
        };
        call.span
            .in_scope(|| info!(target = %shown(call.redact_target, &refer.target), %result, "REFER transfer finished"));
        call.transfer_record = Some(TransferRecord {
            mode: "refer",
            target: refer.target,
            result,
            started_ms: None,
            relayed: None,
        });
        match outcome {
            // RFC 5589 §6.1: the transferor ends its dialog once the transfer succeeded.
            TransferOutcome::Succeeded => {
                call.ending = Some((EndedBy::Concierge, "transferred".into()));
                self.hang_up(now, id, "transferred");
            }
            TransferOutcome::Failed(why) => {
                if let Some((target, headers)) = refer.fallback {
                    call.span
                        .in_scope(|| info!(%why, "REFER failed; bridging instead"));
                    self.start_bridge(now, id, &target, headers, Some(why));
                    return;
                }
            }
        }
        self.flow_transfer_result(now, id, &outcome_for_flow);
        self.rearm(id);
    }

    fn call_timeout(&mut self, now: Instant, id: CallRef) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.answer_at.is_some_and(|at| at <= now) {
            call.answer_at = None;
            self.answer(now, id);
            return;
        }
        if self.comfort_due(now, id)
            || self.collect_timeout(now, id)
            || self.http_overdue(now, id)
            || self.leg_timeout(now, id)
            || self.carrier_timeout(now, id)
            || self.leg_timer_timeout(now, id)
            || self.media_inactive(now, id)
        {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.refer.as_ref().is_some_and(|r| r.deadline <= now) {
            let why = if call.refer.as_ref().is_some_and(|r| r.accepted) {
                "no final NOTIFY in time"
            } else {
                "REFER not accepted in time"
            };
            self.refer_finished(now, id, TransferOutcome::Failed(why.into()));
            return;
        }
        let event = call.answer.as_mut().and_then(|a| a.handle_timeout(now));
        match event {
            Some(AnswerEvent::Retransmit(bytes)) => self.endpoint.send_raw(call.peer, bytes),
            Some(AnswerEvent::AckTimeout) => {
                call.span
                    .in_scope(|| warn!("no ACK for our 200 OK; ending the call with BYE"));
                call.phase = Phase::Confirmed;
                call.ending = Some((EndedBy::Network, "no ACK".into()));
                self.hang_up(now, id, "no ACK");
            }
            None => {}
        }
    }

    /// Ends an answered call from our side with BYE (§15.1.1).
    pub fn hang_up(&mut self, now: Instant, id: CallRef, why: &str) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(dialog) = call.dialog.as_mut() else {
            return;
        };
        if call.phase == Phase::Ending {
            return;
        }
        let bye = dialog.new_request(Method::Bye);
        call.phase = Phase::Ending;
        call.ending
            .get_or_insert((EndedBy::Concierge, why.to_owned()));
        call.span.in_scope(|| info!(why, "hanging up"));
        let peer = dialog.next_hop(call.peer);
        let key = self.endpoint.send_request(now, bye, peer);
        self.by_client_tsx.insert(key.clone(), id);
        if let Some(call) = self.calls.get_mut(&id) {
            call.bye_key = Some(key);
        }
        // The media is over once we said BYE: the port goes back to the pool now, not
        // when (or whether) the peer answers the BYE up to 64·T1 later.
        self.release_port(now, id);
    }

    /// Gives the call's RTP port back to the pool (it rests first) and closes its socket.
    fn release_port(&mut self, now: Instant, id: CallRef) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if let Some(port) = call.rtp_port.take() {
            call.media.next_send = None;
            self.by_port.remove(&port);
            self.ports.release(port, now);
            self.outputs.push_back(Output::MediaClose { port });
        }
    }

    /// The last step of a shutdown: every call still here (a BYE nobody answers, say) is
    /// dropped now, each with its record.
    pub fn abandon_all(&mut self, now: Instant) {
        self.last_now = now;
        let ids: Vec<CallRef> = self.calls.keys().copied().collect();
        for id in ids {
            self.end_call(id, EndedBy::Concierge, "server shut down");
        }
    }

    /// Ends every call: BYE for answered ones, 503 for the ones still ringing.
    pub fn hang_up_all(&mut self, now: Instant, why: &str) {
        let ids: Vec<CallRef> = self.calls.keys().copied().collect();
        for id in ids {
            self.end_from_our_side(now, id, StatusCode::SERVICE_UNAVAILABLE, why);
        }
        self.pump(now);
    }

    /// BYE for an answered call, `early_status` for one still ringing.
    fn end_from_our_side(
        &mut self,
        now: Instant,
        id: CallRef,
        early_status: StatusCode,
        why: &str,
    ) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        match call.phase {
            Phase::Early => {
                let r = response_to(&call.invite, early_status, Some(call.local_tag.as_str()));
                let key = call.invite_key.clone();
                self.endpoint.respond(now, &key, r);
                self.end_call(id, EndedBy::Concierge, why);
            }
            Phase::Answered | Phase::Confirmed => self.hang_up(now, id, why),
            Phase::Ending => {}
        }
    }

    /// The call outlived `max_call_duration`. A BYE already on its way gets as long as a
    /// transaction can take (64·T1); after that the call is forgotten regardless.
    fn end_overlong(&mut self, now: Instant, id: CallRef) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.phase == Phase::Ending {
            self.end_call(id, EndedBy::Concierge, "maximum call duration");
            return;
        }
        call.span
            .in_scope(|| warn!("the call reached its maximum duration; ending it"));
        call.expires = now + self.cfg.timers.t1 * 64;
        self.expiry.insert((call.expires, id));
        self.end_from_our_side(
            now,
            id,
            StatusCode::TEMPORARILY_UNAVAILABLE,
            "maximum call duration",
        );
    }

    /// The call is over for the caller; its state goes once nothing is pending.
    /// The call is over; `by` is who ended it.
    fn end_call(&mut self, id: CallRef, by: EndedBy, why: &str) {
        if let Some(call) = self.calls.get_mut(&id) {
            call.ending.get_or_insert((by, why.to_owned()));
        }
        self.forget(id);
    }

    /// RFC 3264 §8: a re-INVITE offers a changed session (hold, resume, new address); we
    /// answer from the same port with the next `o=` version. An offerless re-INVITE gets
    /// our current SDP as a fresh offer.
    fn on_reinvite(&mut self, now: Instant, id: CallRef, key: TsxKey, request: Request) {
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
                    if call.phase == Phase::Confirmed || call.media.is_started() {
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

    /// Drops a call's state and writes its record: every call ends here, whatever the path.
    fn forget(&mut self, id: CallRef) {
        self.end_leg(self.last_now, id);
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        self.call_ids.remove(call.invite.call_id.as_bytes());
        self.expiry.remove(&(call.expires, id));
        if let Some(port) = call.rtp_port {
            self.by_port.remove(&port);
            self.ports.release(port, self.last_now);
            self.outputs.push_back(Output::MediaClose { port });
        }
        let record = self.record_of(&call);
        // One line per call, whichever path ended it (a BYE either way, CANCEL, a timeout).
        call.span
            .in_scope(|| info!(by = %record.ended_by, why = %record.reason, "call ended"));
        self.outputs.push_back(Output::Record(Box::new(record)));
        self.by_invite.remove(&call.invite_key);
        if let Some(d) = &call.dialog {
            self.by_dialog.remove(&d.id);
        }
        self.by_dialog.remove(&carrier::early_dialog_id(&call));
        for r in [&call.carrier.refresh, &call.carrier.leg_refresh]
            .into_iter()
            .flatten()
        {
            self.by_client_tsx.remove(&r.key);
        }
        if let Some(k) = &call.bye_key {
            self.by_client_tsx.remove(k);
        }
    }

    fn rearm(&mut self, id: CallRef) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let next = call.poll_timeout();
        if next != call.armed {
            call.armed = next;
            if let Some(at) = next {
                self.timers.push(Reverse((at, id)));
            }
        }
    }

    fn record_of(&self, call: &Call) -> CallRecord {
        let flow = call.flow.as_ref();
        let (ended_by, reason) = call
            .ending
            .clone()
            .unwrap_or((EndedBy::Network, "transaction ended".into()));
        let transfer = call.transfer_record.clone().map(|mut t| {
            if call.redact_target {
                t.target = "<redacted>".into();
            }
            t.started_ms = call.transfer_started.map(|at| self.wall.unix_ms(at));
            t
        });
        let outcome = crate::record::outcome(call.answered.is_some(), ended_by, transfer.as_ref());
        CallRecord {
            call_id: call.invite.call_id.clone(),
            flow: flow.map(|f| f.run.flow().name.clone()),
            flow_version: flow.map(|f| f.run.flow().version.clone()),
            outcome,
            caller: call.identity.number.clone(),
            verified: call.identity.verified,
            verstat: call.identity.verstat.clone(),
            private: call.identity.private,
            lockout: call.lockout.clone(),
            called: call.invite.uri.user().unwrap_or_default().to_owned(),
            arrived_ms: self.wall.unix_ms(call.arrived),
            answered_ms: call.answered.map(|a| self.wall.unix_ms(a)),
            ended_ms: self.wall.unix_ms(self.last_now),
            path: flow
                .map(|f| {
                    f.run
                        .trace()
                        .iter()
                        .map(|s| PathStep {
                            node: s.node.clone(),
                            exit: s.exit.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            http: flow
                .map(|f| {
                    f.run
                        .http_steps()
                        .iter()
                        .map(|h| HttpOutcome {
                            node: h.node.clone(),
                            status: h.status,
                            outcome: h.outcome.clone(),
                            latency_ms: h.latency.as_millis() as u64,
                            cache: h.cache,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            variables: flow
                .map(|f| f.run.vars_redacted().into_iter().collect())
                .unwrap_or_default(),
            transfer,
            ended_by,
            reason,
            digits: call.media.digits_for_record(),
            instance: self.cfg.instance.clone(),
            rtp_foreign_dropped: call.media.foreign_dropped(),
        }
    }

    fn response(&mut self, request: &Request, status: StatusCode) -> Response {
        let tag = self.endpoint.new_tag();
        self.response_tagged(request, status, tag.as_str())
    }

    fn response_tagged(&self, request: &Request, status: StatusCode, tag: &str) -> Response {
        let mut r = response_to(request, status, Some(tag));
        if status == StatusCode::OK || status.class() >= 4 {
            r.headers.push(HeaderName::ALLOW, ALLOW);
            r.headers
                .push(HeaderName::SUPPORTED, crate::carrier::SUPPORTED);
        }
        r.headers
            .push(HeaderName::SERVER, self.cfg.user_agent.clone());
        r
    }
}
