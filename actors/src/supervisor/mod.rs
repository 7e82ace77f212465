//! `mcrd supervisor`: start-up checks, the tokio runtime, signals, and the
//! state the supervision tree shares.
//!
//! Resources that must outlive an actor restart (worker processes and
//! their sockets, group memberships, the running config, the event bus)
//! live in `Shared`, owned by the root; actors are restartable shells that
//! re-attach to it. That is how a WorkerManager panic leaves every worker
//! forwarding (DESIGN.md, "Actors and supervision").

pub mod config_actor;
pub mod control;
pub mod loglevel;
pub mod netlink;
pub mod rib_actor;
pub mod root;
pub mod stats_actor;
pub mod workers;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mcr::config::Config;
use mcr::control::{ActorInfo, Event, TimedEvent};
use mcr::logging::{LogFormat, LogLevels, Severity};
use ractor::{ActorRef, Message, RpcReplyPort};
use tokio::sync::broadcast;
use tracing::{error, info};

use crate::logsetup::LevelSetter;

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
    /// Allow `mcrctl fault ...` (for drills and tests only).
    #[arg(long)]
    pub enable_fault_injection: bool,
}

/// Settings fixed at start.
#[derive(Clone, Debug)]
pub struct Settings {
    pub config_path: Option<PathBuf>,
    pub socket_path: PathBuf,
    pub fault_injection: bool,
    pub stats_interval_ms: u32,
    pub worker_uid: u32,
    pub worker_gid: u32,
    pub log_format: LogFormat,
    pub control_gid: Option<u32>,
}

/// One worker: input interface and index among its workers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerKey {
    pub interface: String,
    pub index: u32,
}

impl WorkerKey {
    /// Registry name of the WorkerLink actor for this worker.
    pub fn actor_name(&self) -> String {
        format!("worker/{}/{}", self.interface, self.index)
    }
}

impl std::fmt::Display for WorkerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.interface, self.index)
    }
}

/// Restart bookkeeping of one actor, for `mcrctl status`.
#[derive(Clone, Debug, Default)]
pub struct ActorRecord {
    pub state: String,
    pub restarts: u32,
    pub last_failure: Option<String>,
}

/// What the tree shares; owned by the root, handed to every actor.
pub struct Shared {
    pub settings: Settings,
    config: Mutex<Arc<Config>>,
    events: broadcast::Sender<TimedEvent>,
    /// Worker resources by worker (see `workers::link::LinkState`).
    pub registry: Mutex<BTreeMap<WorkerKey, Arc<Mutex<workers::link::LinkState>>>>,
    /// Input-group memberships and unicast sinks.
    pub inputs: Mutex<workers::InputSockets>,
    /// The control socket's listener and its file's inode, so a restarted
    /// ControlServer keeps serving the same socket.
    pub control_listener: Mutex<Option<(std::os::unix::net::UnixListener, u64)>>,
    actors: Mutex<BTreeMap<String, ActorRecord>>,
    pub started: Instant,
    pub set_levels: LevelSetter,
    pub shutting_down: AtomicBool,
}

/// Lock a mutex, recovering the data if a panicking thread poisoned it:
/// every value we keep under a lock is replaced whole, never left half
/// updated, so the data is still consistent.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn config(&self) -> Arc<Config> {
        lock(&self.config).clone()
    }

    pub fn set_config(&self, c: Config) {
        *lock(&self.config) = Arc::new(c);
    }

    pub fn publish(&self, event: Event) {
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        // No subscribers is fine.
        let _ = self.events.send(TimedEvent { time, event });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<TimedEvent> {
        self.events.subscribe()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    pub fn actor_state(&self, name: &str, state: &str) {
        lock(&self.actors)
            .entry(name.to_string())
            .or_default()
            .state = state.to_string();
    }

    pub fn actor_failed(&self, name: &str, why: &str) -> u32 {
        let mut a = lock(&self.actors);
        let r = a.entry(name.to_string()).or_default();
        r.restarts += 1;
        r.last_failure = Some(why.to_string());
        r.state = "restarting".into();
        r.restarts
    }

    pub fn actor_infos(&self) -> Vec<ActorInfo> {
        lock(&self.actors)
            .iter()
            .map(|(n, r)| ActorInfo {
                name: n.clone(),
                state: r.state.clone(),
                restarts: r.restarts,
                last_failure: r.last_failure.clone(),
            })
            .collect()
    }
}

/// The actor registered under `name`, typed. Names are unique per actor
/// kind, so the message type is known from the name.
pub fn actor<M: Message>(name: &str) -> Option<ActorRef<M>> {
    ractor::registry::where_is(name).map(ActorRef::from)
}

/// Send without waiting; a missing actor (restarting) drops the message.
pub fn cast<M: Message>(name: &str, msg: M) {
    if let Some(a) = actor::<M>(name) {
        let _ = a.cast(msg);
    }
}

/// Send `msg()` to `me` every `every`, until the actor is gone. The
/// handle is aborted by the actor's state when it stops.
pub fn spawn_ticker<M: Message>(
    me: ActorRef<M>,
    every: Duration,
    msg: fn() -> M,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut iv = tokio::time::interval(every);
        loop {
            iv.tick().await;
            if me.cast(msg()).is_err() {
                return;
            }
        }
    })
}

/// How long a control request waits for an actor.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Ask an actor and wait for the reply.
pub async fn ask<M: Message, T: Send + 'static>(
    name: &str,
    f: impl FnOnce(RpcReplyPort<T>) -> M,
    timeout: Duration,
) -> Result<T, String> {
    let a = actor::<M>(name).ok_or_else(|| format!("the {name} actor is restarting; try again"))?;
    match a.call(f, Some(timeout)).await {
        Ok(ractor::rpc::CallResult::Success(v)) => Ok(v),
        Ok(ractor::rpc::CallResult::Timeout) => Err(format!(
            "the {name} actor did not answer within {timeout:?}"
        )),
        Ok(ractor::rpc::CallResult::SenderError) => {
            Err(format!("the {name} actor stopped before answering"))
        }
        Err(e) => Err(format!("cannot reach the {name} actor: {e}")),
    }
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
    let (set_levels, _log_guard) =
        crate::logsetup::init(&config.logging.levels, config.logging.format, false);
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
    let (events, _) = broadcast::channel(4096);
    let shared = Arc::new(Shared {
        settings,
        config: Mutex::new(Arc::new(config)),
        events,
        registry: Mutex::new(BTreeMap::new()),
        inputs: Mutex::new(workers::InputSockets::default()),
        control_listener: Mutex::new(None),
        actors: Mutex::new(BTreeMap::new()),
        started: Instant::now(),
        set_levels,
        shutting_down: AtomicBool::new(false),
    });
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

/// The current log levels, as the running config says.
pub fn current_levels(shared: &Shared) -> LogLevels {
    shared.config().logging.levels.clone()
}
