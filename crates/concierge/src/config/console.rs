//! `[console]`: the live console and call widget (a small web app, `crate::console`).

use std::net::SocketAddr;

use serde::Deserialize;

/// Where the console listens and who may use it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ConsoleConfig {
    /// Where to serve it; `None` (the default) serves nothing. The demo config serves it on
    /// 127.0.0.1:8088.
    pub(crate) listen: Option<SocketAddr>,
    /// The environment variable holding the access token (a bearer token; browsers present
    /// it once as `?access_token=` and keep a cookie). Required when `listen` is not a
    /// loopback address; when set, requests without it get 401.
    pub(crate) token_env: Option<String>,
}

impl ConsoleConfig {
    /// What the config must say beyond its types: a console reachable from other machines
    /// has a token. `Err` is the message for the `console.token_env` field.
    pub(super) fn check(&self) -> Result<(), String> {
        if let Some(env) = &self.token_env {
            let plausible = !env.is_empty()
                && env.len() <= 128
                && env
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if !plausible {
                // Never echoed: it may be a token pasted where its variable's name belongs.
                return Err(
                    "must name an environment variable (A-Z, 0-9, _), not hold the token itself"
                        .into(),
                );
            }
        }
        match self.listen {
            Some(addr) if !addr.ip().is_loopback() && self.token_env.is_none() => Err(format!(
                "the console listens on {addr}, beyond this machine: set `token_env` to the environment variable that holds its access token"
            )),
            _ => Ok(()),
        }
    }

    /// The access token from the environment, when `token_env` names one: `Ok(None)` for an
    /// open console (loopback only), `Err` with the variable's name when it is named but
    /// unset or empty (the server then refuses to start rather than run unprotected).
    pub(crate) fn token(&self) -> Result<Option<String>, String> {
        let Some(env) = &self.token_env else {
            return Ok(None);
        };
        match std::env::var(env) {
            Ok(token) if !token.is_empty() => Ok(Some(token)),
            _ => Err(env.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console(listen: &str, token_env: Option<&str>) -> ConsoleConfig {
        ConsoleConfig {
            listen: Some(listen.parse().unwrap()),
            token_env: token_env.map(str::to_owned),
        }
    }

    #[test]
    fn beyond_loopback_the_console_needs_a_token() {
        assert!(console("127.0.0.1:8088", None).check().is_ok());
        assert!(console("[::1]:8088", None).check().is_ok());
        let e = console("0.0.0.0:8088", None).check().unwrap_err();
        assert!(e.contains("token_env"), "{e}");
        assert!(console("0.0.0.0:8088", Some("CONSOLE_TOKEN"))
            .check()
            .is_ok());
        assert!(ConsoleConfig::default().check().is_ok());
    }

    #[test]
    fn a_pasted_token_is_refused_without_being_echoed() {
        let e = console("127.0.0.1:1", Some("s3cr3t-t0ken"))
            .check()
            .unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
    }
}
