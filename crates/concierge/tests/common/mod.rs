//! Shared harness for the end-to-end tests: the real `concierge` binary on 127.0.0.1 with
//! a config written by the test, and real peers (SIPp, raw UDP) talking to it.
#![allow(dead_code, unreachable_pub)]

pub mod browser;
pub mod calls;
pub mod capture;

pub mod heard;
pub mod http_stub;
pub mod ops;
pub mod proxy;
pub mod redis;
pub mod registrar;
pub mod rtp;
pub mod trunk;
pub mod wait;

#[allow(unused_imports)]
pub use proxy::pjsua2_python;
#[allow(unused_imports)]
pub use wait::{poll, recv_until, wait_until, PATIENCE};

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The repository root, where `tests/sipp/` lives.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

pub fn scenario(name: &str) -> String {
    repo_root()
        .join("tests/sipp")
        .join(name)
        .display()
        .to_string()
}

/// A fresh scratch directory per test. It is removed when the test (the thread that
/// asked for it) ends, unless that thread panicked: a failed test keeps its files (server
/// log, records, SIPp's logs) and says where they are.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = make_scratch_dir(name);
    CLEANUP.with(|c| c.dirs.borrow_mut().push(dir.clone()));
    dir
}

/// The prefix of every scratch directory name in the system temp directory.
pub const SCRATCH_PREFIX: &str = "concierge-test-";

