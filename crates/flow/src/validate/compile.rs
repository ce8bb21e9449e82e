//! Compiling a parsed flow file into a [`Flow`]: each node's fields checked and turned into
//! their runtime form (templates, JSON paths, regexes, durations).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json_path::JsonPath;

use super::content_version;
use super::validator::Validator;
use crate::model::{Case, Flow, FlowFile, Node, NodeFile};
use crate::template::{Escape, Template, URL_BASE_VARIABLE};

impl Validator<'_> {
    pub(super) fn compile(&mut self, file: &FlowFile, known: &dyn Fn(&str) -> bool) -> Flow {
        let mut nodes = BTreeMap::new();
        let mut secrets = Vec::new();
        let mut auths = BTreeMap::new();
        for (name, a) in &file.auth {
            match crate::auth::AuthSpec::compile(name, a) {
                Ok(spec) => {
                    auths.insert(name.clone(), Arc::new(spec));
                }
                Err(e) => self.block_error("auth", name, e),
            }
        }
        let mut schedules = BTreeMap::new();
        for (name, f) in &file.schedules {
            match crate::Schedule::compile(f) {
                Ok(s) => {
                    schedules.insert(name.clone(), s);
                }
                Err(e) => self.block_error("schedules", name, e.to_string()),
            }
        }
        for (id, nf) in &file.nodes {
            let node = match nf {
                NodeFile::Http(h) => {
                    let parsed = self.try_template(id, "url", &h.url);
                    let base =
                        BTreeMap::from([(URL_BASE_VARIABLE.to_owned(), "http://base".to_owned())]);
                    if let Some(url) = &parsed {
                        let dummy = url.render(&base, &|_| Some("x".into()), Escape::Url);
                        if !(dummy.starts_with("http://") || dummy.starts_with("https://")) {
                            self.error(
                                id,
                                "url",
                                format!(
                                    "{:?} is not an http:// or https:// URL (or {{{URL_BASE_VARIABLE}}}/…)",
                                    h.url
                                ),
                            );
                        }
                    }
                    let url = parsed
                        .unwrap_or_else(|| Template::parse("").expect("the empty template parses"));
                    let method = h.method.to_ascii_uppercase();
                    if !matches!(method.as_str(), "GET" | "POST" | "PUT") {
                        self.error(id, "method", format!("{:?}: use GET or POST", h.method));
                    }
                    let json_path = h
                        .json_path
                        .as_ref()
                        .and_then(|p| self.json_path(id, "json_path", p));
                    match (&h.save_as, &h.json_path) {
                        (None, Some(_)) => {
                            self.error(id, "json_path", "needs `save_as`, the variable it fills".into())
                        }
                        (None, None) if h.save.is_empty() => self.error(
                            id,
                            "save_as",
                            "nothing is saved: give `save_as` (with or without `json_path`), `save`, or both"
                                .into(),
                        ),
                        _ => {}
                    }
                    let mut save = Vec::new();
                    for (name, p) in &h.save {
                        let field = format!("save.{name}");
                        if !valid_variable(name) {
                            self.error(
                                id,
                                &field,
                                format!("{name:?} is not a variable name (letters, digits, `.`, `_`, `-`; not `system.`)"),
                            );
                        }
                        if h.save_as.as_deref() == Some(name.as_str()) {
                            self.error(id, &field, format!("{name:?} is also `save_as`"));
                        }
                        if let Some(path) = self.json_path(id, &field, p) {
                            save.push((name.clone(), path));
                        }
                    }
                    if let Some(s) = h.save_as.as_deref().filter(|s| s.starts_with("system.")) {
                        self.error(
                            id,
                            "save_as",
                            format!("{s:?}: the server's `system.` variables cannot be saved to"),
                        );
                    }
                    if h.timeout_ms == 0 {
                        self.error(id, "timeout_ms", "must be above 0".into());
                    }
                    let headers = h
                        .headers
                        .iter()
                        .map(|(n, v)| (n.clone(), self.template(id, "headers", v)))
                        .collect();
                    let body = h.body.as_ref().map(|b| self.template(id, "body", b));
                    let cache = h.cache.as_ref().map(|c| {
                        if c.max_entries == 0 || c.max_entries > crate::cache::MAX_ENTRIES_LIMIT {
                            self.error(
                                id,
                                "cache",
                                format!(
                                    "max_entries {} is not within 1..={}",
                                    c.max_entries,
                                    crate::cache::MAX_ENTRIES_LIMIT
                                ),
                            );
                        }
                        if c.ttl_s == 0 && c.negative_ttl_s == 0 && c.stale_if_error_s == 0 {
                            self.error(
                                id,
                                "cache",
                                "every lifetime is 0: nothing would be kept".into(),
                            );
                        }
                        crate::CacheSpec::from_file(c)
                    });
                    let comfort = h.comfort.as_ref().map(|c| {
                        if c.prompt.is_none() && c.hold.is_none() {
                            self.error(id, "comfort", "give a `prompt`, a `hold` or both".into());
                        }
                        for p in c.prompt.iter().chain(&c.hold) {
                            self.prompt(id, "comfort", p, known);
                        }
                        crate::ComfortSpec {
                            after: Duration::from_millis(c.after_ms),
                            prompt: c.prompt.clone(),
                            hold: c.hold.clone(),
                        }
                    });
                    let auth = h.auth.as_ref().and_then(|name| {
                        let found = auths.get(name).cloned();
                        if found.is_none() && !file.auth.contains_key(name) {
                            self.error(id, "auth", format!("no [auth.{name}] block"));
                        }
                        if h.headers
                            .keys()
                            .any(|k| k.eq_ignore_ascii_case("authorization"))
                        {
                            self.error(
                                id,
                                "headers",
                                "an `auth` node sets Authorization itself; remove the header"
                                    .into(),
                            );
                        }
                        found
                    });
                    Node::Http {
                        cache,
                        comfort,
                        auth,
                        url,
                        method,
                        headers,
                        body,
                        content_type: h.content_type.clone(),
                        json_path,
                        save_as: h.save_as.clone(),
                        save,
                        timeout: Duration::from_millis(h.timeout_ms),
                        retries: h.retries,
                        backoff: Duration::from_millis(h.retry_backoff_ms),
                        success: h.success.clone(),
                        failure: h.failure.clone(),
                    }
                }
                NodeFile::Condition(c) => {
                    let mut cases = Vec::new();
                    for (i, cf) in c.cases.iter().enumerate() {
                        let field = format!("cases[{i}]");
                        if cf.operator.needs_value() && cf.value.is_none() {
                            self.error(
                                id,
                                &format!("{field}.value"),
                                format!("{:?} needs a value", cf.operator),
                            );
                        }
                        if cf.operator == crate::Operator::Between && cf.to.is_none() {
                            self.error(
                                id,
                                &format!("{field}.to"),
                                "Between needs `to` (the upper bound)".into(),
                            );
                        }
                        let value = self.template(
                            id,
                            &format!("{field}.value"),
                            cf.value.as_deref().unwrap_or(""),
                        );
                        let to = self.template(
                            id,
                            &format!("{field}.to"),
                            cf.to.as_deref().unwrap_or(""),
                        );
                        let regex = if cf.operator == crate::Operator::Matches {
                            match regex::Regex::new(cf.value.as_deref().unwrap_or("")) {
                                Ok(r) => Some(r),
                                Err(e) => {
                                    self.error(
                                        id,
                                        &format!("{field}.value"),
                                        format!("invalid regex: {e}"),
                                    );
                                    None
                                }
                            }
                        } else {
                            None
                        };
                        cases.push(Case {
                            operator: cf.operator,
                            value,
                            to,
                            regex,
                            exit: cf.exit.clone(),
                        });
                    }
                    Node::Condition {
                        variable: c.variable.clone(),
                        cases,
                        default: c.default.clone(),
                        case_sensitive: c.case_sensitive,
                        lockout: c.lockout.clone(),
                    }
                }
                NodeFile::Keypad(k) => {
                    self.prompt(id, "prompt", &k.prompt, known);
                    if let Some(r) = &k.retry_prompt {
                        self.prompt(id, "retry_prompt", r, known);
                    }
                    if k.max_digits == 0 || k.max_digits > 64 {
                        self.error(
                            id,
                            "max_digits",
                            format!("{} is not within 1..=64", k.max_digits),
                        );
                    }
                    if k.min_digits > k.max_digits {
                        self.error(
                            id,
                            "min_digits",
                            format!("{} is above max_digits {}", k.min_digits, k.max_digits),
                        );
                    }
                    let terminator = match k.terminator.as_deref() {
                        None | Some("") => None,
                        Some(t) if t.len() == 1 && "0123456789*#ABCD".contains(t) => {
                            t.chars().next()
                        }
                        Some(t) => {
                            self.error(id, "terminator", format!("{t:?} is not a keypad key"));
                            None
                        }
                    };
                    if k.secret {
                        secrets.push(k.save_as.clone());
                    }
                    match (&k.lockout, &k.locked) {
                        (Some(_), None) => self.error(
                            id,
                            "locked",
                            "a keypad with `lockout` needs a `locked` exit".into(),
                        ),
                        (None, Some(_)) => self.error(
                            id,
                            "lockout",
                            "a `locked` exit needs a `lockout` group".into(),
                        ),
                        (Some(g), _) if !valid_group(g) => self.error(
                            id,
                            "lockout",
                            format!("{g:?}: a group name is letters, digits, `-` and `_`"),
                        ),
                        _ => {}
                    }
                    Node::Keypad {
                        prompt: k.prompt.clone(),
                        save_as: k.save_as.clone(),
                        min: k.min_digits,
                        max: k.max_digits,
                        first_digit_timeout: Duration::from_millis(k.first_digit_timeout_ms),
                        inter_digit_timeout: Duration::from_millis(k.inter_digit_timeout_ms),
                        terminator,
                        retries: k.retries,
                        retry_prompt: k.retry_prompt.clone(),
                        secret: k.secret,
                        lockout: k.lockout.clone(),
                        locked: k.locked.clone(),
                        done: k.done.clone(),
                        no_input: k.no_input.clone(),
                        invalid: k.invalid.clone(),
                    }
                }
                NodeFile::Play(p) => {
                    if p.prompts.is_empty() {
                        self.error(id, "prompts", "no prompt to play".into());
                    }
                    for name in &p.prompts {
                        match name.strip_prefix("spell:") {
                            // `spell:{var}` reads a variable back key by key (digit_0 …).
                            Some(t) => {
                                self.template(id, "prompts", t);
                            }
                            None => self.prompt(id, "prompts", name, known),
                        }
                    }
                    Node::Play {
                        prompts: p.prompts.clone(),
                        interruptible: p.interruptible,
                        next: p.next.clone(),
                    }
                }
                NodeFile::Set(s) => Node::Set {
                    values: s
                        .values
                        .iter()
                        .map(|(k, v)| (k.clone(), self.template(id, "values", v)))
                        .collect(),
                    next: s.next.clone(),
                },
                NodeFile::Transfer(t) => {
                    if let Some(p) = &t.prompt {
                        self.prompt(id, "prompt", p, known);
                    }
                    let target = self.template(id, "target", &t.target);
                    let dummy =
                        target.render(&BTreeMap::new(), &|_| Some("x".into()), Escape::None);
                    if !(dummy.starts_with("sip:")
                        || dummy.starts_with("sips:")
                        || dummy.starts_with("tel:"))
                    {
                        self.error(
                            id,
                            "target",
                            format!("{:?} is not a sip:, sips: or tel: URI", t.target),
                        );
                    }
                    let mut headers: Vec<(String, Template)> = t
                        .headers
                        .iter()
                        .map(|(n, v)| (n.clone(), self.template(id, "headers", v)))
                        .collect();
                    if let Some(p) = &t.priority {
                        // RFC 3261 §20.26: the four values the RFC names (others are
                        // allowed by the grammar, but a queue would not know them).
                        if !matches!(p.as_str(), "non-urgent" | "normal" | "urgent" | "emergency") {
                            self.error(
                                id,
                                "priority",
                                format!("{p:?}: use non-urgent, normal, urgent or emergency"),
                            );
                        }
                        let value = Template::parse(p).unwrap_or_else(|_| {
                            Template::parse("").expect("the empty template parses")
                        });
                        headers.push(("Priority".into(), value));
                        if let Some(h) = &t.priority_header {
                            if h.is_empty()
                                || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                            {
                                self.error(
                                    id,
                                    "priority_header",
                                    format!("{h:?} is not a header name"),
                                );
                            }
                            let value = Template::parse(p).unwrap_or_else(|_| {
                                Template::parse("").expect("the empty template parses")
                            });
                            headers.push((h.clone(), value));
                        }
                    } else if t.priority_header.is_some() {
                        self.error(id, "priority_header", "needs `priority`".into());
                    }
                    if t.widget.len() > MAX_WIDGET_VARIABLES {
                        self.error(
                            id,
                            "widget",
                            format!(
                                "{} variables: at most {MAX_WIDGET_VARIABLES}",
                                t.widget.len()
                            ),
                        );
                    }
                    let trunk = crate::trunk::node_trunk(&t.target, t.trunk.as_deref(), t.mode)
                        .unwrap_or_else(|(field, message)| {
                            self.error(id, field, message);
                            None
                        });
                    Node::Transfer {
                        target,
                        headers,
                        mode: t.mode,
                        prompt: t.prompt.clone(),
                        widget: t.widget.clone(),
                        recognised: t.recognised,
                        trunk,
                        failed: t.failed.clone(),
                    }
                }
                NodeFile::Hangup(h) => {
                    if let Some(p) = &h.prompt {
                        self.prompt(id, "prompt", p, known);
                    }
                    Node::Hangup {
                        prompt: h.prompt.clone(),
                    }
                }
            };
            nodes.insert(id.clone(), node);
        }
        let name = file.name.clone().unwrap_or_else(|| {
            self.path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("flow")
                .to_owned()
        });
        // A `WithinSchedule` case names a schedule of this file.
        for (id, node) in &nodes {
            let Node::Condition { cases, .. } = node else {
                continue;
            };
            for (i, c) in cases.iter().enumerate() {
                if c.operator != crate::Operator::WithinSchedule {
                    continue;
                }
                let name = c.value.render(&BTreeMap::new(), &|_| None, Escape::None);
                if !file.schedules.contains_key(name.trim()) {
                    self.error(
                        id,
                        &format!("cases[{i}].value"),
                        format!("no [schedules.{name}] block"),
                    );
                }
            }
        }
        Flow {
            name,
            start: file.start.clone(),
            early_media: file.early_media,
            nodes,
            secrets,
            version: content_version(self.text),
            schedules,
        }
    }
}

/// The most variables one transfer node shows on the call widget: a card, not a report.
const MAX_WIDGET_VARIABLES: usize = 32;

/// A name a flow may save a value to: plain, and not one of the server's `system.` names.
fn valid_variable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with("system.")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Validator<'_> {
    /// A JSON path as flows write it (`customer.tier` or `$.customer.tier`), compiled; an
    /// error at `field` when it does not parse.
    fn json_path(&mut self, id: &str, field: &str, p: &str) -> Option<JsonPath> {
        let full = if p.starts_with('$') {
            p.to_owned()
        } else {
            format!("$.{p}")
        };
        JsonPath::parse(&full)
            .map_err(|e| self.error(id, field, format!("{p:?}: {e}")))
            .ok()
    }
}

/// Lockout group names appear in logs and records; keep them plain.
fn valid_group(g: &str) -> bool {
    !g.is_empty()
        && g.len() <= 64
        && g.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
