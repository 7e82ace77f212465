//! Corrupted frames on the wire are dropped and counted, never relayed: a
//! wrong IPv4 header checksum, a wrong UDP checksum and TTL 0, each in its
//! own counter, while intact frames around them (with a UDP checksum, with
//! none, and from a local sender whose checksum is left to offload) are
//! relayed.

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use common::daemon::{inject, Daemon};
use common::{ip, require_root, rule_config, wait_for, Netns, Relay3};
use mcr::ipc::WorkerCounters;
use mcr::wire::UdpPacketSpec;

fn counters(d: &Daemon) -> WorkerCounters {
    let st = d.stats();
    assert_eq!(st.workers.len(), 1, "{st:?}");
    st.workers[0].counters.clone()
}

/// Payloads of the datagrams that reach `group:port` in `ns` until none
/// has come for a second.
fn collect(
    ns: &Netns,
    group: Ipv4Addr,
    port: u16,
    local: Ipv4Addr,
) -> std::thread::JoinHandle<Vec<Vec<u8>>> {
    let ns_name = ns.name.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{ns_name}")).expect("open netns");
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let s = UdpSocket::bind(("0.0.0.0", port)).expect("bind");
        s.join_multicast_v4(&group, &local).expect("join");
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        tx.send(()).expect("ready");
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = s.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
        got
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("receiver ready");
    h
}

#[test]
fn corrupted_frames_are_dropped_and_counted_intact_ones_relayed() {
    if !require_root("corrupted_frames_are_dropped_and_counted_intact_ones_relayed") {
        return;
    }
    let t = Relay3::new("csum");
    let d = Daemon::with_config(
        &t.relay,
        &rule_config("239.1.1.1", 5000, &[("r1", "239.2.2.2", 6000)]),
    );
    let w0 = d.workers();
    let c0 = d.wait_worker_counters(Duration::from_secs(5), |_| true);

    let spec = |ttl: u8| {
        let mut s = UdpPacketSpec::new(ip("10.10.1.1"), ip("239.1.1.1"), 4000, 5000);
        s.ttl = ttl;
        s
    };
    // Payloads name their class so the receiver's view says what leaked.
    let payload = |class: &str, i: usize| format!("{class}-{i:03}-").repeat(20).into_bytes();
    let mut packets = Vec::new();
    let mut want = BTreeSet::new();
    for i in 0..4 {
        let p = payload("good-summed", i);
        packets.push(spec(64).build_checksummed(&p));
        want.insert(p);
        let p = payload("good-nosum", i);
        packets.push(spec(64).build(&p));
        want.insert(p);

        // A bit flipped in the header: here the source address, which
        // without the check would still match the rule (no source filter).
        let mut bad_ip = spec(64).build_checksummed(&payload("bad-ip", i));
        bad_ip[15] ^= 0x04;
        packets.push(bad_ip);
        // A bit flipped in the payload.
        let mut bad_udp = spec(64).build_checksummed(&payload("bad-udp", i));
        bad_udp[100] ^= 0x20;
        packets.push(bad_udp);
        // TTL 0, checksums right.
        packets.push(spec(0).build_checksummed(&payload("ttl-zero", i)));
    }
    let rx = collect(&t.dst, ip("239.2.2.2"), 6000, ip("10.10.2.2"));
    inject(&t.src, "s0", &packets);
    let got: BTreeSet<Vec<u8>> = rx.join().expect("receiver").into_iter().collect();
    let leaked: Vec<String> = got
        .difference(&want)
        .map(|p| String::from_utf8_lossy(&p[..16.min(p.len())]).into_owned())
        .collect();
    assert!(leaked.is_empty(), "corrupt frames relayed: {leaked:?}");
    assert_eq!(got, want, "every intact frame relayed");

    let delta = |c: &WorkerCounters| {
        (
            c.ip_checksum_errors - c0.ip_checksum_errors,
            c.udp_checksum_errors - c0.udp_checksum_errors,
            c.ttl_zero - c0.ttl_zero,
            c.matched - c0.matched,
        )
    };
    let want_delta = (4, 4, 4, 8);
    wait_for(Duration::from_secs(5), || {
        (delta(&counters(&d)) == want_delta).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "(ip_checksum_errors, udp_checksum_errors, ttl_zero, matched) grew by {:?}, want {want_delta:?}",
            delta(&counters(&d))
        )
    });

    // The counters reach users: `mcrctl --json stats` names them.
    let raw = d.ctl_ok(&["--json", "stats"]);
    for k in ["ip_checksum_errors", "udp_checksum_errors", "ttl_zero"] {
        assert!(raw.contains(k), "{k} missing from stats: {raw}");
    }

    // A local sender over a veth leaves its checksums to offload: the
    // virtio_net_hdr says so and none of its datagrams is taken for corrupt.
    let c1 = counters(&d);
    t.relay_all(500, 2000, 1200);
    let c2 = counters(&d);
    assert_eq!(
        c2.udp_checksum_errors, c1.udp_checksum_errors,
        "offloaded checksums are not wrong"
    );
    assert_eq!(d.workers()[0].pid, w0[0].pid, "the worker never restarted");
}
