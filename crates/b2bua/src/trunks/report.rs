//! What a trunk's registration says in the log. Every line names the trunk; the reasons
//! are the registration's own words ([`Failure`] never carries peer text), so a registrar
//! cannot write into our log, and no line carries the password (it never leaves
//! `concierge_sip`).
//!
//! Registered and un-registered are INFO; a binding lost, a registration stopped for good,
//! and the first of a run of failed attempts are WARN; the failures after it DEBUG (a
//! registrar down for an hour gives one warning, not one every back-off).

use std::time::Instant;

use concierge_sip::registration::{Failure, RegistrationEvent, Removal};
use tracing::{debug, info, warn};

/// Logs `event` of trunk `trunk`, which happened at `now`.
pub(super) fn log(now: Instant, trunk: &str, event: &RegistrationEvent) {
    match *event {
        RegistrationEvent::Registered { expires_at } => info!(
            trunk,
            expires_in_s = secs(now, expires_at),
            "trunk registered"
        ),
        RegistrationEvent::Lost { why } => warn!(
            trunk,
            why = %why,
            "trunk registration lost; registering again"
        ),
        RegistrationEvent::AttemptFailed {
            why,
            retry_at,
            consecutive,
        } => {
            let retry_in_s = secs(now, retry_at);
            if consecutive == 1 {
                warn!(trunk, why = %why, retry_in_s, "trunk registration failed; retrying");
            } else {
                debug!(trunk, why = %why, retry_in_s, consecutive, "trunk registration failed again");
            }
        }
        RegistrationEvent::Stopped { why } => warn!(
            trunk,
            why = %why,
            hint = hint(why),
            "trunk registration stopped"
        ),
        RegistrationEvent::Unregistered { removal } => info!(
            trunk,
            binding = match removal {
                Removal::Confirmed => "removed",
                Removal::Unconfirmed => "left to expire (the registrar did not confirm)",
                Removal::NothingToRemove => "none held",
            },
            "trunk unregistered"
        ),
    }
}

/// What the operator can do about a registration that stopped.
fn hint(why: Failure) -> &'static str {
    match why {
        Failure::CredentialsRejected => "check the trunk's username, auth_username and password",
        Failure::Refused(s) if s.0 == 404 => "check the trunk's username and registrar",
        Failure::Challenge(_) => "the registrar's challenge cannot be answered",
        _ => "fix the trunk's configuration, then reload",
    }
}

fn secs(now: Instant, at: Instant) -> u64 {
    at.saturating_duration_since(now).as_secs()
}
