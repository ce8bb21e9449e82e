//! Running a call's flow: turning the interpreter's actions into SIP and media work, and
//! what happens on the call back into interpreter events.

use std::time::Instant;

use concierge_flow::{
    Action, CollectOutcome, Collector, Event, HttpFailure, HttpResponse, Run, TransferMode, Vars,
};
use concierge_sip::wire::StatusCode;
use tracing::{info, warn};

use super::Switch;
use crate::call::{FlowState, Waiting};
use crate::output::CallRef;
use crate::record::EndedBy;
use crate::record::TransferFailure;
use crate::transfer::TransferOutcome;

impl Switch {
    /// Starts the flow for a new call, before it is answered: an HTTP lookup runs while the
    /// caller hears ringing, and a redirect can still answer 302.
    pub(super) fn start_flow(&mut self, now: Instant, id: CallRef) -> bool {
        let Some(call) = self.calls.get(&id) else {
            return false;
        };
        let called = call.invite.uri.user().unwrap_or_default().to_owned();
        let program = self.program.clone();
        let Some(flow) = program.flow_for(&called) else {
            return false;
        };
        // Who is calling was settled when the INVITE arrived (`identity`): PAI only from
        // a trusted peer, From claimed otherwise.
        let identity = &call.identity;
        let mut vars = Vars::new();
        vars.insert("system.caller".into(), identity.number.clone());
        vars.insert(
            "system.caller_verified".into(),
            identity.verified.to_string(),
        );
        vars.insert(
            "system.caller_verstat".into(),
            identity.verstat.clone().unwrap_or_default(),
        );
        vars.insert("system.caller_private".into(), identity.private.to_string());
        vars.insert("system.called".into(), called);
        vars.insert("system.call_id".into(), call.invite.call_id.clone());
        vars.insert(
            "system.local_host".into(),
            format!("{}:{}", self.cfg.advertised_host, self.cfg.sip_port),
        );
        vars.insert("system.now".into(), self.unix_s(now).to_string());
        vars.insert(
            "system.directory_url".into(),
            self.cfg.directory_url.clone(),
        );
        call.span.in_scope(|| {
            info!(
                flow = %flow.name,
                caller = %identity.for_log(),
                verified = identity.verified,
                verstat = identity.verstat.as_deref().unwrap_or("-"),
                "flow started"
            )
        });
        let (run, action) = Run::start(flow, vars, program.env.clone());
        if let Some(call) = self.calls.get_mut(&id) {
            call.flow = Some(FlowState {
                run,
                waiting: Waiting::Nothing,
                deferred: None,
                program,
                comfort: None,
                in_flight: None,
            });
        }
        self.step(now, id, action);
        true
    }

    /// Carries out `action` and every action that follows at once from it.
    pub(super) fn step(&mut self, now: Instant, id: CallRef, mut action: Action) {
        // The interpreter bounds its own steps; this bounds immediate event ping-pong.
        for _ in 0..64 {
            self.count_failed_attempts(now, id);
            let Some(event) = self.execute(now, id, action) else {
                self.rearm(id);
                return;
            };
            let unix_s = self.unix_s(now);
            let Some(flow) = self.calls.get_mut(&id).and_then(|c| c.flow.as_mut()) else {
                return;
            };
            flow.run.set_clock(unix_s);
            action = flow.run.handle(event);
        }
        warn!("flow kept producing immediate events; hanging up");
        self.hang_up(now, id, "flow loop");
    }

