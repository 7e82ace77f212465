//! PIM interop labs with FRR (issue 10): MCR as a transit router between two
//! FRR routers, and a host's group membership read on a thread.
//!
//! ```text
//! h1 ── r1 (FRR, RP on lo) ── m-r1 [MCR] m-r2 ── r2 (FRR, last hop) ── h2
//!                                    m-h3 ── h3   (only with `.with_h3()`)
//! ```
//!
//! Every address is `10.<net>.x.y`, with `<net>` chosen per test file so
//! that two labs never meet (see [`TransitAddrs`]). Unicast routing is
//! static on every side, so each router's RPF toward the RP (r1's loopback)
//! and toward h1's subnet points across MCR, and every PIM hello runs at
//! 1 s so adjacencies form within a few seconds. FRR r2 runs IGMP toward h2
//! (query interval 2 s); MCR runs PIM on m-r1 and m-r2 with a static RP for
//! 239.0.0.0/8 and, with `.with_h3()`, an IGMP querier on m-h3.
//!
//! Build one with [`TransitLab::new`], adjust it with the builder methods,
//! then [`TransitLab::build`]; everything (namespaces, FRR daemons, MCR)
//! is torn down when the returned [`Transit`] drops. New FRR tests that
//! need this shape should use it rather than wiring their own.
//!
//! [`Member`] and [`SeqReceiver`] are the hosts' group sockets the FRR tests
//! read from; [`wait`] is their "poll until true or fail" helper.

use std::io::IoSliceMut;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::daemon::{Daemon, DaemonOpts};
use super::frr::FrrRouter;
use super::{veth, Netns};
use mcr::gen::payload::Header;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrIn};

/// The addresses of a transit lab on `10.<net>.0.0/16`.
#[derive(Clone, Copy, Debug)]
pub struct TransitAddrs {
    pub net: u8,
    /// h1, the source host behind r1 (10.net.1.10), and r1's side (.1).
    pub h1: Ipv4Addr,
    pub r1_h1: Ipv4Addr,
    /// The r1 ⇄ MCR link, 10.net.12.0/24: r1 is .1, MCR's m-r1 is .2.
    pub r1: Ipv4Addr,
    pub mcr1: Ipv4Addr,
    /// The MCR ⇄ r2 link, 10.net.23.0/24: MCR's m-r2 is .2, r2 is .3.
    pub mcr2: Ipv4Addr,
    pub r2: Ipv4Addr,
    /// h2, the member host behind r2 (10.net.2.10), and r2's side (.1).
    pub r2_h2: Ipv4Addr,
    pub h2: Ipv4Addr,
    /// h3, the member host behind MCR's m-h3 (10.net.3.10), and MCR's side (.1).
    pub mcr3: Ipv4Addr,
    pub h3: Ipv4Addr,
    /// The RP: r1's loopback address 10.net.255.1.
    pub rp: Ipv4Addr,
}

impl TransitAddrs {
    pub fn new(net: u8) -> TransitAddrs {
        let a = |c: u8, d: u8| Ipv4Addr::new(10, net, c, d);
        TransitAddrs {
            net,
            h1: a(1, 10),
            r1_h1: a(1, 1),
            r1: a(12, 1),
            mcr1: a(12, 2),
            mcr2: a(23, 2),
            r2: a(23, 3),
            r2_h2: a(2, 1),
            h2: a(2, 10),
            mcr3: a(3, 1),
            h3: a(3, 10),
            rp: a(255, 1),
        }
    }

    /// `10.net.<c>.0/24`.
    pub fn subnet(&self, c: u8) -> String {
        format!("10.{}.{c}.0/24", self.net)
    }
}

/// How to build a transit lab; see the module docs.
pub struct TransitLab {
    addrs: TransitAddrs,
    tag: String,
    join_prune_interval: u64,
    h3: bool,
    fault_injection: bool,
}

