//! Per-interface neighbor state as pure transitions over explicit times.
//!
//! Owns: the neighbor table of one interface and what a received Hello
//! does to it (RFC 7761 §4.3.1: new neighbor, refresh, generation-id
//! change, holdtime 0, holdtime 0xffff), DR election (§4.3.2, including
//! "priority is ignored when any neighbor omits it"), and the LAN delay
//! values derived from the neighbors' LAN Prune Delay options (§4.3.3),
//! which the Join/Prune layer will use for override and suppression.
//! Timers live in the instance; this module only says when things expire.
//! The downstream Join/Prune machines (§4.5.1, §4.5.2) are in
//! [`downstream`], (S,G,rpt) (§4.5.3) in [`rpt`], the upstream machines
//! (§4.5.4–§4.5.6) in [`upstream`].

pub mod assert;
pub mod downstream;
pub mod register;
pub mod rpt;
pub mod upstream;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::codec::{Hello, LanPruneDelay, HOLDTIME_INFINITE};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    pub addr: Ipv4Addr,
    /// Announced holdtime in seconds (0xffff: never expires).
    pub holdtime: u16,
    /// `None` when the neighbor's Hello omitted option 19, which switches
    /// the whole interface to address-only DR election.
    pub dr_priority: Option<u32>,
    pub generation_id: Option<u32>,
    pub lan_prune_delay: Option<LanPruneDelay>,
    pub secondary: Vec<Ipv4Addr>,
    pub up_since: Instant,
    /// When the neighbor times out; `None` for an infinite holdtime.
    pub expires: Option<Instant>,
}

/// What a Hello did to the table; the instance turns these into events,
/// timers and triggered Hellos.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HelloOutcome {
    /// A neighbor we did not know.
    New,
    /// A known neighbor with the same generation id.
    Refreshed,
    /// A known neighbor with a different generation id: it restarted and
    /// lost our state (§4.3.1), so it must hear from us soon.
    Restarted { old: u32, new: u32 },
    /// Holdtime 0: the neighbor is leaving; it is gone from the table.
    Goodbye,
    /// Holdtime 0 from someone we did not know: nothing to do.
    Ignored,
}

#[derive(Clone, Debug, Default)]
pub struct NeighborTable {
    neighbors: BTreeMap<Ipv4Addr, Neighbor>,
}

impl NeighborTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, addr: Ipv4Addr) -> Option<&Neighbor> {
        self.neighbors.get(&addr)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Neighbor> {
        self.neighbors.values()
    }

    pub fn len(&self) -> usize {
        self.neighbors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.neighbors.is_empty()
    }

    /// Whether `addr` is a neighbor's primary or secondary address: the
    /// Join/Prune layer accepts an upstream neighbor named either way.
    pub fn knows(&self, addr: Ipv4Addr) -> Option<&Neighbor> {
        self.neighbors
            .get(&addr)
            .or_else(|| self.iter().find(|n| n.secondary.contains(&addr)))
    }

    /// Apply a Hello from `src`. A Hello without the Holdtime option gets
    /// the default 105 s: §4.9.2 makes the option mandatory, but refusing
    /// the adjacency would punish the LAN for one peer's omission.
    pub fn on_hello(&mut self, now: Instant, src: Ipv4Addr, h: &Hello) -> HelloOutcome {
        let holdtime = h.holdtime.unwrap_or(105);
        if holdtime == 0 {
            return match self.neighbors.remove(&src) {
                Some(_) => HelloOutcome::Goodbye,
                None => HelloOutcome::Ignored,
            };
        }
        let expires =
            (holdtime != HOLDTIME_INFINITE).then(|| now + Duration::from_secs(u64::from(holdtime)));
        let mut fresh = Neighbor {
            addr: src,
            holdtime,
            dr_priority: h.dr_priority,
            generation_id: h.generation_id,
            lan_prune_delay: h.lan_prune_delay,
            secondary: h
                .address_list
                .iter()
                .copied()
                .filter(|a| *a != src)
                .collect(),
            up_since: now,
            expires,
        };
        match self.neighbors.get_mut(&src) {
            None => {
                self.neighbors.insert(src, fresh);
                HelloOutcome::New
            }
            Some(n) => {
                let outcome = match (n.generation_id, h.generation_id) {
                    (Some(old), Some(new)) if old != new => HelloOutcome::Restarted { old, new },
                    _ => HelloOutcome::Refreshed,
                };
                if outcome == HelloOutcome::Refreshed {
                    fresh.up_since = n.up_since;
                }
                *n = fresh;
                outcome
            }
        }
    }

