//! What a relayed packet carries: TTL per output, link-local groups and
//! TTL-1 sources, jumbo payloads, route mode's kept source and TTL − 1.
use super::*;

#[test]
fn ttl_per_output() {
    if !require_root("ttl_per_output") {
        return;
    }
    let t = Relay3::new("ttl");
    let d2 = t.add_receiver(2, "ttl-d2");
    let cfg =
        "{ rules: [ { input: { interface: \"r0\", group: \"239.1.1.1\", port: 5000 }, outputs: [ \
               { interface: \"r1\", group: \"239.5.5.1\", port: 6000, ttl: 7 }, \
               { interface: \"r2\", group: \"239.5.5.2\", port: 6000 } ] } ] }";
    let _d = start(&t, cfg);
    let c1 = capture(
        &t.dst,
        "239.5.5.1".parse().unwrap(),
        "10.10.2.2".parse().unwrap(),
        20,
    );
    let c2 = capture(
        &d2,
        "239.5.5.2".parse().unwrap(),
        "10.10.3.2".parse().unwrap(),
        20,
    );
    send(
        &t.src,
        "239.1.1.1",
        5000,
        "s0",
        20,
        200,
        100,
        &["--ttl", "30"],
    );
    let (a, b) = (c1.join().unwrap(), c2.join().unwrap());
    // Count bytes, not frames: a raw socket on veth sees a GSO batch of
    // datagrams (the relay batches when it falls behind) as one frame.
    let bytes = |v: &[Seen]| v.iter().map(|p| p.payload_len).sum::<usize>();
    assert_eq!(bytes(&a), 20 * 100, "{a:?}");
    assert!(a.iter().all(|p| p.ttl == 7), "configured TTL 7: {a:?}");
    assert_eq!(bytes(&b), 20 * 100, "{b:?}");
    assert!(
        b.iter().all(|p| p.ttl == 1),
        "default multicast TTL 1: {b:?}"
    );
    assert!(a.iter().all(|p| p.src == Ipv4Addr::new(10, 10, 2, 1)
        && p.dport == 6000
        && p.payload_len % 100 == 0));
}

#[test]
fn link_local_groups_and_ttl1_sources() {
    if !require_root("link_local_groups_and_ttl1_sources") {
        return;
    }
    let t = Relay3::new("mdns");
    let cfg = "{ rules: [ \
        { name: \"mdns\", input: { interface: \"r0\", group: \"224.0.0.251\", port: 5353 }, \
          outputs: [ { interface: \"r1\", group: \"224.0.0.251\", port: 5353, ttl: 255 } ] }, \
        { name: \"ssdp\", input: { interface: \"r0\", group: \"239.255.255.250\", port: 1900 }, \
          outputs: [ { interface: \"r1\", group: \"239.255.255.250\", port: 1900 } ] } ] }";
    let _d = start(&t, cfg);
    // The capture sees the wire (TTL, port); the receivers count datagrams
    // (a raw socket on a veth sees a batch of datagrams as one frame).
    let cap = capture(
        &t.dst,
        "224.0.0.251".parse().unwrap(),
        "10.10.2.2".parse().unwrap(),
        10,
    );
    let rm = recv(
        &t.dst,
        "224.0.0.251",
        5353,
        Some("d0"),
        &["--expect", "300", "--idle-timeout", "1"],
    );
    let rs = recv(
        &t.dst,
        "239.255.255.250",
        1900,
        Some("d0"),
        &["--expect", "300", "--idle-timeout", "1"],
    );
    // TTL-1 sources: what mDNS and SSDP hosts send, and what a router drops.
    send(
        &t.src,
        "224.0.0.251",
        5353,
        "s0",
        300,
        1000,
        120,
        &["--ttl", "1"],
    );
    send(
        &t.src,
        "239.255.255.250",
        1900,
        "s0",
        300,
        1000,
        120,
        &["--ttl", "1"],
    );
    let seen = cap.join().unwrap();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|p| p.ttl == 255 && p.dport == 5353),
        "mDNS leaves with TTL 255: {seen:?}"
    );
    let rep = rm.finish(T);
    assert_eq!((rep.unique, rep.lost), (300, 0), "mDNS relayed: {rep:?}");
    let rep = rs.finish(T);
    assert_eq!((rep.unique, rep.lost), (300, 0), "SSDP relayed: {rep:?}");
}

