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
}

pub(crate) struct RtpSockets {
    ip: IpAddr,
    open: HashMap<u16, Open>,
    to_shard: mpsc::Sender<RtpIn>,
}

impl RtpSockets {
    pub(crate) fn new(ip: IpAddr, to_shard: mpsc::Sender<RtpIn>) -> Self {
        Self {
            ip,
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
        let std_socket = std::net::UdpSocket::bind((self.ip, port))?;
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
        self.open.insert(port, Open { socket, reader });
        Ok(())
    }

    pub(crate) fn close(&mut self, port: u16) {
        if let Some(open) = self.open.remove(&port) {
            open.reader.abort();
        }
    }

    pub(crate) fn send(&self, port: u16, to: SocketAddr, bytes: &[u8]) {
        let Some(open) = self.open.get(&port) else {
            debug!(port, "RTP send on a closed port dropped");
            return;
        };
        if let Err(e) = open.socket.try_send_to(bytes, to) {
            if e.kind() != std::io::ErrorKind::WouldBlock {
                warn!(error = %e, %to, "RTP send failed");
            }
        }
    }
}
