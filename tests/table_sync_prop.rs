//! Property: whatever happens to the table messages between the supervisor
//! and a worker (any sequence of rule changes, messages and acks lost,
//! messages reordered, the worker's table corrupted behind its back), once
//! the channel is reliable again the repair TableSync drives (acks,
//! heartbeats, full resyncs, a restart as the last resort) ends with the
//! worker's table equal to the RIB's, in a bounded number of rounds.
//!
//! The worker side is the worker's own `TableReceiver` (the pure part of
//! its event loop that applies table messages and produces acks and
//! heartbeats). The supervisor side is the real `TableSync`, driven as the link actor
//! drives it (`Resync` → `full_sync`, `Restart` → a fresh worker, `reset`
//! and `update`).

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;

use mcr::dataplane::receiver::TableReceiver;
use mcr::ipc::{rule_key, FromWorker, TableOutput, TableRule, ToWorker};
use mcr::rib::{SyncAction, TableSync};
use mcr::rule::OutputMode;
use proptest::prelude::*;

/// What the worker says back.
#[derive(Clone, Debug)]
enum Report {
    Ack { seq: u64, hash: u64, gap: bool },
    Heartbeat { seq: u64, hash: u64 },
}

fn report(m: FromWorker) -> Option<Report> {
    match m {
        FromWorker::Ack { seq, hash, gap, .. } => Some(Report::Ack { seq, hash, gap }),
        FromWorker::Heartbeat { seq, hash } => Some(Report::Heartbeat { seq, hash }),
        _ => None,
    }
}

#[derive(Default)]
struct Worker {
    rx: TableReceiver,
}

impl Worker {
    fn apply(&mut self, msg: ToWorker) -> Option<Report> {
        self.rx.handle(msg).ok().flatten().and_then(report)
    }

    fn heartbeat(&self) -> Report {
        report(self.rx.heartbeat()).expect("a heartbeat is a heartbeat")
    }

    fn rules(&self) -> BTreeMap<u64, TableRule> {
        self.rx
            .table()
            .entries()
            .map(|e| (e.rule.key, e.rule.clone()))
            .collect()
    }
}

