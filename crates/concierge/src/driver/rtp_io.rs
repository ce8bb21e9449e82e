//! The RTP thread: every call's RTP socket on one level-triggered epoll, read on a thread
//! of its own beside the shard's, so the kernel's receive work of thousands of calls runs
//! on the other core while the switch decides what to send.
//!
//! It works in rounds at most every [`ROUND`]: one `epoll_wait`, then one datagram read
//! from each ready socket into a [`Batch`], and the batch handed to the shard (one wake-up
//! of the shard per round, not per packet). A call's stream brings one packet per 20 ms, so
//! a round finds most sockets with exactly one waiting: one `recvfrom` each and no second
//! read to learn that the socket is empty (level-triggered, a socket still holding data is
//! simply reported again next round). Sockets are read and epoll driven through rustix,
//! straight system calls. Batches come back to be reused, so a packet costs no allocation.
//!
//! Bounded under abuse: a port flooded with datagrams is read once a round (1,000 a second
//! at most; the kernel drops the rest from its socket buffer), so it costs no more than a
//! few calls and never starves the others. The number of batches is fixed: when the shard
//! falls behind and holds them all, this thread stops reading, the kernel's buffers hold
//! (and then drop) what arrives, and the shard's overload signal sees the lag. Garbage is
//! handed on as received (the switch judges it); a datagram for a closed port never
//! reaches a socket.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::OwnedFd;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::epoll;
use rustix::io::Errno;
use rustix::net::RecvFlags;
use tokio::sync::mpsc::error::TrySendError;
use tracing::{debug, warn};

use super::rtp_batch::Batch;

/// What the shard asks of the RTP thread, in the order it asked.
pub(crate) enum Command {
    /// Read these sockets, bound to `port`: the media address's first, the IPv6 one beside
    /// it second.
    Open {
        port: u16,
        sockets: Vec<Arc<UdpSocket>>,
    },
    /// The call is over: stop reading the port (the socket closes when the shard has let
    /// go of it too).
    Close { port: u16 },
    /// The shard is gone.
    Stop,
}

/// The shortest time between two rounds. Longer rounds read more sockets per system call
/// of `epoll_wait` and wake the shard less often; a received packet waits at most this
/// long (RFC 4733 keys and relayed audio do not mind a millisecond).
pub(crate) const ROUND: Duration = Duration::from_millis(1);

/// Batches of received datagrams in flight to the shard at most (each up to 1,024).
pub(crate) const RECEIVE_BATCHES: usize = 16;

/// How long the thread waits for the shard to give a batch back when it holds them all.
const STARVED_WAIT: Duration = Duration::from_millis(1);

/// How many ready sockets one round takes at most; the rest stay ready for the next.
const EVENTS: usize = 4096;

/// The event data of the eventfd the shard wakes this thread with; socket events carry
/// `port * 2 + family`, which never reaches it.
const WAKE: u64 = u64::MAX;

/// The thread's state; [`RtpThread::run`] is its whole life.
pub(crate) struct RtpThread {
    epoll: OwnedFd,
    /// Written by the shard after it queued commands.
    wake: Arc<OwnedFd>,
    commands: Receiver<Command>,
    /// Indexed by `port * 2 + family` (0 the media address, 1 the IPv6 one beside it).
    sockets: Vec<Option<Arc<UdpSocket>>>,
    to_shard: tokio::sync::mpsc::Sender<Batch>,
    /// Received batches the shard has handled.
    free: Receiver<Batch>,
    allocated: usize,
    /// A batch this thread has and did not need last round.
    idle: Option<Batch>,
}

/// Why the thread stops.
struct Stopped;