    /// Performs one action; returns an event when its outcome is known at once.
    fn execute(&mut self, now: Instant, id: CallRef, action: Action) -> Option<Event> {
        let call = self.calls.get_mut(&id)?;
        let _g = call.span.clone().entered();
        // In early media only prompts play before the 200; keypad input and transfers
        // answer first (digits and REFER need a confirmed call, RFC 3515 §2.4.2).
        let media_ready =
            call.media.is_started() && (!call.state.is_early() || plays_early(&action));
        let needs_media = match &action {
            Action::Play { .. } | Action::CollectDigits(_) => true,
            Action::Transfer {
                prompt: Some(_), ..
            }
            | Action::Hangup {
                prompt: Some(_), ..
            } => true,
            Action::Transfer { mode, .. } => {
                *mode != TransferMode::Redirect || !call.state.is_early()
            }
            _ => false,
        };
        if needs_media && !media_ready {
            // Answer now; the action runs once the ACK brings the media up.
            let early = call.state.is_early();
            call.flow.as_mut()?.deferred = Some(action);
            if early {
                call.state.clear_answer_at();
                self.answer(now, id);
            }
            return None;
        }
        let flow = call.flow.as_mut()?;
        match action {
            Action::Play {
                prompts,
                interruptible,
            } => {
                let found = self.resolve(id, &prompts);
                let call = self.calls.get_mut(&id)?;
                // A key typed ahead skips an interruptible prompt altogether.
                if found.is_empty() || (interruptible && !call.media.pending.is_empty()) {
                    return Some(Event::PromptFinished);
                }
                call.media.play(found);
                call.flow.as_mut()?.waiting = if interruptible {
                    Waiting::BargeIn
                } else {
                    Waiting::Prompt
                };
                None
            }
            Action::CollectDigits(spec) => {
                if let Some(group) = &spec.lockout {
                    if self.lockout_applies(now, id, group) {
                        return Some(Event::Locked);
                    }
                }
                let found = self.resolve(id, &spec.prompts);
                let call = self.calls.get_mut(&id)?;
                let mut collector = Collector::new(spec);
                if found.is_empty() {
                    collector.prompt_finished(now);
                } else {
                    call.media.play(found);
                }
                call.flow.as_mut()?.waiting = Waiting::Collect(collector);
                self.take_digits(now, id)
            }
            Action::Http(request) => self.start_http(now, id, request),
            Action::Transfer {
                target,
                headers,
                mode,
                prompt: Some(p),
                redact,
            } => {
                flow.waiting = Waiting::PromptThen(Box::new(Action::Transfer {
                    target,
                    headers,
                    mode,
                    prompt: None,
                    redact,
                }));
                let found = self.resolve(id, &[p]);
                self.calls.get_mut(&id)?.media.play(found);
                self.after_prompt_if_silent(now, id)
            }
            Action::Transfer {
                target,
                mut headers,
                mode,
                prompt: None,
                redact,
            } => {
                call.redact_target |= redact;
                call.transfer_started.get_or_insert(now);
                if let (Some(signer), false) = (&self.cfg.transfer_signer, headers.is_empty()) {
                    // The context rides through the caller's phone (REFER, 302): sign it.
                    let caller = if call.identity.private || call.identity.number.is_empty() {
                        "anonymous"
                    } else {
                        call.identity.number.as_str()
                    };
                    let unix_s = self.wall.unix_ms(now) / 1000;
                    signer.sign(&mut headers, &call.invite.call_id, caller, unix_s);
                }
                let flow = call.flow.as_mut()?;
                let uri = with_uri_headers(&target, &headers);
                flow.waiting = Waiting::Transfer;
                match mode {
                    TransferMode::Redirect if call.state.is_early() => {
                        let done = flow
                            .run
                            .handle(Event::TransferResult(TransferOutcome::Succeeded));
                        debug_assert_eq!(done, Action::Done);
                        flow.waiting = Waiting::Done;
                        self.transfer(now, id, TransferMode::Redirect, &uri);
                        None
                    }
                    TransferMode::Bridge => {
                        self.start_bridge(now, id, &target, headers, None);
                        None
                    }
                    TransferMode::ReferOrBridge => {
                        self.start_refer(now, id, &uri, Some((target, headers)));
                        None
                    }
                    // refer, or a redirect asked too late to be one.
                    _ => {
                        self.transfer(now, id, TransferMode::Refer, &uri);
                        None
                    }
                }
            }
            Action::Hangup {
                prompt: Some(p),
                reason,
            } => {
                flow.waiting = Waiting::PromptThen(Box::new(Action::Hangup {
                    prompt: None,
                    reason,
                }));
                let found = self.resolve(id, &[p]);
                self.calls.get_mut(&id)?.media.play(found);
                self.after_prompt_if_silent(now, id)
            }
            Action::Hangup {
                prompt: None,
                reason,
            } => {
                flow.waiting = Waiting::Done;
                if call.state.is_early() {
                    let r = concierge_sip::wire::response_to(
                        &call.invite,
                        StatusCode::TEMPORARILY_UNAVAILABLE,
                        Some(call.local_tag.as_str()),
                    );
                    let key = call.invite_key.clone();
                    self.endpoint.respond(now, &key, r);
                    self.end_call(now, id, EndedBy::Concierge, &reason);
                } else {
                    self.hang_up(now, id, &reason);
                }
                None
            }
            Action::Done => {
                flow.waiting = Waiting::Done;
                None
            }
        }
    }

