//! ProtocolSupervisor: a child of the root that starts, stops and restarts
//! the protocol actors (IGMP per interface, PIM, later MSDP) that the
//! running config asks for.
//!
//! Owns which protocol actors run and their restart budget. Each child is
//! a thin shell around a sans-I/O core in `mcr` (`mcr::igmp`, `mcr::pim`):
//! it owns the sockets and timers, feeds the core, and tells the RIB what
//! it learned (`handles::Rib::route`, `join`, `memberships`, ...).
//!
//! Children are identified by a key, `igmp/<ifname>` or `pim`, which is
//! also their registry name (`handles::Igmp`, `handles::Pim`, and what
//! `mcrctl fault panic-actor` takes); `mcrctl status` lists them as
//! `root/protocols/<key>`. Every `RECONCILE_EVERY` (and on
//! `ProtocolsMsg::Reconcile`) the supervisor compares the children the
//! config wants (`wanted`) with those running (`plan`) and starts or stops
//! the difference, so a config reload that adds or removes a protocol
//! takes effect without a restart.
//!
//! Failure policy (one-for-one, as the root's): a child that panics or
//! stops on its own is restarted alone, within `PROTOCOL_RESTART_BUDGET`
//! failures per `PROTOCOL_BUDGET_WINDOW` (`mcr::supervise::RestartBudget`).
//! Past the budget the supervisor stops its children and fails; the root
//! restarts it against the root's own budget, and the new supervisor
//! starts every wanted child afresh. Forwarding never depends on this
//! subtree: the workers keep their tables whatever happens here.
//!
//! # Adding a protocol
//!
//! In `protocols/<proto>.rs`, implement `ProtocolChild` for a small value
//! that names one actor (e.g. `IgmpChild { interface }`): `key()` gives
//! its key, `spawn()` calls the actor's `spawn_linked(name, ..,
//! supervisor)`. Then add one line to `wanted` that turns the protocol's
//! config section into such values. Nothing else here changes.

pub mod igmp;
pub mod igmp_metrics;
pub mod igmp_proxy;
pub mod pim;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcr::config::Config;
use mcr::supervise::{RestartBudget, Verdict};
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{error, info, warn};

use super::handles::{self, Protocols, ProtocolsMsg};
use super::shared::Shared;
use super::util::{child_down, spawn_ticker};

/// Failures allowed per child within `PROTOCOL_BUDGET_WINDOW`.
pub const PROTOCOL_RESTART_BUDGET: usize = 5;
pub const PROTOCOL_BUDGET_WINDOW: Duration = Duration::from_secs(10);
/// How often the children are compared with the running config.
const RECONCILE_EVERY: Duration = Duration::from_secs(1);

/// What `ProtocolChild::spawn` returns: the started actor's cell.
pub type SpawnFuture = Pin<Box<dyn Future<Output = Result<ActorCell, ActorProcessingErr>> + Send>>;

/// One protocol actor the supervisor can start. See "Adding a protocol".
pub trait ProtocolChild: Send + Sync + 'static {
    /// Stable identity: `igmp/<ifname>`, `pim`. Two values with the same
    /// key are the same child; a changed key is a stop and a start.
    fn key(&self) -> String;

    /// Start the actor under the registry name `name`, linked to
    /// `supervisor` so that its failures reach the ProtocolSupervisor.
    fn spawn(&self, name: String, shared: Arc<Shared>, supervisor: ActorCell) -> SpawnFuture;

    /// The config no longer asks for this child and it has stopped: undo
    /// what outlives the actor (an IGMP querier's memberships in the RIB
    /// survive its restarts, but not its removal).
    fn retired(&self) {}

    /// The child runs and the config still wants it, perhaps with other
    /// settings (called on every reconcile): hand it what a reload may
    /// have changed that does not change its key (an IGMP querier's
    /// timers), so it applies them without a restart.
    fn reconfigure(&self) {}
}

/// The children a config asks for, by key.
pub type Wanted = BTreeMap<String, Arc<dyn ProtocolChild>>;

