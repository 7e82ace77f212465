//! A worker process's event loop: one thread, one io_uring.
//!
//! Owns: the handshake with the supervisor, the privilege drop, and the
//! loop that drives everything through the ring: a multishot receive on the
//! AF_PACKET socket into the provided-buffer ring, one `SENDMSG` per output
//! datagram (referencing the receive buffer, never copying it), a multishot
//! poll on the IPC socket for table updates, and a multishot timeout for
//! stats and heartbeats. Each turn reaps every completion, queues the
//! resulting sends, and makes one `submit_and_wait` call.
//!
//! The worker decides nothing: it applies the table it is sent, counts, and
//! reports (DESIGN.md, "Supervisor ⇄ worker").

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use tracing::{debug, info, warn};

use crate::ipc::fdpass::{recv_msg, send_msg, wait_readable};
use crate::ipc::{
    decode, encode, EgressSpec, Fault, FromWorker, TableRule, ToWorker, WorkerCounters,
    WorkerSetup, IPC_VERSION, MAX_MESSAGE,
};
use crate::logging::LogLevels;

use super::bufring::{BufRing, Tier};
use super::egress::{Batcher, Datagram};
use super::pipeline::{self, Send, Verdict};
use super::sockets;
use super::table::Table;

const KIND_SHIFT: u64 = 56;
const KIND_RECV: u64 = 1;
const KIND_SEND: u64 = 2;
const KIND_IPC: u64 = 3;
const KIND_TIMER: u64 = 4;

const SQ_ENTRIES: u32 = 4096;
const CQ_ENTRIES: u32 = 32768;
/// Send batches in flight at once (each up to `egress::MAX_SEGS` datagrams).
const SEND_SLOTS: usize = 4096;
const BGID: u16 = 1;
/// Packets per turn from which a worker counts as busy and waits for
/// batches: below it, a wakeup per packet costs less than the kernel's
/// repeated checks inside a batch wait.
const BUSY_RECVS: usize = 4;
/// Counters per stats message.
const RULES_PER_STATS: usize = 256;

/// Why the loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// The supervisor asked.
    Shutdown,
    /// The supervisor's end of the IPC socket closed.
    SupervisorGone,
}

/// Failures that end a worker. The supervisor sees the exit and restarts it.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("handshake: {0}")]
    Handshake(String),
    #[error("IPC protocol version {theirs} from the supervisor, this worker speaks {ours}")]
    Version { theirs: u32, ours: u32 },
    #[error("dropping privileges to uid {uid}, gid {gid}: {err}")]
    Privileges { uid: u32, gid: u32, err: String },
    #[error("io_uring: {0}")]
    Ring(io::Error),
    #[error("IPC: {0}")]
    Ipc(io::Error),
}

/// What the worker needs from its host binary.
pub struct Hooks {
    /// Apply new log levels (the binary owns the tracing subscriber).
    pub set_levels: Box<dyn FnMut(&LogLevels)>,
}

/// Run a worker on the IPC socket `ipc` until shut down.
pub fn run(ipc: OwnedFd, mut hooks: Hooks) -> Result<Exit, WorkerError> {
    let mut msgbuf = vec![0u8; MAX_MESSAGE];
    let (setup, ingress) = handshake(&ipc, &mut msgbuf)?;
    (hooks.set_levels)(&setup.levels);
    if let Some(core) = setup.core {
        pin_to_core(core);
    }
    // The ring is set up before root is dropped: the kernel charges an
    // io_uring to its user's locked memory unless the creator holds
    // CAP_IPC_LOCK, and all workers run as one user, so under the usual
    // 8 MiB RLIMIT_MEMLOCK only about eight of them would fit. The charge is
    // decided when the ring is created; the buffer ring registered on it
    // next is covered too.
    let (tier, size) = Tier::for_mtu(setup.buffer_size.saturating_sub(64));
    let count = tier.count_from_env();
    let ring = build_ring().map_err(|e| WorkerError::Ring(explain_ring_error(e)))?;
    let bufs = BufRing::new(&ring, BGID, count, size, tier).map_err(WorkerError::Ring)?;
    drop_privileges(setup.uid, setup.gid)?;
    info!(
        target: "BufferPool",
        "{} receive buffers of {size} bytes ({} tier) for {}",
        count,
        tier.name(),
        setup.interface
    );
    let min_wait = ring.params().is_feature_min_timeout();
    let mut w = Worker::new(ring, bufs, ingress, ipc, setup, hooks, msgbuf);
    if min_wait {
        w.batch_wait_us = crate::env_override::<u64>("MCR_BATCH_WAIT_US")
            .unwrap_or(25)
            .min(10_000) as u32;
    }
    let r = w.run();
    w.bufs.unregister(&w.ring);
    r
}

