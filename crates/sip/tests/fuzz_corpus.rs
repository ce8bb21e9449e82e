//! Replays the committed fuzz corpora and crash regressions of this crate's fuzz targets
//! (see `fuzz/replay.rs`).
#![allow(
    clippy::disallowed_methods,
    reason = "the test's base instant; the rest is virtual time"
)]

#[path = "../../../fuzz/replay.rs"]
mod replay;

use std::time::Instant;

fn run(target: &str, now: Instant, data: &[u8]) {
    match target {
        "sip_datagram" => concierge_sip::fuzzing::datagram(now, data),
        "sip_stream" => concierge_sip::fuzzing::stream(now, data),
        "digest_challenge" => concierge_sip::fuzzing::digest_challenge(data),
        other => panic!("no fuzz target {other}"),
    }
}

#[test]
fn every_corpus_and_regression_input_replays_cleanly() {
    let targets = &["sip_datagram", "sip_stream", "digest_challenge"];
    replay::replay_all(env!("CARGO_MANIFEST_DIR"), targets, Instant::now(), run);
}
