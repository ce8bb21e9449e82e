//! Trunks for the switch to register with, and a scripted registrar that answers them.

use std::net::SocketAddr;

use concierge_b2bua::{Program, Trunk};
use concierge_sip::registration::{Credentials, Password, RegistrationConfig};
use concierge_sip::wire::{Message, Request, SipUri, Transport};

use super::sip::reply_text;
use super::{Kit, HOST, SIP_PORT};

/// The registrar of the kit's trunks (a documentation address).
pub(crate) const REGISTRAR: &str = "198.51.100.1:5070";
/// The trunk's password: no record, log line or output may show it.
pub(crate) const PASSWORD: &str = "trunk-secret-7";

/// Trunk `name` registering `+4612345` as `acct-17` at `registrar` (a URI), over UDP,
/// for 600 s; our Contact is `ivr` at the kit's host.
pub(crate) fn trunk(name: &str, registrar: &str) -> Trunk {
    Trunk {
        name: name.into(),
        registration: RegistrationConfig {
            registrar: SipUri::parse(registrar).expect("a SIP URI"),
            user: "+4612345".into(),
            credentials: Credentials {
                username: "acct-17".into(),
                password: Password::new(PASSWORD),
            },
            contact: SipUri::parse(&format!("sip:ivr@{HOST}:{SIP_PORT}")).expect("a SIP URI"),
            contact_v6: None,
            expires: 600,
            outbound_proxy: None,
            transport: Transport::Udp,
            keepalive: None,
            user_agent: Some("Concierge".into()),
        },
        trusted: false,
    }
}

/// The trunk `carrier` at [`REGISTRAR`].
pub(crate) fn carrier() -> Trunk {
    trunk("carrier", &format!("sip:{REGISTRAR}"))
}

/// A program running `flow` (or none) with `trunks`.
pub(crate) fn program(flow: Option<&str>, trunks: Vec<Trunk>) -> Program {
    Program {
        trunks,
        ..flow.map(super::program).unwrap_or_default()
    }
}

/// A registrar (or proxy) the switch sends to.
pub(crate) struct Registrar {
    pub(crate) addr: SocketAddr,
}

impl Registrar {
    pub(crate) fn at(addr: &str) -> Self {
        Self {
            addr: addr.parse().expect("host:port"),
        }
    }

    /// The requests the switch sent here since the last look.
    pub(crate) fn requests(&self, kit: &mut Kit) -> Vec<Request> {
        let addr = self.addr;
        kit.take_sent(|s| s.to == addr)
            .into_iter()
            .filter_map(|m| match m {
                Message::Request(r) => Some(r),
                Message::Response(_) => None,
            })
            .collect()
    }

    /// The one REGISTER sent here since the last look.
    pub(crate) fn register(&self, kit: &mut Kit) -> Request {
        let mut regs: Vec<Request> = self
            .requests(kit)
            .into_iter()
            .filter(|r| r.method.as_str() == "REGISTER")
            .collect();
        assert_eq!(regs.len(), 1, "one REGISTER: {regs:?}");
        regs.remove(0)
    }

    /// Answers `req` with `code` and the header lines `extra` (each ending in CRLF).
    pub(crate) fn reply(&self, kit: &mut Kit, req: &Request, code: u16, extra: &str) {
        kit.sip_from(self.addr, &reply_text(req, code, "reg", extra, ""));
    }

    /// 200 binding the REGISTER's Contact for `expires` s.
    pub(crate) fn bind(&self, kit: &mut Kit, req: &Request, expires: u32, extra: &str) {
        let contact = req.header_value("Contact");
        let extra = format!("Contact: {contact};expires={expires}\r\n{extra}");
        self.reply(kit, req, 200, &extra);
    }

    /// Takes the REGISTER sent here and binds it for 600 s.
    pub(crate) fn registers(&self, kit: &mut Kit) {
        let req = self.register(kit);
        self.bind(kit, &req, 600, "");
    }
}

/// A request's header as text (empty when absent).
trait HeaderValue {
    fn header_value(&self, name: &str) -> String;
}

impl HeaderValue for Request {
    fn header_value(&self, name: &str) -> String {
        self.header(&concierge_sip::wire::HeaderName::new(name))
            .unwrap_or_default()
            .to_owned()
    }
}
