//! The Tree Information Base of the instance: local receivers, the RPF
//! cache, the upstream (*,G)/(S,G) entries, the (S,G,rpt) prunes, the
//! olist macros that tie them together, and the routes handed to the RIB.
//!
//! Owns RFC 7761 §4.1.6 (immediate_olist, inherited_olist,
//! pim_include with its "only where we are DR" rule), JoinDesired of
//! §4.5.4/§4.5.6, PruneDesired(S,G,rpt) of §4.5.7, the SSM rule of §4.8
//! (no (*,G) for 232/8) and the RPF questions the core asks its shell
//! (§4.1.6 RPF', resolved by the shell from the unicast routing table).
//!
//! The design is "recompute, then diff": after every input the instance
//! calls [`PimInstance::reconcile`], which walks the trees the input may
//! have changed, applies JoinDesired and RPF' to the upstream machines of
//! `state::upstream` and compares the routes it would install with the
//! ones it did. The RFC's many "X changes" events are thereby all handled
//! by one code path, which cannot forget one of them. Which trees that is
//! (the groups an input touched, or all of them after a neighbor, DR,
//! interface or configuration change) is `dirty`'s business; a pass over
//! fewer trees ends where the pass over all of them would.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{PimInstance, TimerKey};
use crate::pim::state::downstream::TreeKey;
use crate::pim::state::rpt::{RptDownstream, SgKey};
use crate::pim::state::upstream::{Rpf, Upstream};

/// The shell's answer for an RPF target: the unicast route toward it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpfResult {
    pub ifindex: u32,
    /// The gateway; `None` when the target is on the link itself.
    pub next_hop: Option<Ipv4Addr>,
    /// Administrative distance / route protocol preference (Assert uses it).
    pub metric_preference: u32,
    pub metric: u32,
}

/// A route for the RIB: interfaces by index, the shell maps names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum PimRouteChange {
    /// Install or replace the route of `key`.
    Add {
        source: Option<Ipv4Addr>,
        group: Ipv4Addr,
        upstream: u32,
        downstream: BTreeSet<u32>,
    },
    Withdraw {
        source: Option<Ipv4Addr>,
        group: Ipv4Addr,
    },
}

#[derive(Default)]
pub(super) struct Tib {
    /// Local receivers per interface, as IGMP reported them: (*,G) for any
    /// source, (S,G) for an INCLUDE source.
    pub(super) local: BTreeMap<u32, BTreeSet<TreeKey>>,
    /// Sources the local receivers of a (*,G) exclude, per interface
    /// (IGMPv3 EXCLUDE filters): local_receiver_exclude(S,G,I) of §4.1.6.
    pub(super) local_exclude: BTreeMap<u32, BTreeSet<SgKey>>,
    /// Resolved targets; `None` is "no route".
    pub(super) rpf: BTreeMap<Ipv4Addr, Option<RpfResult>>,
    pub(super) rpf_requests: VecDeque<Ipv4Addr>,
    /// Asked and not answered yet: not asked twice.
    pub(super) rpf_asked: BTreeSet<Ipv4Addr>,
    pub(super) up: BTreeMap<TreeKey, Upstream>,
    /// Keepalive Timer deadlines of (S,G) entries (§4.1.3).
    pub(super) kat: BTreeMap<TreeKey, Instant>,
    pub(super) rpt_down: BTreeMap<u32, RptDownstream>,
    /// (S,G,rpt) upstream in Pruned: we asked RPF'(*,G) to stop S.
    pub(super) rpt_pruned: BTreeSet<SgKey>,
    /// The RP our (*,G) Joins named, per group: a Prune must name the
    /// same RP, even after a reload mapped the group elsewhere.
    pub(super) star_rp: BTreeMap<Ipv4Addr, Ipv4Addr>,
    pub(super) routes: BTreeMap<TreeKey, (u32, BTreeSet<u32>)>,
    pub(super) route_changes: VecDeque<PimRouteChange>,
}

impl Tib {
    /// The unicast route toward `addr`, if it was resolved and there is one.
    pub(super) fn route(&self, addr: Ipv4Addr) -> Option<RpfResult> {
        self.rpf.get(&addr).copied().flatten()
    }
}

