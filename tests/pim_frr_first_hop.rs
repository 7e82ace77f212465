//! MCR as the first-hop DR of a source, registering to a real FRR RP
//! (issue 10, "What the data plane adds"), and the bound on the
//! first-packet upcall.
//!
//! ```text
//! h1 10.207.1.10 ── m-h1 10.207.1.1 [MCR] m-r1 10.207.12.2
//!   ── r1-m 10.207.12.1 [r1 FRR, RP lo 10.207.255.1] r1-h2 10.207.2.1 ── h2 10.207.2.10
//! ```
//!
//! What a user of both routers sees: h2 joins the group at r1 (IGMP); h1
//! starts sending. MCR has no rule for the group, yet its worker on m-h1
//! (which runs only because PIM does) reports the new (S,G); being DR
//! for h1 it encapsulates h1's packets in Registers to r1, which forwards
//! them to h2. r1 then joins (S,G) toward MCR, MCR forwards natively (h1's
//! address kept, TTL decremented), and r1's Register-Stop closes MCR's
//! register tunnel. Prints sender start → first packet at h2, and → the
//! Register-Stop.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::daemon::{inject, spawn_stream, Daemon};
use common::frr::{require_frr, FrrRouter};
use common::lab::{mcr_pim, FirstHop, Lab, LabSpec, LineAddrs};
use common::recorder::Recorder;
use common::{require_root, Netns};
use mcr::ipc::WorkerCounters;
use mcr::wire::UdpPacketSpec;

const NET: LineAddrs = LineAddrs::new(207);
const H1: Ipv4Addr = NET.h1;
const MCR_H1: Ipv4Addr = NET.h1_gw;
const MCR: Ipv4Addr = NET.mcr;
const R1: Ipv4Addr = NET.r1;
const H2: Ipv4Addr = NET.h2;
const RP: Ipv4Addr = Ipv4Addr::new(10, 207, 255, 1);
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 207, 1, 1);
const PORT: u16 = 5207;
const RATE: u32 = 100;
const SEND_TTL: u8 = 16;

fn lab() -> Lab {
    let config = format!(
        "{{ {} }}",
        mcr_pim(&["m-r1", "m-h1"], RP, "join_prune_interval: 10")
    );
    // MCR's unicast routes toward the RP (and the line's toward h2's
    // subnet): its RPF, and where Registers go.
    LabSpec::line("pimf", 207, FirstHop::Mcr)
        .route("mcr", &format!("{RP}/32"), R1)
        .frr_loopback_rp("r1", RP)
        .frr_pim_link("r1", "r1-m")
        .frr_igmp("r1", "r1-h2")
        .mcr("mcr", &config)
        .build()
}

/// A member of GROUP on h2, recording every datagram's source and TTL.
fn member(h2: &Netns) -> Recorder {
    Recorder::start(h2, PORT, |s| s.join_multicast_v4(&GROUP, &H2))
}

