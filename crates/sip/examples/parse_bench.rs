//! Parse benchmark and verdict dump for the SIP codec.
//!
//! Parses every message of the RFC 4475 torture set (`crates/sip/tests/torture/`) and of
//! the datagram fuzz corpus and regressions (`fuzz/corpus/sip_datagram/`,
//! `fuzz/regressions/sip_datagram/`) many times and prints the time per message. With
//! `--verdicts` it prints instead one line per input: its name and what the parser made of
//! it (the parsed message's fields, or the error), so two codecs can be compared
//! with `diff`.
//!
//! ```text
//! cargo run --release -p concierge-sip --example parse_bench            # timing
//! cargo run --release -p concierge-sip --example parse_bench -- --verdicts > verdicts.txt
//! ```
#![allow(clippy::disallowed_methods, reason = "a benchmark measures real time")]

use std::path::{Path, PathBuf};
use std::time::Instant;

use concierge_sip::wire::parse_datagram;

/// Every input file, sorted by path so two runs list them in the same order.
fn inputs() -> Vec<(String, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dirs = [
        root.join("tests/torture/valid"),
        root.join("tests/torture/invalid"),
        root.join("../../fuzz/corpus/sip_datagram"),
        root.join("../../fuzz/regressions/sip_datagram"),
    ];
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if let Ok(data) = std::fs::read(&p) {
                out.push((name(&dir, &p), data));
            }
        }
    }
    out
}

fn name(dir: &Path, p: &Path) -> String {
    let d = dir
        .file_name()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    let f = p
        .file_name()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    format!("{d}/{f}")
}

fn verdict(data: &[u8]) -> String {
    match parse_datagram(data) {
        Ok(None) => "keep-alive".into(),
        Ok(Some(m)) => format!("ok {m:?}"),
        Err(e) => format!("err {} {e:?}", e.status().0),
    }
}

fn main() {
    let inputs = inputs();
    if std::env::args().any(|a| a == "--verdicts") {
        for (name, data) in &inputs {
            println!("{name}\t{}", verdict(data));
        }
        return;
    }
    // All inputs (mostly broken fuzz mutations), then only the valid RFC 4475 messages:
    // the first figure is dominated by how early a parser gives up, the second by the
    // full work of a message that gets through.
    let valid: Vec<_> = inputs
        .iter()
        .filter(|(name, _)| name.starts_with("valid/"))
        .cloned()
        .collect();
    time("all inputs", &inputs, 200);
    time("valid RFC 4475", &valid, 2000);
}

fn time(label: &str, inputs: &[(String, Vec<u8>)], rounds: usize) {
    let start = Instant::now();
    let mut accepted = 0usize;
    for _ in 0..rounds {
        for (_, data) in inputs {
            if matches!(parse_datagram(data), Ok(Some(_))) {
                accepted += 1;
            }
        }
    }
    let elapsed = start.elapsed();
    let parses = rounds * inputs.len();
    println!(
        "{label}: {} inputs ({} accepted), {rounds} rounds: {:.2?} total, {:.0} ns per parse",
        inputs.len(),
        accepted / rounds,
        elapsed,
        elapsed.as_nanos() as f64 / parses as f64
    );
}
