//! Packet formats as checked, zero-copy views over byte slices.
//!
//! Owns: Ethernet II (with one optional 802.1Q tag), IPv4 (RFC 791) and UDP
//! (RFC 768) views, the Internet checksum (RFC 1071) and its incremental
//! update (RFC 1624), and builders used by tests and the generator.
//!
//! Views are constructed with `new_checked`, which validates every length
//! field against the slice before any accessor can index it, so accessors
//! never panic on untrusted input.

use std::net::Ipv4Addr;

pub const ETH_HEADER_LEN: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const IPV4_MIN_HEADER_LEN: usize = 20;
pub const UDP_HEADER_LEN: usize = 8;
pub const IPPROTO_UDP: u8 = 17;

/// Why a frame could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The slice ends before the header (or the length it declares) does.
    Truncated,
    /// IP version is not 4.
    NotIpv4,
    /// IHL below 5, or total length below the header length.
    BadHeader,
    /// UDP length field disagrees with the IP payload.
    BadUdpLength,
}

/// Length of the `virtio_net_hdr` an AF_PACKET socket with
/// `PACKET_VNET_HDR` puts before every frame.
pub const VNET_HDR_LEN: usize = 10;
/// `gso_type`: several UDP datagrams of `gso_size` payload bytes each,
/// the last possibly shorter, sharing one set of headers (UDP GSO).
pub const VNET_GSO_UDP_L4: u8 = 5;
/// `flags`: the L4 checksum is left to offload (the sender's stack put only
/// the pseudo-header sum in the field), so it is not wrong, just not done.
pub const VNET_F_NEEDS_CSUM: u8 = 1;
/// `flags`: the kernel (or the NIC) has already verified the L4 checksum.
pub const VNET_F_DATA_VALID: u8 = 2;

/// The `virtio_net_hdr` the kernel prepends to each frame on a packet
/// socket with `PACKET_VNET_HDR` (Linux `include/uapi/linux/virtio_net.h`).
/// It says whether the frame is a GSO batch and how to split it. Fields
/// are in host byte order (the kernel writes them for this host).
/// The default is a plain frame: `gso_type` 0, no offload. Any type but
/// UDP GSO (e.g. legacy UFO, 3) carries one datagram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    /// Without the ECN bit (0x80).
    pub gso_type: u8,
    pub gso_size: u16,
}

impl VnetHdr {
    pub fn parse(buf: &[u8]) -> Result<VnetHdr, WireError> {
        if buf.len() < VNET_HDR_LEN {
            return Err(WireError::Truncated);
        }
        Ok(VnetHdr {
            flags: buf[0],
            gso_type: buf[1] & 0x7f,
            gso_size: u16::from_ne_bytes([buf[4], buf[5]]),
        })
    }

    /// Whether the UDP checksum field of this frame can be checked as it
    /// stands: not when offload has yet to compute it, not when the kernel
    /// has already checked it, and not in a GSO batch, whose one header
    /// stands for datagrams that each get their own checksum when split.
    pub fn udp_checksum_to_verify(&self) -> bool {
        self.flags & (VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID) == 0 && self.gso_type == 0
    }

    /// The header of a plain frame, as tests and generators prepend it.
    pub fn plain() -> [u8; VNET_HDR_LEN] {
        [0; VNET_HDR_LEN]
    }

    /// The header of a UDP GSO frame with `gso_size`-byte segments.
    pub fn udp_gso(gso_size: u16) -> [u8; VNET_HDR_LEN] {
        let mut h = [0u8; VNET_HDR_LEN];
        h[1] = VNET_GSO_UDP_L4;
        h[4..6].copy_from_slice(&gso_size.to_ne_bytes());
        h
    }
}

/// An Ethernet II frame, possibly carrying one 802.1Q tag.
#[derive(Clone, Copy, Debug)]
pub struct Ethernet<'a> {
    buf: &'a [u8],
    header_len: usize,
}