/// Seconds since midnight of a log line's RFC 3339 timestamp
/// (`2026-01-01T12:34:56.789012Z ...`).
fn seconds_of_day(line: &str) -> Option<f64> {
    let t = line.get(11..line.find('Z')?)?;
    let mut parts = t.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

fn wait<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    common::wait_for(timeout, f).unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// The counters of MCR's worker on `interface`.
fn worker(d: &Daemon, interface: &str) -> Option<WorkerCounters> {
    d.stats()
        .workers
        .into_iter()
        .find(|w| w.interface == interface)
        .map(|w| w.counters)
}

/// FRR's upstream entry of (H1, GROUP).
fn frr_upstream(r1: &FrrRouter) -> Option<serde_json::Value> {
    let v = r1.try_json("show ip pim upstream json").ok()?;
    v.get(GROUP.to_string())?.get(H1.to_string()).cloned()
}

/// FRR's upstream join state of (H1, GROUP): `Joined` once r1 has
/// joined the source tree toward MCR.
fn frr_sg_join(r1: &FrrRouter) -> Option<String> {
    frr_upstream(r1)?
        .get("joinState")?
        .as_str()
        .map(String::from)
}

#[test]
fn mcr_registers_a_new_source_to_the_frr_rp_until_frr_joins_and_stops_it() {
    if !require_frr("mcr_registers_a_new_source_to_the_frr_rp_until_frr_joins_and_stops_it") {
        return;
    }
    let lab = lab();
    let took = lab
        .frr("r1")
        .wait_neighbor("r1-m", MCR, Duration::from_secs(15));
    println!("pim_frr_first_hop: adjacency after {took:?}");
    // A listen-only worker runs on m-h1: no rule uses it, PIM does.
    wait("a worker on m-h1", Duration::from_secs(10), || {
        worker(lab.mcr(), "m-h1")
    });
    let member = member(lab.ns("h2"));
    wait("r1's IGMP group", Duration::from_secs(10), || {
        let v = lab.frr("r1").try_json("show ip igmp groups json").ok()?;
        v.to_string().contains(&GROUP.to_string()).then_some(())
    });

    let started = Instant::now();
    let _sender = spawn_stream(lab.ns("h1"), GROUP, PORT, "h1-m", RATE, SEND_TTL);
    let first = wait("the first packet at h2", Duration::from_secs(10), || {
        member.received().first().copied()
    });
    let t_first = first.at - started;
    assert_eq!(first.source, H1, "the source address is kept");
    // The first packets came through a Register: MCR punted them.
    let c = wait("punted packets", Duration::from_secs(5), || {
        worker(lab.mcr(), "m-h1").filter(|c| c.punted > 0)
    });
    assert!(c.upcalls >= 1, "{c:?}");
    assert!(
        lab.mcr()
            .log_text()
            .contains(&format!("register tunnel ({H1}, {GROUP}) up")),
        "no register tunnel in MCR's log"
    );
    // FRR knows the source from the Register and joins it toward MCR.
    let join = wait(
        "r1's (S,G) join toward MCR",
        Duration::from_secs(10),
        || frr_sg_join(lab.frr("r1")).filter(|s| s == "Joined"),
    );
    let up = frr_upstream(lab.frr("r1")).unwrap_or_default();
    println!("pim_frr_first_hop: FRR upstream (S,G): {up}");
    assert_eq!(join, "Joined");
    assert_eq!(up["inboundInterface"], "r1-m", "{up}");
    // Native packets reach r1, which stops the Registers.
    let up_line = format!("register tunnel ({H1}, {GROUP}) up");
    let stop_line = format!("register tunnel ({H1}, {GROUP}) down (register state prune)");
    let log = wait("the Register-Stop", Duration::from_secs(10), || {
        let log = lab.mcr().log_text();
        log.contains(&stop_line).then_some(log)
    });
    // From the log's own timestamps: polling the log would measure the poll.
    let at = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .and_then(seconds_of_day)
            .unwrap_or_else(|| panic!("no timestamp on the line with {needle:?}"))
    };
    let t_stop = at(&stop_line) - at(&up_line);
    println!(
        "pim_frr_first_hop: sender start -> first packet at h2 {t_first:?} (through a Register); \
         register tunnel up -> Register-Stop (Prune) at MCR {:.1} ms",
        t_stop * 1000.0
    );
    assert!(t_stop >= 0.0);
    // MCR forwards natively now (route mode: TTL 16 − MCR − r1), and
    // punts nothing more.
    std::thread::sleep(Duration::from_millis(500));
    let p0 = worker(lab.mcr(), "m-h1").map(|c| c.punted).unwrap_or(0);
    let n0 = member.received().len();
    std::thread::sleep(Duration::from_secs(3));
    let p1 = worker(lab.mcr(), "m-h1").map(|c| c.punted).unwrap_or(0);
    let got = member.received();
    let native = &got[n0..];
    println!(
        "pim_frr_first_hop: in 3 s after the Register-Stop h2 got {} packets, MCR punted {}",
        native.len(),
        p1 - p0
    );
    assert_eq!(p1, p0, "MCR still punts after the Register-Stop");
    assert!(
        native.len() as f64 >= 3.0 * f64::from(RATE) * 0.8,
        "{} packets in 3 s",
        native.len()
    );
    assert!(native.iter().all(|d| d.source == H1));
    let ttl = native.last().and_then(|d| d.ttl);
    assert_eq!(ttl, Some(SEND_TTL - 2), "TTL decremented by MCR and r1");
    let up = frr_upstream(lab.frr("r1")).unwrap_or_default();
    println!("pim_frr_first_hop: FRR upstream after the Register-Stop: {up}");
    assert_eq!(up["sptBit"], 1, "r1 gets (S,G) natively: {up}");
}

