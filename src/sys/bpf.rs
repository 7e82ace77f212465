//! The classic BPF program on each ingress socket: it keeps IPv4 alone
//! (a socket on a bridge port taps every protocol), drops the relay's
//! own transmissions (so the relay never re-ingests its output, even on
//! kernels without `PACKET_IGNORE_OUTGOING`) and, when the rules name few
//! enough destinations, every IPv4 packet none of them names, so unwanted
//! traffic is dropped in the kernel before it costs the worker a wakeup.

use std::net::Ipv4Addr;

const SKF_AD_OFF: u32 = (-0x1000i32) as u32;
const SKF_AD_PROTOCOL: u32 = 0;
const SKF_AD_PKTTYPE: u32 = 4;
const SKF_AD_IFINDEX: u32 = 8;
const ETH_P_IP: u32 = 0x0800;
const PACKET_OUTGOING: u32 = 4;

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
const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const ACCEPT_LEN: u32 = 0x0004_0000;

/// In a destination list, stands for every multicast group outside
/// 224.0.0.0/24: what a PIM interface's worker must hear (first packets
/// of groups no rule names yet, register punts), where the link-local
/// groups are the supervisor's (PIM Hellos, IGMP) and never routed (RFC
/// 5771 §4). 224.0.0.0 itself is reserved (the base address, RFC 5771
/// §4) and never a packet's destination, so it can mark this in the list
/// the filter's callers already pass, and the rest of the list still
/// names the unicast inputs (sinks) and link-local groups rules ask for.
pub const ROUTABLE_MULTICAST: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 0);

