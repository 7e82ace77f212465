//! Unit tests of the RIB merge: what a packet does once the compiled
//! tables are installed in a real data-plane `Table`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use super::merge::unique_key;
use super::*;
use crate::dataplane::table::Table;
use crate::ipc::{TableOutput, TableRule};
use crate::rule::{validate_rule_id, Rule, RuleInput, RuleOutput};

pub(super) fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// A static rule from `ifc` (G, port, source) to 239.9.9.9:7000 on `out`.
pub(super) fn static_rule(
    ifc: &str,
    g: Ipv4Addr,
    port: u16,
    source: Option<Ipv4Addr>,
    out: &str,
) -> Rule {
    Rule::new(
        None,
        RuleInput {
            interface: ifc.into(),
            group: g,
            port,
            source,
        },
        vec![RuleOutput {
            interface: out.into(),
            group: ip("239.9.9.9"),
            port: 7000,
            ttl: None,
            mode: OutputMode::Republish,
            members_only: false,
        }],
    )
}

/// The compiled entry a packet from `src` to `dst:port` arriving on `iif`
/// matches, found by the data plane's own lookup.
pub(super) fn forwarded<'a>(
    tables: &'a Tables,
    iif: &str,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    port: u16,
) -> Option<&'a CompiledRule> {
    let compiled = tables.get(iif)?;
    let mut t = Table::new();
    for r in compiled {
        t.upsert(TableRule {
            key: r.key,
            id: r.rule_id.clone(),
            group: r.group,
            port: r.port,
            source: r.source,
            outputs: r
                .outputs
                .iter()
                .map(|o| TableOutput {
                    egress: 0,
                    group: o.group,
                    port: o.port,
                    mode: o.mode,
                })
                .collect(),
        });
    }
    let key = t.entry(t.lookup(src, dst, port)?)?.rule.key;
    compiled.iter().find(|r| r.key == key)
}

/// Output interfaces of the entry a packet matches, with their modes.
pub(super) fn sent_to(
    tables: &Tables,
    iif: &str,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    port: u16,
) -> Option<BTreeMap<String, OutputMode>> {
    forwarded(tables, iif, src, dst, port).map(|r| {
        r.outputs
            .iter()
            .map(|o| (o.interface.clone(), o.mode))
            .collect()
    })
}

fn routed(ifcs: &[&str]) -> Option<BTreeMap<String, OutputMode>> {
    Some(
        ifcs.iter()
            .map(|i| (i.to_string(), OutputMode::Route))
            .collect(),
    )
}

const G: &str = "239.1.1.1";
const S1: &str = "10.0.0.1";
const S2: &str = "10.0.0.2";

#[test]
fn without_learned_state_the_rib_compiles_exactly_the_static_tables() {
    let set = RuleSet::from_rules([
        static_rule("eth0", ip(G), 5000, None, "eth1"),
        static_rule("eth0", ip("239.1.1.2"), 0, Some(ip(S1)), "eth2"),
        static_rule("eth3", ip(G), 0, None, "eth1"),
    ])
    .unwrap();
    let rib = Rib::with_rules(Arc::new(set.clone()));
    assert!(rib.is_static_only());
    assert_eq!(rib.compile(), compile(&set));
    assert_eq!(tables_hash(&rib.compile()), tables_hash(&compile(&set)));
}

#[test]
fn star_g_route_becomes_a_route_mode_any_port_entry_named_by_its_origin() {
    let mut rib = Rib::new();
    let r = Route::star_g(ip(G), "eth0", &["eth1", "eth2", "eth0"]);
    assert_eq!(rib.apply(Origin::Pim, r.clone()), Ok(true));
    assert_eq!(rib.apply(Origin::Pim, r), Ok(false), "same route again");
    let t = rib.compile();
    assert_eq!(t.len(), 1);
    let e = &t["eth0"][0];
    assert_eq!(e.rule_id, "(*,239.1.1.1)@eth0");
    assert!(
        validate_rule_id(&e.rule_id).is_err(),
        "no static rule can take it"
    );
    assert_eq!(e.origin, "pim");
    assert_eq!((e.port, e.source), (0, None));
    assert_eq!(
        sent_to(&t, "eth0", ip(S1), ip(G), 1234),
        routed(&["eth1", "eth2"]),
        "the upstream is never an output; any port is forwarded"
    );
    assert!(e.outputs.iter().all(|o| o.group == ip(G) && o.port == 0));
    assert_eq!(sent_to(&t, "eth1", ip(S1), ip(G), 1234), None);
}

