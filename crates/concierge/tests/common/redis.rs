//! A real `redis-server` (Debian's `redis-server` package) for one test: on a free
//! loopback port, no persistence, in the foreground so the test owns its pid; killed
//! (and its directory removed) when dropped. Standard library only, so the server's own
//! unit tests include this file too (`src/shared/tests.rs`).
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts one and waits until it answers PING. Fails the test when redis-server is
    /// missing (`apt-get install -y redis-server`; `.ci/run` installs it).
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// As [`Self::start`], on `port` (one a client was already pointed at).
    pub fn start_on(port: u16) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "concierge-test-redis-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut server = Self {
            child: None,
            port,
            dir,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server is required (apt-get install -y redis-server): {e}")
            });
        // Its log says when it listens; the reader drains the log for the server's whole
        // life, so a full pipe can never stall it.
        let log = child.stdout.take().expect("piped stdout");
        let (ready_tx, ready) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(log)).map_while(Result::ok)
            {
                if line.contains("Ready to accept connections") {
                    let _ = ready_tx.send(());
                }
            }
        });
        self.child = Some(child);
        if ready.recv_timeout(Duration::from_secs(10)).is_err() {
            panic!("redis-server on {} did not start listening", self.port);
        }
        assert_eq!(self.command("PING").as_deref(), Some("+PONG"));
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// An outage with no goodbye: SIGKILL, reaped.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty: nothing was persisted).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// One inline command's first reply line (`+PONG`, `:3`, `$5` …), or `None` when the
    /// server does not answer.
    pub fn command(&self, line: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(format!("{line}\r\n").as_bytes()).ok()?;
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        text.lines().next().map(str::to_owned)
    }

    /// Every key and everything stored under it (strings, hash fields and values, set
    /// and sorted-set members), as `redis-cli` prints them: what a test scans for secrets.
    pub fn dump(&self) -> Vec<(String, String)> {
        let keys = self.cli(&["--scan"]);
        keys.lines()
            .filter(|k| !k.is_empty())
            .map(|key| {
                let kind = self.cli(&["TYPE", key]);
                let content = match kind.trim() {
                    "string" => self.cli(&["GET", key]),
                    "hash" => self.cli(&["HGETALL", key]),
                    "set" => self.cli(&["SMEMBERS", key]),
                    "zset" => self.cli(&["ZRANGE", key, "0", "-1", "WITHSCORES"]),
                    "list" => self.cli(&["LRANGE", key, "0", "-1"]),
                    other => format!("<{other}>"),
                };
                (key.to_owned(), content)
            })
            .collect()
    }

    /// `redis-cli -p PORT ARGS…`'s output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli (package redis-tools, installed with redis-server)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A loopback TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("addr").port()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
