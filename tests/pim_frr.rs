//! MCR's PIM-SM neighbor layer against a real FRR pimd (issue 10, step 1),
//! MCR in the r2 slot: FRR router r1 and an `mcrd supervisor` namespace
//! joined by a veth.
//!
//! Checks what a user of both routers sees (RFC 7761 §4.3): each lists the
//! other as neighbor (`vtysh show ip pim neighbor json`, `mcrctl pim
//! neighbors`), both name the same DR (`show ip pim interface json`,
//! `mcrctl pim interfaces`) within 2 s, either way round, and after a
//! reload that changes MCR's priority; MCR drops FRR at once on its
//! goodbye and after its holdtime when it goes silent; malformed PIM
//! (truncated, bad checksum, wrong version) is counted and never restarts
//! the PimActor; an adjacency with troglobit pimd (r3 of the lab); and
//! the PimActor starting and stopping as reloads switch PIM on and off.
//! Each test prints the time to adjacency.

mod common;

use common::daemon::{Daemon, DaemonOpts};
use common::frr::{require_frr, require_troglobit_pimd, FrrRouter, TroglobitPimd};
use common::lab::LabSpec;
use common::Netns;
use mcr::control::StatusReport;
use mcr::pim::instance::{InterfaceSnapshot, NeighborSnapshot};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

const R1: Ipv4Addr = Ipv4Addr::new(10, 204, 12, 1);
const MCR: Ipv4Addr = Ipv4Addr::new(10, 204, 12, 2);
const ALL_PIM_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 13);
/// RFC 7761 §4.9 / the issue: both sides agree within this.
const ADJACENCY_BUDGET: Duration = Duration::from_secs(2);
/// FRR's Hello period on the link (holdtime 3.5 x = 4 s, rounded up).
const FRR_HELLO: u32 = 1;

/// Fields drop in order: MCR, r1, then MCR's namespace.
struct Lab {
    mcr: Daemon,
    r1: FrrRouter,
    _ns: common::lab::Lab,
    started: Instant,
}

/// r1 (FRR, DR priority `r1_prio`) ──r1-m / m-r1── MCR (`mcr_prio`).
fn lab(r1_prio: u32, mcr_prio: u32) -> Lab {
    let config = format!(
        "{{ pim: {{ enabled: true, interfaces: [ {{ name: \"m-r1\", dr_priority: {mcr_prio}, \
         hello_interval: 1, triggered_hello_delay: 0.05 }} ] }} }}"
    );
    let mut lab = LabSpec::new("pim")
        .frr("r1")
        .host("mcr")
        .link(("r1", "r1-m", R1), ("mcr", "m-r1", MCR))
        .frr_interface(
            "r1",
            "r1-m",
            &[
                &format!("ip pim hello {FRR_HELLO}"),
                &format!("ip pim drpriority {r1_prio}"),
            ],
        )
        .mcr("mcr", &config)
        .fault_injection()
        .build();
    Lab {
        mcr: lab.take_mcr(),
        r1: lab.take_frr("r1"),
        _ns: lab,
        started: Instant::now(),
    }
}

fn mcr_neighbors(d: &Daemon) -> Vec<NeighborSnapshot> {
    d.ctl_json(&["pim", "neighbors"])
}

fn mcr_interfaces(d: &Daemon) -> Vec<InterfaceSnapshot> {
    d.ctl_json(&["pim", "interfaces"])
}

/// FRR's neighbor entry for MCR on r1-m, if any.
fn frr_sees_mcr(v: &serde_json::Value) -> Option<serde_json::Value> {
    v.get("r1-m")?.get(MCR.to_string()).cloned()
}

/// FRR's DR on r1-m.
fn frr_dr(v: &serde_json::Value) -> Option<Ipv4Addr> {
    v.get("r1-m")?
        .get("pimDesignatedRouter")?
        .as_str()?
        .parse()
        .ok()
}

