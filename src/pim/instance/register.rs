//! The instance's side of Register (RFC 7761 §4.4): data from a directly
//! connected source at the first-hop DR (Keepalive Timer, CouldRegister,
//! encapsulation to the RP, Register-Stop Timer, null-Register probes),
//! and at the RP the checks and decisions of §4.4.2 (our address, RP(G),
//! inner header, Border bit, Register-Stop, decapsulated packets for the
//! shell to forward). Transitions are in `state::register`.
//!
//! Owns: [`TreeView`], the questions Register and Assert ask of the tree
//! information base and the unicast routes (olists, SPTbit, RPF, route
//! metrics), which other layers answer; the [`RegisterAssert`] state the
//! instance carries for both; [`Decapsulated`] packets for the shell; the
//! source addresses of unicast PIM (a Register from our address on the
//! interface toward the RP, a Register-Stop from the address the Register
//! was sent to); and, in `mtu`, packets too big for the register tunnel.

mod mtu;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use self::mtu::FragNeededLimiter;
use super::rp_register::{RegisterSeen, RpRecords, RpRegisterState};
use super::{millis, PimEvent, PimInstance, TimerKey};
use crate::pim::codec::{self, EncodedGroup, Message, Register, RegisterStop};
use crate::pim::state::assert::AssertEntry;
use crate::pim::state::downstream::TreeKey;
use crate::pim::state::register::{
    self as reg, DrAction, DrRegister, EncapError, RegisterState, RpFacts, KEEPALIVE_PERIOD,
    REGISTER_OVERHEAD,
};
use crate::proto::{Timers, Transmit};

/// IP TTL of unicast PIM messages (Register, Register-Stop): they may
/// cross several routers on the way to the RP or back to the DR.
const UNICAST_TTL: u8 = 64;
/// Largest Register on the wire when the shell has not said otherwise: an
/// Ethernet MTU.
const DEFAULT_REGISTER_MAX_LEN: usize = 1500;

/// Data reports kept while their source's route is asked for.
const MAX_AWAITING_RPF: usize = 4096;

/// What Register and Assert need to know about trees and routes that the
/// Join/Prune, TIB and RPF layers own (RFC 7761 §4.1, §4.5, §5). The shell
/// or those layers supply it through [`PimInstance::set_tree_view`].
pub trait TreeView: Send + Sync {
    /// RPF_interface(addr): the interface of the unicast route toward it.
    fn rpf_interface(&self, addr: Ipv4Addr) -> Option<u32>;
    /// MRIB.pref and MRIB.metric of the route toward `addr` (assert metrics).
    fn route_metric(&self, addr: Ipv4Addr) -> (u32, u32);
    /// DirectlyConnected(S) on `ifindex`: S is on one of its subnets.
    fn directly_connected(&self, source: Ipv4Addr, ifindex: u32) -> bool;
    /// SPTbit(S,G): (S,G) data arrives natively on the shortest-path tree.
    fn spt_bit(&self, source: Ipv4Addr, group: Ipv4Addr) -> bool;
    /// SwitchToSptDesired(S,G).
    fn switch_to_spt_desired(&self, source: Ipv4Addr, group: Ipv4Addr) -> bool;
    /// inherited_olist(S,G,rpt): where the RP sends decapsulated packets.
    fn olist_rpt(&self, source: Ipv4Addr, group: Ipv4Addr) -> Vec<u32>;
    /// inherited_olist(S,G).
    fn olist(&self, source: Ipv4Addr, group: Ipv4Addr) -> Vec<u32>;
    /// CouldAssert(S,G,I) (`source` given) or CouldAssert(*,G,I).
    fn could_assert(&self, source: Option<Ipv4Addr>, group: Ipv4Addr, ifindex: u32) -> bool;
    /// AssertTrackingDesired(S,G,I) or (*,G,I).
    fn assert_tracking_desired(
        &self,
        source: Option<Ipv4Addr>,
        group: Ipv4Addr,
        ifindex: u32,
    ) -> bool;
}

