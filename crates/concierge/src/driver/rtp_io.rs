//! The RTP thread: every call's RTP socket on one epoll instance (mio), on a thread of its
//! own beside the shard's, so the socket work of thousands of calls runs on the other core
//! while the switch decides what to send.
//!
//! It reads every ready socket into a [`Batch`] and hands whole batches to the shard (one
//! wake-up per batch, not per packet), and sends the batches of packets the shard hands it.
//! Batches come back to be reused, so a packet costs no allocation on either side. The
//! number of batches is fixed: when the shard falls behind and holds them all, this thread
//! stops reading and the kernel's socket buffers hold what arrives (and drop it when full),
//! so a backlog costs bounded memory and the shard's overload signal sees the lag.
//!
//! Hostile input: a flood on one port is read at most [`PER_SOCKET`] datagrams a round, so
//! the other calls' packets are read in the same round; garbage is handed on as received
//! (the switch judges it); a datagram for a closed port never reaches a socket.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use tokio::sync::mpsc::error::TrySendError;
use tracing::{debug, warn};

use super::rtp_batch::{Batch, MAX_DATAGRAM};

/// What the shard asks of the RTP thread, in the order it asked.
pub(crate) enum Command {
    /// Read (and send from) these sockets, bound to `port`: the media address's first, the
    /// IPv6 one beside it second.
    Open {
        port: u16,
        sockets: Vec<std::net::UdpSocket>,
    },
    /// The call is over: close the port's sockets.
    Close { port: u16 },
    /// Send these packets; the batch comes back empty.
    Send(Batch),
    /// The shard is gone.
    Stop,
}

/// The waker's token; socket tokens are `port * 2 + family` and never reach it.
pub(crate) const WAKE: Token = Token(usize::MAX);

/// At most this many datagrams are read from one socket in a round: a port flooded with
/// packets waits its turn behind every other ready port instead of starving them.
const PER_SOCKET: usize = 8;

/// Batches of received datagrams in flight to the shard at most (16 × ~1,500 G.711 packets).
pub(crate) const RECEIVE_BATCHES: usize = 16;

/// How long the thread waits for the shard to give a batch back when it holds them all.
const STARVED_WAIT: Duration = Duration::from_millis(1);

/// How many events one wait returns at most; more stay ready for the next round.
const EVENTS: usize = 1024;

struct Slot {
    socket: UdpSocket,
    /// In the ready list: readable and not yet read empty.
    queued: bool,
}

/// The thread's state; [`RtpThread::run`] is its whole life.
pub(crate) struct RtpThread {
    poll: Poll,
    commands: Receiver<Command>,
    /// Indexed by token: `port * 2` for the first socket of a port, `+ 1` for the IPv6 one.
    slots: Vec<Option<Slot>>,
    /// Sockets to read this round, and those left with data after it.
    ready: Vec<usize>,
    hot: Vec<usize>,
    to_shard: tokio::sync::mpsc::Sender<Batch>,
    /// Received batches the shard has handled.
    free: Receiver<Batch>,
    allocated: usize,
    /// The batch being filled.
    filling: Option<Batch>,
    /// Send batches go back to the shard through this once sent.
    spent: Sender<Batch>,
    send_errors: concierge_sip::LogLimiter,
}

/// Why the thread stops.
struct Stopped;

impl RtpThread {
    pub(crate) fn new(
        poll: Poll,
        commands: Receiver<Command>,
        to_shard: tokio::sync::mpsc::Sender<Batch>,
        free: Receiver<Batch>,
        spent: Sender<Batch>,
    ) -> Self {
        let mut slots = Vec::new();
        slots.resize_with(2 * (usize::from(u16::MAX) + 1), || None);
        Self {
            poll,
            commands,
            slots,
            ready: Vec::new(),
            hot: Vec::new(),
            to_shard,
            free,
            allocated: 0,
            filling: None,
            spent,
            send_errors: concierge_sip::LogLimiter::new(Duration::from_secs(10), 10),
        }
    }

