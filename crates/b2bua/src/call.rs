use std::time::Instant;

use concierge_sip::dialog::{AnswerRetransmit, Dialog};
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::Request;
use concierge_sip::{Peer, Tag};

use concierge_flow::{Action, Collector, Run};

use crate::record::EndedBy;
use crate::record::TransferRecord;
use crate::transfer::ReferTransfer;

/// Where a call is in its life. Each state holds what exists only in it: no dialog
/// before the answer, no 200 to retransmit once it is ACKed, a BYE's transaction only
/// while ending — so a handler cannot read what its state does not have.
pub(crate) enum CallState {
    /// INVITE received, no final answer yet.
    Early {
        /// The driver bound the call's port; until then the call only has 100 Trying.
        port_bound: bool,
        /// When to send the 200 OK (`SwitchConfig::answer_after`), while ringing.
        answer_at: Option<Instant>,
    },
    /// 200 OK sent, retransmitted until the ACK (§13.3.1.4).
    Answered {
        dialog: Dialog,
        retransmit: AnswerRetransmit,
    },
    /// ACK received: the call is up.
    Confirmed { dialog: Dialog },
    /// We sent BYE and wait for its answer.
    Ending {
        dialog: Dialog,
        /// Our BYE's client transaction.
        bye: TsxKey,
        /// A 200 still unACKed when we said BYE goes on being retransmitted until the
        /// ACK or its timeout.
        retransmit: Option<AnswerRetransmit>,
    },
}

impl CallState {
    /// What a state is swapped with while it is moved into the next one.
    const VACANT: Self = Self::Early {
        port_bound: false,
        answer_at: None,
    };

    /// The call's dialog, once answered.
    pub(crate) fn dialog(&self) -> Option<&Dialog> {
        match self {
            Self::Early { .. } => None,
            Self::Answered { dialog, .. }
            | Self::Confirmed { dialog }
            | Self::Ending { dialog, .. } => Some(dialog),
        }
    }

    pub(crate) fn dialog_mut(&mut self) -> Option<&mut Dialog> {
        match self {
            Self::Early { .. } => None,
            Self::Answered { dialog, .. }
            | Self::Confirmed { dialog }
            | Self::Ending { dialog, .. } => Some(dialog),
        }
    }

    /// The 200 OK being retransmitted, if one is unACKed.
    pub(crate) fn retransmit_mut(&mut self) -> Option<&mut AnswerRetransmit> {
        match self {
            Self::Answered { retransmit, .. } => Some(retransmit),
            Self::Ending { retransmit, .. } => retransmit.as_mut(),
            _ => None,
        }
    }

    /// The ringing call's answer timer is no longer wanted (the call is being answered,
    /// redirected or refused by other means).
    pub(crate) fn clear_answer_at(&mut self) {
        if let Self::Early { answer_at, .. } = self {
            *answer_at = None;
        }
    }

    /// A ringing call still waiting for the driver to bind its port.
    pub(crate) fn awaits_port(&self) -> bool {
        matches!(
            self,
            Self::Early {
                port_bound: false,
                ..
            }
        )
    }

    pub(crate) fn is_early(&self) -> bool {
        matches!(self, Self::Early { .. })
    }

    /// Answered (ACKed or not) and not ending: a call we can still BYE, REFER or refresh.
    pub(crate) fn is_up(&self) -> bool {
        matches!(self, Self::Answered { .. } | Self::Confirmed { .. })
    }

    pub(crate) fn is_confirmed(&self) -> bool {
        matches!(self, Self::Confirmed { .. })
    }

    pub(crate) fn is_ending(&self) -> bool {
        matches!(self, Self::Ending { .. })
    }

    /// The ACK came: an answered call is up, and a 200 retransmitted while ending stops.
    /// Returns whether the call became confirmed.
    pub(crate) fn confirm(&mut self) -> bool {
        let (next, confirmed) = match std::mem::replace(self, Self::VACANT) {
            Self::Answered { dialog, .. } => (Self::Confirmed { dialog }, true),
            Self::Ending {
                dialog,
                bye,
                mut retransmit,
            } => {
                if let Some(r) = retransmit.as_mut() {
                    r.handle_ack();
                }
                (
                    Self::Ending {
                        dialog,
                        bye,
                        retransmit,
                    },
                    false,
                )
            }
            other => (other, false),
        };
        *self = next;
        confirmed
    }

    /// We sent BYE in an answered call (`bye`: its transaction). `false` (and no change)
    /// when there is no dialog to end or a BYE is already out.
    pub(crate) fn end_with(&mut self, bye: TsxKey) -> bool {
        if !self.is_up() {
            return false;
        }
        *self = match std::mem::replace(self, Self::VACANT) {
            Self::Answered { dialog, retransmit } => Self::Ending {
                dialog,
                bye,
                retransmit: Some(retransmit),
            },
            Self::Confirmed { dialog } => Self::Ending {
                dialog,
                bye,
                retransmit: None,
            },
            other => other,
        };
        true
    }
}

