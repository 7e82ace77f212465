//! The PIM router's socket: one raw `IPPROTO_PIM` socket per PIM
//! interface, the link-local group it listens on, and the IP header it
//! receives.
//!
//! Owns: RFC 7761 §4.9's transport rules for the messages the PimActor
//! sends and receives: IP protocol 103, Hellos and Join/Prunes to
//! ALL-PIM-ROUTERS (224.0.0.13) with TTL 1, sent from the interface's
//! primary address. Binding the socket to its device is what tells the
//! actor which interface a packet came in on, so no `IP_PKTINFO` is
//! needed; a raw socket is not bound to an address because the kernel
//! would then drop everything sent to the group. Also the RP's forwarding
//! socket: packets it takes out of Registers (RFC 7761 §4.4.2) leave
//! through a raw IPv4 socket that sends the inner header as given, so the
//! source stays the original sender's. Unicast PIM may name its source
//! address (an RP address on a loopback), and the DR's ICMP about data
//! too big for its register tunnel has a socket of its own. Everything
//! here is safe code over `sockopt` and `nix`.

use std::io::{self, IoSlice};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use std::time::Duration;

use nix::sys::socket::{
    recv, sendmsg, sendto, setsockopt as nix_setsockopt, sockopt, ControlMessage, MsgFlags,
    SockaddrIn,
};
use nix::sys::time::{TimeVal, TimeValLike};

use super::sockopt::{bind_to_device, new_socket, set_buf, set_int, setsockopt};

/// IANA protocol number of PIM.
pub const IPPROTO_PIM: libc::c_int = 103;
/// ALL-PIM-ROUTERS (RFC 7761 §4.9).
pub const ALL_PIM_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 13);
const RCVBUF: usize = 256 * 1024;

fn mreqn(group: Ipv4Addr, local: Ipv4Addr, ifindex: u32) -> libc::ip_mreqn {
    libc::ip_mreqn {
        imr_multiaddr: libc::in_addr {
            s_addr: u32::from(group).to_be(),
        },
        imr_address: libc::in_addr {
            s_addr: u32::from(local).to_be(),
        },
        imr_ifindex: ifindex as i32,
    }
}

/// Open the PIM socket of one interface: bound to the device, member of
/// ALL-PIM-ROUTERS there, multicast sent out of it from `addr` with TTL 1
/// and not looped back (a router must not hear its own Hellos as a
/// neighbor's). Reads block for at most `read_timeout`, so that a reader
/// thread can notice it is no longer wanted.
pub fn open_pim_socket(
    ifname: &str,
    ifindex: u32,
    addr: Ipv4Addr,
    read_timeout: Duration,
) -> io::Result<OwnedFd> {
    let fd = new_socket(libc::AF_INET, libc::SOCK_RAW, IPPROTO_PIM)?;
    let b = fd.as_fd();
    bind_to_device(b, ifname)?;
    nix_setsockopt(
        &b,
        sockopt::ReceiveTimeout,
        &TimeVal::microseconds(read_timeout.as_micros().min(i64::MAX as u128) as i64),
    )
    .map_err(io::Error::from)?;
    // With an address in the request the kernel uses it as the source of
    // multicast sent through this socket.
    setsockopt(
        b,
        libc::IPPROTO_IP,
        libc::IP_MULTICAST_IF,
        &mreqn(Ipv4Addr::UNSPECIFIED, addr, ifindex),
    )?;
    set_int(b, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, 0)?;
    set_int(b, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, 1)?;
    // Unicast PIM (Register, Register-Stop) goes through
    // `send_pim_unicast`, which sets its own TTL per message; anything
    // else from this socket stays on the link.
    set_int(b, libc::IPPROTO_IP, libc::IP_TTL, 1)?;
    set_buf(b, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, RCVBUF)?;
    setsockopt(
        b,
        libc::IPPROTO_IP,
        libc::IP_ADD_MEMBERSHIP,
        &mreqn(ALL_PIM_ROUTERS, Ipv4Addr::UNSPECIFIED, ifindex),
    )?;
    Ok(fd)
}

/// Send one PIM message (the IP payload) to `dst`; the kernel adds the
/// IP header. Never blocks: a full send buffer is an error the caller
/// counts, as a lost Hello is repaired by the next one.
pub fn send_pim(fd: BorrowedFd<'_>, dst: Ipv4Addr, payload: &[u8]) -> io::Result<()> {
    let to = SockaddrIn::from(SocketAddrV4::new(dst, 0));
    sendto(fd.as_raw_fd(), payload, &to, MsgFlags::MSG_DONTWAIT)
        .map(drop)
        .map_err(io::Error::from)
}

