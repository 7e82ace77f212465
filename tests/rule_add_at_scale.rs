//! A rule added to a daemon that already runs thousands of rules forwards
//! at once, and one removed stops at once (issue 13, scale): the RIB,
//! the worker's table and the input membership change by the one rule,
//! not by recompiling and resending all of them. The bound is generous
//! (a debug build on a loaded 2-core machine); `scale --rules` reports the
//! figure.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::daemon::{add_named, remove_named, Daemon};
use common::{require_root, Netns, Relay3};

const RULES: usize = 3000;
/// What a user would call "at once" on a loaded CI machine in debug.
/// Before rule changes cost what they change, one add at 10,000 rules
/// took 0.4–1 s to its first forwarded datagram in debug, and its state
/// read `active` 3.4–3.7 s after.
const BOUND: Duration = Duration::from_secs(5);

fn group(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(239, 70, (i / 250) as u8, (i % 250 + 1) as u8)
}

fn config() -> String {
    let rules: Vec<String> = (0..RULES)
        .map(|i| {
            format!(
                "{{ name: \"s{i}\", input: {{ interface: \"r0\", group: \"{}\", port: 5000 }}, outputs: [ {{ interface: \"r1\", group: \"239.71.0.1\", port: {} }} ] }}",
                group(i),
                20_000 + i
            )
        })
        .collect();
    format!("{{ rules: [ {} ] }}", rules.join(",\n"))
}

/// Datagrams arriving in `ns` on `port` of 239.71.0.1, counted until
/// `stop`.
fn count_arrivals(ns: &Netns, port: u16, stop: &AtomicBool, got: &AtomicU64) {
    ns.enter_thread();
    let sk = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .expect("udp socket");
    sk.set_reuse_address(true).expect("reuse");
    sk.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())
        .expect("bind");
    sk.join_multicast_v4(&Ipv4Addr::new(239, 71, 0, 1), &Ipv4Addr::new(10, 10, 2, 2))
        .expect("join");
    sk.set_read_timeout(Some(Duration::from_millis(10)))
        .expect("timeout");
    let sk: UdpSocket = sk.into();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Acquire) {
        if sk.recv(&mut buf).is_ok() {
            got.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// One datagram to `g`:5000 from the source namespace every millisecond
/// until `stop`.
fn send_stream(ns: &Netns, g: Ipv4Addr, stop: &AtomicBool) {
    ns.enter_thread();
    let sk = UdpSocket::bind("0.0.0.0:0").expect("sender");
    sk.set_multicast_ttl_v4(8).expect("ttl");
    socket2::SockRef::from(&sk)
        .set_multicast_if_v4(&Ipv4Addr::new(10, 10, 1, 1))
        .expect("multicast if");
    while !stop.load(Ordering::Acquire) {
        let _ = sk.send_to(&[0x5a; 64], SocketAddrV4::new(g, 5000));
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Wait until `got` satisfies `done`; how long that took.
fn until(got: &AtomicU64, done: impl Fn(u64) -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < BOUND {
        if done(got.load(Ordering::Acquire)) {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

#[test]
fn a_rule_added_among_thousands_forwards_at_once_and_stops_at_once_when_removed() {
    if !require_root("a_rule_added_among_thousands_forwards_at_once_and_stops_at_once_when_removed")
    {
        return;
    }
    let t = Relay3::new("addsc");
    let d = Daemon::start_config(&t.relay, &config());
    d.wait_active(Duration::from_secs(180));
    let (stop, got) = (AtomicBool::new(false), AtomicU64::new(0));
    let new_group = group(RULES);
    let port = (20_000 + RULES) as u16;
    std::thread::scope(|s| {
        s.spawn(|| count_arrivals(&t.dst, port, &stop, &got));
        s.spawn(|| send_stream(&t.src, new_group, &stop));
        // The stream runs before the rule exists: nothing may get through.
        std::thread::sleep(Duration::from_millis(300));
        let before = got.load(Ordering::Acquire);
        let mut c = d.client();
        let added = add_named(
            &mut c,
            "new",
            "r0",
            &new_group.to_string(),
            5000,
            &format!("239.71.0.1:{port}:r1"),
        );
        let first = until(&got, |n| n > 0);
        let after_add = got.load(Ordering::Acquire);
        let removed = remove_named(&mut c, "new");
        // Stopped: nothing more arrives for 200 ms (the sender sends every
        // millisecond), which must happen within the bound.
        let t0 = Instant::now();
        let mut last = (got.load(Ordering::Acquire), Instant::now());
        let stopped = loop {
            std::thread::sleep(Duration::from_millis(10));
            let n = got.load(Ordering::Acquire);
            if n != last.0 {
                last = (n, Instant::now());
            } else if last.1.elapsed() >= Duration::from_millis(200) {
                break Some(last.1.duration_since(t0));
            }
            if t0.elapsed() > BOUND {
                break None;
            }
        };
        stop.store(true, Ordering::Release);
        assert_eq!(before, 0, "forwarded before the rule existed");
        added.unwrap_or_else(|e| panic!("{e}"));
        removed.unwrap_or_else(|e| panic!("{e}"));
        let first =
            first.unwrap_or_else(|| panic!("nothing forwarded within {BOUND:?} of the add"));
        assert!(after_add > 0);
        let stopped =
            stopped.unwrap_or_else(|| panic!("still forwarding {BOUND:?} after the remove"));
        eprintln!(
            "at {RULES} rules: first datagram {:.1} ms after the add; the last {:.1} ms after the remove",
            first.as_secs_f64() * 1e3,
            stopped.as_secs_f64() * 1e3
        );
    });
    // The other rules are untouched: still all active.
    d.wait_active(Duration::from_secs(30));
    assert_eq!(d.list().len(), RULES);
}
