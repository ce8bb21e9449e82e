//! Replays committed fuzz corpora and crash regressions (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the functions the fuzz targets call. Each sans-IO
//! crate's `tests/fuzz_corpus.rs` includes this file (`#[path]`) and names its targets, so
//! the normal test command keeps every input libFuzzer ever found interesting working.

use std::path::Path;
use std::time::Instant;

/// Feeds every corpus and regression file of each target to `run(target, now, bytes)`;
/// fails when one panics, or when a target has no files at all (the corpus went missing).
/// `manifest_dir` is the calling crate's `CARGO_MANIFEST_DIR`.
pub(crate) fn replay_all(
    manifest_dir: &str,
    targets: &[&str],
    now: Instant,
    run: impl Fn(&str, Instant, &[u8]) + std::panic::RefUnwindSafe,
) {
    let fuzz = Path::new(manifest_dir).join("../../fuzz");
    for target in targets {
        let mut replayed = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("readable corpus directory").path();
                let data = match std::fs::read(&path) {
                    Ok(d) => d,
                    // A fuzzer running meanwhile replaces corpus files as it minimises.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => panic!("{}: {e}", path.display()),
                };
                let outcome = std::panic::catch_unwind(|| run(target, now, &data));
                assert!(outcome.is_ok(), "{target}: {} panics", path.display());
                replayed += 1;
            }
        }
        // The seeds alone are several files per target; none means the corpus went missing.
        assert!(replayed > 0, "{target}: no corpus under {}", fuzz.display());
    }
}
