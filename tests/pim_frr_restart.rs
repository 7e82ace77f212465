//! Drill: MCR's PimActor panics while it is transit between FRR r2 (last
//! hop) and FRR r1 (RP), and r2's pimd dies at the same moment, so nobody
//! re-joins what r2 had asked for (issue 10).
//!
//! ```text
//! h1 ── r1 (FRR, RP) ── m-r1 [MCR] m-r2 ── r2 (FRR, last hop) ── h2
//!                               m-h3 ── h3 (IGMP member behind MCR)
//! ```
//!
//! What a user sees in `mcrctl mroute`: the (*,G) entry, which h3 still
//! wants, never leaves, across the restart and after it; r2's share of it
//! (m-r2), which nobody re-joins, stays while the new actor re-learns and
//! goes once it has been up for a Join/Prune period, instead of
//! forwarding to r2 forever.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::daemon::{Daemon, DaemonOpts};
use common::frr::{require_frr, FrrRouter};
use common::{veth, wait_for, Netns};
use mcr::control::MrouteEntry;

const H1: Ipv4Addr = Ipv4Addr::new(10, 207, 1, 10);
const R1_H1: Ipv4Addr = Ipv4Addr::new(10, 207, 1, 1);
const R1: Ipv4Addr = Ipv4Addr::new(10, 207, 12, 1);
const MCR1: Ipv4Addr = Ipv4Addr::new(10, 207, 12, 2);
const MCR2: Ipv4Addr = Ipv4Addr::new(10, 207, 23, 2);
const R2: Ipv4Addr = Ipv4Addr::new(10, 207, 23, 3);
const R2_H2: Ipv4Addr = Ipv4Addr::new(10, 207, 2, 1);
const H2: Ipv4Addr = Ipv4Addr::new(10, 207, 2, 10);
const MCR3: Ipv4Addr = Ipv4Addr::new(10, 207, 3, 1);
const H3: Ipv4Addr = Ipv4Addr::new(10, 207, 3, 10);
const RP: Ipv4Addr = Ipv4Addr::new(10, 207, 255, 1);
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 207, 1, 1);
/// MCR's `join_prune_interval`: how long a restarted actor keeps its
/// predecessor's routes.
const JP_INTERVAL: u64 = 5;

/// h2's membership: a socket joined to GROUP inside h2's namespace until
/// the guard drops.
struct Joined(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

impl Joined {
    fn new(ns: &Netns, local: Ipv4Addr) -> Joined {
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, name) = (stop.clone(), ns.name.clone());
        let t = std::thread::spawn(move || {
            let file = std::fs::File::open(format!("/run/netns/{name}")).expect("open netns");
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
                .expect("udp socket");
            s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5207).into())
                .expect("bind");
            s.join_multicast_v4(&GROUP, &local).expect("join");
            let _s: UdpSocket = s.into();
            while !s2.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Joined(stop, Some(t))
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        if let Some(t) = self.1.take() {
            let _ = t.join();
        }
    }
}

fn pim_entries(mcr: &Daemon) -> Vec<MrouteEntry> {
    let all: Vec<MrouteEntry> = mcr.ctl_json(&["mroute"]);
    all.into_iter()
        .filter(|e| e.origin == "pim" && e.group == GROUP)
        .collect()
}

