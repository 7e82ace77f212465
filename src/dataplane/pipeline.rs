//! The per-packet decision: a pure function from (frame, table) to the list
//! of sends, plus counters. No I/O, no clock, no allocation once the send
//! list has grown to the table's widest fan-out.
//!
//! Input frames are what a cooked (`SOCK_DGRAM`) AF_PACKET socket bound to
//! `ETH_P_IP` delivers: the IPv4 packet without a link header, so Ethernet,
//! VLAN, tun and WireGuard interfaces look the same.
//!
//! Drops, each counted: truncated or malformed IPv4/UDP (RFC 791/768
//! length and IHL checks), a wrong IPv4 header checksum (RFC 791 §3.1,
//! RFC 1812 §5.2.2), fragments (no reassembly: a relay that waited for
//! fragments would add latency and state for a case the sender can avoid),
//! IPv4 that is not UDP, UDP with TTL 0 (RFC 1812 §5.3.1), UDP that no rule
//! wants, and matched UDP whose checksum is wrong (RFC 768, RFC 1122
//! §4.1.3.4). Republishing copies the payload into a fresh datagram with a
//! fresh checksum, so a corrupted payload that got past here would leave
//! looking valid.
//!
//! The UDP checksum is judged only where it means something: not when the
//! virtio_net_hdr says offload has yet to compute it (a local sender over a
//! veth), nor when the kernel has already checked it, nor in a GSO batch.
//! It is summed only for datagrams a rule matched, so unwanted traffic costs
//! nothing more than before.
//!
//! Route-mode outputs of a packet whose TTL would reach 0 are skipped
//! (RFC 1812 §5.3.1); a routed packet whose UDP checksum was left to offload
//! by a local sender gets a valid one (`wire::fix_udp_checksum`).

use std::net::Ipv4Addr;

use crate::ipc::{FrameFormat, WorkerCounters};
use crate::rule::OutputMode;
use crate::wire::{self, Ipv4, Udp, IPPROTO_UDP};

use super::table::Table;

/// One datagram to hand to an egress socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Send {
    pub egress: u32,
    pub dst: Ipv4Addr,
    /// Destination port (0 in route mode: raw sockets have none).
    pub port: u16,
    /// The bytes to send: `frame[offset..offset + len]`. The UDP payload
    /// in republish mode, the whole IP packet in route mode.
    pub offset: u32,
    pub len: u32,
    pub mode: OutputMode,
    /// The rule's slot and the output's index, for error accounting.
    pub slot: u32,
    pub output: u16,
}

/// What happened to a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Matched the rule in `slot`; the sends are in the send list.
    Forward {
        slot: u32,
    },
    Malformed,
    /// The IPv4 header checksum is wrong.
    BadIpChecksum,
    /// A matched datagram's UDP checksum is wrong.
    BadUdpChecksum,
    /// UDP with TTL 0.
    TtlZero,
    Fragment,
    NotUdp,
    NoMatch,
}

