//! `TableSync`: what one worker's table should be, what was sent to make
//! it so, and what to do when the worker's report disagrees.
//!
//! Every table message has a sequence number and the hash the worker's
//! table must have once it is applied. The worker acks each one with the
//! hash it has, and heartbeats carry the last sequence number and hash, so
//! drift is caught even when nothing is being changed. Policy:
//! - a hash mismatch or a reported sequence gap: full resync;
//! - a mismatch in the ack of that full resync: restart the worker;
//! - messages sent but never acknowledged across two heartbeats (lost on
//!   the way): full resync.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::hash::TableHash;
use crate::iface::Ifaces;
use crate::ipc::{TableRule, ToWorker, RULES_PER_CHUNK};

/// What the caller must do after an ack or heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncAction {
    None,
    /// Send `full_sync()`; the reason is for logs and `workers`.
    Resync(String),
    /// The worker cannot be trusted: restart it.
    Restart(String),
}

/// Table state of one worker. Sans-I/O: it returns messages to send.
#[derive(Clone, Debug, Default)]
pub struct TableSync {
    /// The table the worker has once every message sent is applied.
    sent: BTreeMap<u64, TableRule>,
    hash: TableHash,
    /// Last sequence number used.
    seq: u64,
    /// Expected hash of each message not yet acknowledged.
    in_flight: BTreeMap<u64, u64>,
    /// Sequence number of the full sync in flight, if any.
    resync_seq: Option<u64>,
    /// Heartbeats seen in a row that still lag behind `seq`.
    lagging_heartbeats: u32,
    /// Table messages to drop instead of sending (fault injection).
    drop_next: u32,
    /// Full resyncs done to repair drift.
    pub resyncs: u32,
    pub last_acked_hash: Option<u64>,
    /// The compiled table and interfaces that `sent` was translated from,
    /// when every output's socket opened: the next table can then be sent
    /// as the entries that differ from this one (`apply_changes`) instead
    /// of translating and comparing every rule. A new worker (`reset`)
    /// starts without one.
    pub basis: Option<(Arc<super::InterfaceTable>, Arc<Ifaces>)>,
}

impl TableSync {
    pub fn new() -> Self {
        Self::default()
    }

