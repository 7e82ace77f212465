//! The data path around the rules: no re-ingest of its own output, input
//! group joins, no daemon no relay, pinned workers, batched syscalls, two
//! relays in a chain, unmatched traffic dropped in the kernel.
use super::*;

#[test]
fn never_reingests_its_own_output() {
    if !require_root("never_reingests_its_own_output") {
        return;
    }
    let t = Relay3::new("loop");
    // Rule A sends 239.2.2.2 out of r1; rule B listens for 239.2.2.2 on r1
    // and would send it back out of r0. If the relay heard its own output
    // on r1, B would fire.
    let cfg = "{ rules: [ \
        { name: \"a\", input: { interface: \"r0\", group: \"239.1.1.1\", port: 5000 }, \
          outputs: [ { interface: \"r1\", group: \"239.2.2.2\", port: 6000 } ] }, \
        { name: \"b\", input: { interface: \"r1\", group: \"239.2.2.2\", port: 6000 }, \
          outputs: [ { interface: \"r0\", group: \"239.9.9.9\", port: 6000 } ] } ] }";
    let d = start(&t, cfg);
    let back = recv(
        &t.src,
        "239.9.9.9",
        6000,
        Some("s0"),
        &["--idle-timeout", "2", "--duration", "4"],
    );
    let fwd = recv(
        &t.dst,
        "239.2.2.2",
        6000,
        Some("d0"),
        &["--expect", "1000", "--idle-timeout", "1"],
    );
    send(&t.src, "239.1.1.1", 5000, "s0", 1000, 2000, 200, &[]);
    assert_eq!(fwd.finish(T).unique, 1000);
    let b = back.finish(T);
    assert_eq!(b.received, 0, "the relay re-ingested its own output: {b:?}");
    let st = d.stats();
    let rb = st
        .rules
        .iter()
        .find(|r| r.name.as_deref() == Some("b"))
        .unwrap();
    assert_eq!(rb.packets, 0, "rule b never matched: {st:?}");
}

#[test]
fn supervisor_joins_input_groups_on_the_input_interface() {
    if !require_root("supervisor_joins_input_groups_on_the_input_interface") {
        return;
    }
    let t = Relay3::new("join");
    let d = start(
        &t,
        &rule_config("239.7.7.7", 5000, &[("r1", "239.2.2.2", 6000)]),
    );
    // The link-layer membership (the NIC filter) of 239.7.7.7; the IGMP
    // side is tests/input_membership.rs.
    let maddr = || String::from_utf8_lossy(&t.relay.run("ip maddr show dev r0").stdout).to_string();
    let mac = "01:00:5e:07:07:07";
    assert!(maddr().contains(mac), "joined on r0: {}", maddr());
    let id = d.list()[0].id.clone();
    d.ctl_ok(&["remove", "--rule-id", &id]);
    let gone = common::wait_for(Duration::from_secs(5), || {
        (!maddr().contains(mac)).then_some(())
    });
    assert!(
        gone.is_some(),
        "left the group after the rule went: {}",
        maddr()
    );
}

#[test]
fn input_without_a_daemon_relays_nothing() {
    // The control experiment for the tests above: without mcrd, nothing
    // crosses the relay namespace (the kernel does not forward it).
    if !require_root("input_without_a_daemon_relays_nothing") {
        return;
    }
    let t = Relay3::new("ctl");
    let r = recv(&t.dst, "239.2.2.2", 6000, Some("d0"), &["--duration", "2"]);
    send(&t.src, "239.1.1.1", 5000, "s0", 200, 1000, 100, &[]);
    assert_eq!(r.finish(T).received, 0);
}

#[test]
fn pinned_workers_share_an_interface_by_flow() {
    if !require_root("pinned_workers_share_an_interface_by_flow") {
        return;
    }
    let t = Relay3::new("pin");
    let cfg = "{ rules: [ { input: { interface: \"r0\", group: \"239.1.1.1\", port: 0 }, \
               outputs: [ { interface: \"r1\", group: \"239.2.2.2\", port: 0 } ] } ], \
               pinning: { r0: [0, 1] } }";
    let d = start(&t, cfg);
    let ws = d.workers();
    assert_eq!(ws.len(), 2, "one worker per pinned core: {ws:?}");
    for w in &ws {
        let core = w.core.expect("pinned");
        let pid = w.pid.expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let allowed = status
            .lines()
            .find(|l| l.starts_with("Cpus_allowed_list:"))
            .unwrap();
        assert_eq!(
            allowed.split_whitespace().last(),
            Some(core.to_string().as_str()),
            "worker {pid} on core {core}"
        );
    }
    // Sixteen flows (different ports, so different flow hashes): every
    // packet arrives once, each flow in order, and both workers take a
    // share (all sixteen hashing to one worker: 1 in 32 768).
    let ports: Vec<u16> = (0..16).map(|i| 5100 + i).collect();
    let rs: Vec<_> = ports
        .iter()
        .map(|p| {
            recv(
                &t.dst,
                "239.2.2.2",
                *p,
                Some("d0"),
                &["--expect", "250", "--idle-timeout", "1"],
            )
        })
        .collect();
    for (i, p) in ports.iter().enumerate() {
        send(
            &t.src,
            "239.1.1.1",
            *p,
            "s0",
            250,
            5000,
            200,
            &["--stream-id", &i.to_string()],
        );
    }
    for (p, r) in ports.iter().zip(rs) {
        let rep = r.finish(T);
        assert_eq!(
            (rep.unique, rep.lost, rep.duplicates, rep.reordered),
            (250, 0, 0, 0),
            "port {p}: {rep:?}\nworkers: {:?}",
            d.stats().workers
        );
    }
    // The workers report every stats interval: wait for the reports that
    // cover the last packets.
    let st = common::wait_for(Duration::from_secs(5), || {
        let st = d.stats();
        let all = st.workers.iter().map(|w| w.counters.matched).sum::<u64>() == 4000
            && st.rules.first().is_some_and(|r| r.packets == 4000);
        all.then_some(st)
    })
    .unwrap_or_else(|| panic!("counters do not reach 4000: {:?}", d.stats()));
    let shares: Vec<u64> = st.workers.iter().map(|w| w.counters.matched).collect();
    assert!(
        shares.iter().all(|s| *s > 0),
        "both workers took flows: {shares:?}"
    );
    assert_eq!(
        st.rules[0].packets, 4000,
        "the rule's counters sum over its workers"
    );
}

