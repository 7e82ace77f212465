//! Socket layer of the data plane: every socket a worker uses is opened
//! here, by the (privileged) supervisor, and then passed to the worker.
//!
//! Owns: the AF_PACKET ingress socket (cooked `SOCK_DGRAM`, bound to one
//! interface and `ETH_P_IP`, own transmissions ignored, classic BPF filter),
//! egress sockets (UDP for republish, raw IP for route mode, bound to the
//! output device), group memberships that make switches and NICs deliver
//! input groups (RFC 1112 host membership through the kernel's IGMP), sinks
//! that keep unicast input ports from answering with ICMP port-unreachable,
//! and the few interface facts the supervisor reads from sysfs.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::ipc::FrameFormat;
use crate::rule::OutputMode;

/// Receive buffer of ingress sockets: deep enough to ride out a worker
/// restart or a scheduling hiccup at high rates.
pub const INGRESS_RCVBUF: usize = 32 * 1024 * 1024;
/// Send buffer of egress sockets (`MCR_SOCKET_SNDBUF` overrides).
pub const EGRESS_SNDBUF: usize = 4 * 1024 * 1024;

const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_VNET_HDR: libc::c_int = 15;
const SKF_AD_OFF: u32 = (-0x1000i32) as u32;
const SKF_AD_PKTTYPE: u32 = 4;
const PACKET_OUTGOING: u32 = 4;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn new_socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; on success it returns a new fd
    // that nothing else owns.
    let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by no one.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// setsockopt with a plain-old-data value.
fn setsockopt<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    val: &T,
) -> io::Result<()> {
    // SAFETY: `val` points to a live `T` of `size_of::<T>()` bytes for the
    // duration of the call; the kernel copies it and keeps no reference.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (val as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn set_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    setsockopt(fd, level, name, &v)
}

