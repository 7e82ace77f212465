//! Downstream (*,G)/(S,G) Join/Prune state (RFC 7761 §4.5.1, §4.5.2) on a
//! hand-driven LAN (`pim/lan.rs`). The routers' upstream machines do not
//! exist yet, so the downstream routers' Join/Prunes are crafted here and
//! sent from their addresses.

#[path = "pim/lan.rs"]
mod lan;
use lan::*;

use std::net::Ipv4Addr;
use std::time::Duration;

use mcr::pim::codec::{
    self, EncodedGroup, EncodedSource, Hello, JoinPrune, JoinPruneGroup, Message, ALL_PIM_ROUTERS,
};
use mcr::pim::instance::LeaveReason;
use mcr::pim::state::downstream::JoinState;
use mcr::pim::{PimConfig, PimEvent, PimInput, PimInstance};
use mcr::proto::{Protocol, Rng};

const UPSTREAM: usize = 0;

fn rp() -> Ipv4Addr {
    ip("10.9.9.9")
}

fn grp() -> Ipv4Addr {
    ip("239.1.1.1")
}

fn jp(
    upstream: &str,
    holdtime: u16,
    joins: Vec<EncodedSource>,
    prunes: Vec<EncodedSource>,
) -> Vec<u8> {
    codec::encode(&Message::JoinPrune(JoinPrune {
        upstream_neighbor: ip(upstream),
        holdtime,
        groups: vec![JoinPruneGroup {
            group: EncodedGroup::host(grp()),
            joins,
            prunes,
        }],
    }))
}

fn star_join(holdtime: u16) -> Vec<u8> {
    jp(
        "10.0.0.1",
        holdtime,
        vec![EncodedSource::star_g(rp())],
        vec![],
    )
}

fn star_prune(holdtime: u16) -> Vec<u8> {
    jp(
        "10.0.0.1",
        holdtime,
        vec![],
        vec![EncodedSource::star_g(rp())],
    )
}

/// A LAN with 10.0.0.1 (the upstream router) and `n - 1` downstream ones,
/// all adjacent.
fn lan_of(n: usize) -> Lan {
    let members: Vec<(&str, u32)> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"][..n]
        .iter()
        .map(|a| (*a, 1))
        .collect();
    let mut lan = Lan::new(&members);
    lan.run_for(10 * SEC);
    assert_eq!(lan.neighbors_of(UPSTREAM).len(), n - 1);
    lan
}

fn joins_and_leaves(lan: &Lan) -> Vec<String> {
    lan.routers[UPSTREAM]
        .events
        .iter()
        .filter_map(|e| match e {
            PimEvent::DownstreamJoin { source, group, .. } => {
                Some(format!("join {source:?} {group}"))
            }
            PimEvent::DownstreamLeave {
                source,
                group,
                reason,
                ..
            } => Some(format!("leave {source:?} {group} {reason:?}")),
            _ => None,
        })
        .collect()
}

#[test]
fn a_join_holds_for_its_holdtime_and_refreshes_extend_it() {
    let mut lan = lan_of(2);
    lan.inject(ip("10.0.0.2"), &star_join(210));
    let joined_at = lan.now;
    let st = lan.routers[UPSTREAM].pim.downstream(lan.now);
    assert_eq!(st.len(), 1);
    assert_eq!(
        (st[0].source, st[0].group, st[0].rp),
        (None, grp(), Some(rp()))
    );
    assert_eq!(st[0].state, JoinState::Join);
    assert_eq!(st[0].expires_in_ms, 210_000);
    assert_eq!(joins_and_leaves(&lan), vec!["join None 239.1.1.1"]);

    // A refresh 60 s later pushes the expiry to 270 s.
    lan.run_for(60 * SEC);
    lan.inject(ip("10.0.0.2"), &star_join(210));
    lan.run_until(joined_at + 269 * SEC);
    assert_eq!(lan.routers[UPSTREAM].pim.downstream(lan.now).len(), 1);
    lan.run_until(joined_at + 270 * SEC);
    assert!(lan.routers[UPSTREAM].pim.downstream(lan.now).is_empty());
    assert_eq!(
        joins_and_leaves(&lan),
        vec!["join None 239.1.1.1", "leave None 239.1.1.1 Expired"]
    );
}

#[test]
fn a_prune_from_the_only_neighbor_takes_effect_at_once() {
    let mut lan = lan_of(2);
    lan.inject(ip("10.0.0.2"), &star_join(210));
    lan.inject(ip("10.0.0.2"), &star_prune(210));
    assert!(lan.routers[UPSTREAM].pim.downstream(lan.now).is_empty());
    assert_eq!(
        joins_and_leaves(&lan),
        vec!["join None 239.1.1.1", "leave None 239.1.1.1 Pruned"]
    );
    assert!(lan.routers[UPSTREAM].join_prunes.is_empty(), "no PruneEcho");
}

