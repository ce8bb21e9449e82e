//! Who is connected: the open connections by remote address, peers shunned for not
//! reading, and TLS handshakes under way per source — what the limits are counted on.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// One open connection as the registry sees it.
pub(super) struct Conn {
    pub(super) id: u64,
    pub(super) tx: mpsc::Sender<Bytes>,
    pub(super) kill: watch::Sender<bool>,
    pub(super) opened: Instant,
    /// Whether a whole message arrived on it; at the cap, unproven connections go first.
    pub(super) proven: Arc<AtomicBool>,
}

#[derive(Default)]
pub(super) struct Registry {
    pub(super) conns: HashMap<SocketAddr, Conn>,
    /// Peers we disconnected for not reading, until when: what is still queued for them
    /// is dropped rather than sent on a new connection we would open to them.
    pub(super) shunned: HashMap<SocketAddr, Instant>,
    /// TLS handshakes under way per source (connections not yet in `conns`): they hold a
    /// descriptor and a task too, so they count against the limits.
    pub(super) handshaking: HashMap<IpAddr, usize>,
}

/// How long a peer disconnected for not reading gets no new connection from us.
const SHUN_FOR: Duration = Duration::from_secs(32);
/// At most this many shunned peers are remembered (the oldest are forgotten first).
const MAX_SHUNNED: usize = 4096;

impl Registry {
    pub(super) fn shun(&mut self, peer: SocketAddr, now: Instant) {
        if self.shunned.len() >= MAX_SHUNNED {
            self.shunned.retain(|_, until| *until > now);
            if self.shunned.len() >= MAX_SHUNNED {
                if let Some(oldest) = self
                    .shunned
                    .iter()
                    .min_by_key(|(_, u)| **u)
                    .map(|(a, _)| *a)
                {
                    self.shunned.remove(&oldest);
                }
            }
        }
        self.shunned.insert(peer, now + SHUN_FOR);
    }

    pub(super) fn is_shunned(&mut self, peer: SocketAddr, now: Instant) -> bool {
        match self.shunned.get(&peer) {
            Some(until) if *until > now => true,
            Some(_) => {
                self.shunned.remove(&peer);
                false
            }
            None => false,
        }
    }

    /// Connections from `ip`, counting TLS handshakes under way.
    pub(super) fn count_from(&self, ip: IpAddr) -> usize {
        self.conns.keys().filter(|a| a.ip() == ip).count()
            + self.handshaking.get(&ip).copied().unwrap_or(0)
    }

    /// Connections in all, counting TLS handshakes under way.
    pub(super) fn count(&self) -> usize {
        self.conns.len() + self.handshaking.values().sum::<usize>()
    }

    pub(super) fn handshake_done(&mut self, ip: IpAddr) {
        if let Some(n) = self.handshaking.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.handshaking.remove(&ip);
            }
        }
    }

    /// Closes the oldest connection that never delivered a message; `false` if none.
    pub(super) fn evict_unproven(&mut self) -> bool {
        let victim = self
            .conns
            .iter()
            .filter(|(_, c)| !c.proven.load(Ordering::Relaxed))
            .min_by_key(|(_, c)| c.opened)
            .map(|(a, _)| *a);
        match victim.and_then(|a| self.conns.remove(&a)) {
            Some(c) => {
                let _ = c.kill.send(true);
                true
            }
            None => false,
        }
    }
}