/// A packet the RP took out of a Register, for the shell to send in route
/// mode (source kept, TTL − 1) on each of `oifs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decapsulated {
    pub source: Ipv4Addr,
    pub group: Ipv4Addr,
    pub oifs: Vec<u32>,
    /// The inner IP packet, header included.
    pub packet: Vec<u8>,
}

/// Register and Assert counters (`mcrctl pim interfaces` shows the
/// per-interface receive counts; these are instance-wide).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterAssertCounters {
    pub register_tx: u64,
    pub null_register_tx: u64,
    pub register_stop_tx: u64,
    /// Register-Stops the RP held back: one had gone to that DR for that
    /// (S,G) less than a second before (`rp_register`).
    #[serde(default)]
    pub register_stop_suppressed: u64,
    /// Data packets too big for the register tunnel, DF clear: split
    /// into fragments, each registered (§4.4.1).
    #[serde(default)]
    pub register_fragmented: u64,
    /// Data packets too big for the register tunnel with DF set: not
    /// registered (also counted in `register_encap_failed`).
    #[serde(default)]
    pub register_too_big: u64,
    /// ICMP Fragmentation Needed messages sent to sources of those.
    #[serde(default)]
    pub frag_needed_tx: u64,
    /// Fragmentation Needed messages held back by the per-source limit.
    #[serde(default)]
    pub frag_needed_suppressed: u64,
    /// Data packets the DR could not register (malformed, TTL ≤ 1, too
    /// big with DF, no route to the RP).
    pub register_encap_failed: u64,
    /// Registers to an address that is not ours, or with a bad inner packet.
    pub register_dropped: u64,
    /// Registers for a group we are not RP of: answered with Register-Stop.
    pub register_not_rp: u64,
    pub decapsulated: u64,
    pub assert_tx: u64,
    pub assert_cancel_tx: u64,
    /// Asserts for a non-multicast group or range, or (S,G) asserts
    /// without a source.
    pub assert_dropped: u64,
}

/// One (S,G) as the first-hop DR sees it.
#[derive(Clone, Copy, Debug)]
pub(super) struct DrEntry {
    /// The interface S is on.
    pub(super) iif: u32,
    pub(super) machine: DrRegister,
    pub(super) rp: Option<Ipv4Addr>,
}

/// Timers of this layer, apart from the instance's per-interface ones so
/// that the two layers evolve without touching each other's keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum ExtTimer {
    /// Register-Stop Timer(S,G) at the DR.
    RegisterStop(TreeKey),
    /// Assert Timer of (S,G) or (*,G) on an interface.
    Assert(u32, TreeKey),
    /// The RP forgets its record of (S,G) from a DR (`rp_register`).
    RpRegister(TreeKey, Ipv4Addr),
}

/// Register and Assert state of an instance.
pub struct RegisterAssert {
    /// Facts pinned by a test instead of the TIB's (see `facts`).
    pub(super) view: Option<Arc<dyn TreeView>>,
    /// Data from sources whose route is not known yet: decided on again
    /// when the shell answers the RPF question (DirectlyConnected needs it).
    pub(super) awaiting_rpf: BTreeSet<(u32, Ipv4Addr, Ipv4Addr)>,
    pub(super) timers: Timers<ExtTimer>,
    pub(super) dr: BTreeMap<TreeKey, DrEntry>,
    /// PMBR(S,G) at the RP, for (S,G) registered with the Border bit.
    pub(super) pmbr: BTreeMap<TreeKey, Ipv4Addr>,
    /// The RP's record of the Registers it receives (`rp_register`).
    pub(super) rp: RpRecords,
    pub(super) asserts: BTreeMap<(u32, TreeKey), AssertEntry>,
    /// The source of the packet that triggered each (*,G) assert: (*,G)
    /// Asserts carry it (§4.6.3).
    pub(super) assert_source: BTreeMap<(u32, Ipv4Addr), Ipv4Addr>,
    pub(super) decapsulated: VecDeque<Decapsulated>,
    pub(super) counters: RegisterAssertCounters,
    pub(super) register_max_len: usize,
    /// MTU of each interface, for the Registers that leave by it.
    pub(super) link_mtu: BTreeMap<u32, usize>,
    /// ICMP Fragmentation Needed messages for the shell: (source, message).
    pub(super) icmp: VecDeque<(Ipv4Addr, Vec<u8>)>,
    pub(super) frag_needed_limit: FragNeededLimiter,
}

