//! Upstream Join/Prune, RPF, routes for the RIB and the switch to the
//! source tree (RFC 7761 §4.5.3–§4.5.7, §4.1.6, §4.2), with several PIM
//! routers on simulated LANs and a virtual clock (`pim/net.rs`).

#[path = "pim/net.rs"]
mod net;
use net::*;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use mcr::pim::codec::{
    self, EncodedGroup, EncodedSource, JoinPrune, JoinPruneGroup, Message, ALL_PIM_ROUTERS,
};
use mcr::pim::instance::{LeaveReason, PimRouteChange};
use mcr::pim::state::downstream::TreeKey;
use mcr::pim::{PimEvent, PimInput};
use mcr::proto::sim::{NodeId, Sim};
use mcr::proto::Protocol;

const SEC: Duration = Duration::from_secs(1);
const RP: &str = "10.0.1.1";

fn grp() -> Ipv4Addr {
    ip("239.1.1.1")
}

/// (*,G) Joins (WC+RPT) in a message, as (upstream neighbor, is_join).
fn star_entries(jp: &JoinPrune) -> Vec<bool> {
    let mut v = Vec::new();
    for g in jp.groups.iter().filter(|g| g.group.addr == grp()) {
        v.extend(g.joins.iter().filter(|e| e.wildcard).map(|_| true));
        v.extend(g.prunes.iter().filter(|e| e.wildcard).map(|_| false));
    }
    v
}

fn star_joins(sim: &Sim<Routed>, node: NodeId) -> Vec<(Duration, Ipv4Addr)> {
    join_prunes(sim, node)
        .into_iter()
        .filter(|(_, _, jp)| star_entries(jp).contains(&true))
        .map(|(at, _, jp)| (at, jp.upstream_neighbor))
        .collect()
}

fn star_prunes(sim: &Sim<Routed>, node: NodeId) -> Vec<(Duration, Ipv4Addr)> {
    join_prunes(sim, node)
        .into_iter()
        .filter(|(_, _, jp)| star_entries(jp).contains(&false))
        .map(|(at, _, jp)| (at, jp.upstream_neighbor))
        .collect()
}

fn star_route(upstream: u32, downstream: &[u32]) -> PimRouteChange {
    PimRouteChange::Add {
        source: None,
        group: grp(),
        upstream,
        downstream: downstream.iter().copied().collect::<BTreeSet<u32>>(),
    }
}

fn member() -> TreeKey {
    TreeKey::star_g(grp())
}

/// RP r0 —lan a— r1 —lan b— r2 —lan c (hosts).
struct Chain {
    sim: Sim<Routed>,
    r0: NodeId,
    r1: NodeId,
    r2: NodeId,
}

fn chain() -> Chain {
    let mut sim = Sim::new(1);
    let (a, b, c) = (sim.add_lan(), sim.add_lan(), sim.add_lan());
    let r0 = add_router(&mut sim, 10, &[pim_if(a, 1, "a", RP)], RP, vec![]);
    let r1 = add_router(
        &mut sim,
        11,
        &[pim_if(a, 1, "a", "10.0.1.2"), pim_if(b, 2, "b", "10.0.2.1")],
        RP,
        vec![route("10.0.1.0", 24, 1, None)],
    );
    let r2 = add_router(
        &mut sim,
        12,
        &[
            pim_if(b, 2, "b", "10.0.2.2"),
            host_if(c, 3, "c", "10.0.3.1"),
        ],
        RP,
        vec![route("0.0.0.0", 0, 2, Some("10.0.2.1"))],
    );
    // Let the Hellos make everyone neighbors.
    sim.run_for(10 * SEC);
    Chain { sim, r0, r1, r2 }
}

