//! StatsActor: collects the counters every worker reports each stats
//! interval and computes rates from consecutive reports, per worker, per
//! rule and per output. Workers report cumulative counters, so a restart
//! of this actor loses only the rate of one interval.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use mcr::control::{OutputStats, RuleStats, StatsReport, WorkerStats};
use mcr::ipc::{rule_key, RuleCounters, WorkerCounters};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::handles::{StatsMsg, WorkerKey};
use super::shared::Shared;

/// One complete report of a worker.
#[derive(Clone, Default)]
struct Snapshot {
    at: Option<Instant>,
    counters: WorkerCounters,
}

/// A rule's counters in the last report, and in the one before it if the
/// rule changed in the last report (no entry: its rate is zero).
#[derive(Default)]
struct RuleSeen {
    cur: RuleCounters,
    prev: Option<RuleCounters>,
}

#[derive(Default)]
struct PerWorker {
    pid: u32,
    /// Rules of a report still arriving in chunks.
    pending: HashMap<u64, RuleCounters>,
    cur: Snapshot,
    prev: Snapshot,
    /// Reports carry only the rules that changed, so this is updated in
    /// place: copying every rule's counters each interval would cost the
    /// supervisor time in proportion to the rule count.
    rules: HashMap<u64, RuleSeen>,
    /// Rules whose `prev` is set (they changed in the last report).
    changed: Vec<u64>,
    /// Complete reports since the last pruning of removed rules.
    since_prune: u32,
}

/// Complete reports between two prunings of rules that no longer exist
/// (about a minute at the default interval): a daemon with rule churn must
/// not grow for months, and a per-report check would cost time in
/// proportion to the rule count.
const PRUNE_EVERY: u32 = 60;

impl PerWorker {
    /// Seconds between the last two complete reports (0 before there are
    /// two: no rate yet).
    fn interval_secs(&self) -> f64 {
        match (self.cur.at, self.prev.at) {
            (Some(a), Some(b)) => a.duration_since(b).as_secs_f64(),
            _ => 0.0,
        }
    }

    /// A report is complete: its rules (in `pending`) become the current
    /// counts. `live` gives the keys of the rules that still exist; it is
    /// asked only when it is time to prune.
    fn complete(
        &mut self,
        counters: WorkerCounters,
        now: Instant,
        live: impl FnOnce() -> HashSet<u64>,
    ) {
        // Rules that did not change this interval have no rate; those that
        // did remember their previous count.
        for k in self.changed.drain(..) {
            if let Some(r) = self.rules.get_mut(&k) {
                r.prev = None;
            }
        }
        for (k, new) in self.pending.drain() {
            match self.rules.entry(k) {
                // First seen (a new rule, or this actor was restarted): no
                // previous count, so no rate rather than its whole count in
                // one interval.
                Entry::Vacant(v) => {
                    v.insert(RuleSeen {
                        cur: new,
                        prev: None,
                    });
                }
                Entry::Occupied(mut o) => {
                    let seen = o.get_mut();
                    let old = std::mem::replace(&mut seen.cur, new);
                    seen.prev = Some(old);
                    self.changed.push(k);
                }
            }
        }
        self.since_prune += 1;
        if self.since_prune >= PRUNE_EVERY {
            self.since_prune = 0;
            let live = live();
            self.rules.retain(|k, _| live.contains(k));
        }
        let next = Snapshot {
            at: Some(now),
            counters,
        };
        self.prev = std::mem::replace(&mut self.cur, next);
    }
}

pub struct StatsActor;

pub struct StatsState {
    shared: Arc<Shared>,
    workers: BTreeMap<WorkerKey, PerWorker>,
}

fn rate(cur: u64, prev: u64, secs: f64) -> f64 {
    if secs <= 0.0 || cur < prev {
        0.0
    } else {
        (cur - prev) as f64 / secs
    }
}

impl StatsState {
    /// A rule's packets over every worker of `interface` (learned routes
    /// are not in the config, so `report` does not list them); `None` when
    /// no worker reported it.
    fn rule_packets(&self, interface: &str, key: u64) -> Option<u64> {
        self.workers
            .iter()
            .filter(|(k, _)| k.interface == interface)
            .filter_map(|(_, w)| w.rules.get(&key).map(|r| r.cur.packets))
            .reduce(|a, b| a + b)
    }

    fn report(&self) -> StatsReport {
        let mut out = StatsReport::default();
        for (k, w) in &self.workers {
            let secs = w.interval_secs();
            out.workers.push(WorkerStats {
                interface: k.interface.clone(),
                index: k.index,
                pid: Some(w.pid),
                counters: w.cur.counters.clone(),
                recv_pps: rate(w.cur.counters.recv, w.prev.counters.recv, secs),
                sent_pps: rate(w.cur.counters.sent, w.prev.counters.sent, secs),
            });
        }
        let cfg = self.shared.config();
        for r in &cfg.rules {
            let key = rule_key(&r.id);
            let mut rs = RuleStats {
                id: r.id.clone(),
                name: r.name.clone(),
                interface: r.input.interface.clone(),
                outputs: r
                    .outputs
                    .iter()
                    .map(|o| OutputStats {
                        interface: o.interface.clone(),
                        group: o.group,
                        port: o.port,
                        packets: 0,
                        bytes: 0,
                        errors: 0,
                        pps: 0.0,
                        bps: 0.0,
                    })
                    .collect(),
                ..Default::default()
            };
            // Sum over every worker of the rule's interface (several when
            // pinned to several cores).
            for (k, w) in &self.workers {
                if k.interface != r.input.interface {
                    continue;
                }
                let Some(seen) = w.rules.get(&key) else {
                    continue;
                };
                let c = &seen.cur;
                // Unchanged last interval: compare with itself, rate 0.
                let p = seen.prev.as_ref().unwrap_or(c);
                let secs = w.interval_secs();
                rs.packets += c.packets;
                rs.bytes += c.bytes;
                rs.pps += rate(c.packets, p.packets, secs);
                rs.bps += 8.0 * rate(c.bytes, p.bytes, secs);
                for (i, o) in rs.outputs.iter_mut().enumerate() {
                    let Some(oc) = c.outputs.get(i) else { continue };
                    // An output new since the last report has no rate yet.
                    let op = p.outputs.get(i).unwrap_or(oc);
                    o.packets += oc.packets;
                    o.bytes += oc.bytes;
                    o.errors += oc.errors;
                    o.pps += rate(oc.packets, op.packets, secs);
                    o.bps += 8.0 * rate(oc.bytes, op.bytes, secs);
                }
            }
            rs.errors = rs.outputs.iter().map(|o| o.errors).sum();
            out.rules.push(rs);
        }
        out
    }
}

