//! Which of our addresses a peer sees: a caller over IPv6 gets our IPv6 host in Contact
//! and an `IP6` media address in SDP (its RTP then flows over IPv6); everyone else gets the
//! IPv4 (or only) ones. The SIP port in Contact is the one of the transport the dialog
//! runs over, so a TLS dialog's requests come back to the TLS listener.

use std::net::IpAddr;

use concierge_sip::wire::{SipUri, Transport};
use concierge_sip::Peer;

use crate::config::SwitchConfig;

/// Whether `ip` is a real IPv6 peer (not an IPv4 peer seen through a dual-stack socket).
fn is_v6(ip: IpAddr) -> bool {
    matches!(ip.to_canonical(), IpAddr::V6(_))
}

/// Our Contact in a dialog the caller set up with `request_uri`: a SIPS URI when it dialled
/// one over TLS (RFC 3261 §12.1.1), else [`local_contact`] (from `contacts`, made once).
pub(crate) fn uas_contact(
    cfg: &SwitchConfig,
    contacts: &LocalContacts,
    peer: Peer,
    request_uri: &SipUri,
) -> SipUri {
    if peer.transport == Transport::Tls && request_uri.scheme().eq_ignore_ascii_case("sips") {
        let (host, port) = host_and_port(cfg, peer);
        return concierge_sip::dialog::sips_contact("concierge", host, port);
    }
    contacts.of(cfg, peer)
}

/// [`local_contact`] for every address family and transport, made once when the switch
/// starts (its configuration never changes after): every call's 18x and 200 carry one,
/// and a copy of a URI is a count, not a URI written and parsed again.
pub(crate) struct LocalContacts {
    /// For IPv4 peers then IPv6 ones, each in the order of [`TRANSPORTS`].
    uris: Vec<SipUri>,
}

const TRANSPORTS: [Transport; 7] = [
    Transport::Udp,
    Transport::Tcp,
    Transport::Tls,
    Transport::Sctp,
    Transport::Ws,
    Transport::Wss,
    Transport::Other,
];

impl LocalContacts {
    pub(crate) fn new(cfg: &SwitchConfig) -> Self {
        let families = [
            IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ];
        let uris = families
            .into_iter()
            .flat_map(|ip| {
                TRANSPORTS.map(|transport| {
                    let addr = std::net::SocketAddr::new(ip, 0);
                    local_contact(cfg, Peer { transport, addr })
                })
            })
            .collect();
        Self { uris }
    }

    /// Our Contact for a dialog with `peer`: [`local_contact`] of `cfg`, the one these
    /// were made from.
    pub(crate) fn of(&self, cfg: &SwitchConfig, peer: Peer) -> SipUri {
        let family = usize::from(is_v6(peer.addr.ip()));
        TRANSPORTS
            .iter()
            .position(|t| *t == peer.transport)
            .and_then(|t| self.uris.get(family * TRANSPORTS.len() + t))
            .cloned()
            .unwrap_or_else(|| local_contact(cfg, peer))
    }
}

/// Our media address for a session with `remote` (usable while a call is borrowed).
pub(crate) fn media_ip_for(cfg: &SwitchConfig, remote: IpAddr) -> IpAddr {
    match cfg.media_ip_v6 {
        Some(v6) if is_v6(remote) => v6,
        _ => cfg.media_ip,
    }
}

/// Our Contact for a dialog with `peer`: the advertised address of its family, the port
/// of its transport, `;transport=tcp` over TCP and `;transport=tls` over TLS.
pub(crate) fn local_contact(cfg: &SwitchConfig, peer: Peer) -> SipUri {
    let (host, port) = host_and_port(cfg, peer);
    concierge_sip::dialog::local_contact("concierge", host, port, peer.transport)
}

/// Our advertised host of `peer`'s address family and our port for its transport.
fn host_and_port(cfg: &SwitchConfig, peer: Peer) -> (&str, u16) {
    let host = match &cfg.advertised_host_v6 {
        Some(v6) if is_v6(peer.addr.ip()) => v6,
        _ => &cfg.advertised_host,
    };
    let port = match (peer.transport, cfg.tls_port) {
        (Transport::Tls, Some(p)) => p,
        _ => cfg.sip_port,
    };
    (host, port)
}
