//! `mcrctl`'s command line: every command, flag and default, as clap
//! parses them. Nothing here talks to the daemon or prints.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use mcr::control::DEFAULT_SOCKET;

#[derive(Parser)]
#[command(
    name = "mcrctl",
    version,
    about = "Control client for the MCR multicast relay daemon (mcrd)"
)]
pub struct Cli {
    /// Control socket of the daemon.
    #[arg(long, global = true, env = "MCR_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for the daemon.
    #[arg(long, global = true, default_value_t = 15.0)]
    pub timeout: f64,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Check that the daemon answers.
    Ping,
    /// Client, daemon and protocol versions.
    Version,
    /// Add a static rule.
    Add(AddArgs),
    /// Remove a rule by id or by name.
    Remove {
        #[arg(long, conflicts_with = "name", required_unless_present = "name")]
        rule_id: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// Rules with their state.
    List,
    /// Per-rule, per-output and per-worker counters and rates.
    Stats {
        /// Redraw every interval until Ctrl-C (or the reader of a pipe goes).
        #[arg(long)]
        watch: bool,
        /// Seconds between redraws with --watch.
        #[arg(long, default_value_t = 1.0, requires = "watch")]
        interval: f64,
    },
    /// Worker processes.
    #[command(alias = "list-workers")]
    Workers,
    /// The daemon and its actor tree.
    Status,
    /// The compiled forwarding table.
    Mroute,
    /// PIM-SM neighbors and interfaces.
    #[command(subcommand)]
    Pim(PimCmd),
    /// Show, check, load, save or reload configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Get or set log levels (supervisor and every worker).
    #[command(subcommand)]
    LogLevel(LogCmd),
    /// IGMP querier state: groups and interfaces.
    #[command(subcommand)]
    Igmp(IgmpCmd),
    /// Per-rule packet trace: a rule's last packets and what became of them.
    #[command(subcommand)]
    Trace(TraceCmd),
    /// Stream events as JSON lines until interrupted.
    Subscribe {
        /// Comma-separated classes: rules, workers, interfaces, config, actors, pim, igmp (default: all).
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
    },
    /// Inject a fault (daemon must run with --enable-fault-injection).
    #[command(subcommand)]
    Fault(FaultCmd),
    /// Print a shell completion script (see GUIDE.md for where it goes).
    Completions { shell: CompletionShell },
    /// Print mcrctl's man page (roff) to stdout.
    #[command(hide = true)]
    Man,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args)]
pub struct AddArgs {
    #[arg(long)]
    pub input_interface: String,
    #[arg(long)]
    pub input_group: String,
    /// 0 = any destination port.
    #[arg(long)]
    pub input_port: String,
    /// GROUP:PORT:INTERFACE[:TTL][:members], comma-separated. `:members`
    /// sends only while INTERFACE has an IGMP member of GROUP.
    #[arg(long, value_delimiter = ',', required = true)]
    pub outputs: Vec<String>,
    #[arg(long)]
    pub name: Option<String>,
    /// A custom rule id (default: a stable hash of the input).
    #[arg(long)]
    pub rule_id: Option<String>,
    /// Only packets from this source address.
    #[arg(long)]
    pub source: Option<String>,
    /// How outputs send: republish (new datagram) or route (original packet, TTL-1).
    #[arg(long, default_value = "republish")]
    pub mode: String,
}

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// The running config as JSON5.
    Show,
    /// Validate a config file.
    Check { file: PathBuf },
    /// Apply a file's rules: merge by rule id, or --replace all rules.
    Load {
        file: PathBuf,
        #[arg(long)]
        replace: bool,
    },
    /// Write the running config to FILE, or to the daemon's startup file.
    Save { file: Option<PathBuf> },
    /// Re-read the daemon's startup config file (like SIGHUP).
    Reload,
}

#[derive(Subcommand)]
pub enum PimCmd {
    /// PIM neighbors: address, DR priority, holdtime left, generation id, uptime.
    Neighbors,
    /// PIM interfaces: address, DR, neighbor count, Hello interval, packet counters.
    Interfaces,
    /// PIM (*,G) and (S,G) state: upstream interface, RPF neighbor, Join timer,
    /// SPT bit, sources pruned off the RP tree, outgoing interfaces.
    Routes,
    /// The static RP table: group range, RP, whether this router is the RP.
    Rp,
    /// Register state: (S,G) this router registers as first-hop DR
    /// (state, RP, Register-Stop timer) and Registers it receives as RP.
    Register,
    /// Assert state per interface and (S,G)/(*,G): state, winner and its
    /// metric, our metric, Assert Timer.
    Assert,
}

#[derive(Subcommand)]
pub enum IgmpCmd {
    /// Groups with members on the querier interfaces.
    Groups,
    /// Querier state and counters per interface.
    Interfaces,
}

#[derive(Subcommand)]
pub enum TraceCmd {
    /// Keep the last N packets of a rule in the workers that serve it (a
    /// worker restart ends the trace).
    Enable {
        #[arg(long)]
        rule_id: String,
        /// Packets to keep, 1 to 1000 (default 100).
        #[arg(long)]
        count: Option<u32>,
    },
    /// Stop tracing a rule and forget its packets.
    Disable {
        #[arg(long)]
        rule_id: String,
    },
    /// The traced packets: time, source, size, action (forwarded, or dropped
    /// and why) and outputs; of one rule or of every traced rule.
    Show {
        #[arg(long)]
        rule_id: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum LogCmd {
    Get,
    Set {
        #[arg(long, conflicts_with = "facility")]
        global: Option<String>,
        #[arg(long, requires = "level")]
        facility: Option<String>,
        #[arg(long)]
        level: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum FaultCmd {
    /// SIGKILL a worker.
    KillWorker {
        #[arg(long)]
        interface: Option<String>,
    },
    /// Make a worker stop forwarding and heartbeating.
    StallWorker {
        #[arg(long)]
        interface: Option<String>,
    },
    /// Make a worker drop a rule from its table behind the supervisor's back.
    CorruptTable {
        #[arg(long)]
        interface: Option<String>,
    },
    /// Drop the next N table messages to a worker.
    DropIpc {
        count: u32,
        #[arg(long)]
        interface: Option<String>,
    },
    /// Make an actor panic (root, config, rib, workers, stats, control, loglevel, netlink, pim, protocols, worker/IFACE/N, igmp/IFACE).
    PanicActor { name: String },
    /// Block an actor's message handler for SECS seconds (root or a child actor).
    WedgeActor {
        name: String,
        #[arg(long, default_value_t = 10)]
        secs: u64,
    },
    /// Delete the control socket file.
    #[command(alias = "close-socket")]
    DeleteSocket,
    /// Make a worker panic right after each of its next N starts.
    CrashLoop {
        count: u32,
        #[arg(long)]
        interface: Option<String>,
    },
}