#[test]
fn s_g_inherits_star_g_on_its_upstream_and_is_dropped_elsewhere() {
    let mut rib = Rib::new();
    rib.apply(Origin::Pim, Route::star_g(ip(G), "eth0", &["eth1"]))
        .unwrap();
    rib.apply(Origin::Pim, Route::s_g(ip(S1), ip(G), "eth0", &["eth2"]))
        .unwrap();
    // An (S,G) with another upstream (the shortest path tree) stands alone.
    rib.apply(Origin::Pim, Route::s_g(ip(S2), ip(G), "eth3", &["eth2"]))
        .unwrap();
    let t = rib.compile();
    assert_eq!(
        sent_to(&t, "eth0", ip(S1), ip(G), 5000),
        routed(&["eth1", "eth2"])
    );
    assert_eq!(
        sent_to(&t, "eth0", ip("10.0.0.7"), ip(G), 5000),
        routed(&["eth1"])
    );
    assert_eq!(sent_to(&t, "eth3", ip(S2), ip(G), 5000), routed(&["eth2"]));
    assert_eq!(sent_to(&t, "eth3", ip(S1), ip(G), 5000), None);
    assert_eq!(
        sent_to(&t, "eth0", ip(S2), ip(G), 5000),
        routed(&[]),
        "S2 comes from eth3 now: its copies on the shared tree are dropped"
    );
    let drop = forwarded(&t, "eth0", ip(S2), ip(G), 5000).unwrap();
    assert_eq!(drop.rule_id, "(10.0.0.2,239.1.1.1)@eth0");
    assert_eq!(drop.origin, "pim");

    rib.withdraw(Origin::Pim, Some(ip(S2)), ip(G));
    assert_eq!(
        sent_to(&rib.compile(), "eth0", ip(S2), ip(G), 5000),
        routed(&["eth1"]),
        "back on the shared tree"
    );
}

#[test]
fn memberships_add_outputs_by_source_filter_and_create_no_entries() {
    let mut rib = Rib::new();
    rib.join("eth1", ip(G), SourceFilter::any()).unwrap();
    assert!(
        rib.compile().is_empty(),
        "a membership alone has no upstream"
    );
    // An IGMP proxy: (*,G) from the upstream interface, outputs from members.
    rib.apply(Origin::Igmp, Route::star_g(ip(G), "eth0", &[]))
        .unwrap();
    rib.join("eth2", ip(G), SourceFilter::Include([ip(S1)].into()))
        .unwrap();
    rib.join("eth3", ip(G), SourceFilter::Exclude([ip(S1)].into()))
        .unwrap();
    rib.join("eth0", ip(G), SourceFilter::any()).unwrap();
    let t = rib.compile();
    assert_eq!(
        sent_to(&t, "eth0", ip(S1), ip(G), 5000),
        routed(&["eth1", "eth2"])
    );
    assert_eq!(
        sent_to(&t, "eth0", ip(S2), ip(G), 5000),
        routed(&["eth1", "eth3"])
    );
    assert!(forwarded(&t, "eth0", ip(S1), ip("239.1.1.2"), 5000).is_none());

    let m = mroute(&rib);
    assert_eq!(m.len(), 2, "(*,G) and the (S1,G) the filters need: {m:?}");
    assert!(m
        .iter()
        .all(|e| e.origin == "igmp" && e.interface == "eth0"));
    let star = m.iter().find(|e| e.source.is_none()).unwrap();
    assert_eq!(star.rule_id, "(*,239.1.1.1)@eth0");
    assert_eq!(
        star.outputs,
        [
            "239.1.1.1:0 on eth1 ttl 1 route (igmp member)",
            "239.1.1.1:0 on eth3 ttl 1 route (igmp member)"
        ]
    );

    // INCLUDE {} is a leave.
    assert_eq!(
        rib.join("eth2", ip(G), SourceFilter::Include(BTreeSet::new())),
        Ok(true)
    );
    assert!(rib.leave("eth3", ip(G)));
    let t = rib.compile();
    assert_eq!(t["eth0"].len(), 1, "no source needs its own entry now");
    assert_eq!(sent_to(&t, "eth0", ip(S1), ip(G), 5000), routed(&["eth1"]));
    assert_eq!(rib.leave_interface("eth1"), 1);
    assert_eq!(
        sent_to(&rib.compile(), "eth0", ip(S1), ip(G), 5000),
        routed(&[])
    );
}

