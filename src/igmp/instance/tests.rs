//! The router driven by hand, without the simulator: what it sends, the
//! EXCLUDE-mode rows of the RFC 3376 §6.4 tables, timer fallbacks, config
//! diffs and the snapshot's JSON.

use super::*;
use crate::igmp::codec::{GroupRecord, Query, RecordType};
use crate::igmp::config::{IgmpSettings, InterfaceConfig};
use crate::igmp::state::FilterMode::{self, *};
use std::time::Duration;

const IF: u32 = 4;
const G: Ipv4Addr = Ipv4Addr::new(239, 5, 5, 5);
const S1: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 1);
const S2: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 2);
const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
const GMI: Duration = Duration::from_secs(21);
const LMQT: Duration = Duration::from_secs(1);

fn config(ifaces: &[(u32, u8)]) -> RouterConfig {
    RouterConfig {
        params: IgmpSettings {
            query_interval: 10.0,
            query_response_interval: 1.0,
            last_member_query_interval: 0.5,
            ..Default::default()
        }
        .validate()
        .unwrap(),
        interfaces: ifaces
            .iter()
            .map(|(i, a)| InterfaceConfig {
                ifindex: *i,
                name: format!("eth{i}"),
                address: Ipv4Addr::new(10, 0, 0, *a),
            })
            .collect(),
    }
}

type Ev = (f64, FilterMode, Vec<Ipv4Addr>);

/// A router on interface IF, driven in time order: each input first runs
/// the timers due before it.
struct T {
    r: IgmpRouter,
    t0: Instant,
    ev: Vec<Ev>,
    q: Vec<Vec<Ipv4Addr>>,
    /// The S flag of each query in `q`.
    s_flags: Vec<bool>,
}

impl T {
    fn new() -> Self {
        let t0 = Instant::now();
        let mut r = IgmpRouter::new(t0, config(&[(IF, 1)]));
        while r.poll_transmit().is_some() {}
        while r.poll_event().is_some() {}
        T {
            r,
            t0,
            ev: Vec::new(),
            q: Vec::new(),
            s_flags: Vec::new(),
        }
    }

    fn at(&self, s: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(s)
    }

    fn collect(&mut self, now: Instant) {
        let secs = (now - self.t0).as_secs_f64();
        while let Some(e) = self.r.poll_event() {
            match e {
                IgmpEvent::Join { mode, sources, .. } | IgmpEvent::Change { mode, sources, .. } => {
                    self.ev.push((secs, mode, sources))
                }
                IgmpEvent::Leave { .. } => self.ev.push((secs, Include, vec![])),
                IgmpEvent::QuerierChange { .. } => {}
            }
        }
        while let Some(t) = self.r.poll_transmit() {
            if let Ok(Message::Query(Query {
                sources, suppress, ..
            })) = decode(&t.payload)
            {
                if !sources.is_empty() {
                    self.s_flags.push(suppress);
                    self.q.push(sources);
                }
            }
        }
    }

    fn advance(&mut self, end: Instant) {
        while let Some(now) = self.r.poll_timeout().filter(|t| *t <= end) {
            self.r.handle_timeout(now);
            self.collect(now);
        }
    }

    fn report(&mut self, s: f64, kind: RecordType, sources: &[Ipv4Addr]) {
        let now = self.at(s);
        self.advance(now);
        let m = Message::V3Report(vec![GroupRecord {
            kind,
            group: G,
            sources: sources.to_vec(),
        }]);
        self.r
            .handle_packet(now, IF, HOST, Ipv4Addr::new(224, 0, 0, 22), &encode(&m));
        self.collect(now);
    }

    /// Run the timers up to `s`; the membership events so far with their
    /// times (seconds since t0), and the group-and-source queries sent.
    fn run(&mut self, s: f64) -> (Vec<Ev>, Vec<Vec<Ipv4Addr>>) {
        self.advance(self.at(s));
        (std::mem::take(&mut self.ev), std::mem::take(&mut self.q))
    }
}

#[test]
fn queries_go_out_with_ttl_1_router_alert_and_the_interface_address() {
    let t0 = Instant::now();
    let mut r = IgmpRouter::new(t0, config(&[(IF, 1), (7, 2)]));
    let tx: Vec<Transmit> = std::iter::from_fn(|| r.poll_transmit()).collect();
    assert_eq!(tx.len(), 2);
    for t in &tx {
        assert_eq!(
            (t.ttl, t.router_alert, t.dst),
            (1, true, Ipv4Addr::new(224, 0, 0, 1))
        );
        let a = if t.ifindex == IF { 1 } else { 2 };
        assert_eq!(t.src, Some(Ipv4Addr::new(10, 0, 0, a)));
        assert!(matches!(decode(&t.payload), Ok(Message::Query(q)) if q.is_general()));
    }
}

