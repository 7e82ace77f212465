//! The PimActor's translation of the core's routes into RIB routes: the
//! one place that decides how PIM's (S,G,rpt) prune state (RFC 7761
//! §4.1.6, inherited_olist(S,G,rpt)) reaches forwarding.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use mcr::pim::instance::PimRouteChange;
use mcr::rib::learned::Memberships;
use mcr::rib::Route;

/// The core's installed routes as RIB routes, by (S,G), with interface
/// names from `name` (a route whose upstream has no name is left out; so
/// is a downstream without one). `pruned` lists, per (S,G), the
/// interfaces with (S,G,rpt) prune state: they go on the (S,G) route as
/// `rpt_pruned` when it shares the (*,G) route's upstream, and on an
/// (S,G) route with no outputs of its own when the core installed none,
/// so that S stops on those interfaces of the shared tree (RFC 7761
/// §4.1.6) while other sources of G keep them. An (S,G) route on another
/// upstream needs nothing: the RIB drops S on the shared tree there.
pub(super) fn rib_routes(
    table: &[PimRouteChange],
    pruned: &[(Ipv4Addr, Ipv4Addr, BTreeSet<String>)],
    name: impl Fn(u32) -> Option<String>,
) -> BTreeMap<(Option<Ipv4Addr>, Ipv4Addr), Route> {
    let mut out = BTreeMap::new();
    for change in table {
        let PimRouteChange::Add {
            source,
            group,
            upstream,
            downstream,
        } = change
        else {
            continue;
        };
        let Some(up) = name(*upstream) else { continue };
        let down: Vec<String> = downstream.iter().filter_map(|i| name(*i)).collect();
        let down: Vec<&str> = down.iter().map(String::as_str).collect();
        let route = match source {
            Some(s) => Route::s_g(*s, *group, &up, &down),
            None => Route::star_g(*group, &up, &down),
        };
        out.insert((*source, *group), route);
    }
    for (s, g, ifcs) in pruned {
        let Some(star_up) = out.get(&(None, *g)).map(|r| r.upstream.clone()) else {
            continue;
        };
        let sg = out
            .entry((Some(*s), *g))
            .or_insert_with(|| Route::s_g(*s, *g, &star_up, &[]));
        if sg.upstream == star_up {
            sg.rpt_pruned = ifcs.clone();
        }
    }
    out
}

/// Let IGMP memberships add outputs to PIM's routes only on interfaces
/// PIM does not run on. On a PIM interface the core already counts its
/// local members, and only where it is the DR and has not lost an Assert
/// (RFC 7761 §4.1.6 pim_include, §4.6.5 lost_assert): the RIB adding them
/// again would keep a non-DR, or an Assert loser, forwarding onto the LAN
/// beside the router that should, and every receiver there would get
/// each packet twice.
/// `pim_links` are PIM's interfaces that are up (ifindex → name, address).
pub(super) fn leave_pim_members_to_pim(
    mut routes: BTreeMap<(Option<Ipv4Addr>, Ipv4Addr), Route>,
    members: &Memberships,
    pim_links: &BTreeMap<u32, (String, Ipv4Addr)>,
) -> BTreeMap<(Option<Ipv4Addr>, Ipv4Addr), Route> {
    let pim: BTreeSet<&str> = pim_links.values().map(|(n, _)| n.as_str()).collect();
    let elsewhere: BTreeSet<String> = members
        .keys()
        .map(|(ifc, _)| ifc)
        .filter(|ifc| !pim.contains(ifc.as_str()))
        .cloned()
        .collect();
    for r in routes.values_mut() {
        r.member_interfaces = Some(elsewhere.clone());
    }
    routes
}

