//! The PIM-SM instance: a sans-I/O [`Protocol`] that runs the neighbor
//! layer on every PIM interface.
//!
//! Owns: which interfaces run PIM (configured by name ∩ reported up by the
//! shell with an address), each one's generation id, Hello timer,
//! neighbor table, DR and counters; the events the daemon sees (neighbor
//! up/down/restart, DR change); the snapshots behind `mcrctl pim
//! neighbors` and `pim interfaces`. RFC 7761 §4.3.1 (Hello timing,
//! triggered Hellos, goodbye Hellos, generation ids), §4.3.2 (DR
//! election, re-run on every neighbor change), §4.9 (checksum, version
//! and format checks on input, through `codec`), and the downstream
//! (*,G)/(S,G) Join/Prune machines of §4.5.1/§4.5.2 for Join/Prunes that
//! name us as upstream neighbor (timers and PruneEcho here, transitions in
//! `state::downstream`). The upstream half (trees toward the RP and the
//! sources, RPF, local receivers, routes for the RIB, SPT switchover) is
//! in `tib` and `upstream`. Register/Register-Stop at the DR and the RP
//! (§4.4) and Assert (§4.6) are in `register` and `assert`, the tree facts
//! they ask for (from the TIB and RPF cache) in `facts`, the public input,
//! event and snapshot types in `types`; which groups the next `reconcile`
//! visits in `dirty`. Bootstrap and C-RP messages are
//! decoded and counted only.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::codec::{self, DecodeError, Hello, LanPruneDelay, Message, ALL_PIM_ROUTERS};
use super::config::{PimConfig, PimInterfaceConfig};
use super::state::downstream::{Downstream, TreeKey};
use super::state::rpt::SgKey;
use super::state::{elect_dr, lan_delay, HelloOutcome, LanDelay, NeighborTable};
use crate::proto::{Protocol, Rng, Timers, Transmit};

mod dirty;
#[cfg(test)]
mod incremental_tests;
mod join_prune;
#[cfg(test)]
mod reconcile_bench;
mod tib;
mod upstream;

pub use tib::{is_ssm, PimRouteChange, RpfResult};
pub use upstream::{RpSnapshot, UpstreamSnapshot, KEEPALIVE_PERIOD};
// Register and Assert (RFC 7761 §4.4, §4.6).
mod assert;
mod facts;
mod register;
mod rp_register;
mod types;
pub use assert::AssertSnapshot;
use register::RegisterAssert as RegAssertState;
pub use register::{Decapsulated, RegisterAssertCounters, RegisterSnapshot, TreeView};
pub use rp_register::{
    RegisterReport, RpRegisterSnapshot, RpRegisterState, REGISTER_STOP_INTERVAL,
};
pub use types::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Hello(u32),
    Neighbor(u32, Ipv4Addr),
    Expiry(u32, TreeKey),
    PrunePending(u32, TreeKey),
    JoinTimer(TreeKey),
    Keepalive(TreeKey),
    RptExpiry(u32, SgKey),
    RptPrunePending(u32, SgKey),
    /// §4.5.7 Override Timer of (S,G,rpt) in NotPruned.
    RptOverride(SgKey),
}

impl TimerKey {
    /// The interface a timer belongs to; `None` for per-tree timers.
    fn ifindex(&self) -> Option<u32> {
        match self {
            TimerKey::Hello(i)
            | TimerKey::Neighbor(i, _)
            | TimerKey::Expiry(i, _)
            | TimerKey::PrunePending(i, _)
            | TimerKey::RptExpiry(i, _)
            | TimerKey::RptPrunePending(i, _) => Some(*i),
            TimerKey::JoinTimer(_) | TimerKey::Keepalive(_) | TimerKey::RptOverride(_) => None,
        }
    }
}

struct Iface {
    name: String,
    addr: Ipv4Addr,
    cfg: PimInterfaceConfig,
    gen_id: u32,
    neighbors: NeighborTable,
    dr: Ipv4Addr,
    counters: Counters,
    downstream: Downstream,
}

impl Iface {
    /// This interface's LAN delays (§4.3.3) from its settings and its
    /// neighbors' LAN Prune Delay options; we never ask to disable Join
    /// suppression (no T bit), so it stays on.
    fn lan_delay(&self) -> LanDelay {
        lan_delay(
            &self.neighbors,
            self.cfg.propagation_delay,
            self.cfg.override_interval,
            false,
        )
    }
}

