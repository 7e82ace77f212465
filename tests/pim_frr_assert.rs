//! PIM Assert (RFC 7761 §4.6) between MCR and FRR 8.4 pimd on one LAN, in
//! the daemon: both routers forward the same (S,G) onto a shared LAN, each
//! sees the other's copy there and the Assert leaves one forwarder.
//!
//! ```text
//!           h1 (source, 10.214.1.10)
//!            │  LAN S 10.214.1.0/24 (bridge)
//!     ┌──────┴───────┐
//!   r1-s .1       m-s .2
//!   r1 (FRR)      MCR
//!   r1-l          m-l  (DR on L: dr_priority 10; IGMP querier)
//!     └──────┬───────┴──────── h3 (receiver, 10.214.2.10)
//!            │  LAN L 10.214.2.0/24 (bridge)
//!          r2-l .1
//!          r2 (FRR, route to S via r1)
//!          r2-h2 ── h2 (receiver, 10.214.3.10)
//! ```
//!
//! The group is source-specific (232/8, no RP): h2 joins (h1,G) behind r2,
//! whose unicast route to h1 goes through r1, so r2 joins (h1,G) toward r1
//! and r1 forwards h1 onto L; then h3 joins on L, where MCR is the DR, so
//! MCR forwards h1 onto L too. Both routers are directly connected to S:
//! each advertises preference 0 and metric 0 (MCR: a connected route's
//! distance and priority; FRR: zebra's connected route), so §4.6.1 falls
//! through to the address, and the higher address on L wins. The two
//! tests swap r1's and MCR's addresses on L (.2 and .3) to get both
//! outcomes, and check that both routers agree on the winner and on the
//! metrics advertised, that only the winner forwards onto L afterwards
//! (no duplicate at h3 or h2; the loser's forwarding entry drops L), and
//! that the loser takes over when the winner stops.
//!
//! Two FRR 8.4 behaviours shape the sequence (see `converge`): FRR can
//! assert only once a 31 s scan of its counters has set its SPT bit, and
//! an FRR that could assert and lost keeps forwarding. r1 is DR on S (DR
//! priority 100), which does not matter for SSM.
//!
//! Each test prints: time to adjacency, join → first packet (h2, h3),
//! both forwarding → one forwarder (the duplicated sequence numbers at
//! h3 around the assert, and their span), and the takeover when the winner
//! stops (MCR: its goodbye Hello on shutdown; FRR: pimd killed, so MCR
//! waits for r1's neighbor holdtime, 3.5 s with its 1 s Hello).

mod common;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::daemon::{spawn_stream, Daemon};
use common::frr::{require_frr, FrrRouter};
use common::pim_lab::wait;
use common::recorder::Recorder;
use common::{KillOnDrop, Netns};
use mcr::control::MrouteEntry;
use mcr::pim::instance::{AssertSnapshot, UpstreamSnapshot};
use mcr::pim::state::assert::AssertState;

const H1: Ipv4Addr = Ipv4Addr::new(10, 214, 1, 10);
const R1_S: Ipv4Addr = Ipv4Addr::new(10, 214, 1, 1);
const M_S: Ipv4Addr = Ipv4Addr::new(10, 214, 1, 2);
const R2_L: Ipv4Addr = Ipv4Addr::new(10, 214, 2, 1);
const LOW_L: Ipv4Addr = Ipv4Addr::new(10, 214, 2, 2);
const HIGH_L: Ipv4Addr = Ipv4Addr::new(10, 214, 2, 3);
const H3: Ipv4Addr = Ipv4Addr::new(10, 214, 2, 10);
const R2_H2: Ipv4Addr = Ipv4Addr::new(10, 214, 3, 1);
const H2: Ipv4Addr = Ipv4Addr::new(10, 214, 3, 10);
const GROUP: Ipv4Addr = Ipv4Addr::new(232, 214, 1, 1);
const PORT: u16 = 5214;
const RATE: u32 = 200;

/// Who has the higher address on L, hence wins the assert.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Winner {
    Mcr,
    Frr,
}

struct Lab {
    mcr: Daemon,
    r1: FrrRouter,
    r2: FrrRouter,
    h1: Netns,
    h2: Netns,
    h3: Netns,
    _mcr_ns: Netns,
    _sw: Netns,
    m_l: Ipv4Addr,
    r1_l: Ipv4Addr,
}

