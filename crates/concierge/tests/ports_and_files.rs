//! Ports and files as an operator meets them: the shipped flows follow the demo directory
//! when it moves, a port someone else holds is reported with the setting that moves it,
//! and the test harness leaves no folders behind.

mod common;

use std::net::{TcpListener, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{header, path_of, wait_record, RawCall, Server};

const WAIT: Duration = Duration::from_secs(10);

/// The shipped config's flows, prompts and customers, unmodified, with the demo directory
/// on a port of the test's choosing (the demo's default may be held by a running demo).
fn shipped_flows_with_directory_on(port: u16) -> Server {
    let root = common::repo_root();
    let extra = format!(
        "[demo]\ndirectory = true\ndirectory_listen = \"127.0.0.1:{port}\"\ncustomers = \"{}\"\n\
         [prompts]\ndir = \"{}\"\n\
         [flows]\ndefault = \"{}\"\nroutes = {{ \"vip-desk\" = \"{}\" }}\n",
        root.join("config/customers.csv").display(),
        root.join("prompts").display(),
        root.join("config/flows/vip.toml").display(),
        root.join("config/flows/vip-desk.toml").display(),
    );
    // This machine is a trusted peer, as in the shipped config: the number is verified.
    Server::start(
        "moved-directory",
        "trusted_peers = [\"127.0.0.0/8\"]",
        &extra,
    )
}

#[test]
fn a_moved_directory_port_still_recognises_a_vip() {
    let directory = common::free_port();
    let server = shipped_flows_with_directory_on(directory);
    common::assert_no_demo_ports(server.pid(), server.port);
    let mut call = RawCall::invite(server.port, "+46706170786", "moved-dir-1", "0 101");
    call.answer_and_ack();
    // Recognised by number: straight to the VIP desk, never asked for a code.
    let refer = call.sip.expect("REFER ", Duration::from_secs(20));
    let refer_to = header(&refer, "Refer-To").unwrap_or_default();
    assert!(
        refer_to.contains("X-Concierge-Tier=member"),
        "{refer_to}\n{}",
        common::tail(&server.log(), 30)
    );
    call.reply(&refer, 202);
    call.bye();
    call.sip.expect("SIP/2.0 200", Duration::from_secs(10));
    let record = wait_record(&server, "moved-dir-1");
    assert_eq!(record["http"][0]["status"], 200, "{record}");
    let path = path_of(&record);
    assert!(
        path.starts_with(&["lookup:success".into(), "is_vip:case 1".into()]),
        "{path:?}"
    );
    assert!(!path.iter().any(|s| s.starts_with("ask_code")), "{path:?}");
    // The log says the call ended, once, whoever ended it.
    assert_eq!(server.log().matches("call ended").count(), 1);
}

/// `run` with `args` in a scratch directory (the built-in demo); its exit and output.
fn run_until_exit(args: &[&str]) -> (bool, String) {
    let dir = common::scratch_dir("busy");
    // The shipped metrics port (9464) is not the one under test: a free one.
    let metrics = format!("127.0.0.1:{}", common::free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_concierge"))
        .arg("run")
        .args(args)
        .args(["--metrics-listen", &metrics])
        .args([
            "--console-listen",
            &format!("127.0.0.1:{}", common::free_port()),
        ])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if common::poll(common::PATIENCE, || child.try_wait().unwrap()).is_none() {
        let _ = child.kill();
        panic!("concierge run did not stop on a busy port");
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_busy_port_is_reported_with_the_field_and_the_flag_that_move_it() {
    let (rtp_min, rtp_max) = common::free_rtp_range(10);
    let rtp = format!("{rtp_min}-{rtp_max}");
    // The SIP port.
    let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sip = holder.local_addr().unwrap().to_string();
    let directory = format!("127.0.0.1:{}", common::free_port());
    let (ok, out) = run_until_exit(&[
        "--listen",
        &sip,
        "--directory-listen",
        &directory,
        "--rtp-ports",
        &rtp,
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("cannot bind SIP over UDP on {sip}"))
            && out.contains("`[sip] listen`")
            && out.contains("--listen"),
        "{out}"
    );
    // The demo directory's port.
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let directory = holder.local_addr().unwrap().to_string();
    let sip = format!("127.0.0.1:{}", common::free_port());
    let (ok, out) = run_until_exit(&[
        "--listen",
        &sip,
        "--directory-listen",
        &directory,
        "--rtp-ports",
        &rtp,
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("demo customer directory on {directory}"))
            && out.contains("`[demo] directory_listen`")
            && out.contains("--directory-listen"),
        "{out}"
    );
}

#[test]
fn scratch_folders_go_when_a_test_passes_and_stay_when_it_fails() {
    // A passing "test": a thread of its own, as libtest gives each test.
    let passed = std::thread::spawn(|| {
        let dir = common::scratch_dir("passes");
        std::fs::write(dir.join("server.log"), "x").unwrap();
        dir
    })
    .join()
    .unwrap();
    assert!(!passed.exists(), "{} left behind", passed.display());

    let failed = std::sync::Arc::new(std::sync::Mutex::new(None));
    let slot = failed.clone();
    let outcome = std::thread::spawn(move || {
        let dir = common::scratch_dir("fails");
        *slot.lock().unwrap() = Some(dir);
        panic!("a failing test (expected here)");
    })
    .join();
    assert!(outcome.is_err());
    let kept = failed.lock().unwrap().take().unwrap();
    assert!(kept.exists(), "a failed test's files are kept");
    std::fs::remove_dir_all(&kept).unwrap();

    // A server's folder (config, log, records) goes when it is dropped.
    let server = Server::start("cleanup", "", "");
    let dir = server.dir.clone();
    assert!(dir.join("server.log").exists());
    drop(server);
    assert!(!dir.exists(), "{} left behind", dir.display());

    // And no folder of this test process is left but the ones in use by tests running now.
    let ours = format!("{}{}-", common::SCRATCH_PREFIX, std::process::id());
    let stale: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&ours) && (n.contains("-passes-") || n.contains("-cleanup-")))
        .collect();
    assert!(stale.is_empty(), "{stale:?}");
}

#[test]
fn a_wait_returns_when_its_event_comes_and_a_timeout_names_what_was_last_seen() {
    use common::{poll, wait_until, PATIENCE};
    use std::sync::mpsc;
    // A peer that answers only once the wait has looked once and found nothing.
    let (go, went) = mpsc::channel();
    let (answer, answered) = mpsc::channel();
    let peer = std::thread::spawn(move || {
        went.recv().unwrap();
        answer.send(42).unwrap();
    });
    let mut looks = 0;
    let got = wait_until(PATIENCE, "the peer's answer", || {
        looks += 1;
        let seen = answered.try_recv();
        let _ = go.send(());
        seen.map_err(|e| format!("{e:?}"))
    });
    peer.join().unwrap();
    assert_eq!(got, 42);
    assert!(looks >= 2, "it looked again after the first \"not yet\"");

    // Nothing comes: the test fails, naming what it waited for and what it saw instead.
    let failed = std::thread::spawn(|| {
        wait_until(
            Duration::from_millis(100),
            "a line that never comes",
            || Err::<(), _>("the log so far (expected here)"),
        )
    })
    .join()
    .expect_err("a wait that runs out fails");
    let message = failed.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("a line that never comes")
            && message.contains("the log so far (expected here)"),
        "{message}"
    );
    // Where running out is the answer, it is one.
    assert_eq!(poll(Duration::from_millis(100), || None::<()>), None);
}

/// A shell wrapper that lowers the server's open-files limit to 300, then execs it.
const ULIMIT_300: &[&str] = &["sh", "-c", "ulimit -n 300 && exec \"$0\" \"$@\""];

/// The descriptors process `pid` holds.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// `n` plain calls at `rate` a second, each held `hold_ms`, all of which must succeed.
fn calls(server: &Server, n: u32, rate: u32, hold_ms: u32) {
    let (n, rate, hold) = (n.to_string(), rate.to_string(), hold_ms.to_string());
    let out = common::sipp(
        server,
        &[
            "-sn",
            "uac",
            "-m",
            &n,
            "-r",
            &rate,
            "-l",
            "400",
            "-d",
            &hold,
            "-timeout",
            "60",
            "-timeout_error",
        ],
    );
    common::assert_sipp_ok(&out, server);
}

#[test]
fn under_a_low_open_files_limit_a_call_s_socket_takes_the_place_of_a_parked_one() {
    // 300 descriptors, 64 reserved and 10 for TCP connections: RTP sockets may hold 196
    // (seven eighths of the 226 left).
    let (min, max) = common::free_rtp_range(1_200);
    let server = Server::start_wrapped(
        "rtp-fd-budget",
        "",
        &format!(
            "[rtp]\nport_min = {min}\nport_max = {max}\n[tcp]\nmax_connections = 10\nfd_reserve = 64\n"
        ),
        ULIMIT_300,
    );
    let idle = open_fds(server.pid());
    // Short calls first: the ports they release rest with their sockets parked, as many
    // as the budget allows.
    calls(&server, 250, 100, 0);
    let parked = open_fds(server.pid());
    assert!(
        parked >= idle + 150,
        "{idle} descriptors idle, {parked} parked"
    );
    // Then 150 calls at a time while those still rest: each port bound for a call closes
    // a parked socket to make room, instead of running out of descriptors.
    calls(&server, 300, 75, 2_000);
    // No bind ran out of descriptors (a port some other program on this busy machine
    // holds is another matter: the call is given another port).
    let log = server.log();
    assert!(
        !log.contains("Too many open files"),
        "{}",
        common::tail(&log, 20)
    );
    let held = open_fds(server.pid());
    assert!(held < 300, "{held} descriptors");
}

#[test]
fn a_draining_server_lets_go_of_its_parked_ports_for_the_instance_replacing_it() {
    // Two ports: the first call's rests parked, the second carries a call that keeps the
    // old server draining after SIGTERM.
    let (min, max) = common::free_rtp_range(4);
    let rtp = format!("[rtp]\nport_min = {min}\nport_max = {max}\n");
    let mut old = Server::start("drain-old", "", &rtp);
    let mut first = RawCall::invite(old.port, "+46700000031", "drain1", "0");
    let parked = first.answer_and_ack();
    first.bye();
    first.sip.expect("SIP/2.0 200", WAIT);
    wait_record(&old, "drain1");
    let mut held = RawCall::invite(old.port, "+46700000032", "drain2", "0");
    let in_call = held.answer_and_ack();
    assert_ne!(parked, in_call);
    old.signal("-TERM");
    old.wait_log("draining: new calls get 503");
    // The instance replacing it, same range: the parked port is free for its call.
    let new = Server::start("drain-new", "", &rtp);
    let mut call = RawCall::invite(new.port, "+46700000033", "drain3", "0");
    let media = call.answer_and_ack();
    assert_eq!(media.port(), parked.port());
    call.bye();
    held.bye();
    assert_eq!(old.wait_exit(Duration::from_secs(10)), Some(true));
}
