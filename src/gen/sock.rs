//! The socket layer of mcrgen: socket setup, batched `sendmmsg` /
//! `recvmmsg` with kernel receive timestamps, and the stop-signal
//! handlers.
//!
//! This is the only file of `mcr::gen` that may use `unsafe`. Everything
//! nix or std offers safely is used through them; socket options they lack
//! (`ip_mreqn`, `IP_MULTICAST_ALL`) go through `sys::sockopt` (`raw_sock` here), the one
//! socket-option layer of the package; raw libc is left for the `mmsg`
//! calls with reusable buffers, cmsg parsing, packet injection and the
//! signal handlers.

use std::ffi::c_void;
use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::socket::{
    bind, getsockopt, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
};

use super::{RecvOpts, SendOpts};
use crate::sys::sockopt as raw_sock;

/// How long a blocking `sendmmsg`/`recvmmsg` may wait before the caller
/// gets control back to look at its stop flag and deadlines.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Send buffer asked for: deep enough that flat-out batches do not stall
/// on buffer accounting before the device queue does.
const SEND_BUF: usize = 4 << 20;

/// Largest number of messages one `sendmmsg`/`recvmmsg` takes (UIO_MAXIOV).
pub const MAX_BATCH: usize = 1024;

/// Room per received datagram: more than any IPv4 UDP payload, so
/// truncation cannot happen.
pub const RECV_SLOT: usize = 65_536;

/// Control-message room per datagram: one `SCM_TIMESTAMPNS` (timespec)
/// plus one `SO_RXQ_OVFL` (u32), rounded up generously. Stored as `u64`
/// words so that the buffer is aligned for `cmsghdr`.
const CTRL_WORDS: usize = 16;

/// Current `CLOCK_REALTIME` in ns since the epoch (the clock the payload
/// timestamps and kernel receive timestamps use).
pub fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Index of the interface `name`, with an error that names it.
pub fn interface_index(name: &str) -> io::Result<u32> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['\0', '/']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a valid interface name"),
        ));
    }
    nix::net::if_::if_nametoindex(name).map_err(|e| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("interface {name:?} does not exist ({})", e.desc()),
        )
    })
}

fn udp_socket() -> io::Result<OwnedFd> {
    Ok(socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?)
}

fn bind_v4(fd: &OwnedFd, addr: SocketAddrV4) -> io::Result<()> {
    bind(fd.as_raw_fd(), &SockaddrIn::from(addr)).map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("cannot bind to {addr}: {}", e.desc()),
        )
    })
}

fn bind_to_device(fd: &OwnedFd, name: &str) -> io::Result<()> {
    setsockopt(fd, sockopt::BindToDevice, &std::ffi::OsString::from(name)).map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("cannot bind socket to interface {name:?}: {}", e.desc()),
        )
    })
}

/// Sets `SO_SNDBUF`/`SO_RCVBUF`, first with the `*FORCE` variant that
/// ignores `net.core.[rw]mem_max` (needs CAP_NET_ADMIN), and returns what
/// the kernel actually granted.
fn set_buffer(fd: &OwnedFd, bytes: usize, receive: bool) -> io::Result<usize> {
    if receive {
        if setsockopt(fd, sockopt::RcvBufForce, &bytes).is_err() {
            setsockopt(fd, sockopt::RcvBuf, &bytes)?;
        }
        Ok(getsockopt(fd, sockopt::RcvBuf)?)
    } else {
        if setsockopt(fd, sockopt::SndBufForce, &bytes).is_err() {
            setsockopt(fd, sockopt::SndBuf, &bytes)?;
        }
        Ok(getsockopt(fd, sockopt::SndBuf)?)
    }
}

fn in_addr(a: Ipv4Addr) -> libc::in_addr {
    libc::in_addr {
        s_addr: u32::from(a).to_be(),
    }
}

fn mreqn(group: Ipv4Addr, address: Ipv4Addr, ifindex: u32) -> io::Result<libc::ip_mreqn> {
    Ok(libc::ip_mreqn {
        imr_multiaddr: in_addr(group),
        imr_address: in_addr(address),
        imr_ifindex: libc::c_int::try_from(ifindex).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "interface index out of range")
        })?,
    })
}

