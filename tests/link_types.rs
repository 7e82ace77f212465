//! Link types users relay across (issue 12): an 802.1Q VLAN
//! sub-interface, a tun device (L3, no Ethernet header, as WireGuard and
//! OpenVPN present), a GRE tunnel, and a bridge and its ports. Each is
//! used as an input and as an output, in namespaces, with the real daemon.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use common::daemon::{recv, send, Daemon};
use common::{require_root, veth, Netns, Relay3};

const T: Duration = Duration::from_secs(20);

/// True if this kernel can make links of `kind` (`ip link add ... type
/// kind args`). Kernels built without 802.1Q or GRE (some VM and
/// container kernels) cannot run those tests at all: that is reported as a
/// loud SKIP, not a pass.
fn kernel_has(test: &str, kind: &str, args: &[&str]) -> bool {
    let ns = Netns::new("probe");
    if kind == "vlan" {
        ns.ip(&["link", "add", "p0", "type", "veth", "peer", "name", "p1"]);
    }
    let mut a = vec!["-n", ns.name.as_str(), "link", "add"];
    if kind == "vlan" {
        a.extend(["link", "p0"]);
    }
    a.extend(["probe0", "type", kind]);
    a.extend_from_slice(args);
    let out = std::process::Command::new("ip")
        .args(&a)
        .output()
        .expect("run ip");
    if out.status.success() {
        return true;
    }
    // Only a kernel without the link kind is a reason to skip; any other
    // failure (bad arguments, a missing privilege) is a real failure.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Unknown device type"),
        "ip {} failed: {}",
        a.join(" "),
        err.trim()
    );
    eprintln!(
        "\n*** SKIP {test}: this kernel cannot create {kind} links: {} ***\n",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    false
}

/// One relayed path: (the sender's interface, the input group, the
/// receiver's interface, the output group, the output port).
type Path<'a> = (&'a str, &'a str, &'a str, &'a str, u16);

/// For each path in turn, relay 500 mcrgen packets from `src` to `dst`
/// and assert every one arrives translated.
fn relays(src: &Netns, dst: &Netns, paths: &[Path]) {
    let count = 500u64;
    for &(src_if, in_group, dst_if, out_group, out_port) in paths {
        let r = recv(
            dst,
            out_group,
            out_port,
            Some(dst_if),
            &["--expect", &count.to_string(), "--idle-timeout", "2"],
        );
        let s = send(src, in_group, 5000, src_if, count, 2000, 600, &[]);
        assert_eq!(s.sent, count);
        let rep = r.finish(T);
        assert_eq!(
            (rep.unique, rep.corrupt),
            (count, 0),
            "{src_if} {in_group} -> {dst_if} {out_group}: every packet relayed: {rep:?}"
        );
    }
}

/// One rule per (input, output) pair, each translating to its own group.
fn config(rules: &[(&str, &str, &str, &str, u16)]) -> String {
    let rs: Vec<String> = rules
        .iter()
        .enumerate()
        .map(|(i, (in_if, in_g, out_if, out_g, out_p))| {
            format!(
                "{{ name: \"l{i}\", input: {{ interface: \"{in_if}\", group: \"{in_g}\", port: 5000 }}, outputs: [ {{ interface: \"{out_if}\", group: \"{out_g}\", port: {out_p} }} ] }}"
            )
        })
        .collect();
    format!("{{ rules: [ {} ] }}", rs.join(", "))
}

#[test]
fn vlan_sub_interfaces_as_input_and_output() {
    let test = "vlan_sub_interfaces_as_input_and_output";
    if !require_root(test) || !kernel_has(test, "vlan", &["id", "7"]) {
        return;
    }
    let t = Relay3::new("vlan");
    for (ns, parent, vid, addr) in [
        (&t.src, "s0", "100", "10.20.1.1/24"),
        (&t.relay, "r0", "100", "10.20.1.2/24"),
        (&t.relay, "r1", "200", "10.20.2.1/24"),
        (&t.dst, "d0", "200", "10.20.2.2/24"),
    ] {
        let name = format!("{parent}.{vid}");
        ns.ip(&[
            "link", "add", "link", parent, "name", &name, "type", "vlan", "id", vid,
        ]);
        ns.ip(&["addr", "add", addr, "dev", &name]);
        ns.ip(&["link", "set", &name, "up"]);
    }
    let _d = Daemon::with_config(
        &t.relay,
        &config(&[
            // Tagged in, tagged out.
            ("r0.100", "239.1.1.1", "r1.200", "239.2.2.1", 6001),
            // Tagged in, untagged out; and untagged in, tagged out.
            ("r0.100", "239.1.1.2", "r1", "239.2.2.2", 6002),
            ("r0", "239.1.1.3", "r1.200", "239.2.2.3", 6003),
        ]),
    );
    relays(
        &t.src,
        &t.dst,
        &[
            ("s0.100", "239.1.1.1", "d0.200", "239.2.2.1", 6001),
            ("s0.100", "239.1.1.2", "d0", "239.2.2.2", 6002),
            ("s0", "239.1.1.3", "d0.200", "239.2.2.3", 6003),
        ],
    );
}

