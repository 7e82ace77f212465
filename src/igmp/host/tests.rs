//! The proxy's host side driven by hand: what it sends on joins, leaves
//! and queries, in v3 and after hearing a v2 querier.

use super::*;
use crate::igmp::codec::Query;
use crate::igmp::config::IgmpSettings;
use crate::igmp::state::FilterMode;
use std::time::Duration;

const IF: u32 = 2;
const G: Ipv4Addr = Ipv4Addr::new(239, 7, 7, 7);
const H: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

fn host() -> (IgmpHost, Instant) {
    let params = IgmpSettings::default().validate().unwrap();
    let cfg = HostConfig {
        ifindex: IF,
        address: H,
        params,
    };
    (IgmpHost::new(cfg, Rng::new(3)), Instant::now())
}

/// Run timers until `end`; every transmit with its time since `t0`.
fn run(h: &mut IgmpHost, t0: Instant, end: Instant) -> Vec<(Duration, Transmit)> {
    let mut out: Vec<(Duration, Transmit)> = std::iter::from_fn(|| h.poll_transmit())
        .map(|t| (Duration::ZERO, t))
        .collect();
    while let Some(now) = h.poll_timeout().filter(|t| *t <= end) {
        h.handle_timeout(now);
        out.extend(std::iter::from_fn(|| h.poll_transmit()).map(|t| (now - t0, t)));
    }
    out
}

fn query(version: Version, group: Ipv4Addr, max_resp_code: u8) -> Vec<u8> {
    encode(&Message::Query(Query {
        version,
        max_resp_code,
        group,
        suppress: false,
        qrv: 2,
        qqic: 125,
        sources: vec![],
    }))
}

#[test]
fn a_v3_join_is_sent_at_once_and_repeated_within_the_unsolicited_interval() {
    let (mut h, t0) = host();
    h.handle_event(t0, SetMemberships::any(BTreeSet::from([G])));
    let out = run(&mut h, t0, t0 + Duration::from_secs(5));
    assert_eq!(out.len(), 2, "robustness 2: the report and one repeat");
    assert_eq!(out[0].0, Duration::ZERO);
    assert!(out[1].0 <= Duration::from_secs(1));
    for (_, t) in &out {
        assert_eq!(
            (t.dst, t.src, t.ttl, t.router_alert),
            (ALL_V3_ROUTERS, Some(H), 1, true)
        );
        let Ok(Message::V3Report(r)) = decode(&t.payload) else {
            panic!()
        };
        assert_eq!((r[0].kind, r[0].group), (RecordType::ToExclude, G));
    }
    // The last leave: TO_IN({}), repeated too.
    let now = t0 + Duration::from_secs(5);
    h.handle_event(now, SetMemberships::any(BTreeSet::new()));
    let out = run(&mut h, t0, now + Duration::from_secs(5));
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|(_, t)| matches!(decode(&t.payload), Ok(Message::V3Report(r)) if r[0].kind == RecordType::ToInclude)));
}

#[test]
fn queries_are_answered_within_their_max_response_time() {
    let (mut h, t0) = host();
    h.handle_event(
        t0,
        SetMemberships::any(BTreeSet::from([G, Ipv4Addr::new(239, 7, 7, 8)])),
    );
    let t1 = t0 + Duration::from_secs(10);
    run(&mut h, t0, t1);
    h.handle_packet(
        t1,
        IF,
        Ipv4Addr::new(10, 0, 0, 1),
        ALL_V3_ROUTERS,
        &query(Version::V3, Ipv4Addr::UNSPECIFIED, 20),
    );
    let out = run(&mut h, t0, t1 + Duration::from_secs(5));
    // One v3 report with both groups' current state, within 2 s.
    assert_eq!(out.len(), 1);
    assert!(out[0].0 >= Duration::from_secs(10) && out[0].0 <= Duration::from_secs(12));
    let Ok(Message::V3Report(r)) = decode(&out[0].1.payload) else {
        panic!()
    };
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|r| r.kind == RecordType::IsExclude));
    // A query for a group it is not in goes unanswered.
    let t2 = t1 + Duration::from_secs(5);
    h.handle_packet(
        t2,
        IF,
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(239, 9, 9, 9),
        &query(Version::V3, Ipv4Addr::new(239, 9, 9, 9), 10),
    );
    assert!(run(&mut h, t0, t2 + Duration::from_secs(5)).is_empty());
}

