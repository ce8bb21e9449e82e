//! SRTP on the switch's legs: our master keys, and the decrypt/encrypt step at each
//! port. Each leg (the caller's, a bridge's second leg) keeps its own protection: a relayed
//! packet is decrypted with the key of the leg it came from and encrypted with the key of
//! the leg it goes to, so a plain leg and an encrypted one can be bridged either way.

use bytes::Bytes;
use concierge_media::sdes::{SrtpPolicy, SrtpSession};
use concierge_media::srtp::MasterKey;
use rand::RngCore;
use tracing::debug;

use super::Switch;
use crate::output::CallRef;

/// The key to put in an offer of ours under `policy`: offers are SRTP only when it is
/// mandatory (an optional policy offers plain RTP, which every peer takes).
pub(super) fn offer_key(policy: SrtpPolicy, key: &MasterKey) -> Option<&MasterKey> {
    (policy == SrtpPolicy::Mandatory).then_some(key)
}

/// Encrypts `packet` for a leg with `session`; a plain leg gets it unchanged. `None` when
/// it cannot be protected (not an RTP packet): it is not sent.
pub(super) fn protect(session: Option<&mut SrtpSession>, packet: &[u8]) -> Option<Bytes> {
    let Some(session) = session else {
        return Some(Bytes::copy_from_slice(packet));
    };
    let mut out = Vec::with_capacity(packet.len() + 10);
    session.protect(packet, &mut out).ok()?;
    Some(Bytes::from(out))
}

impl Switch {
    /// A fresh master key and salt (30 bytes) from the key generator.
    pub(super) fn new_srtp_key(&mut self) -> MasterKey {
        let mut b = [0u8; MasterKey::LEN];
        self.key_rng.fill_bytes(&mut b);
        MasterKey::from_bytes(&b)
    }

    /// Decrypts a packet that arrived on `port` of call `id` into `out`. `Some(false)`: the
    /// leg is plain, use the packet as it is; `Some(true)`: `out` holds the RTP packet;
    /// `None`: drop it (forged, replayed, or SRTCP on the RTP port, which we do not use).
    pub(super) fn unprotect_rtp(
        &mut self,
        id: CallRef,
        port: u16,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<bool> {
        let call = self.calls.get_mut(&id)?;
        let session = if call.rtp_port == Some(port) {
            call.media.srtp.as_mut()
        } else {
            call.bridge
                .as_mut()
                .filter(|l| l.port == Some(port))
                .and_then(|l| l.srtp.as_mut())
        };
        let Some(session) = session else {
            return Some(false);
        };
        // RFC 5761 §4: RTCP packet types 192–223 in the second byte.
        if data.len() >= 2 && (192..=223).contains(&data[1]) {
            return None;
        }
        match session.unprotect(data, out) {
            Ok(()) => Some(true),
            Err(e) => {
                let n = session.rejected;
                // The first refusal and then every power of two: a flood stays a few lines.
                if n.is_power_of_two() {
                    call.span
                        .in_scope(|| debug!(port, error = %e, rejected = n, "SRTP packet refused"));
                }
                None
            }
        }
    }
}
