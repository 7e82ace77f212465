//! MCR's Register path against FRR where addresses and sizes get awkward
//! (issue 10; RFC 7761 §4.4).
//!
//! 1. The RP address on MCR's loopback, as operators configure it so that
//!    it survives any one link failing. FRR r1 is the first-hop DR of h1
//!    and registers to that address (a static route on r1 sends it via
//!    MCR); MCR knows it is the RP although `lo` runs no PIM, forwards the
//!    decapsulated data to h2, joins (S,G) toward r1 and sends its
//!    Register-Stop from the RP address, which FRR accepts: its register
//!    state for (h1, G) becomes `RegPrune`.
//!
//!    ```text
//!    h1 10.217.1.10 ── r1-h1 [r1 FRR, first hop] r1-m 10.217.12.1
//!      ── m-r1 10.217.12.2 [MCR, RP lo 10.217.255.1] m-h2 10.217.2.1 ── h2 10.217.2.10
//!    ```
//!
//! 2. Data too big for MCR's register tunnel, MCR as first-hop DR under
//!    FRR r1 as RP: a datagram of 1480 bytes (+ 28 of Register = 1508 >
//!    1500) without DF leaves in two Registers that each fit the link,
//!    carrying its two fragments (FRR's kernel decapsulates them; h2 gets
//!    the datagram whole, although by then natively, as FRR joins the
//!    source tree on the first Register); with DF, h1 gets ICMP
//!    Fragmentation Needed with MTU 1472 from MCR, rate-limited.
//!
//!    ```text
//!    h1 10.218.1.10 ── m-h1 10.218.1.1 [MCR, DR] m-r1 10.218.12.2
//!      ── r1-m 10.218.12.1 [r1 FRR, RP lo 10.218.255.1] r1-h2 10.218.2.1 ── h2 10.218.2.10
//!    ```
//!
//! 3. FRR as the last hop joining the shared tree to MCR's loopback RP
//!    address (see `shared_tree`).
//!
//! Prints the time to adjacency, source start → first packet at h2, and →
//! Register-Stop.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use common::capture::{ip_payload as pim_of, Capture};
use common::daemon::spawn_stream;
use common::frr::{require_frr, FrrRouter};
use common::lab::{mcr_igmp_querier, mcr_pim, FirstHop, Lab, LabSpec, LineAddrs};
use common::pim_lab::{mcr_sg, wait, wait_igmp_group, SeqReceiver};
use common::recorder::Recorder;
use common::{in_ns, KillOnDrop, Netns};
use mcr::pim::instance::{RegisterReport, RpSnapshot, UpstreamSnapshot};

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 217, 1, 1);
const PORT: u16 = 5217;
const RATE: u32 = 200;
const SENT_TTL: u8 = 16;
/// PIM message type 2 in version 2: the first byte of a Register-Stop.
const REGISTER_STOP: u8 = 0x22;
/// PIM Register.
const REGISTER: u8 = 0x21;
const IPPROTO_PIM: i32 = 103;

/// Wait for `r1`'s PIM adjacency with MCR (`mcr`, its address on r1-m)
/// and print how long it took.
fn wait_adjacency(r1: &FrrRouter, mcr: Ipv4Addr) {
    let took = r1.wait_neighbor("r1-m", mcr, Duration::from_secs(15));
    println!("pim_frr_rp_loopback: adjacency after {took:?}");
}

mod rp_on_loopback {
    use super::*;

    const NET: LineAddrs = LineAddrs::new(217);
    const H1: Ipv4Addr = NET.h1;
    const R1_H1: Ipv4Addr = NET.h1_gw;
    const MCR: Ipv4Addr = NET.mcr;
    const H2: Ipv4Addr = NET.h2;
    /// The RP address, on MCR's `lo`.
    const RP: Ipv4Addr = Ipv4Addr::new(10, 217, 255, 1);

    /// MCR's config: the RP is `lo`'s address, which runs no PIM.
    fn config() -> String {
        format!(
            "{{ {}, {} }}",
            mcr_pim(&["m-r1"], RP, "join_prune_interval: 10"),
            mcr_igmp_querier("m-h2", "last_member_query_interval: 0.2")
        )
    }

    fn lab(rp_on_lo_at_start: bool) -> Lab {
        let spec = LabSpec::line("rplo1", 217, FirstHop::Frr)
            // r1 registers to the RP address via MCR.
            .route("r1", &format!("{RP}/32"), MCR)
            .frr_pim("r1", "r1-h1")
            .frr_pim_link("r1", "r1-m")
            .frr_rp("r1", RP);
        let spec = if rp_on_lo_at_start {
            spec.addr("mcr", "lo", RP)
        } else {
            spec
        };
        spec.mcr("mcr", &config()).build()
    }

