//! `{variable}` and `${ENV}` templates, parsed once when a flow loads and rendered per call
//! with the escaping the destination needs. A caller ID is attacker-controlled, so values
//! going into a URL are percent-encoded, into JSON escaped, into a form form-encoded.

// Caller values (from SIP headers) are rendered here: no slice or index that can panic.
#![deny(clippy::string_slice, clippy::indexing_slicing)]
use std::collections::BTreeMap;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use thiserror::Error;

/// Everything outside RFC 3986 `unreserved` is encoded, `+` included: a leading `+` of an
/// E.164 number must not turn into a space on the server side. `.` is encoded too, so a
/// value is never a literal `.` or `..` path segment. (That alone does not stop a URL
/// library from folding the segment: WHATWG URL parsing treats `%2E%2E` as `..`. The HTTP
/// client refuses such a URL; see `concierge`'s `http.rs`.)
const STRICT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');

/// The variables the server sets for every call (`concierge check` rejects any other
/// `system.*` name: a typo would render empty and fail only at run time).
pub const SYSTEM_VARIABLES: &[&str] = &[
    "system.caller",
    "system.called",
    "system.call_id",
    "system.local_host",
    "system.directory_url",
    "system.caller_verified",
    "system.caller_verstat",
    "system.now",
];

/// A variable that may open a URL unescaped: its value is a base URL the server takes from
/// its own configuration, never from the caller, so it cannot steer a request elsewhere.
pub const URL_BASE_VARIABLE: &str = "system.directory_url";

/// Why a template does not parse; each error carries the byte offset in the template
/// where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateError {
    /// A `{` or `${` with no `}` after it.
    #[error("unclosed `{{` at byte {0}")]
    Unclosed(usize),
    /// A `}` that closes nothing (a literal one is written `}}`).
    #[error("stray `}}` at byte {0} (write `}}}}` for a literal brace)")]
    Stray(usize),
    /// `{}` or `${}`: no name between the braces.
    #[error("empty name at byte {0}")]
    Empty(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(String),
    Env(String),
}

/// How values are escaped when rendered: the destination's rules, so a value from the
/// caller cannot change the text around it. The template's own text is never escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// As they are: SIP targets and headers, condition values, `set` values.
    None,
    /// Percent-encoded (everything outside RFC 3986 `unreserved`), except a leading
    /// [`URL_BASE_VARIABLE`]: HTTP URLs.
    Url,
    /// As the inside of a JSON string: JSON bodies.
    Json,
    /// `application/x-www-form-urlencoded`: form bodies.
    Form,
}

/// A string with `{variable}` and `${ENV}` references (`{{`/`}}` for literal braces),
/// parsed once when a flow loads ([`Template::parse`]) and rendered per call
/// ([`Template::render`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `source`; validation calls it for every templated field of a flow file and
    /// reports the error at its byte offset.
    // Flow files are the operator's text, not the network's; every index here is at an
    // ASCII delimiter found in the same string. Fuzzed through the flow_toml target.
    #[allow(clippy::string_slice, clippy::indexing_slicing)]
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let bytes = source.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'{' if bytes.get(i + 1) == Some(&b'{') => {
                    text.push('{');
                    i += 2;
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    text.push('}');
                    i += 2;
                }
                b'}' => return Err(TemplateError::Stray(i)),
                b'$' if bytes.get(i + 1) == Some(&b'{') => {
                    let end = source[i + 2..]
                        .find('}')
                        .ok_or(TemplateError::Unclosed(i))?
                        + i
                        + 2;
                    let name = source[i + 2..end].trim();
                    if name.is_empty() {
                        return Err(TemplateError::Empty(i));
                    }
                    parts.push(Part::Text(std::mem::take(&mut text)));
                    parts.push(Part::Env(name.to_owned()));
                    i = end + 1;
                }
                b'{' => {
                    let end = source[i + 1..]
                        .find('}')
                        .ok_or(TemplateError::Unclosed(i))?
                        + i
                        + 1;
                    let name = source[i + 1..end].trim();
                    if name.is_empty() {
                        return Err(TemplateError::Empty(i));
                    }
                    parts.push(Part::Text(std::mem::take(&mut text)));
                    parts.push(Part::Var(name.to_owned()));
                    i = end + 1;
                }
                _ => {
                    let ch = source[i..].chars().next().unwrap_or_default();
                    text.push(ch);
                    i += ch.len_utf8().max(1);
                }
            }
        }
        parts.push(Part::Text(text));
        parts.retain(|p| !matches!(p, Part::Text(t) if t.is_empty()));
        Ok(Self {
            source: source.to_owned(),
            parts,
        })
    }

    /// The text as written in the flow file (for messages about it).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The flow variables this template reads.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            _ => None,
        })
    }

    /// Whether the template reads any `${NAME}`: what it renders may be a secret, so the
    /// interpreter marks such a URL or transfer for redaction.
    pub fn has_env(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Env(_)))
    }

    /// The environment variables (`${NAME}`) this template reads.
    pub fn env_names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Env(v) => Some(v.as_str()),
            _ => None,
        })
    }

    /// Renders with `vars`, each value escaped as `escape` says; a missing variable renders
    /// empty. `env` resolves `${NAME}` (the interpreter passes the run's
    /// [`crate::Environment`]; an unset name renders empty). The result may hold secrets:
    /// the caller decides what may be logged.
    pub fn render(
        &self,
        vars: &BTreeMap<String, String>,
        env: &dyn Fn(&str) -> Option<String>,
        escape: Escape,
    ) -> String {
        let mut out = String::new();
        for (i, p) in self.parts.iter().enumerate() {
            match p {
                Part::Text(t) => out.push_str(t),
                // The configured base URL opening a URL template goes in as it is.
                Part::Var(name) if i == 0 && escape == Escape::Url && name == URL_BASE_VARIABLE => {
                    out.push_str(vars.get(name).map(String::as_str).unwrap_or(""));
                }
                Part::Var(name) => out.push_str(&escaped(
                    vars.get(name).map(String::as_str).unwrap_or(""),
                    escape,
                )),
                Part::Env(name) => out.push_str(&escaped(&env(name).unwrap_or_default(), escape)),
            }
        }
        out
    }
}

