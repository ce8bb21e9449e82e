//! A session refresh as we send it (RFC 4028 §7.4, we are the refresher), the same on the
//! caller's leg and on a bridge leg: the request, and the interval its 2xx agrees.

use std::time::{Duration, Instant};

use bytes::Bytes;
use concierge_sip::dialog::session_timer::{
    Refresher, SessionExpires, SessionTimer, SessionTimerEvent,
};
use concierge_sip::dialog::Dialog;
use concierge_sip::wire::{HeaderName, Method, Request, Response};

use super::ALLOW;
use crate::carrier::SUPPORTED;

/// The refresh for `dialog`: an UPDATE without SDP when the peer allows UPDATE, else a
/// re-INVITE offering `sdp` (our current session, unchanged) — either naming us (`uac`)
/// the refresher at `interval`.
pub(super) fn refresh_request(
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

/// §7.4: what the refresh's 2xx agreed — the interval (never below our `min_se`: a
/// smaller one is a peer error that must not make the timer fire at once) and whether
/// we still refresh (its `refresher` names sides from our view: `uac` is us). Without
/// Session-Expires the interval we had stands and we go on refreshing.
pub(super) fn refreshed_interval(
    response: &Response,
    current: Duration,
    min_se: u32,
) -> (Duration, bool) {
    match SessionExpires::of(&response.headers) {
        Some(se) => (
            Duration::from_secs(se.delta.max(min_se).into()),
            se.refresher != Some(Refresher::Uas),
        ),
        None => (current, true),
    }
}

/// What a session timer has to say when its call's deadline comes.
pub(super) enum TimerTurn {
    /// Not due.
    Idle,
    /// The session is not up (not yet answered, ending, or the leg gone): the timer is
    /// dropped; `true` when it was due, so the deadline counts as handled.
    Dropped(bool),
    /// Refresh now, or the session expired.
    Event(SessionTimerEvent),
}

/// Turns `timer` (the caller's or a bridge leg's) at `now`; `up` says whether its
/// session is still up.
pub(super) fn turn(timer: &mut Option<SessionTimer>, up: bool, now: Instant) -> TimerTurn {
    if !up {
        return TimerTurn::Dropped(timer.take().is_some_and(|t| t.poll_timeout() <= now));
    }
    match timer.as_mut().and_then(|t| t.handle_timeout(now)) {
        Some(event) => TimerTurn::Event(event),
        None => TimerTurn::Idle,
    }
}
