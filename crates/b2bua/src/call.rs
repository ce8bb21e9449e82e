use std::time::Instant;

use concierge_sip::dialog::{AnswerRetransmit, Dialog};
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::Request;
use concierge_sip::{Peer, Tag};

use concierge_flow::{Action, Collector, Run};

use crate::record::EndedBy;
use crate::record::TransferRecord;
use crate::transfer::ReferTransfer;

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// INVITE received, no final answer yet.
    Early,
    /// 200 OK sent, waiting for the ACK.
    Answered,
    /// ACK received: the call is up.
    Confirmed,
    /// We sent BYE and wait for its answer.
    Ending,
}

/// One inbound call: the caller's INVITE, its dialog once answered, and the bookkeeping
/// the record needs.
pub(crate) struct Call {
    pub(crate) span: tracing::Span,
    pub(crate) phase: Phase,
    pub(crate) invite: Request,
    pub(crate) invite_key: TsxKey,
    pub(crate) peer: Peer,
    pub(crate) local_tag: Tag,
    pub(crate) dialog: Option<Dialog>,
    pub(crate) answer: Option<AnswerRetransmit>,
    /// Client transaction of our BYE, while in [`Phase::Ending`].
    pub(crate) bye_key: Option<TsxKey>,
    pub(crate) arrived: Instant,
    /// Our RTP port, from the pool; returned when the call is forgotten.
    pub(crate) rtp_port: Option<u16>,
    /// The driver bound `rtp_port`; until then the call only has 100 Trying.
    pub(crate) port_bound: bool,
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
    pub(crate) bridge: Option<Box<crate::bridge::Leg>>,
    pub(crate) transfer_record: Option<TransferRecord>,
    /// When the flow first asked for a transfer (answer-to-transfer time, in the record).
    pub(crate) transfer_started: Option<Instant>,
    /// Who is calling, settled when the INVITE arrived.
    pub(crate) identity: crate::identity::CallerIdentity,
    /// A transfer target or header came from a secret or `${ENV}`: not in logs or records.
    pub(crate) redact_target: bool,
    /// The lockout that stopped this call's code entry (`codes: number`), for the record.
    pub(crate) lockout: Option<String>,
    /// When to send the 200 OK, while ringing.
    pub(crate) answer_at: Option<Instant>,
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
        let answer = self
            .answer
            .as_ref()
            .and_then(AnswerRetransmit::poll_timeout);
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
            self.answer_at,
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
        if self.media_timeout.is_zero() || self.phase != Phase::Confirmed {
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
