//! What the driver hands a [`crate::Switch`]: every input goes through
//! [`crate::Switch::handle_input`], stamped with the time it arrived.

use std::net::SocketAddr;

use concierge_flow::{HttpFailure, HttpResponse};
use concierge_sip::Peer;

use crate::output::{CallRef, PortError, ResolveId};
use crate::program::Program;
use crate::transfer::TransferMode;

/// One thing that happened outside the switch. Borrowed payloads are only read during
/// the call: the switch copies what it keeps.
#[derive(Debug)]
pub enum Input<'a> {
    /// A SIP datagram that arrived over UDP from `peer`.
    Datagram {
        /// Its source (address and transport).
        peer: Peer,
        /// The datagram as received.
        data: &'a [u8],
    },
    /// One SIP message framed from a TCP or TLS connection (`head` up to the blank line,
    /// `body` as long as its Content-Length). `authenticated` is true only when the
    /// connection's client certificate was verified against a configured CA (mutual
    /// TLS): an INVITE in it then comes from a trusted peer, whatever its address, so its
    /// P-Asserted-Identity is believed.
    Stream {
        /// The connection's remote end and transport.
        peer: Peer,
        /// Start line and headers.
        head: &'a [u8],
        /// The body.
        body: &'a [u8],
        /// The connection presented a client certificate a configured CA verified.
        authenticated: bool,
    },
    /// A datagram that arrived on one of our RTP ports (SRTP included: the switch checks
    /// and decrypts it for the leg it belongs to).
    Rtp {
        /// Our port it arrived on.
        port: u16,
        /// Its source address.
        from: SocketAddr,
        /// The datagram as received.
        data: &'a [u8],
    },
    /// Datagrams that arrived on our RTP ports, in the order they arrived, each handled
    /// as an [`Input::Rtp`] at its own [`crate::RtpDatagram::at`] (never later than the
    /// input's `now`): one call into the switch for a batch the driver read.
    RtpBatch(&'a crate::RtpBatch),
    /// The driver bound the port an [`crate::Output::MediaOpen`] asked for: the call it was
    /// for may now put it into an SDP.
    PortBound {
        /// The port now bound.
        port: u16,
    },
    /// The driver could not bind that port. A port another program holds
    /// ([`PortError::InUse`]) is never handed out again; the call waiting for it tries
    /// another before giving up with 503.
    PortFailed {
        /// The port that could not be bound.
        port: u16,
        /// Why.
        error: PortError,
    },
    /// The result of an [`crate::Output::Http`] request for `call`. A result for a call
    /// that is gone, or that arrives after the node's watchdog gave up, is dropped.
    Http {
        /// The call of the [`crate::Output::Http`] request.
        call: CallRef,
        /// The response, or why there was none.
        result: Result<HttpResponse, HttpFailure>,
    },
    /// The answer to [`crate::Output::Resolve`] `id`: the addresses to try, best first, or
    /// why there are none. An answer for a leg that is gone is dropped.
    Resolved {
        /// The lookup's id.
        id: ResolveId,
        /// Addresses best first, or why there are none.
        result: Result<Vec<Peer>, String>,
    },
    /// A TCP or TLS connection to `peer` closed (either side, for any reason). A trunk
    /// registered through it registers again at once, over a new connection.
    ConnectionLost {
        /// The connection's remote end and transport.
        peer: Peer,
    },
    /// What the shared store said about lockouts: the answer to
    /// [`crate::Output::LockoutCheck`] of `call`, or (no call) the locks an
    /// [`crate::Output::LockoutFailure`] brought about. Each lock is kept in the switch's
    /// own table for its remaining time, so later calls here know it without asking.
    /// `locks: None` — the store did not answer — leaves the call on local counts.
    SharedLocks {
        /// The call whose check this answers; `None` for a counted failure.
        call: Option<CallRef>,
        /// The locks in force, or `None` when the store gave no answer.
        locks: Option<Vec<crate::SharedLock>>,
    },
    /// The deadline of the last [`crate::Output::Timeout`] has come (early or repeated
    /// timeouts are harmless: only what is due fires).
    Timeout,
    /// An order from the process (operator, shutdown, load, reload).
    Command(Command<'a>),
}

/// Orders from the process around the switch, as opposed to what peers send.
#[derive(Debug)]
pub enum Command<'a> {
    /// Move an answered call to `target`: REFER (RFC 3515), 302 before the answer, a
    /// bridged second leg, or REFER falling back to a bridge. The outcome arrives later
    /// (NOTIFYs, the REFER's response, the leg's answer, or the transfer timeout).
    Transfer {
        /// The call to move.
        call: CallRef,
        /// How.
        mode: TransferMode,
        /// Where to: a SIP URI.
        target: &'a str,
    },
    /// End an answered call from our side with BYE (RFC 3261 §15.1.1); `why` goes to its
    /// record.
    HangUp {
        /// The call to end.
        call: CallRef,
        /// The reason its record gives.
        why: &'a str,
    },
    /// End every call: BYE for answered ones, 503 for the ones still ringing.
    HangUpAll {
        /// The reason every record gives.
        why: &'a str,
    },
    /// The last step of a shutdown: drop every call still here (a BYE nobody answers,
    /// say), each with its record.
    AbandonAll,
    /// Stop taking calls: new INVITEs (and OPTIONS probes) get 503 while existing calls
    /// run to their end.
    Drain,
    /// The driver's overload signal: while on, every new INVITE gets a stateless 503 so
    /// the backlog drains and admitted calls complete; off once the driver caught up.
    Overloaded(bool),
    /// The load the other instances sharing state carry (`[shared]`): their calls count
    /// against `max_calls`, and the new-call rate they use is not this instance's. Sent
    /// after every heartbeat; all zero while the shared store is unreachable.
    Peers(crate::PeerLoad),
    /// Install new flows and prompts (a reload): calls that arrive from now on run them,
    /// while every call in progress keeps the program it started with until it ends.
    Install(Box<Program>),
}
