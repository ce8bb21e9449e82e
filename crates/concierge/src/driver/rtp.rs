//! RTP sockets: the whole configured port range is bound at start-up, so a port the
//! switch hands to a call is known to be ours before its number goes into an SDP answer.
//! Binding per call would let another program (or another server sharing the range) take
//! the port between allocation and bind, and the call would advertise a port it cannot
//! hear on. It also keeps bind syscalls off the call set-up path.
//!
//! A port's reader task runs only while a call holds it: it stamps packets with their
//! arrival time and hands them to the shard; sends go straight out of the socket.
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

struct Port {
    socket: Arc<UdpSocket>,
    /// Set while a call holds the port.
    reader: Option<JoinHandle<()>>,
}

pub(crate) struct RtpSockets {
    ip: IpAddr,
    ports: HashMap<u16, Port>,
    to_shard: mpsc::Sender<RtpIn>,
}

impl RtpSockets {
    /// Binds every even port of `min..max`; returns the sockets and the ports that could
    /// not be bound (another program holds them), which the switch must never hand out.
    pub(crate) fn bind_range(
        ip: IpAddr,
        min: u16,
        max: u16,
        to_shard: mpsc::Sender<RtpIn>,
    ) -> (Self, Vec<u16>) {
        let mut ports = HashMap::new();
        let mut taken = Vec::new();
        let first = min + min % 2;
        for port in (first..max).step_by(2) {
            match bind(ip, port) {
                Ok(socket) => {
                    ports.insert(
                        port,
                        Port {
                            socket: Arc::new(socket),
                            reader: None,
                        },
                    );
                }
                Err(e) => {
                    debug!(port, error = %e, "RTP port not available");
                    taken.push(port);
                }
            }
        }
        (
            Self {
                ip,
                ports,
                to_shard,
            },
            taken,
        )
    }

    /// Starts delivering packets for `port`. Whatever reached the port while no call held
    /// it (late packets of the previous call, scans) is thrown away first.
    pub(crate) fn open(&mut self, port: u16) -> std::io::Result<()> {
        if !self.ports.contains_key(&port) {
            // Outside the pre-bound range (cannot happen with the switch's own pool).
            let socket = bind(self.ip, port)?;
            self.ports.insert(
                port,
                Port {
                    socket: Arc::new(socket),
                    reader: None,
                },
            );
        }
        let Some(entry) = self.ports.get_mut(&port) else {
            return Ok(());
        };
        if entry.reader.is_some() {
            return Ok(());
        }
        drain(&entry.socket);
        let (rx_socket, tx) = (entry.socket.clone(), self.to_shard.clone());
        entry.reader = Some(tokio::spawn(async move {
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
        }));
        Ok(())
    }

    /// The call let go of `port`: stop reading; the socket stays bound for the next call.
    pub(crate) fn close(&mut self, port: u16) {
        if let Some(reader) = self.ports.get_mut(&port).and_then(|p| p.reader.take()) {
            reader.abort();
        }
    }

    pub(crate) fn send(&self, port: u16, to: SocketAddr, bytes: &[u8]) {
        let Some(entry) = self.ports.get(&port).filter(|p| p.reader.is_some()) else {
            debug!(port, "RTP send on a closed port dropped");
            return;
        };
        if let Err(e) = entry.socket.try_send_to(bytes, to) {
            if e.kind() != std::io::ErrorKind::WouldBlock {
                warn!(error = %e, %to, "RTP send failed");
            }
        }
    }
}

/// Reads and drops what is queued, through a duplicate of the descriptor: tokio's cached
/// readiness may not know yet about packets that came while nobody was reading.
fn drain(socket: &UdpSocket) {
    use std::os::fd::AsFd;
    let Ok(fd) = socket.as_fd().try_clone_to_owned() else {
        return;
    };
    let std_socket = std::net::UdpSocket::from(fd);
    let mut scratch = [0u8; 2048];
    // The descriptor is non-blocking (shared with the original): this stops at WouldBlock.
    while std_socket.recv_from(&mut scratch).is_ok() {}
}

fn bind(ip: IpAddr, port: u16) -> std::io::Result<UdpSocket> {
    let std_socket = std::net::UdpSocket::bind((ip, port))?;
    std_socket.set_nonblocking(true)?;
    UdpSocket::from_std(std_socket)
}