/// Wait until both routers list each other and name `want_dr`; returns
/// the time from MCR's start.
fn wait_adjacent(lab: &Lab, want_dr: Ipv4Addr) -> Duration {
    let end = lab.started + Duration::from_secs(15);
    loop {
        let ours = mcr_neighbors(&lab.mcr);
        let our_ifs = mcr_interfaces(&lab.mcr);
        let theirs = lab.r1.try_json("show ip pim neighbor json").ok();
        let their_ifs = lab.r1.try_json("show ip pim interface json").ok();
        let we_see = ours
            .iter()
            .any(|n| n.address == R1 && n.interface == "m-r1");
        let they_see = theirs.as_ref().and_then(frr_sees_mcr).is_some();
        let our_dr = our_ifs.first().map(|i| i.dr);
        let their_dr = their_ifs.as_ref().and_then(frr_dr);
        if we_see && they_see && our_dr == Some(want_dr) && their_dr == Some(want_dr) {
            return lab.started.elapsed();
        }
        assert!(
            Instant::now() < end,
            "no adjacency: MCR sees {ours:?} on {our_ifs:?}; FRR sees {theirs:?} with DR {their_dr:?}\nmcrd log:\n{}{}",
            lab.mcr.log_text(),
            lab.r1.log_tail("pimd")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn adjacency_case(r1_prio: u32, mcr_prio: u32, want_dr: Ipv4Addr, label: &str) -> Lab {
    let lab = lab(r1_prio, mcr_prio);
    let t = wait_adjacent(&lab, want_dr);
    println!("pim_frr {label}: adjacency and agreed DR {want_dr} after {t:?}");
    assert!(
        t <= ADJACENCY_BUDGET,
        "adjacency took {t:?}, over {ADJACENCY_BUDGET:?}"
    );
    // What MCR reports about FRR matches what FRR announces.
    let n = mcr_neighbors(&lab.mcr);
    let r1 = n.iter().find(|n| n.address == R1).unwrap();
    assert_eq!(r1.dr_priority, Some(r1_prio));
    assert_eq!(r1.is_dr, want_dr == R1);
    // FRR announces 3.5 x its period, in whole seconds (3 or 4 for 1 s).
    let h = r1.holdtime_secs;
    assert!((3..=4).contains(&h), "FRR's holdtime {h}");
    assert!(r1.expires_in_ms.is_some_and(|ms| ms <= u64::from(h) * 1000));
    assert!(r1.generation_id.is_some(), "FRR sends a generation id");
    // And what FRR reports about MCR matches MCR's configuration.
    let theirs = lab.r1.json("show ip pim neighbor json");
    let m = frr_sees_mcr(&theirs).unwrap();
    assert_eq!(m["drPriority"].as_u64(), Some(u64::from(mcr_prio)), "{m}");
    assert_eq!(m["holdTimeMax"].as_u64(), Some(4), "{m}");
    let text = lab.mcr.ctl_ok(&["pim", "interfaces"]);
    assert!(
        text.contains("m-r1") && text.contains(&want_dr.to_string()),
        "{text}"
    );
    lab
}

#[test]
fn adjacency_with_frr_when_mcr_has_the_higher_dr_priority() {
    if !require_frr("adjacency_with_frr_when_mcr_has_the_higher_dr_priority") {
        return;
    }
    let mut lab = adjacency_case(1, 10, MCR, "MCR is DR");
    // MCR says goodbye when it stops: FRR drops it and takes over as DR
    // at once rather than after MCR's 4 s holdtime.
    let t0 = Instant::now();
    lab.mcr.stop();
    lab.r1.wait_json(
        "show ip pim neighbor json",
        Duration::from_millis(2500),
        |v| frr_sees_mcr(v).is_none().then_some(()),
    );
    lab.r1
        .wait_json("show ip pim interface json", Duration::from_secs(1), |v| {
            (frr_dr(v) == Some(R1)).then_some(())
        });
    println!(
        "pim_frr: FRR dropped MCR {:?} after mcrd stopped",
        t0.elapsed()
    );
}

#[test]
fn adjacency_with_frr_when_frr_has_the_higher_dr_priority() {
    if !require_frr("adjacency_with_frr_when_frr_has_the_higher_dr_priority") {
        return;
    }
    let lab = adjacency_case(10, 1, R1, "FRR is DR");
    // A reload that raises MCR's priority moves the DR to MCR on both
    // sides, and keeps the neighbor (no re-learning from scratch).
    let gen = mcr_interfaces(&lab.mcr)[0].generation_id;
    let path = lab.mcr.config.clone().expect("config file");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("dr_priority: 1,", "dr_priority: 20,")).unwrap();
    let t0 = Instant::now();
    lab.mcr.ctl_ok(&["config", "reload"]);
    lab.r1
        .wait_json("show ip pim interface json", Duration::from_secs(5), |v| {
            (frr_dr(v) == Some(MCR)).then_some(())
        });
    let ifs = mcr_interfaces(&lab.mcr);
    assert_eq!((ifs[0].dr, ifs[0].dr_priority), (MCR, 20), "{ifs:?}");
    assert_eq!(ifs[0].generation_id, gen, "a reload is not a restart");
    assert!(mcr_neighbors(&lab.mcr).iter().any(|n| n.address == R1));
    println!("pim_frr: DR moved to MCR {:?} after a reload", t0.elapsed());
}

/// Stop r1's pimd with `sig` once adjacent; how long MCR took to drop it.
/// Stop r1's pimd with `sig` once adjacent; how long MCR took to drop it.
/// The `pim-neighbor-down` event must say `reason`.
fn drop_after_pimd_stops(sig: nix::sys::signal::Signal, reason: &str) -> Duration {
    let lab = lab(1, 1);
    // Equal priorities: the higher address wins (§4.3.2).
    let t = wait_adjacent(&lab, MCR);
    println!("pim_frr equal priorities: adjacency after {t:?}");
    let sub = common::daemon::subscribe(&lab.mcr, "pim");
    let pid_file = format!("/var/run/frr/{}/pimd.pid", lab.r1.pathspace);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pimd pid file")
        .trim()
        .parse()
        .expect("pid");
    let stopped = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).expect("stop pimd");
    let gone = common::wait_for(Duration::from_secs(8), || {
        mcr_neighbors(&lab.mcr)
            .is_empty()
            .then(|| stopped.elapsed())
    });
    let gone = gone.unwrap_or_else(|| panic!("MCR still lists {:?}", mcr_neighbors(&lab.mcr)));
    println!("pim_frr: neighbor dropped {gone:?} after pimd got {sig}");
    let ifs = mcr_interfaces(&lab.mcr);
    assert_eq!(ifs[0].dr, MCR, "MCR is DR alone: {ifs:?}");
    assert_eq!(ifs[0].neighbors, 0);
    let ev = sub
        .lines
        .recv_timeout(Duration::from_secs(2))
        .expect("a pim event");
    drop(sub);
    let v: serde_json::Value = serde_json::from_str(&ev).expect("event JSON");
    assert_eq!(v["event"], "pim-neighbor-down", "{ev}");
    assert_eq!(v["neighbor"], R1.to_string(), "{ev}");
    assert_eq!(v["reason"], reason, "{ev}");
    gone
}

#[test]
fn mcr_drops_frr_at_once_on_its_goodbye() {
    if !require_frr("mcr_drops_frr_at_once_on_its_goodbye") {
        return;
    }
    // FRR's pimd says goodbye (holdtime 0) when it is stopped.
    let gone = drop_after_pimd_stops(nix::sys::signal::Signal::SIGTERM, "goodbye");
    assert!(gone < Duration::from_secs(2), "{gone:?}");
}

#[test]
fn mcr_drops_a_silent_frr_after_its_holdtime() {
    if !require_frr("mcr_drops_a_silent_frr_after_its_holdtime") {
        return;
    }
    // SIGKILL: no goodbye, so the neighbor lives out FRR's holdtime (3 s
    // for a 1 s Hello), counted from its last Hello, up to 1 s before.
    let gone = drop_after_pimd_stops(nix::sys::signal::Signal::SIGKILL, "expired");
    assert!(
        gone >= Duration::from_millis(1500) && gone <= Duration::from_millis(4500),
        "{gone:?}"
    );
}

/// A Hello with only a Holdtime option (105 s), checksum filled.
fn hello() -> Vec<u8> {
    let mut p = vec![0x20, 0, 0, 0, 0, 1, 0, 2, 0, 105];
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

fn checksum(d: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in d.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        s += u32::from(w);
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Send raw PIM payloads from r1's side of the link.
fn inject(ns: &Netns, packets: Vec<Vec<u8>>) {
    let name = ns.name.clone();
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{name}")).expect("netns");
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(103))).expect("raw");
        s.set_multicast_if_v4(&R1).expect("mcast if");
        s.set_multicast_ttl_v4(1).expect("ttl");
        for p in packets {
            let to = SocketAddrV4::new(ALL_PIM_ROUTERS, 0);
            s.send_to(&p, &to.into()).expect("send");
        }
    })
    .join()
    .expect("inject thread");
}

