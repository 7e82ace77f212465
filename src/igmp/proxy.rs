//! The IGMP proxy's membership database (RFC 4605 §4.1): the memberships
//! each downstream interface's querier has learned, merged into the one
//! membership the proxy reports upstream as a host.
//!
//! Owns the per-downstream-interface records and the merge. RFC 4605 §4.1
//! says the proxy merges the downstream records with the rules of RFC
//! 3376 §3.2 (the "interface state" of several sockets): the merged filter
//! of a group is EXCLUDE as soon as one record is EXCLUDE, with the
//! sources every EXCLUDE record blocks and no INCLUDE record asks for;
//! otherwise INCLUDE with the union of the INCLUDE lists. The upstream
//! reports and the forwarding entries (one (*,G) from the upstream per
//! merged group, outputs from the downstream memberships) are the shell's.
//!
//! A restarted querier re-learns its members before it replaces its whole
//! record set (`replace`), so the merge never loses a member that is
//! still there.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::host::HostFilter;
use super::state::FilterMode;

/// See the module documentation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyMembership {
    records: BTreeMap<String, BTreeMap<Ipv4Addr, HostFilter>>,
}

impl ProxyMembership {
    /// Set `interface`'s record for `group`; INCLUDE {} removes it.
    pub fn set(&mut self, interface: &str, group: Ipv4Addr, filter: HostFilter) {
        if filter.is_none() {
            self.leave(interface, group);
            return;
        }
        self.records
            .entry(interface.to_string())
            .or_default()
            .insert(group, filter);
    }

    pub fn leave(&mut self, interface: &str, group: Ipv4Addr) {
        if let Some(r) = self.records.get_mut(interface) {
            r.remove(&group);
            if r.is_empty() {
                self.records.remove(interface);
            }
        }
    }

    /// Replace every record of `interface` (a restarted querier's
    /// re-learned membership).
    pub fn replace(&mut self, interface: &str, groups: BTreeMap<Ipv4Addr, HostFilter>) {
        self.records.remove(interface);
        for (g, f) in groups {
            self.set(interface, g, f);
        }
    }

    /// Forget an interface that is no longer downstream.
    pub fn remove_interface(&mut self, interface: &str) {
        self.records.remove(interface);
    }

    /// Keep only the records of `downstream` interfaces.
    pub fn retain_interfaces(&mut self, downstream: &[String]) {
        self.records.retain(|k, _| downstream.contains(k));
    }

    /// Downstream interfaces with a record for `group`.
    pub fn interfaces_of(&self, group: Ipv4Addr) -> Vec<&str> {
        self.records
            .iter()
            .filter(|(_, r)| r.contains_key(&group))
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// The merged membership to report upstream (RFC 3376 §3.2).
    pub fn merged(&self) -> BTreeMap<Ipv4Addr, HostFilter> {
        let mut by_group: BTreeMap<Ipv4Addr, Vec<&HostFilter>> = BTreeMap::new();
        for r in self.records.values() {
            for (g, f) in r {
                by_group.entry(*g).or_default().push(f);
            }
        }
        by_group
            .into_iter()
            .map(|(g, fs)| (g, merge(&fs)))
            .filter(|(_, f)| !f.is_none())
            .collect()
    }
}

/// RFC 3376 §3.2: the interface state of several socket states.
pub fn merge(filters: &[&HostFilter]) -> HostFilter {
    let include: BTreeSet<Ipv4Addr> = filters
        .iter()
        .filter(|f| f.mode == FilterMode::Include)
        .flat_map(|f| f.sources.iter().copied())
        .collect();
    let mut excludes = filters.iter().filter(|f| f.mode == FilterMode::Exclude);
    let Some(first) = excludes.next() else {
        return HostFilter {
            mode: FilterMode::Include,
            sources: include,
        };
    };
    let mut blocked = first.sources.clone();
    for f in excludes {
        blocked = blocked.intersection(&f.sources).copied().collect();
    }
    HostFilter {
        mode: FilterMode::Exclude,
        sources: blocked.difference(&include).copied().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
    const G2: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 2);

    fn s(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 9, 0, n)
    }

    fn inc(l: &[u8]) -> HostFilter {
        HostFilter {
            mode: FilterMode::Include,
            sources: l.iter().map(|n| s(*n)).collect(),
        }
    }

    fn exc(l: &[u8]) -> HostFilter {
        HostFilter {
            mode: FilterMode::Exclude,
            sources: l.iter().map(|n| s(*n)).collect(),
        }
    }

    #[test]
    fn merging_follows_rfc3376_interface_state_rules() {
        // Only INCLUDE records: the union.
        assert_eq!(merge(&[&inc(&[1, 2]), &inc(&[2, 3])]), inc(&[1, 2, 3]));
        // One EXCLUDE wins the mode; what an INCLUDE asks for is not blocked.
        assert_eq!(merge(&[&inc(&[1]), &exc(&[1, 2])]), exc(&[2]));
        // Several EXCLUDEs block only what all of them block.
        assert_eq!(
            merge(&[&exc(&[1, 2, 3]), &exc(&[2, 3, 4]), &inc(&[3])]),
            exc(&[2])
        );
        // An any-source member makes the group any-source.
        assert_eq!(merge(&[&exc(&[]), &inc(&[5])]), HostFilter::any());
        assert!(merge(&[]).is_none());
    }

    #[test]
    fn interfaces_join_and_leave_and_the_merge_follows() {
        let mut p = ProxyMembership::default();
        p.set("eth1", G, inc(&[1]));
        p.set("eth2", G, inc(&[2]));
        p.set("eth2", G2, HostFilter::any());
        assert_eq!(p.merged()[&G], inc(&[1, 2]));
        assert_eq!(p.interfaces_of(G), ["eth1", "eth2"]);
        // INCLUDE {} is a leave.
        p.set("eth1", G, inc(&[]));
        assert_eq!(p.interfaces_of(G), ["eth2"]);
        assert_eq!(p.merged()[&G], inc(&[2]));
        p.leave("eth2", G);
        assert!(!p.merged().contains_key(&G));
        assert_eq!(p.merged().len(), 1);
        // A restarted querier replaces its interface's records only.
        p.set("eth1", G, exc(&[]));
        p.replace("eth2", BTreeMap::from([(G, exc(&[7]))]));
        assert_eq!(p.merged().keys().collect::<Vec<_>>(), [&G]);
        assert_eq!(p.merged()[&G], HostFilter::any());
        p.retain_interfaces(&["eth2".to_string()]);
        assert_eq!(p.merged()[&G], exc(&[7]));
        p.remove_interface("eth2");
        assert!(p.merged().is_empty());
    }
}
