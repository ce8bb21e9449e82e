//! A real registrar for the trunk tests (issue 23): Kamailio running
//! `tests/kamailio/registrar.cfg` on free loopback ports with one user and password, in its
//! own process group (stopped with all its workers when dropped); its location table read
//! with `kamcmd ul.dump` over a control socket in the test's scratch directory.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, rand_token, repo_root, scratch_dir, tail, udp_exchange};

/// How the registrar is set up; [`Default`] is one user `acct-17`, MD5, 10 s to 3600 s.
#[derive(Debug, Clone)]
pub struct RegistrarOptions {
    /// The one Digest username.
    pub user: String,
    /// Its password.
    pub password: String,
    /// The Digest realm.
    pub realm: String,
    /// `MD5` or `SHA-256`.
    pub algorithm: String,
    /// Shorter registrations get 423 with this Min-Expires.
    pub min_expires: u32,
    /// Longer ones are granted this.
    pub max_expires: u32,
    /// A Service-Route value for every 200.
    pub service_route: Option<String>,
    /// Put a Path to itself on each REGISTER, as an edge proxy would.
    pub with_path: bool,
    /// Relay INVITEs for numbers no one registered — calls out through the trunk — to
    /// this port on 127.0.0.1, after challenging them (407) for the user's password.
    pub outbound_uas: Option<u16>,
    /// Listen on TCP too, on the same port.
    pub tcp: bool,
}

impl Default for RegistrarOptions {
    fn default() -> Self {
        Self {
            user: "acct-17".into(),
            password: format!("pw-{}", rand_token()),
            realm: "registrar.test".into(),
            algorithm: "MD5".into(),
            min_expires: 10,
            max_expires: 3600,
            service_route: None,
            with_path: false,
            outbound_uas: None,
            tcp: false,
        }
    }
}

/// One contact bound in the location table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The address-of-record's user (Kamailio keeps AoRs without their domain here).
    pub aor: String,
    /// The contact URI.
    pub contact: String,
    /// Seconds left, as `ul.dump` says.
    pub expires: Option<i64>,
    /// The stored Path, if any.
    pub path: Option<String>,
}

/// The registrar under test.
pub struct Registrar {
    child: Option<Child>,
    /// Its SIP port (UDP) on 127.0.0.1.
    pub port: u16,
    /// The user and password it accepts.
    pub options: RegistrarOptions,
    dir: PathBuf,
    ctl: PathBuf,
}

impl Registrar {
    /// Starts it and waits until it answers OPTIONS.
    pub fn start(options: RegistrarOptions) -> Self {
        use std::os::unix::process::CommandExt;
        let dir = scratch_dir("registrar");
        let port = free_port();
        let ctl = dir.join("ctl");
        let log = std::fs::File::create(dir.join("kamailio.log")).expect("log");
        let mut cmd = Command::new("kamailio");
        cmd.args(["-DD", "-E", "-f"])
            .arg(repo_root().join("tests/kamailio/registrar.cfg"))
            .arg("-Y")
            .arg(&dir)
            .args(["-A", &format!("LISTEN=udp:127.0.0.1:{port}")])
            .args(["-A", &format!("CTL_SOCKET=\"unix:{}\"", ctl.display())])
            .args(["-A", &format!("AUTH_USER=\"{}\"", options.user)])
            .args(["-A", &format!("AUTH_PASSWORD=\"{}\"", options.password)])
            .args(["-A", &format!("REALM=\"{}\"", options.realm)])
            .args(["-A", &format!("DIGEST_ALGORITHM=\"{}\"", options.algorithm)])
            .args(["-A", &format!("MIN_EXPIRES={}", options.min_expires)])
            .args(["-A", &format!("MAX_EXPIRES={}", options.max_expires)]);
        if let Some(route) = &options.service_route {
            cmd.args(["-A", &format!("SERVICE_ROUTE=\"{route}\"")]);
        }
        if options.with_path {
            cmd.args(["-A", "WITH_PATH"]);
        }
        if options.tcp {
            cmd.args(["-A", &format!("LISTEN_TCP=tcp:127.0.0.1:{port}")]);
        }
        if let Some(port) = options.outbound_uas {
            cmd.args(["-A", &format!("OUTBOUND_UAS=\"sip:127.0.0.1:{port}\"")]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("Kamailio is required for this test (apt-get install -y kamailio): {e}")
            });
        let registrar = Self {
            child: Some(child),
            port,
            options,
            dir,
            ctl,
        };
        registrar.wait_ready();
        registrar
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let probe = format!(
                "OPTIONS sip:127.0.0.1:{p} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{t};rport\r\nFrom: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1:{p}>\r\nCall-ID: rprobe-{t}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                p = self.port,
                t = rand_token()
            );
            let replies = udp_exchange(self.port, &probe, Duration::from_millis(200));
            if replies.iter().any(|r| r.starts_with("SIP/2.0 200")) {
                return;
            }
        }
        panic!(
            "the registrar did not answer OPTIONS within 15 s; log:\n{}",
            self.log()
        );
    }

    /// The location table now (`kamcmd ul.dump`).
    pub fn bindings(&self) -> Vec<Binding> {
        let out = Command::new("kamcmd")
            .arg("-s")
            .arg(format!("unix:{}", self.ctl.display()))
            .arg("ul.dump")
            .output()
            .expect("kamcmd (Debian's kamailio package) runs");
        parse_ul_dump(&String::from_utf8_lossy(&out.stdout))
    }

    /// Polls the location table until `done` holds (or `within` passes): the last table.
    pub fn wait_for(&self, within: Duration, done: impl Fn(&[Binding]) -> bool) -> Vec<Binding> {
        super::poll(within, || Some(self.bindings()).filter(|t| done(t)))
            .unwrap_or_else(|| self.bindings())
    }

    /// The last lines of its log.
    pub fn log(&self) -> String {
        tail(&self.full_log(), 60)
    }

    /// Its whole log (stderr): `registered … contact … expires N` per 2xx.
    pub fn full_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default()
    }
}

