//! MCR as a PIM-SM last-hop router under a real FRR pimd (issue 10, step
//! 3a): FRR r1 is the RP (its loopback) and the first hop of source h1;
//! host h2 sits behind MCR and joins by IGMP.
//!
//! ```text
//! h1 10.205.1.10 ── r1-h1 [r1 FRR, RP lo 10.205.255.1] r1-m 10.205.12.1
//!   ── m-r1 10.205.12.2 [MCR] m-h2 10.205.2.1 ── h2-m 10.205.2.10 h2
//! ```
//!
//! What a user of both routers sees: h2's IGMP membership makes MCR send a
//! (*,G) Join to r1 (`show ip pim join json` lists it on r1-m, `show ip
//! mroute json` sends G out of r1-m), h1's stream reaches h2 through r1 and
//! MCR with h1's source address kept, MCR's `pim routes` shows the joined
//! (*,G); when h2 leaves, MCR prunes, FRR's join state on r1-m goes away
//! and h2 stops receiving. Prints join → first packet and leave → last
//! packet.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::daemon::{send_cmd, Daemon};
use common::frr::{require_frr, FrrRouter};
use common::lab::{mcr_igmp_querier, mcr_pim, FirstHop, Lab, LabSpec, LineAddrs};
use common::pim_lab::{Member, TransitLab};
use common::{KillOnDrop, Netns};
use mcr::control::MrouteEntry;
use mcr::pim::instance::{RpSnapshot, UpstreamSnapshot};

const NET: LineAddrs = LineAddrs::new(205);
const H1: Ipv4Addr = NET.h1;
const R1: Ipv4Addr = NET.r1;
const MCR: Ipv4Addr = NET.mcr;
const H2: Ipv4Addr = NET.h2;
const RP: Ipv4Addr = Ipv4Addr::new(10, 205, 255, 1);
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 205, 1, 1);
const PORT: u16 = 5205;
/// A second source of the group on h1's subnet of the transit lab.
const T_H1B: Ipv4Addr = Ipv4Addr::new(10, 206, 1, 11);
const RATE: u32 = 200;

fn lab() -> Lab {
    let config = format!(
        "{{ {}, {} }}",
        mcr_pim(&["m-r1"], RP, "join_prune_interval: 10"),
        mcr_igmp_querier("m-h2", "last_member_query_interval: 0.2")
    );
    // MCR's unicast routes toward the RP (and the line's toward the
    // source): its RPF.
    LabSpec::line("pimt", 205, FirstHop::Frr)
        .route("mcr", &format!("{RP}/32"), R1)
        .frr_loopback_rp("r1", RP)
        .frr_pim("r1", "r1-h1")
        .frr_pim_link("r1", "r1-m")
        .mcr("mcr", &config)
        .build()
}

/// `mcrctl subscribe --events pim` in the background, read as JSON events.
struct Subscription(common::daemon::EventLines);

impl Subscription {
    fn start(d: &Daemon) -> Subscription {
        Subscription(common::daemon::subscribe(d, "pim"))
    }

    /// The next event named `kind`, skipping others.
    fn next(&self, kind: &str) -> serde_json::Value {
        let end = Instant::now() + Duration::from_secs(10);
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.0.lines.recv_timeout(left) {
                Ok(l) => match serde_json::from_str::<serde_json::Value>(&l) {
                    Ok(v) if v["event"] == kind => return v,
                    _ => {}
                },
                Err(_) => break,
            }
        }
        panic!("no {kind} event");
    }
}

/// h1's stream to `group` at RATE pps (TTL 16, `extra` mcrgen options),
/// stopped on drop.
fn stream(h1: &Netns, group: Ipv4Addr, extra: &[&str]) -> KillOnDrop {
    let mut args = vec!["--ttl", "16"];
    args.extend_from_slice(extra);
    let mut send = send_cmd(
        h1,
        &group.to_string(),
        PORT,
        "h1-r1",
        10_000_000,
        RATE,
        100,
        &args,
    );
    KillOnDrop(send.spawn().expect("spawn mcrgen send"))
}

fn wait<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    common::wait_for(timeout, f).unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// FRR's (*,G) join state for GROUP on r1-m.
fn frr_star_join(r1: &FrrRouter) -> Option<String> {
    frr_join_state(r1, "r1-m", "*")
}

