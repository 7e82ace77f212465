//! What `mcrctl` and `mcrgen` do when their input or output misbehaves:
//! a config "file" that never ends is refused at the configuration size
//! limit before it is read whole, and a reader of stdout that goes away
//! (`mcrctl list | head -1`) ends the program quietly, with no panic.
//!
//! No daemon and no root: `mcrctl` talks to a stand-in that answers every
//! request with a canned result, and `mcrgen` sends to 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mcr::control::{
    ActorInfo, OutputInfo, Response, RuleInfo, RuleState, StatsReport, StatusReport, WorkerInfo,
};
use mcr::rule::{OutputMode, RuleInput, RuleOutput};

const MCRCTL: &str = env!("CARGO_BIN_EXE_mcrctl");
const MCRGEN: &str = env!("CARGO_BIN_EXE_mcrgen");

fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mcr-cli-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rules(n: usize) -> Vec<RuleInfo> {
    (0..n)
        .map(|i| RuleInfo {
            id: format!("r{i:05}"),
            name: Some(format!("rule-{i}")),
            input: RuleInput {
                interface: "eth0".into(),
                group: [239, 1, (i / 256) as u8, (i % 256) as u8].into(),
                port: 5000,
                source: None,
            },
            outputs: vec![OutputInfo {
                output: RuleOutput {
                    group: [239, 2, 0, 1].into(),
                    port: 6000,
                    interface: "eth1".into(),
                    ttl: None,
                    mode: OutputMode::Republish,
                    members_only: false,
                },
                problem: None,
                no_members: false,
            }],
            state: RuleState::Active,
            reason: None,
        })
        .collect()
}

/// A control socket that answers `list`, `stats`, `workers` and `status`
/// with fixed results, one connection at a time, until the test ends.
fn fake_daemon(dir: &Path, n_rules: usize) -> PathBuf {
    let path = dir.join("control.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let list = Response::ok(rules(n_rules));
    let stats = Response::ok(StatsReport::default());
    let workers = Response::ok(vec![WorkerInfo {
        interface: "eth0".into(),
        index: 0,
        pid: Some(42),
        core: None,
        state: "running".into(),
        uptime_secs: 12.0,
        restarts: 0,
        rules: 3,
        table_hash: "00ab".into(),
        expected_hash: "00ab".into(),
        resyncs: 0,
        last_heartbeat_ms: Some(250),
        last_exit: None,
        backoff_ms: None,
    }]);
    let status = Response::ok(StatusReport {
        version: "0.0.0".into(),
        pid: 7,
        instance_id: "00000000-0000-4000-8000-000000000000".into(),
        uptime_secs: 3.0,
        config_file: None,
        fault_injection: false,
        rules: 0,
        workers: 0,
        actors: vec![ActorInfo {
            name: "root".into(),
            state: "running".into(),
            restarts: 0,
            last_failure: None,
        }],
    });
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let mut w = conn.try_clone().unwrap();
            let mut line = String::new();
            if BufReader::new(conn).read_line(&mut line).is_err() {
                continue;
            }
            let req: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let resp = match req.get("cmd").and_then(|c| c.as_str()) {
                Some("list") => &list,
                Some("stats") => &stats,
                Some("workers") => &workers,
                Some("status") => &status,
                _ => continue,
            };
            let mut bytes = serde_json::to_vec(resp).unwrap();
            bytes.push(b'\n');
            // The client may hang up early; that is what some tests do.
            let _ = w.write_all(&bytes);
        }
    });
    path
}

