//! `TableReceiver`: the worker's half of table synchronisation, the
//! mirror of `rib::sync::TableSync` on the supervisor's side.
//!
//! Owns the worker's forwarding table and what it knows about the message
//! stream that builds it: the last sequence number applied, whether any
//! were skipped, and a full sync being staged. It applies `ApplyDelta` and
//! `SyncBegin`/`SyncChunk`/`SyncEnd`, and answers each delta and each
//! completed sync with the `Ack` that lets `TableSync` judge drift: the
//! sequence number, the hash the table now has, and a gap flag when
//! messages were lost (DESIGN.md, "Supervisor ⇄ worker", drift recovery).
//!
//! Sans-I/O: no sockets, no clock. The worker's ring loop feeds it decoded
//! messages and sends what it returns.

use std::collections::HashSet;

use tracing::warn;

use crate::ipc::{FromWorker, TableRule, ToWorker};

use super::table::Table;

/// The worker's table and its place in the supervisor's message stream.
#[derive(Default)]
pub struct TableReceiver {
    table: Table,
    /// Last table message applied.
    seq: u64,
    /// A sequence number was skipped (or a message was unreadable) since
    /// the last complete full sync. Reported in every ack until then; the
    /// worker cannot repair this on its own, only a full sync can.
    gap: bool,
    /// A full sync in progress: its sequence number and the rules so far.
    staged: Option<(u64, Vec<TableRule>)>,
}

