//! `mcrd`: the MCR daemon.
//!
//! - `mcrd supervisor` runs the supervision tree (ractor on tokio) that
//!   owns the configuration, the RIB, the worker processes and the control
//!   socket.
//! - `mcrd worker` is one data-plane process, started by the supervisor.
//! - `mcrd demo` builds a throw-away namespace topology and relays a live
//!   stream through it.

mod demo;
mod logsetup;
mod supervisor;
mod worker_main;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mcrd",
    version,
    about = "MCR multicast relay and router daemon"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon.
    Supervisor(supervisor::Opts),
    /// A data-plane worker (started by the supervisor, not by hand).
    #[command(hide = true)]
    Worker {
        /// Input interface, for logs.
        #[arg(long)]
        interface: String,
        /// Index among the interface's workers.
        #[arg(long, default_value_t = 0)]
        index: u32,
        /// Log format.
        #[arg(long, default_value = "text")]
        log_format: String,
    },
    /// Build a namespace topology, relay a live stream through it and print
    /// counters every second; removes everything it made on exit (root).
    Demo(demo::Opts),
    /// Internal: the demo's sender or receiver inside a namespace.
    #[command(hide = true)]
    DemoPeer(demo::PeerOpts),
    /// Print mcrd's man page (roff) to stdout.
    #[command(hide = true)]
    Man,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Supervisor(opts) => supervisor::main(opts),
        Cmd::Worker {
            interface,
            index,
            log_format,
        } => worker_main::main(&interface, index, &log_format),
        Cmd::Demo(opts) => demo::main(opts),
        Cmd::DemoPeer(opts) => demo::peer_main(opts),
        Cmd::Man => print_man(),
    }
}

/// The man page, for the install steps (`mcrd man > mcrd.8`).
fn print_man() -> ExitCode {
    use std::io::Write;
    let mut buf = Vec::new();
    let page = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).section("8");
    if let Err(e) = page.render(&mut buf) {
        eprintln!("mcrd: rendering the man page: {e}");
        return ExitCode::FAILURE;
    }
    let mut o = std::io::stdout().lock();
    match o.write_all(&buf).and_then(|()| o.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("mcrd: writing the man page: {e}");
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}

/// The daemon's own binary, for re-executing as a worker or demo peer.
pub fn self_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"))
}
