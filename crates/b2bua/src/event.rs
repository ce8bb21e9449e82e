//! What a call is doing, as it happens: the per-call events the switch emits as
//! [`crate::Output::Event`] when [`crate::SwitchConfig::call_events`] is on (the driver
//! turns it on for the live console; off, nothing per call is built for them).
//!
//! A call record says what a call did once it has ended; these say it while it runs, so
//! the console can show calls in progress at their current node, and a desk's call widget
//! can pop up the moment a transfer to the desk goes out instead of when our leg ends.
//!
//! Every call the switch admits has exactly one [`CallEventKind::Arrived`] first and one
//! [`CallEventKind::Ended`] last, with the same `call_id`; in between come the nodes its
//! flow enters, in order, and for each transfer it starts one
//! [`CallEventKind::Transferred`] (a REFER sent, a bridge leg placed) and, once the
//! transfer settles, one [`CallEventKind::TransferEnded`] (a transfer cut short by the
//! call's end has none: `Ended` says it). A consumer keys its state by `call_id` and
//! forgets a call at `Ended`; the record of the same call follows in the same drain.
//! Secret variables never appear in an event.

use std::time::Instant;

use concierge_flow::{Recognition, TransferMode};
use concierge_sip::wire::Transport;

use crate::record::TransferResult;

/// One thing that happened to one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEvent {
    /// The caller's Call-ID: the same key its [`crate::CallRecord`] will carry.
    pub call_id: String,
    /// When it happened (the `now` of the input that caused it).
    pub at: Instant,
    /// What happened.
    pub kind: CallEventKind,
}

/// What happened to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEventKind {
    /// A new call was admitted (an RTP port reserved, its offer acceptable); its flow
    /// starts once its RTP port is bound.
    Arrived(Arrival),
    /// The call's flow entered a node (each node once per visit, conditions and sets too).
    NodeEntered {
        /// The flow's name, as in the record.
        flow: String,
        /// The node's id.
        node: String,
    },
    /// A transfer went out (a REFER sent, a bridge leg placed): the desk's widget can
    /// pop up now.
    Transferred(Transfer),
    /// The transfer under way settled: as the record's `transfer.result`.
    TransferEnded(TransferResult),
    /// The call left the switch; its record follows.
    Ended {
        /// As the record's `outcome`.
        outcome: crate::Outcome,
    },
}

/// Who is calling and how, as the switch settled it from the INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// The caller's E.164 number (`system.caller`); empty when anonymous.
    pub caller: String,
    /// A trusted peer asserted `caller`.
    pub verified: bool,
    /// The caller asked for privacy: show `caller` to nobody but the operator's records.
    pub private: bool,
    /// The Request-URI user the caller dialled.
    pub called: String,
    /// The flow calls to `called` run (its `name`), when one does.
    pub flow: Option<String>,
    /// How the INVITE came: UDP, TCP or TLS.
    pub transport: Transport,
    /// The caller's media is SRTP: as our SDP answer settled it, or, for an INVITE
    /// without an offer, as our offer in the 200 will ask.
    pub srtp: bool,
}

/// A transfer that went out, with what the desk's call widget shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The transfer node; empty for the driver's transfer command outside one.
    pub node: String,
    /// The target URI without the URI headers that carry the flow's variables
    /// (`<redacted>` when rendered from a secret or `${ENV}`).
    pub target: String,
    /// The desk: the target URI's user part (`vip-desk`, an agent's extension); `None` for
    /// a redacted target or one without a user.
    pub desk: Option<String>,
    /// How the flow asked to move the call.
    pub mode: TransferMode,
    /// The node's widget variables with their values (never a secret), in its order.
    pub widget: Vec<(String, String)>,
    /// How the caller was recognised as a VIP; `None`: not a VIP transfer.
    pub recognised: Option<Recognition>,
}

/// The desk a transfer target names: its user part (`sip:vip-desk@host` → `vip-desk`,
/// `tel:+4630…` → the number). `None` for a target without one (`sip:host`), or one whose
/// user is not plain text a page can show.
pub fn desk_of(target: &str) -> Option<String> {
    let rest = target
        .strip_prefix("sips:")
        .or_else(|| target.strip_prefix("sip:"))
        .or_else(|| target.strip_prefix("tel:"))?;
    let user = match rest.split_once('@') {
        Some((user, _)) => user,
        None if target.starts_with("tel:") => rest,
        None => return None,
    };
    let user = user.split([';', '?', ':']).next().unwrap_or_default();
    let plain = !user.is_empty()
        && user.len() <= 64
        && user.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+' | b'*' | b'#')
        });
    plain.then(|| user.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_desk_is_the_target_s_user_part() {
        assert_eq!(
            desk_of("sip:vip-desk@127.0.0.1:5060").as_deref(),
            Some("vip-desk")
        );
        assert_eq!(
            desk_of("sips:1001@pbx.example.com;transport=tls").as_deref(),
            Some("1001")
        );
        assert_eq!(
            desk_of("sip:1001;phone-context=x@pbx").as_deref(),
            Some("1001")
        );
        assert_eq!(desk_of("tel:+46301234567").as_deref(), Some("+46301234567"));
        assert_eq!(desk_of("sip:pbx.example.com"), None);
        assert_eq!(desk_of("<redacted>"), None);
        assert_eq!(
            desk_of("sip:%3Cscript%3E@x"),
            None,
            "escaped text is not a desk name"
        );
    }
}
