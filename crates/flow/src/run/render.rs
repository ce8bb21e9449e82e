//! The action a waiting node asks for, its templates rendered with the call's variables
//! and environment.

// HTTP bodies and caller values reach this module: no slice or index that can panic.
#![deny(clippy::string_slice, clippy::indexing_slicing)]
use super::{Action, CollectSpec, HttpRequest, Run};
use crate::model::Node;
use crate::template::Escape;

impl Run {
    pub(super) fn first_action(&mut self, id: &str, node: &Node) -> Action {
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
                trunk,
                ..
            } => Action::Transfer {
                trunk: trunk.clone(),
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
    pub(super) fn expand(&self, prompts: &[String]) -> Vec<String> {
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
    pub(super) fn sensitive<'a>(
        &self,
        mut templates: impl Iterator<Item = &'a crate::Template>,
    ) -> bool {
        templates.any(|t| t.has_env() || t.variables().any(|v| self.is_secret(v)))
    }

    pub(super) fn repeat_action(&mut self, node: &Node) -> Action {
        let id = self.current.clone().unwrap_or_default();
        match node {
            Node::Http { .. } => Action::Done,
            _ => self.first_action(&id, node),
        }
    }

    pub(super) fn collect_action(&self, node: &Node, retry: bool) -> Action {
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

    pub(super) fn http_action(&self, id: &str, node: &Node) -> Action {
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
            json_path,
            save_as,
            save,
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
        // What leaves the process for a shared cache: nothing built from or saved into a
        // secret (a hash of a six-digit code is no protection).
        let private = self.sensitive(std::iter::once(url).chain(body.as_ref()))
            || save_as
                .iter()
                .chain(save.iter().map(|(name, _)| name))
                .any(|name| self.is_secret(name));
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
        let share = cache_key
            .as_deref()
            .filter(|_| !private)
            .map(|k| crate::ShareSpec::new(k, json_path.as_ref(), save_as.is_some(), save));
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
            share,
            comfort: comfort.clone(),
            auth: auth.clone(),
        }))
    }
}
