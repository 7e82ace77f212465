//! PIM neighbor layer, several routers on one LAN, driven by hand on a
//! virtual clock (`pim/lan.rs`).

#[path = "pim/lan.rs"]
mod lan;
use lan::*;

use std::time::{Duration, Instant};

use mcr::pim::codec::{self, Hello, Message, ALL_PIM_ROUTERS};
use mcr::pim::instance::DownReason;
use mcr::pim::{PimConfig, PimEvent, PimInput, PimInstance};
use mcr::proto::{Protocol, Rng};

#[test]
fn three_routers_become_neighbors_and_elect_the_highest_address() {
    let mut lan = Lan::new(&[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]);
    // Nothing is sent at t0: the first Hello waits a random 0-5 s.
    assert!(lan.routers.iter().all(|r| r.hellos.is_empty()));
    lan.run_for(5 * SEC);
    for r in &lan.routers {
        let first = r.hellos[0].0 - lan.t0;
        assert!(first <= 5 * SEC, "first Hello after {first:?}");
        assert_eq!(r.hellos[0].1, 105, "holdtime is 3.5 x 30 s");
    }
    // Everyone heard everyone's first Hello by then.
    assert_eq!(lan.neighbors_of(0), vec![ip("10.0.0.2"), ip("10.0.0.3")]);
    assert_eq!(lan.neighbors_of(1), vec![ip("10.0.0.1"), ip("10.0.0.3")]);
    assert_eq!(lan.neighbors_of(2), vec![ip("10.0.0.1"), ip("10.0.0.2")]);
    assert_eq!(lan.all_agree_on_dr(), ip("10.0.0.3"));
    assert!(has_event(&lan.routers[0], |e| matches!(
        e,
        PimEvent::DrChanged { new, we_are_dr: false, .. } if *new == ip("10.0.0.3")
    )));
    let snap = &lan.routers[2].pim.interfaces(lan.now)[0];
    assert!(snap.we_are_dr);
    assert_eq!(snap.neighbors, 2);

    // Periodic Hellos every 30 s keep the adjacencies for good.
    lan.run_for(600 * SEC);
    assert_eq!(lan.neighbors_of(0).len(), 2);
    let r = &lan.routers[0];
    let gaps: Vec<_> = r.hellos.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(
        gaps.iter().filter(|g| **g == 30 * SEC).count() >= 18,
        "{gaps:?}"
    );
    assert!(gaps.iter().all(|g| *g <= 30 * SEC));
    let c = r.pim.counters(r.ifindex).unwrap();
    assert_eq!(c.hello_tx, r.hellos.len() as u64);
    assert!(c.hello_rx >= 2 * 20);
    assert!(!has_event(r, |e| matches!(
        e,
        PimEvent::NeighborDown { .. }
    )));
}

#[test]
fn dr_priority_beats_address_and_is_ignored_when_one_neighbor_omits_it() {
    let mut lan = Lan::new(&[("10.0.0.1", 100), ("10.0.0.2", 1), ("10.0.0.3", 1)]);
    lan.run_for(10 * SEC);
    assert_eq!(
        lan.all_agree_on_dr(),
        ip("10.0.0.1"),
        "highest priority wins"
    );

    // A router without the DR Priority option joins the LAN: every router
    // must fall back to the highest address.
    let old_style = Hello {
        holdtime: Some(105),
        generation_id: Some(99),
        ..Hello::default()
    };
    let payload = codec::encode(&Message::Hello(old_style.clone()));
    lan.inject(ip("10.0.0.0"), &payload);
    assert_eq!(lan.all_agree_on_dr(), ip("10.0.0.3"));
    let snap = lan.routers[0].pim.neighbors(lan.now);
    let silent = snap.iter().find(|n| n.address == ip("10.0.0.0")).unwrap();
    assert_eq!(silent.dr_priority, None);

    // It leaves with a goodbye: priorities count again.
    let bye = Hello {
        holdtime: Some(0),
        ..old_style
    };
    lan.inject(ip("10.0.0.0"), &codec::encode(&Message::Hello(bye)));
    assert_eq!(lan.all_agree_on_dr(), ip("10.0.0.1"));
    assert!(has_event(&lan.routers[1], |e| matches!(
        e,
        PimEvent::NeighborDown { neighbor, reason: DownReason::Goodbye, .. } if *neighbor == ip("10.0.0.0")
    )));
}

