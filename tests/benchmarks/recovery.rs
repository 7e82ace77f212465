//! Recovery benchmark: how long forwarding stops when a worker is killed
//! at 50 000 pps, and how long an actor takes to be running again after a
//! panic, each over 20 repetitions, against a real daemon in namespaces.
//!
//! ```sh
//! cargo build --release --workspace
//! sudo env "PATH=$PATH" cargo bench --bench recovery -- [--reps N] [--rate PPS]
//!     [--control-reps N] [--no-actors] [--actor-reps N] [--label TEXT]
//! ```
//!
//! Worker kill, per repetition, from the receiver's own record of every
//! datagram (sequence number, the sender's timestamp in the payload, the
//! kernel's receive timestamp):
//!
//! - `down ms`, what a user feels: from the send time of the first datagram
//!   that did not arrive on time (lost, or held back behind the dead worker)
//!   to the arrival of the first one after it. mcrd keeps a worker's input
//!   socket across its restart, so most datagrams sent meanwhile are late
//!   rather than lost; this counts both.
//! - `gap ms`, the figure earlier runs reported: the longest silence between
//!   two arrivals. A sender that stalls makes it longer without anything
//!   being down, hence also `tx gap ms`, the sender's longest pause between
//!   two consecutive datagrams that arrived.
//! - `lost`: datagrams that never arrived; `dup`: datagrams that arrived
//!   more than once (a restarted worker re-reading what its predecessor
//!   had already forwarded).
//! - Where lost ones went, from the worker's own counters over the
//!   repetition (the new worker's, after a kill): `unmat`, read and
//!   dropped as matching no rule or having no output socket (a worker
//!   that read its input before its table arrived); `kdrop`, dropped by
//!   the kernel before any worker read them (the receive ring full while
//!   no worker ran, reported by the next one). What neither counts was
//!   lost in the killed worker: read and marked sent but not yet handed
//!   to the kernel, or dropped in its last turn.
//! - `kill ms`: the wait the kill itself caused, that of the first arrival
//!   after the supervisor saw the worker exit (`down ms` is the longest of
//!   the repetition, which a stalled sender can also make), and where it
//!   went, from the daemon's `worker-exited` and `worker-started` events:
//!   first late datagram sent → exit seen by the supervisor (`->exit`) →
//!   new worker's Hello (`->hello`) → first datagram forwarded again
//!   (`->resume`).
//!
//! `--control-reps N` first runs N repetitions with the same traffic and no
//! kill: their `down ms` is the path's latency on this machine, the floor
//! under every kill figure.
//!
//! Actor panic: from the moment `mcrctl fault panic-actor` returns to the
//! `actor-restarted` event the daemon publishes once the new actor runs.
//!
//! To measure another build of mcrd with this same harness (a before/after
//! comparison), copy this benchmark's binary into `DIR/deps/` where `DIR`
//! holds that build's `mcrd` and `mcrctl` and this build's `mcrgen`: the
//! harness takes its binaries from the directory above its own.

#[path = "../common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, IoSliceMut};
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::daemon::{send_cmd, Daemon, DaemonOpts};
use common::pim_lab::udp_bound_in;
use common::{bin, wait_for, Relay3};
use mcr::gen::payload::Header;
use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use nix::sys::time::TimeSpec;

