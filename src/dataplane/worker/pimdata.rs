//! The worker's side of PIM's data path (rules in `dataplane::upcall`):
//! the first-packet upcall for (S,G)s no (S,G) rule covers, and the
//! whole-packet punt of register tunnels. Only a worker told it runs on a
//! PIM interface (`ToWorker::PimData`) does either; every other worker
//! pays one predictable branch per packet.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use crate::dataplane::pipeline::Verdict;
use crate::dataplane::upcall::{self, Decision, PuntBudget, UpcallLimiter};
use crate::ipc::{FromWorker, PimData, MAX_PUNT_FLOWS};

use super::setup::send;
use super::Worker;

/// PIM's requests of this worker and the limits that bound them.
#[derive(Default)]
pub(super) struct PimPath {
    pub(super) upcall: bool,
    pub(super) punts: HashSet<(Ipv4Addr, Ipv4Addr)>,
    limiter: UpcallLimiter,
    budget: PuntBudget,
}

impl PimPath {
    /// Whether the receive path must look at packets at all.
    #[inline]
    pub(super) fn active(&self) -> bool {
        self.upcall || !self.punts.is_empty()
    }
}

impl Worker {
    pub(super) fn set_pim_data(&mut self, d: PimData) {
        self.pim.upcall = d.upcall;
        self.pim.punts = d.punts.into_iter().take(MAX_PUNT_FLOWS).collect();
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Before the pipeline (which decrements the TTL of routed packets in
    /// place): send the packet whole if it belongs to a register tunnel.
    pub(super) fn punt_if_tunnelled(&mut self, bid: u16, received: usize) {
        if self.pim.punts.is_empty() {
            return;
        }
        let frame = self.bufs.buf_mut(bid);
        let Some(p) = upcall::peek(frame, received, self.setup.format) else {
            return;
        };
        if !self.pim.punts.contains(&(p.source, p.group)) {
            return;
        }
        let now = self.now_ms();
        if !self.pim.budget.admit(now, p.len) {
            self.c.punt_dropped += 1;
            return;
        }
        let packet = self.bufs.buf_mut(bid)[p.offset..p.offset + p.len].to_vec();
        match send(&self.ipc, &FromWorker::Punt { packet }) {
            Ok(()) => self.c.punted += 1,
            // The socket is full: the supervisor is behind; dropping here
            // keeps table acks and heartbeats flowing.
            Err(_) => self.c.punt_dropped += 1,
        }
    }

    /// After the pipeline: the first packet of an (S,G) that no (S,G) rule
    /// covers (no rule at all, or a rule for any source) is reported.
    pub(super) fn upcall_if_uncovered(&mut self, bid: u16, received: usize, verdict: Verdict) {
        if !self.pim.upcall {
            return;
        }
        if !upcall::uncovered(verdict, self.rx.table()) {
            return;
        }
        let Some(p) = upcall::peek(self.bufs.buf_mut(bid), received, self.setup.format) else {
            return;
        };
        if !upcall::routable(p.source, p.group) {
            return;
        }
        let now = self.now_ms();
        match self.pim.limiter.check(now, p.source, p.group) {
            Decision::Recent => {}
            Decision::Suppressed => self.c.upcalls_suppressed += 1,
            Decision::Report => {
                let msg = FromWorker::Upcall {
                    source: p.source,
                    group: p.group,
                };
                match send(&self.ipc, &msg) {
                    Ok(()) => self.c.upcalls += 1,
                    Err(_) => self.c.upcalls_suppressed += 1,
                }
            }
        }
    }
}
