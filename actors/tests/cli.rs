//! The `mcrd` command line: what a user typing it by hand sees. (Being an
//! integration test of package `mcrd` also makes `cargo test --workspace`
//! build the `mcrd` binary that the end-to-end tests in `tests/` drive.)

use std::process::Command;

fn mcrd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mcrd"))
}

/// Run `cmd`, which must fail; what it said on stderr.
fn refused(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run mcrd");
    assert!(!out.status.success(), "{cmd:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
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
    let err = refused(
        mcrd()
            .args(["worker", "--interface", "eth0"])
            .stdin(std::process::Stdio::null()),
    );
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
    let err = refused(
        mcrd()
            .args(["supervisor", "--log-level", "loud", "--socket"])
            .arg(&sock),
    );
    // Root sees the level error; others first hear about CAP_NET_RAW.
    assert!(
        err.contains("--log-level") || err.contains("CAP_NET_RAW"),
        "{err}"
    );
    assert!(!sock.exists(), "no socket left behind");
    let missing = dir.join("nope.json5");
    let err = refused(
        mcrd()
            .args(["supervisor", "--config"])
            .arg(&missing)
            .arg("--socket")
            .arg(&sock),
    );
    assert!(
        err.contains("nope.json5") || err.contains("CAP_NET_RAW"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_refuses_bad_sizes() {
    let err = refused(mcrd().args(["demo", "--size", "5", "--duration", "1"]));
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

/// Every process below `pid` (by parent pid), found through /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // The field after the command name (which may hold spaces) is
            // the state, then the parent pid.
            let ppid = stat
                .rfind(')')
                .and_then(|i| stat[i + 2..].split_whitespace().nth(1))
                .and_then(|x| x.parse::<u32>().ok());
            if let Some(pp) = ppid {
                parent_of.push((p, pp));
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let cur = out[i];
        out.extend(
            parent_of
                .iter()
                .filter(|(_, pp)| *pp == cur)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    out.remove(0);
    out
}

/// A running `mcrd demo`: its stdout lines arrive on `lines`; its stderr
/// goes to a file, shown when a check fails.
struct Demo {
    child: std::process::Child,
    pid: u32,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: std::path::PathBuf,
    seen: String,
}

impl Demo {
    fn start(args: &[&str]) -> Demo {
        use std::io::{BufRead, BufReader};
        use std::os::unix::process::CommandExt;
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let stderr = std::env::temp_dir().join(format!(
            "mcrd-demo-test-{}-{}.err",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let mut child = mcrd()
            .arg("demo")
            .args(args)
            // Its own process group, as a shell gives it: Ctrl-C reaches
            // the whole group.
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        // Read to the end: a closed pipe would fail the demo's prints.
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let pid = child.id();
        Demo {
            child,
            pid,
            lines,
            stderr,
            seen: String::new(),
        }
    }

    /// Waits for a counter row that shows the stream received.
    fn wait_flowing(&mut self) -> bool {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while let Ok(line) = self
            .lines
            .recv_timeout(end.saturating_duration_since(std::time::Instant::now()))
        {
            self.seen.push_str(&line);
            self.seen.push('\n');
            if demo_rows(&line).first().is_some_and(|r| r.1 > 0) {
                return true;
            }
        }
        false
    }

    /// Waits for the exit; returns its status and the whole stdout.
    fn finish(&mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv_timeout(std::time::Duration::from_secs(2)) {
            self.seen.push_str(&line);
            self.seen.push('\n');
        }
        (status, self.seen.clone())
    }

    fn context(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.seen,
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// What the demo left behind: namespaces, its directory, processes.
    fn leftovers(&self, procs: &[u32]) -> Vec<String> {
        let prefix = format!("mcrdemo-{}-", self.pid);
        let mut left: Vec<String> = std::fs::read_dir("/run/netns")
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default();
        let dir = format!("mcrdemo-{}", self.pid);
        if std::env::temp_dir().join(&dir).exists() {
            left.push(format!("temporary directory {dir}"));
        }
        for p in procs {
            if let Ok(cmd) = std::fs::read_to_string(format!("/proc/{p}/cmdline")) {
                left.push(format!("process {p}: {}", cmd.replace('\0', " ")));
            }
        }
        left
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr);
    }
}

#[test]
fn demo_relays_a_live_stream_and_removes_what_it_built() {
    // README's first command: it must relay, count, and clean up.
    if !require_root("demo_relays_a_live_stream_and_removes_what_it_built") {
        return;
    }
    let mut demo = Demo::start(&["--duration", "6"]);
    let flowing = demo.wait_flowing();
    let procs = descendants(demo.pid);
    let (status, stdout) = demo.finish();
    assert!(
        flowing,
        "the stream reached the receiver: {}",
        demo.context()
    );
    assert!(status.success(), "{}", demo.context());
    let rows = demo_rows(&stdout);
    assert!(
        rows.len() >= 4,
        "a counter row every second: {}",
        demo.context()
    );
    let (relayed, received, lost) = *rows.last().unwrap();
    // 1000 pps for several seconds once the stream starts.
    assert!(
        relayed >= 2000,
        "the relay counted the stream: {}",
        demo.context()
    );
    assert!(
        received >= 2000,
        "the receiver got the stream: {}",
        demo.context()
    );
    assert_eq!(lost, 0, "{}", demo.context());
    assert!(
        procs.len() >= 4,
        "supervisor, worker, sender, receiver: {procs:?}"
    );
    assert_eq!(
        demo.leftovers(&procs),
        Vec::<String>::new(),
        "{}",
        demo.context()
    );
}

#[test]
fn demo_stopped_with_ctrl_c_removes_what_it_built() {
    if !require_root("demo_stopped_with_ctrl_c_removes_what_it_built") {
        return;
    }
    let mut demo = Demo::start(&[]);
    let flowing = demo.wait_flowing();
    let procs = descendants(demo.pid);
    // Ctrl-C: SIGINT to the whole process group.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(demo.pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let (status, _) = demo.finish();
    assert!(
        flowing,
        "the stream reached the receiver: {}",
        demo.context()
    );
    assert!(
        status.success(),
        "Ctrl-C is a clean stop: {status:?} {}",
        demo.context()
    );
    assert_eq!(
        demo.leftovers(&procs),
        Vec::<String>::new(),
        "{}",
        demo.context()
    );
}
