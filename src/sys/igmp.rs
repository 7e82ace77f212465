//! The IGMP querier's two sockets on one interface (RFC 2236 §2, RFC 3376
//! §4 say what they must carry), and a host's (the input groups' reporter,
//! RFC 3376 §5), which differs only in not asking for all multicast.
//!
//! Receiving: an `AF_PACKET`/`SOCK_DGRAM` socket bound to the interface in
//! all-multicast mode, with a BPF filter that keeps IP protocol 2. A raw
//! `IPPROTO_IGMP` socket would only see reports for groups this host joined
//! unless it owned the kernel's multicast routing socket, which MCR does not
//! take. Our own transmissions are not delivered (`PACKET_IGNORE_OUTGOING`).
//!
//! Sending: a raw `IPPROTO_IGMP` socket with the Router Alert option, TTL 1,
//! bound to the interface and to its address (the source of every query).
//!
//! [`parse_ipv4`] splits what the packet socket reads into source,
//! destination and IGMP payload without trusting any length in it.
//!
//! The IGMP proxy also watches its downstream links for multicast data
//! from local sources (RFC 4605 §4.2: such data goes upstream):
//! [`open_data_rx`] is the same kind of packet socket with a filter that
//! keeps routable multicast other than IGMP, cut to its IP header, with a
//! small buffer: it only has to learn which (S,G) are active, so what
//! overflows the buffer is not missed.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use super::bpf::SockFilter;
use super::sockopt::{
    self, bind, bind_to_device, cvt, new_socket, recv_nonblocking, set_int, setsockopt, zeroed,
};

/// RFC 2113 Router Alert: type 148, length 4, value 0.
const ROUTER_ALERT: [u8; 4] = [0x94, 0x04, 0x00, 0x00];
/// Receive buffer of the packet socket, bytes.
pub const IGMP_RCVBUF: usize = 4 << 20;
/// Not in every libc release yet (Linux 4.20+).
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// Keep IPv4 packets whose protocol is IGMP; with `SOCK_DGRAM` the
/// program sees the IP header at offset 0.
fn igmp_filter() -> [SockFilter; 4] {
    const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let f = |code, jt, jf, k| SockFilter { code, jt, jf, k };
    [
        f(LD_B_ABS, 0, 0, 9),
        f(JEQ_K, 0, 1, libc::IPPROTO_IGMP as u32),
        f(RET_K, 0, 0, 0xffff),
        f(RET_K, 0, 0, 0),
    ]
}

/// Keep IPv4 packets to 224.0.1.0-239.255.255.255 that are not IGMP
/// (link-local 224.0.0.x is never forwarded, RFC 5771), first
/// `DATA_SNAP` bytes only.
fn data_filter() -> [SockFilter; 10] {
    const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
    const AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let f = |code, jt, jf, k| SockFilter { code, jt, jf, k };
    // Jump offsets count the instructions skipped; 9 is the reject.
    [
        f(LD_B_ABS, 0, 0, 9),
        f(JEQ_K, 7, 0, libc::IPPROTO_IGMP as u32),
        f(LD_B_ABS, 0, 0, 16),
        f(JGE_K, 0, 5, 224),
        f(JGT_K, 4, 0, 239),
        f(LD_W_ABS, 0, 0, 16),
        f(AND_K, 0, 0, 0xffff_ff00),
        f(JEQ_K, 1, 0, 0xe000_0000),
        f(RET_K, 0, 0, DATA_SNAP as u32),
        f(RET_K, 0, 0, 0),
    ]
}

/// Bytes of each data packet [`open_data_rx`] delivers: an IPv4 header.
pub const DATA_SNAP: usize = 60;
/// Receive buffer of the data socket, bytes.
const DATA_RCVBUF: usize = 64 << 10;

/// The receiving socket: non-blocking, every IGMP packet on `ifindex`.
pub fn open_igmp_rx(ifindex: u32) -> io::Result<OwnedFd> {
    open_rx(ifindex, &igmp_filter(), IGMP_RCVBUF, true)
}

/// A host's receiving socket: the IGMP packets that reach `ifindex`
/// through its multicast filter as it is (all-hosts, and the groups
/// joined), without putting the interface in all-multicast mode. A host
/// needs only the queries, which go to those addresses.
pub fn open_igmp_host_rx(ifindex: u32) -> io::Result<OwnedFd> {
    open_rx(ifindex, &igmp_filter(), IGMP_RCVBUF, false)
}