/// §4.8: the SSM range 232/8 never has (*,G) state.
pub fn is_ssm(group: Ipv4Addr) -> bool {
    group.octets()[0] == 232
}

impl PimInstance {
    /// The next address whose unicast route the core needs. The shell
    /// answers with [`super::PimInput::Rpf`].
    pub fn poll_rpf_request(&mut self) -> Option<Ipv4Addr> {
        self.tib.rpf_requests.pop_front()
    }

    /// The next route to install or withdraw in the RIB.
    pub fn poll_route_change(&mut self) -> Option<PimRouteChange> {
        self.tib.route_changes.pop_front()
    }

    /// Every address RPF is tracked for (the shell re-resolves them when
    /// routes change).
    pub fn rpf_targets(&self) -> Vec<Ipv4Addr> {
        self.tib.rpf.keys().copied().collect()
    }

    pub(super) fn set_rpf(&mut self, target: Ipv4Addr, result: Option<RpfResult>) {
        self.tib.rpf_asked.remove(&target);
        if self.tib.rpf.insert(target, result) != Some(result) {
            self.touch_target(target);
        }
        self.dirty.answered.insert(target);
    }

    /// Ask again for every target: the routing table changed.
    pub(super) fn refresh_rpf(&mut self) {
        let targets: Vec<Ipv4Addr> = self.tib.rpf.keys().copied().collect();
        for t in targets {
            if self.tib.rpf_asked.insert(t) {
                self.tib.rpf_requests.push_back(t);
            }
        }
    }

    /// The cached route toward `target`, asking the shell when unknown.
    fn rpf_route(&mut self, target: Ipv4Addr, used: &mut BTreeSet<Ipv4Addr>) -> Option<RpfResult> {
        used.insert(target);
        match self.tib.rpf.get(&target) {
            Some(r) => *r,
            None => {
                if self.tib.rpf_asked.insert(target) {
                    self.tib.rpf_requests.push_back(target);
                }
                None
            }
        }
    }

    /// NBR(RPF_interface, next hop): the next hop must be a PIM neighbor
    /// on a PIM interface, named by its primary address. On-link targets
    /// are their own next hop (an RP next door is the neighbor to join).
    fn rpf_neighbor(&self, target: Ipv4Addr, route: Option<RpfResult>) -> Option<Rpf> {
        let r = route?;
        let nh = r.next_hop.unwrap_or(target);
        let ifc = self.ifaces.get(&r.ifindex)?;
        let n = ifc.neighbors.knows(nh)?;
        Some(Rpf {
            ifindex: r.ifindex,
            neighbor: n.addr,
        })
    }

    /// RPF'(*,G) / RPF'(S,G) (§4.1.6): the assert winner when we lost an
    /// assert for the tree on its RPF interface (§4.6.5), the RPF
    /// neighbor otherwise.
    /// The second value says whether RPF' is an assert winner.
    fn rpf_prime(
        &self,
        key: &TreeKey,
        target: Ipv4Addr,
        route: Option<RpfResult>,
    ) -> (Option<Rpf>, bool) {
        let Some(r) = route else {
            return (None, false);
        };
        if self.lost_assert(key.source, key.group, r.ifindex) {
            if let Some(w) = self.assert_winner(key.source, key.group, r.ifindex) {
                let rpf = Rpf {
                    ifindex: r.ifindex,
                    neighbor: w,
                };
                return (Some(rpf), true);
            }
        }
        (self.rpf_neighbor(target, route), false)
    }

    /// `a` is one of our addresses, primary or secondary, on any
    /// interface reported up.
    pub(super) fn is_my_address(&self, a: Ipv4Addr) -> bool {
        self.links.values().any(|(_, addr)| *addr == a)
            || self.secondary.values().any(|s| s.contains(&a))
    }

    /// RP(G), or `None` for SSM groups and groups without a mapping.
    pub(super) fn rp(&self, group: Ipv4Addr) -> Option<Ipv4Addr> {
        if is_ssm(group) {
            return None;
        }
        self.config.rp_for(group).map(|m| m.rp)
    }