#[test]
fn malformed_pim_is_counted_and_never_restarts_the_actor() {
    if !require_frr("malformed_pim_is_counted_and_never_restarts_the_actor") {
        return;
    }
    let lab = lab(1, 5);
    let t = wait_adjacent(&lab, MCR);
    println!("pim_frr malformed: adjacency after {t:?}");
    let before = mcr_interfaces(&lab.mcr)[0].counters;
    let good = hello();
    let mut bad_sum = good.clone();
    bad_sum[3] ^= 0xff;
    let mut v3 = good.clone();
    v3[0] = 0x30;
    let c = checksum(&{
        let mut z = v3.clone();
        z[2] = 0;
        z[3] = 0;
        z
    });
    v3[2..4].copy_from_slice(&c.to_be_bytes());
    inject(
        &lab.r1.ns,
        vec![vec![0x20, 0], good[..7].to_vec(), bad_sum, v3, vec![]],
    );
    let after = common::wait_for(Duration::from_secs(3), || {
        let c = mcr_interfaces(&lab.mcr)[0].counters;
        (c.checksum_errors > before.checksum_errors
            && c.wrong_version > before.wrong_version
            && c.malformed >= before.malformed + 2)
            .then_some(c)
    })
    .unwrap_or_else(|| panic!("counters: {:?}", mcr_interfaces(&lab.mcr)));
    println!("pim_frr malformed: counters {after:?}");
    let text = lab.mcr.ctl_ok(&["pim", "interfaces"]);
    assert!(text.contains("BAD"), "{text}");
    let st: StatusReport = lab.mcr.ctl_json(&["status"]);
    let pim = st
        .actors
        .iter()
        .find(|a| a.name == "root/protocols/pim")
        .expect("the pim actor in status");
    assert_eq!(pim.restarts, 0, "{st:?}");
    // FRR is still a neighbor: bad packets changed nothing.
    assert!(mcr_neighbors(&lab.mcr).iter().any(|n| n.address == R1));

    // A panic costs the adjacency only until the next Hellos: the new
    // actor has a new generation id and re-learns FRR.
    let gen_before = mcr_interfaces(&lab.mcr)[0].generation_id;
    lab.mcr.ctl_ok(&["fault", "panic-actor", "pim"]);
    let back = Instant::now();
    let relearned = common::wait_for(Duration::from_secs(5), || {
        let ifs = mcr_interfaces_try(&lab.mcr)?;
        let n = mcr_neighbors_try(&lab.mcr)?;
        (ifs.first()?.generation_id != gen_before && n.iter().any(|n| n.address == R1))
            .then(|| back.elapsed())
    })
    .expect("PIM state rebuilt after a panic");
    println!("pim_frr: neighbor re-learned {relearned:?} after the actor panicked");
}

