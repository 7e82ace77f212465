//! Resources returned after churn: once rules are added and removed by the
//! thousand, the supervisor's file descriptors and memory go back near
//! where they were, and the input interfaces' multicast memberships go
//! back to what they were (issue 12, item 4). Figures come from /proc and
//! `ip maddr`, as an operator would read them.

mod common;

use std::time::{Duration, Instant};

use common::daemon::{add_named, remove_named, Daemon};
use common::procfs::{fd_count, rss_kb, socket_count};
use common::{require_root, wait_for, Relay3};

/// Rules added, then removed.
const CHURN: u32 = 1000;
/// Descriptors the supervisor may hold over its baseline after churn: a
/// control connection or an event subscription that is still closing.
const FD_SLACK: usize = 4;
/// Memory the supervisor may keep over its baseline after churn. Without
/// returning what churn freed it kept 8 MB more after this test (debug
/// build) and tens of MB in a release build after larger churn.
const RSS_SLACK_KB: u64 = 6 * 1024;

/// Rule `i`: inputs spread over r0 and r2, outputs over r1 and r3 with a
/// few TTLs, so churn opens memberships on both inputs and several egress
/// sockets per output interface.
fn add(d: &Daemon, c: &mut mcr::control::client::Client, tag: &str, i: u32) {
    let input_if = if i.is_multiple_of(2) { "r0" } else { "r2" };
    let group = format!("239.50.{}.{}", i / 200, i % 200 + 1);
    let out_if = if i.is_multiple_of(3) { "r1" } else { "r3" };
    let spec = format!(
        "239.60.{}.{}:6000:{out_if}:{}",
        i / 200,
        i % 200 + 1,
        1 + i % 4
    );
    if let Err(e) = add_named(c, &format!("{tag}{i}"), input_if, &group, 5000, &spec) {
        panic!("{e}\n{}", d.log_text());
    }
}

fn remove(c: &mut mcr::control::client::Client, tag: &str, i: u32) {
    remove_named(c, &format!("{tag}{i}")).unwrap_or_else(|e| panic!("{e}"));
}

/// IPv4 link-layer multicast addresses held on the relay's input interfaces
/// (r0 and r2), as `ip maddr` lists them. Input groups are held with
/// PACKET_ADD_MEMBERSHIP rather than one socket per group, so these, not
/// the supervisor's fds, show that the churn's groups were really joined
/// and then given back.
fn link_memberships(t: &Relay3) -> usize {
    ["r0", "r2"]
        .iter()
        .map(|dev| {
            let out = t.relay.ip(&["maddr", "show", "dev", dev]);
            String::from_utf8_lossy(&out.stdout)
                .lines()
                // IPv4 multicast MACs only: the kernel adds IPv6 ones
                // (solicited-node, after DAD) on its own schedule.
                .filter(|l| l.trim_start().starts_with("link") && l.contains("01:00:5e:"))
                .count()
        })
        .sum()
}

fn churn(d: &Daemon, tag: &str, n: u32) {
    let mut c = d.client();
    for i in 0..n {
        add(d, &mut c, tag, i);
    }
    for i in 0..n {
        remove(&mut c, tag, i);
    }
}

/// Both fds and RSS, once they have settled after the last change.
fn settled(pid: u32) -> (usize, u64) {
    let mut last = (fd_count(pid), rss_kb(pid));
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(250));
        let now = (fd_count(pid), rss_kb(pid));
        if now == last {
            break;
        }
        last = now;
    }
    last
}