    /// I_am_DR(I); an interface without PIM has no other router to
    /// compete with, so we are its DR.
    fn i_am_dr(&self, ifindex: u32) -> bool {
        match self.ifaces.get(&ifindex) {
            Some(i) => i.dr == i.addr,
            None => self.links.contains_key(&ifindex),
        }
    }

    fn joins(&self, key: &TreeKey) -> BTreeSet<u32> {
        self.ifaces
            .iter()
            .filter(|(_, i)| i.downstream.get(key).is_some())
            .map(|(&ix, _)| ix)
            .collect()
    }

    fn pim_include(&self, key: &TreeKey) -> BTreeSet<u32> {
        self.tib
            .local
            .iter()
            .filter(|(ix, keys)| keys.contains(key) && self.i_am_dr(**ix))
            .map(|(&ix, _)| ix)
            .collect()
    }

    /// joins + pim_include of `key`, before lost_assert is taken away
    /// (what CouldAssert and AssertTrackingDesired look at).
    pub(super) fn raw_immediate_olist(&self, key: &TreeKey) -> BTreeSet<u32> {
        if key.source.is_none() && is_ssm(key.group) {
            return BTreeSet::new();
        }
        let mut o = self.joins(key);
        o.extend(self.pim_include(key));
        o
    }

    /// immediate_olist(*,G) or immediate_olist(S,G): interfaces where we
    /// lost an assert for the tree leave it (§4.1.6 − lost_assert).
    pub(super) fn immediate_olist(&self, key: &TreeKey) -> BTreeSet<u32> {
        let mut o = self.raw_immediate_olist(key);
        o.retain(|&ix| !self.lost_assert(key.source, key.group, ix));
        o
    }

    fn rpt_pruned_on(&self, ix: u32, s: Ipv4Addr, g: Ipv4Addr) -> bool {
        self.tib
            .rpt_down
            .get(&ix)
            .and_then(|r| r.get(&(s, g)))
            .is_some_and(|e| e.is_pruned())
    }

    /// pim_exclude(S,G) holds `ix`: its local receivers of G exclude S.
    fn excluded_on(&self, ix: u32, s: Ipv4Addr, g: Ipv4Addr) -> bool {
        self.tib
            .local_exclude
            .get(&ix)
            .is_some_and(|x| x.contains(&(s, g)))
    }

    /// (joins(*,G) − prunes(S,G,rpt)) + (pim_include(*,G) − pim_exclude(S,G)),
    /// before lost_assert is taken away.
    fn raw_rpt_olist(&self, s: Ipv4Addr, g: Ipv4Addr) -> BTreeSet<u32> {
        let star = TreeKey::star_g(g);
        if is_ssm(g) {
            return BTreeSet::new();
        }
        let mut o = self.joins(&star);
        o.retain(|&ix| !self.rpt_pruned_on(ix, s, g));
        let mut local = self.pim_include(&star);
        local.retain(|&ix| !self.excluded_on(ix, s, g));
        o.extend(local);
        o
    }

    /// inherited_olist(S,G,rpt) of §4.1.6, less lost_assert(*,G).
    pub(super) fn rpt_olist(&self, s: Ipv4Addr, g: Ipv4Addr) -> BTreeSet<u32> {
        let mut o = self.raw_rpt_olist(s, g);
        o.retain(|&ix| !self.lost_assert(None, g, ix));
        o
    }

    /// Interfaces of the (*,G) olist that S's share of the shared tree
    /// leaves out: a downstream Prune(S,G,rpt) or local receivers that
    /// exclude S. The RIB takes S off PIM's (*,G) outputs there.
    pub(super) fn rpt_left_out(&self, s: Ipv4Addr, g: Ipv4Addr) -> BTreeSet<u32> {
        let mut o = self.immediate_olist(&TreeKey::star_g(g));
        let keep = self.rpt_olist(s, g);
        o.retain(|ix| !keep.contains(ix));
        o
    }

    /// inherited_olist(S,G), less lost_assert(S,G).
    pub(super) fn inherited_olist(&self, s: Ipv4Addr, g: Ipv4Addr) -> BTreeSet<u32> {
        let mut o = self.rpt_olist(s, g);
        o.extend(self.immediate_olist(&TreeKey::s_g(s, g)));
        o.retain(|&ix| !self.lost_assert(Some(s), g, ix));
        o
    }