#[test]
fn jumbo_payloads_over_jumbo_links() {
    if !require_root("jumbo_payloads_over_jumbo_links") {
        return;
    }
    let t = Relay3::new("jumbo");
    for (ns, i) in [
        (&t.src, "s0"),
        (&t.relay, "r0"),
        (&t.relay, "r1"),
        (&t.dst, "d0"),
    ] {
        ns.ip(&["link", "set", i, "mtu", "9000"]);
    }
    let d = start(
        &t,
        &rule_config("239.1.1.1", 5000, &[("r1", "239.2.2.2", 6000)]),
    );
    // The largest UDP payload a 9000-byte MTU carries unfragmented.
    let r = recv(
        &t.dst,
        "239.2.2.2",
        6000,
        Some("d0"),
        &["--expect", "500", "--idle-timeout", "1", "--verify-full"],
    );
    send(&t.src, "239.1.1.1", 5000, "s0", 500, 1000, 8972, &[]);
    let rep = r.finish(T);
    assert_eq!((rep.unique, rep.lost, rep.corrupt), (500, 0, 0), "{rep:?}");
    assert_eq!(rep.bytes, 500 * 8972);
    // A 9000-byte payload arrives whole on a 9100-MTU input and leaves on
    // the 9000-MTU output (the kernel fragments it there; the receiver
    // reassembles).
    t.src.ip(&["link", "set", "s0", "mtu", "9100"]);
    t.relay.ip(&["link", "set", "r0", "mtu", "9100"]);
    std::thread::sleep(Duration::from_millis(500));
    let r = recv(
        &t.dst,
        "239.2.2.2",
        6000,
        Some("d0"),
        &["--expect", "200", "--idle-timeout", "1", "--verify-full"],
    );
    send(
        &t.src,
        "239.1.1.1",
        5000,
        "s0",
        200,
        500,
        9000,
        &["--stream-id", "9"],
    );
    let rep = r.finish(T);
    assert_eq!(
        (rep.unique, rep.lost, rep.corrupt),
        (200, 0, 0),
        "9000-byte payloads: {rep:?}"
    );
    let w = &d.stats().workers[0].counters;
    assert_eq!(w.malformed, 0, "no truncated frames: {w:?}");
}

#[test]
fn route_mode_keeps_the_source_and_decrements_ttl() {
    if !require_root("route_mode_keeps_the_source_and_decrements_ttl") {
        return;
    }
    let t = Relay3::new("route");
    let cfg = "{ rules: [ { input: { interface: \"r0\", group: \"239.1.1.1\", port: 5000 }, \
               outputs: [ { interface: \"r1\", group: \"239.1.1.1\", port: 5000, mode: \"route\" } ] } ] }";
    let _d = start(&t, cfg);
    let cap = capture(
        &t.dst,
        "239.1.1.1".parse().unwrap(),
        "10.10.2.2".parse().unwrap(),
        50,
    );
    let r = recv(
        &t.dst,
        "239.1.1.1",
        5000,
        Some("d0"),
        &["--expect", "50", "--idle-timeout", "1"],
    );
    send(
        &t.src,
        "239.1.1.1",
        5000,
        "s0",
        50,
        500,
        300,
        &["--ttl", "9"],
    );
    let seen = cap.join().unwrap();
    assert_eq!(seen.len(), 50);
    assert!(
        seen.iter()
            .all(|p| p.src == Ipv4Addr::new(10, 10, 1, 1) && p.ttl == 8),
        "source kept, TTL 9 -> 8: {seen:?}"
    );
    let rep = r.finish(T);
    assert_eq!(
        rep.unique, 50,
        "the routed packets are intact datagrams: {rep:?}"
    );
}