#[test]
fn membership_at_the_last_hop_builds_the_tree_to_the_rp_and_leave_tears_it_down() {
    let Chain {
        mut sim,
        r0,
        r1,
        r2,
    } = chain();
    let t_join = sim.elapsed();
    sim.input(
        r2,
        PimInput::LocalJoin {
            ifindex: 3,
            key: member(),
        },
    );
    sim.run_for(SEC);

    // Hop by hop, at once (triggered, not periodic): r2 → r1 → r0.
    assert_eq!(star_joins(&sim, r2), vec![(t_join, ip("10.0.2.1"))]);
    assert_eq!(star_joins(&sim, r1), vec![(t_join, ip(RP))]);
    assert!(star_joins(&sim, r0).is_empty(), "the RP joins nobody");
    assert!(sim.node(r2).asked.contains(&ip(RP)), "r2 asked RPF(RP)");
    assert!(pim_events(&sim, r0).iter().any(|(_, e)| matches!(e,
        PimEvent::DownstreamJoin { ifindex: 1, source: None, group, .. } if *group == grp())));

    // Routes for the RIB: from the RPF interface to where receivers are.
    assert_eq!(route_changes(&sim, r2), vec![(t_join, star_route(2, &[3]))]);
    assert_eq!(route_changes(&sim, r1), vec![(t_join, star_route(1, &[2]))]);
    assert!(
        route_changes(&sim, r0).is_empty(),
        "the RP's (*,G) comes from Registers"
    );
    let snap = sim.node(r2).pim.routes(sim.now());
    assert_eq!(snap.len(), 1);
    assert!(snap[0].joined);
    assert_eq!(snap[0].rpf_neighbor, Some(ip("10.0.2.1")));
    assert_eq!(snap[0].outgoing, vec!["c".to_string()]);

    // Periodic Joins every t_periodic (60 s) keep r1's state alive past
    // its 210 s holdtime.
    sim.run_for(300 * SEC);
    let joins = star_joins(&sim, r2);
    assert_eq!(joins.len(), 1 + 5, "{joins:?}");
    for w in joins.windows(2) {
        assert_eq!(w[1].0 - w[0].0, 60 * SEC);
    }
    assert!(!pim_events(&sim, r1)
        .iter()
        .any(|(_, e)| matches!(e, PimEvent::DownstreamLeave { .. })));

    // Leave: Prunes hop by hop, routes withdrawn.
    sim.clear_record();
    let t_leave = sim.elapsed();
    sim.input(
        r2,
        PimInput::LocalLeave {
            ifindex: 3,
            key: member(),
        },
    );
    sim.run_for(SEC);
    assert_eq!(star_prunes(&sim, r2), vec![(t_leave, ip("10.0.2.1"))]);
    assert_eq!(star_prunes(&sim, r1), vec![(t_leave, ip(RP))]);
    let withdraw = PimRouteChange::Withdraw {
        source: None,
        group: grp(),
    };
    assert_eq!(route_changes(&sim, r2), vec![(t_leave, withdraw.clone())]);
    assert_eq!(route_changes(&sim, r1), vec![(t_leave, withdraw)]);
    assert!(pim_events(&sim, r0).iter().any(|(_, e)| matches!(
        e,
        PimEvent::DownstreamLeave {
            reason: LeaveReason::Pruned,
            ..
        }
    )));
    sim.run_for(200 * SEC);
    assert!(star_joins(&sim, r2).is_empty(), "no Joins after the leave");
    assert!(sim.node(r1).pim.routes(sim.now()).is_empty());
}

#[test]
fn ssm_groups_and_groups_without_rp_get_no_star_g() {
    let Chain { mut sim, r2, .. } = chain();
    sim.input(
        r2,
        PimInput::LocalJoin {
            ifindex: 3,
            key: TreeKey::star_g(ip("232.1.1.1")),
        },
    );
    sim.run_for(5 * SEC);
    assert!(join_prunes(&sim, r2).is_empty());
    assert!(route_changes(&sim, r2).is_empty());
    // (S,G) in the SSM range is joined toward S.
    sim.input(
        r2,
        PimInput::LocalJoin {
            ifindex: 3,
            key: TreeKey::s_g(ip("10.0.1.1"), ip("232.1.1.1")),
        },
    );
    sim.run_for(SEC);
    let jps = join_prunes(&sim, r2);
    assert_eq!(jps.len(), 1);
    let e = &jps[0].2.groups[0].joins[0];
    assert!(!e.wildcard && !e.rpt && e.addr == ip("10.0.1.1"));
}