    /// inherited_olist(S,G) without any lost_assert term.
    pub(super) fn raw_inherited_olist(&self, s: Ipv4Addr, g: Ipv4Addr) -> BTreeSet<u32> {
        let mut o = self.raw_rpt_olist(s, g);
        o.extend(self.raw_immediate_olist(&TreeKey::s_g(s, g)));
        o
    }

    /// JoinDesired(*,G) (§4.5.6) and JoinDesired(S,G) (§4.5.7).
    pub(super) fn join_desired(&self, key: &TreeKey) -> bool {
        match key.source {
            None => self.rp(key.group).is_some() && !self.immediate_olist(key).is_empty(),
            Some(s) => {
                !self.immediate_olist(key).is_empty()
                    || (self.tib.kat.contains_key(key)
                        && !self.inherited_olist(s, key.group).is_empty())
            }
        }
    }

    /// Every tree the instance holds any state for, (*,G) first.
    fn known_trees(&self) -> BTreeSet<TreeKey> {
        let mut keys: BTreeSet<TreeKey> = BTreeSet::new();
        for i in self.ifaces.values() {
            keys.extend(i.downstream.iter().map(|(k, _)| *k));
        }
        for l in self.tib.local.values() {
            keys.extend(l.iter().copied());
        }
        keys.extend(self.tib.up.keys().copied());
        keys.extend(self.tib.kat.keys().copied());
        keys.extend(self.tib.routes.keys().copied());
        for r in self.tib.rpt_down.values() {
            keys.extend(r.iter().map(|((s, g), _)| TreeKey::s_g(*s, *g)));
        }
        for &(s, g) in &self.tib.rpt_pruned {
            keys.insert(TreeKey::s_g(s, g));
        }
        // An excluded source of a group we receive may need an (S,G,rpt)
        // Prune (§4.5.7 PruneDesired with pim_exclude).
        for (&ix, x) in &self.tib.local_exclude {
            for &(s, g) in x {
                let star = TreeKey::star_g(g);
                if self.tib.local.get(&ix).is_some_and(|l| l.contains(&star)) {
                    keys.insert(TreeKey::s_g(s, g));
                }
            }
        }
        keys
    }

