//! RTP sockets: one UDP socket per call, bound when the switch asks for the port and
//! dropped when it releases it. The switch waits for the bind's outcome before the port
//! goes into an SDP answer; a port another program holds is retired and the call gets
//! another. Each socket has a reader task that stamps packets with
//! their arrival time and hands them to the shard; sends go straight out of the socket.
//!
//! Batched receive (recvmmsg) and one socket per shard are the planned optimisations; they
//! change only this file.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// One received RTP (or RTCP, or garbage) datagram.
pub(crate) struct RtpIn {
    pub(crate) port: u16,
    pub(crate) from: SocketAddr,
    pub(crate) at: Instant,
    pub(crate) bytes: Bytes,
}

struct Open {
    socket: Arc<UdpSocket>,
    reader: JoinHandle<()>,
    /// The same port on the IPv6 media address, when there is one beside IPv4.
    v6: Option<(Arc<UdpSocket>, JoinHandle<()>)>,
}

pub(crate) struct RtpSockets {
    ip: IpAddr,
    /// The IPv6 media address beside an IPv4 `ip`: each port is bound on both, and a
    /// packet leaves from the socket of its destination's family.
    ip_v6: Option<IpAddr>,
    open: HashMap<u16, Open>,
    to_shard: mpsc::Sender<RtpIn>,
}

impl RtpSockets {
    pub(crate) fn new(ip: IpAddr, ip_v6: Option<IpAddr>, to_shard: mpsc::Sender<RtpIn>) -> Self {
        Self {
            ip,
            ip_v6,
            open: HashMap::new(),
            to_shard,
        }
    }

    /// Binds `port`. Failure (the port is taken by another program) is reported so the
    /// switch can give the call another port or refuse it.
    pub(crate) fn open(&mut self, port: u16) -> std::io::Result<()> {
        if self.open.contains_key(&port) {
            return Ok(());
        }
        let (socket, reader) = self.bind(self.ip, port)?;
        let v6 = match self.ip_v6 {
            Some(ip) => match self.bind(ip, port) {
                Ok(pair) => Some(pair),
                Err(e) => {
                    reader.abort();
                    return Err(e);
                }
            },
            None => None,
        };
        self.open.insert(port, Open { socket, reader, v6 });
        Ok(())
    }

    fn bind(&self, ip: IpAddr, port: u16) -> std::io::Result<(Arc<UdpSocket>, JoinHandle<()>)> {
        let std_socket = std::net::UdpSocket::bind((ip, port))?;
        std_socket.set_nonblocking(true)?;
        let socket = Arc::new(UdpSocket::from_std(std_socket)?);
        let (rx_socket, tx) = (socket.clone(), self.to_shard.clone());
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                match rx_socket.recv_from(&mut buf).await {
                    Ok((n, from)) => {
                        let packet = RtpIn {
                            port,
                            from,
                            at: Instant::now(),
                            bytes: Bytes::copy_from_slice(&buf[..n]),
                        };
                        if tx.send(packet).await.is_err() {
                            return;
                        }
                    }
                    // ICMP port unreachable from a peer that stopped listening: keep going.
                    Err(e) => debug!(error = %e, port, "RTP receive error"),
                }
            }
        });
        Ok((socket, reader))
    }

    pub(crate) fn close(&mut self, port: u16) {
        if let Some(open) = self.open.remove(&port) {
            open.reader.abort();
            if let Some((_, reader)) = open.v6 {
                reader.abort();
            }
        }
    }

    pub(crate) fn send(&self, port: u16, to: SocketAddr, bytes: &[u8]) {
        let Some(open) = self.open.get(&port) else {
            debug!(port, "RTP send on a closed port dropped");
            return;
        };
        let socket = match &open.v6 {
            Some((v6, _)) if to.is_ipv6() => v6,
            _ => &open.socket,
        };
        if let Err(e) = socket.try_send_to(bytes, to) {
            if e.kind() != std::io::ErrorKind::WouldBlock {
                warn!(error = %e, %to, "RTP send failed");
            }
        }
    }
}