/// Opens the sending socket: blocking (so flat-out mode measures what the
/// kernel accepts instead of counting EAGAIN), with a send timeout so a
/// stop request is noticed, TTL, multicast interface and loopback set.
pub fn open_sender(opts: &SendOpts) -> io::Result<SenderSocket> {
    let fd = udp_socket()?;
    set_buffer(&fd, SEND_BUF, false)?;
    let multicast = opts.group.is_multicast();
    if let Some(name) = &opts.interface {
        let ifindex = interface_index(name)?;
        bind_to_device(&fd, name)?;
        if multicast {
            let req = mreqn(Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, ifindex)?;
            raw_sock::setsockopt(fd.as_fd(), libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &req)?;
        }
    } else if let (true, Some(src)) = (multicast, opts.source) {
        // Without this the route lookup picks the egress for multicast and
        // it need not be the interface that owns the source address.
        let req = mreqn(Ipv4Addr::UNSPECIFIED, src, 0)?;
        raw_sock::setsockopt(fd.as_fd(), libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &req)?;
    }
    if multicast {
        setsockopt(&fd, sockopt::IpMulticastTtl, &opts.ttl)?;
        setsockopt(&fd, sockopt::IpMulticastLoop, &opts.multicast_loop)?;
    } else {
        setsockopt(&fd, sockopt::Ipv4Ttl, &libc::c_int::from(opts.ttl))?;
        if opts.group.is_broadcast() {
            setsockopt(&fd, sockopt::Broadcast, &true)?;
        }
    }
    let src = opts.source.unwrap_or(Ipv4Addr::UNSPECIFIED);
    bind_v4(&fd, SocketAddrV4::new(src, 0))?;
    let sock = UdpSocket::from(fd);
    if multicast {
        // Connected, the kernel keeps the route instead of looking it up
        // for every datagram: a faster sender raises the harness's
        // ceiling. Unicast stays unconnected, where a port-unreachable
        // would turn into send errors.
        sock.connect(SocketAddrV4::new(opts.group, opts.port))?;
    }
    let connected = multicast;
    sock.set_write_timeout(Some(POLL_INTERVAL))?;
    Ok(SenderSocket { sock, connected })
}

/// What [`open_sender`] set up.
pub struct SenderSocket {
    pub sock: UdpSocket,
    /// Connected to the destination: send without an address.
    pub connected: bool,
}

/// What [`open_receiver`] set up.
pub struct RecvSocket {
    pub sock: UdpSocket,
    pub local: SocketAddrV4,
    /// The receive buffer the kernel granted (it reports twice the size
    /// asked for, as it counts its own overhead).
    pub rcvbuf: usize,
    /// Whether `SO_TIMESTAMPNS` could be enabled.
    pub kernel_timestamps: bool,
}

/// Opens the receiving socket: bound to `group:port` for multicast (so
/// other groups on the same port stay out) and joined, otherwise bound to
/// the given address; a receive timeout so the loop sees its stop flag.
pub fn open_receiver(opts: &RecvOpts) -> io::Result<RecvSocket> {
    let fd = udp_socket()?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    let rcvbuf = if opts.rcvbuf > 0 {
        set_buffer(&fd, opts.rcvbuf, true)?
    } else {
        getsockopt(&fd, sockopt::RcvBuf)?
    };
    let kernel_timestamps = setsockopt(&fd, sockopt::ReceiveTimestampns, &true).is_ok();
    // Loss inside our own socket is worth telling apart from loss on the
    // path; failing to enable the counter only loses that detail.
    let _ = setsockopt(&fd, sockopt::RxqOvfl, &1);

    let ifindex = match &opts.interface {
        Some(name) => Some(interface_index(name)?),
        None => None,
    };
    if opts.group.is_multicast() {
        // By default a socket bound to a group gets that group's traffic
        // from every interface any socket on the host joined it on; we
        // only want what this socket joined.
        raw_sock::setsockopt(fd.as_fd(), libc::IPPROTO_IP, libc::IP_MULTICAST_ALL, &0)?;
        bind_v4(&fd, SocketAddrV4::new(opts.group, opts.port))?;
        let req = mreqn(opts.group, Ipv4Addr::UNSPECIFIED, ifindex.unwrap_or(0))?;
        raw_sock::setsockopt(fd.as_fd(), libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &req).map_err(
            |e| {
                let on = opts
                    .interface
                    .as_deref()
                    .map_or(String::new(), |n| format!(" on {n}"));
                io::Error::new(e.kind(), format!("cannot join {}{on}: {e}", opts.group))
            },
        )?;
    } else {
        if let Some(name) = &opts.interface {
            bind_to_device(&fd, name)?;
        }
        bind_v4(&fd, SocketAddrV4::new(opts.group, opts.port))?;
    }
    let sock = UdpSocket::from(fd);
    sock.set_read_timeout(Some(POLL_INTERVAL))?;
    let local = match sock.local_addr()? {
        std::net::SocketAddr::V4(a) => a,
        std::net::SocketAddr::V6(_) => {
            return Err(io::Error::other("IPv4 socket reports an IPv6 address"))
        }
    };
    Ok(RecvSocket {
        sock,
        local,
        rcvbuf,
        kernel_timestamps,
    })
}

