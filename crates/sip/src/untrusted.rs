//! Peer text on its way into a log line, and a budget for how many such lines there are.
//!
//! Anything a peer sent — a start line, a Call-ID, a parse error that quotes them — can be
//! 60 KB long, hold newlines that forge extra log lines, or terminal escape sequences.
//! [`Untrusted`] writes at most [`MAX_LOGGED_CHARS`] characters of it with every control
//! character escaped. [`LogLimiter`] bounds the lines about bad input to a few per interval
//! plus one summary line, so a flood of garbage costs a bounded number of log lines.
//! Both are sans-IO: the limiter takes the time as an argument like everything else here.

use std::fmt::{self, Display, Write};
use std::time::{Duration, Instant};

/// How many characters of peer text a log field keeps.
pub const MAX_LOGGED_CHARS: usize = 200;

/// Peer-supplied text for a log field: truncated to [`MAX_LOGGED_CHARS`] characters, with
/// control characters (CR, LF, ESC, DEL, C1 …) and backslashes escaped, so one field is one
/// bounded, printable line whatever the peer sent.
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<T>(pub T);

/// Raw peer bytes for a log field; invalid UTF-8 is shown as `\xNN`.
#[derive(Debug, Clone, Copy)]
pub struct UntrustedBytes<'a>(pub &'a [u8]);

impl<T: Display> Display for Untrusted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Escaper::new(f);
        // The inner value may be long; the escaper drops what is over the limit.
        let _ = write!(out, "{}", self.0);
        out.finish()
    }
}

impl Display for UntrustedBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Escaper::new(f);
        for chunk in self.0.utf8_chunks() {
            let _ = out.write_str(chunk.valid());
            for b in chunk.invalid() {
                let _ = out.escaped(&format!("\\x{b:02x}"));
            }
        }
        out.finish()
    }
}

/// Writes escaped characters up to the limit, then counts what it dropped.
struct Escaper<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
    written: usize,
    dropped: usize,
    error: Option<fmt::Error>,
}

impl<'a, 'b> Escaper<'a, 'b> {
    fn new(f: &'a mut fmt::Formatter<'b>) -> Self {
        Self {
            f,
            written: 0,
            dropped: 0,
            error: None,
        }
    }

    fn full(&self) -> bool {
        self.written >= MAX_LOGGED_CHARS
    }

    /// One character's escape sequence, counted as one character.
    fn escaped(&mut self, text: &str) -> fmt::Result {
        if self.full() {
            self.dropped += 1;
            return Ok(());
        }
        self.written += 1;
        if let Err(e) = self.f.write_str(text) {
            self.error = Some(e);
        }
        Ok(())
    }

    fn finish(self) -> fmt::Result {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.dropped > 0 {
            write!(self.f, "…[{} more chars]", self.dropped)?;
        }
        Ok(())
    }
}