    impl Lab {
        fn r1(&self) -> &FrrRouter {
            self.frr("r1")
        }

        fn i_am_rp(&self) -> bool {
            let rp: Vec<RpSnapshot> = self.mcr().ctl_json(&["pim", "rp"]);
            rp.iter().any(|r| r.rp == RP && r.i_am_rp)
        }

        fn send(&self) -> KillOnDrop {
            spawn_stream(self.ns("h1"), GROUP, PORT, "h1-r1", RATE, SENT_TTL)
        }

        fn member(&self) -> SeqReceiver {
            let m = SeqReceiver::join(self.ns("h2"), H2, GROUP, PORT);
            wait_igmp_group(self.mcr(), "m-h2", GROUP);
            m
        }

        /// Register-Stops arriving at r1, with their IP source.
        fn capture_register_stops(&self) -> Capture {
            Capture::start(self.ns("r1"), IPPROTO_PIM, |p| {
                pim_of(p).first() == Some(&REGISTER_STOP)
            })
        }
    }

    #[test]
    fn frr_registers_to_mcr_s_loopback_rp_address_and_accepts_its_register_stop() {
        if !require_frr("frr_registers_to_mcr_s_loopback_rp_address_and_accepts_its_register_stop")
        {
            return;
        }
        let lab = lab(true);
        wait_adjacency(lab.r1(), MCR);
        assert!(lab.i_am_rp(), "the address on lo makes MCR the RP");
        let stops = lab.capture_register_stops();
        let member = lab.member();

        let sent_at = Instant::now();
        let _sender = lab.send();
        let first = wait("the first packet at h2", Duration::from_secs(10), || {
            member.received().first().copied()
        });
        println!(
            "pim_frr_rp_loopback: source start -> first packet at h2 {:?} (TTL {})",
            first.at - sent_at,
            first.ttl
        );
        assert_eq!(first.source, H1);
        assert_eq!(first.ttl, SENT_TTL - 2, "one hop at r1, one at MCR");

        let joined = wait("MCR's (S,G) join at r1", Duration::from_secs(10), || {
            let join = lab.r1().join_state("r1-m", GROUP, &H1.to_string());
            (join.as_deref() == Some("JOIN")).then(Instant::now)
        });
        let stopped = lab
            .r1()
            .wait_reg_state(GROUP, H1, "RegPrune", Duration::from_secs(15));
        println!(
            "pim_frr_rp_loopback: first packet -> (S,G) JOIN at r1 {:?}, -> Register-Stop (FRR RegPrune) {:?}",
            joined.saturating_duration_since(first.at),
            stopped.saturating_duration_since(first.at)
        );
        let seen = stops.got();
        assert!(!seen.is_empty(), "r1 saw MCR's Register-Stop");
        let sources: std::collections::BTreeSet<Ipv4Addr> = seen.iter().map(|s| s.0).collect();
        assert_eq!(
            sources,
            [RP].into(),
            "Register-Stops come from the RP address, not m-r1's {MCR}"
        );
        let sg = mcr_sg(lab.mcr(), H1, GROUP);
        assert!(sg.joined && sg.spt_bit, "{sg:?}");
        assert_eq!(sg.upstream_interface.as_deref(), Some("m-r1"));
        let reg: RegisterReport = lab.mcr().ctl_json(&["pim", "register"]);
        let rec = reg
            .rp
            .iter()
            .find(|r| r.source == H1 && r.group == GROUP)
            .unwrap_or_else(|| panic!("no RP-side record: {reg:?}"));
        // FRR sends its Registers from its address on the source's
        // interface (not the one toward the RP); the Register-Stop goes
        // back to whatever address that is.
        assert_eq!(rec.dr, R1_H1, "the registering DR is r1");
        assert!(rec.register_stops_tx >= 1, "{rec:?}");
        // The stream goes on natively.
        let before = member.received().len();
        std::thread::sleep(Duration::from_secs(1));
        assert!(member.received().len() > before + (RATE as usize) / 2);
    }

