//! The worker loop on its own: this test plays the supervisor over the IPC
//! pair (Hello with the AF_PACKET socket, an egress socket, a table delta)
//! and checks that real packets cross veth pairs through it, that the acks
//! carry the table hash, and that stats arrive. No daemon involved, so a
//! failure here is the data plane's.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use common::{ip, require_root, veth, Netns};
use mcr::dataplane::sockets;
use mcr::ipc::fdpass::{recv_msg, send_msg, seqpacket_pair, wait_readable};
use mcr::ipc::{
    decode, encode, rule_key, table_hash, EgressSpec, FromWorker, TableOutput, TableRule, ToWorker,
    WorkerSetup, IPC_VERSION, MAX_MESSAGE,
};
use mcr::logging::LogLevels;
use mcr::rule::OutputMode;

struct Sup {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl Sup {
    fn send(&self, m: &ToWorker, fds: &[&OwnedFd]) {
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        send_msg(self.fd.as_fd(), &encode(m).unwrap(), &raw, false).unwrap();
    }

    /// Next message that is not Stats/Heartbeat (unless asked for).
    fn recv_where(&mut self, want: impl Fn(&FromWorker) -> bool) -> FromWorker {
        loop {
            assert!(
                wait_readable(self.fd.as_fd(), Duration::from_secs(5)).unwrap(),
                "worker went silent"
            );
            let r = recv_msg(self.fd.as_fd(), &mut self.buf, false)
                .unwrap()
                .expect("worker closed IPC");
            let m: FromWorker = decode(&self.buf[..r.len]).unwrap();
            if want(&m) {
                return m;
            }
        }
    }
}

#[test]
fn worker_relays_and_reports() {
    if !require_root("worker_relays_and_reports") {
        return;
    }
    // One namespace: sender --veth a/b--> [worker on b] --egress c--> veth c/d --> receiver on d.
    let ns = Netns::new("wk");
    veth(&ns, "wa", "10.50.1.1/24", &ns, "wb", "10.50.1.2/24");
    veth(&ns, "wc", "10.50.2.1/24", &ns, "wd", "10.50.2.2/24");
    // Both ends live in one namespace, so relayed packets arrive on wd
    // from a local address; let the kernel accept them.
    for k in ["all", "wd"] {
        ns.set_sysctl(&format!("net.ipv4.conf.{k}.accept_local"), "1");
        ns.set_sysctl(&format!("net.ipv4.conf.{k}.rp_filter"), "0");
    }

    let ns_name = ns.name.clone();
    let worker = std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{ns_name}")).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let (sup, wfd) = seqpacket_pair().unwrap();
        let handle = std::thread::spawn(move || {
            mcr::dataplane::worker::run(
                wfd,
                mcr::dataplane::worker::Hooks {
                    set_levels: Box::new(|_| {}),
                },
            )
        });
        (sup, handle)
    });
    let (sup_fd, handle) = worker.join().unwrap();
    let mut sup = Sup {
        fd: sup_fd,
        buf: vec![0u8; MAX_MESSAGE],
    };

    ns.enter_thread();
    let wb = sockets::interface_info("wb").unwrap();
    let wc = sockets::interface_info("wc").unwrap();
    let fmt = sockets::frame_format(wb.link_type);
    assert!(
        fmt.vnet && fmt.link_header == 14,
        "veth is Ethernet: {fmt:?}"
    );
    let ingress = sockets::open_ingress(wb.ifindex, 1 << 20, None, fmt).unwrap();
    sup.send(
        &ToWorker::Hello(WorkerSetup {
            version: IPC_VERSION,
            interface: "wb".into(),
            ifindex: wb.ifindex,
            buffer_size: wb.mtu + 64,
            format: fmt,
            stats_interval_ms: 100,
            levels: LogLevels::default(),
            uid: 0,
            gid: 0,
            core: None,
            worker_index: 0,
            rx: Default::default(),
            early_drop: false,
        }),
        &[&ingress],
    );
    assert!(matches!(
        sup.recv_where(|m| matches!(m, FromWorker::Hello { .. })),
        FromWorker::Hello {
            version: IPC_VERSION,
            ..
        }
    ));
    let egress = sockets::open_egress("wc", wc.ifindex, 4, OutputMode::Republish, 1 << 20).unwrap();
    sup.send(
        &ToWorker::AddEgress(EgressSpec {
            id: 0,
            interface: "wc".into(),
            ttl: 4,
            mode: OutputMode::Republish,
            mtu: 1500,
        }),
        &[&egress],
    );
    let rule = TableRule {
        key: rule_key("r1"),
        id: "r1".into(),
        group: ip("239.10.0.1"),
        port: 5000,
        source: None,
        outputs: vec![TableOutput {
            egress: 0,
            group: ip("239.20.0.1"),
            port: 6000,
            mode: OutputMode::Republish,
        }],
    };
    let expect = table_hash([&rule]);
    sup.send(
        &ToWorker::ApplyDelta {
            seq: 1,
            upserts: vec![rule.clone()],
            removes: vec![],
            expect_hash: expect,
        },
        &[],
    );
    match sup.recv_where(|m| matches!(m, FromWorker::Ack { .. })) {
        FromWorker::Ack {
            seq,
            hash,
            rules,
            gap,
        } => {
            assert_eq!((seq, hash, rules, gap), (1, expect, 1, false));
        }
        _ => unreachable!(),
    }

    // Receiver on wd for the translated group.
    let rx = UdpSocket::bind(SocketAddrV4::new(ip("239.20.0.1"), 6000)).unwrap();
    let wd = sockets::interface_info("wd").unwrap();
    rx.join_multicast_v4(&ip("239.20.0.1"), &wd.addrs[0])
        .unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    // The sender's route for the input group points out of wa.
    ns.ip(&["route", "add", "239.10.0.0/16", "dev", "wa"]);
    let tx = UdpSocket::bind("10.50.1.1:0").unwrap();
    tx.set_multicast_loop_v4(false).unwrap();
    let n = 200;
    for i in 0..n {
        let msg = format!("packet {i:04}");
        tx.send_to(msg.as_bytes(), "239.10.0.1:5000").unwrap();
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok((len, from)) = rx.recv_from(&mut buf) {
        assert_eq!(
            from.ip(),
            std::net::IpAddr::from(Ipv4Addr::new(10, 50, 2, 1)),
            "republished from the output interface"
        );
        got.push(String::from_utf8_lossy(&buf[..len]).to_string());
        if got.len() == n {
            break;
        }
    }
    if got.len() != n {
        let st = sup.recv_where(|m| matches!(m, FromWorker::Stats { .. }));
        panic!(
            "only {} of {n} packets relayed; worker stats: {st:?}",
            got.len()
        );
    }
    assert_eq!(got[0], "packet 0000");
    assert_eq!(got[n - 1], format!("packet {:04}", n - 1));

    // Stats: the counters the supervisor will show.
    let stats = sup.recv_where(|m| match m {
        FromWorker::Stats { counters, .. } => counters.sent >= n as u64,
        _ => false,
    });
    if let FromWorker::Stats { counters, .. } = stats {
        assert_eq!(counters.matched, n as u64);
        assert_eq!(counters.send_errors, 0);
        assert!(counters.ring_submits > 0);
    }

    // A sequence gap is reported, so the supervisor knows to resync.
    sup.send(
        &ToWorker::ApplyDelta {
            seq: 3,
            upserts: vec![],
            removes: vec![rule.key],
            expect_hash: 0,
        },
        &[],
    );
    match sup.recv_where(|m| matches!(m, FromWorker::Ack { .. })) {
        FromWorker::Ack {
            seq, gap, rules, ..
        } => assert_eq!((seq, gap, rules), (3, true, 0)),
        _ => unreachable!(),
    }
    sup.send(&ToWorker::Shutdown, &[]);
    let exit = handle.join().unwrap().unwrap();
    assert_eq!(exit, mcr::dataplane::worker::Exit::Shutdown);
}
