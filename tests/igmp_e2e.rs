//! The IGMP querier against a real client: the Linux kernel of a host
//! namespace behind a veth, whose socket joining a group makes the kernel
//! send membership reports and, when the socket closes, leaves (SPEC.md,
//! `igmp`; issue 9). Timers are fast (query interval 2 s, response 1 s,
//! last member query interval 0.2 s) so every expiry is seconds long.
//! Each test prints what it measured.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::daemon::{inject, recv, Daemon, DaemonOpts};
use common::{require_root, veth, wait_for, Netns};
use mcr::control::client::Client;
use mcr::control::{Event, EventKind, Request, StatusReport};
use mcr::igmp::codec::{encode, Message};
use mcr::igmp::instance::{GroupRow, InterfaceRow};

const GROUP: &str = "239.7.7.7";
const ROUTER: &str = "10.9.0.1";
const HOST: &str = "10.9.0.2";
const QI: f64 = 2.0;
const QRI: f64 = 1.0;
const LMQI: f64 = 0.2;
/// Last member query count = robustness (2).
const LMQC: f64 = 2.0;
/// Group membership interval: robustness × QI + QRI.
const GMI: f64 = 2.0 * QI + QRI;

struct Lab {
    router: Netns,
    host: Netns,
    d: Daemon,
}

fn lab(tag: &str, fault_injection: bool, args: Vec<&str>) -> Lab {
    let router = Netns::new(&format!("{tag}r"));
    let host = Netns::new(&format!("{tag}h"));
    veth(
        &router,
        "r0",
        &format!("{ROUTER}/24"),
        &host,
        "h0",
        &format!("{HOST}/24"),
    );
    let igmp = format!(
        r#"{{"querier_interfaces":["r0"],"query_interval":{QI},"query_response_interval":{QRI},"last_member_query_interval":{LMQI}}}"#
    );
    let config = format!("{{ igmp: {igmp} }}");
    let d = Daemon::start(
        &router,
        DaemonOpts {
            fault_injection,
            args,
            config: Some(&config),
            ..Default::default()
        },
    );
    Lab { router, host, d }
}

fn groups(d: &Daemon) -> Vec<GroupRow> {
    d.ctl_json(&["igmp", "groups"])
}

fn interface(d: &Daemon) -> Option<InterfaceRow> {
    let rows: Vec<InterfaceRow> = d.ctl_json(&["igmp", "interfaces"]);
    rows.into_iter().find(|r| r.interface == "r0")
}

fn listed(d: &Daemon) -> Option<GroupRow> {
    let g: Ipv4Addr = GROUP.parse().ok()?;
    groups(d).into_iter().find(|r| r.group.group == g)
}

fn restarts(d: &Daemon, name: &str) -> Option<u32> {
    let s: StatusReport = d.ctl_json(&["status"]);
    s.actors.iter().find(|a| a.name == name).map(|a| a.restarts)
}

/// A subscriber to IGMP events, read on a thread of its own.
fn subscribe(d: &Daemon) -> std::sync::mpsc::Receiver<Event> {
    let mut c: Client = d.client();
    let _: serde_json::Value = c
        .request(&Request::Subscribe {
            events: vec![EventKind::Igmp],
        })
        .expect("subscribe");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(Some(e)) = c.next_event() {
            if tx.send(e.event).is_err() {
                return;
            }
        }
    });
    rx
}

fn next_event(rx: &std::sync::mpsc::Receiver<Event>, want: impl Fn(&Event) -> bool) -> Event {
    let end = Instant::now() + Duration::from_secs(10);
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(e) if want(&e) => return e,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("no matching IGMP event within 10 s");
}

