//! A worker killed with frames read in place from its receive ring, and
//! the worker that takes the ring over: what reaches the receiver. The
//! kill is played in-process: the loop's steps are run by hand and the
//! worker is dropped (nothing handed back, no completion reaped), as a
//! SIGKILL leaves it; the supervisor's copy of the input socket lives on.

use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use super::super::{setup, Hooks, Worker, BGID};
use crate::dataplane::bufring::Tier;
use crate::dataplane::sockets;
use crate::ipc::fdpass::{send_msg, seqpacket_pair};
use crate::ipc::{
    encode, rule_key, table_hash, EgressSpec, TableOutput, TableRule, ToWorker, WorkerSetup,
    IPC_VERSION, MAX_MESSAGE,
};
use crate::rule::OutputMode;

const IN_GROUP: &str = "239.10.0.1";
const OUT_GROUP: &str = "239.20.0.1";

fn sh(args: &[&str]) {
    let st = std::process::Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap();
    assert!(st.success(), "{args:?}");
}

/// On this thread, a network namespace of its own: sender wa → wb (the
/// worker's input), the worker's output wc → wd (the receiver). None
/// without the privilege to make one (skipped loudly; a failure under
/// CI=true).
fn lab() -> Option<()> {
    if !crate::sys::own_netns_for_test() {
        return None;
    }
    sh(&["ip", "link", "set", "lo", "up"]);
    for (a, b, net) in [("wa", "wb", 1), ("wc", "wd", 2)] {
        sh(&["ip", "link", "add", a, "type", "veth", "peer", "name", b]);
        sh(&["ip", "addr", "add", &format!("10.50.{net}.1/24"), "dev", a]);
        sh(&["ip", "addr", "add", &format!("10.50.{net}.2/24"), "dev", b]);
        sh(&["ip", "link", "set", a, "up"]);
        sh(&["ip", "link", "set", b, "up"]);
    }
    // The relayed datagrams come back in from a local address.
    for k in ["all", "wd"] {
        sh(&[
            "sysctl",
            "-qw",
            &format!("net.ipv4.conf.{k}.accept_local=1"),
        ]);
        sh(&["sysctl", "-qw", &format!("net.ipv4.conf.{k}.rp_filter=0")]);
    }
    sh(&["ip", "route", "add", "239.10.0.0/16", "dev", "wa"]);
    Some(())
}

/// A worker on `ingress` (wb) with one rule IN_GROUP:5000 → wc
/// OUT_GROUP:6000, set up as `worker::run` does, with the table applied.
/// Returns the supervisor's end of the IPC pair too (it must stay open).
fn worker(ingress: OwnedFd) -> (Worker, OwnedFd) {
    let (mut w, sup) = untold_worker(ingress);
    tell_table(&mut w, &sup);
    (w, sup)
}

/// A worker on `ingress` set up as `worker::run` does, before the
/// supervisor's first table reached it.
fn untold_worker(ingress: OwnedFd) -> (Worker, OwnedFd) {
    let wb = sockets::interface_info("wb").unwrap();
    let setup = WorkerSetup {
        version: IPC_VERSION,
        interface: "wb".into(),
        ifindex: wb.ifindex,
        buffer_size: wb.mtu + 64,
        format: sockets::frame_format(wb.link_type),
        stats_interval_ms: 1000,
        levels: Default::default(),
        uid: 0,
        gid: 0,
        core: None,
        worker_index: 0,
        rx: Default::default(),
        early_drop: false,
    };
    let (tier, size) = Tier::for_mtu(setup.buffer_size.saturating_sub(64));
    let ring = setup::build_ring().unwrap();
    let bufs = crate::dataplane::bufring::BufRing::new(&ring, BGID, 256, size, tier).unwrap();
    let rx_ring = setup::open_rx_ring(&ingress, &setup, size);
    assert!(rx_ring.is_some(), "a TPACKET_V3 ring on wb");
    let (sup, wfd) = seqpacket_pair().unwrap();
    let hooks = Hooks {
        set_levels: Box::new(|_| {}),
    };
    let mut w = Worker::new(ring, bufs, ingress, wfd, setup, hooks, vec![0; MAX_MESSAGE]);
    w.rx_ring = rx_ring;
    assert!(w.rx_in_place, "frames read in place (MCR_RX_COPY unset)");
    (w, sup)
}

