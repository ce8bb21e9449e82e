//! RTP sockets as the shard sees them: one UDP socket per call port (two with an IPv6
//! media address beside IPv4), bound when the switch first asks for the port. The switch
//! waits for the bind's outcome before the port goes into an SDP answer; a port another
//! program holds is retired and the call gets another. So the bind happens here, on the
//! shard's thread; the RTP thread (`rtp_io.rs`) then reads it, and both send from it (the
//! socket is shared, and closes when both have let go). The switch writes a drain's packets
//! straight into batches (`Output::Rtp`). A tick of many calls' packets goes over to the RTP
//! thread as it is and back to the switch once sent (one wake-up of that thread per pacing
//! tick); a batch of a few ([`SEND_HERE`]) is sent here, which spares the wake-up when
//! there is little to send. Received datagrams come in batches too (see
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
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::SendFlags;
use tracing::{debug, warn};

use super::rtp_io::{Command, RtpThread, RECEIVE_BATCHES};
use concierge_b2bua::RtpBatch as Batch;

/// Send batches in flight at most (each up to 1,024 packets: 32 are 160 ms of 4,000 calls'
/// packets). Beyond, the RTP thread is behind and the switch's packets are dropped: they
/// would only arrive late.
const SEND_BATCHES: usize = 32;

