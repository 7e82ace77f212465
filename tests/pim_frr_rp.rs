//! MCR as the RP under a real FRR first-hop router (issue 10, step 3):
//! FRR r1 is the designated router of source h1 and registers its data to
//! MCR, the RP of 239/8 (its address on the link to r1); host h2 behind
//! MCR joins by IGMP.
//!
//! ```text
//! h1 10.207.1.10 ── r1-h1 [r1 FRR, first hop] r1-m 10.207.12.1
//!   ── m-r1 10.207.12.2 [MCR, RP] m-h2 10.207.2.1 ── h2-m 10.207.2.10 h2
//! ```
//!
//! What a user of both routers sees (RFC 7761 §4.4.2): the first packets
//! reach h2 out of FRR's Registers, forwarded by MCR with h1's address
//! and one hop less TTL; MCR joins (S,G) toward h1 (`show ip pim join
//! json` on r1 lists it on r1-m), native data arrives, MCR's workers
//! report it, MCR sets the SPT bit and sends Register-Stop, and FRR's
//! register state for (h1,G) becomes `RegPrune` while h2 keeps receiving
//! (now natively, one more hop of TTL). With no receiver, MCR stops the
//! Registers at once. Prints first-packet latency and the time to the SPT
//! join and to Register-Stop.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::daemon::spawn_stream;
use common::frr::require_frr;
use common::lab::{mcr_igmp_querier, mcr_pim, FirstHop, Lab, LabSpec, LineAddrs};
use common::pim_lab::{mcr_sg, wait, wait_igmp_group, SeqReceiver};
use common::KillOnDrop;
use mcr::pim::instance::RpSnapshot;

const NET: LineAddrs = LineAddrs::new(207);
const H1: Ipv4Addr = NET.h1;
const R1: Ipv4Addr = NET.r1;
const MCR: Ipv4Addr = NET.mcr;
const H2: Ipv4Addr = NET.h2;
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 207, 1, 1);
const PORT: u16 = 5207;
const RATE: u32 = 200;
const SENT_TTL: u8 = 16;

fn lab() -> Lab {
    let config = format!(
        "{{ {}, {} }}",
        mcr_pim(&["m-r1"], MCR, "join_prune_interval: 10"),
        mcr_igmp_querier("m-h2", "last_member_query_interval: 0.2")
    );
    // MCR's route toward the source (the line's) is the RPF of its (S,G)
    // join.
    LabSpec::line("pimrp", 207, FirstHop::Frr)
        .frr_pim("r1", "r1-h1")
        .frr_pim_link("r1", "r1-m")
        .frr_rp("r1", MCR)
        .mcr("mcr", &config)
        .mcr_metrics()
        .build()
}

impl Lab {
    fn wait_adjacency(&self) {
        let took = self
            .frr("r1")
            .wait_neighbor("r1-m", MCR, Duration::from_secs(15));
        println!("pim_frr_rp: adjacency after {took:?}");
        let rp: Vec<RpSnapshot> = self.mcr().ctl_json(&["pim", "rp"]);
        assert!(
            rp.iter().any(|r| r.rp == MCR && r.i_am_rp),
            "MCR should know it is the RP: {rp:?}"
        );
    }

    /// h1's stream to GROUP, TTL `SENT_TTL`.
    fn send(&self) -> KillOnDrop {
        spawn_stream(self.ns("h1"), GROUP, PORT, "h1-r1", RATE, SENT_TTL)
    }

    /// FRR r1's register state for (h1, GROUP) (`RegJoin`, `RegPrune`, ...).
    fn frr_reg_state(&self) -> Option<String> {
        self.frr("r1").reg_state(GROUP, H1)
    }

    /// FRR r1's join state of (h1, GROUP) on its link to MCR.
    fn frr_sg_join(&self) -> Option<String> {
        self.frr("r1").join_state("r1-m", GROUP, &H1.to_string())
    }
}

