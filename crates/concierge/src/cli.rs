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
        /// Configuration file; without it every setting has its default.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}
