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
        "sdp_offer_answer" => concierge_media::fuzzing::sdp_offer_answer(data),
        "rtp_events" => concierge_media::fuzzing::rtp_and_telephone_events(now, data),
        "info_body" => concierge_media::fuzzing::info_body(data),
        other => panic!("no fuzz target {other}"),
    }
}

#[test]
fn every_corpus_and_regression_input_replays_cleanly() {
    let targets = &["sdp_offer_answer", "rtp_events", "info_body"];
    replay::replay_all(env!("CARGO_MANIFEST_DIR"), targets, Instant::now(), run);
}
