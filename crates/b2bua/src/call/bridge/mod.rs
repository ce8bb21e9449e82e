//! Bridged transfer (what makes this a B2BUA): a second leg from us to the target, the
//! caller on hold meanwhile, RTP relayed both ways once the target answers (`relay.rs`),
//! and each leg torn down when the other ends. The leg's INVITE and its answers are in
//! `invite.rs`, the target's requests and the leg's session timer in `dialog.rs`.

mod dialog;
mod invite;
mod relay;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use concierge_media::SourcePolicy;
use concierge_sip::ids::CallId;
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::{Request, SipUri, Transport};
use concierge_sip::Peer;
use tracing::info;

use super::{Call, CallTimer, Cx, Transfer};
use crate::leg::{LegState, SipLeg};
use crate::output::{PortError, ResolveId};
use crate::record::{RelayedPackets, TransferFailure, TransferRecord, TransferResult};
use crate::switch::{shown, Key};
use crate::transfer::TransferMode;
use crate::trunks::TrunkRoute;

/// The prompt the caller hears while the target rings, when the catalogue has it.
const HOLD_PROMPT: &str = "please_hold";

/// Addresses of one name we try at most (a long SRV list stays bounded).
const MAX_ADDRESSES: usize = 8;

/// A bridged transfer: the second leg and what only it has.
pub(crate) struct Bridge {
    /// The leg to the target; we are its UAC.
    pub(crate) leg: SipLeg,
    /// The target as the flow gave it (`<redacted>` in logs when secret).
    pub(crate) target: String,
    pub(crate) uri: SipUri,
    /// Extra headers for the INVITE (the flow's transfer headers).
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) call_id: CallId,
    pub(crate) cseq: u32,
    /// Our INVITE as last sent (without our Via): for the ACK of its 2xx, a retry with
    /// credentials, the next address, and the offer of a refresh re-INVITE.
    pub(crate) invite: Option<Request>,
    /// That INVITE's client transaction.
    pub(crate) key: Option<TsxKey>,
    /// The INVITE was repeated with credentials (once is enough).
    pub(crate) auth_tried: bool,
    /// The INVITE was repeated after a 422 (once is enough).
    pub(crate) retried_422: bool,
    /// Our ACK to the 2xx, resent when the 2xx is.
    pub(crate) ack: Option<Bytes>,
    /// Which sources may send the target's RTP (its SDP address, or its first source at
    /// the SDP's or the signalling IP), and where ours goes; set when it answers.
    pub(crate) source: Option<SourcePolicy>,
    /// The next addresses of a resolved name, tried in turn on 503 or silence.
    pub(crate) alternates: VecDeque<Peer>,
    /// Why the REFER failed, when this bridge is its fallback.
    pub(crate) after_refer: Option<TransferFailure>,
    /// Packets relayed caller → target and target → caller.
    pub(crate) relayed: [u64; 2],
    /// The trunk the leg goes through: its route set and credentials instead of the
    /// `[bridge]` outbound proxy and credentials.
    pub(crate) via: Option<Box<TrunkRoute>>,
}

impl Bridge {
    /// Where the target's RTP goes: its latched source, else its SDP address.
    pub(crate) fn media_to(&self) -> Option<SocketAddr> {
        self.source
            .as_ref()
            .and_then(SourcePolicy::remote)
            .or_else(|| self.leg.audio.as_ref().and_then(|a| a.remote))
    }

    /// Takes the target's answer (or new offer) as the leg's media.
    pub(crate) fn set_audio(&mut self, audio: concierge_media::AudioSession) {
        let signalling = Some(self.leg.peer.addr.ip());
        self.source = Some(SourcePolicy::new(audio.remote, signalling, true));
        self.leg.audio = Some(audio);
    }

    /// Packets dropped on this leg's port because a stranger sent them.
    pub(crate) fn foreign_dropped(&self) -> u64 {
        self.source.as_ref().map_or(0, SourcePolicy::dropped)
    }

    /// Every key the switch may have indexed the call by for this leg.
    pub(super) fn into_keys(self) -> impl Iterator<Item = Key> {
        let call_id = Key::CallId(self.call_id);
        let invite = self.key.map(Key::Request);
        self.leg
            .into_keys()
            .chain([Some(call_id), invite].into_iter().flatten())
    }
}