    /// The hash the worker's table should have.
    pub fn expected_hash(&self) -> u64 {
        self.hash.0
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn rules(&self) -> usize {
        self.sent.len()
    }

    /// A new worker process starts with an empty table and sequence 0.
    pub fn reset(&mut self) {
        let resyncs = self.resyncs;
        *self = TableSync::default();
        self.resyncs = resyncs;
    }

    /// Drop the next `n` table messages instead of returning them, so the
    /// gap-repair path can be exercised (fault injection).
    pub fn drop_next(&mut self, n: u32) {
        self.drop_next = n;
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Keep `msg` unless the fault says to drop it.
    fn emit(&mut self, out: &mut Vec<ToWorker>, msg: ToWorker) {
        if self.drop_next > 0 {
            self.drop_next -= 1;
            return;
        }
        out.push(msg);
    }

    /// Messages that turn the worker's table into `desired`: only what
    /// changed, in chunks of at most `RULES_PER_CHUNK` entries, each with
    /// the hash the worker must have after it.
    pub fn update(&mut self, desired: &[TableRule]) -> Vec<ToWorker> {
        let want: BTreeMap<u64, &TableRule> = desired.iter().map(|r| (r.key, r)).collect();
        let removes: Vec<u64> = self
            .sent
            .keys()
            .filter(|k| !want.contains_key(k))
            .copied()
            .collect();
        let upserts: Vec<TableRule> = desired
            .iter()
            .filter(|r| self.sent.get(&r.key) != Some(*r))
            .cloned()
            .collect();
        self.emit_changes(removes, upserts)
    }

    /// What `update` sends, when the caller knows which rules changed:
    /// `removes` are keys to take out, `upserts` rules to add or replace
    /// (removes go first, so a key both removed and upserted ends up
    /// upserted). Costs the change, not the table: one rule added to
    /// 10,000 is one lookup. Keys not sent and rules sent already are
    /// skipped, so the messages are exactly what `update` would send.
    pub fn apply_changes(&mut self, removes: Vec<u64>, upserts: Vec<TableRule>) -> Vec<ToWorker> {
        let upserted: std::collections::BTreeSet<u64> = upserts.iter().map(|r| r.key).collect();
        let removes: Vec<u64> = removes
            .into_iter()
            .filter(|k| self.sent.contains_key(k) && !upserted.contains(k))
            .collect();
        let upserts: Vec<TableRule> = upserts
            .into_iter()
            .filter(|r| self.sent.get(&r.key) != Some(r))
            .collect();
        self.emit_changes(removes, upserts)
    }

    /// The egress ids some rule sent to the worker uses.
    pub fn egress_in_use(&self) -> std::collections::BTreeSet<u32> {
        self.sent
            .values()
            .flat_map(|r| r.outputs.iter().map(|o| o.egress))
            .collect()
    }

    fn emit_changes(&mut self, removes: Vec<u64>, upserts: Vec<TableRule>) -> Vec<ToWorker> {
        let mut out = Vec::new();
        let mut removes = removes.into_iter().peekable();
        let mut upserts = upserts.into_iter().peekable();
        while removes.peek().is_some() || upserts.peek().is_some() {
            let mut rm = Vec::new();
            let mut up = Vec::new();
            while rm.len() + up.len() < RULES_PER_CHUNK {
                if let Some(k) = removes.next() {
                    if let Some(old) = self.sent.remove(&k) {
                        self.hash.remove(old.entry_hash());
                    }
                    rm.push(k);
                } else if let Some(r) = upserts.next() {
                    if let Some(old) = self.sent.insert(r.key, r.clone()) {
                        self.hash.remove(old.entry_hash());
                    }
                    self.hash.add(r.entry_hash());
                    up.push(r);
                } else {
                    break;
                }
            }
            let seq = self.next_seq();
            self.in_flight.insert(seq, self.hash.0);
            let msg = ToWorker::ApplyDelta {
                seq,
                upserts: up,
                removes: rm,
                expect_hash: self.hash.0,
            };
            self.emit(&mut out, msg);
        }
        out
    }

    /// Messages that replace the worker's whole table with what it should
    /// have.
    pub fn full_sync(&mut self) -> Vec<ToWorker> {
        let seq = self.next_seq();
        self.in_flight.clear();
        self.in_flight.insert(seq, self.hash.0);
        self.resync_seq = Some(seq);
        self.lagging_heartbeats = 0;
        let mut out = Vec::new();
        self.emit(&mut out, ToWorker::SyncBegin { seq });
        let rules: Vec<TableRule> = self.sent.values().cloned().collect();
        for chunk in rules.chunks(RULES_PER_CHUNK) {
            self.emit(
                &mut out,
                ToWorker::SyncChunk {
                    seq,
                    rules: chunk.to_vec(),
                },
            );
        }
        let hash = self.hash.0;
        self.emit(&mut out, ToWorker::SyncEnd { seq, hash });
        out
    }

    /// The worker acknowledged message `seq` with table `hash`.
    pub fn on_ack(&mut self, seq: u64, hash: u64, gap: bool) -> SyncAction {
        self.last_acked_hash = Some(hash);
        let expected = self.in_flight.get(&seq).copied();
        // Everything up to `seq` has been applied or lost.
        self.in_flight = self.in_flight.split_off(&(seq + 1));
        if seq == self.seq {
            self.lagging_heartbeats = 0;
        }
        let was_resync = self.resync_seq == Some(seq);
        // An ack of a later message means the full sync was applied and its
        // own ack lost: stop waiting for it (see `on_heartbeat`).
        if was_resync || self.resync_seq.is_some_and(|r| r < seq) {
            self.resync_seq = None;
        }
        if let Some(r) = self.resync_seq {
            if r > seq {
                // A resync is already on its way; judge by its ack.
                return SyncAction::None;
            }
        }
        if gap && !was_resync {
            return self.repair(
                was_resync,
                format!("messages before {seq} were lost (sequence gap)"),
            );
        }
        match expected {
            Some(e) if e != hash => self.repair(
                was_resync,
                format!("table hash {hash:016x} after message {seq}, expected {e:016x}"),
            ),
            _ if gap => self.repair(was_resync, format!("full sync {seq} arrived incomplete")),
            _ => SyncAction::None,
        }
    }

    /// A heartbeat: the worker's last applied sequence number and hash.
    pub fn on_heartbeat(&mut self, seq: u64, hash: u64) -> SyncAction {
        if seq == self.seq {
            self.lagging_heartbeats = 0;
            // The worker has applied the full sync: its ack comes before
            // this heartbeat, so it was lost. Waiting for it would turn off
            // this drift check for good.
            if self.resync_seq.is_some_and(|r| r <= seq) {
                self.resync_seq = None;
            }
            if hash != self.hash.0 && self.resync_seq.is_none() {
                return self.repair(
                    false,
                    format!("table hash {hash:016x} drifted from {:016x}", self.hash.0),
                );
            }
            return SyncAction::None;
        }
        if seq > self.seq {
            return self.repair(
                false,
                format!("worker reports message {seq}, only {} were sent", self.seq),
            );
        }
        self.lagging_heartbeats += 1;
        if self.lagging_heartbeats >= 2 {
            self.lagging_heartbeats = 0;
            self.resyncs += 1;
            return SyncAction::Resync(format!(
                "messages {}..={} were never acknowledged (lost)",
                seq + 1,
                self.seq
            ));
        }
        SyncAction::None
    }

    fn repair(&mut self, after_resync: bool, why: String) -> SyncAction {
        if after_resync {
            SyncAction::Restart(format!("{why}, even after a full resync"))
        } else {
            self.resyncs += 1;
            SyncAction::Resync(why)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dataplane::table::Table;
    use crate::ipc::{rule_key, TableOutput};
    use crate::rule::OutputMode;

    /// Rule `r<i>`: group 239.0.0.<i>:5000, one output (also the
    /// receiver's tests' rule).
    pub(crate) fn tr(i: u32) -> TableRule {
        TableRule {
            key: rule_key(&format!("r{i}")),
            id: format!("r{i}"),
            group: std::net::Ipv4Addr::from(0xef00_0000 + i),
            port: 5000,
            source: None,
            outputs: vec![TableOutput {
                egress: 0,
                group: "239.9.9.9".parse().unwrap(),
                port: 1,
                mode: OutputMode::Republish,
            }],
        }
    }

    /// Apply messages the way the worker does; return the acks it sends.
    fn apply(t: &mut Table, wseq: &mut u64, msgs: &[ToWorker]) -> Vec<(u64, u64, bool)> {
        let mut acks = Vec::new();
        let mut staged: Option<Vec<TableRule>> = None;
        for m in msgs {
            match m {
                ToWorker::ApplyDelta {
                    seq,
                    upserts,
                    removes,
                    ..
                } => {
                    let gap = *seq != *wseq + 1;
                    *wseq = *seq;
                    for k in removes {
                        t.remove(*k);
                    }
                    for r in upserts {
                        t.upsert(r.clone());
                    }
                    acks.push((*seq, t.hash(), gap));
                }
                ToWorker::SyncBegin { .. } => staged = Some(Vec::new()),
                ToWorker::SyncChunk { rules, .. } => {
                    staged.as_mut().unwrap().extend(rules.iter().cloned())
                }
                ToWorker::SyncEnd { seq, .. } => {
                    t.clear();
                    for r in staged.take().unwrap() {
                        t.upsert(r);
                    }
                    *wseq = *seq;
                    acks.push((*seq, t.hash(), false));
                }
                _ => {}
            }
        }
        acks
    }

    #[test]
    fn deltas_are_chunked_and_hashes_match_the_worker() {
        let mut s = TableSync::new();
        let mut t = Table::new();
        let mut wseq = 0;
        let desired: Vec<TableRule> = (0..300).map(tr).collect();
        let msgs = s.update(&desired);
        assert_eq!(msgs.len(), 300usize.div_ceil(RULES_PER_CHUNK));
        for (seq, hash, gap) in apply(&mut t, &mut wseq, &msgs) {
            assert_eq!(s.on_ack(seq, hash, gap), SyncAction::None);
        }
        assert_eq!(t.hash(), s.expected_hash());
        // A change touches only what changed.
        let mut d2 = desired.clone();
        d2.remove(5);
        d2[7].port = 9;
        let msgs = s.update(&d2);
        assert_eq!(msgs.len(), 1);
        if let ToWorker::ApplyDelta {
            upserts, removes, ..
        } = &msgs[0]
        {
            assert_eq!((upserts.len(), removes.len()), (1, 1));
        }
        apply(&mut t, &mut wseq, &msgs);
        assert_eq!(t.hash(), s.expected_hash());
        assert!(s.update(&d2).is_empty(), "no change, no message");
    }

    #[test]
    fn drift_gets_a_resync_then_a_restart() {
        let mut s = TableSync::new();
        let mut t = Table::new();
        let mut wseq = 0;
        let msgs = s.update(&[tr(1), tr(2)]);
        apply(&mut t, &mut wseq, &msgs);
        // The worker loses a rule on its own.
        t.remove(tr(1).key);
        let a = s.on_heartbeat(wseq, t.hash());
        assert!(matches!(a, SyncAction::Resync(_)), "{a:?}");
        let msgs = s.full_sync();
        let acks = apply(&mut t, &mut wseq, &msgs);
        assert_eq!(s.on_ack(acks[0].0, acks[0].1, acks[0].2), SyncAction::None);
        assert_eq!(t.hash(), s.expected_hash());
        // A worker that still disagrees after a full sync is restarted.
        let msgs = s.full_sync();
        apply(&mut t, &mut wseq, &msgs);
        let a = s.on_ack(wseq, 12345, false);
        assert!(matches!(a, SyncAction::Restart(_)), "{a:?}");
    }

    #[test]
    fn dropped_messages_are_noticed_by_gap_or_silence() {
        let mut s = TableSync::new();
        let mut t = Table::new();
        let mut wseq = 0;
        apply(&mut t, &mut wseq, &s.update(&[tr(1)]));
        // Drop one delta; the next one arrives with a gap.
        s.drop_next(1);
        assert!(s.update(&[tr(1), tr(2)]).is_empty());
        let acks = apply(&mut t, &mut wseq, &s.update(&[tr(1), tr(2), tr(3)]));
        let (seq, hash, gap) = acks[0];
        assert!(gap);
        assert!(matches!(s.on_ack(seq, hash, gap), SyncAction::Resync(_)));
        let acks = apply(&mut t, &mut wseq, &s.full_sync());
        assert_eq!(s.on_ack(acks[0].0, acks[0].1, acks[0].2), SyncAction::None);
        assert_eq!(t.len(), 3);

        // Drop the last delta: nothing follows, so only heartbeats tell.
        s.drop_next(1);
        assert!(s.update(&[tr(1)]).is_empty());
        assert_eq!(
            s.on_heartbeat(wseq, t.hash()),
            SyncAction::None,
            "one lagging heartbeat may be a race"
        );
        let before = s.resyncs;
        assert!(matches!(
            s.on_heartbeat(wseq, t.hash()),
            SyncAction::Resync(_)
        ));
        assert_eq!(s.resyncs, before + 1, "every repair is counted");
        let acks = apply(&mut t, &mut wseq, &s.full_sync());
        assert_eq!(s.on_ack(acks[0].0, acks[0].1, false), SyncAction::None);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_lost_resync_ack_does_not_blind_the_heartbeat_check() {
        let mut s = TableSync::new();
        let mut t = Table::new();
        let mut wseq = 0;
        apply(&mut t, &mut wseq, &s.update(&[tr(1)]));
        // The resync's ack never arrives; later the worker loses a rule.
        let _lost = apply(&mut t, &mut wseq, &s.full_sync());
        t.remove(tr(1).key);
        let a = s.on_heartbeat(wseq, t.hash());
        assert!(matches!(a, SyncAction::Resync(_)), "{a:?}");

        // The same when a delta followed the resync and was acked.
        let _lost = apply(&mut t, &mut wseq, &s.full_sync());
        let acks = apply(&mut t, &mut wseq, &s.update(&[tr(1), tr(2)]));
        let (seq, hash, gap) = acks[0];
        assert_eq!(s.on_ack(seq, hash, gap), SyncAction::None);
        t.remove(tr(2).key);
        let a = s.on_heartbeat(wseq, t.hash());
        assert!(matches!(a, SyncAction::Resync(_)), "{a:?}");
    }

    proptest::proptest! {
        /// Changes named by the caller (`apply_changes`) send the worker
        /// exactly what comparing whole tables (`update`) would: after
        /// every step both reach the same table and hash.
        #[test]
        fn named_changes_equal_whole_table_updates(
            steps in proptest::collection::vec(
                proptest::collection::btree_map(0u32..24, 0u16..3, 0..16), 1..12),
        ) {
            let (mut whole, mut named) = (TableSync::new(), TableSync::new());
            let (mut tw, mut tn) = (Table::new(), Table::new());
            let (mut sw, mut sn) = (0, 0);
            let mut prev: BTreeMap<u64, TableRule> = BTreeMap::new();
            for step in steps {
                let desired: Vec<TableRule> = step
                    .iter()
                    .map(|(i, port)| TableRule { port: 5000 + port, ..tr(*i) })
                    .collect();
                let now: BTreeMap<u64, TableRule> =
                    desired.iter().map(|r| (r.key, r.clone())).collect();
                let removes: Vec<u64> =
                    prev.keys().filter(|k| !now.contains_key(k)).copied().collect();
                let upserts: Vec<TableRule> = desired
                    .iter()
                    .filter(|r| prev.get(&r.key) != Some(*r))
                    .cloned()
                    .collect();
                apply(&mut tw, &mut sw, &whole.update(&desired));
                apply(&mut tn, &mut sn, &named.apply_changes(removes, upserts));
                proptest::prop_assert_eq!(whole.expected_hash(), named.expected_hash());
                proptest::prop_assert_eq!(tn.hash(), named.expected_hash());
                proptest::prop_assert_eq!(tw.hash(), tn.hash());
                proptest::prop_assert_eq!(whole.seq(), named.seq(), "same messages");
                prev = now;
            }
        }
    }

    #[test]
    fn restart_resets_to_an_empty_worker() {
        let mut s = TableSync::new();
        s.update(&[tr(1)]);
        let expect = s.expected_hash();
        s.reset();
        assert_eq!(s.seq(), 0);
        assert_eq!(s.expected_hash(), 0);
        let mut t = Table::new();
        let mut wseq = 0;
        apply(&mut t, &mut wseq, &s.update(&[tr(1)]));
        assert_eq!(t.hash(), expect);
    }
}