fn bind_to_device(fd: BorrowedFd<'_>, ifname: &str) -> io::Result<()> {
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
fn set_buf(
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

/// A classic BPF instruction.
pub type SockFilter = libc::sock_filter;

fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// Most destinations the ingress filter lists one by one. Past this the
/// filter only drops our own transmissions: classic BPF programs are
/// limited to 4096 instructions (the search tree below costs about 3.5 per
/// destination), and a table this large is better served by the worker's
/// hash lookup than by a long filter.
pub const MAX_FILTER_DESTINATIONS: usize = 1024;

const BPF_JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const ACCEPT_LEN: u32 = 0x0004_0000;

/// Whether `name` can hand its readers GSO batches (several datagrams in
/// one frame): virtual devices (veth, bridges, tun/tap, loopback) pass a
/// local sender's batches on unsegmented; physical NICs segment before the
/// wire. Physical devices have a `device` link in sysfs.
pub fn may_receive_gso(name: &str) -> bool {
    crate::rule::validate_interface_name(name).is_ok()
        && !std::path::Path::new(&format!("/sys/class/net/{name}/device")).exists()
}

/// Largest frame a reader can be handed: a GSO batch of up to 64 KB of IP
/// packet, plus the virtio_net_hdr.
pub const MAX_FRAME: u32 = 65_536 + crate::wire::VNET_HDR_LEN as u32;

/// The ingress filter: drop frames this host sent (so the relay never
/// re-ingests its own output, even on kernels without
/// `PACKET_IGNORE_OUTGOING`) and, when `dsts` is given and not too long,
/// every IPv4 packet whose destination no rule names.
///
/// With a cooked socket the IPv4 header starts at offset 0, so the
/// destination address is the word at offset 16. Destinations are found by
/// binary search, so the per-packet cost is logarithmic in their number.
pub fn ingress_filter(dsts: Option<&[Ipv4Addr]>, link_header: u16) -> Vec<SockFilter> {
    let mut prog = vec![
        stmt(BPF_LD_W_ABS, SKF_AD_OFF + SKF_AD_PKTTYPE),
        // OUTGOING: skip to the drop right after the accept below.
        jump(BPF_JEQ_K, PACKET_OUTGOING, 1, 0),
    ];
    let list = match dsts {
        Some(d) if !d.is_empty() && d.len() <= MAX_FILTER_DESTINATIONS => {
            let mut v: Vec<u32> = d.iter().map(|a| u32::from(*a)).collect();
            v.sort_unstable();
            v.dedup();
            Some(v)
        }
        _ => None,
    };
    match list {
        None => {
            prog.push(stmt(BPF_RET_K, ACCEPT_LEN));
            prog.push(stmt(BPF_RET_K, 0));
        }
        Some(v) => {
            // OUTGOING: fall into the drop; else skip it to the load.
            prog[1] = jump(BPF_JEQ_K, PACKET_OUTGOING, 0, 1);
            prog.push(stmt(BPF_RET_K, 0));
            // The filter sees the frame from its link header on.
            prog.push(stmt(BPF_LD_W_ABS, 16 + u32::from(link_header)));
            emit_search(&v, &mut prog);
        }
    }
    prog
}

/// Emit a binary search over sorted `v` for the value in A: every path
/// ends in its own `ret`, so no conditional jump has to span a subtree
/// (their offsets are 8-bit); the one long jump per node is an
/// unconditional `ja`, whose offset is 32-bit.
fn emit_search(v: &[u32], out: &mut Vec<SockFilter>) {
    match v {
        [] => out.push(stmt(BPF_RET_K, 0)),
        [k] => {
            out.push(jump(BPF_JEQ_K, *k, 0, 1));
            out.push(stmt(BPF_RET_K, ACCEPT_LEN));
            out.push(stmt(BPF_RET_K, 0));
        }
        [k0, k1] => {
            out.push(jump(BPF_JEQ_K, *k0, 0, 1));
            out.push(stmt(BPF_RET_K, ACCEPT_LEN));
            out.push(jump(BPF_JEQ_K, *k1, 0, 1));
            out.push(stmt(BPF_RET_K, ACCEPT_LEN));
            out.push(stmt(BPF_RET_K, 0));
        }
        _ => {
            let mid = v.len() / 2;
            // A > v[mid-1]: the right half; take the ja. Else skip it.
            out.push(jump(BPF_JGT_K, v[mid - 1], 0, 1));
            let ja_at = out.len();
            out.push(stmt(BPF_JA, 0));
            emit_search(&v[..mid], out);
            let right = out.len();
            out[ja_at].k = (right - ja_at - 1) as u32;
            emit_search(&v[mid..], out);
        }
    }
}

fn attach_filter(fd: BorrowedFd<'_>, prog: &[SockFilter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut SockFilter,
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

/// Replace the filter on an open ingress socket (rules changed).
pub fn set_ingress_filter(
    fd: BorrowedFd<'_>,
    dsts: Option<&[Ipv4Addr]>,
    link_header: u16,
) -> io::Result<()> {
    attach_filter(fd, &ingress_filter(dsts, link_header))
}

/// How to read frames of a link type: raw with a virtio_net_hdr where the
/// link header length is fixed and known (Ethernet and loopback: 14 bytes;
/// tun, WireGuard and other header-less links: 0), cooked otherwise.
///
/// The virtio_net_hdr says whether a frame is a GSO batch of datagrams and
/// how to split it; the kernel only gives it on raw packet sockets.
pub fn frame_format(link_type: u16) -> FrameFormat {
    const ARPHRD_ETHER: u16 = 1;
    const ARPHRD_LOOPBACK: u16 = 772;
    const ARPHRD_NONE: u16 = 0xfffe;
    match link_type {
        ARPHRD_ETHER | ARPHRD_LOOPBACK => FrameFormat {
            vnet: true,
            link_header: 14,
        },
        ARPHRD_NONE => FrameFormat {
            vnet: true,
            link_header: 0,
        },
        _ => FrameFormat {
            vnet: false,
            link_header: 0,
        },
    }
}

/// Open the ingress socket of interface `ifindex`. Needs CAP_NET_RAW.
pub fn open_ingress(
    ifindex: u32,
    rcvbuf: usize,
    dsts: Option<&[Ipv4Addr]>,
    fmt: FrameFormat,
) -> io::Result<OwnedFd> {
    // Protocol 0: the socket receives nothing until bound, so no frame of
    // another interface slips in before bind.
    let ty = if fmt.vnet {
        libc::SOCK_RAW
    } else {
        libc::SOCK_DGRAM
    };
    let fd = new_socket(libc::AF_PACKET, ty, 0)?;
    let b = fd_borrow(&fd);
    // Best effort: kernels before 4.20 lack it; the BPF filter covers them.
    let _ = set_int(b, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1);
    if fmt.vnet {
        set_int(b, libc::SOL_PACKET, PACKET_VNET_HDR, 1)?;
    }
    set_buf(b, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, rcvbuf)?;
    attach_filter(b, &ingress_filter(dsts, fmt.link_header))?;
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is a live sockaddr_ll and the length passed is its size.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

fn fd_borrow(fd: &OwnedFd) -> BorrowedFd<'_> {
    use std::os::fd::AsFd;
    fd.as_fd()
}

/// Join a `PACKET_FANOUT` group (several workers on one interface).
/// `PACKET_FANOUT_HASH` keeps each flow on one worker, so a flow stays in
/// order; `PACKET_FANOUT_FLAG_DEFRAG` keeps fragments of a datagram
/// together (they are dropped, but counted by one worker).
pub fn join_fanout(fd: BorrowedFd<'_>, group_id: u16) -> io::Result<()> {
    const PACKET_FANOUT: libc::c_int = 18;
    const PACKET_FANOUT_HASH: u32 = 0;
    const PACKET_FANOUT_FLAG_DEFRAG: u32 = 0x8000;
    let v: u32 = u32::from(group_id) | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16);
    setsockopt(fd, libc::SOL_PACKET, PACKET_FANOUT, &v)
}

/// Kernel counters of an AF_PACKET socket: (packets, drops) since the last
/// read (reading resets them).
pub fn packet_statistics(fd: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    let mut st = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `st` and `len` are live and `len` is the size of `st`.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut st as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    })?;
    Ok((st.tp_packets, st.tp_drops))
}

