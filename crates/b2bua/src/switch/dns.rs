//! Named next hops for bridge legs (RFC 3263). The core does no DNS: a leg whose target
//! (or the outbound proxy) is a name asks the driver through [`crate::Output::Resolve`]; the
//! driver runs NAPTR → SRV → A/AAAA and hands back the addresses in the order to try
//! ([`crate::Input::Resolved`]). The leg sends its INVITE to the first; on 503, on a
//! transaction timeout, or when an address sends nothing at all within
//! `SwitchConfig::dns_failover`, the same request goes to the next (§4.3).

use std::time::Instant;

use concierge_sip::wire::SipUri;
use concierge_sip::Peer;
use tracing::info;

use super::Switch;
use crate::leg::LegState;
use crate::output::{CallRef, Resolve, ResolveId};
use crate::record::TransferFailure;

/// Addresses of one name we try at most (a long SRV list stays bounded).
const MAX_ADDRESSES: usize = 8;

impl Switch {
    /// The answer to [`Resolve`] `id`: the addresses to try, best first, or why there are
    /// none. An answer for a leg that is gone is dropped.
    pub(super) fn on_resolved(
        &mut self,
        now: Instant,
        id: ResolveId,
        result: Result<Vec<Peer>, String>,
    ) {
        let Some(call) = self.pending_dns.remove(&id) else {
            return;
        };
        let Some(leg) = self
            .calls
            .get_mut(&call)
            .and_then(|c| c.bridge.as_mut())
            .filter(|l| l.dns == Some(id))
        else {
            return;
        };
        leg.dns = None;
        let mut peers = match result {
            Ok(p) if !p.is_empty() => p,
            Ok(_) => {
                let target = leg.target.clone();
                return self.bridge_failed(now, call, &target, TransferFailure::NoAddress);
            }
            Err(why) => {
                let target = leg.target.clone();
                self.bridge_failed(now, call, &target, TransferFailure::Unresolved(why));
                self.pump(now);
                return;
            }
        };
        peers.truncate(MAX_ADDRESSES);
        leg.peer = peers.remove(0);
        leg.alternates = peers.into();
        if leg.port_bound && leg.state == LegState::Binding {
            self.leg_port_ready(now, call);
        }
        self.pump(now);
    }

    pub(super) fn request_resolve(&mut self, call: CallRef, uri: SipUri) {
        let id = ResolveId(self.next_dns);
        self.next_dns += 1;
        if let Some(leg) = self.calls.get_mut(&call).and_then(|c| c.bridge.as_mut()) {
            leg.dns = Some(id);
        }
        self.pending_dns.insert(id, call);
        self.resolves.push_back(Resolve { id, uri });
    }

    /// Sends the leg's INVITE again, to the next address of its resolved name, as a new
    /// transaction (new branch, next CSeq). False when there is no other address.
    pub(super) fn try_next_address(&mut self, now: Instant, id: CallRef, why: &str) -> bool {
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        let Some(leg) = call.bridge.as_mut() else {
            return false;
        };
        if leg.state == LegState::Over {
            return false;
        }
        let (Some(next), Some(mut invite)) = (leg.alternates.pop_front(), leg.invite.clone())
        else {
            return false;
        };
        let failed = leg.peer.addr;
        call.span.in_scope(
            || info!(%why, from = %failed, to = %next.addr, "trying the target's next address"),
        );
        leg.peer = next;
        leg.cseq += 1;
        invite.cseq.seq = leg.cseq;
        leg.invite = Some(invite.clone());
        leg.state = LegState::Calling;
        leg.attempt_deadline = (!leg.alternates.is_empty()).then(|| now + self.cfg.dns_failover);
        let key = self.endpoint.send_request(now, invite, next);
        self.set_leg_key(id, key);
        true
    }
}
