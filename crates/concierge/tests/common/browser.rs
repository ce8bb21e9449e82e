//! A real browser for the web pages under test: headless Chromium (Debian `chromium`),
//! driven over the DevTools protocol on its WebSocket, on loopback.
//!
//! `--dump-dom` cannot read a page that keeps a Server-Sent Events stream open (its
//! virtual time never runs out), so a test opens a page, then asks it — by evaluating
//! JavaScript — until what it waits for is there, within a bound that only stops a broken
//! run from hanging (no test asserts how long it took). A screenshot can be kept, e.g. as
//! the artefact of a failing test.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// One headless Chromium with one page; killed (and its profile removed) when dropped.
pub struct Browser {
    child: Child,
    socket: WebSocket<TcpStream>,
    session: String,
    next_id: u64,
    /// Where failure screenshots go (the test's scratch directory, kept when it fails).
    pub dir: PathBuf,
}

impl Browser {
    /// Starts Chromium (required: `apt-get install -y chromium`) with a fresh profile in
    /// `dir` and opens one blank page of `width`×`height`.
    pub fn launch(dir: &Path, width: u32, height: u32) -> Self {
        let profile = dir.join("chromium-profile");
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.display()),
                "about:blank",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("Chromium is required for this test (apt-get install -y chromium): {e}")
            });
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID" on stderr.
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("Chromium printed its DevTools address");
        let host = url
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .expect("a ws:// address");
        let stream = TcpStream::connect(host).expect("connect to DevTools");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let (socket, _) = tungstenite::client(url.as_str(), stream).expect("DevTools handshake");
        let mut browser = Self {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            dir: dir.to_path_buf(),
        };
        let target = browser.call(None, "Target.createTarget", json!({ "url": "about:blank" }));
        let target = target["targetId"].as_str().expect("a target").to_owned();
        let attached = browser.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target, "flatten": true }),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session")
            .to_owned();
        browser.page("Page.enable", json!({}));
        browser.resize(width, height);
        browser
    }

    /// Makes the page `width`×`height` (CSS pixels, as a screenshot's).
    pub fn resize(&mut self, width: u32, height: u32) {
        self.page(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        );
    }

    /// One DevTools command (on the page's session when `session` is given); its result.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .expect("send to DevTools");
        loop {
            let reply = self.socket.read().expect("read from DevTools");
            let Message::Text(text) = reply else { continue };
            let value: Value = serde_json::from_str(&text).expect("DevTools JSON");
            if value["id"] == id {
                assert!(value.get("error").is_none(), "{method}: {value}");
                return value["result"].clone();
            }
        }
    }

    fn page(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.call(Some(&session), method, params)
    }

    /// Opens `url` in the page.
    pub fn goto(&mut self, url: &str) {
        self.page("Page.navigate", json!({ "url": url }));
    }

    /// Evaluates `expression` in the page (promises awaited); its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.page(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        r["result"]["value"].clone()
    }

    /// The page's visible text.
    pub fn text(&mut self) -> String {
        self.eval("document.body ? document.body.innerText : ''")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until `expression` is true in the page; `Err` with the page's text when it
    /// is not within `bound` (a bound against a hung run, not a timing requirement).
    pub fn wait_for(&mut self, expression: &str, bound: Duration) -> Result<(), String> {
        let check = format!("Boolean({expression})");
        match super::poll(bound, || (self.eval(&check) == json!(true)).then_some(())) {
            Some(()) => Ok(()),
            None => Err(self.text()),
        }
    }

    /// Waits until the page's text contains every one of `needles`; `Err` as
    /// [`Self::wait_for`].
    pub fn wait_for_text(&mut self, needles: &[&str], bound: Duration) -> Result<(), String> {
        let checks: Vec<String> = needles
            .iter()
            .map(|n| format!("document.body.innerText.includes({})", json!(n)))
            .collect();
        self.wait_for(&format!("document.body && {}", checks.join(" && ")), bound)
    }

    /// A PNG of the page as it is now, written to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.page("Page.captureScreenshot", json!({ "format": "png" }));
        let data = shot["data"].as_str().expect("PNG data");
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64 PNG");
        std::fs::write(path, png).expect("write the screenshot");
    }

    /// Fails the test with `what` and the page's text, keeping a screenshot beside the
    /// test's other files (its scratch directory is kept when it fails).
    pub fn fail(&mut self, what: &str, text: &str) -> ! {
        let shot = self.dir.join("failure.png");
        self.screenshot(&shot);
        panic!("{what}\nscreenshot: {}\npage text:\n{text}", shot.display());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.socket.close(None);
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(self.dir.join("chromium-profile"));
    }
}