#[test]
fn on_a_lan_a_prune_waits_for_the_override_interval_then_echoes() {
    let mut lan = lan_of(3);
    lan.inject(ip("10.0.0.2"), &star_join(210));
    lan.inject(ip("10.0.0.3"), &star_prune(200));
    let pruned_at = lan.now;
    let st = lan.routers[UPSTREAM].pim.downstream(lan.now);
    assert_eq!(st[0].state, JoinState::PrunePending);
    // J/P_Override_Interval: 2.5 s override + 0.5 s propagation delay,
    // the values every router here announces.
    assert_eq!(st[0].prune_pending_in_ms, Some(3_000));
    lan.run_until(pruned_at + Duration::from_millis(2_999));
    assert_eq!(lan.routers[UPSTREAM].pim.downstream(lan.now).len(), 1);
    lan.run_until(pruned_at + 3 * SEC);
    assert!(lan.routers[UPSTREAM].pim.downstream(lan.now).is_empty());
    assert_eq!(
        joins_and_leaves(&lan),
        vec!["join None 239.1.1.1", "leave None 239.1.1.1 Pruned"]
    );
    // The PruneEcho: a Prune with ourselves as upstream neighbor.
    let (at, echo) = &lan.routers[UPSTREAM].join_prunes[0];
    assert_eq!(*at, pruned_at + 3 * SEC);
    assert_eq!(echo.upstream_neighbor, ip("10.0.0.1"));
    assert_eq!(echo.holdtime, 200);
    assert_eq!(echo.groups[0].prunes, vec![EncodedSource::star_g(rp())]);
    assert!(echo.groups[0].joins.is_empty());
    let c = lan.routers[UPSTREAM].pim.counters(10).unwrap();
    assert_eq!(c.prune_echo_tx, 1);
}

#[test]
fn a_join_within_the_override_interval_keeps_the_interface_joined() {
    let mut lan = lan_of(3);
    lan.inject(ip("10.0.0.2"), &star_join(210));
    lan.inject(ip("10.0.0.3"), &star_prune(210));
    lan.run_for(2 * SEC);
    // 10.0.0.2 still wants the traffic and overrides.
    lan.inject(ip("10.0.0.2"), &star_join(210));
    lan.run_for(10 * SEC);
    let st = lan.routers[UPSTREAM].pim.downstream(lan.now);
    assert_eq!(st[0].state, JoinState::Join);
    assert_eq!(joins_and_leaves(&lan), vec!["join None 239.1.1.1"]);
    assert!(lan.routers[UPSTREAM].join_prunes.is_empty());
}

#[test]
fn only_joins_naming_us_from_neighbors_for_star_g_or_s_g_are_acted_on() {
    let mut lan = lan_of(3);
    let s = ip("10.1.1.1");
    // (S,G) join: its own entry, next to a (*,G).
    lan.inject(
        ip("10.0.0.2"),
        &jp(
            "10.0.0.1",
            210,
            vec![EncodedSource::s_g(s), EncodedSource::star_g(rp())],
            vec![],
        ),
    );
    // Meant for 10.0.0.3: 10.0.0.1 must not act.
    lan.inject(
        ip("10.0.0.2"),
        &jp(
            "10.0.0.3",
            210,
            vec![EncodedSource::s_g(ip("10.1.1.2"))],
            vec![],
        ),
    );
    // From a router that never said Hello.
    lan.inject(ip("10.0.0.7"), &star_join(210));
    // A source range is refused; the (S,G,rpt) prune is taken (§4.5.3).
    let rpt = EncodedSource {
        rpt: true,
        ..EncodedSource::s_g(s)
    };
    let range = EncodedSource {
        mask_len: 24,
        ..EncodedSource::s_g(s)
    };
    lan.inject(ip("10.0.0.2"), &jp("10.0.0.1", 210, vec![range], vec![rpt]));

    let up = &lan.routers[UPSTREAM];
    let mut keys: Vec<_> = up
        .pim
        .downstream(lan.now)
        .iter()
        .map(|d| (d.source, d.group))
        .collect();
    keys.sort();
    assert_eq!(keys, vec![(None, grp()), (Some(s), grp())]);
    let c = up.pim.counters(10).unwrap();
    assert_eq!(c.join_prune_rx, 4);
    assert_eq!(c.join_prune_not_for_us, 1);
    assert_eq!(c.join_prune_from_non_neighbor, 1);
    assert_eq!(c.join_prune_entries_ignored, 1);
    assert_eq!(c.rpt_prune_rx, 1);
    // 10.0.0.3 saw the Join naming it and created state.
    let third = lan.routers[2].pim.downstream(lan.now);
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].source, Some(ip("10.1.1.2")));
}

