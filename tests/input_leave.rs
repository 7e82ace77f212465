//! The input groups are left when mcrd stops (issue 13, step 1): they are
//! held at the link layer, so nothing in the kernel leaves them when the
//! daemon ends, and the supervisor's own IGMP host must send the leaves
//! before the runtime goes. Real mcrd in namespaces; the querier is a
//! second mcrd (`igmp.querier_interfaces`) on the sender's side, as in
//! tests/input_membership.rs.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::daemon::{Daemon, DaemonOpts};
use common::{require_root, rule_config, Relay3};
use mcr::igmp::instance::GroupRow;

const GROUP: &str = "239.7.7.8";
/// Slow general queries but fast last-member queries: a membership that is
/// not left lasts a group membership interval (2 × 10 s + 1 s), one that
/// is left goes within about a second, so the two cannot be confused.
const QUERIER: &str = "{ igmp: { querier_interfaces: [\"s0\"], query_interval: 10, query_response_interval: 1, last_member_query_interval: 0.2 } }";
/// Well under the group membership interval above.
const LEFT_WITHIN: Duration = Duration::from_secs(6);

/// The querier's row for the input group, if it has a member.
fn querier_row(q: &Daemon) -> Option<GroupRow> {
    let group: Ipv4Addr = GROUP.parse().expect("group");
    let rows: Vec<GroupRow> = q.ctl_json(&["igmp", "groups"]);
    rows.into_iter().find(|r| r.group.group == group)
}

#[test]
fn the_input_groups_are_left_when_mcrd_stops() {
    if !require_root("the_input_groups_are_left_when_mcrd_stops") {
        return;
    }
    let t = Relay3::new("inleave");
    let q = Daemon::start(
        &t.src,
        DaemonOpts {
            config: Some(QUERIER),
            ..Default::default()
        },
    );
    let config = rule_config(GROUP, 5000, &[("r1", "239.2.2.2", 6000)]);
    let mut d = Daemon::start(
        &t.relay,
        DaemonOpts {
            config: Some(&config),
            ..Default::default()
        },
    );
    d.wait_active(Duration::from_secs(20));
    common::wait_for(Duration::from_secs(5), || querier_row(&q))
        .unwrap_or_else(|| panic!("the querier never saw a report: {}", d.log_text()));

    let t0 = Instant::now();
    let status = d.stop();
    let stopped = t0.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "mcrd did not stop cleanly: {status:?}\n{}",
        d.log_text()
    );
    let gone = common::wait_for(LEFT_WITHIN.saturating_sub(t0.elapsed()), || {
        querier_row(&q).is_none().then_some(())
    });
    let log = d.log_text();
    eprintln!(
        "mcrd stopped after {stopped:?}; the querier's membership gone {:?} after SIGTERM",
        t0.elapsed()
    );
    assert!(
        gone.is_some(),
        "no leave when mcrd stopped ({:?} after SIGTERM): {:?}\n{log}",
        t0.elapsed(),
        querier_row(&q)
    );
    assert!(
        !log.contains("leaves not all sent"),
        "the shutdown did not wait for the leaves:\n{log}"
    );
}
