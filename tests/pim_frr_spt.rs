//! MCR as a PIM-SM last-hop router switching from the RP tree to the
//! source tree (RFC 7761 §4.1.3, §4.2.1, §4.5.7-§4.5.8) between two real
//! FRR routers (issue 10, interop test 4).
//!
//! ```text
//!  h1 10.209.1.10 ── r1-h1 [r1 FRR, h1's DR] r1-r2 10.209.12.1
//!     ── r2-r1 10.209.12.2 [r2 FRR, RP lo 10.209.255.2] r2-m 10.209.23.2
//!     ── m-r2 10.209.23.3 [MCR] m-h2 10.209.2.1 ── h2-m 10.209.2.10 h2
//!  r1-m 10.209.13.1 ── m-r1 10.209.13.3   (r1 ── MCR, the shorter path to h1)
//! ```
//!
//! What a user of the three routers sees: h2's IGMP membership makes MCR
//! join (*,G) toward the RP r2 and h1's stream reaches h2 down the RP tree
//! (r1 → r2 → MCR, three hops of TTL). On that first packet MCR joins
//! (h1,G) toward r1 (FRR r1's `show ip pim join json` lists it on r1-m and
//! its mroute sends G out of r1-m), sets the SPT bit once data arrives from
//! r1 and prunes h1 off the RP tree (r2 shows `SGRpt(P)` on r2-m). h2 keeps
//! receiving, now one hop of TTL sooner, with a bounded gap and no
//! duplicates. With `spt_switchover: "never"` MCR stays on the RP tree.
//! Prints join → first packet, first packet → SPT switch, and the packets
//! lost and duplicated across the switch.

mod common;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::daemon::spawn_stream;
use common::frr::{require_frr, FrrRouter};
use common::lab::{mcr_igmp_querier, mcr_pim, Lab, LabSpec};
use common::pim_lab::{wait, Got, SeqReceiver};
use common::KillOnDrop;
use mcr::pim::instance::UpstreamSnapshot;

const H1: Ipv4Addr = Ipv4Addr::new(10, 209, 1, 10);
const R1_H1: Ipv4Addr = Ipv4Addr::new(10, 209, 1, 1);
const R1_R2: Ipv4Addr = Ipv4Addr::new(10, 209, 12, 1);
const R2_R1: Ipv4Addr = Ipv4Addr::new(10, 209, 12, 2);
const R2_M: Ipv4Addr = Ipv4Addr::new(10, 209, 23, 2);
const M_R2: Ipv4Addr = Ipv4Addr::new(10, 209, 23, 3);
const R1_M: Ipv4Addr = Ipv4Addr::new(10, 209, 13, 1);
const M_R1: Ipv4Addr = Ipv4Addr::new(10, 209, 13, 3);
const M_H2: Ipv4Addr = Ipv4Addr::new(10, 209, 2, 1);
const H2: Ipv4Addr = Ipv4Addr::new(10, 209, 2, 10);
const RP: Ipv4Addr = Ipv4Addr::new(10, 209, 255, 2);
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 209, 1, 1);
const PORT: u16 = 5209;
const RATE: u32 = 200;
const SENT_TTL: u8 = 16;
/// TTL at h2 down the RP tree: r1, r2 and MCR each take one.
const RPT_TTL: u8 = SENT_TTL - 3;
/// TTL at h2 down the source tree: r1 and MCR.
const SPT_TTL: u8 = SENT_TTL - 2;