/// Rule `i` in variant `v`: the variants differ in what a delta must carry
/// (port, source, outputs), so an upsert of a known key is a real change.
fn rule(i: u8, v: u8) -> TableRule {
    let id = format!("rule-{i}");
    TableRule {
        key: rule_key(&id),
        id,
        group: Ipv4Addr::new(239, 1, 0, i),
        port: 5000 + u16::from(v % 3),
        source: (v % 2 == 1).then(|| Ipv4Addr::new(10, 0, 0, v)),
        outputs: (0..=(v % 4))
            .map(|o| TableOutput {
                egress: u32::from(o),
                group: Ipv4Addr::new(239, 2, o, i),
                port: 6000,
                mode: if o == 1 {
                    OutputMode::Route
                } else {
                    OutputMode::Republish
                },
            })
            .collect(),
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// The RIB changes: upsert these (rule, variant)s, remove these rules,
    /// then the supervisor sends the deltas.
    Change {
        upserts: Vec<(u8, u8)>,
        removes: Vec<u8>,
    },
    /// Lose the n-th message on its way to the worker.
    DropToWorker(usize),
    /// Swap two messages on their way to the worker.
    Reorder(usize, usize),
    /// The worker reads up to n messages.
    DeliverToWorker(usize),
    /// Lose the n-th report on its way back.
    DropReport(usize),
    /// The supervisor reads up to n reports.
    DeliverToSupervisor(usize),
    /// The worker's heartbeat timer fires.
    Heartbeat,
    /// The worker loses a rule on its own (the `CorruptTable` fault).
    Corrupt,
    /// The supervisor drops its next n table messages (`drop_next`).
    FaultDrop(u32),
}

fn op() -> impl Strategy<Value = Op> {
    // Up to 200 rules: enough that a change or a full sync spans several
    // chunks of RULES_PER_CHUNK.
    let rule_id = 0u8..200;
    prop_oneof![
        4 => (
            prop::collection::vec((rule_id.clone(), 0u8..8), 0..80),
            prop::collection::vec(rule_id, 0..40)
        )
            .prop_map(|(upserts, removes)| Op::Change { upserts, removes }),
        2 => (0usize..16).prop_map(Op::DropToWorker),
        2 => (0usize..16, 0usize..16).prop_map(|(a, b)| Op::Reorder(a, b)),
        4 => (0usize..12).prop_map(Op::DeliverToWorker),
        1 => (0usize..8).prop_map(Op::DropReport),
        4 => (0usize..12).prop_map(Op::DeliverToSupervisor),
        2 => Just(Op::Heartbeat),
        1 => Just(Op::Corrupt),
        1 => (1u32..4).prop_map(Op::FaultDrop),
    ]
}

struct World {
    desired: BTreeMap<u64, TableRule>,
    sync: TableSync,
    worker: Worker,
    to_worker: VecDeque<ToWorker>,
    to_supervisor: VecDeque<Report>,
    restarts: u32,
}

impl World {
    fn new() -> World {
        World {
            desired: BTreeMap::new(),
            sync: TableSync::new(),
            worker: Worker::default(),
            to_worker: VecDeque::new(),
            to_supervisor: VecDeque::new(),
            restarts: 0,
        }
    }

    fn push_update(&mut self) {
        let desired: Vec<TableRule> = self.desired.values().cloned().collect();
        self.to_worker.extend(self.sync.update(&desired));
    }

    fn act(&mut self, a: SyncAction) {
        match a {
            SyncAction::None => {}
            SyncAction::Resync(_) => self.to_worker.extend(self.sync.full_sync()),
            SyncAction::Restart(_) => {
                // A new process: empty table, sequence 0, and nothing of the
                // old one's traffic survives.
                self.restarts += 1;
                self.worker = Worker::default();
                self.to_worker.clear();
                self.to_supervisor.clear();
                self.sync.reset();
                self.push_update();
            }
        }
    }

    fn deliver_to_worker(&mut self, n: usize) {
        for _ in 0..n {
            let Some(m) = self.to_worker.pop_front() else {
                break;
            };
            if let Some(r) = self.worker.apply(m) {
                self.to_supervisor.push_back(r);
            }
        }
    }

    fn deliver_to_supervisor(&mut self, n: usize) {
        for _ in 0..n {
            let Some(r) = self.to_supervisor.pop_front() else {
                break;
            };
            let a = match r {
                Report::Ack { seq, hash, gap } => self.sync.on_ack(seq, hash, gap),
                Report::Heartbeat { seq, hash } => self.sync.on_heartbeat(seq, hash),
            };
            self.act(a);
        }
    }

    fn run(&mut self, op: Op) {
        match op {
            Op::Change { upserts, removes } => {
                for (i, v) in upserts {
                    let r = rule(i, v);
                    self.desired.insert(r.key, r);
                }
                for i in removes {
                    self.desired.remove(&rule(i, 0).key);
                }
                self.push_update();
            }
            Op::DropToWorker(i) => {
                if !self.to_worker.is_empty() {
                    let i = i % self.to_worker.len();
                    self.to_worker.remove(i);
                }
            }
            Op::Reorder(a, b) => {
                let n = self.to_worker.len();
                if n > 1 {
                    self.to_worker.swap(a % n, b % n);
                }
            }
            Op::DeliverToWorker(n) => self.deliver_to_worker(n),
            Op::DropReport(i) => {
                if !self.to_supervisor.is_empty() {
                    let i = i % self.to_supervisor.len();
                    self.to_supervisor.remove(i);
                }
            }
            Op::DeliverToSupervisor(n) => self.deliver_to_supervisor(n),
            Op::Heartbeat => {
                let hb = self.worker.heartbeat();
                self.to_supervisor.push_back(hb);
            }
            Op::Corrupt => {
                let first = self.worker.rx.table().entries().map(|e| e.rule.key).next();
                if let Some(k) = first {
                    self.worker.rx.table_mut().remove(k);
                }
            }
            Op::FaultDrop(n) => self.sync.drop_next(n),
        }
    }

    /// A reliable channel from now on: deliver everything both ways, then
    /// let a heartbeat interval pass. Returns the rounds it took for the
    /// worker to hold the RIB's table with both sides agreeing and nothing
    /// left in flight.
    fn repair(&mut self, max_rounds: u32) -> Option<u32> {
        for round in 0..max_rounds {
            while !self.to_worker.is_empty() || !self.to_supervisor.is_empty() {
                self.deliver_to_worker(usize::MAX);
                self.deliver_to_supervisor(usize::MAX);
            }
            if self.worker.rules() == self.desired
                && self.worker.rx.table().hash() == self.sync.expected_hash()
                && self.worker.rx.seq() == self.sync.seq()
            {
                return Some(round);
            }
            let hb = self.worker.heartbeat();
            self.to_supervisor.push_back(hb);
        }
        None
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_loss_and_reordering_is_repaired(ops in prop::collection::vec(op(), 1..60)) {
        let mut w = World::new();
        for op in ops {
            w.run(op);
        }
        // Faults stop with the disturbance; a drop still pending would be
        // a disturbance of the repair itself.
        w.sync.drop_next(0);
        let rounds = w.repair(8);
        prop_assert!(
            rounds.is_some(),
            "not repaired: worker has {} rules (seq {}), RIB {} (seq {}), {} restarts",
            w.worker.rules().len(),
            w.worker.rx.seq(),
            w.desired.len(),
            w.sync.seq(),
            w.restarts
        );
        // Quiet once repaired: more heartbeats change nothing.
        for _ in 0..3 {
            let hb = w.worker.heartbeat();
            w.to_supervisor.push_back(hb);
            let before = w.sync.resyncs;
            w.deliver_to_supervisor(usize::MAX);
            prop_assert_eq!(w.sync.resyncs, before, "a repaired table is left alone");
            prop_assert!(w.to_worker.is_empty());
        }
    }

    /// Without any fault the deltas alone keep the worker exact: no resync
    /// is ever needed.
    #[test]
    fn a_reliable_channel_needs_no_resync(
        changes in prop::collection::vec(
            (
                prop::collection::vec((0u8..200, 0u8..8), 0..80),
                prop::collection::vec(0u8..200, 0..40),
            ),
            1..20,
        )
    ) {
        let mut w = World::new();
        for (upserts, removes) in changes {
            w.run(Op::Change { upserts, removes });
            w.run(Op::DeliverToWorker(usize::MAX));
            w.run(Op::Heartbeat);
            w.run(Op::DeliverToSupervisor(usize::MAX));
            prop_assert_eq!(w.worker.rules(), w.desired.clone());
        }
        prop_assert_eq!(w.sync.resyncs, 0);
        prop_assert_eq!(w.restarts, 0);
    }
}