impl RtpThread {
    pub(crate) fn new(
        wake: Arc<OwnedFd>,
        commands: Receiver<Command>,
        to_shard: tokio::sync::mpsc::Sender<Batch>,
        free: Receiver<Batch>,
    ) -> std::io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &epoll,
            &*wake,
            epoll::EventData::new_u64(WAKE),
            epoll::EventFlags::IN,
        )?;
        let mut sockets = Vec::new();
        sockets.resize_with(2 * (usize::from(u16::MAX) + 1), || None);
        Ok(Self {
            epoll,
            wake,
            commands,
            sockets,
            to_shard,
            free,
            allocated: 0,
            idle: None,
        })
    }

    /// Rounds until the shard says stop or goes away.
    pub(crate) fn run(mut self) {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(EVENTS);
        loop {
            if self.commands().is_err() {
                return;
            }
            let Some(mut batch) = self.take_batch() else {
                // The shard holds every batch: it is behind. Nothing is read (the sockets
                // stay ready) until it gives one back.
                std::thread::sleep(STARVED_WAIT);
                continue;
            };
            events.clear();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                None,
            ) {
                Ok(_) => {}
                Err(Errno::INTR) => {}
                Err(e) => {
                    warn!(error = %e, "RTP thread: waiting for sockets failed");
                    std::thread::sleep(STARVED_WAIT);
                }
            }
            let round = Instant::now();
            for event in &events {
                let token = event.data.u64();
                if token == WAKE {
                    let mut count = [0u8; 8];
                    let _ = rustix::io::read(&*self.wake, &mut count);
                    continue;
                }
                let Some(Some(socket)) = usize::try_from(token)
                    .ok()
                    .and_then(|t| self.sockets.get(t))
                else {
                    continue;
                };
                let Some(room) = batch.spare() else {
                    // Full: the rest of this round's sockets stay ready for the next.
                    break;
                };
                let port = (token / 2) as u16;
                match rustix::net::recvfrom(&**socket, room, RecvFlags::DONTWAIT) {
                    Ok((n, _, Some(from))) => {
                        if let Ok(from) = SocketAddr::try_from(from) {
                            batch.commit(port, from, round, n);
                        }
                    }
                    Ok((_, _, None)) | Err(Errno::AGAIN) => {}
                    // An ICMP error for an earlier send, reported once.
                    Err(e) => debug!(error = %e, port, "RTP receive error"),
                }
            }
            if batch.is_empty() {
                self.idle = Some(batch);
            } else if self.ship(batch).is_err() {
                return;
            }
            // Let the next round gather what arrives meanwhile.
            if let Some(rest) = ROUND.checked_sub(round.elapsed()) {
                std::thread::sleep(rest);
            }
        }
    }

    /// Does what the shard asked since the last round.
    fn commands(&mut self) -> Result<(), Stopped> {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Open { port, sockets }) => self.open(port, sockets),
                Ok(Command::Close { port }) => self.close(port),
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return Err(Stopped),
                Err(TryRecvError::Empty) => return Ok(()),
            }
        }
    }

    fn open(&mut self, port: u16, sockets: Vec<Arc<UdpSocket>>) {
        for (family, socket) in sockets.into_iter().enumerate().take(2) {
            let token = usize::from(port) * 2 + family;
            let data = epoll::EventData::new_u64(token as u64);
            if let Err(e) = epoll::add(&self.epoll, &*socket, data, epoll::EventFlags::IN) {
                warn!(error = %e, port, "RTP thread: cannot watch the port; its packets are lost");
                continue;
            }
            if let Some(slot) = self.sockets.get_mut(token) {
                *slot = Some(socket);
            }
        }
    }

    fn close(&mut self, port: u16) {
        for token in [usize::from(port) * 2, usize::from(port) * 2 + 1] {
            if let Some(socket) = self.sockets.get_mut(token).and_then(Option::take) {
                let _ = epoll::delete(&self.epoll, &*socket);
            }
        }
    }

    /// A batch to fill: one the shard gave back, or a new one while fewer than
    /// [`RECEIVE_BATCHES`] exist.
    fn take_batch(&mut self) -> Option<Batch> {
        if let Some(b) = self.idle.take() {
            return Some(b);
        }
        if let Ok(mut b) = self.free.try_recv() {
            b.clear();
            return Some(b);
        }
        if self.allocated < RECEIVE_BATCHES {
            self.allocated += 1;
            return Some(Batch::new());
        }
        None
    }

    fn ship(&mut self, batch: Batch) -> Result<(), Stopped> {
        match self.to_shard.try_send(batch) {
            Ok(()) => Ok(()),
            // Cannot happen (the channel holds every batch there is); the packets are
            // dropped and the batch kept.
            Err(TrySendError::Full(mut b)) => {
                b.clear();
                self.idle = Some(b);
                Ok(())
            }
            Err(TrySendError::Closed(_)) => Err(Stopped),
        }
    }
}
