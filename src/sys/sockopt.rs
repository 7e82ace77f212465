//! The one layer of raw socket calls in package `mcr`: socket creation,
//! `setsockopt`/`getsockopt`, `bind`, the `SIOCGIF*` ioctls and a
//! non-blocking `recv`. Every `unsafe` block that touches a socket option
//! or an interface ioctl is here, each with the reason it is sound; the
//! supervisor's socket setup (`sys::sockets`, `sys::interfaces`), the
//! worker's packet statistics and mcrgen (`gen::sock`) all call these
//! instead of libc.

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A libc return value as a `Result`: negative means `errno` says why.
pub fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A new socket, close-on-exec.
pub fn new_socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; on success it returns a new fd
    // that nothing else owns.
    let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by no one.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

mod sealed {
    pub trait Sealed {}
}

/// Option values and socket addresses the kernel reads or writes as plain
/// bytes: C structs of integers (and, for `sock_fprog`, a pointer the
/// caller keeps alive), for which any bit pattern the kernel writes is a
/// valid value. Sealed, so that no type with references or invariants can
/// be passed by size to the kernel.
pub trait Plain: Copy + sealed::Sealed {}

macro_rules! plain {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Plain for $t {}
    )*};
}
plain!(
    libc::c_int,
    u32,
    libc::ip_mreqn,
    libc::sock_fprog,
    libc::tpacket_stats,
    libc::sockaddr_in,
    libc::sockaddr_ll,
    libc::sockaddr_nl,
    libc::packet_mreq,
    [u8; 4]
);

/// setsockopt(2) with a value passed by size.
pub fn setsockopt<T: Plain>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of `size_of::<T>()` bytes for
    // the duration of the call; the kernel copies it and keeps no
    // reference. `fd` is borrowed, so it stays open for the call.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// An integer socket option.
pub fn set_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    setsockopt(fd, level, name, &v)
}

/// getsockopt(2) into a value that starts as `init`.
pub fn getsockopt<T: Plain>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    init: T,
) -> io::Result<T> {
    let mut value = init;
    let mut len = mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live for the call and `len` is the
    // size of `value`, so the kernel writes at most that many bytes into
    // it; any bytes it writes form a valid `T` (`Plain`).
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut T).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// `SO_BINDTODEVICE`: the socket sends and receives on `ifname` only.
pub fn bind_to_device(fd: BorrowedFd<'_>, ifname: &str) -> io::Result<()> {
    let name = CString::new(ifname)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
    let bytes = name.as_bytes_with_nul();
    // SAFETY: `bytes` is a live NUL-terminated buffer of the length given.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            bytes.as_ptr().cast(),
            bytes.len() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Set a buffer size, forcing past the sysctl limits when we may (root).
pub fn set_buf(
    fd: BorrowedFd<'_>,
    force: libc::c_int,
    plain: libc::c_int,
    size: usize,
) -> io::Result<()> {
    let v = size.min(i32::MAX as usize) as libc::c_int;
    if set_int(fd, libc::SOL_SOCKET, force, v).is_ok() {
        return Ok(());
    }
    set_int(fd, libc::SOL_SOCKET, plain, v)
}

/// Attach a classic BPF program. The kernel copies it, so `prog` need
/// only live for the call.
pub fn attach_filter(fd: BorrowedFd<'_>, prog: &[libc::sock_filter]) -> io::Result<()> {
    let len = u16::try_from(prog.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long"))?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

/// bind(2) to a socket address of any family.
pub fn bind<A: Plain>(fd: BorrowedFd<'_>, addr: &A) -> io::Result<()> {
    // SAFETY: `addr` is a live sockaddr_* of the family the socket expects
    // and the length passed is its size; the kernel copies it.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (addr as *const A).cast(),
            mem::size_of::<A>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// An all-zero value of a `Plain` C struct: the usual starting point for
/// socket addresses and `ifreq`.
pub fn zeroed<T: Plain>() -> T {
    // SAFETY: `Plain` types are C structs of integers and pointers, for
    // which all-zero bytes are a valid value.
    unsafe { mem::zeroed() }
}

/// One non-blocking recv(2) into `buf`: the bytes read, 0 at end of
/// stream, or the error (`WouldBlock` when nothing is queued).
pub fn recv_nonblocking(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is live and writable for its full length.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// What the `SIOCGIF*` requests below read about an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfQuery {
    Mtu,
    Flags,
    /// The ARPHRD_* link type (`sa_family` of the hardware address).
    LinkType,
}

/// Ask the kernel about interface `name` with an `ifreq` ioctl on a
/// throwaway socket. Sockets (not sysfs) answer for the caller's own
/// network namespace, which matters when a thread has joined another one.
pub fn interface_query(name: &str, q: IfQuery) -> io::Result<u32> {
    let fd = new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    // SAFETY: ifreq is plain old data (integers, arrays and unions of
    // them); all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= ifr.ifr_name.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long or with a NUL",
        ));
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let req = match q {
        IfQuery::Mtu => libc::SIOCGIFMTU,
        IfQuery::Flags => libc::SIOCGIFFLAGS,
        IfQuery::LinkType => libc::SIOCGIFHWADDR,
    };
    // SAFETY: `ifr` is a live, NUL-terminated ifreq for the whole call, as
    // SIOCGIF* requests expect.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), req as _, &mut ifr as *mut libc::ifreq) })?;
    // SAFETY: each arm reads the union member that its request made the
    // kernel fill: ifru_mtu for SIOCGIFMTU, ifru_flags for SIOCGIFFLAGS,
    // ifru_hwaddr for SIOCGIFHWADDR.
    let value = unsafe {
        match q {
            IfQuery::Mtu => ifr.ifr_ifru.ifru_mtu as u32,
            IfQuery::Flags => u32::from(ifr.ifr_ifru.ifru_flags as u16),
            IfQuery::LinkType => u32::from(ifr.ifr_ifru.ifru_hwaddr.sa_family),
        }
    };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn an_option_set_reads_back() {
        let fd = new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0).unwrap();
        set_int(fd.as_fd(), libc::IPPROTO_IP, libc::IP_TTL, 17).unwrap();
        let ttl: libc::c_int = getsockopt(fd.as_fd(), libc::IPPROTO_IP, libc::IP_TTL, 0).unwrap();
        assert_eq!(ttl, 17);
        let e = set_int(fd.as_fd(), libc::IPPROTO_IP, libc::IP_TTL, 1000).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "the kernel's errno");
    }

    #[test]
    fn loopback_answers_interface_queries() {
        assert_eq!(interface_query("lo", IfQuery::LinkType).unwrap(), 772);
        assert!(interface_query("lo", IfQuery::Mtu).unwrap() >= 1280);
        let flags = interface_query("lo", IfQuery::Flags).unwrap();
        assert_ne!(flags & libc::IFF_LOOPBACK as u32, 0);
        assert!(interface_query("no-such-if0", IfQuery::Mtu).is_err());
        assert!(interface_query("a-name-far-too-long", IfQuery::Mtu).is_err());
    }

    #[test]
    fn a_non_blocking_read_of_an_empty_socket_would_block() {
        let fd = new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0).unwrap();
        let mut buf = [0u8; 16];
        let e = recv_nonblocking(fd.as_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }
}
