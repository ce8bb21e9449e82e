//! The RTP thread: every call's RTP socket on one level-triggered epoll, on a thread of its
//! own beside the shard's. RTP's system calls are made here — the reads, and the sends of
//! the packets the shard's pacing tick queued (all but a tick of a few, which the shard
//! sends itself: `rtp.rs`) — so the one switch's thread spends its core on deciding, and the
//! kernel's socket work of thousands of calls runs on the other.
//!
//! Reading works in rounds at most every [`ROUND`]: one `epoll_wait`, then one datagram
//! read from each ready socket into a [`Batch`], and the batch handed to the shard (one
//! wake-up of the shard per round, not per packet). A call's stream brings one packet per
//! 20 ms, so a round finds most sockets with exactly one waiting: one `recvfrom` each and no
//! second read to learn that the socket is empty (level-triggered, a socket still holding
//! data is simply reported again next round). Between rounds the thread waits on the
//! shard's eventfd alone, so a batch of packets to send leaves at once, not at the next
//! round; within a round it looks at the shard's commands every [`SENDS_EVERY`] sockets, so
//! a long round does not hold a tick's packets back. Those [`SENDS_EVERY`] sockets are
//! looked up together before any is read, as a tick's sockets are before any is sent from
//! (`rtp::send_all`). Sockets, epoll and the eventfd go through rustix, straight system
//! calls. Batches go back and forth to be reused, so a packet costs no allocation.
//!
//! Bounded under abuse: a port flooded with datagrams is read once a round (1,000 a second
//! at most; the kernel drops the rest from its socket buffer), or [`CATCH_UP_READS`] times
//! in a round that follows a stall, so it costs no more than a few calls and never starves
//! the others. The number of batches is fixed: when the shard falls behind and holds them
//! all, this thread stops reading, the kernel's buffers hold (and then drop) what arrives,
//! and the shard's overload signal sees the lag; when this thread falls behind, its send
//! lag turns the same signal on. Garbage is handed on as received (the switch judges it); a
//! datagram for a closed port never reaches a socket, and one for a parked port (a released
//! port whose socket stays bound for its next call, `rtp.rs`) is read and dropped here.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{epoll, Timespec};
use rustix::io::Errno;
use rustix::net::RecvFlags;
use tokio::sync::mpsc::error::TrySendError;
use tracing::{debug, warn};

use super::rtp::PortSockets;
use concierge_b2bua::RtpBatch as Batch;

/// What the shard asks of the RTP thread, in the order it asked.
pub(crate) enum Command {
    /// Read (and send from) these sockets, bound to `port`: the media address's first, the
    /// IPv6 one beside it second.
    Open {
        port: u16,
        sockets: Vec<Arc<UdpSocket>>,
    },
    /// The call is over: close the port's sockets.
    Close { port: u16 },
    /// The call is over, the sockets stay: what arrives on them is read and dropped.
    Park { port: u16 },
    /// A new call has the parked port: what arrives goes to the shard again.
    Unpark { port: u16 },
    /// Send these packets (the switch's `Output::Rtp`, handed over at `queued`), each
    /// from its port's socket of the destination's family; the batch goes back to the
    /// shard empty, and from there to the switch.
    Send { batch: Batch, queued: Instant },
    /// The shard is gone.
    Stop,
}

/// The shortest time between two rounds. Longer rounds read more sockets per system call
/// of `epoll_wait` and wake the shard less often; a received packet waits at most this
/// long (RFC 4733 keys and relayed audio do not mind a millisecond).
pub(crate) const ROUND: Duration = Duration::from_millis(1);

/// Batches of received datagrams in flight to the shard at most (each up to 1,024).
pub(crate) const RECEIVE_BATCHES: usize = 16;

/// The longest the thread waits for a socket: the shard does not wake it for a port to
/// open or close, only for packets to send, so it looks at its commands this often.
pub(crate) const IDLE_WAIT: Duration = Duration::from_millis(20);