fn mreqn(group: Ipv4Addr, ifindex: u32) -> libc::ip_mreqn {
    libc::ip_mreqn {
        imr_multiaddr: libc::in_addr {
            s_addr: u32::from(group).to_be(),
        },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: ifindex as i32,
    }
}

/// Open an egress socket for `ifname`. Republish: UDP, the kernel builds
/// the headers. Route: raw IP with the header supplied (IPPROTO_RAW implies
/// IP_HDRINCL). Both are bound to the device so that the kernel sends on
/// that interface whatever its routing table says, and neither loops
/// multicast back to this host (the relay must not hear itself).
pub fn open_egress(
    ifname: &str,
    ifindex: u32,
    ttl: u8,
    mode: OutputMode,
    sndbuf: usize,
) -> io::Result<OwnedFd> {
    let fd = match mode {
        OutputMode::Republish => new_socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDP)?,
        OutputMode::Route => new_socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW)?,
    };
    let b = fd_borrow(&fd);
    bind_to_device(b, ifname)?;
    setsockopt(
        b,
        libc::IPPROTO_IP,
        libc::IP_MULTICAST_IF,
        &mreqn(Ipv4Addr::UNSPECIFIED, ifindex),
    )?;
    set_int(b, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, 0)?;
    set_int(b, libc::SOL_SOCKET, libc::SO_BROADCAST, 1)?;
    if mode == OutputMode::Republish {
        set_int(b, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, i32::from(ttl))?;
        set_int(b, libc::IPPROTO_IP, libc::IP_TTL, i32::from(ttl))?;
    }
    set_buf(b, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, sndbuf)?;
    Ok(fd)
}

/// Memberships of input groups, per interface. The kernel limits the
/// groups one socket may join (`net.ipv4.igmp_max_memberships`, 20 by
/// default), so this spreads them over as many sockets as needed.
#[derive(Default)]
pub struct Memberships {
    sockets: Vec<(OwnedFd, usize)>,
    joined: HashMap<(u32, Ipv4Addr), usize>,
}

