//! WorkerManager: decides which workers should exist (one per input
//! interface that has rules and is up, or one per pinned core), supervises
//! one WorkerLink per worker, joins every input group on its input
//! interface so that switches and NICs deliver it, and routes worker
//! faults for drills.

pub mod link;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use mcr::control::{Done, FaultRequest, WorkerInfo};
use mcr::dataplane::sockets::{open_sink, Memberships};
use mcr::logging::LogLevels;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tracing::{debug, info, warn};

use self::link::{LinkArgs, LinkFault, LinkMsg, WorkerLink};
use super::rib_actor::{self, scan_interfaces, Ifaces, RibMsg, Tables};
use super::{lock, Shared, WorkerKey};

pub const NAME: &str = "workers";

/// Sockets that make input traffic arrive: group memberships, and sinks
/// for unicast inputs (so the kernel does not answer with ICMP
/// port-unreachable). Kept by the root so they survive our restarts: a
/// restart must not make the host leave its groups.
#[derive(Default)]
pub struct InputSockets {
    pub memberships: Memberships,
    pub sinks: BTreeMap<(Ipv4Addr, u16), OwnedFd>,
}

pub enum WmMsg {
    Tables(Arc<Tables>, Arc<Ifaces>),
    Interfaces(Arc<Ifaces>),
    SetLevels(LogLevels),
    List(RpcReplyPort<Vec<WorkerInfo>>),
    Fault(FaultRequest, RpcReplyPort<Result<Done, String>>),
    StopAll(RpcReplyPort<()>),
    Tick,
    Panic,
}

pub struct WorkerManager;

pub struct WmState {
    shared: Arc<Shared>,
    tables: Arc<Tables>,
    ifaces: Arc<Ifaces>,
    links: BTreeMap<WorkerKey, ActorRef<LinkMsg>>,
    by_id: HashMap<ActorId, WorkerKey>,
    ticker: tokio::task::JoinHandle<()>,
    /// What each link was last sent, so that the periodic reconcile only
    /// sends changes: re-translating 10 000 unchanged rules every second
    /// costs the CPU the data plane needs.
    sent: HashMap<WorkerKey, Sent>,
    /// The tables and interfaces the input memberships were last made for.
    inputs_for: Option<(Arc<Tables>, Arc<Ifaces>)>,
}

/// What a link was sent. The shared tables are compared by identity:
/// holding them keeps their addresses from being reused by newer ones.
struct Sent {
    table: Arc<mcr::rib::InterfaceTable>,
    ifaces: Arc<Ifaces>,
    nworkers: u32,
    core: Option<u32>,
}

impl PartialEq for Sent {
    fn eq(&self, o: &Sent) -> bool {
        // Every empty table is the same table.
        let same_table =
            Arc::ptr_eq(&self.table, &o.table) || (self.table.is_empty() && o.table.is_empty());
        same_table
            && Arc::ptr_eq(&self.ifaces, &o.ifaces)
            && self.nworkers == o.nworkers
            && self.core == o.core
    }
}

impl Drop for WmState {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}

impl WmState {
    /// Workers that should exist, with their core.
    fn desired(&self) -> BTreeMap<WorkerKey, (Option<u32>, u32)> {
        let cfg = self.shared.config();
        let mut d = BTreeMap::new();
        for (ifc, table) in self.tables.iter() {
            if table.is_empty() {
                continue;
            }
            match self.ifaces.get(ifc) {
                Some(i) if i.up => {}
                _ => continue,
            }
            let cores = cfg.pinning.get(ifc);
            let n = cfg.workers_for(ifc) as u32;
            for index in 0..n {
                let core = cores.and_then(|c| c.get(index as usize).copied());
                d.insert(
                    WorkerKey {
                        interface: ifc.clone(),
                        index,
                    },
                    (core, n),
                );
            }
        }
        d
    }

    fn table_for(&self, ifc: &str) -> Arc<mcr::rib::InterfaceTable> {
        self.tables.get(ifc).cloned().unwrap_or_default()
    }

    fn identity(
        &self,
        table: &Arc<mcr::rib::InterfaceTable>,
        nworkers: u32,
        core: Option<u32>,
    ) -> Sent {
        Sent {
            table: table.clone(),
            ifaces: self.ifaces.clone(),
            nworkers,
            core,
        }
    }

    /// Send a link its table, unless it has exactly this already.
    fn send_table(
        &mut self,
        key: &WorkerKey,
        table: Arc<mcr::rib::InterfaceTable>,
        nworkers: u32,
        core: Option<u32>,
    ) {
        let id = self.identity(&table, nworkers, core);
        if self.sent.get(key) == Some(&id) {
            return;
        }
        if let Some(link) = self.links.get(key) {
            let _ = link.cast(LinkMsg::SetTable {
                table,
                ifaces: self.ifaces.clone(),
                nworkers,
                core,
            });
            self.sent.insert(key.clone(), id);
        }
    }