const GROUP_OUT: &str = "239.2.2.2";
const PORT_OUT: u16 = 6000;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// The `q` quantile (0..=1) by nearest rank, as `median` takes it.
fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn worst(v: &[f64]) -> f64 {
    v.iter().cloned().fold(0.0, f64::max)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// One datagram as the receiver saw it.
#[derive(Clone, Copy, Debug)]
struct Sample {
    seq: u64,
    /// Sender's clock when it handed the batch to the kernel (ns, epoch).
    tx_ns: u64,
    /// Kernel receive timestamp (ns, epoch): when the datagram reached the
    /// receiver's socket, however late the receiving thread ran.
    rx_ns: u64,
}

/// Records every datagram to the output group in the receiver's namespace.
struct Recorder {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<Vec<Sample>>,
}

impl Recorder {
    fn start(ns: &str) -> Recorder {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let (stop2, count2, ns) = (stop.clone(), count.clone(), ns.to_string());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let s = udp_bound_in(&ns, PORT_OUT);
            let ifindex = nix::net::if_::if_nametoindex("d0").expect("d0 in the receiver");
            s.join_multicast_v4_n(
                &GROUP_OUT.parse().expect("group"),
                &socket2::InterfaceIndexOrAddress::Index(ifindex),
            )
            .expect("join");
            // Deep enough that a receiving thread starved by the machine's
            // other load loses nothing: its lateness must not count.
            let _ = s.set_recv_buffer_size(32 << 20);
            setsockopt(&s, sockopt::ReceiveTimestampns, &true).expect("SO_TIMESTAMPNS");
            s.set_read_timeout(Some(Duration::from_millis(20)))
                .expect("timeout");
            let _ = ready_tx.send(());
            let mut got = Vec::with_capacity(200_000);
            let mut buf = [0u8; 2048];
            let mut cmsg = nix::cmsg_space!(TimeSpec);
            while !stop2.load(Ordering::Relaxed) {
                let mut iov = [IoSliceMut::new(&mut buf)];
                let Ok(m) =
                    recvmsg::<()>(s.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty())
                else {
                    continue;
                };
                let rx_ns = m
                    .cmsgs()
                    .ok()
                    .into_iter()
                    .flatten()
                    .find_map(|c| match c {
                        ControlMessageOwned::ScmTimestampns(t) => {
                            Some(t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
                        }
                        _ => None,
                    })
                    .unwrap_or_else(now_ns);
                let n = m.bytes;
                let Some(h) = Header::decode(&buf[..n]) else {
                    continue;
                };
                got.push(Sample {
                    seq: h.seq,
                    tx_ns: h.timestamp_ns,
                    rx_ns,
                });
                count2.fetch_add(1, Ordering::Relaxed);
            }
            got
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the receiver joined");
        Recorder {
            stop,
            count,
            thread,
        }
    }

    /// Stop once `expect` datagrams arrived or none for `idle`.
    fn finish(self, expect: u64, idle: Duration) -> Vec<Sample> {
        let mut last = (self.count.load(Ordering::Relaxed), Instant::now());
        loop {
            let n = self.count.load(Ordering::Relaxed);
            if n >= expect || (n == last.0 && last.1.elapsed() >= idle) {
                break;
            }
            if n != last.0 {
                last = (n, Instant::now());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("receiver thread")
    }
}

/// The figures of one repetition (ns).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Figures {
    /// Longest wait of an overdue datagram: send time of the first one not
    /// yet arrived → arrival of the next datagram.
    down_ns: u64,
    /// Send time of the first overdue datagram of that longest wait.
    down_from_ns: u64,
    /// Arrival that ended it.
    down_to_ns: u64,
    /// Longest silence between two arrivals.
    rx_gap_ns: u64,
    /// Longest pause of the sender between consecutive received datagrams.
    tx_gap_ns: u64,
    lost: u64,
    /// Datagrams that arrived more than once (counted past the first).
    dups: u64,
    /// Median one-way latency.
    latency_p50_ns: u64,
}

/// `samples` in arrival order; `expected` datagrams were sent. Datagrams
/// missing before the first arrival are the receiver joining late, not an
/// outage: the first wait starts at the first arrival.
fn analyse(samples: &[Sample], expected: u64) -> Figures {
    let mut f = Figures::default();
    let mut prev_rx: Option<u64> = None;
    for s in samples {
        if let Some(p) = prev_rx {
            f.rx_gap_ns = f.rx_gap_ns.max(s.rx_ns.saturating_sub(p));
        }
        prev_rx = Some(s.rx_ns);
    }
    for (owed_since, rx) in waits(samples) {
        let wait = rx.saturating_sub(owed_since);
        if wait > f.down_ns {
            f.down_ns = wait;
            f.down_from_ns = owed_since;
            f.down_to_ns = rx;
        }
    }
    let mut by_seq: Vec<Sample> = samples.to_vec();
    by_seq.sort_by_key(|s| s.seq);
    by_seq.dedup_by_key(|s| s.seq);
    f.dups = (samples.len() - by_seq.len()) as u64;
    for w in by_seq.windows(2) {
        f.tx_gap_ns = f.tx_gap_ns.max(w[1].tx_ns.saturating_sub(w[0].tx_ns));
    }
    f.lost = expected.saturating_sub(by_seq.len() as u64);
    let mut lat: Vec<u64> = samples
        .iter()
        .map(|s| s.rx_ns.saturating_sub(s.tx_ns))
        .collect();
    lat.sort_unstable();
    f.latency_p50_ns = lat.get(lat.len() / 2).copied().unwrap_or(0);
    f
}

/// For each arrival that advances the stream: (send time of the first
/// datagram owed at that moment, arrival time). The first owed one was
/// sent no earlier than the datagram before it, so that send time stands
/// for it when it never arrives. Late duplicates and reordered datagrams
/// advance nothing.
fn waits(samples: &[Sample]) -> impl Iterator<Item = (u64, u64)> + '_ {
    let mut hi: Option<Sample> = None;
    samples.iter().filter_map(move |s| {
        let owed_since = match hi {
            Some(h) if s.seq <= h.seq => return None,
            Some(h) if s.seq > h.seq + 1 => h.tx_ns,
            _ => s.tx_ns,
        };
        hi = Some(*s);
        Some((owed_since, s.rx_ns))
    })
}

/// The wait that the worker's death caused: that of the first arrival
/// after the supervisor saw the exit at `exit_ns`, whether or not it is
/// the longest of the repetition (the sender or the machine may stall
/// the stream at other times too).
fn wait_across(samples: &[Sample], exit_ns: u64) -> Option<(u64, u64)> {
    waits(samples).find(|(_, rx)| *rx >= exit_ns)
}

/// The figures are only as good as `analyse`: checked on made-up streams
/// before every run, so that a wrong figure stops the run instead of
/// landing in a results file.
fn check_analysis() {
    let at = |seq: u64, tx_ms: u64, rx_ms: u64| Sample {
        seq,
        tx_ns: tx_ms * 1_000_000,
        rx_ns: rx_ms * 1_000_000,
    };
    // 1 ms latency, a datagram a ms; seqs 3..=4 lost, 5..=6 held back
    // until 40 ms; a late duplicate of 2 on the way.
    let s = [
        at(0, 0, 1),
        at(1, 1, 2),
        at(2, 2, 3),
        at(5, 5, 40),
        at(2, 2, 40),
        at(6, 6, 40),
        at(7, 7, 41),
    ];
    let f = analyse(&s, 8);
    assert_eq!(ms(f.down_ns), 38.0, "{f:?}");
    assert_eq!((ms(f.down_from_ns), ms(f.down_to_ns)), (2.0, 40.0));
    assert_eq!(ms(f.rx_gap_ns), 37.0);
    assert_eq!(ms(f.tx_gap_ns), 3.0);
    assert_eq!((f.lost, f.dups), (2, 1));
    assert_eq!(wait_across(&s, 30_000_000), Some((2_000_000, 40_000_000)));
    assert_eq!(wait_across(&s, 41_000_000), Some((7_000_000, 41_000_000)));
    // Nothing missing: the longest wait is the worst latency.
    let f = analyse(&[at(0, 0, 1), at(1, 1, 9), at(2, 2, 10)], 3);
    assert_eq!((ms(f.down_ns), f.lost, f.dups), (8.0, 0, 0));
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Signed difference in ms, for the phases (an event stamped a little
/// before the datagram that precedes it is possible across clocks read at
/// different points).
fn dms(to_ns: u64, from_ns: u64) -> f64 {
    (to_ns as f64 - from_ns as f64) / 1e6
}

/// `worker-exited` and `worker-started` events with their time (ns).
fn subscribe_workers(d: &Daemon) -> (std::process::Child, Receiver<(String, u64)>) {
    let mut sub = std::process::Command::new(bin("mcrctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["subscribe", "--events", "workers,actors"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mcrctl subscribe");
    let out = sub.stdout.take().expect("stdout");
    let (tx, rx): (Sender<(String, u64)>, _) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let name = match v["event"].as_str() {
                Some("actor-restarted") => format!("actor:{}", v["name"].as_str().unwrap_or("")),
                Some(e) => e.to_string(),
                None => continue,
            };
            let t = (v["time"].as_f64().unwrap_or(0.0) * 1e9) as u64;
            if tx.send((name, t)).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    (sub, rx)
}

/// The first worker's pid and two of its counters: datagrams it read and
/// dropped for want of a rule or an output socket, and frames the kernel
/// dropped before it read them. Plain JSON, as `restarts`.
fn drop_counters(d: &Daemon) -> (Option<u64>, u64, u64) {
    let v: serde_json::Value = d.ctl_json(&["stats"]);
    let w = &v["workers"][0];
    let n = |k: &str| w[k].as_u64().unwrap_or(0);
    (
        w["pid"].as_u64(),
        n("no_match") + n("send_errors"),
        n("kernel_drops"),
    )
}

/// What `drop_counters` grew by over a repetition: a worker that is not
/// the one of `before` started during it, so all it counted is new.
fn drops_since(before: (Option<u64>, u64, u64), after: (Option<u64>, u64, u64)) -> (u64, u64) {
    if before.0.is_some() && before.0 == after.0 {
        (
            after.1.saturating_sub(before.1),
            after.2.saturating_sub(before.2),
        )
    } else {
        (after.1, after.2)
    }
}

/// Restarts of the first worker, read as plain JSON so that an older
/// mcrctl's output parses too.
fn restarts(d: &Daemon) -> u64 {
    let v: serde_json::Value = d.ctl_json(&["workers"]);
    v.as_array()
        .or_else(|| v["workers"].as_array())
        .and_then(|a| a.first())
        .and_then(|w| w["restarts"].as_u64())
        .unwrap_or(0)
}

struct Opts {
    reps: usize,
    rate: u32,
    control_reps: usize,
    actors: bool,
    /// Actor panics (default: as many as worker kills).
    actor_reps: Option<usize>,
    label: String,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        reps: 20,
        rate: 50_000,
        control_reps: 5,
        actors: true,
        actor_reps: None,
        label: String::new(),
    };
    let mut a = std::env::args().skip(1);
    while let Some(x) = a.next() {
        let mut num = |cur: usize| a.next().and_then(|v| v.parse().ok()).unwrap_or(cur);
        match x.as_str() {
            "--reps" => o.reps = num(o.reps),
            "--rate" => o.rate = num(o.rate as usize) as u32,
            "--control-reps" => o.control_reps = num(o.control_reps),
            "--no-actors" => o.actors = false,
            "--actor-reps" => o.actor_reps = Some(num(o.reps)),
            "--label" => o.label = a.next().unwrap_or_default(),
            "--bench" => {}
            _ => {
                eprintln!(
                    "recovery [--reps N] [--rate PPS] [--control-reps N] [--no-actors] [--actor-reps N] [--label TEXT]"
                );
                std::process::exit(2);
            }
        }
    }
    o
}

fn main() {
    let o = parse_args();
    check_analysis();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("recovery needs root (network namespaces)");
        std::process::exit(2);
    }
    for b in ["mcrd", "mcrgen", "mcrctl"] {
        bin(b);
    }
    println!(
        "# recovery {}: mcrd {}",
        o.label,
        bin("mcrd").canonicalize().unwrap_or(bin("mcrd")).display()
    );
    let t = Relay3::new("recov");
    t.dst.set_sysctl("net.core.rmem_max", "33554432");
    let cfg = r#"{ rules: [ { input: { interface: "r0", group: "239.1.1.1", port: 5000 },
                   outputs: [ { interface: "r1", group: "239.2.2.2", port: 6000 } ] } ] }"#;
    let d = Daemon::start(
        &t.relay,
        DaemonOpts {
            config: Some(cfg),
            fault_injection: true,
            env: vec![("MCR_STATS_INTERVAL_MS", "100")],
            ..Default::default()
        },
    );
    d.wait_active(Duration::from_secs(20));
    let (mut sub, events) = subscribe_workers(&d);
    worker_kills(&o, &t, &d, &events);
    if o.actors {
        actor_panics(&o, &d, &events);
    }
    let _ = sub.kill();
    let _ = sub.wait();
}

