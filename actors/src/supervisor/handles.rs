//! How the actors of the tree address each other: every actor's message
//! type, its registry name, and a typed handle per actor.
//!
//! This is the one module that knows registry names. Actor modules import
//! it and never each other, so no two modules depend on one another; only
//! the root imports the actor modules, to spawn them. Handles look the
//! actor up on every use: a restarted actor registers a new `ActorRef`
//! under the same name, and a message to an actor that is restarting is
//! dropped (a cast) or answered with an error (a call), never queued for a
//! dead mailbox.

use std::sync::Arc;
use std::time::Duration;

use mcr::control::{
    ConfigCheckResult, ConfigText, Done, MrouteEntry, RuleInfo, StatsReport, StatusReport,
    TimedEvent, VersionInfo, WorkerInfo,
};
use mcr::iface::Ifaces;
use mcr::ipc::{FromWorker, RuleCounters, WorkerCounters};
use mcr::logging::{Facility, LogLevels, Severity};
use mcr::rib::state::{Tables, WorkerView};
use mcr::rib::InterfaceTable;
use mcr::rule::{RuleInput, RuleOutput, RuleSet};
use ractor::{ActorRef, Message, RpcReplyPort};
use tokio::sync::broadcast;

/// How long a control request waits for an actor.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Registry name of the root supervisor.
pub const ROOT: &str = "root";

/// The root's children, in start order: later ones depend on earlier ones
/// being registered (the RIB pushes tables to the WorkerManager, which
/// must not miss them; the control server comes last so requests find
/// everyone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Child {
    LogLevel,
    Config,
    Stats,
    Workers,
    Rib,
    Netlink,
    Metrics,
    Control,
}

impl Child {
    pub const ALL: [Child; 8] = [
        Child::LogLevel,
        Child::Config,
        Child::Stats,
        Child::Workers,
        Child::Rib,
        Child::Netlink,
        Child::Metrics,
        Child::Control,
    ];

    /// Registry name; also what `mcrctl fault panic-actor` takes.
    pub fn name(self) -> &'static str {
        match self {
            Child::LogLevel => "loglevel",
            Child::Config => "config",
            Child::Stats => "stats",
            Child::Workers => "workers",
            Child::Rib => "rib",
            Child::Netlink => "netlink",
            Child::Metrics => "metrics",
            Child::Control => "control",
        }
    }

    pub fn from_name(name: &str) -> Option<Child> {
        Child::ALL.into_iter().find(|c| c.name() == name)
    }
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

// ---- messages ----

pub enum RootMsg {
    Ping(RpcReplyPort<String>),
    Version(RpcReplyPort<VersionInfo>),
    Status(RpcReplyPort<StatusReport>),
    Shutdown,
    /// SIGHUP.
    Reload,
    /// Fault injection: panic in the root itself (ends the daemon).
    Panic,
}

pub type Reply<T> = RpcReplyPort<Result<T, String>>;

pub enum ConfigMsg {
    Add {
        id: Option<String>,
        name: Option<String>,
        input: RuleInput,
        outputs: Vec<RuleOutput>,
        reply: Reply<Done>,
    },
    Remove {
        id: Option<String>,
        name: Option<String>,
        reply: Reply<Done>,
    },
    Show(RpcReplyPort<ConfigText>),
    Check {
        text: String,
        reply: RpcReplyPort<ConfigCheckResult>,
    },
    Load {
        text: String,
        replace: bool,
        reply: Reply<Done>,
    },
    Save(Reply<Done>),
    Reload(Option<Reply<Done>>),
    LogGet(RpcReplyPort<LogLevels>),
    LogSet {
        facility: Option<Facility>,
        level: Severity,
        reply: Reply<Done>,
    },
    Panic,
}

pub enum LogLevelMsg {
    Apply(LogLevels),
    Panic,
}

pub enum StatsMsg {
    Report {
        key: WorkerKey,
        pid: u32,
        counters: WorkerCounters,
        rules: Vec<RuleCounters>,
        last: bool,
    },
    Forget(WorkerKey),
    Get(RpcReplyPort<StatsReport>),
    Panic,
}

