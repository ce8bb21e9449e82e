//! RTP ports of the caller's leg: bound by the driver before any SDP names them (a port
//! another program holds is retired and the next one tried, 503 after eight), and given
//! back — resting first — once the call no longer needs it.

use std::time::Instant;

use concierge_media::sdp::{self};
use concierge_sip::wire::{HeaderName, StatusCode};
use tracing::warn;

use super::{family, srtp, Switch, MAX_PORT_ATTEMPTS};
use crate::call::CallState;
use crate::output::{CallRef, Output, PortError};
use crate::record::EndedBy;

impl Switch {
    /// The driver bound `port`: the call it was for rings and its flow starts.
    pub(super) fn on_port_bound(&mut self, now: Instant, port: u16) {
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
        if !call.state.awaits_port() {
            return;
        }
        call.state = CallState::Early {
            port_bound: true,
            answer_at: None,
        };
        self.ring(now, id);
        self.pump(now);
    }

    /// The driver could not bind `port`. A port another program holds is never handed out
    /// again; the call waiting for it tries another before giving up with 503.
    pub(super) fn on_port_failed(&mut self, now: Instant, port: u16, error: PortError) {
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
        let _g = call.span.clone().entered();
        let why = match error {
            PortError::InUse => "another program holds it",
            PortError::Other => "bind failed",
        };
        warn!(port, why, "RTP port could not be bound");
        if !call.state.awaits_port() {
            if error == PortError::Other {
                self.ports.release(port, now);
            }
            return;
        }
        let attempts = call.port_attempts;
        let Some(next) = self.rebind(now, id, port, error, attempts) else {
            warn!("no RTP port could be bound; INVITE refused with 503");
            self.refuse_unbound(now, id);
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.rtp_port = Some(next);
        call.port_attempts += 1;
        let media_ip = family::media_ip_for(&self.cfg, call.peer.addr.ip());
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
    }

    /// After a failed bind for call `id` (the caller's leg or its bridge leg), which has
    /// tried `attempts` ports so far: `port` goes back to the pool unless another program
    /// holds it (it was retired), and the next one is taken and asked of the driver.
    /// `None` once the call tried [`MAX_PORT_ATTEMPTS`] or the pool is empty. The same
    /// rule for both legs, so neither can spin through the pool.
    pub(super) fn rebind(
        &mut self,
        now: Instant,
        id: CallRef,
        port: u16,
        error: PortError,
        attempts: u8,
    ) -> Option<u16> {
        if error == PortError::Other {
            self.ports.release(port, now);
        }
        let next = (attempts < MAX_PORT_ATTEMPTS)
            .then(|| self.ports.allocate(now))
            .flatten()?;
        self.by_port.insert(next, id);
        self.outputs.push_back(Output::MediaOpen { port: next });
        Some(next)
    }

    pub(super) fn refuse_unbound(&mut self, now: Instant, id: CallRef) {
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
        self.end_call(now, id, EndedBy::Concierge, "no RTP port");
        self.pump(now);
    }

    /// Gives the call's RTP port back to the pool (it rests first) and closes its socket.
    pub(super) fn release_port(&mut self, now: Instant, id: CallRef) {
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
}
