//! The switch: every call of one shard, and what routes an input to the call it is for.
//! The switch holds the calls (`calls.rs`), the indexes that find them (`index.rs`), their
//! deadlines (`deadlines.rs`), the shard's pacing tick (`pacer.rs`) and the batches its RTP
//! is written into (`rtp_out.rs`); a call does the rest itself (`crate::call`), through a
//! [`Cx`] borrowed from the switch's other fields.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use concierge_flow::LookupCache;
use concierge_media::RtpPorts;
use concierge_sip::{Endpoint, EndpointConfig};

mod admit;
mod calls;
mod contract;
mod deadlines;
mod index;
mod pacer;
mod route;
mod rtp_out;
mod run;

pub(crate) use index::{Change, Index, Key, Owner};
pub(crate) use pacer::{Pacer, TICK};
pub(crate) use rtp_out::RtpOut;

use crate::admission::Admission;
use crate::call::Cx;
use crate::config::SwitchConfig;
use crate::family::LocalContacts;
use crate::lockout::Lockout;
use crate::output::{CallRef, Output};
use crate::program::Program;
use crate::record::WallClock;
use crate::rtp_batch::RtpBatch;
use crate::stats::SwitchStats;
use crate::trunks::Trunks;
use calls::Calls;
use deadlines::Deadlines;

/// Methods we accept (our Allow).
pub(crate) const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, REFER, UPDATE, PRACK";
/// Bodies we read (our Accept).
pub(crate) const ACCEPT: &str =
    "application/sdp, application/dtmf-relay, application/dtmf, message/sipfrag";
/// The option tags we implement, for our Supported header and the endpoint's Require check.
pub(crate) const SUPPORTED: &str = "replaces, norefersub, 100rel, timer";

/// All calls of one shard. See the crate docs for the run loop.
pub struct Switch {
    calls: Calls,
    /// How calls are found and when they are woken.
    books: Books,
    /// What a call may touch while it runs (lent to it as a [`Cx`]).
    shared: Shared,
    admission: Admission,
    draining: bool,
    /// Where an SRTP packet is decrypted (kept, so a packet costs no allocation).
    srtp_buf: Vec<u8>,
}

/// What the switch keeps about its calls beside them: the indexes that find them, their
/// deadlines, and the index changes of the call running now (applied when it returns).
#[derive(Default)]
struct Books {
    index: Index,
    deadlines: Deadlines,
    changes: Vec<Change>,
}

/// The switch's fields a call may touch while it runs, lent to it as a [`Cx`].
struct Shared {
    cfg: SwitchConfig,
    /// Our Contact URIs, made from `cfg` once.
    contacts: LocalContacts,
    endpoint: Endpoint,
    outputs: VecDeque<Output>,
    /// What new calls run; each call keeps the one it started with (`Command::Install`).
    program: Arc<Program>,
    ports: RtpPorts,
    /// Failed code attempts across this switch's calls.
    lockout: Lockout,
    /// Answers of caching `http` nodes, shared by this switch's calls.
    lookups: LookupCache,
    pacer: Pacer,
    /// The RTP packets to send, written in place into the driver's batches.
    rtp: RtpOut,
    stats: SwitchStats,
    wall: WallClock,
    /// Draws SRTP master keys (a CSPRNG; see `SwitchConfig::key_seed`).
    key_rng: rand::rngs::StdRng,
    next_resolve: u64,
    /// The input being handled came over a connection whose client certificate a
    /// configured CA verified (mutual TLS): its sender is a trusted peer.
    authenticated_input: bool,
    /// The SIP trunks we register with (calls read their routes and trust).
    trunks: Trunks,
}

impl Shared {
    /// The context call `id` runs in at `now`, its index changes going to `changes`.
    fn cx<'a>(&'a mut self, now: Instant, id: CallRef, changes: &'a mut Vec<Change>) -> Cx<'a> {
        Cx {
            now,
            id,
            cfg: &self.cfg,
            contacts: &self.contacts,
            endpoint: &mut self.endpoint,
            out: &mut self.outputs,
            program: &self.program,
            ports: &mut self.ports,
            lockout: &mut self.lockout,
            lookups: &mut self.lookups,
            pacer: &mut self.pacer,
            rtp: &mut self.rtp,
            stats: &mut self.stats,
            wall: self.wall,
            authenticated: self.authenticated_input,
            key_rng: &mut self.key_rng,
            next_resolve: &mut self.next_resolve,
            trunks: &self.trunks,
            changes,
        }
    }
}

/// A transfer target as logs may show it: not when it was rendered from a secret.
pub(crate) fn shown(redact: bool, target: &str) -> &str {
    if redact {
        "<redacted>"
    } else {
        target
    }
}

impl Switch {
    /// `wall` pairs an `Instant` with the wall-clock time, for call records.
    pub fn new(cfg: SwitchConfig, wall: WallClock, program: Program) -> Self {
        let endpoint = Endpoint::new(EndpointConfig {
            timers: cfg.timers,
            via_host: cfg.advertised_host.clone(),
            via_port: cfg.sip_port,
            via_tls_port: cfg.tls_port,
            via_host_v6: cfg.advertised_host_v6.clone(),
            seed: cfg.seed,
            supported: SUPPORTED.split(", ").map(str::to_owned).collect(),
        });
        let ports = RtpPorts::new(
            cfg.rtp_ports.0,
            cfg.rtp_ports.1,
            cfg.rtp_port_rest,
            cfg.seed ^ 0x5eed_0f4a_110c_4700,
        );
        let trunks = program.trunks.clone();
        let mut switch = Self {
            calls: Calls::new(),
            books: Books::default(),
            admission: Admission::new(cfg.admission, wall.instant),
            draining: false,
            srtp_buf: Vec::with_capacity(1500),
            shared: Shared {
                endpoint,
                outputs: VecDeque::new(),
                program: Arc::new(program),
                ports,
                lockout: Lockout::new(cfg.lockout),
                lookups: LookupCache::new(),
                pacer: Pacer::new(wall.instant),
                rtp: RtpOut::default(),
                stats: Default::default(),
                wall,
                key_rng: rand::SeedableRng::from_seed(cfg.key_seed),
                next_resolve: 1,
                authenticated_input: false,
                trunks: Trunks::new(cfg.seed),
                contacts: LocalContacts::new(&cfg),
                cfg,
            },
        };
        // The trunks register from the start: their first requests (or lookups) are the
        // first outputs.
        switch.shared.trunks.install(wall.instant, &trunks);
        switch.pump(wall.instant);
        switch
    }

    /// Hands back a batch of [`Output::Rtp`] the driver has sent: the switch writes its
    /// next packets into it rather than into a new one. A batch not given back is only
    /// an allocation later (the switch keeps a few).
    pub fn recycle(&mut self, batch: RtpBatch) {
        self.shared.rtp.recycle(batch);
    }

    /// Counters of what has no call record (see [`crate::SwitchStats`]).
    pub fn stats(&self) -> SwitchStats {
        self.shared.stats
    }

    /// Whether new INVITEs are refused because the switch is draining.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Calls in the switch now (ringing, up or ending).
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// The call whose Call-ID (or whose bridge leg's) is `call_id`, if it is here.
    pub fn find_call(&self, call_id: &str) -> Option<CallRef> {
        self.books.index.call_id(call_id.as_bytes())
    }

    /// Whether a draining switch has no calls left and no trunk still un-registering,
    /// and can be dropped.
    pub fn is_idle(&self) -> bool {
        self.calls.is_empty() && self.shared.trunks.is_idle()
    }
}
