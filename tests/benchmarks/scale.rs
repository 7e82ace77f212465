//! Scale benchmark: how mcrd behaves with many outputs, many input
//! interfaces and many rules (issue 13, item 5). Three scenarios, each
//! selectable by flag (all three without one):
//!
//! `--fanout`: one input stream relayed to N outputs (64), each output its
//! own veth pair into one receiver namespace:
//!
//! ```text
//!   [snd] s0 ── r0 [relay] r1..rN ──(N veth pairs)── d1..dN [rcv]
//! ```
//!
//! Per output, delivered % = datagrams that arrived on `dI` (from its
//! `rx_bytes` and `rx_packets`: mcrd's UDP GSO batches cross a veth as one
//! packet; IPv6 off so nothing else talks on those links) over datagrams
//! sent; it reports the minimum over outputs at each input rate
//! and the relay core's busy time per input packet. As in
//! `fair_forwarding`, r0's receive softirq is steered to the relay core
//! (RPS), the worker pinned there, and the receivers' softirq steered to
//! the other core, so the relay core holds mcrd's work and nothing else
//! of the harness.
//!
//! `--interfaces`: N input interfaces (256), one rule each, all rules
//! sending to one output link with a UDP port per rule. It times mcrd's
//! start with that config until every worker runs and every rule is
//! active, then the same from an empty daemon through one `config load`;
//! sends a burst on every input and checks each rule's port got it; and
//! reads each worker's and the supervisor's resident memory (VmRSS, and
//! Pss from smaps_rollup: shared pages split between the processes).
//!
//! `--rules`: N rules (10,000) on one input interface, each its own group
//! and output port. It loads them into a running daemon with one
//! `config load` (and times a start with them, and single `mcrctl add`s),
//! reads supervisor and worker memory before and after (memory per rule),
//! sends to a random sample of the groups and checks delivery, and times
//! `mcrctl list`.
//!
//! Prints its figures and writes them to
//! `tests/benchmarks/results/scale-DATE.txt` (`--out` to change). Needs
//! root:
//!
//! ```sh
//! cargo build --release --workspace --bins
//! cargo bench --bench scale --no-run
//! sudo cargo bench --bench scale -- --fanout
//! ```

#[path = "../common/mod.rs"]
mod common;
#[path = "harness.rs"]
mod harness;

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{bin, procfs, veth, Netns};
use harness::proc_cpu;
use probe::{
    core_busy, count_delivery, first_forward, ip_batch, link_groups, missing, restarts,
    send_bursts, start, tally, timed, wait_up, Lcg, Mem,
};

struct Opts {
    fanout: bool,
    interfaces: bool,
    rules: bool,
    outputs: usize,
    rates: Vec<u64>,
    size: usize,
    duration: f64,
    n_ifaces: usize,
    n_rules: usize,
    sample: usize,
    adds: usize,
    first_adds: usize,
    no_cold: bool,
    burst: usize,
    relay_cpu: usize,
    peer_cpu: usize,
    out: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "scale [--fanout] [--interfaces] [--rules] (none: all three)\n\
         \x20     [--outputs 64] [--rates 1000,5000,10000,20000] [--size 256] [--duration 2]\n\
         \x20     [--ifaces 256] [--nrules 10000] [--sample 100] [--adds 200] [--first-adds 10] [--no-cold] [--burst 20]\n\
         \x20     [--relay-cpu 1] [--peer-cpu 0] [--out FILE]"
    );
    std::process::exit(2)
}

