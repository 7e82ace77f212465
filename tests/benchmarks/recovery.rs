//! Recovery benchmark: how long forwarding stops when a worker is killed
//! at 50 000 pps, and how long an actor takes to be running again after a
//! panic, each over 20 repetitions, against a real daemon in namespaces.
//!
//! ```sh
//! cargo build --release --workspace
//! sudo env "PATH=$PATH" cargo bench --bench recovery -- [--reps N] [--rate PPS]
//! ```
//!
//! Worker kill: the receiver's longest silence between two datagrams
//! (`max_gap_us`, from kernel receive timestamps) and the datagrams lost.
//! Actor panic: from the moment `mcrctl fault panic-actor` returns to the
//! `actor-restarted` event the daemon publishes once the new actor runs.

#[path = "../common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::daemon::{recv, send_cmd, Daemon, DaemonOpts};
use common::{bin, wait_for, Relay3};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn main() {
    let mut reps = 20usize;
    let mut rate = 50_000u32;
    let mut a = std::env::args().skip(1);
    while let Some(x) = a.next() {
        match x.as_str() {
            "--reps" => reps = a.next().and_then(|v| v.parse().ok()).unwrap_or(reps),
            "--rate" => rate = a.next().and_then(|v| v.parse().ok()).unwrap_or(rate),
            "--bench" => {}
            _ => {
                eprintln!("recovery [--reps N] [--rate PPS]");
                std::process::exit(2);
            }
        }
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("recovery needs root (network namespaces)");
        std::process::exit(2);
    }
    for b in ["mcrd", "mcrgen", "mcrctl"] {
        bin(b);
    }
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

    println!("# worker kill at {rate} pps, 1024-byte datagrams, {reps} repetitions");
    println!(
        "{:>4} {:>12} {:>10} {:>10}",
        "rep", "max gap ms", "lost", "lost ms"
    );
    let mut gaps = Vec::new();
    let mut losts = Vec::new();
    for i in 0..reps {
        // A worker that ran 5 s is restarted at once (no crash-loop
        // backoff): give each repetition that.
        std::thread::sleep(Duration::from_millis(5200));
        let count = u64::from(rate) * 2;
        let r = recv(
            &t.dst,
            "239.2.2.2",
            6000,
            Some("d0"),
            &[
                "--expect",
                &count.to_string(),
                "--idle-timeout",
                "2",
                "--rcvbuf",
                "33554432",
            ],
        );
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
        .spawn()
        .expect("mcrgen send");
        std::thread::sleep(Duration::from_millis(700));
        d.ctl_ok(&["fault", "kill-worker"]);
        let _ = s.wait();
        let rep = r.finish(Duration::from_secs(30));
        let gap = rep.max_gap_us / 1000.0;
        let lost_ms = rep.lost as f64 * 1000.0 / f64::from(rate);
        println!("{:>4} {gap:>12.1} {:>10} {lost_ms:>10.1}", i + 1, rep.lost);
        gaps.push(gap);
        losts.push(lost_ms);
        let w = d.workers();
        assert_eq!(w[0].restarts as usize, i + 1, "{w:?}");
    }
    let worst_gap = gaps.iter().cloned().fold(0.0, f64::max);
    let worst_lost = losts.iter().cloned().fold(0.0, f64::max);
    println!(
        "worker kill: forwarding gap median {:.1} ms, worst {worst_gap:.1} ms; loss median {:.1} ms, worst {worst_lost:.1} ms of traffic",
        median(&mut gaps),
        median(&mut losts)
    );

    println!("\n# actor panic -> actor running again, {reps} repetitions");
    let actors = [
        "config", "rib", "workers", "stats", "control", "loglevel", "netlink",
    ];
    let mut sub = std::process::Command::new(bin("mcrctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["subscribe", "--events", "actors"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mcrctl subscribe");
    let (tx, rx) = std::sync::mpsc::channel::<(String, f64)>();
    let out = sub.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let v: serde_json::Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(_) => continue,
            };
            if v["event"] == "actor-restarted" {
                let _ = tx.send((
                    v["name"].as_str().unwrap_or("").to_string(),
                    v["time"].as_f64().unwrap_or(0.0),
                ));
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut times = Vec::new();
    println!("{:>4} {:>10} {:>10}", "rep", "actor", "ms");
    for i in 0..reps {
        let a = actors[i % actors.len()];
        // Spaced so that no actor exceeds its budget (5 failures in 10 s).
        std::thread::sleep(Duration::from_millis(600));
        let t0 = now_unix();
        d.ctl_ok(&["fault", "panic-actor", a]);
        let got = wait_for(Duration::from_secs(10), || {
            rx.try_recv().ok().filter(|(n, _)| n == a)
        });
        let ms = match got {
            Some((_, at)) => (at - t0) * 1000.0,
            None => {
                println!("{:>4} {a:>10} no restart event within 10 s", i + 1);
                continue;
            }
        };
        println!("{:>4} {a:>10} {ms:>10.2}", i + 1);
        times.push(ms);
    }
    let _ = sub.kill();
    let _ = sub.wait();
    let worst = times.iter().cloned().fold(0.0, f64::max);
    println!(
        "actor panic -> restarted: median {:.2} ms, worst {worst:.2} ms",
        median(&mut times)
    );
    let w = d.workers();
    println!(
        "worker restarts during the actor drills: {} (expected {reps}: only the kills)",
        w[0].restarts
    );
}