/// A GRE tunnel `name` in `ns` from `local` to `remote` with `addr`.
fn gre(ns: &Netns, name: &str, local: &str, remote: &str, addr: &str) {
    ns.ip(&[
        "link", "add", name, "type", "gre", "local", local, "remote", remote, "ttl", "64",
    ]);
    ns.ip(&["addr", "add", addr, "dev", name]);
    // Point-to-point GRE does not carry multicast unless told to.
    ns.ip(&["link", "set", name, "multicast", "on", "up"]);
}

#[test]
fn gre_tunnels_as_input_and_output() {
    let test = "gre_tunnels_as_input_and_output";
    if !require_root(test) || !kernel_has(test, "gre", &["local", "10.0.0.1", "remote", "10.0.0.2"])
    {
        return;
    }
    let t = Relay3::new("gre");
    gre(&t.src, "gs", "10.10.1.1", "10.10.1.2", "10.30.1.1/30");
    gre(&t.relay, "g0", "10.10.1.2", "10.10.1.1", "10.30.1.2/30");
    gre(&t.relay, "g1", "10.10.2.1", "10.10.2.2", "10.30.2.1/30");
    gre(&t.dst, "gd", "10.10.2.2", "10.10.2.1", "10.30.2.2/30");
    let _d = Daemon::with_config(
        &t.relay,
        &config(&[
            ("g0", "239.1.1.1", "g1", "239.2.2.1", 6001),
            ("g0", "239.1.1.2", "r1", "239.2.2.2", 6002),
            ("r0", "239.1.1.3", "g1", "239.2.2.3", 6003),
        ]),
    );
    relays(
        &t.src,
        &t.dst,
        &[
            ("gs", "239.1.1.1", "gd", "239.2.2.1", 6001),
            ("gs", "239.1.1.2", "d0", "239.2.2.2", 6002),
            ("s0", "239.1.1.3", "gd", "239.2.2.3", 6003),
        ],
    );
}

/// Count datagrams for `group:port` arriving in `ns` on the interface
/// with address `local`, until `n` or a quiet second.
fn count_udp(
    ns: &Netns,
    group: Ipv4Addr,
    port: u16,
    local: Ipv4Addr,
    n: usize,
) -> std::thread::JoinHandle<usize> {
    let name = ns.name.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let f = File::open(format!("/run/netns/{name}")).expect("netns");
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).expect("bind");
        s.join_multicast_v4(&group, &local).expect("join");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        tx.send(()).expect("ready");
        let mut buf = [0u8; 2048];
        let mut got = 0;
        while got < n {
            match s.recv_from(&mut buf) {
                Ok(_) => got += 1,
                Err(_) => break,
            }
        }
        got
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("receiver ready");
    h
}

/// Read from the tun device until `n` UDP datagrams for `group:port` came
/// out of it, or nothing did for two seconds. Their TTLs.
fn read_tun(tun: &mut File, group: Ipv4Addr, port: u16, n: usize) -> Vec<u8> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut ttls = Vec::new();
    let mut buf = vec![0u8; 65536];
    while ttls.len() < n {
        let ready = {
            let mut fds = [PollFd::new(tun.as_fd(), PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(2000u16)).unwrap_or(0)
        };
        if ready == 0 {
            break;
        }
        let Ok(len) = tun.read(&mut buf) else { break };
        let Ok(ip) = mcr::wire::Ipv4::new_checked(&buf[..len]) else {
            continue;
        };
        if ip.dst() != group {
            continue;
        }
        let Ok(udp) = mcr::wire::Udp::new_checked(ip.payload()) else {
            continue;
        };
        if udp.dst_port() == port {
            ttls.push(ip.ttl());
        }
    }
    ttls
}

