//! The transaction layer of one shard: owns every transaction, matches each incoming
//! message to one (RFC 3261 §17.1.3, §17.2.3, §9.2), runs their timers and tells the
//! transaction user (the call logic) what needs a decision.
//!
//! Calling contract: after every `handle_*` or TU call, drain [`Endpoint::poll_transmit`]
//! and [`Endpoint::poll_event`] until both return `None`, then wake up at
//! [`Endpoint::poll_timeout`] and call [`Endpoint::handle_timeout`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::ids::{Branch, Tag};
use crate::transaction::{
    InviteClient, InviteServer, NonInviteClient, NonInviteServer, TimerConfig, TsxKey, TsxMap,
};
use crate::untrusted::LogLimiter;
use crate::wire::{Request, Response, Transport, Via, MAGIC_COOKIE};

mod inbound;
mod outbound;
#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "a test's base instant")]
mod tests;
mod timers;

/// Where a message came from or goes to. On TCP the driver maps the address to its
/// connection (one per remote address), so in-dialog requests reuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The transport it came over or goes out on.
    pub transport: Transport,
    /// The peer's address.
    pub addr: SocketAddr,
}

/// Bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send.
    pub peer: Peer,
    /// The serialised message.
    pub bytes: Bytes,
}

/// What the transaction user must handle.
#[derive(Debug, Clone)]
pub enum EndpointEvent {
    /// A new request (never an ACK) with its server transaction; answer with
    /// [`Endpoint::respond`].
    Request {
        /// The server transaction to answer through.
        key: TsxKey,
        /// The request.
        request: Request,
        /// Who sent it.
        peer: Peer,
    },
    /// An ACK outside any INVITE server transaction in Completed: the ACK for a 2xx.
    Ack {
        /// The ACK.
        request: Request,
        /// Who sent it.
        peer: Peer,
    },
    /// A CANCEL matched an INVITE still in Proceeding; the CANCEL got its 200 already,
    /// and the TU should now end the INVITE with 487 (§9.2).
    Cancelled {
        /// The INVITE server transaction the CANCEL matched.
        invite: TsxKey,
        /// The CANCEL.
        cancel: Request,
    },
    /// A response to one of our client transactions.
    Response {
        /// Our client transaction.
        key: TsxKey,
        /// The response.
        response: Response,
    },
    /// A 2xx to an INVITE that matches no transaction: a retransmission after the
    /// transaction ended, or a forgery. `peer` is only where it came from, which anyone
    /// can claim: the TU acts only when the response matches a dialog of its own, and
    /// then sends to addresses it chose itself (never to this `peer` or the Contact).
    StrayResponse {
        /// The response.
        response: Response,
        /// Where it claims to come from.
        peer: Peer,
    },
    /// Timer B/F (no answer to our request) or H (no ACK for our non-2xx final response).
    Timeout {
        /// The transaction that timed out.
        key: TsxKey,
    },
}

#[derive(Debug, Clone)]
/// How an [`Endpoint`] behaves: its timers and what it writes in its Via.
pub struct EndpointConfig {
    /// RFC 3261 timer values (T1, T2, T4).
    pub timers: TimerConfig,
    /// Option tags we implement, for Require checks and our Supported header.
    pub supported: Vec<String>,
    /// Host and port we put in our Via headers.
    pub via_host: String,
    /// The port our Via carries.
    pub via_port: u16,
    /// The port our Via carries for requests over TLS (`None`: `via_port`).
    pub via_tls_port: Option<u16>,
    /// The host our Via carries for requests to IPv6 peers (`None`: `via_host`).
    pub via_host_v6: Option<String>,
    /// Seed for tags and branches, so tests are reproducible.
    pub seed: u64,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            timers: TimerConfig::default(),
            supported: vec!["replaces".into(), "norefersub".into()],
            via_host: "127.0.0.1".into(),
            via_port: 5060,
            via_tls_port: None,
            via_host_v6: None,
            seed: 0,
        }
    }
}

enum Machine {
    InviteServer(InviteServer),
    NonInviteServer(NonInviteServer),
    /// The INVITE is kept to build the ACK for a non-2xx answer (§17.1.1.3).
    InviteClient {
        tsx: InviteClient,
        request: Box<Request>,
    },
    NonInviteClient(NonInviteClient),
}

struct Entry {
    machine: Machine,
    peer: Peer,
    /// The deadline this entry has in the heap, so stale heap entries can be skipped.
    armed: Option<Instant>,
}

impl Entry {
    /// A new transaction's entry, not yet armed.
    fn boxed(machine: Machine, peer: Peer) -> Box<Self> {
        Box::new(Self {
            machine,
            peer,
            armed: None,
        })
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match &self.machine {
            Machine::InviteServer(m) => m.poll_timeout(),
            Machine::NonInviteServer(m) => m.poll_timeout(),
            Machine::InviteClient { tsx, .. } => tsx.poll_timeout(),
            Machine::NonInviteClient(m) => m.poll_timeout(),
        }
    }
}

