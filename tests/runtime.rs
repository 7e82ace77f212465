//! End-to-end runtime behaviour of a running `mcrd`: workers that come and
//! go with rules and interfaces, hitless rule changes under traffic, the
//! event stream, log levels pushed to workers, and idle worker exit. Real
//! daemon, real `mcrctl` and `mcrgen`, each host in its own namespace.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::daemon::{recv, send, send_cmd, Daemon, DaemonOpts};
use common::{require_root, rule_config, veth, wait_for, Netns, Relay3};
use mcr::control::{Done, Event, RuleState, StatusReport, TimedEvent, WorkerInfo};
use mcr::gen::SendReport;
use mcr::logging::{Facility, LogLevels, Severity};

const T: Duration = Duration::from_secs(20);

fn start_empty(ns: &Netns) -> Daemon {
    Daemon::start(ns, DaemonOpts::default())
}

fn start_with(ns: &Netns, config: &str) -> Daemon {
    Daemon::with_config(ns, config)
}

/// `mcrctl --json add ...`; the new rule's id.
fn add(d: &Daemon, args: &[&str]) -> String {
    let mut a = vec!["add"];
    a.extend_from_slice(args);
    let done: Done = d.ctl_json(&a);
    done.id.expect("add names the new rule's id")
}

/// The running (pid-holding) worker of `iface`, if any.
fn running_worker(d: &Daemon, iface: &str) -> Option<WorkerInfo> {
    d.workers()
        .into_iter()
        .find(|w| w.interface == iface && w.state == "running" && w.pid.is_some())
}

