//! Early drop (`workers.early_drop`, `mcr::sys::xdp`) end to end: the XDP
//! program is on the input while mcrd runs, relaying is unaffected, and
//! it is gone once mcrd exits, by SIGTERM or SIGKILL (the supervisor holds
//! the only reference to its BPF link). The program decides alone: a
//! worker that stops reading (SIGSTOP) has its input's multicast UDP
//! dropped by the program once its ring's backlog passes the limit, not by
//! the full ring, and relays again as soon as it resumes, with no restart.
//! A worker killed while its input drops does not leave it dropping: the
//! supervisor disarms the program and the next worker relays. Drops are
//! counted in `mcrctl stats` (`early_drops`). With `MCR_EARLY_DROP=off` nothing is attached. A
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

/// A ring of 4 blocks (1 MiB) whose blocks are handed over full at the
/// burst's rate (a 20 ms block timeout), so that the ring's room is known:
/// about 230 frames of 1000-byte datagrams a block.
const SMALL_RING: &str = "{ workers: { early_drop: \"xdp\", rx_ring_mb: 1, rx_block_ms: 20 }, \
     rules: [ { name: \"r\", input: { interface: \"r0\", group: \"239.1.1.1\", port: 5000 }, \
     outputs: [ { interface: \"r1\", group: \"239.2.2.2\", port: 6000 } ] } ] }";

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).expect("signal the worker");
}

/// mcrd with the small ring, relaying, and its one worker's pid.
fn start_small(t: &Relay3) -> (Daemon, u32) {
    let d = Daemon::start(
        &t.relay,
        DaemonOpts {
            config: Some(SMALL_RING),
            env: vec![("MCR_EARLY_DROP", ""), ("MCR_RX_PATH", "")],
            ..Default::default()
        },
    );
    d.wait_active(Duration::from_secs(20));
    t.relay_all(200, 1000, 1000);
    let pid = d.workers()[0].pid.expect("a running worker");
    (d, pid)
}

const BURST: u64 = 3000;

#[test]
fn a_stopped_worker_has_its_input_dropped_by_the_program_and_relays_again_once_resumed() {
    if !require_root("early_drop stopped worker") {
        return;
    }
    let t = Relay3::new("xdps");
    let (d, pid) = start_small(&t);
    let map = worker_map(pid);
    assert!(map.limit() > 0, "the worker armed the program");
    let before = d.wait_worker_counters(Duration::from_secs(10), |_| true);

    // The worker stops reading: the burst fills its ring only up to the
    // limit (less than one block after the slow warm-up, at least a
    // quarter of the ring), the program drops the rest.
    let rx = common::daemon::recv(
        &t.dst,
        "239.2.2.2",
        6000,
        Some("d0"),
        &["--idle-timeout", "3"],
    );
    signal(pid, nix::sys::signal::Signal::SIGSTOP);
    send(&t.src, "239.1.1.1", 5000, "s0", BURST, 50_000, 1000, &[]);
    // The last frames may still wait in the input's backlog queue.
    std::thread::sleep(Duration::from_millis(200));
    let dropped = map.drops();
    assert!(
        dropped > BURST / 2,
        "the program dropped only {dropped} of {BURST} frames for a stopped worker"
    );
    assert!(
        dropped < BURST,
        "the program let nothing through: {dropped}"
    );

    // Resumed, the worker relays what the ring took, and its ring dropped
    // nothing: every frame was either relayed or dropped by the program.
    signal(pid, nix::sys::signal::Signal::SIGCONT);
    let rep = rx.finish(Duration::from_secs(30));
    let c = d.wait_worker_counters(Duration::from_secs(10), |c| {
        c.early_drops - before.early_drops >= dropped
    });
    assert_eq!(c.early_drops - before.early_drops, dropped, "{c:?}");
    assert_eq!(
        c.kernel_drops - before.kernel_drops,
        0,
        "the ring overflowed before the program dropped: {c:?}"
    );
    assert_eq!(
        rep.unique + dropped,
        BURST,
        "relayed {} + dropped {dropped} is not the burst: {rep:?}",
        rep.unique
    );

    // Traffic flows again, through the same worker.
    t.relay_all(500, 2000, 1000);
    assert_eq!(map.drops(), dropped, "nothing dropped once it reads again");
    assert_eq!(d.workers()[0].pid, Some(pid), "no restart was needed");
}

#[test]
fn a_worker_killed_while_its_input_drops_leaves_a_successor_that_relays() {
    if !require_root("early_drop killed worker") {
        return;
    }
    let t = Relay3::new("xdpk");
    let (d, pid) = start_small(&t);
    let map = worker_map(pid);
    signal(pid, nix::sys::signal::Signal::SIGSTOP);
    send(&t.src, "239.1.1.1", 5000, "s0", BURST, 50_000, 1000, &[]);
    assert!(map.drops() > 0, "the program is dropping");

    // The worker dies with its input dropping: the next one relays all.
    signal(pid, nix::sys::signal::Signal::SIGKILL);
    let w = wait_for(Duration::from_secs(20), || {
        d.workers()
            .into_iter()
            .find(|w| w.state == "running" && w.pid.is_some_and(|p| p != pid))
    })
    .unwrap_or_else(|| panic!("no new worker:\n{}", d.log_text()));
    d.wait_active(Duration::from_secs(20));
    // The successor first relays what its predecessor left in the ring;
    // the check below is for new traffic only.
    std::thread::sleep(Duration::from_millis(500));
    let dropped = map.drops();
    t.relay_all(500, 2000, 1000);
    assert_eq!(map.drops(), dropped, "the successor's input drops nothing");
    let succ = worker_map(w.pid.expect("pid"));
    assert!(succ.limit() > 0, "the successor armed the program again");
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
    assert!(map.limit() > 0, "the restarted worker armed the program");
    t.relay_all(300, 1000, 1000);
}
