//! PIM messages and data-plane inputs from any peer, fed to a running
//! `PimInstance`: never a panic, whatever decodes re-encodes to the same
//! message, and every transmit the instance makes decodes again.
//!
//! Input: a sequence of records `[op, a, b, len, bytes(len)]`. `op % 4`:
//! 0 a PIM packet on interface `a % 2 + 1` from neighbor-ish address `b`
//! to ALL-PIM-ROUTERS or (odd `a`) to our RP address; 1 a data-arrived
//! upcall; 2 a data packet to register; 3 time moves `a` seconds. Each
//! record goes to two instances: one whose tree facts are pinned to "yes"
//! (every Register and Assert path runs), one that takes them from its
//! own TIB with RPF questions answered from the address.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mcr::pim::codec::{decode, encode, ALL_PIM_ROUTERS};
use mcr::pim::instance::{RpfResult, TreeView};
use mcr::pim::{PimConfig, PimInput, PimInstance, PimInterfaceConfig, StaticRp};
use mcr::proto::{Protocol, Rng};

/// Says yes to everything, so that every Register and Assert path runs.
struct Everything;

impl TreeView for Everything {
    fn rpf_interface(&self, addr: Ipv4Addr) -> Option<u32> {
        Some(if addr.octets()[1] == 0 { 1 } else { 2 })
    }
    fn route_metric(&self, addr: Ipv4Addr) -> (u32, u32) {
        (u32::from(addr.octets()[3]), u32::from(addr.octets()[2]))
    }
    fn directly_connected(&self, source: Ipv4Addr, ifindex: u32) -> bool {
        ifindex == 1 && source.octets()[0] == 10
    }
    fn spt_bit(&self, source: Ipv4Addr, _: Ipv4Addr) -> bool {
        source.octets()[3] & 1 == 0
    }
    fn switch_to_spt_desired(&self, _: Ipv4Addr, _: Ipv4Addr) -> bool {
        true
    }
    fn olist_rpt(&self, _: Ipv4Addr, group: Ipv4Addr) -> Vec<u32> {
        if group.octets()[3] & 1 == 0 {
            vec![1, 2]
        } else {
            Vec::new()
        }
    }
    fn olist(&self, s: Ipv4Addr, g: Ipv4Addr) -> Vec<u32> {
        self.olist_rpt(s, g)
    }
    fn could_assert(&self, _: Option<Ipv4Addr>, _: Ipv4Addr, _: u32) -> bool {
        true
    }
    fn assert_tracking_desired(&self, _: Option<Ipv4Addr>, _: Ipv4Addr, _: u32) -> bool {
        true
    }
}

fn instance(t0: Instant, pinned: bool) -> PimInstance {
    let mut p = PimInstance::new(Rng::new(1));
    if pinned {
        p.set_tree_view(Arc::new(Everything));
    }
    let rp = |g: &str, rp: [u8; 4]| StaticRp {
        group: g.parse().unwrap(),
        rp: Ipv4Addr::from(rp),
    };
    p.handle_config(
        t0,
        PimConfig {
            enabled: true,
            interfaces: vec![
                PimInterfaceConfig::named("a"),
                PimInterfaceConfig::named("b"),
            ],
            // We are RP for 239/8; 238/8 belongs to someone else.
            static_rp: vec![
                rp("239.0.0.0/8", [10, 1, 0, 1]),
                rp("238.0.0.0/8", [10, 1, 0, 9]),
            ],
            ..PimConfig::default()
        },
    );
    for (ifindex, name, addr) in [(1, "a", [10, 0, 0, 1]), (2, "b", [10, 1, 0, 1])] {
        p.handle_event(
            t0,
            PimInput::InterfaceUp {
                ifindex,
                name: name.into(),
                addr: Ipv4Addr::from(addr),
            },
        );
    }
    p
}

/// The unicast route the TIB-backed instance is told for `addr`: sources
/// 10.0.0.x are on link 1, everything else behind 10.1.0.2 on link 2.
fn route(addr: Ipv4Addr) -> Option<RpfResult> {
    let o = addr.octets();
    (o[0] == 10).then(|| RpfResult {
        ifindex: if o[1] == 0 { 1 } else { 2 },
        next_hop: (o[1] != 0).then(|| Ipv4Addr::new(10, 1, 0, 2)),
        metric_preference: u32::from(o[3]),
        metric: u32::from(o[2]),
    })
}

fn drain(p: &mut PimInstance, now: Instant) {
    while let Some(target) = p.poll_rpf_request() {
        p.handle_event(
            now,
            PimInput::Rpf {
                target,
                result: route(target),
            },
        );
    }
    while p.poll_route_change().is_some() {}
    while let Some(t) = p.poll_transmit() {
        if let Err(e) = decode(&t.payload) {
            panic!("the instance sent a message it cannot decode: {e}");
        }
    }
    while p.poll_event().is_some() {}
    while p.poll_decapsulated().is_some() {}
}

fuzz_target!(|data: &[u8]| {
    for pinned in [true, false] {
        run(data, pinned);
    }
});

fn run(data: &[u8], pinned: bool) {
    let t0 = Instant::now();
    let mut now = t0;
    let mut p = instance(t0, pinned);
    drain(&mut p, now);
    let mut rest = data;
    while rest.len() >= 4 {
        let (op, a, b, len) = (rest[0], rest[1], rest[2], usize::from(rest[3]));
        let body = &rest[4..(4 + len).min(rest.len())];
        rest = &rest[(4 + len).min(rest.len())..];
        let ifindex = u32::from(a % 2) + 1;
        match op % 4 {
            0 => {
                if let Ok(m) = decode(body) {
                    assert_eq!(decode(&encode(&m)), Ok(m.clone()), "round trip");
                }
                let src = Ipv4Addr::new(10, (ifindex - 1) as u8, 0, b);
                let dst = if a & 1 == 1 {
                    Ipv4Addr::new(10, 1, 0, 1)
                } else {
                    ALL_PIM_ROUTERS
                };
                p.handle_packet(now, ifindex, src, dst, body);
            }
            1 => {
                let g = Ipv4Addr::new(238 + (b & 1), 1, 1, b);
                let s = Ipv4Addr::new(10, a & 1, 0, b);
                p.handle_event(
                    now,
                    PimInput::Data {
                        ifindex,
                        source: s,
                        group: g,
                    },
                );
            }
            2 => p.handle_event(
                now,
                PimInput::RegisterData {
                    ifindex,
                    packet: body.to_vec(),
                },
            ),
            _ => {
                now += Duration::from_secs(u64::from(a));
                while let Some(at) = p.poll_timeout() {
                    if at > now {
                        break;
                    }
                    p.handle_timeout(at.max(t0));
                    drain(&mut p, now);
                }
            }
        }
        drain(&mut p, now);
    }
}
