//! RFC 4028 on the bridge leg, where we are the UAC: our INVITE offers a session timer,
//! the target's 2xx says who refreshes, a 422 is answered once with the target's Min-SE,
//! and a leg whose session expires (or whose refresh fails) ends the whole call.

use std::time::{Duration, Instant};

use concierge_sip::dialog::session_timer::{
    min_se_of, negotiate_uas, Negotiation, Refresher, SessionExpires, SessionTimer,
    SessionTimerConfig, SessionTimerEvent,
};
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::{HeaderName, Headers, Method, Request, Response};
use tracing::{debug, info, warn};

use super::refresh::{self, TimerTurn};
use super::Switch;
use crate::carrier::{Carrier, Refresh};
use crate::leg::LegState;
use crate::output::CallRef;
use crate::record::EndedBy;

/// §7.1: the leg's INVITE asks for our interval; we support the extension, so the target
/// may make either side the refresher.
pub(super) fn push_invite_session_timer(cfg: &SessionTimerConfig, headers: &mut Headers) {
    headers.push(HeaderName::SUPPORTED, "timer");
    headers.push(HeaderName::SESSION_EXPIRES, cfg.interval.to_string());
    headers.push(HeaderName::MIN_SE, cfg.min_se.to_string());
}

impl Switch {
    /// §7.2: the target's 2xx. A Session-Expires there starts the leg's timer; `uac` is us.
    pub(super) fn leg_answered_session_timer(&mut self, now: Instant, id: CallRef, ok: &Response) {
        let min_se = self.cfg.session_timer.min_se;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.carrier.leg_allows_update = ok
            .headers
            .get_all(&HeaderName::ALLOW)
            .flat_map(|v| v.split(','))
            .any(|m| m.trim() == "UPDATE");
        call.carrier.leg_timer = SessionExpires::of(&ok.headers).map(|se| {
            let we = se.refresher != Some(Refresher::Uas);
            call.span.in_scope(|| {
                debug!(
                    interval_s = se.delta,
                    we_refresh = we,
                    "bridge leg session timer"
                )
            });
            SessionTimer::new(now, Duration::from_secs(se.delta.max(min_se).into()), we)
        });
    }

    /// §7.3: a 422 from the target: INVITE once more with its Min-SE as our interval.
    /// Returns whether the INVITE went out again.
    pub(super) fn leg_retry_after_422(
        &mut self,
        now: Instant,
        id: CallRef,
        response: &Response,
    ) -> bool {
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        let Some(min_se) = min_se_of(&response.headers) else {
            return false;
        };
        let Some(leg) = call.bridge.as_mut() else {
            return false;
        };
        // A Min-SE beyond a day is a peer error, not a session interval.
        if call.carrier.leg_retried_422 || min_se > 86_400 || !leg.is_pending() {
            return false;
        }
        let Some(mut invite) = leg.invite.clone() else {
            return false;
        };
        call.carrier.leg_retried_422 = true;
        leg.cseq += 1;
        invite.cseq.seq = leg.cseq;
        invite
            .headers
            .set(HeaderName::SESSION_EXPIRES, min_se.to_string());
        invite.headers.set(HeaderName::MIN_SE, min_se.to_string());
        leg.invite = Some(invite.clone());
        let peer = leg.peer;
        call.span.in_scope(|| {
            info!(
                min_se,
                "target wants a longer session interval; INVITE again"
            )
        });
        let key = self.endpoint.send_request(now, invite, peer);
        self.set_leg_key(id, key);
        true
    }

    /// The leg's timer fired. Returns whether it did.
    pub(super) fn leg_timer_timeout(&mut self, now: Instant, id: CallRef) -> bool {
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        let up = call
            .bridge
            .as_ref()
            .is_some_and(|l| l.state == LegState::Up);
        match refresh::turn(&mut call.carrier.leg_timer, up, now) {
            TimerTurn::Dropped(due) => due,
            TimerTurn::Event(SessionTimerEvent::Refresh) => {
                self.refresh_leg(now, id);
                true
            }
            TimerTurn::Event(SessionTimerEvent::Expired) => {
                self.leg_session_over(now, id, "bridge leg session expired: no refresh (RFC 4028)");
                true
            }
            TimerTurn::Idle => false,
        }
    }

