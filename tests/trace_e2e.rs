//! `mcrctl trace` end to end: a traced rule's last packets, with their
//! sources, sizes and outputs, and the dropped ones with their reason;
//! the trace keeps no more than asked; bad requests are refused with a
//! reason; a worker restart ends the trace.

mod common;

use std::time::Duration;

use common::daemon::{inject, Daemon, DaemonOpts};
use common::{ip, require_root, rule_config, wait_for, Relay3};
use mcr::control::trace::{TracePacket, TraceReport};
use mcr::wire::UdpPacketSpec;

fn spec(ttl: u8) -> UdpPacketSpec {
    let mut s = UdpPacketSpec::new(ip("10.10.1.1"), ip("239.1.1.1"), 4000, 5000);
    s.ttl = ttl;
    s
}

/// The packets of the rule's trace once there are `n`.
fn wait_packets(d: &Daemon, rule: &str, n: usize) -> (TraceReport, Vec<TracePacket>) {
    let mut last = TraceReport::default();
    let got = wait_for(Duration::from_secs(10), || {
        last = d.ctl_json(&["trace", "show", "--rule-id", rule]);
        let p: Vec<TracePacket> = last.rules.iter().flat_map(|r| r.packets.clone()).collect();
        (p.len() >= n).then_some(p)
    });
    match got {
        Some(p) => (last, p),
        None => panic!("trace never held {n} packets: {last:?}"),
    }
}

#[test]
fn a_traced_rule_shows_its_packets_and_why_some_were_dropped() {
    if !require_root("a_traced_rule_shows_its_packets_and_why_some_were_dropped") {
        return;
    }
    let t = Relay3::new("trace");
    let d = Daemon::start(
        &t.relay,
        DaemonOpts {
            config: Some(&rule_config(
                "239.1.1.1",
                5000,
                &[("r1", "239.2.2.2", 6000)],
            )),
            fault_injection: true,
            ..Default::default()
        },
    );
    d.wait_active(Duration::from_secs(20));
    let rule = d.list()[0].id.clone();

    // Bad requests say what is wrong.
    let e = d.ctl_err(&["trace", "enable", "--rule-id", "no-such-rule"]);
    assert!(e.contains("no rule with id \"no-such-rule\""), "{e}");
    let e = d.ctl_err(&["trace", "enable", "--rule-id", &rule, "--count", "0"]);
    assert!(e.contains("at least 1"), "{e}");
    let e = d.ctl_err(&["trace", "enable", "--rule-id", &rule, "--count", "5000"]);
    assert!(e.contains("at most 1000"), "{e}");
    let e = d.ctl_err(&["trace", "show", "--rule-id", &rule]);
    assert!(e.contains("is not traced"), "{e}");

    let out = d.ctl_ok(&["trace", "enable", "--rule-id", &rule, "--count", "20"]);
    assert!(out.contains("tracing rule"), "{out}");

    // Six good packets of distinct sizes, three corrupted ones, one more
    // good one.
    let mut packets = Vec::new();
    let mut want = Vec::new();
    for i in 0..6usize {
        packets.push(spec(64).build_checksummed(&vec![b'a'; 100 + i]));
        want.push((128 + i as u32, "forwarded".to_string()));
    }
    packets.push(spec(0).build_checksummed(&[b'z'; 50]));
    want.push((78, "dropped: TTL 0".into()));
    // The header checksum itself is wrong: the addresses still name the rule.
    let mut bad_ip = spec(64).build_checksummed(&[b'y'; 60]);
    bad_ip[10] ^= 0xff;
    packets.push(bad_ip);
    want.push((88, "dropped: bad IPv4 header checksum".into()));
    let mut bad_udp = spec(64).build_checksummed(&[b'x'; 70]);
    bad_udp[40] ^= 0x20;
    packets.push(bad_udp);
    want.push((98, "dropped: bad UDP checksum".into()));
    packets.push(spec(64).build_checksummed(&[b'b'; 300]));
    want.push((328, "forwarded".into()));
    inject(&t.src, "s0", &packets);

    let (report, got) = wait_packets(&d, &rule, want.len());
    assert_eq!(report.rules.len(), 1, "{report:?}");
    assert_eq!(
        (report.rules[0].interface.as_str(), report.rules[0].capacity),
        ("r0", 20)
    );
    let seen: Vec<(u32, String)> = got.iter().map(|p| (p.size, p.action.clone())).collect();
    assert_eq!(seen, want, "sizes and actions, oldest first");
    for p in &got {
        assert_eq!(p.source.to_string(), "10.10.1.1:4000");
        assert_eq!(p.destination.to_string(), "239.1.1.1:5000");
        if p.action == "forwarded" {
            assert_eq!(p.outputs, vec!["r1 239.2.2.2:6000 (republish)"], "{p:?}");
        } else {
            assert!(p.outputs.is_empty(), "a dropped packet went nowhere: {p:?}");
        }
    }
    let text = d.ctl_ok(&["trace", "show", "--rule-id", &rule]);
    assert!(text.contains("dropped: TTL 0"), "{text}");
    assert!(text.contains("10.10.1.1:4000"), "{text}");

    // Bounded: 25 more, and only the last 20 are kept.
    let more: Vec<Vec<u8>> = (0..25usize)
        .map(|i| spec(64).build_checksummed(&vec![b'c'; 200 + i]))
        .collect();
    inject(&t.src, "s0", &more);
    let got = wait_for(Duration::from_secs(10), || {
        let r: TraceReport = d.ctl_json(&["trace", "show", "--rule-id", &rule]);
        (r.rules[0].seen == 35).then_some(r)
    })
    .expect("35 packets seen");
    let sizes: Vec<u32> = got.rules[0].packets.iter().map(|p| p.size).collect();
    let last20: Vec<u32> = (5..25).map(|i| 228 + i).collect();
    assert_eq!(sizes, last20);

    // Disabled: gone.
    d.ctl_ok(&["trace", "disable", "--rule-id", &rule]);
    let e = d.ctl_err(&["trace", "show", "--rule-id", &rule]);
    assert!(e.contains("is not traced"), "{e}");
    let all = d.ctl_ok(&["trace", "show"]);
    assert!(all.contains("no rule is traced"), "{all}");

    // A worker restart ends a trace.
    d.ctl_ok(&["trace", "enable", "--rule-id", &rule]);
    let pid0 = d.workers()[0].pid;
    d.ctl_ok(&["fault", "kill-worker"]);
    wait_for(Duration::from_secs(15), || {
        let w = d.workers();
        (w[0].pid.is_some() && w[0].pid != pid0 && w[0].state == "running").then_some(())
    })
    .expect("worker restarted");
    let e = d.ctl_err(&["trace", "show", "--rule-id", &rule]);
    assert!(e.contains("is not traced"), "{e}");
}