/// A flood of packets to new (S,G)s on a PIM interface reaches PIM as
/// at most the global upcall rate: the rest is counted, not sent.
#[test]
fn a_flood_of_new_flows_is_bounded_at_the_worker() {
    if !require_root("a_flood_of_new_flows_is_bounded_at_the_worker") {
        return;
    }
    let config = format!(
        "{{ pim: {{ enabled: true, \
           interfaces: [ {{ name: \"m-h1\", hello_interval: 30 }} ], \
           static_rp: [ {{ group: \"239.0.0.0/8\", rp: \"{RP}\" }} ] }} }}"
    );
    let lab = LabSpec::new("pimfl")
        .hosts(&["mcr", "h1"])
        .link(("mcr", "m-h1", MCR_H1), ("h1", "h1-m", H1))
        .mcr("mcr", &config)
        .build();
    let (mcr, h1) = (lab.mcr(), lab.ns("h1"));
    wait("a worker on m-h1", Duration::from_secs(10), || {
        worker(mcr, "m-h1")
    });
    // 3000 packets, each to a group of its own, in one burst.
    let flows = 3000u32;
    let packets: Vec<Vec<u8>> = (0..flows)
        .map(|i| {
            let g = Ipv4Addr::from(u32::from(Ipv4Addr::new(239, 50, 0, 0)) + i);
            UdpPacketSpec::new(H1, g, 4000, PORT).build(b"flood")
        })
        .collect();
    let t = Instant::now();
    inject(h1, "h1-m", &packets);
    let took = t.elapsed();
    let c = wait("the flood counted", Duration::from_secs(10), || {
        worker(mcr, "m-h1").filter(|c| c.upcalls + c.upcalls_suppressed >= u64::from(flows))
    });
    println!(
        "pim_frr_first_hop flood: {flows} new (S,G)s in {took:?}: {} upcalls, {} suppressed",
        c.upcalls, c.upcalls_suppressed
    );
    assert_eq!(c.upcalls + c.upcalls_suppressed, u64::from(flows), "{c:?}");
    // 200 a second at most, in every second the burst touched.
    let seconds = took.as_secs() + 2;
    assert!(
        c.upcalls <= 200 * seconds,
        "{} upcalls in at most {seconds} s",
        c.upcalls
    );
    assert!(c.upcalls_suppressed > 0, "{c:?}");
}