impl<'a> Ethernet<'a> {
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, WireError> {
        if buf.len() < ETH_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let outer = u16::from_be_bytes([buf[12], buf[13]]);
        let header_len = if outer == ETHERTYPE_VLAN {
            if buf.len() < ETH_HEADER_LEN + 4 {
                return Err(WireError::Truncated);
            }
            ETH_HEADER_LEN + 4
        } else {
            ETH_HEADER_LEN
        };
        Ok(Ethernet { buf, header_len })
    }

    pub fn dst(&self) -> [u8; 6] {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.buf[0..6]);
        m
    }

    pub fn src(&self) -> [u8; 6] {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.buf[6..12]);
        m
    }

    /// The VLAN id, if the frame is tagged.
    pub fn vlan(&self) -> Option<u16> {
        (self.header_len > ETH_HEADER_LEN)
            .then(|| u16::from_be_bytes([self.buf[14], self.buf[15]]) & 0x0fff)
    }

    /// The EtherType of the payload (inside the tag, if any).
    pub fn ethertype(&self) -> u16 {
        let o = self.header_len - 2;
        u16::from_be_bytes([self.buf[o], self.buf[o + 1]])
    }

    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.header_len..]
    }
}

/// An IPv4 header and the packet it heads.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4<'a> {
    buf: &'a [u8],
    header_len: usize,
    total_len: usize,
}

impl<'a> Ipv4<'a> {
    /// Check version, IHL and total length against the slice. Bytes beyond
    /// total length (Ethernet padding) are ignored.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, WireError> {
        if buf.len() < IPV4_MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if buf[0] >> 4 != 4 {
            return Err(WireError::NotIpv4);
        }
        let header_len = usize::from(buf[0] & 0x0f) * 4;
        if header_len < IPV4_MIN_HEADER_LEN {
            return Err(WireError::BadHeader);
        }
        let total_len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if total_len < header_len {
            return Err(WireError::BadHeader);
        }
        if buf.len() < total_len {
            return Err(WireError::Truncated);
        }
        Ok(Ipv4 {
            buf,
            header_len,
            total_len,
        })
    }

    pub fn header_len(&self) -> usize {
        self.header_len
    }

    pub fn total_len(&self) -> usize {
        self.total_len
    }

    pub fn ident(&self) -> u16 {
        u16::from_be_bytes([self.buf[4], self.buf[5]])
    }

    pub fn dont_fragment(&self) -> bool {
        self.buf[6] & 0x40 != 0
    }

    pub fn more_fragments(&self) -> bool {
        self.buf[6] & 0x20 != 0
    }

    /// Fragment offset in 8-byte units.
    pub fn frag_offset(&self) -> u16 {
        u16::from_be_bytes([self.buf[6] & 0x1f, self.buf[7]])
    }

    /// Any fragment: the first (MF set) or a later one (offset non-zero).
    pub fn is_fragment(&self) -> bool {
        self.more_fragments() || self.frag_offset() != 0
    }

    pub fn ttl(&self) -> u8 {
        self.buf[8]
    }

    pub fn protocol(&self) -> u8 {
        self.buf[9]
    }

    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.buf[10], self.buf[11]])
    }

    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.buf[12], self.buf[13], self.buf[14], self.buf[15])
    }

    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.buf[16], self.buf[17], self.buf[18], self.buf[19])
    }

    pub fn header_checksum_ok(&self) -> bool {
        checksum(&self.buf[..self.header_len]) == 0
    }

    /// The bytes after the header, up to total length.
    pub fn payload(&self) -> &'a [u8] {
        &self.buf[self.header_len..self.total_len]
    }
}

/// A UDP header and payload.
#[derive(Clone, Copy, Debug)]
pub struct Udp<'a> {
    buf: &'a [u8],
}

impl<'a> Udp<'a> {
    /// `buf` is the IP payload. The UDP length must fit in it; shorter is
    /// allowed (trailing bytes are ignored, as the RFC says).
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, WireError> {
        if buf.len() < UDP_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
        if len < UDP_HEADER_LEN || len > buf.len() {
            return Err(WireError::BadUdpLength);
        }
        Ok(Udp { buf: &buf[..len] })
    }

