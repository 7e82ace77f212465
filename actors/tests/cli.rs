//! The `mcrd` command line: what a user typing it by hand sees. (Being an
//! integration test of package `mcrd` also makes `cargo test --workspace`
//! build the `mcrd` binary that the end-to-end tests in `tests/` drive.)

use std::process::Command;

fn mcrd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mcrd"))
}

#[test]
fn version_and_help_name_the_subcommands() {
    let out = mcrd().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let help = String::from_utf8_lossy(&mcrd().arg("--help").output().unwrap().stdout).to_string();
    for sub in ["supervisor", "demo"] {
        assert!(help.contains(sub), "--help lists {sub}: {help}");
    }
    assert!(
        !help.contains("demo-peer"),
        "internal subcommands stay hidden"
    );
}

#[test]
fn worker_run_by_hand_explains_itself() {
    // No fd 3 from a supervisor: a clear refusal, not a crash.
    let out = mcrd()
        .args(["worker", "--interface", "eth0"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("started by `mcrd supervisor`") || err.contains("fd 3"),
        "{err}"
    );
}

#[test]
fn bad_flags_are_refused_before_anything_starts() {
    let dir = std::env::temp_dir().join(format!("mcrd-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("s.sock");
    let out = mcrd()
        .args(["supervisor", "--log-level", "loud", "--socket"])
        .arg(&sock)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // Root sees the level error; others first hear about CAP_NET_RAW.
    assert!(
        err.contains("--log-level") || err.contains("CAP_NET_RAW"),
        "{err}"
    );
    assert!(!sock.exists(), "no socket left behind");
    let missing = dir.join("nope.json5");
    let out = mcrd()
        .args(["supervisor", "--config"])
        .arg(&missing)
        .arg("--socket")
        .arg(&sock)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nope.json5") || err.contains("CAP_NET_RAW"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_refuses_bad_sizes() {
    let out = mcrd()
        .args(["demo", "--size", "5", "--duration", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--size") || err.contains("root"), "{err}");
}

fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let msg = format!("SKIP {test}: needs root (mcrd demo creates network namespaces)");
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("{msg}; with CI=true a skipped test is a failure");
    }
    eprintln!("\n*** {msg} ***\n");
    false
}

/// The demo's per-second rows: (relayed, received, lost).
fn demo_rows(stdout: &str) -> Vec<(u64, u64, u64)> {
    stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 8
                || !f[0].ends_with('s')
                || f[0].trim_end_matches('s').parse::<u64>().is_err()
            {
                return None;
            }
            Some((f[1].parse().ok()?, f[3].parse().ok()?, f[5].parse().ok()?))
        })
        .collect()
}

fn demo_leftovers(pid: u32) -> Vec<String> {
    let prefix = format!("mcrdemo-{pid}");
    let mut left: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    if std::env::temp_dir().join(&prefix).exists() {
        left.push(format!("temporary directory {prefix}"));
    }
    left
}

#[test]
fn demo_relays_a_live_stream_and_removes_what_it_built() {
    // README's first command: it must relay, count, and clean up.
    if !require_root("demo_relays_a_live_stream_and_removes_what_it_built") {
        return;
    }
    let child = mcrd()
        .args(["demo", "--duration", "4"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let rows = demo_rows(&stdout);
    assert!(rows.len() >= 3, "a counter row every second: {stdout}");
    let (relayed, received, lost) = *rows.last().unwrap();
    // 1000 pps for ~3 s once the stream starts.
    assert!(relayed >= 1000, "the relay counted the stream: {stdout}");
    assert!(received >= 1000, "the receiver got the stream: {stdout}");
    assert_eq!(lost, 0, "{stdout}");
    assert_eq!(demo_leftovers(pid), Vec::<String>::new(), "{stdout}");
}

#[test]
fn demo_stopped_with_ctrl_c_removes_what_it_built() {
    if !require_root("demo_stopped_with_ctrl_c_removes_what_it_built") {
        return;
    }
    use std::io::{BufRead, BufReader};
    let mut child = mcrd()
        .arg("demo")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    // Read to the end in a thread: a closed pipe would fail the demo's prints.
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = String::new();
    let mut flowing = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while let Ok(line) =
        rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        seen.push_str(&line);
        seen.push('\n');
        if demo_rows(&line).first().is_some_and(|r| r.1 > 0) {
            flowing = true;
            break;
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let _ = reader.join();
    seen.extend(rx.try_iter().map(|l| l + "\n"));
    assert!(flowing, "the stream reached the receiver: {seen}");
    assert!(status.success(), "Ctrl-C is a clean stop: {status:?}");
    assert_eq!(demo_leftovers(pid), Vec::<String>::new(), "{seen}");
}
