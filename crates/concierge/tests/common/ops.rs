//! The operator's side of the server under test: its HTTP listener (`/metrics`,
//! `/healthz`, `/-/reload`), promtool, and a tiny HTTP receiver standing in for a webhook.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{wait_until, PATIENCE};

/// One HTTP/1.1 request to 127.0.0.1:`port`; the status and the body.
pub fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTP listener");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("HTTP response");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    // axum answers small bodies with Content-Length; chunked would show sizes here.
    (status, body.to_owned())
}

/// `GET /metrics` (the classic text format, as promtool and curl get it).
pub fn scrape(port: u16) -> String {
    let (status, body) = http(port, "GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of one series, e.g. `concierge_calls_total{flow="vip",outcome="hung_up",node="x"}`,
/// or `None` when the page does not have it.
pub fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|l| {
        let v = l.strip_prefix(series)?.strip_prefix(' ')?;
        v.trim().parse().ok()
    })
}

/// The sum of every series of a metric name (all label values).
pub fn metric_sum(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `promtool check metrics` accepts `page` (format and naming conventions).
pub fn promtool_check(page: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is required (Debian package prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{page}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `[metrics]` lines for a listener on 127.0.0.1:`port`.
pub fn metrics_on(port: u16) -> String {
    format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n")
}

/// Waits until `series` on the `/metrics` page at `port` has a value `want` accepts, and
/// returns it; a timeout shows the last value seen.
#[track_caller]
pub fn wait_metric(port: u16, series: &str, want: impl Fn(f64) -> bool) -> f64 {
    wait_until(
        PATIENCE,
        format_args!("{series} on /metrics"),
        || match metric(&scrape(port), series) {
            Some(v) if want(v) => Ok(v),
            other => Err(format!("{series} = {other:?}")),
        },
    )
}

/// A webhook receiver on 127.0.0.1:`port`: answers every request `status` and keeps the
/// bodies of POSTs. Stops accepting when dropped.
pub struct Receiver {
    pub bodies: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    pub port: u16,
}

impl Receiver {
    pub fn start(port: u16, status: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the receiver");
        let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let (b, st) = (bodies.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                // Dropping the receiver sets `stop` and wakes this accept with a connection.
                if st.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let b = b.clone();
                std::thread::spawn(move || serve(stream, status, &b));
            }
        });
        Self { bodies, stop, port }
    }

    pub fn received(&self) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| serde_json::from_str(b).expect("each POST is one JSON record"))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Reads requests (keep-alive: several per connection) and answers each.
fn serve(stream: TcpStream, status: u16, bodies: &Mutex<Vec<String>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let post = line.starts_with("POST");
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if post && (200..300).contains(&status) {
            bodies
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
        }
        let _ = write!(writer, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
    }
}