#[test]
fn local_members_only_count_where_we_are_dr() {
    // Two last-hop routers on one host LAN that also runs PIM: only the
    // DR (the higher address) joins for the hosts.
    let mut sim = Sim::new(2);
    let (a, h) = (sim.add_lan(), sim.add_lan());
    let rp = add_router(&mut sim, 1, &[pim_if(a, 1, "a", RP)], RP, vec![]);
    let lo = add_router(
        &mut sim,
        2,
        &[pim_if(a, 1, "a", "10.0.1.2"), pim_if(h, 2, "h", "10.0.5.1")],
        RP,
        vec![route("10.0.1.0", 24, 1, None)],
    );
    let hi = add_router(
        &mut sim,
        3,
        &[pim_if(a, 1, "a", "10.0.1.3"), pim_if(h, 2, "h", "10.0.5.2")],
        RP,
        vec![route("10.0.1.0", 24, 1, None)],
    );
    sim.run_for(10 * SEC);
    for n in [lo, hi] {
        sim.input(
            n,
            PimInput::LocalMembers {
                ifindex: 2,
                members: vec![member()],
            },
        );
    }
    sim.run_for(SEC);
    assert!(star_joins(&sim, lo).is_empty(), "not DR on h");
    assert_eq!(star_joins(&sim, hi).len(), 1);
    let _ = rp;
}

/// Upstream u (RP) on lan x with two downstream routers d1, d2, each with
/// receivers on its own host LAN.
fn shared_lan() -> (Sim<Routed>, NodeId, NodeId, NodeId) {
    let mut sim = Sim::new(3);
    let (x, h1, h2) = (sim.add_lan(), sim.add_lan(), sim.add_lan());
    let u = add_router(&mut sim, 1, &[pim_if(x, 1, "x", RP)], RP, vec![]);
    let d1 = add_router(
        &mut sim,
        2,
        &[
            pim_if(x, 1, "x", "10.0.1.2"),
            host_if(h1, 2, "h", "10.0.6.1"),
        ],
        RP,
        vec![route("10.0.1.0", 24, 1, None)],
    );
    let d2 = add_router(
        &mut sim,
        3,
        &[
            pim_if(x, 1, "x", "10.0.1.3"),
            host_if(h2, 2, "h", "10.0.7.1"),
        ],
        RP,
        vec![route("10.0.1.0", 24, 1, None)],
    );
    sim.run_for(10 * SEC);
    (sim, u, d1, d2)
}

#[test]
fn a_lan_with_two_downstream_routers_suppresses_joins_and_overrides_a_prune() {
    let (mut sim, u, d1, d2) = shared_lan();
    sim.input(
        d1,
        PimInput::LocalJoin {
            ifindex: 2,
            key: member(),
        },
    );
    sim.run_for(20 * SEC);
    sim.input(
        d2,
        PimInput::LocalJoin {
            ifindex: 2,
            key: member(),
        },
    );
    sim.run_for(SEC);
    // d2's triggered Join goes out (it is joining, not refreshing).
    assert_eq!(star_joins(&sim, d2).len(), 1);

    // Steady state: d1's periodic Joins (every 60 s) suppress d2's, whose
    // Join Timer each time moves to 66–84 s (1.1–1.4 × t_periodic).
    sim.clear_record();
    sim.run_for(600 * SEC);
    let j1 = star_joins(&sim, d1);
    let j2 = star_joins(&sim, d2);
    assert_eq!(
        j1.len() + j2.len(),
        10,
        "one Join per period on the LAN: {j1:?} {j2:?}"
    );
    // Whoever joined last suppresses the other from then on.
    assert!(
        j1.len().min(j2.len()) <= 1,
        "one router is suppressed: {j1:?} {j2:?}"
    );
    let c1 = sim.node(d1).pim.counters(1).unwrap();
    let c2 = sim.node(d2).pim.counters(1).unwrap();
    assert!(
        c1.join_prune_not_for_us.max(c2.join_prune_not_for_us) >= 9,
        "the suppressed router overheard the other: {c1:?} {c2:?}"
    );

    // d1 leaves: its Prune is overridden by d2 within the override
    // interval, so u never stops forwarding onto the LAN.
    sim.clear_record();
    let t_prune = sim.elapsed();
    sim.input(
        d1,
        PimInput::LocalLeave {
            ifindex: 2,
            key: member(),
        },
    );
    sim.run_for(10 * SEC);
    assert_eq!(star_prunes(&sim, d1).len(), 1);
    let over = star_joins(&sim, d2);
    assert_eq!(over.len(), 1, "{over:?}");
    assert!(
        over[0].0 - t_prune <= Duration::from_millis(2500),
        "{over:?}"
    );
    assert!(!pim_events(&sim, u)
        .iter()
        .any(|(_, e)| matches!(e, PimEvent::DownstreamLeave { .. })));
    assert_eq!(sim.node(u).pim.downstream(sim.now()).len(), 1);

    // With nobody to override, a Prune ends the state after the override
    // interval and u echoes it.
    sim.clear_record();
    sim.input(
        d2,
        PimInput::LocalLeave {
            ifindex: 2,
            key: member(),
        },
    );
    sim.run_for(10 * SEC);
    assert!(pim_events(&sim, u).iter().any(|(_, e)| matches!(
        e,
        PimEvent::DownstreamLeave {
            reason: LeaveReason::Pruned,
            ..
        }
    )));
    assert!(sim.node(u).pim.downstream(sim.now()).is_empty());
}

