//! Early drop (`workers.early_drop`, `mcr::sys::xdp`) end to end: the XDP
//! program is on the input while mcrd runs, relaying is unaffected, and
//! it is gone once mcrd exits, by SIGTERM or SIGKILL (the supervisor holds
//! the only reference to its BPF link). A worker that dies with the
//! pressure flag set does not leave the input dropping: the supervisor and
//! the next worker clear it. Drops are counted in `mcrctl stats`
//! (`early_drops`). With `MCR_EARLY_DROP=off` nothing is attached. A
//! config reload that turns `workers.early_drop` off detaches the program
//! and one that turns it on attaches it again.

mod common;

use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use common::daemon::{send, Daemon, DaemonOpts};
use common::{require_root, wait_for, Netns, Relay3};

const RULE: &str =
    "{ rules: [ { name: \"r\", input: { interface: \"r0\", group: \"239.1.1.1\", port: 5000 }, \
     outputs: [ { interface: \"r1\", group: \"239.2.2.2\", port: 6000 } ] } ] }";

/// Whether an XDP program is attached to `dev` in `ns` (`ip -d link`).
fn xdp_on(ns: &Netns, dev: &str) -> bool {
    let out = ns.ip(&["-d", "link", "show", "dev", dev]);
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

/// Whether r0's peer (s0) accepts an MTU of 9000 (`ip link set`).
fn peer_mtu_9000(t: &Relay3) -> bool {
    std::process::Command::new("ip")
        .args(["-n", &t.src.name, "link", "set", "dev", "s0", "mtu", "9000"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn start(t: &Relay3, early: &str) -> Daemon {
    let d = Daemon::start(
        &t.relay,
        DaemonOpts {
            config: Some(RULE),
            env: vec![("MCR_EARLY_DROP", early), ("MCR_RX_PATH", "")],
            ..Default::default()
        },
    );
    d.wait_active(Duration::from_secs(20));
    d
}

#[test]
fn the_program_is_attached_while_mcrd_runs_and_gone_after_it_exits_even_by_sigkill() {
    if !require_root("early_drop attach/detach") {
        return;
    }
    let t = Relay3::new("xdpa");
    assert!(!xdp_on(&t.relay, "r0"));

    let mut d = start(&t, "xdp");
    assert!(
        xdp_on(&t.relay, "r0"),
        "no XDP program on r0:\n{}",
        d.log_text()
    );
    assert!(
        d.log_text()
            .contains("early drop on r0: XDP program attached (generic mode)"),
        "a veth gets generic mode: {}",
        d.log_text()
    );
    // Native XDP on r0 would cap its peer's MTU at about a page; generic
    // mode leaves the sender free to take jumbo frames.
    assert!(
        peer_mtu_9000(&t),
        "the peer cannot raise its MTU while the program is attached"
    );
    t.src.ip(&["link", "set", "dev", "s0", "mtu", "1500"]);
    assert!(!xdp_on(&t.relay, "r1"), "outputs get no program");
    t.relay_all(300, 1000, 1000);
    d.stop();
    assert!(!xdp_on(&t.relay, "r0"), "program left after SIGTERM");

    let mut d = start(&t, "xdp");
    assert!(xdp_on(&t.relay, "r0"));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    d.stop();
    assert!(
        wait_for(Duration::from_secs(5), || (!xdp_on(&t.relay, "r0"))
            .then_some(()))
        .is_some(),
        "program left after SIGKILL of mcrd"
    );
    // The workers died with it; a new mcrd attaches again.
    let mut d = start(&t, "xdp");
    assert!(xdp_on(&t.relay, "r0"));
    t.relay_all(300, 1000, 1000);
    d.stop();

    // The benchmarks' override: native mode even on a veth, which caps
    // the peer's MTU for as long as it is attached.
    let mut d = start(&t, "native");
    assert!(
        d.log_text()
            .contains("early drop on r0: XDP program attached (native mode)"),
        "{}",
        d.log_text()
    );
    assert!(
        !peer_mtu_9000(&t),
        "native XDP on a veth caps its peer's MTU"
    );
    t.relay_all(300, 1000, 1000);
    d.stop();

    // The default (no override, no config key) and the A/B override:
    // nothing attached, the reason in the log.
    let mut d = start(&t, "");
    assert!(!xdp_on(&t.relay, "r0"), "attached by default");
    t.relay_all(300, 1000, 1000);
    d.stop();
    let d = start(&t, "off");
    assert!(!xdp_on(&t.relay, "r0"));
    assert!(
        d.log_text()
            .contains("no early drop on r0: workers.early_drop is off"),
        "{}",
        d.log_text()
    );
    t.relay_all(300, 1000, 1000);
}

/// A duplicate of worker `pid`'s descriptor of the early-drop map, taken
/// with pidfd_getfd (the test runs as root).
fn worker_map(pid: u32) -> mcr::sys::xdp::PressureMap {
    let dir = format!("/proc/{pid}/fd");
    let fd_num = std::fs::read_dir(&dir)
        .expect("worker's fds")
        .filter_map(|e| e.ok())
        .find_map(|e| {
            let target = std::fs::read_link(e.path()).ok()?;
            let n: i32 = e.file_name().to_str()?.parse().ok()?;
            let info =
                std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{n}")).unwrap_or_default();
            (target.to_string_lossy() == "anon_inode:bpf-map" && info.contains("map_flags:\t0x400"))
                .then_some(n)
        })
        .unwrap_or_else(|| {
            let fds: Vec<String> = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok())
                .map(|e| format!("{:?} -> {:?}", e.file_name(), std::fs::read_link(e.path())))
                .collect();
            panic!("worker {pid} holds no early-drop map; its fds: {fds:?}")
        });
    // SAFETY: plain syscalls on integers; each result is checked and the
    // descriptor pidfd_getfd returns is new and ours alone.
    let fd = unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0);
        assert!(
            pidfd >= 0,
            "pidfd_open: {}",
            std::io::Error::last_os_error()
        );
        let fd = libc::syscall(libc::SYS_pidfd_getfd, pidfd as libc::c_int, fd_num, 0);
        libc::close(pidfd as libc::c_int);
        assert!(fd >= 0, "pidfd_getfd: {}", std::io::Error::last_os_error());
        OwnedFd::from_raw_fd(fd as i32)
    };
    mcr::sys::xdp::PressureMap::map(fd).expect("map the early-drop flag")
}

#[test]
fn the_flag_drops_and_counts_and_a_worker_killed_with_it_set_leaves_the_input_relaying() {
    if !require_root("early_drop flag") {
        return;
    }
    let t = Relay3::new("xdpf");
    let d = start(&t, "xdp");
    t.relay_all(200, 1000, 1000);
    let pid = d.workers()[0].pid.expect("a running worker");
    let map = worker_map(pid);
    assert!(!map.pressure(), "an idle worker asks for no drop");

    // As a worker behind on its ring would: the input drops multicast
    // UDP before the worker sees it, and the worker reports the count.
    map.set_pressure(true);
    send(&t.src, "239.1.1.1", 5000, "s0", 200, 2000, 1000, &[]);
    let c = d.wait_worker_counters(Duration::from_secs(10), |c| c.early_drops >= 200);
    assert_eq!(c.early_drops, 200, "{c:?}");

    // The worker dies with the flag set: the next one relays everything.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    wait_for(Duration::from_secs(20), || {
        d.workers()
            .into_iter()
            .find(|w| w.state == "running" && w.pid.is_some_and(|p| p != pid))
    })
    .unwrap_or_else(|| panic!("no new worker:\n{}", d.log_text()));
    d.wait_active(Duration::from_secs(20));
    assert!(!map.pressure(), "the flag was cleared");
    t.relay_all(300, 1000, 1000);
    assert!(xdp_on(&t.relay, "r0"), "the program stays across restarts");
}

