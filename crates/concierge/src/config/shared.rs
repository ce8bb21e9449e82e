//! `[shared]`: state several instances keep in one Valkey/Redis — the keypad lockout, the
//! lookup cache of `http` nodes, and each instance's load (see `crate::shared`). Absent,
//! everything stays in this process, as with a single instance.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `[shared]` as written. Only `url` is required.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SharedConfig {
    /// `redis://host:port[/db]`, or `rediss://…` for TLS; a user name may come before the
    /// host, a password never does (it would sit in the file and in logs): see
    /// `password_env`.
    pub(crate) url: String,
    /// The environment variable holding the password (Redis `AUTH`, or an ACL user's with
    /// a user name in the URL). Unset: no password.
    #[serde(default)]
    pub(crate) password_env: Option<String>,
    /// Every key starts with this and a `:`, so instances of another deployment (or
    /// anything else) can share the server.
    #[serde(default = "default_prefix")]
    pub(crate) prefix: String,
    /// No call waits longer than this for the store; beyond it the call goes on with what
    /// this process knows.
    #[serde(default = "default_timeout_ms")]
    pub(crate) timeout_ms: u64,
    /// How often this instance writes its load and reads the others'.
    #[serde(default = "default_heartbeat_ms")]
    pub(crate) heartbeat_ms: u64,
    /// How long an instance's load counts after its last heartbeat: a process killed
    /// without a goodbye stops holding capacity after this.
    #[serde(default = "default_load_ttl_ms")]
    pub(crate) load_ttl_ms: u64,
    /// The largest value one lookup answer may keep in the store; larger ones stay local.
    #[serde(default = "default_max_value_bytes")]
    pub(crate) max_value_bytes: usize,
    /// PEM certificates of the CA that signed the server's certificate (`rediss://`);
    /// without it the system's roots and Mozilla's are trusted.
    #[serde(default)]
    pub(crate) tls_ca_file: Option<PathBuf>,
}

fn default_prefix() -> String {
    "concierge".into()
}
fn default_timeout_ms() -> u64 {
    50
}
fn default_heartbeat_ms() -> u64 {
    1000
}
fn default_load_ttl_ms() -> u64 {
    5000
}
fn default_max_value_bytes() -> usize {
    2048
}

impl SharedConfig {
    /// Checks what the types cannot; the error names the field. Never echoes the URL:
    /// it may hold a password the operator should not see printed back.
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| ("shared.url", format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "redis" | "rediss") {
            return Err((
                "shared.url",
                format!("must be redis:// or rediss://, got {}://", url.scheme()),
            ));
        }
        if url.password().is_some() {
            return Err((
                "shared.url",
                "holds a password: put it in an environment variable and name that in \
                 shared.password_env"
                    .into(),
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(("shared.url", "needs a host".into()));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err((
                "shared.url",
                "takes no query or fragment (certificates are always verified)".into(),
            ));
        }
        let db = url.path().trim_start_matches('/');
        if !db.is_empty() && db.parse::<u16>().is_err() {
            return Err((
                "shared.url",
                "the path, when given, is a database number (`/0`)".into(),
            ));
        }
        if let Some(var) = &self.password_env {
            if var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err((
                    "shared.password_env",
                    "must name an environment variable (letters, digits, '_'), not hold the \
                     password"
                        .into(),
                ));
            }
            if std::env::var_os(var).is_none() {
                return Err((
                    "shared.password_env",
                    format!("the environment variable {var} is not set"),
                ));
            }
        }
        let prefix = &self.prefix;
        if prefix.is_empty()
            || prefix.len() > 64
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:{}".contains(&b))
        {
            return Err((
                "shared.prefix",
                "1 to 64 letters, digits, '-', '_', '.', ':', '{' or '}'".into(),
            ));
        }
        if !(1..=10_000).contains(&self.timeout_ms) {
            return Err(("shared.timeout_ms", "must be 1 to 10000".into()));
        }
        if !(100..=60_000).contains(&self.heartbeat_ms) {
            return Err(("shared.heartbeat_ms", "must be 100 to 60000".into()));
        }
        if self.load_ttl_ms < 2 * self.heartbeat_ms || self.load_ttl_ms > 600_000 {
            return Err((
                "shared.load_ttl_ms",
                format!(
                    "must be at least twice heartbeat_ms ({}) and at most 600000",
                    2 * self.heartbeat_ms
                ),
            ));
        }
        if !(16..=65_536).contains(&self.max_value_bytes) {
            return Err(("shared.max_value_bytes", "must be 16 to 65536".into()));
        }
        if self.tls_ca_file.is_some() && url.scheme() != "rediss" {
            return Err(("shared.tls_ca_file", "only for rediss:// (TLS) URLs".into()));
        }
        Ok(())
    }

