//! Running a call's flow: the interpreter's actions turned into SIP and media work, and
//! what happens on the call turned back into interpreter events.

use std::sync::Arc;

use concierge_flow::{Action, Event, Run, TransferMode, Vars};
use concierge_prompts::Prompt;
use concierge_sip::wire::StatusCode;
use tracing::{info, warn};

use super::{Call, Cx, FlowState, Waiting};
use crate::record::{EndedBy, TransferFailure, TransferRecord, TransferResult};
use crate::transfer::TransferOutcome;
use crate::trunks::TrunkRoute;

impl Call {
    /// Starts the flow for the called number before the call is answered: an HTTP lookup
    /// runs while the caller hears ringing, and a redirect can still answer 302. Returns
    /// whether a flow handles the call.
    pub(super) fn start_flow(&mut self, cx: &mut Cx<'_>) -> bool {
        let program = cx.program.clone();
        let called = self.inbound.invite.uri.user().unwrap_or_default();
        let Some(flow) = program.flow_for(called) else {
            return false;
        };
        // Who is calling was settled when the INVITE arrived: PAI only from a trusted
        // peer, From claimed otherwise.
        let identity = &self.identity;
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
        vars.insert("system.called".into(), called.to_owned());
        vars.insert(
            "system.call_id".into(),
            self.inbound.invite.call_id.as_str().to_owned(),
        );
        vars.insert(
            "system.local_host".into(),
            format!("{}:{}", cx.cfg.advertised_host, cx.cfg.sip_port),
        );
        vars.insert("system.now".into(), cx.unix_s().to_string());
        vars.insert("system.directory_url".into(), cx.cfg.directory_url.clone());
        info!(
            flow = %flow.name,
            caller = %identity.for_log(),
            verified = identity.verified,
            verstat = identity.verstat.as_deref().unwrap_or("-"),
            "flow started"
        );
        // Asked now, the store's lockout answer comes while the phone rings.
        let store = self.ask_store(cx, &flow);
        let (run, action) = Run::start(flow, vars, program.env.clone());
        self.flow = Some(Box::new(FlowState {
            run,
            waiting: Waiting::Nothing,
            deferred: None,
            program,
            comfort: None,
            in_flight: None,
            told: 0,
            store,
        }));
        self.step(cx, action);
        true
    }

    /// Carries out `action` and every action that follows at once from it.
    pub(super) fn step(&mut self, cx: &mut Cx<'_>, mut action: Action) {
        // The interpreter bounds its own steps; this bounds immediate event ping-pong.
        for _ in 0..64 {
            // The nodes the run just entered, before what the last of them asks is done.
            self.tell_nodes_entered(cx);
            self.count_failed_attempts(cx);
            let Some(event) = self.execute(cx, action) else {
                return;
            };
            if self.finished {
                return;
            }
            let Some(flow) = self.flow.as_mut() else {
                return;
            };
            flow.run.set_clock(cx.unix_s());
            action = flow.run.handle(event);
        }
        self.tell_nodes_entered(cx);
        warn!("flow kept producing immediate events; hanging up");
        self.hang_up(cx, "flow loop");
    }

    /// Hands the flow `event` and carries out what it answers.
    pub(super) fn feed(&mut self, cx: &mut Cx<'_>, event: Event) {
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        flow.run.set_clock(cx.unix_s());
        let action = flow.run.handle(event);
        self.step(cx, action);
    }