#[test]
fn a_membership_does_not_reach_an_entry_whose_route_lists_it_already() {
    let mut rib = Rib::new();
    rib.apply(Origin::Pim, Route::star_g(ip(G), "eth0", &["eth1"]))
        .unwrap();
    rib.join("eth1", ip(G), SourceFilter::Exclude([ip(S1)].into()))
        .unwrap();
    let t = rib.compile();
    assert_eq!(
        sent_to(&t, "eth0", ip(S1), ip(G), 5000),
        routed(&["eth1"]),
        "memberships only add; PIM's own olist keeps eth1"
    );
    let m = mroute(&rib);
    assert_eq!(
        m.len(),
        1,
        "the derived (S1,G) equals (*,G) and is left out"
    );
    assert_eq!(m[0].outputs, ["239.1.1.1:0 on eth1 ttl 1 route"]);
}

#[test]
fn a_port_specific_static_rule_keeps_its_packets() {
    let set = RuleSet::from_rules([static_rule("eth0", ip(G), 5000, None, "eth5")]).unwrap();
    let static_id = set.iter().next().unwrap().id.clone();
    let mut rib = Rib::with_rules(Arc::new(set.clone()));
    rib.apply(Origin::Pim, Route::s_g(ip(S1), ip(G), "eth0", &["eth1"]))
        .unwrap();
    let t = rib.compile();
    assert_eq!(
        forwarded(&t, "eth0", ip(S1), ip(G), 5000).unwrap().rule_id,
        static_id
    );
    assert_eq!(sent_to(&t, "eth0", ip(S1), ip(G), 6000), routed(&["eth1"]));
    assert!(rib.shadowed().is_empty());
    let statics: Vec<&CompiledRule> = t["eth0"].iter().filter(|r| r.origin == "static").collect();
    assert_eq!(statics, compile(&set)["eth0"].iter().collect::<Vec<_>>());
}

