//! A deterministic cost driver for the switch: `N` whole calls through the contract in
//! virtual time, no sockets, no clock, nothing printed per call. Built `--release` and run
//! under an instruction counter, it measures what a call costs the switch itself — the
//! figure the architecture work must keep within ±10 % (bench/run.py measures the whole
//! process against real peers; this measures only the core, and is repeatable on a busy
//! machine).
//!
//! ```text
//! cargo build --release -p concierge-b2bua --example call_cost
//! valgrind --tool=cachegrind --cache-sim=no target/release/examples/call_cost plain 2000
//! valgrind --tool=cachegrind --cache-sim=no target/release/examples/call_cost plain 0
//! ```
//!
//! The difference of the two `I refs` over `N` is the instructions per call (the `0` run
//! counts the start-up: parsing the flow, building prompts).
//!
//! - `plain`: no flow — INVITE, (bind) 180, 200, ACK, the caller's BYE and its 200.
//! - `vip`: the reference flow (`config/flows/vip.toml`) for a VIP through a trusted
//!   carrier — INVITE, (bind) 180 and the CRM lookup, the lookup's answer injected,
//!   200, ACK, the 1.4 s greeting paced out (70 RTP packets), REFER, 202, NOTIFY 200, our
//!   BYE and its 200.
//! - `rtp`: one plain call, then `N` RTP packets (PCMU, 20 ms) from the caller to its port,
//!   in batches of 100 as the driver hands them in: the cost of one packet in (the
//!   difference over `N`, as above). `srtp-in`: the same
//!   over SRTP (`RTP/SAVP`, AES_CM_128_HMAC_SHA1_80), each packet checked and decrypted.
//! - `rtp-out`: 1,000 concurrent plain calls answered, then `N` packet times (20 ms) of
//!   pacing: silence to every caller, 1,000 packets per packet time. The cost of one packet
//!   out is the difference of `N` and `0` over the packets (printed). `srtp-out`: the same
//!   with SRTP calls, each packet encrypted and authenticated.
//!
//! Calls run one after another; each has its own Call-ID and number (so the lookup cache
//! never answers for the CRM).
#![allow(
    clippy::disallowed_methods,
    reason = "the driver's one base instant; the rest is virtual time"
)]

use std::alloc::System;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use concierge_b2bua::{
    AdmissionConfig, Input, Output, Program, RtpBatch, Switch, SwitchConfig, TrustedPeers,
    WallClock,
};
use concierge_flow::HttpResponse;
use concierge_media::sdes::CryptoAttribute;
use concierge_media::srtp::{MasterKey, SrtpContext, SrtpProfile};
use concierge_prompts::{Catalogue, Prompt};
use concierge_sip::wire::{parse_datagram, Message, Request, Transport};
use concierge_sip::Peer;
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

const HOST: &str = "192.0.2.10";
const CARRIER: &str = "127.0.0.2:5060";
const FLOW: &str = include_str!("../../../config/flows/vip.toml");
/// The prompts the reference flow names, with their length in 20 ms frames (the greeting
/// as shipped: 1.4 s).
const PROMPTS: &[(&str, usize)] = &[
    ("one_moment", 50),
    ("hold_music", 50),
    ("vip_greeting", 70),
    ("welcome", 100),
    ("enter_code", 100),
    ("invalid_code", 100),
    ("transfer_vip", 100),
    ("transfer_service", 100),
    ("code_locked", 100),
    ("goodbye", 100),
    ("please_hold", 100),
];
const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";

/// Counts allocations (printed at the end): the same in every run of a mode, so the
/// difference of two runs over their calls or packets is exact.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
    run();
    let stats = GLOBAL.stats();
    println!("allocations: {}", stats.allocations + stats.reallocations);
}

fn run() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "plain".into());
    let n: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let vip = match kind.as_str() {
        "plain" | "rtp" | "srtp-in" | "rtp-out" | "srtp-out" => false,
        "vip" => true,
        other => {
            panic!("usage: call_cost plain|vip|rtp|srtp-in|rtp-out|srtp-out N (not {other:?})")
        }
    };
    let mut d = Driver::new(vip);
    match kind.as_str() {
        "rtp" | "srtp-in" => {
            d.rtp_in(n, kind == "srtp-in");
            println!("{kind}: {n} packets in");
            return;
        }
        "rtp-out" | "srtp-out" => {
            d.rtp_out(n, kind == "srtp-out");
            println!("{kind}: {} packets out", d.rtp);
            return;
        }
        _ => {}
    }
    for i in 0..n {
        if vip {
            d.vip_call(i);
        } else {
            d.plain_call(i);
        }
    }
    assert_eq!(d.records, u64::from(n), "every call wrote its record");
    assert_eq!(d.switch.call_count(), 0, "every call left the switch");
    println!("{kind}: {n} calls, {} RTP packets", d.rtp);
}

