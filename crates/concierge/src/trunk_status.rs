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
    describe_with(status, |at| {
        format!("in {} s", at.saturating_duration_since(now).as_secs())
    })
}

/// `registered, expires at 21:24:03 UTC; last response 200`: for a page that shows the
/// line until the next change, the clock time of each deadline (`now` is `unix_now`, in
/// Unix seconds).
pub(crate) fn describe_at(status: &TrunkStatus, now: Instant, unix_now: u64) -> String {
    describe_with(status, |at| {
        let t = unix_now + at.saturating_duration_since(now).as_secs();
        let day = t % 86_400;
        format!(
            "at {:02}:{:02}:{:02} UTC",
            day / 3600,
            day / 60 % 60,
            day % 60
        )
    })
}

/// The line, each deadline rendered by `when`.
fn describe_with(status: &TrunkStatus, when: impl Fn(Instant) -> String) -> String {
    let state = match &status.status.state {
        StatusState::Starting => "registering".to_owned(),
        StatusState::Registered { expires_at } => {
            format!("registered, expires {}", when(*expires_at))
        }
        StatusState::BackingOff { until, why } => {
            format!("not registered ({why}), next attempt {}", when(*until))
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

    #[test]
    fn a_page_shows_the_clock_time_of_a_deadline() {
        let now = Instant::now();
        let up = trunk(
            StatusState::Registered {
                expires_at: now + Duration::from_secs(90),
            },
            Some(200),
        );
        // 1800000000 is 08:00:00 UTC; 90 s later.
        assert_eq!(
            describe_at(&up, now, 1_800_000_000),
            "registered, expires at 08:01:30 UTC; last response 200"
        );
    }
}
