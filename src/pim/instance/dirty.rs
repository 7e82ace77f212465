//! What [`PimInstance::reconcile`] must look at again: the groups an input
//! touched, and the indexes that let it visit only their trees.
//!
//! Owns: the dirty groups (or "everything"), a per-group index of the trees
//! the instance may hold state for (a superset of `known_trees`, trimmed
//! whenever a group is visited), which RPF target each tree asked for at
//! its group's last visit (so that the RPF cache keeps exactly the answers
//! some tree or Register still needs, as the full pass did), and the
//! Register targets of the last pass.
//!
//! Granularity, and why it is safe: everything a tree's outcome depends on
//! (RFC 7761 §4.1.6 olists, §4.5 JoinDesired/PruneDesired, §4.6 asserts)
//! is keyed by its group, except the RPF cache, the neighbor tables, the DR,
//! the interfaces and the configuration. An input that changes state of one
//! group marks that group; an RPF answer marks the groups whose trees or
//! asserts read that target; anything else (neighbors, DR, interfaces,
//! configuration) marks everything. A visit that changes any state of its
//! group (upstream entries, asserts, (S,G,rpt) prunes, routes) marks the
//! group again, because the full pass read that state at its next run: a
//! group whose visit changed nothing is at a fixed point and the next pass
//! would change nothing there either. The property test in
//! `incremental_tests` drives an instance forced to the full pass beside
//! an incremental one and compares every output.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::PimInstance;
use crate::pim::state::downstream::TreeKey;

#[derive(Default)]
pub(super) struct Dirty {
    /// Visit every tree next time (and rebuild the indexes).
    pub(super) all: bool,
    pub(super) groups: BTreeSet<Ipv4Addr>,
    /// Trees that may have state, per group: every key that gains state
    /// anywhere is added here first.
    pub(super) trees: BTreeMap<Ipv4Addr, BTreeSet<TreeKey>>,
    /// The RPF target each known tree asked the cache for.
    pub(super) target_of: BTreeMap<TreeKey, Ipv4Addr>,
    /// The same, by target.
    pub(super) users: BTreeSet<(Ipv4Addr, TreeKey)>,
    /// Targets answered since the last pass: maybe nobody needs them.
    pub(super) answered: BTreeSet<Ipv4Addr>,
    /// Register's targets at the last pass, and whether they may differ now.
    pub(super) reg_targets: BTreeSet<Ipv4Addr>,
    pub(super) reg_stale: bool,
    /// Test-only: every pass is the full one (the reference behaviour).
    #[cfg(test)]
    pub(super) force_full: bool,
}

impl Dirty {
    pub(super) fn new() -> Self {
        Dirty {
            all: true,
            ..Dirty::default()
        }
    }

    fn has_users(&self, target: Ipv4Addr) -> bool {
        self.users
            .range((target, TreeKey::star_g(Ipv4Addr::UNSPECIFIED))..)
            .next()
            .is_some_and(|(t, _)| *t == target)
    }

    fn user_groups(&self, target: Ipv4Addr) -> Vec<Ipv4Addr> {
        self.users
            .range((target, TreeKey::star_g(Ipv4Addr::UNSPECIFIED))..)
            .take_while(|(t, _)| *t == target)
            .map(|(_, k)| k.group)
            .collect()
    }
}

impl PimInstance {
    /// `key` may have gained or lost state: its group is visited next pass.
    pub(super) fn touch(&mut self, key: TreeKey) {
        self.dirty.groups.insert(key.group);
        self.dirty.trees.entry(key.group).or_default().insert(key);
    }

    pub(super) fn touch_group(&mut self, group: Ipv4Addr) {
        self.dirty.groups.insert(group);
    }

    /// Something every tree may depend on changed.
    pub(super) fn touch_all(&mut self) {
        self.dirty.all = true;
    }

    /// A local receiver of `key` on `ifindex` came or went; a (*,G) one
    /// also makes the sources its receivers exclude trees of their own.
    pub(super) fn touch_local(&mut self, ifindex: u32, key: TreeKey) {
        self.touch(key);
        if key.source.is_none() {
            let excluded: Vec<TreeKey> = self
                .tib
                .local_exclude
                .get(&ifindex)
                .into_iter()
                .flatten()
                .filter(|(_, g)| *g == key.group)
                .map(|&(s, g)| TreeKey::s_g(s, g))
                .collect();
            for k in excluded {
                self.touch(k);
            }
        }
    }

    /// Register's RPF targets (the RP of a registering (S,G), the source of
    /// data waiting for its route) may have changed.
    pub(super) fn touch_register_targets(&mut self) {
        self.dirty.reg_stale = true;
    }

