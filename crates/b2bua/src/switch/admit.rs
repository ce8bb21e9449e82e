//! Admission at the door: a new INVITE beyond the budget (global or per-source rate, or
//! the driver reporting overload) is refused with a stateless 503 + Retry-After before the
//! codec, the transaction layer or the port pool see it. Everything already admitted —
//! the calls' ACKs, BYEs, re-INVITEs and INVITE retransmissions — passes untouched.

use std::time::Instant;

use concierge_sip::wire::{peek_invite, stateless_response};
use concierge_sip::{Peer, Transmit};
use tracing::debug;

use super::Switch;
use crate::output::Output;

impl Switch {
    /// New INVITEs refused by admission control so far.
    pub fn refused_invites(&self) -> u64 {
        self.admission.refused
    }

    /// Refuses `data` when it is a new INVITE over the budget; returns whether it did.
    pub(super) fn refuse_early(&mut self, now: Instant, peer: Peer, data: &[u8]) -> bool {
        let Some(peek) = peek_invite(data) else {
            return false;
        };
        // A retransmission of an INVITE we took, or a re-INVITE in one of our calls (or
        // their bridge legs): not a new call. A tagged INVITE with any other Call-ID
        // belongs to no dialog of ours and is budgeted like a new one, so a To tag is no
        // way around the limits.
        if self.books.index.call_id(peek.call_id).is_some() {
            return false;
        }
        let trusted = self.shared.cfg.trusted_peers.contains(peer.addr.ip());
        let Err(refusal) = self.admission.admit(now, peer.addr.ip(), trusted) else {
            return false;
        };
        debug!(from = %peer.addr, why = refusal.as_str(), "new INVITE refused with 503");
        let shared = &mut self.shared;
        match refusal {
            crate::admission::Refusal::Rate => shared.stats.refused_rate_limit += 1,
            crate::admission::Refusal::SourceRate => shared.stats.refused_source_rate_limit += 1,
            crate::admission::Refusal::Overloaded => shared.stats.refused_overloaded += 1,
        }
        let tag = shared.endpoint.new_tag();
        let retry = shared.cfg.retry_after.as_secs().to_string();
        let extra = [
            ("Retry-After", retry.as_str()),
            ("Server", shared.cfg.user_agent.as_str()),
        ];
        if let Some(bytes) =
            stateless_response(data, 503, "Service Unavailable", tag.as_str(), &extra)
        {
            shared
                .outputs
                .push_back(Output::Sip(Transmit { peer, bytes }));
        }
        true
    }
}