fn mcr_interfaces_try(d: &Daemon) -> Option<Vec<InterfaceSnapshot>> {
    let o = d.ctl(&["--json", "pim", "interfaces"]);
    serde_json::from_slice(&o.stdout).ok()
}

fn mcr_neighbors_try(d: &Daemon) -> Option<Vec<NeighborSnapshot>> {
    let o = d.ctl(&["--json", "pim", "neighbors"]);
    serde_json::from_slice(&o.stdout).ok()
}

#[test]
fn adjacency_with_troglobit_pimd() {
    if !require_troglobit_pimd("adjacency_with_troglobit_pimd") {
        return;
    }
    const M: Ipv4Addr = Ipv4Addr::new(10, 205, 1, 2);
    const T: Ipv4Addr = Ipv4Addr::new(10, 205, 1, 3);
    let config = "{ pim: { enabled: true, interfaces: [ { name: \"m-r3\", \
                  hello_interval: 1, triggered_hello_delay: 0.05 } ] } }";
    let lab = LabSpec::new("pimtp")
        .hosts(&["mcr", "r3"])
        .link(("mcr", "m-r3", M), ("r3", "r3-m", T))
        .mcr("mcr", config)
        .build();
    let (mcr, r3) = (lab.mcr(), lab.ns("r3"));
    let pimd = TroglobitPimd::start(r3, "phyint r3-m enable\n");
    let t0 = Instant::now();
    // Equal priorities: the higher address, pimd's, is DR on both sides.
    let end = t0 + Duration::from_secs(15);
    let took = loop {
        let ours = mcr_neighbors(mcr);
        let ifs = mcr_interfaces(mcr);
        let view = pimd.try_show().unwrap_or_default();
        // pimd's vif row: "0  10.205.1.3  10.205.1/24  1  DR PIM  10.205.1.2".
        let they_agree = view.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&"10.205.1.3") && f.contains(&"DR") && f.contains(&"10.205.1.2")
        });
        let we_agree = ours.iter().any(|n| n.address == T) && ifs.first().map(|i| i.dr) == Some(T);
        if they_agree && we_agree {
            break t0.elapsed();
        }
        assert!(
            Instant::now() < end,
            "no adjacency with troglobit pimd: MCR {ours:?} {ifs:?}; pimd:\n{view}{}\nmcrd:\n{}",
            pimd.log_tail(),
            mcr.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    println!("pim_frr troglobit pimd: adjacency and agreed DR {T} after {took:?}");
    let n = mcr_neighbors(mcr);
    assert!(n.iter().all(|n| n.generation_id.is_some()), "{n:?}");
    let c = mcr_interfaces(mcr)[0].counters;
    assert_eq!(
        (c.malformed, c.checksum_errors, c.wrong_version),
        (0, 0, 0),
        "pimd's Hellos all decode: {c:?}"
    );
}

