//! Assert (RFC 7761 §4.6) on the virtual-clock simulator: two routers
//! forward (S,G) onto one LAN, both see the other's copy, the Assert
//! elects one forwarder; the winner refreshes, the loser takes over when
//! the winner falls silent or cancels.
//!
//! Routers A (10.0.0.1) and B (10.0.0.2) share LAN 0 on interface 10; each
//! has its own upstream (interface 11) toward the source 10.9.0.10. Both
//! could assert on interface 10 (it is in their outgoing lists).

#[path = "pim/facts.rs"]
mod facts;
use facts::*;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use mcr::pim::codec::Message;
use mcr::pim::state::assert::{AssertMetric, AssertState};
use mcr::pim::{PimEvent, PimInput, PimInstance};
use mcr::proto::sim::{NodeId, Sim};
use mcr::proto::Protocol;

const SRC: &str = "10.9.0.10";
const GRP: &str = "239.2.2.2";

struct Lan {
    sim: Sim<PimInstance>,
    a: NodeId,
    b: NodeId,
    va: Arc<View>,
    vb: Arc<View>,
}

/// A and B with route metrics `ma` and `mb` (preference, metric) toward S.
fn lan(ma: (u32, u32), mb: (u32, u32)) -> Lan {
    let mut sim = Sim::new(11);
    let shared = sim.add_lan();
    let (up_a, up_b) = (sim.add_lan(), sim.add_lan());
    let cfg = || config(&[("if10", 1), ("if11", 1)], &[("239.0.0.0/8", "10.9.9.9")]);
    let (a, va) = router(
        &mut sim,
        1,
        &[(shared, 10, "10.0.0.1"), (up_a, 11, "10.8.1.1")],
        cfg(),
    );
    let (b, vb) = router(
        &mut sim,
        2,
        &[(shared, 10, "10.0.0.2"), (up_b, 11, "10.8.2.1")],
        cfg(),
    );
    for (v, m) in [(&va, ma), (&vb, mb)] {
        v.set(|f| {
            f.rpf.insert(ip(SRC), 11);
            f.metric = m;
            f.could_assert_sg = vec![10];
            f.tracking = vec![10];
        });
    }
    sim.run_for(5 * SEC);
    Lan { sim, a, b, va, vb }
}

impl Lan {
    /// Each router sees the other's copy of (S,G) on the shared LAN.
    fn both_forward(&mut self) {
        for n in [self.a, self.b] {
            self.sim.input(
                n,
                PimInput::Data {
                    ifindex: 10,
                    source: ip(SRC),
                    group: ip(GRP),
                },
            );
        }
        self.sim.run_for(Duration::from_millis(10));
    }

    fn state(&self, n: NodeId) -> (AssertState, Option<Ipv4Addr>) {
        let now = self.sim.now();
        self.sim
            .node(n)
            .asserts(now)
            .iter()
            .find(|s| s.source == Some(ip(SRC)) && s.group == ip(GRP) && s.ifindex == 10)
            .map_or((AssertState::NoInfo, None), |s| {
                (s.state, s.winner.map(|w| w.addr))
            })
    }

    /// (time, metric) of every Assert a node sent.
    fn asserts_from(&self, n: NodeId) -> Vec<(Duration, AssertMetric)> {
        let addr = if n == self.a { "10.0.0.1" } else { "10.0.0.2" };
        sent_by(&self.sim, n)
            .into_iter()
            .filter_map(|(at, _, m)| match m {
                Message::Assert(a) => Some((at, AssertMetric::of(&a, ip(addr)))),
                _ => None,
            })
            .collect()
    }

