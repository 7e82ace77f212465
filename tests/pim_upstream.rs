//! Upstream Join/Prune, RPF, local receivers and routes for the RIB
//! (RFC 7761 §4.5.4–§4.5.6, §4.1.6, §4.8), with several PIM
//! routers on simulated LANs and a virtual clock (`pim/net.rs`).

#[path = "pim/net.rs"]
mod net;
use net::*;

use std::net::Ipv4Addr;
use std::time::Duration;

use mcr::pim::instance::{LeaveReason, PimRouteChange};
use mcr::pim::state::downstream::TreeKey;
use mcr::pim::{PimEvent, PimInput};
use mcr::proto::sim::{LanId, NodeId, Sim};
use mcr::proto::Protocol;

/// The RP (seed 1), alone on `lan` as its interface 1.
fn rp_on(sim: &mut Sim<Routed>, lan: LanId, name: &'static str) -> NodeId {
    add_router(sim, 1, &[pim_if(lan, 1, name, RP)], RP, vec![])
}

/// A router with interface 1 (`up`) on the RP's LAN, 10.0.1.0/24, which
/// is therefore its RPF interface toward the RP, and `down` as interface 2.
fn next_to_rp(sim: &mut Sim<Routed>, seed: u64, up: If, down: If) -> NodeId {
    add_router(
        sim,
        seed,
        &[up, down],
        RP,
        vec![route("10.0.1.0", 24, 1, None)],
    )
}

/// Two routers next to the RP, on its LAN `lan` (10.0.1.2 with seed 2,
/// 10.0.1.3 with seed 3), with `down[i]` as their interfaces 2.
fn pair_next_to_rp(
    sim: &mut Sim<Routed>,
    lan: LanId,
    name: &'static str,
    down: [If; 2],
) -> (NodeId, NodeId) {
    let [d0, d1] = down;
    let a = next_to_rp(sim, 2, pim_if(lan, 1, name, "10.0.1.2"), d0);
    let b = next_to_rp(sim, 3, pim_if(lan, 1, name, "10.0.1.3"), d1);
    (a, b)
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
    let rp = rp_on(&mut sim, a, "a");
    let (lo, hi) = pair_next_to_rp(
        &mut sim,
        a,
        "a",
        [pim_if(h, 2, "h", "10.0.5.1"), pim_if(h, 2, "h", "10.0.5.2")],
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
    let u = rp_on(&mut sim, x, "x");
    let (d1, d2) = pair_next_to_rp(
        &mut sim,
        x,
        "x",
        [
            host_if(h1, 2, "h", "10.0.6.1"),
            host_if(h2, 2, "h", "10.0.7.1"),
        ],
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
    let _rp = rp_on(&mut sim, y, "y");
    let (a, b) = pair_next_to_rp(
        &mut sim,
        y,
        "y",
        [pim_if(x, 2, "x", "10.0.8.2"), pim_if(x, 2, "x", "10.0.8.3")],
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

#[test]
fn a_reload_that_moves_the_rp_prunes_toward_the_old_rp_and_joins_toward_the_new() {
    let Chain { mut sim, r2, .. } = chain();
    sim.input(
        r2,
        PimInput::LocalJoin {
            ifindex: 3,
            key: member(),
        },
    );
    sim.run_for(SEC);
    sim.clear_record();
    // Both RPs are behind r1: same neighbor, different RP in the entries.
    sim.configure(r2, rp_config(&["b"], "10.0.1.9"));
    sim.run_for(SEC);
    let sent: Vec<(Ipv4Addr, Vec<(Ipv4Addr, bool)>)> = join_prunes(&sim, r2)
        .into_iter()
        .map(|(_, _, jp)| {
            let mut v: Vec<(Ipv4Addr, bool)> = Vec::new();
            for g in &jp.groups {
                v.extend(
                    g.joins
                        .iter()
                        .filter(|e| e.wildcard)
                        .map(|e| (e.addr, true)),
                );
                v.extend(
                    g.prunes
                        .iter()
                        .filter(|e| e.wildcard)
                        .map(|e| (e.addr, false)),
                );
            }
            (jp.upstream_neighbor, v)
        })
        .collect();
    assert_eq!(
        sent,
        vec![
            (ip("10.0.2.1"), vec![(ip(RP), false)]),
            (ip("10.0.2.1"), vec![(ip("10.0.1.9"), true)]),
        ]
    );
    let snap = sim.node(r2).pim.routes(sim.now());
    assert_eq!(snap[0].rp, Some(ip("10.0.1.9")));
    assert!(snap[0].joined);
}
