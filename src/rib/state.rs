//! The RIB's view of the running system, as pure functions: the compiled
//! table of every input interface (`Tables`), and the state of every rule
//! (pending, interface down, starting, active, error) derived from the
//! rules, the interfaces and what the workers report (SPEC.md, "Rule
//! states"), including each output's own state (a problem, or `no
//! members` for a members-only output without an IGMP member). `mcrd`'s
//! RibActor holds the inputs and calls these.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::control::{OutputInfo, RuleInfo, RuleState};
use crate::iface::Ifaces;
use crate::rule::{Rule, RuleSet};

use super::learned::Memberships;
use super::merge::{output_sends, Tables as Compiled};
use super::{CompiledRule, InterfaceTable};

/// The compiled table of each input interface. Shared by pointer: an
/// unchanged table keeps its `Arc`, which is how the WorkerManager tells
/// unchanged interfaces apart without comparing thousands of rules.
pub type Tables = BTreeMap<String, Arc<InterfaceTable>>;

/// What a worker's supervisor reports about it.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerView {
    /// starting, running, restarting, stopping.
    pub state: String,
    /// The last table the worker acknowledged having (empty before its
    /// first ack). A rule is active once every worker has acked a table
    /// holding it as compiled now: a change to other rules, not yet acked,
    /// leaves it active (issue 12: each add used to flip every rule of the
    /// interface to `starting` and back).
    pub acked: Arc<InterfaceTable>,
    pub reason: Option<String>,
    /// (rule id, output index) -> why that output cannot send.
    pub problems: BTreeMap<(String, usize), String>,
}

/// Share freshly compiled tables (`Rib::compile`), reusing the `Arc` of
/// every table in `old` that did not change.
pub fn recompile(old: &Tables, fresh: Compiled) -> Tables {
    fresh
        .into_iter()
        .map(|(ifc, t)| {
            let arc = match old.get(&ifc) {
                Some(o) if **o == t => o.clone(),
                _ => Arc::new(t),
            };
            (ifc, arc)
        })
        .collect()
}

/// Why an output cannot send for lack of its interface, if so.
fn output_interface_problem(ifaces: &Ifaces, name: &str) -> Option<String> {
    match ifaces.get(name) {
        None => Some(format!("output interface {name} does not exist")),
        Some(i) if !i.up => Some(format!("output interface {name} is down")),
        _ => None,
    }
}

/// Whether `acked` holds `rule` exactly (tables are sorted by rule id).
fn holds(acked: &InterfaceTable, rule: &CompiledRule) -> bool {
    acked
        .binary_search_by(|r| r.rule_id.as_str().cmp(&rule.rule_id))
        .is_ok_and(|i| acked[i] == *rule)
}

/// The state of every rule and the problem of each of its outputs.
/// `tables` are the current compiled tables; `workers` lists (input
/// interface, view) of every worker; `expected_workers` says how many
/// workers an interface should have. Without memberships, every
/// members-only output shows `no members`.
pub fn rule_infos(
    rules: &RuleSet,
    tables: &Tables,
    ifaces: &Ifaces,
    workers: &[(&str, &WorkerView)],
    expected_workers: impl Fn(&str) -> usize,
) -> Vec<RuleInfo> {
    rule_infos_with_members(
        rules,
        tables,
        ifaces,
        workers,
        expected_workers,
        &Memberships::new(),
    )
}

/// `rule_infos` with the IGMP memberships the tables were compiled with
/// (`Rib::compile`), so that a members-only output without a member shows
/// `no members` and the workers' problems land on the right output.
pub fn rule_infos_with_members(
    rules: &RuleSet,
    tables: &Tables,
    ifaces: &Ifaces,
    workers: &[(&str, &WorkerView)],
    expected_workers: impl Fn(&str) -> usize,
    members: &Memberships,
) -> Vec<RuleInfo> {
    rule_infos_of(
        rules.iter(),
        tables,
        ifaces,
        workers,
        expected_workers,
        members,
    )
}

