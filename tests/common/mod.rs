//! Shared harness for end-to-end tests: network namespaces and veth pairs
//! that clean up after themselves (even when a test panics), and a sweep of
//! leftovers from runs that crashed.
//!
//! Every namespace is named `mcrt-<pid>-<n>-<tag>`, so parallel tests never
//! collide and a later run can tell a dead run's namespaces by the pid.

#![allow(dead_code)]

pub mod capture;
pub mod daemon;
pub mod frr;
pub mod lab;
pub mod pim_lab;
pub mod procfs;
pub mod recorder;

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);
static SWEEP: Once = Once::new();

/// True if the test may run. Without root it prints a loud SKIP line and
/// returns false, except under CI=true, where a skip is a failure.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        SWEEP.call_once(sweep_stale);
        return true;
    }
    let msg = format!("SKIP {test}: needs root (network namespaces, veth, AF_PACKET)");
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("{msg}; with CI=true a skipped test is a failure");
    }
    eprintln!("\n*** {msg} ***\n");
    false
}

/// Remove namespaces left by test processes that are gone.
fn sweep_stale() {
    let Ok(rd) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if owner_is_gone(&name) {
            kill_ns_pids(&name);
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}

/// Whether `name` is one of our test names (`mcrt-<pid>-…`) whose test
/// process no longer runs: what a run killed before its cleanup leaves.
pub fn owner_is_gone(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("mcrt-") else {
        return false;
    };
    let pid: i32 = rest
        .split('-')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pid > 0 && !PathBuf::from(format!("/proc/{pid}")).exists()
}

fn kill_ns_pids(name: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        // A process may exit between listing and killing: ignore ESRCH.
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(p) = pid.parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// Run a command, panicking with its output if it fails.
pub fn sh(cmd: &str, args: &[&str]) -> Output {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Move the calling thread into namespace `name` for good (sockets it
/// opens after this live there). For a thread of the test's own that
/// outlives one call (a capture, a receiver); see [`in_ns`] for one that
/// does not.
pub fn enter_netns(name: &str) {
    let f = File::open(format!("/run/netns/{name}")).expect("open netns");
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

/// Run `f` on a new thread inside `ns` and wait for its result: a sender
/// or a socket set-up in a lab host, while the test thread stays where it
/// is.
pub fn in_ns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let name = ns.name.clone();
    std::thread::spawn(move || {
        enter_netns(&name);
        f()
    })
    .join()
    .expect("the thread in the namespace")
}

/// A network namespace, deleted (with every process in it) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("mcrt-{}-{}-{}", std::process::id(), n, tag);
        sh("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> args...`
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut a = vec!["-n", &self.name];
        a.extend_from_slice(args);
        sh("ip", &a)
    }

    /// A command run inside the namespace.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Run a shell snippet inside the namespace.
    pub fn run(&self, script: &str) -> Output {
        let out = self
            .cmd("sh")
            .args(["-c", script])
            .output()
            .expect("ip netns exec");
        assert!(
            out.status.success(),
            "in {}: {script}: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Move the calling thread into this namespace (sockets it opens after
    /// this live here).
    pub fn enter_thread(&self) {
        enter_netns(&self.name);
    }

    pub fn set_sysctl(&self, key: &str, value: &str) {
        self.run(&format!("sysctl -qw {key}={value}"));
    }

    /// Packets `iface` has received, from the kernel's interface counters.
    pub fn rx_packets(&self, iface: &str) -> u64 {
        let out = self.run(&format!("cat /sys/class/net/{iface}/statistics/rx_packets"));
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("rx_packets of {iface} in {}: {e}", self.name))
    }

    /// A counter of `iface` from /sys/class/net (`rx_bytes`, `rx_packets`).
    pub fn if_stat(&self, iface: &str, stat: &str) -> u64 {
        let out = self.run(&format!("cat /sys/class/net/{iface}/statistics/{stat}"));
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{stat} of {iface} in {}: {e}", self.name))
    }

    /// UDP datagrams of `payload` bytes that `iface` receives during
    /// `window`, counted from bytes: a relay that batches its sends with
    /// UDP segmentation offload hands a veth one packet for many datagrams,
    /// so `rx_packets` undercounts them (each such packet carries one
    /// Ethernet + IPv4 + UDP header, 42 bytes, and the payloads).
    pub fn datagrams_during(&self, iface: &str, window: Duration, payload: u64) -> u64 {
        let (b0, p0) = (
            self.if_stat(iface, "rx_bytes"),
            self.if_stat(iface, "rx_packets"),
        );
        std::thread::sleep(window);
        let (b1, p1) = (
            self.if_stat(iface, "rx_bytes"),
            self.if_stat(iface, "rx_packets"),
        );
        (b1 - b0).saturating_sub((p1 - p0) * 42) / payload
    }

    /// Packets `iface` receives during `window` (a batch sent with UDP
    /// segmentation offload counts once; see [`Self::datagrams_during`]).
    pub fn received_during(&self, iface: &str, window: Duration) -> u64 {
        let before = self.rx_packets(iface);
        std::thread::sleep(window);
        self.rx_packets(iface) - before
    }
}

/// A child process killed on drop, so a failing test leaves none behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_ns_pids(&self.name);
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A veth pair between two namespaces (or within one), with addresses.
pub fn veth(a: &Netns, a_if: &str, a_addr: &str, b: &Netns, b_if: &str, b_addr: &str) {
    a.ip(&[
        "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
    ]);
    a.ip(&["addr", "add", a_addr, "dev", a_if]);
    b.ip(&["addr", "add", b_addr, "dev", b_if]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("IPv4 literal")
}

/// Poll `f` until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Path of a binary built in this workspace (same target dir as the test).
/// Checked for staleness once per process: a long benchmark must not trip
/// over sources edited while it runs.
pub fn bin(name: &str) -> PathBuf {
    static CHECKED: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut done = CHECKED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, p)) = done.iter().find(|(n, _)| n == name) {
        return p.clone();
    }
    let p = bin_checked(name);
    done.push((name.to_string(), p.clone()));
    p
}

fn bin_checked(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not built; run the tests with `cargo test --workspace` (it builds mcrd)",
        p.display()
    );
    // `cargo test --test X` rebuilds only this package; an mcrd older than
    // its sources would test yesterday's daemon. A binary depends on the
    // library (src/ without src/bin/), its own src/bin/<name>.rs or
    // src/bin/<name>/, and for
    // mcrd on actors/src.
    let built = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("src")];
    if name == "mcrd" {
        dirs.push(root.join("actors/src"));
    }
    let own = root.join(format!("src/bin/{name}.rs"));
    if let (Some(built), Some(newest)) = (built, newest_source(&dirs, &root.join("src/bin"), &own))
    {
        assert!(
            newest <= built,
            "{} is older than its sources; run `cargo build --workspace` first (or `cargo test --workspace`)",
            p.display()
        );
    }
    p
}

fn newest_source(
    dirs: &[PathBuf],
    bins: &std::path::Path,
    own: &std::path::Path,
) -> Option<std::time::SystemTime> {
    let mut newest = None;
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.starts_with(bins) && p != own && !p.starts_with(own.with_extension("")) {
                // Another binary's files (src/bin/X.rs or src/bin/X/): not
                // part of this one.
            } else if p.extension().is_some_and(|x| x == "rs") {
                if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                    newest = newest.max(Some(t));
                }
            }
        }
    }
    newest
}