    /// Where the state lives, as logs and `check` may say it: scheme, user, host, port
    /// and database — there is never a password in the URL.
    pub(crate) fn location(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(u) => {
                let user = if u.username().is_empty() {
                    String::new()
                } else {
                    format!("{}@", u.username())
                };
                let port = u.port().unwrap_or(6379);
                let db = u.path().trim_start_matches('/');
                let db = if db.is_empty() { "0" } else { db };
                format!(
                    "{}://{user}{}:{port}/{db}",
                    u.scheme(),
                    u.host_str().unwrap_or_default()
                )
            }
            Err(_) => "<unparsable>".into(),
        }
    }

    /// The password from `password_env`; `None` when no variable is named (or it is empty).
    pub(crate) fn password(&self) -> Option<String> {
        let var = self.password_env.as_ref()?;
        std::env::var(var).ok().filter(|p| !p.is_empty())
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub(crate) fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    pub(crate) fn load_ttl(&self) -> Duration {
        Duration::from_millis(self.load_ttl_ms)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(shared: &str) -> Result<Config, String> {
        Config::parse(Path::new("c.toml"), &format!("[shared]\n{shared}\n"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn without_shared_everything_stays_in_the_process() {
        assert!(Config::default().shared.is_none());
        let c = parse("url = \"redis://127.0.0.1:6390\"").unwrap();
        let s = c.shared.unwrap();
        assert_eq!(
            (
                s.prefix.as_str(),
                s.timeout_ms,
                s.heartbeat_ms,
                s.load_ttl_ms
            ),
            ("concierge", 50, 1000, 5000)
        );
        assert_eq!(s.location(), "redis://127.0.0.1:6390/0");
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_being_echoed() {
        let e = parse("url = \"rediss://app:s3cr3t-pw@redis.example:6380/2\"").unwrap_err();
        assert!(
            e.contains("shared.url") && e.contains("password_env"),
            "{e}"
        );
        assert!(!e.contains("s3cr3t-pw"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_with_their_field() {
        for (text, field) in [
            ("url = \"http://127.0.0.1:6379\"", "shared.url"),
            ("url = \"redis://127.0.0.1:6379/#insecure\"", "shared.url"),
            ("url = \"redis://127.0.0.1:6379/x\"", "shared.url"),
            ("url = \"redis://h\"\ntimeout_ms = 0", "shared.timeout_ms"),
            (
                "url = \"redis://h\"\nheartbeat_ms = 1000\nload_ttl_ms = 1500",
                "shared.load_ttl_ms",
            ),
            ("url = \"redis://h\"\nprefix = \"a b\"", "shared.prefix"),
            (
                "url = \"redis://h\"\npassword_env = \"hunter2!\"",
                "shared.password_env",
            ),
            (
                "url = \"redis://h\"\npassword_env = \"CONCIERGE_TEST_UNSET_VAR\"",
                "shared.password_env",
            ),
            (
                "url = \"redis://h\"\ntls_ca_file = \"ca.pem\"",
                "shared.tls_ca_file",
            ),
            (
                "url = \"redis://h\"\nmax_value_bytes = 1",
                "shared.max_value_bytes",
            ),
            ("url = \"redis://h\"\nsurprise = 1", "unknown field"),
            ("prefix = \"x\"", "missing field `url`"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(field), "{text}: {e}");
        }
    }

    #[test]
    fn a_ca_file_is_read_from_the_config_file_s_directory() {
        let c = Config::parse(
            Path::new("/srv/concierge/concierge.toml"),
            "[shared]\nurl = \"rediss://redis.example\"\ntls_ca_file = \"redis-ca.pem\"\n",
        )
        .unwrap();
        let ca = c.shared.unwrap().tls_ca_file.unwrap();
        assert_eq!(ca, Path::new("/srv/concierge/redis-ca.pem"));
    }
}