/// The ingress filter: drop frames this host sent (so the relay never
/// re-ingests its own output, even on kernels without
/// `PACKET_IGNORE_OUTGOING`) and, when `dsts` is given and not too long,
/// every IPv4 packet whose destination no rule names. With
/// [`ROUTABLE_MULTICAST`] in `dsts`, every group outside 224.0.0.0/24 is
/// kept as well.
///
/// With a cooked socket the IPv4 header starts at offset 0, so the
/// destination address is the word at offset 16. Destinations are found by
/// binary search, so the per-packet cost is logarithmic in their number.
///
/// `ifindex` (0: any) is the socket's own interface. The kernel also hands
/// a socket bound to a VLAN's parent the frames that arrived tagged and
/// now belong to the VLAN sub-interface (it delivers them to the device
/// they came in on as well); the filter keeps only frames of the socket's
/// own device, so a rule on the parent never relays a VLAN's traffic.
pub fn ingress_filter(
    dsts: Option<&[Ipv4Addr]>,
    link_header: u16,
    ifindex: u32,
) -> Vec<SockFilter> {
    let mut prog = Vec::new();
    if ifindex != 0 {
        prog.push(stmt(BPF_LD_W_ABS, SKF_AD_OFF + SKF_AD_IFINDEX));
        prog.push(jump(BPF_JEQ_K, ifindex, 1, 0));
        prog.push(stmt(BPF_RET_K, 0));
    }
    prog.extend([
        // A socket that taps every protocol (on a bridge port) must still
        // hand the worker IPv4 alone; a socket bound to IPv4 passes this.
        stmt(BPF_LD_W_ABS, SKF_AD_OFF + SKF_AD_PROTOCOL),
        jump(BPF_JEQ_K, ETH_P_IP, 1, 0),
        stmt(BPF_RET_K, 0),
        stmt(BPF_LD_W_ABS, SKF_AD_OFF + SKF_AD_PKTTYPE),
        // OUTGOING: skip to the drop right after the accept below.
        jump(BPF_JEQ_K, PACKET_OUTGOING, 1, 0),
    ]);
    let outgoing_at = prog.len() - 1;
    let routable = dsts.is_some_and(|d| d.contains(&ROUTABLE_MULTICAST));
    let list = match dsts {
        Some(d) if !d.is_empty() && d.len() <= MAX_FILTER_DESTINATIONS => {
            let mut v: Vec<u32> = d
                .iter()
                .filter(|a| **a != ROUTABLE_MULTICAST)
                .map(|a| u32::from(*a))
                .collect();
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
            prog[outgoing_at] = jump(BPF_JEQ_K, PACKET_OUTGOING, 0, 1);
            prog.push(stmt(BPF_RET_K, 0));
            // The filter sees the frame from its link header on.
            prog.push(stmt(BPF_LD_W_ABS, 16 + u32::from(link_header)));
            if routable {
                // 224.0.0.0 <= A <= 239.255.255.255 and A > 224.0.0.255:
                // keep it; anything else goes on to the listed ones.
                // Offsets count the instructions skipped up to the search.
                prog.extend([
                    jump(BPF_JGE_K, 0xe000_0000, 0, 3),
                    jump(BPF_JGT_K, 0xefff_ffff, 2, 0),
                    jump(BPF_JGT_K, 0xe000_00ff, 0, 1),
                    stmt(BPF_RET_K, ACCEPT_LEN),
                ]);
            }
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

/// A program that drops everything: for sockets that exist only for their
/// side effects (group memberships, port sinks) and are never read.
pub fn drop_all() -> [SockFilter; 1] {
    [stmt(BPF_RET_K, 0)]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Run a classic BPF program over a packet (enough of the instruction
    /// set for our filters) so the filter logic is tested without a socket.
    fn run_bpf(prog: &[SockFilter], pkt: &[u8], pkt_type: u32) -> u32 {
        run_bpf_proto(prog, pkt, pkt_type, ETH_P_IP)
    }

    fn run_bpf_proto(prog: &[SockFilter], pkt: &[u8], pkt_type: u32, proto: u32) -> u32 {
        run_bpf_on(prog, pkt, pkt_type, proto, 5)
    }

    /// `ifindex`: the device the frame is on now. The IGMP sockets'
    /// filters (`sys::igmp`) are run here too.
    pub(crate) fn run_bpf_on(
        prog: &[SockFilter],
        pkt: &[u8],
        pkt_type: u32,
        proto: u32,
        ifindex: u32,
    ) -> u32 {
        const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
        const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
        const AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
        let mut a: u32 = 0;
        let mut pc = 0usize;
        loop {
            let ins = prog[pc];
            match ins.code {
                BPF_LD_W_ABS => {
                    a = if ins.k == SKF_AD_OFF + SKF_AD_PKTTYPE {
                        pkt_type
                    } else if ins.k == SKF_AD_OFF + SKF_AD_PROTOCOL {
                        proto
                    } else if ins.k == SKF_AD_OFF + SKF_AD_IFINDEX {
                        ifindex
                    } else {
                        let o = ins.k as usize;
                        // The kernel ends the program with 0 (drop) on a
                        // load past the end of the packet.
                        let Some(b) = pkt.get(o..o + 4) else { return 0 };
                        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
                    };
                    pc += 1;
                }
                LD_B_ABS => {
                    let Some(b) = pkt.get(ins.k as usize) else {
                        return 0;
                    };
                    a = u32::from(*b);
                    pc += 1;
                }
                AND_K => {
                    a &= ins.k;
                    pc += 1;
                }
                JGE_K => pc += 1 + if a >= ins.k { ins.jt } else { ins.jf } as usize,
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
        let p = ingress_filter(None, 0, 0);
        let f = pkt_to("239.1.1.1".parse().unwrap());
        assert!(run_bpf(&p, &f, 0) > 0);
        assert!(run_bpf(&p, &f, 2) > 0);
        assert_eq!(run_bpf(&p, &f, PACKET_OUTGOING), 0);
        // A socket tapping every protocol (a bridge port) sees ARP and
        // IPv6 too: only IPv4 reaches the worker.
        for proto in [0x0806, 0x86dd] {
            assert_eq!(run_bpf_proto(&p, &f, 0, proto), 0, "{proto:#x}");
            let dsts = ["239.1.1.1".parse().unwrap()];
            assert_eq!(
                run_bpf_proto(&ingress_filter(Some(&dsts), 0, 0), &f, 0, proto),
                0
            );
        }
    }

    #[test]
    fn filter_keeps_exactly_the_listed_destinations() {
        for n in [1usize, 2, 3, 7, 64, 500, MAX_FILTER_DESTINATIONS] {
            let dsts: Vec<Ipv4Addr> = (0..n as u32)
                .map(|i| Ipv4Addr::from(0xef01_0000 + i * 3))
                .collect();
            let p = ingress_filter(Some(&dsts), 0, 0);
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
        let p = ingress_filter(Some(&dsts), 14, 0);
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
        assert_eq!(ingress_filter(Some(&many), 0, 0).len(), 7);
    }

    #[test]
    fn routable_multicast_keeps_groups_outside_the_link_local_block_and_the_listed() {
        let ip = |s: &str| -> Ipv4Addr { s.parse().unwrap() };
        let keep = |p: &[SockFilter], d: &str| run_bpf(p, &pkt_to(ip(d)), 2) > 0;
        for (dsts, listed) in [
            (vec![ROUTABLE_MULTICAST], vec![]),
            // A unicast input (a sink) and a link-local group a rule names.
            (
                vec![ip("10.0.0.1"), ROUTABLE_MULTICAST, ip("224.0.0.251")],
                vec!["10.0.0.1", "224.0.0.251"],
            ),
        ] {
            let p = ingress_filter(Some(&dsts), 0, 0);
            for d in ["224.0.1.0", "224.0.1.1", "232.1.1.1", "239.255.255.255"] {
                assert!(keep(&p, d), "{dsts:?}: {d} must pass");
                assert_eq!(run_bpf(&p, &pkt_to(ip(d)), PACKET_OUTGOING), 0);
            }
            for d in [
                "224.0.0.0",
                "224.0.0.1",
                "224.0.0.13",
                "224.0.0.22",
                "224.0.0.251",
                "224.0.0.255",
                "10.0.0.1",
                "10.0.0.2",
                "223.255.255.255",
                "240.0.0.0",
                "255.255.255.255",
            ] {
                assert_eq!(keep(&p, d), listed.contains(&d), "{dsts:?}: {d}");
            }
            // ARP and IPv6 stay out.
            assert_eq!(run_bpf_proto(&p, &pkt_to(ip("239.1.1.1")), 0, 0x86dd), 0);
        }
        // On Ethernet the address is past the 14-byte link header.
        let p = ingress_filter(Some(&[ROUTABLE_MULTICAST]), 14, 0);
        let mut eth = vec![0u8; 14];
        eth.extend_from_slice(&pkt_to(ip("239.1.2.3")));
        assert!(run_bpf(&p, &eth, 2) > 0);
    }

    #[test]
    fn filter_keeps_frames_of_its_own_device_only() {
        let f = pkt_to("239.1.1.1".parse().unwrap());
        let dsts = ["239.1.1.1".parse().unwrap()];
        for p in [
            ingress_filter(None, 0, 5),
            ingress_filter(Some(&dsts), 0, 5),
        ] {
            assert!(run_bpf_on(&p, &f, 2, ETH_P_IP, 5) > 0);
            // Arrived tagged on the parent, now the VLAN's.
            assert_eq!(run_bpf_on(&p, &f, 2, ETH_P_IP, 9), 0);
            assert_eq!(run_bpf_on(&p, &f, PACKET_OUTGOING, ETH_P_IP, 5), 0);
        }
    }

    #[test]
    fn drop_all_drops_everything() {
        let f = pkt_to("239.1.1.1".parse().unwrap());
        for pkt_type in [0, 2, PACKET_OUTGOING] {
            assert_eq!(run_bpf(&drop_all(), &f, pkt_type), 0);
        }
    }
}
