//! Loading and checking flow files. Every problem is a [`Diagnostic`] naming the file, the
//! node and the field, with the line where it can be found, so `concierge check` output
//! points straight at the mistake.
//!
//! Nothing here touches the disk or the environment: the text of a flow comes from the
//! caller ([`parse_flow`]), or through the [`FlowFiles`] the caller implements
//! ([`load_flow`], [`check_dir`]); which prompts exist and which environment variables are
//! set are the caller's answers too.

mod compile;
mod graph;
mod toml_error;
mod validator;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::model::{Flow, FlowFile, Node};
use crate::template::Template;
use toml_error::toml_diagnostic;
use validator::Validator;

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The flow cannot run: loading fails and `concierge check` exits non-zero.
    Error,
    /// The flow runs, but probably not as meant (an unreachable node, an unset `${NAME}`);
    /// `concierge run` logs it and `concierge check` prints it.
    Warning,
}

/// One problem found in a flow file. `Display` renders it as one line,
/// `error: file:line:column: node "n", field "f": message`, with the parts that are
/// known; the message never holds a value from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Whether the flow can still run.
    pub severity: Severity,
    /// The flow file, as the caller named it.
    pub file: PathBuf,
    /// The `[nodes.<id>]` the problem is in, when it is in one node.
    pub node: Option<String>,
    /// The field (`url`, `cases[1].value`, `auth.crm`, …), when one field is wrong.
    pub field: Option<String>,
    /// The 1-based line to look at, when the text tells.
    pub line: Option<usize>,
    /// The character on `line` (1-based) where the problem is, when it is that precise.
    pub column: Option<usize>,
    /// What is wrong, for a person.
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
    /// The compiled flow, ready for [`crate::Run::start`]; shared by every call that runs it.
    pub flow: Arc<Flow>,
    /// Problems that do not stop the flow running ([`Severity::Warning`] only).
    pub warnings: Vec<Diagnostic>,
}

/// The files flows are read from, supplied by the caller of [`load_flow`] and
/// [`check_dir`]: the disk for `concierge check` and `diagram`, the demo compiled into the
/// binary, or a map in a test. The flow crate itself does no IO.
pub trait FlowFiles {
    /// The text of the file at `path`; an error when it cannot be read (it becomes a
    /// "cannot read" [`Diagnostic`]).
    fn read(&self, path: &Path) -> std::io::Result<String>;

    /// The paths of the entries directly in `dir` (not recursive, any order); an error when
    /// `dir` cannot be listed, which [`check_dir`] treats as a directory with no flows.
    fn list(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>>;
}

/// Reads `path` through `files`, then parses and validates it as [`parse_flow`] does.
///
/// `known_prompt` answers whether a prompt of that name exists (the caller's catalogue).
/// Returns the flow with its warnings, or every error found; a file that cannot be read
/// is one error naming the file.
pub fn load_flow(
    files: &dyn FlowFiles,
    path: &Path,
    known_prompt: &dyn Fn(&str) -> bool,
) -> Result<LoadedFlow, Vec<Diagnostic>> {
    let text = files.read(path).map_err(|e| {
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

/// Validates every `*.toml` flow directly in `dir` and in `dir/flows`, listed and read
/// through `files`, in path order.
///
/// A TOML file that is not a flow (no `start` key and `[nodes.…]` tables: the server
/// config, say) is skipped, as is a directory that cannot be listed. Returns every error
/// and warning of every flow; an empty list means all of them are clean.
pub fn check_dir(
    files: &dyn FlowFiles,
    dir: &Path,
    known_prompt: &dyn Fn(&str) -> bool,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut paths: Vec<PathBuf> = [dir.to_path_buf(), dir.join("flows")]
        .iter()
        .filter_map(|d| files.list(d).ok())
        .flatten()
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()) == Some("toml") && is_flow_file(files, p)
        })
        .collect();
    paths.sort();
    for f in paths {
        match load_flow(files, &f, known_prompt) {
            Ok(l) => out.extend(l.warnings),
            Err(errors) => out.extend(errors),
        }
    }
    out
}

/// A TOML file is a flow when it has a `start` key and `[nodes…]` tables.
fn is_flow_file(files: &dyn FlowFiles, p: &Path) -> bool {
    files.read(p).is_ok_and(|t| {
        t.contains("[nodes.") && t.lines().any(|l| l.trim_start().starts_with("start"))
    })
}

/// Parses and validates the flow file `text`, named `path` in diagnostics (and, when the
/// file has no `name`, naming the flow by its stem).
///
/// Callers: the binary's loader for `run`, `check` and `simulate` (which read the text
/// themselves), tests, and [`load_flow`]. `known_prompt` answers whether a prompt of that
/// name exists. Returns the compiled flow with its warnings, or — when any check fails —
/// every error found (warnings dropped), so one run of `check` shows all the mistakes.
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

/// First 12 hex digits of the SHA-256 of a flow file: short enough to read in a record,
/// long enough that two edits of one flow never collide in practice.
fn content_version(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Warns about every `${NAME}` in `flow` that `is_set` says is not in the environment: it
/// would be sent empty (an `Authorization: Bearer ` with no token); likewise an
/// `[auth.…]` block whose client secret variable is unset.
///
/// The binary's loader calls it after [`parse_flow`] with the same `path` and `text`, and
/// answers `is_set` from its process environment. Returns warnings only; an empty list
/// means every variable the flow reads is set.
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
