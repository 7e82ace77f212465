//! What reaches a worker over IPC, and what it reports back. Table
//! messages are applied by its `TableReceiver`; this part handles the rest
//! (egress sockets, log levels, traces, PIM's requests, fault injection,
//! shutdown) and sends the periodic stats and heartbeats.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use io_uring::cqueue;
use tracing::{debug, info, warn};

use crate::ipc::fdpass::recv_msg;
use crate::ipc::{decode, Fault, FromWorker, ToWorker};

use crate::dataplane::sockets;

use super::setup::send;
use super::{Egress, Exit, Worker, WorkerError, RULES_PER_STATS};

impl Worker {
    pub(super) fn on_timer(&mut self, _res: i32, flags: u32) -> io::Result<()> {
        if !cqueue::more(flags) {
            self.arm_timer()?;
        }
        if self.recv_backoff {
            self.recv_backoff = false;
        }
        if let Ok((_, drops)) = sockets::packet_statistics(self.ingress.as_fd()) {
            self.c.kernel_drops += u64::from(drops);
            if let Some(e) = self.early.as_mut() {
                e.ring_dropped(u64::from(drops));
            }
        }
        if let Some(e) = &self.early {
            self.c.early_drops = e.drops();
        }
        self.send_stats(false);
        self.explain_tick();
        let _ = send(&self.ipc, &self.rx.heartbeat());
        Ok(())
    }

    pub(super) fn send_stats(&mut self, all: bool) {
        let rules = self.rx.table_mut().take_counters(all || self.first_stats);
        self.first_stats = false;
        let mut chunks = rules.chunks(RULES_PER_STATS).peekable();
        if chunks.peek().is_none() {
            let _ = send(
                &self.ipc,
                &FromWorker::Stats {
                    counters: Box::new(self.c.clone()),
                    rules: Vec::new(),
                    last: true,
                },
            );
            return;
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            let _ = send(
                &self.ipc,
                &FromWorker::Stats {
                    counters: Box::new(self.c.clone()),
                    rules: chunk.to_vec(),
                    last,
                },
            );
        }
    }

    /// Drain the IPC socket. Returns `Some` when the loop must end.
    pub(super) fn on_ipc(&mut self, res: i32, flags: u32) -> Result<Option<Exit>, WorkerError> {
        if !cqueue::more(flags) {
            self.arm_ipc().map_err(WorkerError::Ring)?;
        }
        if res < 0 {
            return Err(WorkerError::Ipc(io::Error::from_raw_os_error(-res)));
        }
        self.drain_ipc()
    }

    /// Apply every message waiting on the IPC socket, without blocking.
    /// Also called once before the loop starts: the supervisor sends a new
    /// worker its table while the worker sets up, and frames read before
    /// it is applied would match no rule and be dropped.
    pub(super) fn drain_ipc(&mut self) -> Result<Option<Exit>, WorkerError> {
        loop {
            let r = match recv_msg(self.ipc.as_fd(), &mut self.msgbuf, true) {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(Some(Exit::SupervisorGone)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(WorkerError::Ipc(e)),
            };
            let msg: ToWorker = match decode(&self.msgbuf[..r.len]) {
                Ok(m) => m,
                Err(e) => {
                    // A message we cannot read may have been a table update:
                    // say so, and the supervisor resyncs us.
                    self.rx.lost_message();
                    let _ = send(
                        &self.ipc,
                        &FromWorker::Error {
                            message: format!("undecodable IPC message: {e}"),
                        },
                    );
                    continue;
                }
            };
            if let Some(exit) = self.apply(msg, r.fds)? {
                return Ok(Some(exit));
            }
        }
    }

    /// Act on one message. Table messages change only the table and
    /// are answered with an ack; the rest are commands to the process.
    fn apply(&mut self, msg: ToWorker, fds: Vec<OwnedFd>) -> Result<Option<Exit>, WorkerError> {
        let msg = match self.rx.handle(msg) {
            Ok(ack) => {
                if let Some(ack) = ack {
                    let _ = send(&self.ipc, &ack);
                }
                return Ok(None);
            }
            Err(other) => other,
        };
        match msg {
            ToWorker::Hello(_) => {
                let _ = send(
                    &self.ipc,
                    &FromWorker::Error {
                        message: "second Hello ignored".into(),
                    },
                );
            }
            ToWorker::AddEgress(spec) => match fds.into_iter().next() {
                Some(fd) => {
                    let id = spec.id as usize;
                    if self.egress.len() <= id {
                        self.egress.resize_with(id + 1, || None);
                    }
                    debug!(target: "Egress", "egress {} on {} (ttl {}, {})", spec.id, spec.interface, spec.ttl, spec.mode.as_str());
                    let gso_max = if spec.mode == crate::rule::OutputMode::Republish {
                        spec.mtu.saturating_sub(28)
                    } else {
                        0
                    };
                    self.egress[id] = Some(Egress { fd, spec, gso_max });
                }
                None => {
                    let _ = send(
                        &self.ipc,
                        &FromWorker::Error {
                            message: format!("AddEgress {} arrived without its socket", spec.id),
                        },
                    );
                }
            },
            ToWorker::RemoveEgress { id } => {
                // Sends in flight hold their own reference to the file.
                if let Some(e) = self.egress.get_mut(id as usize) {
                    if let Some(old) = e.take() {
                        debug!(target: "Egress", "egress {id} on {} closed", old.spec.interface);
                    }
                }
            }
            // Taken by the receiver above.
            ToWorker::ApplyDelta { .. }
            | ToWorker::SyncBegin { .. }
            | ToWorker::SyncChunk { .. }
            | ToWorker::SyncEnd { .. } => {}
            ToWorker::SetLogLevel(levels) => (self.hooks.set_levels)(&levels),
            ToWorker::Fault(f) => self.fault(f),
            ToWorker::TraceEnable { key, count } => self.trace_enable(key, count),
            ToWorker::TraceDisable { key } => self.trace_disable(key),
            ToWorker::TraceGet { key, nonce } => self.trace_report(key, nonce),
            ToWorker::PimData(d) => self.set_pim_data(d),
            ToWorker::Shutdown => {
                info!(target: "DataPlane", "worker for {} shutting down after {:?}", self.setup.interface, self.started.elapsed());
                return Ok(Some(Exit::Shutdown));
            }
        }
        Ok(None)
    }

    fn fault(&mut self, f: Fault) {
        warn!(target: "DataPlane", "fault injected: {f:?}");
        match f {
            Fault::Stall => loop {
                // A stuck loop: no forwarding, no heartbeats. The supervisor
                // must notice and kill us.
                std::thread::sleep(Duration::from_secs(3600));
            },
            Fault::CorruptTable => {
                // Behind the receiver's back, as memory corruption would.
                let table = self.rx.table_mut();
                let victim = table.entries().map(|e| e.rule.key).next();
                if let Some(k) = victim {
                    table.remove(k);
                }
            }
            Fault::Panic => panic!("fault injection: worker panic requested"),
        }
    }
}
