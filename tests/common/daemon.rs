//! Running `mcrd supervisor`, `mcrctl` and `mcrgen` inside namespaces.
//!
//! A `Daemon` is stopped (SIGTERM, then SIGKILL) on drop; if the test is
//! failing, its log is printed first so the failure explains itself.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mcr::control::client::Client;
use mcr::control::{RuleInfo, RuleState, StatsReport, WorkerInfo};
use mcr::gen::{RecvReport, SendReport};
use mcr::ipc::WorkerCounters;
use serde::de::DeserializeOwned;

use super::{bin, KillOnDrop, Netns};

static DIRS: AtomicU32 = AtomicU32::new(0);

/// A scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let n = DIRS.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("mcrt-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        Scratch(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write scratch file");
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Daemon {
    pub ns: String,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub config: Option<PathBuf>,
    child: Option<Child>,
    pub scratch: Scratch,
}

/// Options for starting a daemon.
#[derive(Default)]
pub struct DaemonOpts<'a> {
    pub config: Option<&'a str>,
    pub fault_injection: bool,
    pub env: Vec<(&'a str, &'a str)>,
    pub args: Vec<&'a str>,
}

impl Daemon {
    /// Start `mcrd supervisor` in `ns` and wait until it answers.
    pub fn start(ns: &Netns, o: DaemonOpts) -> Daemon {
        let d = Self::spawn(ns, o);
        let mut d = d;
        let t0 = Instant::now();
        loop {
            if let Ok(mut c) = Client::connect(&d.socket, Duration::from_secs(2)) {
                if c.request::<String>(&mcr::control::Request::Ping).is_ok() {
                    return d;
                }
            }
            if let Some(st) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("mcrd exited at start ({st}):\n{}", d.log_text());
            }
            // Generous: a debug build parsing 10,000 rules took 6.8 s on a
            // 2-core machine at load 13; a healthy start takes milliseconds.
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "mcrd did not answer within 30 s:\n{}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// Start with `config` and no other option, without waiting for
    /// anything (protocol tests wait for their own adjacencies).
    pub fn start_config(ns: &Netns, config: &str) -> Daemon {
        Self::start(
            ns,
            DaemonOpts {
                config: Some(config),
                ..Default::default()
            },
        )
    }

    /// Start with `config` and wait until all its rules are active.
    pub fn with_config(ns: &Netns, config: &str) -> Daemon {
        let d = Self::start_config(ns, config);
        d.wait_active(Duration::from_secs(20));
        d
    }

    /// Start without waiting (for tests that expect it to fail).
    pub fn spawn(ns: &Netns, o: DaemonOpts) -> Daemon {
        let scratch = Scratch::new("mcrd");
        let socket = scratch.path("control.sock");
        let log = scratch.path("mcrd.log");
        let config = o.config.map(|text| scratch.write("mcr.json5", text));
        let mut cmd = ns.cmd(bin("mcrd").to_str().expect("utf-8 path"));
        cmd.arg("supervisor").arg("--socket").arg(&socket);
        if let Some(c) = &config {
            cmd.arg("--config").arg(c);
        }
        if o.fault_injection {
            cmd.arg("--enable-fault-injection");
        }
        cmd.args(&o.args);
        cmd.env("MCR_STATS_INTERVAL_MS", "200");
        // Drills panic actors on purpose. A symbolized backtrace per panic
        // takes seconds on a loaded 2-core machine, which spreads the panics
        // past the restart budget's window and buries the log the test reads;
        // the panic hook still logs each panic's message and location.
        cmd.env("RUST_BACKTRACE", "0");
        for (k, v) in &o.env {
            cmd.env(k, v);
        }
        let logf = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("spawn mcrd");
        Daemon {
            ns: ns.name.clone(),
            socket,
            log,
            config,
            child: Some(child),
            scratch,
        }
    }

    /// Wait for the daemon process to exit (for tests that expect it to).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.socket, Duration::from_secs(15)).expect("connect to mcrd")
    }

