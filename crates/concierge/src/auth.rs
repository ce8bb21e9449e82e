//! OAuth 2.0 client credentials (RFC 6749 §4.4) for `http` nodes with `auth = "<name>"`.
//!
//! Why here and not in the core: fetching a token is HTTP, and the flow's only concern is
//! which block a request needs ([`concierge_flow::AuthSpec`] on the request). The driver
//! keeps one token per block, shared by every call: the first call that needs it fetches
//! it while the others wait on the same fetch (one request, not N), it is renewed shortly
//! before `expires_in` runs out, and a lookup answered 401 renews it once (unless another
//! call already did) and is retried once. Neither the token nor the client secret is ever
//! logged, recorded or printed: [`Bearer`] has no `Debug` of its value, the secret is read
//! from its environment variable only to build the token request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concierge_flow::{AuthSpec, ClientAuth, HttpFailure};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tracing::{info, warn};

/// Token responses beyond this are refused: a token endpoint answers a small JSON object.
const MAX_TOKEN_RESPONSE: usize = 64 << 10;
/// Renew this long before the token expires (or a tenth of its life, if shorter).
const RENEW_MARGIN: Duration = Duration::from_secs(60);
/// Without `expires_in` (RFC 6749 §5.1 only recommends it), assume this lifetime.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// After a failed token request, calls fail fast this long instead of each asking again.
const FAILURE_HOLD: Duration = Duration::from_secs(5);
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);
/// application/x-www-form-urlencoded (what RFC 6749 §2.3.1 and §4.4.2 use) leaves these
/// unescaped.
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'*');

/// An access token. Compared and sent, never shown.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Bearer(String);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(<redacted>)")
    }
}

impl Bearer {
    pub(crate) fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

#[derive(Default)]
struct Slot {
    token: Option<(Bearer, Instant)>,
    /// The last failure and until when it stands.
    failed: Option<(String, Instant)>,
}

/// Every auth block's token, for the whole process.
#[derive(Default)]
pub(crate) struct Tokens {
    slots: Mutex<HashMap<AuthSpec, Arc<tokio::sync::Mutex<Slot>>>>,
    /// Token requests made (for tests and the log).
    fetches: std::sync::atomic::AtomicU64,
}

impl Tokens {
    fn slot(&self, spec: &AuthSpec) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(spec.clone()).or_default().clone()
    }

    /// The block's current token, fetched (once, however many calls ask) when there is
    /// none or it is about to expire.
    pub(crate) async fn bearer(
        &self,
        client: &reqwest::Client,
        spec: &AuthSpec,
    ) -> Result<Bearer, HttpFailure> {
        let slot = self.slot(spec);
        let mut slot = slot.lock().await;
        self.current_or_fetch(client, spec, &mut slot).await
    }

    /// A lookup answered 401 with `rejected`: drop it (unless another call has already
    /// replaced it) and return a fresh one.
    pub(crate) async fn renew(
        &self,
        client: &reqwest::Client,
        spec: &AuthSpec,
        rejected: &Bearer,
    ) -> Result<Bearer, HttpFailure> {
        let slot = self.slot(spec);
        let mut slot = slot.lock().await;
        if slot.token.as_ref().is_some_and(|(t, _)| t == rejected) {
            slot.token = None;
            slot.failed = None;
        }
        self.current_or_fetch(client, spec, &mut slot).await
    }

    async fn current_or_fetch(
        &self,
        client: &reqwest::Client,
        spec: &AuthSpec,
        slot: &mut Slot,
    ) -> Result<Bearer, HttpFailure> {
        let now = Instant::now();
        if let Some((token, renew_at)) = &slot.token {
            if now < *renew_at {
                return Ok(token.clone());
            }
        }
        if let Some((why, until)) = &slot.failed {
            if now < *until {
                return Err(HttpFailure::Other(format!("auth {}: {why}", spec.name)));
            }
        }
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match fetch(client, spec).await {
            Ok((token, lifetime)) => {
                let margin = RENEW_MARGIN.min(lifetime / 10);
                info!(auth = %spec.name, expires_in_s = lifetime.as_secs(), "OAuth2 token obtained");
                slot.token = Some((token.clone(), Instant::now() + lifetime - margin));
                slot.failed = None;
                Ok(token)
            }
            Err(why) => {
                warn!(
                    auth = %spec.name,
                    token_url = %spec.token_url,
                    client_id = %spec.client_id,
                    secret_env = %spec.client_secret_env,
                    "OAuth2 token request failed: {why}"
                );
                slot.token = None;
                slot.failed = Some((why.clone(), Instant::now() + FAILURE_HOLD));
                Err(HttpFailure::Other(format!("auth {}: {why}", spec.name)))
            }
        }
    }
}

/// One client-credentials token request. The error says what went wrong in words a
/// person can act on, and never holds the secret or a token.
async fn fetch(client: &reqwest::Client, spec: &AuthSpec) -> Result<(Bearer, Duration), String> {
    let secret = std::env::var(&spec.client_secret_env).map_err(|_| {
        format!(
            "the client secret's environment variable {} is not set",
            spec.client_secret_env
        )
    })?;
    let enc = |s: &str| utf8_percent_encode(s, FORM).to_string();
    let mut form = vec![("grant_type", "client_credentials".to_owned())];
    if let Some(s) = &spec.scope {
        form.push(("scope", s.clone()));
    }
    if let Some(a) = &spec.audience {
        form.push(("audience", a.clone()));
    }
    let mut request = client
        .post(&spec.token_url)
        .timeout(TOKEN_TIMEOUT)
        .header("Accept", "application/json")
        .header("Content-Type", "application/x-www-form-urlencoded");
    match spec.client_auth {
        // RFC 6749 §2.3.1: id and secret form-encoded, then HTTP Basic.
        ClientAuth::Basic => {
            request = request.basic_auth(enc(&spec.client_id), Some(enc(&secret)));
        }
        ClientAuth::Post => {
            form.push(("client_id", spec.client_id.clone()));
            form.push(("client_secret", secret));
        }
    }
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut response = request.body(body).send().await.map_err(|e| {
        format!(
            "token endpoint unreachable: {}",
            crate::http::root_cause(&e)
        )
    })?;
    let status = response.status().as_u16();
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("token response broken: {}", crate::http::root_cause(&e)))?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_TOKEN_RESPONSE {
            return Err("token response too large".into());
        }
    }
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if !(200..300).contains(&status) {
        // RFC 6749 §5.2: `error` is one of a few ASCII codes; show only a plain one.
        let code = json
            .get("error")
            .and_then(|e| e.as_str())
            .filter(|e| e.len() <= 40 && e.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .unwrap_or("no error code");
        let hint = if code == "invalid_client" || status == 401 {
            format!(
                "; check client_id and the secret in ${}",
                spec.client_secret_env
            )
        } else {
            String::new()
        };
        return Err(format!(
            "token endpoint refused: HTTP {status} ({code}){hint}"
        ));
    }
    let token = json
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or("token response without a usable access_token")?;
    if let Some(kind) = json.get("token_type").and_then(|t| t.as_str()) {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(format!(
                "token_type {:?} is not Bearer",
                kind.chars().take(20).collect::<String>()
            ));
        }
    }
    let lifetime = match json.get("expires_in") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .map(Duration::from_secs)
    .unwrap_or(DEFAULT_LIFETIME)
    .max(Duration::from_secs(1));
    Ok((Bearer(token.to_owned()), lifetime))
}
