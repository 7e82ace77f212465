//! Workers that come and go with rules and interfaces, and stop with the
//! daemon.
use super::*;

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

    let id = add(&d, "r0", "239.1.1.1", 5000, "239.2.2.2:6000:r1", &[]);
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
fn pending_rule_becomes_active_when_its_interface_appears() {
    if !require_root("pending_rule_becomes_active_when_its_interface_appears") {
        return;
    }
    let t = Relay3::new("pend");
    let d = start_empty(&t.relay);
    let id = add(&d, "r7", "239.1.1.7", 5000, "239.2.2.7:6000:r1", &[]);
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
    let w = wait_for(Duration::from_secs(10), || running_worker(&d, "r7"))
        .unwrap_or_else(|| panic!("no worker for r7 once it appeared: {:?}", d.workers()));
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
    let w2 = wait_for(Duration::from_secs(10), || {
        running_worker(&d, "r7").filter(|x| x.pid != w.pid)
    })
    .unwrap_or_else(|| panic!("no new worker for r7 after it came up: {:?}", d.workers()));
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
    // The old worker may still be stopping when the rule turns active: its
    // replacement starts as soon as it is gone.
    wait_for(Duration::from_secs(10), || {
        running_worker(&d, "r7").filter(|w| w.pid != w2.pid)
    })
    .unwrap_or_else(|| panic!("no new worker for the new r7: {:?}", d.workers()));
    relay_once("3");
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

    let id = add(&d, "r0", "239.1.1.1", 5000, "239.2.2.2:6000:r1", &[]);
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
