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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::daemon::{spawn_stream, Daemon};
use common::frr::{require_frr, FrrRouter};
use common::pim_lab::{wait, SeqReceiver};
use common::{veth, KillOnDrop, Netns};
use mcr::pim::instance::{RegisterReport, RpSnapshot, UpstreamSnapshot};

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 217, 1, 1);
const PORT: u16 = 5217;
const RATE: u32 = 200;
const SENT_TTL: u8 = 16;
/// PIM message type 2 in version 2: the first byte of a Register-Stop.
const REGISTER_STOP: u8 = 0x22;
/// PIM Register.
const REGISTER: u8 = 0x21;

/// A captured packet: its IP source and the whole packet.
type Captured = (Ipv4Addr, Vec<u8>);

/// A raw socket of protocol `proto` read on a thread inside `ns`: the IP
/// source and the whole packet of everything it gets for which `keep`
/// says yes.
struct Capture {
    stop: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<Captured>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Capture {
    fn start(ns: &Netns, proto: i32, keep: fn(&[u8]) -> bool) -> Capture {
        let name = ns.name.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let (s2, g2) = (stop.clone(), got.clone());
        let thread = std::thread::spawn(move || {
            enter(&name);
            let s = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::RAW,
                Some(socket2::Protocol::from(proto)),
            )
            .expect("raw socket");
            s.set_read_timeout(Some(Duration::from_millis(20)))
                .expect("timeout");
            let _ = tx.send(());
            let mut buf = vec![0u8; 65536];
            while !s2.load(Ordering::Relaxed) {
                let Ok(n) = nix::sys::socket::recv(
                    std::os::fd::AsRawFd::as_raw_fd(&s),
                    &mut buf,
                    nix::sys::socket::MsgFlags::empty(),
                ) else {
                    continue;
                };
                let p = &buf[..n];
                if p.len() < 20 {
                    continue;
                }
                let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
                if keep(p) {
                    g2.lock().unwrap().push((src, p.to_vec()));
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(5)).expect("capture up");
        Capture {
            stop,
            got,
            thread: Some(thread),
        }
    }

    fn got(&self) -> Vec<(Ipv4Addr, Vec<u8>)> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Move the calling thread (one of the test's own) into namespace `name`.
fn enter(name: &str) {
    let f = std::fs::File::open(format!("/run/netns/{name}")).expect("open netns");
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

/// The PIM message inside an IPv4 packet.
fn pim_of(p: &[u8]) -> &[u8] {
    let ihl = usize::from(p[0] & 0x0f) * 4;
    p.get(ihl..).unwrap_or_default()
}

mod rp_on_loopback {
    use super::*;

    const H1: Ipv4Addr = Ipv4Addr::new(10, 217, 1, 10);
    const R1_H1: Ipv4Addr = Ipv4Addr::new(10, 217, 1, 1);
    const R1: Ipv4Addr = Ipv4Addr::new(10, 217, 12, 1);
    const MCR: Ipv4Addr = Ipv4Addr::new(10, 217, 12, 2);
    const MCR_H2: Ipv4Addr = Ipv4Addr::new(10, 217, 2, 1);
    const H2: Ipv4Addr = Ipv4Addr::new(10, 217, 2, 10);
    /// The RP address, on MCR's `lo`.
    const RP: Ipv4Addr = Ipv4Addr::new(10, 217, 255, 1);

    pub(super) struct Lab {
        pub(super) r1: FrrRouter,
        pub(super) mcr: Daemon,
        pub(super) h1: Netns,
        pub(super) h2: Netns,
        pub(super) mcr_ns: Netns,
    }

    pub(super) fn lab(rp_on_lo_at_start: bool) -> Lab {
        let mut r1 = FrrRouter::new("rplo1");
        let mcr_ns = Netns::new("pimlo-mcr");
        let h1 = Netns::new("pimlo-h1");
        let h2 = Netns::new("pimlo-h2");
        let cidr = |a: Ipv4Addr| format!("{a}/24");
        veth(&r1.ns, "r1-h1", &cidr(R1_H1), &h1, "h1-r1", &cidr(H1));
        veth(&r1.ns, "r1-m", &cidr(R1), &mcr_ns, "m-r1", &cidr(MCR));
        veth(&mcr_ns, "m-h2", &cidr(MCR_H2), &h2, "h2-m", &cidr(H2));
        if rp_on_lo_at_start {
            mcr_ns.ip(&["addr", "add", &format!("{RP}/32"), "dev", "lo"]);
        }
        h1.ip(&["route", "add", "default", "via", &R1_H1.to_string()]);
        h2.ip(&["route", "add", "default", "via", &MCR_H2.to_string()]);
        mcr_ns.ip(&["route", "add", "10.217.1.0/24", "via", &R1.to_string()]);
        r1.start(&format!(
            "ip route 10.217.2.0/24 {MCR}\n\
             ip route {RP}/32 {MCR}\n\
             interface r1-h1\n ip pim\n!\n\
             interface r1-m\n ip pim\n ip pim hello 1\n!\n\
             ip pim rp {RP} 239.0.0.0/8\n"
        ));
        let config = format!(
            "{{ pim: {{ enabled: true, \
               interfaces: [ {{ name: \"m-r1\", hello_interval: 1, triggered_hello_delay: 0.05 }} ], \
               static_rp: [ {{ group: \"239.0.0.0/8\", rp: \"{RP}\" }} ], join_prune_interval: 10 }}, \
             igmp: {{ querier_interfaces: [\"m-h2\"], query_interval: 2, query_response_interval: 1, \
               last_member_query_interval: 0.2 }} }}"
        );
        let mcr = Daemon::start_config(&mcr_ns, &config);
        Lab {
            r1,
            mcr,
            h1,
            h2,
            mcr_ns,
        }
    }

    impl Lab {
        pub(super) fn wait_adjacency(&self) {
            let t0 = Instant::now();
            wait("PIM adjacency", Duration::from_secs(15), || {
                let v = self.r1.try_json("show ip pim neighbor json").ok()?;
                v.get("r1-m")?.get(MCR.to_string()).map(|_| ())
            });
            println!("pim_frr_rp_loopback: adjacency after {:?}", t0.elapsed());
        }

        pub(super) fn i_am_rp(&self) -> bool {
            let rp: Vec<RpSnapshot> = self.mcr.ctl_json(&["pim", "rp"]);
            rp.iter().any(|r| r.rp == RP && r.i_am_rp)
        }

        pub(super) fn send(&self) -> KillOnDrop {
            spawn_stream(&self.h1, GROUP, PORT, "h1-r1", RATE, SENT_TTL)
        }

        pub(super) fn frr_reg_state(&self) -> Option<String> {
            self.r1.reg_state(GROUP, H1)
        }

        fn frr_sg_join(&self) -> Option<String> {
            let v = self.r1.try_json("show ip pim join json").ok()?;
            v.get("r1-m")?
                .get(GROUP.to_string())?
                .get(H1.to_string())?
                .get("channelJoinName")?
                .as_str()
                .map(String::from)
        }

        pub(super) fn member(&self) -> SeqReceiver {
            let m = SeqReceiver::join(&self.h2, H2, GROUP, PORT);
            wait("h2's membership at MCR", Duration::from_secs(10), || {
                let rows: Vec<serde_json::Value> = self.mcr.ctl_json(&["igmp", "groups"]);
                rows.iter()
                    .any(|r| r["interface"] == "m-h2" && r["group"] == GROUP.to_string())
                    .then_some(())
            });
            m
        }

        /// Register-Stops arriving at r1, with their IP source.
        pub(super) fn capture_register_stops(&self) -> Capture {
            Capture::start(&self.r1.ns, 103, |p| {
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
        lab.wait_adjacency();
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
            (lab.frr_sg_join().as_deref() == Some("JOIN")).then(Instant::now)
        });
        let stopped = wait(
            "FRR's register state RegPrune",
            Duration::from_secs(15),
            || (lab.frr_reg_state().as_deref() == Some("RegPrune")).then(Instant::now),
        );
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
        let routes: Vec<UpstreamSnapshot> = lab.mcr.ctl_json(&["pim", "routes"]);
        let sg = routes
            .iter()
            .find(|r| r.source == Some(H1) && r.group == GROUP)
            .unwrap_or_else(|| panic!("no (S,G) at MCR: {routes:?}"));
        assert!(sg.joined && sg.spt_bit, "{sg:?}");
        assert_eq!(sg.upstream_interface.as_deref(), Some("m-r1"));
        let reg: RegisterReport = lab.mcr.ctl_json(&["pim", "register"]);
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
        lab.wait_adjacency();
        assert!(!lab.i_am_rp(), "the address is not there yet");
        let t0 = Instant::now();
        lab.mcr_ns
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
        let sent_at = Instant::now();
        let _sender = lab.send();
        // No receiver: the RP stops the Registers at once.
        wait(
            "FRR's register state RegPrune",
            Duration::from_secs(10),
            || (lab.frr_reg_state().as_deref() == Some("RegPrune")).then_some(()),
        );
        println!(
            "pim_frr_rp_loopback: no receiver: source start -> Register-Stop (FRR RegPrune) {:?}",
            sent_at.elapsed()
        );
        assert!(stops.got().iter().all(|s| s.0 == RP));
        assert!(!stops.got().is_empty());
        let _ = &lab.h2;
    }
}

mod oversized {
    use super::*;

    const H1: Ipv4Addr = Ipv4Addr::new(10, 218, 1, 10);
    const MCR_H1: Ipv4Addr = Ipv4Addr::new(10, 218, 1, 1);
    const MCR: Ipv4Addr = Ipv4Addr::new(10, 218, 12, 2);
    const R1: Ipv4Addr = Ipv4Addr::new(10, 218, 12, 1);
    const R1_H2: Ipv4Addr = Ipv4Addr::new(10, 218, 2, 1);
    const H2: Ipv4Addr = Ipv4Addr::new(10, 218, 2, 10);
    const RP: Ipv4Addr = Ipv4Addr::new(10, 218, 255, 1);
    /// Without DF; h2 is a member.
    const BIG: Ipv4Addr = Ipv4Addr::new(239, 218, 1, 1);
    /// With DF; nobody listens.
    const BIG_DF: Ipv4Addr = Ipv4Addr::new(239, 218, 1, 2);
    /// UDP payload of a 1480-byte datagram.
    const PAYLOAD: usize = 1480 - 28;

    struct Lab {
        r1: FrrRouter,
        mcr: Daemon,
        h1: Netns,
        h2: Netns,
        _mcr_ns: Netns,
    }

    fn lab() -> Lab {
        let mut r1 = FrrRouter::new("big1");
        let mcr_ns = Netns::new("pimbig-mcr");
        let h1 = Netns::new("pimbig-h1");
        let h2 = Netns::new("pimbig-h2");
        let cidr = |a: Ipv4Addr| format!("{a}/24");
        veth(&mcr_ns, "m-h1", &cidr(MCR_H1), &h1, "h1-m", &cidr(H1));
        veth(&mcr_ns, "m-r1", &cidr(MCR), &r1.ns, "r1-m", &cidr(R1));
        veth(&r1.ns, "r1-h2", &cidr(R1_H2), &h2, "h2-r1", &cidr(H2));
        r1.ns.ip(&["addr", "add", &format!("{RP}/32"), "dev", "lo"]);
        h1.ip(&["route", "add", "default", "via", &MCR_H1.to_string()]);
        h2.ip(&["route", "add", "default", "via", &R1_H2.to_string()]);
        mcr_ns.ip(&["route", "add", &format!("{RP}/32"), "via", &R1.to_string()]);
        mcr_ns.ip(&["route", "add", "10.218.2.0/24", "via", &R1.to_string()]);
        r1.start(&format!(
            "ip route 10.218.1.0/24 {MCR}\n\
             interface lo\n ip pim\n!\n\
             interface r1-m\n ip pim\n ip pim hello 1\n!\n\
             interface r1-h2\n ip pim\n ip igmp\n ip igmp query-interval 2\n!\n\
             ip pim rp {RP} 239.0.0.0/8\n"
        ));
        let config = format!(
            "{{ pim: {{ enabled: true, \
               interfaces: [ {{ name: \"m-r1\", hello_interval: 1, triggered_hello_delay: 0.05 }}, \
                             {{ name: \"m-h1\", hello_interval: 1, triggered_hello_delay: 0.05 }} ], \
               static_rp: [ {{ group: \"239.0.0.0/8\", rp: \"{RP}\" }} ], join_prune_interval: 10 }} }}"
        );
        let mcr = Daemon::start_config(&mcr_ns, &config);
        Lab {
            r1,
            mcr,
            h1,
            h2,
            _mcr_ns: mcr_ns,
        }
    }

    /// Send `count` datagrams of PAYLOAD bytes to `group` from h1, DF set
    /// or not, `gap` apart, on a thread inside h1.
    fn send_big(h1: &Netns, group: Ipv4Addr, df: bool, count: usize, gap: Duration) {
        let name = h1.name.clone();
        std::thread::spawn(move || {
            enter(&name);
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
        })
        .join()
        .expect("sender");
    }

    /// Size and IP TTL of the datagrams h2 gets on BIG, read on a thread
    /// inside h2. The TTL tells the path: MCR registers the packet with
    /// the TTL h1 gave it and r1 takes one off when it forwards it out of
    /// the Register; natively MCR and r1 each take one.
    struct SizeReceiver {
        stop: Arc<AtomicBool>,
        got: Arc<Mutex<Vec<(usize, u8)>>>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl SizeReceiver {
        fn join(h2: &Netns) -> SizeReceiver {
            let name = h2.name.clone();
            let stop = Arc::new(AtomicBool::new(false));
            let got = Arc::new(Mutex::new(Vec::new()));
            let (s2, g2) = (stop.clone(), got.clone());
            let (tx, rx) = std::sync::mpsc::channel();
            let thread = std::thread::spawn(move || {
                let s = common::pim_lab::udp_bound_in(&name, PORT);
                s.join_multicast_v4(&BIG, &H2).expect("join");
                s.set_read_timeout(Some(Duration::from_millis(20)))
                    .expect("timeout");
                mcr::sys::sockopt::set_int(s.as_fd(), libc::IPPROTO_IP, libc::IP_RECVTTL, 1)
                    .expect("IP_RECVTTL");
                let _ = tx.send(());
                let mut buf = vec![0u8; 65536];
                while !s2.load(Ordering::Relaxed) {
                    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
                    let mut cmsg = nix::cmsg_space!(libc::c_int);
                    let Ok(m) = nix::sys::socket::recvmsg::<nix::sys::socket::SockaddrIn>(
                        std::os::fd::AsRawFd::as_raw_fd(&s),
                        &mut iov,
                        Some(&mut cmsg),
                        nix::sys::socket::MsgFlags::empty(),
                    ) else {
                        continue;
                    };
                    let ttl = m
                        .cmsgs()
                        .ok()
                        .into_iter()
                        .flatten()
                        .find_map(|c| match c {
                            nix::sys::socket::ControlMessageOwned::Ipv4Ttl(t) => {
                                u8::try_from(t).ok()
                            }
                            _ => None,
                        })
                        .unwrap_or(0);
                    g2.lock().unwrap().push((m.bytes, ttl));
                }
            });
            rx.recv_timeout(Duration::from_secs(5)).expect("joined");
            SizeReceiver {
                stop,
                got,
                thread: Some(thread),
            }
        }
    }

    impl Drop for SizeReceiver {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    #[test]
    fn oversized_data_is_registered_in_fragments_or_refused_with_fragmentation_needed() {
        if !require_frr(
            "oversized_data_is_registered_in_fragments_or_refused_with_fragmentation_needed",
        ) {
            return;
        }
        let lab = lab();
        let t0 = Instant::now();
        wait("PIM adjacency", Duration::from_secs(15), || {
            let v = lab.r1.try_json("show ip pim neighbor json").ok()?;
            v.get("r1-m")?.get(MCR.to_string()).map(|_| ())
        });
        println!("pim_frr_rp_loopback: adjacency after {:?}", t0.elapsed());
        let member = SizeReceiver::join(&lab.h2);
        wait("h2's (*,G) at r1", Duration::from_secs(15), || {
            let v = lab.r1.try_json("show ip pim upstream json").ok()?;
            v.get(BIG.to_string())?.get("*").map(|_| ())
        });
        // Registers arriving at r1 (its PIM socket gets them too).
        let registers = Capture::start(&lab.r1.ns, 103, |p| pim_of(p).first() == Some(&REGISTER));
        // ICMP Fragmentation Needed arriving at h1.
        let icmp = Capture::start(&lab.h1, libc::IPPROTO_ICMP, |p| {
            let m = pim_of(p);
            m.len() >= 8 && m[0] == 3 && m[1] == 4
        });

        // Without DF: fragments, each in a Register that fits the link.
        let sent_at = Instant::now();
        send_big(&lab.h1, BIG, false, 10, Duration::from_millis(50));
        let whole = wait(
            "a whole big datagram at h2",
            Duration::from_secs(10),
            || {
                member
                    .got
                    .lock()
                    .unwrap()
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
            member.got.lock().unwrap()
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
        let report: RegisterReport = lab.mcr.ctl_json(&["pim", "register"]);
        assert!(
            report.counters.register_fragmented >= 1,
            "{:?}",
            report.counters
        );
        assert_eq!(report.counters.frag_needed_tx, 0);

        // With DF: nothing registered, Fragmentation Needed to h1.
        let df_at = Instant::now();
        send_big(&lab.h1, BIG_DF, true, 10, Duration::from_millis(100));
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
        let report: RegisterReport = lab.mcr.ctl_json(&["pim", "register"]);
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

    const H1: Ipv4Addr = Ipv4Addr::new(10, 219, 1, 10);
    const MCR_H1: Ipv4Addr = Ipv4Addr::new(10, 219, 1, 1);
    const MCR: Ipv4Addr = Ipv4Addr::new(10, 219, 12, 2);
    const R1: Ipv4Addr = Ipv4Addr::new(10, 219, 12, 1);
    const R1_H2: Ipv4Addr = Ipv4Addr::new(10, 219, 2, 1);
    const H2: Ipv4Addr = Ipv4Addr::new(10, 219, 2, 10);
    const RP: Ipv4Addr = Ipv4Addr::new(10, 219, 255, 1);
    const G: Ipv4Addr = Ipv4Addr::new(239, 219, 1, 1);

    #[test]
    fn frr_last_hop_joins_the_shared_tree_to_mcr_s_loopback_rp_and_gets_the_data() {
        if !require_frr("frr_last_hop_joins_the_shared_tree_to_mcr_s_loopback_rp_and_gets_the_data")
        {
            return;
        }
        let mut r1 = FrrRouter::new("rplo3");
        let mcr_ns = Netns::new("pimlo3-mcr");
        let h1 = Netns::new("pimlo3-h1");
        let h2 = Netns::new("pimlo3-h2");
        let cidr = |a: Ipv4Addr| format!("{a}/24");
        veth(&mcr_ns, "m-h1", &cidr(MCR_H1), &h1, "h1-m", &cidr(H1));
        veth(&mcr_ns, "m-r1", &cidr(MCR), &r1.ns, "r1-m", &cidr(R1));
        veth(&r1.ns, "r1-h2", &cidr(R1_H2), &h2, "h2-r1", &cidr(H2));
        mcr_ns.ip(&["addr", "add", &format!("{RP}/32"), "dev", "lo"]);
        h1.ip(&["route", "add", "default", "via", &MCR_H1.to_string()]);
        h2.ip(&["route", "add", "default", "via", &R1_H2.to_string()]);
        mcr_ns.ip(&["route", "add", "10.219.2.0/24", "via", &R1.to_string()]);
        r1.start(&format!(
            "ip route {RP}/32 {MCR}\n\
             ip route 10.219.1.0/24 {MCR}\n\
             interface r1-m\n ip pim\n ip pim hello 1\n!\n\
             interface r1-h2\n ip pim\n ip igmp\n ip igmp query-interval 2\n!\n\
             ip pim rp {RP} 239.0.0.0/8\n"
        ));
        let config = format!(
            "{{ pim: {{ enabled: true, \
               interfaces: [ {{ name: \"m-r1\", hello_interval: 1, triggered_hello_delay: 0.05 }}, \
                             {{ name: \"m-h1\", hello_interval: 1, triggered_hello_delay: 0.05 }} ], \
               static_rp: [ {{ group: \"239.0.0.0/8\", rp: \"{RP}\" }} ], join_prune_interval: 10 }} }}"
        );
        let mcr = Daemon::start_config(&mcr_ns, &config);
        let t0 = Instant::now();
        wait("PIM adjacency", Duration::from_secs(15), || {
            let v = r1.try_json("show ip pim neighbor json").ok()?;
            v.get("r1-m")?.get(MCR.to_string()).map(|_| ())
        });
        println!("pim_frr_rp_loopback: adjacency after {:?}", t0.elapsed());

        let member = SeqReceiver::join(&h2, H2, G, PORT);
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
        let _sender = spawn_stream(&h1, G, PORT, "h1-m", RATE, SENT_TTL);
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