impl TableReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The table, for the data path's per-packet counters and for fault
    /// injection. Changing its rules here makes the worker drift.
    pub fn table_mut(&mut self) -> &mut Table {
        &mut self.table
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn gap(&self) -> bool {
        self.gap
    }

    /// A message arrived that could not be decoded. It may have been a
    /// table update, so the next ack asks for a full sync.
    pub fn lost_message(&mut self) {
        self.gap = true;
    }

    /// What the periodic heartbeat reports, so drift is caught even when
    /// nothing changes.
    pub fn heartbeat(&self) -> FromWorker {
        FromWorker::Heartbeat {
            seq: self.seq,
            hash: self.table.hash(),
        }
    }

    /// Apply `msg` if it is a table message: `Ok` with the ack to send,
    /// if any. Any other message comes back as `Err` for the caller.
    pub fn handle(&mut self, msg: ToWorker) -> Result<Option<FromWorker>, ToWorker> {
        match msg {
            ToWorker::ApplyDelta {
                seq,
                upserts,
                removes,
                expect_hash,
            } => {
                self.expect_seq(seq);
                for k in removes {
                    self.table.remove(k);
                }
                for r in upserts {
                    self.table.upsert(r);
                }
                if self.table.hash() != expect_hash {
                    warn!(target: "RuleDispatch", "table hash {:016x} after delta {seq}, expected {expect_hash:016x}", self.table.hash());
                }
                Ok(Some(self.ack()))
            }
            ToWorker::SyncBegin { seq } => {
                self.staged = Some((seq, Vec::new()));
                Ok(None)
            }
            ToWorker::SyncChunk { seq, rules } => {
                // A chunk of another sync than the one begun belongs to a
                // sync whose start was lost; its end will say so.
                if let Some((s, staged)) = &mut self.staged {
                    if *s == seq {
                        staged.extend(rules);
                    }
                }
                Ok(None)
            }
            ToWorker::SyncEnd { seq, hash } => {
                match self.staged.take() {
                    Some((s, staged)) if s == seq => {
                        self.install(staged);
                        self.seq = seq;
                        self.gap = false;
                        if self.table.hash() != hash {
                            warn!(target: "RuleDispatch", "table hash {:016x} after full sync {seq}, expected {hash:016x}", self.table.hash());
                        }
                    }
                    _ => {
                        // Parts of the sync were lost; the ack's gap flag
                        // asks for another.
                        self.seq = seq;
                        self.gap = true;
                    }
                }
                Ok(Some(self.ack()))
            }
            other => Err(other),
        }
    }

    fn expect_seq(&mut self, seq: u64) {
        if seq != self.seq + 1 {
            warn!(target: "RuleDispatch", "table message {seq} after {}: messages were lost", self.seq);
            self.gap = true;
        }
        self.seq = seq;
    }

    fn ack(&self) -> FromWorker {
        FromWorker::Ack {
            seq: self.seq,
            hash: self.table.hash(),
            rules: self.table.len() as u32,
            gap: self.gap,
        }
    }

    /// Replace the table with `rules`, keeping the counters of rules that
    /// stay: a resync must not make `stats` jump back to zero.
    fn install(&mut self, rules: Vec<TableRule>) {
        let keep: HashSet<u64> = rules.iter().map(|r| r.key).collect();
        let gone: Vec<u64> = self
            .table
            .entries()
            .map(|e| e.rule.key)
            .filter(|k| !keep.contains(k))
            .collect();
        for k in gone {
            self.table.remove(k);
        }
        for r in rules {
            self.table.upsert(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rib::sync::tests::tr;
    use crate::rib::sync::{SyncAction, TableSync};

    /// Feed `msgs` to the receiver and every ack back to `sync`; the
    /// actions `sync` asks for.
    fn deliver(
        rx: &mut TableReceiver,
        sync: &mut TableSync,
        msgs: Vec<ToWorker>,
    ) -> Vec<SyncAction> {
        let mut actions = Vec::new();
        for m in msgs {
            match rx.handle(m) {
                Ok(Some(FromWorker::Ack { seq, hash, gap, .. })) => {
                    actions.push(sync.on_ack(seq, hash, gap))
                }
                Ok(_) => {}
                Err(other) => panic!("{other:?} is a table message"),
            }
        }
        actions
    }

    fn ack_of(r: Result<Option<FromWorker>, ToWorker>) -> (u64, u64, u32, bool) {
        match r {
            Ok(Some(FromWorker::Ack {
                seq,
                hash,
                rules,
                gap,
            })) => (seq, hash, rules, gap),
            other => panic!("expected an ack, got {other:?}"),
        }
    }

    #[test]
    fn deltas_from_table_sync_build_the_same_table() {
        let desired: Vec<TableRule> = (0..300).map(tr).collect();
        let mut sync = TableSync::new();
        let mut rx = TableReceiver::new();
        let msgs = sync.update(&desired);
        assert!(deliver(&mut rx, &mut sync, msgs)
            .iter()
            .all(|a| *a == SyncAction::None));
        assert_eq!(rx.table().len(), 300);
        assert_eq!(rx.table().hash(), sync.expected_hash());
        assert_eq!(rx.seq(), sync.seq());

        let mut fewer = desired.clone();
        fewer.truncate(100);
        fewer[3].port = 9;
        let msgs = sync.update(&fewer);
        assert!(deliver(&mut rx, &mut sync, msgs)
            .iter()
            .all(|a| *a == SyncAction::None));
        assert_eq!(rx.table().len(), 100);
        assert_eq!(rx.table().hash(), sync.expected_hash());
        assert_eq!(rx.heartbeat(), {
            FromWorker::Heartbeat {
                seq: sync.seq(),
                hash: sync.expected_hash(),
            }
        });
    }

    #[test]
    fn a_lost_delta_is_reported_and_a_full_sync_repairs_it() {
        let mut sync = TableSync::new();
        let mut rx = TableReceiver::new();
        let first: Vec<TableRule> = (0..3).map(tr).collect();
        let msgs = sync.update(&first);
        deliver(&mut rx, &mut sync, msgs);
        // The next delta is lost on the way.
        let second: Vec<TableRule> = (0..5).map(tr).collect();
        let _lost = sync.update(&second);
        let third: Vec<TableRule> = (0..6).map(tr).collect();
        let msgs = sync.update(&third);
        let (seq, _, _, gap) = ack_of(rx.handle(msgs[0].clone()));
        assert!(gap, "the skipped sequence number is reported");
        assert!(matches!(
            sync.on_ack(seq, rx.table().hash(), gap),
            SyncAction::Resync(_)
        ));
        let msgs = sync.full_sync();
        assert!(deliver(&mut rx, &mut sync, msgs)
            .iter()
            .all(|a| *a == SyncAction::None));
        assert!(!rx.gap(), "a complete full sync clears the gap");
        assert_eq!(rx.table().len(), 6);
        assert_eq!(rx.table().hash(), sync.expected_hash());
    }

    #[test]
    fn an_unreadable_message_makes_the_next_ack_ask_for_a_sync() {
        let mut sync = TableSync::new();
        let mut rx = TableReceiver::new();
        rx.lost_message();
        let msgs = sync.update(&[tr(1)]);
        let (seq, hash, rules, gap) = ack_of(rx.handle(msgs[0].clone()));
        assert_eq!((rules, gap), (1, true));
        assert!(matches!(sync.on_ack(seq, hash, gap), SyncAction::Resync(_)));
    }

    #[test]
    fn a_full_sync_missing_a_chunk_is_reported_incomplete() {
        let mut sync = TableSync::new();
        let mut rx = TableReceiver::new();
        let desired: Vec<TableRule> = (0..300).map(tr).collect();
        let _ = sync.update(&desired);
        let mut msgs = sync.full_sync();
        assert!(msgs.len() >= 4, "begin, two or more chunks, end");
        msgs.remove(1);
        let actions = deliver(&mut rx, &mut sync, msgs);
        // The staged rules were installed but the hash shows what is
        // missing; the supervisor gives up on a mismatch after a resync.
        assert!(matches!(actions.last(), Some(SyncAction::Restart(_))));
        assert_ne!(rx.table().hash(), sync.expected_hash());
    }

    #[test]
    fn a_sync_whose_beginning_was_lost_sets_the_gap() {
        let mut rx = TableReceiver::new();
        let end = ToWorker::SyncEnd { seq: 4, hash: 0 };
        let (seq, _, rules, gap) = ack_of(rx.handle(end));
        assert_eq!((seq, rules, gap), (4, 0, true));
        // A chunk of a sync that was never begun changes nothing.
        let chunk = ToWorker::SyncChunk {
            seq: 5,
            rules: vec![tr(1)],
        };
        assert!(matches!(rx.handle(chunk), Ok(None)));
        assert!(rx.table().is_empty());
    }

    #[test]
    fn a_resync_keeps_the_counters_of_rules_that_stay() {
        let mut sync = TableSync::new();
        let mut rx = TableReceiver::new();
        let msgs = sync.update(&[tr(1), tr(2)]);
        deliver(&mut rx, &mut sync, msgs);
        let key = tr(1).key;
        if let Some(e) = rx.table_mut().get_mut(key) {
            e.packets = 7;
        }
        let msgs = sync.update(&[tr(1), tr(3)]);
        let _ = msgs; // lost: the worker only sees the full sync
        let msgs = sync.full_sync();
        deliver(&mut rx, &mut sync, msgs);
        assert_eq!(rx.table().get(key).map(|e| e.packets), Some(7));
        assert!(rx.table().get(tr(2).key).is_none());
        assert!(rx.table().get(tr(3).key).is_some());
        assert_eq!(rx.table().hash(), sync.expected_hash());
    }

    #[test]
    fn other_messages_are_handed_back() {
        let mut rx = TableReceiver::new();
        assert!(matches!(
            rx.handle(ToWorker::Shutdown),
            Err(ToWorker::Shutdown)
        ));
        assert_eq!(rx.seq(), 0);
    }

    /// Whatever the supervisor sends and whichever table messages are
    /// lost, the repairs `TableSync` asks for leave the worker's table
    /// equal to the supervisor's.
    #[test]
    fn random_changes_and_losses_end_with_equal_tables() {
        // A fixed xorshift sequence: reproducible, no dependency.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut sync = TableSync::new();
        let mut rx = TableReceiver::new();
        let mut restarts = 0;
        for _ in 0..400 {
            let mut desired = Vec::new();
            for i in 0..60 {
                if rnd(3) > 0 {
                    let mut r = tr(i);
                    r.port = 5000 + rnd(3) as u16;
                    desired.push(r);
                }
            }
            if rnd(5) == 0 {
                sync.drop_next(1 + rnd(2) as u32);
            }
            let mut pending = sync.update(&desired);
            // Heartbeats arrive every round; two behind in a row mean
            // messages were lost.
            for _ in 0..3 {
                let mut actions = deliver(&mut rx, &mut sync, std::mem::take(&mut pending));
                if let FromWorker::Heartbeat { seq, hash } = rx.heartbeat() {
                    actions.push(sync.on_heartbeat(seq, hash));
                }
                for a in actions {
                    match a {
                        SyncAction::None => {}
                        SyncAction::Resync(_) => pending.extend(sync.full_sync()),
                        SyncAction::Restart(_) => {
                            // What the supervisor does: a new process
                            // with an empty table, sent everything.
                            restarts += 1;
                            sync.reset();
                            rx = TableReceiver::new();
                            pending = sync.update(&desired);
                        }
                    }
                }
            }
            let _ = deliver(&mut rx, &mut sync, pending);
        }
        // Quiet rounds: heartbeats until nothing more is asked for.
        for _ in 0..4 {
            if let FromWorker::Heartbeat { seq, hash } = rx.heartbeat() {
                if let SyncAction::Resync(_) = sync.on_heartbeat(seq, hash) {
                    let msgs = sync.full_sync();
                    deliver(&mut rx, &mut sync, msgs);
                }
            }
        }
        assert_eq!(rx.table().hash(), sync.expected_hash());
        assert_eq!(rx.table().len(), sync.rules());
        assert!(sync.resyncs > 10, "losses happened and were repaired");
        // A restart follows only a resync that was itself cut short (the
        // fault drops whatever table messages come next).
        assert!(
            restarts < sync.resyncs,
            "repairs mostly by resync: {} resyncs, {restarts} restarts",
            sync.resyncs
        );
    }
}
