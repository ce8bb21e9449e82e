//! SIP over TLS and IPv6, against real peers on loopback:
//! - a PJSIP softphone (pjsua2) with only a TLS transport and SRTP mandatory on both sides
//!   calls the VIP flow, hears the prompt, keys 101010 by RFC 2833 as an untrusted caller
//!   and is REFERred to the VIP desk;
//! - mutual TLS: a client certificate from `[sip] tls_client_ca` makes the connection a
//!   trusted peer (its P-Asserted-Identity is believed), one without is only claimed;
//! - a call over `[::1]` whose SDP and RTP are IPv6.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    free_port, header, pjsua2_python, repo_root, scratch_dir, start_vip_with, wait_record,
};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn a_tls_only_pjsip_phone_with_mandatory_srtp_keys_its_code_by_rfc2833_and_is_referred() {
    let python = pjsua2_python();
    let tls = free_port();
    let sip = format!("trusted_peers = []\ntls_listen = \"127.0.0.1:{tls}\"\n");
    // SRTP mandatory: a plain offer would get 488, so a call with sound is an SRTP call;
    // tshark on the call's RTP ports shows it on the wire too.
    let (rtp_min, rtp_max) = common::capture::quiet_rtp_range(20);
    let server = start_vip_with(
        "pjsua2-tls",
        |f| f,
        &sip,
        &format!("[rtp]\nport_min = {rtp_min}\nport_max = {rtp_max}\nsrtp = \"mandatory\"\n"),
    );
    let capture = common::capture::Capture::start("tls-srtp-capture", (rtp_min, rtp_max - 1));
    let dir = scratch_dir("pjsua2-tls");
    let (wav, log) = (dir.join("heard.wav"), dir.join("pjsip.log"));
    let out = Command::new(python)
        .arg(repo_root().join("tests/peers/pjsua2/tcp_caller.py"))
        .args([
            "--transport",
            "tls",
            "--srtp",
            "--dtmf",
            "101010",
            "--dtmf-after",
            "1.5",
        ])
        .arg("--uri")
        .arg(format!("sip:ivr@127.0.0.1:{tls};transport=tls"))
        .arg("--wav")
        .arg(&wav)
        .arg("--log")
        .arg(&log)
        .output()
        .expect("run the pjsua2 caller");
    let packets = capture.packets();
    let common::proxy::PhoneRun {
        summary,
        pjsip_log,
        context,
    } = common::proxy::phone_run(&out, &log, &server.log(), 60);
    assert_eq!(summary["confirmed"], true, "{context}");
    assert_eq!(summary["tx_errors"], serde_json::json!([]), "{context}");
    assert!(
        summary["rms"].as_f64().unwrap_or(0.0) > 300.0,
        "the welcome prompt was heard: {summary}"
    );
    let refer_to = summary["refer_to"].as_str().unwrap_or_default();
    assert!(
        refer_to.contains("vip-desk@") && refer_to.contains("X-Concierge-Tier=gold"),
        "the code, not the number, got it to the VIP desk: {context}"
    );
    assert_eq!(summary["disconnect_code"], 200, "{context}");
    // Our Contact sends the phone's ACK, BYE and our REFER's NOTIFY answers over TLS.
    let our_contact = format!("Contact: <sip:concierge@127.0.0.1:{tls};transport=tls>");
    assert!(pjsip_log.contains(&our_contact), "{our_contact}\n{context}");
    assert!(
        server.log().contains("self-signed TLS certificate"),
        "{context}"
    );
    // Both sides insist on SRTP (a plain offer would get 488): the call that was heard was
    // SRTP, keyed inside TLS. The key never reaches our log.
    assert!(pjsip_log.contains("RTP/SAVP"), "{context}");
    assert!(!server.log().contains("inline:"), "a key in the server log");
    // On the wire: every RTP packet from our ports is SRTP (12 + 160 bytes of G.711 + the
    // 80-bit tag), none is plain PCMU silence, and the phone sent nothing of a plain
    // packet's size (172 bytes of audio, 16 of an RFC 4733 event).
    let server_ports = rtp_min..rtp_max;
    let rtp: Vec<&(u16, Vec<u8>)> = packets
        .iter()
        .filter(|(_, p)| p.len() >= 12 && p[0] >> 6 == 2 && !(192..=223).contains(&p[1]))
        .collect();
    let ours: Vec<_> = rtp
        .iter()
        .filter(|(src, _)| server_ports.contains(src))
        .collect();
    assert!(ours.len() >= 100, "we sent media: {} packets", ours.len());
    for (src, p) in &ours {
        assert_eq!(p.len(), 12 + 160 + 10, "from our port {src}: {p:02x?}");
        assert!(
            !p[12..172].iter().all(|b| *b == 0xff),
            "plain PCMU silence from {src}"
        );
    }
    let plain_sized = rtp
        .iter()
        .filter(|(src, p)| !server_ports.contains(src) && matches!(p.len(), 172 | 16))
        .count();
    assert_eq!(plain_sized, 0, "the phone's packets are all SRTP-sized");
    let call_id = pjsip_log
        .lines()
        .find_map(|l| l.trim().strip_prefix("Call-ID: "))
        .expect("a Call-ID in the PJSIP log")
        .trim()
        .to_owned();
    let rec = wait_record(&server, &call_id);
    assert_eq!(rec["verified"], false, "{rec}");
    assert!(
        common::path_of(&rec).contains(&"ask_code:done".to_string()),
        "{rec}"
    );
}

