use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{parse_port_range, Overrides};

/// Concierge: a SIP B2BUA with a built-in IVR that fast-tracks VIP callers.
#[derive(Debug, Parser)]
#[command(name = "concierge", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// Which configuration to use, and the settings the command line may change in it. `run`,
/// `check` and `simulate` take the same ones, so `check` checks what `run` would run.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ConfigArgs {
    /// Configuration file. Default: config/concierge.toml when it exists here, else the
    /// demo built into the binary (its config, flows, customer directory and prompts).
    /// Relative paths inside a file are read from the file's directory.
    #[arg(long, short, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// SIP listen address for UDP and TCP, instead of `[sip] listen` (e.g. 127.0.0.1:5062).
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) listen: Option<SocketAddr>,
    /// RTP port range, instead of `[rtp] port_min`/`port_max` (e.g. 30000-30999).
    #[arg(long, value_name = "MIN-MAX", value_parser = parse_port_range)]
    pub(crate) rtp_ports: Option<(u16, u16)>,
    /// Where the demo customer directory listens, instead of `[demo] directory_listen`
    /// (e.g. 127.0.0.1:8092). Flows reach it as {system.directory_url}.
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) directory_listen: Option<SocketAddr>,
    /// Where /metrics, /healthz and POST /-/reload listen, instead of `[metrics] listen`
    /// (e.g. 127.0.0.1:9465).
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// Where the live console and call widget listen, instead of `[console] listen`
    /// (e.g. 127.0.0.1:8090).
    #[arg(long, value_name = "ADDR:PORT")]
    pub(crate) console_listen: Option<SocketAddr>,
}

impl ConfigArgs {
    pub(crate) fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            rtp_ports: self.rtp_ports,
            directory_listen: self.directory_listen,
            metrics_listen: self.metrics_listen,
            console_listen: self.console_listen,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the server (the default when no command is given).
    ///
    /// Without --config and with no config/concierge.toml here, it runs the whole demo
    /// built into the binary: SIP on 0.0.0.0:5060 (UDP and TCP), the VIP flow for every
    /// call, the VIP and service desks and the echo-digits route, and the demo customer
    /// directory on 127.0.0.1:8089 the flow looks callers up in; call records go to
    /// calls.jsonl here. The flags below move its ports.
    Run {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Check what `run` would load, or one flow file; non-zero on any error.
    ///
    /// Loads the config (or the built-in demo, where `run` would use it), its default and
    /// routed flows, the prompts and the demo directory's file through the same code as
    /// `run`, says what it checked, and prints every problem with file, line and field.
    Check {
        /// A config file, a directory holding concierge.toml, or one flow file. Default:
        /// what `run` would use.
        path: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Run a flow without a phone: real HTTP requests, digits from --digits.
    Simulate {
        /// The flow file to run, e.g. config/flows/vip.toml.
        #[arg(long, value_name = "FILE")]
        flow: PathBuf,
        /// The caller's number (system.caller), e.g. +46706170786.
        #[arg(long)]
        caller: String,
        /// The called number or user (system.called).
        #[arg(long, default_value = "ivr")]
        called: String,
        /// Keys the caller presses, in order, e.g. 101010 or 4711#.
        #[arg(long)]
        digits: Option<String>,
        /// Treat the caller as asserted by a trusted peer (system.caller_verified = true).
        #[arg(long)]
        verified: bool,
        /// The carrier's STIR/SHAKEN result for a verified caller, e.g. TN-Validation-Passed.
        #[arg(long)]
        verstat: Option<String>,
        /// The wall time to simulate, in Unix seconds (system.now, what opening hours
        /// judge); the current time by default.
        #[arg(long)]
        now: Option<i64>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Show what secret keypads collected and URLs built from secrets (hidden by default).
        #[arg(long)]
        reveal_secrets: bool,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Draw a flow: nodes with their type and what matters, exits as labelled edges.
    Diagram {
        /// The flow file, e.g. config/flows/vip.toml.
        flow: PathBuf,
        /// `mermaid` (GitHub renders it) or `dot` (Graphviz).
        #[arg(long, value_enum, default_value_t = DiagramFormat::Mermaid)]
        format: DiagramFormat,
    },
    /// Ask the running server to reload its config, flows, prompts and demo directory
    /// (POST to its `[metrics] listen`; `kill -HUP` does the same).
    Reload {
        /// The running server's configuration file (for its `[metrics] listen`).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Ask the running server how its SIP trunks stand: registered (and for how long),
    /// backing off, or failed and why, with the registrar's last answer (GET to its
    /// `[metrics] listen`).
    Status {
        /// The running server's configuration file (for its `[metrics] listen`).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

/// The drawing languages of `concierge diagram`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DiagramFormat {
    Mermaid,
    Dot,
}