impl Default for RegisterAssert {
    fn default() -> Self {
        RegisterAssert {
            view: None,
            awaiting_rpf: BTreeSet::new(),
            timers: Timers::new(),
            dr: BTreeMap::new(),
            pmbr: BTreeMap::new(),
            rp: RpRecords::new(),
            asserts: BTreeMap::new(),
            assert_source: BTreeMap::new(),
            decapsulated: VecDeque::new(),
            counters: RegisterAssertCounters::default(),
            register_max_len: DEFAULT_REGISTER_MAX_LEN,
            link_mtu: BTreeMap::new(),
            icmp: VecDeque::new(),
            frag_needed_limit: FragNeededLimiter::default(),
        }
    }
}

/// One (S,G) of the first-hop DR (`mcrctl pim routes`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterSnapshot {
    pub source: Ipv4Addr,
    pub group: Ipv4Addr,
    /// The interface S is on.
    #[serde(default)]
    pub interface: String,
    pub ifindex: u32,
    pub rp: Option<Ipv4Addr>,
    pub state: RegisterState,
    pub register_stop_in_ms: Option<u64>,
    pub keepalive_in_ms: Option<u64>,
}

impl PimInstance {
    /// Pin the tree and route facts instead of taking them from the TIB
    /// and the RPF cache (see [`TreeView`]); for tests and fuzzing.
    pub fn set_tree_view(&mut self, view: Arc<dyn TreeView>) {
        self.ra.view = Some(view);
        self.touch_all();
    }

    /// The largest Register the DR sends through an interface whose MTU
    /// it was not told (see [`Self::set_link_mtus`]).
    pub fn set_register_max_len(&mut self, len: usize) {
        self.ra.register_max_len = len;
    }

    /// The MTU of each interface: a Register leaving by one is at most
    /// that long (§4.4.1; bigger data is fragmented or refused first).
    /// An MTU too small for a Register with any data in it (below
    /// IPv4's minimum of 68 plus the Register's overhead) is taken as
    /// unknown rather than trusted: a link reporting 0 must not turn every
    /// packet into a Fragmentation Needed carrying MTU 0.
    pub fn set_link_mtus(&mut self, mut mtus: BTreeMap<u32, usize>) {
        mtus.retain(|_, mtu| *mtu >= 68 + REGISTER_OVERHEAD);
        self.ra.link_mtu = mtus;
    }

    /// The next ICMP message for the shell to send: (destination, ICMP
    /// message with its checksum).
    pub fn poll_icmp(&mut self) -> Option<(Ipv4Addr, Vec<u8>)> {
        self.ra.icmp.pop_front()
    }

    pub fn register_assert_counters(&self) -> RegisterAssertCounters {
        self.ra.counters
    }

    /// The next packet the RP decapsulated, for the shell to forward.
    pub fn poll_decapsulated(&mut self) -> Option<Decapsulated> {
        self.ra.decapsulated.pop_front()
    }

    /// KeepaliveTimer(S,G) is running: (S,G) data was seen recently (at
    /// the DR from the source, at the RP in Registers).
    pub fn keepalive_running(&self, source: Ipv4Addr, group: Ipv4Addr) -> bool {
        self.tib.kat.contains_key(&TreeKey::s_g(source, group))
    }

    pub fn registers(&self, now: Instant) -> Vec<RegisterSnapshot> {
        let left = |t: Option<Instant>| t.map(|t| millis(t.saturating_duration_since(now)));
        self.ra
            .dr
            .iter()
            .filter_map(|(k, e)| {
                Some(RegisterSnapshot {
                    source: k.source?,
                    group: k.group,
                    interface: self
                        .ifaces
                        .get(&e.iif)
                        .map_or_else(String::new, |i| i.name.clone()),
                    ifindex: e.iif,
                    rp: e.rp,
                    state: e.machine.state(),
                    register_stop_in_ms: left(e.machine.stop_timer()),
                    keepalive_in_ms: left(self.tib.kat.get(k).copied()),
                })
            })
            .collect()
    }

