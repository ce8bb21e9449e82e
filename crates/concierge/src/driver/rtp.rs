//! RTP sockets as the shard sees them: one UDP socket per call port (two with an IPv6
//! media address beside IPv4), bound when the switch first asks for the port. The switch
//! waits for the bind's outcome before the port goes into an SDP answer; a port another
//! program holds is retired and the call gets another. So the bind happens here, on the
//! shard's thread; the socket then belongs to the RTP thread (`rtp_io.rs`), which reads it
//! and sends from it. The switch writes a drain's packets straight into batches
//! (`Output::Rtp`), which go over as they are and back to the switch once sent (one wake-up
//! of the RTP thread per pacing tick); received datagrams come in batches too (see
//! [`RtpSockets::start`]).
//!
//! A released port's socket is parked, not closed: it stays bound and watched, what arrives
//! on it is read and dropped (the late packets the port's rest keeps from the next call),
//! and the next call given the port takes it over without a system call. Opening, watching
//! and closing a socket per call was 7-11 % of a plain call's CPU (`bench/RESULTS.md`).
//! The descriptors the open files limit leaves ([`parking_budget`]) are shared: calls'
//! sockets come first, and a port bound for a call when they are all taken closes the
//! last-parked socket to make room. Beyond the budget a released port's socket is closed
//! as before.

use std::net::{IpAddr, UdpSocket};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use tracing::warn;

use super::rtp_io::{Command, RtpThread, RECEIVE_BATCHES};
use concierge_b2bua::RtpBatch as Batch;

/// Send batches in flight at most (each up to 1,024 packets: 32 are 160 ms of 4,000 calls'
/// packets). Beyond, the RTP thread is behind and the switch's packets are dropped: they
/// would only arrive late.
const SEND_BATCHES: usize = 32;

pub(crate) struct RtpSockets {
    ip: IpAddr,
    /// The IPv6 media address beside an IPv4 `ip`: each port is bound on both, and a
    /// packet leaves from the socket of its destination's family.
    ip_v6: Option<IpAddr>,
    /// Indexed by port: whether its socket is closed, in a call's use, or parked.
    ports: Vec<PortState>,
    /// Sockets parked now (counted per socket: two a port with IPv6 beside).
    parked: usize,
    /// Sockets in calls' use now.
    open: usize,
    budget: RtpFdBudget,
    /// Parked ports in the order they were parked. A call that needs room closes the last
    /// parked: the port pool hands ports out after their rest, oldest first, so the port
    /// parked last is the one a call will want last. A port taken over by a call stays
    /// in it until met (its state says it is no longer parked), and a port parked again
    /// has a second entry; [`RtpSockets::tidy`] bounds it.
    parked_order: Vec<u16>,
    commands: Sender<Command>,
    /// The RTP thread's eventfd.
    wake: Arc<OwnedFd>,
    /// Packets handed over since the RTP thread was last woken.
    unannounced: bool,
    /// Send batches the RTP thread is done with, for the switch to write into again.
    spent: Receiver<Batch>,
    /// Send batches handed over and not back yet.
    in_flight: usize,
    /// Received batches go back to the RTP thread through this.
    free: Sender<Batch>,
    /// The RTP thread's longest send wait since the last [`RtpSockets::behind_by`] (µs).
    send_lag_us: Arc<AtomicU64>,
    /// Packets were dropped since the last [`RtpSockets::behind_by`].
    dropping: bool,
    dropped: concierge_sip::LogLimiter,
}

