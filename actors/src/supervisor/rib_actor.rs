//! RibActor: compiles the running rule set into one table per input
//! interface (`mcr::rib::compile`), hands the tables to the WorkerManager,
//! and knows, for `mcrctl list`, what state every rule is in: its
//! interface may not exist yet (pending), be down, have a worker that is
//! starting, or be forwarding.

use std::collections::BTreeMap;
use std::sync::Arc;

use mcr::control::{Event, MrouteEntry, OutputInfo, RuleInfo, RuleState};
use mcr::dataplane::sockets::{list_interfaces, InterfaceInfo};
use mcr::rib::{compile, InterfaceTable};
use mcr::rule::RuleSet;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::{workers, Shared, WorkerKey};

pub const NAME: &str = "rib";

pub type Ifaces = BTreeMap<String, InterfaceInfo>;
pub type Tables = BTreeMap<String, Arc<InterfaceTable>>;

/// What a WorkerLink reports about its worker.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerView {
    /// starting, running, restarting, stopping.
    pub state: String,
    /// The worker has acknowledged the current table.
    pub in_sync: bool,
    pub reason: Option<String>,
    /// (rule id, output index) -> why that output cannot send.
    pub problems: BTreeMap<(String, usize), String>,
}

pub enum RibMsg {
    Rules(Arc<RuleSet>),
    Interfaces(Arc<Ifaces>),
    Worker(WorkerKey, Option<WorkerView>),
    /// The WorkerManager restarted and needs the tables again.
    PushTables,
    List(RpcReplyPort<Vec<RuleInfo>>),
    Mroute(RpcReplyPort<Vec<MrouteEntry>>),
    Panic,
}

pub struct RibActor;

pub struct RibState {
    shared: Arc<Shared>,
    rules: Arc<RuleSet>,
    ifaces: Arc<Ifaces>,
    tables: Arc<Tables>,
    workers: BTreeMap<WorkerKey, WorkerView>,
    states: BTreeMap<String, (RuleState, Option<String>)>,
}

pub fn scan_interfaces() -> Ifaces {
    list_interfaces()
        .into_iter()
        .map(|i| (i.name.clone(), i))
        .collect()
}

impl RibState {
    fn recompile(&mut self) {
        let mut next = Tables::new();
        for (ifc, t) in compile(&self.rules) {
            // Keep the old Arc when nothing changed, so the WorkerManager
            // can tell unchanged interfaces by pointer.
            let arc = match self.tables.get(&ifc) {
                Some(old) if **old == t => old.clone(),
                _ => Arc::new(t),
            };
            next.insert(ifc, arc);
        }
        self.tables = Arc::new(next);
        self.push();
    }

    fn push(&self) {
        super::cast(
            workers::NAME,
            workers::WmMsg::Tables(self.tables.clone(), self.ifaces.clone()),
        );
    }

    /// The state of each rule, and the problem of each output.
    fn rule_infos(&self) -> Vec<RuleInfo> {
        self.rules
            .iter()
            .map(|r| {
                let ifc = &r.input.interface;
                let views: Vec<&WorkerView> = self
                    .workers
                    .iter()
                    .filter(|(k, _)| &k.interface == ifc)
                    .map(|(_, v)| v)
                    .collect();
                let outputs: Vec<OutputInfo> = r
                    .outputs
                    .iter()
                    .enumerate()
                    .map(|(i, o)| OutputInfo {
                        output: o.clone(),
                        problem: views
                            .iter()
                            .find_map(|v| v.problems.get(&(r.id.clone(), i)).cloned())
                            .or_else(|| match self.ifaces.get(&o.interface) {
                                None => {
                                    Some(format!("output interface {} does not exist", o.interface))
                                }
                                Some(i) if !i.up => {
                                    Some(format!("output interface {} is down", o.interface))
                                }
                                _ => None,
                            }),
                    })
                    .collect();
                let (state, reason) = match self.ifaces.get(ifc) {
                    None => (
                        RuleState::Pending,
                        Some(format!("interface {ifc} does not exist")),
                    ),
                    Some(i) if !i.up => (
                        RuleState::InterfaceDown,
                        Some(format!("interface {ifc} is down")),
                    ),
                    Some(_) => {
                        // Every worker of the interface must have the table:
                        // with several (pinning), each takes a share of the
                        // flows, and one without it drops its share.
                        let expected = self.shared.config().workers_for(ifc);
                        if views.len() >= expected
                            && views.iter().all(|v| v.state == "running" && v.in_sync)
                        {
                            if outputs.iter().all(|o| o.problem.is_some()) {
                                (
                                    RuleState::Error,
                                    Some("no output can send; see the outputs".to_string()),
                                )
                            } else {
                                (RuleState::Active, None)
                            }
                        } else if let Some(v) = views.first() {
                            (
                                RuleState::Starting,
                                v.reason
                                    .clone()
                                    .or_else(|| Some(format!("worker {}", v.state))),
                            )
                        } else {
                            (RuleState::Starting, Some("no worker yet".into()))
                        }
                    }
                };
                RuleInfo {
                    id: r.id.clone(),
                    name: r.name.clone(),
                    input: r.input.clone(),
                    outputs,
                    state,
                    reason,
                }
            })
            .collect()
    }

    /// Tell subscribers about rules whose state changed.
    fn publish_states(&mut self) {
        let mut next = BTreeMap::new();
        for info in self.rule_infos() {
            let s = (info.state, info.reason.clone());
            if self.states.get(&info.id) != Some(&s) {
                self.shared.publish(Event::RuleState {
                    id: info.id.clone(),
                    state: info.state,
                    reason: info.reason.clone(),
                });
            }
            next.insert(info.id, s);
        }
        self.states = next;
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
            ifaces: Arc::new(scan_interfaces()),
            tables: Arc::new(Tables::new()),
            workers: BTreeMap::new(),
            states: BTreeMap::new(),
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
            RibMsg::PushTables => st.push(),
            RibMsg::List(reply) => {
                let _ = reply.send(st.rule_infos());
            }
            RibMsg::Mroute(reply) => {
                let mut v = Vec::new();
                for (ifc, t) in st.tables.iter() {
                    for r in t.iter() {
                        v.push(MrouteEntry {
                            interface: ifc.clone(),
                            group: r.group,
                            port: r.port,
                            source: r.source,
                            outputs: r
                                .outputs
                                .iter()
                                .map(|o| {
                                    format!(
                                        "{}:{} on {} ttl {} {}",
                                        o.group,
                                        o.port,
                                        o.interface,
                                        o.ttl,
                                        o.mode.as_str()
                                    )
                                })
                                .collect(),
                            origin: r.origin.to_string(),
                            rule_id: r.rule_id.clone(),
                        });
                    }
                }
                let _ = reply.send(v);
            }
            RibMsg::Panic => panic!("fault injection: rib actor panic requested"),
        }
        Ok(())
    }
}
