//! The IGMP proxy (RFC 4605; SPEC.md `igmp.proxy`; issue 9) end to end:
//!
//! ```text
//! source + upstream router ──s0 10.10.1.1 / 10.10.1.2 r0── proxy ──r1 10.10.2.1 / 10.10.2.2 d0── host
//! ```
//!
//! The upstream namespace runs a second MCR as the IGMP querier of that
//! link (the "router upstream" that must see the proxy's reports) and
//! tcpdump; the host's Linux kernel is the real downstream client. The
//! proxy has no static rule: a host joining on r1 must make it report the
//! group upstream and forward the source's stream, and the host leaving
//! must make it leave upstream and stop. Each step prints what it measured.

mod common;

use std::io::Read;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::daemon::{metric_sample as sample, recv, scrape_metrics, send_cmd, Daemon, DaemonOpts};
use common::{require_root, unique_port, wait_for, KillOnDrop, Netns, Relay3};
use mcr::control::{MrouteEntry, StatusReport};
use mcr::igmp::instance::{GroupRow, InterfaceRow, Role};

const GROUP: &str = "239.8.8.8";
const PORT: u16 = 7000;
const RATE: u32 = 1000;
const QI: f64 = 2.0;
const QRI: f64 = 1.0;
const LMQI: f64 = 0.2;
/// Last member query count = robustness (2).
const LMQC: f64 = 2.0;
const PROXY_UP: &str = "10.10.1.2";
/// Packets the host may see in a window without data (queries, IPv6).
const BACKGROUND: u64 = 10;

fn timers() -> String {
    format!(
        "query_interval: {QI}, query_response_interval: {QRI}, last_member_query_interval: {LMQI}"
    )
}

fn group() -> Ipv4Addr {
    GROUP.parse().expect("group")
}

/// The upstream router's row for the group: who reported it.
fn upstream_row(up: &Daemon) -> Option<GroupRow> {
    let rows: Vec<GroupRow> = up.ctl_json(&["igmp", "groups"]);
    rows.into_iter().find(|r| r.group.group == group())
}

fn proxy_rows(d: &Daemon) -> Vec<InterfaceRow> {
    d.ctl_json(&["igmp", "interfaces"])
}

fn upstream_counters(d: &Daemon) -> Option<(u64, u64)> {
    proxy_rows(d)
        .into_iter()
        .find(|r| r.role == Role::ProxyUpstream)
        .map(|r| {
            (
                r.querier.counters.reports_sent,
                r.querier.counters.leaves_sent,
            )
        })
}

fn proxy_restarts(d: &Daemon) -> Option<u32> {
    let s: StatusReport = d.ctl_json(&["status"]);
    s.actors
        .iter()
        .find(|a| a.name == "root/protocols/igmp-proxy")
        .map(|a| a.restarts)
}

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// What tcpdump (`-tt -v`) saw the proxy's own IGMP socket send about
/// GROUP: (time, text). The kernel's reports (the worker's input
/// membership makes the kernel join too) go out with TOS 0xc0 and IP id
/// 0; MCR's raw socket leaves TOS 0 and counts ids, which tells the two
/// apart.
fn captured(text: &str) -> Vec<(f64, String)> {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0].contains("tos 0x0,") && w[1].contains(&format!("{PROXY_UP} >")))
        .filter(|w| w[1].contains(GROUP))
        .filter_map(|w| {
            let t: f64 = w[0].split_whitespace().next()?.parse().ok()?;
            Some((t, w[1].to_string()))
        })
        .collect()
}

/// A stream to `group` out of `iface` until the guard drops: RATE
/// datagrams/s of 200 bytes, TTL 8 (enough to cross the proxy).
fn stream(ns: &Netns, group: &str, iface: &str) -> KillOnDrop {
    KillOnDrop(
        send_cmd(
            ns,
            group,
            PORT,
            iface,
            10_000_000,
            RATE,
            200,
            &["--ttl", "8"],
        )
        .spawn()
        .expect("spawn mcrgen send"),
    )
}

