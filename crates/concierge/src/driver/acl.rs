//! `[sip] allow` / `deny`: which sources' SIP is read at all. A datagram or TCP message
//! from any other source is dropped before parsing, without an answer or a log line per
//! message (a scanner learns nothing, and costs next to nothing).

use std::net::IpAddr;

use ipnet::IpNet;

/// The source lists; see the module docs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Acl {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

impl Acl {
    /// An empty `allow` admits every source not in `deny`.
    pub(crate) fn new(allow: Vec<IpNet>, deny: Vec<IpNet>) -> Self {
        Self { allow, deny }
    }

    /// Whether SIP from `ip` is read. `deny` wins over `allow`; an IPv4 peer seen through
    /// an IPv6 socket (`::ffff:a.b.c.d`) is matched as IPv4.
    pub(crate) fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }

    /// Whether the lists are the default (everyone is read), so the check can be skipped.
    pub(crate) fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_ipv4_peer_is_matched_as_ipv4() {
        let acl = Acl::new(vec!["192.0.2.0/24".parse().unwrap()], Vec::new());
        assert!(acl.permits("::ffff:192.0.2.9".parse().unwrap()));
        assert!(!acl.permits("::ffff:198.51.100.9".parse().unwrap()));
        assert!(Acl::default().is_open());
    }
}