    pub(super) fn ext_poll_timeout(&self) -> Option<Instant> {
        self.ra.timers.next()
    }

    pub(super) fn ext_timeout(&mut self, now: Instant) {
        while let Some(t) = self.ra.timers.pop_due(now) {
            match t {
                ExtTimer::RegisterStop(key) => self.register_stop_timer(now, key),
                ExtTimer::Assert(ifindex, key) => self.assert_timer(now, ifindex, key),
                ExtTimer::RpRegister(key, dr) => self.rp_register_expired(key, dr),
            }
        }
    }

    /// The Register and Assert side of (S,G) data arriving on `ifindex`
    /// (the shell's first-packet upcall, or its periodic per-(S,G) report).
    pub(super) fn on_data_arrived(
        &mut self,
        now: Instant,
        ifindex: u32,
        source: Ipv4Addr,
        group: Ipv4Addr,
    ) {
        if !group.is_multicast() || !self.ifaces.contains_key(&ifindex) {
            return;
        }
        if self.fact_rpf_unknown(source) {
            // reconcile asks the shell; the answer brings us back here.
            // A flood of new sources faster than the shell answers must
            // not grow this without bound: past the cap, data waits for
            // its next report.
            if self.ra.awaiting_rpf.len() < MAX_AWAITING_RPF
                && self.ra.awaiting_rpf.insert((ifindex, source, group))
            {
                self.touch_register_targets();
            }
            return;
        }
        if self.fact_directly_connected(source, ifindex) {
            // §4.2: data from a directly connected source on its RPF
            // interface keeps (S,G) alive, which may start registering.
            self.set_keepalive(now, TreeKey::s_g(source, group), KEEPALIVE_PERIOD);
            self.update_could_register(ifindex, source, group);
        } else if self.fact_rpf_interface(source) != Some(ifindex) {
            self.assert_data(now, ifindex, source, group);
        }
    }

    /// The shell answered the RPF question for `target`: data that waited
    /// for it is looked at again.
    pub(super) fn data_rpf_answered(&mut self, now: Instant, target: Ipv4Addr) {
        let waiting: Vec<_> = self
            .ra
            .awaiting_rpf
            .iter()
            .filter(|w| w.1 == target)
            .copied()
            .collect();
        for w in waiting {
            self.ra.awaiting_rpf.remove(&w);
            self.touch_register_targets();
            self.on_data_arrived(now, w.0, w.1, w.2);
            // The upstream side (SPT bit, switchover) needed RPF(S) too.
            self.on_data(now, w.0, w.1, w.2);
        }
    }

    /// Addresses Register needs routes toward: the RP of every (S,G) the
    /// DR registers, and sources of data waiting for their route.
    pub(super) fn register_rpf_targets(&self) -> Vec<Ipv4Addr> {
        let mut t: Vec<Ipv4Addr> = self.ra.dr.values().filter_map(|e| e.rp).collect();
        t.extend(self.ra.awaiting_rpf.iter().map(|w| w.1));
        t
    }

    /// A data packet of a directly connected source, for encapsulation.
    pub(super) fn on_register_data(&mut self, now: Instant, ifindex: u32, packet: &[u8]) {
        let Ok(h) = reg::parse_inner(packet, false) else {
            self.ra.counters.register_encap_failed += 1;
            return;
        };
        self.on_data_arrived(now, ifindex, h.source, h.group);
        let key = TreeKey::s_g(h.source, h.group);
        let Some(e) = self.ra.dr.get(&key).copied() else {
            return;
        };
        // Only packets from the source's own interface are registered.
        if !e.machine.tunnel_up() || e.iif != ifindex {
            return;
        }
        let (Some(rp), Some(out)) = (e.rp, e.rp.and_then(|rp| self.fact_rpf_interface(rp))) else {
            self.ra.counters.register_encap_failed += 1;
            return;
        };
        let max_len = self
            .ra
            .link_mtu
            .get(&out)
            .copied()
            .unwrap_or(self.ra.register_max_len);
        let src = self.links.get(&out).map(|l| l.1);
        if packet.len() + REGISTER_OVERHEAD > max_len {
            self.register_too_big(now, out, rp, src, packet, max_len);
            return;
        }
        self.register_one(out, rp, src, packet, max_len);
    }