#[test]
fn after_a_pim_actor_panic_routes_still_wanted_stay_and_the_rest_go_after_a_join_period() {
    if !require_frr("after_a_pim_actor_panic_routes_still_wanted_stay_and_the_rest_go") {
        return;
    }
    let mut r1 = FrrRouter::new("rs1");
    let mut r2 = FrrRouter::new("rs2");
    let mcr_ns = Netns::new("pimr-mcr");
    let h1 = Netns::new("pimr-h1");
    let h2 = Netns::new("pimr-h2");
    let cidr = |a: Ipv4Addr| format!("{a}/24");
    veth(&r1.ns, "r1-h1", &cidr(R1_H1), &h1, "h1-r1", &cidr(H1));
    veth(&r1.ns, "r1-m", &cidr(R1), &mcr_ns, "m-r1", &cidr(MCR1));
    veth(&mcr_ns, "m-r2", &cidr(MCR2), &r2.ns, "r2-m", &cidr(R2));
    veth(&r2.ns, "r2-h2", &cidr(R2_H2), &h2, "h2-r2", &cidr(H2));
    let h3 = Netns::new("pimr-h3");
    veth(&mcr_ns, "m-h3", &cidr(MCR3), &h3, "h3-m", &cidr(H3));
    r1.ns.ip(&["addr", "add", &format!("{RP}/32"), "dev", "lo"]);
    for (dst, via) in [
        (format!("{RP}/32"), R1),
        ("10.207.1.0/24".into(), R1),
        ("10.207.2.0/24".into(), R2),
    ] {
        mcr_ns.ip(&["route", "add", &dst, "via", &via.to_string()]);
    }
    r1.start(&format!(
        "ip route 10.207.2.0/24 {MCR1}\nip route 10.207.23.0/24 {MCR1}\n\
         interface lo\n ip pim\n!\n\
         interface r1-h1\n ip pim\n!\n\
         interface r1-m\n ip pim\n ip pim hello 1\n!\n\
         ip pim rp {RP} 239.0.0.0/8\n"
    ));
    r2.start(&format!(
        "ip route {RP}/32 {MCR2}\nip route 10.207.1.0/24 {MCR2}\n\
         ip route 10.207.12.0/24 {MCR2}\n\
         interface r2-m\n ip pim\n ip pim hello 1\n!\n\
         interface r2-h2\n ip pim\n ip igmp\n ip igmp query-interval 2\n!\n\
         ip pim rp {RP} 239.0.0.0/8\n"
    ));
    let config = format!(
        "{{ pim: {{ enabled: true, \
           interfaces: [ {{ name: \"m-r1\", hello_interval: 1, triggered_hello_delay: 0.05 }}, \
                         {{ name: \"m-r2\", hello_interval: 1, triggered_hello_delay: 0.05 }} ], \
           static_rp: [ {{ group: \"239.0.0.0/8\", rp: \"{RP}\" }} ], \
           join_prune_interval: {JP_INTERVAL} }}, \
         igmp: {{ querier_interfaces: [\"m-h3\"], query_interval: 2, query_response_interval: 1 }} }}"
    );
    let mcr = Daemon::start(
        &mcr_ns,
        DaemonOpts {
            config: Some(&config),
            fault_injection: true,
            ..Default::default()
        },
    );
    let _member = Joined::new(&h2, H2);
    let _local = Joined::new(&h3, H3);
    let to = |e: &MrouteEntry, ifc: &str| e.outputs.iter().any(|o| o.contains(ifc));
    let star = |m: &Daemon| pim_entries(m).into_iter().find(|e| e.source.is_none());
    let before = wait_for(Duration::from_secs(20), || {
        star(&mcr).filter(|e| to(e, "m-r2") && to(e, "m-h3"))
    })
    .expect("MCR's (*,G) toward r2 (its Join) and h3 (IGMP)");

    // r2 dies without a goodbye or a prune, and MCR's PimActor panics.
    let pid_file = format!("/var/run/frr/{}/pimd.pid", r2.pathspace);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pimd pid file")
        .trim()
        .parse()
        .expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill pimd");
    let panicked = Instant::now();
    mcr.ctl_ok(&["fault", "panic-actor", "pim"]);

    // The (*,G) entry never leaves h3. m-r2 stays until the new actor has
    // been up a Join/Prune period, then goes.
    let mut gone = None;
    while panicked.elapsed() < Duration::from_secs(45) {
        let e = star(&mcr).unwrap_or_else(|| panic!("the (*,G) entry left (before: {before:?})"));
        assert!(to(&e, "m-h3"), "h3 lost the stream: {e:?}");
        if !to(&e, "m-r2") {
            gone = Some(panicked.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let gone = gone.unwrap_or_else(|| panic!("m-r2 is still an output: {:?}", star(&mcr)));
    println!("pim_frr_restart: the output nobody re-joined was withdrawn {gone:?} after the panic");
    assert!(
        gone >= Duration::from_secs(JP_INTERVAL),
        "withdrawn before the new actor could have re-learned: {gone:?}"
    );
    std::thread::sleep(Duration::from_secs(1));
    let after = star(&mcr).expect("the (*,G) entry h3 wants");
    assert!(to(&after, "m-h3") && !to(&after, "m-r2"), "{after:?}");
}