    pub fn src_port(&self) -> u16 {
        u16::from_be_bytes([self.buf[0], self.buf[1]])
    }

    pub fn dst_port(&self) -> u16 {
        u16::from_be_bytes([self.buf[2], self.buf[3]])
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.len() == UDP_HEADER_LEN
    }

    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.buf[6], self.buf[7]])
    }

    pub fn payload(&self) -> &'a [u8] {
        &self.buf[UDP_HEADER_LEN..]
    }

    /// Whether the checksum is right for a datagram from `src` to `dst`
    /// (RFC 768: over a pseudo-header, the UDP header and the payload). A
    /// zero checksum means the sender computed none, which IPv4 allows.
    pub fn checksum_ok(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.checksum() == 0
            || ones_sum(pseudo_header_sum(src, dst, self.buf.len()), self.buf) == 0xffff
    }
}

/// One's-complement sum of the UDP pseudo-header (RFC 768).
fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, udp_len: usize) -> u32 {
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&src.octets());
    pseudo[4..8].copy_from_slice(&dst.octets());
    pseudo[9] = IPPROTO_UDP;
    pseudo[10..12].copy_from_slice(&(udp_len as u16).to_be_bytes());
    ones_sum(0, &pseudo)
}

/// RFC 1071 Internet checksum of `data` (the one's complement of the one's
/// complement sum). Over a header that carries its own correct checksum the
/// result is 0.
pub fn checksum(data: &[u8]) -> u16 {
    !(ones_sum(0, data) as u16)
}

/// Decrement the TTL of the IPv4 header at the start of `pkt` in place and
/// patch its checksum incrementally (RFC 1624, eqn. 3). The caller has
/// checked the header with `Ipv4::new_checked` and that TTL > 1.
pub fn decrement_ttl(pkt: &mut [u8]) {
    let old = u16::from_be_bytes([pkt[8], pkt[9]]);
    pkt[8] -= 1;
    let new = u16::from_be_bytes([pkt[8], pkt[9]]);
    let hc = u16::from_be_bytes([pkt[10], pkt[11]]);
    // HC' = ~(~HC + ~m + m')
    let mut sum = u32::from(!hc) + u32::from(!old) + u32::from(new);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let hc2 = !(sum as u16);
    pkt[10..12].copy_from_slice(&hc2.to_be_bytes());
}

