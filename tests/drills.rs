//! Fault drills: each fault is injected into a real daemon while traffic
//! flows through it (`mcrd supervisor --enable-fault-injection`, `mcrctl
//! fault ...`). Every drill asserts that recovery happens and is visible
//! (`workers` / `status`), that forwarding resumes with a bounded gap (the
//! receiver's sequence numbers continue), and that `list` after recovery
//! equals `list` before. Gaps are printed so runs can be compared.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::daemon::{recv, send_cmd, Daemon, DaemonOpts, Recv};
use common::{require_root, veth, wait_for, Netns, Relay3};
use mcr::control::{RuleState, StatusReport, WorkerInfo};
use mcr::gen::RecvReport;
use mcr::rule::Rule;

const T: Duration = Duration::from_secs(30);

const CONFIG: &str = r#"{
  rules: [
    { name: "a", input: { interface: "r0", group: "239.1.1.1", port: 5000 },
      outputs: [{ interface: "r1", group: "239.2.2.1", port: 6000 }] },
    { name: "b", input: { interface: "r0", group: "239.1.1.2", port: 5000 },
      outputs: [{ interface: "r1", group: "239.2.2.2", port: 6000 }] },
  ],
  workers: { heartbeat_timeout: 1, idle_timeout: 2, restart_backoff_max: 0.5 },
}"#;

fn start(t: &Relay3, config: &str) -> Daemon {
    let d = Daemon::start(
        &t.relay,
        DaemonOpts {
            config: Some(config),
            fault_injection: true,
            ..Default::default()
        },
    );
    d.wait_active(T);
    d
}

/// The rules without their runtime state.
fn rules(d: &Daemon) -> Vec<Rule> {
    d.list().iter().map(|r| r.rule()).collect()
}

/// A stream through the relay: `rate` pps for `secs` seconds.
struct Flow {
    recv: Recv,
    send: Child,
    count: u64,
    rate: u32,
}

fn flow(src: &Netns, dst: &Netns, group_in: &str, group_out: &str, rate: u32, secs: f64) -> Flow {
    let count = (f64::from(rate) * secs) as u64;
    let recv = recv(
        dst,
        group_out,
        6000,
        Some("d0"),
        &["--expect", &count.to_string(), "--idle-timeout", "3"],
    );
    let send = send_cmd(src, group_in, 5000, "s0", count, rate, 200, &[])
        .spawn()
        .expect("start mcrgen send");
    Flow {
        recv,
        send,
        count,
        rate,
    }
}

impl Flow {
    fn finish(mut self) -> RecvReport {
        let _ = self.send.wait();
        let r = self.recv.finish(T);
        eprintln!(
            "flow: {} of {} arrived, lost {} ({:.1} ms at {} pps), longest gap {:.1} ms",
            r.unique,
            self.count,
            r.lost,
            r.lost as f64 * 1000.0 / f64::from(self.rate),
            self.rate,
            r.max_gap_us / 1000.0
        );
        assert_eq!(
            r.last_seq,
            Some(self.count - 1),
            "forwarding resumed to the end of the stream: {r:?}"
        );
        r
    }

    /// Finish, and assert the longest gap in arrivals stayed under `ms`.
    fn finish_within(self, ms: f64) -> RecvReport {
        let r = self.finish();
        assert!(
            r.max_gap_us < ms * 1000.0,
            "gap {:.0} ms (bound {ms} ms)",
            r.max_gap_us / 1000.0
        );
        r
    }
}

fn worker(d: &Daemon, iface: &str) -> Option<WorkerInfo> {
    d.workers().into_iter().find(|w| w.interface == iface)
}