impl Call {
    /// Places the second leg to `target` for an answered call, through trunk `via` when
    /// the flow named one.
    pub(crate) fn start_bridge(
        &mut self,
        cx: &mut Cx<'_>,
        target: &str,
        headers: Vec<(String, String)>,
        after_refer: Option<TransferFailure>,
        via: Option<TrunkRoute>,
    ) {
        self.end_transfer(cx);
        self.tell_transferred(cx, TransferMode::Bridge, target);
        let ring_deadline = cx.now + cx.cfg.bridge_ring_timeout;
        let dialled = via.as_ref().map(|v| v.dial(target));
        let Ok(uri) = SipUri::parse(dialled.as_deref().unwrap_or(target)) else {
            return self.bridge_failed(cx, target.to_owned(), TransferFailure::NotSipUri);
        };
        // RFC 3261 §8.1.2: with an outbound proxy (a trunk's first route, else the
        // `[bridge]` one) the INVITE goes to it, the target stays the Request-URI and the
        // proxy is the preloaded Route.
        let (hop, known) = match &via {
            Some(v) => (v.hop_to_locate(), v.peer),
            None => {
                let hop = cx.cfg.outbound_proxy.clone().unwrap_or_else(|| uri.clone());
                let known = invite::peer_for(&hop);
                (hop, known)
            }
        };
        // A name is looked up by the driver (RFC 3263); the INVITE waits for the answer.
        let (peer, needs_dns) = match known {
            Some(peer) => (peer, false),
            None => {
                let nowhere = SocketAddr::from(([0, 0, 0, 0], 0));
                let placeholder = Peer {
                    transport: Transport::Udp,
                    addr: nowhere,
                };
                (placeholder, true)
            }
        };
        let Some(port) = cx.ports.allocate(cx.now) else {
            return self.bridge_failed(cx, target.to_owned(), TransferFailure::NoPort);
        };
        let call_id = CallId::from(format!("{:016x}-b2b", cx.endpoint.random_u64()));
        let local_tag = cx.endpoint.new_tag();
        let srtp_key = cx.new_srtp_key();
        let trunk = via.as_ref().map(|v| v.name.as_str());
        info!(target = %shown(self.notes.redact_target, target), trunk, "bridging: calling the target");
        // The target's re-INVITEs in this leg are not new calls for admission control.
        cx.index(Key::CallId(call_id.clone()));
        let state = LegState::Binding { dns: None };
        let mut leg = SipLeg::new(peer, local_tag, state, srtp_key);
        leg.port.open(cx, port);
        if needs_dns {
            leg.state = LegState::Binding {
                dns: Some(cx.resolve(hop)),
            };
        }
        self.transfer = Transfer::Bridge(Box::new(Bridge {
            leg,
            target: target.to_owned(),
            uri,
            headers,
            call_id,
            cseq: 1,
            invite: None,
            key: None,
            auth_tried: false,
            retried_422: false,
            ack: None,
            source: None,
            alternates: VecDeque::new(),
            after_refer,
            relayed: [0, 0],
            via: via.map(Box::new),
        }));
        self.timers.set(CallTimer::Ring, ring_deadline);
        if let Some(hold) = cx.program.prompts.get(HOLD_PROMPT) {
            self.media.play([hold]);
        }
    }

    /// The bridge leg's port is bound: its INVITE goes, unless a lookup is still out.
    pub(super) fn leg_port_bound(&mut self, cx: &mut Cx<'_>, port: u16) {
        let Some(bridge) = self.transfer.bridge_mut() else {
            return;
        };
        if !(bridge.leg.port.is(port) && matches!(bridge.leg.state, LegState::Binding { .. })) {
            return;
        }
        bridge.leg.port.set_bound();
        self.invite_target(cx);
    }

    /// The bridge leg's port could not be bound: the next one, or the transfer fails.
    pub(super) fn leg_port_failed(&mut self, cx: &mut Cx<'_>, port: u16, error: PortError) {
        let Some(bridge) = self.transfer.bridge_mut().filter(|b| b.leg.port.is(port)) else {
            return;
        };
        if bridge.leg.port.rebind(cx, error).is_none() {
            let target = bridge.target.clone();
            self.bridge_failed(cx, target, TransferFailure::PortUnbound);
        }
    }

