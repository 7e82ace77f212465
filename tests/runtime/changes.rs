//! Hitless rule changes: adding, removing and churning rules under
//! traffic leaves the other rules' streams alone.
use super::*;

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
        "r0",
        "239.1.1.1",
        5002,
        "239.2.2.2:6002:r1",
        &["--name", "b"],
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
    let c_id = add(&d, "r0", "239.1.1.3", 5000, "239.2.2.3:6003:r1", &[]);
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
    let marker = add(&d, "r0", "239.5.5.5", 5000, "239.6.6.6:6000:r1", &[]);
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
