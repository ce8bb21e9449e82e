//! The `concierge` binary: CLI, configuration, logging and the tokio driver.
#![forbid(unsafe_code)]

mod admin;
#[cfg(feature = "alloc-count")]
mod alloc_count;
mod auth;
mod check;
mod cli;
mod config;
mod console;
mod demo;
mod diagram;
mod dns;
mod driver;
mod fatal;
mod http;
mod metrics;
mod program;
mod reload;
mod shared;
mod simulate;
mod trunk_status;

use std::process::ExitCode;

use clap::Parser;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, ConfigArgs};
use crate::config::Config;
use crate::driver::{Operate, Server, Shutdown};
use crate::program::Files;

/// The one tokio runtime of a command (current-thread: the server's one shard and its
/// tasks, or a client's request), with the process's TLS provider (ring) installed before
/// any HTTP client exists; `None`, said on stderr, when it cannot start.
pub(crate) fn runtime() -> Option<tokio::runtime::Runtime> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("concierge: cannot start the runtime: {e}");
            None
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run {
        config: ConfigArgs::default(),
    }) {
        Command::Run { config } => run(&config),
        Command::Check { path, config } => check::run(path.as_deref(), &config),
        Command::Simulate {
            flow,
            caller,
            called,
            digits,
            verified,
            verstat,
            now,
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
            now,
            json,
            reveal_secrets,
            config: &config,
        }),
        Command::Diagram { flow, format } => diagram::run(&flow, format),
        Command::Reload { config } => reload::request(config.as_deref()),
        Command::Status { config } => admin::ask(
            config.as_deref(),
            reqwest::Method::GET,
            "/-/status",
            "status endpoint",
        ),
    }
}

/// Without `--config`, `config/concierge.toml` is used when it exists (the demo in the
/// repository), and the same demo compiled into the binary otherwise.
fn run(args: &ConfigArgs) -> ExitCode {
    let (cfg, files) = match program::configure(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("concierge: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&cfg.log.filter);
    fatal::exit_on_panic();
    // Every log line of this process carries the instance's name: the runtime is one
    // thread, so every task runs inside this span (call spans are its children).
    let _instance = tracing::info_span!("concierge", instance = %cfg.server.instance).entered();
    if files == Files::BuiltIn {
        info!(
            "no {} here: running the built-in demo",
            demo::embedded::CONFIG
        );
    }
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    // What the config said at start, to name the settings a reload cannot apply.
    let config_text = cfg
        .source
        .as_deref()
        .and_then(|p| files.read_to_string(p).ok())
        .unwrap_or_default();
    runtime.block_on(async move {
        // SIGHUP reloads; its default action would end the process, so the handler is
        // installed here, before loading prompts and flows takes time (a spawned task
        // would only install it at the first await).
        let (reload_tx, reload_rx) = mpsc::channel(4);
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(hup) => {
                tokio::spawn(forward_hangups(hup, reload_tx.clone()));
            }
            Err(e) => error!("cannot install the SIGHUP handler: {e}"),
        }
        let (tx, rx) = watch::channel(Shutdown::Running);
        let loaded = match program::load(&cfg, files) {
            Ok(p) => p,
            Err(errors) => {
                for e in &errors {
                    eprintln!("concierge: {e}");
                }
                return ExitCode::from(2);
            }
        };
        for w in &loaded.warnings {
            warn!("{w}");
        }
        let directory = match program::directory(&cfg, files) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("concierge: {e}");
                return ExitCode::from(2);
            }
        };
        let metrics = Arc::new(metrics::Metrics::new());
        metrics.set_flows(reload::flow_versions(&loaded.program));
        info!(flows = %reload::flows_summary(&loaded.program), "flow versions");
        let (programs_tx, programs_rx) = mpsc::channel(4);
        // The live console: its state exists only when it is served.
        let console = match (cfg.console.listen, cfg.console.token()) {
            (None, _) => None,
            (Some(_), Ok(token)) => Some((console::Hub::new(), token)),
            (Some(_), Err(variable)) => {
                eprintln!("concierge: [console] token_env names {variable}, which is not set in the environment: the console is not served without its token");
                return ExitCode::from(2);
            }
        };
        if let Some((hub, _)) = &console {
            hub.install(&loaded.program);
        }
        let operate = Operate {
            metrics: metrics.clone(),
            programs: programs_rx,
            console: console.as_ref().map(|(hub, _)| hub.clone()),
        };
        let health = rx.clone();
        let summary = Summary::new(&cfg, files, &loaded);
        let server = match Server::start(&cfg, loaded.program, rx, operate).await {
            Ok(s) => s,
            Err(e) => {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let directory = match directory {
            Some(directory) => {
                let count = directory.len();
                let addr = cfg.demo.directory_listen;
                match demo::directory::serve_reloadable(directory, addr).await {
                    Ok((_, swap)) => {
                        info!("demo customer directory: {} ({count} customers from {})", cfg.directory_url(), cfg.demo.customers.display());
                        Some(swap)
                    }
                    Err(e) => {
                        error!(
                            "cannot serve the demo customer directory on {addr}: {e}; change `[demo] directory_listen` in the config or pass --directory-listen ADDR:PORT"
                        );
                        return ExitCode::FAILURE;
                    }
                }
            }
            None => None,
        };
        // Bound after SIP and the directory, whose errors say more about a busy port.
        if let Some(listen) = cfg.metrics.listen {
            match admin::serve(listen, metrics.clone(), health, reload_tx.clone()).await {
                Ok(addr) => info!("metrics, health and reload: http://{addr}/metrics, /healthz, POST /-/reload"),
                Err(e) => {
                    error!("cannot serve metrics on {listen}: {e}; change `[metrics] listen` in the config or pass --metrics-listen ADDR:PORT");
                    return ExitCode::FAILURE;
                }
            }
        }
        if let (Some(listen), Some((hub, token))) = (cfg.console.listen, &console) {
            let access = console::Access::new(token.clone());
            match console::serve(listen, hub.clone(), access, reload_tx.clone(), cfg.transfer_signer()).await {
                Ok(addr) => info!(
                    "live console: http://{addr}/ ; call widget: http://{addr}/widget?desk=… ({})",
                    if token.is_some() { "access token required" } else { "open on this machine" }
                ),
                Err(e) => {
                    error!("cannot serve the console on {listen}: {e}; change `[console] listen` in the config or pass --console-listen ADDR:PORT");
                    return ExitCode::FAILURE;
                }
            }
        }
        let reloader = reload::Reloader {
            config_path: cfg.source.clone(),
            files,
            overrides: args.overrides(),
            started_with: config_text,
            programs: programs_tx,
            directory,
            metrics,
            console: console.map(|(hub, _)| hub),
        };
        tokio::spawn(reloader.run(reload_rx));
        summary.log(&cfg, &server);
        tokio::spawn(forward_signals(tx));
        match server.wait().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                // Unreachable while the panic hook exits first; kept so a cancelled or
                // panicked shard can never look like a clean stop.
                error!(error = %e, "the shard task failed");
                ExitCode::FAILURE
            }
        }
    })
}