/// The three routers and two hosts; `spt` is MCR's `spt_switchover`.
fn lab(spt: &str) -> Lab {
    let config = format!(
        "{{ {}, {} }}",
        mcr_pim(
            &["m-r1", "m-r2"],
            RP,
            &format!("spt_switchover: \"{spt}\", join_prune_interval: 10")
        ),
        mcr_igmp_querier("m-h2", "last_member_query_interval: 0.2")
    );
    let rp32 = format!("{RP}/32");
    LabSpec::new("pims")
        .frr("r1")
        .frr("r2")
        .host("mcr")
        .stub("h1", "h1-r1", H1, ("r1", "r1-h1", R1_H1))
        .link(("r1", "r1-r2", R1_R2), ("r2", "r2-r1", R2_R1))
        .link(("r2", "r2-m", R2_M), ("mcr", "m-r2", M_R2))
        .link(("r1", "r1-m", R1_M), ("mcr", "m-r1", M_R1))
        .stub("h2", "h2-m", H2, ("mcr", "m-h2", M_H2))
        // MCR's RPF: the RP through r2, the source straight through r1.
        .routes(
            "mcr",
            &[
                (&rp32, R2_M),
                ("10.209.12.0/24", R2_M),
                ("10.209.1.0/24", R1_M),
            ],
        )
        .routes(
            "r1",
            &[
                (&rp32, R2_R1),
                ("10.209.23.0/24", R2_R1),
                ("10.209.2.0/24", M_R1),
            ],
        )
        .frr_pim("r1", "r1-h1")
        .frr_pim_link("r1", "r1-r2")
        .frr_pim_link("r1", "r1-m")
        .frr_rp("r1", RP)
        .routes(
            "r2",
            &[
                ("10.209.1.0/24", R1_R2),
                ("10.209.13.0/24", R1_R2),
                ("10.209.2.0/24", M_R2),
            ],
        )
        .frr_loopback_rp("r2", RP)
        .frr_pim_link("r2", "r2-r1")
        .frr_pim_link("r2", "r2-m")
        .mcr("mcr", &config)
        .build()
}

impl Lab {
    fn wait_adjacencies(&self) {
        let t0 = Instant::now();
        wait("PIM adjacencies", Duration::from_secs(20), || {
            let a = self.frr("r1").try_json("show ip pim neighbor json").ok()?;
            let b = self.frr("r2").try_json("show ip pim neighbor json").ok()?;
            a.get("r1-m")?.get(M_R1.to_string())?;
            a.get("r1-r2")?.get(R2_R1.to_string())?;
            b.get("r2-m")?.get(M_R2.to_string()).map(|_| ())
        });
        println!("pim_frr_spt: adjacencies after {:?}", t0.elapsed());
    }

    fn send(&self) -> KillOnDrop {
        spawn_stream(self.ns("h1"), GROUP, PORT, "h1-r1", RATE, SENT_TTL)
    }

    /// h1's stream, returned once r1's Registers are stopped. r1 registers
    /// h1 to the RP, which has no receiver yet and stops the Registers: from
    /// here on the RP tree carries h1 natively (r1 -> r2 -> MCR, RPT_TTL),
    /// never decapsulated (r1 does not count a hop for a Register, which
    /// would make it look like the source tree).
    fn send_until_registers_stop(&self) -> KillOnDrop {
        let sender = self.send();
        wait(
            "r1's Registers to be stopped",
            Duration::from_secs(10),
            || (self.frr_reg_state().as_deref() == Some("RegPrune")).then_some(()),
        );
        sender
    }

    /// FRR r1's register state for (h1, GROUP) (`RegJoin`, `RegPrune`, ...).
    fn frr_reg_state(&self) -> Option<String> {
        self.frr("r1").reg_state(GROUP, H1)
    }

    fn routes(&self) -> Vec<UpstreamSnapshot> {
        self.mcr().ctl_json(&["pim", "routes"])
    }

    /// MCR's (h1, GROUP) row.
    fn sg(&self) -> Option<UpstreamSnapshot> {
        self.routes()
            .into_iter()
            .find(|r| r.source == Some(H1) && r.group == GROUP)
    }
}

/// FRR's join state of (`source`, GROUP) (`*` for (*,G)) on `ifname`.
fn frr_join_state(r: &FrrRouter, ifname: &str, source: &str) -> Option<String> {
    r.join_state(ifname, GROUP, source)
}

/// Whether FRR's mroute for (`source`, GROUP) sends out of `ifname`.
fn frr_oil_has(r: &FrrRouter, source: &str, ifname: &str) -> bool {
    let Ok(v) = r.try_json("show ip mroute json") else {
        return false;
    };
    v[GROUP.to_string()][source]["oil"].get(ifname).is_some()
}

/// Sequence numbers missing between the first and last received, and
/// sequence numbers received more than once.
fn lost_and_duplicated(got: &[Got]) -> (u64, u64) {
    let mut seen: HashMap<u64, u32> = HashMap::new();
    for g in got {
        *seen.entry(g.seq).or_default() += 1;
    }
    let dup = seen.values().map(|n| u64::from(n - 1)).sum();
    let (Some(lo), Some(hi)) = (seen.keys().min(), seen.keys().max()) else {
        return (0, dup);
    };
    let lost = (hi - lo + 1) - seen.len() as u64;
    (lost, dup)
}

