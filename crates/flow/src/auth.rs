//! `[auth.<name>]` blocks: how an `http` node with `auth = "<name>"` gets its bearer token.
//!
//! Only the description lives here. Fetching and renewing the token is HTTP, so the driver
//! does it (`crates/concierge/src/auth.rs`): it keeps one token per block for every call,
//! fetches it once however many calls wait, renews it shortly before it expires and once
//! more when a lookup answers 401. The secret itself is never in the flow: only the name
//! of the environment variable that holds it.

use serde::Deserialize;

/// An `[auth.<name>]` block as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthFile {
    #[serde(rename = "type")]
    pub(crate) kind: AuthKind,
    pub(crate) token_url: String,
    pub(crate) client_id: String,
    pub(crate) client_secret_env: String,
    pub(crate) scope: Option<String>,
    pub(crate) audience: Option<String>,
    #[serde(default)]
    pub(crate) client_auth: ClientAuth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AuthKind {
    /// RFC 6749 §4.4.
    Oauth2ClientCredentials,
}

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret (the RFC's must-support).
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body (what some servers want).
    Post,
}

/// An OAuth 2.0 client-credentials grant (RFC 6749 §4.4). Holds no secret: `Debug` and
/// logs may show it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthSpec {
    /// The block's name (`[auth.crm]` → `crm`), for log lines.
    pub name: String,
    /// The token endpoint (`http://` or `https://`) the client-credentials grant is posted to.
    pub token_url: String,
    /// The client's public identifier.
    pub client_id: String,
    /// The environment variable holding the client secret, read when a token is fetched.
    pub client_secret_env: String,
    /// The `scope` parameter of the token request, when the server wants one.
    pub scope: Option<String>,
    /// The `audience` parameter (an extension some providers require), when set.
    pub audience: Option<String>,
    /// How the client id and secret reach the token endpoint.
    pub client_auth: ClientAuth,
}

impl AuthSpec {
    pub(crate) fn compile(name: &str, f: &AuthFile) -> Result<Self, String> {
        match f.kind {
            AuthKind::Oauth2ClientCredentials => {}
        }
        let url = f.token_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
            return Err(format!(
                "token_url {:?} is not an http:// or https:// URL",
                f.token_url
            ));
        }
        if f.client_id.trim().is_empty() {
            return Err("client_id is empty".into());
        }
        let env = &f.client_secret_env;
        if env.is_empty()
            || !env
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            || env.as_bytes()[0].is_ascii_digit()
        {
            // Not echoed: someone may have pasted the secret itself here.
            return Err(
                "client_secret_env must name an environment variable (A-Z, 0-9, _), not hold the secret itself"
                    .into(),
            );
        }
        Ok(Self {
            name: name.to_owned(),
            token_url: url.to_owned(),
            client_id: f.client_id.clone(),
            client_secret_env: env.clone(),
            scope: f.scope.clone().filter(|s| !s.is_empty()),
            audience: f.audience.clone().filter(|s| !s.is_empty()),
            client_auth: f.client_auth,
        })
    }
}