/// A test CA, and certificates it issued.
struct Pki {
    ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Concierge test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            ca_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A certificate for `names` (PEM) and its key (PEM).
    fn issue(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = rcgen::CertificateParams::new(names).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS connection to the server at `port`, trusting `ca_pem`, with a client
/// certificate when `client` is given.
fn tls_connect(
    port: u16,
    ca_pem: &str,
    client: Option<(&str, &str)>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Reads SIP messages off a stream until one starts with `prefix`.
fn expect_on<S: Read>(stream: &mut S, buf: &mut Vec<u8>, prefix: &str) -> String {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            let len: usize = header(&head, "Content-Length")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() < end + 4 + len {
                break;
            }
            let msg = String::from_utf8_lossy(&buf[..end + 4 + len]).into_owned();
            buf.drain(..end + 4 + len);
            if msg.starts_with(prefix) {
                return msg;
            }
            seen.push(msg.lines().next().unwrap_or_default().to_owned());
        }
        assert!(Instant::now() < deadline, "no {prefix:?}; saw {seen:?}");
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk) {
            Ok(0) => panic!("connection closed waiting for {prefix:?}; saw {seen:?}"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

const VIP_PAI: &str = "P-Asserted-Identity: <sip:+46706170786@carrier.example;user=phone>\r\n";

/// An INVITE from "anonymous" with the VIP's number in P-Asserted-Identity, over TLS.
fn tls_invite(port: u16, local: SocketAddr, call_id: &str) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    format!(
        "INVITE sips:ivr@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bK{call_id}\r\nFrom: <sip:anonymous@anonymous.invalid>;tag=t{call_id}\r\nTo: <sips:ivr@127.0.0.1:{port}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sips:trunk@{local}>\r\nMax-Forwards: 70\r\n{VIP_PAI}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

fn ack_and_bye(port: u16, local: SocketAddr, call_id: &str, ok: &str) -> (String, String) {
    let to = header(ok, "To").expect("To").to_owned();
    let common = format!(
        "From: <sip:anonymous@anonymous.invalid>;tag=t{call_id}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let ack = format!(
        "ACK sips:concierge@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bK{call_id}a\r\nCSeq: 1 ACK\r\n{common}"
    );
    let bye = format!(
        "BYE sips:concierge@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bK{call_id}b\r\nCSeq: 2 BYE\r\n{common}"
    );
    (ack, bye)
}

#[test]
fn mutual_tls_a_client_certificate_from_the_configured_ca_makes_a_trusted_peer() {
    let pki = Pki::new();
    let dir = scratch_dir("mtls-pki");
    let (server_cert, server_key) = pki.issue(&["127.0.0.1", "localhost"]);
    let (trunk_cert, trunk_key) = pki.issue(&["trunk.example"]);
    let stranger = Pki::new();
    let (stranger_cert, stranger_key) = stranger.issue(&["stranger.example"]);
    for (name, text) in [
        ("ca.pem", &pki.ca_pem),
        ("server.pem", &server_cert),
        ("server.key", &server_key),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let tls = free_port();
    let sip = format!(
        "trusted_peers = []\ntls_listen = \"127.0.0.1:{tls}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntls_client_ca = \"{}\"\n",
        dir.join("server.pem").display(),
        dir.join("server.key").display(),
        dir.join("ca.pem").display()
    );
    let server = start_vip_with("mtls", |f| f, &sip, "");

    // The trunk with a certificate from the CA: its PAI is believed, the VIP goes through.
    let mut conn = tls_connect(tls, &pki.ca_pem, Some((&trunk_cert, &trunk_key)));
    let local = conn.sock.local_addr().unwrap();
    let mut buf = Vec::new();
    conn.write_all(tls_invite(tls, local, "mtls-trusted").as_bytes())
        .unwrap();
    let ok = expect_on(&mut conn, &mut buf, "SIP/2.0 200");
    assert!(
        header(&ok, "Contact")
            .is_some_and(|c| c.contains(&format!("sips:concierge@127.0.0.1:{tls}"))),
        "{ok}"
    );
    let (ack, bye) = ack_and_bye(tls, local, "mtls-trusted", &ok);
    conn.write_all(ack.as_bytes()).unwrap();
    let refer = expect_on(&mut conn, &mut buf, "REFER ");
    let refer_to = header(&refer, "Refer-To").unwrap();
    assert!(
        refer_to.contains("vip-desk@") && refer_to.contains("X-Concierge-Tier=member"),
        "{refer_to}"
    );
    conn.write_all(bye.as_bytes()).unwrap();
    let rec = wait_record(&server, "mtls-trusted");
    assert_eq!(
        (rec["caller"].as_str(), rec["verified"].as_bool()),
        (Some("+46706170786"), Some(true)),
        "{rec}"
    );

    // The same INVITE without a client certificate: served, but the PAI is ignored.
    let mut conn = tls_connect(tls, &pki.ca_pem, None);
    let local = conn.sock.local_addr().unwrap();
    let mut buf = Vec::new();
    conn.write_all(tls_invite(tls, local, "mtls-anonymous").as_bytes())
        .unwrap();
    let ok = expect_on(&mut conn, &mut buf, "SIP/2.0 200");
    let (ack, bye) = ack_and_bye(tls, local, "mtls-anonymous", &ok);
    conn.write_all(ack.as_bytes()).unwrap();
    server.wait_confirmed("mtls-anonymous");
    conn.write_all(bye.as_bytes()).unwrap();
    let rec = wait_record(&server, "mtls-anonymous");
    assert_eq!(rec["verified"], false, "{rec}");

    // A certificate from another CA fails the handshake: no SIP gets through.
    let mut conn = tls_connect(tls, &pki.ca_pem, Some((&stranger_cert, &stranger_key)));
    let local = conn.sock.local_addr().unwrap();
    let sent = conn.write_all(tls_invite(tls, local, "mtls-stranger").as_bytes());
    let mut chunk = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(3);
    let answered = sent.is_ok()
        && loop {
            match conn.read(&mut chunk) {
                Ok(n) if n > 0 => break true,
                Ok(_) => break false,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {}
                Err(_) => break false,
            }
        };
    assert!(!answered, "a stranger's certificate got an answer");
    server.wait_log("TLS handshake failed");
}

#[test]
fn a_call_over_ipv6_loopback_has_ip6_sdp_and_rtp_over_ipv6() {
    let sip = "listen = [\"127.0.0.1:{port}\", \"[::1]:{port}\"]\ntrusted_peers = []\n";
    let server = start_vip_with("ipv6", |f| f, sip, "");
    let port = server.port;
    let sock = UdpSocket::bind("[::1]:0").expect("an IPv6 loopback socket");
    let rtp = UdpSocket::bind("[::1]:0").expect("an IPv6 RTP socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    rtp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let local = sock.local_addr().unwrap();
    let rtp_port = rtp.local_addr().unwrap().port();
    let sdp = format!("v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n");
    let call_id = "ipv6-call";
    let dialog = format!(
        "From: <sip:+46700000009@[::1]>;tag=v6\r\nCall-ID: {call_id}\r\nMax-Forwards: 70\r\n"
    );
    let invite = format!(
        "INVITE sip:ivr@[::1]:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKv6i;rport\r\n{dialog}To: <sip:ivr@[::1]:{port}>\r\nCSeq: 1 INVITE\r\nContact: <sip:raw@{local}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    let server_addr: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    sock.send_to(invite.as_bytes(), server_addr).unwrap();
    let ok = recv_starting(&sock, "SIP/2.0 200");
    assert!(ok.contains("c=IN IP6 ::1\r\n"), "{ok}");
    assert!(
        header(&ok, "Contact").is_some_and(|c| c.contains(&format!("@[::1]:{port}"))),
        "{ok}"
    );
    let their_rtp: u16 = ok
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("m=audio port");
    let to = header(&ok, "To").unwrap().to_owned();
    let ack = format!(
        "ACK sip:concierge@[::1]:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKv6a;rport\r\n{dialog}To: {to}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(ack.as_bytes(), server_addr).unwrap();
    // The prompt arrives over IPv6, from the port the SDP named.
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + WAIT;
    let mut packets = 0;
    while packets < 10 && Instant::now() < deadline {
        if let Ok((n, from)) = rtp.recv_from(&mut buf) {
            assert_eq!(
                from,
                SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], their_rtp))
            );
            assert!(n >= 12 && buf[0] >> 6 == 2, "an RTP packet");
            packets += 1;
        }
    }
    assert_eq!(
        packets,
        10,
        "RTP over IPv6\n{}",
        common::tail(&server.log(), 30)
    );
    let bye = format!(
        "BYE sip:concierge@[::1]:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKv6b;rport\r\n{dialog}To: {to}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(bye.as_bytes(), server_addr).unwrap();
    let rec = wait_record(&server, call_id);
    assert_eq!(rec["ended_by"], "caller", "{rec}");
}

fn recv_starting(sock: &UdpSocket, prefix: &str) -> String {
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 65_536];
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if m.starts_with(prefix) {
                return m;
            }
            seen.push(m.lines().next().unwrap_or_default().to_owned());
        }
    }
    panic!("no {prefix:?}; saw {seen:?}");
}

/// The VIP flow with its desk at `target`, for a VIP caller on UDP who declines the
/// REFER: the flow bridges to the target instead. Returns the call's record.
fn bridge_to(server: &common::Server, call_id: &str) -> serde_json::Value {
    let mut call = common::RawCall::invite(server.port, "+46706170786", call_id, "0 101");
    call.answer_and_ack();
    let refer = call.sip.expect("REFER ", Duration::from_secs(20));
    call.reply(&refer, 603);
    let bye = call.sip.expect("BYE ", Duration::from_secs(30));
    call.reply(&bye, 200);
    wait_record(server, call_id)
}

#[test]
fn a_bridge_leg_to_a_sips_target_goes_over_tls_and_verifies_the_server_certificate() {
    let pki = Pki::new();
    let dir = scratch_dir("bridge-tls-pki");
    let (cert, key) = pki.issue(&["127.0.0.1"]);
    for (name, text) in [
        ("ca.pem", &pki.ca_pem),
        ("cert.pem", &cert),
        ("key.pem", &key),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let files = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        dir.join("cert.pem").display(),
        dir.join("key.pem").display()
    );
    // The desk is this server's own TLS listener: the leg is a TLS client of it.
    let tls = free_port();
    let desk = move |f: String| {
        f.replace(
            "target = \"sip:vip-desk@{system.local_host}\"",
            &format!("target = \"sips:vip-desk@127.0.0.1:{tls}\""),
        )
    };
    let sip = format!(
        "{}tls_listen = \"127.0.0.1:{tls}\"\n{files}tls_ca_file = \"{}\"\n",
        common::TRUST_LOOPBACK,
        dir.join("ca.pem").display()
    );
    let server = start_vip_with("bridge-tls", desk, &sip, "");
    let rec = bridge_to(&server, "bridge-tls");
    assert_eq!(rec["transfer"]["mode"], "bridge", "{rec}");
    assert_eq!(
        rec["transfer"]["result"],
        "answered (after REFER rejected with 603)",
        "{rec}\n{}",
        common::tail(&server.log(), 30)
    );
    assert!(
        server.log().contains("to=sips:vip-desk@127.0.0.1"),
        "the desk took the leg over TLS\n{}",
        common::tail(&server.log(), 30)
    );
    drop(server);

    // Trusting only the Mozilla roots, our test CA's certificate does not verify: no leg.
    let tls = free_port();
    let desk = move |f: String| {
        f.replace(
            "target = \"sip:vip-desk@{system.local_host}\"",
            &format!("target = \"sips:vip-desk@127.0.0.1:{tls}\""),
        )
    };
    let sip = format!(
        "{}tls_listen = \"127.0.0.1:{tls}\"\n{files}",
        common::TRUST_LOOPBACK
    );
    let server = start_vip_with("bridge-tls-unverified", desk, &sip, "");
    let mut call =
        common::RawCall::invite(server.port, "+46706170786", "bridge-unverified", "0 101");
    call.answer_and_ack();
    let refer = call.sip.expect("REFER ", Duration::from_secs(20));
    call.reply(&refer, 603);
    // The unverified server is refused.
    server.wait_log("TLS handshake with the server failed");
    assert!(
        !server.log().contains("to=sips:vip-desk"),
        "no call reached the desk"
    );
    call.bye();
}

#[test]
fn check_loads_the_tls_files_as_run_would_and_names_the_field_of_a_missing_one() {
    let dir = scratch_dir("check-tls");
    let root = repo_root();
    let cfg = dir.join("concierge.toml");
    let write = |sip: &str| {
        std::fs::write(
            &cfg,
            format!(
                "[sip]\n{sip}\n[demo]\ndirectory = false\ncustomers = \"{}\"\n[prompts]\ndir = \"{}\"\n",
                root.join("config/customers.csv").display(),
                root.join("prompts").display()
            ),
        )
        .unwrap()
    };
    let check = || {
        let out = Command::new(env!("CARGO_BIN_EXE_concierge"))
            .args(["check", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // `check` binds nothing, but a port of our own keeps the demo's out of the suite.
    let tls = free_port();
    write(&format!(
        "tls_listen = \"127.0.0.1:{tls}\"\ntls_cert = \"missing.pem\"\ntls_key = \"missing.key\"\n"
    ));
    let (ok, text) = check();
    assert!(
        !ok && text.contains("tls_cert") && text.contains("missing.pem"),
        "{text}"
    );
    write(&format!("tls_listen = \"127.0.0.1:{tls}\"\n"));
    let (ok, text) = check();
    assert!(ok && text.contains("self-signed"), "{text}");
}

#[test]
fn tls_handshakes_under_way_count_against_the_tcp_limits_and_must_finish_in_time() {
    let tls = free_port();
    let server = common::Server::start(
        "tls-limits",
        &format!("tls_listen = \"127.0.0.1:{tls}\"\n"),
        "[tcp]\nmax_connections_per_source = 3\nmessage_timeout_s = 2\n",
    );
    // Three connections that never start their handshake hold the source's allowance...
    // (The listener takes connections in the order they came, and each counts against
    // its source from the moment it is taken: nothing to wait for before the fourth.)
    let silent: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", tls)).unwrap())
        .collect();
    // ...so a fourth is closed at once.
    let mut fourth = TcpStream::connect(("127.0.0.1", tls)).unwrap();
    fourth
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        match fourth.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        },
        "the fourth connection from one source was kept"
    );
    // The silent ones are closed when the handshake deadline passes.
    for mut s in silent {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let t0 = Instant::now();
        let r = s.read(&mut byte);
        assert!(
            matches!(r, Ok(0)) || r.is_err() && t0.elapsed() < Duration::from_secs(5),
            "{r:?}"
        );
    }
    assert!(
        server.log().contains("TLS handshake not completed in time"),
        "{}",
        common::tail(&server.log(), 20)
    );
    // Then the source may connect again.
    let mut again = TcpStream::connect(("127.0.0.1", tls)).unwrap();
    again
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(
        matches!(again.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a new connection is held open, waiting for its handshake"
    );
}