#[test]
fn a_silent_neighbor_expires_after_its_holdtime_and_the_dr_moves() {
    let mut lan = Lan::new(&[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]);
    lan.run_for(10 * SEC);
    assert_eq!(lan.all_agree_on_dr(), ip("10.0.0.3"));
    // 10.0.0.3 crashes: no goodbye.
    let last = lan.routers[2].hellos.last().unwrap().0;
    lan.routers[2].up = false;
    lan.run_until(last + 104 * SEC);
    assert_eq!(lan.neighbors_of(0), vec![ip("10.0.0.2"), ip("10.0.0.3")]);
    assert_eq!(
        lan.dr_seen_by(0),
        ip("10.0.0.3"),
        "still DR within its holdtime"
    );
    lan.run_until(last + 105 * SEC);
    assert_eq!(lan.neighbors_of(0), vec![ip("10.0.0.2")]);
    assert_eq!(lan.neighbors_of(1), vec![ip("10.0.0.1")]);
    assert_eq!(lan.dr_seen_by(0), ip("10.0.0.2"));
    assert_eq!(lan.dr_seen_by(1), ip("10.0.0.2"));
    assert!(has_event(&lan.routers[0], |e| matches!(
        e,
        PimEvent::NeighborDown { neighbor, reason: DownReason::Expired, .. } if *neighbor == ip("10.0.0.3")
    )));
}

#[test]
fn a_restarted_neighbor_is_detected_by_its_generation_id_and_greeted_promptly() {
    let mut lan = Lan::new(&[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]);
    lan.run_for(40 * SEC);
    // Restart where neither survivor has a periodic Hello due within the
    // next 11 s, so a Hello from them in that window can only be triggered.
    let next_periodic = |lan: &Lan, i: usize| {
        let ms = lan.routers[i].pim.interfaces(lan.now)[0].next_hello_in_ms;
        Duration::from_millis(ms.unwrap())
    };
    while next_periodic(&lan, 0) < 11 * SEC || next_periodic(&lan, 1) < 11 * SEC {
        lan.run_for(SEC);
    }
    let deadlines = [
        lan.now + next_periodic(&lan, 0),
        lan.now + next_periodic(&lan, 1),
    ];
    let old_gen = lan.routers[2].pim.generation_id(12).unwrap();
    // 10.0.0.3 restarts within its holdtime, with a new generation id.
    let fresh = lan.start(ip("10.0.0.3"), 12, 1, 777);
    lan.routers[2] = fresh;
    let new_gen = lan.routers[2].pim.generation_id(12).unwrap();
    assert_ne!(old_gen, new_gen);
    let sent_before: Vec<usize> = lan.routers.iter().map(|r| r.hellos.len()).collect();
    lan.run_for(10 * SEC);
    let first_of_restarted = lan.routers[2].hellos[0].0;
    for i in 0..2 {
        let r = &lan.routers[i];
        assert!(has_event(r, |e| matches!(
            e,
            PimEvent::NeighborRestarted { neighbor, old_generation_id, new_generation_id, .. }
                if *neighbor == ip("10.0.0.3") && *old_generation_id == old_gen && *new_generation_id == new_gen
        )));
        // A Hello within Triggered_Hello_Delay of the restarted router's
        // first Hello, before the periodic one was due.
        let greeting = r.hellos[sent_before[i]].0;
        assert!(greeting >= first_of_restarted, "router {i}");
        assert!(greeting <= first_of_restarted + 5 * SEC, "router {i}");
        assert!(greeting < deadlines[i], "router {i}");
        assert!(!has_event(r, |e| matches!(
            e,
            PimEvent::NeighborDown { .. }
        )));
    }
    // The restarted router relearned both neighbors from those Hellos.
    assert_eq!(lan.neighbors_of(2), vec![ip("10.0.0.1"), ip("10.0.0.2")]);
    assert_eq!(lan.all_agree_on_dr(), ip("10.0.0.3"));
}

