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
) -> Result<(WorkerSetup, OwnedFd, Option<OwnedFd>), WorkerError> {
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
    let mut fds = r.fds.into_iter();
    let ingress = fds.next().ok_or_else(|| {
        WorkerError::Handshake("Hello arrived without the AF_PACKET socket".into())
    })?;
    // The early-drop map comes second, only when the setup says so.
    let pressure_map = if setup.early_drop { fds.next() } else { None };
    send(
        ipc,
        &FromWorker::Hello {
            version: IPC_VERSION,
            pid: std::process::id(),
        },
    )
    .map_err(WorkerError::Ipc)?;
    Ok((setup, ingress, pressure_map))
}

/// Map the early-drop map the supervisor sent, if any, and arm the
/// program with a limit from the ring's size. Only a ring reader can
/// count what it consumed; a `recv` worker leaves the program disarmed
/// (it then passes everything).
pub(super) fn early_drop(
    map: Option<OwnedFd>,
    ring: Option<&crate::sys::packet_ring::RxRing>,
    setup: &WorkerSetup,
) -> Option<super::pressure::EarlyDrop> {
    let fd = map?;
    let interface = &setup.interface;
    let Some(ring) = ring else {
        tracing::info!(target: "Ingress", "early drop on {interface} unused: the worker reads frame by frame");
        return None;
    };
    let prefix = if setup.format.vnet {
        crate::wire::VNET_HDR_LEN
    } else {
        0
    };
    match crate::sys::xdp::PressureMap::map(fd) {
        Ok(m) => Some(super::pressure::EarlyDrop::new(m, ring.geometry(), prefix)),
        Err(e) => {
            warn!(target: "Ingress", "cannot map the early-drop map of {interface} ({e}); no early drop");
            None
        }
    }
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

/// How the worker reads its socket, as the config's `workers.rx_path`,
/// `rx_ring_mb` and `rx_block_ms` say (`setup.rx`), each overridden by the
/// environment variable `MCR_RX_PATH`, `MCR_RX_RING_MB`, `MCR_RX_BLOCK_MS`
/// when set (A/B benchmarks): `ring` (the default) maps a `TPACKET_V3` ring
/// of that many MiB (16) whose blocks are handed over at least every that
/// many ms (1); `recv` keeps one `recvmsg` per frame (io_uring multishot
/// receive). Frames are the same either way; a ring that cannot be set up
/// falls back to `recv`. `MCR_RX_PATH` takes `ring` or `recv` in any case;
/// another value is named in a warning and ignored. `recv` first takes off
/// any ring a previous worker left on the (inherited) socket.
pub(super) fn open_rx_ring(
    ingress: &OwnedFd,
    setup: &WorkerSetup,
    buf_size: usize,
) -> Option<crate::sys::packet_ring::RxRing> {
    use crate::config::RxPath;
    use crate::sys::packet_ring::{Geometry, RxRing};
    let recv = match rx_path_override(std::env::var("MCR_RX_PATH").ok().as_deref()) {
        Ok(Some(path)) => path == RxPath::Recv,
        Ok(None) => setup.rx.path == RxPath::Recv,
        Err(bad) => {
            warn!(target: "Ingress", "MCR_RX_PATH={bad:?} is neither \"ring\" nor \"recv\"; ignored, using rx_path {} from the config", setup.rx.path.as_str());
            setup.rx.path == RxPath::Recv
        }
    };
    if recv {
        // The socket outlives workers: one that read with a ring may have
        // left it there, and while it is set the kernel fills it instead
        // of the receive queue, so recvmsg would get nothing at all.
        match crate::sys::packet_ring::remove_ring(ingress.as_fd()) {
            Ok(true) => {
                tracing::info!(target: "BufferPool", "removed the receive ring a previous worker left on {}", setup.interface)
            }
            Ok(false) => {}
            Err(e) => {
                warn!(target: "Ingress", "cannot remove the receive ring left on {} ({e}); frames may not reach this worker", setup.interface)
            }
        }
        tracing::info!(target: "BufferPool", "receiving frame by frame on {} (rx_path recv)", setup.interface);
        return None;
    }
    let mb = crate::env_override::<usize>("MCR_RX_RING_MB")
        .unwrap_or(setup.rx.ring_mb as usize)
        .clamp(1, 1024);
    let tov = crate::env_override::<u32>("MCR_RX_BLOCK_MS").unwrap_or(setup.rx.block_ms);
    let prefix = if setup.format.vnet {
        crate::wire::VNET_HDR_LEN
    } else {
        0
    };
    let geo = Geometry::for_frames(buf_size, mb << 20, tov);
    // The supervisor opens a fresh socket when the rx settings changed, so
    // a ring already there has this shape and timeout; but the kernel
    // cannot be asked, so the log claims only what was set here.
    let inherited = crate::sys::packet_ring::had_ring(ingress.as_fd()).unwrap_or(false);
    match RxRing::open(ingress.as_fd(), geo, prefix) {
        Ok(r) if inherited => {
            tracing::info!(target: "BufferPool", "took over the receive ring already on {}'s socket ({} blocks of {} KiB expected; block timeout as it was set up)", setup.interface, geo.blocks, geo.block_size / 1024);
            Some(r)
        }
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

/// `MCR_RX_PATH` as given: `Ok(None)` when unset or blank (the config
/// decides), the path for `ring`/`recv` in any case, else the bad value
/// so the caller can name it instead of silently picking one.
fn rx_path_override(v: Option<&str>) -> Result<Option<crate::config::RxPath>, String> {
    use crate::config::RxPath;
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.eq_ignore_ascii_case("ring") {
        Ok(Some(RxPath::Ring))
    } else if v.eq_ignore_ascii_case("recv") {
        Ok(Some(RxPath::Recv))
    } else {
        Err(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::rx_path_override;
    use crate::config::RxPath;

    #[test]
    fn rx_path_override_accepts_ring_and_recv_and_names_anything_else() {
        assert_eq!(rx_path_override(None), Ok(None));
        assert_eq!(rx_path_override(Some("  ")), Ok(None));
        assert_eq!(rx_path_override(Some("recv")), Ok(Some(RxPath::Recv)));
        assert_eq!(rx_path_override(Some(" RECV ")), Ok(Some(RxPath::Recv)));
        assert_eq!(rx_path_override(Some("Ring")), Ok(Some(RxPath::Ring)));
        assert_eq!(rx_path_override(Some("rcv")), Err("rcv".to_string()));
        assert_eq!(rx_path_override(Some("ring0")), Err("ring0".to_string()));
    }
}