    /// Bring upstream state, (S,G,rpt) prunes and RIB routes in line with
    /// the current olists and RPF answers (see the module documentation),
    /// for the trees of the groups an input touched (`dirty`), or all of
    /// them after a change every tree may depend on.
    pub(super) fn reconcile(&mut self, now: Instant) {
        let period = self.config.join_prune_interval;
        let dirty = self.take_dirty();
        let mut used = BTreeSet::new();
        // Trees or routes may have changed CouldAssert or the metrics.
        self.reevaluate_asserts_of(dirty.as_ref());
        // The DR registers toward RP(G); Register and Assert need routes
        // toward the RPs and sources they know even without a tree. Asked
        // again only when they may have changed: one asked or answered
        // before stays so (the cache keeps it while it is a target).
        let mut released = BTreeSet::new();
        if dirty.is_none() || self.dirty.reg_stale {
            let targets = self.register_rpf_targets();
            for &t in &targets {
                self.rpf_route(t, &mut used);
            }
            let fresh: BTreeSet<Ipv4Addr> = targets.into_iter().collect();
            released.extend(self.dirty.reg_targets.difference(&fresh).copied());
            self.dirty.reg_targets = fresh;
            self.dirty.reg_stale = false;
        }
        let keys = match &dirty {
            None => self.known_trees(),
            Some(groups) => self.known_trees_of(groups, &mut released),
        };
        let mut asked = Vec::new();
        // RPF' and RPF interface of every tree, kept for the (S,G,rpt) and
        // route passes.
        let mut rpf_of: BTreeMap<TreeKey, (Option<Rpf>, Option<u32>)> = BTreeMap::new();
        for key in &keys {
            let target = match key.source {
                Some(s) => Some(s),
                None => self.rp(key.group),
            };
            let (rpf, iif, via_assert) = match target {
                // We are the RP (or the source): there is nobody upstream.
                Some(t) if self.is_my_address(t) => (None, None, false),
                Some(t) => {
                    let route = self.rpf_route(t, &mut used);
                    asked.push((*key, t));
                    let (rpf, by_assert) = self.rpf_prime(key, t, route);
                    (rpf, route.map(|r| r.ifindex), by_assert)
                }
                None => (None, None, false),
            };
            rpf_of.insert(*key, (rpf, iif));
            let before = self.tib.up.get(key).copied();
            self.leave_old_rp(*key);
            let desired = self.join_desired(key);
            // §4.2.2 Update_SPTbit for a directly connected source, whose
            // data keeps the Keepalive Timer running: the bit is set the
            // moment JoinDesired(S,G) becomes true, not at the next data
            // report, so that CouldAssert holds from the first packet we
            // forward. Otherwise an Assert from a router already
            // forwarding onto the LAN finds our metric still infinite and
            // we lose to it for good: a loser's olist no longer has the
            // LAN, so JoinDesired, and with it the bit, stays false.
            let connected_flow = desired
                && self.tib.kat.contains_key(key)
                && key
                    .source
                    .is_some_and(|s| self.tib.route(s).is_some_and(|r| r.next_hop.is_none()));
            // §4.5.5/§4.5.7: RPF' moved on the same interface because an
            // assert started, ended or changed winner (the old or the new
            // neighbor is a winner) rather than because the route changed.
            let old = self.tib.up.get(key).map(|u| (u.rpf(), u.via_assert));
            let by_assert = match (old, rpf) {
                (Some((Some(o), was_assert)), Some(n)) => {
                    desired && o != n && o.ifindex == n.ifindex && (was_assert || via_assert)
                }
                _ => false,
            };
            let t_override = match (by_assert, rpf) {
                (true, Some(n)) => Some(self.t_override(n.ifindex)),
                _ => None,
            };
            let up = self.tib.up.entry(*key).or_default();
            if connected_flow {
                up.spt_bit = true;
            }
            let actions = match (t_override, rpf) {
                (Some(t), Some(n)) => {
                    up.assert_moved(now, n, t);
                    Vec::new()
                }
                _ => up.update(now, desired, rpf, period),
            };
            up.via_assert = via_assert && up.is_joined();
            let timer = up.join_timer();
            if !up.is_joined() && !up.spt_bit {
                self.tib.up.remove(key);
            }
            match timer {
                Some(at) => self.timers.set(TimerKey::JoinTimer(*key), at),
                None => {
                    self.timers.cancel(&TimerKey::JoinTimer(*key));
                }
            }
            // A visit that changed the group's state is repeated at the
            // next pass, which the full pass would have seen it at.
            if !actions.is_empty() || self.tib.up.get(key).copied() != before {
                self.touch_group(key.group);
            }
            for a in actions {
                self.send_upstream(*key, a);
            }
        }
        self.reconcile_rpt(&keys, &rpf_of);
        self.reconcile_routes(&keys, &rpf_of);
        // With the SPT bits set above, a router that just started
        // forwarding onto a LAN where another router's copy was seen
        // asserts now.
        self.assert_recent_data_of(now, dirty.as_ref());
        // Forget answers nobody needs any more, so the shell's refresh
        // list stays the set of live targets.
        match dirty {
            None => {
                self.rebuild_index(&keys, &asked);
                let unused: Vec<Ipv4Addr> = self
                    .tib
                    .rpf
                    .keys()
                    .filter(|t| !used.contains(t))
                    .copied()
                    .collect();
                for t in unused {
                    self.tib.rpf.remove(&t);
                    self.touch_target(t);
                }
            }
            Some(_) => {
                self.record_targets(&asked);
                released.extend(std::mem::take(&mut self.dirty.answered));
                for t in released {
                    self.forget_if_unused(t);
                }
            }
        }
    }

    /// A reload mapped G to another RP: prune the tree toward the old one
    /// (naming it), so that the update that follows joins toward the new
    /// one, even through the same neighbor.
    fn leave_old_rp(&mut self, key: TreeKey) {
        if key.source.is_some() {
            return;
        }
        let Some(&old) = self.tib.star_rp.get(&key.group) else {
            return;
        };
        if self.rp(key.group) == Some(old) {
            return;
        }
        if let Some(up) = self.tib.up.get_mut(&key) {
            if let Some(to) = up.rpf() {
                up.joined = None;
                self.send_upstream(key, crate::pim::state::upstream::UpAction::Prune(to));
            }
        }
        self.tib.star_rp.remove(&key.group);
        self.touch_group(key.group);
    }

