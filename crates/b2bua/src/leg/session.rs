//! RFC 4028 on a leg, the same for the caller's and a bridge's: the session timer once it
//! was agreed (at our 200, or in the target's 2xx), our refresh when we are the refresher
//! (UPDATE without SDP when the peer allows it, else a re-INVITE offering our session
//! unchanged), its answer, and the peer's own refresh. What to do when a leg's session
//! dies is the call's decision.

use std::time::{Duration, Instant};

use bytes::Bytes;
use concierge_sip::dialog::session_timer::{
    negotiate_uas, Agreed, Negotiation, Refresher, SessionExpires, SessionTimer, SessionTimerEvent,
};
use concierge_sip::dialog::Dialog;
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::{HeaderName, Headers, Method, Request, Response, StatusCode};

use super::SipLeg;
use crate::call::Cx;
use crate::switch::{Key, ALLOW, SUPPORTED};

/// A leg's session timer and our refresh in flight.
#[derive(Debug, Default)]
pub(crate) struct SessionRefresh {
    /// What the caller's INVITE agreed (we are its UAS); the timer starts from it with
    /// our 200. A bridge leg has none: its timer comes from the target's 2xx.
    pub(crate) agreed: Option<Agreed>,
    /// Runs once the leg is answered, when a session interval was agreed.
    pub(crate) timer: Option<SessionTimer>,
    /// The peer's Allow lists UPDATE: we refresh with it, else with a re-INVITE.
    pub(crate) use_update: bool,
    /// Our refresh waiting for its answer.
    in_flight: Option<Refresh>,
    /// The ACK of our last refresh re-INVITE's 2xx and its CSeq, resent when the 2xx is.
    reack: Option<(u32, Bytes)>,
}

/// A refresh request of ours in flight.
#[derive(Debug)]
struct Refresh {
    key: TsxKey,
    /// A re-INVITE carries our SDP as an offer: an offer arriving meanwhile is glare.
    is_invite: bool,
}

impl SessionRefresh {
    /// The session of a leg we answer: `agreed` when its INVITE asked for a timer,
    /// refreshed by UPDATE when `use_update`.
    pub(crate) fn answering(agreed: Option<Agreed>, use_update: bool) -> Self {
        Self {
            agreed,
            use_update,
            ..Self::default()
        }
    }

    /// An offer of ours is outstanding (RFC 3311 §5.2: an incoming offer is then 491).
    pub(crate) fn offer_in_flight(&self) -> bool {
        self.in_flight.as_ref().is_some_and(|r| r.is_invite)
    }

    /// The client transaction of our refresh in flight.
    pub(crate) fn key(&self) -> Option<&TsxKey> {
        self.in_flight.as_ref().map(|r| &r.key)
    }

    /// The ACK to resend for a retransmitted 2xx with CSeq `seq`, if it answers our
    /// last refresh re-INVITE.
    pub(crate) fn reack(&self, seq: u32) -> Option<&Bytes> {
        self.reack
            .as_ref()
            .filter(|(s, _)| *s == seq)
            .map(|(_, ack)| ack)
    }

    /// When the timer wants to be turned next.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.timer.as_ref().map(SessionTimer::poll_timeout)
    }
}

/// What a session timer has to say when its deadline comes.
pub(crate) enum TimerTurn {
    /// Not due.
    Idle,
    /// The session is not up (not yet answered, ending, or the leg over): the timer is
    /// dropped.
    Dropped,
    /// Refresh now, or the session expired.
    Event(SessionTimerEvent),
}

/// How our refresh was answered.
pub(crate) enum RefreshAnswer {
    /// A provisional response: still waiting.
    Pending,
    /// A 2xx: the session goes on, at the interval it names.
    Refreshed,
    /// 408 or 481 (§10): the dialog is gone on the far side.
    Failed(StatusCode),
    /// Any other final answer leaves the session as it was; the expiry decides.
    Refused(StatusCode),
    /// No answer at all: the peer is gone.
    Unanswered,
}

impl SipLeg {
    /// Turns the leg's session timer at `now`.
    pub(crate) fn turn_session(&mut self, now: Instant) -> TimerTurn {
        if !self.state.is_up() {
            self.session.timer = None;
            return TimerTurn::Dropped;
        }
        match self
            .session
            .timer
            .as_mut()
            .and_then(|t| t.handle_timeout(now))
        {
            Some(event) => TimerTurn::Event(event),
            None => TimerTurn::Idle,
        }
    }

    /// §7.4, we are the refresher: sends the refresh, offering `sdp` (our session as it
    /// is) when it has to be a re-INVITE. Returns its method and the interval it asks for;
    /// `None` when one is already out, or the leg has no dialog or timer.
    pub(crate) fn send_refresh(
        &mut self,
        cx: &mut Cx<'_>,
        sdp: Option<Bytes>,
    ) -> Option<(Method, Duration)> {
        if self.session.in_flight.is_some() {
            return None;
        }
        let interval = self.session.timer.as_ref()?.interval();
        let use_update = self.session.use_update;
        let peer = self.next_hop();
        let dialog = self.state.dialog_mut()?;
        let request = refresh_request(dialog, use_update, interval, sdp);
        let method = request.method.clone();
        let key = cx.send(request, peer);
        cx.index(Key::Request(key.clone()));
        self.session.in_flight = Some(Refresh {
            key,
            is_invite: !use_update,
        });
        Some((method, interval))
    }

