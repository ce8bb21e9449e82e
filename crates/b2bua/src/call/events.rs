//! A call's events for a live view ([`crate::CallEvent`], with
//! `SwitchConfig::call_events`), each told where it happens: arrived (`accept`), the nodes
//! its flow entered (`step`), a transfer going out and settling (`start_refer`,
//! `start_bridge`, `redirect` and the places a transfer's result is written), ended
//! (`finish`). With the switch off each returns at its first line: a server without a
//! console builds nothing per call for them.

use concierge_media::sdes::SrtpPolicy;

use super::{Call, Cx};
use crate::event::{desk_of, Arrival, CallEvent, CallEventKind, Transfer};
use crate::output::Output;
use crate::record::Outcome;
use crate::transfer::TransferMode;

impl Call {
    /// The call was admitted: who calls, what they dialled, how.
    pub(super) fn tell_arrived(&self, cx: &mut Cx<'_>) {
        if !cx.cfg.call_events {
            return;
        }
        let identity = &self.identity;
        let called = self.inbound.invite.uri.user().unwrap_or_default();
        let arrival = Arrival {
            caller: identity.number.clone(),
            verified: identity.verified,
            private: identity.private,
            called: called.to_owned(),
            flow: cx.program.flow_for(called).map(|f| f.name.clone()),
            transport: self.caller.peer.transport,
            srtp: self
                .caller
                .audio
                .as_ref()
                .map_or(cx.cfg.srtp == SrtpPolicy::Mandatory, |a| a.srtp.is_some()),
        };
        self.tell(cx, CallEventKind::Arrived(arrival));
    }

    /// Every node the flow entered since the last time it was asked, in order — the
    /// conditions and sets it ran through at once too. A node's visits are the run's
    /// trace (nodes left) followed by its current node, so visit `i` never changes once
    /// made and a count of those told is all the call keeps.
    pub(super) fn tell_nodes_entered(&mut self, cx: &mut Cx<'_>) {
        if !cx.cfg.call_events {
            return;
        }
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        let trace = flow.run.trace();
        let current = flow.run.current_node();
        let visits = trace.len() + usize::from(current.is_some());
        if visits <= flow.told {
            return;
        }
        let name = &flow.run.flow().name;
        for i in flow.told..visits {
            let node = trace.get(i).map_or(current, |s| Some(s.node.as_str()));
            let kind = CallEventKind::NodeEntered {
                flow: name.clone(),
                node: node.unwrap_or_default().to_owned(),
            };
            cx.emit(event(self.inbound.invite.call_id.as_str(), cx.now, kind));
        }
        flow.told = visits;
    }

    /// A transfer to `target` went out by `mode`: what the desk's widget shows about the
    /// call — the transfer node's widget variables (never a secret) and how the caller was
    /// recognised, when the flow waits at a transfer node.
    pub(super) fn tell_transferred(&self, cx: &mut Cx<'_>, mode: TransferMode, target: &str) {
        if !cx.cfg.call_events {
            return;
        }
        let target = if self.notes.redact_target {
            "<redacted>"
        } else {
            // The flow's variables ride as URI headers: the widget lists them itself.
            target.split('?').next().unwrap_or_default()
        };
        let context = self.flow.as_ref().and_then(|f| f.run.transfer_context());
        let (node, widget, recognised) = context
            .map(|c| (c.node, c.widget, c.recognised))
            .unwrap_or_default();
        let transfer = Transfer {
            node,
            target: target.to_owned(),
            desk: desk_of(target),
            mode,
            widget,
            recognised,
        };
        self.tell(cx, CallEventKind::Transferred(transfer));
    }

    /// The transfer under way settled; its result is the one the record will carry.
    pub(super) fn tell_transfer_ended(&self, cx: &mut Cx<'_>) {
        if !cx.cfg.call_events {
            return;
        }
        if let Some(t) = &self.notes.transfer {
            self.tell(cx, CallEventKind::TransferEnded(t.result.clone()));
        }
    }

    /// The call is over with `outcome`; its record follows.
    pub(super) fn tell_ended(&self, cx: &mut Cx<'_>, outcome: Outcome) {
        if cx.cfg.call_events {
            self.tell(cx, CallEventKind::Ended { outcome });
        }
    }

    fn tell(&self, cx: &mut Cx<'_>, kind: CallEventKind) {
        cx.emit(event(self.inbound.invite.call_id.as_str(), cx.now, kind));
    }
}

fn event(call_id: &str, at: std::time::Instant, kind: CallEventKind) -> Output {
    Output::Event(Box::new(CallEvent {
        call_id: call_id.to_owned(),
        at,
        kind,
    }))
}