    /// Encapsulate one packet that fits and queue it to the RP.
    fn register_one(
        &mut self,
        out: u32,
        rp: Ipv4Addr,
        src: Option<Ipv4Addr>,
        packet: &[u8],
        max_len: usize,
    ) {
        match reg::encapsulate(packet, max_len, false) {
            Ok(payload) => {
                self.ra.counters.register_tx += 1;
                let mut t = unicast(out, rp, payload);
                t.src = src;
                self.transmits.push_back(t);
            }
            Err(EncapError::Malformed | EncapError::TtlExpired | EncapError::TooBig { .. }) => {
                self.ra.counters.register_encap_failed += 1;
            }
        }
    }

    /// §4.4.1 for a packet the tunnel (MTU `max_len` less the Register's
    /// overhead) cannot carry whole: fragments, or Fragmentation Needed
    /// to the source. See `mtu` for why the inner packet is the one cut.
    fn register_too_big(
        &mut self,
        now: Instant,
        out: u32,
        rp: Ipv4Addr,
        src: Option<Ipv4Addr>,
        packet: &[u8],
        max_len: usize,
    ) {
        let tunnel_mtu = max_len.saturating_sub(REGISTER_OVERHEAD);
        let Ok(h) = reg::parse_inner(packet, false) else {
            self.ra.counters.register_encap_failed += 1;
            return;
        };
        // A packet that would die at the next hop anyway is never
        // registered, so it must not cost its sender a Fragmentation Needed
        // (multicast senders default to TTL 1 and Linux sets DF on UDP):
        // the TTL check comes first, as in RFC 1812's forwarding order.
        if h.ttl <= 1 {
            self.ra.counters.register_encap_failed += 1;
            return;
        }
        if h.dont_fragment {
            self.ra.counters.register_too_big += 1;
            self.ra.counters.register_encap_failed += 1;
            if !mtu::wants_frag_needed(packet) {
                return;
            }
            if !self.ra.frag_needed_limit.allow(now, h.source) {
                self.ra.counters.frag_needed_suppressed += 1;
                return;
            }
            let mtu16 = u16::try_from(tunnel_mtu).unwrap_or(u16::MAX);
            if let Some(m) = mtu::frag_needed(packet, mtu16) {
                self.ra.counters.frag_needed_tx += 1;
                self.ra.icmp.push_back((h.source, m));
            }
            return;
        }
        let Some(frags) = mtu::fragment(packet, tunnel_mtu) else {
            self.ra.counters.register_encap_failed += 1;
            return;
        };
        self.ra.counters.register_fragmented += 1;
        for f in frags {
            self.register_one(out, rp, src, &f, max_len);
        }
    }

    /// I_am_DR(ifindex) changed (a neighbor came, went, or changed its
    /// priority): CouldRegister of every live (S,G) whose source is on
    /// that interface is decided again now, so a new DR opens its register
    /// tunnel and an old one closes it without waiting for the next data
    /// report (§4.4.1: CouldRegister follows I_am_DR).
    pub(super) fn register_dr_changed(&mut self, ifindex: u32) {
        let live: Vec<TreeKey> = self.tib.kat.keys().copied().collect();
        for key in live {
            let Some(source) = key.source else {
                continue;
            };
            let registering_here = self.ra.dr.get(&key).is_some_and(|e| e.iif == ifindex);
            if registering_here || self.fact_directly_connected(source, ifindex) {
                self.update_could_register(ifindex, source, key.group);
            }
        }
    }

