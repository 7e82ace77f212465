//! Property tests of the RIB: order independence, clean withdrawal, and
//! that every packet does what the merge policy says, static rules first,
//! checked through the data plane's own lookup.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::select;

use super::tests_merge::{forwarded, ip, sent_to, static_rule};
use super::*;
use crate::rule::{validate_rule_id, InputKey, Rule};

const IFS: [&str; 4] = ["eth0", "eth1", "eth2", "eth3"];
const SOURCES: [&str; 3] = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];
/// A source no route or filter names.
const OTHER_SOURCE: &str = "10.0.0.9";
const GROUPS: [&str; 2] = ["239.1.1.1", "239.1.1.2"];
/// Noise lives in its own group, so withdrawing it cannot touch the rest.
const NOISE: [&str; 1] = ["239.2.2.2"];

#[derive(Clone, Debug)]
enum Item {
    Route(Origin, Route),
    Member(String, Ipv4Addr, SourceFilter),
}

/// What `apply`/`join` replace on: one state per identity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Identity {
    Route(Origin, Ipv4Addr, Option<Ipv4Addr>),
    Member(String, Ipv4Addr),
}

impl Item {
    fn identity(&self) -> Identity {
        match self {
            Item::Route(o, r) => Identity::Route(*o, r.group, r.source),
            Item::Member(i, g, _) => Identity::Member(i.clone(), *g),
        }
    }

    fn add(&self, rib: &mut Rib) {
        let res = match self {
            Item::Route(o, r) => rib.apply(*o, r.clone()),
            Item::Member(i, g, f) => rib.join(i, *g, f.clone()),
        };
        assert!(res.is_ok(), "generated input is valid: {res:?}");
    }

    fn withdraw(&self, rib: &mut Rib) {
        match self {
            Item::Route(o, r) => {
                rib.withdraw(*o, r.source, r.group);
            }
            Item::Member(i, g, _) => {
                rib.leave(i, *g);
            }
        }
    }
}

fn addr(pool: &'static [&'static str]) -> impl Strategy<Value = Ipv4Addr> {
    select(pool).prop_map(ip)
}

fn ifc() -> impl Strategy<Value = String> {
    select(&IFS[..]).prop_map(String::from)
}

fn item(groups: &'static [&'static str]) -> impl Strategy<Value = Item> {
    let route = (
        select(&Origin::LEARNED[..]),
        proptest::option::of(addr(&SOURCES)),
        addr(groups),
        ifc(),
        proptest::collection::btree_set(ifc(), 0..4),
        any::<bool>(),
        proptest::collection::btree_set(ifc(), 0..2),
    )
        .prop_map(
            |(o, source, group, upstream, downstream, republish, rpt_pruned)| {
                let mode = if republish {
                    OutputMode::Republish
                } else {
                    OutputMode::Route
                };
                Item::Route(
                    o,
                    Route {
                        source,
                        group,
                        upstream,
                        downstream,
                        mode,
                        rpt_pruned,
                        member_interfaces: None,
                    },
                )
            },
        );
    let member = (
        ifc(),
        addr(groups),
        any::<bool>(),
        proptest::collection::btree_set(addr(&SOURCES), 0..3),
    )
        .prop_map(|(i, g, include, s)| {
            let f = if include {
                SourceFilter::Include(s)
            } else {
                SourceFilter::Exclude(s)
            };
            Item::Member(i, g, f)
        });
    prop_oneof![route, member]
}