/// One's-complement sum of `data` (not yet complemented), folded to 16
/// bits, added to `sum`.
///
/// Every datagram a rule matches is summed once on ingress, so this is on
/// the per-packet path. It adds 32-bit words in host byte order into a
/// 64-bit accumulator (no carry can be lost below 2^32 words, and the
/// compiler turns the loop into vector adds) and folds once at the end:
/// since 2^16 ≡ 1 (mod 2^16 - 1), wider words give the same sum as 16-bit
/// ones, and a sum of byte-swapped words is the byte-swapped sum, so one
/// swap at the end stands for one per word (RFC 1071 §2(A), §2(B)).
fn ones_sum(sum: u32, data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(4);
    let mut acc: u64 = 0;
    for w in &mut words {
        acc += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
    let mut acc = u64::from(u16::from_be_bytes(fold16(acc).to_ne_bytes())) + u64::from(sum);
    match *words.remainder() {
        [a] => acc += u64::from(a) << 8,
        [a, b] => acc += u64::from(u16::from_be_bytes([a, b])),
        [a, b, c] => acc += u64::from(u16::from_be_bytes([a, b])) + (u64::from(c) << 8),
        _ => {}
    }
    u32::from(fold16(acc))
}

/// Fold a one's-complement sum to 16 bits.
fn fold16(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Make the UDP checksum of the IPv4/UDP packet in `pkt` valid (RFC 768,
/// pseudo-header included), recomputing it only if it is wrong. Returns
/// whether it had to be fixed.
///
/// Packets sent by a local process over a veth or tap arrive with
/// checksum offload still pending: the checksum field holds only the
/// pseudo-header sum. Forwarding such a packet verbatim (route mode) would
/// put a bad checksum on the wire. Bytes from a real wire always pass the
/// check and are left alone; a zero checksum ("none", allowed over IPv4)
/// is kept.
pub fn fix_udp_checksum(pkt: &mut [u8]) -> bool {
    let Ok(ip) = Ipv4::new_checked(pkt) else {
        return false;
    };
    let (hl, total) = (ip.header_len(), ip.total_len());
    if ip.protocol() != IPPROTO_UDP || total < hl + UDP_HEADER_LEN {
        return false;
    }
    let udp_len = usize::from(u16::from_be_bytes([pkt[hl + 4], pkt[hl + 5]]));
    if udp_len < UDP_HEADER_LEN || hl + udp_len > total {
        return false;
    }
    let stored = u16::from_be_bytes([pkt[hl + 6], pkt[hl + 7]]);
    if stored == 0 {
        return false;
    }
    let base = pseudo_header_sum(ip.src(), ip.dst(), udp_len);
    if ones_sum(base, &pkt[hl..hl + udp_len]) == 0xffff {
        return false;
    }
    pkt[hl + 6] = 0;
    pkt[hl + 7] = 0;
    let mut c = !(ones_sum(base, &pkt[hl..hl + udp_len]) as u16);
    if c == 0 {
        // 0 means "no checksum"; a computed zero is sent as all ones.
        c = 0xffff;
    }
    pkt[hl + 6..hl + 8].copy_from_slice(&c.to_be_bytes());
    true
}

/// Fields of a UDP/IPv4 packet to build.
#[derive(Clone, Debug)]
pub struct UdpPacketSpec {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub ttl: u8,
    pub ident: u16,
    /// Raw flags+fragment offset field (e.g. 0x2000 = MF).
    pub frag: u16,
    pub protocol: u8,
}

impl UdpPacketSpec {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, src_port: u16, dst_port: u16) -> Self {
        UdpPacketSpec {
            src,
            dst,
            src_port,
            dst_port,
            ttl: 64,
            ident: 0,
            frag: 0x4000,
            protocol: IPPROTO_UDP,
        }
    }

    /// An IPv4 packet (no link header) with a UDP header and `payload`,
    /// correct IP checksum, UDP checksum 0 (allowed over IPv4).
    pub fn build(&self, payload: &[u8]) -> Vec<u8> {
        let udp_len = UDP_HEADER_LEN + payload.len();
        let total = IPV4_MIN_HEADER_LEN + udp_len;
        let mut p = Vec::with_capacity(total);
        p.push(0x45);
        p.push(0);
        p.extend_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&self.ident.to_be_bytes());
        p.extend_from_slice(&self.frag.to_be_bytes());
        p.push(self.ttl);
        p.push(self.protocol);
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&self.src.octets());
        p.extend_from_slice(&self.dst.octets());
        let c = checksum(&p[..IPV4_MIN_HEADER_LEN]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(&self.src_port.to_be_bytes());
        p.extend_from_slice(&self.dst_port.to_be_bytes());
        p.extend_from_slice(&(udp_len as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        p
    }

    /// Like `build`, with the UDP checksum computed as a sender's stack
    /// (or its NIC) puts it on the wire.
    pub fn build_checksummed(&self, payload: &[u8]) -> Vec<u8> {
        let mut p = self.build(payload);
        let udp = &p[IPV4_MIN_HEADER_LEN..];
        let mut c = !(ones_sum(pseudo_header_sum(self.src, self.dst, udp.len()), udp) as u16);
        if c == 0 {
            c = 0xffff;
        }
        p[IPV4_MIN_HEADER_LEN + 6..IPV4_MIN_HEADER_LEN + 8].copy_from_slice(&c.to_be_bytes());
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt() -> Vec<u8> {
        UdpPacketSpec::new(
            "10.0.0.1".parse().unwrap(),
            "239.1.1.1".parse().unwrap(),
            1234,
            5000,
        )
        .build(b"hello")
    }

    #[test]
    fn ipv4_udp_round_trip() {
        let p = pkt();
        let ip = Ipv4::new_checked(&p).unwrap();
        assert_eq!(ip.header_len(), 20);
        assert_eq!(ip.total_len(), 33);
        assert_eq!(ip.src(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(ip.dst(), Ipv4Addr::new(239, 1, 1, 1));
        assert_eq!(ip.ttl(), 64);
        assert!(ip.dont_fragment());
        assert!(!ip.is_fragment());
        assert!(ip.header_checksum_ok());
        let udp = Udp::new_checked(ip.payload()).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port()), (1234, 5000));
        assert_eq!(udp.payload(), b"hello");
    }

    #[test]
    fn ethernet_padding_and_vlan() {
        let mut f = vec![0xffu8; 12];
        f.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        f.extend_from_slice(&[0x20, 0x0a]);
        f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        f.extend_from_slice(&pkt());
        f.extend_from_slice(&[0u8; 13]); // padding beyond total length
        let eth = Ethernet::new_checked(&f).unwrap();
        assert_eq!(eth.vlan(), Some(10));
        assert_eq!(eth.ethertype(), ETHERTYPE_IPV4);
        let ip = Ipv4::new_checked(eth.payload()).unwrap();
        assert_eq!(Udp::new_checked(ip.payload()).unwrap().payload(), b"hello");
    }

    #[test]
    fn malformed_headers_are_errors_not_panics() {
        let p = pkt();
        assert_eq!(
            Ipv4::new_checked(&p[..10]).unwrap_err(),
            WireError::Truncated
        );
        let mut v6 = p.clone();
        v6[0] = 0x65;
        assert_eq!(Ipv4::new_checked(&v6).unwrap_err(), WireError::NotIpv4);
        let mut ihl = p.clone();
        ihl[0] = 0x44;
        assert_eq!(Ipv4::new_checked(&ihl).unwrap_err(), WireError::BadHeader);
        let mut long = p.clone();
        long[2..4].copy_from_slice(&200u16.to_be_bytes());
        assert_eq!(Ipv4::new_checked(&long).unwrap_err(), WireError::Truncated);
        let mut big_ihl = p.clone();
        big_ihl[0] = 0x4f; // 60-byte header > 33 total
        assert_eq!(
            Ipv4::new_checked(&big_ihl).unwrap_err(),
            WireError::BadHeader
        );
        let ip = Ipv4::new_checked(&p).unwrap();
        let mut udp = ip.payload().to_vec();
        udp[4..6].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(Udp::new_checked(&udp).unwrap_err(), WireError::BadUdpLength);
        udp[4..6].copy_from_slice(&3u16.to_be_bytes());
        assert_eq!(Udp::new_checked(&udp).unwrap_err(), WireError::BadUdpLength);
        assert_eq!(
            Ethernet::new_checked(&[0u8; 5]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn ttl_decrement_keeps_checksum_valid() {
        for ttl in [2u8, 64, 255] {
            let mut spec = UdpPacketSpec::new(
                "192.0.2.7".parse().unwrap(),
                "224.0.0.251".parse().unwrap(),
                5353,
                5353,
            );
            spec.ttl = ttl;
            spec.ident = 0xbeef;
            let mut p = spec.build(&[1, 2, 3]);
            decrement_ttl(&mut p);
            let ip = Ipv4::new_checked(&p).unwrap();
            assert_eq!(ip.ttl(), ttl - 1);
            assert!(ip.header_checksum_ok(), "ttl {ttl}");
        }
    }

    #[test]
    fn udp_checksum_is_fixed_only_when_wrong() {
        let mut p = pkt();
        // Our builder leaves the checksum 0 ("none"): kept as is.
        assert!(!fix_udp_checksum(&mut p));
        // A pending-offload packet: only the pseudo-header sum is there.
        p[26] = 0x12;
        p[27] = 0x34;
        assert!(fix_udp_checksum(&mut p));
        let good = u16::from_be_bytes([p[26], p[27]]);
        assert_ne!(good, 0);
        // Now valid: a second pass leaves it alone.
        assert!(!fix_udp_checksum(&mut p));
        assert_eq!(u16::from_be_bytes([p[26], p[27]]), good);
        // Verify independently: the sum over pseudo-header + UDP is all ones.
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&p[12..20]);
        pseudo.extend_from_slice(&[0, 17, 0, 13]);
        pseudo.extend_from_slice(&p[20..]);
        assert_eq!(checksum(&pseudo), 0);
    }

    /// RFC 1071 as written: 16-bit words, folded as they go.
    fn reference_sum(data: &[u8]) -> u32 {
        let mut sum: u32 = 0;
        for c in data.chunks(2) {
            let w = u32::from(c[0]) << 8 | c.get(1).map_or(0, |b| u32::from(*b));
            sum += w;
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum
    }

    #[test]
    fn wide_sum_matches_the_rfc_1071_sum_at_every_length() {
        let mut x: u32 = 7;
        let data: Vec<u8> = (0..3000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        for len in (0..64).chain([1471, 1472, 1473, 2999, 3000]) {
            assert_eq!(
                ones_sum(0, &data[..len]),
                reference_sum(&data[..len]),
                "len {len}"
            );
        }
        // All ones everywhere: the case where carries pile up the most.
        let ff = vec![0xffu8; 65_535];
        assert_eq!(ones_sum(0, &ff), reference_sum(&ff));
    }

    #[test]
    fn udp_checksum_is_verified_with_its_pseudo_header() {
        let spec = UdpPacketSpec::new(
            "10.0.0.1".parse().unwrap(),
            "239.1.1.1".parse().unwrap(),
            1234,
            5000,
        );
        for payload in [&b""[..], b"odd", b"even", &[0xab; 1400]] {
            let p = spec.build_checksummed(payload);
            let ip = Ipv4::new_checked(&p).unwrap();
            let udp = Udp::new_checked(ip.payload()).unwrap();
            assert_ne!(udp.checksum(), 0);
            assert!(udp.checksum_ok(ip.src(), ip.dst()));
            // The pseudo-header counts: the same bytes to another group fail.
            assert!(!udp.checksum_ok(ip.src(), "239.1.1.2".parse().unwrap()));
            // One flipped payload bit fails.
            let mut bad = p.clone();
            let last = bad.len() - 1;
            bad[last] ^= 0x10;
            let ip = Ipv4::new_checked(&bad).unwrap();
            let udp = Udp::new_checked(ip.payload()).unwrap();
            assert!(!udp.checksum_ok(ip.src(), ip.dst()));
        }
        // Zero is "no checksum", not a wrong one.
        let p = spec.build(b"none");
        let ip = Ipv4::new_checked(&p).unwrap();
        assert!(Udp::new_checked(ip.payload())
            .unwrap()
            .checksum_ok(ip.src(), ip.dst()));
    }

    #[test]
    fn vnet_flags_say_when_the_udp_checksum_can_be_judged() {
        let mut h = VnetHdr::parse(&VnetHdr::plain()).unwrap();
        assert!(h.udp_checksum_to_verify());
        h.flags = VNET_F_NEEDS_CSUM;
        assert!(!h.udp_checksum_to_verify(), "offload pending");
        h.flags = VNET_F_DATA_VALID;
        assert!(!h.udp_checksum_to_verify(), "kernel checked it");
        let g = VnetHdr::parse(&VnetHdr::udp_gso(1000)).unwrap();
        assert!(!g.udp_checksum_to_verify(), "GSO batch");
    }

    #[test]
    fn fragments_are_recognised() {
        let mut spec = UdpPacketSpec::new(
            "10.0.0.1".parse().unwrap(),
            "239.1.1.1".parse().unwrap(),
            1,
            2,
        );
        spec.frag = 0x2000;
        let p = spec.build(b"x");
        assert!(Ipv4::new_checked(&p).unwrap().is_fragment());
        spec.frag = 0x0010;
        let p = spec.build(b"x");
        let ip = Ipv4::new_checked(&p).unwrap();
        assert!(ip.is_fragment());
        assert_eq!(ip.frag_offset(), 16);
    }
}