#[test]
fn exclude_allow_and_is_ex_rows() {
    let mut t = T::new();
    // INCLUDE({}) + IS_EX({S1}) -> EXCLUDE({}, {S1})
    t.report(1.0, RecordType::IsExclude, &[S1]);
    // EXCLUDE(X,Y) + ALLOW({S1}) -> EXCLUDE(X+{S1}, Y-{S1}): S1 forwarded again
    t.report(2.0, RecordType::AllowNew, &[S1]);
    // EXCLUDE + IS_EX({S2}) -> EXCLUDE({S2}, {}): S1 deleted, S2 timed
    t.report(3.0, RecordType::IsExclude, &[S2]);
    let (ev, q) = t.run(40.0);
    // The group timer and S2's timer both end at 3 s + GMI; the source's
    // expiry leaves it blocked, so the group has no timed source and goes.
    assert_eq!(
        ev,
        vec![
            (1.0, Exclude, vec![S1]),
            (2.0, Exclude, vec![]),
            (3.0 + GMI.as_secs_f64(), Include, vec![])
        ]
    );
    assert!(q.is_empty());
}

#[test]
fn exclude_block_and_to_ex_rows_query_the_sources_then_block_them() {
    let mut t = T::new();
    t.report(1.0, RecordType::IsExclude, &[]);
    // EXCLUDE + BLOCK({S1}) -> S1 timed with the group timer, Q(G,{S1})
    t.report(2.0, RecordType::BlockOld, &[S1]);
    let (ev, q) = t.run(10.0);
    assert_eq!(
        ev,
        vec![(1.0, Exclude, vec![]), (2.0 + 1.0, Exclude, vec![S1])]
    );
    assert_eq!(q, vec![vec![S1], vec![S1]]);
    // EXCLUDE({}, {S1}) + TO_EX({S2}) -> EXCLUDE({S2}, {}): S1 deleted,
    // S2 timed, Q(G,{S2}) -> S2 blocked after LMQT.
    t.report(10.0, RecordType::ToExclude, &[S2]);
    let (ev, q) = t.run(20.0);
    assert_eq!(
        ev,
        vec![
            (10.0, Exclude, vec![]),
            (10.0 + LMQT.as_secs_f64(), Exclude, vec![S2])
        ]
    );
    assert_eq!(q, vec![vec![S2], vec![S2]]);
}

#[test]
fn include_to_ex_and_group_timer_fallback_to_include() {
    let mut t = T::new();
    t.report(1.0, RecordType::AllowNew, &[S1, S2]);
    // INCLUDE({S1,S2}) + TO_EX({S2}) -> EXCLUDE({S2}, {}), S1 deleted, Q(G,{S2})
    t.report(2.0, RecordType::ToExclude, &[S2]);
    let (ev, q) = t.run(5.0);
    assert_eq!(
        ev,
        vec![
            (1.0, Include, vec![S1, S2]),
            (2.0, Exclude, vec![]),
            (3.0, Exclude, vec![S2])
        ]
    );
    assert_eq!(q, vec![vec![S2], vec![S2]]);
    // S1 allowed again at 10 s (EXCLUDE forwards it already: no event);
    // when the group timer (2 + GMI) expires the group falls back to
    // INCLUDE({S1}), and leaves when S1 expires.
    t.report(10.0, RecordType::AllowNew, &[S1]);
    let (ev, _) = t.run(60.0);
    assert_eq!(ev, vec![(23.0, Include, vec![S1]), (31.0, Include, vec![])]);
}

#[test]
fn a_new_config_keeps_the_state_of_interfaces_that_stay() {
    let mut t = T::new();
    t.report(1.0, RecordType::ToExclude, &[]);
    let now = t.at(2.0);
    t.r.handle_config(now, config(&[(IF, 1), (9, 3)]));
    let s = t.r.snapshot(now);
    assert_eq!(s.interfaces.len(), 2);
    assert_eq!(s.groups.len(), 1);
    assert_eq!(s.groups[0].interface, "eth4");
    // The new interface starts as querier and queries at once.
    assert!(std::iter::from_fn(|| t.r.poll_transmit()).any(|x| x.ifindex == 9));
    // Removing the interface with members reports their leave.
    while t.r.poll_event().is_some() {}
    t.r.handle_config(now, config(&[(9, 3)]));
    assert_eq!(
        t.r.poll_event(),
        Some(IgmpEvent::Leave {
            ifindex: IF,
            group: G
        })
    );
    assert!(t.r.snapshot(now).groups.is_empty());
}

