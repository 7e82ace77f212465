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
use std::sync::Arc;

use mcr::dataplane::sockets::open_sink;
use mcr::iface::Ifaces;
use mcr::rib::state::Tables;
use mcr::rib::CompiledRule;
use mcr::sys::{JoinMode, Memberships};
use tracing::{debug, warn};

use super::input_igmp::{InputGroups, InputReporters, Leaves};

pub struct InputSockets {
    pub memberships: Memberships,
    pub sinks: BTreeMap<(Ipv4Addr, u16), OwnedFd>,
    reporters: InputReporters,
    /// What the last reconcile was made for, and how many table entries
    /// want each membership and sink: with the same interfaces, the next
    /// tables are reconciled by the entries that differ (one `add` among
    /// 10,000 rules joins one group) instead of from scratch.
    basis: Option<Basis>,
}

struct Basis {
    tables: Tables,
    ifaces: Arc<Ifaces>,
    groups: BTreeMap<(u32, Ipv4Addr), usize>,
    sinks: BTreeMap<(Ipv4Addr, u16), usize>,
    reports: BTreeMap<u32, InputGroups>,
}

impl Default for InputSockets {
    fn default() -> Self {
        Self {
            memberships: Memberships::with_mode(JoinMode::from_env()),
            sinks: BTreeMap::new(),
            reporters: InputReporters::default(),
            basis: None,
        }
    }
}

/// (ifindex, group) memberships.
type Groups = BTreeSet<(u32, Ipv4Addr)>;
/// (local address, port) sinks.
type Sinks = BTreeSet<(Ipv4Addr, u16)>;

/// Memberships and sinks every table needs on the interfaces now.
fn wanted(tables: &Tables, ifaces: &Ifaces) -> (Groups, Sinks) {
    let (groups, sinks) = wanted_counts(tables, ifaces);
    (groups.into_keys().collect(), sinks.into_keys().collect())
}

/// `wanted`, with the number of table entries that want each.
type Counts = (
    BTreeMap<(u32, Ipv4Addr), usize>,
    BTreeMap<(Ipv4Addr, u16), usize>,
);

fn wanted_counts(tables: &Tables, ifaces: &Ifaces) -> Counts {
    let mut counts = Counts::default();
    for (ifc, table) in tables {
        let Some(info) = ifaces.get(ifc) else {
            continue;
        };
        for r in table.iter() {
            count(&mut counts, info, r, 1);
        }
    }
    counts
}

