//! The body of the flow fuzz target in `fuzz/` (outside the workspace), here so the
//! normal test run replays every committed corpus file through exactly the code libFuzzer
//! ran (`tests/fuzz_corpus.rs`). It must not panic on any input.
//!
//! Not part of the API: nothing outside the fuzz target and its replay test calls it.

use std::path::Path;
use std::sync::Arc;

use crate::env::Environment;
use crate::run::{Action, Event, HttpResponse, Run, TransferOutcome, Vars};
use crate::validate::parse_flow;

/// Bytes up to the first NUL are a flow file; what follows is the body every HTTP request
/// of the flow gets back (a hostile API or a man in the middle), and its digits are what
/// the caller keys. A flow that loads is run to its end.
pub fn flow_toml(data: &[u8]) {
    let (toml, body) = match data.iter().position(|b| *b == 0) {
        Some(i) => data.split_at_checked(i).unwrap_or((data, &[])),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(toml) else {
        return;
    };
    let Ok(loaded) = parse_flow(Path::new("fuzz.toml"), text, &|_| true) else {
        return;
    };
    let digits: String = String::from_utf8_lossy(body)
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '#' || *c == '*')
        .take(32)
        .collect();
    let mut vars = Vars::new();
    vars.insert("system.caller".into(), "+46700000009".into());
    vars.insert("system.called".into(), "ivr".into());
    // No `${NAME}` is set: a run must be the same whatever environment fuzzes it.
    let (mut run, mut action) = Run::start(Arc::clone(&loaded.flow), vars, Environment::default());
    // The interpreter bounds its own steps; this bounds the events we feed it.
    for _ in 0..200 {
        let event = match action {
            Action::Done => return,
            Action::Play { .. } => Event::PromptFinished,
            Action::CollectDigits(_) => Event::Digits(digits.clone()),
            Action::Http(_) => Event::HttpResult(Ok(HttpResponse {
                status: 200,
                body: body.to_vec(),
                latency: std::time::Duration::from_millis(5),
                shared: None,
            })),
            Action::Transfer { .. } => Event::TransferResult(TransferOutcome::Succeeded),
            Action::Hangup { .. } => Event::HungUp,
        };
        action = run.handle(event);
    }
}
