//! A LAN of PIM instances driven by hand on a virtual clock, shared by
//! the `pim_*` integration tests: every packet a router transmits is
//! delivered at once to every other router that is up. No sockets, no
//! sleeps.
#![allow(dead_code)] // each test crate uses a different part

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use mcr::pim::codec::{self, JoinPrune, Message, ALL_PIM_ROUTERS};
use mcr::pim::{PimConfig, PimEvent, PimInput, PimInstance, PimInterfaceConfig};
use mcr::proto::{Protocol, Rng};

pub const SEC: Duration = Duration::from_secs(1);

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub fn config(prio: u32) -> PimConfig {
    PimConfig {
        enabled: true,
        interfaces: vec![PimInterfaceConfig {
            dr_priority: prio,
            ..PimInterfaceConfig::named("lan0")
        }],
        ..PimConfig::default()
    }
}

pub struct Router {
    pub pim: PimInstance,
    pub addr: Ipv4Addr,
    pub ifindex: u32,
    /// A crashed router neither sends nor receives.
    pub up: bool,
    pub events: Vec<PimEvent>,
    /// (time, holdtime) of every Hello it sent.
    pub hellos: Vec<(Instant, u16)>,
    /// Every Join/Prune it sent.
    pub join_prunes: Vec<(Instant, JoinPrune)>,
}

pub struct Lan {
    pub t0: Instant,
    pub now: Instant,
    pub routers: Vec<Router>,
}

impl Lan {
    /// Routers with these addresses and DR priorities, all started at t0.
    pub fn new(members: &[(&str, u32)]) -> Lan {
        let t0 = Instant::now();
        let mut lan = Lan {
            t0,
            now: t0,
            routers: Vec::new(),
        };
        for (i, (addr, prio)) in members.iter().enumerate() {
            let r = lan.start(ip(addr), 10 + i as u32, *prio, i as u64);
            lan.routers.push(r);
        }
        lan.deliver();
        lan
    }

    pub fn start(&self, addr: Ipv4Addr, ifindex: u32, prio: u32, seed: u64) -> Router {
        let mut pim = PimInstance::new(Rng::new(seed));
        pim.handle_config(self.now, config(prio));
        pim.handle_event(
            self.now,
            PimInput::InterfaceUp {
                ifindex,
                name: "lan0".into(),
                addr,
            },
        );
        Router {
            pim,
            addr,
            ifindex,
            up: true,
            events: Vec::new(),
            hellos: Vec::new(),
            join_prunes: Vec::new(),
        }
    }

    /// Hand every queued packet to every other live router, until quiet.
    pub fn deliver(&mut self) {
        loop {
            let mut sent = Vec::new();
            for (i, r) in self.routers.iter_mut().enumerate() {
                while let Some(t) = r.pim.poll_transmit() {
                    assert_eq!(t.ifindex, r.ifindex);
                    assert_eq!(t.dst, ALL_PIM_ROUTERS);
                    assert_eq!(t.ttl, 1);
                    assert_eq!(t.src, Some(r.addr));
                    match codec::decode(&t.payload) {
                        Ok(Message::Hello(h)) => r.hellos.push((self.now, h.holdtime.unwrap_or(0))),
                        Ok(Message::JoinPrune(jp)) => r.join_prunes.push((self.now, jp)),
                        other => panic!("unexpected transmit {other:?}"),
                    }
                    if r.up {
                        sent.push((i, t));
                    }
                }
                while let Some(e) = r.pim.poll_event() {
                    r.events.push(e);
                }
            }
            if sent.is_empty() {
                return;
            }
            for (from, t) in sent {
                let src = self.routers[from].addr;
                for (j, r) in self.routers.iter_mut().enumerate() {
                    if j != from && r.up {
                        r.pim
                            .handle_packet(self.now, r.ifindex, src, t.dst, &t.payload);
                    }
                }
            }
        }
    }

    pub fn run_until(&mut self, at: Instant) {
        loop {
            let next = self
                .routers
                .iter()
                .filter(|r| r.up)
                .filter_map(|r| r.pim.poll_timeout())
                .min();
            match next {
                Some(t) if t <= at => {
                    self.now = self.now.max(t);
                    for r in self.routers.iter_mut().filter(|r| r.up) {
                        r.pim.handle_timeout(self.now);
                    }
                    self.deliver();
                }
                _ => break,
            }
        }
        self.now = at;
    }

    pub fn run_for(&mut self, d: Duration) {
        let at = self.now + d;
        self.run_until(at);
    }

    pub fn dr_seen_by(&self, i: usize) -> Ipv4Addr {
        let r = &self.routers[i];
        r.pim.dr(r.ifindex).unwrap()
    }

    pub fn all_agree_on_dr(&self) -> Ipv4Addr {
        let dr = self.dr_seen_by(0);
        // Routers that are down or have PIM off have no say.
        for (i, r) in self.routers.iter().enumerate().filter(|(_, r)| r.up) {
            if let Some(seen) = r.pim.dr(r.ifindex) {
                assert_eq!(seen, dr, "router {i} disagrees");
            }
        }
        dr
    }

    pub fn neighbors_of(&self, i: usize) -> Vec<Ipv4Addr> {
        let mut v: Vec<_> = self.routers[i]
            .pim
            .neighbors(self.now)
            .into_iter()
            .map(|n| n.address)
            .collect();
        v.sort();
        v
    }

    /// Inject a packet as if from a router outside the simulation.
    pub fn inject(&mut self, src: Ipv4Addr, payload: &[u8]) {
        for r in self.routers.iter_mut().filter(|r| r.up) {
            r.pim
                .handle_packet(self.now, r.ifindex, src, ALL_PIM_ROUTERS, payload);
        }
        self.deliver();
    }
}

pub fn has_event(r: &Router, pred: impl Fn(&PimEvent) -> bool) -> bool {
    r.events.iter().any(pred)
}

pub fn hex(text: &str) -> Vec<u8> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}
