//! The `concierge` binary: CLI, configuration, logging and the tokio driver.
#![forbid(unsafe_code)]

mod auth;
mod check;
mod cli;
mod config;
mod demo;
mod driver;
mod http;
mod program;
mod simulate;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use tokio::sync::watch;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::driver::{Server, Shutdown};
use crate::program::Files;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run { config: None }) {
        Command::Run { config } => run(config.as_deref()),
        Command::Check { path } => check::run(&path),
        Command::Simulate {
            flow,
            caller,
            called,
            digits,
            verified,
            verstat,
            json,
            reveal_secrets,
            config,
        } => simulate::run(simulate::Args {
            flow: &flow,
            caller: &caller,
            called: &called,
            digits: digits.as_deref(),
            verified,
            verstat: verstat.as_deref(),
            json,
            reveal_secrets,
            config: config.as_deref(),
        }),
    }
}

/// Without `--config`, `config/concierge.toml` is used when it exists (the demo in the
/// repository), and the same demo compiled into the binary otherwise.
fn run(config: Option<&Path>) -> ExitCode {
    let default_file = Path::new(demo::embedded::CONFIG);
    let config = config.or_else(|| default_file.exists().then_some(default_file));
    let (loaded, files) = match config {
        Some(path) => (Config::load(Some(path)), Files::Disk),
        None => (built_in_config(), Files::BuiltIn),
    };
    let cfg = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("concierge: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&cfg.log.filter);
    // Every log line of this process carries the instance's name: the runtime is one
    // thread, so every task runs inside this span (call spans are its children).
    let _instance = tracing::info_span!("concierge", instance = %cfg.server.instance).entered();
    if files == Files::BuiltIn {
        info!(
            "no {} here: running the built-in demo",
            default_file.display()
        );
    }
    // One TLS provider for the process (ring), installed before any HTTP client exists.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("concierge: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let (tx, rx) = watch::channel(Shutdown::Running);
        let program = match program::load(&cfg, files) {
            Ok(p) => p,
            Err(errors) => {
                for e in &errors {
                    eprintln!("concierge: {e}");
                }
                return ExitCode::from(2);
            }
        };
        let server = match Server::start(&cfg, program, rx).await {
            Ok(s) => s,
            Err(e) => {
                error!(error = %e, listen = %cfg.sip.listen, "cannot bind the SIP listeners");
                return ExitCode::FAILURE;
            }
        };
        if cfg.demo.directory {
            if let Err(e) = start_directory(&cfg, files).await {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        }
        info!(udp = ?server.udp_addr, tcp = ?server.tcp_addr, host = %cfg.advertised_host(), "concierge listening");
        tokio::spawn(forward_signals(tx));
        server.wait().await;
        ExitCode::SUCCESS
    })
}

fn built_in_config() -> Result<Config, config::ConfigError> {
    let path = Path::new(demo::embedded::CONFIG);
    let text = Files::BuiltIn
        .read_to_string(path)
        .expect("the built-in demo has its config");
    Config::parse(path, &text)
}

async fn start_directory(cfg: &Config, files: Files) -> Result<(), String> {
    let path = &cfg.demo.customers;
    let text = files
        .read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let directory = demo::directory::Directory::parse(path, &text).map_err(|e| e.to_string())?;
    let count = directory.len();
    let addr = demo::directory::serve(directory, cfg.demo.directory_listen)
        .await
        .map_err(|e| format!("demo directory on {}: {e}", cfg.demo.directory_listen))?;
    info!(%addr, customers = count, "demo customer directory serving");
    Ok(())
}

/// SIGINT/SIGTERM once: drain (new INVITEs get 503, calls go on). Twice: hang up all.
async fn forward_signals(tx: watch::Sender<Shutdown>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        error!("cannot install signal handlers");
        return;
    };
    let mut state = Shutdown::Running;
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        state = if state == Shutdown::Running {
            Shutdown::Drain
        } else {
            Shutdown::Now
        };
        info!(?state, "shutdown requested");
        if tx.send(state).is_err() {
            return;
        }
    }
}

fn init_logging(filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