fn handshake(ipc: &OwnedFd, buf: &mut [u8]) -> Result<(WorkerSetup, OwnedFd), WorkerError> {
    let ready = wait_readable(ipc.as_fd(), Duration::from_secs(10)).map_err(WorkerError::Ipc)?;
    if !ready {
        return Err(WorkerError::Handshake(
            "no Hello from the supervisor within 10 s".into(),
        ));
    }
    let r = recv_msg(ipc.as_fd(), buf, false)
        .map_err(WorkerError::Ipc)?
        .ok_or_else(|| {
            WorkerError::Handshake("the supervisor closed the IPC socket before Hello".into())
        })?;
    let msg: ToWorker = decode(&buf[..r.len]).map_err(|e| WorkerError::Handshake(e.to_string()))?;
    let ToWorker::Hello(setup) = msg else {
        return Err(WorkerError::Handshake(format!(
            "expected Hello, got {msg:?}"
        )));
    };
    if setup.version != IPC_VERSION {
        let _ = send(
            ipc,
            &FromWorker::Error {
                message: format!(
                    "worker speaks IPC version {IPC_VERSION}, supervisor sent {}",
                    setup.version
                ),
            },
        );
        return Err(WorkerError::Version {
            theirs: setup.version,
            ours: IPC_VERSION,
        });
    }
    let ingress = r.fds.into_iter().next().ok_or_else(|| {
        WorkerError::Handshake("Hello arrived without the AF_PACKET socket".into())
    })?;
    send(
        ipc,
        &FromWorker::Hello {
            version: IPC_VERSION,
            pid: std::process::id(),
        },
    )
    .map_err(WorkerError::Ipc)?;
    Ok((setup, ingress))
}

fn send(ipc: &OwnedFd, msg: &FromWorker) -> io::Result<()> {
    let bytes = encode(msg).map_err(io::Error::other)?;
    send_msg(ipc.as_fd(), &bytes, &[], true)
}

fn pin_to_core(core: u32) {
    let mut set = nix::sched::CpuSet::new();
    match set.set(core as usize) {
        Ok(()) => {
            if let Err(e) = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set) {
                warn!(target: "DataPlane", "cannot pin to core {core}: {e}; running unpinned");
            }
        }
        Err(e) => warn!(target: "DataPlane", "core {core} is out of range: {e}; running unpinned"),
    }
}

/// Give up root: every socket the worker needs is already open.
fn drop_privileges(uid: u32, gid: u32) -> Result<(), WorkerError> {
    use nix::unistd::{getuid, setgroups, setresgid, setresuid, Gid, Uid};
    let err = |e: nix::Error| WorkerError::Privileges {
        uid,
        gid,
        err: e.to_string(),
    };
    if !getuid().is_root() && !nix::unistd::geteuid().is_root() {
        // Already unprivileged (a non-root supervisor); nothing to drop.
        return Ok(());
    }
    if uid == 0 {
        // Asked to stay root: only tests that run a worker in-process do.
        return Ok(());
    }
    setgroups(&[]).map_err(err)?;
    setresgid(Gid::from_raw(gid), Gid::from_raw(gid), Gid::from_raw(gid)).map_err(err)?;
    setresuid(Uid::from_raw(uid), Uid::from_raw(uid), Uid::from_raw(uid)).map_err(err)?;
    if uid != 0 && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(WorkerError::Privileges {
            uid,
            gid,
            err: "could regain root after dropping it".into(),
        });
    }
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) takes integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    }
    Ok(())
}

/// ENOMEM from io_uring_setup nearly always means the locked-memory
/// limit, not a lack of memory: say so.
fn explain_ring_error(e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::ENOMEM) {
        io::Error::new(
            e.kind(),
            format!(
                "{e}: the locked-memory limit (RLIMIT_MEMLOCK, `ulimit -l`) of the worker user \
                 is used up; every worker's rings count against it unless mcrd has CAP_IPC_LOCK"
            ),
        )
    } else {
        e
    }
}

