//! Loading and checking flow files. Every problem is a [`Diagnostic`] naming the file, the
//! node and the field, with the line where it can be found, so `concierge check` output
//! points straight at the mistake.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json_path::JsonPath;

use crate::model::{Case, Flow, FlowFile, Node, NodeFile};
use crate::template::{Escape, Template, TemplateError, SYSTEM_VARIABLES, URL_BASE_VARIABLE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub node: Option<String>,
    pub field: Option<String>,
    pub line: Option<usize>,
    /// The character on `line` (1-based) where the problem is, when it is that precise.
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        if let Some(n) = &self.node {
            write!(f, ": node \"{n}\"")?;
        }
        if let Some(fl) = &self.field {
            write!(f, ", field \"{fl}\"")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A flow that passed validation, with its warnings.
#[derive(Debug)]
pub struct LoadedFlow {
    pub flow: Arc<Flow>,
    pub warnings: Vec<Diagnostic>,
}

/// Reads, parses and validates one flow file. `known_prompt` says whether a prompt exists.
pub fn load_flow(
    path: &Path,
    known_prompt: &dyn Fn(&str) -> bool,
) -> Result<LoadedFlow, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic {
            severity: Severity::Error,
            file: path.into(),
            node: None,
            field: None,
            line: None,
            column: None,
            message: format!("cannot read: {e}"),
        }]
    })?;
    parse_flow(path, &text, known_prompt)
}

/// Validates every `*.toml` flow under `dir` (and `dir/flows`).
pub fn check_dir(dir: &Path, known_prompt: &dyn Fn(&str) -> bool) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = [dir.to_path_buf(), dir.join("flows")]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("toml") && is_flow_file(p))
        .collect();
    files.sort();
    for f in files {
        match load_flow(&f, known_prompt) {
            Ok(l) => out.extend(l.warnings),
            Err(errors) => out.extend(errors),
        }
    }
    out
}

/// A TOML file is a flow when it has a `start` key and `[nodes…]` tables.
fn is_flow_file(p: &Path) -> bool {
    std::fs::read_to_string(p).is_ok_and(|t| {
        t.contains("[nodes.") && t.lines().any(|l| l.trim_start().starts_with("start"))
    })
}

pub fn parse_flow(
    path: &Path,
    text: &str,
    known_prompt: &dyn Fn(&str) -> bool,
) -> Result<LoadedFlow, Vec<Diagnostic>> {
    let file: FlowFile = toml::from_str(text).map_err(|e| vec![toml_diagnostic(path, text, &e)])?;
    let mut v = Validator {
        path,
        text,
        diags: Vec::new(),
    };
    let flow = v.compile(&file, known_prompt);
    v.graph_checks(&flow);
    let (errors, warnings): (Vec<_>, Vec<_>) = v
        .diags
        .into_iter()
        .partition(|d| d.severity == Severity::Error);
    if errors.is_empty() {
        Ok(LoadedFlow {
            flow: Arc::new(flow),
            warnings,
        })
    } else {
        Err(errors)
    }
}

fn toml_diagnostic(path: &Path, text: &str, e: &toml::de::Error) -> Diagnostic {
    // A syntax error's message has a second line (`expected …`): one line reads better.
    let message = e
        .message()
        .trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    let start = e.span().map(|s| s.start.min(text.len()));
    let mut line = start.map(|s| text[..s].matches('\n').count() + 1);
    let mut column = start.map(|s| column_at(text, s));
    // serde names the field in backticks for unknown and missing fields; a syntax error's
    // backticks hold the token it expected, which is no field.
    let names_field = ["unknown field", "missing field", "duplicate field"]
        .iter()
        .any(|m| message.starts_with(m));
    let quoted = message.split('`').nth(1).map(str::to_owned);
    let mut field = if names_field { quoted.clone() } else { None };
    if message.starts_with("unknown variant") {
        // The span covers the whole table; find `key = "Variant"` to name the field.
        if let Some(variant) = &quoted {
            let needle = format!("\"{variant}\"");
            if let Some((i, l)) = text.lines().enumerate().find(|(_, l)| l.contains(&needle)) {
                let before = &l[..l.find(&needle).unwrap_or(0)];
                field = before
                    .trim_end()
                    .strip_suffix('=')
                    .and_then(|b| b.split([' ', '{', ',']).rev().find(|w| !w.is_empty()))
                    .map(str::to_owned);
                line = Some(i + 1);
                column = None;
            }
        }
    }
    // A value of the wrong type names its key; a syntax error names no field at all.
    let about_a_value = [
        "invalid type",
        "invalid value",
        "invalid length",
        "unknown variant",
    ]
    .iter()
    .any(|m| message.starts_with(m));
    if field.is_none() && about_a_value {
        field = line
            .and_then(|n| text.lines().nth(n - 1))
            .and_then(|l| l.split_once('=').map(|(k, _)| k.trim().to_owned()))
            .filter(|k| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.\"".contains(c))
            });
    }
    // The node is the `[nodes.X]` table the offending line is in (or heads).
    let node = line.and_then(|n| {
        text.lines()
            .take(n)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .find_map(|l| {
                let l = l.trim();
                l.strip_prefix("[nodes.")
                    .and_then(|r| r.strip_suffix(']'))
                    .map(|n| n.trim_matches('"').to_owned())
            })
    });
    Diagnostic {
        severity: Severity::Error,
        file: path.into(),
        node,
        field,
        line,
        column,
        message,
    }
}