pub struct PimInstance {
    config: PimConfig,
    rng: Rng,
    /// Every interface the shell reported up: name and primary address.
    links: BTreeMap<u32, (String, Ipv4Addr)>,
    /// Secondary IPv4 addresses of those interfaces: ours too, and listed
    /// in the Hello Address List option (§4.3.1).
    secondary: BTreeMap<u32, Vec<Ipv4Addr>>,
    /// The subset running PIM.
    ifaces: BTreeMap<u32, Iface>,
    timers: Timers<TimerKey>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<PimEvent>,
    /// Upstream state, local receivers, RPF cache and routes (`tib`).
    tib: tib::Tib,
    /// Packets on interfaces without PIM: dropped before decoding.
    not_enabled: u64,
    rejected_configs: u64,
    /// Register and Assert state (`instance/register.rs`, `instance/assert.rs`).
    ra: RegAssertState,
    /// What the next `reconcile` must visit (`instance/dirty.rs`).
    dirty: dirty::Dirty,
}

impl PimInstance {
    /// A core with PIM disabled; `handle_config` turns it on.
    pub fn new(rng: Rng) -> Self {
        PimInstance {
            config: PimConfig::default(),
            rng,
            links: BTreeMap::new(),
            secondary: BTreeMap::new(),
            ifaces: BTreeMap::new(),
            timers: Timers::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            tib: tib::Tib::default(),
            not_enabled: 0,
            rejected_configs: 0,
            ra: RegAssertState::default(),
            dirty: dirty::Dirty::new(),
        }
    }

    pub fn config(&self) -> &PimConfig {
        &self.config
    }

    /// Packets received on interfaces where PIM is not running.
    pub fn not_enabled_drops(&self) -> u64 {
        self.not_enabled
    }

    /// Configurations refused by `handle_config` because they did not
    /// validate (the shell validates first; this is the core's guard).
    pub fn rejected_configs(&self) -> u64 {
        self.rejected_configs
    }

    pub fn counters(&self, ifindex: u32) -> Option<Counters> {
        self.ifaces.get(&ifindex).map(|i| i.counters)
    }

    /// The DR of a PIM interface.
    pub fn dr(&self, ifindex: u32) -> Option<Ipv4Addr> {
        self.ifaces.get(&ifindex).map(|i| i.dr)
    }

    pub fn generation_id(&self, ifindex: u32) -> Option<u32> {
        self.ifaces.get(&ifindex).map(|i| i.gen_id)
    }

    pub fn neighbors(&self, now: Instant) -> Vec<NeighborSnapshot> {
        let mut out = Vec::new();
        for (&ifindex, i) in &self.ifaces {
            for n in i.neighbors.iter() {
                out.push(NeighborSnapshot {
                    interface: i.name.clone(),
                    ifindex,
                    address: n.addr,
                    dr_priority: n.dr_priority,
                    is_dr: i.dr == n.addr,
                    holdtime_secs: n.holdtime,
                    expires_in_ms: n.expires.map(|e| millis(e.saturating_duration_since(now))),
                    generation_id: n.generation_id,
                    uptime_secs: now.saturating_duration_since(n.up_since).as_secs(),
                    lan_prune_delay: n.lan_prune_delay,
                    secondary_addresses: n.secondary.clone(),
                });
            }
        }
        out
    }

    pub fn interfaces(&self, now: Instant) -> Vec<InterfaceSnapshot> {
        self.ifaces
            .iter()
            .map(|(&ifindex, i)| InterfaceSnapshot {
                interface: i.name.clone(),
                ifindex,
                address: i.addr,
                dr: i.dr,
                we_are_dr: i.dr == i.addr,
                dr_priority: i.cfg.dr_priority,
                hello_interval_secs: i.cfg.hello_interval.as_secs(),
                holdtime_secs: i.cfg.holdtime_secs(),
                generation_id: i.gen_id,
                next_hello_in_ms: self
                    .timers
                    .get(&TimerKey::Hello(ifindex))
                    .map(|t| millis(t.saturating_duration_since(now))),
                neighbors: i.neighbors.len(),
                counters: i.counters,
            })
            .collect()
    }