/// One inbound call: the caller's INVITE, its dialog once answered, and the bookkeeping
/// the record needs.
pub(crate) struct Call {
    pub(crate) span: tracing::Span,
    pub(crate) state: CallState,
    pub(crate) invite: Request,
    pub(crate) invite_key: TsxKey,
    pub(crate) peer: Peer,
    pub(crate) local_tag: Tag,
    pub(crate) arrived: Instant,
    /// Our RTP port, from the pool; returned when the call is forgotten.
    pub(crate) rtp_port: Option<u16>,
    /// Ports tried for this call so far.
    pub(crate) port_attempts: u8,
    /// The audio agreed in the SDP exchange; `None` until the answer (late offer: the ACK).
    pub(crate) audio: Option<concierge_media::AudioSession>,
    /// Our SDP, sent in the 200 OK (the answer, or our offer when the INVITE had none).
    pub(crate) local_sdp: Option<String>,
    /// Our SRTP master key for the caller's leg, drawn when the call arrived; it goes
    /// into the SDP only when the call is encrypted.
    pub(crate) srtp_key: concierge_media::srtp::MasterKey,
    /// The `o=` version of our SDP, bumped on each re-INVITE answer (RFC 3264 §8).
    pub(crate) sdp_version: u64,
    pub(crate) media: crate::call_media::CallMedia,
    /// The call's flow run, when a flow handles the called number.
    pub(crate) flow: Option<FlowState>,
    pub(crate) answered: Option<Instant>,
    /// Who ended the call and why, once known.
    pub(crate) ending: Option<(EndedBy, String)>,
    pub(crate) refer: Option<ReferTransfer>,
    /// The second leg of a bridged transfer.
    pub(crate) bridge: Option<Box<crate::leg::Leg>>,
    pub(crate) transfer_record: Option<TransferRecord>,
    /// When the flow first asked for a transfer (answer-to-transfer time, in the record).
    pub(crate) transfer_started: Option<Instant>,
    /// Who is calling, settled when the INVITE arrived.
    pub(crate) identity: crate::identity::CallerIdentity,
    /// A transfer target or header came from a secret or `${ENV}`: not in logs or records.
    pub(crate) redact_target: bool,
    /// The lockout that stopped this call's code entry (`codes: number`), for the record.
    pub(crate) lockout: Option<String>,
    /// The longest a call may last (`SwitchConfig::max_call_duration`): then it ends,
    /// whatever it waits for. Kept in the switch's `expiry` set, not in the per-call timer
    /// heap: the heap keeps a stale entry until its time, and hours-long deadlines of
    /// finished calls would pile up there.
    pub(crate) expires: Instant,
    /// No RTP from the caller for this long ends the call (`Duration::ZERO`: never).
    pub(crate) media_timeout: std::time::Duration,
    /// The deadline this call has in the switch's heap.
    pub(crate) armed: Option<Instant>,
    /// Reliable 18x, session timer, refresh in flight, early media.
    pub(crate) carrier: crate::carrier::Carrier,
}

impl Call {
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let (answer_at, answer) = match &self.state {
            CallState::Early { answer_at, .. } => (*answer_at, None),
            CallState::Answered { retransmit, .. } => (None, retransmit.poll_timeout()),
            CallState::Ending { retransmit, .. } => (
                None,
                retransmit.as_ref().and_then(AnswerRetransmit::poll_timeout),
            ),
            CallState::Confirmed { .. } => (None, None),
        };
        let refer = self.refer.as_ref().map(|r| r.deadline);
        let bridge = self
            .bridge
            .as_ref()
            .filter(|l| l.is_pending())
            .map(|l| l.attempt_deadline.map_or(l.deadline, |a| a.min(l.deadline)));
        let collect = match self.flow.as_ref().map(|f| &f.waiting) {
            Some(Waiting::Collect(c)) => c.poll_timeout(),
            Some(Waiting::Http { overdue }) => Some(*overdue),
            _ => None,
        };
        let comfort = self
            .flow
            .as_ref()
            .and_then(|f| f.comfort.as_ref())
            .and_then(|c| c.at);
        [
            answer_at,
            answer,
            refer,
            bridge,
            collect,
            comfort,
            self.carrier.poll_timeout(),
            self.media_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// When the caller's silence ends the call: `media_timeout` after the last RTP packet
    /// it sent (or after the ACK started its media). Only for an up call whose caller is
    /// meant to send: a caller holding us (`sendonly`/`inactive`) sends nothing.
    pub(crate) fn media_deadline(&self) -> Option<Instant> {
        if self.media_timeout.is_zero() || !self.state.is_confirmed() {
            return None;
        }
        if !self.audio.as_ref().is_some_and(|a| a.send) {
            return None;
        }
        self.media.last_heard().map(|t| t + self.media_timeout)
    }
}

/// A call's flow: the interpreter and what it waits for.
pub(crate) struct FlowState {
    pub(crate) run: Run,
    pub(crate) waiting: Waiting,
    /// An action that needs media, held until the ACK brings the media up.
    pub(crate) deferred: Option<Action>,
    /// The program (flows, prompts) in force when the call started: its prompts are the
    /// ones this call plays, whatever a reload installs meanwhile.
    pub(crate) program: std::sync::Arc<crate::program::Program>,
    /// Comfort audio of the HTTP request in flight (`comfort = { … }` on its node).
    pub(crate) comfort: Option<crate::switch::Comfort>,
    /// The request in flight, kept when its node caches: its result settles the cache.
    pub(crate) in_flight: Option<concierge_flow::HttpRequest>,
}

pub(crate) enum Waiting {
    Nothing,
    /// The playlist to finish, then `PromptFinished`.
    Prompt,
    /// As `Prompt`, but a key stops it (an `interruptible` play): the key stays for the
    /// next keypad.
    BargeIn,
    /// Digits, by this collector (prompt playing with barge-in, then the timers).
    Collect(Collector),
    /// The driver's HTTP result. It enforces the node's timeout; `overdue` (a little
    /// later) is ours, so a result that never comes cannot hold the call.
    Http {
        overdue: Instant,
    },
    /// The playlist to finish, then this action (a transfer or hangup with a prompt).
    PromptThen(Box<Action>),
    /// The outcome of a REFER.
    Transfer,
    Done,
}
