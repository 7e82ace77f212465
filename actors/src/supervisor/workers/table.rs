//! Translating an interface's compiled table into a worker's table:
//! opening an egress socket per (interface, TTL, mode) the outputs use,
//! noting outputs that cannot send, and sending the worker only what
//! changed (as `mcr::rib::TableSync` deltas) plus its ingress filter.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::sync::Arc;

use mcr::dataplane::sockets;
use mcr::iface::{Ifaces, InterfaceInfo};
use mcr::ipc::{EgressSpec, TableOutput, TableRule, ToWorker};
use mcr::rib::{CompiledRule, EgressKey, InterfaceTable};
use mcr::worker_policy::Phase;
use tracing::warn;

use super::process::LinkState;

/// An egress id that no socket has: outputs that cannot send keep their
/// place in the rule (so per-output counters line up) and count errors.
const NO_EGRESS: u32 = u32::MAX;

/// The worker's table for an interface's compiled table.
struct Translation {
    rules: Vec<TableRule>,
    /// (rule id, output index) -> why that output cannot send.
    problems: BTreeMap<(String, usize), String>,
    /// The egress sockets the table uses.
    used: BTreeMap<EgressKey, u32>,
}

/// Translate `table`: each output gets the egress id `egress` finds or
/// opens for its (interface, TTL, mode). An output whose interface is
/// missing, or whose socket cannot be opened, keeps its place with
/// `NO_EGRESS`; one whose interface is down still gets its socket (it
/// sends once the link comes up) and is reported.
fn translate(
    table: &InterfaceTable,
    ifaces: &Ifaces,
    mut egress: impl FnMut(&EgressKey, &InterfaceInfo) -> Result<u32, String>,
) -> Translation {
    let mut problems = BTreeMap::new();
    let mut used: BTreeMap<EgressKey, u32> = BTreeMap::new();
    let rules = table
        .iter()
        .map(|r| {
            translate_rule(r, ifaces, &mut egress, &mut problems, |k, id| {
                used.insert(k, id);
            })
        })
        .collect();
    Translation {
        rules,
        problems,
        used,
    }
}

/// One rule of `translate`: its outputs' problems go into `problems`, each
/// egress socket it uses to `used`.
fn translate_rule(
    r: &CompiledRule,
    ifaces: &Ifaces,
    egress: &mut impl FnMut(&EgressKey, &InterfaceInfo) -> Result<u32, String>,
    problems: &mut BTreeMap<(String, usize), String>,
    mut used: impl FnMut(EgressKey, u32),
) -> TableRule {
    let mut outs = Vec::with_capacity(r.outputs.len());
    for (i, o) in r.outputs.iter().enumerate() {
        let key = o.egress_key();
        let id = match ifaces.get(&o.interface) {
            None => {
                problems.insert(
                    (r.rule_id.clone(), i),
                    format!("output interface {} does not exist", o.interface),
                );
                NO_EGRESS
            }
            Some(info) => {
                if !info.up {
                    problems.insert(
                        (r.rule_id.clone(), i),
                        format!("output interface {} is down", o.interface),
                    );
                }
                match egress(&key, info) {
                    Ok(id) => {
                        used(key, id);
                        id
                    }
                    Err(e) => {
                        problems.insert((r.rule_id.clone(), i), e);
                        NO_EGRESS
                    }
                }
            }
        };
        outs.push(TableOutput {
            egress: id,
            group: o.group,
            port: o.port,
            mode: o.mode,
        });
    }
    TableRule {
        key: r.key,
        id: r.rule_id.clone(),
        group: r.group,
        port: r.port,
        source: r.source,
        outputs: outs,
    }
}

