//! RibActor: owns the daemon's `mcr::rib::Rib` (static rules, learned
//! routes by origin, IGMP memberships), compiles it into one table per
//! input interface, hands the tables with the interface snapshot they were
//! made for to the WorkerManager, and knows, for `mcrctl list`, what state
//! every rule is in (pending, interface down, starting, active, error).
//!
//! The merge and the state computations are pure code in `mcr::rib`
//! (`merge`, `state`, `mroute`); this actor holds their inputs, recompiles
//! only when the `Rib` reports a change, pushes only tables that changed,
//! and announces rule-state changes. It also hands every membership change
//! on to the PimActor (the local receivers of RFC 7761 §4.1.6), since IGMP
//! reports memberships here and protocol actors do not talk to each other.
//!
//! Learned routes and memberships live only here: after a restart of this
//! actor the RIB starts from the static rules, and the protocol actors
//! re-announce (their own state survives: they are not children of the
//! root). A message a protocol sends while the RIB restarts is dropped by
//! its handle, so protocols resend their whole state (`Memberships`,
//! `ReplaceOrigin`) on their periodic refresh rather than only deltas;
//! `ReplaceOrigin` also withdraws what a restarted protocol no longer has,
//! in the same recompile that keeps what it still has.

use std::collections::BTreeMap;
use std::sync::Arc;

use mcr::control::{Event, RuleInfo};
use mcr::iface::{self, Ifaces};
use mcr::rib::state::{self, Announced, Tables, WorkerView};
use mcr::rib::{Rib, Touched};
use mcr::rule::Rule;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{debug, warn};

use super::handles::{Pim, PimMsg, RibMsg, WmMsg, WorkerKey, Workers};
use super::shared::Shared;

pub struct RibActor;

pub struct RibState {
    shared: Arc<Shared>,
    rib: Rib,
    ifaces: Arc<Ifaces>,
    tables: Arc<Tables>,
    workers: BTreeMap<WorkerKey, WorkerView>,
    announced: Announced,
    /// The tables before the first rule delta not yet compiled, and the
    /// rules the deltas since then touched; `Some` while a `FlushRules`
    /// is on its way.
    delta_base: Option<(Arc<Tables>, Touched)>,
}

/// What a message did to the RIB's inputs.
#[derive(Debug, PartialEq, Eq)]
enum Effect {
    /// Nothing changed: no compile, no push.
    None,
    /// Learned state changed: recompile.
    Learned,
}

/// Apply one protocol message to `rib`. Pure, so the decision to
/// recompile is unit-tested without actors. A refused route or membership
/// is an error of the protocol that sent it, logged, never applied.
fn apply_learned(rib: &mut Rib, msg: RibMsg) -> Result<Effect, RibMsg> {
    let changed = match msg {
        RibMsg::Route { origin, route } => rib.apply(origin, route).map_err(|e| (None, e)),
        RibMsg::Withdraw {
            origin,
            source,
            group,
        } => Ok(rib.withdraw(origin, source, group).is_some()),
        RibMsg::WithdrawOrigin(origin) => Ok(rib.withdraw_origin(origin) > 0),
        RibMsg::ReplaceOrigin { origin, routes } => {
            rib.replace_origin(origin, routes).map_err(|e| (None, e))
        }
        RibMsg::Join {
            interface,
            group,
            filter,
        } => rib.join(&interface, group, filter).map_err(|e| (None, e)),
        RibMsg::Leave { interface, group } => Ok(rib.leave(&interface, group)),
        RibMsg::LeaveInterface(interface) => Ok(rib.leave_interface(&interface) > 0),
        RibMsg::Memberships { interface, groups } => {
            // The line the IGMP restart drill looks for: what a restarted
            // querier handed over once it had re-learned.
            debug!(target: "Protocol", "memberships of {interface}: {groups:?}");
            rib.set_memberships(&interface, &groups)
                .map_err(|e| (Some(interface), e))
        }
        other => return Err(other),
    };
    match changed {
        Ok(true) => Ok(Effect::Learned),
        Ok(false) => Ok(Effect::None),
        Err((ifc, e)) => {
            warn!(
                target: "Protocol",
                "RIB refused a learned update{}: {e}",
                ifc.map(|i| format!(" for {i}")).unwrap_or_default()
            );
            Ok(Effect::None)
        }
    }
}

