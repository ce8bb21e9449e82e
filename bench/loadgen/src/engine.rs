//! The media engine: every stream of the load generator on one thread and one
//! level-triggered epoll, in rounds of [`ROUND`]. A task and two timers per stream (the
//! first design) cost the load generator about as much CPU as the server it measures, on
//! the same two cores; here a stream costs its two system calls per packet and a heap entry,
//! and the thread is asleep between rounds rather than woken by every packet (which also
//! spares the server's `sendto` the wake-up of a waiting reader).
//!
//! Arrival times are the kernel's (`SO_TIMESTAMPNS`), so the jitter measured is the gap
//! between the sender's packets as they reached this socket, not this thread's rounds.
//!
//! The SIP side (tokio) drives it with [`Engine`] commands, taken at the start of each
//! round: add a stream's socket, start it (where to send, what to key and when), finish it
//! and get what it measured.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::IoSliceMut;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};
use nix::sys::time::TimeSpec;

use crate::media::{Stream, StreamStats};

/// One round: commands, the sends that are due, one read from each ready socket, sleep.
const ROUND: Duration = Duration::from_millis(1);

enum Command {
    Add {
        id: usize,
        socket: UdpSocket,
        seed: u64,
    },
    Start {
        id: usize,
        to: Option<SocketAddr>,
        digits: String,
        key_after: Duration,
    },
    Finish {
        id: usize,
        reply: tokio::sync::oneshot::Sender<StreamStats>,
    },
}

/// The handle the SIP side holds; cheap to clone.
#[derive(Clone)]
pub(crate) struct Engine {
    commands: Sender<Command>,
}

impl Engine {
    /// Starts the engine's thread; it ends when every handle is dropped.
    pub(crate) fn spawn() -> std::io::Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let (commands, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("media".into())
            .spawn(move || run(&epoll, &rx))?;
        Ok(Self { commands })
    }

    /// Binds a stream's socket on loopback and hands it to the engine, which reads it from
    /// its next round on. Returns its port.
    pub(crate) fn add(&self, id: usize, seed: u64) -> std::io::Result<u16> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let port = socket.local_addr()?.port();
        self.add_socket(id, socket, seed)?;
        Ok(port)
    }

    /// Hands the engine a socket bound elsewhere (the lean pump's fixed ports). A stream
    /// that is never started starts sending by itself when the first packet arrives, back
    /// to its source.
    pub(crate) fn add_socket(
        &self,
        id: usize,
        socket: UdpSocket,
        seed: u64,
    ) -> std::io::Result<()> {
        socket.set_nonblocking(true)?;
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true)?;
        let _ = self.commands.send(Command::Add { id, socket, seed });
        Ok(())
    }

    /// Starts sending a 20 ms stream from the next round (see [`Stream::start`]).
    pub(crate) fn start(
        &self,
        id: usize,
        to: Option<SocketAddr>,
        digits: &str,
        key_after: Duration,
    ) {
        let _ = self.commands.send(Command::Start {
            id,
            to,
            digits: digits.to_owned(),
            key_after,
        });
    }

    /// Ends the stream and returns what it measured.
    pub(crate) async fn finish(&self, id: usize) -> StreamStats {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let _ = self.commands.send(Command::Finish { id, reply });
        rx.await.unwrap_or_default()
    }
}

struct State {
    streams: Vec<Option<Stream>>,
    due: BinaryHeap<Reverse<(Instant, usize)>>,
}

fn run(epoll: &Epoll, commands: &Receiver<Command>) {
    let mut state = State {
        streams: Vec::new(),
        due: BinaryHeap::new(),
    };
    let mut events = vec![EpollEvent::empty(); 4096];
    let mut control = nix::cmsg_space!(TimeSpec);
    let mut buf = [0u8; 2048];
    loop {
        let round = Instant::now();
        if !take_commands(epoll, commands, &mut state, round) {
            return;
        }
        while let Some(&Reverse((at, id))) = state.due.peek() {
            if at > round {
                break;
            }
            state.due.pop();
            // A finished stream's entry just lapses.
            if let Some(Some(s)) = state.streams.get_mut(id) {
                s.send_due(round);
                if let Some(next) = s.next_send {
                    state.due.push(Reverse((next, id)));
                }
            }
        }
        let ready = epoll.wait(&mut events, EpollTimeout::ZERO).unwrap_or(0);
        for event in events.iter().take(ready) {
            let id = event.data() as usize;
            let Some(Some(s)) = state.streams.get_mut(id) else {
                continue;
            };
            let mut iov = [IoSliceMut::new(&mut buf)];
            let Ok(msg) = recvmsg::<SockaddrStorage>(
                s.socket.as_raw_fd(),
                &mut iov,
                Some(&mut control),
                MsgFlags::MSG_DONTWAIT,
            ) else {
                continue;
            };
            let at = msg.cmsgs().ok().and_then(|mut c| {
                c.find_map(|m| match m {
                    ControlMessageOwned::ScmTimestampns(t) => {
                        Some(Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
                    }
                    _ => None,
                })
            });
            let from = msg.address.and_then(|a| {
                a.as_sockaddr_in()
                    .map(|v4| SocketAddr::V4(SocketAddrV4::from(*v4)))
            });
            let Some(from) = from else {
                continue;
            };
            if s.on_packet(msg.bytes, from, at) && s.next_send.is_none() {
                s.start(round, None, "", Duration::ZERO);
                state.due.push(Reverse((round, id)));
            }
        }
        if let Some(rest) = ROUND.checked_sub(round.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

/// Does what the SIP side asked; `false` when every handle is gone.
fn take_commands(
    epoll: &Epoll,
    commands: &Receiver<Command>,
    state: &mut State,
    now: Instant,
) -> bool {
    loop {
        match commands.try_recv() {
            Ok(Command::Add { id, socket, seed }) => {
                if epoll
                    .add(&socket, EpollEvent::new(EpollFlags::EPOLLIN, id as u64))
                    .is_err()
                {
                    continue;
                }
                if state.streams.len() <= id {
                    state.streams.resize_with(id + 1, || None);
                }
                state.streams[id] = Some(Stream::new(socket, seed));
            }
            Ok(Command::Start {
                id,
                to,
                digits,
                key_after,
            }) => {
                if let Some(Some(s)) = state.streams.get_mut(id) {
                    let first = s.next_send.is_none();
                    s.start(now, to, &digits, key_after);
                    if first {
                        state.due.push(Reverse((now, id)));
                    }
                }
            }
            Ok(Command::Finish { id, reply }) => {
                let stats = state
                    .streams
                    .get_mut(id)
                    .and_then(Option::take)
                    .map(|s| {
                        let _ = epoll.delete(&s.socket);
                        s.stats
                    })
                    .unwrap_or_default();
                let _ = reply.send(stats);
            }
            Err(TryRecvError::Empty) => return true,
            Err(TryRecvError::Disconnected) => return false,
        }
    }
}