/// How long the thread waits for the shard to give a batch back when it holds them all.
const STARVED_WAIT: Duration = Duration::from_millis(1);

/// A round this long after the previous one reads up to [`CATCH_UP_READS`] datagrams from
/// each ready socket instead of one: a packet time, the most one stream brings between two
/// rounds when this thread keeps up.
const CATCH_UP: Duration = Duration::from_millis(20);

/// See [`CATCH_UP`]: enough to work off a stall within a few rounds, few enough that a
/// flooded port still waits its turn.
const CATCH_UP_READS: usize = 4;

/// A round does what the shard asked again after this many ready sockets, so a tick's
/// packets to send wait for at most this many reads (well under a millisecond), not for the
/// whole round: a round after a stall reads up to [`CATCH_UP_READS`] datagrams from each of
/// thousands of sockets, and sends that waited for it went out up to 50 ms late at 4,000
/// calls (`bench/RESULTS.md`).
pub(crate) const SENDS_EVERY: usize = 64;

/// How many ready sockets one round takes at most; the rest stay ready for the next.
const EVENTS: usize = 4096;

/// The event data of the eventfd the shard wakes this thread with; socket events carry
/// `port * 2 + family`, which never reaches it.
const WAKE: u64 = u64::MAX;

/// The thread's state; [`RtpThread::run`] is its whole life.
pub(crate) struct RtpThread {
    /// Every socket, and the eventfd.
    epoll: OwnedFd,
    /// The eventfd alone: what the thread waits on between rounds.
    wake_only: OwnedFd,
    /// Written by the shard when it handed over packets to send, or stops.
    wake: Arc<OwnedFd>,
    commands: Receiver<Command>,
    sockets: PortSockets,
    /// Indexed by port: whether its sockets are parked (what they receive is dropped).
    parked: Vec<bool>,
    to_shard: tokio::sync::mpsc::Sender<Batch>,
    /// Received batches the shard has handled.
    free: Receiver<Batch>,
    allocated: usize,
    /// A batch this thread has and did not need last round.
    idle: Option<Batch>,
    /// Sent batches go back to the shard through this.
    spent: Sender<Batch>,
    /// The longest a batch waited for this thread before its packets went out (µs), since
    /// the shard last took it: how far this thread is behind, for the overload signal.
    send_lag_us: Arc<AtomicU64>,
    send_errors: concierge_sip::LogLimiter,
}

/// Why the thread stops.
struct Stopped;