fn wait_sender(c: Child) -> SendReport {
    let out = c.wait_with_output().expect("mcrgen send");
    assert!(
        out.status.success(),
        "mcrgen send failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("mcrgen send report")
}

/// `mcrctl --json subscribe` as a child process, its event lines read on a
/// thread.
struct Subscriber {
    /// Event lines as printed; parsed by `wait`, so that a bad line fails
    /// the test rather than a reader thread.
    lines: common::daemon::EventLines,
    seen: Vec<TimedEvent>,
}

impl Subscriber {
    /// Start a subscriber for `events` (which must include `rules`) and
    /// wait until the daemon streams to it: a probe rule on an interface
    /// that does not exist is added (and removed) until its `rule-added`
    /// arrives.
    fn start(d: &Daemon, events: &str) -> Subscriber {
        assert!(events.contains("rules"), "the probe needs rule events");
        let mut s = Subscriber {
            lines: common::daemon::subscribe(d, events),
            seen: Vec::new(),
        };
        let probe = [
            "add",
            "--input-interface",
            "probe0",
            "--input-group",
            "239.255.0.1",
            "--input-port",
            "9",
            "--outputs",
            "239.255.0.2:9:probe1",
            "--rule-id",
            "sub-probe",
        ];
        let t0 = Instant::now();
        loop {
            d.ctl_ok(&probe);
            let got = s.wait(
                Duration::from_millis(500),
                |e| matches!(e, Event::RuleAdded { id, .. } if id == "sub-probe"),
            );
            d.ctl_ok(&["remove", "--rule-id", "sub-probe"]);
            if got.is_some() {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the subscriber never received an event"
            );
        }
        s.wait(
            Duration::from_secs(5),
            |e| matches!(e, Event::RuleRemoved { id } if id == "sub-probe"),
        )
        .expect("probe rule-removed");
        s.seen.clear();
        s
    }

    /// The first event (already seen or arriving within `timeout`) for
    /// which `pred` holds.
    fn wait(&mut self, timeout: Duration, pred: impl Fn(&Event) -> bool) -> Option<TimedEvent> {
        if let Some(e) = self.seen.iter().find(|e| pred(&e.event)) {
            return Some(e.clone());
        }
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.lines.recv_timeout(left) {
                Ok(line) => {
                    let e: TimedEvent = serde_json::from_str(&line).unwrap_or_else(|err| {
                        panic!("subscribe printed a line that is not an event ({err}): {line}")
                    });
                    self.seen.push(e.clone());
                    if pred(&e.event) {
                        return Some(e);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Position of the first seen event matching `pred`.
    fn position(&self, pred: impl Fn(&Event) -> bool) -> Option<usize> {
        self.seen.iter().position(|e| pred(&e.event))
    }
}

#[test]
fn worker_starts_when_the_first_rule_arrives() {
    if !require_root("worker_starts_when_the_first_rule_arrives") {
        return;
    }
    let t = Relay3::new("first");
    let d = start_empty(&t.relay);
    assert!(
        d.workers().is_empty(),
        "no rules, no workers: {:?}",
        d.workers()
    );
    assert!(d.list().is_empty());
    let out = d.ctl_ok(&["workers"]);
    assert!(
        out.contains("(none)"),
        "the table says there are none: {out}"
    );

    let id = add(
        &d,
        &[
            "--input-interface",
            "r0",
            "--input-group",
            "239.1.1.1",
            "--input-port",
            "5000",
            "--outputs",
            "239.2.2.2:6000:r1",
        ],
    );
    let w = wait_for(Duration::from_secs(10), || running_worker(&d, "r0"))
        .unwrap_or_else(|| panic!("no running worker for r0: {:?}", d.workers()));
    assert_eq!(w.index, 0);
    assert_eq!(
        d.workers().len(),
        1,
        "exactly one worker: {:?}",
        d.workers()
    );
    d.wait_rule_state(&id, RuleState::Active, T);

    t.relay_all(1000, 2000, 300);
    let w2 = running_worker(&d, "r0").expect("worker still running");
    assert_eq!(w2.pid, w.pid, "the same worker relayed it");
}

#[test]
fn add_and_remove_rules_while_traffic_flows_without_loss_on_others() {
    if !require_root("add_and_remove_rules_while_traffic_flows_without_loss_on_others") {
        return;
    }
    let t = Relay3::new("hitless");
    let d = start_with(
        &t.relay,
        &rule_config("239.1.1.1", 5000, &[("r1", "239.2.2.1", 6001)]),
    );
    let a_id = d.list()[0].id.clone();
    let worker_pid = running_worker(&d, "r0").expect("worker").pid;

    const A_COUNT: u64 = 4500;
    const B_COUNT: u64 = 3500;
    let ra = recv(
        &t.dst,
        "239.2.2.1",
        6001,
        Some("d0"),
        &["--expect", &A_COUNT.to_string(), "--idle-timeout", "2"],
    );
    let rb = recv(&t.dst, "239.2.2.2", 6002, Some("d0"), &[]);
    let sa = send_cmd(
        &t.src,
        "239.1.1.1",
        5000,
        "s0",
        A_COUNT,
        1000,
        400,
        &["--stream-id", "1"],
    )
    .spawn()
    .expect("sender A");
    // B shares A's group (so its packets reach the worker whether or not a
    // rule takes them: the kernel filter admits the group) on another port.
    let sb = send_cmd(
        &t.src,
        "239.1.1.1",
        5002,
        "s0",
        B_COUNT,
        1000,
        300,
        &["--stream-id", "2"],
    )
    .spawn()
    .expect("sender B");

    let no_match = |d: &Daemon| {
        d.stats()
            .workers
            .iter()
            .map(|w| w.counters.no_match)
            .sum::<u64>()
    };
    // Before B's rule exists its packets match nothing.
    wait_for(Duration::from_secs(5), || {
        (no_match(&d) >= 100).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "B's packets are not counted as no_match before its rule: {:?}",
            d.stats()
        )
    });

    // A flows at 1000 pps: its rate in stats says so.
    let a_pps = |d: &Daemon| d.stats().rules.iter().find(|r| r.id == a_id).map(|r| r.pps);
    wait_for(Duration::from_secs(5), || {
        a_pps(&d).filter(|p| (700.0..1300.0).contains(p))
    })
    .unwrap_or_else(|| panic!("rule A's rate is not ~1000 pps: {:?}", d.stats()));

    let b_id = add(
        &d,
        &[
            "--input-interface",
            "r0",
            "--input-group",
            "239.1.1.1",
            "--input-port",
            "5002",
            "--outputs",
            "239.2.2.2:6002:r1",
            "--name",
            "b",
        ],
    );
    d.wait_rule_state(&b_id, RuleState::Active, Duration::from_secs(10));
    let relayed_b = |d: &Daemon| {
        d.stats()
            .rules
            .iter()
            .find(|r| r.id == b_id)
            .map(|r| r.packets)
    };
    wait_for(Duration::from_secs(5), || {
        relayed_b(&d).filter(|p| *p >= 300)
    })
    .unwrap_or_else(|| panic!("rule B relays nothing: {:?}", d.stats()));
    d.ctl_ok(&["remove", "--name", "b"]);
    assert!(d.list().iter().all(|r| r.id != b_id), "B is gone from list");
    wait_for(Duration::from_secs(5), || {
        relayed_b(&d).is_none().then_some(())
    })
    .unwrap_or_else(|| panic!("stats still show rule B: {:?}", d.stats()));
    let nm = no_match(&d);
    wait_for(Duration::from_secs(5), || {
        (no_match(&d) >= nm + 100).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "B's packets after its removal are not counted as no_match (was {nm}): {:?}",
            d.stats()
        )
    });

    // A third group: the kernel filter and the join change; A must not notice.
    let c_id = add(
        &d,
        &[
            "--input-interface",
            "r0",
            "--input-group",
            "239.1.1.3",
            "--input-port",
            "5000",
            "--outputs",
            "239.2.2.3:6003:r1",
        ],
    );
    d.wait_rule_state(&c_id, RuleState::Active, Duration::from_secs(10));
    d.ctl_ok(&["remove", "--rule-id", &c_id]);
    assert!(d.list().iter().all(|r| r.id != c_id));

    let a_sent = wait_sender(sa);
    let b_sent = wait_sender(sb);
    assert_eq!((a_sent.sent, b_sent.sent), (A_COUNT, B_COUNT));
    let a = ra.finish(T);
    assert_eq!(
        (a.unique, a.lost, a.duplicates, a.corrupt),
        (A_COUNT, 0, 0, 0),
        "changes to other rules must be hitless for A: {a:?}"
    );
    let b = rb.stop();
    assert!(b.unique > 0, "B relayed while it existed: {b:?}");
    assert!(
        b.unique < B_COUNT,
        "B relayed only while it existed ({} of {B_COUNT}): {b:?}",
        b.unique
    );
    // Traffic stopped: the rate falls to zero, the count stays.
    wait_for(Duration::from_secs(5), || {
        a_pps(&d).filter(|p| *p == 0.0).map(|_| ())
    })
    .unwrap_or_else(|| panic!("rule A's rate stays above zero when idle: {:?}", d.stats()));
    let st = d.stats();
    assert_eq!(st.rules.len(), 1, "only A is left: {st:?}");
    assert_eq!(
        st.rules[0].packets, A_COUNT,
        "A's count survives the idle intervals"
    );
    assert_eq!(st.rules[0].id, a_id);
    assert_eq!(
        running_worker(&d, "r0").expect("worker").pid,
        worker_pid,
        "one worker throughout"
    );
}

#[test]
fn pending_rule_becomes_active_when_its_interface_appears() {
    if !require_root("pending_rule_becomes_active_when_its_interface_appears") {
        return;
    }
    let t = Relay3::new("pend");
    let d = start_empty(&t.relay);
    let id = add(
        &d,
        &[
            "--input-interface",
            "r7",
            "--input-group",
            "239.1.1.7",
            "--input-port",
            "5000",
            "--outputs",
            "239.2.2.7:6000:r1",
        ],
    );
    let r = d.wait_rule_state(&id, RuleState::Pending, Duration::from_secs(5));
    let why = r.reason.clone().unwrap_or_default();
    assert!(why.contains("r7"), "the reason names the interface: {r:?}");
    let table = d.ctl_ok(&["list"]);
    assert!(table.contains("pending") && table.contains("r7"), "{table}");
    assert!(
        d.workers().is_empty(),
        "no worker for an interface that does not exist"
    );

    // The interface appears: no command needed.
    let s7 = Netns::new("pend-s7");
    veth(&t.relay, "r7", "10.10.8.1/24", &s7, "s7", "10.10.8.2/24");
    d.wait_rule_state(&id, RuleState::Active, Duration::from_secs(10));
    let w = running_worker(&d, "r7").expect("a worker for r7");
    let relay_once = |stream: &str| {
        let r = recv(
            &t.dst,
            "239.2.2.7",
            6000,
            Some("d0"),
            &["--expect", "500", "--idle-timeout", "1"],
        );
        send(
            &s7,
            "239.1.1.7",
            5000,
            "s7",
            500,
            2000,
            200,
            &["--stream-id", stream],
        );
        let rep = r.finish(T);
        assert_eq!(
            (rep.unique, rep.lost),
            (500, 0),
            "relays from the new interface: {rep:?}"
        );
    };
    relay_once("1");

    // Down: the rule says so, and the worker goes.
    t.relay.ip(&["link", "set", "r7", "down"]);
    let r = d.wait_rule_state(&id, RuleState::InterfaceDown, Duration::from_secs(10));
    assert!(r.reason.unwrap_or_default().contains("r7"));
    let json = d.ctl_ok(&["--json", "list"]);
    assert!(json.contains("\"interface-down\""), "JSON state: {json}");
    let table = d.ctl_ok(&["list"]);
    assert!(table.contains("interface down"), "table state: {table}");
    wait_for(Duration::from_secs(10), || {
        d.workers()
            .iter()
            .all(|x| x.interface != "r7")
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the worker for r7 stays while r7 is down: {:?}",
            d.workers()
        )
    });

    // Up again: active and relaying, with a new worker.
    t.relay.ip(&["link", "set", "r7", "up"]);
    d.wait_rule_state(&id, RuleState::Active, Duration::from_secs(10));
    let w2 = running_worker(&d, "r7").expect("a worker for r7 again");
    assert_ne!(w2.pid, w.pid, "a new worker process");
    relay_once("2");

    // Deleted: pending again. Re-created under the same name, it has a new
    // index; the rule follows it without a command.
    let ifindex = || {
        String::from_utf8_lossy(&t.relay.run("cat /sys/class/net/r7/ifindex").stdout)
            .trim()
            .to_string()
    };
    let old_index = ifindex();
    t.relay.ip(&["link", "del", "r7"]);
    d.wait_rule_state(&id, RuleState::Pending, Duration::from_secs(10));
    veth(&t.relay, "r7", "10.10.8.1/24", &s7, "s7", "10.10.8.2/24");
    assert_ne!(old_index, ifindex(), "re-created with a new index");
    d.wait_rule_state(&id, RuleState::Active, Duration::from_secs(10));
    let w3 = running_worker(&d, "r7").expect("a worker for the new r7");
    assert_ne!(w3.pid, w2.pid, "a new worker on the new interface");
    relay_once("3");
}

#[test]
fn subscribe_streams_rule_and_worker_events() {
    if !require_root("subscribe_streams_rule_and_worker_events") {
        return;
    }
    let t = Relay3::new("sub");
    let d = start_empty(&t.relay);
    let mut s = Subscriber::start(&d, "rules,workers");

    let id = add(
        &d,
        &[
            "--input-interface",
            "r0",
            "--input-group",
            "239.1.1.1",
            "--input-port",
            "5000",
            "--outputs",
            "239.2.2.2:6000:r1",
            "--name",
            "video",
        ],
    );
    let added = s
        .wait(
            Duration::from_secs(10),
            |e| matches!(e, Event::RuleAdded { id: i, .. } if *i == id),
        )
        .unwrap_or_else(|| panic!("no rule-added for {id}: {:?}", s.seen));
    assert!(
        matches!(&added.event, Event::RuleAdded { name: Some(n), .. } if n == "video"),
        "{added:?}"
    );
    assert!(added.time > 1.0e9, "events carry a Unix time: {added:?}");
    let started = s
        .wait(
            Duration::from_secs(10),
            |e| matches!(e, Event::WorkerStarted { interface, .. } if interface == "r0"),
        )
        .unwrap_or_else(|| panic!("no worker-started for r0: {:?}", s.seen));
    let Event::WorkerStarted { pid, .. } = started.event else {
        unreachable!()
    };
    s.wait(
        Duration::from_secs(10),
        |e| matches!(e, Event::RuleState { id: i, state: RuleState::Active, .. } if *i == id),
    )
    .unwrap_or_else(|| panic!("no rule-state active for {id}: {:?}", s.seen));
    let p_added = s
        .position(|e| matches!(e, Event::RuleAdded { id: i, .. } if *i == id))
        .unwrap();
    let p_active = s
        .position(
            |e| matches!(e, Event::RuleState { id: i, state: RuleState::Active, .. } if *i == id),
        )
        .unwrap();
    assert!(p_added < p_active, "added before active: {:?}", s.seen);
    assert_eq!(
        running_worker(&d, "r0").and_then(|w| w.pid),
        Some(pid),
        "the event names the worker's pid"
    );
    // Only the classes asked for.
    assert!(
        s.seen.iter().all(|e| matches!(
            e.event,
            Event::RuleAdded { .. }
                | Event::RuleRemoved { .. }
                | Event::RuleChanged { .. }
                | Event::RuleState { .. }
                | Event::WorkerStarted { .. }
                | Event::WorkerExited { .. }
                | Event::WorkerResynced { .. }
                | Event::WorkerIdleExit { .. }
                | Event::Lagged { .. }
        )),
        "events outside rules,workers: {:?}",
        s.seen
    );
    // Every event names this run of the daemon, as `status` does.
    let status: StatusReport = d.ctl_json(&["status"]);
    let inst = &status.instance_id;
    assert!(
        inst.len() == 36 && inst.chars().filter(|c| *c == '-').count() == 4,
        "instance id is a UUID: {inst:?}"
    );
    assert!(
        s.seen.iter().all(|e| &e.instance_id == inst),
        "events carry the instance id {inst}: {:?}",
        s.seen
    );

    // The streaming connection holds up nobody.
    let t0 = Instant::now();
    let pong = d.ctl_ok(&["ping"]);
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "ping took {:?} with a subscriber connected",
        t0.elapsed()
    );
    assert!(!pong.trim().is_empty());
    let t0 = Instant::now();
    assert_eq!(d.list().len(), 1);
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "list took {:?}",
        t0.elapsed()
    );

    d.ctl_ok(&["remove", "--rule-id", &id]);
    s.wait(
        Duration::from_secs(10),
        |e| matches!(e, Event::RuleRemoved { id: i } if *i == id),
    )
    .unwrap_or_else(|| panic!("no rule-removed for {id}: {:?}", s.seen));
}