impl Memberships {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_joined(&self, ifindex: u32, group: Ipv4Addr) -> bool {
        self.joined.contains_key(&(ifindex, group))
    }

    pub fn joined(&self) -> impl Iterator<Item = (u32, Ipv4Addr)> + '_ {
        self.joined.keys().copied()
    }

    /// Join `group` on `ifindex`. Joining twice is a no-op.
    pub fn join(&mut self, ifindex: u32, group: Ipv4Addr) -> io::Result<()> {
        if self.joined.contains_key(&(ifindex, group)) {
            return Ok(());
        }
        let req = mreqn(group, ifindex);
        for (i, (fd, n)) in self.sockets.iter_mut().enumerate() {
            match setsockopt(
                fd_borrow(fd),
                libc::IPPROTO_IP,
                libc::IP_ADD_MEMBERSHIP,
                &req,
            ) {
                Ok(()) => {
                    *n += 1;
                    self.joined.insert((ifindex, group), i);
                    return Ok(());
                }
                // This socket is full; try the next.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
                Err(e) => return Err(e),
            }
        }
        let fd = new_socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDP)?;
        // The membership socket must not receive the traffic itself: it is
        // never read, so a filter that drops everything keeps its queue
        // empty.
        attach_filter(fd_borrow(&fd), &[stmt(BPF_RET_K, 0)])?;
        setsockopt(
            fd_borrow(&fd),
            libc::IPPROTO_IP,
            libc::IP_ADD_MEMBERSHIP,
            &req,
        )?;
        self.sockets.push((fd, 1));
        self.joined.insert((ifindex, group), self.sockets.len() - 1);
        Ok(())
    }

    /// Leave `group` on `ifindex`.
    pub fn leave(&mut self, ifindex: u32, group: Ipv4Addr) -> io::Result<()> {
        let Some(i) = self.joined.remove(&(ifindex, group)) else {
            return Ok(());
        };
        let req = mreqn(group, ifindex);
        let (fd, n) = &mut self.sockets[i];
        *n = n.saturating_sub(1);
        setsockopt(
            fd_borrow(fd),
            libc::IPPROTO_IP,
            libc::IP_DROP_MEMBERSHIP,
            &req,
        )
    }

    /// Forget every membership on an interface that is gone (the kernel
    /// dropped them with the device).
    pub fn forget_interface(&mut self, ifindex: u32) {
        let gone: Vec<_> = self
            .joined
            .keys()
            .filter(|(i, _)| *i == ifindex)
            .copied()
            .collect();
        for k in gone {
            if let Some(i) = self.joined.remove(&k) {
                self.sockets[i].1 = self.sockets[i].1.saturating_sub(1);
            }
        }
    }
}

/// A UDP socket bound to a local unicast input address and port that drops
/// everything: with it the kernel stays silent instead of answering the
/// sender with ICMP port-unreachable for each packet the relay takes.
pub fn open_sink(addr: Ipv4Addr, port: u16) -> io::Result<OwnedFd> {
    let fd = new_socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDP)?;
    let b = fd_borrow(&fd);
    attach_filter(b, &[stmt(BPF_RET_K, 0)])?;
    set_int(b, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `sin` is a live sockaddr_in and the length is its size.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

/// Facts about an interface, read from sysfs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceInfo {
    pub name: String,
    pub ifindex: u32,
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Carrier and operationally up (IFF_RUNNING).
    pub running: bool,
    pub addrs: Vec<Ipv4Addr>,
    /// ARPHRD_* link type (1 Ethernet, 772 loopback, 65534 none).
    pub link_type: u16,
}

/// `ifreq` ioctl on a throwaway socket. Sockets (not sysfs) answer for the
/// caller's own network namespace, which matters when a thread has joined
/// another namespace.
fn ifreq_ioctl(name: &str, req: libc::c_ulong) -> io::Result<libc::ifreq> {
    let fd = new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= ifr.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: `ifr` is a live, NUL-terminated ifreq for the whole call, as
    // SIOCGIF* requests expect.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), req as _, &mut ifr as *mut libc::ifreq) })?;
    Ok(ifr)
}