/// Wait until the worker of `iface` has restarted `n` times and is running
/// with its table in sync again.
fn wait_recovered(d: &Daemon, iface: &str, n: u32) -> WorkerInfo {
    wait_for(T, || {
        worker(d, iface).filter(|w| {
            w.restarts >= n
                && w.state == "running"
                && !w.table_hash.is_empty()
                && w.table_hash == w.expected_hash
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "worker {iface} did not recover: {:?}\n{}",
            d.workers(),
            d.log_text()
        )
    })
}

#[test]
fn drill_worker_killed() {
    if !require_root("drill_worker_killed") {
        return;
    }
    let t = Relay3::new("dkill");
    let d = start(&t, CONFIG);
    let before = rules(&d);
    let f = flow(&t.src, &t.dst, "239.1.1.1", "239.2.2.1", 5000, 4.0);
    std::thread::sleep(Duration::from_millis(1200));
    let pid = worker(&d, "r0").and_then(|w| w.pid).unwrap();
    let killed = Instant::now();
    d.ctl_ok(&["fault", "kill-worker", "--interface", "r0"]);
    let w = wait_recovered(&d, "r0", 1);
    eprintln!("worker kill: running again after {:?}", killed.elapsed());
    assert_ne!(w.pid, Some(pid), "a new process");
    assert_eq!(w.restarts, 1);
    assert!(
        w.last_exit.as_deref().unwrap_or("").contains("SIGKILL"),
        "{w:?}"
    );
    f.finish_within(2000.0);
    assert_eq!(rules(&d), before);
}

#[test]
fn drill_worker_stalled() {
    if !require_root("drill_worker_stalled") {
        return;
    }
    let t = Relay3::new("dstall");
    let d = start(&t, CONFIG);
    let before = rules(&d);
    let f = flow(&t.src, &t.dst, "239.1.1.1", "239.2.2.1", 2000, 5.0);
    std::thread::sleep(Duration::from_millis(1000));
    d.ctl_ok(&["fault", "stall-worker", "--interface", "r0"]);
    let w = wait_recovered(&d, "r0", 1);
    assert!(
        w.last_exit.as_deref().unwrap_or("").contains("heartbeat"),
        "{w:?}"
    );
    // Heartbeat timeout (1 s) + one heartbeat interval + restart.
    f.finish_within(3000.0);
    assert_eq!(rules(&d), before);
}

#[test]
fn drill_table_corrupted() {
    if !require_root("drill_table_corrupted") {
        return;
    }
    let t = Relay3::new("dcorr");
    let d = start(&t, CONFIG);
    let before = rules(&d);
    // Traffic on both rules: whichever the worker loses must come back.
    let fa = flow(&t.src, &t.dst, "239.1.1.1", "239.2.2.1", 2000, 4.0);
    let fb = flow(&t.src, &t.dst, "239.1.1.2", "239.2.2.2", 2000, 4.0);
    std::thread::sleep(Duration::from_millis(1000));
    d.ctl_ok(&["fault", "corrupt-table", "--interface", "r0"]);
    let w = wait_for(T, || {
        worker(&d, "r0").filter(|w| w.resyncs >= 1 && w.table_hash == w.expected_hash)
    })
    .unwrap_or_else(|| panic!("no resync: {:?}", d.workers()));
    assert_eq!(w.restarts, 0, "a resync repairs it without a restart");
    assert_eq!(w.rules, 2);
    fa.finish_within(2000.0);
    fb.finish_within(2000.0);
    assert_eq!(rules(&d), before);
}

#[test]
fn drill_ipc_messages_dropped() {
    if !require_root("drill_ipc_messages_dropped") {
        return;
    }
    let t = Relay3::new("dipc");
    let d = start(&t, CONFIG);
    d.ctl_ok(&["fault", "drop-ipc", "1", "--interface", "r0"]);
    // The delta that installs this rule is lost on its way to the worker.
    d.ctl_ok(&[
        "add",
        "--input-interface",
        "r0",
        "--input-group",
        "239.1.1.3",
        "--input-port",
        "5000",
        "--outputs",
        "239.2.2.3:6000:r1",
        "--name",
        "c",
    ]);
    let added = Instant::now();
    let w = wait_for(T, || {
        worker(&d, "r0")
            .filter(|w| w.resyncs >= 1 && w.rules == 3 && w.table_hash == w.expected_hash)
    })
    .unwrap_or_else(|| panic!("the gap was not repaired: {:?}", d.workers()));
    eprintln!(
        "dropped delta repaired by a full sync after {:?}",
        added.elapsed()
    );
    assert_eq!(w.restarts, 0);
    let f = flow(&t.src, &t.dst, "239.1.1.3", "239.2.2.3", 2000, 1.0);
    let r = f.finish();
    assert_eq!(r.lost, 0, "the new rule forwards: {r:?}");
}

#[test]
fn drill_actor_panics_lose_nothing() {
    if !require_root("drill_actor_panics_lose_nothing") {
        return;
    }
    let t = Relay3::new("dactor");
    let d = start(&t, CONFIG);
    let before = rules(&d);
    let actors = [
        "config",
        "rib",
        "workers",
        "stats",
        "control",
        "loglevel",
        "netlink",
        "protocols",
    ];
    let f = flow(
        &t.src,
        &t.dst,
        "239.1.1.1",
        "239.2.2.1",
        3000,
        1.0 + actors.len() as f64 * 0.6,
    );
    std::thread::sleep(Duration::from_millis(500));
    for a in actors {
        let t0 = Instant::now();
        d.ctl_ok(&["fault", "panic-actor", a]);
        let st = wait_for(T, || {
            let s: StatusReport = d.ctl_json(&["status"]);
            s.actors
                .iter()
                .any(|x| x.name == format!("root/{a}") && x.restarts == 1 && x.state == "running")
                .then_some(s)
        })
        .unwrap_or_else(|| panic!("{a} not restarted"));
        eprintln!(
            "actor {a}: restarted, status answered after {:?}",
            t0.elapsed()
        );
        assert!(st.actors.iter().all(|x| x.state == "running"), "{st:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let r = f.finish();
    assert_eq!(
        r.lost, 0,
        "workers kept forwarding through every actor restart: {r:?}"
    );
    assert_eq!(rules(&d), before, "no rule lost");
    let w = worker(&d, "r0").unwrap();
    assert_eq!(
        w.restarts, 0,
        "the worker process was never restarted: {w:?}"
    );
    // Everything still works: a change goes through config, rib, workers.
    d.ctl_ok(&["remove", "--name", "b"]);
    assert_eq!(rules(&d).len(), 1);
    let f = flow(&t.src, &t.dst, "239.1.1.1", "239.2.2.1", 2000, 1.0);
    assert_eq!(f.finish().lost, 0);
}

#[test]
fn drill_link_crash_loop_escalates_to_the_worker_manager() {
    if !require_root("drill_link_crash_loop_escalates_to_the_worker_manager") {
        return;
    }
    let t = Relay3::new("dlinkb");
    let d = start(&t, CONFIG);
    let worker_pid = worker(&d, "r0").and_then(|w| w.pid).unwrap();
    // Six link failures in a row, each as soon as the link is back: one
    // past the WorkerManager's budget of five within 10 s.
    let mut panics = 0;
    let t0 = Instant::now();
    while panics < 6 && t0.elapsed() < Duration::from_secs(9) {
        if d.ctl(&["fault", "panic-actor", "worker/r0/0"])
            .status
            .success()
        {
            panics += 1;
        } else {
            // The link is between restarts.
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert_eq!(panics, 6, "the link kept coming back within the window");
    let st = wait_for(T, || {
        let s: StatusReport = d.ctl_json(&["status"]);
        s.actors
            .iter()
            .any(|x| x.name == "root/workers" && x.restarts == 1 && x.state == "running")
            .then_some(s)
    })
    .unwrap_or_else(|| panic!("the WorkerManager was not restarted:\n{}", d.log_text()));
    assert!(st.actors.iter().all(|x| x.state == "running"), "{st:?}");
    assert!(
        d.log_text().contains("failed 6 times"),
        "the escalation is logged:\n{}",
        d.log_text()
    );
    // The worker process was never touched, and forwards.
    let w = wait_for(T, || worker(&d, "r0").filter(|w| w.state == "running")).unwrap();
    assert_eq!(w.pid, Some(worker_pid), "{w:?}");
    assert_eq!(w.restarts, 0, "{w:?}");
    let f = flow(&t.src, &t.dst, "239.1.1.1", "239.2.2.1", 2000, 1.0);
    assert_eq!(f.finish().lost, 0);
}

#[test]
fn drill_restart_budget_exhausted_exits_non_zero() {
    if !require_root("drill_restart_budget_exhausted_exits_non_zero") {
        return;
    }
    let t = Relay3::new("dbudget");
    let mut d = start(&t, CONFIG);
    let worker_pid = worker(&d, "r0").and_then(|w| w.pid).unwrap();
    let mut exited = None;
    for i in 0..10 {
        let o = d.ctl(&["fault", "panic-actor", "stats"]);
        if !o.status.success() {
            // The actor may be between restarts; try again shortly.
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(st) = d.wait_exit(Duration::from_millis(if i < 5 { 150 } else { 1500 })) {
            exited = Some(st);
            break;
        }
    }
    let st = exited.unwrap_or_else(|| {
        panic!(
            "the daemon kept running past its restart budget:\n{}",
            d.log_text()
        )
    });
    assert!(!st.success(), "exit status must say failure: {st}");
    let log = d.log_text();
    assert!(
        log.contains("the stats actor failed"),
        "the log says which actor and why:\n{log}"
    );
    assert!(!d.socket.exists(), "socket removed on the way out");
    // Workers do not outlive the daemon.
    let gone = || {
        std::fs::read_to_string(format!("/proc/{worker_pid}/stat"))
            .map(|st| st.contains(") Z "))
            .unwrap_or(true)
    };
    assert!(
        wait_for(Duration::from_secs(5), || gone().then_some(())).is_some(),
        "worker {worker_pid} left behind"
    );
}

#[test]
fn drill_root_panic_exits_non_zero() {
    if !require_root("drill_root_panic_exits_non_zero") {
        return;
    }
    let t = Relay3::new("droot");
    let mut d = start(&t, CONFIG);
    d.ctl_ok(&["fault", "panic-actor", "root"]);
    let st = d
        .wait_exit(Duration::from_secs(10))
        .expect("the daemon exits");
    assert!(!st.success());
    assert!(
        d.log_text().contains("root supervisor failed"),
        "{}",
        d.log_text()
    );
}

#[test]
fn drill_control_socket_deleted() {
    if !require_root("drill_control_socket_deleted") {
        return;
    }
    let t = Relay3::new("dsock");
    let d = start(&t, CONFIG);
    let before = rules(&d);
    d.ctl_ok(&["fault", "delete-socket"]);
    let t0 = Instant::now();
    assert!(
        wait_for(Duration::from_secs(5), || d
            .ctl(&["ping"])
            .status
            .success()
            .then_some(()))
        .is_some(),
        "mcrctl works again"
    );
    eprintln!("control socket back after {:?}", t0.elapsed());
    assert_eq!(rules(&d), before);
    let f = flow(&t.src, &t.dst, "239.1.1.1", "239.2.2.1", 2000, 1.0);
    assert_eq!(f.finish().lost, 0);
}

#[test]
fn drill_worker_crash_loop_backs_off_and_spares_the_rest() {
    if !require_root("drill_worker_crash_loop_backs_off_and_spares_the_rest") {
        return;
    }
    let t = Relay3::new("dloop");
    // A second input interface with its own sender.
    let src2 = Netns::new("dloop-s2");
    veth(&src2, "s0", "10.10.9.1/24", &t.relay, "r5", "10.10.9.2/24");
    let cfg = CONFIG.replace(
        "  ],\n  workers",
        "    { name: \"c\", input: { interface: \"r5\", group: \"239.1.1.5\", port: 5000 },\n      outputs: [{ interface: \"r1\", group: \"239.2.2.5\", port: 6000 }] },\n  ],\n  workers",
    );
    let d = start(&t, &cfg);
    let before = rules(&d);
    let f = flow(&t.src, &t.dst, "239.1.1.1", "239.2.2.1", 2000, 4.0);
    std::thread::sleep(Duration::from_millis(500));
    d.ctl_ok(&["fault", "crash-loop", "6", "--interface", "r5"]);
    // The loop is visible: restarts climb, with backoff between them, and
    // the rule on r5 says why it is not active.
    let mut saw_backoff = false;
    let mut saw_reason = false;
    let t0 = Instant::now();
    while t0.elapsed() < T {
        let w = worker(&d, "r5");
        if w.as_ref().and_then(|w| w.backoff_ms).is_some_and(|b| b > 0) {
            saw_backoff = true;
        }
        let c = d
            .list()
            .into_iter()
            .find(|r| r.name.as_deref() == Some("c"))
            .unwrap();
        if c.state == RuleState::Starting
            && c.reason.as_deref().unwrap_or("").contains("crash loop")
        {
            saw_reason = true;
        }
        if w.is_some_and(|w| w.restarts >= 6 && w.state == "running") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let w = worker(&d, "r5").unwrap();
    assert!(
        w.restarts >= 6 && w.state == "running",
        "the loop ended and r5 runs: {w:?}"
    );
    assert!(saw_backoff, "backoff grew between restarts");
    assert!(saw_reason, "the rule showed the reason while it was down");
    // Meanwhile r0's worker never noticed.
    assert_eq!(worker(&d, "r0").unwrap().restarts, 0);
    assert_eq!(f.finish().lost, 0, "the rest of the daemon was unaffected");
    d.wait_active(T);
    let g = flow(&src2, &t.dst, "239.1.1.5", "239.2.2.5", 2000, 1.0);
    assert_eq!(g.finish().lost, 0, "r5 forwards after the loop");
    assert_eq!(rules(&d), before);
}

#[test]
fn test_dynamic_worker_cleanup_after_idle() {
    if !require_root("test_dynamic_worker_cleanup_after_idle") {
        return;
    }
    let t = Relay3::new("didle");
    let d = start(&t, CONFIG);
    assert!(worker(&d, "r0").is_some());
    d.ctl_ok(&["remove", "--name", "a"]);
    d.ctl_ok(&["remove", "--name", "b"]);
    let t0 = Instant::now();
    // Still there during the grace period (idle_timeout 2 s)...
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(worker(&d, "r0").map(|w| w.state), Some("idle".to_string()));
    // ...and gone after it.
    assert!(wait_for(Duration::from_secs(10), || worker(&d, "r0")
        .is_none()
        .then_some(()))
    .is_some());
    eprintln!("idle worker exited after {:?}", t0.elapsed());
    d.ctl_ok(&[
        "add",
        "--input-interface",
        "r0",
        "--input-group",
        "239.1.1.1",
        "--input-port",
        "5000",
        "--outputs",
        "239.2.2.1:6000:r1",
    ]);
    d.wait_active(T);
    assert_eq!(
        flow(&t.src, &t.dst, "239.1.1.1", "239.2.2.1", 2000, 1.0)
            .finish()
            .lost,
        0
    );
}

#[test]
fn drill_same_worker_killed_twenty_times() {
    if !require_root("drill_same_worker_killed_twenty_times") {
        return;
    }
    let t = Relay3::new("d20");
    let d = start(&t, CONFIG);
    let before = rules(&d);
    for i in 1..=20 {
        d.ctl_ok(&["fault", "kill-worker", "--interface", "r0"]);
        wait_recovered(&d, "r0", i);
    }
    let w = worker(&d, "r0").unwrap();
    assert_eq!(w.restarts, 20);
    assert_eq!(w.rules, 2);
    assert_eq!(rules(&d), before, "every rule intact");
    d.wait_active(T);
    assert_eq!(
        flow(&t.src, &t.dst, "239.1.1.2", "239.2.2.2", 2000, 1.0)
            .finish()
            .lost,
        0
    );
}

#[test]
fn faults_are_refused_without_the_flag() {
    if !require_root("faults_are_refused_without_the_flag") {
        return;
    }
    let t = Relay3::new("dnoflag");
    let d = Daemon::start(
        &t.relay,
        DaemonOpts {
            config: Some(CONFIG),
            ..Default::default()
        },
    );
    d.wait_active(T);
    let pid = worker(&d, "r0").and_then(|w| w.pid);
    let err = d.ctl_err(&["fault", "kill-worker"]);
    assert!(err.contains("--enable-fault-injection"), "{err}");
    assert_eq!(
        worker(&d, "r0").and_then(|w| w.pid),
        pid,
        "nothing happened"
    );
}

/// Issue 11: a log level set while the actors that push it to workers
/// restart still reaches the worker (each link compares what it last sent
/// with the running levels on every tick).
#[test]
fn drill_log_level_set_while_its_path_restarts_reaches_the_worker() {
    if !require_root("drill_log_level_set_while_its_path_restarts_reaches_the_worker") {
        return;
    }
    let t = Relay3::new("dlvl");
    let d = start(&t, CONFIG);
    wait_recovered(&d, "r0", 0);
    // The push goes LogLevel actor → WorkerManager → link; take both down
    // as the level changes.
    d.ctl_ok(&["fault", "panic-actor", "loglevel"]);
    d.ctl_ok(&["fault", "panic-actor", "workers"]);
    d.ctl_ok(&[
        "log-level",
        "set",
        "--facility",
        "Egress",
        "--level",
        "debug",
    ]);
    // A lost push is repaired on the link's next tick (every second); the
    // probe below only shows the level if it lands before the probe does.
    std::thread::sleep(Duration::from_millis(2500));
    // A new TTL makes the worker take a new egress socket, which it logs
    // at debug under Egress: only if it has the new level.
    d.ctl_ok(&[
        "add",
        "--input-interface",
        "r0",
        "--input-group",
        "239.1.1.9",
        "--input-port",
        "5000",
        "--outputs",
        "239.2.2.9:6009:r1:9",
    ]);
    let t0 = Instant::now();
    wait_for(Duration::from_secs(10), || {
        d.log_text()
            .lines()
            .any(|l| l.contains("Egress") && l.contains("on r1 (ttl 9,"))
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the worker never logged at the level set while its path restarted:\n{}",
            d.log_text()
        )
    });
    println!(
        "level reached the worker; its debug line after {:?}",
        t0.elapsed()
    );
}
