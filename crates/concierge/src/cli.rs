use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Concierge: a SIP B2BUA with a built-in IVR that fast-tracks VIP callers.
#[derive(Debug, Parser)]
#[command(name = "concierge", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the server (the default when no command is given).
    Run {
        /// Configuration file; default config/concierge.toml when it exists, else built-in defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration directory (its concierge.toml and flows) or one flow file.
    Check {
        /// A directory such as `config/`, a concierge.toml, or a flow file.
        #[arg(default_value = "config")]
        path: PathBuf,
    },
    /// Run a flow without a phone: real HTTP requests, digits from --digits.
    Simulate {
        #[arg(long)]
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
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Show what secret keypads collected and URLs built from secrets (hidden by default).
        #[arg(long)]
        reveal_secrets: bool,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}
