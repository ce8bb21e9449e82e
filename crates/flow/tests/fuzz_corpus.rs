//! Replays the committed fuzz corpora and crash regressions (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the same functions the fuzz targets call, so
//! the normal test command keeps every input libFuzzer ever found interesting working.
#![allow(
    clippy::disallowed_methods,
    reason = "the test's base instant and the committed corpus files; the rest is virtual time"
)]

use std::path::PathBuf;
use std::time::Instant;

const TARGETS: &[&str] = &["flow_toml"];

fn run(target: &str, _now: Instant, data: &[u8]) {
    match target {
        "flow_toml" => concierge_flow::fuzzing::flow_toml(data),
        other => panic!("no fuzz target {other}"),
    }
}

#[test]
fn every_corpus_and_regression_input_replays_cleanly() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let now = Instant::now();
    for target in TARGETS {
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