#[test]
fn an_any_port_static_rule_shadows_the_learned_entries_it_would_lose_packets_to() {
    let any_src = static_rule("eth0", ip(G), 0, None, "eth5");
    let from_s1 = static_rule("eth1", ip(G), 0, Some(ip(S1)), "eth5");
    let set = RuleSet::from_rules([any_src.clone(), from_s1.clone()]).unwrap();
    let mut rib = Rib::with_rules(Arc::new(set.clone()));
    // One upstream per origin and (S,G), so two origins per interface.
    for (up, star, sg) in [
        ("eth0", Origin::Pim, Origin::Msdp),
        ("eth1", Origin::Igmp, Origin::Pim),
    ] {
        rib.apply(star, Route::star_g(ip(G), up, &["eth2"]))
            .unwrap();
        rib.apply(sg, Route::s_g(ip(S1), ip(G), up, &["eth3"]))
            .unwrap();
    }
    let t = rib.compile();
    // eth0: the static rule takes every source.
    assert_eq!(t["eth0"], compile(&set)["eth0"]);
    // eth1: S1 belongs to the static rule, other sources to (*,G).
    assert_eq!(
        forwarded(&t, "eth1", ip(S1), ip(G), 5000).unwrap().rule_id,
        from_s1.id
    );
    assert_eq!(sent_to(&t, "eth1", ip(S2), ip(G), 5000), routed(&["eth2"]));
    assert_eq!(t["eth1"].len(), 2, "the static rule and (*,G)");

    let shadowed: Vec<(String, Option<String>)> = rib
        .shadowed()
        .into_iter()
        .map(|e| (e.rule_id, e.shadowed_by))
        .collect();
    assert_eq!(
        shadowed,
        [
            ("(*,239.1.1.1)@eth0".to_string(), Some(any_src.id.clone())),
            (
                "(10.0.0.1,239.1.1.1)@eth0".to_string(),
                Some(any_src.id.clone())
            ),
            (
                "(10.0.0.1,239.1.1.1)@eth1".to_string(),
                Some(from_s1.id.clone())
            ),
        ]
    );
    // mroute lists the shadowed entries too, naming the rule in the way.
    let listed: Vec<(String, Option<String>)> = mroute(&rib)
        .into_iter()
        .filter(|e| e.rule_id.starts_with('('))
        .map(|e| (e.rule_id, e.shadowed_by))
        .collect();
    assert_eq!(
        listed,
        [
            ("(*,239.1.1.1)@eth0".to_string(), Some(any_src.id.clone())),
            ("(10.0.0.1,239.1.1.1)@eth0".to_string(), Some(any_src.id)),
            ("(*,239.1.1.1)@eth1".to_string(), None),
            ("(10.0.0.1,239.1.1.1)@eth1".to_string(), Some(from_s1.id)),
        ]
    );
}

#[test]
fn origins_merge_into_one_entry_and_route_mode_wins() {
    let mut rib = Rib::new();
    rib.apply(Origin::Pim, Route::s_g(ip(S1), ip(G), "eth0", &["eth1"]))
        .unwrap();
    let mut msdp = Route::s_g(ip(S1), ip(G), "eth0", &["eth1", "eth2"]);
    msdp.mode = OutputMode::Republish;
    rib.apply(Origin::Msdp, msdp).unwrap();
    let t = rib.compile();
    assert_eq!(t["eth0"].len(), 1);
    assert_eq!(t["eth0"][0].origin, "pim");
    let want: BTreeMap<String, OutputMode> = [
        ("eth1".to_string(), OutputMode::Route),
        ("eth2".to_string(), OutputMode::Republish),
    ]
    .into();
    assert_eq!(sent_to(&t, "eth0", ip(S1), ip(G), 1), Some(want));
    let e = &rib.learned_entries()[0];
    assert_eq!(e.origins, [Origin::Pim, Origin::Msdp].into());

    assert!(rib.withdraw(Origin::Pim, Some(ip(S1)), ip(G)).is_some());
    assert_eq!(rib.compile()["eth0"][0].origin, "msdp");
    assert_eq!(rib.withdraw_origin(Origin::Msdp), 1);
    assert!(rib.compile().is_empty());
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let mut rib = Rib::new();
    let r = Route::star_g(ip(G), "eth0", &["eth1"]);
    assert_eq!(rib.apply(Origin::Static, r), Err(RouteError::StaticOrigin));
    let r = Route::star_g(ip("224.0.0.5"), "eth0", &["eth1"]);
    assert_eq!(
        rib.apply(Origin::Pim, r),
        Err(RouteError::LinkLocal(ip("224.0.0.5")))
    );
    assert!(rib
        .join("eth1", ip("10.1.1.1"), SourceFilter::any())
        .is_err());
    assert!(rib.is_static_only());
    assert!(!rib.leave("eth1", ip(G)));
    assert!(rib.withdraw(Origin::Pim, None, ip(G)).is_none());
}