impl Actor for StatsActor {
    type Msg = StatsMsg;
    type State = StatsState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        _me: ActorRef<StatsMsg>,
        shared: Arc<Shared>,
    ) -> Result<StatsState, ActorProcessingErr> {
        Ok(StatsState {
            shared,
            workers: BTreeMap::new(),
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<StatsMsg>,
        msg: StatsMsg,
        st: &mut StatsState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            StatsMsg::Report {
                key,
                pid,
                counters,
                rules,
                last,
            } => {
                let interface = key.interface.clone();
                let w = st.workers.entry(key).or_default();
                if w.pid != pid {
                    // A new process: its counters start from zero.
                    *w = PerWorker {
                        pid,
                        ..Default::default()
                    };
                }
                for r in rules {
                    w.pending.insert(r.key, r);
                }
                if last {
                    let shared = &st.shared;
                    w.complete(counters, Instant::now(), || {
                        shared
                            .config()
                            .rules
                            .iter()
                            .filter(|r| r.input.interface == interface)
                            .map(|r| rule_key(&r.id))
                            .collect()
                    });
                }
            }
            StatsMsg::Forget(key) => {
                st.workers.remove(&key);
            }
            StatsMsg::Get(reply) => {
                let _ = reply.send(st.report());
            }
            StatsMsg::RulePackets(rules, reply) => {
                let _ = reply.send(rules.iter().map(|(i, k)| st.rule_packets(i, *k)).collect());
            }
            StatsMsg::Panic => panic!("fault injection: stats actor panic requested"),
            StatsMsg::Ops(o) => o.run("stats").await,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(key: u64, packets: u64) -> RuleCounters {
        RuleCounters {
            key,
            packets,
            ..Default::default()
        }
    }

    fn report(w: &mut PerWorker, rules: &[(u64, u64)], live: &[u64]) {
        for &(k, p) in rules {
            w.pending.insert(k, counted(k, p));
        }
        let live: HashSet<u64> = live.iter().copied().collect();
        w.complete(WorkerCounters::default(), Instant::now(), || live);
    }

    fn prev(w: &PerWorker, k: u64) -> Option<u64> {
        w.rules[&k].prev.as_ref().map(|p| p.packets)
    }

    #[test]
    fn a_rule_first_seen_has_no_rate_then_changes_are_rated_once() {
        let mut w = PerWorker::default();
        // First seen with a large count (e.g. after this actor restarted):
        // no previous count, so no rate spike.
        report(&mut w, &[(1, 1_000_000)], &[1]);
        assert_eq!(prev(&w, 1), None);
        report(&mut w, &[(1, 1_000_100)], &[1]);
        assert_eq!(
            prev(&w, 1),
            Some(1_000_000),
            "changed: rated against the last count"
        );
        // Not in this report: unchanged, so no rate, count kept.
        report(&mut w, &[], &[1]);
        assert_eq!(prev(&w, 1), None);
        assert_eq!(w.rules[&1].cur.packets, 1_000_100);
    }

    #[test]
    fn a_learned_routes_packets_are_summed_over_its_interfaces_workers() {
        let shared = Shared::for_test(false);
        let mut st = StatsState {
            shared,
            workers: BTreeMap::new(),
        };
        // Learned routes are in no config: only the workers know them.
        for (ifc, index, packets) in [("up0", 0, 10), ("up0", 1, 5), ("other", 0, 99)] {
            let mut w = PerWorker::default();
            report(&mut w, &[(7, packets)], &[]);
            st.workers.insert(
                WorkerKey {
                    interface: ifc.into(),
                    index,
                },
                w,
            );
        }
        assert_eq!(st.rule_packets("up0", 7), Some(15));
        assert_eq!(st.rule_packets("other", 7), Some(99));
        assert_eq!(st.rule_packets("up0", 8), None, "never reported");
        assert_eq!(st.rule_packets("down0", 7), None, "no worker there");
    }

    #[test]
    fn removed_rules_are_pruned_and_live_ones_kept() {
        let mut w = PerWorker::default();
        report(&mut w, &[(1, 10), (2, 20)], &[1]);
        for _ in 1..PRUNE_EVERY - 1 {
            report(&mut w, &[], &[1]);
        }
        assert!(w.rules.contains_key(&2), "not yet time to prune");
        report(&mut w, &[], &[1]);
        assert!(!w.rules.contains_key(&2), "rule 2 no longer exists");
        assert_eq!(w.rules[&1].cur.packets, 10);
    }
}
