//! The interpreter: one [`Run`] per call.

// HTTP bodies and caller values reach this module: no slice or index that can panic.
#![deny(clippy::string_slice, clippy::indexing_slicing)]
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::env::Environment;
use crate::model::{Flow, Node, TransferMode};
use crate::template::Escape;

/// A call's variables: strings by name (`system.caller`, `isVIPCustomer`, …).
pub type Vars = BTreeMap<String, String>;

/// What the caller of the interpreter must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Play {
        prompts: Vec<String>,
        /// A key stops the prompts; it stays for the next keypad (barge-in).
        interruptible: bool,
    },
    CollectDigits(CollectSpec),
    /// Boxed: a request is by far the largest action.
    Http(Box<HttpRequest>),
    Transfer {
        target: String,
        headers: Vec<(String, String)>,
        mode: TransferMode,
        prompt: Option<String>,
        /// The target or a header was rendered from a secret variable or `${ENV}`: logs
        /// and records must not show them.
        redact: bool,
    },
    Hangup {
        prompt: Option<String>,
        reason: String,
    },
    /// The flow has ended; nothing more will be asked.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectSpec {
    /// Played first; a key press stops it (barge-in).
    pub prompts: Vec<String>,
    pub min: u32,
    pub max: u32,
    pub first_digit_timeout: Duration,
    pub inter_digit_timeout: Duration,
    pub terminator: Option<char>,
    /// The digits are a secret (`secret = true`): never shown in logs, records or output.
    pub secret: bool,
    /// The keypad's lockout group: while it is locked for this caller, answer
    /// [`Event::Locked`] instead of collecting.
    pub lockout: Option<String>,
}

/// An HTTP request to perform. Header values may hold secrets from the environment, so
/// `Debug` does not print them.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub node: String,
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub timeout: Duration,
    /// Wait this long before sending (retry backoff).
    pub delay: Duration,
    /// The URL was rendered from a secret variable or `${ENV}`: logs and output show
    /// `<redacted>` for it. (Header values and the body are never shown.)
    pub redact: bool,
    /// The node caches its answers ([`crate::LookupCache`]).
    pub cache: Option<crate::CacheSpec>,
    /// The cache key: method, URL, body and the headers not rendered from a secret or
    /// `${ENV}` (a token that changes must not empty the cache). Never shown.
    pub cache_key: Option<String>,
    /// Audio for the caller while the request is in flight.
    pub comfort: Option<crate::ComfortSpec>,
    /// The request carries a bearer token from this `[auth.<name>]` block.
    pub auth: Option<Arc<crate::AuthSpec>>,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("node", &self.node)
            .field("method", &self.method)
            .field("url", &self.url_for_log())
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .field("cache", &self.cache.is_some())
            .field("auth", &self.auth.as_ref().map(|a| a.name.as_str()))
            .finish()
    }
}

impl HttpRequest {
    /// The URL as logs may show it.
    pub fn url_for_log(&self) -> &str {
        if self.redact {
            "<redacted>"
        } else {
            &self.url
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
    pub latency: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpFailure {
    Connect(String),
    Timeout,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferOutcome {
    Succeeded,
    Failed(String),
}

/// What happened since the last action. `Debug` shows how many digits, never which.
#[derive(Clone, PartialEq, Eq)]
pub enum Event {
    PromptFinished,
    /// Digits collected for [`Action::CollectDigits`], terminator removed.
    Digits(String),
    InputTimeout,
    /// The keypad's lockout group is locked for this caller: no digits were collected.
    Locked,
    HttpResult(Result<HttpResponse, HttpFailure>),
    TransferResult(TransferOutcome),
    HungUp,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PromptFinished => f.write_str("PromptFinished"),
            Self::Digits(d) => write!(f, "Digits({} keys)", d.chars().count()),
            Self::InputTimeout => f.write_str("InputTimeout"),
            Self::Locked => f.write_str("Locked"),
            Self::HttpResult(r) => f.debug_tuple("HttpResult").field(r).finish(),
            Self::TransferResult(t) => f.debug_tuple("TransferResult").field(t).finish(),
            Self::HungUp => f.write_str("HungUp"),
        }
    }
}

/// One node visited, with the exit it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub node: String,
    pub exit: Option<String>,
}

/// One HTTP exchange, for the call record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpStep {
    pub node: String,
    pub status: Option<u16>,
    pub outcome: String,
    pub latency: Duration,
    /// `hit`, `miss` or `stale` when the node caches.
    pub cache: Option<&'static str>,
}

