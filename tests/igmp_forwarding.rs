//! Membership-driven forwarding end to end (issue 9; SPEC.md `igmp`,
//! REFERENCE.md `outputs[].members_only`): a source namespace sends a
//! 1 kpps stream into the relay, whose NAT rule republishes it on r1 only
//! while the Linux kernel of the host behind r1 is a member of the output
//! group. The relay runs the IGMP querier on r1 with fast timers, so joins,
//! leaves and the actor's restart all play out in seconds. Each step prints
//! what it measured.
//!
//! Whether the host gets traffic is read from its interface's receive
//! counter, not from a socket: before the join there is no socket to read
//! from, and a socket would itself be the join.

mod common;

use std::time::{Duration, Instant};

use common::daemon::{recv, send_cmd, Daemon, DaemonOpts};
use common::{require_root, wait_for, KillOnDrop, Relay3};
use mcr::control::{RuleInfo, StatusReport};

const IN_GROUP: &str = "239.1.1.1";
const IN_PORT: u16 = 5000;
const OUT_GROUP: &str = "239.9.9.9";
const OUT_PORT: u16 = 6000;
const RATE: u32 = 1000;
const QI: f64 = 2.0;
const QRI: f64 = 1.0;
const LMQI: f64 = 0.2;
/// Last member query count = robustness (2).
const LMQC: f64 = 2.0;
/// Packets the host may see in a window without any data: IGMP queries
/// (one per QI, plus group-specific ones around a leave) and IPv6 noise.
const BACKGROUND: u64 = 10;

/// The one rule's members-only output: whether `list` says `no members`.
fn no_members(d: &Daemon) -> bool {
    let list: Vec<RuleInfo> = d.list();
    let rule = list.first().expect("the rule is listed");
    let out = rule
        .outputs
        .iter()
        .find(|o| o.output.members_only)
        .expect("a members-only output");
    out.no_members
}

