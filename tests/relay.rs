//! End-to-end relay cases: real `mcrd` (supervisor and worker processes),
//! real `mcrgen` sender and receiver, each host in its own network
//! namespace, joined by veth pairs.

mod common;

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use common::daemon::{recv, send, Daemon};
use common::{require_root, rule_config, veth, Netns, Relay3};

const T: Duration = Duration::from_secs(20);

fn start(t: &Relay3, config: &str) -> Daemon {
    Daemon::with_config(&t.relay, config)
}

/// A datagram as seen on the wire by a receiving host.
#[derive(Debug)]
struct Seen {
    ttl: u8,
    src: Ipv4Addr,
    dport: u16,
    payload_len: usize,
}

/// Capture up to `n` UDP datagrams for `group` arriving in `ns` (joined on
/// the interface with address `local`), with their IP headers.
fn capture(
    ns: &Netns,
    group: Ipv4Addr,
    local: Ipv4Addr,
    n: usize,
) -> std::thread::JoinHandle<Vec<Seen>> {
    use nix::sys::socket::{
        setsockopt, socket, sockopt, AddressFamily, IpMembershipRequest, SockFlag, SockProtocol,
        SockType,
    };
    let name = ns.name.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let s = socket(
            AddressFamily::Inet,
            SockType::Raw,
            SockFlag::empty(),
            SockProtocol::Udp,
        )
        .unwrap();
        if group.is_multicast() {
            setsockopt(
                &s,
                sockopt::IpAddMembership,
                &IpMembershipRequest::new(group, Some(local)),
            )
            .unwrap();
        }
        // Deep enough that a capture thread starved of CPU by parallel
        // tests does not drop what it is asked to count.
        setsockopt(&s, sockopt::RcvBufForce, &(8 << 20)).unwrap();
        setsockopt(
            &s,
            sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(3, 0),
        )
        .unwrap();
        tx.send(()).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while out.len() < n {
            let Ok(len) = nix::sys::socket::recv(
                s.as_raw_fd(),
                &mut buf,
                nix::sys::socket::MsgFlags::empty(),
            ) else {
                break;
            };
            let Ok(ip) = mcr::wire::Ipv4::new_checked(&buf[..len]) else {
                continue;
            };
            if ip.dst() != group {
                continue;
            }
            let Ok(udp) = mcr::wire::Udp::new_checked(ip.payload()) else {
                continue;
            };
            out.push(Seen {
                ttl: ip.ttl(),
                src: ip.src(),
                dport: udp.dst_port(),
                payload_len: udp.payload().len(),
            });
        }
        out
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("capture ready");
    h
}

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

fn icmp_unreachables(ns: &Netns) -> u64 {
    let out = ns.run("cat /proc/net/snmp");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("Icmp:")).collect();
    let head: Vec<&str> = lines[0].split_whitespace().collect();
    let vals: Vec<&str> = lines[1].split_whitespace().collect();
    let i = head
        .iter()
        .position(|h| *h == "OutDestUnreachs")
        .expect("OutDestUnreachs");
    vals[i].parse().unwrap()
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
