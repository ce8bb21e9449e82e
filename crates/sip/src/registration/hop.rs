//! Where a registration's requests go: the first hop (the outbound proxy, else the
//! registrar) and, when it is a name, the addresses RFC 3263 found for it, tried in turn
//! (§4.3: on no response or 503, the next one).

use std::collections::VecDeque;

use super::config::RegistrationConfig;
use crate::dialog::peer_for_uri;
use crate::endpoint::Peer;
use crate::wire::{SipUri, Transport};

/// Addresses of one name we try at most.
pub(super) const MAX_ADDRESSES: usize = 8;

/// The first hop and its addresses.
#[derive(Debug, Clone)]
pub(super) struct Hop {
    /// What the owner locates: the proxy or registrar URI, with the configured transport
    /// written into it when the URI names none (so the lookup asks for that transport).
    uri: SipUri,
    /// Its address when the URI holds an IP address: no lookup at all.
    literal: Option<Peer>,
    /// The addresses left to try, the one in use first.
    addresses: VecDeque<Peer>,
    /// Every address the last lookup found (or the literal one): where requests through
    /// the trunk, and its calls, may come from.
    found: Vec<Peer>,
}

impl Hop {
    pub(super) fn new(cfg: &RegistrationConfig) -> Self {
        let first = cfg.outbound_proxy.as_ref().unwrap_or(&cfg.registrar);
        let default_transport = if first.scheme() == "sips" {
            Transport::Tls
        } else {
            Transport::Udp
        };
        let uri = match first.param("transport") {
            None if cfg.transport != default_transport => {
                let text = format!(
                    "{first};transport={}",
                    cfg.transport.as_str().to_ascii_lowercase()
                );
                SipUri::parse(&text).unwrap_or_else(|_| first.clone())
            }
            _ => first.clone(),
        };
        let literal = peer_for_uri(&uri, cfg.transport);
        Self {
            uri,
            literal,
            addresses: VecDeque::new(),
            found: Vec::new(),
        }
    }

    /// Starts over for a new attempt: `false` when the name must be located first (the
    /// owner is asked, and [`Self::located`] brings the answer). Until then the address
    /// last used stays current: a binding made through it is still reached there (its
    /// keep-alives, an un-REGISTER while the lookup runs).
    pub(super) fn restart(&mut self) -> bool {
        match self.literal {
            Some(peer) => {
                self.addresses = VecDeque::from([peer]);
                self.found = vec![peer];
                true
            }
            None => false,
        }
    }

    /// The URI to locate (RFC 3263).
    pub(super) fn uri(&self) -> &SipUri {
        &self.uri
    }

    /// The located addresses, best first (at most [`MAX_ADDRESSES`]); `false` when there
    /// are none.
    pub(super) fn located(&mut self, peers: Vec<Peer>) -> bool {
        self.addresses = peers.into_iter().take(MAX_ADDRESSES).collect();
        self.found = self.addresses.iter().copied().collect();
        !self.addresses.is_empty()
    }

    /// Every address the last lookup found, in the order given.
    pub(super) fn found(&self) -> &[Peer] {
        &self.found
    }

    /// The address in use.
    pub(super) fn current(&self) -> Option<Peer> {
        self.addresses.front().copied()
    }

    /// Gives up the address in use for the next one, if there is one.
    pub(super) fn advance(&mut self) -> Option<Peer> {
        if self.addresses.len() < 2 {
            return None;
        }
        self.addresses.pop_front();
        self.current()
    }
}
