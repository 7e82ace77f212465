//! MCR's IGMP querier and FRR 8.4 pimd's (`ip igmp`) on one LAN, through
//! the harness in `tests/common/frr.rs` (issue 9: "FRR pimd on the same
//! LAN as a competing querier: the lower address wins, both ways round;
//! FRR's `show ip igmp interface json` agrees on who the querier is").
//!
//! Both sides run a 2 s query interval and a 1 s maximum response time,
//! so the other-querier-present interval (robustness × QI + QRI / 2) is
//! 4.5 s on either side. Each test prints how long the election and the
//! takeover took.

mod common;

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::{Daemon, DaemonOpts};
use common::frr::require_frr;
use common::lab::{Lab, LabSpec};
use common::{ip, require_root, wait_for, Netns};
use mcr::igmp::instance::InterfaceRow;

/// The response time first: FRR refuses a query interval that is not
/// longer than the response time it has at that moment (10 s by default).
const FRR_CONFIG: &str = "interface f0\n ip igmp\n ip igmp query-max-response-time 10\n \
                          ip igmp query-interval 2\n!\n";
/// Other-querier-present interval of either side: 2 × 2 s + 1 s / 2.
const OQPI: f64 = 4.5;

/// An FRR router and MCR's namespace `m` on one LAN (f0 ── m0); MCR is
/// started by the test.
fn lan(tag: &str, frr_addr: &str, mcr_addr: &str) -> Lab {
    LabSpec::new(tag)
        .frr("f")
        .host("m")
        .link(("f", "f0", ip(frr_addr)), ("m", "m0", ip(mcr_addr)))
        .frr_config("f", FRR_CONFIG)
        .build()
}

fn start_mcr(ns: &Netns) -> Daemon {
    let config =
        "{ igmp: { querier_interfaces: [\"m0\"], query_interval: 2, query_response_interval: 1 } }";
    Daemon::start(
        ns,
        DaemonOpts {
            config: Some(config),
            ..Default::default()
        },
    )
}

/// MCR's row for m0: (querier?, current querier).
fn mcr_view(d: &Daemon) -> Option<(bool, Ipv4Addr)> {
    let rows: Vec<InterfaceRow> = d.ctl_json(&["igmp", "interfaces"]);
    rows.iter()
        .find(|r| r.interface == "m0")
        .map(|r| (r.querier.querier, r.querier.current_querier))
}

/// FRR's view of f0: (querier?, querier address).
fn frr_view(v: &serde_json::Value) -> Option<(bool, String)> {
    let f0 = v.get("f0")?;
    // FRR leaves `querier` out when it is not the querier.
    let querier = f0.get("querier").and_then(|q| q.as_bool()).unwrap_or(false);
    let ip = f0.get("querierIp")?.as_str()?.to_string();
    Some((querier, ip))
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[test]
fn mcr_with_the_lower_address_wins_and_frr_takes_over_when_it_stops() {
    let test = "mcr_with_the_lower_address_wins_and_frr_takes_over_when_it_stops";
    if !require_root(test) || !require_frr(test) {
        return;
    }
    let (mcr_addr, frr_addr) = ("10.204.1.1", "10.204.1.2");
    let l = lan("iqm", frr_addr, mcr_addr);
    l.frr("f")
        .wait_json("show ip igmp interface", Duration::from_secs(10), |v| {
            (frr_view(v)? == (true, frr_addr.to_string())).then_some(())
        });
    let t0 = Instant::now();
    let mut d = start_mcr(l.ns("m"));
    // MCR's startup query makes FRR give way at once (RFC 3376 §6.6.2).
    l.frr("f")
        .wait_json("show ip igmp interface", Duration::from_secs(10), |v| {
            (frr_view(v)? == (false, mcr_addr.to_string())).then_some(())
        });
    let frr_yields = t0.elapsed();
    // And MCR stays querier: FRR's queries, from a higher address, change
    // nothing. Checked past several of FRR's query intervals.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        mcr_view(&d),
        Some((true, mcr_addr.parse().unwrap())),
        "MCR has the lower address"
    );
    let v = l.frr("f").json("show ip igmp interface");
    assert_eq!(frr_view(&v), Some((false, mcr_addr.to_string())), "{v}");

    // MCR stops: FRR takes over after its other-querier-present interval.
    d.stop();
    let t1 = Instant::now();
    l.frr("f")
        .wait_json("show ip igmp interface", Duration::from_secs(15), |v| {
            (frr_view(v)? == (true, frr_addr.to_string())).then_some(())
        });
    let takeover = t1.elapsed();
    eprintln!(
        "IGMP vs FRR: FRR ({frr_addr}) yielded to MCR ({mcr_addr}) {:.2} s after MCR started; took over {:.2} s after MCR stopped (OQPI {OQPI} s)",
        secs(frr_yields),
        secs(takeover)
    );
    assert!(secs(takeover) <= OQPI + 2.5, "takeover took {takeover:?}");
}

#[test]
fn frr_with_the_lower_address_wins_and_mcr_takes_over_when_frr_stops() {
    let test = "frr_with_the_lower_address_wins_and_mcr_takes_over_when_frr_stops";
    if !require_root(test) || !require_frr(test) {
        return;
    }
    let (frr_addr, mcr_addr) = ("10.204.2.1", "10.204.2.2");
    let l = lan("iqf", frr_addr, mcr_addr);
    let frr_ip: Ipv4Addr = frr_addr.parse().unwrap();
    let mcr_ip: Ipv4Addr = mcr_addr.parse().unwrap();
    let t0 = Instant::now();
    let d = start_mcr(l.ns("m"));
    // MCR starts as querier, hears FRR's next query and gives way.
    wait_for(Duration::from_secs(10), || {
        (mcr_view(&d)? == (false, frr_ip)).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "MCR did not yield to FRR: {}\nFRR: {}",
            d.ctl_ok(&["igmp", "interfaces"]),
            l.frr("f").json("show ip igmp interface")
        )
    });
    let mcr_yields = t0.elapsed();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        mcr_view(&d),
        Some((false, frr_ip)),
        "FRR has the lower address"
    );
    let v = l.frr("f").json("show ip igmp interface");
    assert_eq!(frr_view(&v), Some((true, frr_addr.to_string())), "{v}");

    // FRR stops querying on the LAN: MCR takes over after the interval.
    let out = Command::new("vtysh")
        .args(["-N", &l.frr("f").pathspace])
        .args([
            "-c",
            "configure terminal",
            "-c",
            "interface f0",
            "-c",
            "no ip igmp",
        ])
        .output()
        .expect("run vtysh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let t1 = Instant::now();
    wait_for(Duration::from_secs(15), || {
        (mcr_view(&d)? == (true, mcr_ip)).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "MCR did not take over: {}\nFRR: {}\nvtysh said: {}",
            d.ctl_ok(&["igmp", "interfaces"]),
            l.frr("f").json("show ip igmp interface"),
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let takeover = t1.elapsed();
    eprintln!(
        "IGMP vs FRR: MCR ({mcr_addr}) yielded to FRR ({frr_addr}) {:.2} s after it started; took over {:.2} s after FRR stopped (OQPI {OQPI} s)",
        secs(mcr_yields),
        secs(takeover)
    );
    // FRR's last query came at most one query interval before the
    // command; the margin is for timers on a loaded machine.
    assert!(secs(takeover) <= OQPI + 1.0, "takeover took {takeover:?}");
    assert!(
        secs(takeover) >= OQPI - 2.5,
        "took over before the interval: {takeover:?}"
    );
}