/// A unique port per test in this process.
pub fn unique_port() -> u16 {
    20000
        + (std::process::id() % 2000) as u16 * 10
        + (COUNTER.fetch_add(1, Ordering::SeqCst) % 10) as u16
}

/// Spawn with stdout/stderr captured.
pub fn spawn_captured(mut c: Command) -> std::process::Child {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// sender ──s0 10.10.1.1 / 10.10.1.2 r0── relay ──r1 10.10.2.1 / 10.10.2.2 d0── receiver
pub struct Relay3 {
    pub src: Netns,
    pub relay: Netns,
    pub dst: Netns,
}

impl Relay3 {
    pub fn new(tag: &str) -> Relay3 {
        let src = Netns::new(&format!("{tag}-s"));
        let relay = Netns::new(&format!("{tag}-r"));
        let dst = Netns::new(&format!("{tag}-d"));
        veth(&src, "s0", "10.10.1.1/24", &relay, "r0", "10.10.1.2/24");
        veth(&relay, "r1", "10.10.2.1/24", &dst, "d0", "10.10.2.2/24");
        Relay3 { src, relay, dst }
    }

    /// Another receiver namespace on its own relay interface `rN`, with
    /// addresses 10.10.(N+1).1 / .2 and receiver interface d0.
    pub fn add_receiver(&self, n: u32, tag: &str) -> Netns {
        let ns = Netns::new(tag);
        veth(
            &self.relay,
            &format!("r{n}"),
            &format!("10.10.{}.1/24", n + 1),
            &ns,
            "d0",
            &format!("10.10.{}.2/24", n + 1),
        );
        ns
    }
}

/// A one-rule config relaying `in_group:in_port` on r0 to the outputs.
pub fn rule_config(in_group: &str, in_port: u16, outputs: &[(&str, &str, u16)]) -> String {
    let outs: Vec<String> = outputs
        .iter()
        .map(|(i, g, p)| format!("{{ interface: \"{i}\", group: \"{g}\", port: {p} }}"))
        .collect();
    format!(
        "{{ rules: [ {{ name: \"t\", input: {{ interface: \"r0\", group: \"{in_group}\", port: {in_port} }}, outputs: [ {} ] }} ] }}",
        outs.join(", ")
    )
}
