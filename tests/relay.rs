//! End-to-end relay cases: real `mcrd` (supervisor and worker processes),
//! real `mcrgen` sender and receiver, each host in its own network
//! namespace, joined by veth pairs. The cases are in `tests/relay/` by
//! theme (`mapping`, `headers`, `datapath`); the helpers they share are
//! here.

mod common;
#[path = "relay/datapath.rs"]
mod datapath;
#[path = "relay/headers.rs"]
mod headers;
#[path = "relay/mapping.rs"]
mod mapping;

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
