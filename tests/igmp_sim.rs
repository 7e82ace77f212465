//! IGMP routers (and the proxy's host side) on the virtual-clock
//! simulator: querier election and take-over, join/leave/expiry timings,
//! compatibility modes and bad input, all to the nanosecond, no sockets.
//!
//! Timers used throughout: robustness 2, QI 10 s, QRI 1 s, LMQI 0.5 s, so
//! GMI = 21 s, OQPI = 20.5 s, LMQT = 1 s, startup interval 2.5 s.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use mcr::igmp::codec::{decode, encode, GroupRecord, Message, Query, RecordType, Version};
use mcr::igmp::{
    FilterMode, HostConfig, IgmpEvent, IgmpHost, IgmpParams, IgmpRouter, IgmpSettings,
    InterfaceConfig, RouterConfig, SetMemberships,
};
use mcr::proto::sim::{LanId, NodeId, Sim};
use mcr::proto::{Protocol, Rng, Transmit};

const IF: u32 = 3;
const G: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
const S1: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const S2: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
const GMI: Duration = Duration::from_secs(21);
const OQPI: Duration = Duration::from_millis(20_500);
const LMQT: Duration = Duration::from_secs(1);

fn params(version: u8) -> IgmpParams {
    IgmpSettings {
        version,
        robustness: 2,
        query_interval: 10.0,
        query_response_interval: 1.0,
        last_member_query_interval: 0.5,
        ..Default::default()
    }
    .validate()
    .unwrap()
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, last)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// A router or the proxy's host side, so both can share one LAN.
enum Node {
    R(IgmpRouter),
    H(IgmpHost),
}

impl Protocol for Node {
    type Config = Infallible;
    type Input = SetMemberships;
    type Output = IgmpEvent;

    fn handle_packet(&mut self, now: Instant, i: u32, s: Ipv4Addr, d: Ipv4Addr, p: &[u8]) {
        match self {
            Node::R(r) => r.handle_packet(now, i, s, d, p),
            Node::H(h) => h.handle_packet(now, i, s, d, p),
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Node::R(r) => r.handle_timeout(now),
            Node::H(h) => h.handle_timeout(now),
        }
    }
    fn handle_config(&mut self, _: Instant, c: Infallible) {
        match c {}
    }
    fn handle_event(&mut self, now: Instant, e: SetMemberships) {
        if let Node::H(h) = self {
            h.handle_event(now, e)
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        match self {
            Node::R(r) => r.poll_transmit(),
            Node::H(h) => h.poll_transmit(),
        }
    }
    fn poll_event(&mut self) -> Option<IgmpEvent> {
        match self {
            Node::R(r) => r.poll_event(),
            Node::H(_) => None,
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Node::R(r) => r.poll_timeout(),
            Node::H(h) => h.poll_timeout(),
        }
    }
}

struct Lab {
    sim: Sim<Node>,
    lan: LanId,
}

impl Lab {
    fn new() -> Self {
        let mut sim = Sim::new(5);
        let lan = sim.add_lan();
        Lab { sim, lan }
    }

    fn router(&mut self, last: u8, version: u8) -> NodeId {
        let cfg = RouterConfig {
            params: params(version),
            interfaces: vec![InterfaceConfig {
                ifindex: IF,
                name: "eth1".into(),
                address: ip(last),
            }],
        };
        let id = self
            .sim
            .add_node(Node::R(IgmpRouter::new(self.sim.now(), cfg)));
        self.sim.attach(id, self.lan, IF, ip(last));
        id
    }

    fn host(&mut self, last: u8) -> NodeId {
        let cfg = HostConfig {
            ifindex: IF,
            address: ip(last),
            params: params(3),
        };
        let id = self
            .sim
            .add_node(Node::H(IgmpHost::new(cfg, Rng::new(last as u64))));
        self.sim.attach(id, self.lan, IF, ip(last));
        id
    }

    fn r(&self, id: NodeId) -> &IgmpRouter {
        match self.sim.node(id) {
            Node::R(r) => r,
            Node::H(_) => panic!("node {id} is a host"),
        }
    }