fn make_scratch_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    static HOOK: std::sync::Once = std::sync::Once::new();
    // A panic marks its thread, so the cleanup below knows the test failed.
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = CLEANUP.try_with(|c| c.panicked.set(true));
            previous(info);
        }));
    });
    let dir = std::env::temp_dir().join(format!(
        "{SCRATCH_PREFIX}{}-{}-{}",
        std::process::id(),
        name,
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The scratch directories a test thread made; dropped when the thread ends (libtest runs
/// each test on a thread of its own).
struct Cleanup {
    dirs: std::cell::RefCell<Vec<PathBuf>>,
    panicked: std::cell::Cell<bool>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for dir in self.dirs.borrow().iter() {
            if self.panicked.get() || std::thread::panicking() {
                eprintln!("kept for the failed test: {}", dir.display());
            } else {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

thread_local! {
    static CLEANUP: Cleanup = const {
        Cleanup {
            dirs: std::cell::RefCell::new(Vec::new()),
            panicked: std::cell::Cell::new(false),
        }
    };
}

/// A port free for both UDP and TCP on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The server under test; killed when dropped.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
}

impl Server {
    /// Starts the binary with `[sip] listen` on a free port plus `extra` TOML (which may
    /// add keys to other tables, written as full tables).
    pub fn start(name: &str, sip_extra: &str, extra: &str) -> Self {
        Self::start_wrapped(name, sip_extra, extra, &[])
    }

    /// Like [`Server::start`], with the binary run through `wrapper` (a command and its
    /// arguments that end by exec'ing the rest of the line, e.g. `sh -c 'ulimit -n 1024;
    /// exec "$0" "$@"'`), so the server's own process has the wrapper's limits.
    pub fn start_wrapped(name: &str, sip_extra: &str, extra: &str, wrapper: &[&str]) -> Self {
        let server = Self::spawn(name, sip_extra, extra, wrapper, &[]);
        server.wait_ready();
        server
    }

    /// Like [`Server::start`], for a server that will not answer the readiness probe (its
    /// `allow`/`deny` lists drop 127.0.0.1): waits for its "listening" log line instead.
    pub fn start_unprobed(name: &str, sip_extra: &str, extra: &str) -> Self {
        let server = Self::spawn(name, sip_extra, extra, &[], &[]);
        server.wait_log("concierge listening");
        server
    }

    /// As [`Self::start`], with `env` set for the server process (secrets a flow reads).
    pub fn start_env(name: &str, sip_extra: &str, extra: &str, env: &[(&str, &str)]) -> Self {
        let server = Self::spawn(name, sip_extra, extra, &[], env);
        server.wait_ready();
        server
    }

    fn spawn(
        name: &str,
        sip_extra: &str,
        extra: &str,
        wrapper: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let dir = scratch_dir(name);
        let port = free_port();
        let records = dir.join("calls.jsonl");
        // A test may choose its own `listen` (IPv6 beside IPv4): `{port}` in it is the port.
        let sip_extra = sip_extra.replace("{port}", &port.to_string());
        let listen = if sip_extra
            .lines()
            .any(|l| l.trim_start().starts_with("listen "))
        {
            String::new()
        } else {
            format!("listen = \"127.0.0.1:{port}\"\n")
        };
        let config = format!(
            "[sip]\n{listen}{sip_extra}\n[records]\npath = \"{}\"\n{extra}\n{}",
            records.display(),
            // Each test that wants the demo directory configures its own port.
            if extra.contains("[demo]") {
                ""
            } else {
                "[demo]\ndirectory = false\n"
            }
        );
        // Parallel servers must not share RTP ports: each takes the next range of its own,
        // below the kernel's ephemeral ports (32768 up) so no client socket holds one,
        // and below the softphone harness's 30000-30099.
        let config = if extra.contains("[rtp]") {
            config
        } else {
            static NEXT_RANGE: AtomicU32 = AtomicU32::new(0);
            // 500 even ports: enough for 500 calls at 50/s with each port resting 4 s.
            let base = 10_000 + (NEXT_RANGE.fetch_add(1, Ordering::Relaxed) % 20) * 1000;
            format!(
                "{config}\n[rtp]\nport_min = {base}\nport_max = {}\n",
                base + 1000
            )
        };
        let config_path = dir.join("concierge.toml");
        std::fs::write(&config_path, config).expect("write config");
        let log = std::fs::File::create(dir.join("server.log")).expect("log file");
        let binary = env!("CARGO_BIN_EXE_concierge");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let child = command
            .args(["run", "--config"])
            .arg(&config_path)
            .current_dir(repo_root())
            .env("RUST_LOG", "debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start concierge");
        Self {
            child: Some(child),
            port,
            dir,
        }
    }

    fn wait_ready(&self) {
        wait_until(PATIENCE, "the server to answer OPTIONS", || {
            // Each probe gives a slow start 200 ms to answer before the next is sent.
            if udp_options_answered(self.port, Duration::from_millis(200)) {
                Ok(())
            } else {
                Err(tail(&self.log(), 40))
            }
        });
    }

    /// The call records written so far, one JSON value per line.
    pub fn records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("calls.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a call record is one JSON object per line"))
            .collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Whether the process is still running (it has not exited, cleanly or not).
    pub fn is_alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The server's resident set size in KiB (`VmRSS` in /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/PID/status of the server");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// CPU time the server has used so far (user + system, from /proc/PID/stat).
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("/proc/PID/stat of the server");
        // Fields after the command name (which may hold spaces) in parentheses.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
            .sum();
        // USER_HZ is 100 on Linux.
        Duration::from_millis(ticks * 10)
    }

    /// Lines in the server log so far.
    pub fn log_lines(&self) -> usize {
        std::fs::read(self.dir.join("server.log"))
            .unwrap_or_default()
            .iter()
            .filter(|b| **b == b'\n')
            .count()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit by itself; returns whether it exited successfully.
    /// `None` when it is still running after `within` (for a test that it keeps running,
    /// `within` is how long it must).
    pub fn wait_exit(&mut self, within: Duration) -> Option<bool> {
        let child = self.child.as_mut()?;
        let status = poll(within, || child.try_wait().ok().flatten())?;
        self.child = None;
        Some(status.success())
    }

    /// Waits for the log to contain `needle`; returns the log.
    #[track_caller]
    pub fn wait_log(&self, needle: &str) -> String {
        self.wait_log_count(needle, 1)
    }

    /// Waits for `needle` to be in the log at least `n` times; returns the log.
    #[track_caller]
    pub fn wait_log_count(&self, needle: &str, n: usize) -> String {
        wait_until(
            PATIENCE,
            format_args!("{n} × {needle:?} in the server log"),
            || {
                let log = self.log();
                let seen = log.matches(needle).count();
                if seen >= n {
                    Ok(log)
                } else {
                    Err(format!("{seen} so far; log tail:\n{}", tail(&log, 30)))
                }
            },
        )
    }

    /// Waits until the call `call_id` is confirmed by the caller's ACK (its log line):
    /// the dialog is up and the flow runs.
    #[track_caller]
    pub fn wait_confirmed(&self, call_id: &str) {
        self.wait_log(&format!("call_id={call_id}}}: call confirmed by ACK"));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Its folder goes with it, unless the test is failing (then the log is wanted).
        if std::thread::panicking() {
            eprintln!("server files kept: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs SIPp against `server` with `args`, in a scratch directory. SIPp must be
/// installed: a missing SIPp fails the test rather than skipping it.
pub fn sipp(server: &Server, args: &[&str]) -> Output {
    let dir = scratch_dir("sipp");
    let local_port = free_port().to_string();
    let target = format!("127.0.0.1:{}", server.port);
    let out = Command::new("sipp")
        .args(args)
        .args([
            "-p",
            &local_port,
            "-i",
            "127.0.0.1",
            "-nostdin",
            "-trace_err",
            "-trace_screen",
            // Each run gets its own media port: SIPp's default (6000) clashes between tests.
            "-mp",
            &sipp_media_port().to_string(),
        ])
        .arg(&target)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("SIPp is required for this test (apt-get install -y sip-tester): {e}")
        });
    let mut report = String::from_utf8_lossy(&out.stdout).into_owned();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with("_errors.log")
            || name.ends_with("_screen.log")
            || name.ends_with("_logs.log")
        {
            report.push_str(&format!("\n--- {name}\n"));
            report.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    Output {
        status: out.status,
        stdout: report.into_bytes(),
        stderr: out.stderr,
    }
}

/// Asserts SIPp exited 0 (every call succeeded), showing its report and the server log.
pub fn assert_sipp_ok(out: &Output, server: &Server) {
    if !out.status.success() {
        let tail: String = server
            .log()
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        // The server's side first: a CI report that keeps only the start still shows it.
        panic!(
            "SIPp failed ({})\n--- server log (tail)\n{}\n--- SIPp\n{}\n{}",
            out.status,
            tail,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }
}

pub fn options_request(port: u16) -> String {
    format!(
        "OPTIONS sip:ivr@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{};rport\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:ivr@127.0.0.1>\r\nCall-ID: probe-{}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        rand_token(),
        rand_token()
    )
}

pub fn rand_token() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Sends one datagram from a fresh socket and collects every reply for `wait`.
pub fn udp_exchange(port: u16, message: &str, wait: Duration) -> Vec<String> {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.send_to(message.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    collect(&sock, wait)
}

/// Sends one datagram from a fresh socket and returns the first reply that is `wanted`
/// as soon as it comes, or `None` when none came within `within`.
pub fn udp_request(
    port: u16,
    message: &str,
    within: Duration,
    wanted: impl Fn(&str) -> bool,
) -> Option<String> {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.send_to(message.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    recv_until(&sock, within, |bytes| {
        let reply = String::from_utf8_lossy(bytes).into_owned();
        wanted(&reply).then_some(reply)
    })
}

/// Every datagram `sock` receives for `wait` (a window in which the test watches what
/// comes, or that nothing does).
pub fn collect(sock: &UdpSocket, wait: Duration) -> Vec<String> {
    let mut replies = Vec::new();
    recv_until(sock, wait, |bytes| {
        replies.push(String::from_utf8_lossy(bytes).into_owned());
        None::<()>
    });
    replies
}

/// A raw SIP caller on its own UDP socket, for tests that need exact control.
pub struct RawPeer {
    pub sock: UdpSocket,
    pub port: u16,
    pub server: u16,
    /// The one call this peer takes part in, once known: [`Self::expect`] passes over
    /// messages of any other. The kernel hands a fresh socket a recently closed port, and
    /// a server still retransmits to it what the port's last owner left unanswered (a
    /// REFER goes on for 32 s, RFC 3261 §17.1.2.2).
    pub call_id: Option<String>,
}

impl RawPeer {
    pub fn new(server: u16) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = sock.local_addr().expect("addr").port();
        Self {
            sock,
            port,
            server,
            call_id: None,
        }
    }

    pub fn send(&self, message: &str) {
        self.sock
            .send_to(message.as_bytes(), ("127.0.0.1", self.server))
            .expect("send");
    }

    /// Waits for a message whose first line starts with `prefix`.
    pub fn expect(&self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            for m in collect(&self.sock, Duration::from_millis(50)) {
                let first = m.lines().next().unwrap_or_default().to_owned();
                if self
                    .call_id
                    .as_deref()
                    .is_some_and(|id| header(&m, "Call-ID") != Some(id))
                {
                    seen.push(format!("{first} (another call's)"));
                    continue;
                }
                if m.starts_with(prefix) {
                    return m;
                }
                seen.push(first);
            }
        }
        panic!("no {prefix:?} within {within:?}; saw {seen:?}");
    }

    pub fn invite(&self, call_id: &str, branch: &str) -> String {
        format!(
            "INVITE sip:ivr@127.0.0.1:{server} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\nFrom: <sip:+46700000009@127.0.0.1:{port}>;tag=raw{branch}\r\nTo: <sip:ivr@127.0.0.1:{server}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:raw@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            server = self.server,
            port = self.port,
            len = SDP.len(),
            sdp = SDP,
        )
    }
}

pub const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n";

/// Pulls a header value out of a raw message.
pub fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// `[sip]` lines that trust this machine, as the shipped demo config does: a caller on
/// 127.0.0.1 is a verified caller.
pub const TRUST_LOOPBACK: &str = "trusted_peers = [\"127.0.0.0/8\", \"::1/128\"]\n";

/// A server running the shipped VIP flow against its own demo customer directory, trusting
/// loopback like the shipped demo (see [`start_vip_with`] to choose).
/// `edit` may change the flow text (point the lookup elsewhere, change a mode …); the
/// string `CRM` in it stands for the directory's base URL.
pub fn start_vip(name: &str, edit: impl Fn(String) -> String, calls_extra: &str) -> Server {
    start_vip_with(name, edit, TRUST_LOOPBACK, calls_extra)
}

/// As [`start_vip`], with `sip_extra` lines in `[sip]` (e.g. `trusted_peers = []`).
pub fn start_vip_with(
    name: &str,
    edit: impl Fn(String) -> String,
    sip_extra: &str,
    calls_extra: &str,
) -> Server {
    start_vip_env(name, edit, sip_extra, calls_extra, &[])
}

/// As [`start_vip_with`], with `env` set for the server process.
pub fn start_vip_env(
    name: &str,
    edit: impl Fn(String) -> String,
    sip_extra: &str,
    calls_extra: &str,
    env: &[(&str, &str)],
) -> Server {
    let root = repo_root();
    let dir = scratch_dir(&format!("{name}-flow"));
    let crm = free_port();
    // `CRM` marks the lookup's base URL for `edit`; the token variable's name holds the same
    // letters, so it is kept out of the way (lower case) while the URL goes in.
    const TOKEN_VAR: &str = "${CRM_TOKEN}";
    const TOKEN_HIDDEN: &str = "${\u{1}crm_token\u{1}}";
    let flow = std::fs::read_to_string(root.join("config/flows/vip.toml"))
        .expect("vip.toml")
        .replace("{system.directory_url}", "CRM");
    let flow = edit(flow)
        .replace(TOKEN_VAR, TOKEN_HIDDEN)
        .replace("CRM", &format!("http://127.0.0.1:{crm}"))
        .replace(TOKEN_HIDDEN, TOKEN_VAR);
    let flow_path = dir.join("vip.toml");
    std::fs::write(&flow_path, flow).expect("write flow");
    let extra = format!(
        "[demo]\ndirectory = true\ndirectory_listen = \"127.0.0.1:{crm}\"\ncustomers = \"{}\"\n\
         [prompts]\ndir = \"{}\"\n\
         [flows]\ndefault = \"{}\"\nroutes = {{ \"vip-desk\" = \"{}\", \"service-desk\" = \"{}\", \"echo-digits\" = \"{}\" }}\n{calls_extra}",
        root.join("config/customers.csv").display(),
        root.join("prompts").display(),
        flow_path.display(),
        root.join("config/flows/vip-desk.toml").display(),
        root.join("config/flows/service-desk.toml").display(),
        root.join("config/flows/echo.toml").display(),
    );
    Server::start_env(name, sip_extra, &extra, env)
}

/// The only record, once the server wrote it (records land when a call ends).
#[track_caller]
pub fn wait_record(server: &Server, call_id: &str) -> serde_json::Value {
    wait_until(PATIENCE, format_args!("the record of {call_id}"), || {
        let records = server.records();
        match records.iter().find(|r| r["call_id"] == call_id) {
            Some(r) => Ok(r.clone()),
            None => Err(format!(
                "records {records:?}\nlog tail:\n{}",
                tail(&server.log(), 40)
            )),
        }
    })
}

/// The records once at least `n` are written: a peer that has finished (SIPp exits after
/// its last 200) may be ahead of the server, which writes a record when it sees the end.
#[track_caller]
pub fn wait_records(server: &Server, n: usize) -> Vec<serde_json::Value> {
    wait_records_within(server, n, PATIENCE)
}

/// As [`wait_records`], for runs whose last calls may take longer than [`PATIENCE`] to
/// end (lost packets, retransmission timers).
#[track_caller]
pub fn wait_records_within(server: &Server, n: usize, within: Duration) -> Vec<serde_json::Value> {
    wait_until(within, format_args!("{n} call record(s)"), || {
        let records = server.records();
        if records.len() >= n {
            Ok(records)
        } else {
            Err(format!(
                "{} record(s); log tail:\n{}",
                records.len(),
                tail(&server.log(), 40)
            ))
        }
    })
}

pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The path of nodes in a record, as `node:exit` strings.
pub fn path_of(record: &serde_json::Value) -> Vec<String> {
    record["path"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            format!(
                "{}:{}",
                s["node"].as_str().unwrap_or(""),
                s["exit"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

/// A caller on raw sockets: SIP on one UDP socket, RTP on another, every byte scripted.
pub struct RawCall {
    pub sip: RawPeer,
    pub rtp: UdpSocket,
    pub call_id: String,
    pub to_tag: String,
    pub caller: String,
    seq: u32,
}

impl RawCall {
    /// Sends an INVITE from `caller` whose SDP offers `payloads` (e.g. "0 101").
    pub fn invite(server: u16, caller: &str, call_id: &str, payloads: &str) -> Self {
        Self::invite_with(server, caller, call_id, payloads, "")
    }

    /// As [`Self::invite`], with `extra` header lines (each ending in CRLF), e.g. a
    /// P-Asserted-Identity.
    pub fn invite_with(
        server: u16,
        caller: &str,
        call_id: &str,
        payloads: &str,
        extra: &str,
    ) -> Self {
        let mut sip = RawPeer::new(server);
        sip.call_id = Some(call_id.to_owned());
        let rtp = UdpSocket::bind("127.0.0.1:0").expect("rtp");
        let rtp_port = rtp.local_addr().expect("addr").port();
        let mut sdp = format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP {payloads}\r\na=rtpmap:0 PCMU/8000\r\n");
        if payloads.contains("101") {
            sdp.push_str("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n");
        }
        let invite = format!(
            "INVITE sip:ivr@127.0.0.1:{server} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK{call_id}i;rport\r\nFrom: <sip:{caller}@127.0.0.1:{p}>;tag=raw\r\nTo: <sip:ivr@127.0.0.1:{server}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:raw@127.0.0.1:{p}>\r\nMax-Forwards: 70\r\n{extra}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len(),
            p = sip.port,
        );
        sip.send(&invite);
        Self {
            sip,
            rtp,
            call_id: call_id.into(),
            to_tag: String::new(),
            caller: caller.into(),
            seq: 1,
        }
    }

    /// Waits for the 200 OK and ACKs it; returns the server's RTP address from its SDP.
    pub fn answer_and_ack(&mut self) -> std::net::SocketAddr {
        let ok = self.sip.expect("SIP/2.0 200", Duration::from_secs(10));
        let to = header(&ok, "To").expect("To");
        self.to_tag = to.split("tag=").nth(1).expect("to tag").to_owned();
        let port: u16 = ok
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|r| r.split(' ').next())
            .and_then(|p| p.parse().ok())
            .expect("m=audio port");
        self.request("ACK", 1, "", "");
        format!("127.0.0.1:{port}").parse().expect("addr")
    }

    /// Sends an in-dialog request with CSeq `seq` (or the next one for 0).
    pub fn request(&mut self, method: &str, seq: u32, extra: &str, body: &str) {
        let seq = if seq == 0 {
            self.seq += 1;
            self.seq
        } else {
            seq
        };
        let msg = format!(
            "{method} sip:concierge@127.0.0.1:{s} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK{}{method}{seq};rport\r\nFrom: <sip:{}@127.0.0.1:{p}>;tag=raw\r\nTo: <sip:ivr@127.0.0.1:{s}>;tag={}\r\nCall-ID: {}\r\nCSeq: {seq} {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            self.call_id,
            self.caller,
            self.to_tag,
            self.call_id,
            body.len(),
            s = self.sip.server,
            p = self.sip.port,
        );
        self.sip.send(&msg);
    }

    pub fn bye(&mut self) {
        self.request("BYE", 0, "", "");
    }

    /// Answers a request we received (REFER, BYE, NOTIFY) with `code`.
    pub fn reply(&self, request: &str, code: u16) {
        let mut out = format!("SIP/2.0 {code} OK\r\n");
        for l in request.lines() {
            let name = l
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if ["via", "from", "to", "call-id", "cseq"].contains(&name.as_str()) {
                out.push_str(l);
                out.push_str("\r\n");
            }
        }
        out.push_str("Content-Length: 0\r\n\r\n");
        self.sip.send(&out);
    }
}

/// The ports `concierge run` takes with the shipped config (SIP, the demo directory,
/// metrics), read from `config/concierge.toml` so the list follows the file.
pub fn demo_ports() -> Vec<u16> {
    let text = std::fs::read_to_string(repo_root().join("config/concierge.toml"))
        .expect("config/concierge.toml");
    let cfg: toml::Value = text.parse().expect("the shipped config is TOML");
    let mut ports = Vec::new();
    for (table, key) in [
        ("sip", "listen"),
        ("demo", "directory_listen"),
        ("metrics", "listen"),
        ("console", "listen"),
    ] {
        let addrs = match cfg.get(table).and_then(|t| t.get(key)) {
            Some(toml::Value::String(a)) => vec![a.clone()],
            Some(toml::Value::Array(list)) => list
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        for a in addrs {
            let port = a.rsplit(':').next().and_then(|p| p.parse().ok());
            ports.push(port.unwrap_or_else(|| panic!("[{table}] {key} = {a:?}: no port")));
        }
    }
    assert!(
        !ports.is_empty(),
        "no listen address in config/concierge.toml"
    );
    ports
}

/// The local ports of every socket process `pid` holds (UDP and TCP, IPv4 and IPv6), from
/// `/proc`: its descriptors' socket inodes looked up in `/proc/net/{udp,tcp}{,6}`.
pub fn ports_bound_by(pid: u32) -> Vec<u16> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the server's descriptors")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["udp", "udp6", "tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(inode)) = (fields.get(1), fields.get(9)) else {
                continue;
            };
            if !inodes.contains(*inode) {
                continue;
            }
            if let Some(port) = local
                .rsplit(':')
                .next()
                .and_then(|h| u16::from_str_radix(h, 16).ok())
            {
                ports.push(port);
            }
        }
    }
    ports
}

/// Fails unless process `pid` (a server a test started, listening on `own_port`) holds
/// none of the ports the demo takes: the test command must pass while `concierge run`
/// serves the demo beside it. `own_port` shows the sockets were read at all.
pub fn assert_no_demo_ports(pid: u32, own_port: u16) {
    let bound = ports_bound_by(pid);
    assert!(
        bound.contains(&own_port),
        "process {pid}: port {own_port} not among its sockets {bound:?}"
    );
    let taken: Vec<u16> = demo_ports()
        .into_iter()
        .filter(|p| bound.contains(p))
        .collect();
    assert!(
        taken.is_empty(),
        "the server holds the demo's ports {taken:?}"
    );
}

/// Runs the binary with `args` in `cwd` to completion: (succeeded, stdout + stderr).
pub fn concierge_in(cwd: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_concierge"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run concierge");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A port for SIPp's `-mp`: it binds that one for audio and the one two up for video,
/// so all four from it must be free (a free port alone lost runs to "Unable to bind
/// video RTP socket" on a busy machine).
pub fn sipp_media_port() -> u16 {
    free_rtp_range(4).0
}

/// A free even port with the next one free too, as the start of a small RTP range.
pub fn free_rtp_range(len: u16) -> (u16, u16) {
    loop {
        let p = free_port();
        let base = p - p % 2;
        if (base..base + len).all(|q| UdpSocket::bind(("127.0.0.1", q)).is_ok()) {
            return (base, base + len);
        }
    }
}

/// Sends `message` on a fresh TCP connection from `source` (any 127.0.0.0/8 address) and
/// returns what came back within `wait`, or `None` when no connection could be made.
pub fn tcp_exchange(
    port: u16,
    source: std::net::Ipv4Addr,
    message: &str,
    wait: Duration,
) -> Option<String> {
    use std::io::{Read, Write};
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    sock.bind(&std::net::SocketAddr::from((source, 0)).into())
        .ok()?;
    sock.connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)).into(),
        wait,
    )
    .ok()?;
    let mut stream: std::net::TcpStream = sock.into();
    stream.write_all(message.as_bytes()).ok()?;
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    Some(String::from_utf8_lossy(&got).into_owned())
}

/// An OPTIONS over TCP (Via says TCP) from `source`: whether it got a 200.
pub fn tcp_options_ok(port: u16, source: std::net::Ipv4Addr) -> bool {
    let msg = options_request(port).replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    tcp_exchange(port, source, &msg, Duration::from_secs(3))
        .is_some_and(|r| r.starts_with("SIP/2.0 200"))
}

/// An OPTIONS over UDP: whether it got a 200 within a few seconds.
pub fn udp_options_ok(port: u16) -> bool {
    udp_options_answered(port, Duration::from_secs(3))
}

/// An OPTIONS over UDP: whether a 200 came back within `within` (returns when it comes).
pub fn udp_options_answered(port: u16, within: Duration) -> bool {
    udp_request(port, &options_request(port), within, |r| {
        r.starts_with("SIP/2.0 200")
    })
    .is_some()
}
