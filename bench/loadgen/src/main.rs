//! Load generator for the Concierge benchmark (`bench/run.py` drives it).
//!
//! * `callers`: N concurrent callers, each a real SIP UA over UDP with two-way 20 ms PCMU:
//!   it dials, streams audio, keys a code by RFC 4733 during the welcome prompt, answers the
//!   REFER 202, holds the line until `--hold-s` after the answer, reports the transfer done
//!   (NOTIFY sipfrag 200) and expects the server's BYE. It measures, on arrival, the gap
//!   between the server's RTP packets (the send jitter seen by a phone).
//! * `pump`: the packet floor, the server's socket work and nothing else: N RTP ports that
//!   each send a 20 ms stream back to whoever streams to them, a tokio task per port (the
//!   floor issue 22 is stated against); `--lean`: the same on one epoll thread.
//! * `streams`: N two-way streams against the pump (the callers' media without SIP).
//!
//! Each mode prints progress lines (`ALL_UP`, `FIRST_END`) for the driver to time its CPU
//! samples by, then one JSON summary line.

mod caller;
mod engine;
mod media;
mod pump;
mod summary;

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "concierge-loadgen")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Concurrent callers through the VIP keypad path.
    Callers {
        #[arg(long)]
        server: SocketAddr,
        #[arg(long)]
        calls: usize,
        /// Calls are started evenly over this many seconds.
        #[arg(long, default_value_t = 10.0)]
        ramp_s: f64,
        /// Each call lasts this long from its answer.
        #[arg(long, default_value_t = 20.0)]
        hold_s: f64,
        /// Keyed by RFC 4733 one second after the answer.
        #[arg(long, default_value = "101010")]
        digits: String,
        /// The REFER's Refer-To must contain this. Empty: no transfer is expected, and the
        /// caller hangs up itself when the hold is over (for a far end that only plays audio).
        #[arg(long, default_value = "vip-desk")]
        expect_refer: String,
    },
    /// The packet floor: N ports answering streams with streams.
    Pump {
        #[arg(long)]
        port_min: u16,
        #[arg(long)]
        streams: usize,
        #[arg(long)]
        seconds: f64,
        /// The lean floor: all ports on one epoll thread instead of a task per port.
        #[arg(long)]
        lean: bool,
    },
    /// N two-way streams against a pump.
    Streams {
        #[arg(long)]
        port_min: u16,
        #[arg(long)]
        streams: usize,
        #[arg(long, default_value_t = 10.0)]
        ramp_s: f64,
        #[arg(long)]
        hold_s: f64,
    },
}

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let summary = runtime.block_on(async move {
        match cli.mode {
            Mode::Callers {
                server,
                calls,
                ramp_s,
                hold_s,
                digits,
                expect_refer,
            } => {
                caller::run(caller::Plan {
                    server,
                    calls,
                    ramp: secs(ramp_s),
                    hold: secs(hold_s),
                    digits,
                    expect_refer,
                })
                .await
            }
            Mode::Pump {
                port_min,
                streams,
                seconds,
                lean: false,
            } => pump::run_pump(port_min, streams, secs(seconds)).await,
            Mode::Pump {
                port_min,
                streams,
                seconds,
                lean: true,
            } => pump::run_lean_pump(port_min, streams, secs(seconds)).await,
            Mode::Streams {
                port_min,
                streams,
                ramp_s,
                hold_s,
            } => pump::run_streams(port_min, streams, secs(ramp_s), secs(hold_s)).await,
        }
    });
    println!("{summary}");
}

fn secs(s: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(s.max(0.0))
}
