//! One SIP leg of a call: the caller's, where we are the UAS, or a bridge's second leg,
//! where we call the target as UAC. What both legs do is written once here — their state,
//! RTP port, SRTP, the order of requests in their dialog, glare, BYE and the resent ACK of
//! a retransmitted 2xx (`dialog.rs`), and the RFC 4028 session refresh (`session.rs`).
//! What only one side has stays with its owner: the caller's INVITE and our answer to it
//! (`call::Inbound`), the target, our INVITE and its failover (`call::Bridge`).

mod dialog;
mod port;
mod session;

use concierge_media::sdes::{SrtpKeying, SrtpPolicy, SrtpSession};
use concierge_media::srtp::MasterKey;
use concierge_media::AudioSession;
use concierge_sip::dialog::{AnswerRetransmit, Dialog};
use concierge_sip::transaction::TsxKey;
use concierge_sip::{Peer, Tag};

pub(crate) use port::LegPort;
pub(crate) use session::{push_session_expires, RefreshAnswer, SessionRefresh, TimerTurn};

use crate::output::ResolveId;
use crate::switch::Key;

/// One SIP leg: its peer, its state (which owns its dialog once there is one), its RTP
/// port, the audio and SRTP agreed on it, and its session timer.
pub(crate) struct SipLeg {
    /// Where the leg's signalling goes: the caller's source, or the next hop we chose for
    /// the target (a placeholder while its name is being resolved).
    pub(crate) peer: Peer,
    /// Our tag in the leg's dialog.
    pub(crate) local_tag: Tag,
    pub(crate) state: LegState,
    /// The leg's RTP port: taken, bound, or given back.
    pub(crate) port: LegPort,
    /// The audio agreed in the leg's SDP exchange; `None` until it completed.
    pub(crate) audio: Option<AudioSession>,
    /// Our SRTP key for the leg and, once keys were exchanged, its contexts.
    pub(crate) srtp: LegSrtp,
    /// RFC 4028 on this leg: its timer, our refresh in flight.
    pub(crate) session: SessionRefresh,
}

impl SipLeg {
    /// A leg with `peer`, in `state`, on no port yet.
    pub(crate) fn new(peer: Peer, local_tag: Tag, state: LegState, srtp_key: MasterKey) -> Self {
        Self {
            peer,
            local_tag,
            state,
            port: LegPort::default(),
            audio: None,
            srtp: LegSrtp {
                key: srtp_key,
                session: None,
            },
            session: SessionRefresh::default(),
        }
    }

    /// The keys the leg may hold in the switch's index — its dialog, its port, its
    /// transactions, the name lookup it waits for — for when it goes.
    pub(crate) fn into_keys(self) -> impl Iterator<Item = Key> {
        let refresh = self.session.key().cloned();
        let port = self.port.number();
        let (dns, dialog, bye) = match self.state {
            LegState::Binding { dns } => (dns, None, None),
            LegState::Ending { dialog, bye, .. } => (None, Some(dialog.id), Some(bye)),
            LegState::Answered { dialog, .. } | LegState::Up { dialog } => {
                (None, Some(dialog.id), None)
            }
            LegState::Over { dialog } => (None, dialog.map(|d| d.id), None),
            LegState::Early | LegState::Calling { .. } => (None, None, None),
        };
        [
            dns.map(Key::Resolve),
            dialog.map(Key::Dialog),
            refresh.map(Key::Request),
            bye.map(Key::Request),
            port.map(Key::Port),
        ]
        .into_iter()
        .flatten()
    }

    /// Where requests in the leg's dialog go (§12.2.1.1: the route set, else the remote
    /// target); the leg's peer before there is a dialog.
    pub(crate) fn next_hop(&self) -> Peer {
        self.state
            .dialog()
            .map_or(self.peer, |d| d.next_hop(self.peer))
    }
}

/// Where a leg is in its life. Each state holds what exists only in it — no dialog before
/// the answer, no 200 to resend once ACKed, a BYE's transaction only while ending — so a
/// handler cannot read what its state does not have. The caller's leg goes
/// `Early → Answered → Up → Ending`; a bridge leg `Binding → Calling → Up → Over`.
pub(crate) enum LegState {
    /// The caller's INVITE is in; no final answer yet.
    Early,
    /// A bridge leg waiting for its port to be bound and, when its next hop is a name,
    /// for the driver's lookup (`dns`), before its INVITE goes.
    Binding { dns: Option<ResolveId> },
    /// A bridge leg's INVITE is out; `ringing` once the target sent 180/183.
    Calling { ringing: bool },
    /// Our 200 OK is out, retransmitted until the ACK (§13.3.1.4).
    Answered {
        dialog: Dialog,
        retransmit: AnswerRetransmit,
    },
    /// The dialog is confirmed (the caller's ACK came, or we ACKed the target's 2xx).
    Up { dialog: Dialog },
    /// We sent BYE (`bye`) and wait for its answer. A 200 still unACKed when we said BYE
    /// goes on being retransmitted until the ACK or its timeout.
    Ending {
        dialog: Dialog,
        bye: TsxKey,
        retransmit: Option<AnswerRetransmit>,
    },
    /// A bridge leg that failed, was cancelled or hung up. Kept (with its dialog, if it
    /// had one) so that a retransmitted 2xx is ACKed again, and a 2xx crossing our CANCEL
    /// is ACKed and ended.
    Over { dialog: Option<Dialog> },
}

impl LegState {
    /// What a state is swapped with while it is moved into the next one.
    const VACANT: Self = Self::Over { dialog: None };

