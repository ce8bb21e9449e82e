//! A TOML syntax or type error as a [`Diagnostic`]: one line, with the node and field it is
//! about when the text tells.

use std::path::Path;

use super::{Diagnostic, Severity};

pub(super) fn toml_diagnostic(path: &Path, text: &str, e: &toml::de::Error) -> Diagnostic {
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