fn escaped(value: &str, escape: Escape) -> String {
    match escape {
        Escape::None => value.to_owned(),
        Escape::Url => utf8_percent_encode(value, STRICT).to_string(),
        Escape::Form => utf8_percent_encode(value, STRICT)
            .to_string()
            .replace("%20", "+"),
        Escape::Json => {
            let quoted = serde_json::to_string(value).unwrap_or_default();
            quoted
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .unwrap_or_default()
                .to_owned()
        }
    }
}

/// A caller number as E.164 where it looks like one: visual separators go, `00` becomes
/// `+`. Anything that is not a number (`alice`) is left as it is.
pub fn normalize_e164(user: &str) -> String {
    let user = user.split(';').next().unwrap_or(user).trim();
    let compact: String = user
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let (plus, digits) = match compact.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => match compact.strip_prefix("00") {
            Some(rest) if !rest.is_empty() => (true, rest),
            _ => (false, compact.as_str()),
        },
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return user.to_owned();
    }
    // Written once (a call's caller is normalised on every set-up).
    let mut number = String::with_capacity(digits.len() + 1);
    if plus {
        number.push('+');
    }
    number.push_str(digits);
    number
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_configured_base_url_opens_a_url_unescaped_and_nowhere_else() {
        let base = vars(&[
            ("system.directory_url", "http://127.0.0.1:8092"),
            ("system.caller", "+4670/x"),
        ]);
        let t = Template::parse("{system.directory_url}/customers/{system.caller}").unwrap();
        assert_eq!(
            t.render(&base, &no_env, Escape::Url),
            "http://127.0.0.1:8092/customers/%2B4670%2Fx"
        );
        // Anywhere but the start, it is a value like any other.
        let t = Template::parse("http://crm/?next={system.directory_url}").unwrap();
        assert_eq!(
            t.render(&base, &no_env, Escape::Url),
            "http://crm/?next=http%3A%2F%2F127%2E0%2E0%2E1%3A8092"
        );
        // A caller-controlled variable at the start is still encoded.
        let t = Template::parse("{system.caller}/x").unwrap();
        assert_eq!(t.render(&base, &no_env, Escape::Url), "%2B4670%2Fx/x");
    }

    #[test]
    fn hostile_caller_ids_arrive_percent_encoded() {
        let t = Template::parse("http://crm/customers/{system.caller}?x=1").unwrap();
        for (caller, encoded) in [
            ("+46706170786", "%2B46706170786"),
            ("+4670&admin=1", "%2B4670%26admin%3D1"),
            ("a b", "a%20b"),
            ("\"quoted'", "%22quoted%27"),
            ("ünï/../x", "%C3%BCn%C3%AF%2F%2E%2E%2Fx"),
            ("..", "%2E%2E"),
            (".", "%2E"),
            ("a.b", "a%2Eb"),
        ] {
            let url = t.render(&vars(&[("system.caller", caller)]), &no_env, Escape::Url);
            assert_eq!(url, format!("http://crm/customers/{encoded}?x=1"));
        }
    }

    #[test]
    fn json_and_form_bodies_escape_values() {
        let t = Template::parse(r#"{{"caller": "{c}"}}"#).unwrap();
        assert_eq!(
            t.render(&vars(&[("c", "a\"b\\n")]), &no_env, Escape::Json),
            r#"{"caller": "a\"b\\n"}"#
        );
        let f = Template::parse("caller={c}&x=1").unwrap();
        assert_eq!(
            f.render(&vars(&[("c", "+46 70&x")]), &no_env, Escape::Form),
            "caller=%2B46+70%26x&x=1"
        );
    }

    #[test]
    fn environment_references_and_errors() {
        let t = Template::parse("Bearer ${CRM_TOKEN}").unwrap();
        let env = |n: &str| (n == "CRM_TOKEN").then(|| "s3cret".to_string());
        assert_eq!(
            t.render(&BTreeMap::new(), &env, Escape::None),
            "Bearer s3cret"
        );
        assert!(t.has_env());
        assert_eq!(
            Template::parse("x{y").unwrap_err(),
            TemplateError::Unclosed(1)
        );
        assert_eq!(Template::parse("x}y").unwrap_err(), TemplateError::Stray(1));
        assert_eq!(Template::parse("{}").unwrap_err(), TemplateError::Empty(0));
    }

    #[test]
    fn e164_normalisation() {
        assert_eq!(normalize_e164("+46706170786"), "+46706170786");
        assert_eq!(normalize_e164("0046 70-617 07 86"), "+46706170786");
        assert_eq!(normalize_e164("+1 (201) 555-0123"), "+12015550123");
        assert_eq!(normalize_e164("alice"), "alice");
        assert_eq!(normalize_e164("0706170786"), "0706170786");
    }
}
