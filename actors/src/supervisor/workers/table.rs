//! Translating an interface's compiled table into a worker's table:
//! opening an egress socket per (interface, TTL, mode) the outputs use,
//! noting outputs that cannot send, and sending the worker only what
//! changed (as `mcr::rib::TableSync` deltas) plus its ingress filter.

use std::collections::BTreeMap;
use std::os::fd::AsFd;

use mcr::dataplane::sockets;
use mcr::iface::InterfaceInfo;
use mcr::ipc::{EgressSpec, TableOutput, TableRule, ToWorker};
use mcr::rib::EgressKey;
use mcr::worker_policy::Phase;
use tracing::warn;

use super::process::LinkState;

/// An egress id that no socket has: outputs that cannot send keep their
/// place in the rule (so per-output counters line up) and count errors.
const NO_EGRESS: u32 = u32::MAX;

impl LinkState {
    /// Turn the compiled table into the worker's table: open egress
    /// sockets for new (interface, TTL, mode) combinations, note outputs
    /// that cannot send, and send the worker what changed.
    pub(super) fn apply_table(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        let mut problems = BTreeMap::new();
        let mut used: BTreeMap<EgressKey, u32> = BTreeMap::new();
        let mut adds: Vec<u32> = Vec::new();
        let mut desired: Vec<TableRule> = Vec::with_capacity(self.table.len());
        let table = self.table.clone();
        let ifaces = self.ifaces.clone();
        for r in table.iter() {
            let mut outs = Vec::with_capacity(r.outputs.len());
            for (i, o) in r.outputs.iter().enumerate() {
                let key = o.egress_key();
                let egress = match ifaces.get(&o.interface) {
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
                        match self.egress_for(&key, info, &mut adds) {
                            Ok(id) => {
                                used.insert(key, id);
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
                    egress,
                    group: o.group,
                    port: o.port,
                    mode: o.mode,
                });
            }
            desired.push(TableRule {
                key: r.key,
                id: r.rule_id.clone(),
                group: r.group,
                port: r.port,
                source: r.source,
                outputs: outs,
            });
        }
        for id in adds {
            if let Some((spec, _, fd)) = self.egress_fds.get(&id) {
                self.send(&ToWorker::AddEgress(spec.clone()), &[fd]);
            }
        }
        for m in self.sync.update(&desired) {
            self.send(&m, &[]);
        }
        // Egress sockets no output uses any more.
        let stale: Vec<EgressKey> = self
            .egress
            .keys()
            .filter(|(k, _)| !used.contains_key(*k))
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            if let Some(id) = self.egress.release(&k) {
                self.egress_fds.remove(&id);
                self.send(&ToWorker::RemoveEgress { id }, &[]);
            }
        }
        if let Some((ingress, _, fmt)) = &self.ingress {
            let dsts = self.filter_dsts();
            if let Err(e) =
                sockets::set_ingress_filter(ingress.as_fd(), Some(&dsts), fmt.link_header)
            {
                warn!(target: "Ingress", "worker {}: updating the ingress filter: {e}", self.key);
            }
        }
        self.problems = problems;
        self.in_sync = self.worker_hash == Some(self.sync.expected_hash());
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
        self.in_sync = false;
    }
}
