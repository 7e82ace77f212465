//! IGMPv3 EXCLUDE memberships (RFC 7761 §4.1.6 pim_exclude, §4.5.7): a
//! local receiver of G that excludes S makes the last hop join (*,G) and
//! prune S off the shared tree with Prune(S,G,rpt), on the virtual clock.

#[path = "pim/net.rs"]
mod net;
use net::*;

use std::net::Ipv4Addr;

use mcr::pim::PimInput;

fn excluded() -> Ipv4Addr {
    ip("10.9.0.5")
}

/// The (S,G,rpt) entries `node` sent toward `to`, as (source, is_join).
fn rpt_entries(sim: &mcr::proto::sim::Sim<Routed>, node: usize, to: &str) -> Vec<(Ipv4Addr, bool)> {
    join_prunes(sim, node)
        .into_iter()
        .filter(|(_, _, jp)| jp.upstream_neighbor == ip(to))
        .flat_map(|(_, _, jp)| entries(&jp))
        .filter(|(_, wc, rpt, _)| !*wc && *rpt)
        .map(|(s, _, _, join)| (s, join))
        .collect()
}

#[test]
fn an_exclude_member_joins_the_shared_tree_and_prunes_the_excluded_source_off_it() {
    let mut c = chain();
    c.sim.input(
        c.r2,
        PimInput::LocalMembers {
            ifindex: 3,
            members: vec![member()],
        },
    );
    c.sim.input(
        c.r2,
        PimInput::LocalExcludes {
            ifindex: 3,
            excludes: vec![(excluded(), grp())],
        },
    );
    c.sim.run_for(SEC);
    // The last hop joins (*,G) toward r1 and prunes S in the same breath.
    assert_eq!(
        star_joins(&c.sim, c.r2).first().map(|j| j.1),
        Some(ip("10.0.2.1"))
    );
    assert_eq!(rpt_entries(&c.sim, c.r2, "10.0.2.1"), [(excluded(), false)]);
    // S's share of the shared tree leaves the member interface: the RIB
    // takes S off PIM's (*,G) output there.
    let now = c.sim.now();
    let routes = c.sim.node(c.r2).pim.routes(now);
    let sg = routes
        .iter()
        .find(|r| r.source == Some(excluded()))
        .expect("an (S,G) row for the excluded source");
    assert_eq!(sg.rpt_pruned_on, ["c"]);
    let star = routes.iter().find(|r| r.source.is_none()).unwrap();
    assert_eq!(star.rpt_pruned, [excluded()]);
    // r1 has nobody else who wants S: it prunes S further up, toward the RP.
    assert_eq!(rpt_entries(&c.sim, c.r1, RP), [(excluded(), false)]);
    // The periodic (*,G) Join carries the prune again.
    c.sim.run_for(65 * SEC);
    let again = rpt_entries(&c.sim, c.r2, "10.0.2.1");
    assert_eq!(again.len(), 2, "{again:?}");
    assert!(again.iter().all(|e| *e == (excluded(), false)));

    // The host stops excluding S: S is joined back onto the shared tree.
    c.sim.input(
        c.r2,
        PimInput::LocalExcludes {
            ifindex: 3,
            excludes: vec![],
        },
    );
    c.sim.run_for(SEC);
    assert_eq!(
        rpt_entries(&c.sim, c.r2, "10.0.2.1").last(),
        Some(&(excluded(), true))
    );
    let now = c.sim.now();
    let routes = c.sim.node(c.r2).pim.routes(now);
    assert!(routes
        .iter()
        .all(|r| r.source != Some(excluded()) || r.rpt_pruned_on.is_empty()));
}

#[test]
fn an_exclude_list_without_a_member_of_the_group_joins_and_prunes_nothing() {
    // pim_exclude only takes S out of pim_include(*,G): with no (*,G)
    // receiver on the interface it is nothing to join or prune for.
    let mut c = chain();
    c.sim.input(
        c.r2,
        PimInput::LocalExcludes {
            ifindex: 3,
            excludes: vec![(excluded(), grp())],
        },
    );
    c.sim.run_for(SEC);
    assert!(star_joins(&c.sim, c.r2).is_empty());
    assert!(rpt_entries(&c.sim, c.r2, "10.0.2.1").is_empty());
}