    #[test]
    fn the_rp_address_added_to_lo_while_mcr_runs_makes_it_the_rp() {
        if !require_frr("the_rp_address_added_to_lo_while_mcr_runs_makes_it_the_rp") {
            return;
        }
        let lab = lab(false);
        wait_adjacency(lab.r1(), MCR);
        assert!(!lab.i_am_rp(), "the address is not there yet");
        let t0 = Instant::now();
        lab.ns("mcr")
            .ip(&["addr", "add", &format!("{RP}/32"), "dev", "lo"]);
        wait(
            "MCR recognises the RP address",
            Duration::from_secs(10),
            || lab.i_am_rp().then_some(()),
        );
        println!(
            "pim_frr_rp_loopback: address added to lo -> MCR is the RP {:?}",
            t0.elapsed()
        );
        let stops = lab.capture_register_stops();
        let _sender =
            lab.r1()
                .registers_stopped_without_receiver("pim_frr_rp_loopback", GROUP, H1, || {
                    lab.send()
                });
        assert!(stops.got().iter().all(|s| s.0 == RP));
        assert!(!stops.got().is_empty());
    }
}

mod oversized {
    use super::*;

    const NET: LineAddrs = LineAddrs::new(218);
    const H1: Ipv4Addr = NET.h1;
    const MCR_H1: Ipv4Addr = NET.h1_gw;
    const MCR: Ipv4Addr = NET.mcr;
    const H2: Ipv4Addr = NET.h2;
    const RP: Ipv4Addr = Ipv4Addr::new(10, 218, 255, 1);
    /// Without DF; h2 is a member.
    const BIG: Ipv4Addr = Ipv4Addr::new(239, 218, 1, 1);
    /// With DF; nobody listens.
    const BIG_DF: Ipv4Addr = Ipv4Addr::new(239, 218, 1, 2);
    /// UDP payload of a 1480-byte datagram.
    const PAYLOAD: usize = 1480 - 28;

    fn lab() -> Lab {
        LabSpec::line("big1", 218, FirstHop::Mcr)
            .route("mcr", &format!("{RP}/32"), NET.r1)
            .frr_loopback_rp("r1", RP)
            .frr_pim_link("r1", "r1-m")
            .frr_igmp("r1", "r1-h2")
            .mcr(
                "mcr",
                &format!(
                    "{{ {} }}",
                    mcr_pim(&["m-r1", "m-h1"], RP, "join_prune_interval: 10")
                ),
            )
            .build()
    }

    /// Send `count` datagrams of PAYLOAD bytes to `group` from h1, DF set
    /// or not, `gap` apart, on a thread inside h1.
    fn send_big(h1: &Netns, group: Ipv4Addr, df: bool, count: usize, gap: Duration) {
        in_ns(h1, move || {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
                .expect("udp socket");
            s.set_multicast_ttl_v4(u32::from(SENT_TTL)).expect("ttl");
            s.set_multicast_if_v4(&H1).expect("multicast if");
            let mode = if df {
                libc::IP_PMTUDISC_DO
            } else {
                libc::IP_PMTUDISC_DONT
            };
            mcr::sys::sockopt::set_int(s.as_fd(), libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, mode)
                .expect("IP_MTU_DISCOVER");
            let to = SocketAddrV4::new(group, PORT).into();
            let data = vec![0x6d; PAYLOAD];
            for _ in 0..count {
                // With DF the kernel may learn the smaller MTU and refuse
                // further sends; that is the point.
                let _ = s.send_to(&data, &to);
                std::thread::sleep(gap);
            }
        });
    }

    /// Size and IP TTL of the datagrams h2 got on BIG. The TTL tells the
    /// path: MCR registers the packet with the TTL h1 gave it and r1 takes
    /// one off when it forwards it out of the Register; natively MCR and
    /// r1 each take one.
    fn sizes(member: &Recorder) -> Vec<(usize, u8)> {
        member
            .received()
            .iter()
            .map(|d| (d.len, d.ttl.unwrap_or(0)))
            .collect()
    }