    /// Performs one action; returns an event when its outcome is known at once.
    fn execute(&mut self, cx: &mut Cx<'_>, action: Action) -> Option<Event> {
        // In early media only prompts play before the 200; keypad input and transfers
        // answer first (digits and REFER need a confirmed call, RFC 3515 §2.4.2).
        let early = self.caller.state.is_early();
        let media_ready = self.media.is_started() && (!early || plays_early(&action));
        if needs_media(&action, early) && !media_ready {
            // Answer now; the action runs once the ACK brings the media up.
            self.flow.as_mut()?.deferred = Some(action);
            if early {
                self.answer(cx);
            }
            return None;
        }
        match action {
            Action::Play {
                prompts,
                interruptible,
            } => {
                let found = self.prompts(cx, &prompts);
                // A key typed ahead skips an interruptible prompt altogether.
                if found.is_empty() || (interruptible && !self.media.pending.is_empty()) {
                    return Some(Event::PromptFinished);
                }
                self.media.play(found);
                self.flow.as_mut()?.waiting = if interruptible {
                    Waiting::BargeIn
                } else {
                    Waiting::Prompt
                };
                None
            }
            Action::CollectDigits(spec) => self.collect(cx, spec),
            Action::Http(request) => self.start_http(cx, request),
            Action::Transfer {
                target,
                headers,
                mode,
                prompt: Some(p),
                redact,
                trunk,
            } => {
                let then = Action::Transfer {
                    target,
                    headers,
                    mode,
                    prompt: None,
                    redact,
                    trunk,
                };
                self.play_then(cx, p, then)
            }
            Action::Transfer {
                target,
                headers,
                mode,
                prompt: None,
                redact,
                trunk,
            } => {
                self.flow.as_mut()?.waiting = Waiting::Transfer;
                self.notes.redact_target |= redact;
                let via = match trunk {
                    None => None,
                    Some(name) => match cx.trunks.route(&name) {
                        Some(route) => Some(route),
                        None => return self.no_such_trunk(cx, target, mode, name),
                    },
                };
                self.flow_transfer(cx, target, headers, mode, via)
            }
            Action::Hangup {
                prompt: Some(p),
                reason,
            } => {
                let then = Action::Hangup {
                    prompt: None,
                    reason,
                };
                self.play_then(cx, p, then)
            }
            Action::Hangup {
                prompt: None,
                reason,
            } => {
                self.flow.as_mut()?.waiting = Waiting::Done;
                if early {
                    self.answer_invite(cx, StatusCode::TEMPORARILY_UNAVAILABLE);
                    self.end(cx, EndedBy::Concierge, &reason);
                } else {
                    self.hang_up(cx, &reason);
                }
                None
            }
            Action::Done => {
                self.flow.as_mut()?.waiting = Waiting::Done;
                None
            }
        }
    }

    /// Plays `prompt`, then carries out `then` (a transfer or hangup with a prompt). A
    /// prompt the catalogue does not have was logged: `then` goes ahead at once.
    fn play_then(&mut self, cx: &mut Cx<'_>, prompt: String, then: Action) -> Option<Event> {
        self.flow.as_mut()?.waiting = Waiting::PromptThen(Box::new(then));
        let found = self.prompts(cx, &[prompt]);
        self.media.play(found);
        if self.media.is_playing() {
            return None;
        }
        let flow = self.flow.as_mut()?;
        if let Waiting::PromptThen(next) = std::mem::replace(&mut flow.waiting, Waiting::Nothing) {
            self.step(cx, *next);
        }
        None
    }