    /// The leg is dead (expired, or its refresh failed): BYE it and hang up the caller.
    fn leg_session_over(&mut self, now: Instant, id: CallRef, why: &str) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.carrier.leg_timer = None;
        call.span.in_scope(|| warn!(why, "ending the bridged call"));
        call.ending = Some((EndedBy::Network, why.to_owned()));
        self.bye_leg(now, id);
        self.hang_up(now, id, why);
    }

    /// §7.4 on the leg: UPDATE when the target allows it, else a re-INVITE with our offer.
    fn refresh_leg(&mut self, now: Instant, id: CallRef) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.carrier.leg_refresh.is_some() {
            return;
        }
        let use_update = call.carrier.leg_allows_update;
        let Some(interval) = call.carrier.leg_timer.as_ref().map(SessionTimer::interval) else {
            return;
        };
        let Some(leg) = call.bridge.as_mut() else {
            return;
        };
        let offer = leg.invite.as_ref().map(|i| i.body.clone());
        let Some(dialog) = leg.dialog.as_mut() else {
            return;
        };
        let req = refresh::refresh_request(dialog, use_update, interval, offer);
        let method = req.method.clone();
        let peer = dialog.next_hop(leg.peer);
        call.span
            .in_scope(|| info!(%method, "refreshing the bridge leg's session"));
        let key = self.endpoint.send_request(now, req, peer);
        self.by_client_tsx.insert(key.clone(), id);
        if let Some(call) = self.calls.get_mut(&id) {
            call.carrier.leg_refresh = Some(Refresh {
                key,
                is_invite: !use_update,
            });
        }
    }

    /// The answer to our leg refresh, or its timeout (`None`). Returns whether `key` was one.
    pub(super) fn on_leg_refresh_answer(
        &mut self,
        now: Instant,
        key: &TsxKey,
        response: Option<&Response>,
    ) -> bool {
        let min_se = self.cfg.session_timer.min_se;
        let Some(&id) = self.by_client_tsx.get(key) else {
            return false;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        if call.carrier.leg_refresh.as_ref().map(|r| &r.key) != Some(key) {
            return false;
        }
        if response.is_some_and(|r| r.status.is_provisional()) {
            return true;
        }
        call.carrier.leg_refresh = None;
        self.by_client_tsx.remove(key);
        let Some(response) = response else {
            self.leg_session_over(now, id, "no answer to the bridge leg's session refresh");
            return true;
        };
        if response.cseq.method == Method::Invite && response.status.is_success() {
            // §13.2.2.4: our re-INVITE's 2xx is ACKed by us.
            if let Some(d) = call
                .bridge
                .as_ref()
                .and_then(|l| l.dialog.as_ref().map(|d| (d, l.peer)))
            {
                let (dialog, leg_peer) = d;
                let peer = dialog.next_hop(leg_peer);
                let via = self.endpoint.new_via(peer);
                let ack = dialog.ack(response.cseq.seq, via).to_bytes();
                // Kept to answer a retransmitted 2xx whose ACK was lost.
                call.carrier.leg_refresh_ack = Some((response.cseq.seq, ack.clone()));
                self.endpoint.send_raw(peer, ack);
            }
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return true;
        };
        if response.status.is_success() {
            if let Some(t) = call.carrier.leg_timer.as_mut() {
                let (interval, we) = refresh::refreshed_interval(response, t.interval(), min_se);
                t.refreshed(now, interval, we);
            }
        } else if matches!(response.status.0, 408 | 481) {
            let why = format!("bridge leg session refresh answered {}", response.status);
            self.leg_session_over(now, id, &why);
        }
        self.rearm(id);
        true
    }
}

/// The target refreshed the leg's session (its re-INVITE or UPDATE): restart the timer
/// and echo the agreement in our 2xx.
pub(super) fn leg_refreshed_by_peer(
    carrier: &mut Carrier,
    now: Instant,
    request: &Request,
    headers: &mut Headers,
    cfg: &SessionTimerConfig,
) {
    let Some(timer) = carrier.leg_timer.as_mut() else {
        return;
    };
    let Negotiation::Agreed(a) = negotiate_uas(&request.headers, cfg) else {
        // Mid-call the session stays; the interval we had stands.
        return;
    };
    timer.refreshed(now, a.interval(), a.we_refresh());
    headers.push(HeaderName::SESSION_EXPIRES, a.expires.value());
    if a.peer_supports {
        headers.push(HeaderName::REQUIRE, "timer");
    }
}
