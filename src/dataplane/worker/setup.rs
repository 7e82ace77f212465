//! Bringing a worker up: the `Hello` handshake on the IPC socket, pinning
//! to a core, creating the io_uring while still root (so the ring is not
//! charged to the worker user's locked-memory limit), mapping the
//! socket's receive ring, and dropping privileges for good.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use io_uring::IoUring;
use tracing::warn;

use crate::ipc::fdpass::{recv_msg, send_msg, wait_readable};
use crate::ipc::{decode, encode, FromWorker, ToWorker, WorkerSetup, IPC_VERSION};

use super::{WorkerError, CQ_ENTRIES, SQ_ENTRIES};

pub(super) fn handshake(
    ipc: &OwnedFd,
    buf: &mut [u8],
) -> Result<(WorkerSetup, OwnedFd), WorkerError> {
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

pub(super) fn send(ipc: &OwnedFd, msg: &FromWorker) -> io::Result<()> {
    let bytes = encode(msg).map_err(io::Error::other)?;
    send_msg(ipc.as_fd(), &bytes, &[], true)
}

pub(super) fn pin_to_core(core: u32) {
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
pub(super) fn drop_privileges(uid: u32, gid: u32) -> Result<(), WorkerError> {
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
pub(super) fn explain_ring_error(e: io::Error) -> io::Error {
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

pub(super) fn build_ring() -> io::Result<IoUring> {
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

/// How the worker reads its socket: `MCR_RX_PATH=ring` (the default) maps a
/// `TPACKET_V3` ring of `MCR_RX_RING_MB` MiB (16) whose blocks are handed
/// over at least every `MCR_RX_BLOCK_MS` ms (1); `MCR_RX_PATH=recv` keeps
/// one `recvmsg` per frame (io_uring multishot receive). Frames are the same
/// either way; a ring that cannot be set up falls back to `recv`.
pub(super) fn open_rx_ring(
    ingress: &OwnedFd,
    setup: &WorkerSetup,
    buf_size: usize,
) -> Option<crate::sys::packet_ring::RxRing> {
    use crate::sys::packet_ring::{Geometry, RxRing};
    let path = std::env::var("MCR_RX_PATH").unwrap_or_default();
    if path.trim() == "recv" {
        return None;
    }
    let mb = crate::env_override::<usize>("MCR_RX_RING_MB")
        .unwrap_or(16)
        .clamp(1, 1024);
    let tov = crate::env_override::<u32>("MCR_RX_BLOCK_MS").unwrap_or(1);
    let prefix = if setup.format.vnet {
        crate::wire::VNET_HDR_LEN
    } else {
        0
    };
    let geo = Geometry::for_frames(buf_size, mb << 20, tov);
    match RxRing::open(ingress.as_fd(), geo, prefix) {
        Ok(r) => {
            tracing::info!(target: "BufferPool", "receive ring of {} blocks of {} KiB ({} ms) for {}", geo.blocks, geo.block_size / 1024, geo.timeout_ms, setup.interface);
            Some(r)
        }
        Err(e) => {
            warn!(target: "Ingress", "no receive ring on {} ({e}); receiving frame by frame", setup.interface);
            None
        }
    }
}