#[test]
fn a_restarted_upstream_neighbor_gets_our_join_again_within_the_override_interval() {
    let Chain {
        mut sim, r1, r2, ..
    } = chain();
    sim.input(
        r2,
        PimInput::LocalJoin {
            ifindex: 3,
            key: member(),
        },
    );
    sim.run_for(5 * SEC);
    // r1 restarts: new generation id, no state.
    sim.clear_record();
    let t = sim.elapsed();
    // A Hello with a new generation id is what r2 sees of a restart.
    let mut pim = mcr::pim::PimInstance::new(mcr::proto::Rng::new(77));
    pim.handle_config(sim.now(), rp_config(&["a", "b"], RP));
    for (ifindex, name, addr) in [(1, "a", "10.0.1.2"), (2, "b", "10.0.2.1")] {
        pim.handle_event(
            sim.now(),
            PimInput::InterfaceUp {
                ifindex,
                name: name.into(),
                addr: ip(addr),
            },
        );
    }
    sim.node_mut(r1).pim = pim;
    sim.drain(r1);
    sim.run_for(10 * SEC);
    let joins = star_joins(&sim, r2);
    assert_eq!(joins.len(), 1, "{joins:?}");
    // The Hello comes within Triggered_Hello_Delay (5 s), the Join within
    // the override interval (2.5 s) after it.
    assert!(joins[0].0 - t <= Duration::from_millis(7500), "{joins:?}");
    assert!(
        sim.node(r1).pim.downstream(sim.now()).len() == 1,
        "r1 re-learned the join"
    );
}