/// Look an interface up by name; `None` if it does not exist.
pub fn interface_info(name: &str) -> Option<InterfaceInfo> {
    if crate::rule::validate_interface_name(name).is_err() {
        return None;
    }
    let ifindex = nix::net::if_::if_nametoindex(name).ok()?;
    // SAFETY (both reads): the kernel filled the union member that the
    // request names (ifru_mtu for SIOCGIFMTU, ifru_flags for SIOCGIFFLAGS).
    let mtu = ifreq_ioctl(name, libc::SIOCGIFMTU)
        .map(|r| unsafe { r.ifr_ifru.ifru_mtu } as u32)
        .unwrap_or(1500);
    let flags = ifreq_ioctl(name, libc::SIOCGIFFLAGS)
        .map(|r| unsafe { r.ifr_ifru.ifru_flags } as u16 as u64)
        .unwrap_or(0);
    // SAFETY: the kernel filled ifru_hwaddr for SIOCGIFHWADDR.
    let link_type = ifreq_ioctl(name, libc::SIOCGIFHWADDR)
        .map(|r| unsafe { r.ifr_ifru.ifru_hwaddr.sa_family })
        .unwrap_or(0);
    Some(InterfaceInfo {
        name: name.to_string(),
        link_type,
        ifindex,
        mtu,
        up: flags & libc::IFF_UP as u64 != 0,
        running: flags & libc::IFF_RUNNING as u64 != 0,
        addrs: ipv4_addrs(name),
    })
}

/// All interfaces in this network namespace.
pub fn list_interfaces() -> Vec<InterfaceInfo> {
    let mut v: Vec<InterfaceInfo> = nix::net::if_::if_nameindex()
        .map(|list| {
            list.iter()
                .filter_map(|i| i.name().to_str().ok().map(str::to_string))
                .filter_map(|n| interface_info(&n))
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|i| i.ifindex);
    v
}

/// IPv4 addresses of an interface.
pub fn ipv4_addrs(name: &str) -> Vec<Ipv4Addr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter(|a| a.interface_name == name)
        .filter_map(|a| {
            a.address
                .and_then(|s| s.as_sockaddr_in().map(|sin| sin.ip()))
        })
        .collect()
}

/// Whether this process may open AF_PACKET sockets (CAP_NET_RAW in its
/// effective set), from /proc so that no capability library is needed.
pub fn has_cap_net_raw() -> bool {
    const CAP_NET_RAW: u32 = 13;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_NET_RAW) != 0)
}

/// A netlink socket subscribed to link and IPv4 address changes. The
/// supervisor only uses it as a doorbell: on any message it rescans the
/// interfaces, so it never needs to parse netlink attributes.
pub fn open_netlink_monitor() -> io::Result<OwnedFd> {
    const RTMGRP_LINK: u32 = 1;
    const RTMGRP_IPV4_IFADDR: u32 = 0x10;
    let fd = new_socket(
        libc::AF_NETLINK,
        libc::SOCK_RAW | libc::SOCK_NONBLOCK,
        libc::NETLINK_ROUTE,
    )?;
    // SAFETY: sockaddr_nl is plain old data; all-zero is valid.
    let mut sa: libc::sockaddr_nl = unsafe { mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    sa.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR;
    // SAFETY: `sa` is a live sockaddr_nl and the length is its size.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_nl).cast(),
            mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

/// Read and discard whatever is queued on a non-blocking socket. Returns
/// whether anything (or an overrun error) was there.
pub fn drain(fd: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 8192];
    let mut any = false;
    loop {
        // SAFETY: `buf` is live and writable for its full length.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n > 0 {
            any = true;
            continue;
        }
        if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOBUFS) {
            // Overrun: events were lost, which is exactly when to rescan.
            any = true;
            continue;
        }
        return any;
    }
}