fn worker_kills(o: &Opts, t: &Relay3, d: &Daemon, events: &Receiver<(String, u64)>) {
    let rate = o.rate;
    println!(
        "# worker kill at {rate} pps, 1024-byte datagrams, {} repetitions after {} without a kill",
        o.reps, o.control_reps
    );
    println!(
        "{:>4} {:>5} {:>8} {:>8} {:>6} {:>5} {:>6} {:>6} {:>8} {:>9} {:>8} | {:>8} {:>9} {:>9} {:>9}",
        "rep",
        "kill",
        "down ms",
        "gap ms",
        "lost",
        "dup",
        "unmat",
        "kdrop",
        "lost ms",
        "tx gap ms",
        "p50 ms",
        "kill ms",
        "->exit ms",
        "->hello",
        "->resume"
    );
    let mut rows: Vec<(bool, Figures)> = Vec::new();
    let mut kill_waits: Vec<f64> = Vec::new();
    let mut phase_ms: [Vec<f64>; 3] = Default::default();
    let before = restarts(d);
    // Kill repetitions: lost, dropped unmatched, dropped by the kernel.
    let mut kill_drops = [0u64; 3];
    for i in 0..o.control_reps + o.reps {
        let kill = i >= o.control_reps;
        // A worker that ran 5 s is restarted at once (no crash-loop
        // backoff): give each repetition that.
        std::thread::sleep(Duration::from_millis(5200));
        while events.try_recv().is_ok() {}
        let counted = drop_counters(d);
        let count = u64::from(rate) * 2;
        let rec = Recorder::start(&t.dst.name);
        let mut s = send_cmd(
            &t.src,
            "239.1.1.1",
            5000,
            "s0",
            count,
            rate,
            1024,
            &["--tick-us", "200", "--batch", "64"],
        )
        .stdout(Stdio::null())
        .spawn()
        .expect("mcrgen send");
        std::thread::sleep(Duration::from_millis(700));
        if kill {
            d.ctl_ok(&["fault", "kill-worker"]);
        }
        let _ = s.wait();
        let samples = rec.finish(count, Duration::from_millis(500));
        let f = analyse(&samples, count);
        // The worker reports its counters every 100 ms.
        std::thread::sleep(Duration::from_millis(300));
        let (unmatched, kdrops) = drops_since(counted, drop_counters(d));
        if kill {
            for (t, x) in kill_drops.iter_mut().zip([f.lost, unmatched, kdrops]) {
                *t += x;
            }
        }
        let mut exit_at = None;
        let mut hello_at = None;
        for (e, at) in events.try_iter() {
            match e.as_str() {
                "worker-exited" if exit_at.is_none() => exit_at = Some(at),
                "worker-started" if exit_at.is_some() && hello_at.is_none() => hello_at = Some(at),
                _ => {}
            }
        }
        let across = exit_at.and_then(|e| wait_across(&samples, e));
        if std::env::var_os("MCR_PROBE").is_some() {
            println!(
                "PROBE-REP {} exit={exit_at:?} hello={hello_at:?} across={across:?}",
                i + 1
            );
        }
        let phases = match (kill, exit_at, hello_at, across) {
            (true, Some(e), Some(h), Some((from, to))) => {
                kill_waits.push(ms(to.saturating_sub(from)));
                for (v, x) in phase_ms
                    .iter_mut()
                    .zip([dms(e, from), dms(h, e), dms(to, h)])
                {
                    v.push(x);
                }
                format!(
                    "{:>8.1} {:>9.1} {:>9.1} {:>9.1}",
                    ms(to.saturating_sub(from)),
                    dms(e, from),
                    dms(h, e),
                    dms(to, h)
                )
            }
            (true, ..) => format!("{:>38}", "no worker events"),
            (false, ..) => String::new(),
        };
        println!(
            "{:>4} {:>5} {:>8.1} {:>8.1} {:>6} {:>5} {:>6} {:>6} {:>8.1} {:>9.1} {:>8.2} | {phases}",
            i + 1,
            if kill { "yes" } else { "no" },
            ms(f.down_ns),
            ms(f.rx_gap_ns),
            f.lost,
            f.dups,
            unmatched,
            kdrops,
            f.lost as f64 * 1000.0 / f64::from(rate),
            ms(f.tx_gap_ns),
            ms(f.latency_p50_ns),
        );
        rows.push((kill, f));
    }
    let w = worst(&kill_waits);
    println!(
        "wait caused by the kill: median {:.1} ms, p25 {:.1}, p75 {:.1}, worst {w:.1} ms",
        median(&mut kill_waits),
        quantile(&mut kill_waits, 0.25),
        quantile(&mut kill_waits, 0.75),
    );
    let [e, h, r] = phase_ms.each_mut().map(|v| median(v));
    println!("phases, median: ->exit {e:.1} ms, ->hello {h:.1} ms, ->resume {r:.1} ms");
    let [lost, unmat, kdrop] = kill_drops;
    println!(
        "kills, total: lost {lost}; dropped unmatched by the new worker {unmat}; dropped by the kernel before a worker read them {kdrop}"
    );
    let after = restarts(d);
    for (kill, what) in [(false, "no kill (control)"), (true, "worker kill")] {
        let r: Vec<&Figures> = rows
            .iter()
            .filter(|(k, _)| *k == kill)
            .map(|(_, f)| f)
            .collect();
        if r.is_empty() {
            continue;
        }
        let col = |g: &dyn Fn(&Figures) -> f64| {
            let mut v: Vec<f64> = r.iter().map(|f| g(f)).collect();
            let w = worst(&v);
            (median(&mut v), w)
        };
        let (down, down_w) = col(&|f| ms(f.down_ns));
        let mut downs: Vec<f64> = r.iter().map(|f| ms(f.down_ns)).collect();
        let (p25, p75) = (quantile(&mut downs, 0.25), quantile(&mut downs, 0.75));
        let (gap, gap_w) = col(&|f| ms(f.rx_gap_ns));
        let (lost, lost_w) = col(&|f| f.lost as f64 * 1000.0 / f64::from(rate));
        let (txg, txg_w) = col(&|f| ms(f.tx_gap_ns));
        let (dup, dup_w) = col(&|f| f.dups as f64);
        println!(
            "{what}: down median {down:.1} ms (p25 {p25:.1}, p75 {p75:.1}), worst {down_w:.1} ms; receiver gap median {gap:.1} ms, worst {gap_w:.1} ms; \
             loss median {lost:.1} ms, worst {lost_w:.1} ms of traffic; duplicates median {dup:.0}, worst {dup_w:.0}; \
             sender gap median {txg:.1} ms, worst {txg_w:.1} ms"
        );
    }
    println!(
        "worker restarts: {} (expected {})",
        after.saturating_sub(before),
        o.reps
    );
}

