//! The media benchmark in miniature, so its scenario cannot rot: 50 callers at once through
//! the reference flow (two-way RTP, the code keyed by RFC 4733, the keypad, REFER, NOTIFY,
//! BYE) against the debug server, all of them to succeed.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `concierge` binary cargo built beside this test (same target dir and profile).
fn concierge_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    profile_dir.join("concierge")
}

fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn fifty_concurrent_callers_all_reach_the_vip_desk() {
    let root = repo_root();
    let dir = std::env::temp_dir().join(format!("concierge-loadgen-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (sip, crm) = (free_port(), free_port());
    // The shipped flow reaches the directory through {system.directory_url}.
    let flow = std::fs::read_to_string(root.join("config/flows/vip.toml")).unwrap();
    std::fs::write(dir.join("vip.toml"), flow).unwrap();
    let records = dir.join("calls.jsonl");
    let config = format!(
        "[sip]\nlisten = \"127.0.0.1:{sip}\"\n[rtp]\nport_min = 31100\nport_max = 31800\n\
         [records]\npath = \"{}\"\n[flows]\ndefault = \"{}\"\n[prompts]\ndir = \"{}\"\n\
         [demo]\ndirectory = true\ndirectory_listen = \"127.0.0.1:{crm}\"\ncustomers = \"{}\"\n\
         [log]\nfilter = \"warn\"\n",
        records.display(),
        dir.join("vip.toml").display(),
        root.join("prompts").display(),
        root.join("config/customers.csv").display(),
    );
    std::fs::write(dir.join("concierge.toml"), config).unwrap();
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let server = Server(
        Command::new(concierge_bin())
            .args(["run", "--config"])
            .arg(dir.join("concierge.toml"))
            .current_dir(&root)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the concierge binary (cargo builds it with --workspace)"),
    );
    // Ready when it answers OPTIONS.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let options = format!("OPTIONS sip:x@127.0.0.1:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKsmoke;rport\r\nFrom: <sip:s@127.0.0.1>;tag=s\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: smoke\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    let mut buf = [0u8; 4096];
    loop {
        assert!(Instant::now() < deadline, "server did not start");
        probe
            .send_to(options.as_bytes(), ("127.0.0.1", sip))
            .unwrap();
        if probe
            .recv(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"SIP/2.0 200"))
        {
            break;
        }
    }

    let out = Command::new(env!("CARGO_BIN_EXE_concierge-loadgen"))
        .args(["callers", "--server", &format!("127.0.0.1:{sip}")])
        .args(["--calls", "50", "--ramp-s", "1", "--hold-s", "1"])
        .output()
        .expect("loadgen");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no summary: {stdout}"));
    assert!(
        stdout.contains("ALL_UP") && stdout.contains("FIRST_END"),
        "{stdout}"
    );
    assert_eq!(
        summary["failed"],
        0,
        "{summary}\n{}",
        std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
    );
    assert_eq!(summary["peak_concurrent_up"], 50, "{summary}");
    // Each caller hears prompts and silence at 50 packets a second to the end of the call:
    // ~5 s, since its first key skips the (interruptible) welcome.
    assert!(
        summary["rtp_received"].as_u64().unwrap() > 50 * 200,
        "{summary}"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let transferred = loop {
        let text = std::fs::read_to_string(&records).unwrap_or_default();
        let n = text
            .lines()
            .filter(|l| {
                l.contains("\"result\":\"succeeded\"") && l.contains("X-Concierge-Tier=gold")
            })
            .count();
        if n == 50 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        transferred, 50,
        "every record says: keyed 101010, gold, referred"
    );
    // Passed: nothing of this run is left in the temp directory (a failure keeps it).
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
