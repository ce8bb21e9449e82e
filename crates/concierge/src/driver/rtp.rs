//! RTP sockets as the shard sees them: one UDP socket per call port (two with an IPv6
//! media address beside IPv4), bound when the switch asks for the port and closed when it
//! releases it. The switch waits for the bind's outcome before the port goes into an SDP
//! answer; a port another program holds is retired and the call gets another. So the bind
//! happens here, on the shard's thread, and so do the sends: the switch's pacing tick is
//! the shard's, and a packet leaves in the same turn, without a second thread's wake-up
//! between the tick and the wire. Reading is the RTP thread's (`rtp_io.rs`): received
//! datagrams arrive in batches (see [`RtpSockets::start`]).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::OwnedFd;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use rustix::io::Errno;
use rustix::net::SendFlags;
use tracing::{debug, warn};

use super::rtp_batch::Batch;
use super::rtp_io::{Command, RtpThread, RECEIVE_BATCHES};

/// A port's sockets: the media address's, and the IPv6 one beside it.
struct Open {
    socket: Arc<UdpSocket>,
    v6: Option<Arc<UdpSocket>>,
}

pub(crate) struct RtpSockets {
    ip: IpAddr,
    /// The IPv6 media address beside an IPv4 `ip`: each port is bound on both, and a
    /// packet leaves from the socket of its destination's family.
    ip_v6: Option<IpAddr>,
    /// Indexed by port: a lookup per packet sent.
    open: Vec<Option<Open>>,
    commands: Sender<Command>,
    /// The RTP thread's eventfd.
    wake: Arc<OwnedFd>,
    /// Commands queued since the RTP thread was last woken.
    unannounced: bool,
    /// Received batches go back to the RTP thread through this.
    free: Sender<Batch>,
    send_errors: concierge_sip::LogLimiter,
}

impl RtpSockets {
    /// Starts the RTP thread. Received datagrams arrive on the returned channel in batches,
    /// each to be handed back with [`RtpSockets::recycle`] once handled.
    pub(crate) fn start(
        ip: IpAddr,
        ip_v6: Option<IpAddr>,
    ) -> std::io::Result<(Self, tokio::sync::mpsc::Receiver<Batch>)> {
        use rustix::event::{eventfd, EventfdFlags};
        let wake = Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?);
        let (commands, commands_rx) = std::sync::mpsc::channel();
        let (to_shard, received) = tokio::sync::mpsc::channel(RECEIVE_BATCHES);
        let (free, free_rx) = std::sync::mpsc::channel();
        let thread = RtpThread::new(wake.clone(), commands_rx, to_shard, free_rx)?;
        std::thread::Builder::new()
            .name("rtp".into())
            .spawn(move || thread.run())?;
        let mut open = Vec::new();
        open.resize_with(usize::from(u16::MAX) + 1, || None);
        let sockets = Self {
            ip,
            ip_v6,
            open,
            commands,
            wake,
            unannounced: false,
            free,
            send_errors: concierge_sip::LogLimiter::new(std::time::Duration::from_secs(10), 10),
        };
        Ok((sockets, received))
    }

    /// Binds `port`. Failure (the port is taken by another program) is reported so the
    /// switch can give the call another port or refuse it.
    pub(crate) fn open(&mut self, port: u16) -> std::io::Result<()> {
        if self.slot(port).is_some() {
            return Ok(());
        }
        let socket = Arc::new(bind(self.ip, port)?);
        let v6 = match self.ip_v6 {
            Some(ip) => Some(Arc::new(bind(ip, port)?)),
            None => None,
        };
        let sockets = std::iter::once(socket.clone()).chain(v6.clone()).collect();
        self.command(Command::Open { port, sockets });
        if let Some(slot) = self.open.get_mut(usize::from(port)) {
            *slot = Some(Open { socket, v6 });
        }
        Ok(())
    }

    pub(crate) fn close(&mut self, port: u16) {
        if let Some(slot) = self.open.get_mut(usize::from(port)) {
            if slot.take().is_some() {
                self.command(Command::Close { port });
            }
        }
    }

    /// Sends one packet from `port`'s socket of the destination's family.
    pub(crate) fn send(&mut self, port: u16, to: SocketAddr, bytes: &[u8]) {
        let Some(open) = self.slot(port) else {
            debug!(port, "RTP send on a closed port dropped");
            return;
        };
        let socket = match &open.v6 {
            Some(v6) if to.is_ipv6() => v6,
            _ => &open.socket,
        };
        match rustix::net::sendto(&**socket, bytes, SendFlags::DONTWAIT, &to) {
            Ok(_) => {}
            // The socket's buffer is full: the packet would be late anyway.
            Err(Errno::AGAIN) => {}
            Err(e) => self.send_failed(e, to),
        }
    }

    /// Wakes the RTP thread when commands wait for it; called once a drain is over.
    pub(crate) fn flush(&mut self) {
        if self.unannounced {
            self.unannounced = false;
            if let Err(e) = rustix::io::write(&*self.wake, &1u64.to_ne_bytes()) {
                // EAGAIN: the counter is full, the thread is awake anyway.
                if e != Errno::AGAIN {
                    warn!(error = %e, "cannot wake the RTP thread");
                }
            }
        }
    }

    /// A received batch the shard has handled, back to the RTP thread to be filled again.
    pub(crate) fn recycle(&self, batch: Batch) {
        let _ = self.free.send(batch);
    }

    fn slot(&self, port: u16) -> Option<&Open> {
        self.open.get(usize::from(port)).and_then(Option::as_ref)
    }

    fn command(&mut self, command: Command) {
        // The thread only stops after the shard (this side) is gone.
        let _ = self.commands.send(command);
        self.unannounced = true;
    }

    /// A send error (a route gone, a peer's ICMP): a peer can cause one per packet, so they
    /// are logged within a budget, with a summary of the rest.
    fn send_failed(&mut self, e: Errno, to: SocketAddr) {
        let now = std::time::Instant::now();
        if let Some(s) = self.send_errors.poll_summary(now) {
            warn!(
                errors = s.seen,
                "{} RTP send errors in the last {} s ({} not logged one by one)",
                s.seen,
                s.interval.as_secs(),
                s.suppressed
            );
        }
        if self.send_errors.admit(now) {
            warn!(error = %e, %to, "RTP send failed");
        }
    }
}

impl Drop for RtpSockets {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        let _ = rustix::io::write(&*self.wake, &1u64.to_ne_bytes());
    }
}

fn bind(ip: IpAddr, port: u16) -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind((ip, port))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}
