//! Hostile bytes against the real binary over UDP and TCP: start lines with multi-byte
//! characters (the `SIPé/2.0` datagram once killed the process), floods of malformed
//! datagrams (the log must stay bounded and clean), and a mutation run of thousands of
//! damaged messages. After each the server must be alive and answer OPTIONS.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::{tcp_options_ok, udp_options_ok, wait_until, Server, PATIENCE};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn with_start_line(start: &str) -> Vec<u8> {
    format!(
        "{start}\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKmb;rport\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: mb\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Start lines and header names with multi-byte UTF-8 where ASCII is expected.
fn multi_byte_messages() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        "OPTIONS sip:a@127.0.0.1 SIPé/2.0",
        "OPTIONS sip:a@127.0.0.1 SIP/é.0",
        "OPTIONS sip:a@127.0.0.1 é",
        "OPTIONS sip:a@127.0.0.1 €€€€€€€",
        "OPTIéNS sip:a@127.0.0.1 SIP/2.0",
        "😀 sip:a@127.0.0.1 SIP/2.0",
        "SIP/2.0 2é0 OK",
        "SIPé/2.0 200 OK",
        "SIP/2.0 €",
    ]
    .iter()
    .map(|s| with_start_line(s))
    .collect();
    v.push(
        b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nV\xc3\xada: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n\r\n"
            .to_vec(),
    );
    v.push(b"OPTIONS sip:a@127.0.0.1 SIP\xc3/2.0\r\nVia: x\r\n\r\n".to_vec());
    v
}

/// Waits until the server has closed `conn`, whose sending side the client closed: it
/// has read everything sent on it.
#[track_caller]
fn wait_closed_by_server(mut conn: &TcpStream) {
    conn.set_read_timeout(Some(PATIENCE)).expect("read timeout");
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            // The server's answers, if any, are read and passed over.
            Ok(n) if n > 0 => {}
            Ok(_) => return,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the server kept a connection open for {PATIENCE:?} after its end")
            }
            Err(_) => return, // reset: closed too
        }
    }
}

fn assert_alive_and_answering(server: &mut Server) {
    assert!(udp_options_ok(server.port), "no 200 to OPTIONS over UDP");
    assert!(
        tcp_options_ok(server.port, LOCAL),
        "no 200 to OPTIONS over TCP"
    );
    assert!(
        server.is_alive(),
        "the server exited; log:\n{}",
        server.log()
    );
    assert!(!server.log().contains("panic"), "{}", server.log());
}

#[test]
fn multi_byte_start_lines_over_udp_and_tcp_do_not_stop_the_server() {
    let mut server = Server::start("multi-byte", "", "");
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut connections = Vec::new();
    for m in multi_byte_messages() {
        udp.send_to(&m, ("127.0.0.1", server.port)).expect("send");
        // Each on its own connection too: an error closes the connection it came on.
        let mut tcp = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        let _ = tcp.write_all(&m);
        let _ = tcp.shutdown(Shutdown::Write);
        connections.push(tcp);
    }
    // The server has read every connection to its end; the probes below queue behind
    // the datagrams (one socket) and the messages taken from the connections.
    for tcp in &connections {
        wait_closed_by_server(tcp);
    }
    assert_alive_and_answering(&mut server);
}

