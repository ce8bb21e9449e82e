//! The bridge's media: each leg's RTP goes out of the other leg's port, from the
//! addresses its source policy allows, decrypted with one leg's SRTP key and encrypted
//! with the other's.

use std::time::Instant;

use super::Switch;
use crate::leg::{relay_packet, LegState};
use crate::output::{CallRef, Output};

impl Switch {
    /// RTP while bridged: each leg's packets go out of the other leg's port. Returns
    /// false when the call is not bridged and the packet is the caller's, for the IVR.
    pub(super) fn relay_rtp(
        &mut self,
        now: Instant,
        id: CallRef,
        port: u16,
        from: std::net::SocketAddr,
        data: &[u8],
    ) -> bool {
        let Some(call) = self.calls.get_mut(&id) else {
            return true;
        };
        let caller_port = call.rtp_port;
        let caller_event = call.audio.as_ref().and_then(|a| a.telephone_event);
        let Some(leg) = call.bridge.as_mut() else {
            return false;
        };
        let from_target = leg.port == Some(port);
        // The caller's packets pass its source check whatever the leg's state (the IVR
        // would have checked them too); a stranger's go nowhere.
        if !from_target
            && !call
                .media
                .receiver
                .as_mut()
                .is_some_and(|r| r.accept_source(now, from))
        {
            return true;
        }
        let caller_to = call
            .media
            .remote()
            .or_else(|| call.audio.as_ref().and_then(|a| a.remote));
        if leg.state != LegState::Up {
            // Early media from the target is not played; the caller's packets stay ours.
            return from_target;
        }
        let leg_event = leg.audio.as_ref().and_then(|a| a.telephone_event);
        if from_target {
            if !leg.source.as_mut().is_some_and(|s| s.accept(from)) {
                return true;
            }
            let (Some(out_port), Some(to)) = (caller_port, caller_to) else {
                return true;
            };
            leg.relayed[1] += 1;
            let packet = relay_packet(data, leg_event, caller_event);
            // Decrypted on the way in; encrypted again with the caller's own key.
            let Some(packet) = super::srtp::protect(call.media.srtp.as_mut(), &packet) else {
                return true;
            };
            self.outputs.push_back(Output::Rtp {
                port: out_port,
                to,
                packet,
            });
        } else {
            let (Some(out_port), Some(to)) = (leg.port, leg.media_to()) else {
                return true;
            };
            leg.relayed[0] += 1;
            let packet = relay_packet(data, caller_event, leg_event);
            let Some(packet) = super::srtp::protect(leg.srtp.as_mut(), &packet) else {
                return true;
            };
            self.outputs.push_back(Output::Rtp {
                port: out_port,
                to,
                packet,
            });
        }
        true
    }
}