#[test]
fn log_level_changes_reach_workers() {
    if !require_root("log_level_changes_reach_workers") {
        return;
    }
    let t = Relay3::new("logl");
    let d = start_with(
        &t.relay,
        &rule_config("239.1.1.1", 5000, &[("r1", "239.2.2.1", 6001)]),
    );

    let lv: LogLevels = d.ctl_json(&["log-level", "get"]);
    assert_eq!(
        lv,
        LogLevels::default(),
        "defaults: global info, no overrides"
    );
    let table = d.ctl_ok(&["log-level", "get"]);
    let egress_row = table
        .lines()
        .find(|l| l.starts_with("Egress"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        egress_row.contains("info (global)"),
        "Egress follows the global level: {table}"
    );

    // An output with a new TTL makes the worker open a new egress socket;
    // at info nothing about it is logged.
    let egress_line = |ttl: u8| {
        let needle = format!("on r1 (ttl {ttl},");
        d.log_text()
            .lines()
            .find(|l| l.contains("Egress") && l.contains(&needle))
            .map(str::to_string)
    };
    let before = add(
        &d,
        &[
            "--input-interface",
            "r0",
            "--input-group",
            "239.1.1.2",
            "--input-port",
            "5000",
            "--outputs",
            "239.2.2.2:6002:r1:7",
        ],
    );
    d.wait_rule_state(&before, RuleState::Active, Duration::from_secs(10));
    assert_eq!(
        egress_line(7),
        None,
        "Egress debug lines at the default level"
    );

    d.ctl_ok(&[
        "log-level",
        "set",
        "--facility",
        "Egress",
        "--level",
        "debug",
    ]);
    let lv: LogLevels = d.ctl_json(&["log-level", "get"]);
    assert_eq!(lv.global, Severity::Info);
    assert_eq!(
        lv.facilities.get(&Facility::Egress),
        Some(&Severity::Debug),
        "{lv:?}"
    );
    let table = d.ctl_ok(&["log-level", "get"]);
    let egress_row = table
        .lines()
        .find(|l| l.starts_with("Egress"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        egress_row.contains("debug") && !egress_row.contains("(global)"),
        "{table}"
    );
    // The supervisor has passed the levels on once it says so.
    wait_for(Duration::from_secs(5), || {
        d.log_text().contains("log levels now").then_some(())
    })
    .expect("the supervisor applies the new levels");

    let after = add(
        &d,
        &[
            "--input-interface",
            "r0",
            "--input-group",
            "239.1.1.3",
            "--input-port",
            "5000",
            "--outputs",
            "239.2.2.3:6003:r1:9",
        ],
    );
    d.wait_rule_state(&after, RuleState::Active, Duration::from_secs(10));
    let line = wait_for(Duration::from_secs(5), || egress_line(9))
        .unwrap_or_else(|| panic!("the worker logged no Egress debug line:\n{}", d.log_text()));
    assert!(
        line.contains("DEBUG") && line.contains("worker"),
        "a worker's debug line: {line}"
    );
    assert_eq!(egress_line(7), None, "nothing was logged retroactively");

    d.ctl_ok(&["log-level", "set", "--global", "warning"]);
    let lv: LogLevels = d.ctl_json(&["log-level", "get"]);
    assert_eq!(lv.global, Severity::Warning);
    assert_eq!(
        lv.facilities.get(&Facility::Egress),
        Some(&Severity::Debug),
        "the facility override survives a global change: {lv:?}"
    );
}

#[test]
fn idle_worker_exits_after_its_last_rule_goes() {
    if !require_root("idle_worker_exits_after_its_last_rule_goes") {
        return;
    }
    let t = Relay3::new("idle");
    let cfg = "{ workers: { idle_timeout: 1 }, rules: [ { name: \"t\", \
               input: { interface: \"r0\", group: \"239.1.1.1\", port: 5000 }, \
               outputs: [ { interface: \"r1\", group: \"239.2.2.2\", port: 6000 } ] } ] }";
    let d = start_with(&t.relay, cfg);
    let w = running_worker(&d, "r0").expect("worker for r0");
    let pid = w.pid.unwrap();
    let mut s = Subscriber::start(&d, "rules,workers");

    let t0 = Instant::now();
    d.ctl_ok(&["remove", "--name", "t"]);
    wait_for(Duration::from_secs(6), || {
        d.workers().is_empty().then_some(())
    })
    .unwrap_or_else(|| panic!("the idle worker did not exit: {:?}", d.workers()));
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "it waited for the idle timeout ({:?})",
        t0.elapsed()
    );
    s.wait(
        Duration::from_secs(5),
        |e| matches!(e, Event::WorkerIdleExit { interface } if interface == "r0"),
    )
    .unwrap_or_else(|| panic!("no worker-idle-exit event: {:?}", s.seen));
    wait_for(Duration::from_secs(5), || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    })
    .unwrap_or_else(|| panic!("worker process {pid} is still there"));

    let id = add(
        &d,
        &[
            "--input-interface",
            "r0",
            "--input-group",
            "239.1.1.1",
            "--input-port",
            "5000",
            "--outputs",
            "239.2.2.2:6000:r1",
        ],
    );
    d.wait_rule_state(&id, RuleState::Active, Duration::from_secs(10));
    let w2 = running_worker(&d, "r0").expect("a worker again");
    assert_ne!(w2.pid, Some(pid));
    t.relay_all(500, 2000, 200);
}