#[test]
fn mcr_last_hop_switches_to_the_source_tree_through_frr_and_prunes_the_rp_tree() {
    if !require_frr("mcr_last_hop_switches_to_the_source_tree_through_frr_and_prunes_the_rp_tree") {
        return;
    }
    let lab = lab("immediate");
    lab.wait_adjacencies();
    let _sender = lab.send_until_registers_stop();
    let member = SeqReceiver::join(lab.ns("h2"), H2, GROUP, PORT);
    let join_at = member.joined_at;

    let first = wait("the first packet at h2", Duration::from_secs(15), || {
        member.received().first().copied()
    });
    println!(
        "pim_frr_spt: IGMP join -> first packet at h2 {:?} (TTL {})",
        first.at - join_at,
        first.ttl
    );
    assert_eq!(first.source, H1, "route mode keeps the source address");
    assert_eq!(
        first.ttl, RPT_TTL,
        "the first packets come down the RP tree, r1 -> r2 -> MCR"
    );

    // MCR joins (h1,G) toward r1 on the direct link.
    let sg_join = wait("r1's (h1,G) join from MCR", Duration::from_secs(10), || {
        frr_join_state(lab.frr("r1"), "r1-m", &H1.to_string()).filter(|s| s == "JOIN")
    });
    assert_eq!(sg_join, "JOIN");
    let t_frr_join = first.at.elapsed();
    wait(
        "r1's mroute to send h1 out of r1-m",
        Duration::from_secs(10),
        || frr_oil_has(lab.frr("r1"), &H1.to_string(), "r1-m").then_some(()),
    );
    // MCR's route: the SPT bit, upstream toward r1.
    let sg = wait(
        "MCR's (h1,G) with the SPT bit",
        Duration::from_secs(10),
        || lab.sg().filter(|r| r.joined && r.spt_bit),
    );
    assert_eq!(sg.upstream_interface.as_deref(), Some("m-r1"), "{sg:?}");
    assert_eq!(sg.rpf_neighbor, Some(R1_M), "{sg:?}");
    assert_eq!(sg.outgoing, vec!["m-h2".to_string()], "{sg:?}");
    let table = lab.mcr().ctl_ok(&["pim", "routes"]);
    assert!(table.contains("m-r1"), "{table}");

    // h1 is pruned off the RP tree at r2.
    let rpt = wait(
        "r2's (h1,G,rpt) prune from MCR",
        Duration::from_secs(10),
        || {
            frr_join_state(lab.frr("r2"), "r2-m", &H1.to_string())
                .filter(|s| s.starts_with("SGRpt"))
        },
    );
    assert_eq!(rpt, "SGRpt(P)", "h1 is pruned off the RP tree toward MCR");
    let star = lab
        .routes()
        .into_iter()
        .find(|r| r.source.is_none() && r.group == GROUP)
        .unwrap_or_else(|| panic!("no (*,G) at MCR"));
    assert!(star.joined, "{star:?}");
    assert_eq!(star.upstream_interface.as_deref(), Some("m-r2"), "{star:?}");
    assert_eq!(star.rpt_pruned, vec![H1], "{star:?}");

    // The stream now comes the short way; measure across the switch.
    let spt_first = wait(
        "a packet down the source tree",
        Duration::from_secs(10),
        || member.received().into_iter().find(|g| g.ttl == SPT_TTL),
    );
    println!(
        "pim_frr_spt: first packet -> (h1,G) JOIN seen at r1 by polling vtysh {t_frr_join:?}; -> first packet down the source tree (the SPT switch) {:?}",
        spt_first.at - first.at
    );
    std::thread::sleep(Duration::from_secs(3));
    let got = member.received();
    let last = got.last().copied().expect("packets");
    let (lost, dup) = lost_and_duplicated(&got);
    let rpt_n = got.iter().filter(|g| g.ttl == RPT_TTL).count();
    let spt_n = got.iter().filter(|g| g.ttl == SPT_TTL).count();
    println!(
        "pim_frr_spt: {} packets at h2 ({rpt_n} down the RP tree, {spt_n} down the source tree): {lost} lost, {dup} duplicated across the switch",
        got.len()
    );
    assert!(
        got.iter().all(|g| g.source == H1),
        "only h1's packets at h2"
    );
    assert_eq!(
        rpt_n + spt_n,
        got.len(),
        "every packet took one of the two paths"
    );
    // Once on the source tree, nothing comes down the RP tree any more.
    let tail: Vec<&Got> = got
        .iter()
        .filter(|g| g.at > spt_first.at + Duration::from_millis(500))
        .collect();
    assert!(!tail.is_empty());
    assert!(
        tail.iter().all(|g| g.ttl == SPT_TTL),
        "packets still come down the RP tree after the switch"
    );
    assert_eq!(dup, 0, "duplicates across the switch");
    // 50 ms of the stream at most.
    assert!(
        lost <= u64::from(RATE) / 20,
        "{lost} packets lost across the switch"
    );
    // The stream keeps flowing at the sent rate.
    let span = (last.at - first.at).as_secs_f64();
    assert!(
        got.len() as f64 >= span * f64::from(RATE) * 0.8,
        "{} packets in {span:.1} s",
        got.len()
    );
    // The switch holds across Join periods (10 s here).
    std::thread::sleep(Duration::from_secs(11));
    assert_eq!(
        frr_join_state(lab.frr("r1"), "r1-m", &H1.to_string()).as_deref(),
        Some("JOIN")
    );
    assert_eq!(
        frr_join_state(lab.frr("r2"), "r2-m", &H1.to_string()).as_deref(),
        Some("SGRpt(P)")
    );
    let late = member.received();
    let n_late = late.iter().filter(|g| g.at > last.at).count();
    assert!(
        n_late as f64 >= 11.0 * f64::from(RATE) * 0.8,
        "{n_late} packets in the 11 s after the switch"
    );
    assert!(late
        .iter()
        .filter(|g| g.at > last.at)
        .all(|g| g.ttl == SPT_TTL));
    let (lost, dup) = lost_and_duplicated(&late);
    println!("pim_frr_spt: after 11 more s: {lost} lost, {dup} duplicated in all");
    assert_eq!(dup, 0);
}

