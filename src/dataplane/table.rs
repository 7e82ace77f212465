//! A worker's forwarding table: the rules it was sent, indexed for the
//! per-packet lookup, with their counters.
//!
//! Lookup precedence for a packet (source S, destination G, port P): a rule
//! for (G, P) from S, then (G, P) from any source, then (G, any port) from
//! S, then (G, any port) from any source.
//! The hot path is one or two hash probes with a cheap integer hash and no
//! allocation.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::Ipv4Addr;

use crate::hash::TableHash;
use crate::ipc::{OutputCounters, RuleCounters, TableRule};

/// Multiply-xorshift hasher for integer keys we build ourselves. Keys are
/// never attacker-chosen in bulk (they come from the supervisor), so no
/// DoS-resistant hasher is needed and SipHash would cost more than the
/// rest of the lookup.
#[derive(Default, Clone, Copy)]
pub struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 ^= v;
    }
}

pub type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

fn index_key(group: Ipv4Addr, port: u16) -> u64 {
    (u64::from(u32::from(group)) << 16) | u64::from(port)
}

/// A rule as installed, with its counters.
#[derive(Debug)]
pub struct Entry {
    pub rule: TableRule,
    pub hash: u64,
    pub source: Option<u32>,
    pub packets: u64,
    pub bytes: u64,
    pub outputs: Vec<OutputCounters>,
    /// Counters changed since the last stats report.
    pub dirty: bool,
}

/// The table. Entries live in a slab so that the index holds small
/// integers and a removed slot is reused.
#[derive(Default)]
pub struct Table {
    slab: Vec<Option<Entry>>,
    free: Vec<u32>,
    by_key: IntMap<u64, u32>,
    /// (group, port) -> slab indices, source-specific rules first.
    index: IntMap<u64, Vec<u32>>,
    hash: TableHash,
}

impl Table {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub fn hash(&self) -> u64 {
        self.hash.0
    }