/// Items with distinct identities, so that the final state does not
/// depend on which of two same-identity items came last.
fn items(groups: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<Item>> {
    proptest::collection::vec(item(groups), 0..max).prop_map(|v| {
        let mut seen = BTreeSet::new();
        v.into_iter()
            .filter(|i| seen.insert(i.identity()))
            .collect()
    })
}

fn statics() -> impl Strategy<Value = RuleSet> {
    let one = (
        ifc(),
        addr(&GROUPS),
        select(&[0u16, 5000][..]),
        proptest::option::of(addr(&SOURCES)),
    );
    proptest::collection::vec(one, 0..4).prop_map(|v| {
        let mut by_input: BTreeMap<InputKey, Rule> = BTreeMap::new();
        for (i, g, port, src) in v {
            let r = static_rule(&i, g, port, src, "eth5");
            by_input.insert(r.input_key(), r);
        }
        RuleSet::from_rules(by_input.into_values()).unwrap_or_default()
    })
}

/// What the merge policy says a learned packet gets, from the final state
/// alone: the union of the (*,G) and (S,G) routes of its upstream (less
/// the (*,G) outputs its origin's (S,G,rpt) prunes name), plus
/// memberships that accept its source, never the upstream itself; and
/// nothing at all if an (S,G) route names another upstream.
fn model(
    items: &[Item],
    iif: &str,
    src: Ipv4Addr,
    g: Ipv4Addr,
) -> Option<BTreeMap<String, OutputMode>> {
    let sg_upstreams: BTreeSet<&str> = items
        .iter()
        .filter_map(|i| match i {
            Item::Route(_, r) if r.group == g && r.source == Some(src) => Some(r.upstream.as_str()),
            _ => None,
        })
        .collect();
    let has_star = items.iter().any(|i| {
        matches!(i, Item::Route(_, r) if r.upstream == iif && r.group == g && r.source.is_none())
    });
    if !sg_upstreams.is_empty() && !sg_upstreams.contains(iif) {
        return has_star.then(BTreeMap::new);
    }
    let routes: Vec<(Origin, &Route)> = items
        .iter()
        .filter_map(|i| match i {
            Item::Route(o, r)
                if r.upstream == iif && r.group == g && r.source.is_none_or(|s| s == src) =>
            {
                Some((*o, r))
            }
            _ => None,
        })
        .collect();
    // (S,G,rpt) prunes hide the same origin's (*,G) outputs from S.
    let pruned: BTreeSet<(Origin, &str)> = routes
        .iter()
        .filter(|(_, r)| r.source.is_some())
        .flat_map(|(o, r)| r.rpt_pruned.iter().map(move |d| (*o, d.as_str())))
        .collect();
    let mode = routes.iter().map(|(_, r)| r.mode).max()?;
    let mut outs: BTreeMap<String, OutputMode> = BTreeMap::new();
    for (o, r) in &routes {
        for d in &r.downstream {
            if r.source.is_none() && pruned.contains(&(*o, d.as_str())) {
                continue;
            }
            let m = outs.entry(d.clone()).or_insert(r.mode);
            *m = (*m).max(r.mode);
        }
    }
    for i in items {
        if let Item::Member(x, mg, f) = i {
            if *mg == g && f.accepts(src) {
                outs.entry(x.clone()).or_insert(mode);
            }
        }
    }
    outs.remove(iif);
    Some(outs)
}

/// Noise is added and later withdrawn; each op gets a random position.
fn schedule(items: &[Item], noise: &[Item], prio: &[u32]) -> Vec<(Item, bool)> {
    let mut p = prio.iter().copied().cycle();
    let mut ops: Vec<(u32, u8, Item, bool)> = Vec::new();
    for i in items {
        ops.push((p.next().unwrap_or(0), 0, i.clone(), true));
    }
    for i in noise {
        let a = p.next().unwrap_or(0);
        let b = p.next().unwrap_or(0);
        ops.push((a.min(b), 0, i.clone(), true));
        ops.push((a.max(b), 1, i.clone(), false));
    }
    ops.sort_by_key(|(prio, tag, _, _)| (*prio, *tag));
    ops.into_iter().map(|(_, _, i, add)| (i, add)).collect()
}

proptest! {
    #[test]
    fn any_order_of_adds_and_removes_gives_the_same_tables(
        set in statics(),
        items in items(&GROUPS, 14),
        noise in items(&NOISE, 6),
        prio in proptest::collection::vec(any::<u32>(), 32),
    ) {
        let set = Arc::new(set);
        let mut a = Rib::with_rules(set.clone());
        for i in &items {
            i.add(&mut a);
        }
        // Rules arrive last here, and noise comes and goes in between.
        let mut b = Rib::new();
        for (i, add) in schedule(&items, &noise, &prio) {
            if add { i.add(&mut b) } else { i.withdraw(&mut b) }
        }
        b.set_rules(set);
        let (ta, tb) = (a.compile(), b.compile());
        prop_assert_eq!(&ta, &tb);
        prop_assert_eq!(tables_hash(&ta), tables_hash(&tb));
        prop_assert_eq!(mroute(&a), mroute(&b));
    }

    #[test]
    fn withdrawing_everything_learned_leaves_exactly_the_static_tables(
        set in statics(),
        items in items(&GROUPS, 14),
        by_origin in any::<bool>(),
    ) {
        let mut rib = Rib::with_rules(Arc::new(set.clone()));
        for i in &items {
            i.add(&mut rib);
        }
        if by_origin {
            for o in Origin::LEARNED {
                rib.withdraw_origin(o);
            }
            for i in IFS {
                rib.leave_interface(i);
            }
        } else {
            for i in items.iter().rev() {
                i.withdraw(&mut rib);
            }
        }
        prop_assert!(rib.is_static_only());
        let t = rib.compile();
        prop_assert_eq!(tables_hash(&t), tables_hash(&compile(&set)));
        prop_assert_eq!(t, compile(&set));
    }

    #[test]
    fn static_rules_keep_their_packets_and_learned_packets_follow_the_policy(
        set in statics(),
        items in items(&GROUPS, 14),
    ) {
        let mut rib = Rib::with_rules(Arc::new(set.clone()));
        for i in &items {
            i.add(&mut rib);
        }
        let full = rib.compile();
        let only_static = compile(&set);
        for (ifc, t) in &full {
            let keys: HashSet<u64> = t.iter().map(|r| r.key).collect();
            prop_assert_eq!(keys.len(), t.len(), "unique keys on {}", ifc);
            for r in t.iter().filter(|r| r.origin != "static") {
                prop_assert!(validate_rule_id(&r.rule_id).is_err());
                prop_assert!(r.outputs.iter().all(|o| &o.interface != ifc));
            }
        }
        let sources = SOURCES.iter().chain([&OTHER_SOURCE]).map(|s| ip(s));
        for src in sources {
            for iif in IFS {
                for g in GROUPS.map(ip) {
                    for port in [5000, 6000] {
                        match forwarded(&only_static, iif, src, g, port) {
                            Some(r) => prop_assert_eq!(
                                forwarded(&full, iif, src, g, port),
                                Some(r),
                                "static rule disturbed on {} for {} from {}", iif, g, src
                            ),
                            None => prop_assert_eq!(
                                sent_to(&full, iif, src, g, port),
                                model(&items, iif, src, g),
                                "{} from {} on {}:{}", g, src, iif, port
                            ),
                        }
                    }
                }
            }
        }
    }
}