/// What the supervisor sends a worker once its Hello arrives: the output
/// socket and the rule. Applied as the worker's loop does.
fn tell_table(w: &mut Worker, sup: &OwnedFd) {
    let wc = sockets::interface_info("wc").unwrap();
    let egress = sockets::open_egress("wc", wc.ifindex, 4, OutputMode::Republish, 1 << 20).unwrap();
    let spec = EgressSpec {
        id: 0,
        interface: "wc".into(),
        ttl: 4,
        mode: OutputMode::Republish,
        mtu: 1500,
    };
    let add = encode(&ToWorker::AddEgress(spec)).unwrap();
    send_msg(
        sup.as_fd(),
        &add,
        &[std::os::fd::AsRawFd::as_raw_fd(&egress)],
        false,
    )
    .unwrap();
    let rule = TableRule {
        key: rule_key("r1"),
        id: "r1".into(),
        group: IN_GROUP.parse().unwrap(),
        port: 5000,
        source: None,
        outputs: vec![TableOutput {
            egress: 0,
            group: OUT_GROUP.parse().unwrap(),
            port: 6000,
            mode: OutputMode::Republish,
        }],
    };
    let delta = ToWorker::ApplyDelta {
        seq: 1,
        upserts: vec![rule.clone()],
        removes: vec![],
        expect_hash: table_hash([&rule]),
    };
    send_msg(sup.as_fd(), &encode(&delta).unwrap(), &[], false).unwrap();
    assert!(w.drain_ipc().unwrap().is_none());
    assert!(w.rx.table().entries().count() == 1, "the rule is applied");
}

/// A receiver for OUT_GROUP:6000 on wd.
fn receiver() -> UdpSocket {
    let rx = UdpSocket::bind(SocketAddrV4::new(OUT_GROUP.parse().unwrap(), 6000)).unwrap();
    let wd = sockets::interface_info("wd").unwrap();
    rx.join_multicast_v4(&OUT_GROUP.parse().unwrap(), &wd.addrs[0])
        .unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    rx
}

/// `n` datagrams tagged `tag` to the input group, then time for the
/// ring's block (1 ms timeout) to reach the worker.
fn send(tag: &str, n: usize) {
    let tx = UdpSocket::bind("10.50.1.1:0").unwrap();
    tx.set_multicast_loop_v4(false).unwrap();
    for i in 0..n {
        tx.send_to(format!("{tag} {i:03}").as_bytes(), (IN_GROUP, 5000))
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
}

/// Every datagram the receiver gets until `quiet` passes without one.
fn collect(rx: &UdpSocket, quiet: Duration) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        if let Ok(n) = rx.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            last = Instant::now();
        }
    }
    got
}

/// One turn of the loop's data path: read the ring, queue the sends, hand
/// them to the kernel (UDP sends run inside that call) — without reaping
/// a single completion.
fn turn(w: &mut Worker, submit: bool) {
    w.drain_ring(true);
    w.flush_sends().unwrap();
    if submit {
        w.submit(0).unwrap();
    }
}

/// What a SIGKILL does to the worker's state: nothing handed back, no
/// completion reaped. (The buffer ring is unregistered first only so that
/// the in-process drop frees it safely; a dead process's ring goes at
/// once.)
fn kill(w: Worker) {
    w.bufs.unregister(&w.ring);
    drop(w);
}

fn in_lab(f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        if lab().is_some() {
            f();
        }
    })
    .join()
    .unwrap();
}