#[test]
fn learned_keys_step_aside_from_keys_in_use() {
    let id = "(*,239.1.1.1)@eth0";
    let mut used: HashSet<u64> = [rule_key(id)].into();
    let k = unique_key(id, &mut used);
    assert_ne!(k, rule_key(id));
    let mut again: HashSet<u64> = [rule_key(id)].into();
    assert_eq!(unique_key(id, &mut again), k, "deterministic");
    assert_eq!(
        unique_key("(*,239.1.1.2)@eth0", &mut used),
        rule_key("(*,239.1.1.2)@eth0")
    );
}

#[test]
fn table_hash_follows_content() {
    let mut rib = Rib::new();
    rib.apply(Origin::Pim, Route::star_g(ip(G), "eth0", &["eth1"]))
        .unwrap();
    let a = tables_hash(&rib.compile());
    rib.join("eth2", ip(G), SourceFilter::any()).unwrap();
    let b = tables_hash(&rib.compile());
    assert_ne!(a, b);
    rib.leave("eth2", ip(G));
    assert_eq!(tables_hash(&rib.compile()), a);
    assert_eq!(mroute_from_tables(&rib.compile()), mroute(&rib));
}

#[test]
fn mroute_lists_static_and_learned_entries_with_their_origin() {
    let set = RuleSet::from_rules([static_rule("eth0", ip(G), 5000, None, "eth5")]).unwrap();
    let static_id = set.iter().next().unwrap().id.clone();
    let mut rib = Rib::with_rules(Arc::new(set));
    rib.apply(Origin::Msdp, Route::s_g(ip(S1), ip(G), "eth0", &["eth1"]))
        .unwrap();
    rib.apply(Origin::Igmp, Route::star_g(ip("239.1.1.2"), "eth2", &[]))
        .unwrap();
    rib.join("eth3", ip("239.1.1.2"), SourceFilter::any())
        .unwrap();
    let origins: Vec<Vec<String>> = mroute(&rib).into_iter().map(|e| e.origins).collect();
    assert_eq!(origins, [vec!["msdp"], vec!["static"], vec!["igmp"]]);
    let rows: Vec<(String, String, String, Vec<String>)> = mroute(&rib)
        .into_iter()
        .map(|e| (e.interface, e.origin, e.rule_id, e.outputs))
        .collect();
    assert_eq!(
        rows,
        [
            (
                "eth0".to_string(),
                "msdp".to_string(),
                "(10.0.0.1,239.1.1.1)@eth0".to_string(),
                vec!["239.1.1.1:0 on eth1 ttl 1 route".to_string()]
            ),
            (
                "eth0".to_string(),
                "static".to_string(),
                static_id,
                vec!["239.9.9.9:7000 on eth5 ttl 1 republish".to_string()]
            ),
            (
                "eth2".to_string(),
                "igmp".to_string(),
                "(*,239.1.1.2)@eth2".to_string(),
                vec!["239.1.1.2:0 on eth3 ttl 1 route (igmp member)".to_string()]
            ),
        ]
    );
}

#[test]
fn a_membership_set_replaces_one_interface_only_and_all_or_nothing() {
    let mut rib = Rib::new();
    rib.apply(Origin::Pim, Route::star_g(ip(G), "eth0", &[]))
        .unwrap();
    rib.join("eth1", ip(G), SourceFilter::any()).unwrap();
    rib.join("eth2", ip(G), SourceFilter::any()).unwrap();
    let before = rib.compile();
    // The same set again: nothing to recompile.
    assert_eq!(
        rib.set_memberships("eth1", &[(ip(G), SourceFilter::any())]),
        Ok(false)
    );
    // An invalid group refuses the whole set.
    assert!(rib
        .set_memberships("eth1", &[(ip("224.0.0.5"), SourceFilter::any())])
        .is_err());
    assert_eq!(rib.compile(), before);
    // An empty set removes eth1's memberships, not eth2's.
    assert_eq!(rib.set_memberships("eth1", &[]), Ok(true));
    assert_eq!(
        sent_to(&rib.compile(), "eth0", ip(S1), ip(G), 5000),
        routed(&["eth2"])
    );
    assert_eq!(
        rib.set_memberships("eth1", &[(ip(G), SourceFilter::any())]),
        Ok(true)
    );
    assert_eq!(rib.compile(), before);
}