/// A veth from `node`'s `ifname` (with `addr`/24) to a port of `bridge`
/// in the switch namespace `sw`.
fn lan_port(sw: &Netns, bridge: &str, port: &str, node: &Netns, ifname: &str, addr: Ipv4Addr) {
    sw.ip(&[
        "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", &node.name,
    ]);
    sw.ip(&["link", "set", port, "master", bridge, "up"]);
    node.ip(&["addr", "add", &format!("{addr}/24"), "dev", ifname]);
    node.ip(&["link", "set", ifname, "up"]);
}

fn lab(tag: &str, winner: Winner) -> Lab {
    let (m_l, r1_l) = match winner {
        Winner::Mcr => (HIGH_L, LOW_L),
        Winner::Frr => (LOW_L, HIGH_L),
    };
    let mut r1 = FrrRouter::new(&format!("{tag}1"));
    let mut r2 = FrrRouter::new(&format!("{tag}2"));
    let mcr_ns = Netns::new(&format!("{tag}-mcr"));
    let sw = Netns::new(&format!("{tag}-sw"));
    let h1 = Netns::new(&format!("{tag}-h1"));
    let h2 = Netns::new(&format!("{tag}-h2"));
    let h3 = Netns::new(&format!("{tag}-h3"));
    // Plain hubs: snooping would hide one router's copy from the other,
    // which is the very thing the Assert needs to see.
    for br in ["br-s", "br-l"] {
        sw.ip(&["link", "add", br, "type", "bridge", "mcast_snooping", "0"]);
        sw.ip(&["link", "set", br, "up"]);
    }
    lan_port(&sw, "br-s", "s-h1", &h1, "h1-s", H1);
    lan_port(&sw, "br-s", "s-r1", &r1.ns, "r1-s", R1_S);
    lan_port(&sw, "br-s", "s-m", &mcr_ns, "m-s", M_S);
    lan_port(&sw, "br-l", "l-r1", &r1.ns, "r1-l", r1_l);
    lan_port(&sw, "br-l", "l-m", &mcr_ns, "m-l", m_l);
    lan_port(&sw, "br-l", "l-r2", &r2.ns, "r2-l", R2_L);
    lan_port(&sw, "br-l", "l-h3", &h3, "h3-l", H3);
    common::veth(
        &r2.ns,
        "r2-h2",
        &format!("{R2_H2}/24"),
        &h2,
        "h2-r2",
        &format!("{H2}/24"),
    );
    h1.ip(&["route", "add", "default", "via", &R1_S.to_string()]);
    h2.ip(&["route", "add", "default", "via", &R2_H2.to_string()]);
    h3.ip(&["route", "add", "default", "via", &m_l.to_string()]);
    // Assert and join transitions in pimd.log, kept when a test fails.
    r1.start(
        "debug pim events\ndebug pim trace\n\
         interface r1-s\n ip pim\n ip pim hello 1\n ip pim drpriority 100\n!\n\
         interface r1-l\n ip pim\n ip pim hello 1\n!\n",
    );
    r2.start(&format!(
        "debug pim events\nip route 10.214.1.0/24 {r1_l}\n\
         interface r2-l\n ip pim\n ip pim hello 1\n!\n\
         interface r2-h2\n ip pim\n ip igmp\n ip igmp query-max-response-time 10\n \
         ip igmp query-interval 2\n!\n"
    ));
    let config = "{ pim: { enabled: true, \
           interfaces: [ { name: \"m-s\", hello_interval: 1, triggered_hello_delay: 0.05 }, \
                         { name: \"m-l\", hello_interval: 1, triggered_hello_delay: 0.05, dr_priority: 10 } ], \
           join_prune_interval: 10 }, \
         igmp: { querier_interfaces: [\"m-l\"], query_interval: 2, query_response_interval: 1 } }";
    let mcr = Daemon::start_config(&mcr_ns, config);
    Lab {
        mcr,
        r1,
        r2,
        h1,
        h2,
        h3,
        _mcr_ns: mcr_ns,
        _sw: sw,
        m_l,
        r1_l,
    }
}

impl Lab {
    fn wait_adjacencies(&self) -> Duration {
        let t0 = Instant::now();
        wait("PIM adjacencies", Duration::from_secs(20), || {
            let a = self.r1.try_json("show ip pim neighbor json").ok()?;
            let b = self.r2.try_json("show ip pim neighbor json").ok()?;
            a.get("r1-s")?.get(M_S.to_string())?;
            a.get("r1-l")?.get(self.m_l.to_string())?;
            b.get("r2-l")?.get(self.m_l.to_string())?;
            b.get("r2-l")?.get(self.r1_l.to_string()).map(|_| ())
        });
        t0.elapsed()
    }