/// What the server runs, said once at start-up so that a log shows which files and ports
/// this process used.
struct Summary {
    config: String,
    flows: Vec<String>,
}

impl Summary {
    fn new(cfg: &Config, files: Files, loaded: &program::Loaded) -> Self {
        let config = match (&cfg.source, files) {
            (Some(f), Files::Disk) => f.display().to_string(),
            (Some(f), Files::BuiltIn) => format!("{} (built into the binary)", f.display()),
            (None, _) => "none (defaults)".to_owned(),
        };
        let flows = loaded
            .flows
            .iter()
            .map(|(route, file)| {
                let route = if route.is_empty() {
                    "every call"
                } else {
                    route
                };
                format!("{route} -> {}", file.display())
            })
            .collect();
        Self { config, flows }
    }

    fn log(&self, cfg: &Config, server: &Server) {
        info!("config: {}", self.config);
        if self.flows.is_empty() {
            info!("flows: none; calls are answered and held");
        } else {
            info!("flows: {}", self.flows.join(", "));
        }
        info!("call records: {}", cfg.records.path.display());
        info!("RTP ports: {}-{}", cfg.rtp.port_min, cfg.rtp.port_max);
        match (&cfg.shared, &server.shared) {
            (Some(s), Some(shared)) => info!(
                "shared state: {} (prefix {:?}) as instance {}: lockout, lookup cache and call limits shared with the other instances",
                s.location(),
                s.prefix,
                shared.instance()
            ),
            _ => info!("shared state: none; lookup cache, lockout and call limits are this instance's own"),
        }
        if !cfg.demo.directory {
            info!(
                "demo customer directory: off; flows see {{system.directory_url}} = {}",
                cfg.directory_url()
            );
        }
        let listening: Vec<String> = [
            ("UDP", server.udp_addr),
            ("TCP", server.tcp_addr),
            ("TLS", server.tls_addr),
        ]
        .into_iter()
        .filter_map(|(t, a)| a.map(|a| format!("{t} {a}")))
        .collect();
        info!(
            "concierge listening: SIP on {}, advertised as {}",
            listening.join(" and "),
            cfg.advertised_host()
        );
    }
}

/// SIGHUP: reload (never stop). A reload already waiting absorbs the extra signals.
async fn forward_hangups(
    mut hup: tokio::signal::unix::Signal,
    reload: mpsc::Sender<reload::ReloadRequest>,
) {
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
        let what = if state == Shutdown::Drain {
            "draining: calls in progress go on, new ones get 503 (signal again to hang up all)"
        } else {
            "hanging up every call"
        };
        info!("shutdown requested: {what}");
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
