use concierge_sip::Transmit;

use crate::record::CallRecord;

/// A call inside one [`crate::Switch`]: stable for the call's life, never reused. The
/// switch hands it out ([`Output::Http`]); the driver only gives it back
/// ([`crate::Input::Http`], [`crate::Command`]) — or finds it by Call-ID
/// ([`crate::Switch::find_call`]).
///
/// It names the call's place in the switch's table (`slot`, reused once the call is gone)
/// and a number no other call of the switch gets (`seq`): finding the call is an index
/// and a comparison, and a ref kept past its call finds nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallRef {
    pub(crate) seq: u64,
    pub(crate) slot: u32,
}

impl std::fmt::Display for CallRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "call {}", self.seq)
    }
}

/// Names one [`Output::Resolve`]: its answer comes back with it
/// ([`crate::Input::Resolved`]). Who asked stays inside the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResolveId(pub(crate) u64);

/// Why the driver could not bind an RTP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortError {
    /// Another program holds it: it is taken out of the pool for good.
    InUse,
    /// Anything else (out of descriptors, say): the port stays in the pool.
    Other,
}

/// What the driver must do.
#[derive(Debug)]
pub enum Output {
    /// Send SIP bytes.
    Sip(Transmit),
    /// Bind a UDP socket for a call's RTP on this port of the media address, then report
    /// with [`crate::Input::PortBound`] or [`crate::Input::PortFailed`]:
    /// the call waits for that before the port goes into an SDP answer.
    MediaOpen {
        /// The port, on the media address of the call's family.
        port: u16,
    },
    /// The call is over: close that socket.
    MediaClose {
        /// The port to close.
        port: u16,
    },
    /// Send these RTP packets, each from its call's port (a bound one) to its peer
    /// ([`crate::RtpDatagram::port`], [`crate::RtpDatagram::peer`]), in order: whole
    /// packets, already SRTP-protected on an encrypted leg, written straight into the
    /// batch. Comes before the drain's other outputs (a port closed in the same drain
    /// sends its last packets first). Give the batch back with [`crate::Switch::recycle`]
    /// once sent, and the switch writes into it again instead of allocating another.
    Rtp(crate::RtpBatch),
    /// Perform a flow's HTTP request and report with [`crate::Input::Http`].
    Http {
        /// The call whose flow asked; the result goes back with it.
        call: CallRef,
        /// Method, URL, headers, body and timeout, all rendered.
        request: Box<concierge_flow::HttpRequest>,
    },
    /// A call ended: append its record.
    Record(Box<CallRecord>),
    /// Something happened to a call in progress (only with
    /// [`crate::SwitchConfig::call_events`]): for a live view, never for accounting — the
    /// record is the account.
    Event(Box<crate::CallEvent>),
    /// Look up a name (RFC 3263) for a bridge leg or a trunk's registrar and report with
    /// [`crate::Input::Resolved`] carrying the same `id`.
    Resolve(Resolve),
    /// The trunks' registrations changed: each trunk's status now, in name order (for
    /// status pages and metrics). Sent after the change, and once at start-up.
    Trunks(Vec<crate::TrunkStatus>),
    /// Ask the shared store (`[shared]`) whether any of `groups` is locked for any of
    /// `subjects`, and report with [`crate::Input::SharedLocks`] naming `call`: the locks
    /// it holds, or `None` when it did not answer. A keypad of the call waits for that at
    /// most `SwitchConfig::shared_lockout` from now, then goes on with this switch's own
    /// counts. Sent only with `shared_lockout` set.
    LockoutCheck {
        /// The call that asks; the answer goes back with it.
        call: CallRef,
        /// The lockout groups of the call's flow.
        groups: Vec<String>,
        /// The caller's number, and its address unless that is a trusted peer.
        subjects: Vec<crate::LockoutSubject>,
    },
    /// Count one failed attempt in `group` against each of `subjects` in the shared store
    /// (this switch counted it already). Nothing waits for it; the locks it brings about,
    /// if any, come back as [`crate::Input::SharedLocks`] with no call. Sent only with
    /// `SwitchConfig::shared_lockout` set.
    LockoutFailure {
        /// The lockout group (`codes`).
        group: String,
        /// What the failure counts against, as in [`Output::LockoutCheck`].
        subjects: Vec<crate::LockoutSubject>,
    },
    /// Nothing more to do now: hand in [`crate::Input::Timeout`] at this instant, or any
    /// other input before it. `None`: nothing is due until another input arrives. Always
    /// the last output of a drain (see [`crate::Switch::poll_output`]).
    Timeout(Option<std::time::Instant>),
}

/// A name the driver must look up (RFC 3263: NAPTR, SRV, then A/AAAA) for a bridge leg
/// whose next hop — the target, or the outbound proxy — or a trunk whose registrar (or
/// proxy) is not an IP address. Taken with
/// [`Output::Resolve`]; the answer goes back as [`crate::Input::Resolved`] with the same
/// `id`.
#[derive(Debug, Clone)]
pub struct Resolve {
    /// Names this lookup: the answer comes back with it.
    pub id: ResolveId,
    /// The URI to locate (its host, port and transport, RFC 3263 §4).
    pub uri: concierge_sip::wire::SipUri,
}