    /// Remove a neighbor whose holdtime ran out. Returns it when it was
    /// really due: a Hello that arrived since has pushed `expires` on, and
    /// a stale timer must not drop a live neighbor.
    pub fn expire(&mut self, now: Instant, addr: Ipv4Addr) -> Option<Neighbor> {
        match self.neighbors.get(&addr)?.expires {
            Some(at) if at <= now => self.neighbors.remove(&addr),
            _ => None,
        }
    }

    pub fn clear(&mut self) -> Vec<Neighbor> {
        std::mem::take(&mut self.neighbors).into_values().collect()
    }
}

/// DR election of §4.3.2 among ourselves and the neighbors.
pub fn elect_dr(my_addr: Ipv4Addr, my_priority: u32, table: &NeighborTable) -> Ipv4Addr {
    let use_priority = table.iter().all(|n| n.dr_priority.is_some());
    let mut best = (my_priority, my_addr);
    for n in table.iter() {
        let cand = (n.dr_priority.unwrap_or(0), n.addr);
        let better = if use_priority {
            cand > best
        } else {
            cand.1 > best.1
        };
        if better {
            best = cand;
        }
    }
    best.1
}

/// The LAN delay values of §4.3.3, from our own settings and every
/// neighbor's LAN Prune Delay option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LanDelay {
    /// lan_delay_enabled: every neighbor sent the option.
    pub enabled: bool,
    pub propagation_delay: Duration,
    pub override_interval: Duration,
    /// Join suppression stays on unless every neighbor (and we) set T.
    pub suppression_enabled: bool,
}

