//! How calls end: our BYE, every call at shutdown, a refusal while still ringing; and
//! `forget`, the one place a call leaves the switch — its leg hung up, its port released,
//! its indexes cleared and its record written.

use std::time::Instant;

use concierge_sip::wire::{response_to, Method, StatusCode};
use tracing::info;

use super::{carrier, records, Switch};
use crate::call::CallState;
use crate::output::{CallRef, Output};
use crate::record::EndedBy;

impl Switch {
    /// Ends an answered call from our side with BYE (§15.1.1).
    pub(super) fn hang_up(&mut self, now: Instant, id: CallRef, why: &str) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if !call.state.is_up() {
            // Not answered yet (nothing to BYE), or our BYE is already out.
            return;
        }
        let Some(dialog) = call.state.dialog_mut() else {
            return;
        };
        let bye = dialog.new_request(Method::Bye);
        let peer = dialog.next_hop(call.peer);
        call.ending
            .get_or_insert((EndedBy::Concierge, why.to_owned()));
        call.span.in_scope(|| info!(why, "hanging up"));
        let key = self.endpoint.send_request(now, bye, peer);
        self.by_client_tsx.insert(key.clone(), id);
        call.state.end_with(key);
        // The media is over once we said BYE: the port goes back to the pool now, not
        // when (or whether) the peer answers the BYE up to 64·T1 later.
        self.release_port(now, id);
    }

    /// The last step of a shutdown: every call still here (a BYE nobody answers, say) is
    /// dropped now, each with its record.
    pub(super) fn abandon_all(&mut self, now: Instant) {
        let ids: Vec<CallRef> = self.calls.keys().copied().collect();
        for id in ids {
            self.end_call(now, id, EndedBy::Concierge, "server shut down");
        }
    }

    /// Ends every call: BYE for answered ones, 503 for the ones still ringing.
    pub(super) fn hang_up_all(&mut self, now: Instant, why: &str) {
        let ids: Vec<CallRef> = self.calls.keys().copied().collect();
        for id in ids {
            self.end_from_our_side(now, id, StatusCode::SERVICE_UNAVAILABLE, why);
        }
        self.pump(now);
    }

    /// BYE for an answered call, `early_status` for one still ringing.
    pub(super) fn end_from_our_side(
        &mut self,
        now: Instant,
        id: CallRef,
        early_status: StatusCode,
        why: &str,
    ) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        match call.state {
            CallState::Early { .. } => {
                let r = response_to(&call.invite, early_status, Some(call.local_tag.as_str()));
                let key = call.invite_key.clone();
                self.endpoint.respond(now, &key, r);
                self.end_call(now, id, EndedBy::Concierge, why);
            }
            CallState::Answered { .. } | CallState::Confirmed { .. } => self.hang_up(now, id, why),
            CallState::Ending { .. } => {}
        }
    }

    /// The call is over; `by` is who ended it (kept when someone was named first).
    pub(super) fn end_call(&mut self, now: Instant, id: CallRef, by: EndedBy, why: &str) {
        if let Some(call) = self.calls.get_mut(&id) {
            call.ending.get_or_insert((by, why.to_owned()));
        }
        self.forget(now, id);
    }

    /// Drops a call's state and writes its record: every call ends here, whatever the path.
    pub(super) fn forget(&mut self, now: Instant, id: CallRef) {
        // A transfer still under way is recorded as such, not lost (the last finished
        // attempt would otherwise stand for it); ending the leg below closes it.
        let unfinished = self.calls.get(&id).and_then(records::unfinished_transfer);
        self.end_leg(now, id);
        let Some(mut call) = self.calls.remove(&id) else {
            return;
        };
        if unfinished.is_some() {
            call.transfer_record = unfinished;
        }
        self.call_ids.remove(call.invite.call_id.as_bytes());
        self.expiry.remove(&(call.expires, id));
        if let Some(port) = call.rtp_port {
            self.by_port.remove(&port);
            self.ports.release(port, now);
            self.outputs.push_back(Output::MediaClose { port });
        }
        let record = self.record_of(&call, now);
        // One line per call, whichever path ended it (a BYE either way, CANCEL, a timeout).
        call.span
            .in_scope(|| info!(by = %record.ended_by, why = %record.reason, "call ended"));
        self.outputs.push_back(Output::Record(Box::new(record)));
        self.by_invite.remove(&call.invite_key);
        if let Some(d) = call.state.dialog() {
            self.by_dialog.remove(&d.id);
        }
        self.by_dialog.remove(&carrier::early_dialog_id(&call));
        for r in [&call.carrier.refresh, &call.carrier.leg_refresh]
            .into_iter()
            .flatten()
        {
            self.by_client_tsx.remove(&r.key);
        }
        if let CallState::Ending { bye, .. } = &call.state {
            self.by_client_tsx.remove(bye);
        }
    }
}
