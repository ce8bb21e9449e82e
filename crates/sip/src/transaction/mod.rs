//! RFC 3261 §17 transactions as plain state machines.
//!
//! Each machine takes inputs stamped with an explicit `Instant` and returns
//! [`TsxOutput`]s: what to transmit, whether to pass a message up to the transaction
//! user, and when the transaction is over. [`TsxTimers::next`] says when to call
//! `handle_timeout` next. No machine reads a clock, owns a socket or spawns a task, so the
//! retransmission schedules below are tested in virtual time.
//!
//! INVITE transactions follow RFC 6026: a 2xx moves both sides to `Accepted` (timers L
//! and M) instead of terminating, so 2xx retransmissions and their ACKs are handled by the
//! dialog layer while stray retransmissions still match the transaction.

mod invite_client;
mod invite_server;
mod key;
mod non_invite_client;
mod non_invite_server;
mod timers;

pub use invite_client::{InviteClient, InviteClientState};
pub use invite_server::{InviteServer, InviteServerState};
pub use key::{FingerprintHasher, TsxKey, TsxMap};
pub use non_invite_client::{NonInviteClient, NonInviteClientState};
pub use non_invite_server::{NonInviteServer, NonInviteServerState};
pub use timers::{TimerConfig, TsxTimer, TsxTimers};

use bytes::Bytes;

/// What a transaction asks of its driver after an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TsxOutput {
    /// Send these bytes to the transaction's peer.
    Transmit(Bytes),
    /// Pass the message that was just handled up to the transaction user.
    Deliver,
    /// No answer in time: timer B or F (client: the TU treats it as a 408), or timer H
    /// (INVITE server: the ACK for a non-2xx final response never came). Terminal.
    Timeout,
    /// The transaction is over and can be forgotten.
    Terminated,
}
