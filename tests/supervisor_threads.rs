//! The supervisor's threads do not grow with its inputs: each worker's
//! IPC reader, exit watcher and log relay, and each input interface's IGMP
//! host and its packet reader, are tasks on the supervisor's runtime. With
//! threads for them, 256 inputs meant about 1,000 threads in one process;
//! an operator sees the count in `ps` and in /proc. And a worker killed
//! from outside is still seen, described ("killed by SIGKILL"), restarted,
//! and its log lines still reach the supervisor's log file.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::daemon::{Daemon, DaemonOpts, Scratch};
use common::{require_root, veth, wait_for, Netns};
use mcr::control::WorkerInfo;

const T: Duration = Duration::from_secs(30);
const INPUTS: usize = 16;

/// Threads of `pid` by name (/proc/PID/task/*/comm).
fn thread_names(pid: u32) -> BTreeMap<String, usize> {
    let mut names = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return names;
    };
    for t in dir.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        *names.entry(comm.trim().to_string()).or_insert(0) += 1;
    }
    names
}

fn threads(pid: u32) -> (usize, BTreeMap<String, usize>) {
    let names = thread_names(pid);
    (names.values().sum(), names)
}

fn config(inputs: usize) -> String {
    let rules: Vec<String> = (0..inputs)
        .map(|i| {
            format!(
                "{{ name: \"in{i}\", input: {{ interface: \"r{i}\", group: \"239.5.0.1\", port: 5000 }}, outputs: [ {{ interface: \"o0\", group: \"239.2.0.1\", port: {} }} ] }}",
                6000 + i
            )
        })
        .collect();
    format!("{{ rules: [ {} ] }}", rules.join(",\n"))
}

fn running(d: &Daemon, n: usize) -> Option<Vec<WorkerInfo>> {
    let w = d.workers();
    (w.len() == n && w.iter().all(|w| w.state == "running" && w.pid.is_some())).then_some(w)
}

fn load(d: &Daemon, text: &str) {
    let file = d.scratch.write("threads.json5", text);
    d.ctl_ok(&["config", "load", file.to_str().unwrap_or_default()]);
}

#[test]
fn supervisor_threads_do_not_grow_with_workers_and_a_killed_worker_restarts() {
    if !require_root("supervisor_threads_do_not_grow_with_workers_and_a_killed_worker_restarts") {
        return;
    }
    let snd = Netns::new("thr-s");
    let relay = Netns::new("thr-r");
    let rcv = Netns::new("thr-d");
    for i in 0..INPUTS {
        veth(
            &snd,
            &format!("s{i}"),
            &format!("10.60.{i}.1/24"),
            &relay,
            &format!("r{i}"),
            &format!("10.60.{i}.2/24"),
        );
    }
    veth(&relay, "o0", "10.61.0.1/24", &rcv, "d0", "10.61.0.2/24");
    let dir = Scratch::new("threads-log");
    let log = dir.path("mcrd.log");
    let log_s = log.to_str().expect("utf-8").to_string();
    let one = config(1);
    // With a log file, so every worker's stderr is relayed as well.
    let d = Daemon::start(
        &relay,
        DaemonOpts {
            config: Some(&one),
            fault_injection: true,
            args: vec!["--log-file", &log_s],
            ..Default::default()
        },
    );
    d.wait_active(T);
    wait_for(T, || running(&d, 1)).expect("one worker running");
    // The same config loaded again, so that both counts include whatever
    // a `config load` leaves behind (e.g. the runtime's blocking pool).
    load(&d, &one);
    std::thread::sleep(Duration::from_millis(500));
    let (with_one, names_one) = threads(d.pid());

    load(&d, &config(INPUTS));
    d.wait_active(T);
    let workers = wait_for(T, || running(&d, INPUTS)).unwrap_or_else(|| {
        panic!("{INPUTS} workers running: {:?}", d.workers());
    });
    std::thread::sleep(Duration::from_millis(500));
    let (with_all, names_all) = threads(d.pid());
    eprintln!(
        "supervisor threads: 1 input {with_one}, {INPUTS} inputs {with_all}\n  {names_one:?}\n  {names_all:?}"
    );
    // A thread per worker's reader, watcher and relay, or per input's
    // IGMP reader, would add (INPUTS - 1) * 4 here.
    assert!(
        with_all <= with_one,
        "threads grew with workers: {with_one} -> {with_all}\n1 input: {names_one:?}\n{INPUTS} inputs: {names_all:?}"
    );

    // Killing a worker from outside is seen, said how, and repaired.
    let victim = workers
        .iter()
        .find(|w| w.interface == "r3")
        .and_then(|w| w.pid)
        .expect("a worker on r3");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the worker");
    let w = wait_for(T, || {
        d.workers()
            .into_iter()
            .find(|w| w.interface == "r3" && w.state == "running" && w.restarts == 1)
    })
    .unwrap_or_else(|| panic!("r3 not restarted: {:?}", d.workers()));
    assert_ne!(w.pid, Some(victim), "a new process");
    assert_eq!(w.last_exit.as_deref(), Some("killed by SIGKILL"), "{w:?}");
    d.wait_active(T);
    // The new process's lines reach the log file too.
    wait_for(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&log).ok()?;
        (text.matches("worker 0 for r3 running").count() >= 2).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the restarted worker's lines are not in the log file:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    // And the dead worker's tasks ended rather than piling up.
    wait_for(Duration::from_secs(5), || {
        (threads(d.pid()).0 <= with_all).then_some(())
    })
    .unwrap_or_else(|| panic!("threads after the restart: {:?}", thread_names(d.pid())));
}
