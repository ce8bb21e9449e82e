//! Locating SIP servers by name (RFC 3263) for bridge legs, the outbound proxy and the
//! trunks' registrars, with hickory's async resolver (it also caches every answer for its
//! TTL). The switch asks for a URI and gets back the addresses to try, best first; it
//! does the failover.
//!
//! The procedure, for `sip:` URIs over UDP, TCP and TLS and `sips:` URIs (TLS only):
//! - an IP address host is used as it is (port 5060, 5061 for TLS);
//! - a port in the URI means A/AAAA of the host at that port (§4.2);
//! - otherwise NAPTR (§4.1) — only when the URI names no transport — for `SIP+D2U`,
//!   `SIP+D2T` and `SIPS+D2T` records (a `sips:` URI: `SIPS+D2T` only), in order and
//!   preference, each pointing at an SRV name;
//! - without usable NAPTR records, SRV `_sip._udp` then `_sip._tcp` (`_sips._tcp` for a
//!   `sips:` URI or `;transport=tls`; or just the URI's transport); SRV targets by
//!   priority, weighted at random within one (RFC 2782);
//! - without SRV records, A/AAAA of the host at port 5060 (5061 for TLS).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use concierge_sip::wire::{SipUri, Transport};
use concierge_sip::Peer;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveError, TokioResolver};
use rand::Rng;

/// Addresses gathered for one name at most.
const MAX_ADDRESSES: usize = 8;

/// Why a name gave no address. The messages name no host: a target may have been
/// rendered from a secret, and this text reaches the logs and the call record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LocateError {
    #[error("no such name, or no SIP server records for it")]
    NotFound,
    #[error("DNS lookup failed (server unreachable or refused)")]
    Lookup,
    #[error("only sip: URIs over UDP, TCP or TLS and sips: URIs are located")]
    Unsupported,
}

/// The resolver the driver shares between lookups.
pub(crate) struct SipResolver {
    inner: TokioResolver,
}

impl SipResolver {
    /// A resolver asking `servers` (UDP), or the system's (`/etc/resolv.conf`) when empty.
    pub(crate) fn new(servers: &[SocketAddr]) -> Result<Self, ResolveError> {
        let provider = TokioConnectionProvider::default();
        let mut builder = if servers.is_empty() {
            TokioResolver::builder(provider)?
        } else {
            let group: Vec<NameServerConfig> = servers
                .iter()
                .map(|a| NameServerConfig::new(*a, Protocol::Udp))
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, Vec::new(), group),
                provider,
            )
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        // A bridge is waiting: a dead server should cost seconds, not the default 5 s × 2.
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        // Names in targets are absolute; no search list games.
        opts.ndots = 0;
        Ok(Self {
            inner: builder.build(),
        })
    }

    /// The addresses to try for `uri`, best first (see the module docs).
    pub(crate) async fn locate(&self, uri: &SipUri) -> Result<Vec<Peer>, LocateError> {
        let sips = match uri.scheme() {
            "sip" => false,
            "sips" => true,
            _ => return Err(LocateError::Unsupported),
        };
        let host = uri.host().trim_start_matches('[').trim_end_matches(']');
        let param = match uri.param("transport").flatten() {
            // RFC 3263 §4.1: a SIPS URI is reached over TLS whatever it names.
            _ if sips => Some(Transport::Tls),
            None => None,
            Some(t) => match Transport::parse(t) {
                Some(t @ (Transport::Udp | Transport::Tcp | Transport::Tls)) => Some(t),
                _ => return Err(LocateError::Unsupported),
            },
        };
        let default_port = |t: Option<Transport>| match t {
            Some(Transport::Tls) => 5061,
            _ => 5060,
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            let addr = SocketAddr::new(ip, uri.port().unwrap_or(default_port(param)));
            return Ok(vec![Peer {
                transport: param.unwrap_or(Transport::Udp),
                addr,
            }]);
        }
        if let Some(port) = uri.port() {
            return self
                .addresses(host, port, param.unwrap_or(Transport::Udp))
                .await;
        }
        let mut srv_names = Vec::new();
        if param.is_none() || sips {
            srv_names = self.naptr(host, sips).await;
        }
        if srv_names.is_empty() {
            let transports = match param {
                Some(t) => vec![t],
                None => vec![Transport::Udp, Transport::Tcp],
            };
            srv_names = transports
                .into_iter()
                .map(|t| (format!("{}.{host}", srv_prefix(t)), t))
                .collect();
        }
        let mut lookup_failed = false;
        for (name, transport) in srv_names {
            match self.srv(&name, transport).await {
                Ok(peers) if !peers.is_empty() => return Ok(peers),
                Ok(_) => {}
                Err(LocateError::Lookup) => lookup_failed = true,
                Err(_) => {}
            }
        }
        match self
            .addresses(host, default_port(param), param.unwrap_or(Transport::Udp))
            .await
        {
            Err(LocateError::NotFound) if lookup_failed => Err(LocateError::Lookup),
            r => r,
        }
    }

    /// §4.1: the SRV names a host's NAPTR records point at, for the transports we speak
    /// (`sips`: TLS only).
    async fn naptr(&self, host: &str, sips: bool) -> Vec<(String, Transport)> {
        let Ok(lookup) = self.inner.lookup(host, RecordType::NAPTR).await else {
            return Vec::new();
        };
        let mut records: Vec<(u16, u16, String, Transport)> = lookup
            .iter()
            .filter_map(|r| match r {
                RData::NAPTR(n) => {
                    let flags = n.flags().to_ascii_lowercase();
                    let service = n.services().to_ascii_uppercase();
                    let transport = match service.as_slice() {
                        b"SIP+D2U" if !sips => Transport::Udp,
                        b"SIP+D2T" if !sips => Transport::Tcp,
                        b"SIPS+D2T" => Transport::Tls,
                        _ => return None,
                    };
                    (flags == b"s").then(|| {
                        (
                            n.order(),
                            n.preference(),
                            n.replacement().to_ascii(),
                            transport,
                        )
                    })
                }
                _ => None,
            })
            .collect();
        records.sort_by_key(|(order, pref, _, _)| (*order, *pref));
        records
            .into_iter()
            .map(|(_, _, name, t)| (name, t))
            .collect()
    }

    /// The addresses behind SRV `name`, in RFC 2782 order.
    async fn srv(&self, name: &str, transport: Transport) -> Result<Vec<Peer>, LocateError> {
        let lookup = self.inner.srv_lookup(name).await.map_err(classify)?;
        let mut records: Vec<(u16, u16, u16, String)> = lookup
            .iter()
            .map(|s| (s.priority(), s.weight(), s.port(), s.target().to_ascii()))
            .filter(|(_, _, _, target)| target != ".")
            .collect();
        records.sort_by_key(|r| r.0);
        let ordered = weighted_order(records);
        let mut peers = Vec::new();
        for (port, target) in ordered {
            if let Ok(more) = self.addresses(&target, port, transport).await {
                peers.extend(more);
            }
            if peers.len() >= MAX_ADDRESSES {
                break;
            }
        }
        peers.truncate(MAX_ADDRESSES);
        Ok(peers)
    }

    async fn addresses(
        &self,
        host: &str,
        port: u16,
        transport: Transport,
    ) -> Result<Vec<Peer>, LocateError> {
        let ips = self.inner.lookup_ip(host).await.map_err(classify)?;
        let peers: Vec<Peer> = ips
            .iter()
            .take(MAX_ADDRESSES)
            .map(|ip| Peer {
                transport,
                addr: SocketAddr::new(ip, port),
            })
            .collect();
        if peers.is_empty() {
            return Err(LocateError::NotFound);
        }
        Ok(peers)
    }
}

