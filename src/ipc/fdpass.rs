//! Socket layer of the IPC: the `SOCK_SEQPACKET` pair, sending and
//! receiving one message with file descriptors (`SCM_RIGHTS`), and handing
//! the worker its end as fd 3 across `exec`.
//!
//! SEQPACKET keeps message boundaries, so one `sendmsg` is one message, and
//! carries descriptors on the same socket as the messages that explain
//! them.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::time::Duration;

use nix::sys::socket::{
    self, sockopt, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};

use super::MAX_MESSAGE;

/// Most descriptors one message carries.
pub const MAX_FDS: usize = 8;

/// The fd number a worker finds its IPC socket at.
pub const WORKER_IPC_FD: RawFd = 3;

/// A connected SEQPACKET pair, buffers sized for `MAX_MESSAGE` bursts.
/// Returns (supervisor end, worker end), both close-on-exec.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    for fd in [&a, &b] {
        // A full sync is hundreds of messages; let a burst queue rather
        // than stall the sender. Force needs CAP_NET_ADMIN; fall back.
        let want = 4 * 1024 * 1024;
        if socket::setsockopt(fd, sockopt::SndBufForce, &want).is_err() {
            let _ = socket::setsockopt(fd, sockopt::SndBuf, &want);
        }
        if socket::setsockopt(fd, sockopt::RcvBufForce, &want).is_err() {
            let _ = socket::setsockopt(fd, sockopt::RcvBuf, &want);
        }
    }
    Ok((a, b))
}

/// Send one message with `fds` attached. `nonblocking` makes a full socket
/// an `EAGAIN` error instead of a wait.
pub fn send_msg(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[RawFd],
    nonblocking: bool,
) -> io::Result<()> {
    let iov = [IoSlice::new(bytes)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    let mut flags = MsgFlags::MSG_NOSIGNAL;
    if nonblocking {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    loop {
        match socket::sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, flags, None) {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(n) => {
                return Err(io::Error::other(format!(
                    "short send on a SEQPACKET socket: {n} of {} bytes",
                    bytes.len()
                )))
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One received message.
#[derive(Debug)]
pub struct Received {
    pub len: usize,
    pub fds: Vec<OwnedFd>,
}

/// Receive one message into `buf` (at least `MAX_MESSAGE` long). `Ok(None)`
/// means the peer closed. A truncated message or truncated descriptor list
/// is an error: the stream can no longer be trusted.
pub fn recv_msg(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    nonblocking: bool,
) -> io::Result<Option<Received>> {
    debug_assert!(buf.len() >= MAX_MESSAGE);
    let mut cmsg_buf = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut flags = MsgFlags::MSG_CMSG_CLOEXEC;
    if nonblocking {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let r = socket::recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg_buf), flags);
        let msg = match r {
            Ok(m) => m,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut fds = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                for fd in raw {
                    // SAFETY: the kernel just installed `fd` in our table
                    // for this message (SCM_RIGHTS); nothing else owns it.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        if msg
            .flags
            .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "IPC message or its descriptors were truncated",
            ));
        }
        if msg.bytes == 0 && fds.is_empty() {
            return Ok(None);
        }
        return Ok(Some(Received {
            len: msg.bytes,
            fds,
        }));
    }
}

/// Wait up to `timeout` for `sock` to be readable. `Ok(false)` on timeout.
pub fn wait_readable(sock: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    let mut fds = [PollFd::new(sock, PollFlags::POLLIN)];
    loop {
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Arrange for `fd` to be the child's fd 3 (`WORKER_IPC_FD`) after `exec`,
/// without letting any other child inherit it. `fd` must stay open until
/// the command has been spawned.
pub fn pass_as_fd3(cmd: &mut std::process::Command, fd: &OwnedFd) {
    let raw = fd.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed; dup2 and fcntl are. `raw` is
    // open in the parent at fork time because the caller keeps `fd` alive
    // across spawn, so it is open in the child too.
    unsafe {
        cmd.pre_exec(move || {
            if raw == WORKER_IPC_FD {
                // dup2 onto itself keeps FD_CLOEXEC; clear it by hand.
                if libc::fcntl(raw, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(raw, WORKER_IPC_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Take ownership of the IPC socket a worker inherited as fd 3. Fails if
/// fd 3 is not a SEQPACKET socket (e.g. `mcrd worker` run by hand).
pub fn take_worker_fd3() -> io::Result<OwnedFd> {
    // SAFETY: fcntl(F_GETFD) only queries whether fd 3 is open.
    let open = unsafe { libc::fcntl(WORKER_IPC_FD, libc::F_GETFD) } >= 0;
    if !open {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "fd 3 is not open: `mcrd worker` is started by `mcrd supervisor`, not by hand",
        ));
    }
    // SAFETY: fd 3 is open (checked above) and was handed to this process
    // for its exclusive use by the supervisor; we take sole ownership.
    let fd = unsafe { OwnedFd::from_raw_fd(WORKER_IPC_FD) };
    let ty = socket::getsockopt(&fd, sockopt::SockType).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "fd 3 is not a socket from mcrd supervisor",
        )
    })?;
    if ty != SockType::SeqPacket {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "fd 3 is not the SEQPACKET socket mcrd supervisor passes",
        ));
    }
    let _ = nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;

    #[test]
    fn messages_and_fds_cross_the_pair() {
        let (a, b) = seqpacket_pair().unwrap();
        let mut f = tempfile_in_tmp();
        f.write_all(b"passed").unwrap();
        send_msg(a.as_fd(), b"one", &[f.as_raw_fd()], false).unwrap();
        send_msg(a.as_fd(), b"two", &[], false).unwrap();
        let mut buf = vec![0u8; MAX_MESSAGE];
        let r = recv_msg(b.as_fd(), &mut buf, false).unwrap().unwrap();
        assert_eq!(&buf[..r.len], b"one");
        assert_eq!(r.fds.len(), 1);
        let mut got = std::fs::File::from(r.fds.into_iter().next().unwrap());
        got.rewind().unwrap();
        let mut s = String::new();
        got.read_to_string(&mut s).unwrap();
        assert_eq!(s, "passed");
        let r = recv_msg(b.as_fd(), &mut buf, false).unwrap().unwrap();
        assert_eq!(&buf[..r.len], b"two");
        assert!(
            recv_msg(b.as_fd(), &mut buf, true).is_err(),
            "empty + nonblocking = EAGAIN"
        );
        drop(a);
        assert!(
            recv_msg(b.as_fd(), &mut buf, false).unwrap().is_none(),
            "EOF after close"
        );
    }

    fn tempfile_in_tmp() -> std::fs::File {
        let p = std::env::temp_dir().join(format!(
            "mcr-fdpass-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        let _ = std::fs::remove_file(&p);
        f
    }
}