/// How fast Register encapsulation carries a stream, next to the worker's
/// own forwarding of the same packets in the same run. The "RP" is a
/// namespace with no PIM: nothing ever sends a Register-Stop, so the
/// register tunnel stays up for the whole stream.
#[test]
fn register_encapsulation_rate_next_to_native_forwarding() {
    if !require_root("register_encapsulation_rate_next_to_native_forwarding") {
        return;
    }
    let src = Ipv4Addr::new(10, 208, 1, 10);
    let rp = Ipv4Addr::new(10, 208, 12, 1);
    let group = Ipv4Addr::new(239, 208, 1, 1);
    let m_h1 = Ipv4Addr::new(10, 208, 1, 1);
    let config = format!(
        "{{ pim: {{ enabled: true, \
           interfaces: [ {{ name: \"m-h1\", hello_interval: 30 }}, {{ name: \"m-rp\", hello_interval: 30 }} ], \
           static_rp: [ {{ group: \"239.0.0.0/8\", rp: \"{rp}\" }} ] }}, \
         rules: [ {{ name: \"native\", input: {{ interface: \"m-h1\", group: \"{group}\", port: {PORT} }}, \
           outputs: [ {{ interface: \"m-out\", group: \"{group}\", port: {PORT}, mode: \"route\" }} ] }} ] }}"
    );
    let lab = LabSpec::new("pimr")
        .hosts(&["mcr", "rp", "out"])
        .stub("h1", "h1-m", src, ("mcr", "m-h1", m_h1))
        .link(
            ("mcr", "m-rp", Ipv4Addr::new(10, 208, 12, 2)),
            ("rp", "rp-m", rp),
        )
        .link(
            ("mcr", "m-out", Ipv4Addr::new(10, 208, 3, 1)),
            ("out", "out-m", Ipv4Addr::new(10, 208, 3, 10)),
        )
        .mcr("mcr", &config)
        .build();
    let (mcr, h1, rp_ns, out) = (lab.mcr(), lab.ns("h1"), lab.ns("rp"), lab.ns("out"));
    wait("a worker on m-h1", Duration::from_secs(10), || {
        worker(mcr, "m-h1")
    });
    // Open the tunnel with a few packets first.
    let opened = format!("register tunnel ({src}, {group}) up");
    let _warm = common::daemon::send(
        h1,
        &group.to_string(),
        PORT,
        "h1-m",
        20,
        100,
        100,
        &["--ttl", "16"],
    );
    wait("the register tunnel", Duration::from_secs(10), || {
        mcr.log_text().contains(&opened).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    let (rate, secs) = (20_000u32, 3u64);
    let before = (
        rp_ns.rx_packets("rp-m"),
        out.rx_packets("out-m"),
        worker(mcr, "m-h1").unwrap_or_default(),
    );
    let t = Instant::now();
    let sent = common::daemon::send(
        h1,
        &group.to_string(),
        PORT,
        "h1-m",
        u64::from(rate) * secs,
        rate,
        512,
        &["--ttl", "16"],
    );
    let took = t.elapsed();
    // The actor may still be working through its mailbox: Registers are
    // counted until they stop, and their rate over the time they took.
    let mut last = (rp_ns.rx_packets("rp-m"), Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let n = rp_ns.rx_packets("rp-m");
        if n == last.0 {
            break;
        }
        last = (n, Instant::now());
    }
    let registers = last.0 - before.0;
    let reg_secs = (last.1 - t).as_secs_f64().max(took.as_secs_f64());
    let native = out.rx_packets("out-m") - before.1;
    let c = worker(mcr, "m-h1").unwrap_or_default();
    let (punted, dropped) = (
        c.punted - before.2.punted,
        c.punt_dropped - before.2.punt_dropped,
    );
    let secs_f = took.as_secs_f64();
    println!(
        "pim_frr_first_hop encapsulation: {} sent in {took:?}; native forwarding {native} ({:.0}/s); \
         Registers at the RP {registers} in {reg_secs:.2} s ({:.0}/s), ratio to native {:.2}; \
         punted {punted}, punt drops {dropped}",
        sent.sent,
        native as f64 / secs_f,
        registers as f64 / reg_secs,
        (registers as f64 / reg_secs) / (native as f64 / secs_f).max(1.0),
    );
    // Punting costs the worker a copy and a send per packet; its own
    // forwarding must still carry most of the stream.
    assert!(
        native * 100 >= u64::from(rate) * secs * 80,
        "native {native}"
    );
    assert!(registers > 0);
    // A punted packet becomes at most one Register (give or take a Hello);
    // what encapsulation cannot keep up with is dropped, not queued: the
    // Registers end soon after the stream.
    assert!(
        registers * 100 <= punted * 101,
        "punted {punted}, registers {registers}"
    );
    // What is left after the stream is what the IPC socket's buffer held
    // (4 MiB, a few thousand punts) and the 512 queued at the PimActor.
    assert!(
        reg_secs < took.as_secs_f64() + 5.0,
        "Registers went on until {reg_secs:.1} s after the start of a {took:?} stream"
    );
}