/// `ul.dump`'s nested `Name: value` text, one [`Binding`] per `Contact:` block.
fn parse_ul_dump(text: &str) -> Vec<Binding> {
    let mut out = Vec::new();
    let mut aor = String::new();
    for line in text.lines().map(str::trim) {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "AoR" => aor = value.to_owned(),
            "Address" => out.push(Binding {
                aor: aor.clone(),
                contact: value.to_owned(),
                expires: None,
                path: None,
            }),
            "Expires" => {
                if let Some(b) = out.last_mut() {
                    b.expires = value.parse().ok();
                }
            }
            "Path" if value != "[not set]" => {
                if let Some(b) = out.last_mut() {
                    b.path = Some(value.to_owned());
                }
            }
            _ => {}
        }
    }
    out
}

impl Drop for Registrar {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            super::proxy::stop_group(child);
        }
    }
}

/// SIPp playing a registrar for one corner case (`tests/sipp/registrar_*.xml`), running in
/// the background on a free port until its one call ends.
pub struct SippRegistrar {
    child: Option<Child>,
    /// Its SIP port (UDP) on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
}

impl SippRegistrar {
    /// Starts `scenario` (a file name under `tests/sipp/`) with `-key` pairs.
    pub fn start(scenario: &str, keys: &[(&str, &str)]) -> Self {
        Self::start_on("127.0.0.1", scenario, keys)
    }

    /// As [`Self::start`], listening on `ip` (`::1` for IPv6).
    pub fn start_on(ip: &str, scenario: &str, keys: &[(&str, &str)]) -> Self {
        let dir = scratch_dir("sipp-registrar");
        let port = free_port();
        let mut cmd = Command::new("sipp");
        cmd.args(["-sf", &super::scenario(scenario)])
            .args(["-m", "1", "-timeout", "60", "-timeout_error", "-nostdin"])
            .args(["-p", &port.to_string(), "-i", ip])
            .args(["-trace_msg", "-trace_err"]);
        for (k, v) in keys {
            cmd.args(["-key", k, v]);
        }
        let child = cmd
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("SIPp is required for this test (apt-get install -y sip-tester): {e}")
            });
        // Our registration must not go out before SIPp listens.
        let pid = child.id();
        super::wait_until(
            Duration::from_secs(10),
            format_args!("SIPp to bind UDP {port}"),
            || match super::ports_bound_by(pid) {
                bound if bound.contains(&port) => Ok(()),
                bound => Err(format!("{bound:?}")),
            },
        );
        Self {
            child: Some(child),
            port,
            dir,
        }
    }

    /// Waits (at most `within`) for the scenario to end: whether its call succeeded, and
    /// its message trace and errors for a failure message.
    pub fn finish(mut self, within: Duration) -> (bool, String) {
        let mut child = self.child.take().expect("running");
        let status = super::poll(within, || child.try_wait().ok().flatten());
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let mut report = format!("SIPp registrar exit: {status:?}");
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            report.push_str(&format!(
                "\n--- {}\n{}",
                entry.file_name().to_string_lossy(),
                tail(&text, 80)
            ));
        }
        (status.is_some_and(|s| s.success()), report)
    }
}

impl Drop for SippRegistrar {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
