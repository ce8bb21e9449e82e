//! Secure media and named targets against the real binary on 127.0.0.1: a PJSIP phone
//! that insists on SRTP (SDES over UDP signalling) hears the prompt, keys 101010 by
//! RFC 2833 inside SRTP and is REFERred to the VIP desk, while tshark on loopback sees no
//! plain RTP; a plain offer to `srtp = "mandatory"` gets 488; a bridge to
//! `sip:queue@desk.test` is located through NAPTR and SRV records on a dnsmasq the test
//! starts on a loopback port, and fails over to the second SRV target when the first is
//! silent; a `sips:` trunk registrar is located by its `_sips._tcp` SRV record and
//! reached over TLS.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::capture::{quiet_rtp_range, Capture};
use common::{
    assert_sipp_ok, free_port, pjsua2_python, repo_root, scenario, scratch_dir, start_vip, RawCall,
};

#[test]
fn an_srtp_phone_keys_its_code_inside_srtp_and_no_plain_rtp_crosses_loopback() {
    let python = pjsua2_python();
    let (rtp_min, rtp_max) = quiet_rtp_range(20);
    let server = start_vip(
        "srtp-pjsua2",
        |f| f,
        &format!("[rtp]\nport_min = {rtp_min}\nport_max = {rtp_max}\nsrtp = \"mandatory\"\n"),
    );
    let capture = Capture::start("srtp-capture", (rtp_min, rtp_max - 1));
    let dir = scratch_dir("srtp-pjsua2-phone");
    let (wav, log) = (dir.join("heard.wav"), dir.join("pjsip.log"));
    let out = Command::new(python)
        .arg(repo_root().join("tests/peers/pjsua2/srtp_caller.py"))
        .arg("--uri")
        .arg(format!("sip:ivr@127.0.0.1:{}", server.port))
        // Not a VIP number: the flow asks for the code.
        .args(["--caller", "+46700000077", "--digits", "101010"])
        .arg("--wav")
        .arg(&wav)
        .arg("--log")
        .arg(&log)
        .output()
        .expect("run the pjsua2 caller");
    let packets = capture.packets();
    let common::proxy::PhoneRun {
        summary, context, ..
    } = common::proxy::phone_run(&out, &log, &server.log(), 40);
    assert_eq!(summary["confirmed"], true, "{context}");
    assert!(
        summary["rms"].as_f64().unwrap_or(0.0) > 300.0,
        "the welcome prompt was heard (decrypted by PJSIP): {summary}"
    );
    let refer_to = summary["refer_to"].as_str().unwrap_or_default();
    assert!(
        refer_to.contains("vip-desk@"),
        "101010 reached us inside SRTP and the flow sent the caller to the VIP desk: {context}"
    );
    let record = server
        .records()
        .into_iter()
        .find(|r| r["caller"] == "+46700000077")
        .unwrap_or_else(|| panic!("a record\n{context}"));
    let digits = record["digits"].as_array().cloned().unwrap_or_default();
    assert!(digits.len() >= 6, "{record}");
    assert!(
        digits.iter().all(|d| d.to_string().contains("rfc4733")),
        "{record}"
    );

    // What crossed loopback on the server's RTP ports: only SRTP.
    let server_ports = rtp_min..rtp_max;
    let rtp: Vec<&(u16, Vec<u8>)> = packets
        .iter()
        // RTCP (packet types 192–223) goes to the odd port; we look at RTP.
        .filter(|(_, p)| p.len() >= 12 && p[0] >> 6 == 2 && !(192..=223).contains(&p[1]))
        .collect();
    let ours: Vec<_> = rtp
        .iter()
        .filter(|(src, _)| server_ports.contains(src))
        .collect();
    let theirs: Vec<_> = rtp
        .iter()
        .filter(|(src, _)| !server_ports.contains(src))
        .collect();
    assert!(ours.len() >= 100, "we sent media: {} packets", ours.len());
    // PJSIP numbers telephone-event dynamically (not 101): anything but G.711 is an event.
    let is_event = |p: &[u8]| !matches!(p[1] & 0x7f, 0 | 8);
    let events: Vec<_> = theirs.iter().filter(|(_, p)| is_event(p)).collect();
    assert!(
        events.len() >= 6,
        "the phone sent RFC 2833 events: {}",
        events.len()
    );
    for (src, p) in &rtp {
        // An SRTP packet is its RTP packet plus an 80-bit tag: 12 + 160 (20 ms of G.711)
        // + 10, or 12 + 4 (one RFC 4733 event) + 10. Plain RTP would be 10 bytes shorter.
        let payload = if is_event(p) { 4 } else { 160 };
        assert_eq!(p.len(), 12 + payload + 10, "from port {src}: {p:02x?}");
    }
    // Between prompts a plain sender sends G.711 silence (all 0xff); none is visible.
    let plain_silence = ours
        .iter()
        .filter(|(_, p)| p[12..172].iter().all(|b| *b == 0xff))
        .count();
    assert_eq!(plain_silence, 0, "no plain PCMU silence from us");
    // The keys never reach the log.
    let log = server.log();
    assert!(
        !log.contains("inline:") && !log.contains("a=crypto"),
        "keys in the server log"
    );
}

