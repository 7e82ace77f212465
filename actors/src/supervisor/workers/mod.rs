//! WorkerManager: decides which workers should exist (one per input
//! interface that has rules or runs PIM and is up, or one per pinned
//! core), tells each what PIM asks of it (first-packet upcalls on PIM
//! interfaces, the register tunnels' punts: `mcr::dataplane::upcall`),
//! supervises
//! one WorkerLink per worker (restart within a budget, as the root does
//! for its children: `mcr::supervise`), keeps the input group memberships
//! (`inputs`), and routes worker faults for drills.
//!
//! Submodules: `link` (the WorkerLink actor), `process` (a worker's
//! process and IPC), `table` (table translation and egress sockets),
//! `inputs` (memberships and sinks), `input_igmp` (the IGMP reports of
//! the input groups).

pub mod early_drop;
pub mod input_igmp;
pub mod inputs;
pub mod link;
pub mod process;
pub mod table;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcr::control::FaultRequest;
use mcr::iface::{self, Ifaces};
use mcr::ipc::{PimData, MAX_PUNT_FLOWS};
use mcr::rib::state::Tables;
use mcr::supervise::{RestartBudget, Verdict};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{debug, error, info, warn};

use self::link::{LinkArgs, WorkerLink};
use super::handles::{self, LinkFault, LinkMsg, Rib, RibMsg, WmMsg, WorkerKey};
use super::shared::Shared;
use super::util::{lock, spawn_ticker};

/// Restarts allowed per WorkerLink actor within `LINK_BUDGET_WINDOW`;
/// past that the WorkerManager fails, and the root restarts it (and
/// counts that against its own budget). The worker processes keep
/// running throughout: only the actors are restarted.
pub const LINK_RESTART_BUDGET: usize = 5;
pub const LINK_BUDGET_WINDOW: Duration = Duration::from_secs(10);

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
    /// Restart budget of each worker's link.
    budgets: HashMap<WorkerKey, RestartBudget>,
    /// Workers stopped because their interface went down or away, with
    /// the restart count their replacement starts from: to a user the
    /// worker that comes back with the interface is a restart of the old
    /// one, not a new worker that never failed.
    replaced: HashMap<WorkerKey, u32>,
    /// Most rules in the tables since freed memory was last returned.
    peak_rules: usize,
    /// Rules in the tables at the last tick, and whether a trim happened
    /// while they were still falling (see `trim_after_shrink`).
    last_rules: usize,
    trim_when_settled: bool,
    /// The register tunnels the PimActor last reported, by interface.
    punts: BTreeMap<String, Vec<(Ipv4Addr, Ipv4Addr)>>,
    /// What each link was last told of PIM.
    pim_sent: HashMap<WorkerKey, PimData>,
}

