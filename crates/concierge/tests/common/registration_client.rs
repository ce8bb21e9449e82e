//! The sans-IO trunk registration (`concierge_sip::registration`) driven over a real UDP
//! socket on 127.0.0.1, for checking it against real registrars before the server wires
//! it in: a minimal driver of the run loop the switch will implement — datagrams and
//! deadlines in, `Registrations` and an `Endpoint` drained, their transmits sent. It also
//! answers what the registrar sends to our Contact (an INVITE gets 486, an OPTIONS 200)
//! and keeps it, so a test can see a call reach the registered contact.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use concierge_sip::registration::{
    RegistrationConfig, RegistrationEvent, Registrations, Status, TrunkOutput,
};
use concierge_sip::transaction::TimerConfig;
use concierge_sip::wire::{response_to, Request, StatusCode, Transport};
use concierge_sip::{Endpoint, EndpointConfig, EndpointEvent, Peer};

/// One socket, one endpoint, the trunks registered through them.
pub struct RegistrationClient {
    socket: UdpSocket,
    endpoint: Endpoint,
    trunks: Registrations,
    /// Every event, with the trunk's name.
    pub events: Vec<(String, RegistrationEvent)>,
    /// Requests that reached us (not responses), as parsed.
    pub requests: Vec<Request>,
    /// How many REGISTERs (retransmissions included) went out.
    pub registers_sent: usize,
}

impl RegistrationClient {
    /// Bound to a free UDP port on 127.0.0.1; `t1` is RFC 3261's T1 (timer F is 64·T1:
    /// a small T1 lets a test see an unanswered REGISTER time out in seconds).
    pub fn new(t1: Duration) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = socket.local_addr().expect("addr").port();
        let endpoint = Endpoint::new(EndpointConfig {
            timers: TimerConfig {
                t1,
                t2: (t1 * 8).max(Duration::from_millis(500)),
                t4: t1 * 10,
            },
            via_host: "127.0.0.1".into(),
            via_port: port,
            seed: u64::from(port),
            ..EndpointConfig::default()
        });
        Self {
            socket,
            endpoint,
            trunks: Registrations::new(),
            events: Vec::new(),
            requests: Vec::new(),
            registers_sent: 0,
        }
    }

    /// Our port: the Contact a trunk registers must name it.
    pub fn port(&self) -> u16 {
        self.socket.local_addr().expect("addr").port()
    }

    /// Starts registering `trunk`.
    pub fn add(&mut self, trunk: &str, cfg: RegistrationConfig) {
        let registration = concierge_sip::registration::Registration::new(cfg, 42)
            .expect("a valid registration config");
        self.trunks.insert(Instant::now(), trunk, registration);
        self.pump(Instant::now());
    }

    /// Un-registers every trunk.
    pub fn unregister_all(&mut self) {
        self.trunks.unregister_all();
        self.pump(Instant::now());
    }

    /// The status of `trunk`.
    pub fn status(&self, trunk: &str) -> Status {
        self.trunks
            .get(trunk)
            .expect("a trunk of that name")
            .status()
    }

    /// Service-Route of `trunk` as strings.
    pub fn service_route(&self, trunk: &str) -> Vec<String> {
        let reg = self.trunks.get(trunk).expect("a trunk of that name");
        reg.service_route().iter().map(|r| r.to_string()).collect()
    }

    /// Path of `trunk` as strings.
    pub fn path(&self, trunk: &str) -> Vec<String> {
        let reg = self.trunks.get(trunk).expect("a trunk of that name");
        reg.path().iter().map(|r| r.to_string()).collect()
    }

    /// Whether no trunk is registered or un-registering any more.
    pub fn is_idle(&self) -> bool {
        self.trunks.is_idle()
    }

    /// Runs the loop until `done` holds or `within` passes; whether `done` held.
    pub fn run_until(&mut self, within: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; 65_535];
        loop {
            if done(self) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let next = [self.endpoint.poll_timeout(), self.trunks.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(deadline)
                .min(deadline);
            let wait = next
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            self.socket.set_read_timeout(Some(wait)).expect("timeout");
            if let Ok((n, from)) = self.socket.recv_from(&mut buf) {
                let now = Instant::now();
                let peer = Peer {
                    transport: Transport::Udp,
                    addr: from,
                };
                self.endpoint.handle_datagram(now, peer, &buf[..n]);
            }
            let now = Instant::now();
            self.endpoint.handle_timeout(now);
            self.trunks.handle_timeout(now);
            self.pump(now);
        }
    }

    /// The driver's drain: the registrations' outputs, then the endpoint's transmits and
    /// events, until nothing is left.
    fn pump(&mut self, now: Instant) {
        loop {
            while let Some(out) = self.trunks.poll(now, &mut self.endpoint) {
                match out {
                    TrunkOutput::Event { trunk, event } => self.events.push((trunk, event)),
                    TrunkOutput::KeepAlive(_) | TrunkOutput::Sent(_) => {}
                    TrunkOutput::Resolve { id, .. } => {
                        // The tests name registrars by address; a name has none here.
                        self.trunks.handle_resolved(now, id, Vec::new());
                    }
                }
            }
            while let Some(t) = self.endpoint.poll_transmit() {
                if t.bytes.starts_with(b"REGISTER ") {
                    self.registers_sent += 1;
                }
                let _ = self.socket.send_to(&t.bytes, t.peer.addr);
            }
            let mut handled = false;
            while let Some(event) = self.endpoint.poll_event() {
                handled = true;
                match event {
                    EndpointEvent::Response { key, response } => {
                        self.trunks.handle_response(now, &key, &response);
                    }
                    EndpointEvent::Timeout { key } => {
                        self.trunks.handle_transaction_timeout(now, &key);
                    }
                    EndpointEvent::Request { key, request, .. } => {
                        let status = if request.method.as_str() == "INVITE" {
                            StatusCode(486)
                        } else {
                            StatusCode::OK
                        };
                        let tag = self.endpoint.new_tag();
                        let response = response_to(&request, status, Some(tag.as_str()));
                        self.endpoint.respond(now, &key, response);
                        self.requests.push(request);
                    }
                    _ => {}
                }
            }
            if !handled {
                return;
            }
        }
    }

    /// Where our socket is, for a Contact.
    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("addr")
    }
}