/// Send one unicast PIM message (Register, Register-Stop) with IP TTL
/// `ttl`: it may cross routers to the RP or back to the DR, unlike the
/// link-local messages the socket's own TTL of 1 is for. The TTL rides
/// with the message (an `IP_TTL` control message), so the socket's
/// default is never changed under a concurrent send. With `src` the
/// message leaves from that address (an `IP_PKTINFO` control message
/// whose `ipi_spec_dst` the kernel takes as the source, routing still by
/// destination): the RP answers a Register from the address it was sent
/// to, which may sit on a loopback rather than on the interface the
/// route leaves by, and the DR recognises its RP by it (RFC 7761 §4.4.2).
/// The kernel refuses an address that is not ours. Never blocks.
pub fn send_pim_unicast(
    fd: BorrowedFd<'_>,
    src: Option<Ipv4Addr>,
    dst: Ipv4Addr,
    ttl: u8,
    payload: &[u8],
) -> io::Result<()> {
    let to = SockaddrIn::from(SocketAddrV4::new(dst, 0));
    let ttl = libc::c_int::from(ttl);
    let iov = [IoSlice::new(payload)];
    let info = src.map(|a| libc::in_pktinfo {
        ipi_ifindex: 0,
        ipi_spec_dst: libc::in_addr {
            s_addr: u32::from(a).to_be(),
        },
        ipi_addr: libc::in_addr { s_addr: 0 },
    });
    let mut cmsgs = vec![ControlMessage::Ipv4Ttl(&ttl)];
    if let Some(info) = &info {
        cmsgs.push(ControlMessage::Ipv4PacketInfo(info));
    }
    sendmsg(
        fd.as_raw_fd(),
        &iov,
        &cmsgs,
        MsgFlags::MSG_DONTWAIT,
        Some(&to),
    )
    .map(drop)
    .map_err(io::Error::from)
}

/// Open the socket the RP forwards decapsulated packets with on one
/// interface: `IPPROTO_RAW` (the caller writes the whole IP header, so
/// the source is the original sender's, not ours), bound to the device so
/// the kernel's route lookup for the group leaves through it, and not
/// looped back (our own workers and sockets must not see it again).
pub fn open_forward_socket(ifname: &str, ifindex: u32) -> io::Result<OwnedFd> {
    let fd = new_socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW)?;
    let b = fd.as_fd();
    bind_to_device(b, ifname)?;
    setsockopt(
        b,
        libc::IPPROTO_IP,
        libc::IP_MULTICAST_IF,
        &mreqn(Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, ifindex),
    )?;
    set_int(b, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, 0)?;
    Ok(fd)
}

/// Send one whole IPv4 packet (header included, TTL and checksum already
/// set by the caller) to `dst` through a socket of [`open_forward_socket`].
/// Never blocks: a full send buffer is a drop the caller counts.
pub fn send_forward(fd: BorrowedFd<'_>, dst: Ipv4Addr, packet: &[u8]) -> io::Result<()> {
    send_pim(fd, dst, packet)
}

/// Open the socket ICMP messages about register data leave by (RFC 7761
/// §4.4.1: Fragmentation Needed to a source whose packet the register
/// tunnel cannot carry): raw ICMP, routed by the kernel, which adds the
/// IP header with our address toward the destination as the source. Its
/// receive side is filtered shut, so it queues no copy of every ICMP
/// packet the host gets.
pub fn open_icmp_socket() -> io::Result<OwnedFd> {
    let fd = new_socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP)?;
    let drop_all = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    super::sockopt::attach_filter(fd.as_fd(), &drop_all)?;
    Ok(fd)
}

/// Send one ICMP message (checksum already set) to `dst`. Never blocks.
pub fn send_icmp(fd: BorrowedFd<'_>, dst: Ipv4Addr, message: &[u8]) -> io::Result<()> {
    send_pim(fd, dst, message)
}

/// A received packet: IP source and destination, and where the PIM
/// message starts in the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub offset: usize,
    pub len: usize,
}

