//! A worker process: one thread, one io_uring.
//!
//! Owns: the handshake with the supervisor, the privilege drop, and the
//! loop that drives everything through the ring: a multishot receive on the
//! AF_PACKET socket into the provided-buffer ring (or, by default, a poll on
//! the socket's `TPACKET_V3` ring, read a block at a time where the kernel
//! wrote it), one `SENDMSG` per output batch
//! (referencing the received frame, never copying it), a multishot
//! poll on the IPC socket for table updates, and a multishot timeout for
//! stats and heartbeats. Each turn reaps every completion, queues the
//! resulting sends, and makes one `submit_and_wait` call.
//!
//! The worker decides nothing: it applies the table it is sent, counts, and
//! reports (DESIGN.md, "Supervisor ⇄ worker"). The parts:
//! - `setup`: handshake, core pinning, ring creation, privilege drop;
//! - `ring`: the event loop, the receive path and the send path;
//! - `control`: IPC messages (table messages go to the sans-I/O
//!   `TableReceiver` in `dataplane::receiver`), stats and heartbeats;
//! - `observe`: the per-rule packet trace and the log lines that explain
//!   drops;
//! - `pimdata`: on PIM interfaces, the first-packet upcall and the
//!   register tunnels' punt (`dataplane::upcall`).

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::time::Instant;

use io_uring::{types, IoUring};
use tracing::info;

use crate::ipc::{EgressSpec, WorkerCounters, WorkerSetup, MAX_MESSAGE};
use crate::logging::LogLevels;

use super::bufring::{BufRing, Tier};
use super::egress::Batcher;
use super::pipeline::Send;
use super::receiver::TableReceiver;

mod control;
mod observe;
mod pimdata;
mod pressure;
mod ring;
mod setup;

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
    let (setup, ingress, pressure_map) = setup::handshake(&ipc, &mut msgbuf)?;
    (hooks.set_levels)(&setup.levels);
    if let Some(core) = setup.core {
        setup::pin_to_core(core);
    }
    // The ring is set up before root is dropped: the kernel charges an
    // io_uring to its user's locked memory unless the creator holds
    // CAP_IPC_LOCK, and all workers run as one user, so under the usual
    // 8 MiB RLIMIT_MEMLOCK only about eight of them would fit. The charge is
    // decided when the ring is created; the buffer ring registered on it
    // next is covered too.
    let (tier, size) = Tier::for_mtu(setup.buffer_size.saturating_sub(64));
    let count = tier.count_from_env();
    let ring = setup::build_ring().map_err(|e| WorkerError::Ring(setup::explain_ring_error(e)))?;
    let bufs = BufRing::new(&ring, BGID, count, size, tier).map_err(WorkerError::Ring)?;
    setup::drop_privileges(setup.uid, setup.gid)?;
    info!(
        target: "BufferPool",
        "{} receive buffers of {size} bytes ({} tier) for {}",
        count,
        tier.name(),
        setup.interface
    );
    let min_wait = ring.params().is_feature_min_timeout();
    let rx_ring = setup::open_rx_ring(&ingress, &setup, size);
    let mut w = Worker::new(ring, bufs, ingress, ipc, setup, hooks, msgbuf);
    w.early = setup::early_drop(pressure_map, rx_ring.as_ref(), &w.setup);
    w.rx_ring = rx_ring;
    if min_wait {
        w.batch_wait_us = crate::env_override::<u64>("MCR_BATCH_WAIT_US")
            .unwrap_or(25)
            .min(10_000) as u32;
    }
    // The supervisor sent the table while this process set up: apply it
    // before the first frame is read, or the frames that waited in the
    // socket for a worker would match no rule and be dropped.
    if let Some(exit) = w.drain_ipc()? {
        w.bufs.unregister(&w.ring);
        return Ok(exit);
    }
    let r = w.run();
    w.bufs.unregister(&w.ring);
    r
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
    /// The forwarding table and its sequence state.
    rx: TableReceiver,
    egress: Vec<Option<Egress>>,
    batcher: Batcher,
    /// Batches closed this turn, waiting to be queued on the ring.
    flushed: Vec<(u32, usize, RawFd)>,
    sends: Vec<Send>,
    c: WorkerCounters,
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
    /// Rules being traced (`mcrctl trace`); empty unless an operator asked.
    traces: crate::dataplane::trace::Traces,
    /// Rate limiters of the debug lines that explain drops.
    explain: crate::dataplane::explain::Explainer,
    /// Counters at the last stats tick, for the Stats facility's deltas.
    last_counters: WorkerCounters,
    /// What PIM asked of this worker (nothing unless it is told).
    pim: pimdata::PimPath,
    /// The socket's memory-mapped receive ring, when frames are read from
    /// it instead of by a multishot receive (`MCR_RX_PATH`).
    rx_ring: Option<crate::sys::packet_ring::RxRing>,
    /// Run the pipeline on ring frames where they lie (`MCR_RX_COPY=1`
    /// copies each into a receive buffer first, as before).
    rx_in_place: bool,
    /// The last turn stopped at its budget with frames left in the ring.
    rx_more: bool,
    /// The input's early-drop flag, when the supervisor attached the XDP
    /// program and the worker reads a ring (`pressure`).
    early: Option<pressure::EarlyDrop>,
}
