//! Several trunks over one real `Endpoint`: REGISTERs go out as client transactions, the
//! endpoint retransmits them over UDP, and each answer reaches its own trunk by key.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use concierge_sip::registration::{Registrations, StatusState, TrunkOutput};
use concierge_sip::wire::{parse_datagram, response_to, Message, SipUri, StatusCode};
use concierge_sip::{Endpoint, EndpointConfig, EndpointEvent, Peer};

use crate::rig::{config, udp};

struct World {
    endpoint: Endpoint,
    trunks: Registrations,
    now: Instant,
    /// Datagrams the endpoint sent, by destination.
    wire: Vec<(Peer, Message)>,
    events: Vec<TrunkOutput>,
}

impl World {
    fn new() -> Self {
        #[allow(clippy::disallowed_methods, reason = "a test's base instant")]
        let now = Instant::now();
        Self {
            endpoint: Endpoint::new(EndpointConfig::default()),
            trunks: Registrations::new(),
            now,
            wire: Vec::new(),
            events: Vec::new(),
        }
    }

    /// The owner's drain: registration outputs, then the endpoint's transmits and events.
    fn pump(&mut self) {
        loop {
            while let Some(out) = self.trunks.poll(self.now, &mut self.endpoint) {
                self.events.push(out);
            }
            let mut more = false;
            while let Some(t) = self.endpoint.poll_transmit() {
                let m = parse_datagram(&t.bytes).unwrap().unwrap();
                self.wire.push((t.peer, m));
            }
            while let Some(e) = self.endpoint.poll_event() {
                more = true;
                match e {
                    EndpointEvent::Response { key, response } => {
                        assert!(self.trunks.handle_response(self.now, &key, &response));
                    }
                    EndpointEvent::Timeout { key } => {
                        assert!(self.trunks.handle_transaction_timeout(self.now, &key));
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            if !more {
                return;
            }
        }
    }

    /// The registrar at `from` answers the last REGISTER it got with `status`.
    fn answer(&mut self, from: &str, status: u16) {
        let request = self
            .wire
            .iter()
            .rev()
            .find_map(|(p, m)| match m {
                Message::Request(r) if p.addr == from.parse::<SocketAddr>().unwrap() => {
                    Some(r.clone())
                }
                _ => None,
            })
            .expect("a request reached that registrar");
        let response = response_to(&request, StatusCode(status), Some("reg"));
        self.endpoint
            .handle_datagram(self.now, udp(from), &response.to_bytes());
        self.pump();
    }

    fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            let next = [self.endpoint.poll_timeout(), self.trunks.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    self.endpoint.handle_timeout(self.now);
                    self.trunks.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn state(&self, trunk: &str) -> StatusState {
        self.trunks.get(trunk).unwrap().status().state
    }
}

fn trunk_at(registrar: &str, seed: u64) -> concierge_sip::registration::Registration {
    let mut cfg = config();
    cfg.registrar = SipUri::parse(registrar).unwrap();
    concierge_sip::registration::Registration::new(cfg, seed).unwrap()
}

#[test]
fn each_answer_reaches_the_trunk_whose_register_it_answers() {
    let mut w = World::new();
    let now = w.now;
    w.trunks
        .insert(now, "alpha", trunk_at("sip:192.0.2.1:5070", 1));
    w.trunks
        .insert(now, "beta", trunk_at("sip:192.0.2.2:5070", 2));
    w.pump();
    assert_eq!(w.wire.len(), 2, "one REGISTER to each registrar");
    w.answer("192.0.2.2:5070", 403);
    w.answer("192.0.2.1:5070", 200);
    assert!(matches!(w.state("alpha"), StatusState::Registered { .. }));
    assert!(matches!(w.state("beta"), StatusState::Failed { .. }));
}

#[test]
fn the_endpoint_retransmits_a_register_over_udp_and_timer_f_backs_it_off() {
    let mut w = World::new();
    let now = w.now;
    w.trunks
        .insert(now, "alpha", trunk_at("sip:192.0.2.1:5070", 1));
    w.pump();
    w.advance(Duration::from_secs(33));
    assert!(
        w.wire.len() > 5,
        "§17.1.2.2 retransmissions: {}",
        w.wire.len()
    );
    assert!(matches!(w.state("alpha"), StatusState::BackingOff { .. }));
}

#[test]
fn a_removed_trunk_unregisters_and_is_forgotten() {
    let mut w = World::new();
    let now = w.now;
    w.trunks
        .insert(now, "alpha", trunk_at("sip:192.0.2.1:5070", 1));
    w.pump();
    w.answer("192.0.2.1:5070", 200);
    assert!(!w.trunks.is_idle());
    assert!(w.trunks.remove("alpha"));
    w.pump();
    w.answer("192.0.2.1:5070", 200);
    assert!(w.trunks.is_idle());
    assert!(w.trunks.get("alpha").is_none());
    assert_eq!(w.trunks.poll_timeout(), None);
}