    /// Start PIM on `ifindex` if it is up and configured and not running.
    fn activate(&mut self, now: Instant, ifindex: u32) {
        if !self.config.enabled || self.ifaces.contains_key(&ifindex) {
            return;
        }
        let Some((name, addr)) = self.links.get(&ifindex).cloned() else {
            return;
        };
        let Some(cfg) = self.config.interface(&name).cloned() else {
            return;
        };
        // §4.3.1: the first Hello goes out after a random delay up to
        // Triggered_Hello_Delay, so routers booting together do not send
        // in lockstep.
        let first = now + self.rng.jitter(cfg.triggered_hello_delay);
        self.timers.set(TimerKey::Hello(ifindex), first);
        let gen_id = self.rng.next_u32();
        self.touch_all();
        self.ifaces.insert(
            ifindex,
            Iface {
                name: name.clone(),
                addr,
                cfg,
                gen_id,
                neighbors: NeighborTable::new(),
                dr: addr,
                counters: Counters::default(),
                downstream: Downstream::new(),
            },
        );
        self.events.push_back(PimEvent::DrChanged {
            ifindex,
            interface: name,
            old: None,
            new: addr,
            we_are_dr: true,
        });
    }

    /// Stop PIM on `ifindex`, saying goodbye first when the link still
    /// carries packets.
    fn deactivate(&mut self, ifindex: u32, reason: DownReason, goodbye: bool) {
        let Some(mut ifc) = self.ifaces.remove(&ifindex) else {
            return;
        };
        self.touch_all();
        if goodbye {
            let t = hello_transmit(ifindex, &ifc, 0, self.secondaries(ifindex));
            ifc.counters.hello_tx += 1;
            self.transmits.push_back(t);
        }
        self.timers.retain(|k| k.ifindex() != Some(ifindex));
        self.tib.rpt_down.remove(&ifindex);
        self.assert_interface_gone(ifindex);
        for key in ifc.downstream.clear() {
            self.events.push_back(PimEvent::DownstreamLeave {
                ifindex,
                interface: ifc.name.clone(),
                source: key.source,
                group: key.group,
                reason: LeaveReason::InterfaceGone,
            });
        }
        for n in ifc.neighbors.clear() {
            self.events.push_back(PimEvent::NeighborDown {
                ifindex,
                interface: ifc.name.clone(),
                neighbor: n.addr,
                reason,
            });
        }
    }

    /// Bring the Hello timer forward to a random point within
    /// Triggered_Hello_Delay, unless it already fires sooner.
    fn trigger_hello(&mut self, now: Instant, ifindex: u32) {
        let Some(ifc) = self.ifaces.get(&ifindex) else {
            return;
        };
        let at = now + self.rng.jitter(ifc.cfg.triggered_hello_delay);
        self.timers.set_min(TimerKey::Hello(ifindex), at);
    }

    pub(super) fn send_hello(&mut self, now: Instant, ifindex: u32) {
        let Some(ifc) = self.ifaces.get_mut(&ifindex) else {
            return;
        };
        let secondary = self.secondary.get(&ifindex).map_or(&[][..], Vec::as_slice);
        let t = hello_transmit(ifindex, ifc, ifc.cfg.holdtime_secs(), secondary);
        ifc.counters.hello_tx += 1;
        self.transmits.push_back(t);
        let next = now + ifc.cfg.hello_interval;
        self.timers.set(TimerKey::Hello(ifindex), next);
    }

    /// The secondary addresses of `ifindex` (§4.3.1 Address List).
    fn secondaries(&self, ifindex: u32) -> &[Ipv4Addr] {
        self.secondary.get(&ifindex).map_or(&[], Vec::as_slice)
    }

    /// `a` is one of our addresses on `ifindex`, primary or secondary: a
    /// Join/Prune naming it as upstream neighbor is for us.
    pub(super) fn is_iface_address(&self, ifindex: u32, a: Ipv4Addr) -> bool {
        self.links.get(&ifindex).is_some_and(|(_, p)| *p == a)
            || self.secondaries(ifindex).contains(&a)
    }

    /// Re-run §4.3.2 after anything that can change the result.
    fn elect(&mut self, ifindex: u32) {
        let Some(ifc) = self.ifaces.get_mut(&ifindex) else {
            return;
        };
        let dr = elect_dr(ifc.addr, ifc.cfg.dr_priority, &ifc.neighbors);
        if dr != ifc.dr {
            self.events.push_back(PimEvent::DrChanged {
                ifindex,
                interface: ifc.name.clone(),
                old: Some(ifc.dr),
                new: dr,
                we_are_dr: dr == ifc.addr,
            });
            ifc.dr = dr;
            self.touch_all();
            self.register_dr_changed(ifindex);
        }
    }

