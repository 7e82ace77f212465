//! What the supervision tree shares, owned by the root.
//!
//! Resources that must outlive an actor restart (worker processes and
//! their sockets, group memberships, the running config, the event bus)
//! live in `Shared`; actors are restartable shells that re-attach to it.
//! That is how a WorkerManager panic leaves every worker forwarding
//! (DESIGN.md, "Actors and supervision").

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use mcr::config::Config;
use mcr::control::{ActorInfo, Event, TimedEvent};
use mcr::igmp::IgmpSettings;
use mcr::logging::{LogFormat, LogLevels};
use tokio::sync::broadcast;

use super::handles::WorkerKey;
use super::util::lock;
use super::workers::inputs::InputSockets;
use super::workers::process::LinkState;
use crate::logsetup::LevelSetter;

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

/// Where the IGMP querier runs and with which timers.
///
/// From the config file's `igmp` section, read at start.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IgmpSetup {
    /// `querier_interfaces` and the proxy's downstream interfaces.
    pub querier_interfaces: Vec<String>,
    pub settings: IgmpSettings,
}

impl IgmpSetup {
    /// The queriers of the config file's `igmp` section.
    pub fn from_config(cfg: &mcr::config::Config) -> Option<IgmpSetup> {
        cfg.igmp.as_ref().map(|c| IgmpSetup {
            querier_interfaces: c.queriers(),
            settings: c.settings.clone(),
        })
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
    /// This run of the daemon (a v4 UUID), in `status`, `version` and
    /// every event, so clients notice a restart they did not see.
    pub instance_id: String,
    config: Mutex<Arc<Config>>,
    events: broadcast::Sender<TimedEvent>,
    /// Worker resources by worker (see `workers::process::LinkState`).
    pub registry: Mutex<BTreeMap<WorkerKey, Arc<Mutex<LinkState>>>>,
    /// Input-group memberships and unicast sinks.
    pub inputs: Mutex<InputSockets>,
    /// The control socket's listener and its file's inode, so a restarted
    /// ControlServer keeps serving the same socket.
    pub control_listener: Mutex<Option<(std::os::unix::net::UnixListener, u64)>>,
    actors: Mutex<BTreeMap<String, ActorRecord>>,
    pub started: Instant,
    pub set_levels: LevelSetter,
    pub shutting_down: AtomicBool,
}

impl Shared {
    /// Shared state for unit tests: the default config, no socket, no log
    /// level setter, fault injection as asked.
    #[cfg(test)]
    pub fn for_test(fault_injection: bool) -> Arc<Shared> {
        let settings = Settings {
            config_path: None,
            socket_path: "/nonexistent/mcr-test.sock".into(),
            fault_injection,
            stats_interval_ms: 1000,
            worker_uid: 0,
            worker_gid: 0,
            log_format: LogFormat::default(),
            control_gid: None,
        };
        Arc::new(Shared::new(settings, Config::default(), Arc::new(|_| {})))
    }

    pub fn new(settings: Settings, config: Config, set_levels: LevelSetter) -> Shared {
        let (events, _) = broadcast::channel(4096);
        Shared {
            settings,
            instance_id: uuid::Uuid::new_v4().to_string(),
            config: Mutex::new(Arc::new(config)),
            events,
            registry: Mutex::new(BTreeMap::new()),
            inputs: Mutex::new(InputSockets::default()),
            control_listener: Mutex::new(None),
            actors: Mutex::new(BTreeMap::new()),
            started: Instant::now(),
            set_levels,
            shutting_down: AtomicBool::new(false),
        }
    }

    pub fn config(&self) -> Arc<Config> {
        lock(&self.config).clone()
    }

    pub fn set_config(&self, c: Config) {
        *lock(&self.config) = Arc::new(c);
    }

    /// Change the running config in place: a copy is made only if a reader
    /// still holds the current one, so adding one rule to 10,000 does not
    /// copy them all.
    pub fn update_config(&self, f: impl FnOnce(&mut Config)) {
        f(Arc::make_mut(&mut lock(&self.config)));
    }

    /// The IGMP queriers the running config asks for.
    pub fn igmp(&self) -> Option<IgmpSetup> {
        IgmpSetup::from_config(&self.config())
    }

    /// The current log levels, as the running config says.
    pub fn levels(&self) -> LogLevels {
        self.config().logging.levels.clone()
    }

    /// An event stamped with the time and this daemon's instance.
    pub fn stamp(&self, event: Event) -> TimedEvent {
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        TimedEvent {
            time,
            instance_id: self.instance_id.clone(),
            event,
        }
    }

    pub fn publish(&self, event: Event) {
        // No subscribers is fine.
        let _ = self.events.send(self.stamp(event));
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

    /// Drop an actor from `status` (a protocol actor that the config no
    /// longer asks for).
    pub fn actor_forget(&self, name: &str) {
        lock(&self.actors).remove(name);
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
