//! Register, Assert and the tree layer in one instance, on the virtual
//! clock: the facts Register and Assert need (RPF, DirectlyConnected,
//! olists, SPT bit) come from each router's own TIB and routing table,
//! not from a hand-set view (RFC 7761 §4.4 with §4.2, §4.6.5 with §4.5).

#[path = "pim/net.rs"]
mod net;
use net::*;

use mcr::pim::codec::{self, Message};
use mcr::pim::instance::PimRouteChange;
use mcr::pim::state::assert::AssertState;
use mcr::pim::{PimEvent, PimInput};
use mcr::proto::sim::{NodeId, Sim};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

const SRC: &str = "10.0.9.10";

/// An IPv4/UDP packet from `src` to `dst` with a valid header checksum.
fn datagram(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8) -> Vec<u8> {
    let payload = b"hello";
    let len = 28 + payload.len();
    let mut p = vec![0u8; 28];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = ttl;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let sum = mcr::wire::checksum(&p[..20]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Every PIM message `node` sent, decoded.
fn messages(sim: &Sim<Routed>, node: NodeId) -> Vec<Message> {
    sim.sent()
        .iter()
        .filter(|s| s.from == Some(node))
        .filter_map(|s| codec::decode(&s.payload).ok())
        .collect()
}

fn registers(sim: &Sim<Routed>, node: NodeId) -> (usize, usize) {
    let m = messages(sim, node);
    let data = m
        .iter()
        .filter(|m| matches!(m, Message::Register(r) if !r.null))
        .count();
    let stops = m
        .iter()
        .filter(|m| matches!(m, Message::RegisterStop(_)))
        .count();
    (data, stops)
}

/// Joins of (S,G) without the RPT bit that `node` sent, with their
/// upstream neighbor.
fn sg_joins(sim: &Sim<Routed>, node: NodeId, s: Ipv4Addr) -> Vec<Ipv4Addr> {
    join_prunes(sim, node)
        .into_iter()
        .filter(|(_, _, jp)| entries(jp).iter().any(|e| e.0 == s && !e.1 && !e.2 && e.3))
        .map(|(_, _, jp)| jp.upstream_neighbor)
        .collect()
}

fn tunnel(sim: &Sim<Routed>, node: NodeId) -> Vec<bool> {
    pim_events(sim, node)
        .into_iter()
        .filter_map(|(_, e)| match e {
            PimEvent::RegisterTunnel { up, .. } => Some(up),
            _ => None,
        })
        .collect()
}

fn data(sim: &mut Sim<Routed>, node: NodeId, ifindex: u32) {
    sim.input(
        node,
        PimInput::Data {
            ifindex,
            source: ip(SRC),
            group: grp(),
        },
    );
}

/// source —lan s— DR —lan a— RP —lan b— LH —lan c (receivers).
struct Path {
    sim: Sim<Routed>,
    dr: NodeId,
    rp: NodeId,
    lh: NodeId,
}

fn path() -> Path {
    let mut sim = Sim::new(7);
    let (s, a, b, c) = (sim.add_lan(), sim.add_lan(), sim.add_lan(), sim.add_lan());
    let dr = add_router(
        &mut sim,
        20,
        &[pim_if(s, 1, "s", "10.0.9.1"), pim_if(a, 2, "a", "10.0.1.2")],
        RP,
        vec![
            route("10.0.9.0", 24, 1, None),
            route("0.0.0.0", 0, 2, Some(RP)),
        ],
    );
    let rp = add_router(
        &mut sim,
        21,
        &[pim_if(a, 1, "a", RP), pim_if(b, 2, "b", "10.0.2.1")],
        RP,
        vec![
            route("10.0.1.0", 24, 1, None),
            route("10.0.9.0", 24, 1, Some("10.0.1.2")),
            route("10.0.2.0", 24, 2, None),
        ],
    );
    let lh = add_router(
        &mut sim,
        22,
        &[
            pim_if(b, 2, "b", "10.0.2.2"),
            host_if(c, 3, "c", "10.0.3.1"),
        ],
        RP,
        vec![
            route("10.0.3.0", 24, 3, None),
            route("0.0.0.0", 0, 2, Some("10.0.2.1")),
        ],
    );
    sim.run_for(10 * SEC);
    Path { sim, dr, rp, lh }
}

#[test]
fn a_registered_source_reaches_a_receiver_then_moves_to_the_shortest_path_tree() {
    let Path {
        mut sim,
        dr,
        rp,
        lh,
    } = path();
    let (s, g) = (ip(SRC), grp());
    sim.input(
        lh,
        PimInput::LocalJoin {
            ifindex: 3,
            key: member(),
        },
    );
    sim.run_for(SEC);

    // The DR learns the source is on its LAN from its own routing table
    // and opens the register tunnel.
    data(&mut sim, dr, 1);
    sim.run_for(SEC);
    assert_eq!(tunnel(&sim, dr), vec![true]);
    sim.input(
        dr,
        PimInput::RegisterData {
            ifindex: 1,
            packet: datagram(s, g, 64),
        },
    );
    sim.run_for(SEC);
    assert_eq!(registers(&sim, dr), (1, 0));

    // The RP forwards the inner packet down its (*,G) olist toward the
    // last hop, and joins the source tree toward the DR.
    let d = sim
        .node_mut(rp)
        .pim
        .poll_decapsulated()
        .expect("the RP decapsulates");
    assert_eq!((d.source, d.group, d.oifs), (s, g, vec![2]));
    assert_eq!(sg_joins(&sim, rp, s), vec![ip("10.0.1.2")]);
    assert!(route_changes(&sim, rp).iter().any(|(_, r)| *r
        == PimRouteChange::Add {
            source: Some(s),
            group: g,
            upstream: 1,
            downstream: BTreeSet::from([2]),
        }));
    // The DR now forwards natively onto the RP's LAN.
    assert!(route_changes(&sim, dr).iter().any(|(_, r)| *r
        == PimRouteChange::Add {
            source: Some(s),
            group: g,
            upstream: 1,
            downstream: BTreeSet::from([2]),
        }));

    // Native data at the RP sets its SPT bit; the next Register is
    // answered with a Register-Stop and not forwarded again.
    data(&mut sim, rp, 1);
    sim.input(
        dr,
        PimInput::RegisterData {
            ifindex: 1,
            packet: datagram(s, g, 64),
        },
    );
    sim.run_for(SEC);
    assert_eq!(registers(&sim, rp), (0, 1));
    assert_eq!(tunnel(&sim, dr), vec![true, false]);
    assert!(sim.node_mut(rp).pim.poll_decapsulated().is_none());
    assert!(sim
        .node(rp)
        .pim
        .routes(sim.now())
        .iter()
        .any(|r| r.source == Some(s) && r.spt_bit));

    // Data at the last hop switches it to the source tree.
    assert!(sg_joins(&sim, lh, s).is_empty());
    data(&mut sim, lh, 2);
    sim.run_for(SEC);
    assert_eq!(sg_joins(&sim, lh, s), vec![ip("10.0.2.1")]);
    assert!(sim
        .node(lh)
        .pim
        .routes(sim.now())
        .iter()
        .any(|r| r.source == Some(s) && r.spt_bit));
}

#[test]
fn the_dr_stops_registering_when_the_source_falls_silent() {
    let Path { mut sim, dr, .. } = path();
    data(&mut sim, dr, 1);
    sim.run_for(SEC);
    assert_eq!(tunnel(&sim, dr), vec![true]);
    // One Keepalive Timer (210 s) for both layers: without data it ends
    // the register tunnel.
    sim.run_for(200 * SEC);
    assert_eq!(tunnel(&sim, dr), vec![true]);
    sim.run_for(15 * SEC);
    assert_eq!(tunnel(&sim, dr), vec![true, false]);
    assert!(!sim.node(dr).pim.keepalive_running(ip(SRC), grp()));
}

/// RP —lan a— {A, B} —lan b— {L1 (joins via A), L2 (joins via B)}.
#[test]
fn an_assert_on_a_lan_moves_the_losers_traffic_and_the_joins_to_the_winner() {
    let mut sim = Sim::new(9);
    let (a, b, c, d) = (sim.add_lan(), sim.add_lan(), sim.add_lan(), sim.add_lan());
    let _rp = add_router(&mut sim, 30, &[pim_if(a, 1, "a", RP)], RP, vec![]);
    let upstream = |sim: &mut Sim<Routed>, seed, a_addr, b_addr| {
        add_router(
            sim,
            seed,
            &[pim_if(a, 1, "a", a_addr), pim_if(b, 2, "b", b_addr)],
            RP,
            vec![
                route("10.0.1.0", 24, 1, None),
                route("0.0.0.0", 0, 1, Some(RP)),
            ],
        )
    };
    let ra = upstream(&mut sim, 31, "10.0.1.2", "10.0.2.2");
    let rb = upstream(&mut sim, 32, "10.0.1.3", "10.0.2.3");
    let last = |sim: &mut Sim<Routed>, seed, lan, addr, via| {
        add_router(
            sim,
            seed,
            &[pim_if(b, 2, "b", addr), host_if(lan, 3, "c", "10.0.3.1")],
            RP,
            vec![route("0.0.0.0", 0, 2, Some(via))],
        )
    };
    let l1 = last(&mut sim, 33, c, "10.0.2.10", "10.0.2.2");
    let l2 = last(&mut sim, 34, d, "10.0.2.11", "10.0.2.3");
    sim.run_for(10 * SEC);
    for l in [l1, l2] {
        sim.input(
            l,
            PimInput::LocalJoin {
                ifindex: 3,
                key: member(),
            },
        );
    }
    sim.run_for(SEC);
    let star = star_route(1, &[2]);
    for r in [ra, rb] {
        assert_eq!(
            route_changes(&sim, r).last().map(|x| x.1.clone()),
            Some(star.clone())
        );
    }
    assert_eq!(
        star_joins(&sim, l1).last().map(|j| j.1),
        Some(ip("10.0.2.2"))
    );

    // B's copy of the RP tree's traffic arrives at A on LAN b: both
    // forward there. B, with the higher address, wins the (*,G) assert.
    sim.run_for(SEC);
    data(&mut sim, ra, 2);
    sim.run_for(SEC);
    let asserts = |n| {
        messages(&sim, n)
            .into_iter()
            .filter(|m| matches!(m, Message::Assert(_)))
            .count()
    };
    assert!(asserts(ra) >= 1 && asserts(rb) >= 1);
    let lost: Vec<_> = pim_events(&sim, ra)
        .into_iter()
        .filter_map(|(_, e)| match e {
            PimEvent::AssertChanged { state, winner, .. } => Some((state, winner)),
            _ => None,
        })
        .collect();
    // A asserted first (data on an olist interface makes it Winner), then
    // lost to B's better address.
    assert_eq!(
        lost.get(..2),
        Some(
            &[
                (AssertState::Winner, Some(ip("10.0.2.2"))),
                (AssertState::Loser, Some(ip("10.0.2.3")))
            ][..]
        )
    );
    assert!(!sim.node(rb).pim.lost_assert(None, grp(), 2));
    // The loser stops forwarding onto LAN b: its olist loses it.
    assert!(route_changes(&sim, ra)
        .iter()
        .any(|(_, r)| matches!(r, PimRouteChange::Withdraw { source: None, .. })));
    assert_eq!(
        route_changes(&sim, rb).last().map(|x| x.1.clone()),
        Some(star)
    );
    // L1 heard the assert and sends its (*,G) Joins to the winner now.
    assert_eq!(
        sim.node(l1).pim.assert_winner(None, grp(), 2),
        Some(ip("10.0.2.3"))
    );
    // §4.5.5 "RPF'(*,G) changes due to an Assert": no Prune to the loser
    // and no Join at once; the Join Timer drops to t_override (≤ 2.5 s,
    // LAN b's override interval), so L1's next Join, to the winner, comes
    // within 2.5 s of the assert instead of up to 60 s later.
    let lost_at = pim_events(&sim, l1)
        .into_iter()
        .find_map(|(at, e)| match e {
            PimEvent::AssertChanged {
                state: AssertState::Loser,
                ..
            } => Some(at),
            _ => None,
        });
    let lost_at = lost_at.expect("L1 tracks the winner as an assert loser");
    sim.run_for(3 * SEC);
    assert!(
        star_prunes(&sim, l1).is_empty(),
        "no Prune to the assert loser"
    );
    let new_joins: Vec<_> = star_joins(&sim, l1)
        .into_iter()
        .filter(|j| j.0 >= lost_at)
        .collect();
    assert_eq!(new_joins.len(), 1, "{new_joins:?}");
    assert_eq!(new_joins[0].1, ip("10.0.2.3"));
    let after = new_joins[0].0 - lost_at;
    assert!(after <= std::time::Duration::from_millis(2500), "{after:?}");
    sim.run_for(70 * SEC);
    let after: Vec<Ipv4Addr> = star_joins(&sim, l1)
        .iter()
        .rev()
        .take(1)
        .map(|j| j.1)
        .collect();
    assert_eq!(after, vec![ip("10.0.2.3")]);
}

/// §4.6.2 A6: a last hop joined to S that loses an (S,G) assert on its
/// RPF interface sets its SPT bit and joins the winner.
#[test]
fn losing_a_source_assert_on_the_rpf_interface_sets_the_spt_bit() {
    let mut sim = Sim::new(11);
    let (a, b, c) = (sim.add_lan(), sim.add_lan(), sim.add_lan());
    let _rp = add_router(&mut sim, 40, &[pim_if(a, 1, "a", RP)], RP, vec![]);
    let _up = add_router(
        &mut sim,
        41,
        &[pim_if(a, 1, "a", "10.0.1.2"), pim_if(b, 2, "b", "10.0.2.2")],
        RP,
        vec![route("0.0.0.0", 0, 1, Some(RP))],
    );
    let lh = add_router(
        &mut sim,
        42,
        &[
            pim_if(b, 2, "b", "10.0.2.10"),
            host_if(c, 3, "c", "10.0.3.1"),
        ],
        RP,
        vec![route("0.0.0.0", 0, 2, Some("10.0.2.2"))],
    );
    sim.run_for(10 * SEC);
    let (s, g) = (ip(SRC), grp());
    sim.input(
        lh,
        PimInput::LocalJoin {
            ifindex: 3,
            key: mcr::pim::state::downstream::TreeKey::s_g(s, g),
        },
    );
    sim.run_for(SEC);
    assert_eq!(sg_joins(&sim, lh, s), vec![ip("10.0.2.2")]);
    let spt = |sim: &Sim<Routed>| {
        sim.node(lh)
            .pim
            .routes(sim.now())
            .iter()
            .any(|r| r.source == Some(s) && r.spt_bit)
    };
    assert!(!spt(&sim));
    // Another router on the LAN asserts (S,G) with a better metric.
    let assert = codec::Assert {
        group: codec::EncodedGroup::host(g),
        source: s,
        rpt: false,
        preference: 1,
        metric: 1,
    };
    sim.inject(
        b,
        ip("10.0.2.4"),
        codec::ALL_PIM_ROUTERS,
        codec::encode(&Message::Assert(assert)),
    );
    sim.run_for(SEC);
    assert_eq!(
        sim.node(lh).pim.assert_winner(Some(s), g, 2),
        Some(ip("10.0.2.4"))
    );
    assert!(spt(&sim));
    assert_eq!(sg_joins(&sim, lh, s).last(), Some(&ip("10.0.2.4")));
}

/// A first-hop router on S's LAN (interface 1, 10.0.9.1) and LAN b
/// (interface 2, 10.0.2.2), settled for 5 s; `seed` is the simulator's,
/// `router_seed` the router's own.
fn first_hop_on_two_lans(seed: u64, router_seed: u64) -> (Sim<Routed>, NodeId) {
    let mut sim = Sim::new(seed);
    let (s_lan, b) = (sim.add_lan(), sim.add_lan());
    let fh = add_router(
        &mut sim,
        router_seed,
        &[
            pim_if(s_lan, 1, "s", "10.0.9.1"),
            pim_if(b, 2, "b", "10.0.2.2"),
        ],
        RP,
        vec![
            route("10.0.9.0", 24, 1, None),
            route("10.0.2.0", 24, 2, None),
        ],
    );
    sim.run_for(5 * SEC);
    (sim, fh)
}

/// The Asserts `node` has sent so far.
fn asserts_sent(sim: &Sim<Routed>, node: NodeId) -> Vec<codec::Assert> {
    messages(sim, node)
        .into_iter()
        .filter_map(|m| match m {
            Message::Assert(a) => Some(a),
            _ => None,
        })
        .collect()
}

/// §4.2.2 with §4.6.2: a first-hop router has nobody upstream to join
/// toward a directly connected source, yet JoinDesired(S,G) holds while
/// it forwards S to a local member, so data from S sets its SPT bit and
/// another router's copy on that LAN makes it assert (CouldAssert needs
/// the SPT bit), with the metric of its route toward S.
#[test]
fn a_first_hop_router_of_a_connected_source_asserts_against_another_copy() {
    let (mut sim, fh) = first_hop_on_two_lans(12, 50);
    let (s, g) = (ip(SRC), grp());
    sim.input(
        fh,
        PimInput::LocalJoin {
            ifindex: 2,
            key: mcr::pim::state::downstream::TreeKey::s_g(s, g),
        },
    );
    sim.run_for(SEC);
    data(&mut sim, fh, 1);
    sim.run_for(SEC);
    let sg = sim
        .node(fh)
        .pim
        .routes(sim.now())
        .into_iter()
        .find(|r| r.source == Some(s))
        .expect("an (S,G) route");
    assert!(sg.spt_bit, "{sg:?}");
    assert!(!sg.joined, "nobody upstream of a connected source: {sg:?}");
    // Another router's copy of S arrives on LAN b.
    data(&mut sim, fh, 2);
    sim.run_for(SEC);
    let asserts = asserts_sent(&sim, fh);
    assert_eq!(asserts.len(), 1, "{asserts:?}");
    let a = &asserts[0];
    assert_eq!((a.source, a.rpt), (s, false));
    assert_eq!((a.preference, a.metric), (110, 10), "the route toward S");
    assert!(!sim.node(fh).pim.lost_assert(Some(s), g, 2));
}

/// A router that starts forwarding S onto a LAN where another router's
/// copy of S was seen moments before asserts at once, not at the next
/// data report (the shell reports an (S,G) on an interface once a second).
#[test]
fn starting_to_forward_onto_a_lan_with_another_copy_asserts_at_once() {
    let (mut sim, fh) = first_hop_on_two_lans(13, 51);
    let (s, g) = (ip(SRC), grp());
    // S's data on its own LAN, and another router's copy on LAN b, while
    // nobody here wants S: nothing to assert.
    data(&mut sim, fh, 1);
    data(&mut sim, fh, 2);
    sim.run_for(std::time::Duration::from_millis(200));
    assert_eq!(asserts_sent(&sim, fh).len(), 0);
    // A member on LAN b: we forward S there too, and assert at once.
    sim.input(
        fh,
        PimInput::LocalJoin {
            ifindex: 2,
            key: mcr::pim::state::downstream::TreeKey::s_g(s, g),
        },
    );
    sim.run_for(std::time::Duration::from_millis(10));
    assert_eq!(asserts_sent(&sim, fh).len(), 1);
    assert!(sim
        .node(fh)
        .pim
        .asserts(sim.now())
        .iter()
        .any(|a| a.source == Some(s) && a.state == AssertState::Winner));
}