#[test]
fn sigterm_stops_workers_and_removes_the_socket() {
    if !require_root("sigterm_stops_workers_and_removes_the_socket") {
        return;
    }
    let t = common::Relay3::new("term");
    let mut d = Daemon::with_config(
        &t.relay,
        &common::rule_config("239.1.1.1", 5000, &[("r1", "239.2.2.2", 6000)]),
    );
    let worker = d.workers()[0].pid.expect("a running worker");
    let t0 = std::time::Instant::now();
    let status = d.stop().expect("mcrd exits");
    eprintln!("stopped in {:?}", t0.elapsed());
    assert!(status.success(), "SIGTERM is an orderly stop: {status}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(!d.socket.exists(), "the control socket is removed");
    let gone = std::fs::read_to_string(format!("/proc/{worker}/stat"))
        .map(|s| s.contains(") Z "))
        .unwrap_or(true);
    assert!(gone, "worker {worker} exited with the daemon");
    assert!(d.log_text().contains("mcrd stopped"), "{}", d.log_text());
}

#[test]
fn sixteen_input_interfaces_each_get_a_running_worker() {
    // Workers run as one unprivileged user, and the kernel charges every
    // io_uring of that user to one locked-memory budget: a router with many
    // inputs must not run out of it.
    if !require_root("sixteen_input_interfaces_each_get_a_running_worker") {
        return;
    }
    let t = Relay3::new("many");
    let peers = Netns::new("many-p");
    let n = 16;
    let mut rules = Vec::new();
    for i in 0..n {
        veth(
            &t.relay,
            &format!("m{i}"),
            &format!("10.40.{i}.1/24"),
            &peers,
            &format!("p{i}"),
            &format!("10.40.{i}.2/24"),
        );
        rules.push(format!(
            "{{ input: {{ interface: \"m{i}\", group: \"239.1.1.1\", port: 5000 }}, \
             outputs: [ {{ interface: \"r1\", group: \"239.2.3.{}\", port: 6000 }} ] }}",
            i + 1
        ));
    }
    let d = start_with(&t.relay, &format!("{{ rules: [ {} ] }}", rules.join(", ")));
    d.wait_active(Duration::from_secs(30));
    let ws = d.workers();
    assert_eq!(ws.len(), n, "{ws:?}");
    assert!(
        ws.iter().all(|w| w.pid.is_some() && w.restarts == 0),
        "every worker started first time: {ws:?}"
    );
    // And the last one relays.
    let r = recv(
        &t.dst,
        "239.2.3.16",
        6000,
        Some("d0"),
        &["--expect", "200", "--idle-timeout", "1"],
    );
    send(&peers, "239.1.1.1", 5000, "p15", 200, 2000, 200, &[]);
    let rep = r.finish(Duration::from_secs(20));
    assert_eq!((rep.unique, rep.lost), (200, 0), "{rep:?}");
}

/// Issue 12: each add or remove used to make every other rule of the same
/// input interface emit `starting` then `active` (1,000 adds and removes
/// gave 190,457 events), and `list` showed untouched, forwarding rules as
/// `starting`. A change now touches only the rule it changes.
#[test]
fn churn_on_an_interface_leaves_its_other_rules_alone() {
    if !require_root("churn_on_an_interface_leaves_its_other_rules_alone") {
        return;
    }
    const CHURN: usize = 200;
    let t = Relay3::new("storm");
    let d = start_with(
        &t.relay,
        &rule_config("239.1.1.1", 5000, &[("r1", "239.2.2.1", 6001)]),
    );
    let keep = d.list()[0].id.clone();
    d.wait_rule_state(&keep, RuleState::Active, T);
    let mut s = Subscriber::start(&d, "rules");

    let churn_id = |i: usize| format!("churn-{i}");
    let mut keep_listed_active = 0;
    for i in 0..CHURN {
        let group = format!("239.3.{}.{}", i / 200, i % 200 + 1);
        let out = format!("239.4.{}.{}:6000:r1", i / 200, i % 200 + 1);
        d.ctl_ok(&[
            "add",
            "--input-interface",
            "r0",
            "--input-group",
            &group,
            "--input-port",
            "5000",
            "--outputs",
            &out,
            "--rule-id",
            &churn_id(i),
        ]);
        if i % 50 == 25 {
            let k = d.list().into_iter().find(|r| r.id == keep).expect("kept");
            assert_eq!(k.state, RuleState::Active, "list during churn: {k:?}");
            keep_listed_active += 1;
        }
    }
    for i in 0..CHURN {
        d.ctl_ok(&["remove", "--rule-id", &churn_id(i)]);
    }
    // A marker after the churn: once it is active, every event of the
    // churn has been published before it.
    let marker = add(
        &d,
        &[
            "--input-interface",
            "r0",
            "--input-group",
            "239.5.5.5",
            "--input-port",
            "5000",
            "--outputs",
            "239.6.6.6:6000:r1",
        ],
    );
    s.wait(
        T,
        |e| matches!(e, Event::RuleState { id, state: RuleState::Active, .. } if *id == marker),
    )
    .unwrap_or_else(|| panic!("no rule-state active for the marker"));

    let states: Vec<(&str, RuleState)> = s
        .seen
        .iter()
        .filter_map(|e| match &e.event {
            Event::RuleState { id, state, .. } => Some((id.as_str(), *state)),
            _ => None,
        })
        .collect();
    let of_keep: Vec<_> = states.iter().filter(|(id, _)| *id == keep).collect();
    assert!(
        of_keep.is_empty(),
        "the untouched rule changed state {} times, first {:?}",
        of_keep.len(),
        &of_keep[..of_keep.len().min(6)]
    );
    // At most `starting` and `active` per added rule (a rule removed
    // before its worker acked it may never reach `active`).
    for i in 0..CHURN {
        let id = churn_id(i);
        let n = states.iter().filter(|(x, _)| *x == id).count();
        assert!(n <= 2, "{id} emitted {n} rule-state events");
    }
    eprintln!(
        "{} rule-state events for {CHURN} adds and {CHURN} removes (plus a marker)",
        states.len()
    );
    // Nothing else moved (the subscriber's own probe rule may trail in).
    let others: Vec<_> = states
        .iter()
        .filter(|(id, _)| !id.starts_with("churn-") && *id != marker && *id != "sub-probe")
        .collect();
    assert!(others.is_empty(), "unrelated rule-state events: {others:?}");
    assert_eq!(keep_listed_active, CHURN / 50);
    let k = d.list().into_iter().find(|r| r.id == keep).expect("kept");
    assert_eq!(k.state, RuleState::Active);
}