pub enum RibMsg {
    Rules(Arc<RuleSet>),
    /// A new interface snapshot (from the NetlinkMonitor). The RIB passes
    /// it on to the WorkerManager with the tables, so the manager always
    /// sees tables and interfaces that belong together.
    Interfaces(Arc<Ifaces>),
    Worker(WorkerKey, Option<WorkerView>),
    /// The current tables and interfaces (a restarted WorkerManager asks).
    Tables(RpcReplyPort<(Arc<Tables>, Arc<Ifaces>)>),
    List(RpcReplyPort<Vec<RuleInfo>>),
    Mroute(RpcReplyPort<Vec<MrouteEntry>>),
    Panic,
}

pub enum WmMsg {
    Tables(Arc<Tables>, Arc<Ifaces>),
    SetLevels(LogLevels),
    List(RpcReplyPort<Vec<WorkerInfo>>),
    Fault(mcr::control::FaultRequest, Reply<Done>),
    StopAll(RpcReplyPort<()>),
    Tick,
    Panic,
}

/// Fault injections a link can carry out.
#[derive(Clone, Debug)]
pub enum LinkFault {
    Kill,
    /// Panic the running worker and the next `n - 1` after it.
    CrashLoop(u32),
    Stall,
    CorruptTable,
    DropIpc(u32),
    Panic,
}

pub enum LinkMsg {
    /// The compiled table for this interface and the interfaces now.
    SetTable {
        table: Arc<InterfaceTable>,
        ifaces: Arc<Ifaces>,
        nworkers: u32,
        core: Option<u32>,
    },
    FromWorker {
        gen: u64,
        msg: FromWorker,
    },
    Exited {
        gen: u64,
        how: String,
    },
    Tick,
    SetLevels(LogLevels),
    Fault(LinkFault, Reply<Done>),
    /// Stop the worker (interface gone or down, or shutdown) and this link.
    Stop {
        reason: String,
        reply: Option<RpcReplyPort<()>>,
    },
}

pub enum NetlinkMsg {
    /// Forget the events and read the interfaces afresh.
    Rescan,
    /// Kernel notifications in the order they came; `overrun` if some were
    /// lost before or among them.
    Kernel {
        msgs: Vec<rtnetlink::packet_route::RouteNetlinkMessage>,
        overrun: bool,
    },
    Panic,
}

pub enum MetricsMsg {
    /// Match the listener to the running config.
    Tick,
    Panic,
}

pub enum ControlMsg {
    Tick,
    Subscribe(RpcReplyPort<broadcast::Receiver<TimedEvent>>),
    DeleteSocket(Reply<Done>),
    Panic,
}

// ---- lookup and delivery ----

fn find<M: Message>(name: &str) -> Option<ActorRef<M>> {
    ractor::registry::where_is(name).map(ActorRef::from)
}

