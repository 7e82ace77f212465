//! Members-only outputs of static rules: in the table exactly while their
//! interface has an IGMP member of the translated group, and shown as
//! `no members` otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;

use super::state::{rule_infos_with_members, WorkerView};
use super::*;
use crate::iface::tests::snapshot;
use crate::rule::{Rule, RuleInput, RuleOutput};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn out(ifc: &str, group: &str, members_only: bool) -> RuleOutput {
    RuleOutput {
        interface: ifc.into(),
        group: ip(group),
        port: 6000,
        ttl: None,
        mode: OutputMode::Republish,
        members_only,
    }
}

/// eth0 239.1.1.1:5000 → 239.2.2.2 on eth1 (always), and translated
/// 239.3.3.3 on eth2 and 239.4.4.4 on eth3, members-only.
fn nat_rule(source: Option<&str>) -> Rule {
    Rule::new(
        None,
        RuleInput {
            interface: "eth0".into(),
            group: ip("239.1.1.1"),
            port: 5000,
            source: source.map(ip),
        },
        vec![
            out("eth1", "239.2.2.2", false),
            out("eth2", "239.3.3.3", true),
            out("eth3", "239.4.4.4", true),
        ],
    )
}

fn rib(rule: Rule) -> Rib {
    Rib::with_rules(Arc::new(RuleSet::from_rules([rule]).unwrap()))
}

/// The output interfaces of eth0's only entry.
fn outputs(rib: &Rib) -> Vec<String> {
    let t = rib.compile();
    t["eth0"][0]
        .outputs
        .iter()
        .map(|o| o.interface.clone())
        .collect()
}

fn include(s: &[&str]) -> SourceFilter {
    SourceFilter::Include(s.iter().map(|a| ip(a)).collect())
}

fn exclude(s: &[&str]) -> SourceFilter {
    SourceFilter::Exclude(s.iter().map(|a| ip(a)).collect())
}

#[test]
fn a_members_only_output_follows_joins_and_leaves_of_its_translated_group() {
    let mut r = rib(nat_rule(None));
    assert_eq!(outputs(&r), ["eth1"]);
    // A member of the *input* group on eth2 does not count: eth2 gets
    // 239.3.3.3.
    r.join("eth2", ip("239.1.1.1"), exclude(&[])).unwrap();
    assert_eq!(outputs(&r), ["eth1"]);
    r.join("eth2", ip("239.3.3.3"), exclude(&[])).unwrap();
    assert_eq!(outputs(&r), ["eth1", "eth2"]);
    r.join("eth3", ip("239.4.4.4"), exclude(&[])).unwrap();
    assert_eq!(outputs(&r), ["eth1", "eth2", "eth3"]);
    r.leave("eth2", ip("239.3.3.3"));
    assert_eq!(outputs(&r), ["eth1", "eth3"]);
    r.leave_interface("eth3");
    assert_eq!(outputs(&r), ["eth1"]);
    // Without memberships the tables equal the static compile.
    assert_eq!(r.compile(), compile(r.rules()));
}

#[test]
fn source_filters_apply_to_the_rules_input_source() {
    let mut r = rib(nat_rule(Some("10.0.0.1")));
    r.join("eth2", ip("239.3.3.3"), include(&["10.0.0.2"]))
        .unwrap();
    assert_eq!(outputs(&r), ["eth1"], "INCLUDE of another source");
    r.join("eth2", ip("239.3.3.3"), include(&["10.0.0.1"]))
        .unwrap();
    assert_eq!(outputs(&r), ["eth1", "eth2"]);
    r.join("eth2", ip("239.3.3.3"), exclude(&["10.0.0.1"]))
        .unwrap();
    assert_eq!(outputs(&r), ["eth1"], "EXCLUDE of the rule's source");

    // A rule that takes any source sends on any real membership.
    let mut any = rib(nat_rule(None));
    any.join("eth2", ip("239.3.3.3"), include(&["10.0.0.2"]))
        .unwrap();
    assert_eq!(outputs(&any), ["eth1", "eth2"]);
}

#[test]
fn list_shows_no_members_and_maps_worker_problems_to_the_right_output() {
    let mut r = rib(nat_rule(None));
    r.join("eth3", ip("239.4.4.4"), exclude(&[])).unwrap();
    let ifs = snapshot(&[
        ("eth0", 2, true),
        ("eth1", 3, true),
        ("eth2", 4, true),
        ("eth3", 5, true),
    ]);
    let id = r.rules().iter().next().unwrap().id.clone();
    // The worker's table has eth1 (0) and eth3 (1); it reports eth3.
    let tables = super::state::recompile(&Default::default(), r.compile());
    let v = WorkerView {
        state: "running".into(),
        acked: tables["eth0"].clone(),
        reason: None,
        problems: BTreeMap::from([((id, 1), "cannot open".to_string())]),
    };
    let infos = rule_infos_with_members(
        r.rules(),
        &tables,
        &ifs,
        &[("eth0", &v)],
        |_| 1,
        r.memberships(),
    );
    let o = &infos[0].outputs;
    assert_eq!(
        o.iter()
            .map(|o| (o.no_members, o.problem.as_deref()))
            .collect::<Vec<_>>(),
        [(false, None), (true, None), (false, Some("cannot open"))]
    );
    assert_eq!(infos[0].state, RuleState::Active);

    // Only members-only outputs, none with a member: waiting, not failing.
    let only = Rule::new(
        None,
        RuleInput {
            interface: "eth0".into(),
            group: ip("239.1.1.1"),
            port: 5000,
            source: None,
        },
        vec![out("eth2", "239.3.3.3", true)],
    );
    let rules = RuleSet::from_rules([only]).unwrap();
    let only_rib = Rib::with_rules(Arc::new(rules));
    let tables = super::state::recompile(&Default::default(), only_rib.compile());
    let v = WorkerView {
        acked: tables["eth0"].clone(),
        ..v
    };
    let infos = rule_infos_with_members(
        only_rib.rules(),
        &tables,
        &ifs,
        &[("eth0", &v)],
        |_| 1,
        &Default::default(),
    );
    assert!(infos[0].outputs[0].no_members);
    assert_eq!(infos[0].state, RuleState::Active);
}

use crate::control::RuleState;

proptest! {
    /// Any sequence of joins and leaves: a members-only output is in the
    /// table exactly while its (interface, translated group) has a member;
    /// the plain output never changes.
    #[test]
    fn membership_toggles_exactly_its_output(
        ops in proptest::collection::vec((0usize..3, 0usize..3, any::<bool>()), 0..40)
    ) {
        let ifcs = ["eth1", "eth2", "eth3"];
        let groups = ["239.2.2.2", "239.3.3.3", "239.4.4.4"];
        let mut r = rib(nat_rule(None));
        let mut joined: BTreeSet<(usize, usize)> = BTreeSet::new();
        for (i, g, join) in ops {
            if join {
                r.join(ifcs[i], ip(groups[g]), exclude(&[])).unwrap();
                joined.insert((i, g));
            } else {
                r.leave(ifcs[i], ip(groups[g]));
                joined.remove(&(i, g));
            }
            let mut want = vec!["eth1".to_string()];
            if joined.contains(&(1, 1)) {
                want.push("eth2".into());
            }
            if joined.contains(&(2, 2)) {
                want.push("eth3".into());
            }
            prop_assert_eq!(outputs(&r), want);
        }
    }
}