#[test]
fn tun_device_as_input_and_output() {
    if !require_root("tun_device_as_input_and_output") {
        return;
    }
    let t = Relay3::new("tun");
    // The test plays the VPN: it holds the tun device's file, writes the
    // IP packets that "arrive" over the tunnel and reads what the host
    // sends into it. The device lives in the relay's namespace.
    let relay_ns = t.relay.name.clone();
    let mut tun = std::thread::spawn(move || {
        let f = File::open(format!("/run/netns/{relay_ns}")).expect("netns");
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        mcr::sys::tun::open_tun("tun0").expect("open tun0")
    })
    .join()
    .expect("tun thread");
    t.relay.ip(&["addr", "add", "10.40.1.1/24", "dev", "tun0"]);
    t.relay.ip(&["link", "set", "tun0", "up"]);
    let _d = Daemon::with_config(
        &t.relay,
        &config(&[
            ("tun0", "239.1.1.1", "r1", "239.2.2.1", 6001),
            ("r0", "239.1.1.2", "tun0", "239.3.3.3", 7000),
        ]),
    );

    // Tunnel to Ethernet: IP packets written into tun0 leave on r1.
    let n = 300;
    let rx = count_udp(
        &t.dst,
        "239.2.2.1".parse().expect("group"),
        6001,
        "10.10.2.2".parse().expect("addr"),
        n,
    );
    let mut spec = mcr::wire::UdpPacketSpec::new(
        "10.40.1.2".parse().expect("src"),
        "239.1.1.1".parse().expect("group"),
        40000,
        5000,
    );
    spec.ttl = 16;
    let pkt = spec.build(&[0x5a; 200]);
    for _ in 0..n {
        tun.write_all(&pkt).expect("write into tun0");
        std::thread::sleep(Duration::from_micros(500));
    }
    let got = rx.join().expect("receiver");
    assert_eq!(got, n, "every packet from the tunnel relayed to r1");

    // Ethernet to tunnel: what arrives on r0 goes into tun0, as bare IP.
    let t0 = Instant::now();
    let (s, ttls) = std::thread::scope(|sc| {
        let sender = sc.spawn(|| send(&t.src, "239.1.1.2", 5000, "s0", 300, 1000, 500, &[]));
        let ttls = read_tun(&mut tun, "239.3.3.3".parse().expect("group"), 7000, 300);
        (sender.join().expect("sender"), ttls)
    });
    assert_eq!(s.sent, 300);
    assert_eq!(
        ttls.len(),
        300,
        "every packet from r0 came out of tun0 ({:?})",
        t0.elapsed()
    );
    // Republished with the default multicast TTL, like any other output.
    assert!(ttls.iter().all(|t| *t == 1), "{ttls:?}");
}

#[test]
fn bridge_and_bridge_ports_as_input_and_output() {
    if !require_root("bridge_and_bridge_ports_as_input_and_output") {
        return;
    }
    // sender ─s0/r0─ [br0 ⊃ r0] relay [br1 ⊃ r1] ─r1/d0─ receiver, with a
    // second receiver on a plain link r2, and a second sender on r3 that
    // feeds the bridge br1 through its port r3.
    let src = Netns::new("br-s");
    let relay = Netns::new("br-r");
    let dst = Netns::new("br-d");
    veth(&src, "s0", "10.10.1.1/24", &relay, "r0", "10.10.9.9/32");
    veth(&relay, "r1", "10.10.8.8/32", &dst, "d0", "10.10.2.2/24");
    for (br, port, addr) in [("br0", "r0", "10.10.1.2/24"), ("br1", "r1", "10.10.2.1/24")] {
        relay.ip(&["link", "add", br, "type", "bridge"]);
        // The addresses live on the bridge, as on any bridged host.
        relay.ip(&["addr", "flush", "dev", port]);
        relay.ip(&["link", "set", port, "master", br]);
        relay.ip(&["addr", "add", addr, "dev", br]);
        relay.ip(&["link", "set", br, "up"]);
    }
    let _d = Daemon::with_config(
        &relay,
        &config(&[
            // The bridge in, a port out.
            ("br0", "239.1.1.1", "r1", "239.2.2.1", 6001),
            // A port in, the bridge out.
            ("r0", "239.1.1.2", "br1", "239.2.2.2", 6002),
        ]),
    );
    relays(
        &src,
        &dst,
        &[
            ("s0", "239.1.1.1", "d0", "239.2.2.1", 6001),
            ("s0", "239.1.1.2", "d0", "239.2.2.2", 6002),
        ],
    );
}