#[test]
fn fds_and_memory_return_to_baseline_after_1000_adds_and_removes() {
    if !require_root("fds_and_memory_return_to_baseline_after_1000_adds_and_removes") {
        return;
    }
    let t = Relay3::new("churn");
    let _d2 = t.add_receiver(2, "churn-d2");
    let _d3 = t.add_receiver(3, "churn-d3");
    // A standing rule per input interface, so both workers exist before
    // and after: what is measured is what churn leaves behind, not a
    // worker that idles out later.
    let d = Daemon::with_config(
        &t.relay,
        r#"{ rules: [
            { name: "keep0", input: { interface: "r0", group: "239.1.1.1", port: 5000 },
              outputs: [ { interface: "r1", group: "239.2.2.1", port: 6000 } ] },
            { name: "keep2", input: { interface: "r2", group: "239.1.1.2", port: 5000 },
              outputs: [ { interface: "r3", group: "239.2.2.2", port: 6000 } ] },
        ] }"#,
    );
    let pid = d.pid();
    // A short warm-up, so one-time allocations (thread pools, first
    // buffers) are in the baseline rather than counted as kept.
    churn(&d, "warm", 50);
    wait_for(Duration::from_secs(20), || {
        (d.list().len() == 2).then_some(())
    })
    .expect("warm-up rules gone");
    let (fd0, rss0) = settled(pid);
    let sock0 = socket_count(pid);
    let maddr0 = link_memberships(&t);

    let t0 = Instant::now();
    let mut c = d.client();
    for i in 0..CHURN {
        add(&d, &mut c, "c", i);
    }
    let listed = d.list().len();
    assert_eq!(listed, CHURN as usize + 2, "every rule was added");
    // The WorkerManager joins the rules' groups after the RIB pushes the
    // tables, a moment after the adds return: measure the peak once they
    // are joined (bounded; the assertion below reports if they never are).
    // Distinct groups can share a link-layer address (IPv4 multicast maps
    // 32:1 onto MAC addresses), so only a rise, not the exact count, is
    // asked for.
    let _ = wait_for(Duration::from_secs(10), || {
        (link_memberships(&t) > maddr0 + 10).then_some(())
    });
    let (fd_peak, rss_peak, maddr_peak) = (fd_count(pid), rss_kb(pid), link_memberships(&t));
    for i in 0..CHURN {
        remove(&mut c, "c", i);
    }
    drop(c);
    eprintln!("{CHURN} adds and removes took {:?}", t0.elapsed());
    let back = wait_for(Duration::from_secs(30), || {
        let l = d.list();
        (l.len() == 2 && fd_count(pid) <= fd0 + FD_SLACK && link_memberships(&t) <= maddr0)
            .then_some(())
    });
    let (fd1, mut rss1) = settled(pid);
    // The daemon gives freed memory back on its 1 s tick once the rule
    // count has held for a tick, which can be after the figures above
    // stopped moving: allow it a few ticks (the figure is reported).
    let rss_wait = Instant::now();
    if let Some(r) = wait_for(Duration::from_secs(5), || {
        let r = rss_kb(pid);
        (r <= rss0 + RSS_SLACK_KB).then_some(r)
    }) {
        rss1 = r;
    } else {
        rss1 = rss1.min(rss_kb(pid));
    }
    eprintln!("RSS back within slack after {:?} more", rss_wait.elapsed());
    let sock1 = socket_count(pid);
    let maddr1 = link_memberships(&t);
    eprintln!(
        "supervisor fds: baseline {fd0} (sockets {sock0}), peak {fd_peak}, after churn {fd1} (sockets {sock1})"
    );
    eprintln!(
        "r0+r2 link-layer memberships: baseline {maddr0}, peak {maddr_peak}, after churn {maddr1}"
    );
    eprintln!(
        "supervisor RSS: baseline {rss0} kB, peak {rss_peak} kB, after churn {rss1} kB ({:+} kB)",
        rss1 as i64 - rss0 as i64
    );
    assert!(
        back.is_some() && fd1 <= fd0 + FD_SLACK,
        "fds {fd1} not back near baseline {fd0} (sockets {sock1} vs {sock0})"
    );
    assert!(
        maddr_peak > maddr0 + 10,
        "the churn's groups were not joined at its peak ({maddr_peak} link-layer memberships \
         vs {maddr0}), or this test measures nothing"
    );
    assert_eq!(
        maddr1, maddr0,
        "link-layer memberships not back to baseline after churn: one was leaked or lost"
    );
    assert!(
        rss1 <= rss0 + RSS_SLACK_KB,
        "RSS {rss1} kB not back within {RSS_SLACK_KB} kB of baseline {rss0} kB"
    );
    // The standing rules still relay.
    d.wait_active(Duration::from_secs(20));
}