/// RFC 3263 §4.1: the SRV service of a transport (TLS over TCP is `_sips._tcp`).
fn srv_prefix(t: Transport) -> &'static str {
    match t {
        Transport::Tls => "_sips._tcp",
        Transport::Tcp => "_sip._tcp",
        _ => "_sip._udp",
    }
}

fn classify(e: ResolveError) -> LocateError {
    if e.is_no_records_found() || e.is_nx_domain() {
        LocateError::NotFound
    } else {
        LocateError::Lookup
    }
}

/// RFC 2782: by priority; within one priority, targets drawn at random in proportion to
/// their weight (zero-weight ones get a small chance). Input is sorted by priority.
fn weighted_order(records: Vec<(u16, u16, u16, String)>) -> Vec<(u16, String)> {
    let mut rng = rand::thread_rng();
    let mut out = Vec::with_capacity(records.len());
    let mut rest = records;
    while !rest.is_empty() {
        let priority = rest[0].0;
        let split = rest
            .iter()
            .position(|r| r.0 != priority)
            .unwrap_or(rest.len());
        let mut group: Vec<_> = rest.drain(..split).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.1) + 1).sum();
            let mut pick = rng.gen_range(0..total);
            let i = group
                .iter()
                .position(|r| {
                    let w = u32::from(r.1) + 1;
                    if pick < w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .unwrap_or(0);
            let (_, _, port, target) = group.remove(i);
            out.push((port, target));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3263_a_sips_uri_or_tls_is_tls_on_5061_and_its_srv_service_is_sips_tcp() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // An address needs no lookup: the server is never asked.
        let resolver = SipResolver::new(&["127.0.0.1:9".parse().unwrap()]).unwrap();
        let tls = Peer {
            transport: Transport::Tls,
            addr: "127.0.0.1:5061".parse().unwrap(),
        };
        for uri in [
            "sips:127.0.0.1",
            "sip:127.0.0.1;transport=tls",
            "sips:127.0.0.1;transport=tcp",
        ] {
            let peers = rt.block_on(resolver.locate(&SipUri::parse(uri).unwrap()));
            assert_eq!(peers, Ok(vec![tls]), "{uri}");
        }
        assert_eq!(srv_prefix(Transport::Tls), "_sips._tcp");
        assert_eq!(srv_prefix(Transport::Tcp), "_sip._tcp");
        assert_eq!(srv_prefix(Transport::Udp), "_sip._udp");
    }

    #[test]
    fn srv_order_is_by_priority_first() {
        let records = vec![
            (10, 0, 5070, "a.".to_owned()),
            (10, 100, 5071, "b.".to_owned()),
            (20, 100, 5072, "c.".to_owned()),
        ];
        for _ in 0..20 {
            let order = weighted_order(records.clone());
            assert_eq!(order.len(), 3);
            assert_eq!(order[2], (5072, "c.".to_owned()), "{order:?}");
        }
    }
}
