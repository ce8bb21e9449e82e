//! What of an `http` node's answer a lookup cache shared by several instances may keep
//! (`[shared]` in the server's config), and how such an answer comes back to a run.
//!
//! A shared cache lives outside the process (Valkey/Redis), so it keeps less than the
//! local [`crate::LookupCache`]: never the body, only the values the node saves (the JSON
//! path's match or the trimmed body for `save_as`, and each `save` path's match) and the
//! status, and nothing at all for a request
//! whose URL or body is built from a secret variable or `${ENV}`, or whose values go into
//! a secret variable. The caller that performs requests asks [`ShareSpec::keep`] what to
//! store after a response, and hands a kept value back as an [`HttpResponse`] made by
//! [`SharedValue::answer`]; the interpreter then saves that value without parsing a body,
//! and [`crate::LookupCache::settle`] records how the shared cache took part.

// HTTP bodies reach this module: no slice or index that can panic.
#![deny(clippy::string_slice, clippy::indexing_slicing)]
use std::time::Duration;

use serde_json_path::JsonPath;

use crate::{CacheUse, HttpResponse};

/// How one request's answer may be kept in a shared cache: under which key, and how the
/// value the node saves is found in a response. Carried on [`crate::HttpRequest::share`].
#[derive(Clone, PartialEq, Eq)]
pub struct ShareSpec {
    key: String,
    json_path: Option<JsonPath>,
    /// The node has a `save_as`: the JSON path's match (or the trimmed body) is kept.
    wants_value: bool,
    /// The node's `save` paths: each match is kept under its variable.
    save: Vec<(String, JsonPath)>,
}

impl std::fmt::Debug for ShareSpec {
    // The key holds the rendered URL (a caller's number): never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShareSpec { .. }")
    }
}

impl ShareSpec {
    pub(crate) fn new(
        cache_key: &str,
        json_path: Option<&JsonPath>,
        wants_value: bool,
        save: &[(String, JsonPath)],
    ) -> Self {
        // Two flows may name their nodes alike and ask the same URL for different values.
        let mut key = format!(
            "{cache_key}\n{}",
            json_path.map(ToString::to_string).unwrap_or_default()
        );
        if wants_value {
            key.push_str("\nsave_as");
        }
        for (name, path) in save {
            key.push_str(&format!("\n{name}={path}"));
        }
        Self {
            key,
            json_path: json_path.cloned(),
            wants_value,
            save: save.to_vec(),
        }
    }

    /// What identifies the answer: method, URL, body, the headers not built from a secret,
    /// and the JSON path. It may hold a caller's number: whoever stores it hashes it, and
    /// never logs it.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What a shared cache may keep of `response`: for a 2xx the values the node saves, for
    /// a 404/410 the fact that there is no such record; `None` for anything else (a 2xx
    /// whose value cannot be found, a 5xx, a 401 …) and for an answer that came from a
    /// shared cache itself.
    pub fn keep(&self, response: &HttpResponse) -> Option<SharedValue> {
        if response.shared.is_some() {
            return None;
        }
        match response.status {
            200..=299 => {
                let found = crate::run::extract(
                    &response.body,
                    self.wants_value,
                    self.json_path.as_ref(),
                    &self.save,
                )
                .ok()?;
                Some(SharedValue {
                    status: response.status,
                    value: found.value,
                    saved: found.saved,
                })
            }
            404 | 410 => Some(SharedValue {
                status: response.status,
                value: None,
                saved: Vec::new(),
            }),
            _ => None,
        }
    }
}

/// What a shared cache keeps of one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedValue {
    /// The server's status: a 2xx, or 404/410.
    pub status: u16,
    /// The value `save_as` takes; only for a 2xx, and only when the node has `save_as`.
    pub value: Option<String>,
    /// What the node's `save` paths found, `(variable, value)`; empty unless a 2xx.
    pub saved: Vec<(String, String)>,
}

impl SharedValue {
    /// A kept value as the response the run is handed: no body (the value is already
    /// found), `shared` saying how the shared cache took part and how old the answer is.
    pub fn answer(self, used: CacheUse, age: Duration) -> HttpResponse {
        HttpResponse {
            status: self.status,
            body: Vec::new(),
            latency: Duration::ZERO,
            shared: Some(SharedAnswer {
                used,
                age,
                value: self.value,
                saved: self.saved,
            }),
        }
    }

