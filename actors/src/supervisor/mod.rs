//! `mcrd supervisor`: start-up checks, the tokio runtime and the
//! supervision tree.
//!
//! Module layout (no two modules import each other):
//! - `handles`: every actor's message type, registry name and typed
//!   handle; actors talk to each other only through it.
//! - `shared`: what outlives actor restarts, owned by the root.
//! - `root`: the root supervisor, signals and shutdown; the only module
//!   that imports the actor modules (to spawn them).
//! - one module per actor: `config_actor`, `loglevel`, `stats_actor`,
//!   `rib_actor`, `netlink`, `control`, `protocols` (ProtocolSupervisor,
//!   with the IGMP and PIM actors under it), `workers` (WorkerManager, with
//!   one WorkerLink per worker process).
//! - `metrics` (the Prometheus endpoint) and `metric_sources`, where any
//!   part of the daemon adds counters for it without importing it.
//! - `systemd`, `privileges`, `util`, `packet_reader`: helpers with no
//!   knowledge of the tree.
//!
//! Policies (restart backoff and budgets, the worker lifecycle, rule
//! states) are pure code in package `mcr`: `mcr::supervise`,
//! `mcr::worker_policy`, `mcr::rib::state`.

pub mod config_actor;
pub mod control;
pub mod handles;
pub mod loglevel;
pub mod metric_sources;
pub mod metrics;
pub mod netlink;
pub mod packet_reader;
pub mod privileges;
pub mod protocols;
pub mod rib_actor;
pub mod root;
pub mod shared;
pub mod stats_actor;
pub mod systemd;
pub mod util;
pub mod workers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mcr::config::Config;
use mcr::logging::{LogFormat, Severity};
use tracing::{error, info, warn};

use self::shared::{Settings, Shared};

/// `mcrd supervisor` options.
#[derive(clap::Args, Debug, Clone)]
pub struct Opts {
    /// JSON5 config file, loaded at start and re-read on SIGHUP / `mcrctl config reload`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Control socket (default: the config's `control.socket`, else /run/mcr/control.sock).
    #[arg(long, env = "MCR_SOCKET")]
    pub socket: Option<PathBuf>,
    /// Global log level (overrides the config): emergency … trace.
    #[arg(long)]
    pub log_level: Option<String>,
    /// Log line format: text or json (overrides the config).
    #[arg(long)]
    pub log_format: Option<String>,
    /// Also write the log to this file (and workers' lines too), rotated
    /// as --log-rotation says; with rotation, FILE links to the current one.
    /// Overrides the config's logging.file, rotation and keep.
    #[arg(long, env = "MCR_LOG_FILE", value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// When the log file starts anew: hourly, daily or never.
    #[arg(long, default_value = "daily", requires = "log_file")]
    pub log_rotation: String,
    /// Log files kept with rotation, the current one included (0: all).
    #[arg(long, default_value_t = 7, requires = "log_file")]
    pub log_keep: usize,
    /// Allow `mcrctl fault ...` (for drills and tests only).
    #[arg(long)]
    pub enable_fault_injection: bool,
}

/// Resolve `workers.user` to the uid/gid workers drop to.
fn resolve_user(name: &str) -> Result<(u32, u32), String> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok((u.uid.as_raw(), u.gid.as_raw())),
        Ok(None) => Err(format!(
            "workers.user: user {name:?} does not exist; workers drop to it after receiving their sockets"
        )),
        Err(e) => Err(format!("workers.user: looking up {name:?}: {e}")),
    }
}

fn resolve_group(name: &str) -> Result<u32, String> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!("control.group: group {name:?} does not exist")),
        Err(e) => Err(format!("control.group: looking up {name:?}: {e}")),
    }
}

