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

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use mcr::control::{
    ConfigCheckResult, ConfigText, Done, MrouteEntry, RuleInfo, StatsReport, StatusReport,
    TimedEvent, VersionInfo, WorkerInfo,
};
use mcr::iface::Ifaces;
use mcr::igmp::Snapshot as IgmpSnapshot;
use mcr::igmp::{HostFilter, IgmpParams};
use mcr::ipc::{FromWorker, RuleCounters, WorkerCounters};
use mcr::logging::{Facility, LogLevels, Severity};
use mcr::pim::instance::{
    AssertSnapshot, InterfaceSnapshot, NeighborSnapshot, RegisterReport, RpSnapshot, RpfResult,
    UpstreamSnapshot,
};
use mcr::rib::learned::Memberships;
use mcr::rib::state::{Tables, WorkerView};
use mcr::rib::{InterfaceTable, Origin, Route, SourceFilter};
use mcr::rule::{Rule, RuleInput, RuleOutput, RuleSet};
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
    Protocols,
    Metrics,
    Control,
}

impl Child {
    pub const ALL: [Child; 9] = [
        Child::LogLevel,
        Child::Config,
        Child::Stats,
        Child::Workers,
        Child::Rib,
        Child::Netlink,
        Child::Protocols,
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
            Child::Protocols => "protocols",
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

/// What every actor answers the same way: the watchdog's round-trip and
/// the wedge drill. Each actor's message enum carries it as `Ops`.
pub enum Ops {
    /// Answered as soon as the actor's handler is free.
    Ping(RpcReplyPort<()>),
    /// Fault injection: hold this actor's handler for the duration, as a
    /// deadlocked or stuck handler would.
    Wedge(Duration),
}

impl Ops {
    pub async fn run(self, name: &str) {
        match self {
            Ops::Ping(r) => {
                let _ = r.send(());
            }
            Ops::Wedge(d) => {
                tracing::warn!(target: "Supervisor", "fault injection: actor {name} wedged for {d:?}");
                tokio::time::sleep(d).await;
                tracing::info!(target: "Supervisor", "actor {name} no longer wedged");
            }
        }
    }
}

pub enum RootMsg {
    Ops(Ops),
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
    Ops(Ops),
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
    Ops(Ops),
    Apply(LogLevels),
    Panic,
}

// A report comes once per stats interval per worker, so a wide message in
// the mailbox costs nothing that matters; boxing the counters would only add
// an allocation to every report.
#[allow(clippy::large_enum_variant)]
pub enum StatsMsg {
    Ops(Ops),
    Report {
        key: WorkerKey,
        pid: u32,
        counters: WorkerCounters,
        rules: Vec<RuleCounters>,
        last: bool,
    },
    Forget(WorkerKey),
    Get(RpcReplyPort<StatsReport>),
    /// Packets counted so far by each rule (input interface, rule key),
    /// summed over the interface's workers; `None` where no worker has
    /// reported the rule.
    RulePackets(Vec<(String, u64)>, RpcReplyPort<Vec<Option<u64>>>),
    Panic,
}

pub enum RibMsg {
    Ops(Ops),
    /// The whole static rule set (start, `config load`, reload).
    Rules(Arc<RuleSet>),
    /// A few static rules added and removed (by id), already validated
    /// against the running set: one `add` or `remove`, applied in place.
    RuleDelta {
        added: Vec<Rule>,
        removed: Vec<String>,
    },
    /// Sent by the RibActor to itself after the first `RuleDelta` of a
    /// burst: compile once for every delta queued before it.
    FlushRules,
    /// Add or replace a learned route (identity: origin, source, group).
    Route {
        origin: Origin,
        route: Route,
    },
    /// Remove one learned route.
    Withdraw {
        origin: Origin,
        source: Option<Ipv4Addr>,
        group: Ipv4Addr,
    },
    /// Remove every route of one origin (its protocol stopped).
    WithdrawOrigin(Origin),
    /// Make this the whole route set of one origin, in one recompile (no
    /// gap for routes in both the old and the new set).
    ReplaceOrigin {
        origin: Origin,
        routes: Vec<Route>,
    },
    /// Set an interface's membership in a group (INCLUDE {} leaves).
    Join {
        interface: String,
        group: Ipv4Addr,
        filter: SourceFilter,
    },
    Leave {
        interface: String,
        group: Ipv4Addr,
    },
    /// Remove every membership of an interface.
    LeaveInterface(String),
    /// Replace the whole membership set of one interface: what a restarted
    /// IGMP actor sends once it has re-learned, so that memberships
    /// survive its restart until then.
    Memberships {
        interface: String,
        groups: Vec<(Ipv4Addr, SourceFilter)>,
    },
    /// Every membership (a starting PimActor asks; later changes are
    /// pushed to it as `PimMsg::Memberships`).
    MembershipSnapshot(RpcReplyPort<Memberships>),
    /// The learned routes of one origin (a restarted protocol actor asks,
    /// to keep its predecessor's routes while it re-learns).
    OriginRoutes(Origin, RpcReplyPort<Vec<Route>>),
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
    Ops(Ops),
    Tables(Arc<Tables>, Arc<Ifaces>),
    SetLevels(LogLevels),
    List(RpcReplyPort<Vec<WorkerInfo>>),
    Fault(mcr::control::FaultRequest, Reply<Done>),
    StopAll(RpcReplyPort<()>),
    Tick,
    /// Every register tunnel, by the interface of its source (from the
    /// PimActor, whole on every change): their packets are punted.
    Punts(BTreeMap<String, Vec<(Ipv4Addr, Ipv4Addr)>>),
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

/// What `mcrctl trace` asks of one worker (rules by table key).
#[derive(Clone, Debug)]
pub enum TraceOp {
    Enable { key: u64, count: u32 },
    Disable { key: u64 },
    Get { key: Option<u64> },
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
    /// `mcrctl trace`: carried to the worker process; `Get` is answered
    /// with its report, the others with nothing once sent.
    Trace(TraceOp, Reply<Vec<mcr::ipc::trace::RuleTrace>>),
    /// What PIM asks of this worker now (upcalls, register punts).
    PimData(mcr::ipc::PimData),
    /// Stop the worker (interface gone or down, or shutdown) and this link.
    Stop {
        reason: String,
        reply: Option<RpcReplyPort<()>>,
    },
}

pub enum NetlinkMsg {
    Ops(Ops),
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

mod protocol_msgs;
pub use protocol_msgs::{IgmpMsg, IgmpProxyMsg, PimMsg};

pub enum ProtocolsMsg {
    Ops(Ops),
    /// Compare the protocol actors with the running config and start or
    /// stop the difference (also done every second).
    Reconcile,
    Panic,
}

pub enum MetricsMsg {
    Ops(Ops),
    /// Match the listener to the running config.
    Tick,
    Panic,
}

pub enum ControlMsg {
    Ops(Ops),
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
    /// The IGMP proxy's upstream side, when `igmp.proxy` is configured.
    IgmpProxy, IgmpProxyMsg, "igmp-proxy"
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
    /// The PimActor: PIM-SM neighbors and DR.
    Pim, PimMsg, "pim"
);
handle!(
    /// The ProtocolSupervisor; its children are `protocols/<key>`.
    Protocols, ProtocolsMsg, "protocols"
);
handle!(
    /// The MetricsServer (Prometheus endpoint).
    Metrics, MetricsMsg, "metrics"
);
handle!(
    /// The ControlServer.
    Control, ControlMsg, "control"
);

/// What protocol actors tell the RIB. Each returns whether the message
/// reached the RIB's mailbox; one sent while the RIB restarts is lost, and
/// the protocol re-announces (the RIB keeps no learned state across its
/// own restart: see `rib_actor`). The protocol actors under the
/// ProtocolSupervisor are their callers, so with no protocol configured
/// some are unused.
#[allow(dead_code)]
impl Rib {
    pub fn route(origin: Origin, route: Route) -> bool {
        Self::tell(RibMsg::Route { origin, route })
    }

    pub fn withdraw(origin: Origin, source: Option<Ipv4Addr>, group: Ipv4Addr) -> bool {
        Self::tell(RibMsg::Withdraw {
            origin,
            source,
            group,
        })
    }

    pub fn withdraw_origin(origin: Origin) -> bool {
        Self::tell(RibMsg::WithdrawOrigin(origin))
    }

    pub fn replace_origin(origin: Origin, routes: Vec<Route>) -> bool {
        Self::tell(RibMsg::ReplaceOrigin { origin, routes })
    }

    pub fn join(interface: &str, group: Ipv4Addr, filter: SourceFilter) -> bool {
        Self::tell(RibMsg::Join {
            interface: interface.to_string(),
            group,
            filter,
        })
    }

    pub fn leave(interface: &str, group: Ipv4Addr) -> bool {
        Self::tell(RibMsg::Leave {
            interface: interface.to_string(),
            group,
        })
    }

    pub fn leave_interface(interface: &str) -> bool {
        Self::tell(RibMsg::LeaveInterface(interface.to_string()))
    }

    pub fn memberships(interface: &str, groups: Vec<(Ipv4Addr, SourceFilter)>) -> bool {
        Self::tell(RibMsg::Memberships {
            interface: interface.to_string(),
            groups,
        })
    }
}

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

    pub async fn rule_packets(rules: Vec<(String, u64)>) -> Result<Vec<Option<u64>>, String> {
        Self::call(|r| StatsMsg::RulePackets(rules, r)).await
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

/// The IgmpActor of one querier interface; one per interface, so the
/// name carries the interface like a WorkerLink's does.
pub struct Igmp;

impl Igmp {
    pub fn actor_name(interface: &str) -> String {
        format!("igmp/{interface}")
    }

    pub fn tell(interface: &str, msg: IgmpMsg) -> bool {
        tell(&Self::actor_name(interface), msg)
    }

    pub async fn snapshot(interface: &str) -> Result<IgmpSnapshot, String> {
        call(
            &Self::actor_name(interface),
            IgmpMsg::Snapshot,
            CALL_TIMEOUT,
        )
        .await
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
    // The protocol actors run under the ProtocolSupervisor, not the root,
    // but keep their short names so that operators need not know that.
    if let Some(interface) = name.strip_prefix("igmp/") {
        return Ok(Igmp::tell(interface, IgmpMsg::Panic));
    }
    if name == Pim::NAME {
        return Ok(Pim::tell(PimMsg::Panic));
    }
    if name == IgmpProxy::NAME {
        return Ok(IgmpProxy::tell(IgmpProxyMsg::Panic));
    }
    let Some(child) = Child::from_name(name) else {
        return Err(unknown_actor(name));
    };
    Ok(match child {
        Child::LogLevel => LogLevel::tell(LogLevelMsg::Panic),
        Child::Config => Config::tell(ConfigMsg::Panic),
        Child::Stats => Stats::tell(StatsMsg::Panic),
        Child::Workers => Workers::tell(WmMsg::Panic),
        Child::Rib => Rib::tell(RibMsg::Panic),
        Child::Netlink => Netlink::tell(NetlinkMsg::Panic),
        Child::Protocols => Protocols::tell(ProtocolsMsg::Panic),
        Child::Metrics => Metrics::tell(MetricsMsg::Panic),
        Child::Control => Control::tell(ControlMsg::Panic),
    })
}

/// Every child's message enum wraps `Ops` the same way.
fn ops_msg(child: Child, o: Ops) -> bool {
    match child {
        Child::LogLevel => LogLevel::tell(LogLevelMsg::Ops(o)),
        Child::Config => Config::tell(ConfigMsg::Ops(o)),
        Child::Stats => Stats::tell(StatsMsg::Ops(o)),
        Child::Workers => Workers::tell(WmMsg::Ops(o)),
        Child::Rib => Rib::tell(RibMsg::Ops(o)),
        Child::Netlink => Netlink::tell(NetlinkMsg::Ops(o)),
        Child::Control => Control::tell(ControlMsg::Ops(o)),
        Child::Protocols => Protocols::tell(ProtocolsMsg::Ops(o)),
        Child::Metrics => Metrics::tell(MetricsMsg::Ops(o)),
    }
}

/// Fault injection: hold the named actor's handler for `d`. `Ok(false)`:
/// it is not running; `Err`: no such actor.
pub fn wedge_actor(name: &str, d: Duration) -> Result<bool, String> {
    if name == ROOT {
        return Ok(Root::tell(RootMsg::Ops(Ops::Wedge(d))));
    }
    if name == Pim::NAME {
        return Ok(Pim::tell(PimMsg::Ops(Ops::Wedge(d))));
    }
    let child = Child::from_name(name).ok_or_else(|| unknown_actor(name))?;
    Ok(ops_msg(child, Ops::Wedge(d)))
}

/// The watchdog's health check: the root and each of its children answer
/// a ping within `timeout`. The pings go out together, so a healthy tree
/// answers in one round-trip. Names the actors that did not answer. The
/// protocol actors are the ProtocolSupervisor's children, not the root's:
/// its answer stands for its subtree.
pub async fn tree_answers(timeout: Duration) -> Result<(), String> {
    let one = |name: &'static str, child: Option<Child>| async move {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let port = RpcReplyPort::from(tx);
        let sent = match child {
            None => Root::tell(RootMsg::Ops(Ops::Ping(port))),
            Some(c) => ops_msg(c, Ops::Ping(port)),
        };
        let ok = sent && matches!(tokio::time::timeout(timeout, rx).await, Ok(Ok(())));
        (name, ok)
    };
    let checks = std::iter::once((ROOT, None))
        .chain(Child::ALL.map(|c| (c.name(), Some(c))))
        .map(|(name, child)| one(name, child));
    let silent: Vec<&str> = futures_util::future::join_all(checks)
        .await
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| n)
        .collect();
    if silent.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "no answer within {timeout:?} from {}",
            silent.join(", ")
        ))
    }
}

fn unknown_actor(name: &str) -> String {
    let names: Vec<&str> = std::iter::once(ROOT)
        .chain(Child::ALL.iter().map(|c| c.name()))
        .collect();
    format!(
        "unknown actor {name:?}; actors are {}, worker/IFACE/N, igmp/IFACE, igmp-proxy, pim",
        names.join(", ")
    )
}

#[cfg(test)]
mod tests;
