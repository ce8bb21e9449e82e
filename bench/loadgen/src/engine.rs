//! The media engine: every stream of the load generator on one thread and one epoll
//! (mio), paced from one deadline heap. A task and two timers per stream (the first
//! design) cost the load generator about as much CPU as the server it measures, on the same
//! two cores; here a stream costs its two system calls per packet and a heap entry.
//!
//! The SIP side (tokio) drives it with [`Engine`] commands: add a stream's socket, start
//! it (where to send, what to key and when), finish it and get what it measured.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};

use crate::media::{Stream, StreamStats};

const WAKE: Token = Token(usize::MAX);

enum Command {
    Add {
        id: usize,
        socket: std::net::UdpSocket,
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
    waker: Arc<Waker>,
}

impl Engine {
    /// Starts the engine's thread; it ends when every handle is dropped.
    pub(crate) fn spawn() -> std::io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let (commands, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("media".into())
            .spawn(move || run(poll, rx))?;
        Ok(Self { commands, waker })
    }

    /// Binds a stream's socket on loopback and hands it to the engine, which reads it from
    /// now on. Returns its port.
    pub(crate) fn add(&self, id: usize, seed: u64) -> std::io::Result<u16> {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        socket.set_nonblocking(true)?;
        let port = socket.local_addr()?.port();
        self.command(Command::Add { id, socket, seed });
        Ok(port)
    }

    /// Hands the engine a socket bound elsewhere (the lean pump's fixed ports). Its stream
    /// starts sending by itself when the first packet arrives, back to its source.
    pub(crate) fn add_socket(&self, id: usize, socket: std::net::UdpSocket, seed: u64) {
        self.command(Command::Add { id, socket, seed });
    }

    /// Starts sending a 20 ms stream now (see [`Stream::start`]).
    pub(crate) fn start(
        &self,
        id: usize,
        to: Option<SocketAddr>,
        digits: &str,
        key_after: Duration,
    ) {
        self.command(Command::Start {
            id,
            to,
            digits: digits.to_owned(),
            key_after,
        });
    }

    /// Ends the stream and returns what it measured.
    pub(crate) async fn finish(&self, id: usize) -> StreamStats {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.command(Command::Finish { id, reply });
        rx.await.unwrap_or_default()
    }

    fn command(&self, command: Command) {
        if self.commands.send(command).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

fn run(mut poll: Poll, commands: Receiver<Command>) {
    let mut streams: Vec<Option<Stream>> = Vec::new();
    let mut due: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 2048];
    loop {
        let timeout = due
            .peek()
            .map(|Reverse((at, _))| at.saturating_duration_since(Instant::now()));
        if poll.poll(&mut events, timeout).is_err() {
            continue;
        }
        let now = Instant::now();
        for event in &events {
            let id = event.token().0;
            if id == WAKE.0 {
                continue;
            }
            if let Some(Some(s)) = streams.get_mut(id) {
                if s.on_readable(now, &mut buf) && s.next_send.is_none() {
                    s.start(now, None, "", Duration::ZERO);
                    due.push(Reverse((now, id)));
                }
            }
        }
        loop {
            match commands.try_recv() {
                Ok(Command::Add { id, socket, seed }) => {
                    let mut socket = mio::net::UdpSocket::from_std(socket);
                    if poll
                        .registry()
                        .register(&mut socket, Token(id), Interest::READABLE)
                        .is_err()
                    {
                        continue;
                    }
                    if streams.len() <= id {
                        streams.resize_with(id + 1, || None);
                    }
                    streams[id] = Some(Stream::new(socket, seed));
                }
                Ok(Command::Start {
                    id,
                    to,
                    digits,
                    key_after,
                }) => {
                    if let Some(Some(s)) = streams.get_mut(id) {
                        let first = s.next_send.is_none();
                        s.start(now, to, &digits, key_after);
                        if first {
                            due.push(Reverse((now, id)));
                        }
                    }
                }
                Ok(Command::Finish { id, reply }) => {
                    let stats = streams
                        .get_mut(id)
                        .and_then(Option::take)
                        .map(|mut s| {
                            let _ = poll.registry().deregister(&mut s.socket);
                            s.stats
                        })
                        .unwrap_or_default();
                    let _ = reply.send(stats);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        let now = Instant::now();
        while let Some(&Reverse((at, id))) = due.peek() {
            if at > now {
                break;
            }
            due.pop();
            // A finished stream's entry just lapses.
            if let Some(Some(s)) = streams.get_mut(id) {
                s.send_due(now);
                if let Some(next) = s.next_send {
                    due.push(Reverse((next, id)));
                }
            }
        }
    }
}