#[test]
fn an_rpf_change_moves_the_join_to_the_new_neighbor_and_prunes_the_old() {
    // rp on lan y; a and b both reach it; l on lan x reaches rp via a or b.
    let mut sim = Sim::new(4);
    let (y, x, h) = (sim.add_lan(), sim.add_lan(), sim.add_lan());
    let _rp = add_router(&mut sim, 1, &[pim_if(y, 1, "y", RP)], RP, vec![]);
    let a = add_router(
        &mut sim,
        2,
        &[pim_if(y, 1, "y", "10.0.1.2"), pim_if(x, 2, "x", "10.0.8.2")],
        RP,
        vec![route("10.0.1.0", 24, 1, None)],
    );
    let b = add_router(
        &mut sim,
        3,
        &[pim_if(y, 1, "y", "10.0.1.3"), pim_if(x, 2, "x", "10.0.8.3")],
        RP,
        vec![route("10.0.1.0", 24, 1, None)],
    );
    let l = add_router(
        &mut sim,
        4,
        &[
            pim_if(x, 1, "x", "10.0.8.1"),
            host_if(h, 2, "h", "10.0.9.1"),
        ],
        RP,
        vec![route("10.0.1.0", 24, 1, Some("10.0.8.2"))],
    );
    sim.run_for(10 * SEC);
    sim.input(
        l,
        PimInput::LocalJoin {
            ifindex: 2,
            key: member(),
        },
    );
    sim.run_for(5 * SEC);
    assert_eq!(star_joins(&sim, l).len(), 1);
    assert_eq!(sim.node(a).pim.downstream(sim.now()).len(), 1);
    assert_eq!(star_joins(&sim, a).len(), 1, "a joined toward the RP");

    sim.clear_record();
    let t = sim.elapsed();
    sim.node_mut(l).table = vec![route("10.0.1.0", 24, 1, Some("10.0.8.3"))];
    sim.input(l, PimInput::RoutesChanged);
    sim.run_for(10 * SEC);
    assert_eq!(star_joins(&sim, l), vec![(t, ip("10.0.8.3"))]);
    assert_eq!(star_prunes(&sim, l), vec![(t, ip("10.0.8.2"))]);
    assert_eq!(sim.node(b).pim.downstream(sim.now()).len(), 1);
    assert!(
        sim.node(a).pim.downstream(sim.now()).is_empty(),
        "a was pruned"
    );
    let to_rp: Vec<_> = star_prunes(&sim, a)
        .into_iter()
        .filter(|p| p.1 == ip(RP))
        .collect();
    assert_eq!(to_rp.len(), 1, "a left the RP tree");
    // b joined the RP tree, and then overrode a's Prune on lan y (both
    // share the RP as upstream neighbor there).
    let jb = star_joins(&sim, b);
    assert_eq!(jb.len(), 2, "{jb:?}");
    assert!(jb.iter().all(|j| j.1 == ip(RP)));
    assert!(jb[1].0 > to_rp[0].0 && jb[1].0 - to_rp[0].0 <= Duration::from_millis(2500));
    // Same upstream interface: the route does not change.
    assert!(route_changes(&sim, l).is_empty());
    // Route lost: Prune, route withdrawn.
    sim.clear_record();
    sim.node_mut(l).table.clear();
    sim.input(l, PimInput::RoutesChanged);
    sim.run_for(SEC);
    assert_eq!(star_prunes(&sim, l).len(), 1);
    assert_eq!(
        route_changes(&sim, l)
            .into_iter()
            .map(|r| r.1)
            .collect::<Vec<_>>(),
        vec![PimRouteChange::Withdraw {
            source: None,
            group: grp()
        }]
    );
}

/// The entries of `jp` for `group` as (addr, wc, rpt, is_join).
fn entries(jp: &JoinPrune) -> Vec<(Ipv4Addr, bool, bool, bool)> {
    let mut v = Vec::new();
    for g in &jp.groups {
        v.extend(g.joins.iter().map(|e| (e.addr, e.wildcard, e.rpt, true)));
        v.extend(g.prunes.iter().map(|e| (e.addr, e.wildcard, e.rpt, false)));
    }
    v
}

