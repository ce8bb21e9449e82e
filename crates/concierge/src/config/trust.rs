//! `[lockout]` and `[transfer]`: what guards the codes callers type and the context we
//! hand on with a transfer.

use std::time::Duration;

use serde::Deserialize;

use super::Config;

/// Failed code attempts across calls (a keypad with `lockout = "…"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LockoutConfig {
    /// Failed attempts from one caller number within the window before code entry locks.
    pub(crate) max_failures_per_number: u32,
    /// Failed attempts from one source address that is not a trusted peer.
    pub(crate) max_failures_per_source: u32,
    /// How far back failures count, and how long a lock lasts.
    pub(crate) window_s: u64,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        Self {
            max_failures_per_number: 5,
            max_failures_per_source: 20,
            window_s: 15 * 60,
        }
    }
}

/// The signed transfer context (`X-Concierge-Token`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TransferConfig {
    /// The environment variable holding the HMAC key. When it is unset or empty, transfer
    /// headers go unsigned (and the log says so at start-up).
    pub(crate) token_key_env: String,
    /// How long a token is accepted after the transfer.
    pub(crate) token_ttl_s: u64,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            token_key_env: "CONCIERGE_TRANSFER_KEY".into(),
            token_ttl_s: 120,
        }
    }
}

impl Config {
    /// The `[lockout]` limits as the switch's lockout table takes them; read by the driver
    /// when it builds the switch.
    pub(crate) fn lockout(&self) -> concierge_b2bua::LockoutConfig {
        concierge_b2bua::LockoutConfig {
            max_per_number: self.lockout.max_failures_per_number,
            max_per_source: self.lockout.max_failures_per_source,
            window: Duration::from_secs(self.lockout.window_s),
        }
    }

    /// The transfer-token signer, with the key from the environment; `None` when the
    /// variable is unset or empty.
    pub(crate) fn transfer_signer(&self) -> Option<concierge_b2bua::TransferSigner> {
        let key = std::env::var(&self.transfer.token_key_env).ok()?;
        (!key.is_empty()).then(|| {
            concierge_b2bua::TransferSigner::new(key.into_bytes(), self.transfer.token_ttl_s)
        })
    }
}
