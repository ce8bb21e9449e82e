//! Transfers in the caller's own dialog: REFER (RFC 3515, progress in `message/sipfrag`
//! NOTIFYs, `dialog.rs`), 302 before the answer, the driver's transfer command — and how
//! a transfer's outcome reaches the flow (a failed REFER may fall back to a bridge).

use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::{HeaderName, Method, StatusCode};
use tracing::{info, warn};

use super::{Call, CallTimer, Cx, Transfer};
use crate::record::{EndedBy, TransferFailure, TransferRecord, TransferResult};
use crate::switch::{shown, Key};
use crate::transfer::TransferMode;

/// A REFER in progress.
#[derive(Debug)]
pub(crate) struct Refer {
    pub(crate) target: String,
    /// The REFER's client transaction until its final response.
    pub(crate) key: Option<TsxKey>,
    /// The REFER was answered 2xx: the target is being called.
    pub(crate) accepted: bool,
    /// Bridge to this target (with these INVITE headers) if the REFER fails.
    pub(crate) fallback: Option<(String, Vec<(String, String)>)>,
}

impl Call {
    /// The driver's transfer command: moves the call to `target` by `mode`. The outcome
    /// arrives later (NOTIFYs, the REFER's response, the leg's answer, or a timeout).
    pub(crate) fn transfer(&mut self, cx: &mut Cx<'_>, mode: TransferMode, target: &str) {
        match mode {
            TransferMode::Refer => self.start_refer(cx, target, None),
            TransferMode::Redirect => self.redirect(cx, target),
            TransferMode::Bridge => self.start_bridge(cx, target, Vec::new(), None, None),
            TransferMode::ReferOrBridge => {
                let fallback = Some((target.to_owned(), Vec::new()));
                self.start_refer(cx, target, fallback)
            }
        }
    }

    /// Moves an answered call to `target` by REFER (RFC 3515) in its dialog.
    pub(super) fn start_refer(
        &mut self,
        cx: &mut Cx<'_>,
        target: &str,
        fallback: Option<(String, Vec<(String, String)>)>,
    ) {
        if self.caller.state.dialog().is_none() {
            return;
        }
        self.end_transfer(cx);
        // §12.2.1.1: through the route set, not straight to the caller's Contact.
        let peer = self.caller.next_hop();
        let Some(dialog) = self.caller.state.dialog_mut() else {
            return;
        };
        let contact = dialog.local_contact.clone();
        let mut refer = dialog.new_request(Method::Refer);
        refer
            .headers
            .push_joined(HeaderName::REFER_TO, &["<", target, ">"]);
        refer
            .headers
            .push_joined(HeaderName::REFERRED_BY, &["<", contact.as_str(), ">"]);
        info!(target = %shown(self.notes.redact_target, target), "transferring by REFER");
        let key = cx.send(refer, peer);
        cx.index(Key::Request(key.clone()));
        self.tell_transferred(cx, TransferMode::Refer, target);
        self.transfer = Transfer::Refer(Refer {
            target: target.to_owned(),
            key: Some(key),
            accepted: false,
            fallback,
        });
        self.timers
            .set(CallTimer::Refer, cx.now + cx.cfg.transfer_timeout);
    }

    /// RFC 3261 §21.3.3: answers a ringing call with 302 and the target as Contact, so the
    /// caller's side places the call itself.
    pub(super) fn redirect(&mut self, cx: &mut Cx<'_>, target: &str) {
        if !self.caller.state.is_early() {
            warn!("redirect asked for an answered call; ignored");
            return;
        }
        self.timers.stop(CallTimer::Answer);
        let tag = self.caller.local_tag.as_str();
        let mut r = concierge_sip::wire::response_to(
            &self.inbound.invite,
            StatusCode::MOVED_TEMPORARILY,
            Some(tag),
        );
        r.headers
            .push_joined(HeaderName::CONTACT, &["<", target, ">"]);
        self.notes.transfer = Some(TransferRecord {
            mode: TransferMode::Redirect,
            target: target.to_owned(),
            result: TransferResult::Redirected,
            started_ms: None,
            relayed: None,
        });
        info!(target = %shown(self.notes.redact_target, target), "redirected with 302");
        self.respond_to_invite(cx, r);
        self.tell_transferred(cx, TransferMode::Redirect, target);
        self.tell_transfer_ended(cx);
        self.end(cx, EndedBy::Concierge, "redirected");
    }

    /// The final answer to our REFER (its transaction `key`): accepted, or the transfer
    /// failed.
    pub(super) fn on_refer_answer(&mut self, cx: &mut Cx<'_>, key: &TsxKey, status: StatusCode) {
        let Some(refer) = self
            .transfer
            .refer_mut()
            .filter(|r| r.key.as_ref() == Some(key))
        else {
            return;
        };
        refer.key = None;
        if status.is_success() {
            refer.accepted = true;
        } else {
            self.refer_finished(cx, Err(TransferFailure::ReferRejected(status)));
        }
    }

    /// No final NOTIFY (or no answer to the REFER) within `transfer_timeout`.
    pub(crate) fn refer_timeout(&mut self, cx: &mut Cx<'_>) {
        let Some(refer) = self.transfer.refer_mut() else {
            return;
        };
        let why = if refer.accepted {
            TransferFailure::NoFinalNotify
        } else {
            TransferFailure::ReferNotAccepted
        };
        self.refer_finished(cx, Err(why));
    }

    /// The REFER came to an end: on success we leave the call (RFC 5589 §6.1); on failure
    /// a `refer_or_bridge` bridges instead, else the flow takes its `failed` exit.
    pub(super) fn refer_finished(&mut self, cx: &mut Cx<'_>, outcome: Result<(), TransferFailure>) {
        if self.transfer.refer_mut().is_none() {
            return;
        }
        let Transfer::Refer(refer) = std::mem::replace(&mut self.transfer, Transfer::Idle) else {
            return;
        };
        self.timers.stop(CallTimer::Refer);
        if let Some(k) = refer.key {
            cx.unindex(Key::Request(k));
        }
        let result = match &outcome {
            Ok(()) => TransferResult::Succeeded,
            Err(why) => TransferResult::Failed(why.clone()),
        };
        info!(target = %shown(self.notes.redact_target, &refer.target), %result, "REFER transfer finished");
        self.notes.transfer = Some(TransferRecord {
            mode: TransferMode::Refer,
            target: refer.target,
            result,
            started_ms: None,
            relayed: None,
        });
        self.tell_transfer_ended(cx);
        match &outcome {
            Ok(()) => {
                self.notes.ending = Some((EndedBy::Concierge, "transferred".into()));
                self.hang_up(cx, "transferred");
            }
            Err(why) => {
                if let Some((target, headers)) = refer.fallback {
                    info!(%why, "REFER failed; bridging instead");
                    self.start_bridge(cx, &target, headers, Some(why.clone()), None);
                    return;
                }
            }
        }
        self.flow_transfer_result(cx, outcome.as_ref().map(|_| ()));
    }
}
