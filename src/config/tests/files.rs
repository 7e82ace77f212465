//! Reading files, and the example files shipped in `examples/`.

use super::*;

// ---------------------------------------------------------------- files

#[test]
fn parse_file_reads_and_reports_io_errors() {
    let missing = temp_path("missing.json5");
    let e = refused(parse_file(&missing), "a missing file");
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].line, e[0].path.as_str()), (0, ""));
    assert!(
        e[0].message.contains(&missing.display().to_string()),
        "{}",
        e[0]
    );
    assert!(e[0].message.contains("os error"), "{}", e[0]);
    assert!(
        !e[0].to_string().starts_with("line"),
        "no position for I/O errors"
    );

    let parsed = with_file("good.json5", ONE_RULE, |p| parse_file(&p));
    assert_eq!(parsed, Ok(ok(ONE_RULE)));

    let latin1 = b"{\n  rules: [],\n  // caf\xe9\n}";
    let e = refused(
        with_file("latin1.json5", latin1, |p| parse_file(&p)),
        "invalid UTF-8",
    );
    assert_eq!((e[0].line, e[0].column), (3, 9));
    assert!(e[0].message.contains("not valid UTF-8"), "{}", e[0]);

    let big = vec![b' '; MAX_CONFIG_BYTES + 1];
    let e = refused(
        with_file("big.json5", big, |p| parse_file(&p)),
        "a big file",
    );
    assert!(e[0].message.contains("larger than"), "{e:?}");

    let dir = std::env::temp_dir();
    assert!(parse_file(&dir).is_err());
}

// ---------------------------------------------------------------- examples

#[test]
fn example_relay() {
    let c = ok(include_str!("../../../examples/relay.json5"));
    assert_eq!(c.rules.len(), 1);
    let r = &c.rules[0];
    assert_eq!(r.name.as_deref(), Some("camera-feed"));
    assert_eq!(r.id, default_rule_id(&r.input));
    assert_eq!(r.input, input("eth0", "239.1.1.1", 5000));
    assert_eq!(r.outputs, vec![out("eth1", "239.2.2.2", 6000)]);
    assert_eq!(r.outputs[0].effective_ttl(), 1);
    let defaults = Config {
        rules: c.rules.clone(),
        ..Config::default()
    };
    assert_eq!(c, defaults);
    round_trip(&c);
}

#[test]
fn example_fanout() {
    let c = ok(include_str!("../../../examples/fanout.json5"));
    assert_eq!(c.rules.len(), 1);
    let r = &c.rules[0];
    assert_eq!(r.id, "feed-a");
    assert_eq!(r.input.source, Some(ip("10.0.0.10")));
    let got: Vec<(&str, String, u16, Option<u8>)> = r
        .outputs
        .iter()
        .map(|o| (o.interface.as_str(), o.group.to_string(), o.port, o.ttl))
        .collect();
    assert_eq!(
        got,
        [
            ("eth1", "239.10.0.1".to_string(), 5004, Some(3)),
            ("eth2", "239.10.0.1".to_string(), 5004, Some(16)),
            ("wlan0", "239.20.0.1".to_string(), 6004, Some(1)),
        ]
    );
    round_trip(&c);
}

#[test]
fn example_mdns_ssdp() {
    let c = ok(include_str!("../../../examples/mdns-ssdp.json5"));
    assert_eq!(c.rules.len(), 4);
    for (r, (from, to, group, port, ttl)) in c.rules.iter().zip([
        ("lan0", "wlan0", "224.0.0.251", 5353, Some(255)),
        ("wlan0", "lan0", "224.0.0.251", 5353, Some(255)),
        ("lan0", "wlan0", "239.255.255.250", 1900, None),
        ("wlan0", "lan0", "239.255.255.250", 1900, None),
    ]) {
        assert_eq!(r.input, input(from, group, port));
        let mut o = out(to, group, port);
        o.ttl = ttl;
        assert_eq!(r.outputs, vec![o]);
    }
    round_trip(&c);
}

#[test]
fn igmp_example_has_a_querier_and_a_members_only_output() {
    let c = ok(include_str!("../../../examples/igmp.json5"));
    let igmp = c.igmp.clone().expect("igmp section");
    assert_eq!(igmp.querier_interfaces, ["eth1", "eth2"]);
    assert_eq!(igmp.settings.last_member_query_interval, 0.5);
    let outs: Vec<bool> = c.rules[0].outputs.iter().map(|o| o.members_only).collect();
    assert_eq!(outs, [false, true]);
    round_trip(&c);
}

#[test]
fn example_igmp_proxy() {
    let c = ok(include_str!("../../../examples/igmp-proxy.json5"));
    assert!(c.rules.is_empty());
    let igmp = c.igmp.clone().expect("igmp section");
    let proxy = igmp.proxy.clone().expect("proxy");
    assert_eq!(proxy.upstream, "eth0");
    // The downstream interfaces run queriers without being listed.
    assert!(igmp.querier_interfaces.is_empty());
    assert_eq!(igmp.queriers(), ["eth1", "eth2"]);
    round_trip(&c);
}

#[test]
fn example_pim() {
    let c = ok(include_str!("../../../examples/pim.json5"));
    assert!(c.rules.is_empty());
    let pim = c.pim.clone().expect("pim section");
    assert!(pim.enabled);
    let names: Vec<&str> = pim.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["eth0", "eth1"]);
    // Longest prefix: MCR's own range inside FRR's.
    let rp = |g: &str| pim.rp_for(ip(g)).map(|m| m.rp);
    assert_eq!(rp("239.1.2.3"), Some(ip("10.0.12.1")));
    assert_eq!(rp("239.192.7.7"), Some(ip("10.0.12.2")));
    assert_eq!(rp("238.1.1.1"), None);
    let igmp = c.igmp.clone().expect("igmp section");
    assert_eq!(igmp.querier_interfaces, ["eth2"]);
    round_trip(&c);
}

#[test]
fn example_full() {
    let c = ok(include_str!("../../../examples/full.json5"));
    assert_eq!(c.rules.len(), 2);
    let r = &c.rules[0];
    assert_eq!(
        (r.id.as_str(), r.name.as_deref()),
        ("video-1", Some("Studio video"))
    );
    assert_eq!(r.input.source, Some(ip("10.1.1.5")));
    assert_eq!(r.outputs[0].ttl, Some(8));
    assert_eq!(r.outputs[1].mode, OutputMode::Route);
    assert_eq!(c.rules[1].id, default_rule_id(&c.rules[1].input));
    assert!(!c.rules[1].outputs[0].group.is_multicast());
    assert_eq!(c.pinning.get("eth0"), Some(&vec![2, 3]));
    assert_eq!(c.logging.levels.global, Severity::Notice);
    assert_eq!(c.logging.levels.facilities.len(), 2);
    assert_eq!(c.logging.format, LogFormat::Json);
    assert_eq!(
        c.control.socket,
        Some(PathBuf::from("/run/mcr/control.sock"))
    );
    assert_eq!(c.control.group.as_deref(), Some("mcr"));
    assert_eq!(c.workers.idle_timeout, Duration::from_secs(600));
    assert_eq!(c.workers.heartbeat_timeout, Duration::from_millis(2500));
    assert_eq!(c.workers.user, "mcr-worker");
    round_trip(&c);
}
