//! Which of our addresses a peer sees: a caller over IPv6 gets our IPv6 host in Contact
//! and an `IP6` media address in SDP (its RTP then flows over IPv6); everyone else gets the
//! IPv4 (or only) ones. The SIP port in Contact is the one of the transport the dialog
//! runs over, so a TLS dialog's requests come back to the TLS listener.

use std::net::IpAddr;

use concierge_sip::wire::{SipUri, Transport};
use concierge_sip::Peer;

use super::Switch;
use crate::config::SwitchConfig;

/// Whether `ip` is a real IPv6 peer (not an IPv4 peer seen through a dual-stack socket).
fn is_v6(ip: IpAddr) -> bool {
    matches!(ip.to_canonical(), IpAddr::V6(_))
}

impl Switch {
    /// Our media address for a session with `remote`.
    pub(super) fn media_ip_for(&self, remote: IpAddr) -> IpAddr {
        media_ip_for(&self.cfg, remote)
    }

    /// Our Contact for a dialog with `peer`.
    pub(super) fn local_contact(&self, peer: Peer) -> SipUri {
        local_contact(&self.cfg, peer)
    }
}

/// Our media address for a session with `remote` (usable while a call is borrowed).
pub(super) fn media_ip_for(cfg: &SwitchConfig, remote: IpAddr) -> IpAddr {
    match cfg.media_ip_v6 {
        Some(v6) if is_v6(remote) => v6,
        _ => cfg.media_ip,
    }
}

/// Our Contact for a dialog with `peer`: the advertised address of its family, the port
/// of its transport, `;transport=tcp` over TCP and `sips:` over TLS.
pub(super) fn local_contact(cfg: &SwitchConfig, peer: Peer) -> SipUri {
    let host = match &cfg.advertised_host_v6 {
        Some(v6) if is_v6(peer.addr.ip()) => v6,
        _ => &cfg.advertised_host,
    };
    let port = match (peer.transport, cfg.tls_port) {
        (Transport::Tls, Some(p)) => p,
        _ => cfg.sip_port,
    };
    concierge_sip::dialog::local_contact("concierge", host, port, peer.transport)
}