impl LinkState {
    /// Turn the compiled table into the worker's table: open egress
    /// sockets for new (interface, TTL, mode) combinations, note outputs
    /// that cannot send, and send the worker what changed.
    pub(super) fn apply_table(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        let table = self.table.clone();
        let ifaces = self.ifaces.clone();
        let base = match &self.sync.basis {
            Some((t, i)) if Arc::ptr_eq(i, &ifaces) => Some(t.clone()),
            _ => None,
        };
        self.applied = table.clone();
        let mut adds: Vec<u32> = Vec::new();
        let mut opened_all = true;
        let (msgs, stale) = match base {
            // The interfaces are as they were: only the entries that
            // differ need sockets, problems and messages.
            Some(base) => {
                let (gone, fresh) = mcr::rib::state::entries_diff(&base, &table);
                let mut removes = Vec::with_capacity(gone.len());
                for r in &gone {
                    removes.push(r.key);
                    let ends = (r.rule_id.clone(), usize::MAX);
                    let stale: Vec<(String, usize)> = self
                        .problems
                        .range((r.rule_id.clone(), 0)..=ends)
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in stale {
                        self.problems.remove(&k);
                    }
                }
                let mut problems = std::mem::take(&mut self.problems);
                let upserts: Vec<TableRule> = fresh
                    .iter()
                    .map(|r| {
                        translate_rule(
                            r,
                            &ifaces,
                            &mut |key, info| {
                                let id = self.egress_for(key, info, &mut adds);
                                opened_all &= id.is_ok();
                                id
                            },
                            &mut problems,
                            |_, _| {},
                        )
                    })
                    .collect();
                self.problems = problems;
                self.send_egress_adds(&adds);
                let msgs = self.sync.apply_changes(removes, upserts);
                // Only a rule gone or changed can leave a socket unused.
                let mut stale = Vec::new();
                if !gone.is_empty() {
                    let in_use = self.sync.egress_in_use();
                    stale = self
                        .egress
                        .keys()
                        .filter(|(_, id)| !in_use.contains(id))
                        .map(|(k, _)| k.clone())
                        .collect();
                }
                (msgs, stale)
            }
            None => {
                let Translation {
                    rules: desired,
                    problems,
                    used,
                } = translate(&table, &ifaces, |key, info| {
                    let id = self.egress_for(key, info, &mut adds);
                    opened_all &= id.is_ok();
                    id
                });
                self.problems = problems;
                self.send_egress_adds(&adds);
                let msgs = self.sync.update(&desired);
                // Egress sockets no output uses any more.
                let stale: Vec<EgressKey> = self
                    .egress
                    .keys()
                    .filter(|(k, _)| !used.contains_key(*k))
                    .map(|(k, _)| k.clone())
                    .collect();
                (msgs, stale)
            }
        };
        // A socket that failed to open is tried again on the next table
        // only if that one is translated whole.
        self.sync.basis = opened_all.then(|| (table.clone(), ifaces.clone()));
        for m in msgs {
            self.send(&m, &[]);
        }
        // After the deltas, which take the rules that used them away.
        self.release_egress(stale);
        if let Some((ingress, ifindex, fmt)) = &self.ingress {
            let dsts = self.filter_dsts();
            if let Err(e) =
                sockets::set_ingress_filter(ingress.as_fd(), Some(&dsts), fmt.link_header, *ifindex)
            {
                warn!(target: "Ingress", "worker {}: updating the ingress filter: {e}", self.key);
            }
        }
        let synced = self.worker_hash == Some(self.sync.expected_hash());
        self.set_in_sync(synced);
    }

    fn send_egress_adds(&self, adds: &[u32]) {
        for id in adds {
            if let Some((spec, _, fd)) = self.egress_fds.get(id) {
                self.send(&ToWorker::AddEgress(spec.clone()), &[fd]);
            }
        }
    }

    fn release_egress(&mut self, stale: Vec<EgressKey>) {
        for k in stale {
            if let Some(id) = self.egress.release(&k) {
                self.egress_fds.remove(&id);
                self.send(&ToWorker::RemoveEgress { id }, &[]);
            }
        }
    }