    async fn reconcile(&mut self, myself: &ActorRef<WmMsg>) {
        if self.shared.is_shutting_down() {
            return;
        }
        let desired = self.desired();
        // Start missing links.
        for (key, (core, n)) in &desired {
            if self.links.contains_key(key) {
                continue;
            }
            if ractor::registry::where_is(key.actor_name()).is_some() {
                // The previous link for this key is still stopping; the
                // next tick retries.
                continue;
            }
            let table = self.table_for(&key.interface);
            let id = self.identity(&table, *n, *core);
            let args = LinkArgs {
                key: key.clone(),
                shared: self.shared.clone(),
                table,
                ifaces: self.ifaces.clone(),
                nworkers: *n,
                core: *core,
            };
            match Actor::spawn_linked(Some(key.actor_name()), WorkerLink, args, myself.get_cell())
                .await
            {
                Ok((r, _)) => {
                    debug!(target: "Supervisor", "link for worker {key} started");
                    self.by_id.insert(r.get_id(), key.clone());
                    self.links.insert(key.clone(), r);
                    self.sent.insert(key.clone(), id);
                }
                Err(e) => {
                    warn!(target: "Supervisor", "cannot start the link for worker {key}: {e}")
                }
            }
        }
        // Update or stop existing ones.
        let keys: Vec<WorkerKey> = self.links.keys().cloned().collect();
        for key in keys {
            match desired.get(&key) {
                Some((core, n)) => {
                    let table = self.table_for(&key.interface);
                    self.send_table(&key, table, *n, *core);
                }
                None => {
                    let ifc = self.ifaces.get(&key.interface);
                    let table = self.table_for(&key.interface);
                    let extra_index =
                        key.index as usize >= self.shared.config().workers_for(&key.interface);
                    let stop = if ifc.is_none() {
                        Some(format!("interface {} is gone", key.interface))
                    } else if !ifc.is_some_and(|i| i.up) {
                        Some(format!("interface {} is down", key.interface))
                    } else if extra_index && !table.is_empty() {
                        Some("pinning now asks for fewer workers".to_string())
                    } else {
                        None
                    };
                    match stop {
                        Some(reason) => {
                            if let Some(link) = self.links.get(&key) {
                                let _ = link.cast(LinkMsg::Stop {
                                    reason,
                                    reply: None,
                                });
                            }
                        }
                        // No rules left: the link idles out on its own.
                        None => self.send_table(&key, table, 1, None),
                    }
                }
            }
        }
        self.reconcile_inputs();
    }

    /// Join the multicast input groups of every table on its interface,
    /// leave the ones no rule needs, and sink local unicast input ports.
    fn reconcile_inputs(&mut self) {
        if self
            .inputs_for
            .as_ref()
            .is_some_and(|(t, i)| Arc::ptr_eq(t, &self.tables) && Arc::ptr_eq(i, &self.ifaces))
        {
            return;
        }
        self.inputs_for = Some((self.tables.clone(), self.ifaces.clone()));
        let mut want_groups: BTreeSet<(u32, Ipv4Addr)> = BTreeSet::new();
        let mut want_sinks: BTreeSet<(Ipv4Addr, u16)> = BTreeSet::new();
        for (ifc, table) in self.tables.iter() {
            let Some(info) = self.ifaces.get(ifc) else {
                continue;
            };
            for r in table.iter() {
                if r.group.is_multicast() {
                    want_groups.insert((info.ifindex, r.group));
                } else if r.port != 0 && info.addrs.contains(&r.group) {
                    want_sinks.insert((r.group, r.port));
                }
            }
        }
        let mut inputs = lock(&self.shared.inputs);
        let live: BTreeSet<u32> = self.ifaces.values().map(|i| i.ifindex).collect();
        let joined: Vec<(u32, Ipv4Addr)> = inputs.memberships.joined().collect();
        for (ifindex, group) in joined {
            if !live.contains(&ifindex) {
                inputs.memberships.forget_interface(ifindex);
            } else if !want_groups.contains(&(ifindex, group)) {
                if let Err(e) = inputs.memberships.leave(ifindex, group) {
                    debug!(target: "Network", "leaving {group} on ifindex {ifindex}: {e}");
                }
            }
        }
        for (ifindex, group) in &want_groups {
            if !inputs.memberships.is_joined(*ifindex, *group) {
                match inputs.memberships.join(*ifindex, *group) {
                    Ok(()) => debug!(target: "Network", "joined {group} on ifindex {ifindex}"),
                    Err(e) => {
                        warn!(target: "Network", "cannot join {group} on ifindex {ifindex}: {e}")
                    }
                }
            }
        }
        inputs.sinks.retain(|k, _| want_sinks.contains(k));
        for (addr, port) in want_sinks {
            if let std::collections::btree_map::Entry::Vacant(e) = inputs.sinks.entry((addr, port))
            {
                match open_sink(addr, port) {
                    Ok(fd) => {
                        e.insert(fd);
                    }
                    // Someone else listens there: they will answer instead.
                    Err(err) => debug!(target: "Network", "no sink on {addr}:{port}: {err}"),
                }
            }
        }
    }