/// FRR's join state of (`source`, GROUP) (`*` for (*,G)) on `ifname`.
fn frr_join_state(r: &FrrRouter, ifname: &str, source: &str) -> Option<String> {
    r.join_state(ifname, GROUP, source)
}

/// Whether FRR's mroute for (h1, GROUP) sends out of r1-m.
fn frr_forwards_to_mcr(r1: &FrrRouter) -> bool {
    let Ok(v) = r1.try_json("show ip mroute json") else {
        return false;
    };
    let g = &v[GROUP.to_string()];
    ["*", &H1.to_string()]
        .iter()
        .any(|s| g[*s]["oil"].get("r1-m").is_some())
}

#[test]
fn mcr_as_last_hop_joins_frr_rp_and_the_host_gets_the_stream_until_it_leaves() {
    if !require_frr("mcr_as_last_hop_joins_frr_rp_and_the_host_gets_the_stream_until_it_leaves") {
        return;
    }
    let lab = lab();
    let took = lab
        .frr("r1")
        .wait_neighbor("r1-m", MCR, Duration::from_secs(15));
    println!("pim_frr_tree: adjacency after {took:?}");
    let rp: Vec<RpSnapshot> = lab.mcr().ctl_json(&["pim", "rp"]);
    assert_eq!(rp.len(), 1);
    assert_eq!(rp[0].rp, RP);
    assert!(!rp[0].i_am_rp);

    let _sender = stream(lab.ns("h1"), GROUP, &[]);
    // Nobody joined: nothing reaches MCR's host.
    std::thread::sleep(Duration::from_secs(1));
    assert!(frr_star_join(lab.frr("r1")).is_none());

    let events = Subscription::start(lab.mcr());
    let mut member = Member::join(lab.ns("h2"), H2, GROUP, PORT, None);
    let join_at = member.joined_at;
    let frr_join = wait("FRR's (*,G) join on r1-m", Duration::from_secs(10), || {
        frr_star_join(lab.frr("r1"))
    });
    let t_frr = join_at.elapsed();
    assert_eq!(frr_join, "JOIN");
    let first = wait("the first packet at h2", Duration::from_secs(10), || {
        member.received().first().copied()
    });
    println!(
        "pim_frr_tree: IGMP join -> FRR join state {:?}, -> first packet at h2 {:?}",
        t_frr,
        first.0 - join_at
    );
    assert_eq!(first.1, H1, "the source address is kept (route mode)");
    assert!(
        frr_forwards_to_mcr(lab.frr("r1")),
        "FRR's mroute sends G to MCR"
    );

    let routes: Vec<UpstreamSnapshot> = lab.mcr().ctl_json(&["pim", "routes"]);
    let star = routes
        .iter()
        .find(|r| r.source.is_none() && r.group == GROUP)
        .unwrap_or_else(|| panic!("no (*,G) in {routes:?}"));
    assert!(star.joined);
    assert_eq!(star.rpf_neighbor, Some(R1));
    assert_eq!(star.upstream_interface.as_deref(), Some("m-r1"));
    assert_eq!(star.outgoing, vec!["m-h2".to_string()]);
    let table = lab.mcr().ctl_ok(&["pim", "routes"]);
    assert!(
        table.contains("joined") && table.contains("m-r1"),
        "{table}"
    );
    let mroute = lab.mcr().ctl_ok(&["mroute"]);
    assert!(mroute.contains("pim"), "{mroute}");
    let ev = events.next("pim-route");
    assert_eq!(ev["group"], GROUP.to_string(), "{ev}");
    assert!(ev["source"].is_null(), "{ev}");
    assert_eq!(ev["upstream"], "m-r1", "{ev}");
    assert_eq!(ev["downstream"], serde_json::json!(["m-h2"]), "{ev}");

    // The stream keeps flowing past several Join periods (10 s here).
    std::thread::sleep(Duration::from_secs(12));
    let n = member.received().len();
    let expect = (first.0.elapsed().as_secs_f64() * f64::from(RATE)) as usize;
    assert!(
        n * 10 >= expect * 8,
        "{n} packets, about {expect} sent since the first"
    );
    assert_eq!(frr_star_join(lab.frr("r1")).as_deref(), Some("JOIN"));

    // Leave: MCR prunes; FRR's join state goes; the stream stops at h2.
    let got = member.received().len();
    let left = member.leave();
    // FRR may keep the channel a while in another state; JOIN must go.
    wait("FRR's join state to go", Duration::from_secs(10), || {
        (frr_star_join(lab.frr("r1")).as_deref() != Some("JOIN")).then_some(())
    });
    let t_prune = left.elapsed();
    let after = member.received()[got..].to_vec();
    println!(
        "pim_frr_tree: leave -> FRR join state gone {t_prune:?}; {} packets were still read before the socket closed",
        after.len()
    );
    let routes: Vec<UpstreamSnapshot> = lab.mcr().ctl_json(&["pim", "routes"]);
    assert!(
        !routes.iter().any(|r| r.joined && r.group == GROUP),
        "{routes:?}"
    );
    let ev = events.next("pim-route-withdrawn");
    assert_eq!(ev["group"], GROUP.to_string(), "{ev}");
    // Nothing is forwarded onto m-h2 any more: h2's interface is quiet.
    std::thread::sleep(Duration::from_millis(500));
    let quiet = lab.ns("h2").received_during("h2-m", Duration::from_secs(2));
    println!("pim_frr_tree: {quiet} packets on h2-m in 2 s after the prune");
    // IGMP queries (every 2 s) and IPv6 noise, not the 400 data packets.
    assert!(quiet <= 10, "{quiet} packets reached h2 after the leave");
}