const MAX_STEPS: usize = 1000;

/// The wall time in Unix seconds, set by the call layer ([`Run::set_clock`]).
pub(crate) const NOW: &str = "system.now";

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

    pub fn trace(&self) -> &[Step] {
        &self.trace
    }

    pub fn http_steps(&self) -> &[HttpStep] {
        &self.http
    }

    pub fn current_node(&self) -> Option<&str> {
        self.current.as_deref()
    }

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
        let outcome: Result<String, String> = match result {
            Ok(r) if (200..300).contains(&r.status) => extract(&r.body, json_path.as_ref()),
            Ok(r) => Err(format!("HTTP {}", r.status)),
            Err(HttpFailure::Connect(e)) => Err(format!("connect: {e}")),
            Err(HttpFailure::Timeout) => Err("timeout".into()),
            Err(HttpFailure::Other(e)) => Err(e),
        };
        let secret = self.is_secret(save_as);
        self.http.push(HttpStep {
            node: id.to_owned(),
            status,
            outcome: match &outcome {
                Ok(_) if secret => "ok: ***".into(),
                Ok(v) => format!("ok: {v}"),
                Err(e) => e.clone(),
            },
            latency,
            cache: self.cache_use.take().map(crate::CacheUse::as_str),
        });
        match outcome {
            Ok(value) => {
                self.vars.insert(save_as.clone(), value);
                self.attempts = 0;
                self.follow("success", success)
            }
            Err(why) => {
                // Retry what may pass next time: no answer, or a server error.
                let transient = status.is_none_or(|s| s >= 500);
                if transient && self.attempts < *retries {
                    self.attempts += 1;
                    return self.http_action(id, node);
                }
                self.attempts = 0;
                tracing::info!(node = %id, %why, "HTTP request failed");
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

    fn first_action(&mut self, id: &str, node: &Node) -> Action {
        match node {
            Node::Play {
                prompts,
                interruptible,
                ..
            } => Action::Play {
                prompts: self.expand(prompts),
                interruptible: *interruptible,
            },
            Node::Keypad { .. } => self.collect_action(node, false),
            Node::Http { .. } => self.http_action(id, node),
            Node::Transfer {
                target,
                headers,
                mode,
                prompt,
                ..
            } => Action::Transfer {
                redact: self
                    .sensitive(std::iter::once(target).chain(headers.iter().map(|(_, t)| t))),
                target: target.render(&self.vars, self.env.lookup(), Escape::None),
                headers: headers
                    .iter()
                    .map(|(n, t)| {
                        (
                            n.clone(),
                            t.render(&self.vars, self.env.lookup(), Escape::None),
                        )
                    })
                    .collect(),
                mode: *mode,
                prompt: prompt.clone(),
            },
            Node::Hangup { prompt: Some(p) } => {
                self.hanging_up = true;
                Action::Play {
                    prompts: vec![p.clone()],
                    interruptible: false,
                }
            }
            Node::Hangup { prompt: None } => {
                self.leave(None);
                Action::Hangup {
                    prompt: None,
                    reason: format!("flow ended at {id}"),
                }
            }
            Node::Condition { .. } | Node::Set { .. } => Action::Done,
        }
    }

    /// Expands `spell:{var}` entries into one digit prompt per key of the value.
    fn expand(&self, prompts: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for p in prompts {
            let Some(t) = p.strip_prefix("spell:") else {
                out.push(p.clone());
                continue;
            };
            let Ok(t) = crate::Template::parse(t) else {
                continue;
            };
            for key in t
                .render(&self.vars, self.env.lookup(), Escape::None)
                .chars()
            {
                let name = match key {
                    '0'..='9' => format!("digit_{key}"),
                    '*' => "digit_star".into(),
                    '#' => "digit_pound".into(),
                    'A'..='D' | 'a'..='d' => format!("digit_{}", key.to_ascii_lowercase()),
                    _ => continue,
                };
                out.push(name);
            }
        }
        out
    }

    /// Whether any of `templates` reads a secret variable or the environment.
    fn sensitive<'a>(&self, mut templates: impl Iterator<Item = &'a crate::Template>) -> bool {
        templates.any(|t| t.has_env() || t.variables().any(|v| self.is_secret(v)))
    }

    fn repeat_action(&mut self, node: &Node) -> Action {
        let id = self.current.clone().unwrap_or_default();
        match node {
            Node::Http { .. } => Action::Done,
            _ => self.first_action(&id, node),
        }
    }

    fn collect_action(&self, node: &Node, retry: bool) -> Action {
        let Node::Keypad {
            prompt,
            min,
            max,
            first_digit_timeout,
            inter_digit_timeout,
            terminator,
            retry_prompt,
            secret,
            lockout,
            ..
        } = node
        else {
            return Action::Done;
        };
        let mut prompts = Vec::new();
        if retry {
            prompts.extend(retry_prompt.clone());
        }
        prompts.push(prompt.clone());
        Action::CollectDigits(CollectSpec {
            prompts,
            min: *min,
            max: *max,
            first_digit_timeout: *first_digit_timeout,
            inter_digit_timeout: *inter_digit_timeout,
            terminator: *terminator,
            secret: *secret,
            lockout: lockout.clone(),
        })
    }

    fn http_action(&self, id: &str, node: &Node) -> Action {
        let Node::Http {
            url,
            method,
            headers,
            body,
            content_type,
            timeout,
            backoff,
            cache,
            comfort,
            auth,
            ..
        } = node
        else {
            return Action::Done;
        };
        let escape = match content_type.as_deref() {
            Some(ct) if ct.contains("x-www-form-urlencoded") => Escape::Form,
            _ => Escape::Json,
        };
        let mut hdrs: Vec<(String, String)> = headers
            .iter()
            .map(|(n, t)| {
                (
                    n.clone(),
                    t.render(&self.vars, self.env.lookup(), Escape::None),
                )
            })
            .collect();
        if body.is_some() {
            hdrs.push((
                "Content-Type".into(),
                content_type
                    .clone()
                    .unwrap_or_else(|| "application/json".into()),
            ));
        }
        // Header values and the body are never logged or printed; the URL is.
        let redact = self.sensitive(std::iter::once(url));
        let url = url.render(&self.vars, self.env.lookup(), Escape::Url);
        let body = body
            .as_ref()
            .map(|b| b.render(&self.vars, self.env.lookup(), escape));
        let cache_key = cache.map(|_| {
            let mut key = format!("{method} {url}\n");
            for ((name, t), (_, value)) in headers.iter().zip(&hdrs) {
                if !self.sensitive(std::iter::once(t)) {
                    key.push_str(&format!("{name}: {value}\n"));
                }
            }
            key.push('\n');
            key.push_str(body.as_deref().unwrap_or(""));
            key
        });
        Action::Http(Box::new(HttpRequest {
            redact,
            node: id.to_owned(),
            method: method.clone(),
            url,
            headers: hdrs,
            body,
            timeout: *timeout,
            delay: *backoff * self.attempts,
            cache: *cache,
            cache_key,
            comfort: comfort.clone(),
            auth: auth.clone(),
        }))
    }
}

/// The value to save from a 2xx body: the JSON path's first match, or the trimmed body.
fn extract(body: &[u8], path: Option<&serde_json_path::JsonPath>) -> Result<String, String> {
    let Some(path) = path else {
        return Ok(String::from_utf8_lossy(body).trim().to_owned());
    };
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let found = path
        .query(&json)
        .first()
        .ok_or_else(|| "JSON path not found".to_string())?;
    Ok(match found {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}