fn parse_args() -> Opts {
    let mut o = Opts {
        fanout: false,
        interfaces: false,
        rules: false,
        outputs: 64,
        rates: vec![1_000, 5_000, 10_000, 20_000],
        size: 256,
        duration: 2.0,
        n_ifaces: 256,
        n_rules: 10_000,
        sample: 100,
        adds: 200,
        first_adds: 10,
        no_cold: false,
        burst: 20,
        relay_cpu: 1,
        peer_cpu: 0,
        out: None,
    };
    let mut a = std::env::args().skip(1);
    while let Some(x) = a.next() {
        let mut val = || a.next().unwrap_or_else(|| usage());
        let mut num = || -> usize { val().parse().unwrap_or_else(|_| usage()) };
        match x.as_str() {
            "--fanout" => o.fanout = true,
            "--interfaces" => o.interfaces = true,
            "--rules" => o.rules = true,
            "--outputs" => o.outputs = num().clamp(1, 250),
            "--size" => o.size = num(),
            "--ifaces" => o.n_ifaces = num().clamp(1, 250 * 250),
            "--nrules" => o.n_rules = num().clamp(1, 50_000),
            "--sample" => o.sample = num(),
            "--adds" => o.adds = num(),
            "--first-adds" => o.first_adds = num(),
            "--no-cold" => o.no_cold = true,
            "--burst" => o.burst = num().max(1),
            "--relay-cpu" => o.relay_cpu = num(),
            "--peer-cpu" => o.peer_cpu = num(),
            "--duration" => o.duration = val().parse().unwrap_or_else(|_| usage()),
            "--rates" => {
                o.rates = val().split(',').filter_map(|s| s.parse().ok()).collect();
            }
            "--out" => o.out = Some(val()),
            "--bench" => {}
            _ => usage(),
        }
    }
    if !(o.fanout || o.interfaces || o.rules) {
        (o.fanout, o.interfaces, o.rules) = (true, true, true);
    }
    o
}

/// Lines printed and kept for the results file.
static LOG: Mutex<String> = Mutex::new(String::new());

macro_rules! out {
    ($($t:tt)*) => {{
        let line = format!($($t)*);
        println!("{line}");
        let mut l = crate::LOG.lock().unwrap_or_else(|p| p.into_inner());
        l.push_str(&line);
        l.push('\n');
    }};
}

#[path = "scale_probe.rs"]
mod probe;

// ---------------------------------------------------------------- fan-out

