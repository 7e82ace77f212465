//! One input relayed to two outputs, one of which drains far slower than
//! the input arrives: the fast output must still get the stream, and the
//! worker must keep running.
//!
//! Why this can go wrong: the worker reads frames in place in its
//! `TPACKET_V3` receive ring and its sends copy straight from the ring, so
//! a send that waits for room on a full output socket keeps its whole
//! 256 KiB block from the kernel, and the kernel fills the ring's blocks
//! strictly in order and stops (dropping every frame) at the first block
//! that is still the worker's. Measured before the worker's sends stopped
//! waiting (`MSG_DONTWAIT`): 137 of 500 datagrams at 200 pps reached the
//! fast output against a 256 kbit/s one, 488 of 5,000 at 2,000 pps against
//! 1 Mbit/s. Now a send to a full output fails at once and its datagram is
//! dropped for that output only, counted in `output_full_drops`, as the
//! kernel's own forwarding drops at a full queue.
//!
//! The slow output is shaped with `tbf` with a queue larger than the
//! output socket's send buffer, which mcrd is told to keep small
//! (`MCR_SOCKET_SNDBUF`), so the socket fills within a few dozen datagrams
//! and every send to that output waits for room from then on.

mod common;

use std::time::Duration;

use common::daemon::{send_cmd, Daemon, DaemonOpts};
use common::{require_root, rule_config, Netns, Relay3};

const SIZE: usize = 1024;

/// Bytes and packets `iface` has received so far.
fn rx(ns: &Netns, iface: &str) -> (u64, u64) {
    (
        ns.if_stat(iface, "rx_bytes"),
        ns.if_stat(iface, "rx_packets"),
    )
}

/// Datagrams of SIZE bytes received since `before` (a veth counts a UDP
/// GSO batch as one packet, so they are counted from bytes: 42 bytes of
/// headers per packet, the rest payload).
fn datagrams_since(ns: &Netns, iface: &str, before: (u64, u64)) -> u64 {
    let (b, p) = rx(ns, iface);
    (b - before.0).saturating_sub((p - before.1) * 42) / SIZE as u64
}

/// Send `count` datagrams at `rate` through a relay with a fast output
/// (r1) and one shaped to `slow_rate` (r2); assert the fast one got
/// (nearly) all of them, the slow one far fewer, and the worker ran on.
fn slow_and_fast(tag: &str, rate: u32, count: u64, slow_rate: &str) {
    let t = Relay3::new(tag);
    let slow = t.add_receiver(2, &format!("{tag}-d2"));
    // A queue (4 MB) that holds more than the socket's send buffer, so the
    // socket fills before tbf drops anything: the sends wait instead of
    // being dropped by the qdisc.
    t.relay.run(&format!(
        "tc qdisc add dev r2 root tbf rate {slow_rate} burst 4kb limit 4mb"
    ));
    let cfg = rule_config(
        "239.1.1.1",
        5000,
        &[("r1", "239.2.2.2", 6000), ("r2", "239.2.2.3", 6000)],
    );
    let d = Daemon::start(
        &t.relay,
        DaemonOpts {
            config: Some(&cfg),
            env: vec![("MCR_SOCKET_SNDBUF", "65536")],
            ..Default::default()
        },
    );
    d.wait_active(Duration::from_secs(20));
    let worker = || {
        d.workers()
            .into_iter()
            .find(|w| w.interface == "r0")
            .expect("a worker for r0")
    };
    let w0 = worker();
    let fast0 = rx(&t.dst, "d0");
    let slow0 = rx(&slow, "d0");
    let st = send_cmd(&t.src, "239.1.1.1", 5000, "s0", count, rate, SIZE, &[])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("mcrgen send");
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(500));
    let fast = datagrams_since(&t.dst, "d0", fast0);
    let slow_got = datagrams_since(&slow, "d0", slow0);
    let w1 = worker();
    eprintln!(
        "{count} sent at {rate} pps: fast output {fast}, slow output ({slow_rate}) {slow_got}; worker {:?} -> {:?}",
        w0.pid, w1.pid
    );
    // The test means something only if the slow output really held sends
    // back.
    assert!(
        slow_got < count / 2,
        "the slow output was not slow: {slow_got} of {count}"
    );
    assert!(
        fast * 1000 >= count * 995,
        "the slow output starved the fast one: {fast} of {count} relayed\n{}",
        d.log_text()
    );
    assert_eq!(w1.pid, w0.pid, "the worker was replaced: {w1:?}");
    assert_eq!(w1.restarts, w0.restarts);
    assert_eq!(w1.state, "running");
    // The operator sees where the slow output's datagrams went.
    let full: u64 = d
        .stats()
        .workers
        .iter()
        .map(|w| w.counters.output_full_drops)
        .sum();
    assert!(
        full > 0 && full <= count - slow_got,
        "output_full_drops {full}, slow output got {slow_got} of {count}"
    );
}

/// 200 pps against an output that carries about 30 (256 kbit/s): its
/// socket fills within a second and from then on each of its sends waits.
#[test]
fn a_slow_output_does_not_starve_a_fast_one() {
    if !require_root("a_slow_output_does_not_starve_a_fast_one") {
        return;
    }
    slow_and_fast("slow", 200, 500, "256kbit");
}

/// 2,000 pps against 1 Mbit/s (about 120 pps): the worker's receive ring
/// laps many times while the slow output is full.
#[test]
fn a_slow_output_does_not_starve_a_fast_one_at_speed() {
    if !require_root("a_slow_output_does_not_starve_a_fast_one_at_speed") {
        return;
    }
    slow_and_fast("slowf", 2000, 5000, "1mbit");
}