pub fn lan_delay(
    table: &NeighborTable,
    my_propagation: Duration,
    my_override: Duration,
    my_tracking: bool,
) -> LanDelay {
    let enabled = table.iter().all(|n| n.lan_prune_delay.is_some());
    if !enabled {
        return LanDelay {
            enabled,
            propagation_delay: my_propagation,
            override_interval: my_override,
            suppression_enabled: true,
        };
    }
    let opts = || table.iter().filter_map(|n| n.lan_prune_delay);
    let ms = |v: u16| Duration::from_millis(u64::from(v));
    LanDelay {
        enabled,
        propagation_delay: opts()
            .map(|d| ms(d.propagation_delay_ms))
            .fold(my_propagation, Duration::max),
        override_interval: opts()
            .map(|d| ms(d.override_interval_ms))
            .fold(my_override, Duration::max),
        suppression_enabled: !(my_tracking && opts().all(|d| d.tracking)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn hello(holdtime: u16, prio: Option<u32>, gen: u32) -> Hello {
        Hello {
            holdtime: Some(holdtime),
            dr_priority: prio,
            generation_id: Some(gen),
            ..Hello::default()
        }
    }

    #[test]
    fn new_refresh_restart_goodbye() {
        let t0 = Instant::now();
        let mut t = NeighborTable::new();
        let a = ip("10.0.0.2");
        assert_eq!(
            t.on_hello(t0, a, &hello(105, Some(1), 7)),
            HelloOutcome::New
        );
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(
            t.on_hello(t1, a, &hello(105, Some(1), 7)),
            HelloOutcome::Refreshed
        );
        let n = t.get(a).unwrap();
        assert_eq!(n.up_since, t0, "a refresh keeps the uptime");
        assert_eq!(n.expires, Some(t1 + Duration::from_secs(105)));
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(
            t.on_hello(t2, a, &hello(105, Some(1), 8)),
            HelloOutcome::Restarted { old: 7, new: 8 }
        );
        assert_eq!(t.get(a).unwrap().up_since, t2);
        assert_eq!(
            t.on_hello(t2, a, &hello(0, Some(1), 8)),
            HelloOutcome::Goodbye
        );
        assert!(t.is_empty());
        assert_eq!(
            t.on_hello(t2, a, &hello(0, Some(1), 8)),
            HelloOutcome::Ignored
        );
    }

    #[test]
    fn expiry_only_when_due_and_infinite_never() {
        let t0 = Instant::now();
        let mut t = NeighborTable::new();
        let a = ip("10.0.0.2");
        let b = ip("10.0.0.3");
        t.on_hello(t0, a, &hello(10, Some(1), 1));
        t.on_hello(t0, b, &hello(HOLDTIME_INFINITE, Some(1), 1));
        assert_eq!(t.get(b).unwrap().expires, None);
        assert!(t.expire(t0 + Duration::from_secs(9), a).is_none());
        // A Hello at 5 s moved the deadline: the old one must not fire.
        t.on_hello(t0 + Duration::from_secs(5), a, &hello(10, Some(1), 1));
        assert!(t.expire(t0 + Duration::from_secs(10), a).is_none());
        assert!(t.expire(t0 + Duration::from_secs(15), a).is_some());
        assert!(t.expire(t0 + Duration::from_secs(99_999), b).is_none());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn dr_by_priority_then_address_and_address_only_when_one_omits_priority() {
        let t0 = Instant::now();
        let me = ip("10.0.0.5");
        let mut t = NeighborTable::new();
        assert_eq!(elect_dr(me, 1, &t), me, "alone we are DR");
        t.on_hello(t0, ip("10.0.0.9"), &hello(105, Some(1), 1));
        assert_eq!(
            elect_dr(me, 1, &t),
            ip("10.0.0.9"),
            "equal priority: highest address"
        );
        assert_eq!(elect_dr(me, 2, &t), me, "higher priority beats address");
        t.on_hello(t0, ip("10.0.0.1"), &hello(105, Some(200), 1));
        assert_eq!(elect_dr(me, 2, &t), ip("10.0.0.1"));
        // One neighbor without the option: priority is ignored for all.
        t.on_hello(t0, ip("10.0.0.3"), &hello(105, None, 1));
        assert_eq!(elect_dr(me, 1000, &t), ip("10.0.0.9"));
        t.on_hello(t0, ip("10.0.0.3"), &hello(0, None, 1));
        assert_eq!(elect_dr(me, 1000, &t), me);
    }

    #[test]
    fn lan_delay_takes_the_largest_values_and_needs_every_neighbor() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut t = NeighborTable::new();
        let with = |p: u16, o: u16, tr: bool| Hello {
            holdtime: Some(105),
            lan_prune_delay: Some(LanPruneDelay {
                tracking: tr,
                propagation_delay_ms: p,
                override_interval_ms: o,
            }),
            ..Hello::default()
        };
        t.on_hello(t0, ip("10.0.0.2"), &with(1000, 2000, true));
        t.on_hello(t0, ip("10.0.0.3"), &with(200, 3000, true));
        let d = lan_delay(&t, ms(500), ms(2500), true);
        assert!(d.enabled);
        assert_eq!(d.propagation_delay, ms(1000));
        assert_eq!(d.override_interval, ms(3000));
        assert!(!d.suppression_enabled, "everyone tracks: suppression off");
        assert!(lan_delay(&t, ms(500), ms(2500), false).suppression_enabled);
        t.on_hello(t0, ip("10.0.0.4"), &hello(105, Some(1), 1));
        let d = lan_delay(&t, ms(500), ms(2500), true);
        assert!(!d.enabled);
        assert_eq!(d.propagation_delay, ms(500));
        assert!(d.suppression_enabled);
    }

    #[test]
    fn secondary_addresses_identify_the_neighbor() {
        let t0 = Instant::now();
        let mut t = NeighborTable::new();
        let h = Hello {
            holdtime: Some(105),
            address_list: vec![ip("192.0.2.7"), ip("10.0.0.2")],
            ..Hello::default()
        };
        t.on_hello(t0, ip("10.0.0.2"), &h);
        assert_eq!(
            t.get(ip("10.0.0.2")).unwrap().secondary,
            vec![ip("192.0.2.7")]
        );
        assert_eq!(
            t.knows(ip("192.0.2.7")).map(|n| n.addr),
            Some(ip("10.0.0.2"))
        );
        assert!(t.knows(ip("192.0.2.8")).is_none());
    }
}