    /// Add or replace the rule with `rule.key`. A replaced rule keeps its
    /// rule counters, and the counters of outputs that are unchanged.
    pub fn upsert(&mut self, rule: TableRule) {
        let mut packets = 0;
        let mut bytes = 0;
        let mut outputs: Vec<OutputCounters> = vec![OutputCounters::default(); rule.outputs.len()];
        if let Some(old) = self.remove(rule.key) {
            packets = old.packets;
            bytes = old.bytes;
            for (i, o) in rule.outputs.iter().enumerate() {
                // Only the egress socket changes when an output's interface
                // vanishes and comes back: that is the same output, and its
                // counters go on (as the worker's `sent` does) instead of
                // restarting from zero.
                let same_place = || {
                    old.rule.outputs.get(i).and_then(|p| {
                        (p.group == o.group && p.port == o.port && p.mode == o.mode).then_some(i)
                    })
                };
                if let Some(j) = old
                    .rule
                    .outputs
                    .iter()
                    .position(|p| p == o)
                    .or_else(same_place)
                {
                    outputs[i] = old.outputs[j].clone();
                }
            }
        }
        let hash = rule.entry_hash();
        self.hash.add(hash);
        let key = rule.key;
        let ik = index_key(rule.group, rule.port);
        let source = rule.source.map(u32::from);
        let entry = Entry {
            rule,
            hash,
            source,
            packets,
            bytes,
            outputs,
            dirty: true,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = Some(entry);
                s
            }
            None => {
                self.slab.push(Some(entry));
                (self.slab.len() - 1) as u32
            }
        };
        self.by_key.insert(key, slot);
        let list = self.index.entry(ik).or_default();
        if source.is_some() {
            list.insert(0, slot);
        } else {
            list.push(slot);
        }
    }

    /// Remove the rule with `key`, returning it.
    pub fn remove(&mut self, key: u64) -> Option<Entry> {
        let slot = self.by_key.remove(&key)?;
        let entry = self.slab[slot as usize].take()?;
        self.free.push(slot);
        self.hash.remove(entry.hash);
        let ik = index_key(entry.rule.group, entry.rule.port);
        if let Some(list) = self.index.get_mut(&ik) {
            list.retain(|s| *s != slot);
            if list.is_empty() {
                self.index.remove(&ik);
            }
        }
        Some(entry)
    }

    /// Remove every rule.
    pub fn clear(&mut self) {
        *self = Table::default();
    }

    /// The slot of the rule a packet matches, if any.
    #[inline]
    pub fn lookup(&self, src: Ipv4Addr, dst: Ipv4Addr, port: u16) -> Option<u32> {
        let src = u32::from(src);
        if let Some(s) = self.match_in(index_key(dst, port), src) {
            return Some(s);
        }
        if port != 0 {
            return self.match_in(index_key(dst, 0), src);
        }
        None
    }

    #[inline]
    fn match_in(&self, ik: u64, src: u32) -> Option<u32> {
        let list = self.index.get(&ik)?;
        for &slot in list {
            if let Some(e) = &self.slab[slot as usize] {
                match e.source {
                    Some(s) if s != src => continue,
                    _ => return Some(slot),
                }
            }
        }
        None
    }

    #[inline]
    pub fn entry(&self, slot: u32) -> Option<&Entry> {
        self.slab.get(slot as usize).and_then(|e| e.as_ref())
    }

    #[inline]
    pub fn entry_mut(&mut self, slot: u32) -> Option<&mut Entry> {
        self.slab.get_mut(slot as usize).and_then(|e| e.as_mut())
    }

    pub fn get(&self, key: u64) -> Option<&Entry> {
        self.by_key.get(&key).and_then(|s| self.entry(*s))
    }

    pub fn get_mut(&mut self, key: u64) -> Option<&mut Entry> {
        let slot = *self.by_key.get(&key)?;
        self.entry_mut(slot)
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.slab.iter().flatten()
    }

    /// Counters of rules that changed since the last call (all rules if
    /// `all`), marking them clean.
    pub fn take_counters(&mut self, all: bool) -> Vec<RuleCounters> {
        let mut v = Vec::new();
        for e in self.slab.iter_mut().flatten() {
            if all || e.dirty {
                e.dirty = false;
                v.push(RuleCounters {
                    key: e.rule.key,
                    packets: e.packets,
                    bytes: e.bytes,
                    outputs: e.outputs.clone(),
                });
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{rule_key, table_hash, TableOutput};
    use crate::rule::OutputMode;

    pub(crate) fn tr(id: &str, g: &str, port: u16, src: Option<&str>) -> TableRule {
        TableRule {
            key: rule_key(id),
            id: id.into(),
            group: g.parse().unwrap(),
            port,
            source: src.map(|s| s.parse().unwrap()),
            outputs: vec![TableOutput {
                egress: 0,
                group: "239.9.9.9".parse().unwrap(),
                port: 9,
                mode: OutputMode::Republish,
            }],
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn lookup_precedence() {
        let mut t = Table::new();
        t.upsert(tr("any-any", "239.1.1.1", 0, None));
        t.upsert(tr("any-port", "239.1.1.1", 5000, None));
        t.upsert(tr("src-port", "239.1.1.1", 5000, Some("10.0.0.1")));
        t.upsert(tr("src-any", "239.1.1.1", 0, Some("10.0.0.2")));
        let id = |s: Option<u32>| t.entry(s.unwrap()).unwrap().rule.id.clone();
        assert_eq!(
            id(t.lookup(ip("10.0.0.1"), ip("239.1.1.1"), 5000)),
            "src-port"
        );
        assert_eq!(
            id(t.lookup(ip("10.0.0.9"), ip("239.1.1.1"), 5000)),
            "any-port"
        );
        assert_eq!(
            id(t.lookup(ip("10.0.0.2"), ip("239.1.1.1"), 7000)),
            "src-any"
        );
        assert_eq!(
            id(t.lookup(ip("10.0.0.9"), ip("239.1.1.1"), 7000)),
            "any-any"
        );
        assert_eq!(t.lookup(ip("10.0.0.9"), ip("239.1.1.2"), 5000), None);
    }

    #[test]
    fn hash_tracks_contents() {
        let mut t = Table::new();
        let a = tr("a", "239.1.1.1", 1, None);
        let b = tr("b", "239.1.1.2", 1, None);
        t.upsert(a.clone());
        t.upsert(b.clone());
        assert_eq!(t.hash(), table_hash([&a, &b]));
        let mut a2 = a.clone();
        a2.port = 2;
        t.upsert(a2.clone());
        assert_eq!(t.len(), 2);
        assert_eq!(t.hash(), table_hash([&a2, &b]));
        assert!(
            t.lookup(ip("1.1.1.1"), ip("239.1.1.1"), 1).is_none(),
            "old index entry gone"
        );
        assert!(t.lookup(ip("1.1.1.1"), ip("239.1.1.1"), 2).is_some());
        t.remove(a.key);
        t.remove(b.key);
        assert_eq!(t.hash(), 0);
        assert!(t.is_empty());
    }

    #[test]
    fn replacing_a_rule_keeps_counters_of_unchanged_outputs() {
        let mut t = Table::new();
        let mut a = tr("a", "239.1.1.1", 1, None);
        t.upsert(a.clone());
        let s = t.lookup(ip("1.1.1.1"), ip("239.1.1.1"), 1).unwrap();
        let e = t.entry_mut(s).unwrap();
        e.packets = 10;
        e.outputs[0].packets = 10;
        a.outputs.push(TableOutput {
            egress: 1,
            group: ip("239.8.8.8"),
            port: 8,
            mode: OutputMode::Republish,
        });
        t.upsert(a.clone());
        let e = t.get(a.key).unwrap();
        assert_eq!(e.packets, 10);
        assert_eq!(e.outputs[0].packets, 10);
        assert_eq!(e.outputs[1].packets, 0);
        assert_eq!(t.take_counters(false).len(), 1);
        assert_eq!(t.take_counters(false).len(), 0, "clean after a report");
        // The output's interface vanished (no socket) and came back (a new
        // one): the same output, so its count goes on.
        for egress in [u32::MAX, 7] {
            a.outputs[0].egress = egress;
            t.upsert(a.clone());
            assert_eq!(t.get(a.key).unwrap().outputs[0].packets, 10, "{egress}");
        }
        // A different destination at that place is a different output.
        a.outputs[0].port = 99;
        t.upsert(a.clone());
        assert_eq!(t.get(a.key).unwrap().outputs[0].packets, 0);
    }
}