fn input_socket() -> (OwnedFd, OwnedFd) {
    let wb = sockets::interface_info("wb").unwrap();
    let fmt = sockets::frame_format(wb.link_type);
    let ingress = sockets::open_ingress(wb.ifindex, 1 << 20, None, fmt).unwrap();
    // The supervisor keeps its own copy across restarts.
    let kept = ingress.try_clone().unwrap();
    (ingress, kept)
}

#[test]
fn a_worker_killed_after_its_sends_went_out_is_not_repeated_by_its_successor() {
    in_lab(|| {
        let rx = receiver();
        let (ingress, kept) = input_socket();
        let (mut w, _sup) = worker(ingress);
        send("first", 40);
        turn(&mut w, true);
        let first = collect(&rx, Duration::from_millis(300));
        assert_eq!(first.len(), 40, "the first worker relayed all: {first:?}");
        // Killed with the sends executed and their completions unreaped:
        // its ring block still looks unsent unless it was marked before
        // the sends went to the kernel.
        kill(w);
        let (mut next, _sup2) = worker(kept);
        turn(&mut next, true);
        let again = collect(&rx, Duration::from_millis(300));
        assert!(
            again.is_empty(),
            "the successor repeated {} of the 40 datagrams already relayed: {:?}",
            again.len(),
            &again[..again.len().min(5)]
        );
        // It does relay what arrives after it took over.
        send("second", 10);
        turn(&mut next, true);
        let second = collect(&rx, Duration::from_millis(300));
        assert_eq!(second.len(), 10, "{second:?}");
        assert!(second.iter().all(|s| s.starts_with("second")));
    });
}

#[test]
fn a_worker_killed_before_its_sends_went_out_leaves_them_to_its_successor() {
    in_lab(|| {
        let rx = receiver();
        let (ingress, kept) = input_socket();
        let (mut w, _sup) = worker(ingress);
        send("queued", 30);
        // Read and queued, never handed to the kernel.
        turn(&mut w, false);
        kill(w);
        assert!(collect(&rx, Duration::from_millis(100)).is_empty());
        let (mut next, _sup2) = worker(kept);
        turn(&mut next, true);
        let got = collect(&rx, Duration::from_millis(300));
        assert_eq!(got.len(), 30, "each exactly once: {got:?}");
        assert_eq!(got.first().map(String::as_str), Some("queued 000"));
    });
}

#[test]
fn a_successor_waits_for_its_table_before_it_reads_what_queued_while_no_worker_ran() {
    in_lab(|| {
        let rx = receiver();
        let (ingress, kept) = input_socket();
        let (mut w, _sup) = worker(ingress);
        send("before", 10);
        turn(&mut w, true);
        assert_eq!(collect(&rx, Duration::from_millis(200)).len(), 10);
        kill(w);
        // Traffic goes on while no worker runs; the next one is up before
        // the supervisor's table reaches it (it answers our Hello).
        send("waiting", 30);
        let (mut next, sup2) = untold_worker(kept);
        turn(&mut next, true);
        turn(&mut next, true);
        assert_eq!(
            (next.c.recv, next.c.no_match),
            (0, 0),
            "read with no rule: dropped as unmatched"
        );
        tell_table(&mut next, &sup2);
        turn(&mut next, true);
        let got = collect(&rx, Duration::from_millis(300));
        assert_eq!(got.len(), 30, "each queued datagram once: {got:?}");
        assert_eq!(got.first().map(String::as_str), Some("waiting 000"));
    });
}

#[test]
fn a_worker_told_no_rule_reads_its_input_after_a_bounded_wait() {
    in_lab(|| {
        let (ingress, _kept) = input_socket();
        let (mut w, _sup) = untold_worker(ingress);
        send("stray", 5);
        turn(&mut w, true);
        assert_eq!(w.c.recv, 0, "not before the wait is over");
        std::thread::sleep(super::FIRST_TABLE_WAIT);
        turn(&mut w, true);
        // Read and counted, not left to fill the ring.
        assert!(w.c.no_match >= 5, "{:?}", w.c);
    });
}