fn igmp_restarts(d: &Daemon) -> Option<u32> {
    let s: StatusReport = d.ctl_json(&["status"]);
    s.actors
        .iter()
        .find(|a| a.name == "root/protocols/igmp/r1")
        .map(|a| a.restarts)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[test]
fn members_only_output_follows_the_hosts_membership() {
    if !require_root("members_only_output_follows_the_hosts_membership") {
        return;
    }
    let t = Relay3::new("ifw");
    let igmp = format!(
        r#"{{"querier_interfaces":["r1"],"query_interval":{QI},"query_response_interval":{QRI},"last_member_query_interval":{LMQI}}}"#
    );
    let config = format!(
        "{{ rules: [ {{ name: \"nat\", input: {{ interface: \"r0\", group: \"{IN_GROUP}\", port: {IN_PORT} }}, \
         outputs: [ {{ interface: \"r1\", group: \"{OUT_GROUP}\", port: {OUT_PORT}, members_only: true }} ] }} ], \
         igmp: {igmp} }}"
    );
    let d = Daemon::start(
        &t.relay,
        DaemonOpts {
            config: Some(&config),
            fault_injection: true,
            ..Default::default()
        },
    );
    wait_for(Duration::from_secs(10), || {
        (!d.list().is_empty()).then_some(())
    })
    .expect("the rule is listed");
    wait_for(Duration::from_secs(5), || igmp_restarts(&d)).expect("igmp/r1 is running");

    let _sender = KillOnDrop(
        send_cmd(&t.src, IN_GROUP, IN_PORT, "s0", 10_000_000, RATE, 200, &[])
            .spawn()
            .expect("spawn mcrgen send"),
    );

    // 1. No member yet: the stream reaches the relay, nothing the host.
    std::thread::sleep(Duration::from_millis(300));
    let window = Duration::from_millis(1500);
    let in_before = t.relay.rx_packets("r0");
    let host_quiet = t.dst.received_during("d0", window);
    let relay_in = t.relay.rx_packets("r0") - in_before;
    eprintln!(
        "IGMP forwarding: before the join the relay got {relay_in} packets, the host {host_quiet} in {:.0} ms",
        ms(window)
    );
    assert!(
        relay_in >= u64::from(RATE),
        "the stream does not reach the relay ({relay_in} packets in {window:?})"
    );
    assert!(
        host_quiet <= BACKGROUND,
        "{host_quiet} packets reached the host before it joined"
    );
    assert!(no_members(&d), "{:?}", d.list());
    let text = d.ctl_ok(&["list"]);
    assert!(
        text.contains(&format!(
            "{OUT_GROUP}:{OUT_PORT}@r1 members-only [no members]"
        )),
        "{text}"
    );

    // 2. The host joins: the stream follows within a second or two.
    let t0 = Instant::now();
    let base = t.dst.rx_packets("d0");
    let member = recv(&t.dst, OUT_GROUP, OUT_PORT, Some("d0"), &[]);
    wait_for(Duration::from_secs(3), || {
        (t.dst.rx_packets("d0") - base > 50).then_some(())
    })
    .unwrap_or_else(|| panic!("no traffic within 3 s of the join: {:?}", d.list()));
    let join_to_traffic = t0.elapsed();
    eprintln!(
        "IGMP forwarding: join -> traffic {:.0} ms",
        ms(join_to_traffic)
    );
    assert!(
        join_to_traffic < Duration::from_secs(2),
        "join took {join_to_traffic:?}"
    );
    assert!(!no_members(&d), "{:?}", d.list());
    let text = d.ctl_ok(&["list"]);
    assert!(!text.contains("[no members]"), "{text}");
    // Half the rate: under load (six builds on two cores) the sender
    // itself sends 600-800 packets/s; losses are checked by sequence below.
    let flowing = t.dst.datagrams_during("d0", Duration::from_secs(1), 200);
    eprintln!("IGMP forwarding: {flowing} datagrams/s reach the joined host");
    assert!(
        flowing >= u64::from(RATE) / 2,
        "only {flowing} packets/s reach the joined host"
    );

    // 4 (while joined). The querier panics; forwarding must not notice.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(igmp_restarts(&d), Some(0));
    d.ctl_ok(&["fault", "panic-actor", "igmp/r1"]);
    wait_for(Duration::from_secs(5), || {
        (igmp_restarts(&d) == Some(1)).then_some(())
    })
    .unwrap_or_else(|| panic!("igmp/r1 did not restart:\n{}", d.log_text()));
    // Past the restarted querier's first query and its answer.
    std::thread::sleep(Duration::from_secs_f64(QRI + 1.0));
    let after_panic = t.dst.datagrams_during("d0", Duration::from_secs(1), 200);
    let report = member.stop();
    let max_gap = report.max_gap_us / 1000.0;
    eprintln!(
        "IGMP forwarding: across the igmp/r1 panic the host got {} packets, lost {}, longest gap {max_gap:.1} ms, latency max {:.1} ms; {after_panic} packets/s after it",
        report.unique, report.lost, report.latency_us.max / 1000.0
    );
    // Issue 9: no gap beyond 100 ms, and nothing lost. The rate after the
    // restart is checked loosely: on a loaded machine the sender itself
    // falls below 1 kpps (nothing is lost, so the host got all it sent).
    assert!(
        max_gap <= 100.0,
        "the stream stopped for {max_gap:.1} ms: {report:?}"
    );
    assert_eq!(
        report.lost, 0,
        "lost across the igmp/r1 restart: {report:?}"
    );
    assert!(
        after_panic >= u64::from(RATE) / 2,
        "only {after_panic} packets/s after the restart"
    );
    assert_eq!(igmp_restarts(&d), Some(1));

    // 3. The host left when its socket closed: the stream stops within
    // LMQC × LMQI plus the margin the table update needs.
    let t1 = Instant::now();
    let limit = Duration::from_secs_f64(LMQC * LMQI + 1.0);
    wait_for(limit + Duration::from_secs(3), || {
        (t.dst.received_during("d0", Duration::from_millis(100)) <= 1).then_some(())
    })
    .unwrap_or_else(|| panic!("traffic did not stop after the leave: {:?}", d.list()));
    let leave_to_quiet = t1.elapsed();
    eprintln!(
        "IGMP forwarding: leave -> traffic stopped {:.0} ms (limit {:.0} ms)",
        ms(leave_to_quiet),
        ms(limit)
    );
    assert!(
        leave_to_quiet <= limit,
        "leave took {leave_to_quiet:?} (limit {limit:?})"
    );
    let after_leave = t.dst.received_during("d0", Duration::from_secs(1));
    assert!(
        after_leave <= BACKGROUND,
        "{after_leave} packets reached the host after it left"
    );
    wait_for(Duration::from_secs(2), || no_members(&d).then_some(()))
        .unwrap_or_else(|| panic!("list still shows members: {:?}", d.list()));
}