/// Whether `iface` in `ns` gets more than 50 packets past `base` (its
/// `rx_packets` before) within 3 s: traffic has started.
fn more_than_50(ns: &Netns, iface: &str, base: u64) -> bool {
    wait_for(Duration::from_secs(3), || {
        (ns.rx_packets(iface) - base > 50).then_some(())
    })
    .is_some()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[test]
fn a_downstream_join_is_reported_upstream_and_forwarded_until_the_leave() {
    if !require_root("a_downstream_join_is_reported_upstream_and_forwarded_until_the_leave") {
        return;
    }
    let t = Relay3::new("ipx");
    // The upstream router: an MCR querier on s0.
    let up_config = format!(
        "{{ igmp: {{ querier_interfaces: [\"s0\"], {} }} }}",
        timers()
    );
    let up = Daemon::start(
        &t.src,
        DaemonOpts {
            config: Some(&up_config),
            ..Default::default()
        },
    );
    let port = unique_port();
    let config = format!(
        "{{ igmp: {{ {}, proxy: {{ upstream: \"r0\", downstream: [\"r1\"] }} }}, metrics: {{ listen: \"127.0.0.1:{port}\" }} }}",
        timers()
    );
    let d = Daemon::start(
        &t.relay,
        DaemonOpts {
            config: Some(&config),
            fault_injection: true,
            ..Default::default()
        },
    );
    let mut dump = Command::new("ip");
    dump.args([
        "netns",
        "exec",
        &t.src.name,
        "tcpdump",
        "-l",
        "-n",
        "-tt",
        "-v",
    ])
    .args(["-i", "s0", "igmp"])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut dump = KillOnDrop(dump.spawn().expect("spawn tcpdump"));

    // Both roles are listed before any member.
    let rows = wait_for(Duration::from_secs(5), || {
        let r = proxy_rows(&d);
        (r.len() == 2).then_some(r)
    })
    .unwrap_or_else(|| panic!("igmp interfaces: {:?}", proxy_rows(&d)));
    let role = |i: &str| rows.iter().find(|r| r.interface == i).map(|r| r.role);
    assert_eq!(role("r0"), Some(Role::ProxyUpstream));
    assert_eq!(role("r1"), Some(Role::ProxyDownstream));
    let text = d.ctl_ok(&["igmp", "interfaces"]);
    assert!(
        text.contains("proxy-upstream") && text.contains("proxy-downstream"),
        "{text}"
    );

    let _sender = stream(&t.src, GROUP, "s0");
    std::thread::sleep(Duration::from_millis(500));
    let quiet = t.dst.received_during("d0", Duration::from_secs(1));
    assert!(
        quiet <= BACKGROUND,
        "{quiet} packets reached the host before it joined"
    );
    assert!(upstream_row(&up).is_none(), "reported before any member");

    // The host joins.
    let t0 = Instant::now();
    let join_epoch = now_epoch();
    let base = t.dst.rx_packets("d0");
    let member = recv(&t.dst, GROUP, PORT, Some("d0"), &[]);
    let row = wait_for(Duration::from_secs(3), || upstream_row(&up)).unwrap_or_else(|| {
        panic!(
            "the upstream router never heard of {GROUP}:\n{}",
            d.log_text()
        )
    });
    let join_to_upstream = t0.elapsed();
    assert_eq!(
        row.group.last_reporter,
        PROXY_UP.parse::<Ipv4Addr>().unwrap()
    );
    assert!(
        more_than_50(&t.dst, "d0", base),
        "no traffic within 3 s of the join: {}",
        d.ctl_ok(&["mroute"])
    );
    let join_to_traffic = t0.elapsed();
    eprintln!(
        "IGMP proxy: join -> upstream router lists the group {:.0} ms, -> traffic at the host {:.0} ms",
        ms(join_to_upstream),
        ms(join_to_traffic)
    );
    assert!(
        join_to_traffic < Duration::from_secs(2),
        "join took {join_to_traffic:?}"
    );
    let flowing = t.dst.datagrams_during("d0", Duration::from_secs(1), 200);
    assert!(
        flowing >= u64::from(RATE) * 8 / 10,
        "only {flowing} packets/s reach the joined host"
    );
    // The route is the proxy's: (*,G) from the upstream, origin igmp, the
    // member's interface as output, no static rule.
    let m: Vec<MrouteEntry> = d.ctl_json(&["mroute"]);
    let e = m
        .iter()
        .find(|e| e.group == group() && e.source.is_none())
        .unwrap_or_else(|| panic!("no (*,{GROUP}) in mroute: {m:?}"));
    assert_eq!(
        (e.interface.as_str(), e.origin.as_str()),
        ("r0", "igmp"),
        "{e:?}"
    );
    assert!(e.outputs.iter().any(|o| o.contains("on r1")), "{e:?}");
    assert!(d.list().is_empty(), "no static rule was added");
    let groups: Vec<GroupRow> = d.ctl_json(&["igmp", "groups"]);
    assert!(
        groups
            .iter()
            .any(|g| g.interface == "r0" && g.group.group == group()),
        "the upstream membership is listed: {groups:?}"
    );
    let (reports, _) = upstream_counters(&d).expect("upstream row");
    assert!(reports >= 1, "the proxy's host side sent no report");
    // The same counts on the Prometheus endpoint.
    let m = scrape_metrics(&t.relay, port);
    let upl = r#"{interface="r0",role="proxy-upstream"}"#;
    let down = r#"{interface="r1",role="proxy-downstream"}"#;
    assert!(
        sample(&m, &format!("mcr_igmp_reports_sent_total{upl}")) >= Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, &format!("mcr_igmp_groups{upl}")),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, &format!("mcr_igmp_groups{down}")),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, &format!("mcr_igmp_querier{down}")),
        Some(1.0),
        "{m}"
    );
    assert!(
        sample(&m, &format!("mcr_igmp_reports_received_total{down}")) >= Some(1.0),
        "{m}"
    );

    // The proxy actor panics: the RIB keeps its route, so the stream goes
    // on; the restarted proxy re-learns the members from the querier.
    d.ctl_ok(&["fault", "panic-actor", "igmp-proxy"]);
    wait_for(Duration::from_secs(5), || {
        (proxy_restarts(&d) == Some(1)).then_some(())
    })
    .unwrap_or_else(|| panic!("igmp-proxy did not restart:\n{}", d.log_text()));
    std::thread::sleep(Duration::from_secs(1));
    let after_panic = t.dst.datagrams_during("d0", Duration::from_secs(1), 200);
    assert!(
        after_panic >= u64::from(RATE) * 7 / 10,
        "only {after_panic} packets/s after the proxy restarted"
    );
    let (reports, _) = upstream_counters(&d).expect("the restarted proxy lists r0");
    assert!(reports >= 1, "the restarted proxy did not report the group");

    // Keeps being reported as the upstream router queries (well past its
    // group membership interval of 2 × QI + QRI = 5 s).
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        upstream_row(&up).is_some(),
        "the upstream membership expired"
    );
    let report = member.stop();
    let t1 = Instant::now();
    let leave_epoch = now_epoch();
    let max_gap = report.max_gap_us / 1000.0;
    // The proxy's panic must not withdraw its route: nothing is lost (a
    // withdrawal, however short, drops the packets of that moment), and the
    // stream does not stall. Gaps measured 13-38 ms at load 13-16 on the
    // shared 2-core VM, but 117-132 ms once in three runs at load 10-28 on
    // old and new code alike (sender and receiver descheduled, nothing
    // lost), so the bound is generous and the loss check is the proof.
    assert!(
        max_gap <= 500.0,
        "the stream paused {max_gap:.1} ms: {report:?}"
    );
    assert_eq!(
        report.lost, 0,
        "packets lost across the proxy's restart: {report:?}"
    );
    // The latency says where a pause was: packets held in the path arrive
    // as late as the pause was long; a sender that paused does not.
    eprintln!(
        "IGMP proxy: the host got {} packets, lost {}, longest gap {:.1} ms, latency max {:.1} ms p99 {:.1} ms (an igmp-proxy panic included)",
        report.unique,
        report.lost,
        max_gap,
        report.latency_us.max / 1000.0,
        report.latency_us.p99 / 1000.0
    );

    // The host left: traffic stops within LMQC × LMQI + margin, and the
    // proxy leaves upstream, so the upstream router drops the group.
    let limit = Duration::from_secs_f64(LMQC * LMQI + 1.0);
    wait_for(limit + Duration::from_secs(3), || {
        (t.dst.received_during("d0", Duration::from_millis(100)) <= 1).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "traffic did not stop after the leave: {}",
            d.ctl_ok(&["mroute"])
        )
    });
    let leave_to_quiet = t1.elapsed();
    wait_for(Duration::from_secs(4), || {
        upstream_row(&up).is_none().then_some(())
    })
    .unwrap_or_else(|| panic!("the upstream router still lists {GROUP}"));
    let leave_to_upstream_gone = t1.elapsed();
    assert!(
        leave_to_quiet <= limit,
        "leave took {leave_to_quiet:?} (limit {limit:?})"
    );
    let (_, leaves) = upstream_counters(&d).expect("upstream row");
    assert!(leaves >= 1, "the proxy's host side sent no leave");
    let after = t.dst.received_during("d0", Duration::from_secs(1));
    assert!(
        after <= BACKGROUND,
        "{after} packets reached the host after it left"
    );
    let m: Vec<MrouteEntry> = d.ctl_json(&["mroute"]);
    assert!(
        m.iter().all(|e| e.group != group()),
        "route left behind: {m:?}"
    );

    // What tcpdump saw upstream from MCR's socket: the proxy's join after
    // the host's, its leave (TO_IN {} in v3) after the host's leave.
    let _ = dump.0.kill();
    let mut out = String::new();
    if let Some(mut s) = dump.0.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    let lines = captured(&out);
    let first_join = lines
        .iter()
        .find(|(t, l)| *t >= join_epoch && l.contains("to_ex"))
        .unwrap_or_else(|| panic!("no report for {GROUP} from the proxy upstream:\n{out}"));
    let first_leave = lines
        .iter()
        .find(|(t, l)| *t >= leave_epoch && l.contains("to_in"))
        .unwrap_or_else(|| panic!("no leave for {GROUP} from the proxy upstream:\n{out}"));
    eprintln!(
        "IGMP proxy: on the upstream link: report {:.0} ms after the join, leave {:.0} ms after the host's leave; traffic stopped {:.0} ms after it (limit {:.0} ms); the upstream router dropped the group after {:.0} ms",
        (first_join.0 - join_epoch) * 1e3,
        (first_leave.0 - leave_epoch) * 1e3,
        ms(leave_to_quiet),
        ms(limit),
        ms(leave_to_upstream_gone)
    );
    assert!(first_leave.0 - leave_epoch < LMQC * LMQI + 1.0);
}