#[test]
fn a_v2_querier_switches_the_host_to_v2_reports_and_leaves() {
    let (mut h, t0) = host();
    h.handle_event(t0, SetMemberships::any(BTreeSet::from([G])));
    run(&mut h, t0, t0 + Duration::from_secs(3));
    let t1 = t0 + Duration::from_secs(3);
    h.handle_packet(
        t1,
        IF,
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(224, 0, 0, 1),
        &query(Version::V2, Ipv4Addr::UNSPECIFIED, 100),
    );
    assert_eq!(h.version(), Version::V2);
    let out = run(&mut h, t0, t1 + Duration::from_secs(11));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.dst, G);
    assert_eq!(decode(&out[0].1.payload), Ok(Message::V2Report(G)));
    let t2 = t1 + Duration::from_secs(11);
    h.handle_event(t2, SetMemberships::any(BTreeSet::new()));
    let out = run(&mut h, t0, t2 + Duration::from_secs(5));
    assert_eq!(out.len(), 1, "a v2 leave is sent once");
    assert_eq!(
        (out[0].1.dst, decode(&out[0].1.payload)),
        (ALL_ROUTERS, Ok(Message::V2Leave(G)))
    );
    // No v2 query for the older-querier timeout (GMI, 260 s): back to v3.
    run(&mut h, t0, t1 + Duration::from_secs(260));
    assert_eq!(h.version(), Version::V3);
}

#[test]
fn garbage_and_other_interfaces_are_ignored() {
    let (mut h, t0) = host();
    h.handle_event(t0, SetMemberships::any(BTreeSet::from([G])));
    run(&mut h, t0, t0 + Duration::from_secs(3));
    let t1 = t0 + Duration::from_secs(3);
    h.handle_packet(t1, IF, H, G, &[0x11, 0, 0]);
    h.handle_packet(
        t1,
        IF + 1,
        H,
        G,
        &query(Version::V2, Ipv4Addr::UNSPECIFIED, 100),
    );
    assert!(run(&mut h, t0, t1 + Duration::from_secs(20)).is_empty());
    assert_eq!(h.version(), Version::V3);
}

fn filter(mode: FilterMode, l: &[Ipv4Addr]) -> HostFilter {
    HostFilter {
        mode,
        sources: l.iter().copied().collect(),
    }
}

/// Feed everything the host sends until `end` to a router on the same
/// link; the router's view of G afterwards.
fn deliver(
    h: &mut IgmpHost,
    r: &mut crate::igmp::IgmpRouter,
    t0: Instant,
    end: Instant,
) -> Option<(FilterMode, Vec<Ipv4Addr>)> {
    for (at, t) in run(h, t0, end) {
        r.handle_packet(t0 + at, 1, H, t.dst, &t.payload);
    }
    r.handle_timeout(end);
    r.interface(1)?
        .members()
        .into_iter()
        .find(|(g, _, _)| *g == G)
        .map(|(_, m, s)| (m, s))
}

#[test]
fn source_list_changes_reach_a_router_as_allow_block_and_filter_mode_records() {
    use crate::igmp::config::InterfaceConfig;
    use crate::igmp::state::FilterMode::{Exclude, Include};
    let (s1, s2) = (Ipv4Addr::new(10, 9, 0, 1), Ipv4Addr::new(10, 9, 0, 2));
    let (mut h, t0) = host();
    let params = IgmpSettings {
        last_member_query_interval: 0.5,
        ..Default::default()
    }
    .validate()
    .unwrap();
    let mut r = crate::igmp::IgmpRouter::new(
        t0,
        crate::igmp::RouterConfig {
            params,
            interfaces: vec![InterfaceConfig {
                ifindex: 1,
                name: "up".into(),
                address: Ipv4Addr::new(10, 0, 0, 1),
            }],
        },
    );
    let set = |g: HostFilter| SetMemberships(BTreeMap::from([(G, g)]));
    // INCLUDE {} → INCLUDE {S1}: ALLOW(S1).
    h.handle_event(t0, set(filter(Include, &[s1])));
    let first = h.poll_transmit().unwrap();
    let Ok(Message::V3Report(recs)) = decode(&first.payload) else {
        panic!()
    };
    assert_eq!(
        (recs[0].kind, recs[0].sources.clone()),
        (RecordType::AllowNew, vec![s1])
    );
    r.handle_packet(t0, 1, H, first.dst, &first.payload);
    let t1 = t0 + Duration::from_secs(3);
    assert_eq!(deliver(&mut h, &mut r, t0, t1), Some((Include, vec![s1])));
    // INCLUDE {S1} → INCLUDE {S2}: ALLOW(S2) and BLOCK(S1); the router
    // queries S1 and drops it after LMQT.
    h.handle_event(t1, set(filter(Include, &[s2])));
    let t2 = t1 + Duration::from_secs(4);
    assert_eq!(deliver(&mut h, &mut r, t0, t2), Some((Include, vec![s2])));
    // → EXCLUDE {S1}: TO_EX(S1), every source but S1.
    h.handle_event(t2, set(filter(Exclude, &[s1])));
    let t3 = t2 + Duration::from_secs(4);
    assert_eq!(deliver(&mut h, &mut r, t0, t3), Some((Exclude, vec![s1])));
    // Two changes within the repetitions: the second is sent as a full
    // filter-mode record, so the router ends where the host is.
    h.handle_event(t3, set(filter(Include, &[s1, s2])));
    h.handle_event(t3, set(filter(Include, &[s2])));
    let t4 = t3 + Duration::from_secs(30);
    assert_eq!(deliver(&mut h, &mut r, t0, t4), Some((Include, vec![s2])));
    // A general query is answered with the current state, sources included.
    h.handle_packet(
        t4,
        IF,
        Ipv4Addr::new(10, 0, 0, 1),
        ALL_V3_ROUTERS,
        &query(Version::V3, Ipv4Addr::UNSPECIFIED, 10),
    );
    let out = run(&mut h, t0, t4 + Duration::from_secs(2));
    let Ok(Message::V3Report(recs)) = decode(&out[0].1.payload) else {
        panic!()
    };
    assert_eq!(
        (recs[0].kind, recs[0].sources.clone()),
        (RecordType::IsInclude, vec![s2])
    );
    assert_eq!(h.counters.queries_received, 1);
}

