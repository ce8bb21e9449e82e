//! Peers for the tests behind a proxy: SIPp runs aimed at any port with a known local
//! port and its message trace, and Kamailio started with the shipped dispatcher config.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, repo_root, scratch_dir, tail};

/// One finished SIPp run.
pub struct SippRun {
    pub ok: bool,
    /// SIPp's stdout plus its error and log files.
    pub report: String,
    /// Every message SIPp received, in order (from `-trace_msg`).
    pub received: Vec<String>,
    /// Every message SIPp sent.
    pub sent: Vec<String>,
    /// Calls that succeeded and failed (from `-trace_stat`'s last line).
    pub successful: u64,
    pub failed: u64,
}

/// Runs SIPp from `local_port` at 127.0.0.1:`target` with `args` (a scenario and keys).
pub fn sipp_from(local_port: u16, target: u16, args: &[&str]) -> SippRun {
    let dir = scratch_dir("sipp-proxy");
    let out = Command::new("sipp")
        .args(args)
        .args(["-p", &local_port.to_string(), "-i", "127.0.0.1", "-nostdin"])
        .args([
            "-trace_err",
            "-trace_msg",
            "-trace_logs",
            "-trace_stat",
            "-stf",
            "stat.csv",
        ])
        .args(["-mp", &super::sipp_media_port().to_string()])
        .arg(format!("127.0.0.1:{target}"))
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("SIPp is required for this test (apt-get install -y sip-tester): {e}")
        });
    let mut report = String::from_utf8_lossy(&out.stdout).into_owned();
    report.push_str(&String::from_utf8_lossy(&out.stderr));
    let mut messages = String::new();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        if name.ends_with("_messages.log") {
            messages = text;
        } else if name.ends_with("_errors.log") || name.ends_with("_logs.log") {
            report.push_str(&format!("\n--- {name}\n{}", tail(&text, 80)));
        }
    }
    let (successful, failed) =
        stats(&std::fs::read_to_string(dir.join("stat.csv")).unwrap_or_default());
    let (received, sent) = split_trace(&messages);
    SippRun {
        ok: out.status.success(),
        report,
        received,
        sent,
        successful,
        failed,
    }
}

/// SuccessfulCall(C) and FailedCall(C) of the last line of a `-trace_stat` file.
fn stats(csv: &str) -> (u64, u64) {
    let mut lines = csv.lines();
    let Some(head) = lines.next() else {
        return (0, 0);
    };
    let Some(last) = lines.last() else {
        return (0, 0);
    };
    let col = |name: &str| {
        let i = head.split(';').position(|h| h == name)?;
        last.split(';').nth(i)?.parse().ok()
    };
    (
        col("SuccessfulCall(C)").unwrap_or(0),
        col("FailedCall(C)").unwrap_or(0),
    )
}

/// SIPp's message trace: blocks that start with a dashed line, say `message received` or
/// `message sent`, then the message after an empty line.
fn split_trace(log: &str) -> (Vec<String>, Vec<String>) {
    let (mut received, mut sent) = (Vec::new(), Vec::new());
    for block in log.split("\n----------------------------------------------- ") {
        let Some((head, message)) = block.split_once("\n\n") else {
            continue;
        };
        let message = message.trim().replace("\r\n", "\n");
        if head.contains("message received") {
            received.push(message);
        } else if head.contains("message sent") {
            sent.push(message);
        }
    }
    (received, sent)
}

