//! Replays the committed fuzz corpora and crash regressions of this crate's fuzz targets
//! (see `fuzz/replay.rs`).
#![allow(
    clippy::disallowed_methods,
    reason = "the test's base instant; the rest is virtual time"
)]

#[path = "../../../fuzz/replay.rs"]
mod replay;

use std::time::Instant;

fn run(target: &str, _now: Instant, data: &[u8]) {
    match target {
        "flow_toml" => concierge_flow::fuzzing::flow_toml(data),
        other => panic!("no fuzz target {other}"),
    }
}

#[test]
fn every_corpus_and_regression_input_replays_cleanly() {
    let targets = &["flow_toml"];
    replay::replay_all(env!("CARGO_MANIFEST_DIR"), targets, Instant::now(), run);
}