fn fanout(o: &Opts) {
    out!(
        "\n## fan-out 1 → {}: one rule, payload {} B, {} s per point, relay core {}",
        o.outputs,
        o.size,
        o.duration,
        o.relay_cpu
    );
    let snd = Netns::new("scf-snd");
    let relay = Netns::new("scf-relay");
    let rcv = Netns::new("scf-rcv");
    // Nothing but the relayed frames on the output links: the per-output
    // count comes from the links' rx_packets and rx_bytes.
    for ns in [&relay, &rcv] {
        ns.set_sysctl("net.ipv6.conf.all.disable_ipv6", "1");
        ns.set_sysctl("net.ipv6.conf.default.disable_ipv6", "1");
        harness::open_receiver(ns);
    }
    veth(&snd, "s0", "10.30.0.1/24", &relay, "r0", "10.30.0.2/24");
    let mut outs = Vec::new();
    for i in 1..=o.outputs {
        veth(
            &relay,
            &format!("r{i}"),
            &format!("10.31.{i}.1/24"),
            &rcv,
            &format!("d{i}"),
            &format!("10.31.{i}.2/24"),
        );
        outs.push(format!(
            "{{ interface: \"r{i}\", group: \"239.2.0.1\", port: 6000, ttl: 8 }}"
        ));
    }
    relay.run(&format!(
        "echo {:x} > /sys/class/net/r0/queues/rx-0/rps_cpus",
        1u64 << o.relay_cpu
    ));
    rcv.run(&format!(
        "for i in $(seq 1 {}); do echo {:x} > /sys/class/net/d$i/queues/rx-0/rps_cpus; done",
        o.outputs,
        1u64 << o.peer_cpu
    ));
    let config = format!(
        "{{ pinning: {{ r0: [{}] }}, rules: [ {{ name: \"fan\", input: {{ interface: \"r0\", group: \"239.1.1.1\", port: 5000 }}, outputs: [ {} ] }} ] }}",
        o.relay_cpu,
        outs.join(", ")
    );
    let d = start(&relay, Some(&config));
    if wait_up(&d, 1, 1, Duration::from_secs(60)).is_none() {
        out!("fan-out: the rule did not become active");
        return;
    }
    // mcrd sends a batch to a veth output as one UDP GSO packet, and a veth
    // counts it in rx_packets once, however many datagrams it carries; so
    // datagrams are counted from rx_bytes, where a GSO packet counts its
    // Ethernet, IP and UDP headers once and each datagram's payload:
    // datagrams = (bytes - packets × 42) / payload.
    const HDRS: u64 = 14 + 20 + 8;
    let payload = (o.size as u64).max(1);
    let rx_all = || -> Vec<u64> {
        let o = rcv.run(&format!(
            "for i in $(seq 1 {}); do echo $(cat /sys/class/net/d$i/statistics/rx_packets /sys/class/net/d$i/statistics/rx_bytes); done",
            o.outputs
        ));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| {
                let mut f = l.split_whitespace().map(|x| x.parse::<u64>().unwrap_or(0));
                let (pkts, bytes) = (f.next().unwrap_or(0), f.next().unwrap_or(0));
                bytes.saturating_sub(pkts * HDRS) / payload
            })
            .collect()
    };
    let mcrgen = || {
        let mut c = snd.cmd("taskset");
        c.args(["-c", &o.peer_cpu.to_string()]).arg(bin("mcrgen"));
        c
    };
    // Warm-up: every output's egress socket open and its neighbour
    // resolved before the first measured point.
    harness::send(mcrgen(), "239.1.1.1", 5000, o.size, 1000, 1.0, 200);
    std::thread::sleep(Duration::from_millis(500));
    out!(
        "{:>8} {:>9} {:>9} {:>12} {:>9} {:>9} {:>9} {:>10} {:>10}   worst outputs",
        "target",
        "offered",
        "sent",
        "out pps",
        "min %",
        "mean %",
        "≥99.9 %",
        "core µs/p",
        "mcrd µs/p"
    );
    for &rate in &o.rates {
        let pids: Vec<u32> = std::iter::once(d.pid())
            .chain(d.workers().into_iter().filter_map(|w| w.pid))
            .collect();
        let before = rx_all();
        let cpu0: f64 = pids.iter().map(|p| proc_cpu(*p)).sum();
        let core0 = core_busy(o.relay_cpu);
        let sent = harness::send(mcrgen(), "239.1.1.1", 5000, o.size, rate, o.duration, 200);
        let core1 = core_busy(o.relay_cpu);
        let cpu1: f64 = pids.iter().map(|p| proc_cpu(*p)).sum();
        std::thread::sleep(Duration::from_millis(300));
        let after = rx_all();
        let n = sent.sent.max(1) as f64;
        let pct: Vec<f64> = after
            .iter()
            .zip(&before)
            .map(|(a, b)| 100.0 * a.saturating_sub(*b) as f64 / n)
            .collect();
        let min = pct.iter().copied().fold(f64::INFINITY, f64::min);
        let mean = pct.iter().sum::<f64>() / pct.len().max(1) as f64;
        let good = pct.iter().filter(|p| **p >= 99.9).count();
        let mut worst: Vec<(usize, f64)> = pct.iter().copied().enumerate().collect();
        worst.sort_by(|a, b| a.1.total_cmp(&b.1));
        let worst: Vec<String> = worst
            .iter()
            .take(3)
            .map(|(i, p)| format!("d{}={p:.2}", i + 1))
            .collect();
        out!(
            "{:>8} {:>9.0} {:>9} {:>12.0} {:>9.3} {:>9.3} {:>6}/{:<2} {:>10.2} {:>10.2}   {}",
            rate,
            sent.achieved_pps,
            sent.sent,
            sent.achieved_pps * o.outputs as f64,
            min,
            mean,
            good,
            pct.len(),
            1e6 * (core1 - core0) / n,
            1e6 * (cpu1 - cpu0) / n,
            worst.join(" ")
        );
    }
    Mem::of(&d).print("fan-out memory");
}