pub fn main(opts: Opts) -> ExitCode {
    // Privileges first: without CAP_NET_RAW nothing below can work, and
    // saying so once, clearly, beats a stream of socket errors.
    if !mcr::dataplane::sockets::has_cap_net_raw() {
        eprintln!(
            "mcrd: missing CAP_NET_RAW: the supervisor opens AF_PACKET and raw sockets for its workers.\n\
             Run it as root, or grant the capabilities: setcap cap_net_raw,cap_net_admin,cap_setuid,cap_setgid,cap_ipc_lock+ep $(command -v mcrd)"
        );
        return ExitCode::from(2);
    }
    let mut config = match &opts.config {
        Some(p) => match mcr::config::parse_file(p) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("mcrd: {}: configuration refused:\n{e}", p.display());
                return ExitCode::from(1);
            }
        },
        None => Config::default(),
    };
    if let Some(l) = &opts.log_level {
        match l.parse::<Severity>() {
            Ok(s) => config.logging.levels.global = s,
            Err(e) => {
                eprintln!("mcrd: --log-level: {e}");
                return ExitCode::from(1);
            }
        }
    }
    if let Some(f) = &opts.log_format {
        config.logging.format = match f.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                eprintln!("mcrd: --log-format: {other:?} is not text or json");
                return ExitCode::from(1);
            }
        };
    }
    let (worker_uid, worker_gid) = match resolve_user(&config.workers.user) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("mcrd: {e}");
            return ExitCode::from(1);
        }
    };
    let control_gid = match config
        .control
        .group
        .as_deref()
        .map(resolve_group)
        .transpose()
    {
        Ok(g) => g,
        Err(e) => {
            eprintln!("mcrd: {e}");
            return ExitCode::from(1);
        }
    };
    // Before any thread exists: capabilities are per thread.
    let early_drop = workers::early_drop::wanted(&config.workers.rx) == mcr::config::EarlyDrop::Xdp;
    let dropped = match privileges::drop_unneeded(control_gid.is_some(), early_drop) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("mcrd: dropping unneeded capabilities: {e}");
            return ExitCode::from(1);
        }
    };
    // Many input interfaces need more descriptors than the default soft
    // limit (mcr::sys::limits); logged once logging is up.
    let fd_limit = mcr::sys::limits::raise_fd_limit();
    let log_file = match &opts.log_file {
        Some(path) => match opts.log_rotation.parse() {
            Ok(rotation) => Some(mcr::logging::LogFile {
                path: path.clone(),
                rotation,
                keep: opts.log_keep,
            }),
            Err(e) => {
                eprintln!("mcrd: --log-rotation: {e}");
                return ExitCode::from(1);
            }
        },
        None => config.logging.file.clone(),
    };
    let (set_levels, _log_guard) = match crate::logsetup::init(
        &config.logging.levels,
        config.logging.format,
        false,
        log_file.as_ref(),
    ) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("mcrd: {e}");
            return ExitCode::from(1);
        }
    };
    if !dropped.is_empty() {
        info!(target: "Supervisor", "dropped capabilities: {}", dropped.join(" "));
    }
    match fd_limit {
        Ok((before, after)) if before != after => {
            info!(target: "Supervisor", "descriptor limit raised from {before} to {after}");
        }
        Ok(_) => {}
        Err(e) => warn!(target: "Supervisor", "cannot raise the descriptor limit: {e}"),
    }
    let socket_path = opts
        .socket
        .clone()
        .or_else(|| config.control.socket.clone())
        .unwrap_or_else(|| PathBuf::from(mcr::control::DEFAULT_SOCKET));
    // Refuse early and plainly if another daemon owns the socket.
    if socket_path.exists() && std::os::unix::net::UnixStream::connect(&socket_path).is_ok() {
        eprintln!(
            "mcrd: another mcrd is already listening on {}",
            socket_path.display()
        );
        return ExitCode::from(1);
    }
    let stats_interval_ms = mcr::env_override::<u32>("MCR_STATS_INTERVAL_MS")
        .filter(|v| *v >= 10)
        .unwrap_or(1000);
    let settings = Settings {
        config_path: opts.config.clone(),
        socket_path,
        fault_injection: opts.enable_fault_injection,
        stats_interval_ms,
        worker_uid,
        worker_gid,
        log_format: config.logging.format,
        control_gid,
    };
    let shared = Arc::new(Shared::new(settings, config, set_levels));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mcrd")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcrd: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = rt.block_on(root::run(shared.clone()));
    // Workers are gone by now; do not wait for blocking helper threads.
    rt.shutdown_timeout(Duration::from_secs(1));
    match code {
        Ok(()) => {
            info!(target: "Supervisor", "mcrd stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!(target: "Supervisor", "mcrd exiting on failure: {e}");
            eprintln!("mcrd: {e}");
            ExitCode::from(1)
        }
    }
}