/// Headers of the multicast data on `ifindex` (see the module doc), in
/// all-multicast mode: a source's group is joined by nobody yet.
pub fn open_data_rx(ifindex: u32) -> io::Result<OwnedFd> {
    open_rx(ifindex, &data_filter(), DATA_RCVBUF, true)
}

/// The source and group of a multicast packet [`open_data_rx`] read;
/// `None` unless it starts with an IPv4 header to a multicast group.
pub fn data_source_group(pkt: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let h = pkt.get(..20)?;
    if h[0] >> 4 != 4 {
        return None;
    }
    let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
    let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
    (dst.is_multicast() && !src.is_multicast()).then_some((src, dst))
}

fn open_rx(
    ifindex: u32,
    filter: &[SockFilter],
    rcvbuf: usize,
    allmulti: bool,
) -> io::Result<OwnedFd> {
    let proto = (libc::ETH_P_IP as u16).to_be();
    let fd = new_socket(
        libc::AF_PACKET,
        libc::SOCK_DGRAM | libc::SOCK_NONBLOCK,
        libc::c_int::from(proto),
    )?;
    // The filter goes on before the bind, so nothing else is queued.
    sockopt::attach_filter(fd.as_fd(), filter)?;
    let mut sll: libc::sockaddr_ll = zeroed();
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    bind(fd.as_fd(), &sll)?;
    if allmulti {
        let mut mreq: libc::packet_mreq = zeroed();
        mreq.mr_ifindex = ifindex as i32;
        mreq.mr_type = libc::PACKET_MR_ALLMULTI as u16;
        setsockopt(
            fd.as_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &mreq,
        )?;
    }
    // Room for the burst of reports that answers a general query on a
    // LAN with many members (best effort: without privilege the sysctl
    // limit applies).
    let _ = sockopt::set_buf(fd.as_fd(), libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, rcvbuf);
    // Older kernels lack the option; the protocol core also drops packets
    // from the interface's own address, so this is an optimisation.
    let _ = set_int(fd.as_fd(), libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1);
    Ok(fd)
}

/// The sending socket for interface `ifname`, queries from `src`.
pub fn open_igmp_tx(ifname: &str, ifindex: u32, src: Ipv4Addr) -> io::Result<OwnedFd> {
    let fd = new_socket(
        libc::AF_INET,
        libc::SOCK_RAW | libc::SOCK_NONBLOCK,
        libc::IPPROTO_IGMP,
    )?;
    bind_to_device(fd.as_fd(), ifname)?;
    let mut sin: libc::sockaddr_in = zeroed();
    sin.sin_family = libc::AF_INET as u16;
    sin.sin_addr.s_addr = u32::from(src).to_be();
    bind(fd.as_fd(), &sin)?;
    setsockopt(
        fd.as_fd(),
        libc::IPPROTO_IP,
        libc::IP_OPTIONS,
        &ROUTER_ALERT,
    )?;
    set_int(fd.as_fd(), libc::IPPROTO_IP, libc::IP_TTL, 1)?;
    set_int(fd.as_fd(), libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, 1)?;
    set_int(fd.as_fd(), libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, 0)?;
    let mut mreq: libc::ip_mreqn = zeroed();
    mreq.imr_ifindex = ifindex as i32;
    mreq.imr_address.s_addr = u32::from(src).to_be();
    setsockopt(fd.as_fd(), libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &mreq)?;
    Ok(fd)
}

/// Send one IGMP message (the kernel adds the IP header) to `dst`.
pub fn send_igmp(fd: &OwnedFd, dst: Ipv4Addr, payload: &[u8]) -> io::Result<()> {
    let mut sin: libc::sockaddr_in = zeroed();
    sin.sin_family = libc::AF_INET as u16;
    sin.sin_addr.s_addr = u32::from(dst).to_be();
    // SAFETY: `payload` and `sin` are live for the call and the lengths
    // given are theirs; the kernel copies both.
    cvt(unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            payload.as_ptr().cast(),
            payload.len(),
            0,
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    } as libc::c_int)
    .map(drop)
}

