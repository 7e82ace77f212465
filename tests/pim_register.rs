//! Register and Register-Stop (RFC 7761 §4.4) between a first-hop DR and
//! an RP on the virtual-clock simulator, and against FRR's captured
//! Register, null-Register and Register-Stop.
//!
//! Topology: the source 10.0.1.10 is on the DR's interface 10 (LAN 0);
//! the DR's interface 11 and the RP's interface 20 share LAN 1; the RP's
//! interface 21 leads to receivers. 239.0.0.0/8 has the RP 10.1.0.2.

#[path = "pim/facts.rs"]
mod facts;
use facts::*;

use std::sync::Arc;
use std::time::Duration;

use std::net::Ipv4Addr;

use mcr::pim::codec::{self, EncodedGroup, Message, RegisterStop};
use mcr::pim::instance::Decapsulated;
use mcr::pim::state::register::RegisterState;
use mcr::pim::{PimEvent, PimInput, PimInstance};
use mcr::proto::sim::{NodeId, Sim};
use mcr::proto::Protocol;

const SRC: &str = "10.0.1.10";
const GRP: &str = "239.1.1.1";
const RP: &str = "10.1.0.2";
const DR_CORE: &str = "10.1.0.1";

struct Net {
    sim: Sim<PimInstance>,
    dr: NodeId,
    dr_view: Arc<View>,
    rp: NodeId,
    rp_view: Arc<View>,
}

fn net(rp_groups: &[(&str, &str)]) -> Net {
    let mut sim = Sim::new(7);
    let (src_lan, core, _rx) = (sim.add_lan(), sim.add_lan(), sim.add_lan());
    let (dr, dr_view) = router(
        &mut sim,
        1,
        &[(src_lan, 10, "10.0.1.1"), (core, 11, DR_CORE)],
        config(
            &[("if10", 1), ("if11", 1)],
            &[("239.0.0.0/8", RP), ("238.0.0.0/8", RP)],
        ),
    );
    dr_view.set(|f| {
        f.rpf.insert(ip(RP), 11);
        f.connected.push((ip(SRC), 10));
    });
    let (rp, rp_view) = router(
        &mut sim,
        2,
        &[(core, 20, RP), (2, 21, "10.2.0.1")],
        config(&[("if20", 1), ("if21", 1)], rp_groups),
    );
    rp_view.set(|f| {
        f.rpf.insert(ip(DR_CORE), 20);
        f.switch_to_spt = true;
    });
    sim.run_for(SEC);
    Net {
        sim,
        dr,
        dr_view,
        rp,
        rp_view,
    }
}

impl Net {
    fn dr_view_connect(&self, source: &str) {
        self.dr_view.set(|f| f.connected.push((ip(source), 10)));
    }

    fn data(&mut self, group: &str, payload: &[u8]) {
        let packet = udp(SRC, group, 16, payload);
        self.sim.input(
            self.dr,
            PimInput::RegisterData {
                ifindex: 10,
                packet,
            },
        );
        self.sim.run_for(Duration::from_millis(10));
    }

    /// (time, null?) of every Register the DR sent.
    fn registers(&self) -> Vec<(Duration, bool)> {
        sent_by(&self.sim, self.dr)
            .into_iter()
            .filter_map(|(at, dst, m)| match m {
                Message::Register(r) => {
                    assert_eq!(dst, ip(RP), "Registers go unicast to the RP");
                    Some((at, r.null))
                }
                _ => None,
            })
            .collect()
    }

    fn register_stops(&self) -> Vec<(Duration, RegisterStop)> {
        sent_by(&self.sim, self.rp)
            .into_iter()
            .filter_map(|(at, dst, m)| match m {
                Message::RegisterStop(rs) => {
                    assert_eq!(dst, ip(DR_CORE), "Register-Stops go back to the DR");
                    Some((at, rs))
                }
                _ => None,
            })
            .collect()
    }

    fn tunnel(&self) -> Vec<(Duration, bool)> {
        events_of(&self.sim, self.dr)
            .into_iter()
            .filter_map(|(at, e)| match e {
                PimEvent::RegisterTunnel { up, .. } => Some((at, up)),
                _ => None,
            })
            .collect()
    }

    fn dr_state(&self) -> Option<RegisterState> {
        let now = self.sim.now();
        let regs = self.sim.node(self.dr).registers(now);
        regs.iter()
            .find(|r| r.source == ip(SRC) && r.group == ip(GRP))
            .map(|r| r.state)
    }

    fn decapsulated(&mut self) -> Vec<Decapsulated> {
        let rp = self.sim.node_mut(self.rp);
        std::iter::from_fn(|| rp.poll_decapsulated()).collect()
    }
}