fn sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: in_addr(*addr.ip()),
        sin_zero: [0; 8],
    }
}

fn zeroed_mmsghdrs(n: usize) -> Vec<libc::mmsghdr> {
    (0..n)
        .map(|_| {
            // SAFETY: mmsghdr is a C struct of integers and raw pointers
            // (plus, on some libcs, integer padding fields); all-zero is a
            // valid value for each of them (null pointers, zero lengths).
            unsafe { std::mem::zeroed::<libc::mmsghdr>() }
        })
        .collect()
}

fn empty_iovecs(n: usize) -> Vec<libc::iovec> {
    vec![
        libc::iovec {
            iov_base: ptr::null_mut(),
            iov_len: 0,
        };
        n
    ]
}

/// Reusable `sendmmsg` state: one header and iovec per batch slot, all
/// sent to one destination.
pub struct MmsgSender {
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    /// `None`: the socket is connected to the destination (an address on
    /// each message would make the kernel route each one again).
    dest: Option<libc::sockaddr_in>,
}

// SAFETY: the raw pointers in `hdrs`/`iovs` are rewritten at the start of
// every `send` to point at that call's arguments and are never read
// outside it, so moving the value to another thread cannot make anything
// dangle or be shared.
unsafe impl Send for MmsgSender {}

impl MmsgSender {
    /// `dest: None` for a socket connected to its destination.
    pub fn new(batch: usize, dest: Option<SocketAddrV4>) -> MmsgSender {
        let batch = batch.clamp(1, MAX_BATCH);
        MmsgSender {
            hdrs: zeroed_mmsghdrs(batch),
            iovs: empty_iovecs(batch),
            dest: dest.map(sockaddr_in),
        }
    }

    /// Sends `count` datagrams of `slot_len` bytes laid out back to back
    /// at the start of `data`. Returns how many the kernel took (at least
    /// one); an error concerns the first of them.
    pub fn send(
        &mut self,
        fd: BorrowedFd<'_>,
        data: &[u8],
        slot_len: usize,
        count: usize,
    ) -> io::Result<usize> {
        let count = count
            .min(self.hdrs.len())
            .min(data.len().checked_div(slot_len).unwrap_or(0));
        if count == 0 {
            return Ok(0);
        }
        for (i, iov) in self.iovs[..count].iter_mut().enumerate() {
            // The kernel only reads through iov_base on send, so handing it
            // a pointer derived from a shared slice is fine.
            iov.iov_base = data[i * slot_len..].as_ptr().cast_mut().cast::<c_void>();
            iov.iov_len = slot_len;
        }
        let iovs = self.iovs.as_mut_ptr();
        let (name, namelen) = match &mut self.dest {
            Some(d) => (
                ptr::from_mut(d).cast::<c_void>(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            ),
            None => (ptr::null_mut(), 0),
        };
        for (i, h) in self.hdrs[..count].iter_mut().enumerate() {
            h.msg_hdr.msg_name = name;
            h.msg_hdr.msg_namelen = namelen;
            h.msg_hdr.msg_iov = iovs.wrapping_add(i);
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = ptr::null_mut();
            h.msg_hdr.msg_controllen = 0;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        // SAFETY: the first `count` headers were just filled in: each
        // points at one iovec in `self.iovs` covering `slot_len` bytes
        // inside `data` (count * slot_len <= data.len() by the clamp
        // above), and at `self.dest` or at no address, all of which outlive the call; the
        // kernel writes only `msg_len`, inside `self.hdrs`. `fd` is
        // borrowed, so it stays open.
        let rc = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                count as libc::c_uint,
                0,
            )
        };
        usize::try_from(rc).map_err(|_| io::Error::last_os_error())
    }
}