/// Whether two table sets share every table by pointer (what the
/// WorkerManager would see as no change).
fn same_tables(a: &Tables, b: &Tables) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, ta), (kb, tb))| ka == kb && Arc::ptr_eq(ta, tb))
}

impl RibState {
    /// Compile the RIB; push the tables if any changed. Returns whether
    /// they did.
    fn recompile(&mut self) -> bool {
        let next = state::recompile(&self.tables, self.rib.compile());
        if same_tables(&next, &self.tables) {
            return false;
        }
        self.tables = Arc::new(next);
        self.push();
        true
    }

    /// Recompile after changes to a few static rules, and announce the
    /// state of only the rules whose compiled entry changed since `old`
    /// (the added and removed ones, and any other the compile happened to
    /// touch): one `add` among 10,000 rules must not recompute every
    /// rule's state.
    fn recompile_delta(&mut self, old: Arc<Tables>, touched: Touched) {
        // Unless a touched rule can shadow a learned entry (any port) only
        // the touched rules' entries can have changed: recompile those
        // alone, and recompute only their states.
        if let Some(next) = self.rib.patch_static(&self.tables, &touched) {
            if !same_tables(&next, &self.tables) {
                self.tables = Arc::new(next);
                self.push();
            }
            let mut ids: Vec<String> = touched.into_iter().map(|(_, id)| id).collect();
            ids.sort();
            ids.dedup();
            self.publish_states_of(&ids);
            return;
        }
        self.recompile();
        if Arc::ptr_eq(&old, &self.tables) {
            return;
        }
        let empty = mcr::rib::InterfaceTable::new();
        let mut ids = Vec::new();
        for (ifc, t) in self.tables.iter() {
            match old.get(ifc) {
                Some(o) if Arc::ptr_eq(o, t) => {}
                Some(o) => ids.extend(state::entries_changed(o, t)),
                None => ids.extend(state::entries_changed(&empty, t)),
            }
        }
        for (ifc, o) in old.iter() {
            if !self.tables.contains_key(ifc) {
                ids.extend(state::entries_changed(o, &empty));
            }
        }
        self.publish_states_of(&ids);
    }

    /// Apply an in-place change of static rules. False if it does not fit
    /// the RIB's set (a message lost while an actor restarted): the caller
    /// then takes the running config's set whole.
    fn apply_rule_delta(&mut self, added: Vec<Rule>, removed: &[String]) -> bool {
        let rules = self.rib.rules_mut();
        let touched = &mut self
            .delta_base
            .get_or_insert_with(|| (self.tables.clone(), Touched::new()))
            .1;
        for id in removed {
            match rules.remove(id) {
                Some(r) => touched.insert((r.input.interface, r.id)),
                None => return false,
            };
        }
        added.into_iter().all(|r| {
            touched.insert((r.input.interface.clone(), r.id.clone()));
            rules.insert(r).is_ok()
        })
    }

    fn push(&self) {
        Workers::tell(WmMsg::Tables(self.tables.clone(), self.ifaces.clone()));
    }

    fn rule_infos(&self) -> Vec<RuleInfo> {
        let views = worker_views(&self.workers);
        let cfg = self.shared.config();
        state::rule_infos_with_members(
            self.rib.rules(),
            &self.tables,
            &self.ifaces,
            &views,
            |ifc| cfg.workers_for(ifc),
            self.rib.memberships(),
        )
    }