impl RtpSockets {
    /// Starts the RTP thread. Received datagrams arrive on the returned channel in batches,
    /// each to be handed back with [`RtpSockets::recycle`] once handled. Released ports'
    /// sockets stay bound for the next call within `budget` ([`parking_budget`]).
    pub(crate) fn start(
        ip: IpAddr,
        ip_v6: Option<IpAddr>,
        budget: RtpFdBudget,
    ) -> std::io::Result<(Self, tokio::sync::mpsc::Receiver<Batch>)> {
        use rustix::event::{eventfd, EventfdFlags};
        let wake = Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?);
        let (commands, commands_rx) = std::sync::mpsc::channel();
        let (to_shard, received) = tokio::sync::mpsc::channel(RECEIVE_BATCHES);
        let (free, free_rx) = std::sync::mpsc::channel();
        let (spent_tx, spent) = std::sync::mpsc::channel();
        let send_lag_us = Arc::new(AtomicU64::new(0));
        let thread = RtpThread::new(
            wake.clone(),
            commands_rx,
            to_shard,
            free_rx,
            spent_tx,
            send_lag_us.clone(),
        )?;
        std::thread::Builder::new()
            .name("rtp".into())
            .spawn(move || thread.run())?;
        let sockets = Self {
            ip,
            ip_v6,
            ports: vec![PortState::Closed; usize::from(u16::MAX) + 1],
            parked: 0,
            open: 0,
            budget,
            parked_order: Vec::new(),
            commands,
            wake,
            unannounced: false,
            spent,
            in_flight: 0,
            free,
            send_lag_us,
            dropping: false,
            dropped: concierge_sip::LogLimiter::new(Duration::from_secs(10), 1),
        };
        Ok((sockets, received))
    }

    /// Binds `port`, or takes over its parked socket. Failure (the port is taken by
    /// another program) is reported so the switch can give the call another port or
    /// refuse it.
    pub(crate) fn open(&mut self, port: u16) -> std::io::Result<()> {
        match self.state(port) {
            PortState::Open => return Ok(()),
            PortState::Parked => {
                self.parked -= self.families();
                self.open += self.families();
                self.set_state(port, PortState::Open);
                self.command(Command::Unpark { port });
                return Ok(());
            }
            PortState::Closed => {}
        }
        self.make_room();
        let mut sockets = vec![bind(self.ip, port)?];
        if let Some(ip) = self.ip_v6 {
            sockets.push(bind(ip, port)?);
        }
        self.command(Command::Open { port, sockets });
        self.open += self.families();
        self.set_state(port, PortState::Open);
        Ok(())
    }

    /// The server drains: no new call will take a parked socket, so every parked one
    /// closes now and a released port's socket closes from here on. An instance started
    /// on this host to replace this one (a rolling restart with the same port range) can
    /// then bind the range at once, instead of finding it held and retiring the ports.
    pub(crate) fn stop_parking(&mut self) {
        self.budget.parked = 0;
        for port in std::mem::take(&mut self.parked_order) {
            self.close_parked(port);
        }
    }

    /// Closes the last-parked sockets until a call's port fits in the budget. The RTP
    /// thread closes them at its next round; the budget's headroom covers the wait.
    fn make_room(&mut self) {
        while self.open + self.parked + self.families() > self.budget.sockets {
            let Some(port) = self.parked_order.pop() else {
                return;
            };
            self.close_parked(port);
        }
    }

    /// Closes `port`'s socket if it is parked (an entry of [`Self::parked_order`] may be
    /// for a port a call has taken over since).
    fn close_parked(&mut self, port: u16) {
        if self.state(port) == PortState::Parked {
            self.parked -= self.families();
            self.set_state(port, PortState::Closed);
            self.command(Command::Close { port });
        }
    }

    /// Keeps [`Self::parked_order`] within twice the parked ports (plus a constant): once
    /// beyond, the entries of ports no longer parked and the earlier entries of ports
    /// parked twice go, in one pass (amortised over as many parkings).
    fn tidy(&mut self) {
        let parked_ports = self.parked / self.families();
        if self.parked_order.len() <= 2 * parked_ports + 1024 {
            return;
        }
        let mut seen = vec![false; self.ports.len()];
        let mut kept = Vec::with_capacity(parked_ports);
        for &port in self.parked_order.iter().rev() {
            let i = usize::from(port);
            if self.ports[i] == PortState::Parked && !std::mem::replace(&mut seen[i], true) {
                kept.push(port);
            }
        }
        kept.reverse();
        self.parked_order = kept;
    }

    /// The call is done with `port`: its socket is parked while the budget allows, else
    /// closed. The switch's packets from it in this drain went over first (`Output::Rtp`
    /// comes before the drain's other outputs): the thread sends them, then parks or
    /// closes.
    pub(crate) fn close(&mut self, port: u16) {
        if self.state(port) != PortState::Open {
            return;
        }
        self.open = self.open.saturating_sub(self.families());
        if self.parked + self.families() <= self.budget.parked
            && self.open + self.parked + self.families() <= self.budget.sockets
        {
            self.parked += self.families();
            self.set_state(port, PortState::Parked);
            self.command(Command::Park { port });
            self.parked_order.push(port);
            self.tidy();
        } else {
            self.set_state(port, PortState::Closed);
            self.command(Command::Close { port });
        }
    }

    /// Hands the switch's packets to the RTP thread (it sends them when woken, at the
    /// drain's end: [`RtpSockets::flush`]). When it holds [`SEND_BATCHES`] already, it is
    /// behind: the packets are dropped and the batch comes back at once, for the switch.
    pub(crate) fn send(&mut self, batch: Batch) -> Option<Batch> {
        if self.in_flight >= SEND_BATCHES {
            self.behind();
            return Some(batch);
        }
        self.in_flight += 1;
        self.command(Command::Send {
            batch,
            queued: Instant::now(),
        });
        None
    }

    /// A batch the RTP thread has sent, empty, for the switch to write into again.
    pub(crate) fn sent(&mut self) -> Option<Batch> {
        let batch = self.spent.try_recv().ok()?;
        self.in_flight = self.in_flight.saturating_sub(1);
        Some(batch)
    }

    /// Wakes the RTP thread when packets were handed over since; called once a drain is
    /// over.
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

    /// How far the RTP thread is behind: the longest its sends waited since the last call,
    /// or `Duration::MAX` when packets had to be dropped because it held every send batch.
    /// The overload signal reads it: a thread behind leaves the kernel's socket buffers
    /// unread too, where no timestamp shows the wait.
    pub(crate) fn behind_by(&mut self) -> Duration {
        if std::mem::take(&mut self.dropping) {
            self.send_lag_us.store(0, Ordering::Relaxed);
            return Duration::MAX;
        }
        Duration::from_micros(self.send_lag_us.swap(0, Ordering::Relaxed))
    }

    /// A received batch the shard has handled, back to the RTP thread to be filled again.
    pub(crate) fn recycle(&self, batch: Batch) {
        let _ = self.free.send(batch);
    }

    fn state(&self, port: u16) -> PortState {
        self.ports[usize::from(port)]
    }

    fn set_state(&mut self, port: u16, state: PortState) {
        self.ports[usize::from(port)] = state;
    }

    fn families(&self) -> usize {
        sockets_per_port(self.ip_v6)
    }

    /// Queues a command. Only packets to send wake the RTP thread: an open or a close waits
    /// for its next round (at most `rtp_io::IDLE_WAIT`), which spares a call set-up two
    /// wake-ups of the other thread (a port's first packet waits in the kernel until then,
    /// and a closed port rests for seconds before it is bound again).
    fn command(&mut self, command: Command) {
        if matches!(command, Command::Send { .. }) {
            self.unannounced = true;
        }
        // The thread only stops after the shard (this side) is gone.
        let _ = self.commands.send(command);
    }

    /// The RTP thread holds every send batch: a batch of packets is dropped, and said so
    /// within a budget.
    fn behind(&mut self) {
        self.dropping = true;
        super::log_within(
            &mut self.dropped,
            "RTP packets dropped (the RTP thread is behind)",
            || {
                warn!("RTP packets dropped: the RTP thread is behind");
            },
        );
    }
}

