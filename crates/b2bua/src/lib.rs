//! Call control for Concierge, sans-IO.
//!
//! A [`Switch`] owns every call of one shard: the SIP [`concierge_sip::Endpoint`], each
//! call's dialog, media session and flow run. The driver feeds it datagrams, RTP packets,
//! HTTP results and the time; it answers with [`Output`]s (SIP and RTP to send, media
//! ports to open or close, HTTP requests to perform, call records to write) and the next
//! deadline.
//!
//! Who is calling is decided once per call from the INVITE and its source address
//! ([`identify`], [`TrustedPeers`]); failed code attempts are counted across the shard's
//! calls ([`LockoutConfig`]); a transfer's flow variables are signed ([`TransferSigner`]).
//! New INVITEs pass admission control (global and per-source token buckets, the driver's
//! overload signal) on their raw bytes, before anything is parsed or allocated.
//!
//! What the driver counts comes from two places: each call's [`CallRecord`] as it ends, and
//! [`SwitchStats`] for what has no record (INVITEs refused before a call existed).
//!
//! Calls may be encrypted (SRTP with SDES keys, by the `srtp` policy); each leg decrypts what
//! it receives and encrypts what it sends with its own keys. A bridge leg to a name waits for
//! the driver's RFC 3263 lookup ([`Output::Resolve`], [`Input::Resolved`]).
//!
//! Beside the calls the switch registers with the SIP trunks the [`Program`] names
//! ([`Trunk`]; `concierge_sip::registration` does the registering): their requests go out
//! through the same endpoint, their lookups as [`Output::Resolve`], their state as
//! [`Output::Trunks`]; a transfer may go through one, and a trusted one's calls are
//! believed.
//!
//! Run loop — the one contract, as in str0m: hand every input to [`Switch::handle_input`]
//! with the time it arrived, then drain [`Switch::poll_output`] until it returns
//! [`Output::Timeout`], do what each output says (results such as a bound port or an HTTP
//! answer come back later as inputs), and sleep until that timeout or the next input,
//! whichever comes first. A deadline reached is [`Input::Timeout`].
//!
//! RTP crosses the contract in bulk both ways, and no packet costs an allocation: the
//! datagrams a driver read come in as one [`Input::RtpBatch`]; the switch writes every
//! packet it sends once, in place, into an [`RtpBatch`] that comes out whole
//! ([`Output::Rtp`], first in a drain) and goes back with [`Switch::recycle`] once sent.
//!
//! ```text
//! loop {
//!     let input = wait_for(next_wake_up);          // socket, channel or timer
//!     switch.handle_input(now, input);
//!     next_wake_up = loop {
//!         match switch.poll_output() {
//!             Output::Timeout(at) => break at,
//!             other => perform(other),             // send, bind, spawn HTTP, …
//!         }
//!     };
//! }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admission;
mod call;
mod call_media;
mod config;
mod event;
mod family;
mod identity;
mod input;
mod leg;
mod lockout;
mod output;
mod program;
mod record;
mod rtp_batch;
mod stats;
mod switch;
mod transfer;
mod transfer_token;
mod trunks;

pub use admission::{AdmissionConfig, PeerLoad};
pub use concierge_flow::{CacheUse, HttpStepOutcome};
pub use config::OutboundAuth;
pub use config::SwitchConfig;
pub use event::{desk_of, Arrival, CallEvent, CallEventKind, Transfer};
pub use identity::{identify, CallerIdentity, CidrError, TrustedPeers};
pub use input::{Command, Input};
pub use lockout::{LockoutConfig, LockoutSubject, SharedLock};
pub use output::{CallRef, Output, PortError, Resolve, ResolveId};
pub use program::Program;
pub use record::{
    transfer_succeeded, CallRecord, EndedBy, HttpOutcome, Outcome, PathStep, RelayedPackets,
    TransferFailure, TransferRecord, TransferResult, WallClock,
};
pub use rtp_batch::{RtpBatch, RtpDatagram, MAX_DATAGRAM};
pub use stats::SwitchStats;
pub use switch::Switch;
pub use transfer::{TransferMode, TransferOutcome};
pub use transfer_token::{
    SignedContext, TokenError, TransferSigner, CALLER_HEADER, CALL_ID_HEADER, TOKEN_HEADER,
};
pub use trunks::{Trunk, TrunkStatus};