/// The config with `workers.early_drop` set to `early`.
fn config_with(early: &str) -> String {
    let rules = RULE.trim().trim_start_matches('{').trim_end_matches('}');
    format!("{{ workers: {{ early_drop: \"{early}\" }}, {rules} }}")
}

#[test]
fn a_reload_that_turns_early_drop_off_detaches_it_and_one_that_turns_it_on_attaches_it() {
    if !require_root("early_drop reload") {
        return;
    }
    let t = Relay3::new("xdpr");
    // Turned on by the config (not the environment, which would override
    // every reload).
    let on = config_with("xdp");
    let d = Daemon::start(
        &t.relay,
        DaemonOpts {
            config: Some(&on),
            env: vec![("MCR_EARLY_DROP", ""), ("MCR_RX_PATH", "")],
            ..Default::default()
        },
    );
    d.wait_active(Duration::from_secs(20));
    assert!(xdp_on(&t.relay, "r0"), "{}", d.log_text());
    let file = d.config.clone().expect("startup file");
    let first = d.workers()[0].pid.expect("a running worker");

    std::fs::write(&file, config_with("off")).expect("write config");
    d.ctl_ok(&["config", "reload"]);
    wait_for(Duration::from_secs(5), || {
        (!xdp_on(&t.relay, "r0")).then_some(())
    })
    .unwrap_or_else(|| panic!("still attached after the reload to off:\n{}", d.log_text()));
    d.wait_active(Duration::from_secs(20));
    t.relay_all(300, 1000, 1000);
    assert_eq!(
        d.workers()[0].pid,
        Some(first),
        "turning early drop off needs no worker restart"
    );

    std::fs::write(&file, config_with("xdp")).expect("write config");
    d.ctl_ok(&["config", "reload"]);
    wait_for(Duration::from_secs(5), || {
        xdp_on(&t.relay, "r0").then_some(())
    })
    .unwrap_or_else(|| panic!("not attached after the reload to xdp:\n{}", d.log_text()));
    // The worker restarts once to get the flag map, then relays.
    let w = wait_for(Duration::from_secs(20), || {
        d.workers()
            .into_iter()
            .find(|w| w.state == "running" && w.pid.is_some_and(|p| p != first))
    })
    .unwrap_or_else(|| panic!("the worker did not restart:\n{}", d.log_text()));
    d.wait_active(Duration::from_secs(20));
    let map = worker_map(w.pid.expect("pid"));
    assert!(!map.pressure());
    t.relay_all(300, 1000, 1000);
}