async fn call<M: Message, T: Send + 'static>(
    name: &str,
    f: impl FnOnce(RpcReplyPort<T>) -> M,
    timeout: Duration,
) -> Result<T, String> {
    let a = find::<M>(name).ok_or_else(|| format!("the {name} actor is restarting; try again"))?;
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

/// Send without waiting; an actor that is restarting drops the message.
/// Returns whether it was delivered to a mailbox.
fn tell<M: Message>(name: &str, msg: M) -> bool {
    find::<M>(name).is_some_and(|a| a.cast(msg).is_ok())
}

/// A typed handle: the registry name and message type of one actor.
macro_rules! handle {
    ($(#[$doc:meta])* $handle:ident, $msg:ty, $name:expr) => {
        $(#[$doc])*
        pub struct $handle;

        // Every handle offers the same calls; not every actor is asked
        // every way.
        #[allow(dead_code)]
        impl $handle {
            pub const NAME: &'static str = $name;

            /// Send without waiting (dropped while it restarts).
            pub fn tell(msg: $msg) -> bool {
                tell(Self::NAME, msg)
            }

            /// Ask and wait up to `CALL_TIMEOUT`.
            pub async fn call<T: Send + 'static>(
                f: impl FnOnce(RpcReplyPort<T>) -> $msg,
            ) -> Result<T, String> {
                call(Self::NAME, f, CALL_TIMEOUT).await
            }

            /// Ask and wait up to `timeout`.
            pub async fn call_within<T: Send + 'static>(
                f: impl FnOnce(RpcReplyPort<T>) -> $msg,
                timeout: Duration,
            ) -> Result<T, String> {
                call(Self::NAME, f, timeout).await
            }
        }
    };
}

handle!(
    /// The root supervisor.
    Root, RootMsg, ROOT
);
handle!(
    /// The ConfigActor: the running configuration.
    Config, ConfigMsg, "config"
);
handle!(
    /// The log-level broadcaster.
    LogLevel, LogLevelMsg, "loglevel"
);
handle!(
    /// The StatsActor: counters and rates.
    Stats, StatsMsg, "stats"
);
handle!(
    /// The RibActor: compiled tables and rule states.
    Rib, RibMsg, "rib"
);
handle!(
    /// The WorkerManager.
    Workers, WmMsg, "workers"
);
handle!(
    /// The NetlinkMonitor.
    Netlink, NetlinkMsg, "netlink"
);
handle!(
    /// The MetricsServer (Prometheus endpoint).
    Metrics, MetricsMsg, "metrics"
);
handle!(
    /// The ControlServer.
    Control, ControlMsg, "control"
);

impl Rib {
    pub async fn list() -> Result<Vec<RuleInfo>, String> {
        Self::call(RibMsg::List).await
    }

    pub async fn mroute() -> Result<Vec<MrouteEntry>, String> {
        Self::call(RibMsg::Mroute).await
    }
}

impl Workers {
    pub async fn list() -> Result<Vec<WorkerInfo>, String> {
        Self::call(WmMsg::List).await
    }
}

impl Stats {
    pub async fn get() -> Result<StatsReport, String> {
        Self::call(StatsMsg::Get).await
    }
}

/// The WorkerLink of one worker. Its name is fixed per worker, so the
/// process's IPC reader and exit watcher reach whichever link holds it.
pub struct Link;

impl Link {
    pub fn tell(name: &str, msg: LinkMsg) -> bool {
        tell(name, msg)
    }

    pub async fn call<T: Send + 'static>(
        name: &str,
        f: impl FnOnce(RpcReplyPort<T>) -> LinkMsg,
    ) -> Result<T, String> {
        call(name, f, CALL_TIMEOUT).await
    }
}

/// Whether an actor is registered under `name` (a stopping one still is).
pub fn is_registered(name: &str) -> bool {
    ractor::registry::where_is(name).is_some()
}

/// Fault injection: make the named actor panic. `Ok(false)`: it is not
/// running; `Err`: no such actor.
pub async fn panic_actor(name: &str) -> Result<bool, String> {
    if name.starts_with("worker/") {
        Link::call(name, |r| LinkMsg::Fault(LinkFault::Panic, r)).await??;
        return Ok(true);
    }
    if name == ROOT {
        return Ok(Root::tell(RootMsg::Panic));
    }
    let Some(child) = Child::from_name(name) else {
        let names: Vec<&str> = std::iter::once(ROOT)
            .chain(Child::ALL.iter().map(|c| c.name()))
            .collect();
        return Err(format!(
            "unknown actor {name:?}; actors are {}, worker/IFACE/N",
            names.join(", ")
        ));
    };
    Ok(match child {
        Child::LogLevel => LogLevel::tell(LogLevelMsg::Panic),
        Child::Config => Config::tell(ConfigMsg::Panic),
        Child::Stats => Stats::tell(StatsMsg::Panic),
        Child::Workers => Workers::tell(WmMsg::Panic),
        Child::Rib => Rib::tell(RibMsg::Panic),
        Child::Netlink => Netlink::tell(NetlinkMsg::Panic),
        Child::Metrics => Metrics::tell(MetricsMsg::Panic),
        Child::Control => Control::tell(ControlMsg::Panic),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_names_round_trip_and_are_distinct() {
        for c in Child::ALL {
            assert_eq!(Child::from_name(c.name()), Some(c));
            assert_ne!(c.name(), ROOT);
        }
        assert_eq!(Child::from_name("worker/eth0/0"), None);
        let k = WorkerKey {
            interface: "eth0".into(),
            index: 2,
        };
        assert_eq!(k.actor_name(), "worker/eth0/2");
        assert_eq!(k.to_string(), "eth0#2");
    }

    #[tokio::test]
    async fn unknown_actor_names_list_the_real_ones() {
        let e = panic_actor("bogus").await.unwrap_err();
        assert!(
            e.contains("root, loglevel, config, stats, workers, rib, netlink, metrics, control"),
            "{e}"
        );
        // Nothing is running in this test: a known name is "not running".
        assert_eq!(panic_actor("rib").await, Ok(false));
        assert!(Rib::list().await.unwrap_err().contains("restarting"));
    }
}