#[test]
fn the_last_hop_switches_to_the_source_tree_and_prunes_the_source_off_the_rp_tree() {
    // rp —lan 1— f (first hop, source net s) —lan 3— l (last hop);
    // rp —lan 2— l. S's tree enters l on lan 3, the RP's on lan 2.
    let src = ip("10.9.0.5");
    let mut sim = Sim::new(5);
    let (l1, l2, l3, sn, h) = (
        sim.add_lan(),
        sim.add_lan(),
        sim.add_lan(),
        sim.add_lan(),
        sim.add_lan(),
    );
    let rp = add_router(
        &mut sim,
        1,
        &[pim_if(l1, 1, "l1", RP), pim_if(l2, 2, "l2", "10.0.2.1")],
        RP,
        vec![route("10.9.0.0", 24, 1, Some("10.0.1.2"))],
    );
    let f = add_router(
        &mut sim,
        2,
        &[
            pim_if(l1, 1, "l1", "10.0.1.2"),
            pim_if(l3, 3, "l3", "10.0.3.2"),
            host_if(sn, 4, "s", "10.9.0.1"),
        ],
        RP,
        vec![
            route("10.0.1.0", 24, 1, None),
            route("10.9.0.0", 24, 4, None),
        ],
    );
    let l = add_router(
        &mut sim,
        3,
        &[
            pim_if(l2, 2, "l2", "10.0.2.3"),
            pim_if(l3, 3, "l3", "10.0.3.3"),
            host_if(h, 5, "h", "10.0.5.1"),
        ],
        RP,
        vec![
            route("10.0.1.0", 24, 2, Some("10.0.2.1")),
            route("10.9.0.0", 24, 3, Some("10.0.3.2")),
        ],
    );
    sim.run_for(10 * SEC);
    sim.input(
        l,
        PimInput::LocalJoin {
            ifindex: 5,
            key: member(),
        },
    );
    sim.run_for(SEC);
    assert_eq!(
        route_changes(&sim, l).last().map(|r| r.1.clone()),
        Some(star_route(2, &[5]))
    );

    // The first packet from S arrives down the RP tree (lan 2): l joins
    // (S,G) toward f at once, but keeps the RP tree until S's packets
    // come on the source tree.
    sim.clear_record();
    sim.input(
        l,
        PimInput::Data {
            ifindex: 2,
            source: src,
            group: grp(),
        },
    );
    sim.run_for(SEC);
    let jl = join_prunes(&sim, l);
    assert_eq!(jl.len(), 1, "{jl:?}");
    assert_eq!(jl[0].2.upstream_neighbor, ip("10.0.3.2"));
    assert_eq!(entries(&jl[0].2), vec![(src, false, false, true)]);
    assert!(
        route_changes(&sim, l).is_empty(),
        "no (S,G) route before the SPT bit"
    );
    // f joined toward S (directly connected: no Join further) and routes
    // S's packets onto lan 3.
    assert!(join_prunes(&sim, f).is_empty());
    assert_eq!(
        route_changes(&sim, f),
        vec![(
            jl[0].0,
            PimRouteChange::Add {
                source: Some(src),
                group: grp(),
                upstream: 4,
                downstream: [3].into_iter().collect(),
            }
        )]
    );

    // S's packets on the source tree set the SPT bit: (S,G) route from
    // lan 3, Prune(S,G,rpt) toward the RP.
    sim.clear_record();
    sim.input(
        l,
        PimInput::Data {
            ifindex: 3,
            source: src,
            group: grp(),
        },
    );
    sim.run_for(SEC);
    let jl = join_prunes(&sim, l);
    assert_eq!(jl.len(), 1, "{jl:?}");
    assert_eq!(jl[0].2.upstream_neighbor, ip("10.0.2.1"));
    assert_eq!(entries(&jl[0].2), vec![(src, false, true, false)]);
    assert_eq!(
        route_changes(&sim, l)
            .into_iter()
            .map(|r| r.1)
            .collect::<Vec<_>>(),
        vec![PimRouteChange::Add {
            source: Some(src),
            group: grp(),
            upstream: 3,
            downstream: [5].into_iter().collect(),
        }]
    );
    let snap = sim.node(l).pim.routes(sim.now());
    assert!(snap.iter().any(|r| r.source == Some(src) && r.spt_bit));
    assert_eq!(sim.node(rp).pim.counters(2).unwrap().rpt_prune_rx, 1);

    // The periodic (*,G) Join carries the Prune(S,G,rpt) along.
    sim.clear_record();
    sim.run_for(61 * SEC);
    let star = join_prunes(&sim, l)
        .into_iter()
        .find(|j| star_entries(&j.2).contains(&true))
        .expect("periodic (*,G) Join");
    assert!(
        entries(&star.2).contains(&(src, false, true, false)),
        "{star:?}"
    );

    // The flow stops: after the Keepalive period (210 s) l leaves the
    // source tree, withdraws the (S,G) route and lets S back on the RP
    // tree.
    sim.clear_record();
    sim.run_for(210 * SEC);
    let jl = join_prunes(&sim, l);
    assert!(
        jl.iter()
            .any(|j| entries(&j.2).contains(&(src, false, false, false))),
        "{jl:?}"
    );
    assert!(
        jl.iter()
            .any(|j| entries(&j.2).contains(&(src, false, true, true))),
        "{jl:?}"
    );
    assert!(route_changes(&sim, l).iter().any(|r| r.1
        == PimRouteChange::Withdraw {
            source: Some(src),
            group: grp()
        }));
}

#[test]
fn spt_switchover_never_keeps_the_last_hop_on_the_rp_tree() {
    let Chain { mut sim, r2, .. } = chain();
    let mut cfg = rp_config(&["b"], RP);
    cfg.spt_switchover = mcr::pim::SptSwitchover::Never;
    sim.configure(r2, cfg);
    sim.input(
        r2,
        PimInput::LocalJoin {
            ifindex: 3,
            key: member(),
        },
    );
    sim.run_for(SEC);
    sim.clear_record();
    sim.input(
        r2,
        PimInput::Data {
            ifindex: 2,
            source: ip("10.0.1.1"),
            group: grp(),
        },
    );
    sim.run_for(5 * SEC);
    assert!(join_prunes(&sim, r2).is_empty());
}

