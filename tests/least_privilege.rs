//! A running supervisor holds only the capabilities it still uses, and
//! still starts workers (which drop to their user with none at all).

mod common;

use std::time::{Duration, Instant};

use common::daemon::{Daemon, DaemonOpts};
use common::{require_root, Netns};

const CONFIG: &str = r#"{
  rules: [
    { name: "a", input: { interface: "d0", group: "239.1.1.1", port: 5000 },
      outputs: [{ interface: "d0", group: "239.2.2.1", port: 6000 }] },
  ],
}"#;

// Capability numbers from linux/capability.h.
const CAP_KILL: u32 = 5;
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_IPC_LOCK: u32 = 14;

/// A capability mask line (`CapEff:` …) of /proc/PID/status.
fn caps(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    u64::from_str_radix(line.trim(), 16).unwrap_or_else(|e| panic!("{field} {line:?}: {e}"))
}

fn names(mask: u64) -> Vec<u32> {
    (0..64).filter(|b| mask & (1u64 << b) != 0).collect()
}

#[test]
fn supervisor_keeps_only_the_capabilities_it_uses() {
    if !require_root("supervisor_keeps_only_the_capabilities_it_uses") {
        return;
    }
    let ns = Netns::new("caps");
    ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
    ns.ip(&["link", "set", "d1", "up"]);
    ns.ip(&["addr", "add", "10.9.0.1/24", "dev", "d0"]);
    ns.ip(&["link", "set", "d0", "up"]);
    let d = Daemon::start(
        &ns,
        DaemonOpts {
            config: Some(CONFIG),
            env: vec![("MCR_EARLY_DROP", "")],
            ..Default::default()
        },
    );
    let want = [
        CAP_KILL,
        CAP_SETGID,
        CAP_SETUID,
        CAP_NET_ADMIN,
        CAP_NET_RAW,
        CAP_IPC_LOCK,
        // No CAP_BPF: workers.early_drop is off by default, and the
        // capability is kept only when the XDP program is wanted.
    ]
    .iter()
    .fold(0u64, |m, b| m | (1u64 << b));
    for field in ["CapEff:", "CapPrm:", "CapBnd:"] {
        let got = caps(d.pid(), field);
        assert_eq!(
            got,
            want,
            "{field} of the supervisor: bits {:?}, want {:?}",
            names(got),
            names(want)
        );
    }
    // Still enough to start a worker, which ends with no capabilities.
    d.wait_active(Duration::from_secs(20));
    let t0 = Instant::now();
    let pid = loop {
        if let Some(p) = d.workers().iter().find_map(|w| w.pid) {
            break p;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no worker pid");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(caps(pid, "CapEff:"), 0, "worker {pid} kept capabilities");
    assert!(
        d.log_text().contains("dropped capabilities: "),
        "{}",
        d.log_text()
    );
}