    /// `publish_states` for the rules named in `ids` only; ids that are
    /// no rule (any more) leave the announced set.
    fn publish_states_of(&mut self, ids: &[String]) {
        let views = worker_views(&self.workers);
        let cfg = self.shared.config();
        let rules = self.rib.rules();
        for id in ids {
            if rules.get(id).is_none() {
                self.announced.remove(id);
            }
        }
        let infos = state::rule_infos_of(
            ids.iter().filter_map(|id| rules.get(id)),
            &self.tables,
            &self.ifaces,
            &views,
            |ifc| cfg.workers_for(ifc),
            self.rib.memberships(),
        );
        for info in state::state_changes_of(&mut self.announced, infos, &[]) {
            self.shared.publish(Event::RuleState {
                id: info.id,
                state: info.state,
                reason: info.reason,
            });
        }
    }

    /// A worker's view changed. When only the table it acknowledged did,
    /// only rules whose entries differ between its old and new table can
    /// change state; anything else may change every rule of the interface,
    /// but no other: a rule's state and its outputs' problems read only the
    /// views of the workers of its own input interface (`rule_infos_of`).
    /// Recomputing every rule here made each of 256 worker starts rebuild
    /// the state of all 256 interfaces' rules, the supervisor's largest
    /// cost per start.
    fn worker_changed(&mut self, key: WorkerKey, view: Option<WorkerView>) {
        let ifc = key.interface.clone();
        let old = match &view {
            Some(v) => self.workers.insert(key, v.clone()),
            None => self.workers.remove(&key),
        };
        match (old, view) {
            (Some(o), Some(n))
                if o.state == n.state && o.reason == n.reason && o.problems == n.problems =>
            {
                if !Arc::ptr_eq(&o.acked, &n.acked) {
                    let ids = state::entries_changed(&o.acked, &n.acked);
                    self.publish_states_of(&ids);
                }
            }
            _ => {
                let ids: Vec<String> = self
                    .rib
                    .rules()
                    .iter()
                    .filter(|r| r.input.interface == ifc)
                    .map(|r| r.id.clone())
                    .collect();
                self.publish_states_of(&ids);
            }
        }
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
        // loses no static rule; the workers keep their tables meanwhile.
        let rules = Arc::new(shared.config().rule_set().unwrap_or_default());
        let mut st = RibState {
            shared,
            rib: Rib::with_rules(rules),
            ifaces: Arc::new(iface::scan()),
            tables: Arc::new(Tables::new()),
            workers: BTreeMap::new(),
            announced: Announced::new(),
            delta_base: None,
        };
        // Always push once, even no tables: a restarted WorkerManager may
        // be waiting.
        st.tables = Arc::new(state::recompile(&st.tables, st.rib.compile()));
        st.push();
        Ok(st)
    }