#[test]
fn rp_without_receivers_stops_the_dr_which_then_probes_with_null_registers() {
    let mut n = net(&[("239.0.0.0/8", RP)]);
    n.data(GRP, b"first");
    let regs = n.registers();
    assert_eq!(regs.len(), 1);
    assert!(
        !regs[0].1,
        "the first packet goes encapsulated, not as a probe"
    );
    let stops = n.register_stops();
    assert_eq!(stops.len(), 1, "no receiver: Register-Stop at once");
    assert_eq!(stops[0].1.source, ip(SRC));
    assert_eq!(stops[0].1.group.addr, ip(GRP));
    assert_eq!(
        n.tunnel().iter().map(|t| t.1).collect::<Vec<_>>(),
        [true, false]
    );
    assert_eq!(n.dr_state(), Some(RegisterState::Prune));
    assert!(n.decapsulated().is_empty());

    // The source keeps sending (the DR sees it every 30 s); the DR stays
    // silent but probes before each suppression ends, and each probe is
    // answered with a new Register-Stop.
    for _ in 0..10 {
        n.data(GRP, b"more");
        n.sim.run_for(30 * SEC);
    }
    let regs = n.registers();
    assert_eq!(regs.iter().filter(|r| !r.1).count(), 1, "{regs:?}");
    let probes: Vec<Duration> = regs.iter().filter(|r| r.1).map(|r| r.0).collect();
    assert!(probes.len() >= 3, "{probes:?}");
    let stops = n.register_stops();
    assert_eq!(stops.len(), 1 + probes.len());
    // Each probe follows the Register-Stop before it by (0.5..1.5) × 60 s
    // minus 5 s, and the RP answers each at once.
    for (i, p) in probes.iter().enumerate() {
        let gap = *p - stops[i].0;
        assert!(gap >= 25 * SEC && gap <= 85 * SEC, "probe {i}: {gap:?}");
        assert!(stops[i + 1].0 - *p < SEC);
    }
    // Suppressed throughout: the tunnel never came back up.
    assert_eq!(n.tunnel().len(), 2);
}

#[test]
fn rp_forwards_decapsulated_data_to_receivers_until_native_data_arrives() {
    let mut n = net(&[("239.0.0.0/8", RP)]);
    n.rp_view.set(|f| {
        f.olist_rpt = vec![21];
        f.olist = vec![21];
    });
    n.data(GRP, b"one");
    n.data(GRP, b"two");
    assert!(n.register_stops().is_empty());
    let d = n.decapsulated();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].oifs, [21]);
    assert_eq!((d[0].source, d[0].group), (ip(SRC), ip(GRP)));
    assert_eq!(d[0].packet, udp(SRC, GRP, 16, b"one"));
    assert_eq!(d[1].packet, udp(SRC, GRP, 16, b"two"));
    assert!(n.sim.node(n.rp).keepalive_running(ip(SRC), ip(GRP)));
    assert_eq!(n.dr_state(), Some(RegisterState::Join));

    // The RP's (S,G) join brought native data: the SPT bit is set and the
    // next Register is answered with a Register-Stop, not forwarded.
    n.rp_view.set(|f| f.spt_bit = true);
    n.data(GRP, b"three");
    assert_eq!(n.register_stops().len(), 1);
    assert!(n.decapsulated().is_empty());
    assert_eq!(n.dr_state(), Some(RegisterState::Prune));

    // The RP goes away: the probe is not answered and, Register_Probe_Time
    // later, the DR registers again.
    n.sim.down(n.rp);
    for _ in 0..4 {
        n.data(GRP, b"x");
        n.sim.run_for(30 * SEC);
    }
    let probes: Vec<Duration> = n.registers().iter().filter(|r| r.1).map(|r| r.0).collect();
    assert_eq!(probes.len(), 1, "{probes:?}");
    let tunnel = n.tunnel();
    let reopened = tunnel.last().unwrap();
    assert!(reopened.1);
    assert_eq!(reopened.0 - probes[0], 5 * SEC);
    assert_eq!(n.dr_state(), Some(RegisterState::Join));
    let data_after: usize = n
        .registers()
        .iter()
        .filter(|r| !r.1 && r.0 > reopened.0)
        .count();
    assert!(data_after >= 1, "data is encapsulated again");
}

