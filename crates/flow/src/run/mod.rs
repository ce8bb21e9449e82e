//! The interpreter: one [`Run`] per call.

// HTTP bodies and caller values reach this module: no slice or index that can panic.
#![deny(clippy::string_slice, clippy::indexing_slicing)]
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::env::Environment;
use crate::model::{Flow, Node};
use crate::template::Escape;

mod action;
mod event;
mod render;

pub use action::{Action, CollectSpec, HttpRequest};
pub use event::{
    Event, HttpFailure, HttpResponse, HttpStep, HttpStepOutcome, Step, TransferOutcome,
};

/// A call's variables: strings by name (`system.caller`, `isVIPCustomer`, …).
pub type Vars = BTreeMap<String, String>;

const MAX_STEPS: usize = 1000;

/// The wall time in Unix seconds, set by the call layer ([`Run::set_clock`]).
pub(crate) const NOW: &str = "system.now";

/// One call's walk through a [`Flow`]: where it is, its variables, what it has done.
///
/// The call layer owns one per call: [`Run::start`] when the call arrives, then
/// [`Run::handle`] with each outcome until [`Action::Done`]; the accessors feed logs and the
/// call record. It performs no IO and reads no clock, environment or file.
pub struct Run {
    flow: Arc<Flow>,
    vars: Vars,
    current: Option<String>,
    attempts: u32,
    steps: usize,
    trace: Vec<Step>,
    http: Vec<HttpStep>,
    env: Environment,
    /// A hangup node with a prompt plays it first.
    hanging_up: bool,
    /// Lockout groups in which this call failed an attempt, not yet taken by the caller.
    failed_attempts: Vec<String>,
    /// How the lookup cache took part in the HTTP result about to be handled.
    cache_use: Option<crate::CacheUse>,
}

impl Run {
    /// Starts `flow` for one call and returns the run with its first action.
    ///
    /// The call layer calls it once per call, when the call arrives (`concierge simulate`
    /// when it starts). `vars` are the call's `system.*` variables; `env` resolves every
    /// `${NAME}` the flow reads — the binary passes its process environment, tests pass
    /// fixed pairs. Nodes that need nothing from outside (conditions, sets) run at once,
    /// so the action returned is the first one the caller must carry out.
    pub fn start(flow: Arc<Flow>, vars: Vars, env: Environment) -> (Self, Action) {
        let start = flow.start.clone();
        let mut run = Self {
            flow,
            vars,
            current: None,
            attempts: 0,
            steps: 0,
            trace: Vec::new(),
            http: Vec::new(),
            env,
            hanging_up: false,
            failed_attempts: Vec::new(),
            cache_use: None,
        };
        let action = run.enter(start);
        (run, action)
    }

    /// The call's variables as they stand, secrets in clear: for the interpreter's
    /// callers' decisions, never for logs (use [`Self::vars_redacted`]).
    pub fn vars(&self) -> &Vars {
        &self.vars
    }