impl Drop for RtpSockets {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        let _ = rustix::io::write(&*self.wake, &1u64.to_ne_bytes());
    }
}

/// Where a port's socket is (indexed by port in [`RtpSockets`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortState {
    /// No socket: bound on the switch's next `MediaOpen`.
    Closed,
    /// A call's.
    Open,
    /// Bound and watched, what arrives dropped, until a call is given the port again.
    Parked,
}

/// Sockets a port has: one, or two with an IPv6 media address (`ip_v6`) beside IPv4.
pub(crate) fn sockets_per_port(ip_v6: Option<IpAddr>) -> usize {
    1 + usize::from(ip_v6.is_some())
}

/// The descriptors RTP sockets may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RtpFdBudget {
    /// Calls' sockets and parked ones together, at most: beyond, a call's new socket
    /// closes a parked one first. Calls' sockets alone are not capped here (a bind the
    /// kernel refuses gives the call another port, or a 503).
    pub(crate) sockets: usize,
    /// Parked sockets at most: as many as the port range has.
    pub(crate) parked: usize,
}

/// How many descriptors RTP sockets may hold: seven eighths of what the open files limit
/// leaves beside `reserved` ones (TCP connections, HTTP, records). The eighth left is
/// headroom for the parked sockets being closed to make room, which the RTP thread closes
/// a round later. Parked sockets: at most the port range's (every port then binds once,
/// on its first call).
pub(crate) fn parking_budget(
    range: (u16, u16),
    families: usize,
    fd_limit: Option<u64>,
    reserved: usize,
) -> RtpFdBudget {
    let ports = usize::from(range.1.saturating_sub(range.0)).div_ceil(2);
    let wanted = ports * families;
    let sockets = match fd_limit.and_then(|l| usize::try_from(l).ok()) {
        Some(limit) => limit.saturating_sub(reserved) / 8 * 7,
        None => usize::MAX,
    };
    RtpFdBudget {
        sockets,
        parked: wanted.min(sockets),
    }
}

/// A non-blocking UDP socket bound to `ip:port`, in two system calls (a port not parked
/// is opened on the set-up path; std's `bind` then `set_nonblocking` takes three).
fn bind(ip: IpAddr, port: u16) -> std::io::Result<UdpSocket> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let family = if ip.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let fd = rustix::net::socket_with(family, SocketType::DGRAM, flags, None)?;
    rustix::net::bind(&fd, &std::net::SocketAddr::new(ip, port))?;
    Ok(UdpSocket::from(fd))
}

#[cfg(test)]
mod tests {
    use super::{parking_budget, RtpFdBudget};

    #[test]
    fn every_port_of_the_range_is_kept_when_the_fd_limit_has_room() {
        let parked =
            |families, limit| parking_budget((10_000, 20_000), families, limit, 1_128).parked;
        assert_eq!(parked(1, Some(65_536)), 5_000);
        assert_eq!(parked(2, Some(65_536)), 10_000);
        assert_eq!(parked(1, None), 5_000);
    }

    #[test]
    fn rtp_sockets_take_seven_eighths_of_the_descriptors_left_beside_the_reserved() {
        assert_eq!(
            parking_budget((10_000, 60_000), 1, Some(20_000), 2_000),
            RtpFdBudget {
                sockets: 15_750,
                parked: 15_750
            }
        );
        assert_eq!(
            parking_budget((10_000, 60_000), 1, Some(1_024), 2_000),
            RtpFdBudget {
                sockets: 0,
                parked: 0
            }
        );
    }
}
