//! Which packets a rule relays where: group and port translation, fan-out,
//! multicast ⇄ unicast, any input port, source filters.
use super::*;

#[test]
fn one_to_one_with_group_and_port_translation() {
    if !require_root("one_to_one_with_group_and_port_translation") {
        return;
    }
    let t = Relay3::new("o2o");
    let d = start(
        &t,
        &rule_config("239.1.1.1", 5000, &[("r1", "239.2.2.2", 6000)]),
    );
    // Every packet arrives translated, once.
    let rep = t.relay_all(2000, 4000, 700);
    assert_eq!(rep.duplicates, 0, "{rep:?}");
    assert!(rep.latency_us.p99 > 0.0);
    // The daemon's counters agree with what the receiver saw.
    let st = d.stats();
    assert_eq!(st.rules[0].packets, 2000, "{st:?}");
    assert_eq!(st.rules[0].outputs[0].packets, 2000);
    assert_eq!(st.rules[0].outputs[0].errors, 0);
    let w = &st.workers[0].counters;
    assert_eq!((w.matched, w.malformed, w.fragments), (2000, 0, 0));
}

#[test]
fn fan_out_one_to_three() {
    if !require_root("fan_out_one_to_three") {
        return;
    }
    let t = Relay3::new("fan");
    let d2 = t.add_receiver(2, "fan-d2");
    let d3 = t.add_receiver(3, "fan-d3");
    let d = start(
        &t,
        &rule_config(
            "239.1.1.1",
            5000,
            &[
                ("r1", "239.2.2.1", 6001),
                ("r2", "239.2.2.2", 6002),
                ("r3", "239.2.2.3", 6003),
            ],
        ),
    );
    let rs = [
        recv(
            &t.dst,
            "239.2.2.1",
            6001,
            Some("d0"),
            &["--expect", "1500", "--idle-timeout", "1"],
        ),
        recv(
            &d2,
            "239.2.2.2",
            6002,
            Some("d0"),
            &["--expect", "1500", "--idle-timeout", "1"],
        ),
        recv(
            &d3,
            "239.2.2.3",
            6003,
            Some("d0"),
            &["--expect", "1500", "--idle-timeout", "1"],
        ),
    ];
    send(&t.src, "239.1.1.1", 5000, "s0", 1500, 3000, 1000, &[]);
    for (i, r) in rs.into_iter().enumerate() {
        let rep = r.finish(T);
        assert_eq!(
            (rep.unique, rep.lost, rep.corrupt),
            (1500, 0, 0),
            "output {i}: {rep:?}"
        );
    }
    let st = d.stats();
    assert!(
        st.rules[0].outputs.iter().all(|o| o.packets == 1500),
        "{st:?}"
    );
}

#[test]
fn multicast_to_unicast() {
    if !require_root("multicast_to_unicast") {
        return;
    }
    let t = Relay3::new("m2u");
    let _d = start(
        &t,
        &rule_config("239.1.1.1", 5000, &[("r1", "10.10.2.2", 7000)]),
    );
    let r = recv(
        &t.dst,
        "0.0.0.0",
        7000,
        None,
        &["--expect", "1000", "--idle-timeout", "1"],
    );
    send(&t.src, "239.1.1.1", 5000, "s0", 1000, 2000, 500, &[]);
    let rep = r.finish(T);
    assert_eq!((rep.unique, rep.lost), (1000, 0), "{rep:?}");
}

#[test]
fn unicast_to_multicast_without_icmp_unreachables() {
    if !require_root("unicast_to_multicast_without_icmp_unreachables") {
        return;
    }
    let t = Relay3::new("u2m");
    let cfg = "{ rules: [ { input: { interface: \"r0\", group: \"10.10.1.2\", port: 7000 }, \
               outputs: [ { interface: \"r1\", group: \"239.3.3.3\", port: 7001 } ] } ] }";
    let _d = start(&t, cfg);
    let icmp_before = icmp_unreachables(&t.relay);
    let r = recv(
        &t.dst,
        "239.3.3.3",
        7001,
        Some("d0"),
        &["--expect", "1000", "--idle-timeout", "1"],
    );
    // Unicast to the relay's own address, as a unicast source would.
    let out = common::daemon::send_cmd(&t.src, "10.10.1.2", 7000, "s0", 1000, 2000, 300, &[])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rep = r.finish(T);
    assert_eq!((rep.unique, rep.lost), (1000, 0), "{rep:?}");
    // The relay took the port: the kernel must not have answered the
    // sender 1000 times with "port unreachable".
    assert_eq!(
        icmp_unreachables(&t.relay),
        icmp_before,
        "relay sent ICMP port unreachables"
    );
}

#[test]
fn any_input_port_and_kept_output_port() {
    if !require_root("any_input_port_and_kept_output_port") {
        return;
    }
    let t = Relay3::new("anyp");
    // Input port 0 = any; output port 0 = the packet's own port.
    let _d = start(&t, &rule_config("239.1.1.1", 0, &[("r1", "239.4.4.4", 0)]));
    let ra = recv(
        &t.dst,
        "239.4.4.4",
        5100,
        Some("d0"),
        &["--expect", "500", "--idle-timeout", "1"],
    );
    let rb = recv(
        &t.dst,
        "239.4.4.4",
        5200,
        Some("d0"),
        &["--expect", "500", "--idle-timeout", "1"],
    );
    send(&t.src, "239.1.1.1", 5100, "s0", 500, 2000, 200, &[]);
    send(
        &t.src,
        "239.1.1.1",
        5200,
        "s0",
        500,
        2000,
        200,
        &["--stream-id", "2"],
    );
    let (a, b) = (ra.finish(T), rb.finish(T));
    assert_eq!((a.unique, a.lost), (500, 0), "port 5100: {a:?}");
    assert_eq!((b.unique, b.lost), (500, 0), "port 5200: {b:?}");
}

#[test]
fn source_filter_takes_only_its_source() {
    if !require_root("source_filter_takes_only_its_source") {
        return;
    }
    let t = Relay3::new("srcf");
    t.src.ip(&["addr", "add", "10.10.1.3/24", "dev", "s0"]);
    let cfg = "{ rules: [ { input: { interface: \"r0\", group: \"239.1.1.1\", port: 5000, source: \"10.10.1.1\" }, \
               outputs: [ { interface: \"r1\", group: \"239.2.2.2\", port: 6000 } ] } ] }";
    let d = start(&t, cfg);
    let r = recv(
        &t.dst,
        "239.2.2.2",
        6000,
        Some("d0"),
        &["--idle-timeout", "1.5"],
    );
    send(
        &t.src,
        "239.1.1.1",
        5000,
        "s0",
        400,
        2000,
        200,
        &["--source", "10.10.1.1", "--stream-id", "1"],
    );
    send(
        &t.src,
        "239.1.1.1",
        5000,
        "s0",
        300,
        2000,
        200,
        &["--source", "10.10.1.3", "--stream-id", "2"],
    );
    let rep = r.finish(T);
    assert_eq!(rep.streams, 1, "only the filtered source's stream: {rep:?}");
    assert_eq!(rep.unique, 400);
    let w = &d.stats().workers[0].counters;
    assert_eq!(
        w.no_match, 300,
        "the other source's packets are counted, not relayed"
    );
}