    fn mcr_assert(&self) -> Option<AssertSnapshot> {
        let all: Vec<AssertSnapshot> = self.mcr.ctl_json(&["pim", "assert"]);
        all.into_iter()
            .find(|a| a.interface == "m-l" && a.source == Some(H1) && a.group == GROUP)
    }

    /// FRR r1's row for (h1,G) on r1-l in a `show ip pim assert*` table
    /// (FRR 8.4 prints these as text only): the columns after Interface,
    /// Address, Source and Group.
    fn frr_assert_row(&self, cmd: &str) -> Option<Vec<String>> {
        let out = std::process::Command::new("vtysh")
            .args(["-N", &self.r1.pathspace, "-c", cmd])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines().find_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            (t.len() > 4 && t[0] == "r1-l" && t[2] == H1.to_string() && t[3] == GROUP.to_string())
                .then(|| t[4..].iter().map(|s| s.to_string()).collect())
        })
    }

    /// r1's assert state and winner for (h1,G) on r1-l.
    fn frr_assert(&self) -> Option<(String, Ipv4Addr)> {
        let row = self.frr_assert_row("show ip pim assert")?;
        Some((row.first()?.clone(), row.get(1)?.parse().ok()?))
    }

    /// MCR's (h1,G) protocol route.
    fn mcr_sg(&self) -> Option<UpstreamSnapshot> {
        let routes: Vec<UpstreamSnapshot> = self.mcr.ctl_json(&["pim", "routes"]);
        routes
            .into_iter()
            .find(|r| r.source == Some(H1) && r.group == GROUP)
    }

    /// Whether MCR's forwarding entry for h1's packets on m-s sends out
    /// of m-l (`mroute` describes each output as "G:port on IF ...").
    fn mcr_forwards_on_l(&self) -> bool {
        let m: Vec<MrouteEntry> = self.mcr.ctl_json(&["mroute"]);
        m.into_iter()
            .filter(|e| e.interface == "m-s" && e.group == GROUP && e.source == Some(H1))
            .flat_map(|e| e.outputs)
            .any(|o| o.contains(" on m-l "))
    }

    /// FRR r1's SPTbit(h1,G) (`show ip pim upstream json`).
    fn frr_spt_bit(&self) -> bool {
        let Ok(v) = self.r1.try_json("show ip pim upstream json") else {
            return false;
        };
        let bit = &v[GROUP.to_string()][H1.to_string()]["sptBit"];
        bit.as_bool() == Some(true) || bit.as_str() == Some("true") || bit.as_i64() == Some(1)
    }

    /// Whether r1 forwards (h1,G) out of r1-l: the kernel's multicast
    /// route that FRR installed (`ip mroute show`), which is what moves
    /// packets, rather than FRR's own account of it.
    fn frr_forwards_on_l(&self) -> bool {
        let out = self.r1.ns.ip(&["mroute", "show"]);
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .filter(|l| l.contains(&format!("({H1},{GROUP})")))
            .any(|l| {
                l.split("Oifs:")
                    .nth(1)
                    .is_some_and(|o| o.split_whitespace().any(|i| i.starts_with("r1-l")))
            })
    }

    fn kill_r1_pimd(&self) {
        let pid_file = format!("/var/run/frr/{}/pimd.pid", self.r1.pathspace);
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("no pid in {pid_file}"));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill pimd");
    }
}

/// One mcrgen datagram at a receiver.
#[derive(Clone, Copy, Debug)]
struct Got {
    at: Instant,
    seq: u64,
}

/// A host's source-specific member socket (IGMPv3 INCLUDE {source}): a
/// [`Recorder`] seen as the mcrgen datagrams from that source.
struct SsmReceiver {
    rec: Recorder,
    source: Ipv4Addr,
    joined_at: Instant,
}

impl SsmReceiver {
    fn join(ns: &Netns, local: Ipv4Addr, source: Ipv4Addr) -> SsmReceiver {
        let rec = Recorder::start(ns, PORT, move |s| s.join_ssm_v4(&source, &GROUP, &local));
        let joined_at = rec.joined_at;
        SsmReceiver {
            rec,
            source,
            joined_at,
        }
    }

