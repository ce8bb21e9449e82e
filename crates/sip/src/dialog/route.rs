//! Where a dialog's requests go, and the Contact we give a dialog.
//!
//! RFC 3261 §12.2.1.1 and §8.1.2 send a request inside a dialog to the first element of
//! the route set, or to the remote target when there is none. Two practical rules sit on
//! top, both about callers we cannot reach at the address they wrote down:
//! * a caller that reached us over a connection (TCP) gets its requests back on that
//!   connection (RFC 5923's alias behaviour, RFC 3261 §18.2.2's reuse): a phone's Contact
//!   over TCP is often an ephemeral port or a private address that nothing can connect to;
//! * a UDP caller whose Contact is on another IP than the one its datagrams come from is
//!   behind NAT (RFC 3581's situation): its requests go to the source it sends from.

use std::net::{IpAddr, SocketAddr};

use super::Dialog;
use crate::endpoint::Peer;
use crate::wire::{SipUri, Transport};

/// Which side of the dialog we are (§12.1.1 or §12.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogRole {
    /// We answered the INVITE (the caller's dialog).
    Uas,
    /// We sent the INVITE (a bridge leg).
    Uac,
}

/// Our Contact URI for a dialog over `transport` (RFC 3261 §8.1.1.8, §19.1.4): the
/// advertised host and port, with `;transport=tcp` / `;transport=tls`, so the peer's
/// requests come back over the transport the dialog uses. UDP, the default of a `sip:`
/// URI, needs no parameter. A `sips:` Contact is for dialogs a SIPS URI set up
/// ([`sips_contact`]): a phone that dialled `sip:…;transport=tls` may not speak `sips:`.
pub fn local_contact(user: &str, host: &str, port: u16, transport: Transport) -> SipUri {
    let (scheme, param) = match transport {
        Transport::Udp => ("sip:", ""),
        Transport::Wss => ("sips:", ";transport=wss"),
        Transport::Tcp => ("sip:", ";transport=tcp"),
        Transport::Tls => ("sip:", ";transport=tls"),
        Transport::Sctp => ("sip:", ";transport=sctp"),
        Transport::Ws => ("sip:", ";transport=ws"),
        Transport::Other => ("sip:", ";transport=other"),
    };
    // Written piece by piece: this runs for every answer we give.
    let mut port_text = itoa::Buffer::new();
    let port_text = port_text.format(port);
    let mut text = String::with_capacity(
        scheme.len() + user.len() + host.len() + port_text.len() + param.len() + 2,
    );
    for piece in [scheme, user, "@", host, ":", port_text, param] {
        text.push_str(piece);
    }
    SipUri::parse(&text).unwrap_or_else(|_| {
        // The host was validated with the config; only a broken user could fail here.
        SipUri::parse(&format!("sip:{host}:{port}")).expect("a host and port make a SIP URI")
    })
}

/// Our Contact for a dialog a SIPS Request-URI set up (RFC 3261 §12.1.1: it MUST then be a
/// SIPS URI too).
pub fn sips_contact(user: &str, host: &str, port: u16) -> SipUri {
    SipUri::parse(&format!("sips:{user}@{host}:{port}")).unwrap_or_else(|_| {
        SipUri::parse(&format!("sips:{host}:{port}")).expect("a host and port make a SIPS URI")
    })
}

/// The address of `uri` as a next hop (RFC 3263 without DNS: the host must be an IP
/// address). The transport is the URI's `transport` parameter, TLS for `sips:`, else
/// `default`; the port defaults to 5060 (5061 for TLS).
pub fn peer_for_uri(uri: &SipUri, default: Transport) -> Option<Peer> {
    let host = uri.host().trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = host.parse().ok()?;
    let transport = match uri.param("transport").flatten() {
        Some(t) => Transport::parse(t).unwrap_or(default),
        None if uri.scheme() == "sips" => Transport::Tls,
        None => default,
    };
    let port = uri.port().unwrap_or(match transport {
        Transport::Tls => 5061,
        _ => 5060,
    });
    Some(Peer {
        transport,
        addr: SocketAddr::new(ip, port),
    })
}

