//! A set of named deadlines. Protocol cores have many timers (one per
//! group, per neighbor, per route); they keep them here so that
//! `poll_timeout` is the earliest entry and `handle_timeout` pops exactly
//! the ones that are due, in deadline order (ties by key, so a simulation
//! is deterministic).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct Timers<K: Ord + Clone> {
    by_key: BTreeMap<K, Instant>,
    by_time: BTreeSet<(Instant, K)>,
}

impl<K: Ord + Clone> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            by_key: BTreeMap::new(),
            by_time: BTreeSet::new(),
        }
    }
}

impl<K: Ord + Clone> Timers<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Arm (or re-arm) `key` to fire at `at`.
    pub fn set(&mut self, key: K, at: Instant) {
        if let Some(old) = self.by_key.insert(key.clone(), at) {
            self.by_time.remove(&(old, key.clone()));
        }
        self.by_time.insert((at, key));
    }

    /// Arm `key` at `at` unless it is already armed earlier (RFC timers
    /// that are "lowered to" a value, e.g. IGMP's group timer on a leave).
    pub fn set_min(&mut self, key: K, at: Instant) {
        match self.by_key.get(&key) {
            Some(&cur) if cur <= at => {}
            _ => self.set(key, at),
        }
    }

    pub fn cancel(&mut self, key: &K) -> Option<Instant> {
        let at = self.by_key.remove(key)?;
        self.by_time.remove(&(at, key.clone()));
        Some(at)
    }

    pub fn get(&self, key: &K) -> Option<Instant> {
        self.by_key.get(key).copied()
    }

    pub fn is_armed(&self, key: &K) -> bool {
        self.by_key.contains_key(key)
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(t, _)| *t)
    }

    /// Remove and return the earliest timer that is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<K> {
        let (at, key) = self.by_time.first()?.clone();
        if at > now {
            return None;
        }
        self.by_time.remove(&(at, key.clone()));
        self.by_key.remove(&key);
        Some(key)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Cancel every timer whose key matches.
    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        let gone: Vec<K> = self.by_key.keys().filter(|k| !keep(k)).cloned().collect();
        for k in gone {
            self.cancel(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_deadline_order_and_rearm_moves_a_timer() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut t: Timers<&str> = Timers::new();
        t.set("b", t0 + s(2));
        t.set("a", t0 + s(3));
        t.set("c", t0 + s(1));
        t.set("a", t0 + s(1)); // re-armed earlier: ties broken by key
        assert_eq!(t.len(), 3);
        assert_eq!(t.next(), Some(t0 + s(1)));
        assert_eq!(t.pop_due(t0), None);
        assert_eq!(t.pop_due(t0 + s(2)), Some("a"));
        assert_eq!(t.pop_due(t0 + s(2)), Some("c"));
        assert_eq!(t.pop_due(t0 + s(2)), Some("b"));
        assert_eq!(t.pop_due(t0 + s(9)), None);
        assert!(t.is_empty());
    }

    #[test]
    fn set_min_only_lowers_and_cancel_and_retain_remove() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut t: Timers<u32> = Timers::new();
        t.set(1, t0 + s(10));
        t.set_min(1, t0 + s(20));
        assert_eq!(t.get(&1), Some(t0 + s(10)));
        t.set_min(1, t0 + s(5));
        assert_eq!(t.get(&1), Some(t0 + s(5)));
        t.set_min(2, t0 + s(7));
        assert!(t.is_armed(&2));
        assert_eq!(t.cancel(&1), Some(t0 + s(5)));
        assert_eq!(t.next(), Some(t0 + s(7)));
        t.set(3, t0 + s(1));
        t.retain(|k| *k != 3);
        assert_eq!(t.next(), Some(t0 + s(7)));
        assert_eq!(t.pop_due(t0 + s(7)), Some(2));
        assert!(t.is_empty());
    }
}