#[test]
fn bursts_are_handled_with_fewer_syscalls_than_packets() {
    if !require_root("bursts_are_handled_with_fewer_syscalls_than_packets") {
        return;
    }
    let t = Relay3::new("batch");
    let d = start(
        &t,
        &rule_config("239.1.1.1", 5000, &[("r1", "239.2.2.2", 6000)]),
    );
    let before = d.wait_worker_counters(Duration::from_secs(5), |_| true);
    let r = recv(
        &t.dst,
        "239.2.2.2",
        6000,
        Some("d0"),
        &["--expect", "20000", "--idle-timeout", "1"],
    );
    // Bursts of 64 packets every 2 ms: what a busy source looks like.
    send(
        &t.src,
        "239.1.1.1",
        5000,
        "s0",
        20000,
        32000,
        200,
        &["--batch", "64", "--tick-us", "2000"],
    );
    assert_eq!(r.finish(T).lost, 0);
    // Counters arrive with the next stats report.
    let after = common::wait_for(Duration::from_secs(5), || {
        let w = d.stats().workers.first()?.counters.clone();
        (w.recv - before.recv >= 20000).then_some(w)
    })
    .expect("stats caught up");
    let submits = after.ring_submits - before.ring_submits;
    let packets = after.recv - before.recv;
    let sends = after.sent - before.sent;
    eprintln!("{packets} packets, {sends} datagrams sent, {submits} io_uring submits");
    assert!(
        submits * 2 <= packets,
        "{submits} submit calls for {packets} packets: not batching"
    );
}

#[test]
fn two_relays_in_a_chain() {
    if !require_root("two_relays_in_a_chain") {
        return;
    }
    // sender -> relay A -> relay B -> receiver, all over veth: relay B's
    // input is relay A's (batched, GSO) output.
    let t = Relay3::new("chain");
    let rcv = Netns::new("chain-rcv");
    // Relay B lives in what Relay3 calls dst: its input is d0, output d1.
    veth(&t.dst, "d1", "10.10.5.1/24", &rcv, "d0", "10.10.5.2/24");
    let _a = start(
        &t,
        &rule_config("239.1.1.1", 5000, &[("r1", "239.2.2.2", 6000)]),
    );
    let cfg_b = "{ rules: [ { input: { interface: \"d0\", group: \"239.2.2.2\", port: 6000 }, \
                 outputs: [ { interface: \"d1\", group: \"239.3.3.3\", port: 7000 } ] } ] }";
    let relay_b = Daemon::with_config(&t.dst, cfg_b);
    let r = recv(
        &rcv,
        "239.3.3.3",
        7000,
        Some("d0"),
        &["--expect", "30000", "--idle-timeout", "1"],
    );
    // Fast enough that relay A batches.
    send(
        &t.src,
        "239.1.1.1",
        5000,
        "s0",
        30000,
        60000,
        1000,
        &["--batch", "64", "--tick-us", "1000"],
    );
    let rep = r.finish(T);
    assert_eq!(
        (rep.unique, rep.lost, rep.corrupt),
        (30000, 0, 0),
        "{rep:?}\nrelay B: {:?}",
        relay_b.stats()
    );
    let w = &relay_b.stats().workers[0].counters;
    assert_eq!(w.malformed, 0, "relay B dropped frames: {w:?}");
    assert!(
        w.gso_frames > 0,
        "relay A's GSO batches reached relay B and were split: {w:?}"
    );
    eprintln!(
        "relay B: {} frames, {} of them GSO batches, {} datagrams",
        w.recv, w.gso_frames, w.matched
    );
}

#[test]
fn traffic_no_rule_names_is_dropped_in_the_kernel_before_the_worker() {
    // The packet socket's BPF filter admits only the destinations the rules
    // name: a flood to another group must cost the worker nothing.
    if !require_root("traffic_no_rule_names_is_dropped_in_the_kernel_before_the_worker") {
        return;
    }
    let t = Relay3::new("bpf");
    let d = start(
        &t,
        &rule_config("239.1.1.1", 5000, &[("r1", "239.2.2.2", 6000)]),
    );
    let before = d.wait_worker_counters(Duration::from_secs(5), |_| true);
    // 20 000 datagrams to a group no rule names, same port and interface.
    send(&t.src, "239.9.9.9", 5000, "s0", 20000, 20000, 200, &[]);
    t.relay_all(1000, 5000, 200);
    let after = d.wait_worker_counters(Duration::from_secs(5), |c| {
        c.matched >= before.matched + 1000
    });
    let received = after.recv - before.recv;
    assert!(
        received < 1100,
        "the worker received {received} frames for 1000 it relays: the flood to 239.9.9.9 reached it"
    );
    assert_eq!(
        after.no_match, before.no_match,
        "nothing unmatched reached the worker"
    );
}
