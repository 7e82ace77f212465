//! What SPEC.md promises when interfaces change under a running relay
//! ("Self-healing", interfaces): an input interface renamed away leaves
//! its rules `pending` (a rule names an interface that does not exist),
//! and renamed back, forwarding resumes with no command; an input or an
//! output interface whose IPv4 address changes keeps forwarding with no
//! command. Real daemon and `mcrgen send` in namespaces; the receiver is a
//! socket in this process that timestamps every datagram, so each test
//! can print how long the relay took to recover.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::daemon::{send_cmd, Daemon};
use common::{require_root, rule_config, wait_for, KillOnDrop, Netns, Relay3};
use mcr::control::RuleState;

const IN_GROUP: &str = "239.1.1.1";
const IN_PORT: u16 = 5000;
const OUT_GROUP: Ipv4Addr = Ipv4Addr::new(239, 2, 2, 2);
const OUT_PORT: u16 = 6000;
/// Packets per second: one every 2 ms, so a gap measures recovery to a
/// few milliseconds.
const RATE: u32 = 500;

/// Arrival time and source of every datagram to OUT_GROUP:OUT_PORT on d0.
struct Receiver {
    seen: Arc<Mutex<Vec<(Instant, Ipv4Addr)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    fn start(ns: &Netns) -> Receiver {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (s, st) = (seen.clone(), stop.clone());
        let path = format!("/run/netns/{}", ns.name);
        let thread = std::thread::spawn(move || {
            let f = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let sock = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, OUT_PORT))
                .expect("bind receiver");
            sock.join_multicast_v4(&OUT_GROUP, &Ipv4Addr::new(10, 10, 2, 2))
                .expect("join");
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .expect("timeout");
            let _ = ready_tx.send(());
            let mut buf = [0u8; 2048];
            while !st.load(Ordering::Relaxed) {
                if let Ok((_, std::net::SocketAddr::V4(from))) = sock.recv_from(&mut buf) {
                    let now = Instant::now();
                    s.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((now, *from.ip()));
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("receiver joined");
        Receiver {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn arrivals(&self) -> Vec<(Instant, Ipv4Addr)> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn count_since(&self, t: Instant) -> usize {
        self.arrivals().iter().filter(|(a, _)| *a >= t).count()
    }

    /// The first arrival after `t` (from `src`, if given), waiting up to
    /// `timeout` for one.
    fn first_after(&self, t: Instant, src: Option<Ipv4Addr>, timeout: Duration) -> Option<Instant> {
        wait_for(timeout, || {
            self.arrivals()
                .into_iter()
                .find(|(a, s)| *a >= t && src.is_none_or(|x| x == *s))
                .map(|(a, _)| a)
        })
    }

    /// The longest silence between arrivals in [from, to].
    fn max_gap(&self, from: Instant, to: Instant) -> Duration {
        let mut last = from;
        let mut gap = Duration::ZERO;
        for (a, _) in self.arrivals() {
            if a < from || a > to {
                continue;
            }
            gap = gap.max(a - last);
            last = a;
        }
        gap.max(to.saturating_duration_since(last))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `mcrgen send` from s0 at RATE for `secs`, killed on drop.
fn start_sender(ns: &Netns, secs: u64) -> KillOnDrop {
    let count = u64::from(RATE) * secs;
    let c = send_cmd(ns, IN_GROUP, IN_PORT, "s0", count, RATE, 200, &[])
        .spawn()
        .expect("spawn mcrgen send");
    KillOnDrop(c)
}

fn setup(tag: &str) -> (Relay3, Daemon, Receiver) {
    let t = Relay3::new(tag);
    let d = Daemon::with_config(
        &t.relay,
        &rule_config(
            IN_GROUP,
            IN_PORT,
            &[("r1", &OUT_GROUP.to_string(), OUT_PORT)],
        ),
    );
    let r = Receiver::start(&t.dst);
    (t, d, r)
}

/// Rename as an operator would. Kernels before 6.x refuse to rename an
/// interface that is up (EBUSY): there it is taken down around the rename.
fn rename(ns: &Netns, from: &str, to: &str) {
    let live = ns
        .cmd("ip")
        .args(["link", "set", from, "name", to])
        .output()
        .expect("ip link set name");
    if !live.status.success() {
        ns.ip(&["link", "set", from, "down"]);
        ns.ip(&["link", "set", from, "name", to]);
        ns.ip(&["link", "set", to, "up"]);
    }
}

#[test]
fn renamed_input_goes_pending_and_resumes_when_renamed_back() {
    if !require_root("renamed_input_goes_pending_and_resumes_when_renamed_back") {
        return;
    }
    let (t, d, rx) = setup("nlren");
    let id = d.list()[0].id.clone();
    let _tx = start_sender(&t.src, 60);
    let t0 = Instant::now();
    rx.first_after(t0, None, Duration::from_secs(10))
        .expect("relays before the rename");

    // Renamed away: the rule's interface no longer exists.
    rename(&t.relay, "r0", "r0x");
    let away = Instant::now();
    let r = d.wait_rule_state(&id, RuleState::Pending, Duration::from_secs(10));
    println!("rule pending {:?} after the rename", away.elapsed());
    assert!(
        r.reason.as_deref().unwrap_or_default().contains("r0"),
        "the reason names the interface: {r:?}"
    );
    wait_for(Duration::from_secs(10), || {
        d.workers()
            .iter()
            .all(|w| w.interface != "r0")
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the worker for r0 stays after the rename: {:?}",
            d.workers()
        )
    });
    // A rule names an interface, not an index: traffic arriving on r0x is
    // not relayed.
    std::thread::sleep(Duration::from_millis(300));
    let quiet = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        rx.count_since(quiet),
        0,
        "nothing is relayed from the renamed interface"
    );

    // Renamed back: forwarding resumes with no command.
    rename(&t.relay, "r0x", "r0");
    let back = Instant::now();
    let first = rx
        .first_after(back, None, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no forwarding after renaming back; rules {:#?}", d.list()));
    println!("renamed back: forwarding resumed after {:?}", first - back);
    d.wait_rule_state(&id, RuleState::Active, Duration::from_secs(10));
    let settled = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let n = rx.count_since(settled);
    assert!(
        n as u32 > RATE / 2,
        "steady forwarding after recovery: {n} datagrams in 1 s at {RATE}/s"
    );
}

#[test]
fn address_changes_on_input_and_output_keep_forwarding() {
    if !require_root("address_changes_on_input_and_output_keep_forwarding") {
        return;
    }
    let (t, d, rx) = setup("nladdr");
    let _tx = start_sender(&t.src, 60);
    let t0 = Instant::now();
    rx.first_after(
        t0,
        Some(Ipv4Addr::new(10, 10, 2, 1)),
        Duration::from_secs(10),
    )
    .expect("relays from r1's address before the change");

    // Input: r0 is renumbered into another subnet.
    let change = Instant::now();
    t.relay.ip(&["addr", "del", "10.10.1.2/24", "dev", "r0"]);
    t.relay.ip(&["addr", "add", "10.10.11.2/24", "dev", "r0"]);
    std::thread::sleep(Duration::from_secs(3));
    let gap = rx.max_gap(change, Instant::now());
    println!("input address changed: longest gap in forwarding {gap:?}");
    assert!(
        gap < Duration::from_secs(2),
        "forwarding continues across the input's address change (gap {gap:?})"
    );

    // Output: r1 is renumbered within its subnet; relayed datagrams now
    // come from the new address.
    let change = Instant::now();
    t.relay.ip(&["addr", "del", "10.10.2.1/24", "dev", "r1"]);
    t.relay.ip(&["addr", "add", "10.10.2.7/24", "dev", "r1"]);
    let first = rx
        .first_after(
            change,
            Some(Ipv4Addr::new(10, 10, 2, 7)),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| {
            panic!(
                "nothing relayed from r1's new address; rules {:#?}",
                d.list()
            )
        });
    println!(
        "output address changed: relayed from the new address after {:?}",
        first - change
    );
    std::thread::sleep(Duration::from_secs(1));
    let gap = rx.max_gap(change, Instant::now());
    println!("output address changed: longest gap in forwarding {gap:?}");
    assert!(
        gap < Duration::from_secs(2),
        "forwarding continues across the output's address change (gap {gap:?})"
    );
    assert!(
        d.list().iter().all(|r| r.state == RuleState::Active),
        "no rule changed state: {:#?}",
        d.list()
    );
}
