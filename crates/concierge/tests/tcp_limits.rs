//! TCP connections as an attacker holds them, against the real binary: more connections
//! than the process has file descriptors, slowloris connections that never finish a
//! message, and a client that pipelines requests and never reads. During each, calls and
//! OPTIONS over UDP and TCP from another client still complete, and CPU, log volume and
//! memory stay bounded.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{assert_sipp_ok, sipp, tcp_options_ok, udp_options_ok, Server};

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A shell wrapper that lowers the server's open-files limit, then execs it.
const ULIMIT_1024: &[&str] = &["sh", "-c", "ulimit -n 1024 && exec \"$0\" \"$@\""];

/// A TCP connection to the server from `source`.
fn connect_from(source: Ipv4Addr, port: u16) -> Option<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    sock.bind(&SocketAddr::from((source, 0)).into()).ok()?;
    sock.connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)).into(),
        Duration::from_secs(2),
    )
    .ok()?;
    Some(sock.into())
}

/// Attackers spread over several source addresses so the per-source cap alone does not
/// stop them: `n` connections from 127.0.0.2 upwards, `per_ip` from each.
fn open_many(port: u16, n: usize, per_ip: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|i| connect_from(Ipv4Addr::new(127, 0, 0, 2 + (i / per_ip) as u8), port))
        .collect()
}

/// A call over UDP and one over TCP (SIPp's built-in UAC: INVITE, 200, ACK, BYE).
fn calls_complete(server: &Server) {
    let udp = sipp(
        server,
        &["-sn", "uac", "-m", "1", "-timeout", "20", "-timeout_error"],
    );
    assert_sipp_ok(&udp, server);
    let tcp = sipp(
        server,
        &[
            "-sn",
            "uac",
            "-t",
            "t1",
            "-m",
            "1",
            "-timeout",
            "20",
            "-timeout_error",
        ],
    );
    assert_sipp_ok(&tcp, server);
    assert!(udp_options_ok(server.port), "UDP OPTIONS unanswered");
    assert!(tcp_options_ok(server.port, LOCAL), "TCP OPTIONS unanswered");
}

