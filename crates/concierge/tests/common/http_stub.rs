//! A tiny HTTP/1.1 server on 127.0.0.1 for tests that need a CRM or a token endpoint that
//! misbehaves on cue: slow, down, demanding a bearer token. One thread per connection,
//! `Connection: close`, every request recorded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::poll;

/// A request as the stub saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: Instant,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The answer: status, JSON body, and how long to wait before sending it.
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

pub struct Stub {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Replies sent, with when the last byte left.
    pub answered: Arc<Mutex<Vec<Instant>>>,
    stopped: Arc<AtomicBool>,
}

impl Stub {
    pub fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stub");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answered = Arc::new(Mutex::new(Vec::new()));
        let stopped = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (s, a, st) = (seen.clone(), answered.clone(), stopped.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break; // dropping the listener refuses further connections
                }
                let Ok(conn) = conn else { continue };
                let (s, a, h) = (s.clone(), a.clone(), handler.clone());
                std::thread::spawn(move || serve(conn, &s, &a, &*h));
            }
        });
        Self {
            port,
            seen,
            answered,
            stopped,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Stops listening: the next connection is refused (one last connection wakes the
    /// accept loop so that it drops the listener). Returns once connections are refused.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        // Not a failure when it takes longer (this runs on drop too): a test that needs
        // the CRM down sees it in what the server records.
        let _ = poll(Duration::from_secs(2), || {
            TcpStream::connect(("127.0.0.1", self.port))
                .is_err()
                .then_some(())
        });
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(conn: TcpStream, seen: &Mutex<Vec<Seen>>, answered: &Mutex<Vec<Instant>>, h: &Handler) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        if reader.read_line(&mut l).unwrap_or(0) == 0 || l.trim().is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len.min(1 << 16)];
    let _ = reader.read_exact(&mut body);
    let req = Seen {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    };
    seen.lock().unwrap().push(req.clone());
    let reply = h(&req);
    // A slow server is what the test asked for: the delay is the behaviour under test.
    std::thread::sleep(reply.delay);
    let mut conn = conn;
    let text = format!(
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        reply.status,
        reply.body.len(),
        reply.body
    );
    let _ = conn.write_all(text.as_bytes());
    let _ = conn.flush();
    answered.lock().unwrap().push(Instant::now());
}