    fn pick(&self, interface: &Option<String>) -> Result<ActorRef<LinkMsg>, String> {
        let found = match interface {
            Some(i) => self.links.iter().find(|(k, _)| &k.interface == i),
            None => self.links.iter().next(),
        };
        found
            .map(|(_, r)| r.clone())
            .ok_or_else(|| match interface {
                Some(i) => format!("no worker for interface {i}"),
                None => "no worker is running".to_string(),
            })
    }
}

impl Actor for WorkerManager {
    type Msg = WmMsg;
    type State = WmState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        myself: ActorRef<WmMsg>,
        shared: Arc<Shared>,
    ) -> Result<WmState, ActorProcessingErr> {
        let me = myself.clone();
        let ticker = crate::supervisor::spawn_ticker(me, Duration::from_secs(1), || WmMsg::Tick);
        Ok(WmState {
            shared,
            tables: Arc::new(Tables::new()),
            ifaces: Arc::new(scan_interfaces()),
            links: BTreeMap::new(),
            by_id: HashMap::new(),
            ticker,
            sent: HashMap::new(),
            inputs_for: None,
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<WmMsg>,
        _st: &mut WmState,
    ) -> Result<(), ActorProcessingErr> {
        // After a restart the RIB is up already and must resend; at first
        // start it pushes on its own once it starts.
        super::cast(rib_actor::NAME, RibMsg::PushTables);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<WmMsg>,
        msg: WmMsg,
        st: &mut WmState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WmMsg::Tables(tables, ifaces) => {
                st.tables = tables;
                st.ifaces = ifaces;
                st.reconcile(&myself).await;
            }
            WmMsg::Interfaces(ifaces) => {
                st.ifaces = ifaces;
                st.reconcile(&myself).await;
            }
            WmMsg::Tick => st.reconcile(&myself).await,
            WmMsg::SetLevels(levels) => {
                for l in st.links.values() {
                    let _ = l.cast(LinkMsg::SetLevels(levels.clone()));
                }
            }
            WmMsg::List(reply) => {
                let reg: Vec<_> = lock(&st.shared.registry).values().cloned().collect();
                let v = reg.iter().map(|s| lock(s).info()).collect();
                let _ = reply.send(v);
            }
            WmMsg::Fault(f, reply) => {
                let (link, lf) = match f {
                    FaultRequest::KillWorker { interface } => {
                        (st.pick(&interface), LinkFault::Kill)
                    }
                    FaultRequest::StallWorker { interface } => {
                        (st.pick(&interface), LinkFault::Stall)
                    }
                    FaultRequest::CorruptTable { interface } => {
                        (st.pick(&interface), LinkFault::CorruptTable)
                    }
                    FaultRequest::DropIpc { count, interface } => {
                        (st.pick(&interface), LinkFault::DropIpc(count))
                    }
                    FaultRequest::CrashLoop { count, interface } => {
                        (st.pick(&interface), LinkFault::CrashLoop(count))
                    }
                    other => {
                        let _ = reply.send(Err(format!("{other:?} is not a worker fault")));
                        return Ok(());
                    }
                };
                match link {
                    Ok(l) => {
                        let _ = l.cast(LinkMsg::Fault(lf, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            WmMsg::StopAll(reply) => {
                let mut set = tokio::task::JoinSet::new();
                for l in st.links.values() {
                    let l = l.clone();
                    set.spawn(async move {
                        let _ = l
                            .call(
                                |r| LinkMsg::Stop {
                                    reason: "daemon shutting down".into(),
                                    reply: Some(r),
                                },
                                Some(Duration::from_secs(4)),
                            )
                            .await;
                    });
                }
                while set.join_next().await.is_some() {}
                kill_all(&st.shared);
                let _ = reply.send(());
            }
            WmMsg::Panic => panic!("fault injection: worker manager panic requested"),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<WmMsg>,
        evt: SupervisionEvent,
        st: &mut WmState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorFailed(cell, err) => {
                if let Some(key) = st.by_id.remove(&cell.get_id()) {
                    st.links.remove(&key);
                    st.sent.remove(&key);
                    warn!(target: "Supervisor", "link for worker {key} failed ({err}); restarting it");
                    st.shared.publish(mcr::control::Event::ActorRestarted {
                        name: key.actor_name(),
                        restarts: 1,
                        reason: err.to_string(),
                    });
                    // Its worker process keeps running; the new link adopts
                    // it from the registry.
                    st.reconcile(&myself).await;
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if let Some(key) = st.by_id.remove(&cell.get_id()) {
                    st.links.remove(&key);
                    st.sent.remove(&key);
                    info!(target: "Supervisor", "link for worker {key} stopped: {}", reason.unwrap_or_default());
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Kill every worker process still registered (final shutdown).
pub fn kill_all(shared: &Shared) {
    let entries: Vec<_> = std::mem::take(&mut *lock(&shared.registry))
        .into_values()
        .collect();
    for e in entries {
        // Dropping the process handle kills it if it is still alive.
        lock(&e).proc.take();
    }
}
