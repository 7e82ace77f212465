//! Several PIM routers on several simulated LANs (`mcr::proto::sim`), each
//! with a static unicast routing table that answers its core's RPF
//! questions at once, as the daemon's `route_get` would. Route changes
//! for the RIB come out as events beside the PIM events.
#![allow(dead_code)] // each test crate uses a different part

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use mcr::pim::codec::{self, JoinPrune, Message};
use mcr::pim::config::GroupPrefix;
use mcr::pim::instance::{PimRouteChange, RpfResult};
use mcr::pim::state::downstream::TreeKey;
use mcr::pim::{PimConfig, PimEvent, PimInput, PimInstance, PimInterfaceConfig, StaticRp};
use mcr::proto::sim::{LanId, NodeId, Sim};
use mcr::proto::{Protocol, Rng};
use std::collections::BTreeSet;

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[derive(Clone, Debug, PartialEq)]
pub enum Out {
    Pim(PimEvent),
    Route(PimRouteChange),
}

/// A unicast route: prefix, length, and where it leads.
#[derive(Clone, Copy, Debug)]
pub struct UnicastRoute {
    pub prefix: Ipv4Addr,
    pub len: u8,
    pub via: RpfResult,
}

/// A PIM core with its own routing table.
pub struct Routed {
    pub pim: PimInstance,
    pub table: Vec<UnicastRoute>,
    /// RPF questions asked so far (to check the core asks, and again on a
    /// route change).
    pub asked: Vec<Ipv4Addr>,
    out: VecDeque<Out>,
}

impl Routed {
    fn lookup(&self, a: Ipv4Addr) -> Option<RpfResult> {
        self.table
            .iter()
            .filter(|r| {
                let m = if r.len == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(r.len))
                };
                u32::from(a) & m == u32::from(r.prefix) & m
            })
            .max_by_key(|r| r.len)
            .map(|r| r.via)
    }

    /// Answer every RPF question, then collect route changes.
    fn settle(&mut self, now: Instant) {
        loop {
            let mut asked = Vec::new();
            while let Some(t) = self.pim.poll_rpf_request() {
                asked.push(t);
            }
            if asked.is_empty() {
                break;
            }
            for target in asked {
                self.asked.push(target);
                let result = self.lookup(target);
                self.pim.handle_event(now, PimInput::Rpf { target, result });
            }
        }
        while let Some(r) = self.pim.poll_route_change() {
            self.out.push_back(Out::Route(r));
        }
    }
}

impl Protocol for Routed {
    type Config = PimConfig;
    type Input = PimInput;
    type Output = Out;