/// A batch of at most this many packets is sent by the shard itself when the RTP thread
/// has none of its batches left to send: a call set-up's first packet, or a tick of a few
/// calls, costs a `sendto` here instead of waking the other thread (an eventfd write, its
/// wake-up, read and wait: 10-15 µs of a plain call at 1,000 calls/s). A tick of many
/// calls still goes to the RTP thread, so the shard's core stays on deciding.
const SEND_HERE: usize = 16;

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
    /// The sockets of open and parked ports, shared with the RTP thread, which reads them.
    sockets: PortSockets,
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
    send_errors: concierge_sip::LogLimiter,
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
            sockets: PortSockets::new(),
            commands,
            wake,
            unannounced: false,
            spent,
            in_flight: 0,
            free,
            send_lag_us,
            dropping: false,
            dropped: concierge_sip::LogLimiter::new(Duration::from_secs(10), 1),
            send_errors: concierge_sip::LogLimiter::new(Duration::from_secs(10), 10),
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
        let mut sockets = vec![Arc::new(bind(self.ip, port)?)];
        if let Some(ip) = self.ip_v6 {
            sockets.push(Arc::new(bind(ip, port)?));
        }
        for (family, socket) in sockets.iter().enumerate() {
            self.sockets.set(port, family, socket.clone());
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
            self.shut(port);
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
            self.shut(port);
        }
    }

    /// Closes `port`'s sockets: this side lets go of them now, the RTP thread at its next
    /// round, and the last to let go closes them.
    fn shut(&mut self, port: u16) {
        self.set_state(port, PortState::Closed);
        self.sockets.remove(port);
        self.command(Command::Close { port });
    }

    /// Sends the switch's packets: [`SEND_HERE`] or fewer, with none of the RTP thread's
    /// left to send (so a stream's packets keep their order), right here; else hands them
    /// to the RTP thread (it sends them when woken, at the drain's end:
    /// [`RtpSockets::flush`]). When it holds [`SEND_BATCHES`] already, it is behind: the
    /// packets are dropped. A batch that comes back is empty, for the switch.
    pub(crate) fn send(&mut self, mut batch: Batch) -> Option<Batch> {
        if self.in_flight == 0 && batch.len() <= SEND_HERE {
            send_all(&self.sockets, &batch, &mut self.send_errors);
            batch.clear();
            return Some(batch);
        }
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

/// The sockets of RTP ports, indexed by `port * 2 + family` (family 0 the media address,
/// 1 the IPv6 one beside it): the index is also the RTP thread's epoll token of the socket.
pub(crate) struct PortSockets(Vec<Option<Arc<UdpSocket>>>);

impl PortSockets {
    /// A slot for each family of every port, all empty.
    pub(crate) fn new() -> Self {
        let mut slots = Vec::new();
        slots.resize_with(2 * (usize::from(u16::MAX) + 1), || None);
        Self(slots)
    }

    /// The index (and epoll token) of `port`'s socket of `family`.
    pub(crate) fn token(port: u16, family: usize) -> usize {
        usize::from(port) * 2 + family
    }

    pub(crate) fn set(&mut self, port: u16, family: usize, socket: Arc<UdpSocket>) {
        if let Some(slot) = self.0.get_mut(Self::token(port, family)) {
            *slot = Some(socket);
        }
    }

    /// Lets go of `port`'s sockets (each closes once every share of it is gone).
    pub(crate) fn remove(&mut self, port: u16) {
        for family in 0..2 {
            drop(
                self.0
                    .get_mut(Self::token(port, family))
                    .and_then(Option::take),
            );
        }
    }

    /// The socket an epoll event's `token` stands for, if it is still open.
    pub(crate) fn by_token(&self, token: u64) -> Option<&UdpSocket> {
        let token = usize::try_from(token).ok()?;
        self.0.get(token)?.as_deref()
    }

    /// The socket a packet from `port` to `peer` leaves from: the port's IPv6 one for an
    /// IPv6 peer when it has one, else its first.
    pub(crate) fn to_send(&self, port: u16, peer: std::net::SocketAddr) -> Option<&UdpSocket> {
        let slot = |family| {
            self.0
                .get(Self::token(port, family))
                .and_then(Option::as_deref)
        };
        slot(1).filter(|_| peer.is_ipv6()).or_else(|| slot(0))
    }
}

/// How many sockets are looked up before any of them is used: see [`send_all`].
pub(crate) const LOOKUP_AHEAD: usize = 64;

/// Sends every packet of `batch` from its port's socket, in order. The sockets are looked
/// up [`LOOKUP_AHEAD`] at a time before any is sent from: with thousands of calls neither
/// the table's slot nor the socket it points to is in a cache, and loads with no system
/// call between them wait for memory together, where one lookup per send waited alone
/// (5.7 % of the server's CPU at 2,000 calls, `bench/RESULTS.md`).
pub(crate) fn send_all(
    sockets: &PortSockets,
    batch: &Batch,
    errors: &mut concierge_sip::LogLimiter,
) {
    let mut datagrams = batch.iter();
    loop {
        let mut ahead = [None; LOOKUP_AHEAD];
        let mut n = 0;
        for (slot, (d, bytes)) in ahead.iter_mut().zip(datagrams.by_ref()) {
            let fd = sockets.to_send(d.port, d.peer).map(AsFd::as_fd);
            *slot = Some((fd, d, bytes));
            n += 1;
        }
        for &(fd, d, bytes) in ahead.iter().take(n).flatten() {
            send_one(fd, bytes, d, errors);
        }
        if n < LOOKUP_AHEAD {
            return;
        }
    }
}

/// Sends one of the switch's packets from `socket` (`None`: its port closed meanwhile).
/// A full socket buffer drops it (it would be late anyway); other errors (a route gone, a
/// peer's ICMP) a peer can cause once per packet, so they are logged within `errors`'
/// budget, with a summary of the rest.
pub(crate) fn send_one(
    socket: Option<BorrowedFd<'_>>,
    bytes: &[u8],
    d: &concierge_b2bua::RtpDatagram,
    errors: &mut concierge_sip::LogLimiter,
) {
    let Some(socket) = socket else {
        debug!(port = d.port, "RTP send on a closed port dropped");
        return;
    };
    match rustix::net::sendto(socket, bytes, SendFlags::DONTWAIT, &d.peer) {
        Ok(_) | Err(Errno::AGAIN) => {}
        Err(e) => super::log_within(errors, "RTP send errors", || {
            warn!(error = %e, to = %d.peer, "RTP send failed");
        }),
    }
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
    use super::*;
    use std::net::SocketAddr;
    use std::time::Instant;

    /// The RTP side of a shard on loopback, and a port of it bound for a call.
    fn sockets_with_a_port() -> (RtpSockets, u16) {
        let (rtp, _received, ports) = sockets_with_ports(1);
        (rtp, ports[0])
    }

    /// The RTP side of a shard on loopback, what it receives, and `n` ports of it bound
    /// for calls.
    fn sockets_with_ports(n: usize) -> (RtpSockets, tokio::sync::mpsc::Receiver<Batch>, Vec<u16>) {
        let budget = RtpFdBudget {
            sockets: n + 64,
            parked: 0,
        };
        let (mut rtp, received) =
            RtpSockets::start(IpAddr::from([127, 0, 0, 1]), None, budget).unwrap();
        let mut ports = Vec::new();
        // A port the kernel just gave out and took back is free unless another test
        // grabbed it in between: try a few more.
        for _ in 0..n + 20 {
            let port = UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if !ports.contains(&port) && rtp.open(port).is_ok() {
                ports.push(port);
                if ports.len() == n {
                    return (rtp, received, ports);
                }
            }
        }
        panic!("no {n} free ports to bind");
    }

    /// A phone's socket on loopback, its reads bounded so a test fails rather than hangs.
    fn phone() -> UdpSocket {
        let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
        phone
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        phone
    }

    /// A phone's socket, and the batch of `n` packets to it from `port`, numbered.
    fn phone_and_batch(port: u16, n: u8) -> (UdpSocket, Batch) {
        let phone = phone();
        let to: SocketAddr = phone.local_addr().unwrap();
        let mut batch = Batch::new();
        for i in 0..n {
            assert!(batch.push(port, to, Instant::now(), &[i; 12]));
        }
        (phone, batch)
    }

    fn received(phone: &UdpSocket, n: usize) -> Vec<u8> {
        let mut buf = [0u8; 64];
        (0..n)
            .map(|_| {
                let (len, _) = phone.recv_from(&mut buf).unwrap();
                assert_eq!(len, 12);
                buf[0]
            })
            .collect()
    }

    #[test]
    fn a_few_packets_leave_from_the_shard_itself_and_their_batch_comes_back_empty() {
        let (mut rtp, port) = sockets_with_a_port();
        let (phone, batch) = phone_and_batch(port, 3);
        let back = rtp.send(batch).expect("sent here, so given back at once");
        assert!(back.is_empty());
        assert_eq!(received(&phone, 3), vec![0, 1, 2]);
        assert_eq!(rtp.in_flight, 0, "the RTP thread was not handed anything");
    }

    #[test]
    fn a_tick_of_many_packets_goes_to_the_rtp_thread_and_comes_back_once_sent() {
        let (mut rtp, port) = sockets_with_a_port();
        let (phone, batch) = phone_and_batch(port, SEND_HERE as u8 + 1);
        assert!(rtp.send(batch).is_none(), "handed to the RTP thread");
        rtp.flush();
        assert_eq!(
            received(&phone, SEND_HERE + 1),
            (0..=SEND_HERE as u8).collect::<Vec<_>>()
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let back = loop {
            if let Some(b) = rtp.sent() {
                break b;
            }
            assert!(Instant::now() < deadline, "the batch never came back");
            std::thread::sleep(Duration::from_millis(1));
        };
        assert!(back.is_empty());
        assert_eq!(rtp.in_flight, 0);
    }

    #[test]
    fn a_few_packets_wait_behind_a_batch_the_rtp_thread_has_not_sent_so_a_stream_keeps_its_order() {
        let (mut rtp, port) = sockets_with_a_port();
        let (phone, first) = phone_and_batch(port, SEND_HERE as u8 + 1);
        let to = phone.local_addr().unwrap();
        let mut second = Batch::new();
        assert!(second.push(port, to, Instant::now(), &[99; 12]));
        assert!(rtp.send(first).is_none());
        assert!(
            rtp.send(second).is_none(),
            "queued behind the first, not sent here"
        );
        rtp.flush();
        let mut want: Vec<u8> = (0..=SEND_HERE as u8).collect();
        want.push(99);
        assert_eq!(received(&phone, SEND_HERE + 2), want);
    }

    #[test]
    fn a_tick_longer_than_one_look_ahead_leaves_in_order_each_packet_from_its_own_port() {
        let (mut rtp, _received, ports) = sockets_with_ports(2);
        let phones = [phone(), phone()];
        // Two calls' packets interleaved, past two look-aheads and into a third.
        let n = 2 * LOOKUP_AHEAD + 5;
        let mut batch = Batch::new();
        for i in 0..n {
            let to = phones[i % 2].local_addr().unwrap();
            assert!(batch.push(ports[i % 2], to, Instant::now(), &[i as u8; 12]));
        }
        assert!(rtp.send(batch).is_none(), "handed to the RTP thread");
        rtp.flush();
        for (call, phone) in phones.iter().enumerate() {
            let mut buf = [0u8; 64];
            let got: Vec<u8> = (0..n / 2 + (n % 2) * (1 - call))
                .map(|_| {
                    let (len, from) = phone.recv_from(&mut buf).unwrap();
                    assert_eq!((len, from.port()), (12, ports[call]));
                    buf[0]
                })
                .collect();
            let want: Vec<u8> = (call..n).step_by(2).map(|i| i as u8).collect();
            assert_eq!(got, want, "call {call}'s packets");
        }
    }

    #[test]
    fn a_round_over_more_ready_sockets_than_one_look_ahead_reads_each_into_its_port() {
        let n = 3 * super::super::rtp_io::SENDS_EVERY + 7;
        let (_rtp, mut received, ports) = sockets_with_ports(n);
        let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
        for (i, &port) in ports.iter().enumerate() {
            let payload = (i as u32).to_be_bytes();
            phone.send_to(&payload, ("127.0.0.1", port)).unwrap();
        }
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} arrived",
                got.len()
            );
            match received.try_recv() {
                Ok(batch) => got.extend(batch.iter().map(|(d, bytes)| {
                    assert_eq!(d.peer, phone.local_addr().unwrap());
                    (d.port, u32::from_be_bytes(bytes.try_into().unwrap()))
                })),
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        got.sort_unstable_by_key(|&(_, i)| i);
        let want: Vec<(u16, u32)> = ports
            .iter()
            .enumerate()
            .map(|(i, &p)| (p, i as u32))
            .collect();
        assert_eq!(
            got, want,
            "each datagram handed on with the port it arrived on"
        );
    }

    #[test]
    fn a_closed_port_sends_nothing_from_the_shard() {
        let (mut rtp, port) = sockets_with_a_port();
        let (phone, batch) = phone_and_batch(port, 1);
        rtp.close(port);
        assert!(rtp.send(batch).is_some());
        phone
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        assert!(phone.recv_from(&mut [0u8; 64]).is_err(), "nothing arrived");
    }

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
