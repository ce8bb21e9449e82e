//! What a run measured, printed as one JSON line.

use std::collections::BTreeMap;
use std::io::Write;

/// Gaps between received packets, as their distance from the 20 ms ptime (µs).
#[derive(Default)]
pub(crate) struct Jitter {
    errors_us: Vec<u32>,
}

impl Jitter {
    pub(crate) fn push(&mut self, gap: std::time::Duration, ptime: std::time::Duration) {
        let err = gap.abs_diff(ptime).as_micros().min(u32::MAX as u128) as u32;
        self.errors_us.push(err);
    }

    pub(crate) fn merge(&mut self, other: Self) {
        self.errors_us.extend(other.errors_us);
    }

    pub(crate) fn summarize(&mut self) -> serde_json::Value {
        self.errors_us.sort_unstable();
        let at = |q: f64| -> u32 {
            if self.errors_us.is_empty() {
                return 0;
            }
            let i = ((self.errors_us.len() - 1) as f64 * q).round() as usize;
            self.errors_us[i]
        };
        serde_json::json!({
            "samples": self.errors_us.len(),
            "p50_us": at(0.5),
            "p99_us": at(0.99),
            "max_us": self.errors_us.last().copied().unwrap_or(0),
        })
    }
}

/// Failures by reason.
#[derive(Default)]
pub(crate) struct Failures(BTreeMap<String, usize>);

impl Failures {
    pub(crate) fn add(&mut self, why: &str) {
        *self.0.entry(why.to_owned()).or_default() += 1;
    }

    pub(crate) fn total(&self) -> usize {
        self.0.values().sum()
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!(self.0)
    }
}

/// A progress line for the driver (flushed at once: it times CPU samples by these).
pub(crate) fn progress(what: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{what}");
    let _ = out.flush();
}