/// All transactions of one shard: the driver feeds it datagrams, stream frames and timeouts
/// with the current time, and drains what to send, what happened and when to wake. See the
/// crate documentation for the run loop.
pub struct Endpoint {
    cfg: EndpointConfig,
    /// Boxed: the map holds tens of thousands of transactions resting for Timer J and L
    /// (32 s), so its buckets stay small and an entry never moves once made.
    tsxs: TsxMap<Box<Entry>>,
    /// Min-heap of (deadline, key); one entry per armed transaction plus stale ones.
    timers: BinaryHeap<Reverse<(Instant, TsxKey)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<EndpointEvent>,
    rng: SmallRng,
    /// Lines about unparsable or rejected messages: a few per interval, then a summary.
    bad_input: LogLimiter,
}

/// Unparsable or rejected messages logged one by one per [`BAD_INPUT_LOG_INTERVAL`];
/// the rest are counted into one summary line.
pub const BAD_INPUT_LOG_BURST: u32 = 10;
/// The interval of the bad-input summary lines.
pub const BAD_INPUT_LOG_INTERVAL: Duration = Duration::from_secs(10);

impl Endpoint {
    /// An endpoint with no transactions; its generator is seeded from `cfg.seed`.
    pub fn new(cfg: EndpointConfig) -> Self {
        let rng = SmallRng::seed_from_u64(cfg.seed);
        Self {
            cfg,
            tsxs: TsxMap::default(),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            rng,
            bad_input: LogLimiter::new(BAD_INPUT_LOG_INTERVAL, BAD_INPUT_LOG_BURST),
        }
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    /// Live transactions, for metrics and tests.
    pub fn transaction_count(&self) -> usize {
        self.tsxs.len()
    }

    /// Queues bytes to `peer` outside any transaction: the ACK for a 2xx, 2xx
    /// retransmissions of the dialog layer. They come out of [`Self::poll_transmit`].
    pub fn send_raw(&mut self, peer: Peer, bytes: Bytes) {
        self.transmits.push_back(Transmit { peer, bytes });
    }

    /// A Via for a new request of ours to `peer`, with a fresh RFC 3261 branch. RFC 3261
    /// §18.1.1: it names where responses reach us — over TLS our TLS port, to an IPv6
    /// peer our IPv6 host.
    pub fn new_via(&mut self, peer: Peer) -> Via {
        let branch = self.new_branch();
        self.via_with(peer, &branch)
    }

    /// A fresh branch for a request of ours: the RFC 3261 magic cookie and 64 random bits
    /// (§8.1.1.7), so it is unique per transaction and marks us as RFC 3261 compliant.
    fn new_branch(&mut self) -> Branch {
        let mut text = [0u8; MAGIC_COOKIE.len() + 16];
        let (cookie, digits) = text.split_at_mut(MAGIC_COOKIE.len());
        cookie.copy_from_slice(MAGIC_COOKIE.as_bytes());
        write_hex(digits, self.rng.gen::<u64>());
        Branch::from(ascii(&text))
    }

    /// Our Via to `peer` carrying `branch`.
    fn via_with(&self, peer: Peer, branch: &Branch) -> Via {
        let host = match &self.cfg.via_host_v6 {
            Some(v6) if peer.addr.is_ipv6() => v6.as_str(),
            _ => self.cfg.via_host.as_str(),
        };
        let port = match (peer.transport, self.cfg.via_tls_port) {
            (Transport::Tls, Some(p)) => p,
            _ => self.cfg.via_port,
        };
        Via::new(peer.transport, host, Some(port), branch.as_str())
    }

    /// Where transaction `key` sends: for one of our client transactions, the next hop
    /// we chose when we sent the request.
    pub fn peer_of(&self, key: &TsxKey) -> Option<Peer> {
        self.tsxs.get(key).map(|e| e.peer)
    }

    /// A fresh random tag for the From of a request we place or the To of an answer we give
    /// (RFC 3261 §19.3): 48 bits from the endpoint's generator as twelve hex digits.
    pub fn new_tag(&mut self) -> Tag {
        let mut digits = [0u8; 12];
        write_hex(&mut digits, self.rng.gen::<u64>());
        Tag::from(ascii(&digits))
    }

    /// A random number from the endpoint's generator, for what the call logic makes itself:
    /// Call-IDs of calls we place, cnonces, RSeq starts.
    pub fn random_u64(&mut self) -> u64 {
        self.rng.gen()
    }

    /// Next message to send, in the order queued; the driver drains this until `None`
    /// after every `handle_*` call and every call of the transaction user.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next thing the transaction user must decide, in arrival order; drained like
    /// [`Self::poll_transmit`].
    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        self.events.pop_front()
    }
}

/// Writes the last `out.len()` hex digits of `value` into `out`, lower case and
/// zero-padded: what `format!("{:0digits$x}")` writes for a value that fits, without the
/// formatting machinery (a tag is made for every call).
fn write_hex(out: &mut [u8], value: u64) {
    let digits = out.len();
    for (i, digit) in out.iter_mut().enumerate() {
        let place = (digits - 1 - i) as u32;
        let nibble = value.checked_shr(4 * place).unwrap_or(0) & 0xf;
        *digit = char::from_digit(nibble as u32, 16).map_or(b'0', |c| c as u8);
    }
}

/// Text written on the stack (ASCII: hex digits, the magic cookie) as a `str`, for an id
/// made of it to cost one allocation, its own, not a `String`'s before it.
fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}