/// A running transit lab. Fields drop in declaration order: MCR first, then
/// the FRR routers, then the host and MCR namespaces.
pub struct Transit {
    pub mcr: Daemon,
    pub r1: FrrRouter,
    pub r2: FrrRouter,
    pub h1: Netns,
    pub h2: Netns,
    /// Present when built `.with_h3()`.
    pub h3: Option<Netns>,
    pub mcr_ns: Netns,
    pub addrs: TransitAddrs,
}

impl TransitLab {
    /// A lab on `10.<net>.0.0/16` whose namespaces carry `tag` (short: it
    /// becomes part of namespace names and FRR pathspaces).
    /// MCR's Join/Prune period defaults to 10 s.
    pub fn new(net: u8, tag: &str) -> TransitLab {
        TransitLab {
            addrs: TransitAddrs::new(net),
            tag: tag.to_string(),
            join_prune_interval: 10,
            h3: false,
            fault_injection: false,
        }
    }

    /// MCR's `join_prune_interval` in seconds.
    pub fn join_prune_interval(mut self, secs: u64) -> TransitLab {
        self.join_prune_interval = secs;
        self
    }

    /// Add host h3 on MCR's m-h3, where MCR is IGMP querier (query every
    /// 2 s, 1 s response time).
    pub fn with_h3(mut self) -> TransitLab {
        self.h3 = true;
        self
    }

    /// Start MCR with fault injection (`mcrctl fault …`) allowed.
    pub fn fault_injection(mut self) -> TransitLab {
        self.fault_injection = true;
        self
    }

    pub fn build(self) -> Transit {
        let a = self.addrs;
        let t = &self.tag;
        let mut r1 = FrrRouter::new(&format!("{t}1"));
        let mut r2 = FrrRouter::new(&format!("{t}2"));
        let mcr_ns = Netns::new(&format!("{t}-mcr"));
        let h1 = Netns::new(&format!("{t}-h1"));
        let h2 = Netns::new(&format!("{t}-h2"));
        let cidr = |x: Ipv4Addr| format!("{x}/24");
        veth(&r1.ns, "r1-h1", &cidr(a.r1_h1), &h1, "h1-r1", &cidr(a.h1));
        veth(&r1.ns, "r1-m", &cidr(a.r1), &mcr_ns, "m-r1", &cidr(a.mcr1));
        veth(&mcr_ns, "m-r2", &cidr(a.mcr2), &r2.ns, "r2-m", &cidr(a.r2));
        veth(&r2.ns, "r2-h2", &cidr(a.r2_h2), &h2, "h2-r2", &cidr(a.h2));
        let h3 = self.h3.then(|| {
            let h3 = Netns::new(&format!("{t}-h3"));
            veth(&mcr_ns, "m-h3", &cidr(a.mcr3), &h3, "h3-m", &cidr(a.h3));
            h3.ip(&["route", "add", "default", "via", &a.mcr3.to_string()]);
            h3
        });
        r1.ns
            .ip(&["addr", "add", &format!("{}/32", a.rp), "dev", "lo"]);
        h1.ip(&["route", "add", "default", "via", &a.r1_h1.to_string()]);
        h2.ip(&["route", "add", "default", "via", &a.r2_h2.to_string()]);
        // MCR's unicast routes toward the RP and both hosts: its RPF.
        for (dst, via) in [
            (format!("{}/32", a.rp), a.r1),
            (a.subnet(1), a.r1),
            (a.subnet(2), a.r2),
        ] {
            mcr_ns.ip(&["route", "add", &dst, "via", &via.to_string()]);
        }
        r1.start(&format!(
            "ip route {} {}\nip route {} {}\n\
             interface lo\n ip pim\n!\n\
             interface r1-h1\n ip pim\n!\n\
             interface r1-m\n ip pim\n ip pim hello 1\n!\n\
             ip pim rp {} 239.0.0.0/8\n",
            a.subnet(2),
            a.mcr1,
            a.subnet(23),
            a.mcr1,
            a.rp
        ));
        r2.start(&format!(
            "ip route {}/32 {}\nip route {} {}\nip route {} {}\n\
             interface r2-m\n ip pim\n ip pim hello 1\n!\n\
             interface r2-h2\n ip pim\n ip igmp\n ip igmp query-interval 2\n!\n\
             ip pim rp {} 239.0.0.0/8\n",
            a.rp,
            a.mcr2,
            a.subnet(1),
            a.mcr2,
            a.subnet(12),
            a.mcr2,
            a.rp
        ));
        let igmp = if self.h3 {
            ", igmp: { querier_interfaces: [\"m-h3\"], query_interval: 2, \
             query_response_interval: 1 }"
        } else {
            ""
        };
        let config = format!(
            "{{ pim: {{ enabled: true, \
               interfaces: [ {{ name: \"m-r1\", hello_interval: 1, triggered_hello_delay: 0.05 }}, \
                             {{ name: \"m-r2\", hello_interval: 1, triggered_hello_delay: 0.05 }} ], \
               static_rp: [ {{ group: \"239.0.0.0/8\", rp: \"{}\" }} ], \
               join_prune_interval: {} }}{igmp} }}",
            a.rp, self.join_prune_interval
        );
        let mcr = Daemon::start(
            &mcr_ns,
            DaemonOpts {
                config: Some(&config),
                fault_injection: self.fault_injection,
                ..Default::default()
            },
        );
        Transit {
            mcr,
            r1,
            r2,
            h1,
            h2,
            h3,
            mcr_ns,
            addrs: a,
        }
    }
}

