//! What a call keeps for the SIP extensions carrier networks use: reliable provisional
//! responses (RFC 3262), the session timer (RFC 4028), our own refresh request in flight
//! (RFC 3311 UPDATE or a re-INVITE) and early media.

use std::time::Instant;

use concierge_sip::dialog::prack::ReliableProvisionals;
use concierge_sip::dialog::session_timer::{Agreed, SessionTimer};
use concierge_sip::transaction::TsxKey;

/// The option tags we implement, for our Supported header and the endpoint's Require check.
pub(crate) const SUPPORTED: &str = "replaces, norefersub, 100rel, timer";

/// Per-call state of the carrier extensions.
#[derive(Debug, Default)]
pub(crate) struct Carrier {
    /// Present when the call's 18x go reliably (the caller required or supports 100rel).
    pub(crate) reliable: Option<ReliableProvisionals>,
    /// The session timer agreed when the INVITE arrived; runs once the call is answered.
    pub(crate) agreed: Option<Agreed>,
    pub(crate) timer: Option<SessionTimer>,
    /// Our refresh (UPDATE or re-INVITE) waiting for its answer.
    pub(crate) refresh: Option<Refresh>,
    /// The ACK of our last refresh re-INVITE and its CSeq, for 2xx retransmissions.
    pub(crate) refresh_ack: Option<(u32, bytes::Bytes)>,
    /// The caller's Allow lists UPDATE: we refresh with it, else with a re-INVITE.
    pub(crate) peer_allows_update: bool,
    /// The answer to the INVITE went out in a 183 (prompts play before the 200).
    pub(crate) early_media: bool,
    /// That 183 was reliable, so the INVITE's offer/answer is complete before the 200
    /// and an UPDATE may carry a new offer in the early dialog (RFC 3311 §5.1).
    pub(crate) early_answer_reliable: bool,
    /// The 200 waits for PRACKs of outstanding reliable 18x (RFC 3262 §3).
    pub(crate) answer_waiting: bool,
    /// The bridge leg's session timer, when the target agreed to one.
    pub(crate) leg_timer: Option<SessionTimer>,
    /// The target's Allow lists UPDATE: the leg is refreshed with it.
    pub(crate) leg_allows_update: bool,
    /// Our refresh on the bridge leg in flight.
    pub(crate) leg_refresh: Option<Refresh>,
    /// The ACK of our last refresh re-INVITE on the bridge leg and its CSeq.
    pub(crate) leg_refresh_ack: Option<(u32, bytes::Bytes)>,
    /// The leg's INVITE was already repeated after a 422 (once is enough).
    pub(crate) leg_retried_422: bool,
}

/// A refresh request of ours in flight.
#[derive(Debug)]
pub(crate) struct Refresh {
    pub(crate) key: TsxKey,
    /// A re-INVITE carries our SDP as an offer: an offer arriving meanwhile is glare (491).
    pub(crate) is_invite: bool,
}

impl Carrier {
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let prack = self
            .reliable
            .as_ref()
            .and_then(ReliableProvisionals::poll_timeout);
        let timer = self.timer.as_ref().map(SessionTimer::poll_timeout);
        let leg = self.leg_timer.as_ref().map(SessionTimer::poll_timeout);
        [prack, timer, leg].into_iter().flatten().min()
    }

    /// An offer of ours is outstanding (RFC 3311 §5.2: an incoming offer is then 491).
    pub(crate) fn offer_in_flight(&self) -> bool {
        self.refresh.as_ref().is_some_and(|r| r.is_invite)
    }
}
