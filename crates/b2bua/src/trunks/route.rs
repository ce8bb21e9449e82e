//! A call through a registered trunk: where a transfer naming the trunk goes, by which
//! route, and with which credentials — read from the trunk's registration when the
//! transfer starts.
//!
//! - `sip:USER@trunk:NAME` stands for `sip:USER@<the registrar's domain>` (the domain of
//!   the address-of-record); a target written with a host of its own keeps it.
//! - The route set (RFC 3261 §8.1.2, a preloaded loose route): the Service-Route the
//!   registrar returned (RFC 3608 §6: for the requests we send later), else the trunk's
//!   outbound proxy, else none — the request then goes to the registrar itself.
//! - A 401/407 is answered with the trunk's credentials, not the `[bridge]` ones.

use concierge_flow::TrunkTarget;
use concierge_sip::registration::{Credentials, Registration};
use concierge_sip::wire::{NameAddr, SipUri, Transport};
use concierge_sip::Peer;

use super::Trunk;

/// How one transfer goes through a trunk.
#[derive(Debug, Clone)]
pub(crate) struct TrunkRoute {
    /// The trunk's name.
    pub(crate) name: String,
    /// The registrar's domain: what `trunk:NAME` in a target stands for.
    domain: String,
    /// The preloaded route set, in order (empty: straight to the registrar).
    pub(crate) routes: Vec<NameAddr>,
    /// Where the request goes first: the first route's URI, else the registrar.
    pub(crate) hop: SipUri,
    /// The first hop's address, when known without a lookup: the one the registration
    /// uses (the registrar's or the outbound proxy's), or an IP address in the URI.
    pub(crate) peer: Option<Peer>,
    /// The trunk's transport, for a hop whose URI names none.
    pub(crate) transport: Transport,
    /// Answers the trunk's challenges.
    pub(crate) credentials: Credentials,
}

impl TrunkRoute {
    pub(super) fn new(spec: &Trunk, registration: &Registration) -> Self {
        let cfg = &spec.registration;
        let service_route = registration.service_route();
        let (routes, hop, own_hop) = if let Some(first) = service_route.first() {
            (service_route.to_vec(), first.uri.clone(), false)
        } else if let Some(proxy) = &cfg.outbound_proxy {
            let route = loose(proxy);
            (vec![route], proxy.clone(), true)
        } else {
            (Vec::new(), cfg.registrar.clone(), true)
        };
        let peer = registration
            .peer()
            .filter(|_| own_hop)
            .or_else(|| concierge_sip::dialog::peer_for_uri(&hop, cfg.transport));
        Self {
            name: spec.name.clone(),
            domain: registration.aor().host().to_owned(),
            routes,
            hop,
            peer,
            transport: cfg.transport,
            credentials: cfg.credentials.clone(),
        }
    }

    /// The URI to call for `target`: `sip:USER@trunk:NAME;params` becomes
    /// `sip:USER@DOMAIN;params`; any other target is called as written.
    pub(crate) fn dial(&self, target: &str) -> String {
        match TrunkTarget::parse(target) {
            Some(t) => format!("{}:{}@{}{}", t.scheme, t.user, self.domain, t.rest),
            None => target.to_owned(),
        }
    }

    /// The first hop to locate (RFC 3263), the trunk's transport written into it when it
    /// names none (so the lookup asks for that transport).
    pub(crate) fn hop_to_locate(&self) -> SipUri {
        if self.hop.param("transport").is_some() || self.transport == Transport::Udp {
            return self.hop.clone();
        }
        let text = format!(
            "{};transport={}",
            self.hop,
            self.transport.as_str().to_ascii_lowercase()
        );
        SipUri::parse(&text).unwrap_or_else(|_| self.hop.clone())
    }
}

/// `uri` as a loose-routing Route entry (`;lr` added when missing).
pub(crate) fn loose(uri: &SipUri) -> NameAddr {
    if uri.param("lr").is_some() {
        return NameAddr::new(uri.clone());
    }
    SipUri::parse(&format!("{uri};lr"))
        .map(NameAddr::new)
        .unwrap_or_else(|_| NameAddr::new(uri.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use concierge_sip::registration::{Password, RegistrationConfig};

    fn trunk(proxy: Option<&str>) -> Trunk {
        Trunk {
            name: "carrier".into(),
            registration: RegistrationConfig {
                registrar: SipUri::parse("sip:carrier.example:5070").unwrap(),
                user: "acct".into(),
                credentials: Credentials {
                    username: "acct".into(),
                    password: Password::new("pw"),
                },
                contact: SipUri::parse("sip:ivr@192.0.2.10:5060").unwrap(),
                contact_v6: None,
                expires: 600,
                outbound_proxy: proxy.map(|p| SipUri::parse(p).unwrap()),
                transport: Transport::Tcp,
                keepalive: None,
                user_agent: None,
            },
            trusted: false,
        }
    }

    fn route(proxy: Option<&str>) -> TrunkRoute {
        let t = trunk(proxy);
        let r = Registration::new(t.registration.clone(), 1).unwrap();
        TrunkRoute::new(&t, &r)
    }

    #[test]
    fn a_trunk_target_is_dialled_at_the_registrar_s_domain_with_its_parameters() {
        let r = route(None);
        assert_eq!(
            r.dial("sip:+4612345@trunk:carrier;user=phone"),
            "sip:+4612345@carrier.example;user=phone"
        );
        assert_eq!(r.dial("sip:+46@sbc.example"), "sip:+46@sbc.example");
    }

    #[test]
    fn without_a_service_route_the_outbound_proxy_is_the_route_else_the_registrar_the_hop() {
        let r = route(Some("sip:192.0.2.7:5080"));
        assert_eq!(r.routes.len(), 1);
        assert_eq!(r.routes[0].uri.as_str(), "sip:192.0.2.7:5080;lr");
        assert_eq!(
            r.peer.map(|p| p.addr.to_string()),
            Some("192.0.2.7:5080".into())
        );
        assert_eq!(r.peer.map(|p| p.transport), Some(Transport::Tcp));
        let r = route(None);
        assert!(r.routes.is_empty());
        assert_eq!(r.hop.as_str(), "sip:carrier.example:5070");
        assert_eq!(r.peer, None, "a name the registration has not located yet");
        assert_eq!(
            r.hop_to_locate().as_str(),
            "sip:carrier.example:5070;transport=tcp"
        );
    }
}
