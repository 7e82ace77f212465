//! The last-hop switch to the source tree and (S,G,rpt) on both sides
//! (RFC 7761 §4.2.1, §4.2.2, §4.5.3, §4.5.7), with several PIM routers on
//! simulated LANs and a virtual clock (`pim/net.rs`).

#[path = "pim/net.rs"]
mod net;
use net::*;

use std::time::Duration;

use mcr::pim::codec::{
    self, EncodedGroup, EncodedSource, JoinPrune, JoinPruneGroup, Message, ALL_PIM_ROUTERS,
};
use mcr::pim::instance::PimRouteChange;
use mcr::pim::PimInput;
use mcr::proto::sim::{NodeId, Sim};

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
    let sg = routes
        .iter()
        .find(|r| r.source == Some(ip("10.9.0.5")))
        .unwrap();
    assert_eq!(sg.rpt_pruned_on, vec!["x".to_string()]);
    assert_eq!(star.downstream.len(), 1, "d1's (*,G) join on x");
    assert_eq!(star.downstream[0].interface, "x");
}
