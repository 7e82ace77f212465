//! What one Join/Prune costs a router holding many (S,G), with the
//! incremental `reconcile` and with the full one (the test-only switch),
//! and what building that state costs from nothing (a restart: every
//! Join and every RPF answer one at a time). Prints figures; run with
//!
//!     cargo test -p mcr --lib --release reconcile_bench -- --ignored --nocapture
//!
//! The trees are spread 10 sources to a group, so the incremental pass
//! visits one group's 11 trees per message whatever the total.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::{PimInput, PimInstance, RpfResult};
use crate::pim::codec::{
    self, EncodedGroup, EncodedSource, Hello, JoinPrune, JoinPruneGroup, Message, ALL_PIM_ROUTERS,
};
use crate::pim::config::{PimConfig, PimInterfaceConfig, StaticRp};
use crate::proto::{Protocol, Rng};

const DOWN: u32 = 1;
const UP: u32 = 2;
const SOURCES_PER_GROUP: usize = 10;

fn addr(ifindex: u32, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, ifindex as u8, 0, host)
}

fn group(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(239, 1, (i >> 8) as u8, i as u8)
}

fn source(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 5, (i >> 8) as u8, i as u8)
}

fn drain(p: &mut PimInstance, now: Instant) -> usize {
    let mut n = 0;
    while let Some(target) = p.poll_rpf_request() {
        let result = Some(RpfResult {
            ifindex: UP,
            next_hop: Some(addr(UP, 2)),
            metric_preference: 110,
            metric: 1,
        });
        p.handle_event(now, PimInput::Rpf { target, result });
        n += 1;
    }
    while p.poll_transmit().is_some() {}
    while p.poll_event().is_some() {}
    while p.poll_route_change().is_some() {}
    n
}

fn jp(group: Ipv4Addr, joins: &[Ipv4Addr], prunes: &[Ipv4Addr]) -> Vec<u8> {
    codec::encode(&Message::JoinPrune(JoinPrune {
        upstream_neighbor: addr(DOWN, 1),
        holdtime: 210,
        groups: vec![JoinPruneGroup {
            group: EncodedGroup::host(group),
            joins: joins.iter().map(|s| EncodedSource::s_g(*s)).collect(),
            prunes: prunes.iter().map(|s| EncodedSource::s_g(*s)).collect(),
        }],
    }))
}

/// A router with `n` (S,G) joined downstream and upstream; the time it
/// took to get there, Join/Prune by Join/Prune and answer by answer.
fn router(n: usize, full: bool, now: Instant) -> (PimInstance, Duration) {
    let mut p = PimInstance::new(Rng::new(1));
    p.force_full_reconcile(full);
    p.handle_config(
        now,
        PimConfig {
            enabled: true,
            interfaces: vec![
                PimInterfaceConfig::named("d"),
                PimInterfaceConfig::named("u"),
            ],
            static_rp: vec![StaticRp {
                group: "239.0.0.0/8".parse().expect("prefix"),
                rp: Ipv4Addr::new(10, 9, 9, 9),
            }],
            ..PimConfig::default()
        },
    );
    for (ifindex, name) in [(DOWN, "d"), (UP, "u")] {
        p.handle_event(
            now,
            PimInput::InterfaceUp {
                ifindex,
                name: name.into(),
                addr: addr(ifindex, 1),
            },
        );
        let hello = codec::encode(&Message::Hello(Hello {
            holdtime: Some(0xffff),
            dr_priority: Some(1),
            generation_id: Some(1),
            ..Hello::default()
        }));
        p.handle_packet(now, ifindex, addr(ifindex, 2), ALL_PIM_ROUTERS, &hello);
    }
    drain(&mut p, now);
    let start = Instant::now();
    let groups = n.div_ceil(SOURCES_PER_GROUP);
    for g in 0..groups {
        let sources: Vec<Ipv4Addr> = (g * SOURCES_PER_GROUP..((g + 1) * SOURCES_PER_GROUP).min(n))
            .map(source)
            .collect();
        p.handle_packet(
            now,
            DOWN,
            addr(DOWN, 2),
            ALL_PIM_ROUTERS,
            &jp(group(g), &sources, &[]),
        );
        drain(&mut p, now);
    }
    let took = start.elapsed();
    assert_eq!(p.route_table().len(), n, "every (S,G) has its route");
    (p, took)
}

/// Mean time of one Join/Prune that prunes, then joins again, one (S,G):
/// each one changes the tree, so each sends a Join or Prune upstream.
fn per_join_prune(p: &mut PimInstance, n: usize, now: Instant) -> Duration {
    let rounds = 100;
    let (g, s) = (
        group(n.div_ceil(SOURCES_PER_GROUP) / 2),
        source(n / 2 / SOURCES_PER_GROUP * SOURCES_PER_GROUP),
    );
    let prune = jp(g, &[], &[s]);
    let join = jp(g, &[s], &[]);
    let start = Instant::now();
    for _ in 0..rounds {
        for msg in [&prune, &join] {
            p.handle_packet(now, DOWN, addr(DOWN, 2), ALL_PIM_ROUTERS, msg);
            // A Prune from the only neighbor takes effect at once (no
            // override interval): its Prune-Pending timer is due now.
            while p.poll_timeout().is_some_and(|t| t <= now) {
                p.handle_timeout(now);
            }
            let upstream = std::iter::from_fn(|| p.poll_transmit())
                .filter(|t| t.ifindex == UP)
                .count();
            assert_eq!(upstream, 1, "each message moves the tree upstream");
            drain(p, now);
        }
    }
    start.elapsed() / (2 * rounds)
}

#[test]
#[ignore = "prints timings; run with --release --nocapture"]
fn reconcile_bench() {
    let now = Instant::now();
    println!("| (S,G) | Join/Prune, incremental | Join/Prune, full | speed-up | build from nothing, incremental | build, full |");
    println!("|---|---|---|---|---|---|");
    for n in [10, 1_000, 10_000] {
        let (mut inc, build_inc) = router(n, false, now);
        // The full pass would take O(n²) to build 10,000: build with the
        // incremental one and switch (the state is the same, as the
        // proptest shows), timing the full build only where it is short.
        let (mut full, build_full) = router(n, n <= 1_000, now);
        full.force_full_reconcile(true);
        let t_inc = per_join_prune(&mut inc, n, now);
        let t_full = per_join_prune(&mut full, n, now);
        println!(
            "| {n} | {:.1} µs | {:.1} µs | {:.0}× | {:.1} ms | {} |",
            t_inc.as_secs_f64() * 1e6,
            t_full.as_secs_f64() * 1e6,
            t_full.as_secs_f64() / t_inc.as_secs_f64(),
            build_inc.as_secs_f64() * 1e3,
            if n > 1_000 {
                "not run".to_string()
            } else {
                format!("{:.1} ms", build_full.as_secs_f64() * 1e3)
            },
        );
    }
}
