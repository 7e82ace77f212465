//! The receive path chosen in the config (`workers.rx_path`,
//! `rx_ring_mb`, `rx_block_ms`): a worker started with `recv` reads frame
//! by frame and says so in its log, one started after a reload to `ring`
//! maps a ring, both relay every datagram, and a wrong value is refused by
//! `config check` with the key named. A restarted worker keeps its
//! predecessor's input socket only while the receive settings are the
//! same: after a reload that changes the ring's timeout the new worker's
//! ring has the new one, and after one back to `recv` the ring is gone and
//! frames reach `recvmsg` (a leftover ring would take them all).

mod common;

use std::time::{Duration, Instant};

use common::daemon::{Daemon, DaemonOpts};
use common::{require_root, wait_for, Relay3};

const RULE: &str =
    "rules: [ { name: \"r\", input: { interface: \"r0\", group: \"239.1.1.1\", port: 5000 }, \
     outputs: [ { interface: \"r1\", group: \"239.2.2.2\", port: 6000 } ] } ]";

const RECV_LINE: &str = "receiving frame by frame on r0 (rx_path recv)";
const RING_LINE: &str = "receive ring of";
const TAKEN_OVER: &str = "took over the receive ring";

/// The r0 worker's pid, once it runs.
fn worker_pid(d: &Daemon) -> Option<u32> {
    let ws: Vec<mcr::control::WorkerInfo> =
        serde_json::from_str(&d.ctl_ok(&["--json", "workers"])).ok()?;
    ws.into_iter()
        .find(|w| w.interface == "r0" && w.state == "running")
        .and_then(|w| w.pid)
}

/// Kill the r0 worker and wait until its successor runs and rules are
/// active again.
fn restart_worker(d: &Daemon) {
    let old = worker_pid(d).expect("a running r0 worker");
    d.ctl_ok(&["fault", "kill-worker", "--interface", "r0"]);
    let t0 = Instant::now();
    wait_for(Duration::from_secs(20), || {
        worker_pid(d).filter(|p| *p != old).map(|_| ())
    })
    .unwrap_or_else(|| panic!("no new worker after {:?}:\n{}", t0.elapsed(), d.log_text()));
    d.wait_active(Duration::from_secs(20));
}

/// Replace the config file with `workers` and `RULE`, and reload.
fn reload(d: &Daemon, workers: &str) {
    let path = d.config.clone().expect("started with a config file");
    std::fs::write(&path, format!("{{ workers: {{ {workers} }}, {RULE} }}")).unwrap();
    d.ctl_ok(&["config", "reload"]);
}

/// The daemon's environment would override the config (A/B benchmarks):
/// blank values count as unset, so the test never depends on the caller's.
const NO_RX_OVERRIDES: [(&str, &str); 3] = [
    ("MCR_RX_PATH", ""),
    ("MCR_RX_RING_MB", ""),
    ("MCR_RX_BLOCK_MS", ""),
];

#[test]
fn rx_path_from_the_config_reaches_the_worker_and_applies_to_workers_started_after_a_reload() {
    if !require_root("rx_path_from_the_config_reaches_the_worker") {
        return;
    }
    let t = Relay3::new("rxpath");
    let config = format!("{{ workers: {{ rx_path: \"recv\" }}, {RULE} }}");
    let d = Daemon::start(
        &t.relay,
        DaemonOpts {
            config: Some(&config),
            fault_injection: true,
            env: NO_RX_OVERRIDES.to_vec(),
            ..Default::default()
        },
    );
    d.wait_active(Duration::from_secs(20));
    t.relay_all(300, 1000, 200);
    let log = d.log_text();
    assert!(log.contains(RECV_LINE), "no `{RECV_LINE}` in:\n{log}");
    assert!(!log.contains(RING_LINE), "a ring was mapped:\n{log}");

    // Reload with the ring: the running worker keeps its path, the next
    // one started maps a ring of the configured size and timeout.
    reload(&d, "rx_path: \"ring\", rx_ring_mb: 4, rx_block_ms: 2");
    let shown = d.ctl_ok(&["config", "show"]);
    assert!(
        shown.contains("rx_ring_mb: 4") && shown.contains("rx_block_ms: 2"),
        "{shown}"
    );
    assert!(
        !d.log_text().contains(RING_LINE),
        "reload alone restarts no worker"
    );
    restart_worker(&d);
    t.relay_all(300, 1000, 200);
    let log = d.log_text();
    let line = log
        .lines()
        .find(|l| l.contains(RING_LINE))
        .unwrap_or_else(|| panic!("no `{RING_LINE}` after the restart:\n{log}"));
    assert!(
        line.contains("(2 ms)"),
        "the configured block timeout: {line}"
    );

    // Same ring size, another timeout: the kernel would refuse a second
    // ring on the old socket and keep the old timeout, so the new worker
    // must get a fresh socket and its ring the new timeout.
    reload(&d, "rx_path: \"ring\", rx_ring_mb: 4, rx_block_ms: 5");
    restart_worker(&d);
    t.relay_all(300, 1000, 200);
    let log = d.log_text();
    let rings: Vec<&str> = log.lines().filter(|l| l.contains(RING_LINE)).collect();
    assert_eq!(rings.len(), 2, "one ring per ring worker:\n{log}");
    // A ring taken over from the old socket would keep the old timeout.
    assert!(!log.contains(TAKEN_OVER), "an old ring was reused:\n{log}");
    assert!(rings[1].contains("(5 ms)"), "the new timeout: {}", rings[1]);
    assert_eq!(
        rings[0].split(" of ").nth(1),
        rings[1].split(" of ").nth(1),
        "same size"
    );

    // Back to recv: the ring must not stay on the socket the worker reads,
    // or the interface forwards nothing while its rules show active.
    reload(&d, "rx_path: \"recv\"");
    restart_worker(&d);
    t.relay_all(300, 1000, 200);
    let log = d.log_text();
    assert_eq!(
        log.matches(RECV_LINE).count(),
        2,
        "the new worker reads frame by frame:\n{log}"
    );
    assert_eq!(log.matches(RING_LINE).count(), 2, "no new ring:\n{log}");
    let shown = d.ctl_ok(&["config", "show"]);

    // A wrong value: refused with the key, the running config untouched.
    let bad = d
        .scratch
        .write("bad.json5", "{ workers: { rx_path: \"fast\" } }");
    let err = d.ctl_err(&["config", "check", bad.to_str().unwrap()]);
    assert!(
        err.contains("workers.rx_path") && err.contains("\"recv\""),
        "{err}"
    );
    let out = d.ctl(&["config", "load", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert_eq!(d.ctl_ok(&["config", "show"]), shown);
}