fn actor_panics(o: &Opts, d: &Daemon, events: &Receiver<(String, u64)>) {
    println!(
        "\n# actor panic -> actor running again, {} repetitions",
        o.actor_reps.unwrap_or(o.reps)
    );
    let actors = [
        "config", "rib", "workers", "stats", "control", "loglevel", "netlink",
    ];
    let before = restarts(d);
    let mut times = Vec::new();
    println!("{:>4} {:>10} {:>10}", "rep", "actor", "ms");
    for i in 0..o.actor_reps.unwrap_or(o.reps) {
        let a = actors[i % actors.len()];
        // Spaced so that no actor exceeds its budget (5 failures in 10 s).
        std::thread::sleep(Duration::from_millis(600));
        while events.try_recv().is_ok() {}
        let t0 = now_ns();
        d.ctl_ok(&["fault", "panic-actor", a]);
        let want = format!("actor:{a}");
        let got = wait_for(Duration::from_secs(10), || {
            events.try_iter().find(|(n, _)| *n == want)
        });
        let Some((_, at)) = got else {
            println!("{:>4} {a:>10} no restart event within 10 s", i + 1);
            continue;
        };
        let ms = dms(at, t0);
        println!("{:>4} {a:>10} {ms:>10.2}", i + 1);
        times.push(ms);
    }
    let w = worst(&times);
    println!(
        "actor panic -> restarted: median {:.2} ms, worst {w:.2} ms",
        median(&mut times)
    );
    println!(
        "worker restarts during the actor drills: {} (expected 0)",
        restarts(d).saturating_sub(before)
    );
}