/// An (S,G) route that only carries (S,G,rpt) prunes.
fn rpt_prune(src: &str, upstream: &str, pruned: &[&str]) -> Route {
    Route {
        rpt_pruned: pruned.iter().map(|p| p.to_string()).collect(),
        ..Route::s_g(ip(src), ip(G), upstream, &[])
    }
}

#[test]
fn an_rpt_prune_stops_one_source_on_the_shared_tree_and_no_other() {
    let mut rib = Rib::new();
    rib.apply(Origin::Pim, Route::star_g(ip(G), "eth0", &["eth1", "eth2"]))
        .unwrap();
    rib.apply(Origin::Pim, rpt_prune(S1, "eth0", &["eth2"]))
        .unwrap();
    let t = rib.compile();
    assert_eq!(sent_to(&t, "eth0", ip(S1), ip(G), 5000), routed(&["eth1"]));
    assert_eq!(
        sent_to(&t, "eth0", ip(S2), ip(G), 5000),
        routed(&["eth1", "eth2"]),
        "another source of the group keeps the whole shared tree"
    );

    // Pruned everywhere: S1 is dropped, not sent down (*,G).
    rib.apply(Origin::Pim, rpt_prune(S1, "eth0", &["eth1", "eth2"]))
        .unwrap();
    assert_eq!(
        sent_to(&rib.compile(), "eth0", ip(S1), ip(G), 5000),
        routed(&[])
    );

    // The form the PIM core installs on the shared tree's interface: its
    // inherited_olist, which already lacks the pruned interface.
    let mut sg = rpt_prune(S1, "eth0", &["eth2"]);
    sg.downstream.insert("eth1".into());
    rib.apply(Origin::Pim, sg).unwrap();
    assert_eq!(
        sent_to(&rib.compile(), "eth0", ip(S1), ip(G), 5000),
        routed(&["eth1"])
    );

    rib.withdraw(Origin::Pim, Some(ip(S1)), ip(G));
    assert_eq!(
        sent_to(&rib.compile(), "eth0", ip(S1), ip(G), 5000),
        routed(&["eth1", "eth2"]),
        "the prune is gone: S1 is back on the whole shared tree"
    );
}

#[test]
fn an_rpt_prune_leaves_other_origins_memberships_and_static_rules_alone() {
    let set = RuleSet::from_rules([static_rule("eth0", ip(G), 5000, None, "eth5")]).unwrap();
    let mut rib = Rib::with_rules(Arc::new(set));
    rib.apply(Origin::Pim, Route::star_g(ip(G), "eth0", &["eth1", "eth2"]))
        .unwrap();
    rib.apply(Origin::Msdp, Route::star_g(ip(G), "eth0", &["eth3"]))
        .unwrap();
    rib.apply(Origin::Pim, rpt_prune(S1, "eth0", &["eth2", "eth3"]))
        .unwrap();
    let t = rib.compile();
    assert_eq!(
        sent_to(&t, "eth0", ip(S1), ip(G), 6000),
        routed(&["eth1", "eth3"]),
        "a PIM prune does not take S1 off another origin's (*,G)"
    );
    assert_eq!(
        forwarded(&t, "eth0", ip(S1), ip(G), 5000).map(|r| r.rule_id.as_str()),
        Some(rib.rules().iter().next().unwrap().id.as_str()),
        "the static rule keeps its port"
    );
    rib.join("eth2", ip(G), SourceFilter::Include([ip(S1)].into()))
        .unwrap();
    assert_eq!(
        sent_to(&rib.compile(), "eth0", ip(S1), ip(G), 6000),
        routed(&["eth1", "eth2", "eth3"]),
        "a local receiver of S1 on eth2 still gets it (RFC 7761 pim_include)"
    );
}

