//! The second call leg of a bridged transfer: the INVITE we place to the target, its
//! dialog once answered, and the RTP relay between it and the caller.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use concierge_media::{AudioSession, SourcePolicy};
use concierge_sip::dialog::Dialog;
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::{SipUri, Transport};
use concierge_sip::{Peer, Tag};

/// Where the second leg is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LegState {
    /// Waiting for the driver to bind the leg's RTP port.
    Binding,
    /// INVITE sent, no provisional answer yet.
    Calling,
    /// 180/183 received.
    Ringing,
    /// Answered and ACKed: RTP is relayed.
    Up,
    /// Failed, cancelled or hung up; kept so a late 2xx can still be ACKed and ended.
    Over,
}

/// Credentials for targets that challenge our INVITE (401/407).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundAuth {
    /// The Digest user name (RFC 2617) for our INVITE to a challenging target.
    pub username: String,
    /// Its password: never logged, never in a record.
    pub password: String,
}

pub(crate) struct Leg {
    pub(crate) target: String,
    pub(crate) uri: SipUri,
    /// Extra headers for the INVITE (the flow's transfer headers).
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) peer: Peer,
    pub(crate) state: LegState,
    pub(crate) port: Option<u16>,
    pub(crate) port_attempts: u8,
    pub(crate) call_id: String,
    pub(crate) local_tag: Tag,
    pub(crate) cseq: u32,
    /// The INVITE as last sent (without our Via), for the ACK and an authenticated retry.
    pub(crate) invite: Option<concierge_sip::wire::Request>,
    pub(crate) key: Option<TsxKey>,
    pub(crate) auth_tried: bool,
    pub(crate) dialog: Option<Dialog>,
    /// Our ACK to the 2xx, re-sent when the 2xx is retransmitted.
    pub(crate) ack: Option<Bytes>,
    pub(crate) audio: Option<AudioSession>,
    /// Which sources may send the target's RTP (its SDP address, or its first source at
    /// the SDP's or the signalling IP), and where ours goes; set when it answers.
    pub(crate) source: Option<SourcePolicy>,
    /// No answer by then: CANCEL and the transfer fails.
    pub(crate) deadline: Instant,
    /// Why the REFER failed, when this bridge is its fallback.
    pub(crate) after_refer: Option<crate::record::TransferFailure>,
    /// Packets relayed caller → target and target → caller.
    pub(crate) relayed: [u64; 2],
    /// Our SRTP key in the leg's offer (when `srtp = "mandatory"`); `None`: a plain offer.
    pub(crate) srtp_key: Option<concierge_media::srtp::MasterKey>,
    /// The leg's own SRTP contexts once the target answered with keys.
    pub(crate) srtp: Option<concierge_media::sdes::SrtpSession>,
    /// The DNS lookup this leg waits for (its next hop is a name); `peer` is a placeholder
    /// until it answers.
    pub(crate) dns: Option<crate::output::ResolveId>,
    /// Whether the leg's RTP port is bound (the INVITE waits for it and for DNS).
    pub(crate) port_bound: bool,
    /// The next addresses of a resolved name, tried in turn on 503 or silence.
    pub(crate) alternates: std::collections::VecDeque<Peer>,
    /// No response at all from the current address by then: try the next one.
    pub(crate) attempt_deadline: Option<Instant>,
}

impl Leg {
    pub(crate) fn is_pending(&self) -> bool {
        matches!(
            self.state,
            LegState::Binding | LegState::Calling | LegState::Ringing
        )
    }

    /// Where the target's RTP goes: its latched source, else its SDP address.
    pub(crate) fn media_to(&self) -> Option<SocketAddr> {
        self.source
            .as_ref()
            .and_then(SourcePolicy::remote)
            .or_else(|| self.audio.as_ref().and_then(|a| a.remote))
    }

    /// Takes the target's answer (or new offer) as the leg's media.
    pub(crate) fn set_audio(&mut self, audio: AudioSession) {
        self.source = Some(SourcePolicy::new(
            audio.remote,
            Some(self.peer.addr.ip()),
            true,
        ));
        self.audio = Some(audio);
    }

    /// Packets dropped on this leg's port because a stranger sent them.
    pub(crate) fn foreign_dropped(&self) -> u64 {
        self.source.as_ref().map_or(0, SourcePolicy::dropped)
    }
}

/// The next hop for `uri` when its host is an IP address (names go to the driver's
/// resolver); the port defaults to 5060 and `;transport=tcp` selects TCP.
pub(crate) fn peer_for(uri: &SipUri) -> Option<Peer> {
    concierge_sip::dialog::peer_for_uri(uri, Transport::Udp)
}

/// RFC 4733 events keep their meaning across legs that number them differently: the
/// payload type byte is rewritten, everything else passes untouched.
pub(crate) fn relay_packet(data: &[u8], event_from: Option<u8>, event_to: Option<u8>) -> Bytes {
    let mut packet = Bytes::copy_from_slice(data);
    if let (Some(from), Some(to)) = (event_from, event_to) {
        if from != to && data.len() >= 12 && data[1] & 0x7f == from {
            let mut v = packet.to_vec();
            v[1] = (v[1] & 0x80) | to;
            packet = Bytes::from(v);
        }
    }
    packet
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

    #[test]
    fn event_payload_types_are_renumbered_and_the_marker_kept() {
        let mut p = vec![0u8; 16];
        p[0] = 0x80;
        p[1] = 0x80 | 96;
        let out = relay_packet(&p, Some(96), Some(101));
        assert_eq!(out[1], 0x80 | 101);
        p[1] = 0;
        assert_eq!(
            relay_packet(&p, Some(96), Some(101))[1],
            0,
            "audio untouched"
        );
    }
}
