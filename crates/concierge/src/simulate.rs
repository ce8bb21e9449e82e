//! `concierge simulate`: runs a flow without a phone. The interpreter is the one calls
//! use; HTTP requests are real; prompts "play" instantly; digits come from `--digits`;
//! a transfer is reported as what would happen.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use concierge_flow::{Action, Event, Run, TransferOutcome, Vars};
use serde_json::json;

use crate::cli::ConfigArgs;
use crate::config::Config;
use crate::http::HttpClient;
use crate::program::{self, Files};

pub(crate) struct Args<'a> {
    pub(crate) flow: &'a Path,
    pub(crate) caller: &'a str,
    pub(crate) called: &'a str,
    pub(crate) digits: Option<&'a str>,
    pub(crate) verified: bool,
    pub(crate) verstat: Option<&'a str>,
    /// `--now`: the wall time in Unix seconds; the real clock when absent.
    pub(crate) now: Option<i64>,
    pub(crate) json: bool,
    /// Show secret keys and secret-derived URLs; hidden by default like in logs.
    pub(crate) reveal_secrets: bool,
    pub(crate) config: &'a ConfigArgs,
}

pub(crate) fn run(args: Args<'_>) -> ExitCode {
    let (cfg, files) = match program::configure(args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("concierge: {e}");
            return ExitCode::from(2);
        }
    };
    let prompts = program::prompts(&cfg, files).unwrap_or_default();
    let flow = match program::load_flow(&cfg, Files::Disk, &prompts, args.flow) {
        Ok((flow, warnings)) => {
            for w in warnings {
                eprintln!("warning: {w}");
            }
            flow
        }
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return ExitCode::from(2);
        }
    };
    let directory = match program::directory(&cfg, files) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("concierge: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(rt) = crate::runtime() else {
        return ExitCode::FAILURE;
    };
    rt.block_on(async move {
        // The demo directory, so the shipped flows have an API to call.
        if let Some(dir) = directory {
            let addr = cfg.demo.directory_listen;
            if let Err(e) = crate::demo::directory::serve(dir, addr).await {
                // Another process may serve it (a running `concierge run`): say so, go on.
                eprintln!("warning: demo directory not started on {addr}: {e} (--directory-listen moves it)");
            }
        }
        simulate(flow, &args, &cfg).await
    })
}

