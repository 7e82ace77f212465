//! The worker's event loop and its data path: arming the receive (a
//! multishot receive into the provided buffers, or a multishot poll on the
//! socket's memory-mapped `TPACKET_V3` ring, whose frames the pipeline reads
//! where they lie — or, on PIM interfaces and with `MCR_RX_COPY=1`, after
//! copying them into the same buffers), IPC poll and timer; reaping
//! completions; turning each received frame into sends through the pure
//! pipeline; batching sends per egress socket (GSO where the output allows
//! it) and accounting for every datagram that does not reach the kernel.
//! A send of a frame read in place holds its ring block, not a buffer: the
//! block goes back to the kernel when the last such send completes. Before
//! each `io_uring_enter` the ring records how far its frames were handed
//! to the kernel, so a worker that is killed is never repeated by the next.
//! A new worker leaves its input queued until the supervisor's first table
//! has arrived (`input_ready`): what waited for it is forwarded, not
//! dropped as unmatched.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use tracing::{info, warn};

use crate::ipc::{WorkerCounters, WorkerSetup};

use crate::dataplane::bufring::BufRing;
use crate::dataplane::egress::{Batcher, Datagram};
use crate::dataplane::explain::Trouble;
use crate::dataplane::pipeline::{self, Send, Verdict};
use crate::dataplane::receiver::TableReceiver;
use crate::sys::packet_ring::RxRing;

use super::{
    Exit, Hooks, Worker, WorkerError, BGID, BUSY_RECVS, CQ_ENTRIES, KIND_IPC, KIND_RECV, KIND_SEND,
    KIND_SHIFT, KIND_TIMER, SEND_SLOTS,
};

/// Bids with this bit name a block of the receive ring (the low bits), not
/// a receive buffer: buffer ids stay below 32768, the kernel's limit.
const RING_BID: u16 = 0x8000;
/// Frames handled from the ring per turn before the sends queued so far go
/// out and completions are reaped.
const RING_BUDGET: usize = 1024;
/// The longest a new worker leaves its input queued while it waits for
/// its first table (see `input_ready`).
const FIRST_TABLE_WAIT: Duration = Duration::from_millis(500);