#[test]
fn a_plain_rtp_offer_to_mandatory_srtp_gets_488() {
    let server = start_vip("srtp-488", |f| f, "[rtp]\nsrtp = \"mandatory\"\n");
    let call = RawCall::invite(server.port, "+46700000078", "plain-to-srtp", "0 101");
    let answer = call.sip.expect("SIP/2.0 4", Duration::from_secs(10));
    assert!(answer.starts_with("SIP/2.0 488"), "{answer}");
    let warning = common::header(&answer, "Warning").unwrap_or_default();
    assert!(warning.contains("SRTP is mandatory"), "{answer}");
}

/// dnsmasq answering only from its command line, on a loopback port; killed when dropped.
struct Dns {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Dns {
    fn start(records: &[String]) -> Self {
        let dir = scratch_dir("dnsmasq");
        let log = dir.join("dnsmasq.log");
        let port = free_port();
        let child = Command::new("dnsmasq")
            .args([
                "--no-daemon",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
            ])
            .args([
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file=",
            ])
            .args(["--log-facility=-", "--log-queries"])
            .arg(format!("--port={port}"))
            .args(records)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("dnsmasq log"))
            .spawn()
            .expect("dnsmasq is installed (.ci/run installs dnsmasq-base)");
        // Owned at once: a panic below kills it (Drop).
        let dns = Self { child, port, log };
        common::wait_until(common::PATIENCE, "dnsmasq to start", || {
            let log = dns.log();
            if log.contains("started") {
                Ok(())
            } else {
                Err(log)
            }
        });
        dns
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_bridge_to_a_name_follows_naptr_and_srv_and_fails_over_to_the_second_target() {
    // The queue: a SIPp UAS behind the second SRV record. Nothing listens behind the first.
    let (dead, queue_port) = (free_port(), free_port());
    let queue_dir = scratch_dir("dns-queue");
    let queue = Command::new("sipp")
        .args(["-sf", &scenario("queue_uas.xml")])
        .args(["-i", "127.0.0.1", "-p", &queue_port.to_string()])
        .args(["-mp", &common::sipp_media_port().to_string(), "-rtp_echo"])
        .args(["-m", "1", "-nostdin", "-timeout", "40", "-timeout_error"])
        .args(["-trace_err", "-trace_screen"])
        .current_dir(&queue_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("SIPp for the queue");
    let dns = Dns::start(&[
        "--naptr-record=desk.test,10,10,S,SIP+D2U,,_sip._udp.desk.test".into(),
        format!("--srv-host=_sip._udp.desk.test,host1.desk.test,{dead},10,1"),
        format!("--srv-host=_sip._udp.desk.test,host2.desk.test,{queue_port},20,1"),
        "--host-record=host1.desk.test,127.0.0.1".into(),
        "--host-record=host2.desk.test,127.0.0.1".into(),
    ]);
    let server = start_vip(
        "dns-bridge",
        |f| {
            f.replace(
                "target = \"sip:vip-desk@{system.local_host}\"",
                "target = \"sip:queue@desk.test\"",
            )
        },
        &format!(
            "[dns]\nservers = [\"127.0.0.1:{}\"]\nfailover_ms = 1500\n",
            dns.port
        ),
    );
    // A VIP caller refuses the REFER (405): the flow bridges to the named queue.
    let out = common::sipp(
        &server,
        &[
            "-sf",
            &scenario("refer_405_bridge.xml"),
            "-key",
            "caller",
            "+46706170786",
            "-m",
            "1",
            "-timeout",
            "40",
            "-timeout_error",
        ],
    );
    let context = format!(
        "--- server log (tail)\n{}\n--- dnsmasq\n{}",
        common::tail(&server.log(), 40),
        dns.log()
    );
    assert_sipp_ok(&out, &server);
    let status = queue.wait_with_output().expect("queue SIPp").status;
    assert!(
        status.success(),
        "the queue's SIPp failed ({status})\n{context}"
    );
    let rec = common::wait_records(&server, 1).pop().expect("a record");
    assert_eq!(rec["transfer"]["mode"], "bridge", "{rec}\n{context}");
    assert!(
        rec["transfer"]["result"]
            .as_str()
            .unwrap_or_default()
            .starts_with("answered"),
        "{rec}\n{context}"
    );
    let to_caller = rec["transfer"]["relayed"]["to_caller"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        to_caller >= 50,
        "the queue's echo reached the caller: {rec}"
    );
    // RFC 3263 as it happened: NAPTR, then SRV, then the two hosts; the silent first
    // address was given up for the second.
    let dns_log = dns.log();
    for q in [
        "query[NAPTR] desk.test",
        "query[SRV] _sip._udp.desk.test",
        "query[A] host1.desk.test",
        "query[A] host2.desk.test",
    ] {
        assert!(dns_log.contains(q), "{q}\n{context}");
    }
    let log = server.log();
    let failover = log
        .lines()
        .find(|l| l.contains("trying the target's next address"))
        .unwrap_or_else(|| panic!("no failover\n{context}"));
    assert!(
        failover.contains(&format!("127.0.0.1:{dead}"))
            && failover.contains(&format!("127.0.0.1:{queue_port}")),
        "{failover}"
    );
}

#[test]
fn rfc3263_a_sips_trunk_registrar_is_located_by_its_sips_srv_record_and_reached_over_tls() {
    // Where `_sips._tcp` points, something that only notes what the first bytes are.
    let registrar = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
    let port = registrar.local_addr().expect("its address").port();
    registrar
        .set_nonblocking(true)
        .expect("non-blocking accept");
    let dns = Dns::start(&[
        format!("--srv-host=_sips._tcp.registrar.test,reg.registrar.test,{port},10,1"),
        "--host-record=reg.registrar.test,127.0.0.1".into(),
    ]);
    let trunk = common::trunk::table("sips:registrar.test", "acct-17", "");
    let server = common::Server::start_env(
        "sips-trunk",
        &format!("tls_listen = \"127.0.0.1:{}\"\n", free_port()),
        &format!("[dns]\nservers = [\"127.0.0.1:{}\"]\n{trunk}", dns.port),
        &[(common::trunk::PASSWORD_VAR, "pw")],
    );
    let (mut conn, _) =
        common::wait_until(common::PATIENCE, "a connection to the registrar", || {
            registrar
                .accept()
                .map_err(|e| format!("{e}\n{}\n{}", dns.log(), common::tail(&server.log(), 20)))
        });
    conn.set_nonblocking(false).expect("blocking reads");
    conn.set_read_timeout(Some(common::PATIENCE))
        .expect("a read timeout");
    let mut hello = [0u8; 3];
    std::io::Read::read_exact(&mut conn, &mut hello).expect("the first bytes");
    assert_eq!(hello[0], 0x16, "a TLS handshake record: {hello:02x?}");
    assert_eq!(hello[1], 0x03, "TLS: {hello:02x?}");
    assert!(
        dns.log().contains("query[SRV] _sips._tcp.registrar.test"),
        "{}",
        dns.log()
    );
}