async fn simulate(flow: Arc<concierge_flow::Flow>, args: &Args<'_>, cfg: &Config) -> ExitCode {
    let mut vars = Vars::new();
    vars.insert(
        "system.caller".into(),
        concierge_flow::normalize_e164(args.caller),
    );
    vars.insert("system.caller_verified".into(), args.verified.to_string());
    vars.insert(
        "system.caller_verstat".into(),
        args.verstat
            .filter(|_| args.verified)
            .unwrap_or_default()
            .into(),
    );
    vars.insert("system.caller_private".into(), "false".into());
    vars.insert("system.called".into(), args.called.into());
    vars.insert("system.call_id".into(), "simulated".into());
    vars.insert(
        "system.local_host".into(),
        format!("{}:{}", cfg.advertised_host(), cfg.sip.listen.port()),
    );
    vars.insert("system.directory_url".into(), cfg.directory_url());
    let http = HttpClient::new();
    // The same cache a switch keeps; a simulation is one call, so a repeated node hits.
    let mut cache = concierge_flow::LookupCache::new();
    let mut keys: Vec<char> = args.digits.unwrap_or("").chars().collect();
    let mut log: Vec<serde_json::Value> = Vec::new();
    let clock = || args.now.unwrap_or_else(unix_now);
    vars.insert("system.now".into(), clock().to_string());
    let (mut run, mut action) = Run::start(flow.clone(), vars, program::process_env());
    let mut final_action = json!(null);
    for _ in 0..200 {
        let event = match &action {
            Action::Play {
                prompts,
                interruptible,
            } => {
                log.push(json!({"play": prompts, "interruptible": interruptible}));
                Event::PromptFinished
            }
            Action::CollectDigits(spec) => {
                let mut typed = String::new();
                while let Some(k) = (!keys.is_empty()).then(|| keys.remove(0)) {
                    if Some(k) == spec.terminator {
                        break;
                    }
                    typed.push(k);
                    if typed.chars().count() as u32 >= spec.max {
                        break;
                    }
                }
                let shown = if spec.secret && !args.reveal_secrets {
                    "*".repeat(typed.chars().count())
                } else {
                    typed.clone()
                };
                log.push(json!({"prompt": spec.prompts, "collect": shown}));
                if typed.is_empty() {
                    Event::InputTimeout
                } else {
                    Event::Digits(typed)
                }
            }
            Action::Http(req) => {
                let now = std::time::Instant::now();
                let (result, used) = match cache.fresh(now, req) {
                    Some(hit) => (Ok(hit), Some(concierge_flow::CacheUse::Hit)),
                    None => {
                        let result = http.execute((**req).clone()).await;
                        cache.settle(std::time::Instant::now(), req, result)
                    }
                };
                run.note_cache(used);
                let shown = match &result {
                    Ok(r) => {
                        json!({"status": r.status, "body": String::from_utf8_lossy(&r.body), "latency_ms": r.latency.as_millis() as u64})
                    }
                    Err(e) => json!({"failure": format!("{e:?}")}),
                };
                let url = if args.reveal_secrets {
                    req.url.as_str()
                } else {
                    req.url_for_log()
                };
                // The auth block by name only: its token and secret are never shown.
                log.push(json!({"http": {"node": req.node, "method": req.method, "url": url, "auth": req.auth.as_ref().map(|a| &a.name)}, "cache": used.map(|u| u.as_str()), "result": shown}));
                Event::HttpResult(result)
            }
            Action::Transfer {
                target,
                headers,
                mode,
                prompt,
                redact,
                trunk,
            } => {
                final_action = if *redact && !args.reveal_secrets {
                    json!({"transfer": {"target": "<redacted>", "mode": format!("{mode:?}"), "headers": "<redacted>", "prompt": prompt, "trunk": trunk}})
                } else {
                    json!({"transfer": {"target": target, "mode": format!("{mode:?}"), "headers": headers, "prompt": prompt, "trunk": trunk}})
                };
                // What the desk's call widget would show (never a secret variable).
                if let Some(context) = run.transfer_context() {
                    final_action["transfer"]["widget"] = json!(context.widget);
                    final_action["transfer"]["recognised"] =
                        json!(context.recognised.map(|r| r.as_str()));
                }
                Event::TransferResult(TransferOutcome::Succeeded)
            }
            Action::Hangup { prompt, reason } => {
                final_action = json!({"hangup": {"prompt": prompt, "reason": reason}});
                break;
            }
            Action::Done => break,
        };
        run.set_clock(clock());
        action = run.handle(event);
    }
    let path: Vec<serde_json::Value> = run
        .trace()
        .iter()
        .map(|s| json!({"node": s.node, "exit": s.exit}))
        .collect();
    let vars = if args.reveal_secrets {
        run.vars().clone()
    } else {
        run.vars_redacted()
    };
    if args.json {
        let out = json!({"flow": flow.name, "path": path, "steps": log, "variables": vars, "final": final_action});
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    println!("flow {} for caller {}", flow.name, args.caller);
    for step in &log {
        println!("  {step}");
    }
    println!("path:");
    for s in run.trace() {
        println!("  {} -> {}", s.node, s.exit.as_deref().unwrap_or("(ended)"));
    }
    println!("variables:");
    for (k, v) in &vars {
        println!("  {k} = {v}");
    }
    println!("final: {final_action}");
    ExitCode::SUCCESS
}

/// The wall time for `system.now` (opening hours): simulation runs now.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