impl Worker {
    pub(super) fn new(
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
            rx: TableReceiver::new(),
            egress: Vec::new(),
            batcher: Batcher::new(SEND_SLOTS),
            flushed: Vec::with_capacity(SEND_SLOTS),
            sends: Vec::with_capacity(crate::rule::MAX_OUTPUTS),
            c: WorkerCounters::default(),
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
            traces: Default::default(),
            explain: Default::default(),
            last_counters: WorkerCounters::default(),
            pim: Default::default(),
            rx_ring: None,
            rx_in_place: crate::env_override::<u8>("MCR_RX_COPY").unwrap_or(0) == 0,
            rx_more: false,
            early: None,
        }
    }

    pub(super) fn push(&mut self, e: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every entry we push references memory owned by this
            // Worker (send slots, the timer, the buffer ring) that stays put
            // and alive until its completion is reaped.
            if unsafe { self.ring.submission().push(&e) }.is_ok() {
                return Ok(());
            }
            // The queue is full: hand what we have to the kernel first.
            // That marks every ring frame read so far as sent, also those
            // of batches `flush_sends` has yet to push: a kill before the
            // next submit loses them rather than repeats the pushed ones.
            // Only a turn that queues nearly SQ_ENTRIES sends gets here.
            self.submit(0)?;
        }
    }

    pub(super) fn submit(&mut self, want: usize) -> io::Result<()> {
        self.mark_ring_sent();
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

    pub(super) fn arm_recv(&mut self) -> io::Result<()> {
        if self.rx_ring.is_some() {
            // The kernel wakes the socket when it hands a block over.
            let e = opcode::PollAdd::new(types::Fd(self.ingress.as_raw_fd()), libc::POLLIN as u32)
                .multi(true)
                .build()
                .user_data(KIND_RECV << KIND_SHIFT);
            self.push(e)?;
            self.recv_armed = true;
            return Ok(());
        }
        let e = opcode::RecvMulti::new(types::Fd(self.ingress.as_raw_fd()), BGID)
            .flags(libc::MSG_TRUNC)
            .build()
            .user_data(KIND_RECV << KIND_SHIFT);
        self.push(e)?;
        self.recv_armed = true;
        Ok(())
    }

    pub(super) fn arm_ipc(&mut self) -> io::Result<()> {
        let e = opcode::PollAdd::new(types::Fd(self.ipc.as_raw_fd()), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(KIND_IPC << KIND_SHIFT);
        self.push(e)
    }

    pub(super) fn arm_timer(&mut self) -> io::Result<()> {
        let e = opcode::Timeout::new(&*self.timer as *const types::Timespec)
            .flags(types::TimeoutFlags::MULTISHOT)
            .build()
            .user_data(KIND_TIMER << KIND_SHIFT);
        self.push(e)
    }

    /// Whether the input may be read: once the supervisor's first table
    /// (or PIM's instructions) arrived. It sends them when our Hello
    /// reaches it, which can be after this process is ready to read; a
    /// frame read before would match no rule and be dropped, and after a
    /// restart the input holds everything that arrived while no worker
    /// ran (one kill lost 703 datagrams, 14 ms of traffic, that way).
    /// Left queued, those frames wait in the socket's ring or receive
    /// queue. A worker told nothing within `FIRST_TABLE_WAIT` (no rule
    /// for it yet) reads anyway, so that it counts what it drops.
    fn input_ready(&self) -> bool {
        self.rx.seq() > 0 || self.pim.active() || self.started.elapsed() >= FIRST_TABLE_WAIT
    }

    pub(super) fn run(&mut self) -> Result<Exit, WorkerError> {
        // A ring's poll is armed at once (its wake-ups pace the wait for
        // the table); a multishot receive would consume the queue.
        if self.rx_ring.is_some() || self.input_ready() {
            self.arm_recv().map_err(WorkerError::Ring)?;
        }
        self.arm_ipc().map_err(WorkerError::Ring)?;
        self.arm_timer().map_err(WorkerError::Ring)?;
        info!(target: "DataPlane", "worker {} for {} running (pid {})", self.setup.worker_index, self.setup.interface, std::process::id());
        let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(CQ_ENTRIES as usize);
        loop {
            // Frames left in the ring from the last turn's budget: look
            // again at once instead of sleeping until the next wake-up.
            let want = if self.rx_more { 0 } else { 1 };
            self.submit(want).map_err(WorkerError::Ring)?;
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
            self.busy = recvs >= BUSY_RECVS && self.rx_ring.is_none();
            for &(ud, res, flags) in &cqes {
                match ud >> KIND_SHIFT {
                    KIND_RECV if self.rx_ring.is_some() => self.on_ring_wakeup(res, flags),
                    KIND_RECV => self.on_recv(res, flags).map_err(WorkerError::Ring)?,
                    KIND_SEND => self.on_send(ud, res),
                    KIND_IPC => {
                        if let Some(exit) = self.on_ipc(res, flags)? {
                            self.send_stats(true);
                            self.settle_ring_sends();
                            return Ok(exit);
                        }
                    }
                    KIND_TIMER => self.on_timer(res, flags).map_err(WorkerError::Ring)?,
                    _ => {}
                }
            }
            if self.rx_ring.is_some() {
                self.drain_ring(recvs > 0 || self.rx_more);
            }
            self.flush_sends().map_err(WorkerError::Ring)?;
            self.bufs.commit();
            if !self.recv_armed
                && !self.recv_backoff
                && (self.rx_ring.is_some() || (self.bufs.available() > 0 && self.input_ready()))
            {
                self.arm_recv().map_err(WorkerError::Ring)?;
            }
        }
    }

    pub(super) fn on_recv(&mut self, res: i32, flags: u32) -> io::Result<()> {
        if !cqueue::more(flags) {
            self.recv_armed = false;
        }
        if res < 0 {
            let errno = -res;
            if errno == libc::ENOBUFS {
                self.c.buf_exhaust += 1;
                self.trouble(Trouble::NoBuffer, None);
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
        self.on_frame(bid, res as usize);
        Ok(())
    }

    /// The ring's socket woke us: a block was handed over (the frames are
    /// read by `drain_ring` at the end of the turn).
    pub(super) fn on_ring_wakeup(&mut self, res: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.recv_armed = false;
        }
        if res < 0 {
            warn!(target: "Ingress", "poll on {} failed: {}", self.setup.interface, io::Error::from_raw_os_error(-res));
            self.recv_backoff = true;
        }
    }

    /// Handle every frame the ring has handed over, up to `RING_BUDGET`
    /// a turn. In place by default: the pipeline runs on the frame where the
    /// kernel wrote it and the sends point into the ring, which keeps the
    /// block from the kernel until they complete (the copy into a receive
    /// buffer was a third of the worker's cost per 1 KiB frame). Frames are
    /// copied into receive buffers instead on PIM interfaces (upcalls and
    /// punts read the buffer) and with `MCR_RX_COPY=1`.
    pub(super) fn drain_ring(&mut self, woke: bool) -> usize {
        if !self.input_ready() {
            return 0;
        }
        let Some(mut rx) = self.rx_ring.take() else {
            return 0;
        };
        if woke {
            rx.resync();
        }
        // Sends that wait on a slow output keep their whole block from the
        // kernel; with half the ring held that way, copy instead, so one
        // stuck output cannot stop the input (the kernel stops at the first
        // block still ours).
        let in_place = self.rx_in_place
            && !self.pim.active()
            && rx.held_blocks() * 2 < rx.geometry().blocks as usize;
        let n = if in_place {
            self.drain_in_place(&mut rx)
        } else {
            self.drain_copy(&mut rx)
        };
        self.rx_more = n >= RING_BUDGET && rx.ready();
        if let Some(e) = self.early.as_mut() {
            e.update(&rx);
        }
        self.rx_ring = Some(rx);
        n
    }

    fn drain_in_place(&mut self, rx: &mut RxRing) -> usize {
        let mut n = 0;
        // Sends hold no receive buffer here, so what bounds a turn is the
        // send slots: leave the rest in the ring (the kernel drops at its
        // end, cheaply) rather than count send-backlog drops.
        while n < RING_BUDGET && self.batcher.free() >= crate::rule::MAX_OUTPUTS {
            let Some((block, frame, received)) = rx.next_in_place() else {
                break;
            };
            if let Some(e) = self.early.as_mut() {
                e.read_in_block(block, frame);
            }
            let held = self.on_frame_in_place(block, frame, received);
            rx.hold(block, held);
            rx.release(block);
            n += 1;
        }
        n
    }

    /// The sends queued so far are about to be handed to the kernel: a
    /// successor that maps the ring after a kill must not read their frames
    /// again. Marked before `io_uring_enter`, not after it returns: UDP
    /// sends run inside the call, and a kill that lands there (or before
    /// their completions are reaped) would otherwise have the next worker
    /// repeat them. The price is that a frame whose send the kernel had not
    /// run yet at the kill is lost instead of sent late.
    fn mark_ring_sent(&mut self) {
        if let Some(rx) = self.rx_ring.as_mut() {
            rx.mark_sent();
        }
    }

    /// Before the worker goes: wait briefly for the sends that still read
    /// ring blocks, so that no block goes back to the kernel (and is
    /// refilled) under a send that has yet to copy it. A send stuck on a
    /// full output past the bound keeps its block, and dies with this
    /// process: its frames were marked sent, so they are lost rather than
    /// repeated, and the successor hands the block back.
    fn settle_ring_sends(&mut self) {
        let deadline = Instant::now() + Duration::from_millis(200);
        while self.rx_ring.as_ref().is_some_and(|r| r.held_blocks() > 0)
            && Instant::now() < deadline
        {
            let _ = self.flush_sends();
            let ts = types::Timespec::new().nsec(10_000_000);
            let args = types::SubmitArgs::new().timespec(&ts);
            self.mark_ring_sent();
            let _ = self.ring.submitter().submit_with_args(1, &args);
            let done: Vec<(u64, i32)> = self
                .ring
                .completion()
                .map(|c| (c.user_data(), c.result()))
                .collect();
            for (ud, res) in done {
                if ud >> KIND_SHIFT == KIND_SEND {
                    self.on_send(ud, res);
                }
            }
        }
    }

    /// Copy frames into free buffers and handle each as a received one.
    /// Stops when buffers run out (they come back as sends complete; the
    /// rest waits in the ring).
    fn drain_copy(&mut self, rx: &mut RxRing) -> usize {
        let mut n = 0;
        while n < RING_BUDGET && rx.ready() {
            let Some(bid) = self.bufs.take() else {
                self.c.buf_exhaust += 1;
                self.trouble(Trouble::NoBuffer, None);
                break;
            };
            match rx.next_into(self.bufs.buf_mut(bid)) {
                Some(f) => {
                    if let Some(e) = self.early.as_mut() {
                        e.read(&self.bufs.buf_mut(bid)[..f.copied]);
                    }
                    self.on_frame(bid, f.len);
                    n += 1;
                }
                None => {
                    self.bufs.recycle_if_free(bid);
                    break;
                }
            }
        }
        n
    }

    /// A frame read in place in ring block `block`: through the pipeline,
    /// out to its sends. Returns how many sends point into the block.
    fn on_frame_in_place(&mut self, block: u16, frame: &mut [u8], received: usize) -> u32 {
        let verdict = pipeline::process(
            frame,
            received,
            self.setup.format,
            self.rx.table_mut(),
            &mut self.sends,
            &mut self.c,
        );
        if !matches!(verdict, Verdict::Forward { .. }) || !self.traces.is_empty() {
            self.observe_frame(frame, received, verdict);
        }
        let Verdict::Forward { slot } = verdict else {
            return 0;
        };
        let key = self.rx.table().entry(slot).map(|e| e.rule.key).unwrap_or(0);
        let bid = RING_BID | block;
        let mut held = 0;
        for i in 0..self.sends.len() {
            let s = self.sends[i];
            // The pipeline only names bytes of the frame; a send that did
            // not would be a bug, counted rather than read out of bounds.
            let Some(bytes) = frame.get(s.offset as usize..s.offset as usize + s.len as usize)
            else {
                self.c.send_errors += 1;
                self.count_output_error(key, s.output, s.len as usize);
                continue;
            };
            if self.queue_send_from(bid, bytes.as_ptr(), key, s) {
                held += 1;
            }
        }
        held
    }

    /// A send that held `bid` (a receive buffer, or a ring block when
    /// `RING_BID` is set) is done with it.
    fn release_bid(&mut self, bid: u16) {
        if bid & RING_BID != 0 {
            if let Some(rx) = self.rx_ring.as_mut() {
                rx.release(bid & !RING_BID);
            }
        } else {
            self.bufs.release(bid);
        }
    }

    /// One received frame of `received` bytes in buffer `bid` (ours until
    /// recycled): through the pipeline, out to its sends.
    pub(super) fn on_frame(&mut self, bid: u16, received: usize) {
        let pim = self.pim.active();
        if pim {
            self.punt_if_tunnelled(bid, received);
        }
        let verdict = {
            let frame = self.bufs.buf_mut(bid);
            pipeline::process(
                frame,
                received,
                self.setup.format,
                self.rx.table_mut(),
                &mut self.sends,
                &mut self.c,
            )
        };
        // Drops and traced rules are explained; forwarding pays this test.
        if !matches!(verdict, Verdict::Forward { .. }) || !self.traces.is_empty() {
            self.observe(bid, received, verdict);
        }
        if pim {
            self.upcall_if_uncovered(bid, received, verdict);
        }
        let mut held: u16 = 0;
        if let Verdict::Forward { slot } = verdict {
            let key = self.rx.table().entry(slot).map(|e| e.rule.key).unwrap_or(0);
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
    }

    /// Add one datagram to its egress batch. Returns whether it was taken
    /// (and so holds `bid` until its batch completes).
    pub(super) fn queue_send(&mut self, bid: u16, rule_key: u64, s: Send) -> bool {
        let ptr = self.bufs.addr(bid, s.offset as usize);
        self.queue_send_from(bid, ptr, rule_key, s)
    }

    /// `queue_send` for `s.len` bytes at `ptr`, which stay put until the
    /// send completes and `bid` is released.
    fn queue_send_from(&mut self, bid: u16, ptr: *const u8, rule_key: u64, s: Send) -> bool {
        let (fd, gso_ok) = match self.egress.get(s.egress as usize).and_then(|e| e.as_ref()) {
            Some(e) => (e.fd.as_raw_fd(), s.len <= e.gso_max),
            None => {
                self.c.send_errors += 1;
                self.count_output_error(rule_key, s.output, s.len as usize);
                self.trouble(Trouble::NoEgress, None);
                return false;
            }
        };
        let taken = self.batcher.add(Datagram {
            fd,
            egress: s.egress,
            gso_ok,
            dst: s.dst,
            port: s.port,
            ptr,
            len: s.len as usize,
            bid,
            key: rule_key,
            out: s.output,
        });
        if !taken {
            self.c.send_backlog_drops += 1;
            self.count_output_error(rule_key, s.output, s.len as usize);
            self.trouble(Trouble::SendBacklog, None);
        }
        taken
    }

    /// Queue every batch closed this turn as one SENDMSG each.
    pub(super) fn flush_sends(&mut self) -> io::Result<()> {
        let mut flushed = std::mem::take(&mut self.flushed);
        self.batcher
            .flush(|slot, hdr, fd| flushed.push((slot, hdr as usize, fd)));
        for &(slot, hdr, fd) in &flushed {
            // Never wait for room on a full output: a waiting send keeps
            // its receive buffer (or ring block, which stops the kernel
            // filling the ring) and so stalls the input and every other
            // output. A router drops at a full output queue instead.
            let e = opcode::SendMsg::new(types::Fd(fd), hdr as *const libc::msghdr)
                .flags(libc::MSG_DONTWAIT as u32)
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
    pub(super) fn count_output_error(&mut self, rule_key: u64, output: u16, len: usize) {
        if let Some(e) = self
            .rx
            .table_mut()
            .get_mut(rule_key)
            .and_then(|e| e.outputs.get_mut(usize::from(output)))
        {
            e.errors += 1;
            e.packets = e.packets.saturating_sub(1);
            e.bytes = e.bytes.saturating_sub(len as u64);
        }
    }

    pub(super) fn on_send(&mut self, ud: u64, res: i32) {
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
            // A GSO batch is one skb: the kernel takes all of it or none,
            // so a full output drops the whole batch, never a part.
            let full = matches!(errno, libc::EAGAIN | libc::ENOBUFS);
            if full {
                self.c.output_full_drops += n as u64;
            } else {
                self.c.send_errors += n as u64;
            }
            let segs: Vec<(u64, u16, usize)> = (0..n)
                .map(|i| (b.keys[i], b.outs[i], b.segment(i).1))
                .collect();
            for (key, out, len) in segs {
                self.count_output_error(key, out, len);
            }
            if full {
                self.trouble(Trouble::OutputFull, Some(errno));
            } else {
                self.trouble(Trouble::SendFailed, Some(errno));
            }
        } else {
            self.c.sent += n as u64;
            self.c.sent_bytes += res as u64;
        }
        if let Some(b) = self.batcher.get(slot) {
            let bids = b.bids;
            for &bid in &bids[..n] {
                self.release_bid(bid);
            }
        }
        self.batcher.release(slot);
    }

    /// The kernel refused a GSO batch: lower the socket's GSO size limit
    /// below this batch's and send its datagrams one by one. Their buffers
    /// stay held by the new sends, so nothing is lost.
    pub(super) fn unbatch(&mut self, slot: u32, errno: i32) {
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
                self.release_bid(bid);
            }
        }
    }
}

#[cfg(test)]
mod tests;