    async fn handle(
        &self,
        me: ActorRef<RibMsg>,
        msg: RibMsg,
        st: &mut RibState,
    ) -> Result<(), ActorProcessingErr> {
        let membership = matches!(
            msg,
            RibMsg::Join { .. }
                | RibMsg::Leave { .. }
                | RibMsg::LeaveInterface(_)
                | RibMsg::Memberships { .. }
        );
        let msg = match apply_learned(&mut st.rib, msg) {
            Ok(Effect::Learned) => {
                st.recompile();
                if membership {
                    // PIM's local receivers (RFC 7761 §4.1.6); a cast to a
                    // PimActor that is not running is dropped.
                    Pim::tell(PimMsg::Memberships(Arc::new(st.rib.memberships().clone())));
                }
                return Ok(());
            }
            Ok(Effect::None) => return Ok(()),
            Err(msg) => msg,
        };
        match msg {
            RibMsg::Rules(set) => {
                st.rib.set_rules(set);
                // Every rule's state is recomputed below.
                st.delta_base = None;
                st.recompile();
                st.publish_states();
            }
            RibMsg::RuleDelta { added, removed } => {
                // Scripts add rules one at a time: every delta queued
                // behind this one is applied before the flush compiles
                // them all at once.
                let first = st.delta_base.is_none();
                if st.apply_rule_delta(added, &removed) {
                    if first {
                        let _ = me.cast(RibMsg::FlushRules);
                    }
                } else {
                    warn!(target: "RuleDispatch", "the RIB's rules were out of step with the running config; taking them whole");
                    let set = st.shared.config().rule_set().unwrap_or_default();
                    st.rib.set_rules(Arc::new(set));
                    st.delta_base = None;
                    st.recompile();
                    st.publish_states();
                }
            }
            RibMsg::FlushRules => {
                if let Some((base, touched)) = st.delta_base.take() {
                    st.recompile_delta(base, touched);
                }
            }
            RibMsg::Interfaces(ifaces) => {
                st.ifaces = ifaces;
                st.push();
                st.publish_states();
            }
            RibMsg::Worker(key, view) => st.worker_changed(key, view),
            RibMsg::Tables(reply) => {
                let _ = reply.send((st.tables.clone(), st.ifaces.clone()));
            }
            RibMsg::List(reply) => {
                let _ = reply.send(st.rule_infos());
            }
            RibMsg::Mroute(reply) => {
                let _ = reply.send(mcr::rib::mroute(&st.rib));
            }
            RibMsg::OriginRoutes(origin, reply) => {
                let routes = st.rib.routes().filter(|(id, _)| id.origin == origin);
                let _ = reply.send(routes.map(|(_, r)| r.clone()).collect());
            }
            RibMsg::MembershipSnapshot(reply) => {
                let _ = reply.send(st.rib.memberships().clone());
            }
            RibMsg::Panic => panic!("fault injection: rib actor panic requested"),
            RibMsg::Ops(o) => o.run("rib").await,
            // Handled by `apply_learned` above.
            RibMsg::Route { .. }
            | RibMsg::Withdraw { .. }
            | RibMsg::WithdrawOrigin(_)
            | RibMsg::ReplaceOrigin { .. }
            | RibMsg::Join { .. }
            | RibMsg::Leave { .. }
            | RibMsg::LeaveInterface(_)
            | RibMsg::Memberships { .. } => {}
        }
        Ok(())
    }
}