/// The proxy's row for `interface` in `igmp interfaces`.
fn row(d: &Daemon, interface: &str) -> Option<InterfaceRow> {
    proxy_rows(d).into_iter().find(|r| r.interface == interface)
}

/// Packets of the (*,GROUP) entry sent onto `interface`, per `mroute`.
fn mroute_outputs(d: &Daemon) -> Vec<String> {
    let m: Vec<MrouteEntry> = d.ctl_json(&["mroute"]);
    m.into_iter()
        .filter(|e| e.group == group() && e.source.is_none())
        .flat_map(|e| e.outputs)
        .collect()
}

/// RFC 4605 §4.2: the proxy forwards onto a downstream LAN only where it
/// is the querier, and only onto downstream interfaces.
///
/// ```text
/// source + upstream MCR ──s0/r0── proxy ──r1 10.10.2.9 / 10.10.2.2 d0── host + competing MCR querier
///                                   └───r2 10.10.3.1 / 10.10.3.2 d0── host (r2: a querier, not downstream)
/// ```
///
/// The competing querier has the lower address on the r1 LAN, so it
/// wins: the proxy still reports the host's group upstream but sends
/// nothing onto r1. When the competitor stops, the proxy takes over after
/// the other-querier-present interval and the stream reaches the host.
/// The member behind r2 never gets the proxied stream.
#[test]
fn the_proxy_forwards_only_where_it_is_the_querier_and_only_downstream() {
    if !require_root("the_proxy_forwards_only_where_it_is_the_querier_and_only_downstream") {
        return;
    }
    let t = Relay3::new("ipq");
    let other = t.add_receiver(2, "ipq-x");
    t.relay.ip(&["addr", "flush", "dev", "r1"]);
    t.relay.ip(&["addr", "add", "10.10.2.9/24", "dev", "r1"]);
    let querier = |ifc: &str| {
        format!(
            "{{ igmp: {{ querier_interfaces: [\"{ifc}\"], {} }} }}",
            timers()
        )
    };
    let up_config = querier("s0");
    let up = Daemon::start(
        &t.src,
        DaemonOpts {
            config: Some(&up_config),
            ..Default::default()
        },
    );
    let rival_config = querier("d0");
    let rival = Daemon::start(
        &t.dst,
        DaemonOpts {
            config: Some(&rival_config),
            ..Default::default()
        },
    );
    let config = format!(
        "{{ igmp: {{ querier_interfaces: [\"r2\"], {}, proxy: {{ upstream: \"r0\", downstream: [\"r1\"] }} }} }}",
        timers()
    );
    let d = Daemon::start(
        &t.relay,
        DaemonOpts {
            config: Some(&config),
            ..Default::default()
        },
    );
    let rival_ip: Ipv4Addr = "10.10.2.2".parse().unwrap();
    wait_for(Duration::from_secs(6), || {
        row(&d, "r1").filter(|r| !r.querier.querier && r.querier.current_querier == rival_ip)
    })
    .unwrap_or_else(|| {
        panic!(
            "the proxy did not yield r1 to 10.10.2.2: {:?}",
            row(&d, "r1")
        )
    });

    let _sender = stream(&t.src, GROUP, "s0");
    let _member = recv(&t.dst, GROUP, PORT, Some("d0"), &[]);
    let _bystander = recv(&other, GROUP, PORT, Some("d0"), &[]);
    // Both memberships are known; the r1 one is reported upstream.
    wait_for(Duration::from_secs(5), || {
        let g: Vec<GroupRow> = d.ctl_json(&["igmp", "groups"]);
        let on = |i: &str| {
            g.iter()
                .any(|r| r.interface == i && r.group.group == group())
        };
        (on("r1") && on("r2")).then_some(())
    })
    .unwrap_or_else(|| panic!("groups: {}", d.ctl_ok(&["igmp", "groups"])));
    wait_for(Duration::from_secs(3), || upstream_row(&up))
        .unwrap_or_else(|| panic!("a non-querier proxy must still report upstream"));
    std::thread::sleep(Duration::from_millis(500));
    let quiet = t.dst.received_during("d0", Duration::from_secs(2));
    assert!(
        quiet <= BACKGROUND,
        "{quiet} packets reached the r1 LAN, where 10.10.2.2 is the querier"
    );
    let outs = mroute_outputs(&d);
    assert!(
        outs.iter()
            .all(|o| !o.contains("on r1") && !o.contains("on r2")),
        "{outs:?}"
    );

    // The competing querier goes away: the proxy takes r1 over after the
    // other-querier-present interval (2 × QI + QRI / 2) and forwards.
    drop(rival);
    let t0 = Instant::now();
    let oqpi = Duration::from_secs_f64(2.0 * QI + QRI / 2.0);
    wait_for(oqpi + Duration::from_secs(3), || {
        row(&d, "r1").filter(|r| r.querier.querier)
    })
    .unwrap_or_else(|| panic!("the proxy did not take r1 over: {:?}", row(&d, "r1")));
    let to_querier = t0.elapsed();
    let base = t.dst.rx_packets("d0");
    assert!(
        more_than_50(&t.dst, "d0", base),
        "no traffic after the take-over: {:?}",
        mroute_outputs(&d)
    );
    let to_traffic = t0.elapsed();
    eprintln!(
        "IGMP proxy: competing querier gone -> proxy is querier on r1 after {:.0} ms (OQPI {:.0} ms), stream at the host after {:.0} ms",
        ms(to_querier),
        ms(oqpi),
        ms(to_traffic)
    );
    assert!(to_traffic < oqpi + Duration::from_secs(2), "{to_traffic:?}");
    let flowing = t.dst.datagrams_during("d0", Duration::from_secs(1), 200);
    assert!(
        flowing >= u64::from(RATE) * 8 / 10,
        "only {flowing} packets/s"
    );
    // r2 has a member but is not downstream: not the proxy's to serve.
    let bystander = other.received_during("d0", Duration::from_secs(1));
    assert!(
        bystander <= BACKGROUND,
        "{bystander} packets reached r2, which is not a proxy downstream"
    );
    let outs = mroute_outputs(&d);
    assert!(outs.iter().any(|o| o.contains("on r1")), "{outs:?}");
    assert!(outs.iter().all(|o| !o.contains("on r2")), "{outs:?}");
}

