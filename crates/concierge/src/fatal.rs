//! What happens when something panics: the process logs it and exits at once.
//!
//! Without this a panic in a tokio task kills only that task. When the task is the shard
//! the process stays up but deaf — it answers nothing, and no supervisor restarts it
//! because it never exits. A panic is a broken invariant (peer input never panics, see
//! the house style), so the only safe reaction is to stop the whole process with a status
//! systemd or docker see as a failure, after writing where and why.

use std::panic::PanicHookInfo;

use tracing::error;

/// The exit status after a panic (the one Rust's own runtime uses for a panicking main).
pub(crate) const PANIC_EXIT_STATUS: i32 = 101;

/// Makes every panic, on any thread or task, log its message and location and end the
/// process with [`PANIC_EXIT_STATUS`].
pub(crate) fn exit_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let (message, location) = describe(info);
        // Both: the log may go to a collector, stderr reaches the journal even when the
        // subscriber is the thing that broke.
        error!(%location, panic = %message, "panic: the process exits");
        eprintln!("concierge: panic at {location}: {message}; exiting");
        std::process::exit(PANIC_EXIT_STATUS);
    }));
}

fn describe(info: &PanicHookInfo<'_>) -> (String, String) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned());
    let location = info
        .location()
        .map_or_else(|| "an unknown place".to_owned(), ToString::to_string);
    (message, location)
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::{Duration, Instant};

    use super::*;

    const CHILD: &str = "CONCIERGE_FATAL_TEST_CHILD";

    /// Runs in a child process (the test binary re-executed): installs the hook, panics in
    /// a spawned task as a failing shard would, and would hang if the hook did not exit.
    #[test]
    fn child_panics_in_a_task() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        exit_on_panic();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let shard = tokio::spawn(async { panic!("shard invariant broken") });
            let _ = shard.await;
            // Up but deaf: what happened before the hook existed.
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
    }

    #[test]
    fn a_panic_in_a_task_ends_the_process_with_its_message() {
        let started = Instant::now();
        let out = Command::new(std::env::current_exe().expect("test binary path"))
            .args([
                "--exact",
                "fatal::tests::child_panics_in_a_task",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .expect("child runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(PANIC_EXIT_STATUS), "{stderr}");
        assert!(stderr.contains("shard invariant broken"), "{stderr}");
        assert!(stderr.contains("src/fatal.rs"), "{stderr}");
        // It exits at the panic, not after the 60 s the deaf process would sit there.
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}