    fn at(&mut self, s: f64) {
        let t = self.sim.base() + secs(s);
        self.sim.run_until(t);
    }

    /// A host's message, put on the LAN now.
    fn host_sends(&mut self, host: u8, dst: Ipv4Addr, m: Message) {
        self.sim.inject(self.lan, ip(host), dst, encode(&m));
    }

    fn querier(&self, id: NodeId) -> (bool, Ipv4Addr) {
        let s = self.r(id).snapshot(self.sim.now());
        let i = &s.interfaces[0].querier;
        (i.querier, i.current_querier)
    }

    fn events(&self, id: NodeId) -> Vec<(Duration, IgmpEvent)> {
        self.sim
            .events()
            .iter()
            .filter(|e| e.node == id)
            .map(|e| (e.at, e.event.clone()))
            .collect()
    }

    fn membership_events(&self, id: NodeId) -> Vec<(Duration, IgmpEvent)> {
        self.events(id)
            .into_iter()
            .filter(|(_, e)| !matches!(e, IgmpEvent::QuerierChange { .. }))
            .collect()
    }

    fn queries_from(&self, id: NodeId) -> Vec<(Duration, Query)> {
        self.sim
            .sent()
            .iter()
            .filter(|s| s.from == Some(id))
            .filter_map(|s| match decode(&s.payload) {
                Ok(Message::Query(q)) => Some((s.at, q)),
                _ => None,
            })
            .collect()
    }
}

fn join(mode: FilterMode, sources: Vec<Ipv4Addr>) -> IgmpEvent {
    IgmpEvent::Join {
        ifindex: IF,
        group: G,
        mode,
        sources,
    }
}

fn change(mode: FilterMode, sources: Vec<Ipv4Addr>) -> IgmpEvent {
    IgmpEvent::Change {
        ifindex: IF,
        group: G,
        mode,
        sources,
    }
}

fn leave() -> IgmpEvent {
    IgmpEvent::Leave {
        ifindex: IF,
        group: G,
    }
}

fn v3(kind: RecordType, sources: &[Ipv4Addr]) -> Message {
    Message::V3Report(vec![GroupRecord {
        kind,
        group: G,
        sources: sources.to_vec(),
    }])
}

#[test]
fn startup_queries_are_robustness_count_a_quarter_interval_apart_then_every_interval() {
    let mut lab = Lab::new();
    let r = lab.router(1, 3);
    lab.at(40.0);
    let times: Vec<Duration> = lab.queries_from(r).iter().map(|(t, _)| *t).collect();
    assert_eq!(
        times,
        vec![secs(0.0), secs(2.5), secs(12.5), secs(22.5), secs(32.5)]
    );
    let (_, q) = &lab.queries_from(r)[0];
    assert!(q.is_general() && q.version == Version::V3);
    assert_eq!((q.max_resp(), q.qrv, q.qqi_secs()), (secs(1.0), 2, 10));
    let sent = &lab.sim.sent()[0];
    assert_eq!((sent.src, sent.dst), (ip(1), Ipv4Addr::new(224, 0, 0, 1)));
}

#[test]
fn three_queriers_elect_the_lowest_and_the_next_takes_over_after_oqpi_to_the_millisecond() {
    let mut lab = Lab::new();
    let c = lab.router(3, 3);
    let a = lab.router(1, 3);
    let b = lab.router(2, 3);
    lab.at(30.0);
    assert_eq!(lab.querier(a), (true, ip(1)));
    assert_eq!(lab.querier(b), (false, ip(1)));
    assert_eq!(lab.querier(c), (false, ip(1)));
    // After the first instant only the winner queries.
    assert!(lab
        .queries_from(b)
        .iter()
        .all(|(t, _)| *t == Duration::ZERO));
    assert!(lab
        .queries_from(c)
        .iter()
        .all(|(t, _)| *t == Duration::ZERO));
    let last_a = lab.queries_from(a).last().unwrap().0;
    assert_eq!(last_a, secs(22.5));
    let snap = lab.r(b).snapshot(lab.sim.now());
    let expiry = snap.interfaces[0].querier.other_querier_expires.unwrap();
    assert!((expiry - (last_a + OQPI - secs(30.0)).as_secs_f64()).abs() < 1e-9);

    lab.sim.down(a);
    lab.at(80.0);
    let takeover = last_a + OQPI;
    let local = |id: NodeId, lab: &Lab| -> Vec<Duration> {
        lab.events(id)
            .into_iter()
            .filter(|(_, e)| matches!(e, IgmpEvent::QuerierChange { local: true, .. }))
            .map(|(t, _)| t)
            .collect()
    };
    assert_eq!(local(b, &lab), vec![Duration::ZERO, takeover]);
    assert_eq!(lab.queries_from(b)[1].0, takeover);
    assert_eq!(lab.querier(b), (true, ip(2)));
    // C took over at the same instant, heard B and stood down again.
    assert_eq!(lab.querier(c), (false, ip(2)));
    assert!(lab
        .queries_from(c)
        .iter()
        .all(|(t, _)| *t == Duration::ZERO || *t == takeover));
    // The old winner comes back and wins at its first query.
    lab.sim.up(a);
    lab.at(81.0);
    assert_eq!(lab.querier(b), (false, ip(1)));
    assert_eq!(lab.querier(a), (true, ip(1)));
}

#[test]
fn v2_join_leave_and_expiry_happen_at_exact_times() {
    let mut lab = Lab::new();
    let r = lab.router(1, 2);
    lab.at(5.0);
    lab.host_sends(10, G, Message::V2Report(G));
    lab.at(8.0);
    lab.host_sends(10, Ipv4Addr::new(224, 0, 0, 2), Message::V2Leave(G));
    lab.at(20.0);
    assert_eq!(
        lab.membership_events(r),
        vec![
            (secs(5.0), join(FilterMode::Exclude, vec![])),
            (secs(8.0) + LMQT, leave())
        ]
    );
    // LMQC group-specific queries LMQI apart, to the group, 1/2 s max response.
    let gq: Vec<_> = lab
        .queries_from(r)
        .into_iter()
        .filter(|(_, q)| !q.is_general())
        .collect();
    assert_eq!(
        gq.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        vec![secs(8.0), secs(8.5)]
    );
    assert!(gq
        .iter()
        .all(|(_, q)| q.group == G && q.version == Version::V2 && q.max_resp_code == 5));

    // A member that goes silent expires one GMI after its last report.
    lab.host_sends(10, G, Message::V2Report(G));
    lab.at(30.0);
    lab.host_sends(11, G, Message::V2Report(G));
    lab.at(60.0);
    let ev = lab.membership_events(r);
    assert_eq!(
        ev[2..],
        [
            (secs(20.0), join(FilterMode::Exclude, vec![])),
            (secs(30.0) + GMI, leave())
        ]
    );
    let snap = lab.r(r).snapshot(lab.sim.now());
    assert!(snap.groups.is_empty());
    let c = &snap.interfaces[0].querier.counters;
    assert_eq!((c.reports_received, c.leaves_received), (3, 1));
}

#[test]
fn a_report_during_last_member_queries_keeps_the_group() {
    let mut lab = Lab::new();
    let r = lab.router(1, 3);
    lab.at(1.0);
    lab.host_sends(
        10,
        Ipv4Addr::new(224, 0, 0, 22),
        v3(RecordType::ToExclude, &[]),
    );
    lab.at(3.0);
    lab.host_sends(
        10,
        Ipv4Addr::new(224, 0, 0, 22),
        v3(RecordType::ToInclude, &[]),
    );
    lab.at(3.2);
    lab.host_sends(
        11,
        Ipv4Addr::new(224, 0, 0, 22),
        v3(RecordType::IsExclude, &[]),
    );
    lab.at(10.0);
    assert_eq!(
        lab.membership_events(r),
        vec![(secs(1.0), join(FilterMode::Exclude, vec![]))]
    );
    // The retransmission after the report carries S (RFC 3376 §6.6.3.1).
    let gq: Vec<_> = lab
        .queries_from(r)
        .into_iter()
        .filter(|(_, q)| !q.is_general())
        .collect();
    assert_eq!(gq.len(), 2);
    assert!(!gq[0].1.suppress && gq[1].1.suppress);
    let g = &lab.r(r).snapshot(lab.sim.now()).groups[0];
    assert_eq!((g.group.last_reporter, g.group.version), (ip(11), 3));
    assert!((g.group.expires.unwrap() - (3.2 + 21.0 - 10.0)).abs() < 1e-9);
}

#[test]
fn v3_source_records_follow_the_rfc3376_tables_with_per_source_timers() {
    let mut lab = Lab::new();
    let r = lab.router(1, 3);
    let to = Ipv4Addr::new(224, 0, 0, 22);
    lab.at(1.0);
    // INCLUDE({}) + ALLOW(S1,S2) -> INCLUDE(S1,S2), timers GMI.
    lab.host_sends(10, to, v3(RecordType::AllowNew, &[S1, S2]));
    lab.at(2.0);
    // INCLUDE(A) + BLOCK(S1) -> Q(G,{S1}), S1 lowered to LMQT.
    lab.host_sends(10, to, v3(RecordType::BlockOld, &[S1]));
    lab.at(40.0);
    assert_eq!(
        lab.membership_events(r),
        vec![
            (secs(1.0), join(FilterMode::Include, vec![S1, S2])),
            (secs(2.0) + LMQT, change(FilterMode::Include, vec![S2])),
            (secs(1.0) + GMI, leave()),
        ]
    );
    let gsq: Vec<_> = lab
        .queries_from(r)
        .into_iter()
        .filter(|(_, q)| !q.sources.is_empty())
        .collect();
    assert_eq!(gsq.len(), 2);
    assert!(gsq
        .iter()
        .all(|(_, q)| q.group == G && q.sources == vec![S1]));
    assert_eq!((gsq[0].0, gsq[1].0), (secs(2.0), secs(2.5)));

    // INCLUDE + IS_EX(S1) -> EXCLUDE(blocked S1); TO_IN(S1) -> S1 allowed
    // again and Q(G): the group falls back to INCLUDE(S1) after LMQT.
    lab.sim.clear_record();
    lab.host_sends(10, to, v3(RecordType::IsExclude, &[S1]));
    lab.at(41.0);
    lab.host_sends(10, to, v3(RecordType::ToInclude, &[S1]));
    lab.at(70.0);
    assert_eq!(
        lab.membership_events(r),
        vec![
            (secs(40.0), join(FilterMode::Exclude, vec![S1])),
            (secs(41.0), change(FilterMode::Exclude, vec![])),
            (secs(41.0) + LMQT, change(FilterMode::Include, vec![S1])),
            (secs(41.0) + GMI, leave()),
        ]
    );
}

#[test]
fn a_v2_host_on_a_v3_lan_switches_the_group_to_v2_and_back() {
    let mut lab = Lab::new();
    let r = lab.router(1, 3);
    let to = Ipv4Addr::new(224, 0, 0, 22);
    let version = |lab: &Lab| lab.r(r).snapshot(lab.sim.now()).groups[0].group.version;
    lab.at(1.0);
    lab.host_sends(10, to, v3(RecordType::ToExclude, &[]));
    lab.at(2.0);
    assert_eq!(version(&lab), 3);
    lab.host_sends(20, G, Message::V2Report(G));
    lab.at(3.0);
    assert_eq!(version(&lab), 2);
    // In v2 mode an exclude list is read as {} and BLOCK is ignored.
    lab.host_sends(10, to, v3(RecordType::ToExclude, &[S1]));
    lab.host_sends(10, to, v3(RecordType::BlockOld, &[S2]));
    // The v3 host keeps the group alive; the v2 host stays silent.
    for t in [10.0, 20.0] {
        lab.at(t);
        lab.host_sends(10, to, v3(RecordType::IsExclude, &[]));
    }
    lab.at(2.0 + 21.0 - 0.001);
    assert_eq!(version(&lab), 2);
    lab.at(2.0 + 21.0);
    assert_eq!(version(&lab), 3);
    assert_eq!(
        lab.membership_events(r),
        vec![(secs(1.0), join(FilterMode::Exclude, vec![]))]
    );
    // Back in v3 mode, BLOCK works again: S2 is queried.
    lab.host_sends(10, to, v3(RecordType::BlockOld, &[S2]));
    lab.at(24.0);
    assert!(lab
        .queries_from(r)
        .iter()
        .any(|(_, q)| q.sources == vec![S2]));
}

#[test]
fn a_v1_host_makes_leaves_ignored_until_it_times_out() {
    let mut lab = Lab::new();
    let r = lab.router(1, 3);
    lab.at(1.0);
    lab.host_sends(10, G, Message::V1Report(G));
    lab.at(2.0);
    lab.host_sends(11, Ipv4Addr::new(224, 0, 0, 2), Message::V2Leave(G));
    lab.at(10.0);
    assert_eq!(lab.r(r).snapshot(lab.sim.now()).groups[0].group.version, 1);
    assert_eq!(
        lab.membership_events(r),
        vec![(secs(1.0), join(FilterMode::Exclude, vec![]))]
    );
    lab.at(30.0);
    assert_eq!(lab.membership_events(r)[1], (secs(1.0) + GMI, leave()));
}

#[test]
fn a_v2_querier_pulls_a_v3_router_down_to_v2_until_it_is_gone() {
    let mut lab = Lab::new();
    let low = lab.router(1, 3);
    let old = lab.router(2, 2);
    lab.at(15.0);
    let q = lab.queries_from(low);
    // Its own first query (same instant as the v2 one) was v3; every one
    // after is v2, 8 bytes.
    assert_eq!(q[0].1.version, Version::V3);
    assert!(q[1..].iter().all(|(_, q)| q.version == Version::V2));
    assert_eq!(
        lab.r(low).snapshot(lab.sim.now()).interfaces[0]
            .querier
            .version,
        2
    );
    // The v2 router lost the election at its first query and stays silent;
    // the v3 router returns to v3 one OQPI after the last v2 query.
    assert_eq!(lab.queries_from(old).len(), 1);
    lab.at(30.0);
    let back: Vec<_> = lab
        .queries_from(low)
        .into_iter()
        .filter(|(t, _)| *t > OQPI)
        .collect();
    assert!(!back.is_empty() && back.iter().all(|(_, q)| q.version == Version::V3));
    assert!(lab
        .queries_from(low)
        .iter()
        .filter(|(t, _)| *t > Duration::ZERO && *t <= OQPI)
        .all(|(_, q)| q.version == Version::V2));
}

#[test]
fn a_non_querier_follows_the_queriers_last_member_queries() {
    let mut lab = Lab::new();
    let a = lab.router(1, 3);
    let b = lab.router(2, 3);
    lab.at(5.0);
    lab.host_sends(10, G, Message::V2Report(G));
    lab.at(6.0);
    lab.host_sends(10, Ipv4Addr::new(224, 0, 0, 2), Message::V2Leave(G));
    lab.at(30.0);
    let expect = vec![
        (secs(5.0), join(FilterMode::Exclude, vec![])),
        (secs(6.0) + LMQT, leave()),
    ];
    assert_eq!(lab.membership_events(a), expect);
    assert_eq!(lab.membership_events(b), expect);
    assert!(lab
        .queries_from(b)
        .iter()
        .all(|(t, _)| *t == Duration::ZERO));
}

#[test]
fn malformed_wrong_checksum_and_non_multicast_reports_are_counted_and_dropped() {
    let mut lab = Lab::new();
    let r = lab.router(1, 3);
    lab.at(1.0);
    let mut bad_sum = encode(&Message::V2Report(G));
    bad_sum[7] ^= 1;
    let inputs: Vec<Vec<u8>> = vec![
        bad_sum,
        encode(&Message::V2Report(G))[..6].to_vec(),
        encode(&Message::V2Report(Ipv4Addr::new(10, 1, 1, 1))),
        encode(&Message::V1Report(Ipv4Addr::new(224, 0, 0, 1))),
        encode(&Message::V3Report(vec![
            GroupRecord {
                kind: RecordType::ToExclude,
                group: G,
                sources: vec![],
            },
            GroupRecord {
                kind: RecordType::ToExclude,
                group: Ipv4Addr::new(192, 0, 2, 1),
                sources: vec![],
            },
        ])),
        vec![],
        vec![0x42; 20],
    ];
    for p in inputs {
        lab.sim.inject(lab.lan, ip(10), G, p);
    }
    lab.at(2.0);
    let snap = lab.r(r).snapshot(lab.sim.now());
    assert!(snap.groups.is_empty());
    let c = &snap.interfaces[0].querier.counters;
    assert_eq!(
        (c.checksum_errors, c.malformed, c.reports_received),
        (2, 5, 0)
    );
    assert!(lab.membership_events(r).is_empty());
    // The router still works.
    lab.host_sends(10, G, Message::V2Report(G));
    lab.at(3.0);
    assert_eq!(
        lab.membership_events(r),
        vec![(secs(2.0), join(FilterMode::Exclude, vec![]))]
    );
}

#[test]
fn the_proxy_host_side_reports_joins_answers_queries_and_leaves() {
    let mut lab = Lab::new();
    let r = lab.router(1, 3);
    let h = lab.host(50);
    lab.at(1.0);
    lab.sim.input(h, SetMemberships::any(BTreeSet::from([G])));
    lab.at(60.0);
    // Joined at once; kept alive by answering queries well past one GMI.
    assert_eq!(
        lab.membership_events(r),
        vec![(secs(1.0), join(FilterMode::Exclude, vec![]))]
    );
    let from_host: Vec<_> = lab
        .sim
        .sent()
        .iter()
        .filter(|s| s.from == Some(h))
        .collect();
    assert!(
        from_host.len() >= 6,
        "unsolicited reports and answers: {}",
        from_host.len()
    );
    assert!(from_host
        .iter()
        .all(|s| s.dst == Ipv4Addr::new(224, 0, 0, 22) && s.src == ip(50)));
    let g = &lab.r(r).snapshot(lab.sim.now()).groups[0].group;
    assert_eq!(g.last_reporter, ip(50));
    lab.sim.input(h, SetMemberships::any(BTreeSet::new()));
    lab.at(70.0);
    assert_eq!(lab.membership_events(r)[1], (secs(60.0) + LMQT, leave()));
}

#[test]
fn on_a_lossy_lan_the_lowest_address_stays_querier_and_runs_replay() {
    let run = |seed: u64| {
        let mut lab = Lab::new();
        lab.sim = Sim::new(seed);
        lab.lan = lab.sim.add_lan();
        lab.sim.set_loss(lab.lan, 0.4);
        lab.sim.set_delay(lab.lan, Duration::from_millis(3));
        let ids: Vec<NodeId> = [3, 1, 2].iter().map(|a| lab.router(*a, 3)).collect();
        lab.at(600.0);
        // However many queries were lost, the lowest address is querier at
        // the end and the others follow it.
        assert_eq!(lab.querier(ids[1]), (true, ip(1)));
        assert_eq!(lab.querier(ids[0]).1, ip(1));
        assert_eq!(lab.querier(ids[2]).1, ip(1));
        let takeovers = lab
            .sim
            .events()
            .iter()
            .filter(|e| e.at > Duration::ZERO)
            .filter(|e| matches!(e.event, IgmpEvent::QuerierChange { local: true, .. }))
            .count();
        (lab.sim.lost().len(), takeovers)
    };
    let (lost, takeovers) = run(11);
    assert!(lost > 50, "{lost} deliveries lost");
    // Same seed, same losses, same brief take-overs.
    assert_eq!(run(11), (lost, takeovers));
}