/// `rule_infos_with_members` for some of the rules only: what a change
/// that touches a few rules recomputes, so that one `add` among 10,000
/// rules does not rebuild the state of all of them.
pub fn rule_infos_of<'a>(
    rules: impl Iterator<Item = &'a Rule>,
    tables: &Tables,
    ifaces: &Ifaces,
    workers: &[(&str, &WorkerView)],
    expected_workers: impl Fn(&str) -> usize,
    members: &Memberships,
) -> Vec<RuleInfo> {
    rules
        .map(|r| {
            let ifc = r.input.interface.as_str();
            let views: Vec<&WorkerView> = workers
                .iter()
                .filter(|(i, _)| *i == ifc)
                .map(|(_, v)| *v)
                .collect();
            // Workers number the outputs of the compiled table, which
            // leaves out members-only outputs without members.
            let mut compiled = 0usize;
            let outputs: Vec<OutputInfo> = r
                .outputs
                .iter()
                .map(|o| {
                    let sends = output_sends(members, r.input.source, o);
                    let index = compiled;
                    compiled += usize::from(sends);
                    OutputInfo {
                        output: o.clone(),
                        // The worker knows best (it tried to open the
                        // socket); without a worker, the interface list
                        // still tells.
                        problem: views
                            .iter()
                            .filter(|_| sends)
                            .find_map(|v| v.problems.get(&(r.id.clone(), index)).cloned())
                            .or_else(|| output_interface_problem(ifaces, &o.interface)),
                        no_members: !sends,
                    }
                })
                .collect();
            let (state, reason) = match ifaces.get(ifc) {
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
                    let entry = tables.get(ifc).and_then(|t| {
                        t.binary_search_by(|c| c.rule_id.as_str().cmp(&r.id))
                            .ok()
                            .map(|i| &t[i])
                    });
                    let acked_everywhere = entry.is_some_and(|c| {
                        views
                            .iter()
                            .all(|v| v.state == "running" && holds(&v.acked, c))
                    });
                    if views.len() >= expected_workers(ifc) && acked_everywhere {
                        // Outputs waiting for members are not failures.
                        let sending: Vec<&OutputInfo> =
                            outputs.iter().filter(|o| !o.no_members).collect();
                        if !sending.is_empty() && sending.iter().all(|o| o.problem.is_some()) {
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

/// A rule's state and its reason, as last announced.
pub type Announced = BTreeMap<String, (RuleState, Option<String>)>;

/// The rules whose state differs from what was last announced, and the
/// new announced set (rules that are gone drop out of it).
pub fn state_changes(prev: &Announced, infos: &[RuleInfo]) -> (Vec<RuleInfo>, Announced) {
    let mut changed = Vec::new();
    let mut next = Announced::new();
    for info in infos {
        let s = (info.state, info.reason.clone());
        if prev.get(&info.id) != Some(&s) {
            changed.push(info.clone());
        }
        next.insert(info.id.clone(), s);
    }
    (changed, next)
}

/// `state_changes` for some rules only: `infos` are the recomputed ones,
/// `removed` the ids that are gone. Updates `announced` in place and
/// returns the rules whose state differs from what was announced.
pub fn state_changes_of(
    announced: &mut Announced,
    infos: Vec<RuleInfo>,
    removed: &[String],
) -> Vec<RuleInfo> {
    for id in removed {
        announced.remove(id);
    }
    let mut changed = Vec::new();
    for info in infos {
        let s = (info.state, info.reason.clone());
        if announced.get(&info.id) != Some(&s) {
            announced.insert(info.id.clone(), s);
            changed.push(info);
        }
    }
    changed
}

/// What changed between two tables of one interface (both sorted by rule
/// id, as compiled): the entries gone or different in `old`, and the
/// entries new or different in `new`. One pass of comparisons, no translation and no allocation
/// per unchanged rule.
pub fn entries_diff<'a>(
    old: &'a InterfaceTable,
    new: &'a InterfaceTable,
) -> (Vec<&'a CompiledRule>, Vec<&'a CompiledRule>) {
    let (mut gone, mut fresh) = (Vec::new(), Vec::new());
    let (mut a, mut b) = (old.iter().peekable(), new.iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => return (gone, fresh),
            (Some(x), None) => {
                gone.push(*x);
                a.next();
            }
            (None, Some(y)) => {
                fresh.push(*y);
                b.next();
            }
            (Some(x), Some(y)) => match x.rule_id.cmp(&y.rule_id) {
                std::cmp::Ordering::Less => {
                    gone.push(*x);
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    fresh.push(*y);
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    if x != y {
                        gone.push(*x);
                        fresh.push(*y);
                    }
                    a.next();
                    b.next();
                }
            },
        }
    }
}

/// The ids of rules whose compiled entry differs between two tables of
/// one interface (either sorted by rule id): the only rules whose state a
/// worker's acknowledgement of `new` instead of `old` can change.
pub fn entries_changed(old: &InterfaceTable, new: &InterfaceTable) -> Vec<String> {
    let mut out = Vec::new();
    let (mut a, mut b) = (old.iter().peekable(), new.iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => return out,
            (Some(x), None) => {
                out.push(x.rule_id.clone());
                a.next();
            }
            (None, Some(y)) => {
                out.push(y.rule_id.clone());
                b.next();
            }
            (Some(x), Some(y)) => match x.rule_id.cmp(&y.rule_id) {
                std::cmp::Ordering::Less => {
                    out.push(x.rule_id.clone());
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    out.push(y.rule_id.clone());
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    if x != y {
                        out.push(x.rule_id.clone());
                    }
                    a.next();
                    b.next();
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iface::tests::snapshot;
    use crate::rib::compile;
    use crate::rule::{OutputMode, Rule, RuleInput, RuleOutput};

    fn rule(ifc: &str, g: &str, outs: &[&str]) -> Rule {
        Rule::new(
            None,
            RuleInput {
                interface: ifc.into(),
                group: g.parse().unwrap(),
                port: 5000,
                source: None,
            },
            outs.iter()
                .map(|i| RuleOutput {
                    interface: (*i).into(),
                    group: "239.9.9.9".parse().unwrap(),
                    port: 6000,
                    ttl: None,
                    mode: OutputMode::Republish,
                    members_only: false,
                })
                .collect(),
        )
    }

    fn view(state: &str, acked: Arc<InterfaceTable>) -> WorkerView {
        WorkerView {
            state: state.into(),
            acked,
            reason: None,
            problems: BTreeMap::new(),
        }
    }

    fn tables_of(rules: &RuleSet) -> Tables {
        recompile(&Tables::new(), compile(rules))
    }

    /// A worker of eth0 that has acked `rules`' table.
    fn synced(rules: &RuleSet) -> WorkerView {
        view("running", tables_of(rules)["eth0"].clone())
    }

    fn one_rule(ifc: &str, outs: &[&str]) -> RuleSet {
        RuleSet::from_rules([rule(ifc, "239.1.1.1", outs)]).unwrap()
    }

    fn state_of(infos: &[RuleInfo]) -> (RuleState, Option<String>) {
        (infos[0].state, infos[0].reason.clone())
    }

    #[test]
    fn missing_or_down_input_interfaces_hold_the_rule() {
        let rules = one_rule("eth0", &["eth1"]);
        let none = snapshot(&[("eth1", 3, true)]);
        assert_eq!(
            state_of(&rule_infos(&rules, &tables_of(&rules), &none, &[], |_| 1)),
            (
                RuleState::Pending,
                Some("interface eth0 does not exist".into())
            )
        );
        let down = snapshot(&[("eth0", 2, false), ("eth1", 3, true)]);
        assert_eq!(
            state_of(&rule_infos(&rules, &tables_of(&rules), &down, &[], |_| 1)).0,
            RuleState::InterfaceDown
        );
    }

    #[test]
    fn a_rule_is_active_only_when_every_worker_has_its_table() {
        let rules = one_rule("eth0", &["eth1"]);
        let ifs = snapshot(&[("eth0", 2, true), ("eth1", 3, true)]);
        assert_eq!(
            state_of(&rule_infos(&rules, &tables_of(&rules), &ifs, &[], |_| 1)),
            (RuleState::Starting, Some("no worker yet".into()))
        );
        let synced = synced(&rules);
        let behind = view("running", Arc::default());
        assert_eq!(
            state_of(&rule_infos(
                &rules,
                &tables_of(&rules),
                &ifs,
                &[("eth0", &synced)],
                |_| 1
            )),
            (RuleState::Active, None)
        );
        // Pinned to two workers: one is not enough.
        assert_eq!(
            state_of(&rule_infos(
                &rules,
                &tables_of(&rules),
                &ifs,
                &[("eth0", &synced)],
                |_| 2
            ))
            .0,
            RuleState::Starting
        );
        assert_eq!(
            state_of(&rule_infos(
                &rules,
                &tables_of(&rules),
                &ifs,
                &[("eth0", &synced), ("eth0", &behind)],
                |_| 2
            )),
            (RuleState::Starting, Some("worker running".into()))
        );
        // Another interface's worker does not count.
        assert_eq!(
            state_of(&rule_infos(
                &rules,
                &tables_of(&rules),
                &ifs,
                &[("eth1", &synced)],
                |_| 1
            ))
            .0,
            RuleState::Starting
        );
    }

    #[test]
    fn output_problems_come_from_the_worker_or_the_interface_list() {
        let rules = one_rule("eth0", &["eth1", "eth2"]);
        let ifs = snapshot(&[("eth0", 2, true), ("eth1", 3, false)]);
        let mut v = synced(&rules);
        let infos = rule_infos(&rules, &tables_of(&rules), &ifs, &[("eth0", &v)], |_| 1);
        let problems: Vec<Option<String>> =
            infos[0].outputs.iter().map(|o| o.problem.clone()).collect();
        assert_eq!(
            problems,
            [
                Some("output interface eth1 is down".to_string()),
                Some("output interface eth2 does not exist".to_string())
            ]
        );
        assert_eq!(infos[0].state, RuleState::Error);
        // The worker's word wins over the interface list.
        let id = rules.iter().next().unwrap().id.clone();
        v.problems.insert((id, 0), "cannot open".into());
        let infos = rule_infos(&rules, &tables_of(&rules), &ifs, &[("eth0", &v)], |_| 1);
        assert_eq!(infos[0].outputs[0].problem.as_deref(), Some("cannot open"));
    }

    #[test]
    fn only_changed_states_are_announced() {
        let rules = one_rule("eth0", &["eth1"]);
        let ifs = snapshot(&[("eth0", 2, true), ("eth1", 3, true)]);
        let first = rule_infos(&rules, &tables_of(&rules), &ifs, &[], |_| 1);
        let (changed, announced) = state_changes(&Announced::new(), &first);
        assert_eq!(changed.len(), 1);
        let (changed, announced) = state_changes(&announced, &first);
        assert!(changed.is_empty());
        let v = synced(&rules);
        let (changed, announced) = state_changes(
            &announced,
            &rule_infos(&rules, &tables_of(&rules), &ifs, &[("eth0", &v)], |_| 1),
        );
        assert_eq!(changed[0].state, RuleState::Active);
        // A removed rule leaves the announced set.
        let (changed, announced) = state_changes(&announced, &[]);
        assert!(changed.is_empty() && announced.is_empty());
    }

    #[test]
    fn a_change_to_other_rules_leaves_an_acked_rule_active() {
        let a = rule("eth0", "239.1.1.1", &["eth1"]);
        let b = rule("eth0", "239.1.1.2", &["eth1"]);
        let ifs = snapshot(&[("eth0", 2, true), ("eth1", 3, true)]);
        let old = RuleSet::from_rules([a.clone()]).unwrap();
        let acked = synced(&old);
        // b was added; the worker has not acked it yet.
        let now = RuleSet::from_rules([a.clone(), b.clone()]).unwrap();
        let infos = rule_infos(&now, &tables_of(&now), &ifs, &[("eth0", &acked)], |_| 1);
        let state = |id: &str| infos.iter().find(|i| i.id == id).unwrap().state;
        assert_eq!(
            state(&a.id),
            RuleState::Active,
            "untouched rule stays active"
        );
        assert_eq!(state(&b.id), RuleState::Starting);
        // Same id, new outputs: the acked copy is stale.
        let a2 = Rule {
            outputs: rule("eth0", "239.1.1.1", &["eth5"]).outputs,
            ..a.clone()
        };
        let changed = RuleSet::from_rules([a2]).unwrap();
        let infos = rule_infos(
            &changed,
            &tables_of(&changed),
            &ifs,
            &[("eth0", &acked)],
            |_| 1,
        );
        assert_eq!(infos[0].state, RuleState::Starting);
        // A worker that is not running has nothing active.
        let stopped = view("restarting", tables_of(&old)["eth0"].clone());
        let infos = rule_infos(&old, &tables_of(&old), &ifs, &[("eth0", &stopped)], |_| 1);
        assert_eq!(infos[0].state, RuleState::Starting);
    }

    #[test]
    fn recompile_keeps_unchanged_tables_by_pointer() {
        let a = rule("eth0", "239.1.1.1", &["eth1"]);
        let b = rule("eth5", "239.1.1.2", &["eth1"]);
        let t1 = recompile(
            &Tables::new(),
            compile(&RuleSet::from_rules([a.clone()]).unwrap()),
        );
        let t2 = recompile(&t1, compile(&RuleSet::from_rules([a, b]).unwrap()));
        assert!(Arc::ptr_eq(&t1["eth0"], &t2["eth0"]));
        assert_eq!(t2["eth5"].len(), 1);
    }

    /// What one `add` recomputes: the entries that differ between the old
    /// and the new table, and the states of those rules alone, announced
    /// as the whole-set computation would.
    #[test]
    fn a_delta_recomputes_and_announces_only_the_rules_it_touches() {
        let a = rule("eth0", "239.1.1.1", &["eth1"]);
        let b = rule("eth0", "239.1.1.2", &["eth1"]);
        let c = rule("eth0", "239.1.1.3", &["eth1"]);
        let ifs = snapshot(&[("eth0", 2, true), ("eth1", 3, true)]);
        let old = RuleSet::from_rules([a.clone(), b.clone()]).unwrap();
        let acked = synced(&old);
        let mut announced = Announced::new();
        let all = rule_infos(&old, &tables_of(&old), &ifs, &[("eth0", &acked)], |_| 1);
        assert_eq!(state_changes_of(&mut announced, all, &[]).len(), 2);

        // c added, b removed.
        let now = RuleSet::from_rules([a.clone(), c.clone()]).unwrap();
        let (t0, t1) = (&tables_of(&old)["eth0"], &tables_of(&now)["eth0"]);
        let mut ids = entries_changed(t0, t1);
        ids.sort();
        let mut want = vec![b.id.clone(), c.id.clone()];
        want.sort();
        assert_eq!(ids, want, "a's entry is the same in both tables");
        let gone: Vec<String> = ids
            .iter()
            .filter(|i| now.get(i).is_none())
            .cloned()
            .collect();
        let infos = rule_infos_of(
            ids.iter().filter_map(|i| now.get(i)),
            &tables_of(&now),
            &ifs,
            &[("eth0", &acked)],
            |_| 1,
            &Memberships::new(),
        );
        let changed = state_changes_of(&mut announced, infos, &gone);
        assert_eq!(changed.len(), 1);
        assert_eq!(
            (changed[0].id.as_str(), changed[0].state),
            (c.id.as_str(), RuleState::Starting)
        );
        // The announced set is what the whole-set computation gives.
        let whole = rule_infos(&now, &tables_of(&now), &ifs, &[("eth0", &acked)], |_| 1);
        assert_eq!(announced, state_changes(&Announced::new(), &whole).1);
        // The same state again is not news.
        let again = rule_infos(&now, &tables_of(&now), &ifs, &[("eth0", &acked)], |_| 1);
        assert!(state_changes_of(&mut announced, again, &[]).is_empty());
        assert!(entries_changed(t1, t1).is_empty());
    }
}