impl Dialog {
    /// The URI the next request of this dialog is sent to (§12.2.1.1): the first route
    /// (loose or strict router alike: a strict router is also the Request-URI), else the
    /// remote target.
    pub fn first_hop(&self) -> &SipUri {
        self.route_set
            .first()
            .map_or(&self.remote_target, |r| &r.uri)
    }

    /// Where to send the next request of this dialog. `learned` is the peer the dialog
    /// was set up with: the caller's source (UAS) or where our INVITE went (UAC).
    pub fn next_hop(&self, learned: Peer) -> Peer {
        if let Some(first) = self.route_set.first() {
            // §12.2.1.1: the route set decides; the proxies that record-routed asked to
            // see every request. A name we cannot resolve here falls back to `learned`.
            return peer_for_uri(&first.uri, learned.transport).unwrap_or(learned);
        }
        match self.role {
            DialogRole::Uac => {
                peer_for_uri(&self.remote_target, learned.transport).unwrap_or(learned)
            }
            // RFC 5923 §4 / §18.2.2: back over the caller's own connection.
            DialogRole::Uas if learned.transport.is_reliable() => learned,
            DialogRole::Uas => match peer_for_uri(&self.remote_target, learned.transport) {
                // Same IP as the caller sends from: its Contact is reachable as written
                // (it may listen on another port than it sends from).
                Some(target)
                    if target.transport == learned.transport
                        && target.addr.ip() == learned.addr.ip() =>
                {
                    target
                }
                // Another IP (a private address behind NAT) or a name: the source.
                _ => learned,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{parse_datagram, Message, Method, Request};

    fn invite(record_route: &str, contact: &str) -> Request {
        let text = format!(
            "INVITE sip:ivr@192.0.2.10 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 198.51.100.1:5070;branch=z9hG4bKp1\r\n\
             Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKc1;rport\r\n\
             {record_route}\
             From: <sip:+46706170786@carrier.example>;tag=caller\r\n\
             To: <sip:ivr@192.0.2.10>\r\n\
             Call-ID: n1\r\n\
             CSeq: 10 INVITE\r\n\
             Contact: <{contact}>\r\n\r\n"
        );
        match parse_datagram(text.as_bytes()).unwrap().unwrap() {
            Message::Request(r) => r,
            _ => unreachable!(),
        }
    }

    fn peer(transport: Transport, addr: &str) -> Peer {
        Peer {
            transport,
            addr: addr.parse().unwrap(),
        }
    }

    fn uas(record_route: &str, contact: &str) -> Dialog {
        let ours = local_contact("concierge", "192.0.2.10", 5060, Transport::Udp);
        Dialog::uas(
            &invite(record_route, contact),
            &crate::ids::Tag::from("ours"),
            ours,
            1,
        )
    }

    #[test]
    fn contact_names_the_transport_of_the_dialog() {
        let c = |t| local_contact("concierge", "192.0.2.10", 5062, t).to_string();
        assert_eq!(c(Transport::Udp), "sip:concierge@192.0.2.10:5062");
        assert_eq!(
            c(Transport::Tcp),
            "sip:concierge@192.0.2.10:5062;transport=tcp"
        );
        assert_eq!(
            c(Transport::Tls),
            "sip:concierge@192.0.2.10:5062;transport=tls"
        );
        assert_eq!(
            sips_contact("concierge", "192.0.2.10", 5062).to_string(),
            "sips:concierge@192.0.2.10:5062"
        );
    }

    #[test]
    fn rfc3261_12_2_1_1_loose_route_set_sends_to_the_first_route_not_the_contact() {
        let d = uas(
            "Record-Route: <sip:198.51.100.1:5070;lr>, <sip:198.51.100.2;lr>\r\n",
            "sip:+46706170786@203.0.113.5:5060",
        );
        let from = peer(Transport::Udp, "198.51.100.1:5070");
        assert_eq!(d.next_hop(from), from);
        let mut d = d;
        let bye = d.new_request(Method::Bye);
        assert_eq!(bye.uri.as_str(), "sip:+46706170786@203.0.113.5:5060");
        // The source of the INVITE does not matter: the first route does.
        let elsewhere = peer(Transport::Udp, "198.51.100.77:5999");
        assert_eq!(
            d.next_hop(elsewhere).addr,
            "198.51.100.1:5070".parse().unwrap()
        );
    }

    #[test]
    fn rfc3261_12_2_1_1_strict_router_is_the_request_uri_and_the_destination() {
        let mut d = uas(
            "Record-Route: <sip:198.51.100.3:5080>, <sip:198.51.100.2;lr>\r\n",
            "sip:+46706170786@203.0.113.5:5060",
        );
        let bye = d.new_request(Method::Bye);
        assert_eq!(bye.uri.as_str(), "sip:198.51.100.3:5080");
        assert_eq!(d.first_hop().as_str(), "sip:198.51.100.3:5080");
        let hop = d.next_hop(peer(Transport::Udp, "198.51.100.1:5070"));
        assert_eq!(hop.addr, "198.51.100.3:5080".parse().unwrap());
    }

    #[test]
    fn a_route_with_transport_tcp_is_reached_over_tcp() {
        let d = uas(
            "Record-Route: <sip:198.51.100.1:5070;transport=tcp;lr>\r\n",
            "sip:+46706170786@203.0.113.5",
        );
        let hop = d.next_hop(peer(Transport::Udp, "198.51.100.1:5070"));
        assert_eq!(hop, peer(Transport::Tcp, "198.51.100.1:5070"));
    }

    #[test]
    fn rfc5923_a_tcp_caller_without_route_set_gets_its_own_connection() {
        let d = uas("", "sip:+46706170786@10.0.0.5:5060;transport=tcp");
        let conn = peer(Transport::Tcp, "203.0.113.5:49152");
        assert_eq!(d.next_hop(conn), conn);
    }

    #[test]
    fn rfc3581_a_udp_caller_behind_nat_gets_requests_at_its_source() {
        let d = uas("", "sip:+46706170786@10.0.0.5:5060");
        let src = peer(Transport::Udp, "203.0.113.5:40123");
        assert_eq!(d.next_hop(src), src);
        // Not behind NAT: the Contact's port, where the phone listens.
        let d = uas("", "sip:+46706170786@203.0.113.5:5062");
        assert_eq!(d.next_hop(src), peer(Transport::Udp, "203.0.113.5:5062"));
    }

    #[test]
    fn uac_without_route_set_follows_the_remote_target() {
        let text = "INVITE sip:vip@192.0.2.50 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKx\r\nFrom: <sip:a@192.0.2.10>;tag=l\r\nTo: <sip:vip@192.0.2.50>\r\nCall-ID: u1\r\nCSeq: 1 INVITE\r\n\r\n";
        let inv = match parse_datagram(text.as_bytes()).unwrap().unwrap() {
            Message::Request(r) => r,
            _ => unreachable!(),
        };
        let ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKx\r\nRecord-Route: <sip:192.0.2.99:5070;lr>, <sip:192.0.2.98;lr>\r\nFrom: <sip:a@192.0.2.10>;tag=l\r\nTo: <sip:vip@192.0.2.50>;tag=r\r\nCall-ID: u1\r\nCSeq: 1 INVITE\r\nContact: <sip:agent@192.0.2.51:5090>\r\n\r\n";
        let ok = match parse_datagram(ok.as_bytes()).unwrap().unwrap() {
            Message::Response(r) => r,
            _ => unreachable!(),
        };
        let ours = local_contact("concierge", "192.0.2.10", 5060, Transport::Udp);
        let sent_to = peer(Transport::Udp, "192.0.2.50:5060");
        // §12.1.2: the route set is the Record-Route reversed; the nearest proxy first.
        let d = Dialog::uac(&inv, &ok, ours.clone()).unwrap();
        assert_eq!(d.next_hop(sent_to), peer(Transport::Udp, "192.0.2.98:5060"));
        let mut ok = ok;
        ok.headers.remove(&crate::wire::HeaderName::RECORD_ROUTE);
        let d = Dialog::uac(&inv, &ok, ours).unwrap();
        assert_eq!(d.next_hop(sent_to), peer(Transport::Udp, "192.0.2.51:5090"));
    }
}