#[test]
fn replacing_an_origin_withdraws_what_is_gone_and_keeps_what_stays() {
    let mut rib = Rib::new();
    let stays = Route::star_g(ip(G), "eth0", &["eth1"]);
    let gone = Route::s_g(ip(S1), ip("239.1.1.2"), "eth3", &["eth1"]);
    rib.apply(Origin::Pim, stays.clone()).unwrap();
    rib.apply(Origin::Pim, gone).unwrap();
    rib.apply(
        Origin::Msdp,
        Route::star_g(ip("239.1.1.3"), "eth0", &["eth2"]),
    )
    .unwrap();

    assert_eq!(
        rib.replace_origin(Origin::Pim, vec![stays.clone()]),
        Ok(true)
    );
    let t = rib.compile();
    assert_eq!(sent_to(&t, "eth0", ip(S1), ip(G), 5000), routed(&["eth1"]));
    assert_eq!(
        sent_to(&t, "eth3", ip(S1), ip("239.1.1.2"), 5000),
        None,
        "a route the protocol no longer has is withdrawn"
    );
    assert_eq!(
        sent_to(&t, "eth0", ip(S1), ip("239.1.1.3"), 5000),
        routed(&["eth2"]),
        "other origins are not touched"
    );
    assert_eq!(
        rib.replace_origin(Origin::Pim, vec![stays.clone()]),
        Ok(false),
        "the same set: nothing to recompile"
    );

    let mut bad = stays.clone();
    bad.group = ip("224.0.0.13");
    let before = rib.clone();
    assert!(rib.replace_origin(Origin::Pim, vec![bad]).is_err());
    assert!(rib.replace_origin(Origin::Static, vec![]).is_err());
    assert_eq!(rib, before, "all or nothing");

    assert_eq!(rib.replace_origin(Origin::Pim, vec![]), Ok(true));
    assert_eq!(rib.replace_origin(Origin::Msdp, vec![]), Ok(true));
    assert!(rib.is_static_only());
}

#[test]
fn a_route_that_names_its_member_interfaces_takes_members_only_there() {
    let mut rib = Rib::new();
    for ifc in ["eth1", "eth2", "eth3"] {
        rib.join(ifc, ip(G), SourceFilter::any()).unwrap();
    }
    rib.join("eth4", ip(G), SourceFilter::Include([ip(S1)].into()))
        .unwrap();
    // The IGMP proxy serves eth1 and eth4 (downstream, querier there);
    // eth2 is a downstream LAN another querier serves, eth3 a querier
    // interface that is not downstream.
    let proxy = |only: &[&str]| Route {
        member_interfaces: Some(only.iter().map(|s| s.to_string()).collect()),
        ..Route::star_g(ip(G), "eth0", &[])
    };
    rib.apply(Origin::Igmp, proxy(&["eth1", "eth4"])).unwrap();
    let t = rib.compile();
    assert_eq!(sent_to(&t, "eth0", ip(S2), ip(G), 5000), routed(&["eth1"]));
    // The source filter still applies on the interfaces it takes.
    assert_eq!(
        sent_to(&t, "eth0", ip(S1), ip(G), 5000),
        routed(&["eth1", "eth4"])
    );
    // The proxy becomes querier on eth2: replacing its route adds it.
    rib.apply(Origin::Igmp, proxy(&["eth1", "eth2", "eth4"]))
        .unwrap();
    assert_eq!(
        sent_to(&rib.compile(), "eth0", ip(S2), ip(G), 5000),
        routed(&["eth1", "eth2"])
    );
    // A route of another origin on the same input that takes every
    // membership (PIM) brings eth3 in: outputs are a union.
    rib.apply(Origin::Pim, Route::star_g(ip(G), "eth0", &[]))
        .unwrap();
    assert_eq!(
        sent_to(&rib.compile(), "eth0", ip(S2), ip(G), 5000),
        routed(&["eth1", "eth2", "eth3"])
    );
    // An interface the route names must be a valid name.
    let bad = proxy(&["not a valid interface name!"]);
    assert!(rib.apply(Origin::Igmp, bad).is_err());
}