    /// Run mcrctl against this daemon.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(bin("mcrctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run mcrctl")
    }

    /// Run mcrctl; it must succeed. Its stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert!(
            o.status.success(),
            "mcrctl {} failed ({}): {}",
            args.join(" "),
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    /// Run mcrctl; it must fail. Its stderr.
    pub fn ctl_err(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert!(
            !o.status.success(),
            "mcrctl {} should have failed but printed: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).to_string()
    }

    /// `mcrctl --json ARGS`, parsed.
    pub fn ctl_json<T: DeserializeOwned>(&self, args: &[&str]) -> T {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.ctl_ok(&a);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("mcrctl --json {}: {e}: {out}", args.join(" ")))
    }

    pub fn list(&self) -> Vec<RuleInfo> {
        self.ctl_json(&["list"])
    }

    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.ctl_json(&["workers"])
    }

    pub fn stats(&self) -> StatsReport {
        self.ctl_json(&["stats"])
    }

    /// The first worker's counters once it has reported, and once `pred`
    /// holds for them; panics with the stats after `timeout`.
    pub fn wait_worker_counters(
        &self,
        timeout: Duration,
        pred: impl Fn(&WorkerCounters) -> bool,
    ) -> WorkerCounters {
        super::wait_for(timeout, || {
            self.stats()
                .workers
                .first()
                .map(|w| w.counters.clone())
                .filter(|c| pred(c))
        })
        .unwrap_or_else(|| panic!("worker counters not as expected: {:?}", self.stats()))
    }

    /// Wait until every rule is active.
    pub fn wait_active(&self, timeout: Duration) {
        let t0 = Instant::now();
        loop {
            let l = self.list();
            if !l.is_empty() && l.iter().all(|r| r.state == RuleState::Active) {
                return;
            }
            assert!(
                t0.elapsed() < timeout,
                "rules not active within {timeout:?}: {l:#?}\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until the rule `id` is in `state`.
    pub fn wait_rule_state(&self, id: &str, state: RuleState, timeout: Duration) -> RuleInfo {
        let t0 = Instant::now();
        loop {
            if let Some(r) = self.list().into_iter().find(|r| r.id == id) {
                if r.state == state {
                    return r;
                }
                assert!(
                    t0.elapsed() < timeout,
                    "rule {id} is {:?}, not {state:?}: {r:#?}",
                    r.state
                );
            }
            assert!(
                t0.elapsed() < timeout,
                "rule {id} not listed within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM and wait; the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        c.wait().ok()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- mcrd log ({}) ----\n{}\n---- end of mcrd log ----",
                self.ns,
                self.log_text()
            );
        }
        self.stop();
    }
}

/// A running `mcrgen recv`.
pub struct Recv {
    child: Child,
    ns: String,
}

/// Start `mcrgen recv` in `ns` and wait until it has joined. `extra` are
/// more flags (`--expect`, `--idle-timeout`, ...).
pub fn recv(ns: &Netns, group: &str, port: u16, iface: Option<&str>, extra: &[&str]) -> Recv {
    let mut c = ns.cmd(bin("mcrgen").to_str().expect("utf-8"));
    c.args([
        "recv",
        "--group",
        group,
        "--port",
        &port.to_string(),
        "--json",
        "--quiet",
    ]);
    if let Some(i) = iface {
        c.args(["--interface", i]);
    }
    c.args(extra);
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mcrgen recv");
    let err = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(err);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            if line.contains("listening") {
                let _ = tx.send(Ok(()));
            } else if line.contains("error") {
                let _ = tx.send(Err(line.clone()));
            }
            line.clear();
        }
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => {}
        other => panic!("mcrgen recv in {} did not start: {other:?}", ns.name),
    }
    Recv {
        child,
        ns: ns.name.clone(),
    }
}

impl Recv {
    /// Wait for it to end on its own (count, duration or idle timeout).
    pub fn finish(mut self, timeout: Duration) -> RecvReport {
        let t0 = Instant::now();
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            if t0.elapsed() > timeout {
                return self.stop();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.report()
    }

    /// End it now (SIGTERM) and read its report.
    pub fn stop(mut self) -> RecvReport {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        self.report()
    }

    fn report(&mut self) -> RecvReport {
        let mut out = String::new();
        if let Some(mut s) = self.child.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("mcrgen recv in {}: bad report ({e}): {out}", self.ns))
    }
}