    /// The egress id for `key`, opening its socket if new (or if its
    /// interface was re-created with a new ifindex).
    fn egress_for(
        &mut self,
        key: &EgressKey,
        info: &InterfaceInfo,
        adds: &mut Vec<u32>,
    ) -> Result<u32, String> {
        if let Some(id) = self.egress.get(key) {
            match self.egress_fds.get(&id) {
                Some((spec, ifindex, _)) if *ifindex == info.ifindex && spec.mtu == info.mtu => {
                    return Ok(id)
                }
                _ => {
                    self.egress.release(key);
                    self.egress_fds.remove(&id);
                    self.send(&ToWorker::RemoveEgress { id }, &[]);
                }
            }
        }
        let sndbuf = mcr::env_override("MCR_SOCKET_SNDBUF").unwrap_or(sockets::EGRESS_SNDBUF);
        let fd = sockets::open_egress(
            &key.interface,
            info.ifindex,
            key.ttl.max(1),
            key.mode,
            sndbuf,
        )
        .map_err(|e| {
            format!(
                "cannot open a {} socket on {}: {e}",
                key.mode.as_str(),
                key.interface
            )
        })?;
        let (id, _) = self.egress.id(key);
        let spec = EgressSpec {
            id,
            interface: key.interface.clone(),
            ttl: key.ttl,
            mode: key.mode,
            mtu: info.mtu,
        };
        self.egress_fds.insert(id, (spec, info.ifindex, fd));
        adds.push(id);
        Ok(id)
    }

    /// Resend every egress socket and the whole table.
    pub(super) fn full_sync(&mut self, why: &str) {
        warn!(target: "RuleDispatch", "worker {}: full table resync: {why}", self.key);
        for (spec, _, fd) in self.egress_fds.values() {
            self.send(&ToWorker::AddEgress(spec.clone()), &[fd]);
        }
        for m in self.sync.full_sync() {
            self.send(&m, &[]);
        }
        // The worker's table drifted: its rules are not known to forward
        // until it acks the full table.
        self.forget_acked();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcr::rule::{OutputMode, Rule, RuleInput, RuleOutput, RuleSet};

    fn iface(name: &str, ifindex: u32, up: bool) -> (String, InterfaceInfo) {
        (
            name.into(),
            InterfaceInfo {
                name: name.into(),
                ifindex,
                mtu: 1500,
                up,
                running: up,
                addrs: Vec::new(),
                link_type: 1,
            },
        )
    }

    fn output(ifc: &str, port: u16, ttl: Option<u8>) -> RuleOutput {
        RuleOutput {
            interface: ifc.into(),
            group: "239.9.9.9".parse().unwrap(),
            port,
            ttl,
            mode: OutputMode::Republish,
            members_only: false,
        }
    }

    fn table(outputs: Vec<RuleOutput>) -> InterfaceTable {
        let rule = Rule::new(
            None,
            RuleInput {
                interface: "in0".into(),
                group: "239.1.1.1".parse().unwrap(),
                port: 5000,
                source: None,
            },
            outputs,
        );
        let set = RuleSet::from_rules([rule]).unwrap();
        mcr::rib::compile(&set).remove("in0").unwrap()
    }

    #[test]
    fn outputs_share_a_socket_per_interface_ttl_and_mode_and_keep_their_place() {
        let t = table(vec![
            output("up0", 6000, None),
            output("gone0", 6000, None),
            output("down0", 6000, None),
            // Same interface, TTL and mode as the first: same socket.
            output("up0", 6001, None),
            output("up0", 6002, Some(9)),
            output("broken0", 6000, None),
        ]);
        let ifaces: Ifaces = [
            iface("up0", 2, true),
            iface("down0", 3, false),
            iface("broken0", 4, true),
        ]
        .into_iter()
        .collect();
        let mut opened: Vec<EgressKey> = Vec::new();
        let tr = translate(&t, &ifaces, |key, _| {
            if key.interface == "broken0" {
                return Err("cannot open".into());
            }
            if let Some(i) = opened.iter().position(|k| k == key) {
                return Ok(i as u32);
            }
            opened.push(key.clone());
            Ok(opened.len() as u32 - 1)
        });
        let ids: Vec<u32> = tr.rules[0].outputs.iter().map(|o| o.egress).collect();
        assert_eq!(ids, [0, NO_EGRESS, 1, 0, 2, NO_EGRESS]);
        assert_eq!(tr.used.len(), 3);
        let id = tr.rules[0].id.clone();
        let problems: Vec<(usize, &str)> = tr
            .problems
            .iter()
            .map(|((r, i), p)| {
                assert_eq!(r, &id);
                (*i, p.as_str())
            })
            .collect();
        assert_eq!(
            problems,
            [
                (1, "output interface gone0 does not exist"),
                (2, "output interface down0 is down"),
                (5, "cannot open"),
            ]
        );
    }
}
