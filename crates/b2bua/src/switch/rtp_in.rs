//! RTP arriving on a call's ports: checked and decrypted on an SRTP leg, relayed to the
//! other leg of a bridge, or fed to the caller's receiver (RFC 4733 digits, in-band tones).

use std::time::Instant;

use tracing::debug;

use super::Switch;
use crate::output::CallRef;

impl Switch {
    /// A datagram arrived on a call's RTP port. On an encrypted leg it is checked and
    /// decrypted first (a forged or replayed packet goes no further); after that the relay,
    /// RFC 4733 events and in-band detection see plain RTP either way.
    pub(super) fn on_rtp(
        &mut self,
        now: Instant,
        port: u16,
        from: std::net::SocketAddr,
        data: &[u8],
    ) {
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

    pub(super) fn handle_plain_rtp(
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
}
