//! Transfers: REFER (RFC 3515, with the implicit subscription's NOTIFYs carrying
//! `message/sipfrag`) and 302 redirect before the answer.

use concierge_sip::wire::StatusCode;

pub use concierge_flow::{TransferMode, TransferOutcome};

/// Progress reported by one NOTIFY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReferProgress {
    /// A provisional status (or none yet): the new call is under way.
    Trying,
    /// The new call was answered: the transfer succeeded.
    Succeeded,
    /// The new call failed with this final status.
    Failed(StatusCode),
    /// The subscription ended without any final status.
    Ended,
}

/// RFC 3515 §2.4.5: the NOTIFY body is a `message/sipfrag` whose first line is the
/// status line of the response the new call got.
pub(crate) fn sipfrag_status(body: &[u8]) -> Option<StatusCode> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().next()?.trim();
    let rest = line.strip_prefix("SIP/2.0 ")?;
    let code: u16 = rest.split_whitespace().next()?.parse().ok()?;
    (100..700).contains(&code).then_some(StatusCode(code))
}

/// Reads a NOTIFY of the refer subscription. `terminated` is the Subscription-State; a
/// subscription that ends without a final status is a failure.
pub(crate) fn progress(body: &[u8], terminated: bool) -> ReferProgress {
    match sipfrag_status(body) {
        Some(s) if s.is_success() => ReferProgress::Succeeded,
        Some(s) if s.is_final() => ReferProgress::Failed(s),
        _ if terminated => ReferProgress::Ended,
        _ => ReferProgress::Trying,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sipfrag_first_line_is_the_status() {
        assert_eq!(
            sipfrag_status(b"SIP/2.0 100 Trying\r\n"),
            Some(StatusCode(100))
        );
        assert_eq!(sipfrag_status(b"SIP/2.0 200 OK"), Some(StatusCode(200)));
        assert_eq!(sipfrag_status(b"garbage"), None);
        assert_eq!(sipfrag_status(b"SIP/2.0 9999 x"), None);
    }

    #[test]
    fn progress_by_status_and_subscription_state() {
        assert_eq!(
            progress(b"SIP/2.0 180 Ringing", false),
            ReferProgress::Trying
        );
        assert_eq!(progress(b"SIP/2.0 200 OK", true), ReferProgress::Succeeded);
        assert_eq!(
            progress(b"SIP/2.0 486 Busy Here", true),
            ReferProgress::Failed(StatusCode(486))
        );
        assert_eq!(progress(b"", true), ReferProgress::Ended);
    }
}
