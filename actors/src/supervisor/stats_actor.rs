//! StatsActor: collects the counters every worker reports each stats
//! interval and computes rates from consecutive reports, per worker, per
//! rule and per output. Workers report cumulative counters, so a restart
//! of this actor loses only the rate of one interval.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use mcr::control::{OutputStats, RuleStats, StatsReport, WorkerStats};
use mcr::ipc::{rule_key, RuleCounters, WorkerCounters};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::{Shared, WorkerKey};

pub const NAME: &str = "stats";

pub enum StatsMsg {
    Report {
        key: WorkerKey,
        pid: u32,
        counters: WorkerCounters,
        rules: Vec<RuleCounters>,
        last: bool,
    },
    Forget(WorkerKey),
    Get(RpcReplyPort<StatsReport>),
    Panic,
}

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
    fn report(&self) -> StatsReport {
        let mut out = StatsReport::default();
        for (k, w) in &self.workers {
            let secs = match (w.cur.at, w.prev.at) {
                (Some(a), Some(b)) => a.duration_since(b).as_secs_f64(),
                _ => 0.0,
            };
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
                let p = Some(seen.prev.as_ref().unwrap_or(c));
                let secs = match (w.cur.at, w.prev.at) {
                    (Some(a), Some(b)) => a.duration_since(b).as_secs_f64(),
                    _ => 0.0,
                };
                rs.packets += c.packets;
                rs.bytes += c.bytes;
                rs.pps += rate(c.packets, p.map(|p| p.packets).unwrap_or(c.packets), secs);
                rs.bps += 8.0 * rate(c.bytes, p.map(|p| p.bytes).unwrap_or(c.bytes), secs);
                for (i, o) in rs.outputs.iter_mut().enumerate() {
                    let Some(oc) = c.outputs.get(i) else { continue };
                    let op = p.and_then(|p| p.outputs.get(i));
                    o.packets += oc.packets;
                    o.bytes += oc.bytes;
                    o.errors += oc.errors;
                    o.pps += rate(
                        oc.packets,
                        op.map(|x| x.packets).unwrap_or(oc.packets),
                        secs,
                    );
                    o.bps += 8.0 * rate(oc.bytes, op.map(|x| x.bytes).unwrap_or(oc.bytes), secs);
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
                    // Rules that did not change this interval have no
                    // rate; those that did remember their previous count.
                    for k in w.changed.drain(..) {
                        if let Some(r) = w.rules.get_mut(&k) {
                            r.prev = None;
                        }
                    }
                    for (k, new) in w.pending.drain() {
                        let seen = w.rules.entry(k).or_default();
                        let old = std::mem::replace(&mut seen.cur, new);
                        seen.prev = Some(old);
                        w.changed.push(k);
                    }
                    let next = Snapshot {
                        at: Some(Instant::now()),
                        counters,
                    };
                    w.prev = std::mem::replace(&mut w.cur, next);
                }
            }
            StatsMsg::Forget(key) => {
                st.workers.remove(&key);
            }
            StatsMsg::Get(reply) => {
                let _ = reply.send(st.report());
            }
            StatsMsg::Panic => panic!("fault injection: stats actor panic requested"),
        }
        Ok(())
    }
}
