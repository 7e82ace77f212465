//! The sockets the supervisor opens: for its workers, which get them over
//! IPC and never open a socket themselves, and for its own bookkeeping.
//!
//! Owns: the AF_PACKET ingress socket (raw with a virtio_net_hdr or cooked
//! `SOCK_DGRAM`, bound to one interface and `ETH_P_IP`, own transmissions
//! ignored, the BPF filter of `sys::bpf`, `PACKET_FANOUT` for several
//! workers per interface), egress sockets (UDP for republish, raw IP for
//! route mode, bound to the output device), group memberships that make
//! switches and NICs deliver input groups (RFC 1112 host membership
//! through the kernel's IGMP), sinks that keep unicast input ports from
//! answering with ICMP port-unreachable. (Interface changes come from
//! the NetlinkMonitor's rtnetlink subscription, not from a socket here.)

use std::collections::HashMap;
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
    let b = fd.as_fd();
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
/// default), so this spreads them over as many sockets as needed, and
/// closes a socket as soon as it holds no group: after churn the process
/// must not keep one idle socket per 20 groups it once joined.
#[derive(Default)]
pub struct Memberships {
    /// Slots, so the indices in `joined` stay valid when one is closed.
    sockets: Vec<Option<(OwnedFd, usize)>>,
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

    /// Sockets open for memberships now.
    pub fn open_sockets(&self) -> usize {
        self.sockets.iter().flatten().count()
    }

    /// Join `group` on `ifindex`. Joining twice is a no-op.
    pub fn join(&mut self, ifindex: u32, group: Ipv4Addr) -> io::Result<()> {
        if self.joined.contains_key(&(ifindex, group)) {
            return Ok(());
        }
        let req = mreqn(group, ifindex);
        for (i, slot) in self.sockets.iter_mut().enumerate() {
            let Some((fd, n)) = slot else { continue };
            match setsockopt(fd.as_fd(), libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &req) {
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
        attach_filter(fd.as_fd(), &drop_all())?;
        setsockopt(fd.as_fd(), libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &req)?;
        let i = match self.sockets.iter().position(Option::is_none) {
            Some(i) => {
                self.sockets[i] = Some((fd, 1));
                i
            }
            None => {
                self.sockets.push(Some((fd, 1)));
                self.sockets.len() - 1
            }
        };
        self.joined.insert((ifindex, group), i);
        Ok(())
    }

    /// Leave `group` on `ifindex`.
    pub fn leave(&mut self, ifindex: u32, group: Ipv4Addr) -> io::Result<()> {
        let Some(i) = self.joined.remove(&(ifindex, group)) else {
            return Ok(());
        };
        let req = mreqn(group, ifindex);
        let r = match &self.sockets[i] {
            Some((fd, _)) => {
                setsockopt(fd.as_fd(), libc::IPPROTO_IP, libc::IP_DROP_MEMBERSHIP, &req)
            }
            None => Ok(()),
        };
        self.release(i);
        r
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
                self.release(i);
            }
        }
    }

    /// One group fewer on socket `i`: close it when it holds none.
    fn release(&mut self, i: usize) {
        let Some(slot) = self.sockets.get_mut(i) else {
            return;
        };
        if let Some((_, n)) = slot {
            *n = n.saturating_sub(1);
            if *n == 0 {
                *slot = None;
            }
        }
        while matches!(self.sockets.last(), Some(None)) {
            self.sockets.pop();
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Joining needs no privilege, and loopback (ifindex 1) exists in every
    /// namespace, so this runs anywhere.
    #[test]
    fn membership_sockets_are_closed_when_their_last_group_is_left() {
        let mut m = Memberships::new();
        let groups: Vec<Ipv4Addr> = (0..45u32)
            .map(|i| Ipv4Addr::from(0xef63_0000 + i))
            .collect();
        for g in &groups {
            m.join(1, *g).expect("join on lo");
        }
        let peak = m.open_sockets();
        // 20 per socket by default; a host with a larger limit needs fewer.
        assert!(peak >= 1, "{peak}");
        for g in &groups[..40] {
            m.leave(1, *g).expect("leave");
        }
        assert!(m.open_sockets() <= 2, "{} of {peak}", m.open_sockets());
        // Rejoining reuses or reopens sockets; all of it goes again.
        for g in &groups[..10] {
            m.join(1, *g).expect("rejoin");
        }
        for g in &groups {
            m.leave(1, *g).expect("leave");
        }
        assert_eq!(m.open_sockets(), 0);
        assert_eq!(m.joined().count(), 0);
        m.join(1, groups[0]).expect("join");
        m.forget_interface(1);
        assert_eq!(
            m.open_sockets(),
            0,
            "a vanished interface frees its sockets"
        );
    }
}
