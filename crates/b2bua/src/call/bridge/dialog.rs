//! The bridge leg's dialog: what the target sends in it (BYE, a re-INVITE or UPDATE with
//! its new session, INFO …) and RFC 4028 on the leg, where we are the UAC — a leg whose
//! session expires, or whose refresh fails, ends the whole call.

use std::net::SocketAddr;

use concierge_media::sdp;
use concierge_sip::dialog::session_timer::SessionTimerEvent;
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::{response_to, HeaderName, Method, Request, Response, StatusCode};
use tracing::{info, warn};

use crate::call::{Call, Cx};
use crate::family;
use crate::leg::{RefreshAnswer, TimerTurn};
use crate::record::EndedBy;

impl Call {
    /// A request of the target in the bridge leg's dialog.
    pub(in crate::call) fn on_leg_request(
        &mut self,
        cx: &mut Cx<'_>,
        key: TsxKey,
        request: Request,
    ) {
        let Some(bridge) = self.transfer.bridge_mut() else {
            return;
        };
        if !bridge.leg.admit(cx, &key, &request) {
            return;
        }
        match request.method {
            Method::Bye => {
                cx.respond(&key, response_to(&request, StatusCode::OK, None));
                bridge.leg.state.give_up();
                info!(
                    to_target = bridge.relayed[0],
                    to_caller = bridge.relayed[1],
                    "the transfer target hung up"
                );
                bridge.leg.port.close(cx);
                let why = "transfer target hung up";
                self.notes.ending = Some((EndedBy::Target, why.into()));
                self.hang_up(cx, why);
            }
            Method::Invite | Method::Update if bridge.leg.refuse_glare(cx, &key, &request) => {}
            Method::Invite | Method::Update => {
                // A session refresh or new address from the target: same codec, same port.
                let offer = String::from_utf8_lossy(&request.body);
                let ours = bridge.leg.srtp.offer_key(cx.cfg.srtp);
                if let Ok(audio) = sdp::accept_with(&offer, ours) {
                    bridge.leg.srtp.keyed(audio.srtp.as_ref());
                    let dropped = bridge.foreign_dropped();
                    bridge.set_audio(audio);
                    self.media.add_foreign(dropped);
                }
                let mut r = response_to(&request, StatusCode::OK, None);
                bridge.leg.refreshed_by_peer(cx, &request, &mut r.headers);
                // RFC 3311: an UPDATE without SDP is answered without SDP.
                let offered = request.method == Method::Invite || !request.body.is_empty();
                let port = bridge.leg.port.number();
                if let (true, Some(port), Some(caller)) =
                    (offered, port, self.caller.audio.as_ref())
                {
                    let peer = bridge.leg.peer;
                    let local = SocketAddr::new(family::media_ip_for(cx.cfg, peer.addr.ip()), port);
                    let contact = family::local_contact(cx.cfg, peer);
                    let key = bridge.leg.srtp.offer_key(cx.cfg.srtp);
                    r.headers
                        .push_joined(HeaderName::CONTACT, &["<", contact.as_str(), ">"]);
                    r.headers.push(HeaderName::CONTENT_TYPE, "application/sdp");
                    r.body = sdp::offer_for_with(local, 2, caller, key).into();
                }
                cx.respond(&key, r);
            }
            Method::Info | Method::Options | Method::Notify => {
                cx.respond(&key, response_to(&request, StatusCode::OK, None));
            }
            _ => {
                let r = response_to(&request, StatusCode::NOT_IMPLEMENTED, None);
                cx.respond(&key, r);
            }
        }
    }

    /// The answer to our refresh on the bridge leg, if `key` is one (`None`: it timed out).
    pub(in crate::call) fn leg_refresh_answer(
        &mut self,
        cx: &mut Cx<'_>,
        key: &TsxKey,
        response: Option<&Response>,
    ) -> Option<RefreshAnswer> {
        let bridge = self.transfer.bridge_mut()?;
        bridge.leg.on_refresh_answer(cx, key, response)
    }

    /// What that answer means for the call.
    pub(in crate::call) fn leg_refresh_answered(&mut self, cx: &mut Cx<'_>, answer: RefreshAnswer) {
        match answer {
            RefreshAnswer::Pending | RefreshAnswer::Refreshed | RefreshAnswer::Refused(_) => {}
            RefreshAnswer::Failed(status) => {
                let why = format!("bridge leg session refresh answered {status}");
                self.leg_session_over(cx, &why);
            }
            RefreshAnswer::Unanswered => {
                self.leg_session_over(cx, "no answer to the bridge leg's session refresh");
            }
        }
    }

    /// The bridge leg's session timer is due: refresh it, or it expired.
    pub(crate) fn leg_session_due(&mut self, cx: &mut Cx<'_>) {
        let Some(bridge) = self.transfer.bridge_mut() else {
            return;
        };
        match bridge.leg.turn_session(cx.now) {
            TimerTurn::Event(SessionTimerEvent::Refresh) => {
                // §7.4: UPDATE when the target allows it, else a re-INVITE with our offer.
                let offer = bridge.invite.as_ref().map(|i| i.body.clone());
                if let Some((method, _)) = bridge.leg.send_refresh(cx, offer) {
                    info!(%method, "refreshing the bridge leg's session");
                }
            }
            TimerTurn::Event(SessionTimerEvent::Expired) => {
                self.leg_session_over(cx, "bridge leg session expired: no refresh (RFC 4028)");
            }
            TimerTurn::Idle | TimerTurn::Dropped => {}
        }
    }

    /// The leg is dead (expired, or its refresh failed): BYE it and hang up the caller.
    fn leg_session_over(&mut self, cx: &mut Cx<'_>, why: &str) {
        if let Some(bridge) = self.transfer.bridge_mut() {
            bridge.leg.session.timer = None;
            bridge.bye(cx);
        }
        warn!(why, "ending the bridged call");
        self.notes.ending = Some((EndedBy::Network, why.to_owned()));
        self.hang_up(cx, why);
    }
}