/// What entry `r` of `info`'s table wants, added to (`by` 1) or taken
/// from (`by` -1) `counts`; the membership or sink it names, if any.
fn count(
    counts: &mut Counts,
    info: &mcr::iface::InterfaceInfo,
    r: &CompiledRule,
    by: isize,
) -> Option<Want> {
    fn bump<K: Ord>(m: &mut BTreeMap<K, usize>, k: K, by: isize) {
        let n = m.get(&k).copied().unwrap_or(0).saturating_add_signed(by);
        if n == 0 {
            m.remove(&k);
        } else {
            m.insert(k, n);
        }
    }
    if r.group.is_multicast() {
        bump(&mut counts.0, (info.ifindex, r.group), by);
        Some(Want::Group(info.ifindex, r.group))
    } else if r.port != 0 && info.addrs.contains(&r.group) {
        bump(&mut counts.1, (r.group, r.port), by);
        Some(Want::Sink(r.group, r.port))
    } else {
        None
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Want {
    Group(u32, Ipv4Addr),
    Sink(Ipv4Addr, u16),
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
        self.basis = None;
        let (groups, sinks) = wanted(tables, ifaces);
        self.reconcile_all(&groups, sinks, reports(&groups, ifaces), ifaces);
    }

    /// `reconcile` for the WorkerManager, which holds the interfaces by
    /// pointer: while they stay the same, tables that changed in a few
    /// entries are reconciled by those entries alone.
    pub fn reconcile_shared(&mut self, tables: &Tables, ifaces: &Arc<Ifaces>) {
        let same = self
            .basis
            .as_ref()
            .is_some_and(|b| Arc::ptr_eq(&b.ifaces, ifaces) && !same_tables(&b.tables, tables));
        if same && self.memberships.mode() == JoinMode::Link {
            if let Some(b) = self.basis.take() {
                self.reconcile_changes(b, tables);
                return;
            }
        }
        let (groups, sinks) = wanted_counts(tables, ifaces);
        let want_groups: Groups = groups.keys().copied().collect();
        let want_sinks: Sinks = sinks.keys().copied().collect();
        let reports = reports(&want_groups, ifaces);
        self.reconcile_all(&want_groups, want_sinks, reports.clone(), ifaces);
        self.basis = Some(Basis {
            tables: tables.clone(),
            ifaces: ifaces.clone(),
            groups,
            sinks,
            reports,
        });
    }

    /// `reconcile` from what changed since `b` was made: only the entries
    /// of the tables that differ are counted in or out, and only the
    /// memberships, sinks and reports whose count reached or left zero
    /// change.
    fn reconcile_changes(&mut self, mut b: Basis, tables: &Tables) {
        let empty = mcr::rib::InterfaceTable::new();
        let mut touched: BTreeSet<Want> = BTreeSet::new();
        let mut counts: Counts = (std::mem::take(&mut b.groups), std::mem::take(&mut b.sinks));
        let names: BTreeSet<&String> = tables.keys().chain(b.tables.keys()).collect();
        for ifc in names {
            let (old, new) = (b.tables.get(ifc), tables.get(ifc));
            if let (Some(o), Some(n)) = (old, new) {
                if Arc::ptr_eq(o, n) {
                    continue;
                }
            }
            let Some(info) = b.ifaces.get(ifc) else {
                continue;
            };
            let (old, new) = (old.map_or(&empty, |t| &**t), new.map_or(&empty, |t| &**t));
            let (gone, fresh) = mcr::rib::state::entries_diff(old, new);
            for r in gone {
                touched.extend(count(&mut counts, info, r, -1));
            }
            for r in fresh {
                touched.extend(count(&mut counts, info, r, 1));
            }
        }
        let mut reports_changed: BTreeSet<u32> = BTreeSet::new();
        for w in touched {
            match w {
                Want::Group(ifindex, group) => {
                    let want = counts.0.contains_key(&(ifindex, group));
                    if want != self.memberships.is_joined(ifindex, group) {
                        if want {
                            self.join(ifindex, group);
                        } else if let Err(e) = self.memberships.leave(ifindex, group) {
                            debug!(target: "Network", "leaving {group} on ifindex {ifindex}: {e}");
                        }
                    }
                    let entry = b.reports.entry(ifindex);
                    let Some(info) = b.ifaces.values().find(|i| i.ifindex == ifindex) else {
                        continue;
                    };
                    let r = entry.or_insert_with(|| InputGroups {
                        interface: info.name.clone(),
                        address: info.addrs.first().copied().unwrap_or(Ipv4Addr::UNSPECIFIED),
                        groups: BTreeSet::new(),
                    });
                    if want {
                        r.groups.insert(group);
                    } else {
                        r.groups.remove(&group);
                    }
                    reports_changed.insert(ifindex);
                }
                Want::Sink(addr, port) => {
                    if counts.1.contains_key(&(addr, port)) {
                        self.open_sink(addr, port);
                    } else {
                        self.sinks.remove(&(addr, port));
                    }
                }
            }
        }
        for ifindex in reports_changed {
            let w = b.reports.get(&ifindex).cloned();
            if w.as_ref().is_some_and(|w| w.groups.is_empty()) {
                b.reports.remove(&ifindex);
            }
            self.reporters
                .set(ifindex, w.filter(|w| !w.groups.is_empty()));
        }
        (b.groups, b.sinks) = counts;
        b.tables = tables.clone();
        self.basis = Some(b);
    }

    fn join(&mut self, ifindex: u32, group: Ipv4Addr) {
        match self.memberships.join(ifindex, group) {
            Ok(()) => debug!(target: "Network", "joined {group} on ifindex {ifindex}"),
            Err(e) => warn!(target: "Network", "cannot join {group} on ifindex {ifindex}: {e}"),
        }
    }

    fn open_sink(&mut self, addr: Ipv4Addr, port: u16) {
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

    fn reconcile_all(
        &mut self,
        want_groups: &Groups,
        want_sinks: Sinks,
        reports: BTreeMap<u32, InputGroups>,
        ifaces: &Ifaces,
    ) {
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
        for (ifindex, group) in want_groups {
            if !self.memberships.is_joined(*ifindex, *group) {
                self.join(*ifindex, *group);
            }
        }
        if self.memberships.mode() == JoinMode::Link {
            self.reporters.reconcile(reports);
        }
        self.sinks.retain(|k, _| want_sinks.contains(k));
        for (addr, port) in want_sinks {
            self.open_sink(addr, port);
        }
    }
}

/// Whether two table sets share every table by pointer.
fn same_tables(a: &Tables, b: &Tables) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, ta), (kb, tb))| ka == kb && Arc::ptr_eq(ta, tb))
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