/// Whether the server closed `s` (EOF or reset) within `within`.
fn closed_by_server(s: &TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
        match (&mut &*s).read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn eleven_hundred_connections_under_a_1024_fd_limit_leave_calls_working() {
    let mut server = Server::start_wrapped("fd-limit", "", "", ULIMIT_1024);
    assert!(
        server
            .log()
            .contains("tcp.max_connections lowered to fit the open-files limit"),
        "{}",
        server.log()
    );
    let (log0, cpu0, rss0, t0) = (
        server.log_lines(),
        server.cpu_time(),
        server.rss_kib(),
        Instant::now(),
    );
    let held = open_many(server.port, 1_100, 50);
    assert!(
        held.len() >= 1_000,
        "only {} connections opened",
        held.len()
    );
    // Idle connections held while real traffic goes on: two seconds of nothing but them
    // is part of the CPU window measured below (a spin would show in it).
    std::thread::sleep(Duration::from_secs(2));
    calls_complete(&server);
    let cpu = server.cpu_time() - cpu0;
    let wall = t0.elapsed();
    // Not a spin: well under a core over the whole run (the issue saw 100 %).
    assert!(
        cpu < wall / 2,
        "the server used {cpu:?} of CPU in {wall:?} with 1,100 idle connections"
    );
    let lines = server.log_lines() - log0;
    assert!(lines < 400, "{lines} log lines");
    let rss = server.rss_kib();
    assert!(rss < rss0 + 64 * 1024, "RSS {rss0} → {rss} KiB");
    assert!(server.is_alive());
    drop(held);
}

#[test]
fn accept_out_of_descriptors_pauses_instead_of_spinning() {
    // No reserve: the TCP connections alone exhaust the descriptors, and accept fails.
    let mut server = Server::start_wrapped(
        "emfile",
        "",
        "[tcp]\nfd_reserve = 0\nmax_connections_per_source = 2000\n",
        ULIMIT_1024,
    );
    let (log0, cpu0, t0) = (server.log_lines(), server.cpu_time(), Instant::now());
    let mut held = Vec::new();
    for _ in 0..1_100 {
        // Non-blocking connects: the kernel completes them into the backlog even while
        // the server cannot accept.
        if let Some(s) = connect_from(LOCAL, server.port) {
            held.push(s);
        }
    }
    // The window the CPU is measured over while accept keeps failing: a spinning accept
    // loop would use it all (a sleep that is part of the test).
    std::thread::sleep(Duration::from_secs(4));
    let cpu = server.cpu_time() - cpu0;
    let wall = t0.elapsed();
    assert!(
        cpu < wall / 2,
        "{cpu:?} of CPU in {wall:?}: accept is spinning"
    );
    let log = server.log();
    assert!(
        log.contains("TCP accept out of file descriptors"),
        "{}",
        common::tail(&log, 20)
    );
    let lines = server.log_lines() - log0;
    assert!(lines < 400, "{lines} log lines");
    assert!(udp_options_ok(server.port), "UDP OPTIONS unanswered");
    assert!(server.is_alive());
}

#[test]
fn slowloris_connections_are_closed_and_others_are_served() {
    let mut server = Server::start("slowloris", "", "[tcp]\nmessage_timeout_s = 2\n");
    let log0 = server.log_lines();
    let mut slow = open_many(server.port, 200, 50);
    assert_eq!(slow.len(), 200);
    for s in &mut slow {
        s.write_all(b"OPTIONS sip:ivr@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9")
            .expect("first bytes");
    }
    // A byte now and then, never the end of the headers.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        for s in &mut slow {
            let _ = s.write_all(b"9");
        }
        // The slowloris pace, a byte every 300 ms (pacing the attacker).
        std::thread::sleep(Duration::from_millis(300));
    }
    calls_complete(&server);
    let still_open = slow
        .iter()
        .filter(|s| !closed_by_server(s, Duration::from_secs(3)))
        .count();
    assert_eq!(still_open, 0, "slowloris connections still open");
    let lines = server.log_lines() - log0;
    assert!(lines < 400, "{lines} log lines");
    assert!(server.is_alive());
}

#[test]
fn a_client_that_never_reads_is_disconnected_with_memory_bounded() {
    let mut server = Server::start("no-reader", "", "");
    let rss0 = server.rss_kib();
    // A small receive buffer (set before connecting, so the window is small from the
    // start): the server's answers back up quickly.
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    sock.connect(&SocketAddr::from(([127, 0, 0, 1], server.port)).into())
        .expect("connect");
    let mut greedy: TcpStream = sock.into();
    greedy
        .set_write_timeout(Some(Duration::from_secs(2)))
        .expect("write timeout");
    let options = common::options_request(server.port).replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    let batch = options.repeat(100);
    let started = Instant::now();
    let (mut sent, mut at) = (0usize, 0usize);
    let disconnected = loop {
        if started.elapsed() > Duration::from_secs(30) {
            break false;
        }
        match greedy.write(&batch.as_bytes()[at..]) {
            Ok(0) => break true,
            Ok(n) => {
                sent += n;
                at = (at + n) % batch.len();
            }
            // Our write timing out means the server is not reading us right now; a
            // reset or a broken pipe that it closed us.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break true,
        }
    };
    println!(
        "{} pipelined OPTIONS in {:?} before the disconnect",
        sent / options.len(),
        started.elapsed()
    );
    assert!(
        disconnected || closed_by_server(&greedy, Duration::from_secs(5)),
        "a client that never reads was not disconnected"
    );
    assert!(
        server.log().contains("does not read"),
        "{}",
        common::tail(&server.log(), 20)
    );
    let rss = server.rss_kib();
    assert!(rss < rss0 + 64 * 1024, "RSS {rss0} → {rss} KiB");
    calls_complete(&server);
    assert!(server.is_alive());
}