/// The 1-based character column of byte `offset` in `text`.
fn column_at(text: &str, offset: usize) -> usize {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    text[line_start..offset].chars().count() + 1
}

/// Warns about every `${NAME}` in `flow` that `is_set` says is not in the environment: it
/// would be sent empty (an `Authorization: Bearer ` with no token).
pub fn unset_env(
    path: &Path,
    text: &str,
    flow: &Flow,
    is_set: &dyn Fn(&str) -> bool,
) -> Vec<Diagnostic> {
    let mut v = Validator {
        path,
        text,
        diags: Vec::new(),
    };
    for (id, node) in &flow.nodes {
        for (field, t) in templates(node) {
            for name in t.env_names() {
                if !is_set(name) {
                    v.push(
                        Severity::Warning,
                        Some(id),
                        Some(field),
                        format!("${{{name}}} is not set in the environment: it would be empty"),
                    );
                }
            }
        }
        // An OAuth2 block whose secret is missing: every token request would fail.
        if let Node::Http {
            auth: Some(spec), ..
        } = node
        {
            if !is_set(&spec.client_secret_env) {
                v.push(
                    Severity::Warning,
                    Some(id),
                    Some("auth"),
                    format!(
                        "[auth.{}]: {} is not set in the environment: no token can be fetched",
                        spec.name, spec.client_secret_env
                    ),
                );
            }
        }
    }
    v.diags
}

/// Every template of a node, with the field it is in.
fn templates(node: &Node) -> Vec<(&'static str, &Template)> {
    let mut v = Vec::new();
    match node {
        Node::Http {
            url, headers, body, ..
        } => {
            v.push(("url", url));
            v.extend(headers.iter().map(|(_, t)| ("headers", t)));
            v.extend(body.iter().map(|t| ("body", t)));
        }
        Node::Condition { cases, .. } => {
            for c in cases {
                v.push(("cases", &c.value));
                v.push(("cases", &c.to));
            }
        }
        Node::Set { values, .. } => v.extend(values.iter().map(|(_, t)| ("values", t))),
        Node::Transfer {
            target, headers, ..
        } => {
            v.push(("target", target));
            v.extend(headers.iter().map(|(_, t)| ("headers", t)));
        }
        Node::Keypad { .. } | Node::Play { .. } | Node::Hangup { .. } => {}
    }
    v
}

struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
    diags: Vec<Diagnostic>,
}

