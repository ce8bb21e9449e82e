//! What a leg's dialog asks of every request and answer, on either leg: requests in order
//! (§12.2.2), an offer crossing ours refused (glare), BYE either way, and the ACK of a 2xx
//! resent when the 2xx is.

use bytes::Bytes;
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::{response_to, Method, Request, Response, StatusCode};

use super::SipLeg;
use crate::call::Cx;

impl SipLeg {
    /// §12.2.2: a request in the leg's dialog out of order (a lower CSeq) is answered here
    /// with the dialog's refusal; the dialog's remote target is refreshed. Returns whether
    /// the request goes on to be handled.
    pub(crate) fn admit(&mut self, cx: &mut Cx<'_>, key: &TsxKey, request: &Request) -> bool {
        let Some(dialog) = self.state.dialog_mut() else {
            return true;
        };
        match dialog.handle_remote_request(request) {
            Ok(()) => true,
            Err(rejection) => {
                cx.respond(key, response_to(request, rejection.status(), None));
                false
            }
        }
    }

    /// RFC 3261 §14.2 / RFC 3311 §5.2: an offer (a re-INVITE, an UPDATE with SDP) that
    /// crosses our refresh re-INVITE gets 491. Returns whether `request` was refused so.
    pub(crate) fn refuse_glare(&self, cx: &mut Cx<'_>, key: &TsxKey, request: &Request) -> bool {
        let offer = request.method == Method::Invite || !request.body.is_empty();
        if !(offer && self.session.offer_in_flight()) {
            return false;
        }
        cx.respond(key, response_to(request, StatusCode::REQUEST_PENDING, None));
        true
    }

    /// Our BYE in the leg's dialog, to its next hop. Returns its transaction; `None` when
    /// the leg has no dialog.
    pub(crate) fn send_bye(&mut self, cx: &mut Cx<'_>) -> Option<TsxKey> {
        let peer = self.next_hop();
        let bye = self.state.dialog_mut()?.new_request(Method::Bye);
        Some(cx.send(bye, peer))
    }

    /// A 2xx retransmitted because our ACK was lost (§13.2.2.4): the ACK of the INVITE it
    /// answers goes again to the leg's next hop — our last refresh re-INVITE's, else
    /// `first_ack` (a bridge leg's first INVITE's). Returns whether one was sent.
    pub(crate) fn reack(
        &self,
        cx: &mut Cx<'_>,
        response: &Response,
        first_ack: Option<&Bytes>,
    ) -> bool {
        let Some(ack) = self.session.reack(response.cseq.seq).or(first_ack).cloned() else {
            return false;
        };
        cx.send_raw(self.next_hop(), ack);
        true
    }
}
