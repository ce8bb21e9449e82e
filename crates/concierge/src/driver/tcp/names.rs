//! The host names TLS targets were found under (RFC 3263), so an outbound connection
//! verifies the certificate against the name, not the address (RFC 5922).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Addresses of TLS targets and the host name each was found under; shared with the
/// driver's DNS tasks. Bounded: past [`MAX_SERVER_NAMES`] it starts afresh (a name missing
/// only means verifying against the address).
#[derive(Clone, Default)]
pub(crate) struct ServerNames(Arc<Mutex<HashMap<SocketAddr, String>>>);

const MAX_SERVER_NAMES: usize = 4096;

impl ServerNames {
    /// Remembers that `addr` was resolved from `host`.
    pub(crate) fn insert(&self, addr: SocketAddr, host: &str) {
        let mut names = self.0.lock().expect("server names lock poisoned");
        if names.len() >= MAX_SERVER_NAMES {
            names.clear();
        }
        names.insert(addr, host.to_owned());
    }

    /// What a certificate from `addr` must name: the host it was resolved from, else the
    /// address itself.
    pub(super) fn for_peer(&self, addr: SocketAddr) -> rustls::pki_types::ServerName<'static> {
        let name = self
            .0
            .lock()
            .expect("server names lock poisoned")
            .get(&addr)
            .cloned();
        name.and_then(|n| rustls::pki_types::ServerName::try_from(n).ok())
            .unwrap_or_else(|| rustls::pki_types::ServerName::IpAddress(addr.ip().into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_target_found_by_dns_is_verified_against_its_name_else_its_address() {
        let names = ServerNames::default();
        let found: SocketAddr = "192.0.2.10:5061".parse().unwrap();
        let literal: SocketAddr = "192.0.2.11:5061".parse().unwrap();
        names.insert(found, "queue.example.com");
        assert_eq!(
            names.for_peer(found),
            rustls::pki_types::ServerName::try_from("queue.example.com").unwrap()
        );
        assert_eq!(
            names.for_peer(literal),
            rustls::pki_types::ServerName::IpAddress(literal.ip().into())
        );
    }

    #[test]
    fn the_name_table_is_bounded() {
        let names = ServerNames::default();
        for i in 0..(MAX_SERVER_NAMES as u32 + 10) {
            let addr = SocketAddr::from((std::net::Ipv4Addr::from(i), 5061));
            names.insert(addr, "queue.example.com");
        }
        assert!(names.0.lock().unwrap().len() <= MAX_SERVER_NAMES);
    }
}
