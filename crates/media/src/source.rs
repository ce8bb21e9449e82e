//! Which source addresses may feed a call's media (audio and RFC 4733 events).
//!
//! RTP carries no authentication here, so the source address is the only thing that ties
//! a packet to the peer that negotiated the session. The policy:
//! - the address the SDP declared is always accepted, and once it has sent it is the only
//!   source ("exact" latch): a stranger that sent first does not keep the media;
//! - before that, for a peer behind NAT (its SDP names a private address, its packets come
//!   from the NAT's), the first source whose IP is the SDP address's IP or the SIP
//!   signalling source's IP is accepted and latched (symmetric RTP);
//! - everything else is dropped and counted, for the call record.

use std::net::{IpAddr, SocketAddr};

/// The source policy of one RTP stream; see the module docs.
#[derive(Debug, Clone)]
pub struct SourcePolicy {
    /// Where the SDP said the peer's media is.
    declared: Option<SocketAddr>,
    /// Where the peer's SIP came from.
    signalling_ip: Option<IpAddr>,
    /// Whether a source other than the declared one may be latched (NAT traversal).
    latching: bool,
    /// The accepted source, once one has sent.
    latched: Option<SocketAddr>,
    /// Packets from any other source, dropped.
    dropped: u64,
}

impl SourcePolicy {
    /// `declared` is the SDP's address (`None` for `c=0.0.0.0` or no SDP yet);
    /// `signalling_ip` the IP the peer's SIP came from.
    pub fn new(
        declared: Option<SocketAddr>,
        signalling_ip: Option<IpAddr>,
        latching: bool,
    ) -> Self {
        Self {
            declared,
            signalling_ip,
            latching,
            latched: None,
            dropped: 0,
        }
    }

    /// Whether a packet from `from` belongs to this stream. A refused packet is counted.
    pub fn accept(&mut self, from: SocketAddr) -> bool {
        if self.latched == Some(from) {
            return true;
        }
        if self.declared == Some(from) {
            // The declared address always wins, also over a NAT latch made before it sent.
            self.latched = Some(from);
            return true;
        }
        let ip_ok = self.declared.is_some_and(|d| d.ip() == from.ip())
            || self.signalling_ip == Some(from.ip());
        if self.latching && self.latched.is_none() && ip_ok {
            self.latched = Some(from);
            return true;
        }
        self.dropped += 1;
        false
    }

    /// Where our media for this peer goes: the latched source, else the SDP's address.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.latched.or(self.declared)
    }

    /// Packets dropped because they came from a source that is not the peer's.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_declared_address_is_accepted_and_strangers_are_counted() {
        let mut p = SourcePolicy::new(Some(addr("192.0.2.1:4000")), None, true);
        assert!(p.accept(addr("192.0.2.1:4000")));
        assert!(!p.accept(addr("198.51.100.9:4000")));
        assert!(
            !p.accept(addr("192.0.2.1:4002")),
            "same IP, but the exact address has sent"
        );
        assert_eq!(p.dropped(), 2);
        assert_eq!(p.remote(), Some(addr("192.0.2.1:4000")));
    }

    #[test]
    fn behind_nat_the_first_source_at_the_signalling_ip_is_latched() {
        let mut p = SourcePolicy::new(
            Some(addr("10.0.0.5:4000")),
            Some("203.0.113.7".parse().unwrap()),
            true,
        );
        assert!(!p.accept(addr("198.51.100.9:1000")), "an unrelated IP");
        assert!(p.accept(addr("203.0.113.7:61000")));
        assert_eq!(p.remote(), Some(addr("203.0.113.7:61000")));
        assert!(
            !p.accept(addr("203.0.113.7:62000")),
            "a second port at the same IP"
        );
        assert_eq!(p.dropped(), 2);
    }

    #[test]
    fn a_source_that_sent_first_loses_the_stream_when_the_declared_address_sends() {
        let mut p = SourcePolicy::new(Some(addr("127.0.0.1:4000")), None, true);
        assert!(p.accept(addr("127.0.0.1:5555")), "same IP: maybe NAT");
        assert!(p.accept(addr("127.0.0.1:4000")));
        assert_eq!(p.remote(), Some(addr("127.0.0.1:4000")));
        assert!(!p.accept(addr("127.0.0.1:5555")), "the early source is out");
    }

    #[test]
    fn without_latching_only_the_declared_address_counts() {
        let mut p = SourcePolicy::new(
            Some(addr("127.0.0.1:4000")),
            Some("127.0.0.1".parse().unwrap()),
            false,
        );
        assert!(!p.accept(addr("127.0.0.1:5555")));
        assert!(p.accept(addr("127.0.0.1:4000")));
    }
}
