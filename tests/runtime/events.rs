//! The event stream and log levels pushed to workers.
use super::*;

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
        "r0",
        "239.1.1.1",
        5000,
        "239.2.2.2:6000:r1",
        &["--name", "video"],
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
    // `mcrctl log-level get`'s table and its Egress row.
    let egress_row = || {
        let table = d.ctl_ok(&["log-level", "get"]);
        let row = table
            .lines()
            .find(|l| l.starts_with("Egress"))
            .unwrap_or_else(|| panic!("{table}"))
            .to_string();
        (row, table)
    };
    let (row, table) = egress_row();
    assert!(
        row.contains("info (global)"),
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
    let before = add(&d, "r0", "239.1.1.2", 5000, "239.2.2.2:6002:r1:7", &[]);
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
    let (row, table) = egress_row();
    assert!(
        row.contains("debug") && !row.contains("(global)"),
        "{table}"
    );
    // The supervisor has passed the levels on once it says so.
    wait_for(Duration::from_secs(5), || {
        d.log_text().contains("log levels now").then_some(())
    })
    .expect("the supervisor applies the new levels");

    let after = add(&d, "r0", "239.1.1.3", 5000, "239.2.2.3:6003:r1:9", &[]);
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