/// Wait up to `timeout` for a packet on the non-blocking `fd` and read it
/// into `buf`: `Ok(None)` when none came (or a signal interrupted the
/// wait), so the caller can check whether it should stop.
pub fn recv_within(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    timeout: Duration,
) -> io::Result<Option<usize>> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pfd` is one live `pollfd` and the count passed is 1; the
    // kernel writes only its `revents`.
    match cvt(unsafe { libc::poll(&mut pfd, 1, ms) }) {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(None),
        Err(e) => return Err(e),
    }
    match recv_nonblocking(fd, buf) {
        Ok(n) => Ok(Some(n)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Source, destination and payload of an IPv4 packet as the packet socket
/// delivers it; `None` for anything that is not a well-formed IPv4 header
/// (the payload is cut to the header's total length, which link padding
/// may exceed).
pub fn parse_ipv4(pkt: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, &[u8])> {
    let first = *pkt.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < 20 || pkt.len() < ihl {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    if total < ihl || total > pkt.len() {
        return None;
    }
    let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    let dst = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
    Some((src, dst, &pkt[ihl..total]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(ihl_words: u8, total: u16, body: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; usize::from(ihl_words.max(5)) * 4];
        p[0] = 0x40 | ihl_words;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[9] = 2;
        p[12..16].copy_from_slice(&[10, 0, 0, 2]);
        p[16..20].copy_from_slice(&[224, 0, 0, 22]);
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn ip_header_with_router_alert_is_skipped_and_padding_cut() {
        let mut p = packet(6, 24 + 8, &[0x16, 0, 0, 0, 239, 1, 1, 1]);
        p.extend_from_slice(&[0; 14]); // Ethernet minimum-frame padding
        let (s, d, body) = parse_ipv4(&p).unwrap();
        assert_eq!(s, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(d, Ipv4Addr::new(224, 0, 0, 22));
        assert_eq!(body, &[0x16, 0, 0, 0, 239, 1, 1, 1]);
    }

    #[test]
    fn the_data_watch_keeps_routable_multicast_headers_and_nothing_else() {
        let run = |p: &[u8]| super::super::bpf::tests::run_bpf_on(&data_filter(), p, 0, 0x0800, 1);
        let to = |proto: u8, dst: [u8; 4]| {
            let mut p = packet(5, 28, &[0; 8]);
            p[9] = proto;
            p[16..20].copy_from_slice(&dst);
            p
        };
        let udp = libc::IPPROTO_UDP as u8;
        // UDP to 239.1.1.1 and to 224.0.1.1: kept, cut to a header.
        assert_eq!(run(&to(udp, [239, 1, 1, 1])), DATA_SNAP as u32);
        assert_eq!(run(&to(udp, [224, 0, 1, 1])), DATA_SNAP as u32);
        // IGMP, link-local 224.0.0.x, unicast, 240/4: dropped.
        assert_eq!(run(&to(2, [239, 1, 1, 1])), 0);
        assert_eq!(run(&to(udp, [224, 0, 0, 251])), 0);
        assert_eq!(run(&to(udp, [10, 0, 0, 1])), 0);
        assert_eq!(run(&to(udp, [240, 0, 0, 1])), 0);
        // The IGMP socket keeps the IGMP one only.
        let igmp = |p: &[u8]| super::super::bpf::tests::run_bpf_on(&igmp_filter(), p, 0, 0x0800, 1);
        assert_ne!(igmp(&to(2, [224, 0, 0, 22])), 0);
        assert_eq!(igmp(&to(udp, [239, 1, 1, 1])), 0);

        let p = to(udp, [239, 1, 1, 1]);
        assert_eq!(
            data_source_group(&p),
            Some((Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(239, 1, 1, 1)))
        );
        for n in 0..20 {
            assert_eq!(data_source_group(&p[..n]), None, "prefix {n}");
        }
        assert_eq!(data_source_group(&to(udp, [10, 0, 0, 1])), None);
    }

    #[test]
    fn every_truncation_and_bad_header_is_refused_without_panic() {
        let p = packet(5, 28, &[0x11, 0, 0, 0, 0, 0, 0, 0]);
        for n in 0..p.len() {
            assert_eq!(parse_ipv4(&p[..n]), None, "prefix {n}");
        }
        assert!(parse_ipv4(&p).is_some());
        assert_eq!(parse_ipv4(&packet(4, 28, &[0; 12])), None, "IHL below 5");
        assert_eq!(parse_ipv4(&packet(5, 19, &[0; 8])), None, "total < IHL");
        let mut v6 = p.clone();
        v6[0] = 0x65;
        assert_eq!(parse_ipv4(&v6), None);
    }
}
