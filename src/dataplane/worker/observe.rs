//! What the worker tells an operator about its packets: the per-rule
//! trace (`mcrctl trace`, rings in `dataplane::trace`) and rate-limited
//! debug lines for every drop (`dataplane::explain`).
//!
//! The receive path calls in here only for a packet it dropped or while
//! some rule is traced, so forwarding with no trace on pays one
//! well-predicted branch per packet.

use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{debug, info};

use crate::dataplane::explain::{self, Trouble};
use crate::dataplane::pipeline::Verdict;
use crate::dataplane::trace::{self, reason_of, OutputSet, Record};
use crate::ipc::trace::{Action, DropReason, TraceOutput, MAX_COUNT};
use crate::ipc::{FromWorker, WorkerCounters};
use crate::logging::Facility;

use super::setup::send;
use super::Worker;

impl Worker {
    /// Milliseconds since the worker started: the rate limiters' clock.
    fn mono_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// A frame the pipeline dropped, or any frame while a trace is on.
    #[cold]
    pub(super) fn observe(&mut self, bid: u16, received: usize, verdict: Verdict) {
        if !self.wants_observe(verdict) {
            return;
        }
        let peek = trace::peek(self.bufs.buf_mut(bid), received, self.setup.format);
        self.observe_peek(peek, verdict);
    }

    /// Whether `observe` has anything to do for this verdict: a drop whose
    /// facility is at debug, or any packet while a trace is on.
    pub(super) fn wants_observe(&self, verdict: Verdict) -> bool {
        let explain = reason_of(verdict).is_some_and(|r| explain::debug_on(explain::facility(r)));
        explain || !self.traces.is_empty()
    }

    /// `observe` for a frame read where the ring holds it, not in a buffer.
    #[cold]
    pub(super) fn observe_frame(&mut self, frame: &[u8], received: usize, verdict: Verdict) {
        if !self.wants_observe(verdict) {
            return;
        }
        let peek = trace::peek(frame, received, self.setup.format);
        self.observe_peek(peek, verdict);
    }

    fn observe_peek(&mut self, peek: Option<trace::Peek>, verdict: Verdict) {
        let reason = reason_of(verdict);
        let explain = reason.is_some_and(|r| explain::debug_on(explain::facility(r)));
        if let (true, Some(r)) = (explain, reason) {
            let now = self.mono_ms();
            self.explain.drop(now, r, peek, &self.setup.interface);
        }
        if self.traces.is_empty() {
            return;
        }
        let Some(p) = peek else {
            return;
        };
        // A packet refused before the lookup still belongs to the rule
        // its header names, as far as the header can be read.
        let slot = match verdict {
            Verdict::Forward { slot } => Some(slot),
            Verdict::NoMatch => None,
            _ => self.rx.table().lookup(p.src, p.dst, p.dport),
        };
        let Some(entry) = slot.and_then(|s| self.rx.table().entry(s)) else {
            return;
        };
        let Some(ring) = self.traces.ring_mut(entry.rule.key) else {
            return;
        };
        let mut sent = OutputSet::default();
        let mut datagrams = 0u32;
        let first_output = self.sends.first().map(|s| s.output);
        for s in &self.sends {
            sent.insert(s.output);
            if Some(s.output) == first_output {
                datagrams += 1;
            }
        }
        let action = match reason_of(verdict) {
            Some(r) => Action::Dropped(r),
            // Matched, yet no output took it: only route-mode outputs
            // skip a packet, for its TTL or for being a GSO batch.
            None if sent.is_empty() && p.ttl <= 1 => Action::Dropped(DropReason::TtlExpired),
            None if sent.is_empty() => Action::Dropped(DropReason::NoOutput),
            None => Action::Forwarded,
        };
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        ring.push(Record {
            at_ms,
            peek: p,
            datagrams: datagrams.max(1),
            action,
            sent,
        });
    }

    /// Trouble outside the verdict (no buffer, a failed send with its
    /// errno), explained if its facility is at debug.
    pub(super) fn trouble(&mut self, t: Trouble, errno: Option<i32>) {
        // Before the clock: running out of buffers can happen per packet.
        if !explain::debug_on(t.facility()) {
            return;
        }
        let now = self.mono_ms();
        self.explain.trouble(now, t, &self.setup.interface, errno);
    }

    /// At each stats tick: summaries of held-back lines, and the Stats
    /// facility's line of the drop counters that grew.
    pub(super) fn explain_tick(&mut self) {
        let now = self.mono_ms();
        self.explain.flush(now, &self.setup.interface);
        if explain::debug_on(Facility::Stats) {
            let grew = explain::drop_deltas(&self.last_counters, &self.c);
            if !grew.is_empty() {
                let list: Vec<String> = grew.iter().map(|(n, d)| format!("{n} +{d}")).collect();
                debug!(target: "Stats", "{}: since the last report: received +{}, matched +{}; drops: {}",
                    self.setup.interface,
                    self.c.recv - self.last_counters.recv,
                    self.c.matched - self.last_counters.matched,
                    list.join(", "));
            }
        }
        self.last_counters = WorkerCounters::clone(&self.c);
    }

    pub(super) fn trace_enable(&mut self, key: u64, count: u32) {
        let count = count.clamp(1, MAX_COUNT);
        self.traces.enable(key, count);
        info!(target: "DataPlane", "{}: tracing rule {key:016x}, last {count} packets", self.setup.interface);
    }

    pub(super) fn trace_disable(&mut self, key: u64) {
        if self.traces.disable(key) {
            info!(target: "DataPlane", "{}: no longer tracing rule {key:016x}", self.setup.interface);
        }
    }

    /// Answer `TraceGet`: the rings, with each rule's outputs as this
    /// worker's table has them now.
    pub(super) fn trace_report(&mut self, key: Option<u64>, nonce: u64) {
        let table = self.rx.table();
        let egress = &self.egress;
        let outputs = |k: u64| -> Vec<TraceOutput> {
            table
                .get(k)
                .map(|e| {
                    e.rule
                        .outputs
                        .iter()
                        .map(|o| TraceOutput {
                            interface: egress
                                .get(o.egress as usize)
                                .and_then(|x| x.as_ref())
                                .map(|x| x.spec.interface.clone())
                                .unwrap_or_else(|| format!("egress#{}", o.egress)),
                            group: o.group,
                            port: o.port,
                            mode: o.mode,
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let msgs = self.traces.report(key, outputs);
        let n = msgs.len();
        for (i, rules) in msgs.into_iter().enumerate() {
            let _ = send(
                &self.ipc,
                &FromWorker::Trace {
                    nonce,
                    rules,
                    last: i + 1 == n,
                },
            );
        }
    }
}