/// Each worker's view named by its input interface, as rule states take them.
fn worker_views(workers: &BTreeMap<WorkerKey, WorkerView>) -> Vec<(&str, &WorkerView)> {
    workers
        .iter()
        .map(|(k, v)| (k.interface.as_str(), v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcr::rib::{Origin, Route, SourceFilter};
    use std::net::Ipv4Addr;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn route(up: &str, down: &[&str]) -> RibMsg {
        RibMsg::Route {
            origin: Origin::Pim,
            route: Route::star_g(ip("239.1.1.1"), up, down),
        }
    }

    fn effect(rib: &mut Rib, msg: RibMsg) -> Effect {
        match apply_learned(rib, msg) {
            Ok(e) => e,
            Err(_) => panic!("not a learned update"),
        }
    }

    #[test]
    fn only_a_change_asks_for_a_recompile() {
        let mut rib = Rib::new();
        assert_eq!(effect(&mut rib, route("eth0", &["eth1"])), Effect::Learned);
        assert_eq!(effect(&mut rib, route("eth0", &["eth1"])), Effect::None);
        let join = || RibMsg::Join {
            interface: "eth2".into(),
            group: ip("239.1.1.1"),
            filter: SourceFilter::any(),
        };
        assert_eq!(effect(&mut rib, join()), Effect::Learned);
        assert_eq!(effect(&mut rib, join()), Effect::None);
        let set = || RibMsg::Memberships {
            interface: "eth2".into(),
            groups: vec![(ip("239.1.1.1"), SourceFilter::any())],
        };
        assert_eq!(effect(&mut rib, set()), Effect::None, "same set");
        assert_eq!(
            effect(
                &mut rib,
                RibMsg::Leave {
                    interface: "eth9".into(),
                    group: ip("239.1.1.1")
                }
            ),
            Effect::None
        );
        assert_eq!(
            effect(&mut rib, RibMsg::LeaveInterface("eth2".into())),
            Effect::Learned
        );
        assert_eq!(
            effect(&mut rib, RibMsg::WithdrawOrigin(Origin::Pim)),
            Effect::Learned
        );
        assert!(rib.is_static_only());
        assert_eq!(
            effect(
                &mut rib,
                RibMsg::Withdraw {
                    origin: Origin::Pim,
                    source: None,
                    group: ip("239.1.1.1")
                }
            ),
            Effect::None
        );
    }

    #[test]
    fn a_refused_update_changes_nothing_and_other_messages_pass_through() {
        let mut rib = Rib::new();
        let bad = RibMsg::Route {
            origin: Origin::Static,
            route: Route::star_g(ip("239.1.1.1"), "eth0", &["eth1"]),
        };
        assert_eq!(effect(&mut rib, bad), Effect::None);
        let link_local = RibMsg::Memberships {
            interface: "eth1".into(),
            groups: vec![(ip("224.0.0.5"), SourceFilter::any())],
        };
        assert_eq!(effect(&mut rib, link_local), Effect::None);
        assert!(rib.is_static_only());
        assert!(matches!(
            apply_learned(&mut rib, RibMsg::Panic),
            Err(RibMsg::Panic)
        ));
    }

    #[test]
    fn a_replaced_origin_recompiles_once_and_only_on_a_change() {
        let mut rib = Rib::new();
        let stays = Route::star_g(ip("239.1.1.1"), "eth0", &["eth1"]);
        let stale = Route::s_g(ip("10.0.0.1"), ip("239.1.1.2"), "eth0", &["eth2"]);
        assert_eq!(effect(&mut rib, route("eth0", &["eth1"])), Effect::Learned);
        assert_eq!(
            effect(
                &mut rib,
                RibMsg::Route {
                    origin: Origin::Pim,
                    route: stale,
                }
            ),
            Effect::Learned
        );
        let before = state::recompile(&Tables::new(), rib.compile());
        let replace = || RibMsg::ReplaceOrigin {
            origin: Origin::Pim,
            routes: vec![stays.clone()],
        };
        assert_eq!(effect(&mut rib, replace()), Effect::Learned);
        let after = state::recompile(&before, rib.compile());
        assert!(
            !Arc::ptr_eq(&before["eth0"], &after["eth0"]),
            "the stale (S,G) left eth0's table"
        );
        let ids: Vec<&str> = after["eth0"].iter().map(|r| r.rule_id.as_str()).collect();
        assert_eq!(ids, ["(*,239.1.1.1)@eth0"], "the route that stays is kept");
        assert_eq!(
            effect(&mut rib, replace()),
            Effect::None,
            "periodic re-send"
        );
        let bad = RibMsg::ReplaceOrigin {
            origin: Origin::Pim,
            routes: vec![Route::star_g(ip("224.0.0.13"), "eth0", &["eth1"])],
        };
        assert_eq!(effect(&mut rib, bad), Effect::None, "refused whole");
        assert_eq!(rib.routes().count(), 1);
    }

    #[test]
    fn tables_compare_by_pointer() {
        let mut rib = Rib::new();
        rib.apply(
            Origin::Pim,
            Route::star_g(ip("239.1.1.1"), "eth0", &["eth1"]),
        )
        .unwrap();
        let a = state::recompile(&Tables::new(), rib.compile());
        let b = state::recompile(&a, rib.compile());
        assert!(same_tables(&a, &b), "an unchanged RIB pushes nothing");
        rib.join("eth2", ip("239.1.1.1"), SourceFilter::any())
            .unwrap();
        let c = state::recompile(&b, rib.compile());
        assert!(!same_tables(&b, &c));
        assert!(!same_tables(&c, &Tables::new()));
    }

    /// A RibState over rules `a` (input a0) and `b` (input b0), every
    /// interface up, with its initial states announced.
    fn two_interfaces() -> RibState {
        let shared = Shared::for_test(false);
        let rule = |id: &str, ifc: &str| {
            let mut r = Rule::new(
                None,
                mcr::rule::RuleInput {
                    interface: ifc.into(),
                    group: ip("239.1.1.1"),
                    port: 5000,
                    source: None,
                },
                vec![mcr::rule::RuleOutput {
                    interface: "o0".into(),
                    group: ip("239.9.9.9"),
                    port: 6000,
                    ttl: None,
                    mode: mcr::rule::OutputMode::Republish,
                    members_only: false,
                }],
            );
            r.id = id.into();
            r
        };
        let set = mcr::rule::RuleSet::from_rules([rule("a", "a0"), rule("b", "b0")]).unwrap();
        let ifaces: Ifaces = ["a0", "b0", "o0"]
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let info = iface::InterfaceInfo {
                    name: n.to_string(),
                    ifindex: i as u32 + 2,
                    mtu: 1500,
                    up: true,
                    running: true,
                    addrs: vec![],
                    link_type: 1,
                };
                (n.to_string(), info)
            })
            .collect();
        let rib = Rib::with_rules(Arc::new(set));
        let tables = Arc::new(state::recompile(&Tables::new(), rib.compile()));
        let mut st = RibState {
            shared,
            rib,
            ifaces: Arc::new(ifaces),
            tables,
            workers: BTreeMap::new(),
            announced: Announced::new(),
            delta_base: None,
        };
        st.publish_states();
        st
    }

    fn key(ifc: &str) -> WorkerKey {
        WorkerKey {
            interface: ifc.into(),
            index: 0,
        }
    }

    fn view(st: &RibState, state: &str, ifc: &str) -> WorkerView {
        WorkerView {
            state: state.into(),
            acked: st.tables.get(ifc).cloned().unwrap_or_default(),
            reason: None,
            problems: BTreeMap::new(),
        }
    }

    /// The (rule id, state) of every rule-state event waiting in `rx`.
    fn states(
        rx: &mut tokio::sync::broadcast::Receiver<mcr::control::TimedEvent>,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            if let Event::RuleState { id, state, .. } = e.event {
                out.push((id, format!("{state:?}")));
            }
        }
        out
    }

    #[test]
    fn a_worker_change_announces_only_its_interfaces_rules_as_a_full_recompute_would() {
        let mut st = two_interfaces();
        let mut rx = st.shared.subscribe();
        let both = |st: &RibState| {
            let (_, full) = state::state_changes(&Announced::new(), &st.rule_infos());
            assert_eq!(
                st.announced, full,
                "narrowed states drifted from a full recompute"
            );
        };

        let v = view(&st, "starting", "a0");
        st.worker_changed(key("a0"), Some(v));
        // `a` goes from "no worker yet" to "worker starting"; `b` is untouched.
        assert_eq!(states(&mut rx), [("a".into(), "Starting".into())]);
        both(&st);

        let v = view(&st, "running", "b0");
        st.worker_changed(key("b0"), Some(v));
        assert_eq!(states(&mut rx), [("b".into(), "Active".into())]);
        both(&st);

        let v = view(&st, "running", "a0");
        st.worker_changed(key("a0"), Some(v));
        assert_eq!(states(&mut rx), [("a".into(), "Active".into())]);
        both(&st);

        // The worker of b0 exits: only `b` falls back to starting.
        st.worker_changed(key("b0"), None);
        assert_eq!(states(&mut rx), [("b".into(), "Starting".into())]);
        both(&st);
    }
}