#[test]
fn mcr_as_rp_forwards_registered_data_joins_the_source_and_stops_the_registers() {
    if !require_frr("mcr_as_rp_forwards_registered_data_joins_the_source_and_stops_the_registers") {
        return;
    }
    let lab = lab();
    lab.wait_adjacency();
    let member = SeqReceiver::join(lab.ns("h2"), H2, GROUP, PORT);
    // h2's membership is known before the source starts, so that the
    // first Register has somewhere to go.
    wait_igmp_group(lab.mcr(), "m-h2", GROUP);

    let sent_at = Instant::now();
    let _sender = lab.send();
    let first = wait("the first packet at h2", Duration::from_secs(10), || {
        member.received().first().copied()
    });
    println!(
        "pim_frr_rp: source start -> first packet at h2 {:?} (TTL {})",
        first.at - sent_at,
        first.ttl
    );
    assert_eq!(first.source, H1, "the source address is kept");
    assert!(
        first.ttl < SENT_TTL,
        "MCR forwards with TTL - 1: sent {SENT_TTL}, got {}",
        first.ttl
    );
    // r1 takes one hop off before it encapsulates (as it would
    // forwarding natively), MCR one more: the same TTL on either path.
    let hops_ttl = SENT_TTL - 2;
    assert_eq!(first.ttl, hops_ttl, "one hop at r1, one at MCR");

    let joined = wait("MCR's (S,G) join at r1", Duration::from_secs(10), || {
        (lab.frr_sg_join().as_deref() == Some("JOIN")).then(Instant::now)
    });
    let stopped = lab
        .frr("r1")
        .wait_reg_state(GROUP, H1, "RegPrune", Duration::from_secs(15));
    println!(
        "pim_frr_rp: first packet -> (S,G) JOIN at r1 {:?}, -> Register-Stop (FRR RegPrune) {:?}",
        joined.saturating_duration_since(first.at),
        stopped.saturating_duration_since(first.at)
    );
    let sg = mcr_sg(lab.mcr(), H1, GROUP);
    assert!(sg.joined, "{sg:?}");
    assert!(sg.spt_bit, "native data set the SPT bit: {sg:?}");
    assert!(sg.keepalive_in_ms.is_some(), "{sg:?}");
    assert_eq!(sg.upstream_interface.as_deref(), Some("m-r1"));
    assert_eq!(sg.rpf_neighbor, Some(R1));

    // After the Register-Stop the stream keeps flowing, natively.
    std::thread::sleep(Duration::from_millis(500));
    let before = member.received().len();
    std::thread::sleep(Duration::from_secs(2));
    let got = member.received();
    let late = &got[before..];
    let decap_after_stop = lab
        .metric("mcr_pim_decapsulated_forwarded_total{interface=\"m-h2\"}")
        .expect("MCR counts decapsulated packets");
    println!(
        "pim_frr_rp: {} packets in 2 s after Register-Stop, TTLs {:?}",
        late.len(),
        late.iter()
            .map(|g| g.ttl)
            .collect::<std::collections::BTreeSet<_>>()
    );
    assert!(
        late.len() as f64 >= 2.0 * f64::from(RATE) * 0.8,
        "{} packets in 2 s at {RATE}/s",
        late.len()
    );
    assert!(
        late.iter().all(|g| g.source == H1 && g.ttl == hops_ttl),
        "native packets cross r1 and MCR: {:?}",
        &late[..late.len().min(5)]
    );
    let seqs: std::collections::BTreeSet<u64> = got.iter().map(|g| g.seq).collect();
    let forwarded = lab
        .metric("mcr_pim_decapsulated_forwarded_total{interface=\"m-h2\"}")
        .expect("MCR counts decapsulated packets");
    println!(
        "pim_frr_rp: {forwarded} packets forwarded out of Registers, {} duplicates at h2 over the switch",
        got.len() - seqs.len()
    );
    assert!(forwarded >= 1.0);
    assert_eq!(
        forwarded, decap_after_stop,
        "after Register-Stop nothing more comes out of Registers"
    );
    // The activity reports that moved MCR to the SPT bit are counted too.
    assert!(lab.metric("mcr_pim_data_reports_total").unwrap_or(0.0) >= 1.0);
}

#[test]
fn with_no_receiver_mcr_as_rp_stops_the_registers_at_once() {
    if !require_frr("with_no_receiver_mcr_as_rp_stops_the_registers_at_once") {
        return;
    }
    let lab = lab();
    lab.wait_adjacency();
    let _sender = lab
        .frr("r1")
        .registers_stopped_without_receiver("pim_frr_rp", GROUP, H1, || lab.send());
    // Nothing to forward and no reason to join the source.
    assert_eq!(
        lab.metric("mcr_pim_decapsulated_forwarded_total{interface=\"m-h2\"}"),
        None
    );
    assert_ne!(lab.frr_sg_join().as_deref(), Some("JOIN"));
    // FRR keeps probing with null-Registers; MCR keeps answering them.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lab.frr_reg_state().as_deref(), Some("RegPrune"));
}