impl RtpThread {
    pub(crate) fn new(
        wake: Arc<OwnedFd>,
        commands: Receiver<Command>,
        to_shard: tokio::sync::mpsc::Sender<Batch>,
        free: Receiver<Batch>,
        spent: Sender<Batch>,
        send_lag_us: Arc<AtomicU64>,
    ) -> std::io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let wake_only = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        for e in [&epoll, &wake_only] {
            epoll::add(
                e,
                &*wake,
                epoll::EventData::new_u64(WAKE),
                epoll::EventFlags::IN,
            )?;
        }
        Ok(Self {
            epoll,
            wake_only,
            wake,
            commands,
            sockets: PortSockets::new(),
            parked: vec![false; usize::from(u16::MAX) + 1],
            to_shard,
            free,
            allocated: 0,
            idle: None,
            spent,
            send_lag_us,
            send_errors: concierge_sip::LogLimiter::new(Duration::from_secs(10), 10),
        })
    }

    /// Rounds until the shard says stop or goes away.
    pub(crate) fn run(mut self) {
        let mut events: Vec<epoll::Event> = Vec::with_capacity(EVENTS);
        let mut woken: Vec<epoll::Event> = Vec::with_capacity(1);
        let mut last_round = Instant::now();
        loop {
            if self.commands().is_err() {
                return;
            }
            let Some(batch) = take_batch(&mut self.idle, &self.free, &mut self.allocated) else {
                // The shard holds every batch: it is behind. Nothing is read (the sockets
                // stay ready) until it gives one back; its sends still go out.
                if self
                    .pause(Instant::now() + STARVED_WAIT, &mut woken)
                    .is_err()
                {
                    return;
                }
                continue;
            };
            events.clear();
            let idle = Timespec::try_from(IDLE_WAIT).ok();
            match epoll::wait(
                &self.epoll,
                rustix::buffer::spare_capacity(&mut events),
                idle.as_ref(),
            ) {
                Ok(_) => {}
                Err(Errno::INTR) => {}
                Err(e) => {
                    warn!(error = %e, "RTP thread: waiting for sockets failed");
                    std::thread::sleep(STARVED_WAIT);
                }
            }
            let round = Instant::now();
            // A round that comes a whole packet time after the last (this thread was not
            // scheduled, or the shard held the batches) finds sockets with a backlog: read
            // a few from each, or a stall would leave every call behind for good.
            let reads = if round.duration_since(last_round) > CATCH_UP {
                CATCH_UP_READS
            } else {
                1
            };
            last_round = round;
            let mut batch = Some(batch);
            'events: for (i, chunk) in events.chunks(SENDS_EVERY).enumerate() {
                // A tick's packets wait for at most SENDS_EVERY reads, not for the round.
                if i > 0 && self.commands().is_err() {
                    return;
                }
                // The chunk's sockets, all looked up before any is read (`rtp::send_all`
                // says why).
                let mut ahead = [None; SENDS_EVERY];
                let mut wake_seen = false;
                for (slot, event) in ahead.iter_mut().zip(chunk) {
                    let token = event.data.u64();
                    wake_seen |= token == WAKE;
                    *slot = self.sockets.by_token(token).map(|socket| {
                        let port = (token / 2) as u16;
                        (port, socket.as_fd(), self.parked[usize::from(port)])
                    });
                }
                if wake_seen {
                    self.drain_wake();
                }
                for (port, socket, parked) in ahead.into_iter().flatten() {
                    if parked {
                        drop_parked(socket, batch.as_mut().and_then(Batch::spare), reads);
                        continue;
                    }
                    for _ in 0..reads {
                        if batch.as_mut().is_none_or(|b| b.spare().is_none()) {
                            if let Some(full) = batch.take() {
                                if ship(&self.to_shard, full, &mut self.idle).is_err() {
                                    return;
                                }
                            }
                            batch = take_batch(&mut self.idle, &self.free, &mut self.allocated);
                        }
                        // The shard holds every batch: the rest stay ready for a later round.
                        let Some(room) = batch.as_mut().and_then(Batch::spare) else {
                            break 'events;
                        };
                        match rustix::net::recvfrom(socket, room, RecvFlags::DONTWAIT) {
                            Ok((n, _, Some(from))) => {
                                if let (Ok(from), Some(b)) =
                                    (SocketAddr::try_from(from), batch.as_mut())
                                {
                                    b.commit(port, from, round, n);
                                }
                            }
                            Ok((_, _, None)) => {}
                            Err(Errno::AGAIN) => break,
                            // An ICMP error for an earlier send, reported once.
                            Err(e) => debug!(error = %e, port, "RTP receive error"),
                        }
                    }
                }
            }
            if let Some(b) = batch {
                if b.is_empty() {
                    self.idle = Some(b);
                } else if ship(&self.to_shard, b, &mut self.idle).is_err() {
                    return;
                }
            }
            // Let the next round gather what arrives meanwhile; the shard's sends go out
            // as they come.
            if self.pause(round + ROUND, &mut woken).is_err() {
                return;
            }
        }
    }

    /// Waits until `until` for the shard alone, doing what it asks as it asks.
    /// `woken` is the thread's one-event buffer (kept, so a round allocates nothing).
    fn pause(&mut self, until: Instant, woken: &mut Vec<epoll::Event>) -> Result<(), Stopped> {
        loop {
            self.commands()?;
            let Some(rest) = until
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
            else {
                return Ok(());
            };
            let Ok(rest) = Timespec::try_from(rest) else {
                return Ok(());
            };
            woken.clear();
            if let Ok(n) = epoll::wait(
                &self.wake_only,
                rustix::buffer::spare_capacity(&mut *woken),
                Some(&rest),
            ) {
                if n > 0 {
                    self.drain_wake();
                }
            }
        }
    }

    /// Resets the eventfd's count (level-triggered, it stays readable until read).
    fn drain_wake(&self) {
        let mut count = [0u8; 8];
        let _ = rustix::io::read(&*self.wake, &mut count);
    }

    /// Does what the shard asked since the last round.
    fn commands(&mut self) -> Result<(), Stopped> {
        loop {
            match self.commands.try_recv() {
                Ok(Command::Open { port, sockets }) => self.open(port, sockets),
                Ok(Command::Close { port }) => self.close(port),
                Ok(Command::Park { port }) => self.parked[usize::from(port)] = true,
                Ok(Command::Unpark { port }) => self.parked[usize::from(port)] = false,
                Ok(Command::Send { batch, queued }) => self.send(batch, queued),
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return Err(Stopped),
                Err(TryRecvError::Empty) => return Ok(()),
            }
        }
    }

    fn open(&mut self, port: u16, sockets: Vec<Arc<UdpSocket>>) {
        for (family, socket) in sockets.into_iter().enumerate().take(2) {
            let token = PortSockets::token(port, family);
            let data = epoll::EventData::new_u64(token as u64);
            if let Err(e) = epoll::add(&self.epoll, &*socket, data, epoll::EventFlags::IN) {
                // Kept all the same: the call's packets still go out from it.
                warn!(error = %e, port, "RTP thread: cannot watch the port; what arrives on it is lost");
            }
            self.sockets.set(port, family, socket);
        }
    }

    /// Closing a socket takes it out of the epoll too, so no `EPOLL_CTL_DEL` is made first:
    /// the shard let go of its share before it sent the command, so this drop is the last
    /// and closes the descriptor.
    fn close(&mut self, port: u16) {
        self.parked[usize::from(port)] = false;
        self.sockets.remove(port);
    }

    fn send(&mut self, mut batch: Batch, queued: Instant) {
        let lag = u64::try_from(queued.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.send_lag_us.fetch_max(lag, Ordering::Relaxed);
        super::rtp::send_all(&self.sockets, &batch, &mut self.send_errors);
        batch.clear();
        // The shard is gone when this fails; the batch with it.
        let _ = self.spent.send(batch);
    }
}