    /// The cached answer for `target` changed: the groups whose trees ask
    /// for it, and those whose asserts measure a metric toward it (their
    /// source, or their RP), see something new.
    pub(super) fn touch_target(&mut self, target: Ipv4Addr) {
        for g in self.dirty.user_groups(target) {
            self.dirty.groups.insert(g);
        }
        let readers: Vec<Ipv4Addr> = self
            .ra
            .asserts
            .keys()
            .filter(|(_, k)| k.source == Some(target) || self.rp(k.group) == Some(target))
            .map(|(_, k)| k.group)
            .collect();
        self.dirty.groups.extend(readers);
    }

    /// Test-only switch: every pass walks every tree, as before the
    /// incremental pass existed.
    #[cfg(test)]
    pub(crate) fn force_full_reconcile(&mut self, on: bool) {
        self.dirty.force_full = on;
    }

    /// Take the pass's work: `None` for everything.
    pub(super) fn take_dirty(&mut self) -> Option<BTreeSet<Ipv4Addr>> {
        #[cfg(test)]
        let forced = self.dirty.force_full;
        #[cfg(not(test))]
        let forced = false;
        let groups = std::mem::take(&mut self.dirty.groups);
        if std::mem::take(&mut self.dirty.all) || forced {
            return None;
        }
        Some(groups)
    }

    /// `key` has state somewhere (the test `known_trees` applies to all).
    fn is_known(&self, key: &TreeKey) -> bool {
        if self
            .ifaces
            .values()
            .any(|i| i.downstream.get(key).is_some())
            || self.tib.local.values().any(|l| l.contains(key))
            || self.tib.up.contains_key(key)
            || self.tib.kat.contains_key(key)
            || self.tib.routes.contains_key(key)
        {
            return true;
        }
        let Some(s) = key.source else { return false };
        let sg = (s, key.group);
        let star = TreeKey::star_g(key.group);
        self.tib.rpt_down.values().any(|r| r.get(&sg).is_some())
            || self.tib.rpt_pruned.contains(&sg)
            || self.tib.local_exclude.iter().any(|(ix, x)| {
                x.contains(&sg) && self.tib.local.get(ix).is_some_and(|l| l.contains(&star))
            })
    }

    /// The known trees of `groups`, in `known_trees` order. Forgets the
    /// index entries of every tree of those groups (the pass records the
    /// ones still asked for) and returns the targets nobody asks for any
    /// more.
    pub(super) fn known_trees_of(
        &mut self,
        groups: &BTreeSet<Ipv4Addr>,
        released: &mut BTreeSet<Ipv4Addr>,
    ) -> BTreeSet<TreeKey> {
        let mut keys = BTreeSet::new();
        for g in groups {
            let Some(candidates) = self.dirty.trees.remove(g) else {
                continue;
            };
            let mut kept = BTreeSet::new();
            for k in candidates {
                if let Some(t) = self.dirty.target_of.remove(&k) {
                    self.dirty.users.remove(&(t, k));
                    if !self.dirty.has_users(t) {
                        released.insert(t);
                    }
                }
                if self.is_known(&k) {
                    kept.insert(k);
                    keys.insert(k);
                }
            }
            if !kept.is_empty() {
                self.dirty.trees.insert(*g, kept);
            }
        }
        keys
    }

    /// Record which target each visited tree asked for.
    pub(super) fn record_targets(&mut self, asked: &[(TreeKey, Ipv4Addr)]) {
        for &(k, t) in asked {
            self.dirty.target_of.insert(k, t);
            self.dirty.users.insert((t, k));
        }
    }

    /// After a full pass: the indexes from scratch.
    pub(super) fn rebuild_index(
        &mut self,
        keys: &BTreeSet<TreeKey>,
        asked: &[(TreeKey, Ipv4Addr)],
    ) {
        self.dirty.trees.clear();
        for k in keys {
            self.dirty.trees.entry(k.group).or_default().insert(*k);
        }
        self.dirty.target_of.clear();
        self.dirty.users.clear();
        self.record_targets(asked);
        self.dirty.answered.clear();
        self.dirty.reg_stale = false;
    }

    /// Drop the cached answer for `target` unless a tree or Register
    /// still needs it, as the full pass's `retain(used)` would.
    pub(super) fn forget_if_unused(&mut self, target: Ipv4Addr) {
        if self.dirty.has_users(target) || self.dirty.reg_targets.contains(&target) {
            return;
        }
        if self.tib.rpf.remove(&target).is_some() {
            self.touch_target(target);
        }
    }
}