// ------------------------------------------------------- many interfaces

fn interfaces(o: &Opts) {
    let n = o.n_ifaces;
    out!("\n## {n} input interfaces, one rule each, one output link (a UDP port per rule)");
    let snd = Netns::new("sci-snd");
    let relay = Netns::new("sci-relay");
    let rcv = Netns::new("sci-rcv");
    for ns in [&relay, &rcv] {
        harness::open_receiver(ns);
    }
    let (_, t) = timed(|| {
        // One `ip -batch` per namespace: 256 `ip` runs each would take
        // longer than what is measured.
        let mut a = String::new();
        let mut b = String::new();
        for i in 0..n {
            let (x, y) = (64 + i / 250, i % 250);
            a.push_str(&format!(
                "link add s{i} type veth peer name r{i} netns {}\naddr add 10.{x}.{y}.1/24 dev s{i}\nlink set s{i} up\n",
                relay.name
            ));
            b.push_str(&format!(
                "addr add 10.{x}.{y}.2/24 dev r{i}\nlink set r{i} up\n"
            ));
        }
        ip_batch(&snd, &a);
        ip_batch(&relay, &b);
    });
    out!(
        "namespaces: {n} veth pairs made in {:.1} s",
        t.as_secs_f64()
    );
    veth(&relay, "o0", "10.40.0.1/24", &rcv, "d0", "10.40.0.2/24");
    let rules: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{{ name: \"in{i}\", input: {{ interface: \"r{i}\", group: \"239.5.0.1\", port: 5000 }}, outputs: [ {{ interface: \"o0\", group: \"239.2.0.1\", port: {}, ttl: 8 }} ] }}",
                10_000 + i
            )
        })
        .collect();
    let config = format!("{{ rules: [ {} ] }}", rules.join(",\n"));
    let timeout = Duration::from_secs(600);

    // Start with the config.
    let t0 = Instant::now();
    let mut d = start(&relay, Some(&config));
    let answered = t0.elapsed();
    let up = wait_up(&d, n, n, timeout).map(|t| t + answered);
    out!(
        "start with {n} rules: control socket answered after {:.2} s; all {n} workers running and every rule active after {}",
        answered.as_secs_f64(),
        up.map_or("— (timed out)".into(), |t| format!("{:.2} s", t.as_secs_f64()))
    );
    out!("workers: {}", restarts(&d));
    let sup_fds = procfs::fd_count(d.pid());
    out!(
        "supervisor: {sup_fds} open descriptors, {} threads",
        procfs::threads(d.pid())
    );
    Mem::of(&d).print("memory");

    // Every input forwards.
    let targets: Vec<(Ipv4Addr, Ipv4Addr)> = (0..n)
        .map(|i| {
            let (x, y) = (64 + i / 250, i % 250);
            (
                Ipv4Addr::new(10, x as u8, y as u8, 1),
                Ipv4Addr::new(239, 5, 0, 1),
            )
        })
        .collect();
    let ports: Vec<u16> = (0..n).map(|i| (10_000 + i) as u16).collect();
    let (counts, t) = timed(|| {
        count_delivery(
            &rcv,
            Ipv4Addr::new(239, 2, 0, 1),
            Ipv4Addr::new(10, 40, 0, 2),
            &ports,
            || send_bursts(&snd, &targets, 5000, o.burst),
        )
    });
    let (all, some, none) = tally(&counts, o.burst);
    out!(
        "forwarding: a burst of {} on each of {n} inputs ({:.1} s): {all} rules delivered all, {some} part, {none} nothing{}",
        o.burst,
        t.as_secs_f64(),
        missing(&counts, "in")
    );
    d.stop();
    drop(d);

    // From an empty daemon, one `config load`.
    let d = start(&relay, None);
    let file = d.scratch.write("scale.json5", &config);
    let t0 = Instant::now();
    let r = d.ctl(&["config", "load", file.to_str().unwrap_or_default()]);
    let loaded = t0.elapsed();
    if !r.status.success() {
        out!("config load failed: {}", String::from_utf8_lossy(&r.stderr));
    }
    let up = wait_up(&d, n, n, timeout).map(|t| t + loaded);
    out!(
        "config load of {n} rules into an empty daemon: mcrctl returned after {:.2} s; all workers running and every rule active after {}",
        loaded.as_secs_f64(),
        up.map_or("— (timed out)".into(), |t| format!("{:.2} s", t.as_secs_f64()))
    );
    out!("workers: {}", restarts(&d));
}

