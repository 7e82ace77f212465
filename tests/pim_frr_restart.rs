//! Drill: MCR's PimActor panics while it is transit between FRR r2 (last
//! hop) and FRR r1 (RP), and r2's pimd dies at the same moment, so nobody
//! re-joins what r2 had asked for (issue 10).
//!
//! ```text
//! h1 ── r1 (FRR, RP) ── m-r1 [MCR] m-r2 ── r2 (FRR, last hop) ── h2
//! ```
//!
//! What a user sees in `mcrctl mroute`: the `pim` entries do not vanish
//! when the actor restarts (the RIB keeps the failed actor's routes while
//! the new one re-learns), and once the new actor has been up for a
//! Join/Prune period its periodic re-send replaces the `pim` set, so the
//! entries nobody re-joined are gone instead of forwarding forever.

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
const RP: Ipv4Addr = Ipv4Addr::new(10, 207, 255, 1);
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 207, 1, 1);
/// MCR's `join_prune_interval`: how long a restarted actor waits before
/// its re-send replaces the RIB's `pim` routes.
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
fn routes_nobody_rejoins_after_a_pim_actor_panic_stay_while_it_relearns_then_go() {
    if !require_frr("routes_nobody_rejoins_after_a_pim_actor_panic_stay_while_it_relearns_then_go")
    {
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
           join_prune_interval: {JP_INTERVAL} }} }}"
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
    let before = wait_for(Duration::from_secs(20), || {
        let e = pim_entries(&mcr);
        e.iter()
            .any(|e| e.source.is_none() && e.outputs.iter().any(|o| o.contains("m-r2")))
            .then_some(e)
    })
    .expect("MCR's (*,G) toward r2 from r2's Join");

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

    // Until the new actor has been up a Join/Prune period, nothing goes.
    while panicked.elapsed() < Duration::from_secs(JP_INTERVAL - 1) {
        let now = pim_entries(&mcr);
        assert!(
            now.iter().any(|e| e.source.is_none()),
            "the (*,G) entry left with the actor: {now:?} (before: {before:?})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The first re-send after that (every 30 s) replaces the set.
    let gone = wait_for(Duration::from_secs(45), || {
        pim_entries(&mcr).is_empty().then(|| panicked.elapsed())
    });
    let gone = gone.unwrap_or_else(|| panic!("stale pim entries: {:?}", pim_entries(&mcr)));
    println!(
        "pim_frr_restart: the routes nobody re-joined were withdrawn {gone:?} after the panic"
    );
    assert!(
        gone >= Duration::from_secs(JP_INTERVAL),
        "withdrawn before the new actor could have re-learned: {gone:?}"
    );
}