    /// Whether this is "no such record" (404/410), kept for `negative_ttl`.
    pub fn is_negative(&self) -> bool {
        matches!(self.status, 404 | 410)
    }
}

/// On an [`HttpResponse`] that a shared cache gave instead of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedAnswer {
    /// [`CacheUse::Hit`]: fresh, no request went out; [`CacheUse::Stale`]: the server
    /// failed and this older answer stands in.
    pub used: CacheUse,
    /// How old the answer was when the shared cache gave it.
    pub age: Duration,
    /// The value `save_as` takes (for a 2xx).
    pub value: Option<String>,
    /// What the node's `save` paths found (for a 2xx).
    pub saved: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            body: body.into(),
            latency: Duration::from_millis(3),
            shared: None,
        }
    }

    fn spec(path: Option<&str>) -> ShareSpec {
        let path = path.map(|p| JsonPath::parse(p).expect("a JSON path"));
        ShareSpec::new(
            "GET http://crm/customers/%2B46700000001\n\n",
            path.as_ref(),
            true,
            &[],
        )
    }

    #[test]
    fn only_the_saved_value_is_kept_never_the_body() {
        let body = r#"{"customer": {"hasVIPMembership": true, "notes": "private"}}"#;
        let kept = spec(Some("$.customer.hasVIPMembership")).keep(&response(200, body));
        assert_eq!(
            kept,
            Some(SharedValue {
                status: 200,
                value: Some("true".into()),
                saved: Vec::new(),
            })
        );
        // Without a JSON path the node saves the trimmed body, and so does the cache.
        let kept = spec(None).keep(&response(200, " gold \n"));
        assert_eq!(kept.and_then(|k| k.value).as_deref(), Some("gold"));
    }

    #[test]
    fn each_save_path_s_match_is_kept_under_its_variable_and_nothing_else() {
        let body =
            r#"{"customer": {"name": "Astrid Lindqvist", "tier": "gold", "notes": "private"}}"#;
        let save = [
            ("customer.name", "$.customer.name"),
            ("tier", "$.customer.tier"),
            ("customer.id", "$.customer.customerId"),
        ]
        .map(|(name, path)| (name.to_owned(), JsonPath::parse(path).expect("a JSON path")));
        let s = ShareSpec::new(
            "GET http://crm/customers/%2B46700000001\n\n",
            None,
            false,
            &save,
        );
        let kept = s.keep(&response(200, body)).expect("a 2xx is kept");
        assert_eq!(kept.value, None, "no save_as, no body");
        assert_eq!(
            kept.saved,
            [
                ("customer.name", "Astrid Lindqvist"),
                ("tier", "gold"),
                ("customer.id", ""),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        // The same URL saved into other variables is another entry.
        assert_ne!(s.key(), spec(None).key());
    }

    #[test]
    fn a_missing_record_is_kept_and_failures_are_not() {
        let s = spec(Some("$.customer.tier"));
        assert_eq!(
            s.keep(&response(404, "{}")),
            Some(SharedValue {
                status: 404,
                value: None,
                saved: Vec::new(),
            })
        );
        for (status, body) in [
            (200, r#"{"other": 1}"#),
            (200, "not json"),
            (503, ""),
            (401, ""),
        ] {
            assert_eq!(s.keep(&response(status, body)), None, "{status} {body}");
        }
    }

    #[test]
    fn an_answer_from_the_shared_cache_is_not_stored_again() {
        let s = spec(None);
        let answer = SharedValue {
            status: 200,
            value: Some("gold".into()),
            saved: Vec::new(),
        }
        .answer(CacheUse::Hit, Duration::from_secs(5));
        assert_eq!(s.keep(&answer), None);
        assert!(answer.body.is_empty());
    }

    #[test]
    fn the_key_tells_json_paths_apart_and_is_never_printed() {
        let a = spec(Some("$.customer.tier"));
        let b = spec(Some("$.customer.hasVIPMembership"));
        assert_ne!(a.key(), b.key());
        assert!(!format!("{a:?}").contains("46700000001"));
    }
}