    /// The answer to the refresh of ours with `key` (`None`: its transaction timed out).
    /// `None` when `key` is not our refresh. A re-INVITE's 2xx is ACKed here (§13.2.2.4),
    /// and the ACK kept for the 2xx's retransmissions.
    pub(crate) fn on_refresh_answer(
        &mut self,
        cx: &mut Cx<'_>,
        key: &TsxKey,
        response: Option<&Response>,
    ) -> Option<RefreshAnswer> {
        if self.session.key() != Some(key) {
            return None;
        }
        if response.is_some_and(|r| r.status.is_provisional()) {
            return Some(RefreshAnswer::Pending);
        }
        let refresh = self.session.in_flight.take()?;
        cx.unindex(Key::Request(refresh.key));
        let Some(response) = response else {
            return Some(RefreshAnswer::Unanswered);
        };
        let status = response.status;
        if response.cseq.method == Method::Invite && status.is_success() {
            let peer = self.next_hop();
            let via = cx.endpoint.new_via(peer);
            if let Some(dialog) = self.state.dialog() {
                let ack = dialog.ack(response.cseq.seq, via).to_bytes();
                self.session.reack = Some((response.cseq.seq, ack.clone()));
                cx.send_raw(peer, ack);
            }
        }
        if status.is_success() {
            // A 2xx naming an interval below our floor is a peer error; it must not make
            // the timer fire at once.
            let min_se = cx.cfg.session_timer.min_se;
            if let Some(timer) = self.session.timer.as_mut() {
                let (interval, we) = refreshed_interval(response, timer.interval(), min_se);
                timer.refreshed(cx.now, interval, we);
            }
            Some(RefreshAnswer::Refreshed)
        } else if matches!(status.0, 408 | 481) {
            Some(RefreshAnswer::Failed(status))
        } else {
            Some(RefreshAnswer::Refused(status))
        }
    }

    /// The peer refreshed the session (any 2xx to its re-INVITE or UPDATE, RFC 4028
    /// §10): the timer restarts with what `request` negotiates, echoed in our 2xx's
    /// `headers`.
    pub(crate) fn refreshed_by_peer(
        &mut self,
        cx: &Cx<'_>,
        request: &Request,
        headers: &mut Headers,
    ) {
        let Some(timer) = self.session.timer.as_mut() else {
            return;
        };
        let agreed = match negotiate_uas(&request.headers, &cx.cfg.session_timer) {
            Negotiation::Agreed(a) => a,
            // Mid-call we do not refuse the session for it: where we answered the
            // INVITE, our minimum stands; elsewhere the interval we had stands.
            Negotiation::TooSmall { min_se } => match self.session.agreed {
                Some(mut a) => {
                    a.expires.delta = min_se;
                    a
                }
                None => return,
            },
        };
        timer.refreshed(cx.now, agreed.interval(), agreed.we_refresh());
        if let Some(a) = self.session.agreed.as_mut() {
            *a = agreed;
        }
        push_session_expires(headers, &agreed.expires, agreed.peer_supports);
    }
}

/// Session-Expires in a 2xx of ours, with `Require: timer` when the peer knows it.
pub(crate) fn push_session_expires(headers: &mut Headers, se: &SessionExpires, require: bool) {
    se.push_to(headers, HeaderName::SESSION_EXPIRES);
    if require {
        headers.push(HeaderName::REQUIRE, "timer");
    }
}

/// The refresh for `dialog`: an UPDATE without SDP when the peer allows UPDATE, else a
/// re-INVITE offering `sdp` (our current session, unchanged) — either naming us (`uac`)
/// the refresher at `interval`.
fn refresh_request(
    dialog: &mut Dialog,
    use_update: bool,
    interval: Duration,
    sdp: Option<Bytes>,
) -> Request {
    let method = if use_update {
        Method::Update
    } else {
        Method::Invite
    };
    let mut req = dialog.new_request(method);
    let se = SessionExpires {
        delta: interval.as_secs() as u32,
        refresher: Some(Refresher::Uac),
    };
    req.headers.push(HeaderName::SESSION_EXPIRES, se.value());
    req.headers.push(HeaderName::SUPPORTED, SUPPORTED);
    if !use_update {
        req.headers.push(HeaderName::ALLOW, ALLOW);
        if let Some(body) = sdp.filter(|b| !b.is_empty()) {
            req.headers
                .push(HeaderName::CONTENT_TYPE, "application/sdp");
            req.body = body;
        }
    }
    req
}

/// §7.4: what the refresh's 2xx agreed — the interval (never below our `min_se`) and
/// whether we still refresh (its `refresher` names sides from our view: `uac` is us).
/// Without Session-Expires the interval we had stands and we go on refreshing.
fn refreshed_interval(response: &Response, current: Duration, min_se: u32) -> (Duration, bool) {
    match SessionExpires::of(&response.headers) {
        Some(se) => (
            Duration::from_secs(se.delta.max(min_se).into()),
            se.refresher != Some(Refresher::Uas),
        ),
        None => (current, true),
    }
}
