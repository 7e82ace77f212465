//! A config reload that changes IGMP timers reaches the running querier
//! without a restart and without dropping a member (issue 9: "hot reload
//! applies it as a diff"). The Linux kernel of a host namespace is the
//! member. Prints what it measured.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::daemon::{recv, Daemon, DaemonOpts};
use common::{require_root, veth, wait_for, Netns};
use mcr::control::StatusReport;
use mcr::igmp::instance::{GroupRow, InterfaceRow};

const GROUP: &str = "239.7.7.9";

fn config(qi: f64, lmqi: f64) -> String {
    format!(
        "{{ igmp: {{ querier_interfaces: [\"r0\"], query_interval: {qi}, query_response_interval: 0.5, last_member_query_interval: {lmqi} }} }}"
    )
}

fn listed(d: &Daemon) -> bool {
    let g: Ipv4Addr = GROUP.parse().expect("group");
    let rows: Vec<GroupRow> = d.ctl_json(&["igmp", "groups"]);
    rows.iter().any(|r| r.group.group == g)
}

fn queries_sent(d: &Daemon) -> u64 {
    let rows: Vec<InterfaceRow> = d.ctl_json(&["igmp", "interfaces"]);
    rows.iter()
        .find(|r| r.interface == "r0")
        .map(|r| r.querier.counters.queries_sent)
        .expect("r0 is listed")
}

fn restarts(d: &Daemon) -> Option<u32> {
    let s: StatusReport = d.ctl_json(&["status"]);
    s.actors
        .iter()
        .find(|a| a.name == "root/protocols/igmp/r0")
        .map(|a| a.restarts)
}

#[test]
fn new_timers_apply_on_reload_and_members_stay() {
    if !require_root("new_timers_apply_on_reload_and_members_stay") {
        return;
    }
    let router = Netns::new("irlr");
    let host = Netns::new("irlh");
    veth(&router, "r0", "10.9.1.1/24", &host, "h0", "10.9.1.2/24");
    let d = Daemon::start(
        &router,
        DaemonOpts {
            config: Some(&config(20.0, 1.0)),
            ..Default::default()
        },
    );
    let file = d.config.clone().expect("startup file");
    let member = recv(&host, GROUP, 7100, Some("h0"), &[]);
    wait_for(Duration::from_secs(5), || listed(&d).then_some(()))
        .unwrap_or_else(|| panic!("the host's join is not listed:\n{}", d.log_text()));
    // Past the startup queries (QI/4 = 5 s apart): with QI 20 s at most
    // one general query in the next 4 s.
    std::thread::sleep(Duration::from_secs(6));
    let before = queries_sent(&d);
    std::thread::sleep(Duration::from_secs(4));
    let slow = queries_sent(&d) - before;

    std::fs::write(&file, config(1.0, 0.2)).expect("write config");
    d.ctl_ok(&["config", "reload"]);
    let t0 = Instant::now();
    // The reconcile hands the timers over within a second.
    std::thread::sleep(Duration::from_millis(1500));
    let before = queries_sent(&d);
    std::thread::sleep(Duration::from_secs(4));
    let fast = queries_sent(&d) - before;
    eprintln!(
        "IGMP reload: general queries in 4 s: {slow} with QI 20 s, {fast} after the reload to QI 1 s"
    );
    assert!(slow <= 1, "{slow} queries in 4 s with QI 20 s");
    assert!(fast >= 3, "only {fast} queries in 4 s after QI became 1 s");
    assert!(listed(&d), "the reload dropped the member");
    assert_eq!(restarts(&d), Some(0), "the querier was restarted");

    // The new last member query interval applies too: LMQT 0.4 s, not 2 s.
    member.stop();
    let t1 = Instant::now();
    wait_for(Duration::from_secs(5), || (!listed(&d)).then_some(()))
        .unwrap_or_else(|| panic!("the group stayed after the leave"));
    let leave_to_gone = t1.elapsed();
    eprintln!(
        "IGMP reload: after the leave the group went in {:.0} ms (new LMQT 400 ms, old 2000 ms); reload {:.1} s before",
        leave_to_gone.as_secs_f64() * 1e3,
        (t1 - t0).as_secs_f64()
    );
    assert!(
        leave_to_gone < Duration::from_millis(1500),
        "leave took {leave_to_gone:?}"
    );
}