#[test]
fn dr_stops_registering_when_the_source_falls_silent_for_the_keepalive_period() {
    let mut n = net(&[("239.0.0.0/8", RP)]);
    n.rp_view.set(|f| f.olist_rpt = vec![21]);
    let t = n.sim.elapsed();
    n.data(GRP, b"only");
    n.sim.run_for(300 * SEC);
    let tunnel = n.tunnel();
    assert_eq!(tunnel.len(), 2);
    assert_eq!(tunnel[0], (t, true));
    assert_eq!(tunnel[1], (t + 210 * SEC, false));
    let ka: Vec<(Duration, bool)> = events_of(&n.sim, n.dr)
        .into_iter()
        .filter_map(|(at, e)| match e {
            PimEvent::Keepalive { running, .. } => Some((at, running)),
            _ => None,
        })
        .collect();
    assert_eq!(ka, [(t, true), (t + 210 * SEC, false)]);
    assert_eq!(n.dr_state(), None);
}

#[test]
fn a_router_that_is_not_the_groups_rp_answers_with_register_stop() {
    // The DR maps 238/8 to 10.1.0.2 too, but 10.1.0.2 is RP for 239/8 only.
    let mut n = net(&[("239.0.0.0/8", RP)]);
    n.rp_view.set(|f| f.olist_rpt = vec![21]);
    n.data("238.1.1.1", b"wrong rp");
    let stops = n.register_stops();
    assert_eq!(stops.len(), 1);
    assert_eq!(stops[0].1.group.addr, ip("238.1.1.1"));
    assert!(n.decapsulated().is_empty());
    assert_eq!(
        n.sim.node(n.rp).register_assert_counters().register_not_rp,
        1
    );
}

#[test]
fn dr_registers_only_live_packets_from_the_sources_interface() {
    let mut n = net(&[("239.0.0.0/8", RP)]);
    let packet = udp(SRC, GRP, 1, b"ttl 1");
    n.sim.input(
        n.dr,
        PimInput::RegisterData {
            ifindex: 10,
            packet,
        },
    );
    n.sim.run_for(SEC);
    assert!(n.registers().is_empty());
    assert_eq!(
        n.sim
            .node(n.dr)
            .register_assert_counters()
            .register_encap_failed,
        1
    );
    // Data on the core interface, where the source is not connected.
    let packet = udp(SRC, GRP, 16, b"elsewhere");
    n.sim.input(
        n.dr,
        PimInput::RegisterData {
            ifindex: 11,
            packet,
        },
    );
    n.sim.run_for(SEC);
    assert!(n.registers().is_empty());
    assert_eq!(
        n.dr_state(),
        Some(RegisterState::Join),
        "the TTL-1 packet did start (S,G)"
    );
}

#[test]
fn a_wildcard_register_stop_silences_every_source_of_the_group() {
    let mut n = net(&[("239.0.0.0/8", RP)]);
    n.rp_view.set(|f| f.olist_rpt = vec![21]);
    n.dr_view_connect("10.0.1.11");
    n.data(GRP, b"from .10");
    let p = udp("10.0.1.11", GRP, 16, b"from .11");
    n.sim.input(
        n.dr,
        PimInput::RegisterData {
            ifindex: 10,
            packet: p,
        },
    );
    n.sim.run_for(SEC);
    let now = n.sim.now();
    let up = |n: &Net| {
        n.sim
            .node(n.dr)
            .registers(now)
            .iter()
            .filter(|r| r.state == RegisterState::Join)
            .count()
    };
    assert_eq!(up(&n), 2);
    let stop = codec::encode(&Message::RegisterStop(RegisterStop {
        group: EncodedGroup::host(ip(GRP)),
        source: Ipv4Addr::UNSPECIFIED,
    }));
    n.sim.inject(1, ip(RP), ip(DR_CORE), stop);
    n.sim.run_for(SEC);
    let now = n.sim.now();
    let states: Vec<RegisterState> = n
        .sim
        .node(n.dr)
        .registers(now)
        .iter()
        .map(|r| r.state)
        .collect();
    assert_eq!(states, [RegisterState::Prune, RegisterState::Prune]);
}

#[test]
fn a_router_that_is_not_dr_on_the_sources_lan_does_not_register() {
    let mut n = net(&[("239.0.0.0/8", RP)]);
    // A second router on the source's LAN with a higher DR priority.
    let (other, _v) = router(
        &mut n.sim,
        9,
        &[(0, 30, "10.0.1.2")],
        config(&[("if30", 10)], &[("239.0.0.0/8", RP)]),
    );
    n.sim.run_for(10 * SEC);
    assert_eq!(n.sim.node(n.dr).dr(10), Some(ip("10.0.1.2")));
    assert_eq!(n.sim.node(other).dr(30), Some(ip("10.0.1.2")));
    n.data(GRP, b"not mine to register");
    assert!(n.registers().is_empty());
    assert!(n.tunnel().is_empty());
    // KeepaliveTimer runs all the same: the data was seen.
    assert!(n.sim.node(n.dr).keepalive_running(ip(SRC), ip(GRP)));
}

