//! What a registration reports: its [`Status`] for status pages and metrics, and the
//! [`RegistrationEvent`]s of its transitions for the log.

use std::time::Instant;

use super::failure::Failure;
use crate::wire::StatusCode;

/// Where a registration stands, for `concierge status` and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The state.
    pub state: StatusState,
    /// The status code of the registrar's last final answer to a REGISTER, if any.
    pub last_response: Option<StatusCode>,
}

/// The states a registration can be seen in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusState {
    /// Not registered yet: the first attempt is under way (or not started).
    Starting,
    /// The registrar holds our binding until `expires_at` (a refresh may be under way, or
    /// backing off after a failed one: `last_response` tells).
    Registered {
        /// When the binding runs out unless refreshed.
        expires_at: Instant,
    },
    /// Not registered; the next attempt is at `until`.
    BackingOff {
        /// When the next attempt starts.
        until: Instant,
        /// Why the last attempt failed.
        why: Failure,
    },
    /// Stopped for good: nothing is retried until the configuration changes.
    Failed {
        /// Why.
        why: Failure,
    },
    /// The un-REGISTER (Expires: 0) is out.
    Unregistering,
    /// Over: un-registered (or never registered) and nothing more will be sent.
    Unregistered,
}

/// A transition worth a log line. Each names what happened in our own words (a
/// [`Failure`] never carries peer text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationEvent {
    /// The registrar holds our binding, and did not just before: the first registration,
    /// or back after one was lost (INFO).
    Registered {
        /// When it runs out unless refreshed.
        expires_at: Instant,
    },
    /// The binding we held is gone: it expired before a refresh succeeded (WARN). The
    /// registration goes on trying.
    Lost {
        /// What kept the refreshes from succeeding.
        why: Failure,
    },
    /// An attempt failed and another starts at `retry_at`. `consecutive` counts the
    /// failures since the last success (1: the first; a driver may WARN on that one only).
    AttemptFailed {
        /// Why.
        why: Failure,
        /// When the next attempt starts.
        retry_at: Instant,
        /// Failed attempts in a row.
        consecutive: u32,
    },
    /// Stopped for good (WARN, naming the trunk): 403, 404, rejected credentials …
    Stopped {
        /// Why.
        why: Failure,
    },
    /// The registration is over (after [`Registration::unregister`](super::Registration::unregister)).
    Unregistered {
        /// Whether the registrar confirmed the binding's removal.
        removal: Removal,
    },
}

/// How an un-registration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The registrar answered the Expires: 0 request with a 2xx.
    Confirmed,
    /// It answered with an error or not at all: the binding lapses at its expiry.
    Unconfirmed,
    /// There was no binding (and no REGISTER out) to remove: nothing was sent.
    NothingToRemove,
}