/// PIM runs under the protocol supervisor only while the config enables
/// it: a reload that switches it on starts the actor, one that switches
/// it off stops it, and meanwhile the PIM views answer empty rather than
/// fail.
#[test]
fn pim_follows_its_enabled_flag_across_reloads() {
    let ns = Netns::new("pim-onoff");
    let off = "{ pim: { enabled: false, interfaces: [ { name: \"pd0\" } ] } }";
    let d = Daemon::start(
        &ns,
        DaemonOpts {
            config: Some(off),
            ..Default::default()
        },
    );
    let pim_state = |d: &Daemon| {
        let st: StatusReport = d.ctl_json(&["status"]);
        st.actors
            .into_iter()
            .find(|a| a.name == "root/protocols/pim")
            .map(|a| a.state)
    };
    assert_eq!(pim_state(&d), None, "PIM is off");
    assert!(mcr_neighbors(&d).is_empty());
    assert!(mcr_interfaces(&d).is_empty());

    let path = d.config.clone().expect("config file");
    std::fs::write(&path, off.replace("enabled: false", "enabled: true")).unwrap();
    d.ctl_ok(&["config", "reload"]);
    common::wait_for(Duration::from_secs(5), || {
        (pim_state(&d).as_deref() == Some("running")).then_some(())
    })
    .expect("PIM started by the reload");
    assert!(
        mcr_neighbors(&d).is_empty(),
        "no neighbor on a missing link"
    );

    std::fs::write(&path, off).unwrap();
    d.ctl_ok(&["config", "reload"]);
    common::wait_for(Duration::from_secs(5), || {
        pim_state(&d).is_none().then_some(())
    })
    .expect("PIM stopped by the reload");
    assert!(mcr_interfaces(&d).is_empty());
}
