//! Waiting for what a test can observe — a log line, a call record, a metric, a packet, a
//! peer's event — instead of for a stretch of time: look at it again and again until it
//! holds or a deadline passes, then fail with what was last seen.
//!
//! The deadlines are generous (CI is a loaded two-core machine); a wait costs only as long
//! as the event takes, because the interval between looks is short.

use std::fmt::Display;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// How often a wait looks again.
pub const POLL: Duration = Duration::from_millis(20);

/// The deadline for what normally takes well under a second (a log line, a record, a
/// gauge moving): it only bounds how long a failing test takes to say so.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Looks at `probe` every [`POLL`] until it gives `Some`, for at most `within`; `None` once
/// the time is up (one last look is taken at the deadline). For waits whose running out is
/// itself the answer (a process that must *not* exit) and for `Drop`, which must not fail.
pub fn poll<T>(within: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        // The interval between two looks at the observed state: the one sleep that every
        // polling wait in the suite is built on.
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// Waits until `probe` gives `Ok`, and returns its value. `Err` says what the probe sees
/// instead (a record count, a log tail, a metric's value); when `within` passes, the test
/// fails naming `what` it waited for and the last thing seen.
#[track_caller]
pub fn wait_until<T, S: Display>(
    within: Duration,
    what: impl Display,
    mut probe: impl FnMut() -> Result<T, S>,
) -> T {
    let mut last = None;
    let found = poll(within, || match probe() {
        Ok(value) => Some(value),
        Err(seen) => {
            last = Some(seen);
            None
        }
    });
    match found {
        Some(value) => value,
        None => panic!(
            "waited {within:?} for {what}; last seen:\n{}",
            last.map(|s| s.to_string()).unwrap_or_default()
        ),
    }
}

/// Reads datagrams from `sock` as they come, for at most `within`, until `wanted` takes
/// one (it sees each one's bytes); `None` when none was taken in time. Blocking reads,
/// no polling: it returns the moment the datagram it waits for arrives.
pub fn recv_until<T>(
    sock: &UdpSocket,
    within: Duration,
    mut wanted: impl FnMut(&[u8]) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 65_536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        sock.set_read_timeout(Some(left)).expect("read timeout");
        // An error is the timeout, or an ICMP error from an earlier send: look again.
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            if let Some(value) = wanted(&buf[..n]) {
                return Some(value);
            }
        }
    }
}
