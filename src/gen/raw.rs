//! mcrgen's fast sending mode (`send --raw`): whole Ethernet frames written
//! to an `AF_PACKET` socket on the egress interface, so the sender pays
//! neither UDP nor IP output (route, neighbour, fragmentation checks) per
//! datagram, and the queueing discipline is bypassed
//! (`PACKET_QDISC_BYPASS`). Benchmarks use it to offer a relay more than
//! its capacity from a core that also runs the receiver. The datagrams are
//! the same on the wire as the UDP mode's, except that the UDP checksum is
//! 0 ("none", RFC 768), which receivers accept without a check.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};

use crate::sys::sockopt::{bind, new_socket, set_int, zeroed};

/// Ethernet, IPv4 and UDP headers in front of each payload.
pub const HEADERS: usize = 14 + 20 + 8;

const PACKET_QDISC_BYPASS: libc::c_int = 20;

/// A packet socket bound to `interface` for sending only (protocol 0: it
/// receives nothing), with the queueing discipline bypassed where the
/// kernel allows.
pub fn open(interface: &str) -> io::Result<(OwnedFd, u32)> {
    let ifindex = super::sock::interface_index(interface)?;
    let fd = new_socket(libc::AF_PACKET, libc::SOCK_RAW, 0)?;
    let _ = set_int(fd.as_fd(), libc::SOL_PACKET, PACKET_QDISC_BYPASS, 1);
    let mut sll: libc::sockaddr_ll = zeroed();
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    bind(fd.as_fd(), &sll)?;
    Ok((fd, ifindex))
}

/// The interface's MAC address, from sysfs (`ip netns exec` mounts the
/// namespace's own); a locally administered stand-in if unreadable.
pub fn mac_of(interface: &str) -> [u8; 6] {
    let text =
        std::fs::read_to_string(format!("/sys/class/net/{interface}/address")).unwrap_or_default();
    let mut mac = [0x02, 0, 0, 0, 0, 0x01];
    let parts: Vec<u8> = text
        .trim()
        .split(':')
        .filter_map(|h| u8::from_str_radix(h, 16).ok())
        .collect();
    if parts.len() == 6 {
        mac.copy_from_slice(&parts);
    }
    mac
}

/// Fill `hdr` (at least [`HEADERS`] bytes) with the headers of a datagram
/// of `payload` bytes from `src` (port `sport`) to `group:port`, TTL `ttl`.
#[allow(clippy::too_many_arguments)]
pub fn write_headers(
    hdr: &mut [u8],
    src_mac: [u8; 6],
    src: Ipv4Addr,
    sport: u16,
    group: Ipv4Addr,
    port: u16,
    ttl: u8,
    payload: usize,
) {
    let g = group.octets();
    let dst_mac = if group.is_multicast() {
        // RFC 1112 section 6.4: 01:00:5e and the group's low 23 bits.
        [0x01, 0x00, 0x5e, g[1] & 0x7f, g[2], g[3]]
    } else {
        [0xff; 6]
    };
    hdr[0..6].copy_from_slice(&dst_mac);
    hdr[6..12].copy_from_slice(&src_mac);
    hdr[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut hdr[14..34];
    ip.fill(0);
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + 8 + payload) as u16).to_be_bytes());
    ip[6] = 0x40; // DF: the datagram fits the link, as a UDP socket's would
    ip[8] = ttl;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&g);
    let sum = ip_checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp = &mut hdr[34..42];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&port.to_be_bytes());
    udp[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
}

fn ip_checksum(h: &[u8]) -> u16 {
    let mut s: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_make_a_valid_multicast_datagram() {
        let mut h = [0u8; HEADERS + 64];
        let g: Ipv4Addr = "239.129.2.3".parse().unwrap();
        let s: Ipv4Addr = "10.0.0.1".parse().unwrap();
        write_headers(&mut h, [2, 0, 0, 0, 0, 9], s, 4000, g, 5000, 8, 64);
        assert_eq!(&h[0..6], &[0x01, 0x00, 0x5e, 0x01, 2, 3]);
        assert_eq!(&h[6..12], &[2, 0, 0, 0, 0, 9]);
        let ip = crate::wire::Ipv4::new_checked(&h[14..]).expect("a valid IPv4 header");
        assert_eq!(ip.src(), s);
        assert_eq!(ip.dst(), g);
        assert_eq!(ip.ttl(), 8);
        assert_eq!(ip.total_len(), 20 + 8 + 64);
        // A header with its checksum in place sums to 0xffff.
        assert_eq!(ip_checksum(&h[14..34]), 0);
        assert_eq!(u16::from_be_bytes([h[36], h[37]]), 5000);
        assert_eq!(u16::from_be_bytes([h[38], h[39]]), 8 + 64);
    }
}
