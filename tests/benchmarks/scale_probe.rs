//! What the scale scenarios measure with: a daemon's memory, the time
//! until its workers and rules are up, per-port delivery counted by
//! sockets inside a namespace, bursts sent on chosen input links, and the
//! relay core's busy time.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::daemon::{Daemon, DaemonOpts};
use crate::common::{procfs, Netns};
use crate::harness::core_times;
use mcr::control::RuleState;

/// Busy seconds of one core (everything but idle and iowait) from
/// /proc/stat: mcrd's process time plus the softirq work done there.
pub fn core_busy(cpu: usize) -> f64 {
    core_times(cpu).1
}

/// Proportional set size in kB (shared pages split among the processes
/// that map them); 0 where smaps_rollup is missing.
pub fn pss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Memory of a daemon: supervisor (rss, pss), and per worker (rss, pss).
pub struct Mem {
    pub sup: (u64, u64),
    pub workers: Vec<(u64, u64)>,
}

impl Mem {
    pub fn of(d: &Daemon) -> Mem {
        let sup = (procfs::rss_kb(d.pid()), pss_kb(d.pid()));
        let workers = d
            .workers()
            .iter()
            .filter_map(|w| w.pid)
            .map(|p| (procfs::rss_kb(p), pss_kb(p)))
            .collect();
        Mem { sup, workers }
    }

    pub fn worker_sum(&self) -> (u64, u64) {
        self.workers
            .iter()
            .fold((0, 0), |a, w| (a.0 + w.0, a.1 + w.1))
    }

    pub fn print(&self, what: &str) {
        let n = self.workers.len().max(1) as u64;
        let (rss, pss) = self.worker_sum();
        let max = self.workers.iter().map(|w| w.0).max().unwrap_or(0);
        let min = self.workers.iter().map(|w| w.0).min().unwrap_or(0);
        out!(
            "{what}: supervisor RSS {} kB (Pss {} kB); {} workers: RSS {} kB each on average (min {min}, max {max}), Pss {} kB each; workers' total RSS {} kB, Pss {} kB; all processes Pss {} kB",
            self.sup.0,
            self.sup.1,
            self.workers.len(),
            rss / n,
            pss / n,
            rss,
            pss,
            pss + self.sup.1
        );
    }
}

/// A small deterministic generator for the random sample (no dependency).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// The time `f` takes.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t0 = Instant::now();
    let v = f();
    (v, t0.elapsed())
}

/// Poll until `want` workers have a pid and `rules` rules are listed, all
/// active; the time it took, or None after `timeout`.
pub fn wait_up(d: &Daemon, want: usize, rules: usize, timeout: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        let w = d.workers();
        if w.iter().filter(|w| w.pid.is_some()).count() >= want {
            let l = d.list();
            if l.len() >= rules && l.iter().all(|r| r.state == RuleState::Active) {
                return Some(t0.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let l = d.list();
    let active = l.iter().filter(|r| r.state == RuleState::Active).count();
    out!(
        "  timeout after {timeout:?}: {} workers with a pid of {want}, {active} of {} rules active",
        d.workers().iter().filter(|w| w.pid.is_some()).count(),
        l.len()
    );
    None
}

/// Datagrams per UDP port that arrive in `ns` for `group` on the interface
/// with address `local`, while `send` runs (and for 500 ms after it, for
/// the stragglers). One socket per port, bound in a thread that entered
/// the namespace.
pub fn count_delivery(
    ns: &Netns,
    group: Ipv4Addr,
    local: Ipv4Addr,
    ports: &[u16],
    send: impl FnOnce() + Send,
) -> Vec<u64> {
    let done = AtomicBool::new(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            ns.enter_thread();
            let socks: Vec<UdpSocket> = ports
                .iter()
                .map(|p| {
                    let sk = socket2::Socket::new(
                        socket2::Domain::IPV4,
                        socket2::Type::DGRAM,
                        Some(socket2::Protocol::UDP),
                    )
                    .expect("udp socket");
                    let _ = sk.set_reuse_address(true);
                    let _ = sk.set_recv_buffer_size(1 << 20);
                    sk.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, *p).into())
                        .expect("bind receiver port");
                    sk.join_multicast_v4(&group, &local).expect("join");
                    sk.set_nonblocking(true).expect("nonblocking");
                    sk.into()
                })
                .collect();
            let _ = ready_tx.send(());
            let mut counts = vec![0u64; socks.len()];
            let mut buf = [0u8; 9000];
            let mut quiet_since: Option<Instant> = None;
            loop {
                let mut got = false;
                for (i, sk) in socks.iter().enumerate() {
                    while sk.recv(&mut buf).is_ok() {
                        counts[i] += 1;
                        got = true;
                    }
                }
                if done.load(Ordering::Acquire) {
                    let q = *quiet_since.get_or_insert_with(Instant::now);
                    if got {
                        quiet_since = Some(Instant::now());
                    } else if q.elapsed() > Duration::from_millis(500) {
                        break;
                    }
                }
                if !got {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            counts
        });
        let _ = ready_rx.recv_timeout(Duration::from_secs(30));
        send();
        done.store(true, Ordering::Release);
        h.join().expect("receiver thread")
    })
}

/// Send `burst` datagrams to each (source interface address, group) from
/// a socket in `ns`, a millisecond apart per target so no queue on the
/// way overflows.
pub fn send_bursts(ns: &Netns, targets: &[(Ipv4Addr, Ipv4Addr)], port: u16, burst: usize) {
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter_thread();
            let sk = UdpSocket::bind("0.0.0.0:0").expect("sender socket");
            sk.set_multicast_ttl_v4(8).expect("ttl");
            let payload = [0x5au8; 64];
            let mut last_if = None;
            for &(src, group) in targets {
                if last_if != Some(src) {
                    // IP_MULTICAST_IF picks the input link of this target.
                    let s2 = socket2::SockRef::from(&sk);
                    s2.set_multicast_if_v4(&src).expect("multicast if");
                    last_if = Some(src);
                }
                for _ in 0..burst {
                    let _ = sk.send_to(&payload, SocketAddrV4::new(group, port));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
    });
}