/// Per-datagram results of a [`MmsgReceiver::recv`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RxMeta {
    pub len: usize,
    /// Kernel receive time (ns since the epoch), if it sent one.
    pub kernel_ns: Option<u64>,
    /// The socket's cumulative drop counter at this datagram, if the
    /// kernel attached it (it does only once something was dropped).
    pub drops: Option<u32>,
    pub truncated: bool,
}

/// Reusable `recvmmsg` state: buffers, headers and control space for a
/// batch, allocated once.
pub struct MmsgReceiver {
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    bufs: Vec<u8>,
    ctrl: Vec<u64>,
    meta: Vec<RxMeta>,
}

// SAFETY: as for MmsgSender: the pointers in `hdrs`/`iovs` point into
// this value's own heap buffers, are set at the start of every `recv` and
// only followed inside it.
unsafe impl Send for MmsgReceiver {}

impl MmsgReceiver {
    pub fn new(batch: usize) -> MmsgReceiver {
        let batch = batch.clamp(1, MAX_BATCH);
        MmsgReceiver {
            hdrs: zeroed_mmsghdrs(batch),
            iovs: empty_iovecs(batch),
            bufs: vec![0; batch * RECV_SLOT],
            ctrl: vec![0; batch * CTRL_WORDS],
            meta: vec![RxMeta::default(); batch],
        }
    }

    /// Receives up to a batch: blocks (up to the socket's receive timeout)
    /// for the first datagram, then takes whatever else is queued.
    pub fn recv(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        let n = self.hdrs.len();
        let bufs = self.bufs.as_mut_ptr();
        for (i, iov) in self.iovs.iter_mut().enumerate() {
            iov.iov_base = bufs.wrapping_add(i * RECV_SLOT).cast::<c_void>();
            iov.iov_len = RECV_SLOT;
        }
        let iovs = self.iovs.as_mut_ptr();
        let ctrl = self.ctrl.as_mut_ptr();
        for (i, h) in self.hdrs.iter_mut().enumerate() {
            h.msg_hdr.msg_name = ptr::null_mut();
            h.msg_hdr.msg_namelen = 0;
            h.msg_hdr.msg_iov = iovs.wrapping_add(i);
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = ctrl.wrapping_add(i * CTRL_WORDS).cast::<c_void>();
            h.msg_hdr.msg_controllen = (CTRL_WORDS * size_of::<u64>()) as _;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        // SAFETY: every header points at its own iovec, which covers
        // RECV_SLOT bytes of `self.bufs`, and at CTRL_WORDS words of
        // `self.ctrl`; the kernel writes at most those lengths there and
        // fills in msg_len/msg_controllen/msg_flags inside `self.hdrs`.
        // All of it is owned by `self`, borrowed mutably for the call. A
        // null timeout is allowed (the socket's SO_RCVTIMEO applies).
        let rc = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_WAITFORONE,
                ptr::null_mut(),
            )
        };
        let got = usize::try_from(rc).map_err(|_| io::Error::last_os_error())?;
        for i in 0..got.min(n) {
            let h = &self.hdrs[i];
            let mut meta = RxMeta {
                len: (h.msg_len as usize).min(RECV_SLOT),
                truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                ..RxMeta::default()
            };
            parse_cmsgs(&h.msg_hdr, &mut meta);
            self.meta[i] = meta;
        }
        Ok(got)
    }

    /// Datagram `i` of the last `recv` and what the kernel said about it.
    pub fn get(&self, i: usize) -> (&[u8], RxMeta) {
        let meta = self.meta.get(i).copied().unwrap_or_default();
        let start = i * RECV_SLOT;
        let data = self.bufs.get(start..start + meta.len).unwrap_or(&[]);
        (data, meta)
    }
}

