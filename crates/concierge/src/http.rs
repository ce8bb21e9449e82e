//! The HTTP client behind flow `http` nodes: one shared reqwest client (connection
//! pooling), per-request timeouts, and every failure mapped to what the flow's failure
//! exit needs to know.

use std::sync::Arc;
use std::time::{Duration, Instant};

use concierge_flow::{HttpFailure, HttpRequest, HttpResponse};

/// Bodies beyond this are cut: a customer API answers with a small JSON document.
const MAX_BODY: usize = 1 << 20;

#[derive(Clone)]
pub(crate) struct HttpClient {
    client: reqwest::Client,
    /// OAuth2 tokens of `auth` blocks, shared by every request of the process.
    tokens: Arc<crate::auth::Tokens>,
}

impl HttpClient {
    pub(crate) fn new() -> Self {
        let client = reqwest::Client::builder()
            // No version, like the SIP side's default: nothing to match against advisories.
            .user_agent("Concierge")
            .connect_timeout(Duration::from_secs(3))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            client,
            tokens: Arc::default(),
        }
    }

    /// Performs a flow's request: with a bearer token when its node names an `auth`
    /// block, renewed once and retried once if the server answers 401.
    pub(crate) async fn execute(&self, req: HttpRequest) -> Result<HttpResponse, HttpFailure> {
        if !req.delay.is_zero() {
            tokio::time::sleep(req.delay).await;
        }
        let Some(spec) = req.auth.clone() else {
            return self.send(&req, None).await;
        };
        let bearer = self.tokens.bearer(&self.client, &spec).await?;
        let response = self.send(&req, Some(&bearer)).await?;
        if response.status != 401 {
            return Ok(response);
        }
        tracing::info!(auth = %spec.name, node = %req.node, "HTTP 401 with the current token; renewing it once");
        let bearer = self.tokens.renew(&self.client, &spec, &bearer).await?;
        self.send(&req, Some(&bearer)).await
    }

    async fn send(
        &self,
        req: &HttpRequest,
        bearer: Option<&crate::auth::Bearer>,
    ) -> Result<HttpResponse, HttpFailure> {
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|e| HttpFailure::Other(e.to_string()))?;
        if has_dot_segment(&req.url) {
            return Err(HttpFailure::Other(
                "the URL has a `.` or `..` path segment (from a variable?); not sent".into(),
            ));
        }
        let mut builder = self.client.request(method, &req.url).timeout(req.timeout);
        for (name, value) in &req.headers {
            builder = builder.header(name, value);
        }
        if let Some(b) = bearer {
            builder = builder.header("Authorization", b.header_value());
        }
        if let Some(body) = &req.body {
            builder = builder.body(body.clone());
        }
        let started = Instant::now();
        let mut response = builder.send().await.map_err(classify)?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() > MAX_BODY {
                        return Err(HttpFailure::Other(format!(
                            "response body over {MAX_BODY} bytes"
                        )));
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(classify(e)),
            }
        }
        Ok(HttpResponse {
            status,
            body,
            latency: started.elapsed(),
            shared: None,
        })
    }
}

/// Whether the path of `url` has a segment the URL parser folds away: `.`, `..` or their
/// percent-encoded forms (WHATWG URL: `%2e`, `.%2e`, `%2e.`, `%2e%2e`, any case). A
/// caller number of `..` would otherwise turn `/customers/{caller}` into `/`: the request
/// would go to another resource than the flow names.
fn has_dot_segment(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path.split('/').any(|segment| {
        let s = segment.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    })
}

fn classify(e: reqwest::Error) -> HttpFailure {
    if e.is_timeout() {
        HttpFailure::Timeout
    } else if e.is_connect() {
        HttpFailure::Connect(root_cause(&e))
    } else {
        HttpFailure::Other(root_cause(&e))
    }
}

pub(crate) fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_library_folds_encoded_dot_segments_so_they_are_refused() {
        // Why encoding `.` as `%2E` is not enough: the parser reqwest uses folds it.
        let folded = reqwest::Url::parse("http://crm/customers/%2E%2E?called=ivr").unwrap();
        assert_eq!(folded.path(), "/");
        for url in [
            "http://crm/customers/%2E%2E?called=ivr",
            "http://crm/customers/..",
            "http://crm/customers/%2e",
            "http://crm/customers/.%2E/x",
        ] {
            assert!(has_dot_segment(url), "{url}");
        }
        for url in [
            "http://crm/customers/%2B46706170786?called=ivr",
            "http://crm/customers/a%2Eb",
            "http://crm/customers/%2E%2E%2E",
            "http://crm",
            "http://crm/x?next=../..",
        ] {
            assert!(!has_dot_segment(url), "{url}");
        }
    }
}
