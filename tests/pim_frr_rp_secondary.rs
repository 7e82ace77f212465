//! MCR as the RP of FRR's first hop (issue 10, interop 3), with the RP
//! address a secondary address of MCR's link, which MCR's Hellos list
//! (FRR flags the Address List option): FRR r1, DR for source h1,
//! registers h1's stream to MCR; MCR accepts the Registers on that
//! secondary (RFC 7761 §4.3.1, §4.4.2), has no receiver and answers with
//! a Register-Stop, which FRR obeys (`show ip pim upstream json`
//! `regState`); `mcrctl pim register` shows the RP's record of r1, with
//! later Registers held back rather than each answered.
//!
//! h1 ──h1-r1 / r1-h1── r1 (FRR) ──r1-m / m-r1── MCR (RP on 10.209.255.2)

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::daemon::spawn_stream;
use common::frr::require_frr;
use common::lab::{mcr_pim, LabSpec};
use mcr::pim::instance::{RegisterReport, RpRegisterState};

const H1: Ipv4Addr = Ipv4Addr::new(10, 209, 1, 10);
const R1_H1: Ipv4Addr = Ipv4Addr::new(10, 209, 1, 1);
const R1: Ipv4Addr = Ipv4Addr::new(10, 209, 12, 1);
const MCR: Ipv4Addr = Ipv4Addr::new(10, 209, 12, 2);
/// The RP address: a secondary address of MCR's m-r1.
const RP: Ipv4Addr = Ipv4Addr::new(10, 209, 255, 2);
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 9, 9, 9);

fn wait<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    common::wait_for(timeout, f).unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

#[test]
fn frr_registers_to_mcr_on_a_secondary_address_and_obeys_its_register_stop() {
    if !require_frr("frr_registers_to_mcr_on_a_secondary_address_and_obeys_its_register_stop") {
        return;
    }
    let config = format!("{{ {} }}", mcr_pim(&["m-r1"], RP, ""));
    let lab = LabSpec::new("pimrp")
        .frr("r1")
        .host("mcr")
        .stub("h1", "h1-r1", H1, ("r1", "r1-h1", R1_H1))
        .link(("r1", "r1-m", R1), ("mcr", "m-r1", MCR))
        .addr("mcr", "m-r1", RP)
        .route("mcr", "10.209.1.0/24", R1)
        .route("r1", &format!("{RP}/32"), MCR)
        .frr_pim("r1", "r1-h1")
        .frr_pim_link("r1", "r1-m")
        .frr_rp("r1", RP)
        .mcr("mcr", &config)
        .build();
    let (r1, mcr, h1) = (lab.frr("r1"), lab.mcr(), lab.ns("h1"));
    let t0 = Instant::now();
    // FRR takes MCR's Hellos with the Address List option (the secondary).
    let n = wait(
        "FRR's neighbor entry for MCR",
        Duration::from_secs(15),
        || {
            let v = r1.try_json("show ip pim neighbor r1-m json").ok()?;
            v.get("r1-m")?.get(MCR.to_string()).cloned()
        },
    );
    assert_eq!(n["helloOptionAddressList"], true, "{n}");
    println!("pim_frr_rp: adjacency after {:?}", t0.elapsed());
    let rp_table: Vec<mcr::pim::instance::RpSnapshot> = mcr.ctl_json(&["pim", "rp"]);
    assert!(rp_table[0].i_am_rp, "an RP on a secondary address is us");

    // FRR registers, MCR (no receivers) stops it.
    let _sender = r1.registers_stopped_without_receiver("pim_frr_rp_secondary", GROUP, H1, || {
        spawn_stream(h1, GROUP, 5001, "h1-r1", 50, 16)
    });
    let report: RegisterReport = mcr.ctl_json(&["pim", "register"]);
    let e = report
        .rp
        .iter()
        .find(|e| e.source == H1 && e.group == GROUP)
        .unwrap_or_else(|| panic!("no RP record for h1: {report:?}"));
    // FRR sends its Registers from its address on the source's LAN.
    assert_eq!(e.dr, R1_H1);
    assert_eq!(e.state, RpRegisterState::Stopped);
    assert!(e.registers_rx >= 1 && e.register_stops_tx >= 1, "{e:?}");
    assert_eq!(report.counters.register_dropped, 0);
    assert!(report.dr.is_empty(), "MCR registers nothing itself");
    let text = mcr.ctl_ok(&["pim", "register"]);
    assert!(
        text.contains(&H1.to_string()) && text.contains("register-stop"),
        "{text}"
    );
    // Stopped, FRR stays quiet: a few seconds later MCR has answered at
    // most a handful of Registers, not one per packet (50 per second).
    std::thread::sleep(Duration::from_secs(3));
    let later: RegisterReport = mcr.ctl_json(&["pim", "register"]);
    let e = later
        .rp
        .iter()
        .find(|e| e.source == H1)
        .expect("record kept");
    println!(
        "pim_frr_rp: after 3 s: {} Registers, {} null-Registers, {} Register-Stops sent, {} held back",
        e.registers_rx, e.null_registers_rx, e.register_stops_tx, e.register_stops_suppressed
    );
    assert!(e.register_stops_tx <= 5, "{e:?}");
    // One router per LAN forwards: no assert anywhere.
    let asserts: Vec<mcr::pim::instance::AssertSnapshot> = mcr.ctl_json(&["pim", "assert"]);
    assert!(asserts.is_empty(), "{asserts:?}");
    assert!(mcr.ctl_ok(&["pim", "assert"]).starts_with("INTERFACE"));
    assert_eq!(r1.reg_state(GROUP, H1).as_deref(), Some("RegPrune"));
}
