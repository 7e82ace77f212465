//! Interface snapshots: the host's interfaces by name at one moment, and
//! what changed between two snapshots. The daemon compares snapshots
//! instead of parsing individual netlink events, which cannot miss a
//! change (DESIGN.md, "Interfaces"). Reading the snapshot is the data
//! plane's (`dataplane::sockets`); this module owns its shape and the diff.

use std::collections::BTreeMap;

pub use crate::dataplane::sockets::{interface_info, list_interfaces, InterfaceInfo};

/// Interfaces by name.
pub type Ifaces = BTreeMap<String, InterfaceInfo>;

/// The interfaces now.
pub fn scan() -> Ifaces {
    list_interfaces()
        .into_iter()
        .map(|i| (i.name.clone(), i))
        .collect()
}

/// One change between two snapshots, in the order an observer would see
/// it happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Added { name: String, ifindex: u32 },
    Removed { name: String },
    Up { name: String },
    Down { name: String },
}

/// What changed from `old` to `new`. An interface deleted and re-created
/// under the same name (new ifindex) is a removal and an addition: every
/// socket bound to the old ifindex is dead. A new interface that is
/// already up is added and then up.
pub fn diff(old: &Ifaces, new: &Ifaces) -> Vec<Change> {
    let mut out = Vec::new();
    for (n, i) in new {
        match old.get(n) {
            None => {
                out.push(Change::Added {
                    name: n.clone(),
                    ifindex: i.ifindex,
                });
                if i.up {
                    out.push(Change::Up { name: n.clone() });
                }
            }
            Some(o) => {
                if o.ifindex != i.ifindex {
                    out.push(Change::Removed { name: n.clone() });
                    out.push(Change::Added {
                        name: n.clone(),
                        ifindex: i.ifindex,
                    });
                }
                if o.up != i.up {
                    out.push(if i.up {
                        Change::Up { name: n.clone() }
                    } else {
                        Change::Down { name: n.clone() }
                    });
                }
            }
        }
    }
    for n in old.keys() {
        if !new.contains_key(n) {
            out.push(Change::Removed { name: n.clone() });
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn info(name: &str, ifindex: u32, up: bool) -> InterfaceInfo {
        InterfaceInfo {
            name: name.into(),
            ifindex,
            mtu: 1500,
            up,
            running: up,
            addrs: Vec::new(),
            link_type: 1,
        }
    }

    pub(crate) fn snapshot(list: &[(&str, u32, bool)]) -> Ifaces {
        list.iter()
            .map(|(n, ix, up)| (n.to_string(), info(n, *ix, *up)))
            .collect()
    }

    fn name(n: &str) -> String {
        n.to_string()
    }

    #[test]
    fn identical_snapshots_have_no_changes() {
        let s = snapshot(&[("eth0", 2, true), ("eth1", 3, false)]);
        assert!(diff(&s, &s.clone()).is_empty());
    }

    #[test]
    fn additions_removals_and_state_changes_are_reported() {
        let old = snapshot(&[("eth0", 2, true), ("eth1", 3, false), ("gone", 4, true)]);
        let new = snapshot(&[("eth0", 2, false), ("eth1", 3, true), ("veth9", 9, true)]);
        assert_eq!(
            diff(&old, &new),
            vec![
                Change::Down { name: name("eth0") },
                Change::Up { name: name("eth1") },
                Change::Added {
                    name: name("veth9"),
                    ifindex: 9
                },
                Change::Up {
                    name: name("veth9")
                },
                Change::Removed { name: name("gone") },
            ]
        );
    }

    #[test]
    fn a_recreated_interface_is_removed_then_added() {
        let old = snapshot(&[("eth0", 2, true)]);
        let new = snapshot(&[("eth0", 7, true)]);
        assert_eq!(
            diff(&old, &new),
            vec![
                Change::Removed { name: name("eth0") },
                Change::Added {
                    name: name("eth0"),
                    ifindex: 7
                },
            ]
        );
    }

    #[test]
    fn an_address_change_alone_is_not_a_link_change() {
        let old = snapshot(&[("eth0", 2, true)]);
        let mut new = old.clone();
        if let Some(i) = new.get_mut("eth0") {
            i.addrs.push("10.0.0.1".parse().unwrap());
        }
        assert_ne!(old, new);
        assert!(diff(&old, &new).is_empty());
    }
}