#[test]
fn querier_sees_the_kernel_join_and_leave() {
    if !require_root("querier_sees_the_kernel_join_and_leave") {
        return;
    }
    let l = lab("iq", false, vec![]);
    let events = subscribe(&l.d);
    let i = wait_for(Duration::from_secs(5), || {
        interface(&l.d).filter(|i| i.querier.counters.queries_sent > 0)
    })
    .expect("mcrd sends queries on r0");
    assert!(i.querier.querier, "{i:?}");
    assert_eq!(i.querier.current_querier.to_string(), ROUTER);
    // The host saw the query: its kernel names the querier's version.
    let text = l.d.ctl_ok(&["igmp", "interfaces"]);
    assert!(text.contains("r0") && text.contains(" yes "), "{text}");

    let t0 = Instant::now();
    let r = recv(&l.host, GROUP, 5000, Some("h0"), &[]);
    let row = wait_for(Duration::from_secs(3), || listed(&l.d)).expect("group listed");
    let join_listed = t0.elapsed();
    assert_eq!(row.interface, "r0");
    assert_eq!(row.group.last_reporter.to_string(), HOST);
    assert!(
        join_listed < Duration::from_secs(1),
        "join took {join_listed:?}"
    );
    match next_event(&events, |e| matches!(e, Event::IgmpJoin { .. })) {
        Event::IgmpJoin { interface, group } => {
            assert_eq!(
                (interface.as_str(), group.to_string().as_str()),
                ("r0", GROUP)
            );
        }
        e => panic!("{e:?}"),
    }
    let text = l.d.ctl_ok(&["igmp", "groups"]);
    assert!(text.contains(GROUP) && text.contains(HOST), "{text}");

    let t1 = Instant::now();
    drop(r);
    let limit = Duration::from_secs_f64(LMQC * LMQI + 1.0);
    assert!(
        wait_for(limit + Duration::from_secs(2), || listed(&l.d)
            .is_none()
            .then_some(()))
        .is_some(),
        "group still listed after the host left"
    );
    let leave_gone = t1.elapsed();
    assert!(
        leave_gone <= limit,
        "leave took {leave_gone:?} (limit {limit:?})"
    );
    assert!(matches!(
        next_event(&events, |e| matches!(e, Event::IgmpLeave { .. })),
        Event::IgmpLeave { .. }
    ));
    let i = interface(&l.d).expect("r0 row");
    assert!(i.querier.counters.reports_received >= 1, "{i:?}");
    eprintln!(
        "IGMP e2e: join -> listed {:.0} ms; leave -> gone {:.0} ms (limit {:.0} ms)",
        join_listed.as_secs_f64() * 1e3,
        leave_gone.as_secs_f64() * 1e3,
        limit.as_secs_f64() * 1e3
    );
}

#[test]
fn a_host_that_vanishes_expires_after_the_membership_interval() {
    if !require_root("a_host_that_vanishes_expires_after_the_membership_interval") {
        return;
    }
    let l = lab("iv", false, vec![]);
    let _r = recv(&l.host, GROUP, 5000, Some("h0"), &[]);
    wait_for(Duration::from_secs(3), || listed(&l.d)).expect("group listed");
    // Let it answer a general query, so the timer was refreshed by one.
    std::thread::sleep(Duration::from_secs_f64(QI + QRI));
    let t0 = Instant::now();
    l.host.ip(&["link", "set", "h0", "down"]);
    std::thread::sleep(Duration::from_secs(1));
    assert!(listed(&l.d).is_some(), "removed before its timer ran out");
    let limit = Duration::from_secs_f64(GMI + 1.0);
    wait_for(limit, || listed(&l.d).is_none().then_some(()))
        .expect("group still listed after the membership interval");
    let gone = t0.elapsed();
    eprintln!(
        "IGMP e2e: silent host -> gone {:.0} ms (membership interval {:.0} ms)",
        gone.as_secs_f64() * 1e3,
        GMI * 1e3
    );
}

/// IPv4 header (protocol 2, TTL 1) around `payload`, from the host.
fn ip_packet(payload: &[u8], dst: Ipv4Addr) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 1;
    p[9] = 2;
    p[12..16].copy_from_slice(&HOST.parse::<Ipv4Addr>().unwrap().octets());
    p[16..20].copy_from_slice(&dst.octets());
    let mut sum: u32 = p
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p.extend_from_slice(payload);
    p
}