    /// Waits, reads, sends, until the shard says stop or goes away.
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS);
        let mut starved = false;
        loop {
            let timeout = if starved {
                Some(STARVED_WAIT)
            } else if self.ready.is_empty() {
                None
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != ErrorKind::Interrupted {
                    warn!(error = %e, "RTP thread: waiting for sockets failed");
                    std::thread::sleep(STARVED_WAIT);
                }
                continue;
            }
            for event in &events {
                let token = event.token().0;
                if let Some(Some(slot)) = self.slots.get_mut(token) {
                    if !slot.queued {
                        slot.queued = true;
                        self.ready.push(token);
                    }
                }
            }
            if self.commands().is_err() {
                return;
            }
            match self.receive(Instant::now()) {
                Ok(s) => starved = s,
                Err(Stopped) => return,
            }
        }
    }

    /// Does what the shard asked since the last round.
    fn commands(&mut self) -> Result<(), Stopped> {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Open { port, sockets }) => self.open(port, sockets),
                Ok(Command::Close { port }) => self.close(port),
                Ok(Command::Send(batch)) => self.send(batch),
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return Err(Stopped),
                Err(TryRecvError::Empty) => return Ok(()),
            }
        }
    }

    fn open(&mut self, port: u16, sockets: Vec<std::net::UdpSocket>) {
        for (family, socket) in sockets.into_iter().enumerate().take(2) {
            let token = usize::from(port) * 2 + family;
            let mut socket = UdpSocket::from_std(socket);
            if let Err(e) = self
                .poll
                .registry()
                .register(&mut socket, Token(token), Interest::READABLE)
            {
                warn!(error = %e, port, "RTP thread: cannot watch the port; its packets are lost");
            }
            if let Some(slot) = self.slots.get_mut(token) {
                // Whatever was there (nothing, unless the shard opened it twice) is closed.
                *slot = Some(Slot {
                    socket,
                    queued: false,
                });
            }
        }
    }

    fn close(&mut self, port: u16) {
        for token in [usize::from(port) * 2, usize::from(port) * 2 + 1] {
            if let Some(mut slot) = self.slots.get_mut(token).and_then(Option::take) {
                let _ = self.poll.registry().deregister(&mut slot.socket);
            }
        }
    }

    /// Sends each packet from its port's socket of the destination's family; the batch goes
    /// back to the shard empty.
    fn send(&mut self, mut batch: Batch) {
        for (d, bytes) in batch.iter() {
            let first = usize::from(d.port) * 2;
            let v6 = self
                .slots
                .get(first + 1)
                .and_then(Option::as_ref)
                .filter(|_| d.peer.is_ipv6());
            let slot = v6.or_else(|| self.slots.get(first).and_then(Option::as_ref));
            let Some(slot) = slot else {
                debug!(port = d.port, "RTP send on a closed port dropped");
                continue;
            };
            match slot.socket.send_to(bytes, d.peer) {
                Ok(_) => {}
                // The socket's buffer is full: the packet is late anyway.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => send_failed(&mut self.send_errors, &e, d.peer),
            }
        }
        batch.clear();
        let _ = self.spent.send(batch);
    }

    /// Reads the ready sockets, at most [`PER_SOCKET`] datagrams each, and hands the
    /// batches to the shard. `Ok(true)`: the shard holds every batch (this thread waits a
    /// little and tries again; the sockets stay ready).
    fn receive(&mut self, at: Instant) -> Result<bool, Stopped> {
        let mut starved = false;
        let ready = std::mem::take(&mut self.ready);
        for &token in &ready {
            if starved {
                self.hot.push(token);
                continue;
            }
            let Some(Some(slot)) = self.slots.get_mut(token) else {
                continue;
            };
            let port = (token / 2) as u16;
            let mut emptied = false;
            for _ in 0..PER_SOCKET {
                if !self.filling.as_ref().is_some_and(|b| b.has_room(MAX_DATAGRAM)) {
                    if let Some(full) = self.filling.take() {
                        ship(&self.to_shard, full)?;
                    }
                    match take_batch(&self.free, &mut self.allocated) {
                        Some(b) => self.filling = Some(b),
                        None => {
                            starved = true;
                            break;
                        }
                    }
                }
                let Some(batch) = self.filling.as_mut() else {
                    break;
                };
                let Some(room) = batch.spare() else {
                    break;
                };
                match slot.socket.recv_from(room) {
                    Ok((n, from)) => batch.commit(port, from, at, n),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        emptied = true;
                        break;
                    }
                    // An ICMP error for an earlier send, reported once: keep reading.
                    Err(e) => debug!(error = %e, port, "RTP receive error"),
                }
            }
            if emptied {
                slot.queued = false;
            } else {
                self.hot.push(token);
            }
        }
        self.ready = ready;
        self.ready.clear();
        std::mem::swap(&mut self.ready, &mut self.hot);
        if let Some(batch) = self.filling.take_if(|b| !b.is_empty()) {
            ship(&self.to_shard, batch)?;
        }
        Ok(starved)
    }
}

/// A batch to fill: one the shard gave back, or a new one while fewer than
/// [`RECEIVE_BATCHES`] exist.
fn take_batch(free: &Receiver<Batch>, allocated: &mut usize) -> Option<Batch> {
    if let Ok(mut b) = free.try_recv() {
        b.clear();
        return Some(b);
    }
    if *allocated < RECEIVE_BATCHES {
        *allocated += 1;
        return Some(Batch::new());
    }
    None
}

fn ship(to_shard: &tokio::sync::mpsc::Sender<Batch>, batch: Batch) -> Result<(), Stopped> {
    match to_shard.try_send(batch) {
        Ok(()) => Ok(()),
        // Cannot happen (the channel holds every batch there is); the packets are dropped.
        Err(TrySendError::Full(_)) => Ok(()),
        Err(TrySendError::Closed(_)) => Err(Stopped),
    }
}

/// A send error (a route gone, a peer's ICMP): a peer can cause one per packet, so they are
/// logged within a budget, with a summary of the rest.
fn send_failed(limiter: &mut concierge_sip::LogLimiter, e: &std::io::Error, to: SocketAddr) {
    let now = Instant::now();
    if let Some(s) = limiter.poll_summary(now) {
        warn!(
            errors = s.seen,
            "{} RTP send errors in the last {} s ({} not logged one by one)",
            s.seen,
            s.interval.as_secs(),
            s.suppressed
        );
    }
    if limiter.admit(now) {
        warn!(error = %e, %to, "RTP send failed");
    }
}