    /// The answer to name lookup `id` (RFC 3263): the addresses to try, best first, or
    /// why there are none. An answer the leg no longer waits for is dropped.
    pub(crate) fn on_resolved(
        &mut self,
        cx: &mut Cx<'_>,
        id: ResolveId,
        result: Result<Vec<Peer>, String>,
    ) {
        cx.unindex(Key::Resolve(id));
        let Some(bridge) = self
            .transfer
            .bridge_mut()
            .filter(|b| matches!(b.leg.state, LegState::Binding { dns: Some(d) } if d == id))
        else {
            return;
        };
        bridge.leg.state = LegState::Binding { dns: None };
        let mut peers = match result {
            Ok(p) if !p.is_empty() => p,
            Ok(_) => {
                let target = bridge.target.clone();
                return self.bridge_failed(cx, target, TransferFailure::NoAddress);
            }
            Err(why) => {
                let target = bridge.target.clone();
                return self.bridge_failed(cx, target, TransferFailure::Unresolved(why));
            }
        };
        peers.truncate(MAX_ADDRESSES);
        bridge.leg.peer = peers.remove(0);
        bridge.alternates = peers.into();
        self.invite_target(cx);
    }

    /// A resolved address sent nothing at all in `dns_failover`: its next one.
    pub(crate) fn failover_due(&mut self, cx: &mut Cx<'_>, at: Instant) {
        let pending = self
            .transfer
            .bridge()
            .is_some_and(|b| b.leg.state.is_pending());
        let before_ring = self
            .timers
            .get(CallTimer::Ring)
            .is_some_and(|ring| at < ring);
        if pending && before_ring {
            self.try_next_address(cx, "no response");
        }
    }

    /// The target did not answer within `bridge_ring_timeout`.
    pub(crate) fn ring_timeout(&mut self, cx: &mut Cx<'_>) {
        let Some(bridge) = self.transfer.bridge().filter(|b| b.leg.state.is_pending()) else {
            return;
        };
        let target = bridge.target.clone();
        let secs = cx.cfg.bridge_ring_timeout.as_secs();
        self.bridge_failed(cx, target, TransferFailure::RingTimeout(secs));
    }

    /// The second leg could not be set up: CANCEL what is still ringing, free its port and
    /// let the flow take the transfer's `failed` exit.
    pub(crate) fn bridge_failed(&mut self, cx: &mut Cx<'_>, target: String, why: TransferFailure) {
        info!(target = %shown(self.notes.redact_target, &target), %why, "bridged transfer failed");
        self.notes.transfer = Some(TransferRecord {
            mode: TransferMode::Bridge,
            target,
            result: TransferResult::Failed(why.clone()),
            started_ms: None,
            relayed: None,
        });
        self.tell_transfer_ended(cx);
        self.timers.stop(CallTimer::Ring);
        self.timers.stop(CallTimer::Failover);
        if let Some(bridge) = self.transfer.bridge_mut() {
            bridge.cancel(cx);
            bridge.leg.port.close(cx);
        }
        self.flow_transfer_result(cx, Err(&why));
    }

    /// Ends the transfer under way, if any: a bridge leg is CANCELled or BYEd, its port
    /// closed and its packet counts go to the record; the call is no longer found by
    /// anything of it.
    pub(crate) fn end_transfer(&mut self, cx: &mut Cx<'_>) {
        for timer in [CallTimer::Refer, CallTimer::Ring, CallTimer::Failover] {
            self.timers.stop(timer);
        }
        match std::mem::replace(&mut self.transfer, Transfer::Idle) {
            Transfer::Idle => {}
            Transfer::Refer(refer) => {
                if let Some(key) = refer.key {
                    cx.unindex(Key::Request(key));
                }
            }
            Transfer::Bridge(mut bridge) => {
                if bridge.leg.state.is_confirmed() {
                    bridge.bye(cx);
                } else if bridge.leg.state.is_pending() {
                    bridge.cancel(cx);
                }
                bridge.leg.port.close(cx);
                self.media.add_foreign(bridge.foreign_dropped());
                if bridge.leg.state.dialog().is_some() {
                    if let Some(t) = self.notes.transfer.as_mut() {
                        t.relayed = Some(RelayedPackets {
                            to_target: bridge.relayed[0],
                            to_caller: bridge.relayed[1],
                        });
                    }
                }
                for key in bridge.into_keys() {
                    cx.unindex(key);
                }
            }
        }
    }
}

impl Bridge {
    /// CANCEL a leg still waiting for its final answer; the leg is over either way.
    fn cancel(&mut self, cx: &mut Cx<'_>) {
        let pending = self.leg.state.is_pending();
        self.leg.state.give_up();
        if let (true, Some(key)) = (pending, self.key.as_ref()) {
            cx.endpoint.cancel(cx.now, key);
        }
    }

    /// BYE on an answered leg; the leg is over (nobody waits for the BYE's answer).
    fn bye(&mut self, cx: &mut Cx<'_>) {
        self.leg.send_bye(cx);
        self.leg.state.give_up();
    }
}