/// Read one packet, waiting up to the socket's read timeout. `Ok(None)`:
/// something arrived that is not an IPv4 packet with a whole header
/// (dropped). `Err(WouldBlock)`: the timeout passed.
pub fn recv_pim(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<Received>> {
    let n = recv(fd.as_raw_fd(), buf, MsgFlags::empty()).map_err(io::Error::from)?;
    Ok(buf.get(..n).and_then(split_ip_header))
}

/// Where the payload of a raw IPv4 packet starts; `None` when the header
/// is not a whole IPv4 header. Raw IPv4 sockets hand the header to the
/// reader, options included.
pub fn split_ip_header(pkt: &[u8]) -> Option<Received> {
    let first = *pkt.first()?;
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < 20 || pkt.len() < ihl {
        return None;
    }
    let addr = |at: usize| -> Option<Ipv4Addr> {
        let b: [u8; 4] = pkt.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    };
    Some(Received {
        src: addr(12)?,
        dst: addr(16)?,
        offset: ihl,
        len: pkt.len() - ihl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_header_is_split_with_options_and_bad_headers_are_refused() {
        let mut p = vec![0u8; 24 + 3];
        p[0] = 0x46; // IPv4, 24-byte header (one option word)
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[224, 0, 0, 13]);
        let r = split_ip_header(&p).unwrap();
        assert_eq!(r.src, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(r.dst, ALL_PIM_ROUTERS);
        assert_eq!((r.offset, r.len), (24, 3));
        assert_eq!(split_ip_header(&p[..23]), None, "header longer than packet");
        p[0] = 0x44;
        assert_eq!(split_ip_header(&p), None, "IHL below 5");
        p[0] = 0x65;
        assert_eq!(split_ip_header(&p), None, "IPv6");
        assert_eq!(split_ip_header(&[]), None);
    }

    #[test]
    fn unicast_pim_leaves_with_the_ttl_it_asks_for_and_multicast_with_one() {
        if !crate::sys::has_cap_net_raw() {
            eprintln!("skipped: raw sockets need CAP_NET_RAW");
            return;
        }
        let lo = Ipv4Addr::LOCALHOST;
        let ifindex = nix::net::if_::if_nametoindex("lo").expect("lo's index");
        let rx = open_pim_socket("lo", ifindex, lo, Duration::from_millis(200)).expect("rx socket");
        let tx = open_pim_socket("lo", ifindex, lo, Duration::from_millis(200)).expect("tx socket");
        // A marker no other PIM traffic on lo carries.
        let marker: [u8; 8] = *b"\x25\x00mcrttl";
        send_pim_unicast(tx.as_fd(), None, lo, 64, &marker).expect("send");
        send_pim(tx.as_fd(), lo, &marker).expect("send with the socket's TTL");
        let mut ttls = Vec::new();
        let mut buf = [0u8; 256];
        let end = std::time::Instant::now() + Duration::from_secs(2);
        while ttls.len() < 2 && std::time::Instant::now() < end {
            let Ok(Some(r)) = recv_pim(rx.as_fd(), &mut buf) else {
                continue;
            };
            if buf.get(r.offset..r.offset + r.len) == Some(&marker[..]) {
                ttls.push(buf[8]);
            }
        }
        assert_eq!(ttls, [64, 1]);
    }

    #[test]
    fn unicast_pim_leaves_from_the_source_address_it_names() {
        if !crate::sys::has_cap_net_raw() {
            eprintln!("skipped: raw sockets need CAP_NET_RAW");
            return;
        }
        let lo = Ipv4Addr::LOCALHOST;
        // Local (all of 127/8 is), but not the address the route to
        // 127.0.0.1 would pick: only the explicit source explains it.
        let other = Ipv4Addr::new(127, 0, 0, 77);
        let ifindex = nix::net::if_::if_nametoindex("lo").expect("lo's index");
        let rx = open_pim_socket("lo", ifindex, lo, Duration::from_millis(200)).expect("rx socket");
        let tx = open_pim_socket("lo", ifindex, lo, Duration::from_millis(200)).expect("tx socket");
        let marker: [u8; 8] = *b"\x25\x00mcrsrc";
        send_pim_unicast(tx.as_fd(), Some(other), lo, 64, &marker).expect("send from 127.0.0.77");
        send_pim_unicast(tx.as_fd(), None, lo, 64, &marker).expect("send");
        let mut srcs = Vec::new();
        let mut buf = [0u8; 256];
        let end = std::time::Instant::now() + Duration::from_secs(2);
        while srcs.len() < 2 && std::time::Instant::now() < end {
            let Ok(Some(r)) = recv_pim(rx.as_fd(), &mut buf) else {
                continue;
            };
            if buf.get(r.offset..r.offset + r.len) == Some(&marker[..]) {
                srcs.push(r.src);
            }
        }
        assert_eq!(srcs, [other, lo]);
        // Not one of ours: the kernel refuses rather than spoofs.
        let foreign = Ipv4Addr::new(192, 0, 2, 99);
        assert!(send_pim_unicast(tx.as_fd(), Some(foreign), lo, 64, &marker).is_err());
    }
}