/// RFC 4605 §4.2: data from a source on a downstream link goes to the
/// upstream interface (whether or not anyone upstream asked) and to the
/// other downstream interfaces with members; the route goes away once the
/// source is quiet.
///
/// ```text
/// receiver (joins on s0) ──s0/r0── proxy ──r1/d0── source 10.10.2.2
///                                    └───r2/d0── member
/// ```
#[test]
fn a_downstream_source_is_forwarded_upstream_and_to_other_members() {
    if !require_root("a_downstream_source_is_forwarded_upstream_and_to_other_members") {
        return;
    }
    const G2: &str = "239.8.8.9";
    let t = Relay3::new("ips");
    let other = t.add_receiver(2, "ips-x");
    let config = format!(
        "{{ igmp: {{ {}, proxy: {{ upstream: \"r0\", downstream: [\"r1\", \"r2\"] }} }} }}",
        timers()
    );
    let d = Daemon::start(
        &t.relay,
        DaemonOpts {
            config: Some(&config),
            ..Default::default()
        },
    );
    wait_for(Duration::from_secs(5), || {
        (proxy_rows(&d).len() == 3).then_some(())
    })
    .unwrap_or_else(|| panic!("igmp interfaces: {:?}", proxy_rows(&d)));
    let upstream_rx = recv(&t.src, G2, PORT, Some("s0"), &[]);
    let member = recv(&other, G2, PORT, Some("d0"), &[]);
    std::thread::sleep(Duration::from_millis(500));

    let t0 = Instant::now();
    let (up0, x0) = (t.src.rx_packets("s0"), other.rx_packets("d0"));
    let sender = stream(&t.dst, G2, "d0");
    assert!(
        more_than_50(&t.src, "s0", up0),
        "the source's data never went upstream: {}",
        d.ctl_ok(&["mroute"])
    );
    let to_upstream = t0.elapsed();
    assert!(
        more_than_50(&other, "d0", x0),
        "the r2 member got nothing: {}",
        d.ctl_ok(&["mroute"])
    );
    let to_member = t0.elapsed();
    let m: Vec<MrouteEntry> = d.ctl_json(&["mroute"]);
    let source: Ipv4Addr = "10.10.2.2".parse().unwrap();
    let e = m
        .iter()
        .find(|e| e.source == Some(source) && e.group.to_string() == G2 && e.interface == "r1")
        .unwrap_or_else(|| panic!("no (10.10.2.2,{G2}) from r1 in mroute: {m:?}"));
    assert_eq!(
        (e.interface.as_str(), e.origin.as_str()),
        ("r1", "igmp"),
        "{e:?}"
    );
    assert!(e.outputs.iter().any(|o| o.contains("on r0")), "{e:?}");
    assert!(e.outputs.iter().any(|o| o.contains("on r2")), "{e:?}");
    let flowing = t.src.datagrams_during("s0", Duration::from_secs(1), 200);
    assert!(
        flowing >= u64::from(RATE) / 2,
        "only {flowing} packets/s upstream"
    );

    // The source stops: its route goes after the 10 s source timeout.
    drop(sender);
    let t1 = Instant::now();
    wait_for(Duration::from_secs(14), || {
        let m: Vec<MrouteEntry> = d.ctl_json(&["mroute"]);
        m.iter().all(|e| e.source != Some(source)).then_some(())
    })
    .unwrap_or_else(|| panic!("the quiet source's route stayed: {}", d.ctl_ok(&["mroute"])));
    let gone = t1.elapsed();
    let up = upstream_rx.stop();
    let x = member.stop();
    eprintln!(
        "IGMP proxy: downstream source -> upstream after {:.0} ms, -> the other downstream member after {:.0} ms; upstream got {} packets (lost {}), r2 member {} (lost {}); route gone {:.1} s after the source stopped",
        ms(to_upstream),
        ms(to_member),
        up.unique,
        up.lost,
        x.unique,
        x.lost,
        gone.as_secs_f64()
    );
    assert!(to_upstream < Duration::from_secs(2), "{to_upstream:?}");
    assert!(gone >= Duration::from_secs(9), "withdrawn after {gone:?}");
}