/// The values of header `name` in a traced message, one per element (commas split).
pub fn header_values(message: &str, name: &str) -> Vec<String> {
    message
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
        .flat_map(|v| {
            v.split(", ")
                .map(str::trim)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Kamailio running `deploy/kamailio/kamailio.cfg`, in its own process group; stopped
/// (with all its worker processes) when dropped.
pub struct Kamailio {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl Kamailio {
    /// Dispatches over `instances` (SIP ports on 127.0.0.1), probing every
    /// `ping_interval_s`.
    pub fn start(instances: &[u16], ping_interval_s: u32) -> Self {
        use std::os::unix::process::CommandExt;
        let dir = scratch_dir("kamailio");
        let port = free_port();
        let list = dir.join("dispatcher.list");
        let lines: String = instances
            .iter()
            .map(|p| format!("1 sip:127.0.0.1:{p}\n"))
            .collect();
        std::fs::write(&list, lines).expect("dispatcher list");
        let log = std::fs::File::create(dir.join("kamailio.log")).expect("log");
        let child = Command::new("kamailio")
            .args(["-DD", "-E", "-f"])
            .arg(repo_root().join("deploy/kamailio/kamailio.cfg"))
            .arg("-Y")
            .arg(&dir)
            .args(["-A", &format!("LISTEN=udp:127.0.0.1:{port}")])
            .args(["-A", &format!("DISPATCHER_LIST=\"{}\"", list.display())])
            .args(["-A", &format!("PING_INTERVAL={ping_interval_s}")])
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("Kamailio is required for this test (apt-get install -y kamailio): {e}")
            });
        let k = Self {
            child: Some(child),
            port,
            dir,
        };
        k.wait_ready();
        k
    }

    fn wait_ready(&self) {
        super::wait_until(super::PATIENCE, "Kamailio to answer OPTIONS", || {
            let probe = format!(
                "OPTIONS sip:127.0.0.1:{p} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{t};rport\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1:{p}>\r\nCall-ID: kprobe-{t}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                p = self.port,
                t = super::rand_token()
            );
            // Each probe gives a slow start 200 ms to answer before the next is sent.
            super::udp_request(self.port, &probe, Duration::from_millis(200), |r| {
                r.starts_with("SIP/2.0 200")
            })
            .map(drop)
            .ok_or_else(|| self.log())
        });
    }

    pub fn log(&self) -> String {
        tail(
            &std::fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default(),
            60,
        )
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            stop_group(child);
        }
    }
}

/// Stops a process started as the leader of its own group (`process_group(0)`), with
/// every worker it forked: SIGTERM to the group, up to 5 s for the leader, then SIGKILL.
pub fn stop_group(mut child: Child) {
    let group = format!("-{}", child.id());
    let kill = |signal: &str| {
        let _ = Command::new("kill")
            .args([signal, "--", &group])
            .stderr(Stdio::null())
            .status();
    };
    kill("-TERM");
    // Workers still exiting when the main process is gone go with the group below.
    let _ = super::poll(Duration::from_secs(5), || child.try_wait().ok().flatten());
    kill("-KILL");
    let _ = child.wait();
}

/// A Python with pjsua2: `CONCIERGE_PJSUA2_PYTHON`, else a venv in `target/pjsua2-venv`,
/// made (with `pip install pjsua2-python`) the first time. A missing pjsua2 fails the test.
pub fn pjsua2_python() -> PathBuf {
    if let Some(p) = std::env::var_os("CONCIERGE_PJSUA2_PYTHON") {
        return p.into();
    }
    let venv = super::repo_root().join("target/pjsua2-venv");
    let python = venv.join("bin/python");
    let works = |p: &PathBuf| {
        Command::new(p)
            .args(["-c", "import pjsua2"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !works(&python) {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "pjsua2-python"])
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            made && works(&python),
            "pjsua2 is required for this test: python3 -m venv {0} && {0}/bin/pip install pjsua2-python",
            venv.display()
        );
    }
    python
}

/// What a pjsua2 caller script reported: its one-line JSON summary (the last line of its
/// stdout), its PJSIP log, and the context a failing assertion should print.
pub struct PhoneRun {
    pub summary: serde_json::Value,
    pub pjsip_log: String,
    pub context: String,
}

/// Reads a finished pjsua2 caller run: `out` is its output, `log` its PJSIP log file,
/// `server_log` the server's log; `pjsip_tail` lines of the PJSIP log go into the context.
/// Panics with that context when the script printed no summary.
pub fn phone_run(
    out: &std::process::Output,
    log: &std::path::Path,
    server_log: &str,
    pjsip_tail: usize,
) -> PhoneRun {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pjsip_log = std::fs::read_to_string(log).unwrap_or_default();
    let context = format!(
        "stdout: {stdout}\nstderr: {}\n--- PJSIP log (tail)\n{}\n--- server log (tail)\n{}",
        String::from_utf8_lossy(&out.stderr),
        super::tail(&pjsip_log, pjsip_tail),
        super::tail(server_log, 40)
    );
    let summary = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no summary from the caller\n{context}"));
    PhoneRun {
        summary,
        pjsip_log,
        context,
    }
}