/// How the supervisor learns what is wanted (tests give their own).
pub type WantedFn = fn(&Config) -> Wanted;

/// The protocol children the running config asks for. One line per
/// protocol goes here; a config without protocol sections wants none, and
/// the supervisor then runs with no children.
pub fn wanted(cfg: &Config) -> Wanted {
    let mut children: Vec<Arc<dyn ProtocolChild>> = Vec::new();
    children.extend(igmp::children(cfg));
    children.extend(igmp_proxy::children(cfg));
    children.extend(pim::children(cfg));
    children.into_iter().map(|c| (c.key(), c)).collect()
}

/// Name of the child with `key` in the actor records (`mcrctl status`
/// shows it under `root/`). The registry name is the key itself.
pub fn actor_name(key: &str) -> String {
    format!("{}/{key}", Protocols::NAME)
}

/// What to change to get from `running` to `wanted`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub stop: Vec<String>,
    pub start: Vec<String>,
}

/// Keys to stop (running, no longer wanted) and to start (wanted, not
/// running), each in key order.
pub fn plan<'a>(
    running: impl IntoIterator<Item = &'a String>,
    wanted: &BTreeMap<String, impl Sized>,
) -> Plan {
    let mut p = Plan::default();
    let mut running: Vec<&String> = running.into_iter().collect();
    running.sort();
    for k in &running {
        if !wanted.contains_key(*k) {
            p.stop.push((*k).clone());
        }
    }
    for k in wanted.keys() {
        if !running.contains(&k) {
            p.start.push(k.clone());
        }
    }
    p
}

pub struct ProtocolSupervisor;

pub struct ProtocolsArgs {
    pub shared: Arc<Shared>,
    pub wanted: WantedFn,
}

pub struct ProtocolsState {
    shared: Arc<Shared>,
    wanted: WantedFn,
    children: BTreeMap<String, ActorCell>,
    /// What each running child was started from, for `retired`.
    specs: BTreeMap<String, Arc<dyn ProtocolChild>>,
    by_id: HashMap<ActorId, String>,
    budgets: HashMap<String, RestartBudget>,
    ticker: tokio::task::JoinHandle<()>,
}

impl Drop for ProtocolsState {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}

impl ProtocolsState {
    /// Record a failure of `key` against its budget. `Err` when the
    /// budget is spent: the supervisor must escalate.
    fn charge(&mut self, key: &str, why: &str) -> Result<usize, String> {
        let budget = self
            .budgets
            .entry(key.to_string())
            .or_insert_with(|| RestartBudget::new(PROTOCOL_RESTART_BUDGET, PROTOCOL_BUDGET_WINDOW));
        match budget.record(Instant::now()) {
            Verdict::Restart { recent } => Ok(recent),
            Verdict::GiveUp { recent } => Err(format!(
                "the protocol actor {key} failed {recent} times within {PROTOCOL_BUDGET_WINDOW:?} (budget {PROTOCOL_RESTART_BUDGET}); last failure: {why}"
            )),
        }
    }

    async fn start(
        &mut self,
        myself: &ActorRef<ProtocolsMsg>,
        child: &Arc<dyn ProtocolChild>,
    ) -> Result<(), String> {
        let key = child.key();
        let name = actor_name(&key);
        match child
            .spawn(key.clone(), self.shared.clone(), myself.get_cell())
            .await
        {
            Ok(cell) => {
                self.by_id.insert(cell.get_id(), key.clone());
                self.specs.insert(key.clone(), child.clone());
                self.children.insert(key, cell);
                self.shared.actor_state(&name, "running");
                Ok(())
            }
            Err(e) => {
                let why = format!("cannot start: {e}");
                warn!(target: "Protocol", "protocol actor {key}: {why}");
                self.shared.actor_failed(&name, &why);
                // A child that cannot start is retried on the next
                // reconcile, within the same budget as a crashing one.
                self.charge(&key, &why).map(|_| ())
            }
        }
    }