impl Drop for Recv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `mcrgen send` in `ns` to completion.
#[allow(clippy::too_many_arguments)]
pub fn send(
    ns: &Netns,
    group: &str,
    port: u16,
    iface: &str,
    count: u64,
    rate: u32,
    size: usize,
    extra: &[&str],
) -> SendReport {
    let out = send_cmd(ns, group, port, iface, count, rate, size, extra)
        .output()
        .expect("run mcrgen send");
    assert!(
        out.status.success(),
        "mcrgen send failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("mcrgen send report")
}

#[allow(clippy::too_many_arguments)]
pub fn send_cmd(
    ns: &Netns,
    group: &str,
    port: u16,
    iface: &str,
    count: u64,
    rate: u32,
    size: usize,
    extra: &[&str],
) -> Command {
    let mut c = ns.cmd(bin("mcrgen").to_str().expect("utf-8"));
    c.args([
        "send",
        "--group",
        group,
        "--port",
        &port.to_string(),
        "--interface",
        iface,
    ])
    .args([
        "--count",
        &count.to_string(),
        "--rate",
        &rate.to_string(),
        "--size",
        &size.to_string(),
        "--json",
    ])
    .args(extra)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

/// Inject raw IPv4 packets (hex) on an interface in `ns`.
pub fn inject(ns: &Netns, iface: &str, packets: &[Vec<u8>]) {
    let mut c = ns.cmd(bin("mcrgen").to_str().expect("utf-8"));
    c.args(["inject", "--interface", iface]);
    for p in packets {
        let hex: String = p.iter().map(|b| format!("{b:02x}")).collect();
        c.args(["--packet", &hex]);
    }
    let out = c.output().expect("mcrgen inject");
    assert!(
        out.status.success(),
        "mcrgen inject: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The path of a file in `dir` (for tests that write configs by hand).
pub fn file_in(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

impl super::Relay3 {
    /// `n` datagrams of `size` bytes at `rate` pps from the sender to
    /// 239.1.1.1:5000 on s0, received as 239.2.2.2:6000 on d0: the mapping
    /// of most tests' one rule (`rule_config`). Panics unless every one
    /// arrived, intact; the receiver's report for further checks.
    pub fn relay_all(&self, n: u64, rate: u32, size: usize) -> RecvReport {
        let r = recv(
            &self.dst,
            "239.2.2.2",
            6000,
            Some("d0"),
            &["--expect", &n.to_string(), "--idle-timeout", "1"],
        );
        send(&self.src, "239.1.1.1", 5000, "s0", n, rate, size, &[]);
        let rep = r.finish(Duration::from_secs(30));
        assert_eq!(
            (rep.unique, rep.lost, rep.corrupt),
            (n, 0, 0),
            "not every datagram came through the relay: {rep:?}"
        );
        rep
    }
}

/// `add` a rule called `name` through `c`: input `group`:`port` on
/// `interface` from any source, one output as `mcrctl add` spells it
/// (`GROUP:PORT:IFACE[:TTL]`). The daemon's error, if it refused.
pub fn add_named(
    c: &mut Client,
    name: &str,
    interface: &str,
    group: &str,
    port: u16,
    output: &str,
) -> Result<(), String> {
    let input = mcr::rule::RuleInput {
        interface: interface.into(),
        group: group.parse().map_err(|e| format!("group {group:?}: {e}"))?,
        port,
        source: None,
    };
    let out =
        mcr::rule::parse_output_spec(output).map_err(|e| format!("output {output:?}: {e}"))?;
    c.request::<serde_json::Value>(&mcr::control::Request::Add {
        id: None,
        name: Some(name.into()),
        input,
        outputs: vec![out],
    })
    .map(|_| ())
    .map_err(|e| format!("add {name}: {e}"))
}

/// `remove` the rule called `name` through `c`.
pub fn remove_named(c: &mut Client, name: &str) -> Result<(), String> {
    c.request::<serde_json::Value>(&mcr::control::Request::Remove {
        id: None,
        name: Some(name.into()),
    })
    .map(|_| ())
    .map_err(|e| format!("remove {name}: {e}"))
}

/// `mcrctl subscribe --events EVENTS` against `d`, running in the
/// background until dropped; its lines arrive on `lines` as printed.
pub struct EventLines {
    _child: super::KillOnDrop,
    pub lines: std::sync::mpsc::Receiver<String>,
}

/// Start a subscription and give mcrctl a moment to connect, so events that
/// follow reach it.
pub fn subscribe(d: &Daemon, events: &str) -> EventLines {
    let mut child = Command::new(super::bin("mcrctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["subscribe", "--events", events])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn mcrctl subscribe");
    let out = child.stdout.take().expect("stdout");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    EventLines {
        _child: super::KillOnDrop(child),
        lines,
    }
}

/// An `mcrgen send` stream from `ns` out of `iface` that runs until the
/// returned guard drops: 100-byte datagrams to `group`:`port` at `rate`
/// pps with IP TTL `ttl` (10 M of them, more than any test waits for).
pub fn spawn_stream(
    ns: &Netns,
    group: std::net::Ipv4Addr,
    port: u16,
    iface: &str,
    rate: u32,
    ttl: u8,
) -> KillOnDrop {
    let ttl = ttl.to_string();
    let group = group.to_string();
    KillOnDrop(
        send_cmd(
            ns,
            &group,
            port,
            iface,
            10_000_000,
            rate,
            100,
            &["--ttl", &ttl],
        )
        .spawn()
        .expect("spawn mcrgen send"),
    )
}

/// `GET /metrics` from inside `ns`, where the daemon listens on loopback
/// `port`: the whole HTTP response. A thread does it because entering a
/// namespace is for good.
pub fn scrape_metrics(ns: &Netns, port: u16) -> String {
    let name = ns.name.clone();
    std::thread::spawn(move || {
        use std::io::Write;
        let f = std::fs::File::open(format!("/run/netns/{name}")).expect("open netns");
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: mcr\r\n\r\n")
            .expect("request");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("response");
        out
    })
    .join()
    .expect("scrape thread")
}

/// The value of the sample line of a scrape that starts with `series`
/// (name and labels), `None` while it is not exported.
pub fn metric_sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}
