//! A trunk's registration in the operator's words: `concierge status`, the live console's
//! Trunks section and the metrics' `state` label all say it the same way. The words are
//! ours (`concierge_sip::registration::Failure` never carries a registrar's text), and no
//! credential is anywhere in a [`TrunkStatus`].

use std::time::Instant;

use concierge_b2bua::TrunkStatus;
use concierge_sip::registration::StatusState;

/// Every state's label value, as `concierge_trunk_state{state=…}` lists them.
pub(crate) const STATES: [&str; 6] = [
    "starting",
    "registered",
    "backing_off",
    "failed",
    "unregistering",
    "unregistered",
];

/// The state's label value (one of [`STATES`]).
pub(crate) fn state_name(state: &StatusState) -> &'static str {
    match state {
        StatusState::Starting => "starting",
        StatusState::Registered { .. } => "registered",
        StatusState::BackingOff { .. } => "backing_off",
        StatusState::Failed { .. } => "failed",
        StatusState::Unregistering => "unregistering",
        StatusState::Unregistered => "unregistered",
    }
}

/// Whether the trunk can take calls now (shown green).
pub(crate) fn is_up(state: &StatusState) -> bool {
    matches!(state, StatusState::Registered { .. })
}

/// `registered, expires in 1795 s; last response 200`, as of `now`.
pub(crate) fn describe(status: &TrunkStatus, now: Instant) -> String {
    let secs = |at: Instant| at.saturating_duration_since(now).as_secs();
    let state = match &status.status.state {
        StatusState::Starting => "registering".to_owned(),
        StatusState::Registered { expires_at } => {
            format!("registered, expires in {} s", secs(*expires_at))
        }
        StatusState::BackingOff { until, why } => {
            format!("not registered ({why}), next attempt in {} s", secs(*until))
        }
        StatusState::Failed { why } => format!("failed ({why}), not retried until a reload"),
        StatusState::Unregistering => "unregistering".to_owned(),
        StatusState::Unregistered => "unregistered".to_owned(),
    };
    match status.status.last_response {
        Some(code) => format!("{state}; last response {}", code.0),
        None => format!("{state}; no response yet"),
    }
}

/// `concierge status`'s lines: one per trunk, `NAME (AOR): …`.
pub(crate) fn report(trunks: &[TrunkStatus], now: Instant) -> String {
    if trunks.is_empty() {
        return "trunks: none configured\n".to_owned();
    }
    trunks
        .iter()
        .map(|t| format!("trunk {} ({}): {}\n", t.name, t.aor, describe(t, now)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use concierge_sip::registration::{Failure, Status};
    use concierge_sip::wire::StatusCode;

    use super::*;

    fn trunk(state: StatusState, last: Option<u16>) -> TrunkStatus {
        TrunkStatus {
            name: "carrier".into(),
            aor: "sip:+4612345@carrier.example".into(),
            status: Status {
                state,
                last_response: last.map(StatusCode),
            },
        }
    }

    #[test]
    fn each_state_reads_as_the_operator_needs_it() {
        let now = Instant::now();
        let up = trunk(
            StatusState::Registered {
                expires_at: now + Duration::from_secs(90),
            },
            Some(200),
        );
        assert_eq!(
            report(&[up], now),
            "trunk carrier (sip:+4612345@carrier.example): registered, expires in 90 s; last response 200\n"
        );
        let down = trunk(
            StatusState::Failed {
                why: Failure::Refused(StatusCode(403)),
            },
            Some(403),
        );
        assert_eq!(
            describe(&down, now),
            "failed (the registrar answered 403 Forbidden), not retried until a reload; last response 403"
        );
        let waiting = trunk(
            StatusState::BackingOff {
                until: now + Duration::from_secs(20),
                why: Failure::NoResponse,
            },
            None,
        );
        assert_eq!(
            describe(&waiting, now),
            "not registered (no response from the registrar), next attempt in 20 s; no response yet"
        );
        assert_eq!(report(&[], now), "trunks: none configured\n");
    }
}
