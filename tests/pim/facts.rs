//! Routers on the virtual-clock simulator (`mcr::proto::sim`) with a
//! hand-set [`TreeView`]: the tree and route facts that the Join/Prune,
//! TIB and RPF layers will supply, fixed per test so that Register and
//! Assert can be driven through every case. Shared by `pim_register` and
//! `pim_assert`.
#![allow(dead_code)] // each test crate uses a different part

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcr::pim::codec::{self, Message};
use mcr::pim::instance::TreeView;
use mcr::pim::{PimConfig, PimEvent, PimInput, PimInstance, PimInterfaceConfig, StaticRp};
use mcr::proto::sim::{NodeId, Sim};
use mcr::proto::Rng;

pub const SEC: Duration = Duration::from_secs(1);

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// What a router's other layers would say, editable while a test runs.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// RPF interface per destination address.
    pub rpf: BTreeMap<Ipv4Addr, u32>,
    /// (preference, metric) of every route.
    pub metric: (u32, u32),
    /// (source, ifindex) pairs that are directly connected.
    pub connected: Vec<(Ipv4Addr, u32)>,
    pub spt_bit: bool,
    pub switch_to_spt: bool,
    pub olist_rpt: Vec<u32>,
    pub olist: Vec<u32>,
    /// Interfaces where CouldAssert(S,G,I) holds.
    pub could_assert_sg: Vec<u32>,
    /// Interfaces where CouldAssert(*,G,I) holds.
    pub could_assert_g: Vec<u32>,
    /// Interfaces where AssertTrackingDesired holds.
    pub tracking: Vec<u32>,
}

#[derive(Default)]
pub struct View(pub Mutex<Facts>);

impl View {
    pub fn set(&self, f: impl FnOnce(&mut Facts)) {
        f(&mut self.0.lock().unwrap());
    }
}

impl TreeView for View {
    fn rpf_interface(&self, addr: Ipv4Addr) -> Option<u32> {
        self.0.lock().unwrap().rpf.get(&addr).copied()
    }
    fn route_metric(&self, _: Ipv4Addr) -> (u32, u32) {
        self.0.lock().unwrap().metric
    }
    fn directly_connected(&self, source: Ipv4Addr, ifindex: u32) -> bool {
        self.0
            .lock()
            .unwrap()
            .connected
            .contains(&(source, ifindex))
    }
    fn spt_bit(&self, _: Ipv4Addr, _: Ipv4Addr) -> bool {
        self.0.lock().unwrap().spt_bit
    }
    fn switch_to_spt_desired(&self, _: Ipv4Addr, _: Ipv4Addr) -> bool {
        self.0.lock().unwrap().switch_to_spt
    }
    fn olist_rpt(&self, _: Ipv4Addr, _: Ipv4Addr) -> Vec<u32> {
        self.0.lock().unwrap().olist_rpt.clone()
    }
    fn olist(&self, _: Ipv4Addr, _: Ipv4Addr) -> Vec<u32> {
        self.0.lock().unwrap().olist.clone()
    }
    fn could_assert(&self, source: Option<Ipv4Addr>, _: Ipv4Addr, ifindex: u32) -> bool {
        let f = self.0.lock().unwrap();
        match source {
            Some(_) => f.could_assert_sg.contains(&ifindex),
            None => f.could_assert_g.contains(&ifindex),
        }
    }
    fn assert_tracking_desired(&self, _: Option<Ipv4Addr>, _: Ipv4Addr, ifindex: u32) -> bool {
        self.0.lock().unwrap().tracking.contains(&ifindex)
    }
}

/// PIM on `ifaces` (name, ifindex, DR priority) with these static RPs.
pub fn config(ifaces: &[(&str, u32)], rps: &[(&str, &str)]) -> PimConfig {
    PimConfig {
        enabled: true,
        interfaces: ifaces
            .iter()
            .map(|(name, prio)| PimInterfaceConfig {
                dr_priority: *prio,
                ..PimInterfaceConfig::named(name)
            })
            .collect(),
        static_rp: rps
            .iter()
            .map(|(g, rp)| StaticRp {
                group: g.parse().unwrap(),
                rp: ip(rp),
            })
            .collect(),
        ..PimConfig::default()
    }
}

/// Add a router with interfaces (lan, ifindex, address), configured and
/// up, with its own view.
pub fn router(
    sim: &mut Sim<PimInstance>,
    seed: u64,
    ifaces: &[(usize, u32, &str)],
    cfg: PimConfig,
) -> (NodeId, Arc<View>) {
    let mut core = PimInstance::new(Rng::new(seed));
    let view = Arc::new(View::default());
    core.set_tree_view(view.clone());
    let n = sim.add_node(core);
    sim.configure(n, cfg);
    for (lan, ifindex, addr) in ifaces {
        sim.attach(n, *lan, *ifindex, ip(addr));
        sim.input(
            n,
            PimInput::InterfaceUp {
                ifindex: *ifindex,
                name: format!("if{ifindex}"),
                addr: ip(addr),
            },
        );
    }
    (n, view)
}

/// A UDP packet from `src` to `dst` with a valid IPv4 header.
pub fn udp(src: &str, dst: &str, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let len = 28 + payload.len();
    let mut p = vec![0u8; 28];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = ttl;
    p[9] = 17;
    p[12..16].copy_from_slice(&ip(src).octets());
    p[16..20].copy_from_slice(&ip(dst).octets());
    let sum = mcr::wire::checksum(&p[..20]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p[20..22].copy_from_slice(&5000u16.to_be_bytes());
    p[22..24].copy_from_slice(&5001u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Every PIM message a node put on the wire, decoded, with its time.
pub fn sent_by(sim: &Sim<PimInstance>, node: NodeId) -> Vec<(Duration, Ipv4Addr, Message)> {
    sim.sent()
        .iter()
        .filter(|s| s.from == Some(node))
        .filter_map(|s| Some((s.at, s.dst, codec::decode(&s.payload).ok()?)))
        .collect()
}

/// The events one node raised, with their times.
pub fn events_of(sim: &Sim<PimInstance>, node: NodeId) -> Vec<(Duration, PimEvent)> {
    sim.events()
        .iter()
        .filter(|r| r.node == node)
        .map(|r| (r.at, r.event.clone()))
        .collect()
}