/// Decide what to do with one frame. `frame` starts with the
/// `virtio_net_hdr` (`wire::VNET_HDR_LEN` bytes) the ingress socket puts
/// before every IPv4 packet; `received` is the length the kernel reported,
/// which exceeds `frame.len()` when the buffer was too small (the tail is
/// gone, so the frame is malformed).
///
/// A UDP GSO frame (a batch of datagrams a local sender handed the kernel
/// in one go, seen before segmentation on virtual interfaces) is split
/// into its datagrams, and each is relayed like any other.
///
/// `frame` is mutable because route-mode outputs forward the packet itself
/// with its TTL decremented in place.
pub fn process(
    frame: &mut [u8],
    received: usize,
    fmt: FrameFormat,
    table: &mut Table,
    sends: &mut Vec<Send>,
    c: &mut WorkerCounters,
) -> Verdict {
    sends.clear();
    c.recv += 1;
    let h = fmt.ip_offset();
    c.recv_bytes += received.saturating_sub(h) as u64;
    if received > frame.len() || received < h {
        c.malformed += 1;
        return Verdict::Malformed;
    }
    let frame = &mut frame[..received];
    let vnet = if fmt.vnet {
        match wire::VnetHdr::parse(frame) {
            Ok(v) => v,
            Err(_) => {
                c.malformed += 1;
                return Verdict::Malformed;
            }
        }
    } else {
        wire::VnetHdr::default()
    };
    let (src, dst, ttl, total_len, dport, udp_payload_len, udp_payload_off) = {
        let ip = match Ipv4::new_checked(&frame[h..]) {
            Ok(ip) => ip,
            Err(_) => {
                c.malformed += 1;
                return Verdict::Malformed;
            }
        };
        // Before anything reads a header field that a corrupted bit may
        // have changed (the fragment bits, the protocol, the addresses).
        if !ip.header_checksum_ok() {
            c.ip_checksum_errors += 1;
            return Verdict::BadIpChecksum;
        }
        if ip.is_fragment() {
            c.fragments += 1;
            return Verdict::Fragment;
        }
        if ip.protocol() != IPPROTO_UDP {
            c.not_udp += 1;
            return Verdict::NotUdp;
        }
        let udp = match Udp::new_checked(ip.payload()) {
            Ok(u) => u,
            Err(_) => {
                c.malformed += 1;
                return Verdict::Malformed;
            }
        };
        if ip.ttl() == 0 {
            c.ttl_zero += 1;
            return Verdict::TtlZero;
        }
        (
            ip.src(),
            ip.dst(),
            ip.ttl(),
            ip.total_len(),
            udp.dst_port(),
            udp.len() - wire::UDP_HEADER_LEN,
            h + ip.header_len() + wire::UDP_HEADER_LEN,
        )
    };
    // Without a virtio_net_hdr (cooked sockets on other link types) the
    // kernel does not say whether offload is pending; such links carry
    // frames that crossed a wire, whose checksums are complete.
    // (`vnet` is then the default header, which asks for the check.)
    let verify_udp = vnet.udp_checksum_to_verify();
    // Datagrams in this frame: one, or a GSO batch of `gso_size` each.
    let seg = match vnet.gso_type {
        wire::VNET_GSO_UDP_L4
            if vnet.gso_size > 0 && udp_payload_len > usize::from(vnet.gso_size) =>
        {
            usize::from(vnet.gso_size)
        }
        _ => udp_payload_len.max(1),
    };
    let nseg = udp_payload_len.div_ceil(seg).max(1);
    let Some(slot) = table.lookup(src, dst, dport) else {
        c.no_match += nseg as u64;
        return Verdict::NoMatch;
    };
    let Some(entry) = table.entry_mut(slot) else {
        c.no_match += nseg as u64;
        return Verdict::NoMatch;
    };
    if verify_udp {
        let udp_off = udp_payload_off - wire::UDP_HEADER_LEN;
        let udp_end = udp_payload_off + udp_payload_len;
        // Re-viewed rather than kept from the parse above: that view
        // borrows `frame`, which route mode writes to below.
        let ok = Udp::new_checked(&frame[udp_off..udp_end])
            .map(|u| u.checksum_ok(src, dst))
            .unwrap_or(false);
        if !ok {
            c.udp_checksum_errors += 1;
            return Verdict::BadUdpChecksum;
        }
    }
    if nseg > 1 {
        c.gso_frames += 1;
    }
    c.matched += nseg as u64;
    entry.packets += nseg as u64;
    entry.bytes += udp_payload_len as u64;
    entry.dirty = true;
    let mut routed = false;
    let mut ttl_counted = false;
    for (i, out) in entry.rule.outputs.iter().enumerate() {
        match out.mode {
            OutputMode::Republish => {
                let port = if out.port == 0 { dport } else { out.port };
                for k in 0..nseg {
                    let off = k * seg;
                    let len = seg.min(udp_payload_len - off);
                    sends.push(Send {
                        egress: out.egress,
                        dst: out.group,
                        port,
                        offset: (udp_payload_off + off) as u32,
                        len: len as u32,
                        mode: OutputMode::Republish,
                        slot,
                        output: i as u16,
                    });
                }
                if let Some(oc) = entry.outputs.get_mut(i) {
                    oc.packets += nseg as u64;
                    oc.bytes += udp_payload_len as u64;
                }
            }
            OutputMode::Route => {
                if nseg > 1 {
                    c.route_gso_skipped += nseg as u64;
                    continue;
                }
                if ttl <= 1 {
                    if !ttl_counted {
                        c.ttl_expired += 1;
                        ttl_counted = true;
                    }
                    continue;
                }
                routed = true;
                sends.push(Send {
                    egress: out.egress,
                    dst: out.group,
                    port: 0,
                    offset: h as u32,
                    len: total_len as u32,
                    mode: OutputMode::Route,
                    slot,
                    output: i as u16,
                });
                if let Some(oc) = entry.outputs.get_mut(i) {
                    oc.packets += 1;
                    oc.bytes += total_len as u64;
                }
            }
        }
    }
    if routed {
        // A verified checksum is right already; only one left to offload
        // needs the second pass over the payload.
        if !verify_udp {
            wire::fix_udp_checksum(&mut frame[h..]);
        }
        wire::decrement_ttl(&mut frame[h..]);
    }
    Verdict::Forward { slot }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{rule_key, TableOutput, TableRule};
    use crate::wire::UdpPacketSpec;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn out(egress: u32, g: &str, port: u16, mode: OutputMode) -> TableOutput {
        TableOutput {
            egress,
            group: ip(g),
            port,
            mode,
        }
    }

    fn rule(
        id: &str,
        g: &str,
        port: u16,
        src: Option<&str>,
        outputs: Vec<TableOutput>,
    ) -> TableRule {
        TableRule {
            key: rule_key(id),
            id: id.into(),
            group: ip(g),
            port,
            source: src.map(ip),
            outputs,
        }
    }

    /// Raw socket with a virtio_net_hdr on a header-less link (tun).
    const FMT: FrameFormat = FrameFormat {
        vnet: true,
        link_header: 0,
    };

    /// A frame as the ingress socket delivers it: vnet header + packet.
    fn vnet(pkt: Vec<u8>) -> Vec<u8> {
        let mut f = wire::VnetHdr::plain().to_vec();
        f.extend_from_slice(&pkt);
        f
    }

    fn frame(src: &str, dst: &str, dport: u16, payload: &[u8]) -> Vec<u8> {
        vnet(UdpPacketSpec::new(ip(src), ip(dst), 40000, dport).build(payload))
    }

    /// The table most tests use: rule `r` for 239.1.1.1:5000 from any
    /// source, to `outputs`.
    fn table(outputs: Vec<TableOutput>) -> Table {
        let mut t = Table::new();
        t.upsert(rule("r", "239.1.1.1", 5000, None, outputs));
        t
    }

    /// That rule with one republishing output.
    fn republish_rule() -> Table {
        table(vec![out(0, "239.2.2.2", 6000, OutputMode::Republish)])
    }

    /// One frame of `reported` bytes (what the kernel said it was) through
    /// the pipeline, counted into `c`; its verdict and sends.
    fn run_counted(
        table: &mut Table,
        f: &mut [u8],
        reported: usize,
        fmt: FrameFormat,
        c: &mut WorkerCounters,
    ) -> (Verdict, Vec<Send>) {
        let mut sends = Vec::new();
        let v = process(f, reported, fmt, table, &mut sends, c);
        (v, sends)
    }

    /// One whole frame from a vnet socket, with counters of its own.
    fn run(table: &mut Table, f: &mut [u8]) -> (Verdict, Vec<Send>, WorkerCounters) {
        let mut c = WorkerCounters::default();
        let n = f.len();
        let (v, sends) = run_counted(table, f, n, FMT, &mut c);
        (v, sends, c)
    }

    #[test]
    fn one_to_one_with_translation() {
        let mut t = table(vec![out(3, "239.2.2.2", 6000, OutputMode::Republish)]);
        let mut f = frame("10.0.0.1", "239.1.1.1", 5000, b"payload!");
        let (v, sends, c) = run(&mut t, &mut f);
        assert!(matches!(v, Verdict::Forward { .. }));
        assert_eq!(sends.len(), 1);
        let s = sends[0];
        assert_eq!((s.egress, s.dst, s.port), (3, ip("239.2.2.2"), 6000));
        assert_eq!(
            &f[s.offset as usize..(s.offset + s.len) as usize],
            b"payload!"
        );
        assert_eq!((c.recv, c.matched, c.no_match), (1, 1, 0));
        let e = t.get(rule_key("r")).unwrap();
        assert_eq!((e.packets, e.bytes), (1, 8));
        assert_eq!(e.outputs[0].packets, 1);
    }

    #[test]
    fn fan_out_shares_one_payload() {
        let outs = (0..16)
            .map(|i| {
                out(
                    i,
                    &format!("239.2.2.{}", i + 1),
                    6000 + i as u16,
                    OutputMode::Republish,
                )
            })
            .collect();
        let mut t = table(outs);
        let mut f = frame("10.0.0.1", "239.1.1.1", 5000, &[7u8; 1000]);
        let (_, sends, _) = run(&mut t, &mut f);
        assert_eq!(sends.len(), 16);
        assert!(sends.iter().all(|s| s.offset == 38 && s.len == 1000));
        assert_eq!(sends[15].dst, ip("239.2.2.16"));
    }

    #[test]
    fn any_port_input_and_keep_port_output() {
        let mut t = Table::new();
        t.upsert(rule(
            "r",
            "239.255.255.250",
            0,
            None,
            vec![out(0, "239.255.255.250", 0, OutputMode::Republish)],
        ));
        for port in [1900u16, 5353, 1] {
            let mut f = frame("10.0.0.1", "239.255.255.250", port, b"x");
            let (_, sends, _) = run(&mut t, &mut f);
            assert_eq!(sends[0].port, port, "output port 0 keeps the packet's port");
        }
    }

    #[test]
    fn source_filter_and_no_match() {
        let mut t = Table::new();
        t.upsert(rule(
            "r",
            "239.1.1.1",
            5000,
            Some("10.0.0.1"),
            vec![out(0, "239.2.2.2", 6000, OutputMode::Republish)],
        ));
        let mut ok = frame("10.0.0.1", "239.1.1.1", 5000, b"x");
        assert!(matches!(run(&mut t, &mut ok).0, Verdict::Forward { .. }));
        let mut other = frame("10.0.0.2", "239.1.1.1", 5000, b"x");
        let (v, sends, c) = run(&mut t, &mut other);
        assert_eq!(v, Verdict::NoMatch);
        assert!(sends.is_empty());
        assert_eq!(c.no_match, 1);
    }

    #[test]
    fn unicast_in_and_out() {
        let mut t = Table::new();
        t.upsert(rule(
            "r",
            "10.1.0.2",
            7000,
            None,
            vec![out(0, "10.2.0.9", 7001, OutputMode::Republish)],
        ));
        let mut f = frame("10.1.0.1", "10.1.0.2", 7000, b"uni");
        let (_, sends, _) = run(&mut t, &mut f);
        assert_eq!((sends[0].dst, sends[0].port), (ip("10.2.0.9"), 7001));
    }

    #[test]
    fn route_mode_decrements_ttl_once_and_drops_at_one() {
        let mut t = table(vec![
            out(0, "239.1.1.1", 5000, OutputMode::Route),
            out(1, "239.1.1.1", 5000, OutputMode::Route),
            out(2, "239.7.7.7", 7000, OutputMode::Republish),
        ]);
        let mut spec = UdpPacketSpec::new(ip("10.0.0.1"), ip("239.1.1.1"), 1, 5000);
        spec.ttl = 8;
        let mut f = vnet(spec.build(b"routed"));
        let (_, sends, _) = run(&mut t, &mut f);
        assert_eq!(sends.len(), 3);
        assert_eq!((sends[0].offset, sends[0].len), (10, f.len() as u32 - 10));
        let ipv = Ipv4::new_checked(&f[10..]).unwrap();
        assert_eq!(ipv.ttl(), 7, "decremented once, not once per output");
        assert!(ipv.header_checksum_ok());
        assert_eq!(ipv.src(), ip("10.0.0.1"), "source kept");

        spec.ttl = 1;
        let mut f = vnet(spec.build(b"last hop"));
        let (v, sends, c) = run(&mut t, &mut f);
        assert!(matches!(v, Verdict::Forward { .. }));
        assert_eq!(
            sends.len(),
            1,
            "TTL-1 packets still republish (link-local relaying)"
        );
        assert_eq!(sends[0].mode, OutputMode::Republish);
        assert_eq!(c.ttl_expired, 1);
    }

    #[test]
    fn bad_frames_are_counted_by_kind() {
        let mut t = republish_rule();
        let good = frame("10.0.0.1", "239.1.1.1", 5000, &[1u8; 100]);
        let mut c = WorkerCounters::default();
        let mut spec = UdpPacketSpec::new(ip("10.0.0.1"), ip("239.1.1.1"), 1, 5000);
        spec.frag = 0x2000;
        let frag = vnet(spec.build(b"first fragment"));
        spec.frag = 0;
        spec.protocol = 6;
        let tcp = vnet(spec.build(b"not udp at all"));
        // (frame, the length the kernel reported, verdict)
        let cases: [(Vec<u8>, usize, Verdict); 5] = [
            (good[..50].to_vec(), 50, Verdict::Malformed),
            // The kernel said 128 bytes but only 100 fit the buffer.
            (good[..100].to_vec(), 128, Verdict::Malformed),
            (frag.clone(), frag.len(), Verdict::Fragment),
            (tcp.clone(), tcp.len(), Verdict::NotUdp),
            (Vec::new(), 0, Verdict::Malformed),
        ];
        for (mut f, reported, want) in cases {
            let (v, sends) = run_counted(&mut t, &mut f, reported, FMT, &mut c);
            assert_eq!(v, want, "frame of {} bytes, {reported} reported", f.len());
            assert!(sends.is_empty());
        }
        assert_eq!(
            (c.recv, c.malformed, c.fragments, c.not_udp, c.matched),
            (5, 3, 1, 1, 0)
        );
    }

    fn checksummed(payload: &[u8]) -> Vec<u8> {
        UdpPacketSpec::new(ip("10.0.0.1"), ip("239.1.1.1"), 40000, 5000).build_checksummed(payload)
    }

    fn with_vnet_flags(flags: u8, pkt: &[u8]) -> Vec<u8> {
        let mut f = wire::VnetHdr::plain().to_vec();
        f[0] = flags;
        f.extend_from_slice(pkt);
        f
    }

    #[test]
    fn a_wrong_ip_header_checksum_is_dropped_and_counted() {
        let mut t = republish_rule();
        let mut f = frame("10.0.0.1", "239.1.1.1", 5000, b"payload");
        f[10 + 10] ^= 0x01; // checksum field
        let (v, sends, c) = run(&mut t, &mut f);
        assert_eq!(v, Verdict::BadIpChecksum);
        assert!(sends.is_empty());
        assert_eq!((c.ip_checksum_errors, c.matched, c.malformed), (1, 0, 0));
        // A corrupted address is caught by the same sum, before the lookup
        // could send the packet to the wrong rule.
        let mut f = frame("10.0.0.1", "239.1.1.1", 5000, b"payload");
        f[10 + 19] ^= 0x02;
        assert_eq!(run(&mut t, &mut f).0, Verdict::BadIpChecksum);
        assert_eq!(t.get(rule_key("r")).unwrap().packets, 0);
    }

    #[test]
    fn a_wrong_udp_checksum_is_dropped_unless_offload_explains_it() {
        let mut t = republish_rule();
        let good = checksummed(&[0x5a; 1200]);
        let mut f = with_vnet_flags(0, &good);
        let (v, sends, c) = run(&mut t, &mut f);
        assert!(matches!(v, Verdict::Forward { .. }));
        assert_eq!((sends.len(), c.udp_checksum_errors), (1, 0));

        let mut bad = good.clone();
        bad[600] ^= 0x40; // one payload bit
        let mut f = with_vnet_flags(0, &bad);
        let (v, sends, c) = run(&mut t, &mut f);
        assert_eq!(v, Verdict::BadUdpChecksum);
        assert!(sends.is_empty());
        assert_eq!((c.udp_checksum_errors, c.matched), (1, 0));

        // A local sender over a veth: the field holds a partial sum.
        let mut f = with_vnet_flags(wire::VNET_F_NEEDS_CSUM, &bad);
        assert!(matches!(run(&mut t, &mut f).0, Verdict::Forward { .. }));
        // The kernel verified it already (and so would have dropped it).
        let mut f = with_vnet_flags(wire::VNET_F_DATA_VALID, &bad);
        assert!(matches!(run(&mut t, &mut f).0, Verdict::Forward { .. }));
        // Zero: the sender computed none.
        let mut none = bad.clone();
        none[26] = 0;
        none[27] = 0;
        let mut f = with_vnet_flags(0, &none);
        assert!(matches!(run(&mut t, &mut f).0, Verdict::Forward { .. }));
        assert_eq!(t.get(rule_key("r")).unwrap().packets, 4);

        // A cooked socket has no offload state to consult: it checks.
        let mut f = bad.clone();
        let n = f.len();
        let mut c = WorkerCounters::default();
        let cooked = FrameFormat {
            vnet: false,
            link_header: 0,
        };
        let (v, _) = run_counted(&mut t, &mut f, n, cooked, &mut c);
        assert_eq!((v, c.udp_checksum_errors), (Verdict::BadUdpChecksum, 1));
    }

    #[test]
    fn unmatched_datagrams_are_not_summed() {
        let mut t = republish_rule();
        let mut bad = UdpPacketSpec::new(ip("10.0.0.1"), ip("239.9.9.9"), 1, 5000)
            .build_checksummed(b"nobody wants this");
        bad[30] ^= 0xff;
        let mut f = with_vnet_flags(0, &bad);
        let (v, _, c) = run(&mut t, &mut f);
        assert_eq!(
            (v, c.no_match, c.udp_checksum_errors),
            (Verdict::NoMatch, 1, 0)
        );
    }

    #[test]
    fn ttl_zero_is_dropped_on_every_output() {
        let mut t = table(vec![
            out(0, "239.2.2.2", 6000, OutputMode::Republish),
            out(1, "239.1.1.1", 5000, OutputMode::Route),
        ]);
        let mut spec = UdpPacketSpec::new(ip("10.0.0.1"), ip("239.1.1.1"), 1, 5000);
        spec.ttl = 0;
        let mut f = vnet(spec.build(b"should never have been sent"));
        let (v, sends, c) = run(&mut t, &mut f);
        assert_eq!(v, Verdict::TtlZero);
        assert!(sends.is_empty());
        assert_eq!((c.ttl_zero, c.ttl_expired, c.matched), (1, 0, 0));
    }

    #[test]
    fn a_routed_packet_keeps_its_verified_udp_checksum() {
        let mut t = table(vec![out(0, "239.1.1.1", 5000, OutputMode::Route)]);
        let mut f = with_vnet_flags(0, &checksummed(b"routed and summed"));
        let (v, sends, _) = run(&mut t, &mut f);
        assert!(matches!(v, Verdict::Forward { .. }));
        let pkt = &f[sends[0].offset as usize..];
        let ipv = Ipv4::new_checked(pkt).unwrap();
        assert_eq!(ipv.ttl(), 63);
        assert!(ipv.header_checksum_ok());
        let udp = Udp::new_checked(ipv.payload()).unwrap();
        assert!(udp.checksum_ok(ipv.src(), ipv.dst()));
    }

    /// A UDP GSO frame: one IP/UDP header over `n` payloads of `seg` bytes
    /// (the last `last` bytes), as a local sender with UDP_SEGMENT hands it
    /// to a veth.
    fn gso_frame(seg: u16, n: usize, last: usize) -> Vec<u8> {
        let mut payload = Vec::new();
        for k in 0..n {
            let len = if k + 1 == n { last } else { usize::from(seg) };
            payload.extend(std::iter::repeat_n(k as u8, len));
        }
        let pkt = UdpPacketSpec::new(ip("10.0.0.1"), ip("239.1.1.1"), 1, 5000).build(&payload);
        let mut f = wire::VnetHdr::udp_gso(seg).to_vec();
        f.extend_from_slice(&pkt);
        f
    }

    #[test]
    fn gso_batches_are_split_into_their_datagrams() {
        let mut t = table(vec![
            out(0, "239.2.2.2", 6000, OutputMode::Republish),
            out(1, "239.3.3.3", 6000, OutputMode::Republish),
        ]);
        let mut f = gso_frame(1000, 5, 300);
        let (v, sends, c) = run(&mut t, &mut f);
        assert!(matches!(v, Verdict::Forward { .. }));
        assert_eq!(sends.len(), 10, "5 datagrams x 2 outputs");
        for (k, s) in sends.iter().take(5).enumerate() {
            let bytes = &f[s.offset as usize..(s.offset + s.len) as usize];
            let want = if k == 4 { 300 } else { 1000 };
            assert_eq!(bytes.len(), want);
            assert!(
                bytes.iter().all(|b| *b == k as u8),
                "datagram {k} is its own bytes"
            );
        }
        assert_eq!((c.recv, c.matched, c.gso_frames), (1, 5, 1));
        let e = t.get(rule_key("r")).unwrap();
        assert_eq!((e.packets, e.outputs[1].packets), (5, 5));
        // A GSO header on a frame that holds one datagram is just that.
        let mut one = gso_frame(1000, 1, 700);
        let (_, sends, c) = run(&mut t, &mut one);
        assert_eq!((sends.len(), c.gso_frames), (2, 0));
    }

    #[test]
    fn route_mode_cannot_forward_a_gso_batch_and_says_so() {
        let mut t = table(vec![
            out(0, "239.1.1.1", 5000, OutputMode::Route),
            out(1, "239.3.3.3", 6000, OutputMode::Republish),
        ]);
        let mut f = gso_frame(500, 3, 500);
        let (_, sends, c) = run(&mut t, &mut f);
        assert_eq!(sends.len(), 3, "the republish output still gets all three");
        assert!(sends.iter().all(|s| s.mode == OutputMode::Republish));
        assert_eq!(c.route_gso_skipped, 3);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut t = Table::new();
        t.upsert(rule(
            "r",
            "239.1.1.1",
            0,
            None,
            vec![out(0, "239.1.1.1", 0, OutputMode::Route)],
        ));
        let base = frame("10.0.0.1", "239.1.1.1", 5000, &[9u8; 40]);
        let mut c = WorkerCounters::default();
        let mut x: u64 = 0x1234_5678;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut f = base.clone();
            let flips = (x % 4) as usize + 1;
            for k in 0..flips {
                let pos = ((x >> (8 * k)) as usize) % f.len();
                f[pos] ^= (x >> (8 * k + 3)) as u8;
            }
            let cut = (x >> 40) as usize % (f.len() + 1);
            f.truncate(cut);
            let reported = cut + (x >> 60) as usize % 3;
            let (_, sends) = run_counted(&mut t, &mut f, reported, FMT, &mut c);
            for s in &sends {
                assert!(
                    (s.offset + s.len) as usize <= f.len(),
                    "send beyond the frame"
                );
            }
        }
    }
}