impl Validator<'_> {
    fn push(
        &mut self,
        severity: Severity,
        node: Option<&str>,
        field: Option<&str>,
        message: String,
    ) {
        let line = node.and_then(|n| self.locate(n, field));
        self.diags.push(Diagnostic {
            severity,
            file: self.path.into(),
            node: node.map(str::to_owned),
            field: field.map(str::to_owned),
            line,
            column: None,
            message,
        });
    }

    fn error(&mut self, node: &str, field: &str, message: String) {
        self.push(Severity::Error, Some(node), Some(field), message);
    }

    /// The line of `field = …` inside `[nodes.<node>]`, or of the header itself.
    fn locate(&self, node: &str, field: Option<&str>) -> Option<usize> {
        let header = format!("[nodes.{node}]");
        let quoted = format!("[nodes.\"{node}\"]");
        let lines: Vec<&str> = self.text.lines().collect();
        let start = lines
            .iter()
            .position(|l| l.trim() == header || l.trim() == quoted)?;
        let key = field.map(|f| f.split('.').next().unwrap_or(f));
        if let Some(key) = key {
            for (i, l) in lines.iter().enumerate().skip(start + 1) {
                let t = l.trim();
                if t.starts_with('[') && !t.starts_with("[[") {
                    break;
                }
                if t.split_once('=').is_some_and(|(k, _)| k.trim() == key) {
                    return Some(i + 1);
                }
            }
        }
        Some(start + 1)
    }

    fn template(&mut self, node: &str, field: &str, source: &str) -> Template {
        self.try_template(node, field, source)
            .unwrap_or_else(|| Template::parse("").expect("the empty template parses"))
    }

    /// Parses a template; a broken one is reported at the character where it breaks.
    fn try_template(&mut self, node: &str, field: &str, source: &str) -> Option<Template> {
        let e = match Template::parse(source) {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        let (TemplateError::Unclosed(at) | TemplateError::Stray(at) | TemplateError::Empty(at)) = e;
        let what = match e {
            TemplateError::Unclosed(_) => "unclosed `{` (no `}` after it)",
            TemplateError::Stray(_) => "a `}` closes nothing (write `}}` for a literal brace)",
            TemplateError::Empty(_) => "`{}` names no variable",
        };
        self.error(node, field, format!("bad template {source:?}: {what}"));
        // The column of the offending character, where the value is written as it is.
        let diag = self.diags.last_mut().expect("just pushed");
        if let Some(line_no) = diag.line {
            let line = self.text.lines().nth(line_no - 1).unwrap_or_default();
            if let Some(pos) = line.find(source) {
                diag.column = Some(line[..pos + at].chars().count() + 1);
            }
        }
        None
    }

    /// An error in a flow-level block (`[auth.crm]`, `[schedules.office]`), at its header.
    fn block_error(&mut self, kind: &str, name: &str, message: String) {
        let header = format!("[{kind}.{name}]");
        let line = self
            .text
            .lines()
            .position(|l| l.trim() == header)
            .map(|i| i + 1);
        self.diags.push(Diagnostic {
            severity: Severity::Error,
            file: self.path.into(),
            node: None,
            field: Some(format!("{kind}.{name}")),
            line,
            column: None,
            message,
        });
    }

    fn prompt(&mut self, node: &str, field: &str, name: &str, known: &dyn Fn(&str) -> bool) {
        if !known(name) {
            self.error(node, field, format!("unknown prompt {name:?}"));
        }
    }

    fn compile(&mut self, file: &FlowFile, known: &dyn Fn(&str) -> bool) -> Flow {
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
                    let json_path = h.json_path.as_ref().and_then(|p| {
                        let full = if p.starts_with('$') {
                            p.clone()
                        } else {
                            format!("$.{p}")
                        };
                        JsonPath::parse(&full)
                            .map_err(|e| self.error(id, "json_path", format!("{p:?}: {e}")))
                            .ok()
                    });
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
                    Node::Transfer {
                        target,
                        headers,
                        mode: t.mode,
                        prompt: t.prompt.clone(),
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
            schedules,
        }
    }

    fn graph_checks(&mut self, flow: &Flow) {
        if !flow.nodes.contains_key(&flow.start) {
            self.diags.push(Diagnostic {
                severity: Severity::Error,
                file: self.path.into(),
                node: None,
                field: Some("start".into()),
                line: self
                    .text
                    .lines()
                    .position(|l| l.trim_start().starts_with("start"))
                    .map(|i| i + 1),
                column: None,
                message: format!("start node {:?} does not exist", flow.start),
            });
            return;
        }
        for (id, node) in &flow.nodes {
            for (field, target) in node.exits() {
                if !flow.nodes.contains_key(target) {
                    self.error(id, field, format!("exit to unknown node {target:?}"));
                }
            }
        }
        // A condition counting failures for a group no keypad obeys locks nothing.
        let obeyed: BTreeSet<&str> = flow
            .nodes
            .values()
            .filter_map(|n| match n {
                Node::Keypad { lockout, .. } => lockout.as_deref(),
                _ => None,
            })
            .collect();
        for (id, node) in &flow.nodes {
            if let Node::Condition {
                lockout: Some(g), ..
            } = node
            {
                if !obeyed.contains(g.as_str()) {
                    self.error(
                        id,
                        "lockout",
                        format!("no keypad has `lockout = {g:?}`: the failures would lock nothing"),
                    );
                }
            }
        }
        // Reachability from the start.
        let reach = reachable(flow, &flow.start);
        for id in flow.nodes.keys() {
            if !reach.contains(id.as_str()) {
                self.push(
                    Severity::Warning,
                    Some(id),
                    None,
                    "unreachable from the start node".into(),
                );
            }
        }
        // A loop that never waits for a key or a server spins forever.
        if let Some(id) = busy_cycle(flow) {
            self.push(
                Severity::Error,
                Some(&id),
                None,
                "is on a cycle with no keypad or http node: the call would loop forever".into(),
            );
        }
        // Variables read where no earlier node can have set them.
        for (id, node) in &flow.nodes {
            for (field, var) in reads(node) {
                if var.starts_with("system.") {
                    if !SYSTEM_VARIABLES.contains(&var.as_str()) {
                        self.push(
                            Severity::Error,
                            Some(id),
                            Some(field),
                            format!(
                                "unknown variable {var:?}: the server sets {}",
                                SYSTEM_VARIABLES.join(", ")
                            ),
                        );
                    }
                    continue;
                }
                let setters: Vec<&str> = flow
                    .nodes
                    .iter()
                    .filter(|(_, n)| sets(n).contains(&var))
                    .map(|(k, _)| k.as_str())
                    .collect();
                if !setters
                    .iter()
                    .any(|s| reachable(flow, s).contains(id.as_str()))
                {
                    self.push(
                        Severity::Warning,
                        Some(id),
                        Some(field),
                        format!("reads {var:?} before any node can set it"),
                    );
                }
            }
        }
    }
}

