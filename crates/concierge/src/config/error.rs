//! What goes wrong loading a config, and where: [`ConfigError`], and the TOML error
//! reworded to name the line, the column or the dotted field.

use std::path::PathBuf;

use thiserror::Error;

/// Why a config file (or a command-line flag) was refused. Returned by
/// [`Config::load`](super::Config::load), [`Config::parse`](super::Config::parse) and
/// [`Config::apply`](super::Config::apply); its `Display` is the one line `concierge check`
/// and a refused reload print, always naming the file (or flag) and, where known, the field.
#[derive(Debug, Error)]
pub(crate) enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Invalid { file: PathBuf, message: String },
    #[error("{file}: field `{field}`: {message}")]
    Field {
        file: PathBuf,
        field: &'static str,
        message: String,
    },
    #[error("{flag}: {message}")]
    Flag { flag: &'static str, message: String },
}

/// Adds the line and, where the span points into a `key = value` line, the dotted field
/// name (`calls.max_calls`): serde's message for a wrong type does not name the key.
pub(super) fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    // A syntax error's message has a second line (`expected …`): one line reads better.
    let message = e
        .message()
        .trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    let Some(span) = e.span() else { return message };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..start].chars().count() + 1;
    // serde's data errors concern a key's value; anything else is the TOML syntax itself,
    // best pointed at by its character.
    let about_a_value = [
        "invalid type",
        "invalid value",
        "unknown variant",
        "invalid length",
    ]
    .iter()
    .any(|m| message.starts_with(m));
    if !about_a_value && !message.starts_with("unknown field") {
        return format!("line {line_no}, column {column}: {message}");
    }
    let line = text.lines().nth(line_no - 1).unwrap_or_default();
    let table = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    match line
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && !k.starts_with('['))
    {
        Some(key) => {
            let field = table.map_or_else(|| key.to_owned(), |t| format!("{t}.{key}"));
            format!("line {line_no}: field `{field}`: {message}")
        }
        None => format!("line {line_no}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let e = Config::parse(
            Path::new("c.toml"),
            "[sip]\nlisten = \"127.0.0.1:5070\"\nlistne = 1\n",
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("c.toml: line 3"), "{msg}");
        assert!(msg.contains("listne"), "{msg}");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let e = Config::parse(Path::new("c.toml"), "[calls]\nmax_calls = \"many\"\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("c.toml: line 2: field `calls.max_calls`: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn a_toml_syntax_error_is_shown_at_its_line_and_column() {
        let e = Config::parse(Path::new("c.toml"), "[flows]\nroutes = { a = \"x\" \n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("c.toml: line 2, column "), "{msg}");
        assert!(!msg.contains("field"), "{msg}");
    }
}