    /// Re-evaluate CouldRegister(S,G) = I_am_DR(iif) AND KeepaliveTimer
    /// running AND DirectlyConnected(S), with an RP that is not us (an RP
    /// has no one to register to).
    fn update_could_register(&mut self, iif: u32, source: Ipv4Addr, group: Ipv4Addr) {
        let key = TreeKey::s_g(source, group);
        // The DR entry and its RP may come, go or change.
        self.touch_register_targets();
        let rp = self.config.rp_for(group).map(|m| m.rp);
        let i_am_dr = self.ifaces.get(&iif).is_some_and(|i| i.dr == i.addr);
        let rp_is_us = rp.is_some_and(|rp| self.is_our_address(rp));
        let could = i_am_dr
            && rp.is_some()
            && !rp_is_us
            && self.tib.kat.contains_key(&key)
            && self.fact_directly_connected(source, iif);
        let e = self.ra.dr.entry(key).or_insert(DrEntry {
            iif,
            machine: DrRegister::new(),
            rp,
        });
        let before = e.machine;
        if could && e.rp != rp {
            e.rp = rp;
            e.machine.rp_changed();
        }
        e.iif = iif;
        e.machine.set_could_register(could);
        let after = e.machine;
        if after.state() == RegisterState::NoInfo {
            self.ra.dr.remove(&key);
        }
        self.register_changed(key, before, after);
    }

    /// Keep the Register-Stop Timer in step with the machine and tell the
    /// shell when the tunnel opens or closes.
    fn register_changed(&mut self, key: TreeKey, before: DrRegister, after: DrRegister) {
        match after.stop_timer() {
            Some(at) => self.ra.timers.set(ExtTimer::RegisterStop(key), at),
            None => {
                self.ra.timers.cancel(&ExtTimer::RegisterStop(key));
            }
        }
        if before.tunnel_up() != after.tunnel_up() {
            if let Some(source) = key.source {
                self.events.push_back(PimEvent::RegisterTunnel {
                    source,
                    group: key.group,
                    up: after.tunnel_up(),
                });
            }
        }
    }

    /// Start or restart KeepaliveTimer(S,G) (§4.1.3), the one timer the
    /// upstream layer (JoinDesired, SPT) and Register share.
    pub(super) fn set_keepalive(&mut self, now: Instant, key: TreeKey, period: Duration) {
        let at = now + period;
        self.touch(key);
        if self.tib.kat.insert(key, at).is_none() {
            if let Some(source) = key.source {
                self.events.push_back(PimEvent::Keepalive {
                    source,
                    group: key.group,
                    running: true,
                });
            }
        }
        self.timers.set(TimerKey::Keepalive(key), at);
    }

    /// KeepaliveTimer(S,G) ran out: the RP forgets the PMBR, the DR
    /// re-evaluates CouldRegister.
    pub(super) fn register_keepalive_expired(&mut self, key: TreeKey) {
        if let Some(source) = key.source {
            self.events.push_back(PimEvent::Keepalive {
                source,
                group: key.group,
                running: false,
            });
            self.ra.pmbr.remove(&key);
            if let Some(iif) = self.ra.dr.get(&key).map(|e| e.iif) {
                self.update_could_register(iif, source, key.group);
            }
        }
    }

    fn register_stop_timer(&mut self, now: Instant, key: TreeKey) {
        let Some(e) = self.ra.dr.get_mut(&key) else {
            return;
        };
        let before = e.machine;
        let action = e.machine.stop_timer_expired(now);
        let (after, rp) = (e.machine, e.rp);
        self.register_changed(key, before, after);
        if let (DrAction::SendNullRegister, Some(rp), Some(source)) = (action, rp, key.source) {
            let Some(out) = self.fact_rpf_interface(rp) else {
                self.ra.counters.register_encap_failed += 1;
                return;
            };
            self.ra.counters.null_register_tx += 1;
            let payload = reg::null_register(source, key.group, false);
            let mut t = unicast(out, rp, payload);
            // From the address the Registers came from: the RP keys its
            // (S,G) record by it.
            t.src = self.links.get(&out).map(|l| l.1);
            self.transmits.push_back(t);
        }
    }