/// `mcrctl config <cmd> <file>` with no daemon at its socket (in `dir`):
/// its exit code and stderr.
fn config_without_daemon(dir: &Path, cmd: &str, file: &Path) -> (Option<i32>, String) {
    let out = Command::new(MCRCTL)
        .args(["--socket"])
        .arg(dir.join("no-daemon.sock"))
        .args(["config", cmd])
        .arg(file)
        .output()
        .expect("run mcrctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_from_dev_zero_is_refused_at_the_limit_without_reading_it() {
    let dir = scratch("zero");
    let z = dir.join("z.json5");
    std::os::unix::fs::symlink("/dev/zero", &z).unwrap();
    for cmd in ["check", "load"] {
        let started = Instant::now();
        // No daemon at this socket: the file must be refused before any
        // connection is tried, whatever the command.
        let (code, err) = config_without_daemon(&dir, cmd, &z);
        assert_eq!(code, Some(1), "config {cmd}: {err}");
        assert!(
            err.contains("limited to 16 MiB") && err.contains("z.json5"),
            "config {cmd} names the file and the limit: {err}"
        );
        assert!(
            !err.contains("cannot connect"),
            "refused before connecting: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "config {cmd} took {:?}",
            started.elapsed()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_file_over_the_limit_is_refused_with_its_size_and_one_at_the_limit_is_sent() {
    let dir = scratch("big");
    let limit = mcr::config::MAX_CONFIG_BYTES;
    let check = |bytes: usize| {
        let big = dir.join("big.json5");
        // A valid config padded with blanks, so only the size can refuse it.
        let mut text = b"{}".to_vec();
        text.resize(bytes, b' ');
        std::fs::write(&big, &text).unwrap();
        let out = config_without_daemon(&dir, "check", &big);
        let _ = std::fs::remove_file(&big);
        out
    };
    let (code, over) = check(limit + 1);
    assert_eq!(code, Some(1), "{over}");
    assert!(
        over.contains(&format!("{} bytes", limit + 1)) && over.contains("16 MiB"),
        "{over}"
    );
    // At the limit the file is read and sent: what stops it here is only
    // that no daemon listens.
    let (code, at) = check(limit);
    assert_eq!(code, Some(3), "no daemon: {at}");
    assert!(at.contains("cannot connect") && !at.contains("MiB"), "{at}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Run `mcrctl ARGS` against `sock`, read one line of its stdout and then
/// close the pipe, as `| head -1` does. Its exit status and stderr.
fn mcrctl_then_hang_up(sock: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new(MCRCTL)
        .arg("--socket")
        .arg(sock)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    {
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut first).unwrap();
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code(), first, err)
}

#[test]
fn mcrctl_piped_into_head_ends_quietly() {
    let dir = scratch("pipe");
    // Far more output than a pipe buffers, so the writes after `head`
    // left do fail.
    let sock = fake_daemon(&dir, 5000);
    for args in [&["list"][..], &["--json", "list"][..]] {
        let (code, first, err) = mcrctl_then_hang_up(&sock, args);
        assert!(!first.is_empty(), "{args:?}: a first line arrived");
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: quiet on stderr: {err}"
        );
        assert!(err.is_empty(), "{args:?}: nothing on stderr: {err}");
        assert_eq!(code, Some(0), "{args:?}: exit status");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mcrctl_with_stdout_already_closed_ends_quietly() {
    let dir = scratch("closed");
    let sock = fake_daemon(&dir, 3);
    for cmd in ["list", "stats", "workers", "status"] {
        let mut child = Command::new(MCRCTL)
            .arg("--socket")
            .arg(&sock)
            .arg(cmd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the only read end before mcrctl writes anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.is_empty(), "{cmd}: nothing on stderr: {err}");
        assert_eq!(out.status.code(), Some(0), "{cmd}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mcrctl_tables_reach_stdout_unchanged() {
    let dir = scratch("tables");
    let sock = fake_daemon(&dir, 2);
    let out = Command::new(MCRCTL)
        .arg("--socket")
        .arg(&sock)
        .arg("list")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("ID"), "{text}");
    assert!(
        lines[1].contains("eth0 239.1.0.0:5000") && lines[1].ends_with("active"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mcrgen_with_stdout_closed_ends_quietly() {
    for json in [false, true] {
        let mut cmd = Command::new(MCRGEN);
        cmd.args([
            "send",
            "--group",
            "127.0.0.1",
            "--port",
            "9",
            "--count",
            "3",
            "--rate",
            "1000",
        ]);
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "json {json}: {err}"
        );
        assert!(out.status.success(), "json {json}: {err}");
    }
}

#[test]
fn a_response_without_end_is_refused_at_the_limit() {
    let dir = scratch("endless");
    let path = dir.join("control.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let zeros = vec![b'0'; 1 << 20];
            // Until mcrctl hangs up: no newline, ever.
            while conn.write_all(&zeros).is_ok() {}
        }
    });
    let out = Command::new(MCRCTL)
        .arg("--socket")
        .arg(&path)
        .arg("list")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("longer than 256 MiB"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
