//! Process descriptors (pidfd, Linux 5.3): how the supervisor watches and
//! kills its worker processes without a thread per process and without a
//! pid-reuse race. A pidfd refers to one process for as long as it is
//! open: it becomes readable (poll/epoll) once that process has exited,
//! and a signal sent through it reaches that process or nobody, even after
//! the process has been reaped and its pid handed to another.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A pidfd for `pid`, close-on-exec (the kernel always sets it). `pid`
/// must be a child not yet reaped, or the descriptor may name whichever
/// process holds that pid now.
pub fn open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: pidfd_open takes a pid and flags, no pointers; on success
    // it returns a new descriptor that nothing else owns.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = libc::c_int::try_from(r)
        .map_err(|_| io::Error::other("pidfd_open returned an impossible descriptor"))?;
    // SAFETY: `fd` was just created for us by the kernel (see above).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Send `signal` to the process `pidfd` refers to. `ESRCH` once it has
/// exited and been reaped: the signal then reaches no one.
pub fn send_signal(pidfd: BorrowedFd<'_>, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: pidfd_send_signal with a null siginfo (the kernel fills in
    // a plain kill's) and no flags; `pidfd` is a live descriptor.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    fn readable(fd: BorrowedFd<'_>, ms: i32) -> bool {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd, count 1.
        unsafe { libc::poll(&mut p, 1, ms) > 0 }
    }

    #[test]
    fn readable_on_exit_and_a_kill_after_reaping_reaches_no_one() {
        let Ok(mut child) = Command::new("sleep").arg("30").spawn() else {
            eprintln!("SKIP: no `sleep` to start");
            return;
        };
        let fd = open(child.id()).expect("pidfd_open on our own child");
        assert!(!readable(fd.as_fd(), 50), "readable while the child runs");
        send_signal(fd.as_fd(), libc::SIGKILL).expect("kill through the pidfd");
        assert!(
            readable(fd.as_fd(), 5000),
            "not readable after the child died"
        );
        let status = child.wait().expect("reap");
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        // Reaped: its pid may be anyone's now, the pidfd still names the
        // dead process.
        let e = send_signal(fd.as_fd(), libc::SIGKILL).expect_err("signal to a reaped process");
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
    }
}