impl Transit {
    /// Waits until r1 and r2 each list MCR as a PIM neighbor; panics after
    /// `timeout`. Returns how long it took.
    pub fn wait_adjacencies(&self, timeout: Duration) -> Duration {
        let t0 = Instant::now();
        let a = self.addrs;
        super::wait_for(timeout, || {
            let n1 = self.r1.try_json("show ip pim neighbor json").ok()?;
            let n2 = self.r2.try_json("show ip pim neighbor json").ok()?;
            n1.get("r1-m")?.get(a.mcr1.to_string())?;
            n2.get("r2-m")?.get(a.mcr2.to_string()).map(|_| ())
        })
        .unwrap_or_else(|| panic!("no PIM adjacencies r1-MCR and MCR-r2 within {timeout:?}"));
        t0.elapsed()
    }
}

/// A host's member socket for a group, read on a thread inside its
/// namespace: every datagram's arrival time and source. Joining sends the
/// host's IGMP report; dropping the member (or [`Member::leave`]) closes the
/// socket, which sends the leave.
pub struct Member {
    stop: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<(Instant, Ipv4Addr)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// When the join was sent.
    pub joined_at: Instant,
}

impl Member {
    /// Join `group` on `port` through the interface with address `local`,
    /// from `source` only when given (IGMPv3 INCLUDE).
    pub fn join(
        ns: &Netns,
        local: Ipv4Addr,
        group: Ipv4Addr,
        port: u16,
        source: Option<Ipv4Addr>,
    ) -> Member {
        let name = ns.name.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let (s2, g2) = (stop.clone(), got.clone());
        let thread = std::thread::spawn(move || {
            let s = udp_bound_in(&name, port);
            // The kernel sends the IGMP report now.
            match source {
                None => s.join_multicast_v4(&group, &local).expect("join"),
                Some(src) => s.join_ssm_v4(&src, &group, &local).expect("join (S,G)"),
            }
            let s: UdpSocket = s.into();
            s.set_read_timeout(Some(Duration::from_millis(20)))
                .expect("timeout");
            let _ = tx.send(Instant::now());
            let mut buf = [0u8; 2048];
            while !s2.load(Ordering::Relaxed) {
                if let Ok((_, std::net::SocketAddr::V4(from))) = s.recv_from(&mut buf) {
                    g2.lock().unwrap().push((Instant::now(), *from.ip()));
                }
            }
        });
        let joined_at = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the member thread joined");
        Member {
            stop,
            got,
            thread: Some(thread),
            joined_at,
        }
    }