fn gss_query(group: Ipv4Addr, sources: &[Ipv4Addr]) -> Vec<u8> {
    encode(&Message::Query(Query {
        version: Version::V3,
        max_resp_code: 10,
        group,
        suppress: false,
        qrv: 2,
        qqic: 125,
        sources: sources.to_vec(),
    }))
}

/// The v3 records the host sends until `end`.
fn records(h: &mut IgmpHost, t0: Instant, end: Instant) -> Vec<(RecordType, Vec<Ipv4Addr>)> {
    run(h, t0, end)
        .into_iter()
        .filter_map(|(_, t)| match decode(&t.payload) {
            Ok(Message::V3Report(r)) => Some(r),
            _ => None,
        })
        .flatten()
        .map(|r| (r.kind, r.sources))
        .collect()
}

#[test]
fn a_group_and_source_specific_query_is_answered_about_the_sources_it_asked() {
    use crate::igmp::state::FilterMode::{Exclude, Include};
    let s = |n| Ipv4Addr::new(10, 9, 0, n);
    let router = Ipv4Addr::new(10, 0, 0, 1);
    let (mut h, t0) = host();
    let mut at = t0;
    let mut ask = |h: &mut IgmpHost, f: HostFilter, queries: &[&[Ipv4Addr]]| {
        h.handle_event(at, SetMemberships(BTreeMap::from([(G, f)])));
        run(h, t0, at + Duration::from_secs(5));
        at += Duration::from_secs(5);
        for q in queries {
            h.handle_packet(at, IF, router, G, &gss_query(G, q));
        }
        let out = records(h, t0, at + Duration::from_secs(2));
        at += Duration::from_secs(2);
        out
    };
    // INCLUDE {1,2}, asked about {2,3}: IS_IN {2}, the intersection.
    assert_eq!(
        ask(&mut h, filter(Include, &[s(1), s(2)]), &[&[s(2), s(3)]]),
        [(RecordType::IsInclude, vec![s(2)])]
    );
    // EXCLUDE {1}, asked about {1,4}: IS_IN {4}, what it still wants.
    assert_eq!(
        ask(&mut h, filter(Exclude, &[s(1)]), &[&[s(1), s(4)]]),
        [(RecordType::IsInclude, vec![s(4)])]
    );
    // Asked only about what it does not want: no answer at all.
    assert_eq!(ask(&mut h, filter(Exclude, &[s(1)]), &[&[s(1)]]), []);
    // Two queries before the answer is due: one answer about both lists.
    assert_eq!(
        ask(
            &mut h,
            filter(Include, &[s(1), s(2), s(3)]),
            &[&[s(1)], &[s(3), s(5)]]
        ),
        [(RecordType::IsInclude, vec![s(1), s(3)])]
    );
    // A group-specific query on top widens the answer to the whole state.
    h.handle_packet(at, IF, router, G, &gss_query(G, &[s(1)]));
    h.handle_packet(at, IF, router, G, &query(Version::V3, G, 10));
    assert_eq!(
        records(&mut h, t0, at + Duration::from_secs(2)),
        [(RecordType::IsInclude, vec![s(1), s(2), s(3)])]
    );
}