fn build_ring() -> io::Result<IoUring> {
    // Deferred task running batches completion work into our one
    // io_uring_enter per turn; fall back where the kernel lacks it.
    IoUring::builder()
        .setup_cqsize(CQ_ENTRIES)
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(SQ_ENTRIES)
        .or_else(|_| {
            IoUring::builder()
                .setup_cqsize(CQ_ENTRIES)
                .build(SQ_ENTRIES)
        })
}

struct Egress {
    fd: OwnedFd,
    spec: EgressSpec,
    /// Largest datagram this socket batches with GSO (0: never). Starts at
    /// what the output MTU carries unfragmented; lowered if the kernel
    /// refuses a batch anyway.
    gso_max: u32,
}

struct Worker {
    ring: IoUring,
    bufs: BufRing,
    ingress: OwnedFd,
    ipc: OwnedFd,
    setup: WorkerSetup,
    hooks: Hooks,
    msgbuf: Vec<u8>,
    table: Table,
    egress: Vec<Option<Egress>>,
    batcher: Batcher,
    /// Batches closed this turn, waiting to be queued on the ring.
    flushed: Vec<(u32, usize, RawFd)>,
    sends: Vec<Send>,
    c: WorkerCounters,
    /// Last table message applied.
    seq: u64,
    /// A sequence number was skipped since the last full sync.
    gap: bool,
    sync: Option<(u64, Vec<TableRule>)>,
    timer: Box<types::Timespec>,
    recv_armed: bool,
    /// A receive error other than running out of buffers: wait for the next
    /// tick before re-arming so a dead socket cannot spin the loop.
    recv_backoff: bool,
    first_stats: bool,
    started: Instant,
    /// Completions to wait for per wakeup, and the longest the first of
    /// them may be held back to get them (`MCR_BATCH_WAIT_US`, 0 = off).
    batch_want: usize,
    batch_wait_us: u32,
    /// The last turn handled enough packets that waiting for a batch pays;
    /// a quiet worker waits for one completion and wakes at once.
    busy: bool,
}

impl Worker {
    fn new(
        ring: IoUring,
        bufs: BufRing,
        ingress: OwnedFd,
        ipc: OwnedFd,
        setup: WorkerSetup,
        hooks: Hooks,
        msgbuf: Vec<u8>,
    ) -> Self {
        let interval = Duration::from_millis(u64::from(setup.stats_interval_ms.max(10)));
        Worker {
            ring,
            bufs,
            ingress,
            ipc,
            setup,
            hooks,
            msgbuf,
            table: Table::new(),
            egress: Vec::new(),
            batcher: Batcher::new(SEND_SLOTS),
            flushed: Vec::with_capacity(SEND_SLOTS),
            sends: Vec::with_capacity(crate::rule::MAX_OUTPUTS),
            c: WorkerCounters::default(),
            seq: 0,
            gap: false,
            sync: None,
            timer: Box::new(types::Timespec::from(interval)),
            recv_armed: false,
            recv_backoff: false,
            first_stats: true,
            started: Instant::now(),
            batch_want: crate::env_override::<u64>("MCR_BATCH_WANT")
                .unwrap_or(32)
                .clamp(1, 4096) as usize,
            batch_wait_us: 0,
            busy: false,
        }
    }

