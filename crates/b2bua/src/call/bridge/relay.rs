//! The bridge's media: each leg's RTP goes out of the other leg's port, from the
//! addresses its source policy allows, decrypted with one leg's SRTP key and encrypted
//! with the other's.

use std::net::SocketAddr;

use crate::call::{Call, Cx};

impl Call {
    /// RTP (already decrypted) while a bridge exists: each leg's packets go out of the
    /// other leg's port once the target answered. Returns false when the packet is the
    /// caller's and not relayed (the IVR hears it).
    pub(in crate::call) fn relay(
        &mut self,
        cx: &mut Cx<'_>,
        port: u16,
        from: SocketAddr,
        data: &[u8],
    ) -> bool {
        let Some(bridge) = self.transfer.bridge_mut() else {
            return false;
        };
        let from_target = bridge.leg.port.is(port);
        // The caller's packets pass its source check whatever the leg's state (the IVR
        // would have checked them too); a stranger's go nowhere.
        if !from_target
            && !self
                .media
                .receiver
                .as_mut()
                .is_some_and(|r| r.accept_source(cx.now, from))
        {
            return true;
        }
        if !bridge.leg.state.is_confirmed() {
            // Early media from the target is not played; the caller's packets stay ours.
            return from_target;
        }
        let caller_event = self.caller.audio.as_ref().and_then(|a| a.telephone_event);
        let leg_event = bridge.leg.audio.as_ref().and_then(|a| a.telephone_event);
        let (out_port, to, session, events) = if from_target {
            if !bridge.source.as_mut().is_some_and(|s| s.accept(from)) {
                return true;
            }
            let to = self
                .media
                .remote()
                .or_else(|| self.caller.audio.as_ref().and_then(|a| a.remote));
            let (Some(out), Some(to)) = (self.caller.port.number(), to) else {
                return true;
            };
            bridge.relayed[1] += 1;
            let events = (leg_event, caller_event);
            (out, to, self.caller.srtp.session.as_deref_mut(), events)
        } else {
            let (Some(out), Some(to)) = (bridge.leg.port.number(), bridge.media_to()) else {
                return true;
            };
            bridge.relayed[0] += 1;
            let events = (caller_event, leg_event);
            (out, to, bridge.leg.srtp.session.as_deref_mut(), events)
        };
        // Written once, where it leaves from: copied in, renumbered, encrypted again
        // with the other leg's own key (it was decrypted on the way in).
        let room = cx.rtp.room();
        let Some(packet) = room.get_mut(..data.len()) else {
            return true;
        };
        packet.copy_from_slice(data);
        renumber_event(packet, events.0, events.1);
        if let Some(n) = crate::call::media::protect(session, room, data.len()) {
            cx.rtp.commit(out_port, to, cx.now, n);
        }
        true
    }
}

/// RFC 4733 events keep their meaning across legs that number them differently: the
/// payload type byte of `packet` is rewritten in place, everything else passes untouched.
pub(crate) fn renumber_event(packet: &mut [u8], event_from: Option<u8>, event_to: Option<u8>) {
    if let (Some(from), Some(to)) = (event_from, event_to) {
        if from != to && packet.len() >= 12 && packet[1] & 0x7f == from {
            packet[1] = (packet[1] & 0x80) | to;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_payload_types_are_renumbered_and_the_marker_kept() {
        let mut p = vec![0u8; 16];
        p[0] = 0x80;
        p[1] = 0x80 | 96;
        renumber_event(&mut p, Some(96), Some(101));
        assert_eq!(p[1], 0x80 | 101);
        p[1] = 0;
        renumber_event(&mut p, Some(96), Some(101));
        assert_eq!(p[1], 0, "audio untouched");
    }
}
