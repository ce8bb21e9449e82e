//! How a call ends: our BYE, a refusal while it still rings, the maximum duration, a
//! shutdown; and [`Call::finish`], the one way out — its transfer ended, its port given
//! back, its record written. The switch then drops it and every index key it held.

use std::time::Instant;

use concierge_sip::wire::StatusCode;
use tracing::{info, warn};

use super::{Call, Cx};
use crate::leg::LegState;
use crate::output::Output;
use crate::record::EndedBy;
use crate::switch::Key;

impl Call {
    /// Ends an answered call from our side with BYE (§15.1.1); `why` goes to the record
    /// unless someone else was named first.
    pub(crate) fn hang_up(&mut self, cx: &mut Cx<'_>, why: &str) {
        if self.finished || !self.caller.state.is_up() {
            // Not answered yet (nothing to BYE), or our BYE is already out.
            return;
        }
        let Some(bye) = self.caller.send_bye(cx) else {
            return;
        };
        self.notes.ended_by(EndedBy::Concierge, why);
        info!(why, "hanging up");
        cx.index(Key::Request(bye.clone()));
        self.caller.state.end_with(bye);
        // The media is over once we said BYE: the port goes back to the pool now, not
        // when (or whether) the peer answers the BYE up to 64·T1 later.
        self.media.next_send = None;
        self.caller.port.close(cx);
    }

    /// BYE for an answered call, `early_status` for one still ringing.
    pub(crate) fn end_from_our_side(
        &mut self,
        cx: &mut Cx<'_>,
        early_status: StatusCode,
        why: &str,
    ) {
        match self.caller.state {
            LegState::Early => {
                self.answer_invite(cx, early_status);
                self.end(cx, EndedBy::Concierge, why);
            }
            LegState::Answered { .. } | LegState::Up { .. } => self.hang_up(cx, why),
            _ => {}
        }
    }

    /// The call outlived `max_call_duration`. A BYE already on its way gets as long as a
    /// transaction can take (64·T1); after that the call is over regardless. Returns the
    /// call's new expiry while it goes on.
    pub(crate) fn on_overlong(&mut self, cx: &mut Cx<'_>) -> Option<Instant> {
        if self.caller.state.is_ending() {
            self.end(cx, EndedBy::Concierge, "maximum call duration");
            return None;
        }
        warn!("the call reached its maximum duration; ending it");
        self.expires = cx.now + cx.cfg.timers.t1 * 64;
        let why = "maximum call duration";
        self.end_from_our_side(cx, StatusCode::TEMPORARILY_UNAVAILABLE, why);
        (!self.finished).then_some(self.expires)
    }

    /// The call is over; `by` is who ended it (unless someone was named first).
    pub(crate) fn end(&mut self, cx: &mut Cx<'_>, by: EndedBy, why: &str) {
        self.notes.ended_by(by, why);
        self.finish(cx);
    }

    /// Every call ends here, whatever the path: a transfer still under way is recorded as
    /// such (the last finished attempt would otherwise stand for it) and ended, the port
    /// goes back, and the record is written.
    pub(crate) fn finish(&mut self, cx: &mut Cx<'_>) {
        if self.finished {
            return;
        }
        let unfinished = self.unfinished_transfer();
        self.end_transfer(cx);
        if unfinished.is_some() {
            self.notes.transfer = unfinished;
        }
        self.caller.port.close(cx);
        let record = self.record(cx);
        // One line per call, whichever path ended it (a BYE either way, CANCEL, a timeout).
        info!(by = %record.ended_by, why = %record.reason, "call ended");
        self.tell_ended(cx, record.outcome);
        cx.emit(Output::Record(Box::new(record)));
        self.finished = true;
    }
}