    /// A queued prompt list may be empty (unknown prompts were logged): then what waited
    /// for it goes ahead at once.
    fn after_prompt_if_silent(&mut self, now: Instant, id: CallRef) -> Option<Event> {
        let call = self.calls.get_mut(&id)?;
        if call.media.is_playing() {
            return None;
        }
        match std::mem::replace(&mut call.flow.as_mut()?.waiting, Waiting::Nothing) {
            Waiting::PromptThen(next) => {
                self.step(now, id, *next);
                None
            }
            other => {
                call.flow.as_mut()?.waiting = other;
                None
            }
        }
    }

    /// The prompts named, from the program the call started with.
    pub(super) fn resolve(
        &self,
        id: CallRef,
        names: &[String],
    ) -> Vec<std::sync::Arc<concierge_prompts::Prompt>> {
        let program = self
            .calls
            .get(&id)
            .and_then(|c| c.flow.as_ref())
            .map_or(&self.program, |f| &f.program);
        names
            .iter()
            .filter_map(|n| {
                let p = program.prompts.get(n);
                if p.is_none() {
                    warn!(prompt = %n, "unknown prompt skipped");
                }
                p
            })
            .collect()
    }

    /// The media came up (ACK): run the action that waited for it.
    pub(super) fn media_ready(&mut self, now: Instant, id: CallRef) {
        self.comfort_media_ready(id);
        let Some(action) = self
            .calls
            .get_mut(&id)
            .and_then(|c| c.flow.as_mut())
            .and_then(|f| f.deferred.take())
        else {
            return;
        };
        self.step(now, id, action);
    }

    /// The playlist ran out.
    pub(super) fn prompt_finished(&mut self, now: Instant, id: CallRef) {
        let Some(flow) = self.calls.get_mut(&id).and_then(|c| c.flow.as_mut()) else {
            return;
        };
        match std::mem::replace(&mut flow.waiting, Waiting::Nothing) {
            Waiting::Prompt | Waiting::BargeIn => {
                let action = flow.run.handle(Event::PromptFinished);
                self.step(now, id, action);
            }
            w @ Waiting::Http { .. } => {
                flow.waiting = w;
                self.comfort_loop(id);
            }
            Waiting::Collect(mut c) => {
                c.prompt_finished(now);
                flow.waiting = Waiting::Collect(c);
                self.rearm(id);
            }
            Waiting::PromptThen(next) => self.step(now, id, *next),
            other => flow.waiting = other,
        }
    }

    /// Feeds buffered digits to a collector, if one is waiting; barge-in stops the prompt.
    fn take_digits(&mut self, now: Instant, id: CallRef) -> Option<Event> {
        let call = self.calls.get_mut(&id)?;
        let Some(flow) = call.flow.as_mut() else {
            call.media.pending.clear();
            return None;
        };
        if matches!(flow.waiting, Waiting::BargeIn) && !call.media.pending.is_empty() {
            // Barge-in: the key stops the prompt and stays pending for the next keypad.
            call.media.stop_playing();
            flow.waiting = Waiting::Nothing;
            return Some(Event::PromptFinished);
        }
        let Waiting::Collect(collector) = &mut flow.waiting else {
            return None;
        };
        while let Some((d, index)) = call.media.pending.pop_front() {
            call.media.stop_playing();
            if !collector.spec().secret {
                if let Some(shown) = call.media.shown.get_mut(index) {
                    *shown = true;
                }
            }
            if let Some(outcome) = collector.handle_digit(now, d) {
                let lockout = collector.spec().lockout.clone();
                flow.waiting = Waiting::Nothing;
                // A lock that came into force while the caller typed (another call's
                // failure) still stops this code.
                if let (Some(group), CollectOutcome::Digits(_)) = (lockout, &outcome) {
                    if self.lockout_applies(now, id, &group) {
                        return Some(Event::Locked);
                    }
                }
                return Some(collect_event(outcome));
            }
        }
        None
    }

    /// A digit arrived by RTP or INFO.
    pub(super) fn digit_arrived(&mut self, now: Instant, id: CallRef) {
        if let Some(event) = self.take_digits(now, id) {
            self.feed(now, id, event);
        } else {
            self.rearm(id);
        }
    }

    /// The collector's timer fired.
    pub(super) fn collect_timeout(&mut self, now: Instant, id: CallRef) -> bool {
        let Some(flow) = self.calls.get_mut(&id).and_then(|c| c.flow.as_mut()) else {
            return false;
        };
        let Waiting::Collect(c) = &mut flow.waiting else {
            return false;
        };
        let Some(outcome) = c.handle_timeout(now) else {
            return false;
        };
        let lockout = c.spec().lockout.clone();
        flow.waiting = Waiting::Nothing;
        let event = match (lockout, &outcome) {
            (Some(group), CollectOutcome::Digits(_)) if self.lockout_applies(now, id, &group) => {
                Event::Locked
            }
            _ => collect_event(outcome),
        };
        self.feed(now, id, event);
        true
    }