    fn handle_packet(
        &mut self,
        now: Instant,
        ifindex: u32,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        p: &[u8],
    ) {
        self.pim.handle_packet(now, ifindex, src, dst, p);
        self.settle(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.pim.handle_timeout(now);
        self.settle(now);
    }

    fn handle_config(&mut self, now: Instant, config: PimConfig) {
        self.pim.handle_config(now, config);
        self.settle(now);
    }

    fn handle_event(&mut self, now: Instant, event: PimInput) {
        self.pim.handle_event(now, event);
        self.settle(now);
    }

    fn poll_transmit(&mut self) -> Option<mcr::proto::Transmit> {
        self.pim.poll_transmit()
    }

    fn poll_event(&mut self) -> Option<Out> {
        // Route changes were queued when they happened; PIM events are
        // drained first, which is fine for tests that look at either.
        self.pim
            .poll_event()
            .map(Out::Pim)
            .or_else(|| self.out.pop_front())
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.pim.poll_timeout()
    }
}

/// One interface of a router: LAN, ifindex, name, address, runs PIM.
pub struct If {
    pub lan: LanId,
    pub ifindex: u32,
    pub name: &'static str,
    pub addr: &'static str,
    pub pim: bool,
}

pub fn pim_if(lan: LanId, ifindex: u32, name: &'static str, addr: &'static str) -> If {
    If {
        lan,
        ifindex,
        name,
        addr,
        pim: true,
    }
}

pub fn host_if(lan: LanId, ifindex: u32, name: &'static str, addr: &'static str) -> If {
    If {
        pim: false,
        ..pim_if(lan, ifindex, name, addr)
    }
}

/// Route toward `prefix/len` out of `ifindex`, via `next_hop` (or on-link).
pub fn route(prefix: &str, len: u8, ifindex: u32, next_hop: Option<&str>) -> UnicastRoute {
    UnicastRoute {
        prefix: ip(prefix),
        len,
        via: RpfResult {
            ifindex,
            next_hop: next_hop.map(ip),
            metric_preference: 110,
            metric: 10,
        },
    }
}

pub fn rp_config(names: &[&str], rp: &str) -> PimConfig {
    PimConfig {
        enabled: true,
        interfaces: names.iter().map(|n| PimInterfaceConfig::named(n)).collect(),
        static_rp: vec![StaticRp {
            group: "224.0.0.0/4".parse::<GroupPrefix>().unwrap(),
            rp: ip(rp),
        }],
        ..PimConfig::default()
    }
}

/// Add a router to `sim` with these interfaces, RP and routing table.
pub fn add_router(
    sim: &mut Sim<Routed>,
    seed: u64,
    ifs: &[If],
    rp: &str,
    table: Vec<UnicastRoute>,
) -> NodeId {
    let now = sim.now();
    let mut pim = PimInstance::new(Rng::new(seed));
    let names: Vec<&str> = ifs.iter().filter(|i| i.pim).map(|i| i.name).collect();
    pim.handle_config(now, rp_config(&names, rp));
    for i in ifs {
        pim.handle_event(
            now,
            PimInput::InterfaceUp {
                ifindex: i.ifindex,
                name: i.name.into(),
                addr: ip(i.addr),
            },
        );
    }
    let node = sim.add_node(Routed {
        pim,
        table,
        asked: Vec::new(),
        out: VecDeque::new(),
    });
    for i in ifs {
        sim.attach(node, i.lan, i.ifindex, ip(i.addr));
    }
    node
}

/// Every Join/Prune `node` put on a LAN, with its time and LAN.
pub fn join_prunes(sim: &Sim<Routed>, node: NodeId) -> Vec<(Duration, LanId, JoinPrune)> {
    sim.sent()
        .iter()
        .filter(|s| s.from == Some(node))
        .filter_map(|s| match codec::decode(&s.payload) {
            Ok(Message::JoinPrune(jp)) => Some((s.at, s.lan, jp)),
            _ => None,
        })
        .collect()
}

/// Route changes `node` raised, with their times.
pub fn route_changes(sim: &Sim<Routed>, node: NodeId) -> Vec<(Duration, PimRouteChange)> {
    sim.events()
        .iter()
        .filter(|e| e.node == node)
        .filter_map(|e| match &e.event {
            Out::Route(r) => Some((e.at, r.clone())),
            Out::Pim(_) => None,
        })
        .collect()
}

pub fn pim_events(sim: &Sim<Routed>, node: NodeId) -> Vec<(Duration, PimEvent)> {
    sim.events()
        .iter()
        .filter(|e| e.node == node)
        .filter_map(|e| match &e.event {
            Out::Pim(p) => Some((e.at, p.clone())),
            Out::Route(_) => None,
        })
        .collect()
}

// Shared by the upstream and SPT tests: the group, the RP, what the
// routers sent, and a chain of three routers.

pub const SEC: Duration = Duration::from_secs(1);
pub const RP: &str = "10.0.1.1";

pub fn grp() -> Ipv4Addr {
    ip("239.1.1.1")
}

/// (*,G) Joins (WC+RPT) in a message, as (upstream neighbor, is_join).
pub fn star_entries(jp: &JoinPrune) -> Vec<bool> {
    let mut v = Vec::new();
    for g in jp.groups.iter().filter(|g| g.group.addr == grp()) {
        v.extend(g.joins.iter().filter(|e| e.wildcard).map(|_| true));
        v.extend(g.prunes.iter().filter(|e| e.wildcard).map(|_| false));
    }
    v
}

pub fn star_joins(sim: &Sim<Routed>, node: NodeId) -> Vec<(Duration, Ipv4Addr)> {
    join_prunes(sim, node)
        .into_iter()
        .filter(|(_, _, jp)| star_entries(jp).contains(&true))
        .map(|(at, _, jp)| (at, jp.upstream_neighbor))
        .collect()
}

pub fn star_prunes(sim: &Sim<Routed>, node: NodeId) -> Vec<(Duration, Ipv4Addr)> {
    join_prunes(sim, node)
        .into_iter()
        .filter(|(_, _, jp)| star_entries(jp).contains(&false))
        .map(|(at, _, jp)| (at, jp.upstream_neighbor))
        .collect()
}

pub fn star_route(upstream: u32, downstream: &[u32]) -> PimRouteChange {
    PimRouteChange::Add {
        source: None,
        group: grp(),
        upstream,
        downstream: downstream.iter().copied().collect::<BTreeSet<u32>>(),
    }
}

pub fn member() -> TreeKey {
    TreeKey::star_g(grp())
}

/// RP r0 —lan a— r1 —lan b— r2 —lan c (hosts).
pub struct Chain {
    pub sim: Sim<Routed>,
    pub r0: NodeId,
    pub r1: NodeId,
    pub r2: NodeId,
}

pub fn chain() -> Chain {
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

/// The entries of `jp` for `group` as (addr, wc, rpt, is_join).
pub fn entries(jp: &JoinPrune) -> Vec<(Ipv4Addr, bool, bool, bool)> {
    let mut v = Vec::new();
    for g in &jp.groups {
        v.extend(g.joins.iter().map(|e| (e.addr, e.wildcard, e.rpt, true)));
        v.extend(g.prunes.iter().map(|e| (e.addr, e.wildcard, e.rpt, false)));
    }
    v
}