/// Reads and drops what a parked port received (late packets of its last call, or a
/// stranger's), as many datagrams as a call's socket is read in the round, so a flooded
/// parked port costs no more than a call's. `room` is where they are read to: the batch's
/// free space, left uncommitted; without one (the shard holds every batch) they stay for a
/// later round.
fn drop_parked(socket: BorrowedFd<'_>, room: Option<&mut [u8]>, reads: usize) {
    let Some(room) = room else {
        return;
    };
    for _ in 0..reads {
        if rustix::net::recv(socket, &mut *room, RecvFlags::DONTWAIT).is_err() {
            return;
        }
    }
}

/// A batch to fill: the one this thread kept, one the shard gave back, or a new one while
/// fewer than [`RECEIVE_BATCHES`] exist.
fn take_batch(
    idle: &mut Option<Batch>,
    free: &Receiver<Batch>,
    allocated: &mut usize,
) -> Option<Batch> {
    if let Some(b) = idle.take() {
        return Some(b);
    }
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

/// Hands a filled batch to the shard.
fn ship(
    to_shard: &tokio::sync::mpsc::Sender<Batch>,
    batch: Batch,
    idle: &mut Option<Batch>,
) -> Result<(), Stopped> {
    match to_shard.try_send(batch) {
        Ok(()) => Ok(()),
        // Cannot happen (the channel holds every batch there is); the packets are dropped
        // and the batch kept.
        Err(TrySendError::Full(mut b)) => {
            b.clear();
            *idle = Some(b);
            Ok(())
        }
        Err(TrySendError::Closed(_)) => Err(Stopped),
    }
}
