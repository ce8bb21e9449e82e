//! Comfort audio while an `http` node waits ("never silence"): after the node's
//! `comfort.after_ms` the call is answered if it still rings (in early media it plays
//! before the answer instead), `comfort.prompt` plays once
//! and `comfort.hold` loops until the result arrives, which stops it at once.

use std::time::Instant;

use concierge_flow::ComfortSpec;
use tracing::debug;

use super::Switch;
use crate::call::Waiting;
use crate::output::CallRef;

/// One request's comfort audio.
#[derive(Debug)]
pub(crate) struct Comfort {
    /// When to start; `None` once started.
    pub(crate) at: Option<Instant>,
    prompt: Option<String>,
    hold: Option<String>,
    /// Started: audio is (or, until the media is up, will be) playing.
    sounding: bool,
}

impl Comfort {
    pub(crate) fn new(at: Instant, spec: &ComfortSpec) -> Self {
        Self {
            at: Some(at),
            prompt: spec.prompt.clone(),
            hold: spec.hold.clone(),
            sounding: false,
        }
    }
}

impl Switch {
    /// The comfort deadline passed while the request is still out: answer (the audio
    /// starts when the ACK brings the media up) or play now.
    pub(super) fn comfort_due(&mut self, now: Instant, id: CallRef) -> bool {
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        let Some(flow) = call.flow.as_mut() else {
            return false;
        };
        let waiting = matches!(flow.waiting, Waiting::Http { .. });
        let Some(comfort) = flow
            .comfort
            .as_mut()
            .filter(|c| c.at.is_some_and(|t| t <= now))
        else {
            return false;
        };
        comfort.at = None;
        if !waiting {
            return true;
        }
        comfort.sounding = true;
        call.span.in_scope(|| debug!("HTTP slow: comfort audio"));
        if call.media.is_started() {
            // Up, or in early media (a flow with `early_media`): play without answering.
            self.comfort_play(id, true);
        } else if call.state.is_early() {
            call.state.clear_answer_at();
            self.answer(now, id);
        }
        true
    }

    /// The media came up while comfort audio was due.
    pub(super) fn comfort_media_ready(&mut self, id: CallRef) {
        let sounding = self
            .calls
            .get(&id)
            .and_then(|c| c.flow.as_ref())
            .is_some_and(|f| {
                matches!(f.waiting, Waiting::Http { .. })
                    && f.comfort.as_ref().is_some_and(|c| c.sounding)
            });
        if sounding {
            self.comfort_play(id, true);
        }
    }

    /// The comfort playlist ran out while the request is still out: loop the hold audio.
    pub(super) fn comfort_loop(&mut self, id: CallRef) {
        let sounding = self
            .calls
            .get(&id)
            .and_then(|c| c.flow.as_ref())
            .and_then(|f| f.comfort.as_ref())
            .is_some_and(|c| c.sounding);
        if sounding {
            self.comfort_play(id, false);
        }
    }

    /// Queues the prompt (first time) and the hold audio.
    fn comfort_play(&mut self, id: CallRef, first: bool) {
        let Some(comfort) = self
            .calls
            .get(&id)
            .and_then(|c| c.flow.as_ref())
            .and_then(|f| f.comfort.as_ref())
        else {
            return;
        };
        let mut names: Vec<String> = Vec::new();
        if first {
            names.extend(comfort.prompt.clone());
        }
        names.extend(comfort.hold.clone());
        let found = self.resolve(id, &names);
        if let Some(call) = self.calls.get_mut(&id) {
            call.media.play(found);
        }
    }

    /// The result came: whatever comfort audio plays stops now.
    pub(super) fn stop_comfort(&mut self, id: CallRef) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(flow) = call.flow.as_mut() else {
            return;
        };
        if flow.comfort.take().is_some_and(|c| c.sounding) {
            call.media.stop_playing();
        }
    }
}
