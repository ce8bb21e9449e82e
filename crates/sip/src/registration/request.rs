//! The requests a registration sends: REGISTER (RFC 3261 §10.2) and the OPTIONS
//! keep-alive ping. Neither has a Via yet: the endpoint adds ours with a fresh branch when
//! it starts the client transaction.

use bytes::Bytes;

use super::Registration;
use crate::wire::{CSeq, HeaderName, Headers, Method, NameAddr, Request, SipUri};

/// RFC 3261 §8.1.1.6.
const MAX_FORWARDS: u32 = 70;

impl Registration {
    /// §10.2: a REGISTER asking for `expires` seconds (0: remove our binding). Same
    /// Call-ID and From tag for every REGISTER of this registration (§10.2.4: the
    /// registrar orders them by CSeq), the next CSeq, our Contact, `Supported: path`
    /// (RFC 3327 §5.1), the outbound proxy as the only route (RFC 3608 §6: a
    /// Service-Route is for the requests we send later, never for REGISTER), and an
    /// answer to every challenge we hold.
    pub(super) fn build_register(&mut self, expires: u32) -> Request {
        self.cseq = self.cseq.wrapping_add(1);
        let mut headers = self.route_headers();
        headers.push(HeaderName::CONTACT, format!("<{}>", self.contact()));
        headers.push(HeaderName::EXPIRES, expires.to_string());
        headers.push(HeaderName::SUPPORTED, "path");
        if let Some(ua) = &self.cfg.user_agent {
            headers.push(HeaderName::USER_AGENT, ua.clone());
        }
        let uri = self.cfg.registrar.as_str().to_owned();
        let rng = &mut self.rng;
        for (name, line) in self
            .auth
            .answers(&self.cfg.credentials, "REGISTER", &uri, || {
                format!("{:016x}", rand::Rng::gen::<u64>(rng))
            })
        {
            headers.push(name, line);
        }
        let aor = NameAddr::new(self.aor.clone());
        Request {
            method: Method::Register,
            uri: self.cfg.registrar.clone(),
            vias: Vec::new(),
            from: aor.clone().with_tag(self.from_tag.as_str()),
            to: aor,
            call_id: self.call_id.clone(),
            cseq: CSeq {
                seq: self.cseq,
                method: Method::Register,
            },
            max_forwards: Some(MAX_FORWARDS),
            headers,
            body: Bytes::new(),
        }
    }

    /// The keep-alive ping over UDP: an OPTIONS to the registrar along the same route,
    /// outside any dialog, on a Call-ID of its own. Any final answer, even an error,
    /// shows the path is open.
    pub(super) fn build_ping(&mut self) -> Request {
        self.ping_cseq = self.ping_cseq.wrapping_add(1);
        let mut headers = self.route_headers();
        if let Some(ua) = &self.cfg.user_agent {
            headers.push(HeaderName::USER_AGENT, ua.clone());
        }
        Request {
            method: Method::Options,
            uri: self.cfg.registrar.clone(),
            vias: Vec::new(),
            from: NameAddr::new(self.aor.clone()).with_tag(self.from_tag.as_str()),
            to: NameAddr::new(self.cfg.registrar.clone()),
            call_id: self.ping_call_id.clone(),
            cseq: CSeq {
                seq: self.ping_cseq,
                method: Method::Options,
            },
            max_forwards: Some(MAX_FORWARDS),
            headers,
            body: Bytes::new(),
        }
    }

    /// The outbound proxy as a preloaded loose Route (§8.1.2), `;lr` added when missing.
    fn route_headers(&self) -> Headers {
        let mut headers = Headers::new();
        if let Some(proxy) = &self.cfg.outbound_proxy {
            let route = if proxy.param("lr").is_some() {
                proxy.clone()
            } else {
                SipUri::parse(&format!("{proxy};lr")).unwrap_or_else(|_| proxy.clone())
            };
            headers.push(HeaderName::ROUTE, format!("<{route}>"));
        }
        headers
    }
}