#[test]
fn a_flood_of_malformed_datagrams_costs_a_bounded_clean_log() {
    let mut server = Server::start("malformed-flood", "", "");
    let before = server.log_lines();
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    // Each quotes attacker text: newlines, escape sequences and 10 KB of it.
    let long = "X".repeat(10_000);
    for i in 0..5_000 {
        let m = format!(
            "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{i}\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: c{i}\r\nCSeq: \x1b[31mfake\nINFO forged line {long}\r\n\r\n"
        );
        udp.send_to(m.as_bytes(), ("127.0.0.1", server.port))
            .expect("send");
        if i % 200 == 199 {
            // Let the server keep up (its receive buffer is the limit, not the subject).
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // The interval's summary line comes when the interval ends (10 s).
    let log = server.wait_log("malformed or rejected messages in the last 10 s");
    let grown = server.log_lines() - before;
    assert!(grown < 200, "5,000 bad datagrams made {grown} log lines");
    // No control byte but the newline at each line's end reached the log.
    let raw = std::fs::read(server.dir.join("server.log")).expect("log");
    assert!(
        !raw.iter().any(|b| *b < 0x20 && *b != b'\n' || *b == 0x7f),
        "a raw control byte in the log"
    );
    assert!(
        !log.lines().any(|l| l.len() > 2_000),
        "a log line over 2,000 bytes"
    );
    assert_alive_and_answering(&mut server);
}

/// Valid messages the mutations start from.
fn seeds(port: u16) -> Vec<Vec<u8>> {
    let via = "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKmut;rport";
    let common = format!("{via}\r\nFrom: <sip:+46700000009@127.0.0.1>;tag=m1\r\nTo: <sip:ivr@127.0.0.1:{port}>\r\nCall-ID: mut-1\r\nMax-Forwards: 70\r\n");
    let sdp = common::SDP;
    [
        format!("OPTIONS sip:ivr@127.0.0.1:{port} SIP/2.0\r\n{common}CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"),
        format!("INVITE sip:ivr@127.0.0.1:{port} SIP/2.0\r\n{common}CSeq: 1 INVITE\r\nContact: <sip:m@127.0.0.1:9>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}", sdp.len()),
        format!("BYE sip:ivr@127.0.0.1:{port} SIP/2.0\r\n{common}CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"),
        format!("INFO sip:ivr@127.0.0.1:{port} SIP/2.0\r\n{common}CSeq: 3 INFO\r\nContent-Type: application/dtmf-relay\r\nContent-Length: 24\r\n\r\nSignal=5\r\nDuration=160\r\n"),
        format!("SIP/2.0 200 OK\r\n{common}CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

const INSERTS: &[&[u8]] = &[
    "é".as_bytes(),
    "€".as_bytes(),
    "😀".as_bytes(),
    "\u{2028}".as_bytes(),
    b"\xff",
    b"\xc3",
    b"\0",
    b"\r\n",
    b"\r\n\r\n",
    b":",
    b";",
    b"<",
    b"\"",
    b"\x1b[2J",
];

/// One mutation of `msg`: truncation, bit flips, insertions (multi-byte UTF-8 among
/// them), duplicated or deleted header lines, or a huge value.
fn mutate(rng: &mut StdRng, msg: &[u8]) -> Vec<u8> {
    let mut m = msg.to_vec();
    if m.len() < 4 || !m.contains(&b'\n') {
        // Little left to mutate (an earlier truncation): send it with garbage behind.
        m.extend_from_slice(b"\r\n\xc3\x28\r\n");
    }
    let lines =
        |m: &[u8]| -> Vec<Vec<u8>> { m.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect() };
    match rng.gen_range(0..8) {
        0 => m.truncate(rng.gen_range(0..m.len())),
        1 => {
            for _ in 0..rng.gen_range(1..8) {
                let i = rng.gen_range(0..m.len());
                m[i] ^= 1 << rng.gen_range(0..8);
            }
        }
        2 => {
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..=m.len());
                let ins = INSERTS[rng.gen_range(0..INSERTS.len())];
                m.splice(at..at, ins.iter().copied());
            }
        }
        3 => {
            let mut l = lines(&m);
            let i = rng.gen_range(1..l.len().max(2)).min(l.len() - 1);
            let dup = l[i].clone();
            for _ in 0..rng.gen_range(1..50) {
                l.insert(i, dup.clone());
            }
            m = l.join(&b'\n');
        }
        4 => {
            let mut l = lines(&m);
            let i = rng.gen_range(0..l.len());
            l.remove(i);
            m = l.join(&b'\n');
        }
        5 => {
            // A huge value in a random header line (kept under the 64 KiB datagram).
            let mut l = lines(&m);
            let i = rng.gen_range(1..l.len().max(2)).min(l.len() - 1);
            let n = rng.gen_range(100..40_000);
            let end = l[i].len().saturating_sub(1);
            l[i].splice(end..end, std::iter::repeat_n(b'9', n));
            m = l.join(&b'\n');
        }
        6 => {
            let text = String::from_utf8_lossy(&m).into_owned();
            let cl = [
                "0",
                "4294967296",
                "-1",
                "99999999999",
                "1e3",
                " 5",
                "18446744073709551616",
            ][rng.gen_range(0..7)];
            m = text
                .replacen("Content-Length: ", &format!("Content-Length: {cl}"), 1)
                .into_bytes();
        }
        _ => {
            // Several mutations at once.
            let once = mutate(rng, &m);
            m = mutate(rng, &once);
        }
    }
    m
}

#[test]
fn ten_thousand_mutated_messages_over_udp_and_tcp_leave_it_answering() {
    let mut server = Server::start("mutation", "", "");
    let rss_before = server.rss_kib();
    let seeds = seeds(server.port);
    let mut rng = StdRng::seed_from_u64(0x4475);
    let started = Instant::now();

    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    udp.set_nonblocking(true).expect("nonblocking");
    let mut drain = [0u8; 65_536];
    for i in 0..8_000 {
        let seed = &seeds[i % seeds.len()];
        let m = mutate(&mut rng, seed);
        let _ = udp.send_to(&m, ("127.0.0.1", server.port));
        while udp.recv_from(&mut drain).is_ok() {}
        if i % 100 == 99 {
            // Let the server keep up (its receive buffer is the limit, not the subject).
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    // TCP: mutated messages streamed on connections the server may close at any time
    // (an unframeable stream ends its connection); a closed one is replaced.
    let mut sent_tcp = 0;
    let mut readers = Vec::new();
    while sent_tcp < 4_000 {
        let mut tcp = wait_until(PATIENCE, "a TCP connection", || {
            TcpStream::connect(("127.0.0.1", server.port))
        });
        // Reads what the server answers, so that it never waits on us, until it closes.
        let reader = tcp.try_clone().expect("clone");
        readers.push(std::thread::spawn(move || wait_closed_by_server(&reader)));
        for _ in 0..50 {
            let seed = &seeds[sent_tcp % seeds.len()];
            let m = mutate(&mut rng, seed);
            sent_tcp += 1;
            if tcp.write_all(&m).is_err() {
                break;
            }
        }
        let _ = tcp.shutdown(Shutdown::Write);
    }
    println!(
        "8,000 UDP and {sent_tcp} TCP mutations on {} connections in {:?}",
        readers.len(),
        started.elapsed()
    );

    // The server has read every connection to its end (see the first test).
    for reader in readers {
        reader.join().expect("the server closes every connection");
    }
    assert_alive_and_answering(&mut server);
    let rss_after = server.rss_kib();
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}