/// The raw fd of a borrowed socket, for io_uring submissions.
pub fn raw(fd: &OwnedFd) -> RawFd {
    fd.as_raw_fd()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run a classic BPF program over a packet (enough of the instruction
    /// set for our filters) so the filter logic is tested without a socket.
    fn run_bpf(prog: &[SockFilter], pkt: &[u8], pkt_type: u32) -> u32 {
        let mut a: u32 = 0;
        let mut pc = 0usize;
        loop {
            let ins = prog[pc];
            match ins.code {
                BPF_LD_W_ABS => {
                    a = if ins.k == SKF_AD_OFF + SKF_AD_PKTTYPE {
                        pkt_type
                    } else {
                        let o = ins.k as usize;
                        // The kernel ends the program with 0 (drop) on a
                        // load past the end of the packet.
                        let Some(b) = pkt.get(o..o + 4) else { return 0 };
                        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
                    };
                    pc += 1;
                }
                BPF_JEQ_K => pc += 1 + if a == ins.k { ins.jt } else { ins.jf } as usize,
                BPF_JGT_K => pc += 1 + if a > ins.k { ins.jt } else { ins.jf } as usize,
                BPF_JA => pc += 1 + ins.k as usize,
                BPF_RET_K => return ins.k,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn pkt_to(dst: Ipv4Addr) -> Vec<u8> {
        crate::wire::UdpPacketSpec::new("10.0.0.1".parse().unwrap(), dst, 1, 2).build(b"x")
    }

    #[test]
    fn filter_drops_outgoing_and_accepts_the_rest() {
        let p = ingress_filter(None, 0);
        let f = pkt_to("239.1.1.1".parse().unwrap());
        assert!(run_bpf(&p, &f, 0) > 0);
        assert!(run_bpf(&p, &f, 2) > 0);
        assert_eq!(run_bpf(&p, &f, PACKET_OUTGOING), 0);
    }

    #[test]
    fn filter_keeps_exactly_the_listed_destinations() {
        for n in [1usize, 2, 3, 7, 64, 500, MAX_FILTER_DESTINATIONS] {
            let dsts: Vec<Ipv4Addr> = (0..n as u32)
                .map(|i| Ipv4Addr::from(0xef01_0000 + i * 3))
                .collect();
            let p = ingress_filter(Some(&dsts), 0);
            assert!(p.len() < 4096);
            for (i, d) in dsts.iter().enumerate() {
                assert!(
                    run_bpf(&p, &pkt_to(*d), 2) > 0,
                    "n={n}: {d} (#{i}) must pass"
                );
                assert_eq!(run_bpf(&p, &pkt_to(*d), PACKET_OUTGOING), 0);
                let miss = Ipv4Addr::from(u32::from(*d) + 1);
                assert_eq!(run_bpf(&p, &pkt_to(miss), 2), 0, "n={n}: {miss} must drop");
            }
            assert_eq!(run_bpf(&p, &pkt_to("1.2.3.4".parse().unwrap()), 0), 0);
            assert_eq!(
                run_bpf(&p, &pkt_to("255.255.255.255".parse().unwrap()), 0),
                0
            );
        }
        // On Ethernet the filter sees the 14-byte link header first.
        let dsts = ["239.1.2.3".parse().unwrap()];
        let p = ingress_filter(Some(&dsts), 14);
        let mut eth = vec![0u8; 14];
        eth.extend_from_slice(&pkt_to(dsts[0]));
        assert!(run_bpf(&p, &eth, 2) > 0);
        assert_eq!(
            run_bpf(&p, &pkt_to(dsts[0]), 2),
            0,
            "without the link header the address is elsewhere"
        );
        // Too many: only the outgoing test remains.
        let many: Vec<Ipv4Addr> = (0..5000u32)
            .map(|i| Ipv4Addr::from(0xef00_0000 + i))
            .collect();
        assert_eq!(ingress_filter(Some(&many), 0).len(), 4);
    }

    #[test]
    fn interface_lookup_of_loopback() {
        let lo = interface_info("lo").expect("every namespace has lo");
        assert!(lo.ifindex >= 1);
        assert!(interface_info("no-such-if0").is_none());
        assert!(
            interface_info("../etc").is_none(),
            "names are validated before touching sysfs"
        );
    }
}