#[test]
fn shutdown_says_goodbye_and_neighbors_reelect_at_once() {
    let mut lan = Lan::new(&[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]);
    lan.run_for(10 * SEC);
    let now = lan.now;
    lan.routers[2].pim.handle_event(now, PimInput::Shutdown);
    lan.deliver();
    assert_eq!(lan.routers[2].hellos.last().unwrap(), &(now, 0));
    assert_eq!(lan.neighbors_of(0), vec![ip("10.0.0.2")]);
    assert_eq!(lan.all_agree_on_dr(), ip("10.0.0.2"));
    assert_eq!(
        lan.routers[2].pim.poll_timeout(),
        None,
        "a stopped core has no timers"
    );
}

#[test]
fn config_reload_keeps_neighbors_and_announces_a_new_priority_promptly() {
    let mut lan = Lan::new(&[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]);
    lan.run_for(10 * SEC);
    let gen = lan.routers[0].pim.generation_id(10);
    let now = lan.now;
    lan.routers[0].pim.handle_config(now, config(50));
    lan.run_for(5 * SEC);
    assert_eq!(lan.all_agree_on_dr(), ip("10.0.0.1"));
    assert_eq!(
        lan.routers[0].pim.generation_id(10),
        gen,
        "no restart on reload"
    );
    assert_eq!(lan.neighbors_of(0).len(), 2);

    // PIM off on the interface: goodbye, and the others drop it at once.
    let now = lan.now;
    let off = PimConfig {
        interfaces: vec![],
        ..config(50)
    };
    lan.routers[0].pim.handle_config(now, off);
    lan.deliver();
    assert_eq!(lan.routers[0].hellos.last().unwrap(), &(now, 0));
    assert_eq!(lan.neighbors_of(1), vec![ip("10.0.0.3")]);
    assert_eq!(lan.dr_seen_by(1), ip("10.0.0.3"));
    assert!(lan.routers[0].pim.interfaces(now).is_empty());
    assert!(has_event(&lan.routers[0], |e| matches!(
        e,
        PimEvent::NeighborDown {
            reason: DownReason::PimDisabled,
            ..
        }
    )));

    // A configuration that does not validate changes nothing.
    let mut bad = config(1);
    bad.interfaces[0].hello_interval = Duration::ZERO;
    lan.routers[1].pim.handle_config(now, bad);
    assert_eq!(lan.routers[1].pim.rejected_configs(), 1);
    assert_eq!(
        lan.routers[1].pim.config().interfaces[0].hello_interval,
        30 * SEC
    );
}

#[test]
fn bad_packets_are_counted_by_kind_and_change_nothing() {
    let mut lan = Lan::new(&[("10.0.0.1", 1), ("10.0.0.2", 1)]);
    lan.run_for(10 * SEC);
    let good = codec::encode(&Message::Hello(Hello {
        holdtime: Some(105),
        dr_priority: Some(1000),
        generation_id: Some(1),
        ..Hello::default()
    }));
    let mut bad_sum = good.clone();
    bad_sum[5] ^= 0xff;
    let mut v1 = good.clone();
    v1[0] = 0x10;
    let src = ip("10.0.0.9");
    lan.inject(src, &bad_sum);
    lan.inject(src, &v1);
    lan.inject(src, &good[..good.len() - 1]);
    lan.inject(src, &[]);
    // A Hello unicast to us is not a neighbor announcement.
    let r = &mut lan.routers[0];
    r.pim
        .handle_packet(lan.now, r.ifindex, src, ip("10.0.0.1"), &good);
    // A packet on an interface without PIM.
    r.pim
        .handle_packet(lan.now, 99, src, ALL_PIM_ROUTERS, &good);
    let c = r.pim.counters(r.ifindex).unwrap();
    // The cut Hello fails its checksum first.
    assert_eq!(c.checksum_errors, 2);
    assert_eq!(c.wrong_version, 1);
    // The empty one is truncated; the unicast one is refused after decoding.
    assert_eq!(c.malformed, 2);
    assert_eq!(r.pim.not_enabled_drops(), 1);
    assert_eq!(lan.neighbors_of(0), vec![ip("10.0.0.2")]);
    assert_eq!(lan.all_agree_on_dr(), ip("10.0.0.2"));
    // Other message types are counted, not yet acted on.
    let jp = std::fs::read_to_string("tests/data/pim/join_frr.hex").unwrap();
    lan.inject(ip("10.0.0.2"), &hex(&jp));
    assert_eq!(lan.routers[0].pim.counters(10).unwrap().join_prune_rx, 1);
}

