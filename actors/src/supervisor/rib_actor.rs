//! RibActor: compiles the running rule set into one table per input
//! interface, hands the tables with the interface snapshot they were made
//! for to the WorkerManager, and knows, for `mcrctl list`, what state
//! every rule is in (pending, interface down, starting, active, error).
//! The computations are `mcr::rib::state`; this actor holds their inputs
//! and announces state changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use mcr::control::{Event, RuleInfo};
use mcr::iface::{self, Ifaces};
use mcr::rib::state::{self, Announced, Tables, WorkerView};
use mcr::rule::RuleSet;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::debug;

use super::handles::{RibMsg, WmMsg, WorkerKey, Workers};
use super::shared::Shared;

pub struct RibActor;

pub struct RibState {
    shared: Arc<Shared>,
    rules: Arc<RuleSet>,
    ifaces: Arc<Ifaces>,
    tables: Arc<Tables>,
    workers: BTreeMap<WorkerKey, WorkerView>,
    announced: Announced,
}

impl RibState {
    fn recompile(&mut self) {
        self.tables = Arc::new(state::recompile(&self.tables, &self.rules));
        self.push();
    }

    fn push(&self) {
        Workers::tell(WmMsg::Tables(self.tables.clone(), self.ifaces.clone()));
    }

    fn rule_infos(&self) -> Vec<RuleInfo> {
        let views: Vec<(&str, &WorkerView)> = self
            .workers
            .iter()
            .map(|(k, v)| (k.interface.as_str(), v))
            .collect();
        let cfg = self.shared.config();
        state::rule_infos(&self.rules, &self.ifaces, &views, |ifc| {
            cfg.workers_for(ifc)
        })
    }

    /// Tell subscribers about rules whose state changed.
    fn publish_states(&mut self) {
        let (changed, next) = state::state_changes(&self.announced, &self.rule_infos());
        for info in changed {
            self.shared.publish(Event::RuleState {
                id: info.id,
                state: info.state,
                reason: info.reason,
            });
        }
        self.announced = next;
    }
}

impl Actor for RibActor {
    type Msg = RibMsg;
    type State = RibState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        _me: ActorRef<RibMsg>,
        shared: Arc<Shared>,
    ) -> Result<RibState, ActorProcessingErr> {
        // Rebuilt from the running config and the kernel, so a restart
        // loses nothing; the workers keep their tables meanwhile.
        let rules = Arc::new(shared.config().rule_set().unwrap_or_default());
        let mut st = RibState {
            shared,
            rules,
            ifaces: Arc::new(iface::scan()),
            tables: Arc::new(Tables::new()),
            workers: BTreeMap::new(),
            announced: Announced::new(),
        };
        st.recompile();
        Ok(st)
    }

    async fn handle(
        &self,
        _me: ActorRef<RibMsg>,
        msg: RibMsg,
        st: &mut RibState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RibMsg::Rules(set) => {
                st.rules = set;
                st.recompile();
                st.publish_states();
            }
            RibMsg::Interfaces(ifaces) => {
                st.ifaces = ifaces;
                st.push();
                st.publish_states();
            }
            RibMsg::Worker(key, view) => {
                match view {
                    Some(v) => st.workers.insert(key, v),
                    None => st.workers.remove(&key),
                };
                st.publish_states();
            }
            RibMsg::Tables(reply) => {
                let _ = reply.send((st.tables.clone(), st.ifaces.clone()));
            }
            RibMsg::List(reply) => {
                let _ = reply.send(st.rule_infos());
            }
            RibMsg::Mroute(reply) => {
                let _ = reply.send(state::mroute(&st.tables));
            }
            // Membership-driven forwarding lands with the learned-route
            // RIB wiring; until then the RIB only notes what it was told.
            RibMsg::Join {
                interface,
                group,
                filter,
            } => {
                debug!(target: "RuleDispatch", "membership {interface} {group} {filter:?}");
            }
            RibMsg::Leave { interface, group } => {
                debug!(target: "RuleDispatch", "membership gone: {interface} {group}");
            }
            RibMsg::LeaveInterface(interface) => {
                debug!(target: "RuleDispatch", "memberships of {interface} gone");
            }
            RibMsg::Memberships { interface, groups } => {
                debug!(target: "RuleDispatch", "memberships of {interface}: {groups:?}");
            }
            RibMsg::Panic => panic!("fault injection: rib actor panic requested"),
            RibMsg::Ops(o) => o.run("rib").await,
        }
        Ok(())
    }
}