/// RP —lan y— u —lan x— d1, d2 (each with hosts of its own).
fn transit_lan(d2_member: bool) -> (Sim<Routed>, NodeId, NodeId, usize) {
    let mut sim = Sim::new(6);
    let (y, x, h1, h2) = (sim.add_lan(), sim.add_lan(), sim.add_lan(), sim.add_lan());
    let _rp = add_router(&mut sim, 1, &[pim_if(y, 1, "y", RP)], RP, vec![]);
    let u = add_router(
        &mut sim,
        2,
        &[pim_if(y, 1, "y", "10.0.1.2"), pim_if(x, 2, "x", "10.0.4.1")],
        RP,
        vec![route("10.0.1.0", 24, 1, None)],
    );
    let mut downs = Vec::new();
    for (seed, addr, h, haddr) in [
        (3, "10.0.4.2", h1, "10.0.6.1"),
        (4, "10.0.4.3", h2, "10.0.7.1"),
    ] {
        downs.push(add_router(
            &mut sim,
            seed,
            &[pim_if(x, 1, "x", addr), host_if(h, 2, "h", haddr)],
            RP,
            vec![route("0.0.0.0", 0, 1, Some("10.0.4.1"))],
        ));
    }
    sim.run_for(10 * SEC);
    sim.input(
        downs[0],
        PimInput::LocalJoin {
            ifindex: 2,
            key: member(),
        },
    );
    if d2_member {
        sim.input(
            downs[1],
            PimInput::LocalJoin {
                ifindex: 2,
                key: member(),
            },
        );
    }
    sim.run_for(5 * SEC);
    sim.clear_record();
    // d1 prunes S off the RP tree at u (as after its own SPT switch).
    let s = ip("10.9.0.5");
    let prune = codec::encode(&Message::JoinPrune(JoinPrune {
        upstream_neighbor: ip("10.0.4.1"),
        holdtime: 210,
        groups: vec![JoinPruneGroup {
            group: EncodedGroup::host(grp()),
            joins: vec![EncodedSource::star_g(ip(RP))],
            prunes: vec![EncodedSource {
                rpt: true,
                ..EncodedSource::s_g(s)
            }],
        }],
    }));
    sim.inject(x, ip("10.0.4.2"), ALL_PIM_ROUTERS, prune);
    sim.run_for(10 * SEC);
    (sim, u, downs[1], y)
}

fn rpt_entries_sent(sim: &Sim<Routed>, node: NodeId, join: bool) -> Vec<Duration> {
    join_prunes(sim, node)
        .into_iter()
        .filter(|j| entries(&j.2).contains(&(ip("10.9.0.5"), false, true, join)))
        .map(|j| j.0)
        .collect()
}

#[test]
fn a_router_that_still_wants_the_source_overrides_another_ones_rpt_prune() {
    let (sim, u, d2, _) = transit_lan(true);
    let overrides = rpt_entries_sent(&sim, d2, true);
    assert_eq!(overrides.len(), 1, "d2 sends one Join(S,G,rpt)");
    assert!(overrides[0] <= sim.elapsed() - 10 * SEC + Duration::from_millis(2500));
    assert!(
        rpt_entries_sent(&sim, u, false).is_empty(),
        "u keeps S on the RP tree: d2 still wants it"
    );
    assert_eq!(sim.node(u).pim.counters(2).unwrap().rpt_prune_rx, 1);
}

#[test]
fn an_rpt_prune_nobody_overrides_prunes_the_source_further_up() {
    let (sim, u, d2, _) = transit_lan(false);
    assert!(
        rpt_entries_sent(&sim, d2, true).is_empty(),
        "d2 has no receivers"
    );
    // After the override interval (3 s) u's LAN no longer wants S from the
    // RP tree, so u prunes S toward the RP.
    let up = rpt_entries_sent(&sim, u, false);
    assert_eq!(up.len(), 1, "{up:?}");
    let routes = sim.node(u).pim.routes(sim.now());
    let star = routes.iter().find(|r| r.source.is_none()).unwrap();
    assert_eq!(star.rpt_pruned, vec![ip("10.9.0.5")]);
}
