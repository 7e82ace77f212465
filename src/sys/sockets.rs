//! The sockets the supervisor opens: for its workers, which get them over
//! IPC and never open a socket themselves, and for its own bookkeeping.
//!
//! Owns: the AF_PACKET ingress socket (raw with a virtio_net_hdr or cooked
//! `SOCK_DGRAM`, bound to one interface and `ETH_P_IP`, own transmissions
//! ignored, the BPF filter of `sys::bpf`, `PACKET_FANOUT` for several
//! workers per interface), egress sockets (UDP for republish, raw IP for
//! route mode, bound to the output device), sinks that keep unicast input
//! ports from answering with ICMP port-unreachable. (Input group
//! memberships are `sys::membership`'s.) (Interface changes come from
//! the NetlinkMonitor's rtnetlink subscription, not from a socket here.)

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::ipc::FrameFormat;
use crate::rule::OutputMode;

use super::bpf::{drop_all, ingress_filter};
use super::sockopt::{
    attach_filter, bind, bind_to_device, new_socket, set_buf, set_int, setsockopt, zeroed,
};

/// Receive buffer of ingress sockets: deep enough to ride out a worker
/// restart or a scheduling hiccup at high rates.
pub const INGRESS_RCVBUF: usize = 32 * 1024 * 1024;
/// Send buffer of egress sockets (`MCR_SOCKET_SNDBUF` overrides).
pub const EGRESS_SNDBUF: usize = 4 * 1024 * 1024;

const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_VNET_HDR: libc::c_int = 15;

/// Largest frame a reader can be handed: a GSO batch of up to 64 KB of IP
/// packet, plus the virtio_net_hdr.
pub const MAX_FRAME: u32 = 65_536 + crate::wire::VNET_HDR_LEN as u32;

/// Replace the filter on an open ingress socket (rules changed).
/// `ifindex` is the interface the socket is bound to (0: no check).
pub fn set_ingress_filter(
    fd: BorrowedFd<'_>,
    dsts: Option<&[Ipv4Addr]>,
    link_header: u16,
    ifindex: u32,
) -> io::Result<()> {
    attach_filter(fd, &ingress_filter(dsts, link_header, ifindex))
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

/// Open the ingress socket of interface `ifindex`, bound to IPv4. Needs
/// CAP_NET_RAW.
pub fn open_ingress(
    ifindex: u32,
    rcvbuf: usize,
    dsts: Option<&[Ipv4Addr]>,
    fmt: FrameFormat,
) -> io::Result<OwnedFd> {
    open_ingress_bound(ifindex, rcvbuf, dsts, fmt, libc::ETH_P_IP as u16)
}

/// The protocol an ingress socket on interface `name` binds to. A port of
/// a Linux bridge hands every frame it receives to the bridge before the
/// kernel delivers it by protocol, so a socket bound to IPv4 there never
/// sees a packet; only a tap of every protocol comes before the bridge (the
/// ingress filter then keeps IPv4 alone). Elsewhere binding to IPv4 keeps
/// other protocols out of the socket without running the filter.
pub fn ingress_protocol(name: &str) -> u16 {
    // sysfs answers for the namespace it was mounted in, which is the
    // supervisor's own: it runs in one namespace for its whole life.
    let port = !name.is_empty()
        && !name.contains('/')
        && std::path::Path::new("/sys/class/net")
            .join(name)
            .join("brport")
            .exists();
    if port {
        libc::ETH_P_ALL as u16
    } else {
        libc::ETH_P_IP as u16
    }
}

/// Open the ingress socket of interface `ifindex`, bound to `protocol`
/// (`ingress_protocol`). Needs CAP_NET_RAW.
pub fn open_ingress_bound(
    ifindex: u32,
    rcvbuf: usize,
    dsts: Option<&[Ipv4Addr]>,
    fmt: FrameFormat,
    protocol: u16,
) -> io::Result<OwnedFd> {
    // Protocol 0: the socket receives nothing until bound, so no frame of
    // another interface slips in before bind.
    let ty = if fmt.vnet {
        libc::SOCK_RAW
    } else {
        libc::SOCK_DGRAM
    };
    let fd = new_socket(libc::AF_PACKET, ty, 0)?;
    let b = fd.as_fd();
    // Best effort: kernels before 4.20 lack it; the BPF filter covers them.
    let _ = set_int(b, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1);
    if fmt.vnet {
        set_int(b, libc::SOL_PACKET, PACKET_VNET_HDR, 1)?;
    }
    set_buf(b, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, rcvbuf)?;
    attach_filter(b, &ingress_filter(dsts, fmt.link_header, ifindex))?;
    let mut sll: libc::sockaddr_ll = zeroed();
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex as i32;
    bind(b, &sll)?;
    Ok(fd)
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
    let b = fd.as_fd();
    bind_to_device(b, ifname)?;
    setsockopt(
        b,
        libc::IPPROTO_IP,
        libc::IP_MULTICAST_IF,
        &super::membership::ip_mreqn(Ipv4Addr::UNSPECIFIED, ifindex),
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

/// A UDP socket bound to a local unicast input address and port that drops
/// everything: with it the kernel stays silent instead of answering the
/// sender with ICMP port-unreachable for each packet the relay takes.
pub fn open_sink(addr: Ipv4Addr, port: u16) -> io::Result<OwnedFd> {
    let fd = new_socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDP)?;
    let b = fd.as_fd();
    attach_filter(b, &drop_all())?;
    set_int(b, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    bind(b, &sin)?;
    Ok(fd)
}

/// The raw fd of a socket, for io_uring submissions.
pub fn raw(fd: &OwnedFd) -> RawFd {
    fd.as_raw_fd()
}