    /// §4.4.1: a Register-Stop for (S,G), or for every source of G when
    /// its source is the wildcard 0.0.0.0 (§4.9.4).
    pub(super) fn on_register_stop(&mut self, now: Instant, rs: &RegisterStop) {
        if rs.group.mask_len != 32 || !rs.group.addr.is_multicast() {
            return;
        }
        let keys: Vec<TreeKey> = self
            .ra
            .dr
            .keys()
            .filter(|k| {
                k.group == rs.group.addr
                    && (rs.source.is_unspecified() || k.source == Some(rs.source))
            })
            .copied()
            .collect();
        for key in keys {
            let Some(e) = self.ra.dr.get_mut(&key) else {
                continue;
            };
            let before = e.machine;
            e.machine.register_stop(now, &mut self.rng);
            let after = e.machine;
            self.register_changed(key, before, after);
        }
    }

    /// §4.4.2: a Register from `src` to `dst` arrived on `ifindex`.
    pub(super) fn on_register(
        &mut self,
        now: Instant,
        ifindex: u32,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        r: &Register,
    ) {
        // Not to one of our addresses: maybe spoofed; dropped in silence.
        if !self.is_our_address(dst) {
            self.ra.counters.register_dropped += 1;
            return;
        }
        let Ok(inner) = reg::parse_inner(&r.packet, r.null) else {
            self.ra.counters.register_dropped += 1;
            return;
        };
        let (source, group) = (inner.source, inner.group);
        let key = TreeKey::s_g(source, group);
        let i_am_rp = self.config.rp_for(group).is_some_and(|m| m.rp == dst);
        if !i_am_rp {
            self.ra.counters.register_not_rp += 1;
            let seen = RegisterSeen {
                null: r.null,
                state: RpRegisterState::NotRp,
                wants_stop: true,
            };
            if self.rp_note_register(now, key, src, seen) {
                self.send_register_stop(ifindex, dst, src, source, group);
            }
            return;
        }
        let olist_rpt = self.fact_olist_rpt(source, group);
        let facts = RpFacts {
            spt_bit: self.fact_spt_bit(source, group),
            switch_to_spt_desired: self.fact_switch_to_spt_desired(source, group),
            olist_empty: self.fact_olist(source, group).is_empty() && olist_rpt.is_empty(),
        };
        let mut pmbr = self.ra.pmbr.get(&key).copied();
        let d = reg::rp_decide(facts, r.border, r.null, src, &mut pmbr);
        if let Some(p) = pmbr {
            self.ra.pmbr.insert(key, p);
        }
        let forwarding = d.forward && !olist_rpt.is_empty();
        let state = if d.foreign_border {
            RpRegisterState::ForeignBorder
        } else if d.register_stop {
            RpRegisterState::Stopped
        } else if forwarding {
            RpRegisterState::Forwarding
        } else {
            RpRegisterState::Accepted
        };
        let seen = RegisterSeen {
            null: r.null,
            state,
            wants_stop: d.register_stop,
        };
        if self.rp_note_register(now, key, src, seen) {
            self.send_register_stop(ifindex, dst, src, source, group);
        }
        if let Some(period) = d.keepalive {
            self.set_keepalive(now, key, period);
        }
        if forwarding {
            self.ra.counters.decapsulated += 1;
            self.ra.decapsulated.push_back(Decapsulated {
                source,
                group,
                oifs: olist_rpt,
                packet: r.packet.clone(),
            });
        }
    }

    fn send_register_stop(
        &mut self,
        ifindex: u32,
        from: Ipv4Addr,
        to: Ipv4Addr,
        source: Ipv4Addr,
        group: Ipv4Addr,
    ) {
        let out = self.fact_rpf_interface(to).unwrap_or(ifindex);
        let payload = codec::encode(&Message::RegisterStop(RegisterStop {
            group: EncodedGroup::host(group),
            source,
        }));
        self.ra.counters.register_stop_tx += 1;
        let mut t = unicast(out, to, payload);
        // The DR learns which RP stopped it from the source address.
        t.src = Some(from);
        self.transmits.push_back(t);
    }

    pub(super) fn is_our_address(&self, addr: Ipv4Addr) -> bool {
        self.is_my_address(addr)
    }
}

fn unicast(ifindex: u32, dst: Ipv4Addr, payload: Vec<u8>) -> Transmit {
    Transmit {
        ifindex,
        src: None,
        dst,
        ttl: UNICAST_TTL,
        router_alert: false,
        payload,
    }
}