/// The driver's side: the switch, virtual time, and what a call's script needs to read
/// back from the outputs (never more: parsing every output would weigh on the figure).
struct Driver {
    switch: Switch,
    now: Instant,
    next: Option<Instant>,
    /// SIP the last drain sent, as bytes.
    sent: Vec<bytes::Bytes>,
    ports: Vec<u16>,
    http: Option<concierge_b2bua::CallRef>,
    records: u64,
    rtp: u64,
}

impl Driver {
    fn new(vip: bool) -> Self {
        let base = Instant::now();
        let wall = WallClock {
            instant: base,
            system: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        };
        let cfg = SwitchConfig {
            advertised_host: HOST.into(),
            media_ip: HOST.parse().expect("an address"),
            trusted_peers: TrustedPeers::parse(["127.0.0.2"]).expect("an address"),
            directory_url: "http://crm.test".into(),
            // Ports rest 4 s after each call; calls follow each other faster than that.
            rtp_ports: (10_000, 60_000),
            seed: 7,
            // `rtp-out` answers 1,000 calls from the one carrier at once.
            admission: AdmissionConfig {
                source_invite_rate: 100_000,
                source_invite_burst: 100_000,
                ..AdmissionConfig::default()
            },
            ..SwitchConfig::default()
        };
        let program = if vip {
            vip_program()
        } else {
            Program::default()
        };
        Self {
            switch: Switch::new(cfg, wall, program),
            now: base,
            next: None,
            sent: Vec::new(),
            ports: Vec::new(),
            http: None,
            records: 0,
            rtp: 0,
        }
    }

    /// `handle_input`, then `poll_output` until `Timeout`, binding every port asked for.
    fn input(&mut self, input: Input<'_>) {
        self.sent.clear();
        self.switch.handle_input(self.now, input);
        loop {
            let mut bind = Vec::new();
            loop {
                match self.switch.poll_output() {
                    Output::Timeout(at) => {
                        self.next = at;
                        break;
                    }
                    Output::Sip(t) => self.sent.push(t.bytes),
                    Output::MediaOpen { port } => bind.push(port),
                    Output::Http { call, .. } => self.http = Some(call),
                    Output::Record(_) => self.records += 1,
                    Output::Rtp(batch) => {
                        self.rtp += batch.len() as u64;
                        self.switch.recycle(batch);
                    }
                    Output::MediaClose { .. }
                    | Output::Resolve(_)
                    | Output::Event(_)
                    | Output::Trunks(_)
                    | Output::LockoutCheck { .. }
                    | Output::LockoutFailure { .. } => {}
                }
            }
            if bind.is_empty() {
                return;
            }
            for port in bind {
                self.ports.push(port);
                self.switch
                    .handle_input(self.now, Input::PortBound { port });
            }
        }
    }

    fn sip(&mut self, text: &str) {
        let peer = Peer {
            transport: Transport::Udp,
            addr: CARRIER.parse::<SocketAddr>().expect("an address"),
        };
        self.input(Input::Datagram {
            peer,
            data: text.as_bytes(),
        });
    }