/// The workers' restarts so far: how many, and each distinct reason for
/// the last exit with how many workers it was the reason of. A worker
/// that missed its Hello or heartbeat deadline at start shows here.
pub fn restarts(d: &Daemon) -> String {
    let w = d.workers();
    let total: u64 = w.iter().map(|w| u64::from(w.restarts)).sum();
    let restarted = w.iter().filter(|w| w.restarts > 0).count();
    let mut why: std::collections::BTreeMap<String, usize> = Default::default();
    for e in w
        .iter()
        .filter(|w| w.restarts > 0)
        .filter_map(|w| w.last_exit.clone())
    {
        *why.entry(e).or_insert(0) += 1;
    }
    let why: Vec<String> = why.into_iter().map(|(e, n)| format!("{n}× {e}")).collect();
    format!(
        "{total} restarts of {restarted} of {} workers{}",
        w.len(),
        if why.is_empty() {
            String::new()
        } else {
            format!(" (last exit: {})", why.join("; "))
        }
    )
}

/// Spread a set of ready outcomes: how many got all, some, none.
pub fn tally(counts: &[u64], burst: usize) -> (usize, usize, usize) {
    let all = counts.iter().filter(|&&c| c >= burst as u64).count();
    let none = counts.iter().filter(|&&c| c == 0).count();
    (all, counts.len() - all - none, none)
}

pub fn start(ns: &Netns, config: Option<&str>) -> Daemon {
    Daemon::start(
        ns,
        DaemonOpts {
            config,
            ..Default::default()
        },
    )
}

/// `ip -n NS -batch -` with `script` on stdin; panics if it fails (the
/// namespaces are the bench's own, a failure there is a harness bug).
pub fn ip_batch(ns: &Netns, script: &str) {
    let mut c = Command::new("ip")
        .args(["-n", &ns.name, "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("ip -batch");
    if let Some(mut i) = c.stdin.take() {
        i.write_all(script.as_bytes()).expect("ip -batch input");
    }
    let st = c.wait().expect("ip -batch");
    assert!(st.success(), "ip -batch in {} failed", ns.name);
}

/// ", missing: NAME12 NAME40 ..." for the first few indices with nothing.
pub fn missing(counts: &[u64], prefix: &str) -> String {
    let m: Vec<String> = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == 0)
        .take(8)
        .map(|(i, _)| format!("{prefix}{i}"))
        .collect();
    if m.is_empty() {
        String::new()
    } else {
        format!(", nothing on: {}", m.join(" "))
    }
}

/// Multicast link-layer addresses on `iface` (`ip maddr`), the
/// memberships the relay programmed for its input groups.
pub fn link_groups(ns: &Netns, iface: &str) -> usize {
    let o = ns.ip(&["maddr", "show", "dev", iface]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with("link"))
        .count()
}

/// The time from the start of `act` (an `mcrctl add`) until the first
/// datagram to `group`:`port` from `snd` (out of `src`'s interface, one a
/// millisecond) arrives in `rcv` on `out_port` of `out_group` (joined on
/// the interface with address `local`). This is what a user waits for
/// after an add, unlike the rule's listed state, whose polling costs a
/// `list` of every rule. None if nothing arrived within `timeout`.
#[allow(clippy::too_many_arguments)]
pub fn first_forward(
    snd: &Netns,
    rcv: &Netns,
    (src, group, port): (Ipv4Addr, Ipv4Addr, u16),
    (out_group, local, out_port): (Ipv4Addr, Ipv4Addr, u16),
    timeout: Duration,
    act: impl FnOnce(),
) -> Option<Duration> {
    let stop = AtomicBool::new(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (got_tx, got_rx) = std::sync::mpsc::channel::<Instant>();
    std::thread::scope(|s| {
        s.spawn(|| {
            rcv.enter_thread();
            let sk = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            )
            .expect("udp socket");
            let _ = sk.set_reuse_address(true);
            sk.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, out_port).into())
                .expect("bind receiver port");
            sk.join_multicast_v4(&out_group, &local).expect("join");
            sk.set_read_timeout(Some(Duration::from_millis(20)))
                .expect("timeout");
            let sk: UdpSocket = sk.into();
            let _ = ready_tx.send(());
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Acquire) {
                if sk.recv(&mut buf).is_ok() {
                    let _ = got_tx.send(Instant::now());
                    return;
                }
            }
        });
        s.spawn(|| {
            snd.enter_thread();
            let sk = UdpSocket::bind("0.0.0.0:0").expect("sender socket");
            sk.set_multicast_ttl_v4(8).expect("ttl");
            socket2::SockRef::from(&sk)
                .set_multicast_if_v4(&src)
                .expect("multicast if");
            while !stop.load(Ordering::Acquire) {
                let _ = sk.send_to(&[0x5a; 64], SocketAddrV4::new(group, port));
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let _ = ready_rx.recv_timeout(Duration::from_secs(30));
        // Nothing may arrive before the add: the rule does not exist yet.
        std::thread::sleep(Duration::from_millis(50));
        let t0 = Instant::now();
        act();
        let got = got_rx.recv_timeout(timeout).ok();
        stop.store(true, Ordering::Release);
        got.map(|t| t.saturating_duration_since(t0))
    })
}