#[test]
fn frr_and_pimd_hellos_make_neighbors_and_the_dr_matches_frr() {
    // The lab: FRR r1 is 10.201.12.1, the router under test 10.201.12.2;
    // FRR elected 10.201.12.2 (equal priority, higher address).
    let t0 = Instant::now();
    let mut pim = PimInstance::new(Rng::new(1));
    pim.handle_config(t0, config(1));
    pim.handle_event(
        t0,
        PimInput::InterfaceUp {
            ifindex: 5,
            name: "lan0".into(),
            addr: ip("10.201.12.2"),
        },
    );
    let frr = hex(&std::fs::read_to_string("tests/data/pim/hello_frr.hex").unwrap());
    pim.handle_packet(t0, 5, ip("10.201.12.1"), ALL_PIM_ROUTERS, &frr);
    let pimd = hex(&std::fs::read_to_string("tests/data/pim/hello_troglobit.hex").unwrap());
    pim.handle_packet(t0, 5, ip("10.201.12.3"), ALL_PIM_ROUTERS, &pimd);
    let n = pim.neighbors(t0);
    assert_eq!(n.len(), 2);
    assert_eq!(n[0].address, ip("10.201.12.1"));
    assert_eq!(n[0].holdtime_secs, 105);
    assert_eq!(n[0].generation_id, Some(1_751_230_293));
    assert!(n[0].lan_prune_delay.is_some() && n[1].lan_prune_delay.is_none());
    assert_eq!(pim.dr(5), Some(ip("10.201.12.3")));
    let json = serde_json::to_value(&n[0]).unwrap();
    assert_eq!(json["address"], "10.201.12.1");
    assert_eq!(json["interface"], "lan0");
    assert_eq!(json["expires_in_ms"], 105_000);
    // mcrctl reads back what the daemon serialises.
    let back: mcr::pim::instance::NeighborSnapshot = serde_json::from_value(json).unwrap();
    assert_eq!(back, n[0]);
    let ifs = pim.interfaces(t0);
    let text = serde_json::to_string(&ifs).unwrap();
    let back: Vec<mcr::pim::instance::InterfaceSnapshot> = serde_json::from_str(&text).unwrap();
    assert_eq!(back, ifs);
    assert_eq!(back[0].dr, ip("10.201.12.3"));
    assert_eq!(back[0].counters.hello_rx, 2);

    // Our Hello carries what FRR sends: holdtime, LAN prune delay, DR
    // priority, generation id.
    let due = pim.poll_timeout().unwrap();
    assert!(due <= t0 + 5 * SEC);
    pim.handle_timeout(due);
    let t = pim.poll_transmit().unwrap();
    let Ok(Message::Hello(h)) = codec::decode(&t.payload) else {
        panic!("not a Hello");
    };
    assert_eq!(h.holdtime, Some(105));
    assert_eq!(h.dr_priority, Some(1));
    assert_eq!(h.generation_id, pim.generation_id(5));
    let d = h.lan_prune_delay.unwrap();
    assert_eq!(
        (d.propagation_delay_ms, d.override_interval_ms),
        (500, 2500)
    );
    let ev = serde_json::to_string(&pim.poll_event().unwrap()).unwrap();
    assert!(ev.contains("\"event\":\"dr_changed\""), "{ev}");
}
