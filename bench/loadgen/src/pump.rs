//! The packet floor: the socket work of N two-way 20 ms streams and nothing else, one tokio
//! task and timer per port (the shape the server had when the benchmark was made, and the
//! floor issue 22's targets are stated against), so the server's CPU per call-second can
//! be read as a multiple of it.

use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::engine::Engine;
use crate::media::{StreamStats, PTIME};
use crate::summary::{progress, Failures, Jitter};

/// N ports, each answering whoever streams to it with a 20 ms stream of its own.
pub(crate) async fn run_pump(
    port_min: u16,
    streams: usize,
    seconds: Duration,
) -> serde_json::Value {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            let end = Instant::now() + seconds;
            let mut bound = 0;
            for k in 0..streams {
                let port = port_min + 2 * k as u16;
                let Ok(socket) = UdpSocket::bind(("127.0.0.1", port)).await else {
                    continue;
                };
                bound += 1;
                tokio::task::spawn_local(pump_port(socket, end));
            }
            progress("READY");
            sleep_until(end).await;
            serde_json::json!({ "streams": streams, "bound": bound })
        })
        .await
}

/// The lean floor: the same N ports on the media engine (one thread, one level-triggered
/// epoll, 1 ms rounds, one deadline heap), each answering whoever streams to it: the socket
/// work itself, with as little around it as this program knows how to put there.
pub(crate) async fn run_lean_pump(
    port_min: u16,
    streams: usize,
    seconds: Duration,
) -> serde_json::Value {
    let engine = Engine::spawn().expect("the media engine's thread");
    let mut bound = 0;
    for k in 0..streams {
        let port = port_min + 2 * k as u16;
        let Ok(socket) = std::net::UdpSocket::bind(("127.0.0.1", port)) else {
            continue;
        };
        if engine.add_socket(k, socket, rand::random()).is_ok() {
            bound += 1;
        }
    }
    progress("READY");
    sleep_until(Instant::now() + seconds).await;
    serde_json::json!({ "streams": streams, "bound": bound })
}

async fn pump_port(socket: UdpSocket, end: Instant) {
    let mut buf = vec![0u8; 2048];
    let mut peer = None;
    let mut next = Instant::now();
    let mut packet = [0u8; 172];
    packet[0] = 0x80;
    let mut seq: u16 = 0;
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                if let Ok((_, from)) = r {
                    if peer.is_none() {
                        next = Instant::now();
                    }
                    peer = Some(from);
                }
            }
            _ = sleep_until(next), if peer.is_some() => {
                if let Some(to) = peer {
                    seq = seq.wrapping_add(1);
                    packet[2..4].copy_from_slice(&seq.to_be_bytes());
                    let _ = socket.try_send_to(&packet, to);
                }
                next += PTIME;
            }
            _ = sleep_until(end) => return,
        }
    }
}

/// N two-way streams against a pump, started over `ramp`, each lasting `hold`: the same
/// media engine the callers use, so both sides of the comparison load the machine alike.
pub(crate) async fn run_streams(
    port_min: u16,
    streams: usize,
    ramp: Duration,
    hold: Duration,
) -> serde_json::Value {
    let engine = Engine::spawn().expect("the media engine's thread");
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            let started = Instant::now();
            let (done_tx, mut done_rx) = mpsc::unbounded_channel::<StreamStats>();
            let (up_tx, mut up_rx) = mpsc::unbounded_channel::<()>();
            for k in 0..streams {
                let at = started + ramp.mul_f64(k as f64 / streams.max(1) as f64);
                let to = std::net::SocketAddr::from(([127, 0, 0, 1], port_min + 2 * k as u16));
                let (done_tx, up_tx, engine) = (done_tx.clone(), up_tx.clone(), engine.clone());
                tokio::task::spawn_local(async move {
                    sleep_until(at).await;
                    if engine.add(k, rand::random()).is_err() {
                        return;
                    }
                    engine.start(k, Some(to), "", Duration::ZERO);
                    let _ = up_tx.send(());
                    sleep_until(Instant::now() + hold).await;
                    let _ = done_tx.send(engine.finish(k).await);
                });
            }
            drop((done_tx, up_tx));
            let (mut up, mut finished) = (0, 0);
            let mut jitter = Jitter::default();
            let mut failures = Failures::default();
            let (mut sent, mut received) = (0u64, 0u64);
            loop {
                tokio::select! {
                    Some(()) = up_rx.recv() => {
                        up += 1;
                        if up == streams {
                            progress("ALL_UP");
                        }
                    }
                    Some(s) = done_rx.recv() => {
                        if finished == 0 {
                            progress("FIRST_END");
                        }
                        finished += 1;
                        if s.received == 0 {
                            failures.add("nothing received");
                        }
                        sent += s.sent;
                        received += s.received;
                        jitter.merge(s.jitter);
                    }
                    else => break,
                }
            }
            serde_json::json!({
                "streams": streams,
                "failed": failures.total(),
                "failures": failures.to_json(),
                "rtp_sent": sent,
                "rtp_received": received,
                "jitter": jitter.summarize(),
                "seconds": started.elapsed().as_secs_f64(),
            })
        })
        .await
}