// ------------------------------------------------- many rules, one input

/// The input group of rule `i` of the many-rules scenario.
fn rule_group(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        239,
        10 + (i / 62_500) as u8,
        (i / 250 % 250) as u8,
        (i % 250 + 1) as u8,
    )
}

fn rules_config(range: std::ops::Range<usize>) -> String {
    let rules: Vec<String> = range
        .map(|i| {
            format!(
                "{{ name: \"g{i}\", input: {{ interface: \"r0\", group: \"{}\", port: 5000 }}, outputs: [ {{ interface: \"r1\", group: \"239.2.0.1\", port: {}, ttl: 8 }} ] }}",
                rule_group(i),
                10_000 + i % 50_000
            )
        })
        .collect();
    format!("{{ rules: [ {} ] }}", rules.join(",\n"))
}

fn many_rules(o: &Opts) {
    let n = o.n_rules;
    out!("\n## {n} rules on one input interface (a group and an output port per rule)");
    let t = harness::Chain::new("scr", 50);
    let timeout = Duration::from_secs(300);

    // Baseline: one rule, so that the worker exists.
    let mut d = start(&t.relay, Some(&rules_config(0..1)));
    if wait_up(&d, 1, 1, Duration::from_secs(60)).is_none() {
        out!("many rules: the first rule did not become active");
        return;
    }
    std::thread::sleep(Duration::from_secs(1));
    let m0 = Mem::of(&d);
    m0.print("1 rule");
    // A config sent over the control socket may be as large as a startup
    // file (16 MiB; 10,000 rules are ~1.5 MB); past that only the startup
    // file and `config reload` remain (and the daemon refuses it too).
    let text = rules_config(0..n);
    let (how, args) = match &d.config {
        Some(f) if text.len() > mcr::config::MAX_CONFIG_BYTES => {
            let _ = std::fs::write(f, &text);
            ("config reload", vec!["config".to_string(), "reload".into()])
        }
        _ => {
            let f = d.scratch.write("rules.json5", &text);
            let f = f.to_string_lossy().into_owned();
            ("config load", vec!["config".into(), "load".into(), f])
        }
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (r, loaded) = timed(|| d.ctl(&args));
    if !r.status.success() {
        out!("{how} failed: {}", String::from_utf8_lossy(&r.stderr));
        return;
    }
    let up = wait_up(&d, 1, n, timeout).map(|t| t + loaded);
    out!(
        "{how} of {n} rules ({} bytes) into a running daemon: mcrctl returned after {:.2} s; every rule active after {}",
        text.len(),
        loaded.as_secs_f64(),
        up.map_or("— (timed out)".into(), |t| format!("{:.2} s", t.as_secs_f64()))
    );
    std::thread::sleep(Duration::from_secs(2));
    let m1 = Mem::of(&d);
    m1.print(&format!("{n} rules"));
    let per = |a: u64, b: u64| (a as f64 - b as f64) * 1024.0 / (n - 1).max(1) as f64;
    let (w0, w1) = (m0.worker_sum(), m1.worker_sum());
    out!(
        "memory per rule: supervisor {:.0} B RSS ({:.0} B Pss), worker {:.0} B RSS ({:.0} B Pss)",
        per(m1.sup.0, m0.sup.0),
        per(m1.sup.1, m0.sup.1),
        per(w1.0, w0.0),
        per(w1.1, w0.1)
    );
    out!(
        "supervisor: {} open descriptors, {} threads; link-layer multicast memberships on r0: {}",
        procfs::fd_count(d.pid()),
        procfs::threads(d.pid()),
        link_groups(&t.relay, "r0")
    );

    // `mcrctl list`, table and JSON.
    for args in [&["list"][..], &["--json", "list"][..]] {
        let (r, el) = timed(|| d.ctl(args));
        out!(
            "mcrctl {}: {:.3} s, {} bytes, ok {}",
            args.join(" "),
            el.as_secs_f64(),
            r.stdout.len(),
            r.status.success()
        );
    }

    // A random sample forwards.
    let mut rng = Lcg(0x5ca1e);
    let mut sample: Vec<usize> = (0..o.sample.min(n)).map(|_| rng.below(n)).collect();
    sample.sort_unstable();
    sample.dedup();
    let targets: Vec<(Ipv4Addr, Ipv4Addr)> = sample
        .iter()
        .map(|&i| (Ipv4Addr::new(10, 50, 1, 1), rule_group(i)))
        .collect();
    let ports: Vec<u16> = sample
        .iter()
        .map(|&i| (10_000 + i % 50_000) as u16)
        .collect();
    let counts = count_delivery(
        &t.rcv,
        Ipv4Addr::new(239, 2, 0, 1),
        Ipv4Addr::new(10, 50, 2, 2),
        &ports,
        || send_bursts(&t.snd, &targets, 5000, o.burst),
    );
    let (all, some, none) = tally(&counts, o.burst);
    let not: Vec<String> = sample
        .iter()
        .zip(&counts)
        .filter(|(_, c)| **c == 0)
        .take(8)
        .map(|(i, _)| format!("g{i}"))
        .collect();
    out!(
        "forwarding: a burst of {} to each of {} random rules' groups: {all} delivered all, {some} part, {none} nothing{}",
        o.burst,
        sample.len(),
        if not.is_empty() { String::new() } else { format!(", nothing for: {}", not.join(" ")) }
    );

    // Single adds on top, each its own mcrctl run (the way a script adds),
    // then the same rules removed one by one.
    if o.adds > 0 {
        let (failed, el) = timed(|| {
            (n..n + o.adds)
                .filter(|&i| {
                    let g = rule_group(i).to_string();
                    let out = format!("239.2.0.1:{}:r1:8", 10_000 + i % 50_000);
                    let name = format!("g{i}");
                    let r = d.ctl(&[
                        "add",
                        "--name",
                        &name,
                        "--input-interface",
                        "r0",
                        "--input-group",
                        &g,
                        "--input-port",
                        "5000",
                        "--outputs",
                        &out,
                    ]);
                    !r.status.success()
                })
                .count()
        });
        out!(
            "mcrctl add × {} on top of {n} rules: {:.2} s, {:.1} ms per add, {failed} failed",
            o.adds,
            el.as_secs_f64(),
            1e3 * el.as_secs_f64() / o.adds as f64
        );
        let up = wait_up(&d, 1, n + o.adds, Duration::from_secs(120));
        out!(
            "  all {} rules active {}",
            n + o.adds,
            up.map_or("— timed out".into(), |t| format!(
                "{:.2} s after the last add",
                t.as_secs_f64()
            ))
        );
        let (failed, el) = timed(|| {
            (n..n + o.adds)
                .filter(|&i| {
                    let name = format!("g{i}");
                    !d.ctl(&["remove", "--name", &name]).status.success()
                })
                .count()
        });
        out!(
            "mcrctl remove × {} of those: {:.2} s, {:.1} ms per remove, {failed} failed",
            o.adds,
            el.as_secs_f64(),
            1e3 * el.as_secs_f64() / o.adds as f64
        );
    }
    // Single adds, each alone: how long until its rule forwards (the
    // compile, the table sync to the worker and the input's membership
    // are what it waits for).
    if wait_up(&d, 1, n, Duration::from_secs(60)).is_some() {
        let mut times = Vec::new();
        for k in 0..o.first_adds {
            let i = n + 1 + k;
            let g = rule_group(i);
            let port = (10_000 + i % 50_000) as u16;
            let mut ok = true;
            let t = first_forward(
                &t.snd,
                &t.rcv,
                (Ipv4Addr::new(10, 50, 1, 1), g, 5000),
                (
                    Ipv4Addr::new(239, 2, 0, 1),
                    Ipv4Addr::new(10, 50, 2, 2),
                    port,
                ),
                Duration::from_secs(30),
                || {
                    let (gs, out) = (g.to_string(), format!("239.2.0.1:{port}:r1:8"));
                    let r = d.ctl(&[
                        "add",
                        "--name",
                        &format!("g{i}"),
                        "--input-interface",
                        "r0",
                        "--input-group",
                        &gs,
                        "--input-port",
                        "5000",
                        "--outputs",
                        &out,
                    ]);
                    ok = r.status.success();
                },
            );
            out!(
                "one add on top of {} rules: ok {ok}, first datagram forwarded {}",
                n + k,
                t.map_or("— never (30 s)".into(), |t| format!(
                    "{:.1} ms after mcrctl started",
                    t.as_secs_f64() * 1e3
                ))
            );
            times.extend(t);
        }
        times.sort();
        if !times.is_empty() {
            out!(
                    "  add → first forwarded datagram at {n} rules: median {:.1} ms, min {:.1}, max {:.1} ({} adds)",
                    times[times.len() / 2].as_secs_f64() * 1e3,
                    times[0].as_secs_f64() * 1e3,
                    times[times.len() - 1].as_secs_f64() * 1e3,
                    times.len()
                );
        }
        for k in 0..o.first_adds {
            let _ = d.ctl(&["remove", "--name", &format!("g{}", n + 1 + k)]);
        }
    }
    if wait_up(&d, 1, n, Duration::from_secs(60)).is_some() {
        let g = rule_group(n).to_string();
        let t0 = Instant::now();
        let r = d.ctl(&[
            "add",
            "--input-interface",
            "r0",
            "--input-group",
            &g,
            "--input-port",
            "5000",
            "--outputs",
            "239.2.0.1:9999:r1:8",
        ]);
        let up = wait_up(&d, 1, n + 1, Duration::from_secs(60));
        out!(
            "one add on top of {n} rules: ok {}, its rule active after {}",
            r.status.success(),
            up.map_or("— timed out".into(), |_| format!(
                "{:.2} s",
                t0.elapsed().as_secs_f64()
            ))
        );
    }
    d.stop();
    drop(d);
    if o.no_cold {
        return;
    }

    // A cold start with all of them.
    let cfg = rules_config(0..n);
    let t0 = Instant::now();
    let d = start(&t.relay, Some(&cfg));
    let answered = t0.elapsed();
    let up = wait_up(&d, 1, n, timeout).map(|t| t + answered);
    out!(
        "start with {n} rules: control socket answered after {:.2} s; every rule active after {}",
        answered.as_secs_f64(),
        up.map_or("— (timed out)".into(), |t| format!(
            "{:.2} s",
            t.as_secs_f64()
        ))
    );
}

fn main() {
    let o = parse_args();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("scale needs root (network namespaces)");
        std::process::exit(2);
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let exe = bin("mcrd");
    out!(
        "# scale: kernel {}, {} CPUs, mcrd {}",
        kernel.trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        exe.display()
    );
    if o.fanout {
        fanout(&o);
    }
    if o.interfaces {
        interfaces(&o);
    }
    if o.rules {
        many_rules(&o);
    }
    let date = Command::new("date")
        .arg("+%F")
        .output()
        .map(|d| String::from_utf8_lossy(&d.stdout).trim().to_string())
        .unwrap_or_default();
    let path = o.out.clone().unwrap_or_else(|| {
        format!(
            "{}/tests/benchmarks/results/scale-{date}.txt",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let text = LOG.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match std::fs::write(&path, text) {
        Ok(()) => println!("\n# written to {path}"),
        Err(e) => eprintln!("could not write {path}: {e}"),
    }
}