#[test]
fn snapshot_serializes_for_mcrctl() {
    let mut t = T::new();
    t.report(1.0, RecordType::IsInclude, &[S1]);
    let j = serde_json::to_value(t.r.snapshot(t.at(2.0))).unwrap();
    let g = &j["groups"][0];
    assert_eq!(g["interface"], "eth4");
    assert_eq!(g["group"], "239.5.5.5");
    assert_eq!(g["mode"], "include");
    assert_eq!(g["last_reporter"], "10.0.0.9");
    assert_eq!(g["version"], 3);
    assert_eq!(g["sources"][0][0], "10.8.0.1");
    assert!((g["sources"][0][1].as_f64().unwrap() - 20.0).abs() < 1e-9);
    let i = &j["interfaces"][0];
    assert_eq!(
        (i["querier"].as_bool(), i["address"].as_str()),
        (Some(true), Some("10.0.0.1"))
    );
    assert_eq!(i["counters"]["reports_received"], 1);
    assert_eq!(i["counters"]["queries_sent"], 1);
    let e = serde_json::to_value(IgmpEvent::Leave {
        ifindex: 4,
        group: G,
    })
    .unwrap();
    assert_eq!(e["event"], "leave");
}

#[test]
fn a_source_refreshed_during_its_queries_is_requeried_with_s_set_and_kept() {
    let mut t = T::new();
    t.report(1.0, RecordType::AllowNew, &[S1, S2]);
    t.report(2.0, RecordType::BlockOld, &[S1, S2]);
    // Another host still wants S1.
    t.report(2.2, RecordType::IsInclude, &[S1]);
    let (ev, q) = t.run(10.0);
    assert_eq!(q, vec![vec![S1, S2], vec![S2], vec![S1]]);
    assert_eq!(t.s_flags, vec![false, false, true]);
    assert_eq!(
        ev,
        vec![(1.0, Include, vec![S1, S2]), (3.0, Include, vec![S1])]
    );
}

#[test]
fn a_reload_with_a_shorter_query_interval_applies_at_once_and_keeps_members() {
    let mut t = T::new();
    t.report(30.0, RecordType::ToExclude, &[]);
    t.run(33.0);
    // The query scheduled with QI 10 s would come at 42.5 s.
    let mut c = config(&[(IF, 1)]);
    c.params.query_interval = Duration::from_secs(2);
    let reload = t.at(33.0);
    t.r.handle_config(reload, c);
    let mut general = Vec::new();
    while let Some(now) = t.r.poll_timeout().filter(|x| *x <= t.at(40.0)) {
        t.r.handle_timeout(now);
        while let Some(x) = t.r.poll_transmit() {
            if let Ok(Message::Query(q)) = decode(&x.payload) {
                if q.is_general() {
                    general.push((now - t.t0).as_secs_f64());
                }
            }
        }
        while let Some(e) = t.r.poll_event() {
            assert!(!matches!(e, IgmpEvent::Leave { .. }), "{e:?}");
        }
    }
    assert_eq!(
        general,
        [35.0, 37.0, 39.0],
        "queries every new QI from the reload"
    );
    let s = t.r.snapshot(t.at(40.0));
    assert_eq!(s.groups.len(), 1, "the member is kept");
    assert_eq!(s.groups[0].group.group, G);
}

#[test]
fn a_dropped_packet_is_counted_and_its_reason_kept_for_the_log() {
    let t0 = Instant::now();
    let mut r = IgmpRouter::new(t0, config(&[(IF, 1)]));
    let report = encode(&Message::V2Report(G));
    let mut bad_sum = report.clone();
    bad_sum[2] ^= 0x55;
    let unicast = encode(&Message::V2Report(S1));
    let cases: [(&[u8], Dropped); 3] = [
        (&report[..5], Dropped::Decode(DecodeError::Truncated)),
        (&bad_sum, Dropped::Decode(DecodeError::Checksum)),
        (&unicast, Dropped::NotMulticast(S1)),
    ];
    for (p, why) in cases {
        r.handle_packet(t0, IF, HOST, G, p);
        assert_eq!(r.take_dropped(), Some((IF, HOST, why.clone())));
        assert_eq!(r.take_dropped(), None, "taken once");
        assert!(!why.to_string().is_empty());
    }
    assert_eq!(Dropped::Decode(DecodeError::Checksum).kind(), "checksum");
    assert_eq!(Dropped::NotMulticast(S1).kind(), "malformed");
    let c = &r.interface(IF).unwrap().counters;
    assert_eq!((c.checksum_errors, c.malformed), (1, 2));
    // A good report drops nothing.
    r.handle_packet(t0, IF, HOST, G, &report);
    assert_eq!(r.take_dropped(), None);
    assert_eq!(r.interface(IF).unwrap().members().len(), 1);
}