fn hex(text: &str) -> Vec<u8> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// MCR as the RP of FRR's lab (r2 = 10.201.255.2, RP for 238/8): FRR's
/// Register and null-Register from r1 get the Register-Stop FRR's RP sent,
/// byte for byte.
#[test]
fn frr_registers_get_frr_s_register_stop_byte_for_byte() {
    let register = hex(include_str!("data/pim/register.hex"));
    let null_register = hex(include_str!("data/pim/null_register.hex"));
    let want = hex(include_str!("data/pim/register_stop.hex"));
    let mut sim: Sim<PimInstance> = Sim::new(3);
    let lan = sim.add_lan();
    let (rp, view) = router(
        &mut sim,
        4,
        &[(lan, 20, "10.201.255.2")],
        config(&[("if20", 1)], &[("238.0.0.0/8", "10.201.255.2")]),
    );
    // Like FRR's RP: the SPT is wanted, and nobody has joined 238.1.1.1.
    view.set(|f| f.switch_to_spt = true);
    sim.run_for(SEC);
    let r1 = ip("10.201.1.1");
    for msg in [register, null_register] {
        sim.clear_record();
        sim.inject(lan, r1, ip("10.201.255.2"), msg);
        sim.run_for(SEC);
        let stops: Vec<_> = sim
            .sent()
            .iter()
            .filter(|s| s.from == Some(rp) && s.dst == r1)
            .collect();
        assert_eq!(stops.len(), 1);
        assert_eq!(stops[0].payload, want);
        assert_eq!(stops[0].src, ip("10.201.255.2"));
    }
    // The same Register with its inner header damaged is dropped unanswered.
    let mut bad = hex(include_str!("data/pim/register.hex"));
    bad[8 + 10] ^= 0xff;
    sim.clear_record();
    sim.inject(lan, r1, ip("10.201.255.2"), bad);
    sim.run_for(SEC);
    assert!(sim.sent().iter().all(|s| s.from != Some(rp) || s.dst != r1));
    let c = sim.node(rp).register_assert_counters();
    assert_eq!((c.register_stop_tx, c.register_dropped), (2, 1));
    // Sent to an address that is not ours: dropped in silence too.
    let now = sim.now();
    let foreign = hex(include_str!("data/pim/register.hex"));
    let core = sim.node_mut(rp);
    core.handle_packet(now, 20, r1, ip("10.201.255.9"), &foreign);
    assert!(core.poll_transmit().is_none());
    assert_eq!(core.register_assert_counters().register_dropped, 2);
}

/// A DR that keeps registering (a flood, or one that ignores
/// Register-Stops) gets at most one Register-Stop per second for its
/// (S,G); `pim register` shows the RP's record of it, which goes once
/// the Registers stop for a Keepalive_Period.
#[test]
fn a_register_flood_gets_one_register_stop_per_second_and_shows_in_the_rp_view() {
    use mcr::pim::instance::RpRegisterState;
    let register = hex(include_str!("data/pim/register.hex"));
    let mut sim: Sim<PimInstance> = Sim::new(3);
    let lan = sim.add_lan();
    let me = ip("10.201.255.2");
    let (rp, view) = router(
        &mut sim,
        4,
        &[(lan, 20, "10.201.255.2")],
        config(&[("if20", 1)], &[("238.0.0.0/8", "10.201.255.2")]),
    );
    view.set(|f| f.switch_to_spt = true);
    sim.run_for(SEC);
    sim.clear_record();
    let (r1, other_dr) = (ip("10.201.1.1"), ip("10.201.1.7"));
    // 250 Registers over 2.5 s from r1, one from another DR in the middle.
    for i in 0..250 {
        sim.inject(lan, r1, me, register.clone());
        if i == 100 {
            sim.inject(lan, other_dr, me, register.clone());
        }
        sim.run_for(Duration::from_millis(10));
    }
    let stops_to = |dst: Ipv4Addr| {
        sim.sent()
            .iter()
            .filter(|s| s.from == Some(rp) && s.dst == dst)
            .count()
    };
    assert_eq!(stops_to(r1), 3, "at 0 s, 1 s and 2 s");
    assert_eq!(stops_to(other_dr), 1, "another DR is not held back by r1's");
    let now = sim.now();
    let report = sim.node(rp).register_report(now);
    assert_eq!(report.rp.len(), 2);
    let from_r1 = report.rp.iter().find(|e| e.dr == r1).unwrap();
    assert_eq!(from_r1.state, RpRegisterState::Stopped);
    assert_eq!(from_r1.group, ip("238.1.1.1"));
    assert_eq!(from_r1.registers_rx, 250);
    assert_eq!(from_r1.register_stops_tx, 3);
    assert_eq!(from_r1.register_stops_suppressed, 247);
    assert!(from_r1.last_register_ms_ago <= 10);
    assert_eq!(report.counters.register_stop_tx, 4);
    assert_eq!(report.counters.register_stop_suppressed, 247);
    // Registers stop: the record goes a Keepalive_Period (210 s) later.
    sim.run_for(200 * SEC);
    assert_eq!(sim.node(rp).register_report(sim.now()).rp.len(), 2);
    sim.run_for(11 * SEC);
    assert!(sim.node(rp).register_report(sim.now()).rp.is_empty());
}