    /// Start and stop children to match the running config.
    async fn reconcile(&mut self, myself: &ActorRef<ProtocolsMsg>) -> Result<(), String> {
        if self.shared.is_shutting_down() {
            return Ok(());
        }
        let wanted = (self.wanted)(&self.shared.config());
        let p = plan(self.children.keys(), &wanted);
        for key in p.stop {
            if let Some(cell) = self.children.remove(&key) {
                // Forgotten first, so its exit is not taken for a failure.
                self.by_id.remove(&cell.get_id());
                cell.stop(Some("no longer configured".into()));
                self.shared.actor_forget(&actor_name(&key));
                if let Some(spec) = self.specs.remove(&key) {
                    spec.retired();
                }
                info!(target: "Protocol", "protocol actor {key} stopped: no longer configured");
            }
        }
        for (key, child) in &wanted {
            if self.children.contains_key(key) {
                child.reconfigure();
            }
        }
        for key in p.start {
            // A previous actor under this name is still stopping: next time.
            if handles::is_registered(&key) {
                continue;
            }
            if let Some(child) = wanted.get(&key) {
                self.start(myself, child).await?;
            }
        }
        Ok(())
    }
}

impl Actor for ProtocolSupervisor {
    type Msg = ProtocolsMsg;
    type State = ProtocolsState;
    type Arguments = ProtocolsArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ProtocolsMsg>,
        a: ProtocolsArgs,
    ) -> Result<ProtocolsState, ActorProcessingErr> {
        let ticker = spawn_ticker(myself.clone(), RECONCILE_EVERY, || ProtocolsMsg::Reconcile);
        Ok(ProtocolsState {
            shared: a.shared,
            wanted: a.wanted,
            children: BTreeMap::new(),
            specs: BTreeMap::new(),
            by_id: HashMap::new(),
            budgets: HashMap::new(),
            ticker,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<ProtocolsMsg>,
        st: &mut ProtocolsState,
    ) -> Result<(), ActorProcessingErr> {
        st.reconcile(&myself).await.map_err(Into::into)
    }

    async fn post_stop(
        &self,
        myself: ActorRef<ProtocolsMsg>,
        st: &mut ProtocolsState,
    ) -> Result<(), ActorProcessingErr> {
        // Children are not stopped with their supervisor by ractor; stop
        // them so that a restarted supervisor finds their names free.
        myself
            .stop_children_and_wait(
                Some("protocol supervisor stopping".into()),
                Some(Duration::from_secs(2)),
            )
            .await;
        for key in st.children.keys() {
            st.shared.actor_forget(&actor_name(key));
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ProtocolsMsg>,
        msg: ProtocolsMsg,
        st: &mut ProtocolsState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ProtocolsMsg::Reconcile => st.reconcile(&myself).await?,
            ProtocolsMsg::Ops(o) => o.run("protocols").await,
            ProtocolsMsg::Panic => panic!("fault injection: protocol supervisor panic requested"),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<ProtocolsMsg>,
        evt: SupervisionEvent,
        st: &mut ProtocolsState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, why)) = child_down(evt) else {
            return Ok(());
        };
        let Some(key) = st.by_id.remove(&cell.get_id()) else {
            return Ok(());
        };
        st.children.remove(&key);
        if st.shared.is_shutting_down() {
            return Ok(());
        }
        let name = actor_name(&key);
        let restarts = st.shared.actor_failed(&name, &why);
        if let Err(msg) = st.charge(&key, &why) {
            error!(target: "Supervisor", "{msg}; escalating to the root");
            return Err(msg.into());
        }
        warn!(target: "Supervisor", "protocol actor {key} failed ({why}); restart {restarts}");
        for _ in 0..50 {
            if !handles::is_registered(&key) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let wanted = (st.wanted)(&st.shared.config());
        let spec = st.specs.remove(&key);
        if let Some(child) = wanted.get(&key) {
            st.start(&myself, child).await?;
            if st.children.contains_key(&key) {
                st.shared.publish(mcr::control::Event::ActorRestarted {
                    name,
                    restarts,
                    reason: why,
                });
            }
        } else {
            // Failed after a reload dropped it, before the reconcile did.
            st.shared.actor_forget(&name);
            if let Some(spec) = spec {
                spec.retired();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