/// Reads the timestamp and drop counter from a header `recvmmsg` just
/// filled in.
// The length fields are size_t on glibc but socklen_t on musl, so the
// casts are only redundant on some targets.
#[allow(clippy::unnecessary_cast)]
fn parse_cmsgs(hdr: &libc::msghdr, meta: &mut RxMeta) {
    let hdr_ptr = ptr::from_ref(hdr);
    let ctrl_end = (hdr.msg_control as usize).saturating_add(hdr.msg_controllen as usize);
    // SAFETY: `hdr` was filled in by the kernel in this same `recv`: its
    // msg_control points at our control buffer (u64-aligned, so cmsghdr
    // reads are aligned) and msg_controllen, which the kernel only ever
    // lowers, bounds the cmsgs in it. CMSG_FIRSTHDR/CMSG_NXTHDR return
    // only headers lying wholly inside that range, or null. A payload is
    // read only if both the cmsg's own length and the control range cover
    // it, and with read_unaligned since CMSG_DATA need not be aligned for
    // the payload type.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr_ptr);
        while !c.is_null() {
            let ch = ptr::read_unaligned(c);
            let data = libc::CMSG_DATA(c);
            let header = (data as usize).saturating_sub(c as usize);
            let covers = |len: usize| {
                header + len <= ch.cmsg_len as usize && (data as usize) + len <= ctrl_end
            };
            if ch.cmsg_level == libc::SOL_SOCKET {
                if ch.cmsg_type == libc::SCM_TIMESTAMPNS && covers(size_of::<libc::timespec>()) {
                    let ts = ptr::read_unaligned(data.cast::<libc::timespec>());
                    if let (Ok(s), Ok(ns)) = (u64::try_from(ts.tv_sec), u64::try_from(ts.tv_nsec)) {
                        meta.kernel_ns = Some(s.saturating_mul(1_000_000_000).saturating_add(ns));
                    }
                } else if ch.cmsg_type == libc::SO_RXQ_OVFL && covers(size_of::<u32>()) {
                    meta.drops = Some(ptr::read_unaligned(data.cast::<u32>()));
                }
            }
            c = libc::CMSG_NXTHDR(hdr_ptr, c);
        }
    }
}

/// Whether an error from `sendmmsg` means the socket itself is unusable
/// (as opposed to one datagram being refused, which is counted).
pub fn is_fatal_send_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(
            Errno::EBADF
                | Errno::ENOTSOCK
                | Errno::EFAULT
                | Errno::EINVAL
                | Errno::EDESTADDRREQ
                | Errno::EAFNOSUPPORT
                | Errno::EOPNOTSUPP
        )
    )
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_signal: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM set the returned flag instead of killing the
/// process, so a run ends with its summary. The handlers reset
/// themselves, so a second signal kills as usual if the run hangs.
/// Blocking calls are not restarted, so they return at once.
pub fn install_stop_handlers() -> io::Result<&'static AtomicBool> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_stop_signal),
        SaFlags::SA_RESETHAND,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to a static atomic, which is
        // async-signal-safe and touches no other state; replacing the
        // default disposition of these two signals is the point.
        unsafe { sigaction(signal, &action) }?;
    }
    Ok(&STOP)
}

/// Put raw IPv4 packets (no link header) on interface `ifname` through a
/// cooked AF_PACKET socket, addressed to the Ethernet multicast or
/// broadcast address their destination implies, so a relay on the other
/// end of the link sees exactly these bytes: malformed headers,
/// fragments, any protocol. Needs CAP_NET_RAW.
pub fn inject_ipv4(ifname: &str, packets: &[Vec<u8>]) -> io::Result<usize> {
    let ifindex = interface_index(ifname)?;
    let fd = raw_sock::new_socket(libc::AF_PACKET, libc::SOCK_DGRAM, 0)?;
    let mut sent = 0;
    for p in packets {
        // The link address: the multicast MAC of the destination group
        // (RFC 1112 §6.4), else broadcast.
        let dst = if p.len() >= 20 {
            [p[16], p[17], p[18], p[19]]
        } else {
            [255; 4]
        };
        let mac = if (224..240).contains(&dst[0]) {
            [0x01, 0x00, 0x5e, dst[1] & 0x7f, dst[2], dst[3]]
        } else {
            [0xff; 6]
        };
        let mut sll: libc::sockaddr_ll = raw_sock::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&mac);
        // SAFETY: `p` and `sll` are live for the call and the lengths given
        // are theirs.
        let rc = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                p.as_ptr().cast::<c_void>(),
                p.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        sent += 1;
    }
    Ok(sent)
}