    /// Every datagram received so far: arrival time and source address.
    pub fn received(&self) -> Vec<(Instant, Ipv4Addr)> {
        self.got.lock().unwrap().clone()
    }

    /// Leave (close the socket); returns when the leave was sent.
    pub fn leave(&mut self) -> Instant {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        Instant::now()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.leave();
    }
}

/// Polls `f` until it yields a value, failing the test with `what` after
/// `timeout`.
pub fn wait<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    super::wait_for(timeout, f).unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// One mcrgen datagram at a [`SeqReceiver`].
#[derive(Clone, Copy, Debug)]
pub struct Got {
    pub at: Instant,
    pub source: Ipv4Addr,
    /// The IP TTL it arrived with, which tells which tree (how many
    /// routers) it came down.
    pub ttl: u8,
    /// The mcrgen sequence number, for counting losses and duplicates.
    pub seq: u64,
}

/// A host's member socket that records every mcrgen datagram's source, IP
/// TTL and sequence number, read on a thread inside its namespace.
/// Datagrams that are not mcrgen's are skipped. Dropping it leaves the
/// group.
pub struct SeqReceiver {
    stop: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<Got>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// When the join was sent.
    pub joined_at: Instant,
}

impl SeqReceiver {
    /// Join `group` on `port` through the interface with address `local`.
    pub fn join(ns: &Netns, local: Ipv4Addr, group: Ipv4Addr, port: u16) -> SeqReceiver {
        let name = ns.name.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let (s2, g2) = (stop.clone(), got.clone());
        let thread = std::thread::spawn(move || {
            let s = udp_bound_in(&name, port);
            mcr::sys::sockopt::set_int(s.as_fd(), libc::IPPROTO_IP, libc::IP_RECVTTL, 1)
                .expect("IP_RECVTTL");
            // A tree switch should cost a handful of packets; a deep buffer
            // keeps a slow test thread from adding losses of its own.
            let _ = s.set_recv_buffer_size(1 << 20);
            s.set_read_timeout(Some(Duration::from_millis(20)))
                .expect("timeout");
            s.join_multicast_v4(&group, &local).expect("join");
            let _ = tx.send(Instant::now());
            let mut buf = [0u8; 2048];
            let mut cmsg = nix::cmsg_space!(libc::c_int);
            while !s2.load(Ordering::Relaxed) {
                let mut iov = [IoSliceMut::new(&mut buf)];
                let Ok(m) = recvmsg::<SockaddrIn>(
                    s.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::empty(),
                ) else {
                    continue;
                };
                let source = m.address.map(|a| a.ip()).unwrap_or(Ipv4Addr::UNSPECIFIED);
                let ttl = m
                    .cmsgs()
                    .ok()
                    .into_iter()
                    .flatten()
                    .find_map(|c| match c {
                        ControlMessageOwned::Ipv4Ttl(t) => u8::try_from(t).ok(),
                        _ => None,
                    })
                    .unwrap_or(0);
                let n = m.bytes;
                let Some(h) = Header::decode(&buf[..n]) else {
                    continue;
                };
                g2.lock().unwrap().push(Got {
                    at: Instant::now(),
                    source,
                    ttl,
                    seq: h.seq,
                });
            }
        });
        let joined_at = rx.recv_timeout(Duration::from_secs(5)).expect("joined");
        SeqReceiver {
            stop,
            got,
            thread: Some(thread),
            joined_at,
        }
    }

    /// Every datagram so far, in arrival order.
    pub fn received(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for SeqReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Moves the calling thread into namespace `ns_name` for good and returns
/// a UDP socket bound to `port` on any address there. Call it on a thread
/// of the test's own, never on the test thread.
pub fn udp_bound_in(ns_name: &str, port: u16) -> socket2::Socket {
    let file = std::fs::File::open(format!("/run/netns/{ns_name}")).expect("open netns");
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
        .expect("udp socket");
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())
        .expect("bind");
    s
}