    fn push(&mut self, e: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every entry we push references memory owned by this
            // Worker (send slots, the timer, the buffer ring) that stays put
            // and alive until its completion is reaped.
            if unsafe { self.ring.submission().push(&e) }.is_ok() {
                return Ok(());
            }
            // The queue is full: hand what we have to the kernel first.
            self.submit(0)?;
        }
    }

    fn submit(&mut self, want: usize) -> io::Result<()> {
        let queued = self.ring.submission().len() as u64;
        let r = if want > 0 && self.batch_wait_us > 0 && self.busy {
            // Sleep until `batch_want` completions are ready, but once
            // `batch_wait_us` have passed, return as soon as there is one:
            // an idle worker still wakes at once for a single packet, a
            // busy one handles a batch per wakeup instead of a packet.
            let args = types::SubmitArgs::new().min_wait_usec(self.batch_wait_us);
            self.ring
                .submitter()
                .submit_with_args(self.batch_want, &args)
        } else {
            self.ring.submit_and_wait(want)
        };
        match r {
            Ok(_) => {}
            // ETIME: a batch wait ended before `batch_want` completions;
            // whatever arrived is handled now.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR | libc::EBUSY | libc::ETIME)
                ) => {}
            Err(e) => return Err(e),
        }
        self.c.ring_submits += 1;
        self.c.ring_sqes += queued;
        Ok(())
    }

    fn arm_recv(&mut self) -> io::Result<()> {
        let e = opcode::RecvMulti::new(types::Fd(self.ingress.as_raw_fd()), BGID)
            .flags(libc::MSG_TRUNC)
            .build()
            .user_data(KIND_RECV << KIND_SHIFT);
        self.push(e)?;
        self.recv_armed = true;
        Ok(())
    }

    fn arm_ipc(&mut self) -> io::Result<()> {
        let e = opcode::PollAdd::new(types::Fd(self.ipc.as_raw_fd()), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(KIND_IPC << KIND_SHIFT);
        self.push(e)
    }

    fn arm_timer(&mut self) -> io::Result<()> {
        let e = opcode::Timeout::new(&*self.timer as *const types::Timespec)
            .flags(types::TimeoutFlags::MULTISHOT)
            .build()
            .user_data(KIND_TIMER << KIND_SHIFT);
        self.push(e)
    }

    fn run(&mut self) -> Result<Exit, WorkerError> {
        self.arm_recv().map_err(WorkerError::Ring)?;
        self.arm_ipc().map_err(WorkerError::Ring)?;
        self.arm_timer().map_err(WorkerError::Ring)?;
        info!(target: "DataPlane", "worker {} for {} running (pid {})", self.setup.worker_index, self.setup.interface, std::process::id());
        let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(CQ_ENTRIES as usize);
        loop {
            self.submit(1).map_err(WorkerError::Ring)?;
            cqes.clear();
            cqes.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            self.c.ring_cqes += cqes.len() as u64;
            let recvs = cqes
                .iter()
                .filter(|c| c.0 >> KIND_SHIFT == KIND_RECV)
                .count();
            self.busy = recvs >= BUSY_RECVS;
            for &(ud, res, flags) in &cqes {
                match ud >> KIND_SHIFT {
                    KIND_RECV => self.on_recv(res, flags).map_err(WorkerError::Ring)?,
                    KIND_SEND => self.on_send(ud, res),
                    KIND_IPC => {
                        if let Some(exit) = self.on_ipc(res, flags)? {
                            self.send_stats(true);
                            return Ok(exit);
                        }
                    }
                    KIND_TIMER => self.on_timer(res, flags).map_err(WorkerError::Ring)?,
                    _ => {}
                }
            }
            self.flush_sends().map_err(WorkerError::Ring)?;
            self.bufs.commit();
            if !self.recv_armed && !self.recv_backoff && self.bufs.available() > 0 {
                self.arm_recv().map_err(WorkerError::Ring)?;
            }
        }
    }

    fn on_recv(&mut self, res: i32, flags: u32) -> io::Result<()> {
        if !cqueue::more(flags) {
            self.recv_armed = false;
        }
        if res < 0 {
            let errno = -res;
            if errno == libc::ENOBUFS {
                self.c.buf_exhaust += 1;
            } else {
                warn!(target: "Ingress", "receive on {} failed: {}", self.setup.interface, io::Error::from_raw_os_error(errno));
                self.recv_backoff = true;
            }
            return Ok(());
        }
        let Some(bid) = cqueue::buffer_select(flags) else {
            return Ok(());
        };
        self.bufs.taken(bid);
        let received = res as usize;
        let verdict = {
            let frame = self.bufs.buf_mut(bid);
            pipeline::process(
                frame,
                received,
                self.setup.format,
                &mut self.table,
                &mut self.sends,
                &mut self.c,
            )
        };
        let mut held: u16 = 0;
        if let Verdict::Forward { slot } = verdict {
            let key = self.table.entry(slot).map(|e| e.rule.key).unwrap_or(0);
            for i in 0..self.sends.len() {
                let s = self.sends[i];
                if self.queue_send(bid, key, s) {
                    held += 1;
                }
            }
        }
        if held > 0 {
            self.bufs.hold(bid, held);
        } else {
            self.bufs.recycle_if_free(bid);
        }
        Ok(())
    }

    /// Add one datagram to its egress batch. Returns whether it was taken
    /// (and so holds `bid` until its batch completes).
    fn queue_send(&mut self, bid: u16, rule_key: u64, s: Send) -> bool {
        let (fd, gso_ok) = match self.egress.get(s.egress as usize).and_then(|e| e.as_ref()) {
            Some(e) => (e.fd.as_raw_fd(), s.len <= e.gso_max),
            None => {
                self.c.send_errors += 1;
                self.count_output_error(rule_key, s.output, s.len as usize);
                return false;
            }
        };
        let taken = self.batcher.add(Datagram {
            fd,
            egress: s.egress,
            gso_ok,
            dst: s.dst,
            port: s.port,
            ptr: self.bufs.addr(bid, s.offset as usize),
            len: s.len as usize,
            bid,
            key: rule_key,
            out: s.output,
        });
        if !taken {
            self.c.send_backlog_drops += 1;
            self.count_output_error(rule_key, s.output, s.len as usize);
        }
        taken
    }

    /// Queue every batch closed this turn as one SENDMSG each.
    fn flush_sends(&mut self) -> io::Result<()> {
        let mut flushed = std::mem::take(&mut self.flushed);
        self.batcher
            .flush(|slot, hdr, fd| flushed.push((slot, hdr as usize, fd)));
        for &(slot, hdr, fd) in &flushed {
            let e = opcode::SendMsg::new(types::Fd(fd), hdr as *const libc::msghdr)
                .build()
                .user_data((KIND_SEND << KIND_SHIFT) | u64::from(slot));
            self.push(e)?;
        }
        flushed.clear();
        self.flushed = flushed;
        Ok(())
    }

    /// A datagram the pipeline counted for an output did not make it to
    /// the kernel: count it as an error instead.
    fn count_output_error(&mut self, rule_key: u64, output: u16, len: usize) {
        if let Some(e) = self
            .table
            .get_mut(rule_key)
            .and_then(|e| e.outputs.get_mut(usize::from(output)))
        {
            e.errors += 1;
            e.packets = e.packets.saturating_sub(1);
            e.bytes = e.bytes.saturating_sub(len as u64);
        }
    }

    fn on_send(&mut self, ud: u64, res: i32) {
        let slot = (ud & ((1 << KIND_SHIFT) - 1)) as u32;
        let Some(b) = self.batcher.get(slot) else {
            return;
        };
        let n = b.n;
        if res < 0 {
            let errno = -res;
            if n > 1
                && matches!(
                    errno,
                    libc::EINVAL
                        | libc::EMSGSIZE
                        | libc::EIO
                        | libc::EOPNOTSUPP
                        | libc::ENOPROTOOPT
                )
            {
                self.unbatch(slot, errno);
                return;
            }
            self.c.send_errors += n as u64;
            let segs: Vec<(u64, u16, usize)> = (0..n)
                .map(|i| (b.keys[i], b.outs[i], b.segment(i).1))
                .collect();
            for (key, out, len) in segs {
                self.count_output_error(key, out, len);
            }
            debug!(target: "Egress", "send failed: {}", io::Error::from_raw_os_error(errno));
        } else {
            self.c.sent += n as u64;
            self.c.sent_bytes += res as u64;
        }
        if let Some(b) = self.batcher.get(slot) {
            let bids = b.bids;
            for &bid in &bids[..n] {
                self.bufs.release(bid);
            }
        }
        self.batcher.release(slot);
    }

    /// The kernel refused a GSO batch: lower the socket's GSO size limit
    /// below this batch's and send its datagrams one by one. Their buffers
    /// stay held by the new sends, so nothing is lost.
    fn unbatch(&mut self, slot: u32, errno: i32) {
        let Some(b) = self.batcher.get(slot) else {
            return;
        };
        let (n, seg, egress) = (b.n, b.seg, b.egress);
        let segs: Vec<(u16, u64, u16, *const u8, usize)> = (0..n)
            .map(|i| {
                let (ptr, len) = b.segment(i);
                (b.bids[i], b.keys[i], b.outs[i], ptr, len)
            })
            .collect();
        let (dst, port) = b.destination();
        let fd = b.fd;
        self.batcher.release(slot);
        if let Some(Some(e)) = self.egress.get_mut(egress as usize) {
            if e.gso_max >= seg {
                warn!(target: "Egress", "egress {egress} on {} refused a GSO batch of {seg}-byte datagrams ({}); sending those one by one", e.spec.interface, io::Error::from_raw_os_error(errno));
                e.gso_max = seg.saturating_sub(1);
            }
        }
        for (bid, key, out, ptr, len) in segs {
            let taken = self.batcher.add(Datagram {
                fd,
                egress,
                gso_ok: false,
                dst,
                port,
                ptr,
                len,
                bid,
                key,
                out,
            });
            if !taken {
                self.c.send_backlog_drops += 1;
                self.count_output_error(key, out, len);
                self.bufs.release(bid);
            }
        }
    }

    fn on_timer(&mut self, _res: i32, flags: u32) -> io::Result<()> {
        if !cqueue::more(flags) {
            self.arm_timer()?;
        }
        if self.recv_backoff {
            self.recv_backoff = false;
        }
        if let Ok((_, drops)) = sockets::packet_statistics(self.ingress.as_fd()) {
            self.c.kernel_drops += u64::from(drops);
        }
        self.send_stats(false);
        let _ = send(
            &self.ipc,
            &FromWorker::Heartbeat {
                seq: self.seq,
                hash: self.table.hash(),
            },
        );
        Ok(())
    }

    fn send_stats(&mut self, all: bool) {
        let rules = self.table.take_counters(all || self.first_stats);
        self.first_stats = false;
        let mut chunks = rules.chunks(RULES_PER_STATS).peekable();
        if chunks.peek().is_none() {
            let _ = send(
                &self.ipc,
                &FromWorker::Stats {
                    counters: self.c.clone(),
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
                    counters: self.c.clone(),
                    rules: chunk.to_vec(),
                    last,
                },
            );
        }
    }

    /// Drain the IPC socket. Returns `Some` when the loop must end.
    fn on_ipc(&mut self, res: i32, flags: u32) -> Result<Option<Exit>, WorkerError> {
        if !cqueue::more(flags) {
            self.arm_ipc().map_err(WorkerError::Ring)?;
        }
        if res < 0 {
            return Err(WorkerError::Ipc(io::Error::from_raw_os_error(-res)));
        }
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
                    self.gap = true;
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

    fn expect_seq(&mut self, seq: u64) {
        if seq != self.seq + 1 {
            warn!(target: "RuleDispatch", "table message {seq} after {}: messages were lost", self.seq);
            self.gap = true;
        }
        self.seq = seq;
    }

    fn ack(&mut self) {
        let _ = send(
            &self.ipc,
            &FromWorker::Ack {
                seq: self.seq,
                hash: self.table.hash(),
                rules: self.table.len() as u32,
                gap: self.gap,
            },
        );
    }

    fn apply(&mut self, msg: ToWorker, fds: Vec<OwnedFd>) -> Result<Option<Exit>, WorkerError> {
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
                self.ack();
            }
            ToWorker::SyncBegin { seq } => {
                self.sync = Some((seq, Vec::new()));
            }
            ToWorker::SyncChunk { seq, rules } => {
                if let Some((s, staged)) = &mut self.sync {
                    if *s == seq {
                        staged.extend(rules);
                    }
                }
            }
            ToWorker::SyncEnd { seq, hash } => {
                match self.sync.take() {
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
                self.ack();
            }
            ToWorker::SetLogLevel(levels) => (self.hooks.set_levels)(&levels),
            ToWorker::Fault(f) => self.fault(f),
            ToWorker::Shutdown => {
                info!(target: "DataPlane", "worker for {} shutting down after {:?}", self.setup.interface, self.started.elapsed());
                return Ok(Some(Exit::Shutdown));
            }
        }
        Ok(None)
    }

    /// Replace the table with `rules`, keeping the counters of rules that
    /// stay.
    fn install(&mut self, rules: Vec<TableRule>) {
        let keep: std::collections::HashSet<u64> = rules.iter().map(|r| r.key).collect();
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

    fn fault(&mut self, f: Fault) {
        warn!(target: "DataPlane", "fault injected: {f:?}");
        match f {
            Fault::Stall => loop {
                // A stuck loop: no forwarding, no heartbeats. The supervisor
                // must notice and kill us.
                std::thread::sleep(Duration::from_secs(3600));
            },
            Fault::CorruptTable => {
                let victim = self.table.entries().map(|e| e.rule.key).next();
                if let Some(k) = victim {
                    self.table.remove(k);
                }
            }
            Fault::Panic => panic!("fault injection: worker panic requested"),
        }
    }
}
