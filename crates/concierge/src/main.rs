//! The `concierge` binary: CLI, configuration, logging and the tokio driver.
#![forbid(unsafe_code)]

mod admin;
mod check;
mod cli;
mod config;
mod demo;
mod diagram;
mod driver;
mod http;
mod metrics;
mod program;
mod reload;
mod simulate;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::driver::{Operate, Server, Shutdown};
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
        Command::Diagram { flow, format } => diagram::run(&flow, format),
        Command::Reload { config } => reload::request(config.as_deref()),
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
    let config_text = match config {
        Some(path) => std::fs::read_to_string(path).unwrap_or_default(),
        None => Files::BuiltIn
            .read_to_string(default_file)
            .unwrap_or_default(),
    };
    let config_path = config.map(Path::to_path_buf);
    runtime.block_on(async move {
        // SIGHUP reloads; its default action would end the process, so the handler is
        // installed before anything else can take time.
        let (reload_tx, reload_rx) = mpsc::channel(4);
        tokio::spawn(forward_hangups(reload_tx.clone()));
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
        let metrics = Arc::new(metrics::Metrics::new());
        metrics.set_flows(reload::flow_versions(&program));
        info!(flows = %reload::flows_summary(&program), "flows loaded");
        let (programs_tx, programs_rx) = mpsc::channel(4);
        let operate = Operate {
            metrics: metrics.clone(),
            programs: programs_rx,
        };
        if let Some(listen) = cfg.metrics.listen {
            match admin::serve(listen, metrics.clone(), rx.clone(), reload_tx.clone()).await {
                Ok(addr) => info!(%addr, "metrics, health and reload listening"),
                Err(e) => {
                    error!(error = %e, %listen, "cannot bind the metrics listener");
                    return ExitCode::FAILURE;
                }
            }
        }
        let server = match Server::start(&cfg, program, rx, operate).await {
            Ok(s) => s,
            Err(e) => {
                error!(error = %e, listen = %cfg.sip.listen, "cannot bind the SIP listeners");
                return ExitCode::FAILURE;
            }
        };
        let directory = if cfg.demo.directory {
            match start_directory(&cfg, files).await {
                Ok(swap) => Some(swap),
                Err(e) => {
                    error!("{e}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            None
        };
        let reloader = reload::Reloader {
            config_path,
            files,
            started_with: config_text,
            programs: programs_tx,
            directory,
            metrics,
        };
        tokio::spawn(reloader.run(reload_rx));
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

/// Serves the demo customer directory; returns the swap a reload sends a new one on.
async fn start_directory(
    cfg: &Config,
    files: Files,
) -> Result<watch::Sender<Arc<demo::directory::Directory>>, String> {
    let directory = reload::load_directory(cfg, files)?;
    let count = directory.len();
    let (addr, swap) = demo::directory::serve_reloadable(directory, cfg.demo.directory_listen)
        .await
        .map_err(|e| format!("demo directory on {}: {e}", cfg.demo.directory_listen))?;
    info!(%addr, customers = count, "demo customer directory serving");
    Ok(swap)
}

/// SIGHUP: reload (never stop). A reload already waiting absorbs the extra signals.
async fn forward_hangups(reload: mpsc::Sender<reload::ReloadRequest>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        error!("cannot install the SIGHUP handler");
        return;
    };
    while hup.recv().await.is_some() {
        info!("SIGHUP: reloading");
        let _ = reload.try_send(reload::ReloadRequest { reply: None });
    }
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