    /// Moves virtual time on by `by`, handing in every deadline due on the way (as a
    /// driver does: the pacing tick, retransmissions).
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        while let Some(at) = self.next.filter(|at| *at <= until) {
            self.now = self.now.max(at);
            self.input(Input::Timeout);
        }
        self.now = until;
    }

    /// The To tag of the 200 OK the last drains sent.
    fn ok_tag(&self) -> String {
        self.find(|m| match m {
            Message::Response(r) if r.status.0 == 200 => r.to.tag().map(str::to_owned),
            _ => None,
        })
        .expect("a 200 OK")
    }

    fn request(&self, method: &str) -> Request {
        self.find(|m| match m {
            Message::Request(r) if r.method.as_str() == method => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {method} sent"))
    }

    fn find<T>(&self, pick: impl Fn(&Message) -> Option<T>) -> Option<T> {
        self.sent.iter().rev().find_map(|b| {
            let m = parse_datagram(b).ok().flatten()?;
            pick(&m)
        })
    }

    fn plain_call(&mut self, i: u32) {
        let call_id = format!("plain-{i}");
        let number = format!("+4670{i:07}");
        self.sip(&invite(&call_id, &number, false));
        let tag = self.ok_tag();
        self.advance(Duration::from_millis(10));
        self.sip(&in_dialog(&call_id, &number, "ACK", 1, &tag, ""));
        self.advance(Duration::from_millis(10));
        self.sip(&in_dialog(&call_id, &number, "BYE", 2, &tag, ""));
        self.advance(Duration::from_millis(10));
    }

    /// A plain call answered, then `n` RTP packets from the caller, 20 ms of PCMU each,
    /// handed in [`BATCH`] at a time (`Input::RtpBatch`) and the outputs drained after
    /// each batch, as the driver does (no deadline fires in between: only the way in
    /// counts; copying each packet into the batch, the RTP thread's work, is in the
    /// figure). With `srtp`, the caller
    /// offers SRTP and encrypts each packet with its key (in this driver: its cost is in
    /// the figure too, about that of one protect).
    fn rtp_in(&mut self, n: u32, srtp: bool) {
        let (call_id, number) = ("rtp-0", "+46700000000");
        self.sip(&invite(call_id, number, srtp));
        let tag = self.ok_tag();
        self.sip(&in_dialog(call_id, number, "ACK", 1, &tag, ""));
        let port = *self.ports.last().expect("the call's port");
        let from: SocketAddr = "127.0.0.2:4000".parse().expect("an address");
        let mut caller = srtp.then(|| SrtpContext::new(PROFILE, &caller_key()));
        let mut packet = [0xffu8; 172];
        let mut wire = Vec::with_capacity(200);
        let mut batch = RtpBatch::new();
        packet[0] = 0x80;
        packet[1] = 0;
        for i in 0..n {
            let (seq, ts) = (i as u16, i.wrapping_mul(160));
            packet[2..4].copy_from_slice(&seq.to_be_bytes());
            packet[4..8].copy_from_slice(&ts.to_be_bytes());
            packet[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
            let data = match caller.as_mut() {
                Some(c) => {
                    c.protect(&packet, &mut wire).expect("an RTP packet");
                    &wire[..]
                }
                None => &packet[..],
            };
            self.now += Duration::from_micros(1);
            batch.push(port, from, self.now, data);
            // The driver hands in a batch from the RTP thread at a time, then drains.
            if i % BATCH == BATCH - 1 || i + 1 == n {
                self.switch.handle_input(self.now, Input::RtpBatch(&batch));
                while !matches!(self.switch.poll_output(), Output::Timeout(_)) {}
                batch.clear();
            }
        }
    }

    /// 1,000 calls answered (the caller's SDP offers SRTP with `srtp`), then `n` packet
    /// times of pacing with every deadline handed in, as the driver does. Counts the RTP
    /// packets sent while pacing only.
    fn rtp_out(&mut self, n: u32, srtp: bool) {
        for i in 0..1000 {
            let (call_id, number) = (format!("out-{i}"), format!("+4670{i:07}"));
            self.sip(&invite(&call_id, &number, srtp));
            let tag = self.ok_tag();
            self.sip(&in_dialog(&call_id, &number, "ACK", 1, &tag, ""));
        }
        // The calls' first packets (each call's media starts on the next tick).
        self.advance(Duration::from_millis(20));
        self.rtp = 0;
        self.advance(Duration::from_millis(20) * n);
    }

    fn vip_call(&mut self, i: u32) {
        let call_id = format!("vip-{i}");
        let number = format!("+4670{i:07}");
        self.sip(&invite(&call_id, &number, false));
        let call = self.http.take().expect("the CRM lookup");
        self.advance(Duration::from_millis(40));
        let body = format!(
            r#"{{"customer": {{"number": "{number}", "hasVIPMembership": true, "tier": "gold"}}}}"#
        );
        self.input(Input::Http {
            call,
            result: Ok(HttpResponse {
                status: 200,
                body: body.into_bytes(),
                latency: Duration::from_millis(40),
                shared: None,
            }),
        });
        let tag = self.ok_tag();
        self.advance(Duration::from_millis(10));
        self.sip(&in_dialog(&call_id, &number, "ACK", 1, &tag, ""));
        // The greeting, paced out; the REFER follows it.
        let refer = loop {
            let at = self.next.expect("a deadline while the greeting plays");
            self.now = self.now.max(at);
            self.input(Input::Timeout);
            if let Some(r) = self.find(|m| match m {
                Message::Request(r) if r.method.as_str() == "REFER" => Some(r.clone()),
                _ => None,
            }) {
                break r;
            }
        };
        self.advance(Duration::from_millis(20));
        self.sip(&reply_to(&refer, 202, "Accepted"));
        self.advance(Duration::from_millis(200));
        let notify = "Event: refer\r\nSubscription-State: terminated;reason=noresource\r\nContent-Type: message/sipfrag\r\nContent-Length: 16\r\n\r\nSIP/2.0 200 OK\r\n";
        self.sip(&in_dialog(&call_id, &number, "NOTIFY", 2, &tag, notify));
        let bye = self.request("BYE");
        self.advance(Duration::from_millis(20));
        self.sip(&reply_to(&bye, 200, "OK"));
        self.advance(Duration::from_millis(10));
    }
}

/// Received packets handed in between two drains, as the driver hands in a batch from
/// the RTP thread (at 4,000 calls a 1 ms round brings about 200).
const BATCH: u32 = 100;

/// The caller's SRTP suite and master key, when it offers SRTP.
const PROFILE: SrtpProfile = SrtpProfile::AesCm128HmacSha1_80;

fn caller_key() -> MasterKey {
    MasterKey::from_bytes(&[0x5a; 30])
}

fn invite(call_id: &str, number: &str, srtp: bool) -> String {
    let sdp = if srtp {
        let crypto = CryptoAttribute {
            tag: 1,
            profile: PROFILE,
            key: caller_key(),
        };
        format!(
            "{}{}\r\n",
            SDP.replace("RTP/AVP", "RTP/SAVP"),
            crypto.line()
        )
    } else {
        SDP.to_owned()
    };
    format!(
        "INVITE sip:vip@{HOST}:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CARRIER};branch=z9hG4bK{call_id}i\r\nFrom: <sip:{number}@carrier.example>;tag=gw\r\nTo: <sip:vip@{HOST}:5060>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:gw@{CARRIER}>\r\nP-Asserted-Identity: <sip:{number}@carrier.example>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// A request of the caller in the dialog; `tail` ends the headers (and carries a body),
/// else an empty body.
fn in_dialog(call_id: &str, number: &str, method: &str, seq: u32, tag: &str, tail: &str) -> String {
    let tail = if tail.is_empty() {
        "Content-Length: 0\r\n\r\n"
    } else {
        tail
    };
    let target = if method == "ACK" || method == "BYE" {
        format!("sip:vip@{HOST}:5060")
    } else {
        format!("sip:concierge@{HOST}:5060")
    };
    let cseq = if method == "ACK" { 1 } else { seq };
    format!(
        "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {CARRIER};branch=z9hG4bK{call_id}{method}\r\nFrom: <sip:{number}@carrier.example>;tag=gw\r\nTo: <sip:vip@{HOST}:5060>;tag={tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n{tail}"
    )
}

fn reply_to(req: &Request, code: u16, reason: &str) -> String {
    let vias: String = req.vias.iter().map(|v| format!("Via: {v}\r\n")).collect();
    format!(
        "SIP/2.0 {code} {reason}\r\n{vias}From: {}\r\nTo: {};tag=gw\r\nCall-ID: {}\r\nCSeq: {} {}\r\nContent-Length: 0\r\n\r\n",
        req.from, req.to, req.call_id, req.cseq.seq, req.cseq.method
    )
}

/// The reference flow with prompts of one level each, as long as [`PROMPTS`] says.
fn vip_program() -> Program {
    let mut prompts = Catalogue::default();
    for (name, frames) in PROMPTS {
        prompts.insert(Prompt::from_pcm(*name, vec![1200; frames * 160]));
    }
    let loaded = concierge_flow::parse_flow(
        std::path::Path::new("config/flows/vip.toml"),
        FLOW,
        &|name| prompts.contains(name),
    )
    .unwrap_or_else(|e| panic!("the shipped VIP flow does not load: {e:?}"));
    Program {
        default_flow: Some(loaded.flow),
        prompts,
        ..Default::default()
    }
}