/// Lockout group names appear in logs and records; keep them plain.
fn valid_group(g: &str) -> bool {
    !g.is_empty()
        && g.len() <= 64
        && g.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn reachable<'a>(flow: &'a Flow, from: &'a str) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::from([from]);
    let mut queue = VecDeque::from([from]);
    while let Some(id) = queue.pop_front() {
        if let Some(node) = flow.nodes.get(id) {
            for (_, t) in node.exits() {
                if seen.insert(t) {
                    queue.push_back(t);
                }
            }
        }
    }
    seen
}

/// A node on a cycle made only of nodes that do not wait for the caller or a server.
fn busy_cycle(flow: &Flow) -> Option<String> {
    let instant = |id: &str| {
        flow.nodes
            .get(id)
            .is_some_and(|n| !matches!(n, Node::Keypad { .. } | Node::Http { .. }))
    };
    for id in flow.nodes.keys().filter(|id| instant(id)) {
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([id.as_str()]);
        while let Some(cur) = queue.pop_front() {
            for (_, t) in flow.nodes[cur].exits() {
                if t == id {
                    return Some(id.clone());
                }
                if instant(t) && seen.insert(t) {
                    queue.push_back(t);
                }
            }
        }
    }
    None
}

fn reads(node: &Node) -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> = Vec::new();
    let mut add =
        |field: &'static str, t: &Template| v.extend(t.variables().map(|x| (field, x.to_owned())));
    match node {
        Node::Http {
            url, headers, body, ..
        } => {
            add("url", url);
            headers.iter().for_each(|(_, t)| add("headers", t));
            if let Some(b) = body {
                add("body", b);
            }
        }
        Node::Condition {
            variable, cases, ..
        } => {
            v.push(("variable", variable.clone()));
            for c in cases {
                v.extend(c.value.variables().map(|x| ("cases.value", x.to_owned())));
            }
        }
        Node::Set { values, .. } => values.iter().for_each(|(_, t)| add("values", t)),
        Node::Transfer {
            target, headers, ..
        } => {
            add("target", target);
            headers.iter().for_each(|(_, t)| add("headers", t));
        }
        _ => {}
    }
    v
}

fn sets(node: &Node) -> Vec<String> {
    match node {
        Node::Http { save_as, .. } | Node::Keypad { save_as, .. } => vec![save_as.clone()],
        Node::Set { values, .. } => values.iter().map(|(k, _)| k.clone()).collect(),
        _ => Vec::new(),
    }
}