/// Return freed memory to the kernel once the tables have shrunk to less
/// than half of their peak, by at least this many rules: smaller shrinks
/// free too little to be worth the walk over the heap.
const TRIM_AFTER_SHRINK: usize = 200;

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
    /// Whether PIM runs on `ifc`: its workers upcall, and it has one even
    /// with no rules (a listen-only worker), so that traffic nothing
    /// forwards yet reaches PIM.
    fn pim_on(&self, ifc: &str) -> bool {
        self.shared
            .config()
            .pim
            .as_ref()
            .is_some_and(|p| p.enabled && p.interface(ifc).is_some())
    }

    fn pim_data(&self, ifc: &str) -> PimData {
        PimData {
            upcall: self.pim_on(ifc),
            // Capped here, not only where the worker decodes it: a longer
            // list would not encode (TooLarge) and the worker would get
            // none of it.
            punts: self
                .punts
                .get(ifc)
                .map(|p| p.iter().take(MAX_PUNT_FLOWS).copied().collect())
                .unwrap_or_default(),
        }
    }

    /// Workers that should exist, with their core.
    fn desired(&self) -> BTreeMap<WorkerKey, (Option<u32>, u32)> {
        let cfg = self.shared.config();
        let mut d = BTreeMap::new();
        let mut inputs: Vec<&String> = self
            .tables
            .iter()
            .filter(|(_, t)| !t.is_empty())
            .map(|(i, _)| i)
            .collect();
        let pim: Vec<&String> = self
            .ifaces
            .keys()
            .filter(|i| self.pim_on(i) && !inputs.contains(i))
            .collect();
        inputs.extend(pim);
        for ifc in inputs {
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
            if handles::is_registered(&key.actor_name()) {
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
                restarts: self.replaced.remove(key).unwrap_or(0),
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
                            let flapped = !ifc.is_some_and(|i| i.up);
                            if flapped && !self.replaced.contains_key(&key) {
                                let prev = lock(&self.shared.registry)
                                    .get(&key)
                                    .map(|s| lock(s).restarts)
                                    .unwrap_or(0);
                                self.replaced.insert(key.clone(), prev + 1);
                            }
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
        self.send_pim_data();
    }

    /// Tell every link what PIM asks of it now, if that changed.
    fn send_pim_data(&mut self) {
        let keys: Vec<WorkerKey> = self.links.keys().cloned().collect();
        for key in keys {
            let d = self.pim_data(&key.interface);
            if self.pim_sent.get(&key) == Some(&d) {
                continue;
            }
            if let Some(link) = self.links.get(&key) {
                if link.cast(LinkMsg::PimData(d.clone())).is_ok() {
                    self.pim_sent.insert(key, d);
                }
            }
        }
    }

    /// Make the input memberships and sinks match the tables, unless they
    /// were last made for exactly these tables and interfaces and no input
    /// IGMP reporter has failed since (reconciling starts it again; without
    /// this a failed reporter stayed dead until the tables next changed).
    fn reconcile_inputs(&mut self) {
        // The shutdown has left the input groups: joining them again now
        // would hold them past the daemon's end.
        if self.shared.is_shutting_down() {
            return;
        }
        let unchanged = self
            .inputs_for
            .as_ref()
            .is_some_and(|(t, i)| Arc::ptr_eq(t, &self.tables) && Arc::ptr_eq(i, &self.ifaces));
        if unchanged && !lock(&self.shared.inputs).take_failed() {
            return;
        }
        self.inputs_for = Some((self.tables.clone(), self.ifaces.clone()));
        lock(&self.shared.inputs).reconcile_shared(&self.tables, &self.ifaces);
    }

    /// After churn, give the memory the removed rules held back to the
    /// kernel (checked on the tick, so a burst of removals trims once or
    /// twice rather than per removal).
    /// A burst that trimmed while it ran trims once more when the count
    /// holds for a tick: single removals answer at once, so what the last
    /// of them free (queued tables, table syncs, events) is released after
    /// the mid-burst trim.
    fn trim_after_shrink(&mut self) {
        let rules: usize = self.tables.values().map(|t| t.len()).sum();
        if rules * 2 < self.peak_rules && self.peak_rules - rules >= TRIM_AFTER_SHRINK {
            debug!(target: "Supervisor", "rules fell from {} to {rules}; returning freed memory", self.peak_rules);
            mcr::sys::memory::return_free_memory();
            self.peak_rules = rules;
            self.trim_when_settled = true;
        } else if self.trim_when_settled && rules == self.last_rules {
            mcr::sys::memory::return_free_memory();
            self.trim_when_settled = false;
        }
        self.peak_rules = self.peak_rules.max(rules);
        self.last_rules = rules;
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
        let ticker = spawn_ticker(me, Duration::from_secs(1), || WmMsg::Tick);
        Ok(WmState {
            shared,
            tables: Arc::new(Tables::new()),
            ifaces: Arc::new(iface::scan()),
            links: BTreeMap::new(),
            by_id: HashMap::new(),
            ticker,
            sent: HashMap::new(),
            inputs_for: None,
            budgets: HashMap::new(),
            replaced: HashMap::new(),
            peak_rules: 0,
            last_rules: 0,
            trim_when_settled: false,
            punts: BTreeMap::new(),
            pim_sent: HashMap::new(),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<WmMsg>,
        st: &mut WmState,
    ) -> Result<(), ActorProcessingErr> {
        // After a restart the RIB is up already: take its tables. At first
        // start it is not there yet and pushes them once it starts.
        if handles::is_registered(Rib::NAME) {
            match Rib::call_within(RibMsg::Tables, Duration::from_secs(2)).await {
                Ok((tables, ifaces)) => {
                    st.tables = tables;
                    st.ifaces = ifaces;
                    st.reconcile(&myself).await;
                }
                Err(e) => {
                    warn!(target: "Supervisor", "no tables from the RIB yet ({e}); waiting for its next push")
                }
            }
        }
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
                // A burst of adds and removes can come and go between two
                // ticks: its peak must still count for the trim.
                let rules: usize = st.tables.values().map(|t| t.len()).sum();
                st.peak_rules = st.peak_rules.max(rules);
                st.reconcile(&myself).await;
            }
            WmMsg::Tick => {
                st.reconcile(&myself).await;
                st.trim_after_shrink();
            }
            WmMsg::Punts(p) => {
                st.punts = p;
                st.send_pim_data();
            }
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
            WmMsg::Ops(o) => o.run("workers").await,
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
                    st.pim_sent.remove(&key);
                    let budget = st.budgets.entry(key.clone()).or_insert_with(|| {
                        RestartBudget::new(LINK_RESTART_BUDGET, LINK_BUDGET_WINDOW)
                    });
                    let recent = match budget.record(Instant::now()) {
                        Verdict::Restart { recent } => recent,
                        Verdict::GiveUp { recent } => {
                            let msg = format!(
                                "the link of worker {key} failed {recent} times within {LINK_BUDGET_WINDOW:?} (budget {LINK_RESTART_BUDGET}); last failure: {err}"
                            );
                            error!(target: "Supervisor", "{msg}; escalating");
                            // Fail ourselves: the root restarts us within
                            // its own budget, and the new manager starts
                            // the link afresh.
                            return Err(msg.into());
                        }
                    };
                    warn!(target: "Supervisor", "link for worker {key} failed ({err}); restarting it");
                    st.shared.publish(mcr::control::Event::ActorRestarted {
                        name: key.actor_name(),
                        restarts: recent as u32,
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
                    st.pim_sent.remove(&key);
                    info!(target: "Supervisor", "link for worker {key} stopped: {}", reason.unwrap_or_default());
                    // An interface deleted and re-created (or downed and
                    // upped) while this link was still stopping wants a
                    // worker again at once, not at the next tick: its rules
                    // already show active.
                    st.reconcile(&myself).await;
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