    /// The leg's dialog, once there is one.
    pub(crate) fn dialog(&self) -> Option<&Dialog> {
        match self {
            Self::Answered { dialog, .. } | Self::Up { dialog } | Self::Ending { dialog, .. } => {
                Some(dialog)
            }
            Self::Over { dialog } => dialog.as_ref(),
            Self::Early | Self::Binding { .. } | Self::Calling { .. } => None,
        }
    }

    pub(crate) fn dialog_mut(&mut self) -> Option<&mut Dialog> {
        match self {
            Self::Answered { dialog, .. } | Self::Up { dialog } | Self::Ending { dialog, .. } => {
                Some(dialog)
            }
            Self::Over { dialog } => dialog.as_mut(),
            Self::Early | Self::Binding { .. } | Self::Calling { .. } => None,
        }
    }

    /// The 200 OK being retransmitted, if one is unACKed.
    pub(crate) fn retransmit(&self) -> Option<&AnswerRetransmit> {
        match self {
            Self::Answered { retransmit, .. } => Some(retransmit),
            Self::Ending { retransmit, .. } => retransmit.as_ref(),
            _ => None,
        }
    }

    pub(crate) fn retransmit_mut(&mut self) -> Option<&mut AnswerRetransmit> {
        match self {
            Self::Answered { retransmit, .. } => Some(retransmit),
            Self::Ending { retransmit, .. } => retransmit.as_mut(),
            _ => None,
        }
    }

    pub(crate) fn is_early(&self) -> bool {
        matches!(self, Self::Early)
    }

    /// Answered (ACKed or not) and not ending: a leg we can still BYE, REFER or refresh.
    pub(crate) fn is_up(&self) -> bool {
        matches!(self, Self::Answered { .. } | Self::Up { .. })
    }

    pub(crate) fn is_confirmed(&self) -> bool {
        matches!(self, Self::Up { .. })
    }

    pub(crate) fn is_ending(&self) -> bool {
        matches!(self, Self::Ending { .. })
    }

    /// A bridge leg not answered yet: binding, resolving or calling.
    pub(crate) fn is_pending(&self) -> bool {
        matches!(self, Self::Binding { .. } | Self::Calling { .. })
    }

    pub(crate) fn is_over(&self) -> bool {
        matches!(self, Self::Over { .. })
    }

    /// The ACK came: an answered leg is up, and a 200 retransmitted while ending stops.
    /// Returns whether the leg became confirmed.
    pub(crate) fn confirm(&mut self) -> bool {
        let (next, confirmed) = match std::mem::replace(self, Self::VACANT) {
            Self::Answered { dialog, .. } => (Self::Up { dialog }, true),
            Self::Ending {
                dialog,
                bye,
                mut retransmit,
            } => {
                if let Some(r) = retransmit.as_mut() {
                    r.handle_ack();
                }
                let ending = Self::Ending {
                    dialog,
                    bye,
                    retransmit,
                };
                (ending, false)
            }
            other => (other, false),
        };
        *self = next;
        confirmed
    }

    /// We sent BYE in an answered leg (`bye`: its transaction). `false` (and no change)
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
            Self::Up { dialog } => Self::Ending {
                dialog,
                bye,
                retransmit: None,
            },
            other => other,
        };
        true
    }

    /// The leg is over; its dialog, if it had one, is kept.
    pub(crate) fn give_up(&mut self) {
        let dialog = match std::mem::replace(self, Self::VACANT) {
            Self::Answered { dialog, .. } | Self::Up { dialog } | Self::Ending { dialog, .. } => {
                Some(dialog)
            }
            Self::Over { dialog } => dialog,
            Self::Early | Self::Binding { .. } | Self::Calling { .. } => None,
        };
        *self = Self::Over { dialog };
    }
}

/// A leg's SRTP (RFC 3711 with SDES keys): our master key, drawn when the leg was made
/// (it goes into our SDP only when the leg is encrypted), and the contexts once the SDP
/// exchange keyed them. Every packet in and out of the leg's port goes through them.
pub(crate) struct LegSrtp {
    pub(crate) key: MasterKey,
    /// Boxed: nearly 2 KiB of cipher and replay state that a plain leg (most) does not
    /// have, and a call would otherwise carry, and copy with every move, all the same.
    pub(crate) session: Option<Box<SrtpSession>>,
}

impl LegSrtp {
    /// The key to put in an offer of ours under `policy`: offers are SRTP only when it is
    /// mandatory (an optional policy offers plain RTP, which every peer takes).
    pub(crate) fn offer_key(&self, policy: SrtpPolicy) -> Option<&MasterKey> {
        offer_key(policy, &self.key)
    }

    /// The SDP exchange settled the leg's keys (`None`: plain RTP). A new exchange that
    /// keeps the keys keeps the contexts (their rollover counters and replay lists): a
    /// fresh context under the same key would reuse keystream.
    pub(crate) fn keyed(&mut self, keying: Option<&SrtpKeying>) {
        match (keying, self.session.as_mut()) {
            (Some(keying), Some(session)) => session.rekey(keying),
            (Some(keying), None) => self.session = Some(Box::new(SrtpSession::new(keying))),
            (None, _) => self.session = None,
        }
    }
}

/// `key`, when an offer of ours under `policy` is SRTP: only when it is mandatory.
pub(crate) fn offer_key(policy: SrtpPolicy, key: &MasterKey) -> Option<&MasterKey> {
    (policy == SrtpPolicy::Mandatory).then_some(key)
}
