//! Sockets that make input traffic arrive: a membership of every input
//! group on its input interface (so NICs deliver it: RFC 1112 §6.4, held
//! at the link layer by `mcr::sys::membership`), the IGMP reports that
//! make switches and routers send it (RFC 3376 §5 host side, `input_igmp`;
//! the kernel's own in `MCR_INPUT_JOIN=ip` mode), and sinks for unicast
//! inputs (so the kernel does not answer with ICMP port-unreachable). Kept
//! by the root so they survive WorkerManager restarts: a restart must not
//! make the host leave its groups.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;

use mcr::dataplane::sockets::open_sink;
use mcr::iface::Ifaces;
use mcr::rib::state::Tables;
use mcr::sys::{JoinMode, Memberships};
use tracing::{debug, warn};

use super::input_igmp::{InputGroups, InputReporters, Leaves};

pub struct InputSockets {
    pub memberships: Memberships,
    pub sinks: BTreeMap<(Ipv4Addr, u16), OwnedFd>,
    reporters: InputReporters,
}

impl Default for InputSockets {
    fn default() -> Self {
        Self {
            memberships: Memberships::with_mode(JoinMode::from_env()),
            sinks: BTreeMap::new(),
            reporters: InputReporters::default(),
        }
    }
}

/// (ifindex, group) memberships.
type Groups = BTreeSet<(u32, Ipv4Addr)>;
/// (local address, port) sinks.
type Sinks = BTreeSet<(Ipv4Addr, u16)>;

/// Memberships and sinks every table needs on the interfaces now.
fn wanted(tables: &Tables, ifaces: &Ifaces) -> (Groups, Sinks) {
    let mut groups = BTreeSet::new();
    let mut sinks = BTreeSet::new();
    for (ifc, table) in tables {
        let Some(info) = ifaces.get(ifc) else {
            continue;
        };
        for r in table.iter() {
            if r.group.is_multicast() {
                groups.insert((info.ifindex, r.group));
            } else if r.port != 0 && info.addrs.contains(&r.group) {
                sinks.insert((r.group, r.port));
            }
        }
    }
    (groups, sinks)
}

/// The groups to report per interface, with the address to report from
/// (RFC 3376 §4.2.13 allows 0.0.0.0 on a link without one).
fn reports(groups: &Groups, ifaces: &Ifaces) -> BTreeMap<u32, InputGroups> {
    let mut out = BTreeMap::new();
    for info in ifaces.values() {
        let mine: BTreeSet<Ipv4Addr> = groups
            .range((info.ifindex, Ipv4Addr::UNSPECIFIED)..=(info.ifindex, Ipv4Addr::BROADCAST))
            .map(|(_, g)| *g)
            .collect();
        if !mine.is_empty() {
            out.insert(
                info.ifindex,
                InputGroups {
                    interface: info.name.clone(),
                    address: info.addrs.first().copied().unwrap_or(Ipv4Addr::UNSPECIFIED),
                    groups: mine,
                },
            );
        }
    }
    out
}

impl InputSockets {
    /// Whether an input group reporter ended on an error since the last
    /// call: the inputs should be reconciled (with unchanged tables) to
    /// start it again.
    pub fn take_failed(&self) -> bool {
        self.reporters.take_failed()
    }

    /// The leaves of the reporters dropped so far, to wait for without
    /// holding this.
    pub fn leaves(&self) -> Leaves {
        self.reporters.leaves()
    }

    /// Join the multicast input groups of every table on its interface,
    /// leave the ones no rule needs, and sink local unicast input ports.
    pub fn reconcile(&mut self, tables: &Tables, ifaces: &Ifaces) {
        let (want_groups, want_sinks) = wanted(tables, ifaces);
        let live: BTreeSet<u32> = ifaces.values().map(|i| i.ifindex).collect();
        let joined: Vec<(u32, Ipv4Addr)> = self.memberships.joined().collect();
        for (ifindex, group) in joined {
            if !live.contains(&ifindex) {
                self.memberships.forget_interface(ifindex);
            } else if !want_groups.contains(&(ifindex, group)) {
                if let Err(e) = self.memberships.leave(ifindex, group) {
                    debug!(target: "Network", "leaving {group} on ifindex {ifindex}: {e}");
                }
            }
        }
        for (ifindex, group) in &want_groups {
            if !self.memberships.is_joined(*ifindex, *group) {
                match self.memberships.join(*ifindex, *group) {
                    Ok(()) => debug!(target: "Network", "joined {group} on ifindex {ifindex}"),
                    Err(e) => {
                        warn!(target: "Network", "cannot join {group} on ifindex {ifindex}: {e}")
                    }
                }
            }
        }
        if self.memberships.mode() == JoinMode::Link {
            self.reporters.reconcile(reports(&want_groups, ifaces));
        }
        self.sinks.retain(|k, _| want_sinks.contains(k));
        for (addr, port) in want_sinks {
            if let std::collections::btree_map::Entry::Vacant(e) = self.sinks.entry((addr, port)) {
                match open_sink(addr, port) {
                    Ok(fd) => {
                        e.insert(fd);
                    }
                    // Someone else listens there: they will answer instead.
                    Err(err) => debug!(target: "Network", "no sink on {addr}:{port}: {err}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcr::rule::{OutputMode, Rule, RuleInput, RuleOutput, RuleSet};

    fn rule(ifc: &str, group: &str, port: u16) -> Rule {
        Rule::new(
            None,
            RuleInput {
                interface: ifc.into(),
                group: group.parse().unwrap(),
                port,
                source: None,
            },
            vec![RuleOutput {
                interface: "out0".into(),
                group: "239.9.9.9".parse().unwrap(),
                port: 6000,
                ttl: None,
                mode: OutputMode::Republish,
                members_only: false,
            }],
        )
    }

    fn iface(name: &str, ifindex: u32, addrs: &[&str]) -> (String, mcr::iface::InterfaceInfo) {
        (
            name.into(),
            mcr::iface::InterfaceInfo {
                name: name.into(),
                ifindex,
                mtu: 1500,
                up: true,
                running: true,
                addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
                link_type: 1,
            },
        )
    }

    #[test]
    fn groups_are_joined_on_their_input_interface_and_local_unicast_is_sunk() {
        let rules = RuleSet::from_rules([
            rule("eth0", "239.1.1.1", 5000),
            rule("eth0", "10.0.0.1", 5001),
            // Not a local address: nothing to sink.
            rule("eth0", "10.0.0.99", 5002),
            // Its interface does not exist.
            rule("eth7", "239.1.1.2", 5000),
        ])
        .unwrap();
        let tables = mcr::rib::state::recompile(&Tables::new(), mcr::rib::compile(&rules));
        let ifaces: Ifaces = [iface("eth0", 4, &["10.0.0.1"])].into_iter().collect();
        let (groups, sinks) = wanted(&tables, &ifaces);
        assert_eq!(
            groups.into_iter().collect::<Vec<_>>(),
            [(4, "239.1.1.1".parse().unwrap())]
        );
        assert_eq!(
            sinks.into_iter().collect::<Vec<_>>(),
            [("10.0.0.1".parse().unwrap(), 5001)]
        );
    }
}