    fn received(&self) -> Vec<Got> {
        self.rec
            .received()
            .into_iter()
            .filter(|d| d.source == self.source)
            .filter_map(|d| d.seq.map(|seq| Got { at: d.at, seq }))
            .collect()
    }

    fn since(&self, t: Instant) -> Vec<Got> {
        self.received().into_iter().filter(|g| g.at >= t).collect()
    }
}

/// The datagrams whose sequence number arrived more than once, at the
/// time of their second copy.
fn duplicates(got: &[Got]) -> Vec<Got> {
    let mut seen: HashMap<u64, u32> = HashMap::new();
    let mut dups = Vec::new();
    for g in got {
        let n = seen.entry(g.seq).or_default();
        *n += 1;
        if *n == 2 {
            dups.push(*g);
        }
    }
    dups
}

/// Sequence numbers missing between the first and last received.
fn lost(got: &[Got]) -> u64 {
    let mut seqs: Vec<u64> = got.iter().map(|g| g.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    match (seqs.first(), seqs.last()) {
        (Some(lo), Some(hi)) => (hi - lo + 1) - seqs.len() as u64,
        _ => 0,
    }
}

/// The longest silence between consecutive datagrams after `from`, and
/// when it ended.
fn longest_gap(got: &[Got], from: Instant) -> (Duration, Instant) {
    let mut best = (Duration::ZERO, from);
    let mut prev = from;
    for g in got.iter().filter(|g| g.at >= from) {
        let gap = g.at.saturating_duration_since(prev);
        if gap > best.0 {
            best = (gap, g.at);
        }
        prev = g.at;
    }
    best
}

/// The body both tests share up to one forwarder on L; returns the lab,
/// the two receivers and the sender.
fn converge(
    name: &str,
    tag: &str,
    winner: Winner,
    wait_frr_spt: bool,
) -> (Lab, SsmReceiver, SsmReceiver, KillOnDrop, Instant) {
    let lab = lab(tag, winner);
    let adj = lab.wait_adjacencies();
    println!("{name}: adjacencies r1, r2 and MCR on both LANs after {adj:?}");
    let sender = spawn_stream(&lab.h1, GROUP, PORT, "h1-s", RATE, 16);
    // First only r1 forwards onto L, for r2's receiver.
    let h2 = SsmReceiver::join(&lab.h2, H2, H1);
    let first2 = wait("the first packet at h2", Duration::from_secs(15), || {
        h2.received().first().copied()
    });
    println!(
        "{name}: IGMP join at h2 -> first packet at h2 (through r1 and r2) {:?}",
        first2.at - h2.joined_at
    );
    // FRR 8.4 sets SPTbit(S,G) of a directly connected source (and with
    // it CouldAssert, §4.6.2) only in a scan of its (S,G) counters, every
    // 31 s, here 53-57 s after the first packet; until then it cannot
    // assert and takes any Assert as preferred. For FRR to win it must
    // assert: that test waits for the bit. The test where MCR wins does
    // not, because an FRR 8.4 that could assert and lost (from NoInfo on
    // MCR's Assert, or after winning first) shows LOSER in `show ip pim
    // assert` yet keeps the LAN in its kernel route and goes on
    // forwarding (RFC 7761 §4.6.5: lost_assert takes it out of the
    // olist); one that could not assert stops, as it should.
    if wait_frr_spt {
        let bit = common::wait_for(Duration::from_secs(75), || lab.frr_spt_bit().then_some(()));
        if bit.is_none() {
            panic!(
                "r1 did not set its SPT bit for (h1,G) within 75 s: {}",
                lab.r1.json("show ip pim upstream json")
            );
        }
        println!(
            "{name}: r1 sets its SPT bit (FRR's 31 s scan) {:?} after h2's first packet",
            first2.at.elapsed()
        );
    } else {
        println!(
            "{name}: r1's SPT bit before MCR forwards onto L: {} (FRR cannot assert without it)",
            lab.frr_spt_bit()
        );
    }
    // Now MCR wants to forward onto L too, for its own member h3. It has
    // seen r1's copies there all along, so it asserts as it starts
    // (rather than at its next data report, up to 1 s of duplicates
    // later): few or no duplicates reach h3.
    let h3 = SsmReceiver::join(&lab.h3, H3, H1);
    let first3 = wait("the first packet at h3", Duration::from_secs(15), || {
        h3.received().first().copied()
    });
    println!(
        "{name}: IGMP join at h3 -> first packet at h3 {:?}",
        first3.at - h3.joined_at
    );
    // Both routers' asserts settle: MCR and r1 agree on the winner.
    let want_mcr = match winner {
        Winner::Mcr => AssertState::Winner,
        Winner::Frr => AssertState::Loser,
    };
    let want_frr = match winner {
        Winner::Mcr => "LOSER",
        Winner::Frr => "WINNER",
    };
    let agreed = common::wait_for(Duration::from_secs(20), || {
        let m = lab.mcr_assert().filter(|a| a.state == want_mcr)?;
        let f = lab.frr_assert().filter(|(state, _)| state == want_frr)?;
        Some((m, f))
    });
    let Some((ours, (_, frr_winner))) = agreed else {
        panic!(
            "MCR and r1 did not agree on the assert winner on L within 20 s: MCR {:?}, r1 {:?}, \
             MCR's (h1,G) {:?}, r1's mroute {}",
            lab.mcr_assert(),
            lab.frr_assert(),
            lab.mcr_sg(),
            lab.r1.json("show ip mroute json")
        );
    };
    let settled = Instant::now();
    let winner_addr = match winner {
        Winner::Mcr => lab.m_l,
        Winner::Frr => lab.r1_l,
    };
    let w = ours.winner.expect("MCR names a winner");
    // What each side advertises: both have a connected route to h1, so
    // preference and metric tie and the address decides (§4.6.1).
    let frr_metric = lab.frr_assert_row("show ip pim assert-winner-metric");
    println!(
        "{name}: MCR on m-l: {:?}, winner {} (rpt {}, preference {}, metric {}), MCR's own metric \
         (preference {}, metric {}); r1 on r1-l: winner {frr_winner}, winner metric [rpt, pref, metric, addr] {frr_metric:?}",
        ours.state, w.addr, w.rpt, w.preference, w.metric, ours.ours.preference, ours.ours.metric
    );
    assert_eq!(w.addr, winner_addr, "MCR's winner: {ours:?}");
    assert_eq!(frr_winner, winner_addr, "r1's winner");
    assert!(!w.rpt, "an (S,G) assert: {ours:?}");
    // my_assert_metric, a connected route's, also on the loser: it keeps
    // the SPT bit and its member on L, so it could take over at once.
    assert_eq!(
        (ours.ours.preference, ours.ours.metric),
        (0, 0),
        "MCR's own metric: {ours:?}"
    );
    assert_eq!(
        (w.preference, w.metric),
        (0, 0),
        "the winner's advertised metric: {ours:?}"
    );
    let frr_metric = frr_metric.unwrap_or_default();
    assert_eq!(
        frr_metric.get(1..3),
        Some(&["0".to_string(), "0".to_string()][..]),
        "r1's record of the winner's preference and metric: {frr_metric:?}"
    );
    (lab, h3, h2, sender, settled)
}

/// After the assert: no duplicate in a later window at either receiver,
/// the stream keeps its rate, and the loser no longer forwards onto L.
fn check_one_forwarder(name: &str, lab: &Lab, h3: &SsmReceiver, h2: &SsmReceiver, winner: Winner) {
    let got = h3.received();
    let dups = duplicates(&got);
    match (dups.first(), dups.last()) {
        (Some(a), Some(b)) => println!(
            "{name}: both forwarding onto L -> one forwarder: {} duplicates at h3 over {:?}",
            dups.len(),
            b.at - a.at
        ),
        _ => println!(
            "{name}: both forwarding onto L -> one forwarder: no duplicate at h3 (the assert came before a second copy)"
        ),
    }
    // The loser's forwarding state.
    match winner {
        Winner::Mcr => {
            if common::wait_for(Duration::from_secs(5), || {
                (!lab.frr_forwards_on_l()).then_some(())
            })
            .is_none()
            {
                let t = Instant::now() - Duration::from_secs(3);
                panic!(
                    "r1 still forwards onto L: {}\nr1's mroute json {}\nassert {:?}\n{} duplicates at h3 in the last 3 s",
                    String::from_utf8_lossy(&lab.r1.ns.ip(&["mroute", "show"]).stdout),
                    lab.r1.json("show ip mroute json"),
                    lab.frr_assert(),
                    duplicates(&h3.since(t)).len()
                );
            }
            let sg = lab.mcr_sg().expect("MCR's (h1,G)");
            assert!(sg.outgoing.contains(&"m-l".to_string()), "{sg:?}");
            println!("{name}: MCR's (h1,G) downstream: {:?}", sg.downstream);
            assert!(lab.mcr_forwards_on_l(), "the winner keeps L");
        }
        Winner::Frr => {
            wait(
                "MCR's forwarding entry to drop m-l",
                Duration::from_secs(5),
                || (!lab.mcr_forwards_on_l()).then_some(()),
            );
            // With L gone MCR has no outgoing interface left for (h1,G).
            let sg = lab.mcr_sg();
            assert!(
                sg.as_ref()
                    .is_none_or(|r| !r.outgoing.contains(&"m-l".to_string())),
                "{sg:?}"
            );
            assert!(lab.frr_forwards_on_l(), "the winner keeps L");
        }
    }
    // A later window: one copy of each packet, at the full rate.
    let from = Instant::now() + Duration::from_millis(500);
    std::thread::sleep(Duration::from_secs(6));
    for (who, r) in [("h3", h3), ("h2", h2)] {
        let w = r.since(from);
        let d = duplicates(&w);
        println!(
            "{name}: {who} in a {:?} window after the assert: {} packets, {} duplicated, {} lost",
            Duration::from_millis(5500),
            w.len(),
            d.len(),
            lost(&w)
        );
        assert_eq!(d.len(), 0, "duplicates at {who} after the assert");
        assert!(
            w.len() as f64 >= 5.5 * f64::from(RATE) * 0.8,
            "{} packets at {who}",
            w.len()
        );
    }
}

#[test]
fn mcr_wins_the_assert_on_a_lan_shared_with_frr_and_frr_takes_over_when_mcr_stops() {
    let name = "pim_frr_assert mcr wins";
    if !require_frr(name) {
        return;
    }
    let (mut lab, h3, h2, _sender, _settled) = converge(name, "pas", Winner::Mcr, false);
    check_one_forwarder(name, &lab, &h3, &h2, Winner::Mcr);
    // The winner stops: its goodbye Hello ends r1's loser state at once.
    let stop_at = Instant::now();
    lab.mcr.stop();
    std::thread::sleep(Duration::from_secs(6));
    let got = h3.received();
    let (gap, _) = longest_gap(&got, stop_at - Duration::from_millis(100));
    let after: Vec<Got> = h3.since(stop_at + Duration::from_secs(3));
    println!(
        "{name}: MCR stopped -> r1 forwards onto L: longest gap at h3 {gap:?}; {} packets in the last 3 s",
        after.len()
    );
    assert!(lab.frr_forwards_on_l(), "r1 forwards onto L again");
    assert!(gap < Duration::from_secs(3), "takeover took {gap:?}");
    assert!(after.len() as f64 >= 3.0 * f64::from(RATE) * 0.8);
    assert_eq!(duplicates(&after).len(), 0);
}

#[test]
fn frr_wins_the_assert_on_a_lan_shared_with_mcr_and_mcr_takes_over_when_frr_dies() {
    let name = "pim_frr_assert frr wins";
    if !require_frr(name) {
        return;
    }
    let (lab, h3, h2, _sender, _settled) = converge(name, "paf", Winner::Frr, true);
    check_one_forwarder(name, &lab, &h3, &h2, Winner::Frr);
    // The winner dies without a goodbye: MCR forgets it when r1's
    // neighbor holdtime (3.5 × its 1 s Hello) runs out.
    let stop_at = Instant::now();
    lab.kill_r1_pimd();
    let back = wait(
        "MCR to take over forwarding onto L",
        Duration::from_secs(15),
        || lab.mcr_forwards_on_l().then(Instant::now),
    );
    std::thread::sleep(Duration::from_secs(3));
    let got = h3.received();
    let (gap, _) = longest_gap(&got, stop_at - Duration::from_millis(100));
    println!(
        "{name}: r1's pimd killed -> MCR forwards onto L: route back after {:?}, longest gap at h3 {gap:?}",
        back - stop_at
    );
    let state = lab.mcr_assert();
    assert!(
        state.as_ref().is_none_or(|a| a.state != AssertState::Loser),
        "{state:?}"
    );
    assert!(gap < Duration::from_secs(8), "takeover took {gap:?}");
    let after = h3.since(back + Duration::from_secs(1));
    assert!(after.len() as f64 >= 2.0 * f64::from(RATE) * 0.8);
    assert_eq!(duplicates(&after).len(), 0);
}
