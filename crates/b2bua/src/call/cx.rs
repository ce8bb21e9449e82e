//! The context a call runs in: what of the switch a call may touch while it handles one
//! input, borrowed for that input only.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use concierge_flow::LookupCache;
use concierge_media::srtp::MasterKey;
use concierge_media::RtpPorts;
use concierge_sip::transaction::TsxKey;
use concierge_sip::wire::{response_to, HeaderName, Request, Response, SipUri, StatusCode};
use concierge_sip::{Endpoint, Peer};
use rand::RngCore;

use crate::config::SwitchConfig;
use crate::family::LocalContacts;
use crate::lockout::Lockout;
use crate::output::{CallRef, Output, Resolve, ResolveId};
use crate::program::Program;
use crate::record::WallClock;
use crate::stats::SwitchStats;
use crate::switch::{Change, Key, Pacer, RtpOut, ALLOW, SUPPORTED};
use crate::trunks::Trunks;

/// Borrowed from the switch's fields other than its calls while one call handles one
/// input: the time, the SIP endpoint, the output queue, the configuration, the program new
/// calls run, the RTP port pool, the shard's shared state (lockout counts, the lookup
/// cache, the key generator, the pacing tick) — and the index changes the call makes,
/// which the switch applies, keyed by this call, once the call returns. A call never sees
/// another call.
pub(crate) struct Cx<'a> {
    /// When the input happened.
    pub(crate) now: Instant,
    /// The call being run.
    pub(crate) id: CallRef,
    pub(crate) cfg: &'a SwitchConfig,
    /// Our Contact URIs, made from `cfg` once.
    pub(crate) contacts: &'a LocalContacts,
    pub(crate) endpoint: &'a mut Endpoint,
    pub(crate) out: &'a mut VecDeque<Output>,
    /// What calls arriving now run (a call in progress keeps the one its flow started with).
    pub(crate) program: &'a Arc<Program>,
    pub(crate) ports: &'a mut RtpPorts,
    pub(crate) lockout: &'a mut Lockout,
    pub(crate) lookups: &'a mut LookupCache,
    pub(crate) pacer: &'a mut Pacer,
    /// Where the call's RTP packets are written (relayed ones: the paced ones are the
    /// pacer's).
    pub(crate) rtp: &'a mut RtpOut,
    pub(crate) stats: &'a mut SwitchStats,
    pub(crate) wall: WallClock,
    /// The input came over a connection whose client certificate a configured CA verified.
    pub(crate) authenticated: bool,
    /// Draws SRTP master keys (a CSPRNG).
    pub(crate) key_rng: &'a mut rand::rngs::StdRng,
    pub(crate) next_resolve: &'a mut u64,
    /// The SIP trunks: a transfer's route through one, and whose calls are trusted.
    pub(crate) trunks: &'a Trunks,
    pub(crate) changes: &'a mut Vec<Change>,
}

impl Cx<'_> {
    /// The call is now found by `key` too.
    pub(crate) fn index(&mut self, key: Key) {
        self.changes.push(Change::Add(key));
    }

    /// The call is no longer found by `key`.
    pub(crate) fn unindex(&mut self, key: Key) {
        self.changes.push(Change::Remove(key));
    }

    pub(crate) fn emit(&mut self, output: Output) {
        self.out.push_back(output);
    }

    /// Answers server transaction `key` with `response`.
    pub(crate) fn respond(&mut self, key: &TsxKey, response: Response) {
        self.endpoint.respond(self.now, key, response);
    }

    /// Starts a client transaction for `request` towards `peer`; returns its key.
    pub(crate) fn send(&mut self, request: Request, peer: Peer) -> TsxKey {
        self.endpoint.send_request(self.now, request, peer)
    }

    /// Sends bytes outside any transaction (a 2xx retransmission, an ACK to a 2xx).
    pub(crate) fn send_raw(&mut self, peer: Peer, bytes: Bytes) {
        self.endpoint.send_raw(peer, bytes);
    }

    /// Our response to `request` with `tag` as our To tag (see [`response_tagged`]).
    pub(crate) fn response_tagged(
        &self,
        request: &Request,
        status: StatusCode,
        tag: &str,
    ) -> Response {
        response_tagged(self.cfg, request, status, tag)
    }

    /// Asks the driver to look up `uri` (RFC 3263) for this call.
    pub(crate) fn resolve(&mut self, uri: SipUri) -> ResolveId {
        let id = ResolveId(*self.next_resolve);
        *self.next_resolve += 1;
        self.index(Key::Resolve(id));
        self.emit(Output::Resolve(Resolve { id, uri }));
        id
    }

    /// 503 Service Unavailable with our Retry-After, under `tag` (a fresh one when
    /// `None`).
    pub(crate) fn unavailable(&mut self, request: &Request, tag: Option<&str>) -> Response {
        let fresh;
        let tag = match tag {
            Some(t) => t,
            None => {
                fresh = self.endpoint.new_tag();
                fresh.as_str()
            }
        };
        let mut r = self.response_tagged(request, StatusCode::SERVICE_UNAVAILABLE, tag);
        r.headers.push(
            HeaderName::RETRY_AFTER,
            self.cfg.retry_after.as_secs().to_string(),
        );
        r
    }

    /// A fresh SRTP master key and salt (30 bytes) from the key generator.
    pub(crate) fn new_srtp_key(&mut self) -> MasterKey {
        new_srtp_key(self.key_rng)
    }

    /// The wall time in Unix seconds, for `system.now` (opening hours).
    pub(crate) fn unix_s(&self) -> i64 {
        (self.wall.unix_ms(self.now) / 1000) as i64
    }
}

/// A fresh SRTP master key and salt from `keys` (a CSPRNG; see `SwitchConfig::key_seed`).
pub(crate) fn new_srtp_key(keys: &mut rand::rngs::StdRng) -> MasterKey {
    let mut b = [0u8; MasterKey::LEN];
    keys.fill_bytes(&mut b);
    MasterKey::from_bytes(&b)
}

/// Our response to `request` with `tag` as our To tag; a 200 or an error says what we
/// allow and support, every one names us.
pub(crate) fn response_tagged(
    cfg: &SwitchConfig,
    request: &Request,
    status: StatusCode,
    tag: &str,
) -> Response {
    let mut r = response_to(request, status, Some(tag));
    if status == StatusCode::OK || status.class() >= 4 {
        r.headers.push(HeaderName::ALLOW, ALLOW);
        r.headers.push(HeaderName::SUPPORTED, SUPPORTED);
    }
    r.headers.push(HeaderName::SERVER, &cfg.user_agent);
    r
}