    #[test]
    fn oversized_data_is_registered_in_fragments_or_refused_with_fragmentation_needed() {
        if !require_frr(
            "oversized_data_is_registered_in_fragments_or_refused_with_fragmentation_needed",
        ) {
            return;
        }
        let lab = lab();
        let r1 = lab.frr("r1");
        wait_adjacency(r1, MCR);
        let member = Recorder::start(lab.ns("h2"), PORT, |s| s.join_multicast_v4(&BIG, &H2));
        wait("h2's (*,G) at r1", Duration::from_secs(15), || {
            let v = r1.try_json("show ip pim upstream json").ok()?;
            v.get(BIG.to_string())?.get("*").map(|_| ())
        });
        // Registers arriving at r1 (its PIM socket gets them too).
        let registers = Capture::start(lab.ns("r1"), IPPROTO_PIM, |p| {
            pim_of(p).first() == Some(&REGISTER)
        });
        // ICMP Fragmentation Needed arriving at h1.
        let icmp = Capture::start(lab.ns("h1"), libc::IPPROTO_ICMP, |p| {
            let m = pim_of(p);
            m.len() >= 8 && m[0] == 3 && m[1] == 4
        });

        // Without DF: fragments, each in a Register that fits the link.
        let sent_at = Instant::now();
        send_big(lab.ns("h1"), BIG, false, 10, Duration::from_millis(50));
        let whole = wait(
            "a whole big datagram at h2",
            Duration::from_secs(10),
            || {
                sizes(&member)
                    .iter()
                    .any(|&(n, _)| n == PAYLOAD)
                    .then(Instant::now)
            },
        );
        // FRR joins the source tree on the first Register and its kernel
        // then forwards only native packets (TTL 14), so what h2 gets
        // shows delivery, not the Register path: that is checked on the
        // Registers themselves below.
        println!(
            "pim_frr_rp_loopback: 10 big datagrams (no DF) over 0.5 s, start -> one whole at h2 {:?}; (size, TTL) at h2: {:?}",
            whole - sent_at,
            sizes(&member)
        );
        let regs: Vec<Vec<u8>> = registers
            .got()
            .into_iter()
            .filter(|(src, _)| *src == MCR)
            .map(|(_, p)| p)
            .collect();
        let data_regs: Vec<&Vec<u8>> = regs
            .iter()
            .filter(|p| {
                let m = pim_of(p);
                // Not a null-Register (N bit), and an inner packet to BIG.
                m.len() >= 28 && m[4] & 0x40 == 0 && m[8 + 16..8 + 20] == BIG.octets()
            })
            .collect();
        assert!(
            data_regs.iter().all(|p| p.len() <= 1500),
            "every Register fits the link: {:?}",
            data_regs.iter().map(|p| p.len()).collect::<Vec<_>>()
        );
        // Group the inner fragments by IP identification: each datagram
        // must come back whole from its Registers, as the RP's kernel
        // (which decapsulates them) forwards them for h2 to reassemble.
        let mut by_id: std::collections::BTreeMap<u16, Vec<Vec<u8>>> = Default::default();
        for p in &data_regs {
            let inner = pim_of(p)[8..].to_vec();
            by_id
                .entry(u16::from_be_bytes([inner[4], inner[5]]))
                .or_default()
                .push(inner);
        }
        let whole_ones = by_id
            .values()
            .filter(|frags| {
                let mut frags = (*frags).clone();
                frags.sort_by_key(|f| u16::from_be_bytes([f[6], f[7]]) & 0x1fff);
                let mut data = Vec::new();
                for f in &frags {
                    let off = usize::from(u16::from_be_bytes([f[6], f[7]]) & 0x1fff) * 8;
                    if off != data.len() {
                        return false;
                    }
                    data.extend_from_slice(&f[20..]);
                }
                let last_mf = frags
                    .last()
                    .is_some_and(|f| u16::from_be_bytes([f[6], f[7]]) & 0x2000 != 0);
                frags.len() == 2 && !last_mf && data.len() == 1480 - 20
            })
            .count();
        println!(
            "pim_frr_rp_loopback: {} data Registers at r1 for the big group, {} datagrams whole in two Registers each",
            data_regs.len(),
            whole_ones
        );
        assert!(
            whole_ones >= 1,
            "a big datagram registered as two fragments"
        );
        let report: RegisterReport = lab.mcr().ctl_json(&["pim", "register"]);
        assert!(
            report.counters.register_fragmented >= 1,
            "{:?}",
            report.counters
        );
        assert_eq!(report.counters.frag_needed_tx, 0);

        // With DF: nothing registered, Fragmentation Needed to h1.
        let df_at = Instant::now();
        send_big(lab.ns("h1"), BIG_DF, true, 10, Duration::from_millis(100));
        let (from, packet) = wait(
            "ICMP Fragmentation Needed at h1",
            Duration::from_secs(10),
            || icmp.got().into_iter().next(),
        );
        println!(
            "pim_frr_rp_loopback: 10 big datagrams (DF) over 1 s, start -> Fragmentation Needed seen at h1 {:?}",
            df_at.elapsed()
        );
        assert_eq!(from, MCR_H1, "from MCR's address toward h1");
        let m = pim_of(&packet);
        assert_eq!(
            u16::from_be_bytes([m[6], m[7]]),
            1472,
            "the tunnel MTU: 1500 - 28"
        );
        assert_eq!(&m[8 + 16..8 + 20], &BIG_DF.octets(), "quotes h1's packet");
        let report: RegisterReport = lab.mcr().ctl_json(&["pim", "register"]);
        let c = report.counters;
        println!(
            "pim_frr_rp_loopback: counters: {} fragmented, {} too big with DF, {} Fragmentation Needed sent, {} held back",
            c.register_fragmented, c.register_too_big, c.frag_needed_tx, c.frag_needed_suppressed
        );
        assert!(c.register_too_big >= 1);
        assert!(c.frag_needed_tx >= 1);
        // 10 packets over 1 s, at most one ICMP per 0.5 s.
        assert!(c.frag_needed_tx <= 3, "rate-limited: {c:?}");
        assert_eq!(
            c.register_too_big,
            c.frag_needed_tx + c.frag_needed_suppressed,
            "every DF packet got an ICMP or was held back: {c:?}"
        );
        assert!(
            !registers.got().iter().any(|(_, p)| {
                let m = pim_of(p);
                m.len() >= 28 && m[8 + 16..8 + 20] == BIG_DF.octets() && m[4] & 0x40 == 0
            }),
            "no data Register for the DF group"
        );
    }
}