impl Write for Escaper<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.full() {
                self.dropped += 1;
                continue;
            }
            match c {
                '\\' => self.escaped("\\\\")?,
                '\n' => self.escaped("\\n")?,
                '\r' => self.escaped("\\r")?,
                '\t' => self.escaped("\\t")?,
                // C0, DEL and C1 controls, and the Unicode line/paragraph separators some
                // log viewers break lines at.
                c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                    self.escaped(&c.escape_unicode().to_string())?
                }
                c => {
                    self.written += 1;
                    if let Err(e) = self.f.write_char(c) {
                        self.error = Some(e);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A budget for log lines about bad input: the first [`LogLimiter::burst`] occurrences
/// of each interval are logged one by one; the rest are only counted, and when the
/// interval ends [`LogLimiter::poll_summary`] returns how many there were in all.
#[derive(Debug, Clone)]
pub struct LogLimiter {
    interval: Duration,
    burst: u32,
    window: Option<Window>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    seen: u64,
    logged: u32,
}

/// What the window just ended held, when some of it was not logged line by line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Occurrences in the interval, logged or not.
    pub seen: u64,
    /// How many of them got no line of their own.
    pub suppressed: u64,
    /// The interval's length, for the summary line.
    pub interval: Duration,
}

impl LogLimiter {
    /// Logs up to `burst` occurrences per `interval` one by one.
    pub fn new(interval: Duration, burst: u32) -> Self {
        Self {
            interval,
            burst,
            window: None,
        }
    }

    /// The number of lines per interval before counting takes over.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Counts one occurrence at `now`; `true` when it gets a line of its own. Call
    /// [`Self::poll_summary`] first so an ended window is summarised before a new one starts.
    pub fn admit(&mut self, now: Instant) -> bool {
        let w = self.window.get_or_insert(Window {
            started: now,
            seen: 0,
            logged: 0,
        });
        w.seen += 1;
        if w.logged < self.burst {
            w.logged += 1;
            true
        } else {
            false
        }
    }

    /// Ends the window when its interval is over; the summary when it held occurrences
    /// that were not logged one by one.
    pub fn poll_summary(&mut self, now: Instant) -> Option<Summary> {
        let w = self.window?;
        if now < w.started + self.interval {
            return None;
        }
        self.window = None;
        let suppressed = w.seen - u64::from(w.logged);
        (suppressed > 0).then_some(Summary {
            seen: w.seen,
            suppressed,
            interval: self.interval,
        })
    }

    /// When the current window ends, if it has something to summarise.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.window
            .filter(|w| w.seen > u64::from(w.logged))
            .map(|w| w.started + self.interval)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "a test's base instant")]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let s = Untrusted("a\r\nVia: forged\x1b[31m\x7f\u{85}\u{2028}\\").to_string();
        assert_eq!(
            s,
            "a\\r\\nVia: forged\\u{1b}[31m\\u{7f}\\u{85}\\u{2028}\\\\"
        );
        assert!(!s.chars().any(char::is_control));
    }

    #[test]
    fn long_text_is_cut_at_the_limit_and_says_how_much_went() {
        let long = "é".repeat(1000);
        let s = Untrusted(&long).to_string();
        assert!(s.starts_with(&"é".repeat(MAX_LOGGED_CHARS)));
        assert!(s.ends_with("…[800 more chars]"), "{s}");
        let newlines = "\n".repeat(500);
        let s = Untrusted(&newlines).to_string();
        assert_eq!(s, format!("{}…[300 more chars]", "\\n".repeat(200)));
    }

    #[test]
    fn short_text_is_unchanged() {
        assert_eq!(
            Untrusted("sip:+46706170786@a.example").to_string(),
            "sip:+46706170786@a.example"
        );
        assert_eq!(Untrusted(42).to_string(), "42");
    }

    #[test]
    fn invalid_utf8_bytes_are_shown_as_hex() {
        assert_eq!(
            UntrustedBytes(b"SIP\xc3/2.0\r\n\xff").to_string(),
            "SIP\\xc3/2.0\\r\\n\\xff"
        );
        let s = UntrustedBytes(&[0xffu8; 300]).to_string();
        assert!(s.ends_with("…[100 more chars]"), "{s}");
    }

    #[test]
    fn limiter_logs_a_burst_then_summarises_the_interval() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(Duration::from_secs(10), 3);
        let logged: Vec<bool> = (0..5).map(|_| l.admit(t0)).collect();
        assert_eq!(logged, [true, true, true, false, false]);
        assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        assert_eq!(l.poll_summary(t0 + Duration::from_secs(9)), None);
        assert_eq!(
            l.poll_summary(t0 + Duration::from_secs(10)),
            Some(Summary {
                seen: 5,
                suppressed: 2,
                interval: Duration::from_secs(10)
            })
        );
        // A new interval: a new burst, and nothing to summarise while within it.
        assert!(l.admit(t0 + Duration::from_secs(11)));
        assert_eq!(l.poll_timeout(), None);
        assert_eq!(l.poll_summary(t0 + Duration::from_secs(30)), None);
    }
}