    /// §4.5.7: Prune(S,G,rpt) toward RPF'(*,G) while PruneDesired, a
    /// Join(S,G,rpt) when it stops being desired.
    fn reconcile_rpt(
        &mut self,
        keys: &BTreeSet<TreeKey>,
        rpf_of: &BTreeMap<TreeKey, (Option<Rpf>, Option<u32>)>,
    ) {
        for key in keys {
            let Some(s) = key.source else { continue };
            let g = key.group;
            let star = TreeKey::star_g(g);
            let star_up = self.tib.up.get(&star).and_then(|u| u.rpf());
            let sg_rpf = rpf_of.get(key).and_then(|r| r.0);
            let spt = self.tib.up.get(key).is_some_and(|u| u.spt_bit);
            let prune_desired = star_up.is_some()
                && (self.rpt_olist(s, g).is_empty() || (spt && star_up != sg_rpf));
            let pruned = self.tib.rpt_pruned.contains(&(s, g));
            match (prune_desired, pruned, star_up) {
                (true, false, Some(to)) => {
                    self.touch_group(g);
                    self.tib.rpt_pruned.insert((s, g));
                    self.send_rpt(s, g, to, false);
                }
                (false, true, Some(to)) => {
                    self.touch_group(g);
                    self.tib.rpt_pruned.remove(&(s, g));
                    self.send_rpt(s, g, to, true);
                }
                (false, true, None) => {
                    // RPTNotJoined(G): the (*,G) Prune said it all.
                    self.touch_group(g);
                    self.tib.rpt_pruned.remove(&(s, g));
                }
                _ => {}
            }
        }
    }

    /// The RIB's view: a (*,G) route from RPF_interface(RP) to the (*,G)
    /// olist; an (S,G) route from RPF_interface(S) to inherited_olist(S,G)
    /// once packets are expected on the source tree (SPT bit set, or S's
    /// tree and the RP's tree enter on the same interface, or there is no
    /// (*,G) route to take them meanwhile).
    fn reconcile_routes(
        &mut self,
        keys: &BTreeSet<TreeKey>,
        rpf_of: &BTreeMap<TreeKey, (Option<Rpf>, Option<u32>)>,
    ) {
        let mut want: BTreeMap<TreeKey, (u32, BTreeSet<u32>)> = BTreeMap::new();
        for key in keys {
            let iif = rpf_of.get(key).and_then(|r| r.1);
            let Some(iif) = iif else { continue };
            let mut oifs = match key.source {
                None => self.immediate_olist(key),
                Some(s) => {
                    let star_iif = want.get(&TreeKey::star_g(key.group)).map(|r| r.0);
                    let spt = self.tib.up.get(key).is_some_and(|u| u.spt_bit);
                    let has_state = self.join_desired(key) || self.tib.up.contains_key(key);
                    if !has_state || !(spt || star_iif.is_none() || star_iif == Some(iif)) {
                        continue;
                    }
                    self.inherited_olist(s, key.group)
                }
            };
            oifs.remove(&iif);
            if !oifs.is_empty() {
                want.insert(*key, (iif, oifs));
            }
        }
        // Every installed route is a known tree: among the visited ones are
        // all of the visited groups' routes.
        let gone: Vec<TreeKey> = keys
            .iter()
            .filter(|k| self.tib.routes.contains_key(k) && !want.contains_key(k))
            .copied()
            .collect();
        for k in gone {
            self.touch_group(k.group);
            self.tib.routes.remove(&k);
            self.tib.route_changes.push_back(PimRouteChange::Withdraw {
                source: k.source,
                group: k.group,
            });
        }
        for (k, r) in want {
            if self.tib.routes.get(&k) != Some(&r) {
                self.touch_group(k.group);
                self.tib.route_changes.push_back(PimRouteChange::Add {
                    source: k.source,
                    group: k.group,
                    upstream: r.0,
                    downstream: r.1.clone(),
                });
                self.tib.routes.insert(k, r);
            }
        }
    }
}