/// The r0 worker, once one is listed and running.
fn running_worker(d: &Daemon) -> Option<mcr::control::WorkerInfo> {
    d.workers()
        .into_iter()
        .find(|w| w.interface == "r0" && w.state == "running" && w.pid.is_some())
}

const ONE_RULE: &str = r#"{ rules: [ { name: "t", input: { interface: "r0", group: "239.1.1.1", port: 5000 },
    outputs: [ { interface: "r1", group: "239.2.2.2", port: 6000 } ] } ] }"#;

#[test]
fn a_worker_replaced_after_an_input_flap_counts_a_restart() {
    if !require_root("a_worker_replaced_after_an_input_flap_counts_a_restart") {
        return;
    }
    let t = Relay3::new("flapr");
    let d = Daemon::with_config(&t.relay, ONE_RULE);
    let w0 = wait_for(Duration::from_secs(20), || running_worker(&d)).expect("worker runs");
    assert_eq!(w0.restarts, 0);
    t.relay.ip(&["link", "set", "r0", "down"]);
    wait_for(Duration::from_secs(20), || {
        running_worker(&d).is_none().then_some(())
    })
    .unwrap_or_else(|| panic!("the worker outlived its interface: {:?}", d.workers()));
    t.relay.ip(&["link", "set", "r0", "up"]);
    let w1 = wait_for(Duration::from_secs(20), || running_worker(&d))
        .unwrap_or_else(|| panic!("no worker after the flap: {:?}", d.workers()));
    assert_ne!(w1.pid, w0.pid, "a new process replaced the old one");
    assert_eq!(w1.restarts, 1, "the replacement is a restart: {w1:?}");
    d.wait_active(Duration::from_secs(20));
    t.relay_all(300, 2000, 500);
}

#[test]
fn output_counters_go_on_when_the_output_interface_is_recreated() {
    if !require_root("output_counters_go_on_when_the_output_interface_is_recreated") {
        return;
    }
    let t = Relay3::new("reout");
    let d = Daemon::with_config(&t.relay, ONE_RULE);
    t.relay_all(400, 2000, 500);
    let sent = |d: &Daemon| d.stats().workers.first().map(|w| w.counters.sent);
    wait_for(Duration::from_secs(10), || {
        (d.stats().rules[0].outputs[0].packets == 400).then_some(())
    })
    .unwrap_or_else(|| panic!("{:?}", d.stats()));
    // The output's link vanishes and comes back (as a VPN reconnecting
    // would): a new ifindex, a new egress socket.
    t.relay.ip(&["link", "del", "r1"]);
    let problem = |d: &Daemon| {
        d.list()
            .first()
            .and_then(|r| r.outputs.first())
            .and_then(|o| o.problem.clone())
    };
    wait_for(Duration::from_secs(10), || {
        problem(&d)
            .filter(|p| p.contains("does not exist"))
            .map(|_| ())
    })
    .unwrap_or_else(|| panic!("the output never went missing: {:?}", d.list()));
    common::veth(&t.relay, "r1", "10.10.2.1/24", &t.dst, "d0", "10.10.2.2/24");
    d.wait_active(Duration::from_secs(20));
    wait_for(Duration::from_secs(10), || {
        problem(&d).is_none().then_some(())
    })
    .unwrap_or_else(|| panic!("the output did not come back: {:?}", d.list()));
    t.relay_all(400, 2000, 500);
    let st = wait_for(Duration::from_secs(10), || {
        let st = d.stats();
        (st.rules[0].outputs[0].packets >= 800).then_some(st)
    })
    .unwrap_or_else(|| panic!("the output restarted its count: {:?}", d.stats()));
    assert_eq!(st.rules[0].outputs[0].packets, 800, "{st:?}");
    assert_eq!(sent(&d), Some(800), "the worker's sent agrees");
    assert_eq!(st.rules[0].packets, 800);
}