#[test]
fn malformed_igmp_is_counted_and_never_restarts_the_actor() {
    if !require_root("malformed_igmp_is_counted_and_never_restarts_the_actor") {
        return;
    }
    let l = lab("im", false, vec!["--log-level", "debug"]);
    wait_for(Duration::from_secs(5), || interface(&l.d)).expect("r0 row");
    let first_bad = Instant::now();
    let g: Ipv4Addr = GROUP.parse().unwrap();
    let report = encode(&Message::V2Report(g));
    let mut bad = Vec::new();
    // Every truncation of a valid report.
    for n in 0..report.len() {
        bad.push(ip_packet(&report[..n], g));
    }
    let truncations = report.len() as u64;
    // A wrong checksum.
    let mut sum = report.clone();
    sum[2] ^= 0x55;
    bad.push(ip_packet(&sum, g));
    // A correct report for a unicast "group".
    let unicast = encode(&Message::V2Report(Ipv4Addr::new(10, 1, 1, 1)));
    bad.push(ip_packet(&unicast, Ipv4Addr::new(10, 1, 1, 1)));
    // An IPv4 header that claims more bytes than arrived.
    let mut long = ip_packet(&report, g);
    long[2..4].copy_from_slice(&200u16.to_be_bytes());
    bad.push(long);
    let before = interface(&l.d).expect("r0 row").querier.counters;
    inject(&l.host, "h0", &bad);
    let c = wait_for(Duration::from_secs(3), || {
        interface(&l.d).map(|i| i.querier.counters).filter(|c| {
            c.checksum_errors > before.checksum_errors
                && c.malformed >= before.malformed + truncations + 2
        })
    })
    .unwrap_or_else(|| panic!("counters: {:?}", interface(&l.d)));
    assert_eq!(c.checksum_errors - before.checksum_errors, 1, "{c:?}");
    assert_eq!(c.malformed - before.malformed, truncations + 2, "{c:?}");
    assert_eq!(c.reports_received, before.reports_received, "{c:?}");
    assert!(listed(&l.d).is_none(), "a bad packet created a group");
    // A flood of them: every one counted, unless the actor fell so far
    // behind that the reader dropped some (and said so).
    const FLOOD: u64 = 3000;
    let flood: Vec<Vec<u8>> = (0..FLOOD / 10).map(|_| ip_packet(&sum, g)).collect();
    let t0 = Instant::now();
    // In bursts the veth's backlog (1000 packets) takes whole.
    for _ in 0..10 {
        inject(&l.host, "h0", &flood);
    }
    wait_for(Duration::from_secs(10), || {
        let n = interface(&l.d)?.querier.counters.checksum_errors - c.checksum_errors;
        (n == FLOOD || l.d.log_text().contains("IGMP flood over")).then_some(())
    })
    .unwrap_or_else(|| panic!("flood not accounted for: {:?}", interface(&l.d)));
    eprintln!(
        "IGMP e2e: {FLOOD} bad packets handled in {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(restarts(&l.d, "root/protocols/igmp/r0"), Some(0));
    // Each drop is explained at debug under Protocol, but a flood is not
    // copied into the log: 5 lines per 10 s window, then a count.
    let drop_lines = |log: &str| {
        log.lines()
            .filter(|x| x.contains("IGMP on r0: dropped a packet from"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let lines = drop_lines(&l.d.log_text());
    assert!(
        lines
            .iter()
            .any(|x| x.contains(HOST) && x.contains("truncated")),
        "{lines:#?}"
    );
    let windows = first_bad.elapsed().as_secs() / 10 + 1;
    assert!(
        !lines.is_empty() && lines.len() as u64 <= 5 * windows,
        "{} drop lines in {windows} window(s) for {} drops",
        lines.len(),
        FLOOD + truncations + 3
    );
    let held = wait_for(Duration::from_secs(15), || {
        l.d.log_text()
            .lines()
            .find(|x| x.contains("IGMP on r0:") && x.contains("not logged"))
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no count of the drops held back:\n{}", l.d.log_text()));
    eprintln!(
        "IGMP e2e: {} drop lines logged for {} drops; then: {held}",
        lines.len(),
        FLOOD + truncations + 3
    );
    // And the querier still works: a real join is listed.
    let _r = recv(&l.host, GROUP, 5000, Some("h0"), &[]);
    wait_for(Duration::from_secs(3), || listed(&l.d)).expect("group listed");
}

#[test]
fn a_restarted_igmp_actor_relearns_its_members() {
    if !require_root("a_restarted_igmp_actor_relearns_its_members") {
        return;
    }
    let l = lab("ir", true, vec!["--log-level", "debug"]);
    let _r = recv(&l.host, GROUP, 5000, Some("h0"), &[]);
    wait_for(Duration::from_secs(3), || listed(&l.d)).expect("group listed");
    let events = subscribe(&l.d);
    let t0 = Instant::now();
    let log_before = l.d.log_text().len();
    l.d.ctl_ok(&["fault", "panic-actor", "igmp/r0"]);
    wait_for(Duration::from_secs(5), || {
        (restarts(&l.d, "root/protocols/igmp/r0") == Some(1)).then_some(())
    })
    .expect("igmp/r0 restarted once");
    // The restarted querier asks at once; the host answers within the
    // response interval.
    wait_for(Duration::from_secs_f64(QRI + 2.0), || listed(&l.d))
        .expect("member re-learned after the restart");
    match next_event(&events, |e| matches!(e, Event::IgmpQuerier { .. })) {
        Event::IgmpQuerier {
            interface,
            querier,
            local,
        } => {
            assert_eq!(interface, "r0");
            assert_eq!(querier.to_string(), ROUTER);
            assert!(local, "the restarted actor is the querier again");
        }
        e => panic!("{e:?}"),
    }
    eprintln!(
        "IGMP e2e: panic -> member listed again {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    // Once the startup queries' answers are due, the restarted actor hands
    // the RIB the interface's whole membership, the host's group in it.
    let want = format!("memberships of r0: [({GROUP}, Exclude({{}}))]");
    let log = wait_for(Duration::from_secs(5), || {
        let log = l.d.log_text();
        log.get(log_before..)
            .is_some_and(|after| after.contains(want.as_str()))
            .then_some(log)
    })
    .unwrap_or_else(|| {
        panic!(
            "no membership hand-off after the restart:\n{}",
            l.d.log_text()
        )
    });
    assert!(log.contains("igmp actor panic requested"), "{log}");
}

#[test]
fn a_recreated_interface_gets_a_fresh_querier() {
    if !require_root("a_recreated_interface_gets_a_fresh_querier") {
        return;
    }
    let l = lab("ix", false, vec![]);
    let _r = recv(&l.host, GROUP, 5000, Some("h0"), &[]);
    wait_for(Duration::from_secs(3), || listed(&l.d)).expect("group listed");
    let old = interface(&l.d).expect("r0 row").ifindex;
    // Deleting r0 deletes its peer h0 too: the host's socket loses its
    // interface, and with it the membership.
    l.router.ip(&["link", "del", "r0"]);
    wait_for(Duration::from_secs_f64(QI + 2.0), || {
        listed(&l.d).is_none().then_some(())
    })
    .expect("members of a deleted interface are dropped");
    veth(
        &l.router,
        "r0",
        &format!("{ROUTER}/24"),
        &l.host,
        "h0",
        &format!("{HOST}/24"),
    );
    let t0 = Instant::now();
    let i = wait_for(Duration::from_secs(5), || {
        interface(&l.d).filter(|i| i.ifindex != old && i.querier.counters.queries_sent > 0)
    })
    .expect("a querier on the new r0");
    assert!(i.querier.querier, "{i:?}");
    let _r2 = recv(&l.host, GROUP, 5000, Some("h0"), &[]);
    wait_for(Duration::from_secs(3), || listed(&l.d)).expect("group listed on the new r0");
    eprintln!(
        "IGMP e2e: recreated interface -> querying again {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(restarts(&l.d, "root/protocols/igmp/r0"), Some(0));
}
