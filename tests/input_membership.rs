//! How the relay holds its input groups (issue 13, step 1): at the link
//! layer only (`mcr::sys::membership`), with the IGMP reports sent by the
//! supervisor (`input_igmp`), so that the kernel's IP stack does not take
//! every input packet for local delivery while a querier or snooping
//! switch still sees a member. Real mcrd in namespaces; the querier is a
//! second mcrd (`igmp.querier_interfaces`) on the sender's side.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::daemon::{recv, send, Daemon, DaemonOpts};
use common::{require_root, rule_config, Netns, Relay3};
use mcr::igmp::instance::GroupRow;

const GROUP: &str = "239.7.7.7";
/// Fast querier timers, so that a membership that nobody refreshes
/// expires within the test: GMI = 2 × 2 s + 1 s.
const QUERIER: &str = "{ igmp: { querier_interfaces: [\"s0\"], query_interval: 2, query_response_interval: 1, last_member_query_interval: 0.2 } }";
const RELAY_ADDR: &str = "10.10.1.2";
const N: u64 = 3000;

fn group() -> Ipv4Addr {
    GROUP.parse().expect("group")
}

/// The querier's row for the input group, if it has a member.
fn querier_row(q: &Daemon) -> Option<GroupRow> {
    let rows: Vec<GroupRow> = q.ctl_json(&["igmp", "groups"]);
    rows.into_iter().find(|r| r.group.group == group())
}

/// Counters of the relay namespace's IP stack: (Ip InDelivers, Udp
/// InDatagrams + IgnoredMulti, the count of multicast
/// datagrams no socket wanted), from /proc/net/snmp.
fn local_delivery(ns: &Netns) -> (u64, u64) {
    let out = ns.run("cat /proc/net/snmp");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |proto: &str, name: &str| -> u64 {
        let mut lines = text.lines().filter(|l| l.starts_with(&format!("{proto}:")));
        let (Some(head), Some(vals)) = (lines.next(), lines.next()) else {
            panic!("no {proto} lines in /proc/net/snmp: {text}");
        };
        let i = head
            .split_whitespace()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {proto} {name} in {head}"));
        vals.split_whitespace()
            .nth(i)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("unreadable {proto} {name}: {vals}"))
    };
    (
        field("Ip", "InDelivers"),
        field("Udp", "InDatagrams") + field("Udp", "IgnoredMulti"),
    )
}

/// Relay `N` datagrams of the test's rule and return how much the relay
/// namespace's own IP stack took in meanwhile.
fn relay_and_count(t: &Relay3) -> (u64, u64) {
    let before = local_delivery(&t.relay);
    let r = recv(
        &t.dst,
        "239.2.2.2",
        6000,
        Some("d0"),
        &["--expect", &N.to_string(), "--idle-timeout", "1"],
    );
    send(&t.src, GROUP, 5000, "s0", N, 5000, 200, &[]);
    let rep = r.finish(Duration::from_secs(30));
    assert_eq!(rep.unique, N, "the relay forwards the group: {rep:?}");
    let after = local_delivery(&t.relay);
    (after.0 - before.0, after.1 - before.1)
}

fn relay(t: &Relay3, env: Vec<(&'static str, &'static str)>) -> Daemon {
    let config = rule_config(GROUP, 5000, &[("r1", "239.2.2.2", 6000)]);
    let d = Daemon::start(
        &t.relay,
        DaemonOpts {
            config: Some(&config),
            env,
            ..Default::default()
        },
    );
    d.wait_active(Duration::from_secs(20));
    d
}

#[test]
fn a_querier_sees_the_input_group_reported_refreshed_and_left() {
    if !require_root("a_querier_sees_the_input_group_reported_refreshed_and_left") {
        return;
    }
    let t = Relay3::new("inm");
    let q = Daemon::start(
        &t.src,
        DaemonOpts {
            config: Some(QUERIER),
            ..Default::default()
        },
    );
    let d = relay(&t, vec![]);
    let row = common::wait_for(Duration::from_secs(5), || querier_row(&q))
        .unwrap_or_else(|| panic!("the querier never saw a report: {}", d.log_text()));
    assert_eq!(
        row.group.last_reporter,
        RELAY_ADDR.parse::<Ipv4Addr>().unwrap()
    );

    // Only the link layer holds the group: the NIC filter has its MAC, the
    // IP stack has no membership.
    let maddr = String::from_utf8_lossy(&t.relay.run("ip maddr show dev r0").stdout).to_string();
    assert!(maddr.contains("01:00:5e:07:07:07"), "{maddr}");
    assert!(!maddr.contains(GROUP), "no IP membership: {maddr}");

    // Two group membership intervals: without answers to the querier's
    // general queries the membership would have expired.
    std::thread::sleep(Duration::from_secs(10));
    assert!(
        querier_row(&q).is_some(),
        "the relay stopped answering queries"
    );

    let id = d.list()[0].id.clone();
    d.ctl_ok(&["remove", "--rule-id", &id]);
    let gone = common::wait_for(Duration::from_secs(4), || {
        querier_row(&q).is_none().then_some(())
    });
    assert!(gone.is_some(), "no leave: {:?}", querier_row(&q));
    let maddr = String::from_utf8_lossy(&t.relay.run("ip maddr show dev r0").stdout).to_string();
    assert!(!maddr.contains("01:00:5e:07:07:07"), "MAC left: {maddr}");
}

#[test]
fn input_packets_do_not_reach_the_local_ip_stack() {
    if !require_root("input_packets_do_not_reach_the_local_ip_stack") {
        return;
    }
    let t = Relay3::new("inl");
    let d = relay(&t, vec![]);
    let (delivers, udp) = relay_and_count(&t);
    // Background traffic (IGMP, IPv6 neighbour discovery) is a few packets.
    assert!(
        delivers < 100 && udp < 100,
        "the IP stack took the stream: InDelivers +{delivers}, UDP +{udp}"
    );
    drop(d);

    // The IP join (the A/B switch) is what made it take every packet: the
    // counters above can see it.
    let t = Relay3::new("inj");
    let _d = relay(&t, vec![("MCR_INPUT_JOIN", "ip")]);
    let (delivers, udp) = relay_and_count(&t);
    assert!(
        delivers >= N && udp >= N,
        "with an IP join every packet is delivered locally: InDelivers +{delivers}, UDP +{udp}"
    );
}
