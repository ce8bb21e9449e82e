//! One call, driving itself. The switch finds the call an input is for and runs one of its
//! handlers (`on_*`) with a [`Cx`]; everything the call does — SIP through the endpoint,
//! outputs, ports, index changes — goes through that context, and its deadlines through its
//! own [`TimerTable`].
//!
//! The call is the caller's leg ([`SipLeg`], with what only it has in [`Inbound`]), the
//! IVR's media ([`CallMedia`]), its flow run, at most one transfer under way
//! ([`Transfer`]: a REFER, or a bridge with its second leg) and what its record needs.

mod bridge;
mod cx;
mod dialog;
mod events;
mod flow;
mod http;
mod inbound;
mod keypad;
mod lockout;
mod media;
mod record;
mod refer;
mod setup;
mod teardown;
mod timers;

use std::sync::Arc;
use std::time::Instant;

use concierge_flow::{Action, CollectSpec, Collector, Run};
use concierge_sip::dialog::prack::ReliableProvisionals;
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::Request;

pub(crate) use bridge::Bridge;
pub(crate) use cx::{response_tagged, Cx};
pub(crate) use http::Comfort;
pub(crate) use timers::{CallTimer, TimerTable};

use crate::call_media::CallMedia;
use crate::identity::CallerIdentity;
use crate::leg::SipLeg;
use crate::program::Program;
use crate::record::{EndedBy, TransferRecord};
use crate::switch::Key;

/// One inbound call.
pub(crate) struct Call {
    pub(crate) span: tracing::Span,
    /// The caller's leg: we are its UAS.
    pub(crate) caller: SipLeg,
    /// What only the caller's leg has: its INVITE and our answer to it.
    pub(crate) inbound: Inbound,
    /// Who is calling, settled when the INVITE arrived.
    pub(crate) identity: CallerIdentity,
    /// The caller's RTP as the IVR hears and feeds it: receiver, paced sender, prompts,
    /// digits.
    pub(crate) media: CallMedia,
    /// The call's flow run, when a flow handles the called number. Boxed: 880 bytes a
    /// call without a flow would carry, and copy with every move of the call, for
    /// nothing; one with a flow pays one allocation.
    pub(crate) flow: Option<Box<FlowState>>,
    /// The transfer under way, if any.
    pub(crate) transfer: Transfer,
    /// What only the call's record reads.
    pub(crate) notes: Notes,
    pub(crate) timers: TimerTable,
    /// The longest a call may last (`SwitchConfig::max_call_duration`): then it ends,
    /// whatever it waits for. Kept in the switch's `expiry` set, not in the timer heap:
    /// the heap keeps a stale entry until its time, and hours-long deadlines of finished
    /// calls would pile up there.
    pub(crate) expires: Instant,
    /// The call's record is written: the switch drops it (and its index keys) once the
    /// handler returns.
    pub(crate) finished: bool,
}

/// What only the caller's leg has: the INVITE, its server transaction and our answer.
pub(crate) struct Inbound {
    pub(crate) invite: Request,
    /// The INVITE's server transaction.
    pub(crate) key: TsxKey,
    /// Our SDP: the answer to the INVITE's offer, or our offer when it had none (late
    /// offer, RFC 3264: it goes in the 200 and the ACK answers it).
    pub(crate) local_sdp: String,
    /// The `o=` version of our SDP, bumped on each re-INVITE answer (RFC 3264 §8).
    pub(crate) sdp_version: u64,
    /// Present when the call's 18x go reliably (the caller required or supports 100rel).
    pub(crate) reliable: Option<ReliableProvisionals>,
    /// The answer to the INVITE went out in a 183 (prompts play before the 200).
    pub(crate) early_media: bool,
    /// That 183 was reliable, so the INVITE's offer/answer is complete before the 200
    /// and an UPDATE may carry a new offer in the early dialog (RFC 3311 §5.1).
    pub(crate) early_answer_reliable: bool,
    /// The 200 waits for the PRACK of an outstanding reliable 18x (RFC 3262 §3).
    pub(crate) answer_waiting: bool,
}

/// What only the call's record reads.
pub(crate) struct Notes {
    /// When the INVITE arrived.
    pub(crate) arrived: Instant,
    /// When we answered (200 OK sent).
    pub(crate) answered: Option<Instant>,
    /// Who ended the call and why, once known (the first to say it stands).
    pub(crate) ending: Option<(EndedBy, String)>,
    /// The last transfer that came to an end.
    pub(crate) transfer: Option<TransferRecord>,
    /// When the flow first asked for a transfer (answer-to-transfer time).
    pub(crate) transfer_started: Option<Instant>,
    /// A transfer target or header came from a secret or `${ENV}`: not in logs or records.
    pub(crate) redact_target: bool,
    /// The lockout that stopped this call's code entry (`codes: number`).
    pub(crate) lockout: Option<String>,
}