#[test]
fn mcr_as_transit_between_frr_last_hop_and_frr_rp() {
    if !require_frr("mcr_as_transit_between_frr_last_hop_and_frr_rp") {
        return;
    }
    let lab = TransitLab::new(206, "pimx").build();
    let t = lab.addrs;
    let took = lab.wait_adjacencies(Duration::from_secs(15));
    println!("pim_frr_tree transit: adjacencies after {took:?}");
    let _sender = stream(&lab.h1, GROUP, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let mut member = Member::join(&lab.h2, t.h2, GROUP, PORT, None);
    let join_at = member.joined_at;
    wait("r1's (*,G) join from MCR", Duration::from_secs(10), || {
        (frr_join_state(&lab.r1, "r1-m", "*").as_deref() == Some("JOIN")).then_some(())
    });
    let t_rp = join_at.elapsed();
    let first = wait("the first packet at h2", Duration::from_secs(10), || {
        member.received().first().copied()
    });
    println!(
        "pim_frr_tree transit: IGMP join at r2 -> (*,G) JOIN at the RP through MCR {t_rp:?}, -> first packet at h2 {:?}",
        first.0 - join_at
    );
    assert_eq!(first.1, t.h1);
    let routes: Vec<UpstreamSnapshot> = lab.mcr.ctl_json(&["pim", "routes"]);
    let star = routes
        .iter()
        .find(|r| r.source.is_none() && r.group == GROUP)
        .unwrap_or_else(|| panic!("no (*,G) in {routes:?}"));
    assert!(star.joined);
    assert_eq!(star.rpf_neighbor, Some(t.r1));
    assert_eq!(star.outgoing, vec!["m-r2".to_string()]);
    // FRR r2 moves to the source tree (its default): the (S,G) Join goes
    // through MCR, which joins (S,G) toward r1 too.
    let sg = wait("r1's (S,G) join from MCR", Duration::from_secs(10), || {
        frr_join_state(&lab.r1, "r1-m", &t.h1.to_string()).filter(|s| s == "JOIN")
    });
    assert_eq!(sg, "JOIN");
    std::thread::sleep(Duration::from_secs(3));
    let n = member.received().len();
    let expect = (first.0.elapsed().as_secs_f64() * f64::from(RATE)) as usize;
    assert!(
        n * 10 >= expect * 8,
        "{n} packets, about {expect} sent since the first"
    );

    // Leave. FRR r2 (8.4) prunes (*,G) and (S,G), then sends one more
    // Join(*,G) carrying Prune(S,G,rpt): MCR follows what its downstream
    // neighbor says, so it leaves the source tree toward r1 and keeps S
    // off the RP tree, and keeps (*,G) until r2's holdtime says otherwise.
    let left = member.leave();
    wait(
        "r1's (S,G) join state to go",
        Duration::from_secs(15),
        || {
            (frr_join_state(&lab.r1, "r1-m", &t.h1.to_string()).as_deref() != Some("JOIN"))
                .then_some(())
        },
    );
    println!(
        "pim_frr_tree transit: leave at h2 -> (S,G) join gone at r1 {:?}",
        left.elapsed()
    );
    let routes: Vec<UpstreamSnapshot> = lab.mcr.ctl_json(&["pim", "routes"]);
    assert!(
        !routes.iter().any(|r| r.source == Some(t.h1) && r.joined),
        "{routes:?}"
    );
    let Some(star) = routes.iter().find(|r| r.source.is_none() && r.joined) else {
        println!("pim_frr_tree transit: r2 pruned (*,G) too; no (S,G,rpt) prune to check");
        return;
    };
    assert_eq!(star.rpt_pruned, vec![t.h1], "{routes:?}");

    // The prune reaches forwarding: h1's stream stops on m-r2 while
    // another source of the group still goes down the shared tree.
    let entry = wait(
        "an (S,G) entry that stops h1 on the shared tree",
        Duration::from_secs(10),
        || {
            let m: Vec<MrouteEntry> = lab.mcr.ctl_json(&["mroute"]);
            m.into_iter()
                .find(|e| e.source == Some(t.h1) && e.group == GROUP && e.interface == "m-r1")
        },
    );
    assert!(entry.outputs.is_empty(), "{entry:?}");
    assert_eq!(entry.origin, "pim");
    lab.h1
        .ip(&["addr", "add", &format!("{T_H1B}/24"), "dev", "h1-r1"]);
    let _other = stream(&lab.h1, GROUP, &["--source", &T_H1B.to_string()]);
    // A listener on r2's side of the link sees what MCR sends there.
    let tap = Member::join(&lab.r2.ns, t.r2, GROUP, PORT, None);
    wait("h1b's packets on r2-m", Duration::from_secs(10), || {
        tap.received()
            .iter()
            .any(|(_, s)| *s == T_H1B)
            .then_some(())
    });
    let from = |s: Ipv4Addr| tap.received().iter().filter(|(_, f)| *f == s).count();
    let (a, b) = (from(t.h1), from(T_H1B));
    std::thread::sleep(Duration::from_secs(2));
    let (pruned, other) = (from(t.h1) - a, from(T_H1B) - b);
    println!(
        "pim_frr_tree transit: in 2 s after the (S,G,rpt) prune, m-r2 carried {pruned} packets of h1 and {other} of h1b"
    );
    assert_eq!(pruned, 0, "the pruned source still reaches m-r2");
    assert!(
        other as f64 >= 2.0 * f64::from(RATE) * 0.8,
        "the group's other source should keep the shared tree: {other}"
    );
}

#[test]
fn an_igmpv3_source_member_behind_mcr_joins_the_source_tree_at_frr() {
    if !require_frr("an_igmpv3_source_member_behind_mcr_joins_the_source_tree_at_frr") {
        return;
    }
    // 232/8 is SSM for both routers: no RP, the (S,G) Join goes to S's
    // first hop (r1) at once.
    let group = Ipv4Addr::new(232, 205, 1, 1);
    let lab = lab();
    lab.frr("r1")
        .wait_neighbor("r1-m", MCR, Duration::from_secs(15));
    let _sender = stream(lab.ns("h1"), group, &[]);
    let sg_join = |r1: &FrrRouter| r1.join_state("r1-m", group, &H1.to_string());
    let mut member = Member::join(lab.ns("h2"), H2, group, PORT, Some(H1));
    let join_at = member.joined_at;
    wait("FRR's (S,G) join on r1-m", Duration::from_secs(10), || {
        (sg_join(lab.frr("r1")).as_deref() == Some("JOIN")).then_some(())
    });
    let t_frr = join_at.elapsed();
    let first = wait("the first packet at h2", Duration::from_secs(10), || {
        member.received().first().copied()
    });
    println!(
        "pim_frr_tree ssm: IGMPv3 (S,G) join -> FRR (S,G) join {t_frr:?}, -> first packet {:?}",
        first.0 - join_at
    );
    assert_eq!(first.1, H1);
    let routes: Vec<UpstreamSnapshot> = lab.mcr().ctl_json(&["pim", "routes"]);
    assert!(
        !routes.iter().any(|r| r.source.is_none()),
        "no (*,G) in the SSM range: {routes:?}"
    );
    let sg = routes
        .iter()
        .find(|r| r.source == Some(H1) && r.group == group)
        .unwrap_or_else(|| panic!("no (S,G) in {routes:?}"));
    assert!(sg.joined);
    assert_eq!(sg.rpf_neighbor, Some(R1));
    assert_eq!(sg.outgoing, vec!["m-h2".to_string()]);

    let left = member.leave();
    wait("FRR's (S,G) join to go", Duration::from_secs(10), || {
        (sg_join(lab.frr("r1")).as_deref() != Some("JOIN")).then_some(())
    });
    println!(
        "pim_frr_tree ssm: leave -> FRR (S,G) join gone {:?}",
        left.elapsed()
    );
}

/// An IGMPv3 EXCLUDE {h1} member behind MCR (RFC 7761 §4.1.6
/// pim_exclude): MCR joins (*,G) toward the RP r1 and prunes h1 off the
/// shared tree with Prune(S,G,rpt), which FRR shows as (S,G,rpt) prune
/// state on its link to MCR; the host gets no packet from h1.
#[test]
fn an_igmpv3_exclude_member_behind_mcr_prunes_the_excluded_source_at_frr() {
    if !require_frr("an_igmpv3_exclude_member_behind_mcr_prunes_the_excluded_source_at_frr") {
        return;
    }
    let lab = lab();
    lab.frr("r1")
        .wait_neighbor("r1-m", MCR, Duration::from_secs(15));
    let _sender = KillOnDrop(
        send_cmd(
            lab.ns("h1"),
            &GROUP.to_string(),
            PORT,
            "h1-r1",
            10_000_000,
            RATE,
            100,
            &["--ttl", "16"],
        )
        .spawn()
        .expect("spawn mcrgen send"),
    );
    // The host joins G but blocks h1 (IP_BLOCK_SOURCE): its IGMPv3
    // report says EXCLUDE {h1}. Python's socket module does it without
    // unsafe code here.
    let script = format!(
        "import socket, struct, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('0.0.0.0', {PORT}))\n\
         g, i, src = socket.inet_aton('{GROUP}'), socket.inet_aton('{H2}'), socket.inet_aton('{H1}')\n\
         s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, g + i)\n\
         s.setsockopt(socket.IPPROTO_IP, 38, g + i + src)\n\
         s.settimeout(0.2)\n\
         n = 0\n\
         end = time.time() + 8\n\
         while time.time() < end:\n\
         \x20   try:\n\
         \x20       s.recv(2048); n += 1\n\
         \x20   except socket.timeout:\n\
         \x20       pass\n\
         print(n)\n"
    );
    let host = match lab
        .ns("h2")
        .cmd("python3")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(h) => h,
        Err(e) => {
            eprintln!("SKIP an_igmpv3_exclude_member...: no python3 to block a source ({e})");
            return;
        }
    };
    let joined = Instant::now();
    let rpt = |r1: &FrrRouter| -> Option<(String, String)> {
        let star = frr_join_state(r1, "r1-m", "*")?;
        Some((star, frr_join_state(r1, "r1-m", &H1.to_string())?))
    };
    let (star, s) = wait(
        "FRR's (*,G) join and (S,G,rpt) prune",
        Duration::from_secs(10),
        || rpt(lab.frr("r1")),
    );
    println!(
        "pim_frr_tree exclude: FRR (*,G) {star}, ({H1},G) {s} after {:?}",
        joined.elapsed()
    );
    assert_eq!(star, "JOIN");
    // FRR's name for a downstream (S,G,rpt) in Pruned.
    assert_eq!(s, "SGRpt(P)", "h1 is pruned off the shared tree toward MCR");
    let out = host.wait_with_output().expect("python3 ran");
    let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        got,
        "0",
        "the host excluded h1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
