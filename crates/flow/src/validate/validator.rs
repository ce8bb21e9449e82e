//! The validator's state and how it reports: every problem located at its node's
//! `field = …` line, a broken template at the character where it breaks.

use std::path::Path;

use super::{Diagnostic, Severity};
use crate::template::{Template, TemplateError};

/// Collects the diagnostics of one flow file while it is compiled and checked.
pub(super) struct Validator<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
    pub(super) diags: Vec<Diagnostic>,
}

impl Validator<'_> {
    pub(super) fn push(
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

    pub(super) fn error(&mut self, node: &str, field: &str, message: String) {
        self.push(Severity::Error, Some(node), Some(field), message);
    }

    /// The line of `field = …` inside `[nodes.<node>]`, or of the header itself.
    pub(super) fn locate(&self, node: &str, field: Option<&str>) -> Option<usize> {
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

    pub(super) fn template(&mut self, node: &str, field: &str, source: &str) -> Template {
        self.try_template(node, field, source)
            .unwrap_or_else(|| Template::parse("").expect("the empty template parses"))
    }

    /// Parses a template; a broken one is reported at the character where it breaks.
    pub(super) fn try_template(
        &mut self,
        node: &str,
        field: &str,
        source: &str,
    ) -> Option<Template> {
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
    pub(super) fn block_error(&mut self, kind: &str, name: &str, message: String) {
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

    pub(super) fn prompt(
        &mut self,
        node: &str,
        field: &str,
        name: &str,
        known: &dyn Fn(&str) -> bool,
    ) {
        if !known(name) {
            self.error(node, field, format!("unknown prompt {name:?}"));
        }
    }
}