/// 3. The shared tree to a loopback RP: FRR r1 is the last hop of h2 and
///    joins (*,G) toward MCR's RP address on `lo` (a static route on r1
///    via MCR); MCR is both the RP and the first hop of h1, so h1's data
///    goes down the shared tree with nothing to register.
///
///    ```text
///    h1 10.219.1.10 ── m-h1 10.219.1.1 [MCR, RP lo 10.219.255.1] m-r1 10.219.12.2
///      ── r1-m 10.219.12.1 [r1 FRR, last hop] r1-h2 10.219.2.1 ── h2 10.219.2.10
///    ```
mod shared_tree {
    use super::*;

    const NET: LineAddrs = LineAddrs::new(219);
    const H1: Ipv4Addr = NET.h1;
    const MCR: Ipv4Addr = NET.mcr;
    const H2: Ipv4Addr = NET.h2;
    const RP: Ipv4Addr = Ipv4Addr::new(10, 219, 255, 1);
    const G: Ipv4Addr = Ipv4Addr::new(239, 219, 1, 1);

    #[test]
    fn frr_last_hop_joins_the_shared_tree_to_mcr_s_loopback_rp_and_gets_the_data() {
        if !require_frr("frr_last_hop_joins_the_shared_tree_to_mcr_s_loopback_rp_and_gets_the_data")
        {
            return;
        }
        let lab = LabSpec::line("rplo3", 219, FirstHop::Mcr)
            .addr("mcr", "lo", RP)
            // r1 joins toward the RP address via MCR.
            .route("r1", &format!("{RP}/32"), MCR)
            .frr_pim_link("r1", "r1-m")
            .frr_igmp("r1", "r1-h2")
            .frr_rp("r1", RP)
            .mcr(
                "mcr",
                &format!(
                    "{{ {} }}",
                    mcr_pim(&["m-r1", "m-h1"], RP, "join_prune_interval: 10")
                ),
            )
            .build();
        let mcr = lab.mcr();
        wait_adjacency(lab.frr("r1"), MCR);

        let member = SeqReceiver::join(lab.ns("h2"), H2, G, PORT);
        let joined = wait("r1's (*,G) join at MCR", Duration::from_secs(15), || {
            let routes: Vec<UpstreamSnapshot> = mcr.ctl_json(&["pim", "routes"]);
            routes
                .iter()
                .any(|r| r.source.is_none() && r.group == G)
                .then(Instant::now)
        });
        println!(
            "pim_frr_rp_loopback: h2 joins -> (*,G) at MCR (RP on lo) {:?}",
            joined - member.joined_at
        );
        let sent_at = Instant::now();
        let _sender = spawn_stream(lab.ns("h1"), G, PORT, "h1-m", RATE, SENT_TTL);
        let first = wait("the first packet at h2", Duration::from_secs(10), || {
            member.received().first().copied()
        });
        println!(
            "pim_frr_rp_loopback: source start -> first packet at h2 {:?} (TTL {})",
            first.at - sent_at,
            first.ttl
        );
        assert_eq!(first.source, H1);
        assert_eq!(first.ttl, SENT_TTL - 2, "MCR and r1 each take one hop");
        let before = member.received().len();
        std::thread::sleep(Duration::from_secs(1));
        assert!(member.received().len() > before + (RATE as usize) / 2);
        // Nothing to register: the first hop is the RP.
        let reg: RegisterReport = mcr.ctl_json(&["pim", "register"]);
        assert!(reg.dr.is_empty(), "{reg:?}");
        assert_eq!(reg.counters.register_tx, 0);
    }
}
