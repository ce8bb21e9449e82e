//! State several instances keep in one Valkey/Redis (`[shared]`), so that behind a
//! dispatcher they act as one service: the keypad lockout (`lockout`), the lookup cache of
//! `http` nodes (`lookup`) and each instance's load (`load`). Dialogs and media never
//! leave the instance that owns the call.
//!
//! The store is a help, never a dependency: every operation is bounded by `timeout_ms`
//! and answers `Err` rather than wait longer, and each caller has a local answer to fall
//! back on (the switch's own lockout counts and lookup cache, this instance's own limits).
//! So a call is never refused, dropped or held up because the store is gone. An outage is
//! logged once at WARN when it starts and once at INFO when it ends (`health`), shown as
//! `concierge_shared_up` 0/1 and counted in `concierge_shared_errors_total`; the client
//! reconnects by itself.
//!
//! What goes in: key names hashed from what they stand for (`keys`), so no caller number,
//! address or code is a key; values are counts, times, instance names and the values
//! lookups save — never a body, never anything built from or saved into a secret (the
//! flow decides that: [`concierge_flow::ShareSpec`]).
//!
//! The client is the `redis` crate's [`ConnectionManager`]: one multiplexed connection
//! shared by every task, rebuilt in the background after a failure. Multi-step operations
//! are Lua scripts sent by `EVALSHA` (one round trip, atomic); the rest are single
//! commands or pipelines.

mod error;
mod health;
mod keys;
mod load;
mod lockout;
mod lookup;
mod status;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, RedisResult};

use crate::config::SharedConfig;
use crate::metrics::Metrics;

pub(crate) use error::{SharedError, StartError};
pub(crate) use load::{heartbeat, LocalLoad};
pub(crate) use lockout::locks_after;
pub(crate) use lookup::perform;

use health::Health;
use keys::Keys;

/// What an operation was for: the label of `concierge_shared_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Connect,
    Lockout,
    Lookup,
    Load,
}

impl Op {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Lockout => "lockout",
            Self::Lookup => "lookup",
            Self::Load => "load",
        }
    }
}

/// The handle every task uses (cheap to clone). Made by [`Shared::start`], which returns
/// at once: until the first connection is up, operations answer
/// [`SharedError::NotConnected`].
#[derive(Clone)]
pub(crate) struct Shared {
    inner: Arc<Inner>,
}

struct Inner {
    connection: OnceLock<ConnectionManager>,
    keys: Keys,
    timeout: Duration,
    heartbeat: Duration,
    load_ttl: Duration,
    max_value_bytes: usize,
    lockout: concierge_b2bua::LockoutConfig,
    /// This process among the instances: `[server] instance` and a random suffix, so two
    /// instances with the same name (or one restarted) never share a load entry.
    instance: String,
    health: Health,
}

/// How often the first connection is tried again while the store cannot be reached.
const CONNECT_RETRY: Duration = Duration::from_secs(1);

impl Shared {
    /// Builds the client from `[shared]` and starts connecting in the background. Fails
    /// only on what no retry can mend: a URL the client refuses, an unreadable CA file.
    pub(crate) fn start(
        cfg: &SharedConfig,
        instance: &str,
        lockout: concierge_b2bua::LockoutConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StartError> {
        let client = client(cfg)?;
        let suffix: u32 = rand::random();
        let shared = Self {
            inner: Arc::new(Inner {
                connection: OnceLock::new(),
                keys: Keys::new(&cfg.prefix),
                timeout: cfg.timeout(),
                heartbeat: cfg.heartbeat(),
                load_ttl: cfg.load_ttl(),
                max_value_bytes: cfg.max_value_bytes,
                lockout,
                instance: format!("{instance}-{suffix:08x}"),
                health: Health::new(cfg.location(), metrics),
            }),
        };
        // The manager's own limits sit above ours: it may take its time reconnecting while
        // each call gives up after `timeout_ms`. Its response timeout bounds what a hung
        // server can leave queued on the connection.
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(cfg.timeout().max(Duration::from_secs(1))))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(2));
        tokio::spawn(connect(shared.clone(), client, manager));
        Ok(shared)
    }

    /// This instance's name among the others (for the load entry).
    pub(crate) fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Runs `op` on the connection within `timeout_ms`, noting the outcome in the health
    /// (WARN once per outage, INFO on recovery, the metrics).
    async fn run<T, F, Fut>(&self, what: Op, op: F) -> Result<T, SharedError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        // Before the first connection the connecting task reports on the store's health
        // (once a second), not each operation that finds it missing.
        let Some(connection) = self.inner.connection.get() else {
            return Err(SharedError::NotConnected);
        };
        let result = match tokio::time::timeout(self.inner.timeout, op(connection.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(SharedError::Redis(e)),
            Err(_) => Err(SharedError::Timeout(self.inner.timeout.as_millis() as u64)),
        };
        match &result {
            Ok(_) => self.inner.health.ok(),
            Err(e) => self.inner.health.failed(what, e),
        }
        result
    }

    /// Whether the last operation succeeded (for tests and the start-up summary).
    #[cfg(test)]
    pub(crate) fn is_up(&self) -> bool {
        self.inner.health.is_up()
    }
}

/// For `concierge check`: whether `[shared]` would work as `run` sets it up (the URL the
/// client takes, the CA file), and what it says, without connecting.
pub(crate) fn check(cfg: &SharedConfig) -> Result<String, String> {
    client(cfg).map_err(|e| e.to_string())?;
    let password = match &cfg.password_env {
        Some(var) => format!(", password from ${var}"),
        None => String::new(),
    };
    Ok(format!(
        "shared state: {} (prefix {:?}{password}, timeout {} ms)",
        cfg.location(),
        cfg.prefix,
        cfg.timeout_ms
    ))
}

/// The client for `[shared] url`, with the password from `password_env` and, for
/// `rediss://` with `tls_ca_file`, that CA as the only root.
fn client(cfg: &SharedConfig) -> Result<redis::Client, StartError> {
    let info = cfg
        .url
        .as_str()
        .into_connection_info()
        .map_err(StartError::Url)?;
    let info = match cfg.password() {
        Some(p) => {
            let settings = info.redis_settings().clone().set_password(p);
            info.set_redis_settings(settings)
        }
        None => info,
    };
    match &cfg.tls_ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|source| StartError::CaFile {
                path: path.clone(),
                source,
            })?;
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            };
            redis::Client::build_with_tls(info, certs).map_err(StartError::Url)
        }
        None => redis::Client::open(info).map_err(StartError::Url),
    }
}

/// Makes the first connection, retrying each second until it is up; from then on the
/// manager reconnects by itself whenever an operation finds the connection broken.
async fn connect(shared: Shared, client: redis::Client, cfg: ConnectionManagerConfig) {
    loop {
        match ConnectionManager::new_with_config(client.clone(), cfg.clone()).await {
            Ok(manager) => {
                let _ = shared.inner.connection.set(manager);
                shared.inner.health.ok();
                return;
            }
            Err(e) => shared
                .inner
                .health
                .failed(Op::Connect, &SharedError::Redis(e)),
        }
        tokio::time::sleep(CONNECT_RETRY).await;
    }
}
