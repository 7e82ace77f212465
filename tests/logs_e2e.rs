//! Logs that explain: with a data-plane facility raised to debug in a
//! running daemon, every dropped frame's reason reaches the log under its
//! facility; at the default level none does; a flood of 100 000 bad
//! frames yields a bounded number of lines and a count of the rest.

mod common;

use std::time::Duration;

use common::daemon::{inject, Daemon};
use common::{bin, ip, require_root, rule_config, wait_for, Relay3};
use mcr::wire::UdpPacketSpec;

fn spec(ttl: u8) -> UdpPacketSpec {
    let mut s = UdpPacketSpec::new(ip("10.10.1.1"), ip("239.1.1.1"), 4000, 5000);
    s.ttl = ttl;
    s
}

fn bad_ip_checksum(i: usize) -> Vec<u8> {
    let mut p = spec(64).build_checksummed(&vec![b'q'; 40 + i % 16]);
    p[10] ^= 0xff;
    p
}

fn lines_with(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn raised_facilities_explain_drops_and_a_flood_stays_bounded() {
    if !require_root("raised_facilities_explain_drops_and_a_flood_stays_bounded") {
        return;
    }
    let t = Relay3::new("logs");
    let d = Daemon::with_config(
        &t.relay,
        &rule_config("239.1.1.1", 5000, &[("r1", "239.2.2.2", 6000)]),
    );
    let c0 = d.wait_worker_counters(Duration::from_secs(5), |_| true);

    // At the default level (info) a drop is counted, not logged.
    inject(&t.src, "s0", &[bad_ip_checksum(0)]);
    d.wait_worker_counters(Duration::from_secs(5), |c| {
        c.ip_checksum_errors > c0.ip_checksum_errors
    });
    assert_eq!(lines_with(&d.log_text(), "dropped on r0"), 0);

    d.ctl_ok(&[
        "log-level",
        "set",
        "--facility",
        "PacketParser",
        "--level",
        "debug",
    ]);
    d.ctl_ok(&[
        "log-level",
        "set",
        "--facility",
        "Ingress",
        "--level",
        "debug",
    ]);
    // The level reaches the worker over IPC: wait until a probe shows up.
    let mut truncated = spec(64).build_checksummed(&[b't'; 80]);
    truncated[3] = 200; // total length beyond the frame
    let reasons = [
        (
            "PacketParser",
            "dropped on r0: bad IPv4 header checksum (ip_checksum_errors): 10.10.1.1:4000 -> 239.1.1.1:5000",
        ),
        ("PacketParser", "dropped on r0: malformed IPv4/UDP"),
        ("Ingress", "dropped on r0: TTL 0 (ttl_zero): 10.10.1.1:4000"),
    ];
    let log = wait_for(Duration::from_secs(10), || {
        inject(
            &t.src,
            "s0",
            &[
                bad_ip_checksum(1),
                truncated.clone(),
                spec(0).build_checksummed(b"ttl zero"),
            ],
        );
        let log = d.log_text();
        reasons.iter().all(|(_, r)| log.contains(r)).then_some(log)
    })
    .unwrap_or_else(|| panic!("drop reasons never logged:\n{}", d.log_text()));
    for (facility, reason) in reasons {
        let line = log.lines().find(|l| l.contains(reason)).unwrap_or_default();
        assert!(line.contains("DEBUG"), "{line}");
        assert!(line.contains(facility), "{line} is not under {facility}");
    }

    // A flood: 100 000 frames with a bad header checksum.
    let before = lines_with(&d.log_text(), "bad IPv4 header checksum");
    let c1 = d.wait_worker_counters(Duration::from_secs(5), |_| true);
    let packets: Vec<Vec<u8>> = (0..100).map(bad_ip_checksum).collect();
    let mut cmd = t.src.cmd(bin("mcrgen").to_str().expect("utf-8"));
    cmd.args(["inject", "--interface", "s0", "--count", "1000"]);
    for p in &packets {
        let hex: String = p.iter().map(|b| format!("{b:02x}")).collect();
        cmd.args(["--packet", &hex]);
    }
    let out = cmd.output().expect("mcrgen inject");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Until the count stops growing (a worker short of buffers loses
    // some of the flood in the kernel).
    let mut counted = 0;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(500));
        let c = d.wait_worker_counters(Duration::from_secs(5), |_| true);
        let now = c.ip_checksum_errors - c1.ip_checksum_errors;
        if now == counted && now > 0 {
            break;
        }
        counted = now;
    }
    assert!(
        counted > 50_000,
        "only {counted} of the flood reached the worker"
    );
    // The lines held back are reported as a count once the limiter's
    // window ends, even though the flood is over.
    let log = wait_for(Duration::from_secs(25), || {
        let log = d.log_text();
        log.contains("more \"bad IPv4 header checksum\" drops not logged")
            .then_some(log)
    })
    .unwrap_or_else(|| panic!("no count of held-back lines:\n{}", d.log_text()));
    let flood_lines = lines_with(&log, "bad IPv4 header checksum") - before;
    eprintln!("flood: {counted} bad frames counted, {flood_lines} log lines about them");
    assert!(
        (1..=40).contains(&flood_lines),
        "{counted} bad frames gave {flood_lines} log lines"
    );
}