    fn changes(&self, n: NodeId) -> Vec<(Duration, AssertState)> {
        events_of(&self.sim, n)
            .into_iter()
            .filter_map(|(at, e)| match e {
                PimEvent::AssertChanged { state, .. } => Some((at, state)),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn better_metric_wins_and_the_loser_stops_forwarding() {
    let mut l = lan((110, 20), (110, 10));
    l.both_forward();
    let b = ip("10.0.0.2");
    assert_eq!(l.state(l.a), (AssertState::Loser, Some(b)));
    assert_eq!(l.state(l.b), (AssertState::Winner, Some(b)));
    assert!(l.sim.node(l.a).lost_assert(Some(ip(SRC)), ip(GRP), 10));
    assert!(!l.sim.node(l.b).lost_assert(Some(ip(SRC)), ip(GRP), 10));
    assert_eq!(
        l.sim.node(l.a).assert_winner(Some(ip(SRC)), ip(GRP), 10),
        Some(b)
    );
    // A's assert carried its SPT metric; B answered A's inferior assert.
    let from_a = l.asserts_from(l.a);
    assert_eq!(from_a.len(), 1);
    assert_eq!(
        (from_a[0].1.rpt, from_a[0].1.preference, from_a[0].1.metric),
        (false, 110, 20)
    );
    assert_eq!(l.asserts_from(l.b).len(), 2);
    let ch = l.changes(l.a);
    assert_eq!(
        ch.iter().map(|c| c.1).collect::<Vec<_>>(),
        [AssertState::Winner, AssertState::Loser]
    );
}

#[test]
fn equal_metrics_go_to_the_higher_address() {
    let mut l = lan((110, 10), (110, 10));
    l.both_forward();
    assert_eq!(l.state(l.a).0, AssertState::Loser);
    assert_eq!(l.state(l.b).0, AssertState::Winner);
}

#[test]
fn the_winner_refreshes_before_the_loser_times_out() {
    let mut l = lan((110, 20), (110, 10));
    l.both_forward();
    let start = l.asserts_from(l.b).last().unwrap().0;
    l.sim.run_for(600 * SEC);
    let refresh: Vec<Duration> = l.asserts_from(l.b).iter().map(|a| a.0).collect();
    // Every Assert_Time − Assert_Override_Interval = 177 s.
    let later: Vec<Duration> = refresh.into_iter().filter(|t| *t > start).collect();
    assert_eq!(
        later,
        [start + 177 * SEC, start + 354 * SEC, start + 531 * SEC]
    );
    // A never stopped being the loser, and never asserted again.
    assert_eq!(l.state(l.a).0, AssertState::Loser);
    assert_eq!(l.asserts_from(l.a).len(), 1);
    assert_eq!(l.changes(l.a).len(), 2);
}

#[test]
fn the_loser_takes_over_when_the_winner_falls_silent() {
    let mut l = lan((110, 20), (110, 10));
    l.both_forward();
    let crash = l.sim.elapsed();
    l.sim.down(l.b);
    l.sim.run_for(200 * SEC);
    // B's neighbor entry on A expires (105 s holdtime) before the Assert
    // Timer (180 s) would: A forgets the winner then.
    let ch = l.changes(l.a);
    let back = ch.last().unwrap();
    assert_eq!(back.1, AssertState::NoInfo);
    assert!(back.0 - crash <= 105 * SEC, "{:?}", back.0 - crash);
    assert!(!l.sim.node(l.a).lost_assert(Some(ip(SRC)), ip(GRP), 10));
    let down: Vec<_> = events_of(&l.sim, l.a)
        .into_iter()
        .filter(|(_, e)| matches!(e, PimEvent::NeighborDown { .. }))
        .collect();
    assert_eq!(down.len(), 1);
    assert_eq!(down[0].0, back.0);
}

#[test]
fn the_loser_times_out_when_the_winner_stays_up_but_stops_asserting() {
    let mut l = lan((110, 20), (110, 10));
    l.both_forward();
    let last = l.asserts_from(l.b).last().unwrap().0;
    // B stops forwarding onto the LAN without a cancel (its olist lost the
    // LAN, say, and its own state was reset): model it by B forgetting.
    l.vb.set(|f| f.could_assert_sg.clear());
    l.sim.node_mut(l.b).reevaluate_asserts();
    // Drop B's cancel on the floor: this test is about the timer.
    while l.sim.node_mut(l.b).poll_transmit().is_some() {}
    l.sim.run_for(200 * SEC);
    let ch = l.changes(l.a);
    assert_eq!(ch.last().unwrap(), &(last + 180 * SEC, AssertState::NoInfo));
}

#[test]
fn an_assert_cancel_hands_forwarding_back_at_once() {
    let mut l = lan((110, 20), (110, 10));
    l.both_forward();
    l.sim.run_for(10 * SEC);
    let t = l.sim.elapsed();
    l.vb.set(|f| f.could_assert_sg.clear());
    l.sim.node_mut(l.b).reevaluate_asserts();
    l.sim.run_for(SEC);
    let cancel = l.asserts_from(l.b).last().unwrap().1;
    assert!(cancel.is_cancel() && cancel.rpt);
    assert_eq!(l.state(l.b).0, AssertState::NoInfo);
    assert_eq!(l.state(l.a).0, AssertState::NoInfo);
    assert_eq!(l.changes(l.a).last().unwrap(), &(t, AssertState::NoInfo));
    // If A sees a copy on the LAN again, it asserts and, with nobody
    // better, wins.
    l.sim.input(
        l.a,
        PimInput::Data {
            ifindex: 10,
            source: ip(SRC),
            group: ip(GRP),
        },
    );
    l.sim.run_for(SEC);
    assert_eq!(l.state(l.a).0, AssertState::Winner);
    // B, which cannot assert but tracks, follows A.
    assert_eq!(l.state(l.b), (AssertState::Loser, Some(ip("10.0.0.1"))));
}

#[test]
fn a_join_to_the_loser_resets_it() {
    use mcr::pim::codec::{self, EncodedGroup, EncodedSource, JoinPrune, JoinPruneGroup};
    let mut l = lan((110, 20), (110, 10));
    l.both_forward();
    assert_eq!(l.state(l.a).0, AssertState::Loser);
    // B itself joins (S,G) through A (as a downstream router would).
    let jp = codec::encode(&Message::JoinPrune(JoinPrune {
        upstream_neighbor: ip("10.0.0.1"),
        holdtime: 210,
        groups: vec![JoinPruneGroup {
            group: EncodedGroup::host(ip(GRP)),
            joins: vec![EncodedSource::s_g(ip(SRC))],
            prunes: vec![],
        }],
    }));
    l.sim
        .inject(0, ip("10.0.0.2"), mcr::pim::codec::ALL_PIM_ROUTERS, jp);
    l.sim.run_for(SEC);
    assert_eq!(l.state(l.a).0, AssertState::NoInfo);
}

#[test]
fn star_g_asserts_carry_the_rpt_bit_and_the_packets_source() {
    let mut l = lan((110, 20), (110, 10));
    // Only (*,G) state: neither could assert (S,G), both could (*,G).
    for v in [&l.va, &l.vb] {
        v.set(|f| {
            f.could_assert_sg.clear();
            f.could_assert_g = vec![10];
        });
    }
    l.both_forward();
    let now = l.sim.now();
    let star = |n: NodeId| {
        l.sim
            .node(n)
            .asserts(now)
            .into_iter()
            .find(|s| s.source.is_none() && s.group == ip(GRP))
            .map(|s| s.state)
    };
    assert_eq!(star(l.a), Some(AssertState::Loser));
    assert_eq!(star(l.b), Some(AssertState::Winner));
    assert!(l.sim.node(l.a).lost_assert(None, ip(GRP), 10));
    let sent: Vec<_> = sent_by(&l.sim, l.a)
        .into_iter()
        .filter_map(|(_, _, m)| match m {
            Message::Assert(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].rpt);
    assert_eq!(sent[0].source, ip(SRC));
}
