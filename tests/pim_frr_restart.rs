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

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::frr::require_frr;
use common::pim_lab::{Member, TransitLab};
use common::wait_for;
use mcr::control::MrouteEntry;

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 207, 1, 1);
const PORT: u16 = 5207;
/// MCR's `join_prune_interval`: how long a restarted actor keeps its
/// predecessor's routes.
const JP_INTERVAL: u64 = 5;

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
    let lab = TransitLab::new(207, "pimr")
        .join_prune_interval(JP_INTERVAL)
        .with_h3()
        .fault_injection()
        .build();
    let (mcr, r2, a) = (&lab.mcr, &lab.r2, lab.addrs);
    let h3 = lab.h3.as_ref().expect("built with h3");
    let _member = Member::join(&lab.h2, a.h2, GROUP, PORT, None);
    let _local = Member::join(h3, a.h3, GROUP, PORT, None);
    let to = |e: &MrouteEntry, ifc: &str| e.outputs.iter().any(|o| o.contains(ifc));
    let star = |m: &Daemon| pim_entries(m).into_iter().find(|e| e.source.is_none());
    let before = wait_for(Duration::from_secs(20), || {
        star(mcr).filter(|e| to(e, "m-r2") && to(e, "m-h3"))
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
        let e = star(mcr).unwrap_or_else(|| panic!("the (*,G) entry left (before: {before:?})"));
        assert!(to(&e, "m-h3"), "h3 lost the stream: {e:?}");
        if !to(&e, "m-r2") {
            gone = Some(panicked.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let gone = gone.unwrap_or_else(|| panic!("m-r2 is still an output: {:?}", star(mcr)));
    println!("pim_frr_restart: the output nobody re-joined was withdrawn {gone:?} after the panic");
    assert!(
        gone >= Duration::from_secs(JP_INTERVAL),
        "withdrawn before the new actor could have re-learned: {gone:?}"
    );
    std::thread::sleep(Duration::from_secs(1));
    let after = star(mcr).expect("the (*,G) entry h3 wants");
    assert!(to(&after, "m-h3") && !to(&after, "m-r2"), "{after:?}");
}
