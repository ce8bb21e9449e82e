//! `concierge check [PATH]`: validates a configuration and its flows, or one flow file,
//! and prints every problem with its file, node, field and line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use concierge_flow::{check_dir, load_flow, Diagnostic, Severity};
use concierge_prompts::Catalogue;

use crate::config::Config;

pub(crate) fn run(path: &Path) -> ExitCode {
    let mut diags: Vec<String> = Vec::new();
    let mut errors = 0usize;
    let mut flows = 0usize;
    let mut report = |d: &Diagnostic| {
        if d.severity == Severity::Error {
            errors += 1;
        }
        diags.push(d.to_string());
    };

    // The configuration: PATH itself, or PATH/concierge.toml.
    let config_file = if path.is_dir() {
        path.join("concierge.toml")
    } else {
        path.to_path_buf()
    };
    let is_flow =
        path.is_file() && std::fs::read_to_string(path).is_ok_and(|t| t.contains("[nodes."));
    let cfg = if config_file.is_file() && !is_flow {
        match Config::load(Some(&config_file)) {
            Ok(c) => Some(c),
            Err(e) => {
                println!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let prompt_dir = cfg
        .as_ref()
        .map(|c| c.prompts.dir.clone())
        .unwrap_or_else(|| PathBuf::from("prompts"));
    let prompts = match Catalogue::load_dir(&prompt_dir) {
        Ok(c) => c,
        Err(e) => {
            println!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let known = |p: &str| prompts.contains(p);

    if is_flow {
        flows += 1;
        match load_flow(path, &known) {
            Ok(l) => l.warnings.iter().for_each(&mut report),
            Err(ds) => ds.iter().for_each(&mut report),
        }
    } else {
        let dir = if path.is_dir() {
            path.to_path_buf()
        } else {
            path.parent().unwrap_or(Path::new(".")).to_path_buf()
        };
        for d in check_dir(&dir, &known) {
            report(&d);
        }
        flows += count_flows(&dir);
        // Flows the configuration names must exist, wherever they live.
        if let Some(cfg) = &cfg {
            let named = cfg.flows.default.iter().chain(cfg.flows.routes.values());
            for f in named {
                if !f.is_file() {
                    errors += 1;
                    diags.push(format!(
                        "error: {}: flow {} does not exist",
                        config_file.display(),
                        f.display()
                    ));
                }
            }
        }
    }
    for d in &diags {
        println!("{d}");
    }
    if errors > 0 {
        println!("{errors} error(s)");
        ExitCode::FAILURE
    } else {
        println!(
            "ok: {flows} flow(s), {} prompt(s) checked",
            prompts.names().count()
        );
        ExitCode::SUCCESS
    }
}

fn count_flows(dir: &Path) -> usize {
    [dir.to_path_buf(), dir.join("flows")]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("[nodes.")))
        .count()
}