/// A predecessor's routes merged into `want`, so that re-learning never
/// takes an output away: a route only the predecessor had is kept; one
/// both have on the same upstream sends to the union of their outputs
/// and keeps only the (S,G,rpt) prunes both have; on another upstream
/// (the RPF moved meanwhile) the new route wins.
pub(super) fn merge_inherited(
    want: &mut BTreeMap<(Option<Ipv4Addr>, Ipv4Addr), Route>,
    inherited: &BTreeMap<(Option<Ipv4Addr>, Ipv4Addr), Route>,
) {
    for (k, old) in inherited {
        match want.get_mut(k) {
            None => {
                want.insert(*k, old.clone());
            }
            Some(r) if r.upstream == old.upstream => {
                r.downstream.extend(old.downstream.iter().cloned());
                r.rpt_pruned.retain(|i| old.rpt_pruned.contains(i));
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcr::rib::Origin;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn name(i: u32) -> Option<String> {
        (i < 9).then(|| format!("eth{i}"))
    }

    fn add(source: Option<&str>, up: u32, down: &[u32]) -> PimRouteChange {
        PimRouteChange::Add {
            source: source.map(ip),
            group: ip("239.1.1.1"),
            upstream: up,
            downstream: down.iter().copied().collect(),
        }
    }

    #[test]
    fn routes_reach_the_rib_by_name_with_their_rpt_prunes() {
        let g = ip("239.1.1.1");
        let table = [
            add(None, 0, &[1, 2, 9]),
            add(Some("10.0.0.1"), 0, &[1]),
            add(Some("10.0.0.3"), 3, &[1, 2]),
            add(None, 9, &[1]),
        ];
        let pruned = [
            (ip("10.0.0.1"), g, ["eth2".to_string()].into()),
            (ip("10.0.0.2"), g, ["eth1".to_string()].into()),
            (ip("10.0.0.3"), g, ["eth2".to_string()].into()),
        ];
        let r = rib_routes(&table, &pruned, name);
        let star = &r[&(None, g)];
        assert_eq!(star.upstream, "eth0");
        let down: Vec<&str> = star.downstream.iter().map(String::as_str).collect();
        assert_eq!(down, ["eth1", "eth2"], "an unnamed interface is left out");

        let s1 = &r[&(Some(ip("10.0.0.1")), g)];
        assert_eq!(s1.upstream, "eth0");
        assert_eq!(s1.rpt_pruned, ["eth2".to_string()].into());

        // Pruned with no (S,G) route of the core: S only stops on eth1.
        let s2 = &r[&(Some(ip("10.0.0.2")), g)];
        assert_eq!(s2.upstream, "eth0", "on the shared tree's interface");
        assert!(s2.downstream.is_empty());
        assert_eq!(s2.rpt_pruned, ["eth1".to_string()].into());

        // On the source tree the prunes are moot: the route is left alone.
        let s3 = &r[&(Some(ip("10.0.0.3")), g)];
        assert_eq!(s3.upstream, "eth3");
        assert!(s3.rpt_pruned.is_empty());
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn a_restarted_actor_keeps_its_predecessors_outputs_while_relearning() {
        let g = ip("239.1.1.1");
        let star = |up: &str, down: &[&str]| Route::star_g(g, up, down);
        let old_sg = Route::s_g(ip("10.0.0.1"), g, "eth3", &["eth1"]);
        let inherited = BTreeMap::from([
            ((None, g), star("eth0", &["eth1", "eth2"])),
            ((Some(ip("10.0.0.1")), g), old_sg.clone()),
            (
                (None, ip("239.1.1.2")),
                Route::star_g(ip("239.1.1.2"), "eth0", &["eth1"]),
            ),
        ]);
        let mut want = BTreeMap::from([
            ((None, g), star("eth0", &["eth3"])),
            (
                (Some(ip("10.0.0.1")), g),
                Route::s_g(ip("10.0.0.1"), g, "eth4", &["eth2"]),
            ),
        ]);
        merge_inherited(&mut want, &inherited);
        let down: Vec<&str> = want[&(None, g)]
            .downstream
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(down, ["eth1", "eth2", "eth3"], "nothing is taken away");
        assert_eq!(
            want[&(Some(ip("10.0.0.1")), g)].upstream,
            "eth4",
            "a new upstream replaces the old route"
        );
        assert!(
            want.contains_key(&(None, ip("239.1.1.2"))),
            "not re-learned yet: kept"
        );
    }

    #[test]
    fn an_rpt_prune_without_a_shared_tree_route_adds_nothing() {
        let g = ip("239.1.1.1");
        let pruned = [(ip("10.0.0.1"), g, ["eth2".to_string()].into())];
        assert!(rib_routes(&[], &pruned, name).is_empty());
        let r = rib_routes(&[add(None, 9, &[1])], &pruned, name);
        assert!(r.is_empty(), "the (*,G) upstream has no name");
    }

    #[test]
    fn the_rib_forwards_what_the_rpt_prunes_leave() {
        // End to end through the RIB's merge: the pruned source stops on
        // eth2, another source of the group does not.
        let g = ip("239.1.1.1");
        let table = [add(None, 0, &[1, 2])];
        let pruned = [(ip("10.0.0.1"), g, ["eth2".to_string()].into())];
        let mut rib = mcr::rib::Rib::new();
        let routes = rib_routes(&table, &pruned, name);
        assert_eq!(
            rib.replace_origin(Origin::Pim, routes.into_values().collect()),
            Ok(true)
        );
        let t = rib.compile();
        let outs = |src: &str| -> Vec<String> {
            let e = t["eth0"]
                .iter()
                .find(|e| e.source == Some(ip(src)))
                .or_else(|| t["eth0"].iter().find(|e| e.source.is_none()));
            e.map(|e| e.outputs.iter().map(|o| o.interface.clone()).collect())
                .unwrap_or_default()
        };
        assert_eq!(outs("10.0.0.1"), ["eth1"]);
        assert_eq!(outs("10.0.0.2"), ["eth1", "eth2"]);
    }

    #[test]
    fn members_add_outputs_only_where_pim_does_not_run() {
        // eth1 runs PIM: whether its members get G is the core's call
        // (DR, Assert), already in the route's downstream or not. eth5
        // does not: its members are added by the RIB as before.
        let g = ip("239.1.1.1");
        let s = ip("10.0.0.1");
        let routes = rib_routes(&[add(Some("10.0.0.1"), 0, &[2])], &[], name);
        let members: Memberships = [
            (("eth1".to_string(), g), mcr::rib::SourceFilter::any()),
            (("eth5".to_string(), g), mcr::rib::SourceFilter::any()),
        ]
        .into();
        let any = Ipv4Addr::UNSPECIFIED;
        let pim = (0..3).map(|i| (i, (format!("eth{i}"), any))).collect();
        let routes = leave_pim_members_to_pim(routes, &members, &pim);
        let mut rib = mcr::rib::Rib::new();
        for ifc in ["eth1", "eth5"] {
            rib.set_memberships(ifc, &[(g, mcr::rib::SourceFilter::any())])
                .unwrap();
        }
        rib.replace_origin(Origin::Pim, routes.into_values().collect())
            .unwrap();
        let t = rib.compile();
        let e = t["eth0"]
            .iter()
            .find(|e| e.source == Some(s))
            .expect("the (S,G) entry");
        let outs: Vec<&str> = e.outputs.iter().map(|o| o.interface.as_str()).collect();
        assert_eq!(outs, ["eth2", "eth5"]);
    }
}