    pub(super) fn feed(&mut self, now: Instant, id: CallRef, event: Event) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(flow) = call.flow.as_mut() else {
            return;
        };
        flow.run.set_clock(self.wall.unix_ms(now) as i64 / 1000);
        let action = call.span.in_scope(|| flow.run.handle(event));
        self.step(now, id, action);
    }

    /// The result of an [`Output::Http`] request.
    pub(super) fn on_http_result(
        &mut self,
        now: Instant,
        id: CallRef,
        result: Result<HttpResponse, HttpFailure>,
    ) {
        let Some(flow) = self.calls.get_mut(&id).and_then(|c| c.flow.as_mut()) else {
            return;
        };
        if !matches!(flow.waiting, Waiting::Http { .. }) {
            // Late: the watchdog below already gave up on it.
            return;
        }
        flow.waiting = Waiting::Nothing;
        self.http_done(now, id, result);
        self.pump(now);
    }

    /// The HTTP result is overdue: the request is treated as timed out.
    pub(super) fn http_overdue(&mut self, now: Instant, id: CallRef) -> bool {
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        let Some(flow) = call.flow.as_mut() else {
            return false;
        };
        if !matches!(flow.waiting, Waiting::Http { overdue } if overdue <= now) {
            return false;
        }
        call.span
            .in_scope(|| warn!("no HTTP result long after the node's timeout; taking it as one"));
        flow.waiting = Waiting::Nothing;
        self.http_done(now, id, Err(HttpFailure::Timeout));
        true
    }

    /// A REFER transfer finished; the flow decides what comes next.
    pub(super) fn flow_transfer_result(
        &mut self,
        now: Instant,
        id: CallRef,
        outcome: Result<(), &TransferFailure>,
    ) {
        let Some(flow) = self.calls.get_mut(&id).and_then(|c| c.flow.as_mut()) else {
            return;
        };
        if !matches!(flow.waiting, Waiting::Transfer) {
            return;
        }
        flow.waiting = Waiting::Nothing;
        let outcome = match outcome {
            Ok(()) => TransferOutcome::Succeeded,
            Err(why) => TransferOutcome::Failed(why.to_string()),
        };
        self.feed(now, id, Event::TransferResult(outcome));
    }

    /// The caller went away: the flow records where it was.
    pub(super) fn flow_hung_up(&mut self, id: CallRef) {
        if let Some(flow) = self.calls.get_mut(&id).and_then(|c| c.flow.as_mut()) {
            flow.run.handle(Event::HungUp);
            flow.waiting = Waiting::Done;
        }
    }
}

/// Actions early media can carry: a prompt, alone or before a hangup or transfer (the
/// transfer itself then answers, or a redirect rejects with 302).
fn plays_early(action: &Action) -> bool {
    matches!(
        action,
        Action::Play { .. }
            | Action::Hangup {
                prompt: Some(_),
                ..
            }
            | Action::Transfer {
                prompt: Some(_),
                ..
            }
    )
}

fn collect_event(outcome: CollectOutcome) -> Event {
    match outcome {
        CollectOutcome::Digits(d) => Event::Digits(d),
        CollectOutcome::NoInput => Event::InputTimeout,
    }
}

/// `sip:vip@q?X-Concierge-Tier=gold`: flow variables ride to the agent as URI headers
/// (RFC 3261 §19.1.1), escaped so a value cannot add headers of its own.
fn with_uri_headers(target: &str, headers: &[(String, String)]) -> String {
    if headers.is_empty() {
        return target.to_owned();
    }
    let esc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.!~*'()[]/:+$".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    let query: Vec<String> = headers
        .iter()
        .map(|(n, v)| format!("{}={}", esc(n), esc(v)))
        .collect();
    let sep = if target.contains('?') { '&' } else { '?' };
    format!("{target}{sep}{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::with_uri_headers;

    #[test]
    fn uri_headers_are_escaped() {
        assert_eq!(
            with_uri_headers(
                "sip:vip@q",
                &[("X-Concierge-Tier".into(), "gold & more".into())]
            ),
            "sip:vip@q?X-Concierge-Tier=gold%20%26%20more"
        );
        assert_eq!(with_uri_headers("sip:vip@q", &[]), "sip:vip@q");
    }
}