    fn on_hello(&mut self, now: Instant, ifindex: u32, src: Ipv4Addr, h: &Hello) {
        let Some(ifc) = self.ifaces.get_mut(&ifindex) else {
            return;
        };
        let before = ifc.neighbors.get(src).cloned();
        let outcome = ifc.neighbors.on_hello(now, src, h);
        // RPF neighbors, secondary addresses and LAN delays come from the
        // table; a refresh that only moves the expiry changes no tree.
        let same = |n: &crate::pim::state::Neighbor| {
            let mut n = n.clone();
            n.expires = None;
            n.up_since = now;
            n
        };
        if before.as_ref().map(same) != ifc.neighbors.get(src).map(same) {
            self.touch_all();
        }
        let Some(ifc) = self.ifaces.get_mut(&ifindex) else {
            return;
        };
        let key = TimerKey::Neighbor(ifindex, src);
        match ifc.neighbors.get(src).map(|n| n.expires) {
            Some(Some(at)) => self.timers.set(key, at),
            _ => {
                self.timers.cancel(&key);
            }
        }
        let interface = ifc.name.clone();
        // An assert loser forgets a winner that left or restarted (§4.6).
        let gone = matches!(
            outcome,
            HelloOutcome::Restarted { .. } | HelloOutcome::Goodbye
        );
        match outcome {
            HelloOutcome::New => {
                self.events.push_back(PimEvent::NeighborUp {
                    ifindex,
                    interface,
                    neighbor: src,
                });
                // §4.3.1: a new neighbor learns of us without waiting up
                // to a whole Hello period.
                self.trigger_hello(now, ifindex);
            }
            HelloOutcome::Restarted { old, new } => {
                self.events.push_back(PimEvent::NeighborRestarted {
                    ifindex,
                    interface,
                    neighbor: src,
                    old_generation_id: old,
                    new_generation_id: new,
                });
                // It lost its neighbor table: until it hears from us it
                // ignores what we send it.
                self.trigger_hello(now, ifindex);
                self.rpf_neighbor_restarted(now, ifindex, src);
            }
            HelloOutcome::Goodbye => self.events.push_back(PimEvent::NeighborDown {
                ifindex,
                interface,
                neighbor: src,
                reason: DownReason::Goodbye,
            }),
            HelloOutcome::Refreshed | HelloOutcome::Ignored => {}
        }
        self.elect(ifindex);
        if gone {
            self.assert_neighbor_gone(ifindex, src);
        }
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

fn hello_transmit(ifindex: u32, ifc: &Iface, holdtime: u16, secondary: &[Ipv4Addr]) -> Transmit {
    let hello = Hello {
        holdtime: Some(holdtime),
        lan_prune_delay: Some(LanPruneDelay {
            // No explicit tracking yet: the T bit stays clear, which keeps
            // join suppression on for the whole LAN (§4.3.3).
            tracking: false,
            propagation_delay_ms: millis(ifc.cfg.propagation_delay).min(0x7fff) as u16,
            override_interval_ms: millis(ifc.cfg.override_interval).min(0xffff) as u16,
        }),
        dr_priority: Some(ifc.cfg.dr_priority),
        generation_id: Some(ifc.gen_id),
        // §4.3.1: secondary addresses, so that neighbors recognise a Join
        // or an RPF next hop naming one of them as us.
        address_list: secondary.to_vec(),
        unknown: Vec::new(),
    };
    Transmit {
        ifindex,
        src: Some(ifc.addr),
        dst: ALL_PIM_ROUTERS,
        ttl: 1,
        router_alert: false,
        payload: codec::encode(&Message::Hello(hello)),
    }
}

impl Protocol for PimInstance {
    type Config = PimConfig;
    type Input = PimInput;
    type Output = PimEvent;

    fn handle_packet(
        &mut self,
        now: Instant,
        ifindex: u32,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: &[u8],
    ) {
        let Some(primary) = self.ifaces.get(&ifindex).map(|i| i.addr) else {
            self.not_enabled += 1;
            return;
        };
        if src == primary || self.secondaries(ifindex).contains(&src) {
            // Our own multicast looped back by the kernel.
            return;
        }
        let Some(ifc) = self.ifaces.get_mut(&ifindex) else {
            return;
        };
        let c = &mut ifc.counters;
        let msg = match codec::decode(payload) {
            Ok(m) => m,
            Err(e) => {
                match e {
                    DecodeError::BadChecksum => c.checksum_errors += 1,
                    DecodeError::WrongVersion(_) => c.wrong_version += 1,
                    DecodeError::UnknownType(_) => c.unknown_type += 1,
                    DecodeError::Truncated
                    | DecodeError::BadAddress
                    | DecodeError::BadOption(_)
                    | DecodeError::TrailingBytes => c.malformed += 1,
                }
                return;
            }
        };
        match msg {
            Message::Hello(h) => {
                // §4.9: Hellos are link-local to ALL-PIM-ROUTERS from a
                // unicast source; anything else is not a neighbor.
                if dst != ALL_PIM_ROUTERS || src.is_multicast() || src.is_unspecified() {
                    c.malformed += 1;
                    return;
                }
                c.hello_rx += 1;
                self.on_hello(now, ifindex, src, &h);
            }
            Message::JoinPrune(jp) => {
                c.join_prune_rx += 1;
                self.assert_on_join(ifindex, &jp);
                self.on_join_prune(now, ifindex, src, &jp);
            }
            Message::Register(r) => {
                c.register_rx += 1;
                self.on_register(now, ifindex, src, dst, &r);
            }
            Message::RegisterStop(rs) => {
                c.register_stop_rx += 1;
                self.on_register_stop(now, &rs);
            }
            Message::Assert(a) => {
                c.assert_rx += 1;
                self.on_assert(now, ifindex, src, &a);
            }
            Message::Bootstrap(_) => c.bootstrap_rx += 1,
            Message::CandRpAdv(_) => c.cand_rp_adv_rx += 1,
        }
        self.reconcile(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.ext_timeout(now); // Register/Assert timers
        while let Some(key) = self.timers.pop_due(now) {
            match key {
                TimerKey::Hello(ifindex) => self.send_hello(now, ifindex),
                TimerKey::Neighbor(ifindex, addr) => {
                    let Some(ifc) = self.ifaces.get_mut(&ifindex) else {
                        continue;
                    };
                    if ifc.neighbors.expire(now, addr).is_some() {
                        self.touch_all();
                        let Some(ifc) = self.ifaces.get(&ifindex) else {
                            continue;
                        };
                        self.events.push_back(PimEvent::NeighborDown {
                            ifindex,
                            interface: ifc.name.clone(),
                            neighbor: addr,
                            reason: DownReason::Expired,
                        });
                        self.elect(ifindex);
                        self.assert_neighbor_gone(ifindex, addr);
                    }
                }
                TimerKey::Expiry(ifindex, key) => {
                    let Some(ifc) = self.ifaces.get_mut(&ifindex) else {
                        continue;
                    };
                    if ifc.downstream.expiry_expired(now, key).is_some() {
                        self.touch(key);
                        self.timers.cancel(&TimerKey::PrunePending(ifindex, key));
                        self.leave(ifindex, key, LeaveReason::Expired);
                    }
                }
                TimerKey::PrunePending(ifindex, key) => {
                    self.touch(key);
                    self.prune_pending_expired(now, ifindex, key)
                }
                TimerKey::JoinTimer(key) => {
                    self.touch(key);
                    self.join_timer_expired(now, key)
                }
                TimerKey::Keepalive(key) => {
                    self.touch(key);
                    self.keepalive_expired(now, key)
                }
                TimerKey::RptOverride(key) => self.rpt_override_expired(key),
                TimerKey::RptExpiry(ifindex, key) => {
                    self.touch(TreeKey::s_g(key.0, key.1));
                    if let Some(r) = self.tib.rpt_down.get_mut(&ifindex) {
                        if r.expiry_expired(now, key) {
                            self.timers.cancel(&TimerKey::RptPrunePending(ifindex, key));
                        }
                    }
                }
                TimerKey::RptPrunePending(ifindex, key) => {
                    self.touch(TreeKey::s_g(key.0, key.1));
                    if let Some(r) = self.tib.rpt_down.get_mut(&ifindex) {
                        r.prune_pending_expired(now, key);
                    }
                }
            }
        }
        self.reconcile(now);
    }

    /// Apply a new configuration as a diff: interfaces that stay keep
    /// their neighbors and generation id.
    fn handle_config(&mut self, now: Instant, config: PimConfig) {
        if !config.validate().is_empty() {
            // A zero Hello period would spin the timer loop; the shell
            // validates first, so this only guards against its bugs.
            self.rejected_configs += 1;
            return;
        }
        self.config = config;
        self.touch_all();
        let active: Vec<u32> = self.ifaces.keys().copied().collect();
        for ifindex in active {
            let name = self.ifaces[&ifindex].name.clone();
            let new_cfg = if self.config.enabled {
                self.config.interface(&name).cloned()
            } else {
                None
            };
            let Some(new_cfg) = new_cfg else {
                self.deactivate(ifindex, DownReason::PimDisabled, true);
                continue;
            };
            let Some(ifc) = self.ifaces.get_mut(&ifindex) else {
                continue;
            };
            if ifc.cfg != new_cfg {
                ifc.cfg = new_cfg;
                // Neighbors must hear the new priority or holdtime soon,
                // not a whole old period later.
                self.trigger_hello(now, ifindex);
                self.elect(ifindex);
            }
        }
        let links: Vec<u32> = self.links.keys().copied().collect();
        for ifindex in links {
            self.activate(now, ifindex);
        }
        self.reconcile(now);
    }

    fn handle_event(&mut self, now: Instant, event: PimInput) {
        match event {
            PimInput::InterfaceUp {
                ifindex,
                name,
                addr,
            } => {
                // Our addresses and the interfaces without PIM count in
                // every tree (RPF targets that are us, I_am_DR).
                self.touch_all();
                let changed = self
                    .ifaces
                    .get(&ifindex)
                    .is_some_and(|i| i.name != name || i.addr != addr);
                if changed {
                    // §4.3.1: a goodbye before the primary address changes,
                    // then a fresh start (new generation id) on the new one.
                    self.deactivate(ifindex, DownReason::PimDisabled, true);
                }
                self.links.insert(ifindex, (name, addr));
                self.activate(now, ifindex);
            }
            PimInput::InterfaceAddresses { ifindex, secondary } => {
                let mut secondary = secondary;
                secondary.sort();
                secondary.dedup();
                let primary = self.links.get(&ifindex).map(|l| l.1);
                secondary.retain(|a| Some(*a) != primary && !a.is_unspecified());
                if self.secondaries(ifindex) != secondary.as_slice() {
                    if secondary.is_empty() {
                        self.secondary.remove(&ifindex);
                    } else {
                        self.secondary.insert(ifindex, secondary);
                    }
                    // Neighbors learn the new list with the next Hello,
                    // brought forward as for any change they must hear.
                    self.trigger_hello(now, ifindex);
                    self.touch_all();
                }
            }
            PimInput::InterfaceDown { ifindex } => {
                self.touch_all();
                self.links.remove(&ifindex);
                self.secondary.remove(&ifindex);
                self.deactivate(ifindex, DownReason::InterfaceDown, false);
            }
            PimInput::Shutdown => {
                self.touch_all();
                let active: Vec<u32> = self.ifaces.keys().copied().collect();
                for ifindex in active {
                    self.deactivate(ifindex, DownReason::PimDisabled, true);
                }
                self.config.enabled = false;
            }
            PimInput::LocalMembers { ifindex, members } => {
                let new: BTreeSet<TreeKey> = members.into_iter().collect();
                let old = self.tib.local.insert(ifindex, new.clone());
                for k in old.unwrap_or_default().symmetric_difference(&new) {
                    self.touch_local(ifindex, *k);
                }
            }
            PimInput::LocalExcludes { ifindex, excludes } => {
                let new: BTreeSet<SgKey> = excludes.into_iter().collect();
                let old = if new.is_empty() {
                    self.tib.local_exclude.remove(&ifindex)
                } else {
                    self.tib.local_exclude.insert(ifindex, new.clone())
                };
                for &(s, g) in old.unwrap_or_default().symmetric_difference(&new) {
                    self.touch(TreeKey::s_g(s, g));
                }
            }
            PimInput::LocalJoin { ifindex, key } => {
                if self.tib.local.entry(ifindex).or_default().insert(key) {
                    self.touch_local(ifindex, key);
                }
            }
            PimInput::LocalLeave { ifindex, key } => {
                if let Some(l) = self.tib.local.get_mut(&ifindex) {
                    if l.remove(&key) {
                        self.touch_local(ifindex, key);
                    }
                }
            }
            PimInput::Rpf { target, result } => {
                self.set_rpf(target, result);
                self.data_rpf_answered(now, target);
            }
            PimInput::RoutesChanged => self.refresh_rpf(),
            PimInput::Data {
                ifindex,
                source,
                group,
            } => {
                self.on_data_arrived(now, ifindex, source, group);
                self.on_data(now, ifindex, source, group);
            }
            PimInput::RegisterData { ifindex, packet } => {
                self.on_register_data(now, ifindex, &packet)
            }
        }
        self.reconcile(now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    fn poll_event(&mut self) -> Option<PimEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let ext = self.ext_poll_timeout(); // Register/Assert timers
        match (self.timers.next(), ext) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