#[test]
fn the_register_view_shows_the_dr_side_with_interface_rp_and_timer() {
    let mut n = net(&[("239.0.0.0/8", RP)]);
    n.data(GRP, b"first");
    let now = n.sim.now();
    let dr = n.sim.node(n.dr).register_report(now);
    assert_eq!(dr.dr.len(), 1);
    let e = &dr.dr[0];
    assert_eq!((e.source, e.group, e.rp), (ip(SRC), ip(GRP), Some(ip(RP))));
    assert_eq!(e.interface, "if10");
    assert_eq!(e.state, RegisterState::Prune);
    // (0.5..1.5) × 60 s − 5 s.
    let stop = e.register_stop_in_ms.unwrap();
    assert!((25_000..=85_000).contains(&stop), "{stop}");
    assert!(dr.rp.is_empty(), "the DR is nobody's RP");
    let rp = n.sim.node(n.rp).register_report(now);
    assert_eq!(rp.rp.len(), 1);
    assert_eq!(rp.rp[0].dr, ip(DR_CORE));
    assert_eq!(rp.rp[0].registers_rx, 1);
}

/// §4.4.1: CouldRegister follows I_am_DR at once. A router that is not DR
/// on the source's LAN opens its register tunnel the moment it becomes DR
/// (the DR lowers its priority, or leaves with a goodbye) and closes it
/// the moment it stops being DR — none of it waits for the next data
/// report, which may be 30 s away.
#[test]
fn a_dr_change_on_the_sources_lan_opens_and_closes_the_register_tunnel_at_once() {
    let mut n = net(&[("239.0.0.0/8", RP)]);
    let other_cfg = |prio| config(&[("if30", prio)], &[("239.0.0.0/8", RP)]);
    let (other, _v) = router(&mut n.sim, 9, &[(0, 30, "10.0.1.2")], other_cfg(10));
    n.sim.run_for(10 * SEC);
    n.data(GRP, b"not mine to register");
    assert!(n.tunnel().is_empty());
    let dr_changes = |n: &Net| -> Vec<(Duration, bool)> {
        events_of(&n.sim, n.dr)
            .into_iter()
            .filter_map(|(at, e)| match e {
                PimEvent::DrChanged {
                    ifindex: 10,
                    old: Some(_),
                    we_are_dr,
                    ..
                } => Some((at, we_are_dr)),
                _ => None,
            })
            .collect()
    };
    // The DR drops its priority below ours; its next Hello says so.
    let t0 = n.sim.elapsed();
    n.sim.configure(other, other_cfg(0));
    n.sim.run_for(6 * SEC);
    // ... then raises it again; then leaves with a goodbye.
    n.sim.configure(other, other_cfg(10));
    n.sim.run_for(6 * SEC);
    n.sim.input(other, PimInput::Shutdown);
    n.sim.run_for(SEC);
    let changes: Vec<_> = dr_changes(&n).into_iter().filter(|c| c.0 > t0).collect();
    let tunnel = n.tunnel();
    assert_eq!(
        changes.iter().map(|c| c.1).collect::<Vec<_>>(),
        [true, false, true],
        "{changes:?}"
    );
    assert_eq!(tunnel.len(), 3, "{tunnel:?}");
    for (c, t) in changes.iter().zip(&tunnel) {
        assert_eq!(c, t, "the tunnel follows each DR change at that instant");
    }
    assert_eq!(n.dr_state(), Some(RegisterState::Join));
    // Registering resumes with the next packet, from the new DR.
    n.data(GRP, b"mine now");
    assert_eq!(n.registers().len(), 1);
}
