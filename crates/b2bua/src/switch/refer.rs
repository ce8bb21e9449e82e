//! Transfers the flow asks for: REFER in the caller's dialog (RFC 3515, progress in
//! `message/sipfrag` NOTIFYs), 302 before the answer, a bridged leg (`bridge.rs`), or
//! REFER falling back to a bridge; and how each outcome goes back to the flow.

use std::time::Instant;

use concierge_sip::wire::{response_to, HeaderName, Method, StatusCode};
use tracing::{info, warn};

use super::{shown, Switch};
use crate::output::CallRef;
use crate::record::EndedBy;
use crate::record::TransferRecord;
use crate::record::{TransferFailure, TransferResult};
use crate::transfer::{ReferTransfer, TransferMode};

impl Switch {
    /// Moves an answered call to `target` by REFER (RFC 3515) in its dialog. The outcome
    /// arrives later through the NOTIFYs, the REFER's response or the transfer timeout.
    pub(super) fn transfer(&mut self, now: Instant, id: CallRef, mode: TransferMode, target: &str) {
        match mode {
            TransferMode::Refer => self.start_refer(now, id, target, None),
            TransferMode::Redirect => self.redirect(now, id, target),
            TransferMode::Bridge => self.start_bridge(now, id, target, Vec::new(), None),
            TransferMode::ReferOrBridge => {
                self.start_refer(now, id, target, Some((target.to_owned(), Vec::new())))
            }
        }
    }

    pub(super) fn start_refer(
        &mut self,
        now: Instant,
        id: CallRef,
        target: &str,
        fallback: Option<(String, Vec<(String, String)>)>,
    ) {
        let timeout = self.cfg.transfer_timeout;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(dialog) = call.state.dialog_mut() else {
            return;
        };
        let contact = dialog.local_contact.clone();
        let mut refer = dialog.new_request(Method::Refer);
        refer
            .headers
            .push(HeaderName::REFER_TO, format!("<{target}>"));
        refer
            .headers
            .push(HeaderName::REFERRED_BY, format!("<{contact}>"));
        call.span.in_scope(
            || info!(target = %shown(call.redact_target, target), "transferring by REFER"),
        );
        // §12.2.1.1: through the route set, not straight to the caller's Contact.
        let peer = dialog.next_hop(call.peer);
        call.refer = Some(ReferTransfer {
            target: target.to_owned(),
            key: None,
            accepted: false,
            deadline: now + timeout,
            fallback,
        });
        let key = self.endpoint.send_request(now, refer, peer);
        self.by_client_tsx.insert(key.clone(), id);
        if let Some(r) = self.calls.get_mut(&id).and_then(|c| c.refer.as_mut()) {
            r.key = Some(key);
        }
        self.rearm(id);
    }

    /// RFC 3261 §21.3.3: answers a ringing call with 302 and the target as Contact, so the
    /// caller's side places the call itself.
    pub(super) fn redirect(&mut self, now: Instant, id: CallRef, target: &str) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if !call.state.is_early() {
            call.span
                .in_scope(|| warn!("redirect asked for an answered call; ignored"));
            return;
        }
        call.state.clear_answer_at();
        let mut r = response_to(
            &call.invite,
            StatusCode::MOVED_TEMPORARILY,
            Some(call.local_tag.as_str()),
        );
        r.headers.push(HeaderName::CONTACT, format!("<{target}>"));
        call.transfer_record = Some(TransferRecord {
            mode: TransferMode::Redirect,
            target: target.to_owned(),
            result: TransferResult::Redirected,
            started_ms: None,
            relayed: None,
        });
        call.span
            .in_scope(|| info!(target = %shown(call.redact_target, target), "redirected with 302"));
        let key = call.invite_key.clone();
        self.endpoint.respond(now, &key, r);
        self.end_call(now, id, EndedBy::Concierge, "redirected");
    }

    pub(super) fn refer_finished(
        &mut self,
        now: Instant,
        id: CallRef,
        outcome: Result<(), TransferFailure>,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(refer) = call.refer.take() else {
            return;
        };
        if let Some(k) = &refer.key {
            self.by_client_tsx.remove(k);
        }
        let result = match &outcome {
            Ok(()) => TransferResult::Succeeded,
            Err(why) => TransferResult::Failed(why.clone()),
        };
        call.span
            .in_scope(|| info!(target = %shown(call.redact_target, &refer.target), %result, "REFER transfer finished"));
        call.transfer_record = Some(TransferRecord {
            mode: TransferMode::Refer,
            target: refer.target,
            result,
            started_ms: None,
            relayed: None,
        });
        match &outcome {
            // RFC 5589 §6.1: the transferor ends its dialog once the transfer succeeded.
            Ok(()) => {
                call.ending = Some((EndedBy::Concierge, "transferred".into()));
                self.hang_up(now, id, "transferred");
            }
            Err(why) => {
                if let Some((target, headers)) = refer.fallback {
                    call.span
                        .in_scope(|| info!(%why, "REFER failed; bridging instead"));
                    self.start_bridge(now, id, &target, headers, Some(why.clone()));
                    return;
                }
            }
        }
        self.flow_transfer_result(now, id, outcome.as_ref().map(|_| ()));
        self.rearm(id);
    }
}