#[test]
fn interface_loss_drops_downstream_state_with_an_event() {
    let mut lan = lan_of(2);
    lan.inject(ip("10.0.0.2"), &star_join(210));
    let now = lan.now;
    lan.routers[UPSTREAM]
        .pim
        .handle_event(now, PimInput::InterfaceDown { ifindex: 10 });
    lan.deliver();
    assert!(lan.routers[UPSTREAM].pim.downstream(now).is_empty());
    assert!(has_event(&lan.routers[UPSTREAM], |e| matches!(
        e,
        PimEvent::DownstreamLeave {
            reason: LeaveReason::InterfaceGone,
            ..
        }
    )));
    assert_eq!(lan.routers[UPSTREAM].pim.poll_timeout(), None);
}

#[test]
fn frr_join_and_prune_captures_drive_the_state() {
    // FRR r2 (10.201.12.2) joins (*,239.1.1.1) toward RP 10.201.255.1
    // through us as 10.201.12.1, then prunes (*,239.1.1.2).
    let t0 = std::time::Instant::now();
    let mut pim = PimInstance::new(Rng::new(3));
    let cfg = PimConfig {
        interfaces: vec![mcr::pim::PimInterfaceConfig::named("r1-r2")],
        ..config(1)
    };
    pim.handle_config(t0, cfg);
    pim.handle_event(
        t0,
        PimInput::InterfaceUp {
            ifindex: 4,
            name: "r1-r2".into(),
            addr: ip("10.201.12.1"),
        },
    );
    let hello = codec::encode(&Message::Hello(Hello {
        holdtime: Some(105),
        dr_priority: Some(1),
        generation_id: Some(5),
        ..Hello::default()
    }));
    let frr = ip("10.201.12.2");
    pim.handle_packet(t0, 4, frr, ALL_PIM_ROUTERS, &hello);
    let join = hex(&std::fs::read_to_string("tests/data/pim/join_frr.hex").unwrap());
    pim.handle_packet(t0, 4, frr, ALL_PIM_ROUTERS, &join);
    let st = pim.downstream(t0);
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].group, ip("239.1.1.1"));
    assert_eq!(st[0].rp, Some(ip("10.201.255.1")));
    assert_eq!(st[0].expires_in_ms, 210_000);
    // The prune is for a group we hold no state for: NoInfo stays NoInfo.
    let prune = hex(&std::fs::read_to_string("tests/data/pim/prune_frr.hex").unwrap());
    pim.handle_packet(t0, 4, frr, ALL_PIM_ROUTERS, &prune);
    assert_eq!(pim.downstream(t0).len(), 1);
    let json = serde_json::to_value(&pim.downstream(t0)[0]).unwrap();
    assert_eq!(json["state"], "join");
    assert_eq!(json["source"], serde_json::Value::Null);
}

#[test]
fn a_star_g_join_toward_another_rp_than_ours_is_dropped() {
    let mut lan = lan_of(2);
    let now = lan.now;
    let mut cfg = config(1);
    cfg.static_rp = vec![mcr::pim::StaticRp {
        group: "239.0.0.0/8".parse().unwrap(),
        rp: ip("10.8.8.8"),
    }];
    lan.routers[UPSTREAM].pim.handle_config(now, cfg);
    lan.run_for(5 * SEC);
    // Toward 10.9.9.9, but RP(239.1.1.1) is 10.8.8.8 here.
    lan.inject(ip("10.0.0.2"), &star_join(210));
    assert!(lan.routers[UPSTREAM].pim.downstream(lan.now).is_empty());
    assert_eq!(
        lan.routers[UPSTREAM]
            .pim
            .counters(10)
            .unwrap()
            .join_wrong_rp,
        1
    );
    let ours = jp(
        "10.0.0.1",
        210,
        vec![EncodedSource::star_g(ip("10.8.8.8"))],
        vec![],
    );
    lan.inject(ip("10.0.0.2"), &ours);
    let st = lan.routers[UPSTREAM].pim.downstream(lan.now);
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].rp, Some(ip("10.8.8.8")));
    // (S,G) Joins do not name an RP and are not affected.
    let sg = jp(
        "10.0.0.1",
        210,
        vec![EncodedSource::s_g(ip("10.1.1.1"))],
        vec![],
    );
    lan.inject(ip("10.0.0.2"), &sg);
    assert_eq!(lan.routers[UPSTREAM].pim.downstream(lan.now).len(), 2);
}