    /// A transfer the flow asked for (its prompt, if any, played), through trunk `via`
    /// when it names one: a target at `trunk:NAME` is then called at the trunk's domain.
    fn flow_transfer(
        &mut self,
        cx: &mut Cx<'_>,
        target: String,
        mut headers: Vec<(String, String)>,
        mode: TransferMode,
        via: Option<TrunkRoute>,
    ) -> Option<Event> {
        self.notes.transfer_started.get_or_insert(cx.now);
        if let (Some(signer), false) = (&cx.cfg.transfer_signer, headers.is_empty()) {
            // The context rides through the caller's phone (REFER, 302): sign it.
            let identity = &self.identity;
            let caller = if identity.private || identity.number.is_empty() {
                "anonymous"
            } else {
                identity.number.as_str()
            };
            let unix_s = cx.wall.unix_ms(cx.now) / 1000;
            signer.sign(
                &mut headers,
                self.inbound.invite.call_id.as_str(),
                caller,
                unix_s,
            );
        }
        let dialled = via.as_ref().map(|v| v.dial(&target));
        let uri = with_uri_headers(dialled.as_deref().unwrap_or(&target), &headers);
        match mode {
            TransferMode::Redirect if self.caller.state.is_early() => {
                let flow = self.flow.as_mut()?;
                let done = flow
                    .run
                    .handle(Event::TransferResult(TransferOutcome::Succeeded));
                debug_assert_eq!(done, Action::Done);
                flow.waiting = Waiting::Done;
                self.redirect(cx, &uri);
            }
            TransferMode::Bridge => self.start_bridge(cx, &target, headers, None, via),
            TransferMode::ReferOrBridge => self.start_refer(cx, &uri, Some((target, headers))),
            // refer, or a redirect asked too late to be one.
            _ => self.start_refer(cx, &uri, None),
        }
        None
    }

    /// A transfer through trunk `name`, which no longer runs: the transfer fails (the
    /// flow takes its `failed` exit).
    fn no_such_trunk(
        &mut self,
        cx: &mut Cx<'_>,
        target: String,
        mode: TransferMode,
        name: String,
    ) -> Option<Event> {
        let why = TransferFailure::NoTrunk(name);
        warn!(%why, "transfer not made");
        self.notes.transfer = Some(TransferRecord {
            mode,
            target,
            result: TransferResult::Failed(why.clone()),
            started_ms: None,
            relayed: None,
        });
        self.flow_transfer_result(cx, Err(&why));
        None
    }

    /// The prompts named, from the program the call's flow started with.
    pub(super) fn prompts(&self, cx: &Cx<'_>, names: &[String]) -> Vec<Arc<Prompt>> {
        let program = self.flow.as_ref().map_or(cx.program, |f| &f.program);
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
    pub(super) fn media_ready(&mut self, cx: &mut Cx<'_>) {
        self.comfort_media_ready(cx);
        let Some(action) = self.flow.as_mut().and_then(|f| f.deferred.take()) else {
            return;
        };
        self.step(cx, action);
    }

    /// The playlist ran out.
    pub(crate) fn prompt_finished(&mut self, cx: &mut Cx<'_>) {
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        match std::mem::replace(&mut flow.waiting, Waiting::Nothing) {
            Waiting::Prompt | Waiting::BargeIn => {
                let action = flow.run.handle(Event::PromptFinished);
                self.step(cx, action);
            }
            Waiting::Http => {
                flow.waiting = Waiting::Http;
                self.comfort_loop(cx);
            }
            Waiting::Collect(mut c) => {
                c.prompt_finished(cx.now);
                flow.waiting = Waiting::Collect(c);
            }
            Waiting::PromptThen(next) => self.step(cx, *next),
            other => flow.waiting = other,
        }
    }

    /// How the transfer the flow asked for ended; the flow decides what comes next.
    pub(super) fn flow_transfer_result(
        &mut self,
        cx: &mut Cx<'_>,
        outcome: Result<(), &TransferFailure>,
    ) {
        let Some(flow) = self.flow.as_mut() else {
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
        self.feed(cx, Event::TransferResult(outcome));
    }

    /// The caller went away: the flow records where it was.
    pub(super) fn flow_hung_up(&mut self) {
        if let Some(flow) = self.flow.as_mut() {
            flow.run.handle(Event::HungUp);
            flow.waiting = Waiting::Done;
        }
    }
}

/// Whether `action` needs the call's media (answering it first when it rings).
fn needs_media(action: &Action, early: bool) -> bool {
    match action {
        Action::Play { .. } | Action::CollectDigits(_) => true,
        Action::Transfer {
            prompt: Some(_), ..
        }
        | Action::Hangup {
            prompt: Some(_), ..
        } => true,
        Action::Transfer { mode, .. } => *mode != TransferMode::Redirect || !early,
        _ => false,
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