#[test]
fn with_spt_switchover_never_mcr_stays_on_the_frr_rp_tree() {
    if !require_frr("with_spt_switchover_never_mcr_stays_on_the_frr_rp_tree") {
        return;
    }
    let lab = lab("never");
    lab.wait_adjacencies();
    // No Register is in flight, so each packet's TTL names its path.
    let _sender = lab.send_until_registers_stop();
    let member = SeqReceiver::join(lab.ns("h2"), H2, GROUP, PORT);
    let first = wait("the first packet at h2", Duration::from_secs(15), || {
        member.received().first().copied()
    });
    println!(
        "pim_frr_spt never: IGMP join -> first packet at h2 {:?}",
        first.at - member.joined_at
    );
    wait("(*,G) JOIN at r2 from MCR", Duration::from_secs(10), || {
        (frr_join_state(lab.frr("r2"), "r2-m", "*").as_deref() == Some("JOIN")).then_some(())
    });
    // Long enough for a switch to show (it takes well under a second).
    std::thread::sleep(Duration::from_secs(4));
    let got = member.received();
    assert!(
        got.iter().all(|g| g.ttl == RPT_TTL),
        "every packet comes down the RP tree"
    );
    assert!(
        got.len() as f64 >= 4.0 * f64::from(RATE) * 0.8,
        "{} packets",
        got.len()
    );
    let (lost, dup) = lost_and_duplicated(&got);
    println!(
        "pim_frr_spt never: {} packets, {lost} lost, {dup} duplicated",
        got.len()
    );
    assert_eq!(dup, 0);
    assert_eq!(frr_join_state(lab.frr("r1"), "r1-m", &H1.to_string()), None);
    assert!(!frr_oil_has(lab.frr("r1"), &H1.to_string(), "r1-m"));
    assert_eq!(frr_join_state(lab.frr("r2"), "r2-m", &H1.to_string()), None);
    let routes = lab.routes();
    assert!(
        !routes.iter().any(|r| r.source == Some(H1) && r.joined),
        "{routes:?}"
    );
    let star = routes
        .iter()
        .find(|r| r.source.is_none() && r.group == GROUP)
        .unwrap_or_else(|| panic!("no (*,G) in {routes:?}"));
    assert!(star.joined && star.rpt_pruned.is_empty(), "{star:?}");
    assert_eq!(star.upstream_interface.as_deref(), Some("m-r2"));
}
