//! A registration driven in virtual time, with the test playing the registrar: every
//! request it sends is kept, the test answers the last one, and time jumps from deadline
//! to deadline as quinn's `Pair::step` does.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use concierge_sip::registration::{
    Credentials, Password, Registration, RegistrationConfig, RegistrationEvent, RegistrationOutput,
    RequestId, Status,
};
use concierge_sip::wire::{
    response_to, HeaderName, Method, Request, SipUri, StatusCode, Transport,
};
use concierge_sip::Peer;

/// The password of every test trunk; tests search outputs for it.
pub(crate) const PASSWORD: &str = "correct horse";

/// A trunk registering `+4612345` at `sip:192.0.2.1:5070` as `acct-17`, over UDP,
/// asking for 3600 s.
pub(crate) fn config() -> RegistrationConfig {
    RegistrationConfig {
        registrar: SipUri::parse("sip:192.0.2.1:5070").unwrap(),
        user: "+4612345".into(),
        credentials: Credentials {
            username: "acct-17".into(),
            password: Password::new(PASSWORD),
        },
        contact: SipUri::parse("sip:concierge@192.0.2.10:5060").unwrap(),
        contact_v6: None,
        expires: 3600,
        outbound_proxy: None,
        transport: Transport::Udp,
        keepalive: None,
        user_agent: None,
    }
}

pub(crate) fn udp(addr: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr.parse::<SocketAddr>().unwrap(),
    }
}

/// One registration and everything it asked for so far.
pub(crate) struct Rig {
    pub(crate) reg: Registration,
    pub(crate) t0: Instant,
    pub(crate) now: Instant,
    /// Every request sent, in order.
    pub(crate) sent: Vec<(RequestId, Request, Peer)>,
    pub(crate) events: Vec<RegistrationEvent>,
    pub(crate) resolves: Vec<SipUri>,
    pub(crate) keepalives: Vec<(Instant, Peer)>,
}

impl Rig {
    /// Started at `t0`, its first outputs drained.
    pub(crate) fn start(cfg: RegistrationConfig) -> Self {
        #[allow(clippy::disallowed_methods, reason = "a test's base instant")]
        let t0 = Instant::now();
        let mut rig = Self {
            reg: Registration::new(cfg, 7).expect("a valid config"),
            t0,
            now: t0,
            sent: Vec::new(),
            events: Vec::new(),
            resolves: Vec::new(),
            keepalives: Vec::new(),
        };
        rig.reg.start(t0);
        rig.drain();
        rig
    }

    pub(crate) fn drain(&mut self) {
        while let Some(out) = self.reg.poll_output() {
            match out {
                RegistrationOutput::Send { id, request, peer } => {
                    self.sent.push((id, *request, peer))
                }
                RegistrationOutput::Resolve(uri) => self.resolves.push(uri),
                RegistrationOutput::KeepAlive(peer) => self.keepalives.push((self.now, peer)),
                RegistrationOutput::Event(e) => self.events.push(e),
            }
        }
    }

    /// The last REGISTER sent, with its id.
    pub(crate) fn last_register(&self) -> (RequestId, &Request) {
        let (id, r, _) = self
            .sent
            .iter()
            .rev()
            .find(|(_, r, _)| r.method == Method::Register)
            .expect("a REGISTER was sent");
        (*id, r)
    }

    pub(crate) fn registers(&self) -> Vec<&Request> {
        self.sent
            .iter()
            .filter(|(_, r, _)| r.method == Method::Register)
            .map(|(_, r, _)| r)
            .collect()
    }

    /// Answers the last REGISTER with `status` and the header lines in `extra`
    /// (`Name: value`, one per element).
    pub(crate) fn answer(&mut self, status: u16, extra: &[(&str, &str)]) {
        let (id, request) = self.last_register();
        let request = request.clone();
        self.answer_request(id, &request, status, extra);
    }

    pub(crate) fn answer_request(
        &mut self,
        id: RequestId,
        request: &Request,
        status: u16,
        extra: &[(&str, &str)],
    ) {
        let mut response = response_to(request, StatusCode(status), Some("registrar"));
        for (name, value) in extra {
            response.headers.push(HeaderName::new(name), *value);
        }
        self.reg.handle_response(self.now, id, &response);
        self.drain();
    }

    /// The last REGISTER got no response (timer F).
    pub(crate) fn no_response(&mut self) {
        let (id, _) = self.last_register();
        self.reg.handle_no_response(self.now, id);
        self.drain();
    }

    /// Lets `d` pass, firing every deadline on the way at its time.
    pub(crate) fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        while let Some(at) = self.reg.poll_timeout().filter(|at| *at <= until) {
            self.now = self.now.max(at);
            self.reg.handle_timeout(self.now);
            self.drain();
        }
        self.now = until;
    }

    /// Jumps to the next deadline and fires it.
    pub(crate) fn step(&mut self) -> Duration {
        let at = self.reg.poll_timeout().expect("a deadline is armed");
        self.now = self.now.max(at);
        self.reg.handle_timeout(self.now);
        self.drain();
        at - self.t0
    }

    pub(crate) fn status(&self) -> Status {
        self.reg.status()
    }

    /// The value of `name` in the last REGISTER.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.last_register()
            .1
            .header(&HeaderName::new(name))
            .map(str::to_owned)
    }

    /// Registers with a 200 granting what was asked.
    pub(crate) fn registered(cfg: RegistrationConfig) -> Self {
        let mut rig = Self::start(cfg);
        rig.answer(200, &[]);
        rig
    }
}

/// The value of `param` in a Digest credentials line.
pub(crate) fn digest_param(line: &str, param: &str) -> Option<String> {
    line.split(", ").find_map(|kv| {
        let kv = kv.strip_prefix("Digest ").unwrap_or(kv);
        let (k, v) = kv.split_once('=')?;
        (k.trim() == param).then(|| v.trim_matches('"').to_owned())
    })
}

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