impl Notes {
    /// Who ended the call and why, unless someone was named first.
    pub(crate) fn ended_by(&mut self, by: EndedBy, why: &str) {
        self.ending.get_or_insert_with(|| (by, why.to_owned()));
    }
}

/// A call's flow: the interpreter and what it waits for.
pub(crate) struct FlowState {
    pub(crate) run: Run,
    pub(crate) waiting: Waiting,
    /// An action that needs media, held until the ACK brings the media up.
    pub(crate) deferred: Option<Action>,
    /// The program (flows, prompts) in force when the flow started: its prompts are the
    /// ones this call plays, whatever a reload installs meanwhile.
    pub(crate) program: Arc<Program>,
    /// Comfort audio of the HTTP request in flight (`comfort = { … }` on its node).
    pub(crate) comfort: Option<Comfort>,
    /// The request in flight, kept when its node caches: its result settles the cache.
    pub(crate) in_flight: Option<concierge_flow::HttpRequest>,
    /// How many of the run's node visits were told as events (`call_events`).
    pub(crate) told: usize,
    /// Whether the shared store's answer about the flow's lockout groups is still to come.
    pub(crate) store: StoreCheck,
}

/// Where a call stands with the shared store's lockout answer (`[shared]`), asked for
/// when its flow starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreCheck {
    /// Asked, not answered, not yet overdue: a keypad of a lockout group waits.
    Pending,
    /// Answered, overdue, or never asked (no `[shared]`, no lockout group): keypads go
    /// by the switch's table alone.
    Settled,
}

/// What a call's flow waits for.
pub(crate) enum Waiting {
    Nothing,
    /// The playlist to finish, then `PromptFinished`.
    Prompt,
    /// As `Prompt`, but a key stops it (an `interruptible` play): the key stays for the
    /// next keypad.
    BargeIn,
    /// Digits, by this collector (prompt playing with barge-in, then the timers).
    Collect(Collector),
    /// The shared store's lockout answer, before this keypad may start
    /// ([`CallTimer::StoreAnswer`] bounds the wait).
    Lockout(CollectSpec),
    /// The driver's HTTP result. The driver enforces the node's timeout; ours
    /// ([`CallTimer::HttpOverdue`], a little later) makes sure a result that never comes
    /// cannot hold the call.
    Http,
    /// The playlist to finish, then this action (a transfer or hangup with a prompt).
    PromptThen(Box<Action>),
    /// The outcome of a transfer.
    Transfer,
    Done,
}

/// The transfer a call has under way: one at a time.
pub(crate) enum Transfer {
    Idle,
    /// A REFER in the caller's dialog (RFC 3515), waiting for its answer and NOTIFYs.
    Refer(refer::Refer),
    /// A bridge: the second leg to the target, ringing or up — or over, and kept so that
    /// a 2xx that crossed our CANCEL is still ACKed and ended.
    Bridge(Box<Bridge>),
}

impl Transfer {
    pub(crate) fn bridge(&self) -> Option<&Bridge> {
        match self {
            Self::Bridge(b) => Some(b),
            _ => None,
        }
    }

    pub(crate) fn bridge_mut(&mut self) -> Option<&mut Bridge> {
        match self {
            Self::Bridge(b) => Some(b),
            _ => None,
        }
    }

    pub(crate) fn refer_mut(&mut self) -> Option<&mut refer::Refer> {
        match self {
            Self::Refer(r) => Some(r),
            _ => None,
        }
    }
}

impl Call {
    /// Everything the switch may have indexed this call by, each handed to `key`, for
    /// when it leaves: the switch removes each key that still leads to this call. (Handed
    /// out, not collected: a call's end allocates no list of them.)
    pub(crate) fn into_keys(self, mut key: impl FnMut(Key)) {
        let Self {
            caller,
            inbound,
            transfer,
            ..
        } = self;
        // The early dialog is the confirmed one once answered (same tags): its key then
        // comes with the leg's, and is not made (three strings) to be removed twice.
        let invite = &inbound.invite;
        let answered = caller.state.dialog().is_some_and(|d| {
            d.id.call_id == invite.call_id
                && d.id.local_tag == caller.local_tag
                && d.id.remote_tag == *invite.from.tag().unwrap_or_default()
        });
        let early = (!answered).then(|| setup::early_dialog_id(invite, &caller.local_tag));
        key(Key::Invite(inbound.key));
        key(Key::CallId(inbound.invite.call_id));
        if let Some(early) = early {
            key(Key::Dialog(early));
        }
        caller.into_keys().for_each(&mut key);
        match transfer {
            Transfer::Idle => {}
            Transfer::Refer(refer) => refer.key.map(Key::Request).into_iter().for_each(key),
            Transfer::Bridge(bridge) => bridge.into_keys().for_each(key),
        }
    }
}
