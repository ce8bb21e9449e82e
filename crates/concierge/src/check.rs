//! `concierge check [PATH]`: loads what `run` would load, through the same code — the
//! config, its default and routed flows, the prompts, the demo directory's file — or one
//! flow file, and prints every problem with its file, line, node and field. It says what
//! it checked, and exits non-zero wherever `run` would refuse to start.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::ConfigArgs;
use crate::program::{self, Files};

/// What PATH names.
enum Target {
    /// What `run` would use with these arguments.
    Config(ConfigArgs),
    /// One flow file, checked with the prompts of the config `run` would use.
    Flow(PathBuf, ConfigArgs),
}

pub(crate) fn run(path: Option<&Path>, args: &ConfigArgs) -> ExitCode {
    let target = match target(path, args) {
        Ok(t) => t,
        Err(e) => {
            println!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match target {
        Target::Config(args) => check_config(&args),
        Target::Flow(flow, args) => check_flow(&flow, &args),
    }
}

fn target(path: Option<&Path>, args: &ConfigArgs) -> Result<Target, String> {
    let Some(path) = path else {
        return Ok(Target::Config(args.clone()));
    };
    let with_config = |file: PathBuf| -> Result<Target, String> {
        if let Some(c) = &args.config {
            return Err(format!(
                "two configs given, {} and --config {}; give one",
                file.display(),
                c.display()
            ));
        }
        Ok(Target::Config(ConfigArgs {
            config: Some(file),
            ..args.clone()
        }))
    };
    if path.is_dir() {
        let file = path.join("concierge.toml");
        if !file.is_file() {
            return Err(format!(
                "{}: no concierge.toml in this directory",
                path.display()
            ));
        }
        return with_config(file);
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "{}: {e} (check takes a config file, a directory holding concierge.toml, or a flow file)",
            path.display()
        )
    })?;
    if is_flow(&text) {
        Ok(Target::Flow(path.to_path_buf(), args.clone()))
    } else {
        with_config(path.to_path_buf())
    }
}

/// A flow has a `start` key or `[nodes…]` tables; a config has neither.
fn is_flow(text: &str) -> bool {
    match toml::from_str::<toml::Table>(text) {
        Ok(table) => table.contains_key("start") || table.contains_key("nodes"),
        // Unparseable: guess from the text, and let that file's parser show where it breaks.
        Err(_) => text.contains("[nodes."),
    }
}

/// Which configuration this is, in words.
fn describe(cfg: &crate::config::Config, files: Files) -> String {
    match (&cfg.source, files) {
        (Some(f), Files::BuiltIn) => format!("the built-in demo ({})", f.display()),
        (Some(f), Files::Disk) => f.display().to_string(),
        (None, _) => "the defaults".to_owned(),
    }
}

fn check_config(args: &ConfigArgs) -> ExitCode {
    let (cfg, files) = match program::configure(args) {
        Ok(c) => c,
        Err(e) => {
            println!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "checking {}, as `concierge run` would load it",
        describe(&cfg, files)
    );
    let mut errors = Vec::new();
    let loaded = program::load(&cfg, files)
        .map_err(|e| errors.extend(e))
        .ok();
    let directory = program::directory(&cfg, files)
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    // `run` opens the records file at start-up and makes its directory when missing; only
    // something in the way (a file where a directory must be) stops it there.
    if let Some(parent) = cfg.records.path.parent() {
        let existing = parent.ancestors().find(|a| a.exists());
        match existing {
            Some(a) if !a.as_os_str().is_empty() && !a.is_dir() => errors.push(format!(
                "{}: not a directory (records.path {})",
                a.display(),
                cfg.records.path.display()
            )),
            _ if !parent.as_os_str().is_empty() && !parent.is_dir() => println!(
                "  records: {} (its directory is made at start-up)",
                cfg.records.path.display()
            ),
            _ => println!("  records: {}", cfg.records.path.display()),
        }
    }
    match cfg.trunk_registrations() {
        Ok(trunks) => {
            for (trunk, t) in trunks.iter().zip(&cfg.trunks) {
                let (name, reg) = (&trunk.name, &trunk.registration);
                // The variable is named; its value never is.
                println!(
                    "  trunk {name}: registers {} at {} over {}, contact {}, {} s, password from ${}{}",
                    reg.aor(),
                    reg.registrar,
                    reg.transport.as_str().to_ascii_lowercase(),
                    reg.contact,
                    reg.expires,
                    t.password_env,
                    if t.trusted { ", trusted" } else { "" }
                );
            }
        }
        Err(e) => errors.push(e),
    }
    match crate::driver::check_tls(&cfg) {
        Ok(line) => println!("  {line}"),
        Err(e) => errors.push(e),
    }
    match cfg.shared.as_ref().map(crate::shared::check) {
        Some(Ok(line)) => println!("  {line}"),
        Some(Err(e)) => errors.push(e),
        None => println!("  shared state: none ([shared] unset): everything stays in this process"),
    }
    if let Some(loaded) = &loaded {
        for (route, file) in &loaded.flows {
            let route = if route.is_empty() {
                "default flow".to_owned()
            } else {
                format!("route {route:?}")
            };
            println!("  {route}: {}", file.display());
        }
        if loaded.flows.is_empty() {
            println!("  no flows: calls would be answered and held");
        }
        println!(
            "  prompts: {} in {}",
            loaded.program.prompts.names().count(),
            cfg.prompts.dir.display()
        );
    }
    if let Some(d) = &directory {
        println!(
            "  demo directory: {} customer(s) from {}, served on {}",
            d.len(),
            cfg.demo.customers.display(),
            cfg.directory_url()
        );
    }
    for w in loaded.iter().flat_map(|l| &l.warnings) {
        println!("warning: {w}");
    }
    match (&loaded, errors.is_empty()) {
        (Some(loaded), true) => {
            println!(
                "ok: {} flow(s), {} prompt(s) checked",
                loaded.flows.len(),
                loaded.program.prompts.names().count()
            );
            ExitCode::SUCCESS
        }
        _ => {
            for e in &errors {
                println!("error: {}", e.strip_prefix("error: ").unwrap_or(e));
            }
            println!(
                "{} error(s): `concierge run` would refuse this",
                errors.len()
            );
            ExitCode::FAILURE
        }
    }
}

fn check_flow(flow: &Path, args: &ConfigArgs) -> ExitCode {
    let (cfg, files) = match program::configure(args) {
        Ok(c) => c,
        Err(e) => {
            println!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let prompts = match program::prompts(&cfg, files) {
        Ok(p) => p,
        Err(errors) => {
            for e in errors {
                println!("error: {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    println!(
        "checking the flow {} with the {} prompt(s) of {}",
        flow.display(),
        prompts.names().count(),
        describe(&cfg, files)
    );
    match program::load_flow(&cfg, Files::Disk, &prompts, flow) {
        Ok((_, warnings)) => {
            for w in &warnings {
                println!("warning: {w}");
            }
            println!(
                "ok: 1 flow(s), {} prompt(s) checked",
                prompts.names().count()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                println!("{e}");
            }
            println!("{} error(s)", errors.len());
            ExitCode::FAILURE
        }
    }
}