    /// The variables with secret ones replaced by `***`.
    pub fn vars_redacted(&self) -> Vars {
        self.vars
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if self.flow.secrets.contains(k) {
                        "***".into()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect()
    }

    /// Whether `name` holds a secret (a `secret = true` keypad's `save_as`).
    pub fn is_secret(&self, name: &str) -> bool {
        self.flow.secrets.iter().any(|s| s == name)
    }

    /// The lockout groups in which the call failed an attempt since the last call (a
    /// condition with `lockout` took its `default` exit). The call layer counts them
    /// across calls; the interpreter only reports them.
    pub fn take_failed_attempts(&mut self) -> Vec<String> {
        std::mem::take(&mut self.failed_attempts)
    }

    /// The flow this run follows (its name and version go into the call record).
    pub fn flow(&self) -> &Arc<Flow> {
        &self.flow
    }

    /// Tells the run how the lookup cache took part in the next [`Event::HttpResult`]
    /// (a hit answered it, a miss let it through, a stale answer stood in for a failure).
    pub fn note_cache(&mut self, used: Option<crate::CacheUse>) {
        self.cache_use = used;
    }

    /// Sets `system.now`, the wall time in Unix seconds, which `WithinSchedule` judges.
    /// The call layer calls it before every event: the interpreter reads no clock.
    pub fn set_clock(&mut self, unix_s: i64) {
        self.vars.insert(NOW.into(), unix_s.to_string());
    }

    /// The nodes visited so far, in order, with the exit each took (the call record's
    /// `path`).
    pub fn trace(&self) -> &[Step] {
        &self.trace
    }

    /// Every HTTP exchange so far, retries included, in order (the call record's `http`).
    pub fn http_steps(&self) -> &[HttpStep] {
        &self.http
    }

    /// While the run waits at a transfer node (it asked for [`Action::Transfer`] and has
    /// not had the result): what the desk's call widget shows about this call. The call
    /// layer reads it when it carries out the transfer; `None` at any other node.
    pub fn transfer_context(&self) -> Option<crate::TransferContext> {
        self.flow
            .transfer_context(self.current.as_deref()?, &self.vars)
    }

    /// The node waiting for an outcome; `None` once the run is over.
    pub fn current_node(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// Reports the outcome of the last action and returns the next one.
    ///
    /// The call layer calls it once per outcome (after [`Self::set_clock`]). The run follows
    /// the node's exit and runs on through nodes that need nothing from outside, so the
    /// action returned is always one to carry out. An event the current node did not ask
    /// for repeats its action, except at an `http` node, which answers [`Action::Done`] and
    /// keeps waiting for its result; [`Event::HungUp`], or any event after the end, returns
    /// [`Action::Done`].
    pub fn handle(&mut self, event: Event) -> Action {
        let Some(id) = self.current.clone() else {
            return Action::Done;
        };
        if event == Event::HungUp {
            self.leave(None);
            return Action::Done;
        }
        let flow = self.flow.clone();
        let Some(node) = flow.nodes.get(&id) else {
            return Action::Done;
        };
        match (node, event) {
            (Node::Play { next, .. }, Event::PromptFinished) => self.follow("next", next),
            (Node::Hangup { .. }, Event::PromptFinished) if self.hanging_up => {
                self.leave(None);
                Action::Hangup {
                    prompt: None,
                    reason: format!("flow ended at {id}"),
                }
            }
            (
                Node::Keypad {
                    save_as,
                    min,
                    max,
                    done,
                    invalid,
                    ..
                },
                Event::Digits(d),
            ) => {
                let n = d.chars().count() as u32;
                if (*min..=*max).contains(&n) {
                    self.vars.insert(save_as.clone(), d);
                    self.attempts = 0;
                    self.follow("done", done)
                } else {
                    self.retry_keypad(node, "invalid", invalid)
                }
            }
            (Node::Keypad { no_input, .. }, Event::InputTimeout) => {
                self.retry_keypad(node, "no_input", no_input)
            }
            (
                Node::Keypad {
                    locked: Some(locked),
                    ..
                },
                Event::Locked,
            ) => {
                self.attempts = 0;
                self.follow("locked", locked)
            }
            (Node::Http { .. }, Event::HttpResult(result)) => self.http_result(&id, node, result),
            (Node::Transfer { failed, .. }, Event::TransferResult(outcome)) => match outcome {
                TransferOutcome::Succeeded => {
                    self.leave(Some("transferred"));
                    Action::Done
                }
                TransferOutcome::Failed(why) => match failed {
                    Some(f) => self.follow("failed", f),
                    None => {
                        self.leave(Some("failed"));
                        Action::Hangup {
                            prompt: Some("goodbye".into()),
                            reason: format!("transfer failed: {why}"),
                        }
                    }
                },
            },
            // An event the node did not ask for (a late prompt end, say): keep waiting.
            (_, other) => {
                tracing::debug!(node = %id, event = ?other, "event ignored by the current node");
                self.repeat_action(node)
            }
        }
    }

    fn retry_keypad(&mut self, node: &Node, exit: &str, target: &str) -> Action {
        let Node::Keypad { retries, .. } = node else {
            return Action::Done;
        };
        if self.attempts < *retries {
            self.attempts += 1;
            return self.collect_action(node, true);
        }
        self.attempts = 0;
        self.follow(exit, target)
    }

    fn http_result(
        &mut self,
        id: &str,
        node: &Node,
        result: Result<HttpResponse, HttpFailure>,
    ) -> Action {
        let Node::Http {
            json_path,
            save_as,
            save,
            retries,
            success,
            failure,
            ..
        } = node
        else {
            return Action::Done;
        };
        let (status, latency) = match &result {
            Ok(r) => (Some(r.status), r.latency),
            Err(_) => (None, Duration::ZERO),
        };
        let (outcome, found) = match result {
            Ok(r) if (200..300).contains(&r.status) => {
                let found = match r.shared {
                    // A shared cache's answer carries the values already found, and no body.
                    Some(shared) if json_path.is_some() && shared.value.is_none() => {
                        Err("JSON path not found".to_string())
                    }
                    Some(shared) => Ok(Extracted {
                        value: shared.value.filter(|_| save_as.is_some()),
                        saved: shared.saved,
                    }),
                    None => extract(&r.body, save_as.is_some(), json_path.as_ref(), save),
                };
                match found {
                    Ok(found) => {
                        let outcome = match (&found.value, save_as) {
                            (Some(_), Some(name)) if self.is_secret(name) => {
                                HttpStepOutcome::SecretValue
                            }
                            (Some(v), _) => HttpStepOutcome::Value(v.clone()),
                            // Only `save`: its values are in the record's variables
                            // (redacted there).
                            (None, _) => HttpStepOutcome::Saved(
                                found.saved.iter().map(|(k, _)| k.clone()).collect(),
                            ),
                        };
                        (outcome, Some(found))
                    }
                    Err(why) => (HttpStepOutcome::BadBody(why), None),
                }
            }
            Ok(r) => (HttpStepOutcome::Status(r.status), None),
            Err(HttpFailure::Connect(e)) => (HttpStepOutcome::Connect(e), None),
            Err(HttpFailure::Timeout) => (HttpStepOutcome::Timeout, None),
            Err(HttpFailure::Other(e)) => (HttpStepOutcome::Other(e), None),
        };
        self.http.push(HttpStep {
            node: id.to_owned(),
            status,
            outcome,
            latency,
            cache: self.cache_use.take(),
        });
        match found {
            Some(Extracted { value, saved }) => {
                if let (Some(name), Some(value)) = (save_as, value) {
                    self.vars.insert(name.clone(), value);
                }
                self.vars.extend(saved);
                self.attempts = 0;
                self.follow("success", success)
            }
            None => {
                // Retry what may pass next time: no answer, or a server error.
                let transient = status.is_none_or(|s| s >= 500);
                if transient && self.attempts < *retries {
                    self.attempts += 1;
                    return self.http_action(id, node);
                }
                self.attempts = 0;
                if let Some(why) = self.http.last().map(|h| &h.outcome) {
                    tracing::info!(node = %id, %why, "HTTP request failed");
                }
                self.follow("failure", failure)
            }
        }
    }

    /// Takes `exit` to `target` and runs on until a node needs the outside world.
    fn follow(&mut self, exit: &str, target: &str) -> Action {
        self.leave(Some(exit));
        self.enter(target.to_owned())
    }

    fn leave(&mut self, exit: Option<&str>) {
        if let Some(id) = self.current.take() {
            self.trace.push(Step {
                node: id,
                exit: exit.map(str::to_owned),
            });
        }
    }

    fn enter(&mut self, mut id: String) -> Action {
        let flow = self.flow.clone();
        loop {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return Action::Hangup {
                    prompt: None,
                    reason: format!("flow ran {MAX_STEPS} steps without ending"),
                };
            }
            let Some(node) = flow.nodes.get(&id) else {
                // Validation rules this out; a flow is never run unvalidated.
                return Action::Hangup {
                    prompt: None,
                    reason: format!("no node {id:?}"),
                };
            };
            self.current = Some(id.clone());
            self.attempts = 0;
            match node {
                Node::Condition {
                    variable,
                    cases,
                    default,
                    case_sensitive,
                    lockout,
                } => {
                    let value = self.vars.get(variable).cloned().unwrap_or_default();
                    let secret = self.is_secret(variable);
                    let env = self.env.lookup();
                    // A secret is tested against every case, each in constant time, so
                    // neither the comparison nor how many cases ran tells the value.
                    let mut hit = None;
                    for (i, c) in cases.iter().enumerate() {
                        let right = c.value.render(&self.vars, env, Escape::None);
                        let to = c.to.render(&self.vars, env, Escape::None);
                        let m = if c.operator == crate::Operator::WithinSchedule {
                            let at = value.trim().parse::<i64>().ok();
                            flow.schedules
                                .get(right.trim())
                                .zip(at)
                                .is_some_and(|(s, at)| s.contains(at))
                        } else {
                            c.operator.test(
                                &value,
                                &right,
                                &to,
                                *case_sensitive,
                                c.regex.as_ref(),
                                secret,
                            )
                        };
                        if m && hit.is_none() {
                            hit = Some(i);
                            if !secret {
                                break;
                            }
                        }
                    }
                    let (exit, next) = match hit {
                        Some(i) => (
                            format!("case {}", i + 1),
                            cases
                                .get(i)
                                .map_or_else(|| default.clone(), |c| c.exit.clone()),
                        ),
                        None => {
                            if let Some(g) = lockout {
                                self.failed_attempts.push(g.clone());
                            }
                            ("default".to_owned(), default.clone())
                        }
                    };
                    self.leave(Some(&exit));
                    id = next;
                }
                Node::Set { values, next } => {
                    for (k, t) in values {
                        let v = t.render(&self.vars, self.env.lookup(), Escape::None);
                        self.vars.insert(k.clone(), v);
                    }
                    self.leave(Some("next"));
                    id = next.clone();
                }
                _ => return self.first_action(&id, node),
            }
        }
    }
}

/// What a 2xx answer gave an `http` node.
pub(crate) struct Extracted {
    /// For `save_as`: the JSON path's first match, or the trimmed body.
    pub(crate) value: Option<String>,
    /// For `save`: `(variable, value)`, empty where the path matched nothing or `null`.
    pub(crate) saved: Vec<(String, String)>,
}

/// The values to save from a 2xx body. The body must be JSON when any path is asked for;
/// `json_path` must match (it decides success), a `save` path need not.
pub(crate) fn extract(
    body: &[u8],
    wants_value: bool,
    path: Option<&serde_json_path::JsonPath>,
    save: &[(String, serde_json_path::JsonPath)],
) -> Result<Extracted, String> {
    if path.is_none() && save.is_empty() {
        return Ok(Extracted {
            value: wants_value.then(|| String::from_utf8_lossy(body).trim().to_owned()),
            saved: Vec::new(),
        });
    }
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let first = |path: &serde_json_path::JsonPath| path.query(&json).first().cloned();
    let value = match path {
        Some(p) => Some(
            match first(p).ok_or_else(|| "JSON path not found".to_string())? {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            },
        ),
        None if wants_value => Some(String::from_utf8_lossy(body).trim().to_owned()),
        None => None,
    };
    let saved = save
        .iter()
        .map(|(name, p)| {
            (
                name.clone(),
                first(p).as_ref().map(text).unwrap_or_default(),
            )
        })
        .collect();
    Ok(Extracted { value, saved })
}

/// A JSON value as a `save` variable: a string as it is, `null` as nothing (a customer
/// without a tier), anything else as JSON text (`true`, `42`, `{"a":1}`).
fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}
