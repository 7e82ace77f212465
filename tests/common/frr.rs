//! FRR routers as real protocol peers for interop tests (issues 9 and 10).
//!
//! An [`FrrRouter`] owns a network namespace and one set of FRR daemons
//! (zebra, staticd, pimd) running in it under their own FRR pathspace
//! (`-N <name>`: config in `/etc/frr/<name>/`, vty sockets and pid files in
//! `/var/run/frr/<name>/`). The pathspace is the namespace's unique
//! `mcrt-<pid>-<n>-...` name, so tests running in parallel (or two test
//! processes) never share a socket. Daemons are started directly rather than
//! through watchfrr so the harness knows each pid and each log file; the
//! integrated `frr.conf` is pushed with `vtysh -b`, because daemons started
//! one by one only read per-daemon config files.
//!
//! Cleanup runs on drop, also while a test panics: each daemon is stopped by
//! the pid it wrote at startup (after checking that the pid still runs that
//! daemon in this pathspace), the pathspace directories are removed, and the
//! namespace goes last. Logs are deleted unless the test is panicking, in
//! which case their directory is printed. Leftovers of a crashed test
//! process are swept by pid on the next run.

use super::{owner_is_gone, require_root, sh, Netns};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

/// Where Debian's `frr` package puts the daemons.
pub const FRR_BIN: &str = "/usr/lib/frr";
/// Started in this order: staticd and pimd need zebra's zserv socket.
const DAEMONS: [&str; 3] = ["zebra", "staticd", "pimd"];
/// Generous: on a loaded 2-core CI machine a daemon may take seconds.
const START_TIMEOUT: Duration = Duration::from_secs(20);

static SWEEP: Once = Once::new();

/// True if FRR interop tests may run: root (see [`require_root`]) and the
/// FRR daemons plus vtysh installed. A missing FRR prints a loud SKIP line,
/// except under CI=true, where it is a failure (`.ci/run` installs `frr`).
pub fn require_frr(test: &str) -> bool {
    if !require_root(test) {
        return false;
    }
    let mut missing: Vec<String> = DAEMONS
        .iter()
        .map(|d| format!("{FRR_BIN}/{d}"))
        .filter(|p| !Path::new(p).exists())
        .collect();
    if !vtysh_present() {
        missing.push("vtysh".into());
    }
    if missing.is_empty() {
        SWEEP.call_once(sweep_stale);
        return true;
    }
    let msg = format!(
        "SKIP {test}: FRR is not installed (missing {}); `apt-get install frr` or run .ci/run",
        missing.join(", ")
    );
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("{msg}; with CI=true a skipped test is a failure");
    }
    eprintln!("\n*** {msg} ***\n");
    false
}

fn vtysh_present() -> bool {
    Command::new("vtysh")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A namespace running FRR zebra, staticd and pimd; see the module docs.
pub struct FrrRouter {
    /// The router's namespace; add links to it before [`FrrRouter::start`].
    pub ns: Netns,
    /// FRR pathspace (`-N`), equal to the namespace name.
    pub pathspace: String,
    logs: PathBuf,
    /// (daemon, pid) of every daemon this router started, in start order.
    started: Vec<(&'static str, i32)>,
}

impl FrrRouter {
    /// A router namespace set up as a multicast router (forwarding on,
    /// reverse-path filter off so FRR's RPF decisions are the only ones,
    /// multicast on `lo` for a loopback RP). No daemon runs yet.
    pub fn new(tag: &str) -> FrrRouter {
        let ns = Netns::new(&format!("frr-{tag}"));
        let pathspace = ns.name.clone();
        let logs = std::env::temp_dir().join(format!("{pathspace}-logs"));
        let r = FrrRouter {
            ns,
            pathspace,
            logs,
            started: Vec::new(),
        };
        r.ns.set_sysctl("net.ipv4.ip_forward", "1");
        r.ns.set_sysctl("net.ipv4.conf.all.rp_filter", "0");
        r.ns.set_sysctl("net.ipv4.conf.default.rp_filter", "0");
        r.ns.ip(&["link", "set", "lo", "multicast", "on"]);
        r
    }

    fn etc_dir(&self) -> PathBuf {
        PathBuf::from(format!("/etc/frr/{}", self.pathspace))
    }

    fn run_dir(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/frr/{}", self.pathspace))
    }

    /// Start the daemons with `config` (the body of an integrated frr.conf:
    /// interfaces, `ip pim ...`, static routes) and wait until it is
    /// applied. Panics with the cause (config error, daemon log tail).
    pub fn start(&mut self, config: &str) {
        if let Err(e) = self.try_start(config) {
            panic!("FRR router {} did not start: {e}", self.pathspace);
        }
    }

    /// [`FrrRouter::start`] returning the error instead of panicking.
    pub fn try_start(&mut self, config: &str) -> Result<(), String> {
        // Daemons drop to user frr right after start: every directory they
        // write to and every config file they read must belong to it.
        for (dir, mode) in [
            (self.etc_dir(), "0750"),
            (self.run_dir(), "0755"),
            (self.logs.clone(), "0755"),
        ] {
            let d = dir.to_string_lossy().to_string();
            sh("install", &["-d", "-o", "frr", "-g", "frr", "-m", mode, &d]);
        }
        let conf = self.etc_dir().join("frr.conf");
        let text = format!(
            "frr defaults traditional\nhostname {}\nservice integrated-vtysh-config\n!\n{config}\n!\nline vty\n!\n",
            self.pathspace
        );
        write_frr_file(&conf, &text)?;
        write_frr_file(
            &self.etc_dir().join("vtysh.conf"),
            "service integrated-vtysh-config\n",
        )?;
        // A dry run names a bad line before any daemon starts.
        let check = Command::new("vtysh")
            .arg("-C")
            .arg("-f")
            .arg(&conf)
            .output()
            .map_err(|e| format!("cannot run vtysh: {e}"))?;
        if !check.status.success() {
            return Err(format!(
                "frr.conf rejected by `vtysh -C`: {}{}\n--- frr.conf:\n{text}",
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            ));
        }
        for d in DAEMONS {
            self.start_daemon(d)?;
        }
        let boot = Command::new("vtysh")
            .args(["-N", &self.pathspace, "-b"])
            .output()
            .map_err(|e| format!("cannot run vtysh: {e}"))?;
        if !boot.status.success() {
            return Err(format!(
                "`vtysh -N {} -b` failed ({}): {}{}{}",
                self.pathspace,
                boot.status,
                String::from_utf8_lossy(&boot.stdout),
                String::from_utf8_lossy(&boot.stderr),
                self.all_log_tails()
            ));
        }
        Ok(())
    }

    fn start_daemon(&mut self, d: &'static str) -> Result<(), String> {
        let log = self.logs.join(format!("{d}.log"));
        let stdio_path = self.logs.join(format!("{d}.stdio"));
        let stdio =
            std::fs::File::create(&stdio_path).map_err(|e| format!("{stdio_path:?}: {e}"))?;
        let stdio2 = stdio.try_clone().map_err(|e| format!("dup: {e}"))?;
        // -d: the parent returns once the daemon is up; its stdio goes to a
        // file, not a pipe, because the daemon would hold a pipe open.
        // -P 0: no TCP vty listener; -A would matter only with one.
        let status = self
            .ns
            .cmd(&format!("{FRR_BIN}/{d}"))
            .args(["-d", "-N", &self.pathspace, "-F", "traditional"])
            .args(["-A", "127.0.0.1", "-P", "0", "--log-level", "debug"])
            .arg("--log")
            .arg(format!("file:{}", log.display()))
            .stdin(Stdio::null())
            .stdout(stdio)
            .stderr(stdio2)
            .status()
            .map_err(|e| format!("cannot run {FRR_BIN}/{d}: {e}"))?;
        if !status.success() {
            return Err(format!(
                "{d} exited with {status} at startup{}",
                self.log_tail(d)
            ));
        }
        let run = self.run_dir();
        let mut need = vec![run.join(format!("{d}.pid")), run.join(format!("{d}.vty"))];
        if d == "zebra" {
            need.push(run.join("zserv.api"));
        }
        let end = Instant::now() + START_TIMEOUT;
        while let Some(missing) = need.iter().find(|p| !p.exists()) {
            if Instant::now() > end {
                return Err(format!(
                    "{d} did not create {} within {START_TIMEOUT:?}{}",
                    missing.display(),
                    self.log_tail(d)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid_file = run.join(format!("{d}.pid"));
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .ok_or_else(|| format!("{} holds no pid", pid_file.display()))?;
        if !self.runs(pid, d) {
            return Err(format!(
                "{d} (pid {pid}) died right after startup{}",
                self.log_tail(d)
            ));
        }
        self.started.push((d, pid));
        Ok(())
    }

    /// Whether `pid` is still `d` of this pathspace (not a recycled pid).
    fn runs(&self, pid: i32, d: &str) -> bool {
        daemon_matches(pid, d, &self.pathspace)
    }

    /// The last lines of a daemon's log and stdio, for error messages.
    pub fn log_tail(&self, d: &str) -> String {
        let mut out = String::new();
        for f in [format!("{d}.stdio"), format!("{d}.log")] {
            let p = self.logs.join(&f);
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(25)..];
            if !tail.is_empty() {
                out.push_str(&format!(
                    "\n--- tail of {}:\n{}",
                    p.display(),
                    tail.join("\n")
                ));
            }
        }
        out
    }

    fn all_log_tails(&self) -> String {
        DAEMONS.iter().map(|d| self.log_tail(d)).collect()
    }

    /// This router's register state for (`source`, `group`) from `show ip
    /// pim upstream json` (`RegJoin`, `RegPrune`, ...; `None` while it has
    /// no such row).
    pub fn reg_state(
        &self,
        group: std::net::Ipv4Addr,
        source: std::net::Ipv4Addr,
    ) -> Option<String> {
        let v = self.try_json("show ip pim upstream json").ok()?;
        v.get(group.to_string())?
            .get(source.to_string())?
            .get("regState")?
            .as_str()
            .map(String::from)
    }

    /// Wait until this router lists `addr` as a PIM neighbor on `ifname`
    /// (`show ip pim neighbor json`); how long that took.
    pub fn wait_neighbor(
        &self,
        ifname: &str,
        addr: std::net::Ipv4Addr,
        timeout: Duration,
    ) -> Duration {
        let t0 = Instant::now();
        self.wait_json("show ip pim neighbor json", timeout, |v| {
            v.get(ifname)?.get(addr.to_string()).map(|_| ())
        });
        t0.elapsed()
    }

    /// Wait until this router's register state for (`source`, `group`) is
    /// `state` (see [`FrrRouter::reg_state`]); when it was first seen.
    pub fn wait_reg_state(
        &self,
        group: std::net::Ipv4Addr,
        source: std::net::Ipv4Addr,
        state: &str,
        timeout: Duration,
    ) -> Instant {
        self.wait_json("show ip pim upstream json", timeout, |v| {
            let s = v
                .get(group.to_string())?
                .get(source.to_string())?
                .get("regState")?;
            (s.as_str() == Some(state)).then(Instant::now)
        })
    }

    /// With no receiver anywhere, start a source behind this router (its
    /// first-hop DR) and wait for its register state for (`source`,
    /// `group`) to become `RegPrune`: an RP with nobody to forward to
    /// answers the first Register with a Register-Stop (RFC 7761 §4.4.2).
    /// Prints the time from `start` under `test`'s name and returns what
    /// `start` returned (the sender, which stops the source on drop).
    pub fn registers_stopped_without_receiver<T>(
        &self,
        test: &str,
        group: std::net::Ipv4Addr,
        source: std::net::Ipv4Addr,
        start: impl FnOnce() -> T,
    ) -> T {
        let sent_at = Instant::now();
        let sender = start();
        let stopped = self.wait_reg_state(group, source, "RegPrune", Duration::from_secs(10));
        println!(
            "{test}: no receiver: source start -> Register-Stop (FRR RegPrune) {:?}",
            stopped - sent_at
        );
        sender
    }

    /// This router's downstream join state for (`source`, `group`) on
    /// `ifname` from `show ip pim join json` (`channelJoinName`: `JOIN`,
    /// `SGRpt(P)`, ...; `None` while it has no such entry). `source` is an
    /// address, or `*` for (*,G).
    pub fn join_state(
        &self,
        ifname: &str,
        group: std::net::Ipv4Addr,
        source: &str,
    ) -> Option<String> {
        let v = self.try_json("show ip pim join json").ok()?;
        v.get(ifname)?
            .get(group.to_string())?
            .get(source)?
            .get("channelJoinName")?
            .as_str()
            .map(String::from)
    }

    /// Run a vtysh command (` json` appended when missing) and parse it.
    pub fn try_json(&self, cmd: &str) -> Result<serde_json::Value, String> {
        let cmd = if cmd.trim_end().ends_with(" json") {
            cmd.to_string()
        } else {
            format!("{cmd} json")
        };
        let out = Command::new("vtysh")
            .args(["-N", &self.pathspace, "-c", &cmd])
            .output()
            .map_err(|e| format!("cannot run vtysh: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "`vtysh -N {} -c '{cmd}'` failed ({}): {stdout}{}",
                self.pathspace,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        serde_json::from_str(&stdout)
            .map_err(|e| format!("`{cmd}` did not print JSON ({e}): {stdout}"))
    }

    /// [`FrrRouter::try_json`], panicking with the cause.
    pub fn json(&self, cmd: &str) -> serde_json::Value {
        self.try_json(cmd)
            .unwrap_or_else(|e| panic!("router {}: {e}", self.pathspace))
    }

    /// Poll `cmd` until `f` accepts its JSON; panics after `timeout` with
    /// the last answer, so a failing test shows what FRR did think.
    pub fn wait_json<T>(
        &self,
        cmd: &str,
        timeout: Duration,
        mut f: impl FnMut(&serde_json::Value) -> Option<T>,
    ) -> T {
        let end = Instant::now() + timeout;
        loop {
            let last = self.try_json(cmd);
            if let Ok(v) = &last {
                if let Some(t) = f(v) {
                    return t;
                }
            }
            if Instant::now() > end {
                panic!(
                    "router {}: `{cmd}` did not show the expected state within {timeout:?}; last answer: {}",
                    self.pathspace,
                    match last {
                        Ok(v) => v.to_string(),
                        Err(e) => e,
                    }
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for FrrRouter {
    fn drop(&mut self) {
        // pimd first: it withdraws from zebra while zebra still listens.
        for &(d, pid) in self.started.iter().rev() {
            stop_daemon(pid, d, &self.pathspace);
        }
        let _ = std::fs::remove_dir_all(self.etc_dir());
        let _ = std::fs::remove_dir_all(self.run_dir());
        if std::thread::panicking() {
            eprintln!(
                "FRR logs of {} kept in {}",
                self.pathspace,
                self.logs.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.logs);
        }
        // self.ns drops after this body: it kills whatever is left inside.
    }
}

fn write_frr_file(path: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let p = path.to_string_lossy().to_string();
    sh("chown", &["frr:frr", &p]);
    Ok(())
}

/// Whether `pid` runs FRR daemon `d` with pathspace `name`. A zombie or a
/// recycled pid has another (or an empty) command line.
fn daemon_matches(pid: i32, d: &str, name: &str) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
    let bin = format!("{FRR_BIN}/{d}");
    args.first() == Some(&bin.as_bytes())
        && args
            .windows(2)
            .any(|w| w[0] == b"-N" && w[1] == name.as_bytes())
}

fn stop_daemon(pid: i32, d: &str, name: &str) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    if !daemon_matches(pid, d, name) {
        return;
    }
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        if !daemon_matches(pid, d, name) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
}

/// Stop daemons and remove pathspaces of test processes that are gone (a
/// run killed before its destructors ran). Their namespaces are swept by
/// `require_root`.
fn sweep_stale() {
    let Ok(rd) = std::fs::read_dir("/var/run/frr") else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !owner_is_gone(&name) {
            continue;
        }
        for d in DAEMONS.iter().rev() {
            let pid_file = e.path().join(format!("{d}.pid"));
            if let Some(p) = std::fs::read_to_string(pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                stop_daemon(p, d, &name);
            }
        }
        let _ = std::fs::remove_dir_all(e.path());
        let _ = std::fs::remove_dir_all(format!("/etc/frr/{name}"));
    }
}

/// Where `.ci/run` unpacks Debian's `pimd` package (troglobit pimd 2.3.2):
/// it cannot be installed beside `frr`, which conflicts with it.
pub const TROGLOBIT_PIMD: &str = "/opt/mcr-interop/troglobit-pimd/usr/sbin/pimd";

/// The troglobit pimd binary: `$MCR_TROGLOBIT_PIMD` or [`TROGLOBIT_PIMD`].
pub fn troglobit_pimd_bin() -> PathBuf {
    std::env::var_os("MCR_TROGLOBIT_PIMD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(TROGLOBIT_PIMD))
}

/// Like [`require_frr`], for tests that also need troglobit pimd.
pub fn require_troglobit_pimd(test: &str) -> bool {
    if !require_frr(test) {
        return false;
    }
    let bin = troglobit_pimd_bin();
    if bin.exists() {
        return true;
    }
    let msg = format!(
        "SKIP {test}: troglobit pimd not found at {} (.ci/run unpacks Debian's pimd package there; \
         MCR_TROGLOBIT_PIMD overrides the path)",
        bin.display()
    );
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("{msg}; with CI=true a skipped test is a failure");
    }
    eprintln!("\n*** {msg} ***\n");
    false
}

/// troglobit pimd running in a namespace, stopped on drop.
///
/// pimd 2.3.2 has no option for its pid file and control socket: it always
/// uses `/var/run/pimd.pid` and `/var/run/pimd/`. Each instance therefore
/// runs in its own mount namespace with a private tmpfs on `/var/run`, so
/// parallel tests do not find each other's pimd.
pub struct TroglobitPimd {
    child: std::process::Child,
    dir: PathBuf,
}

impl TroglobitPimd {
    /// Start pimd in `ns` with `config` (pimd.conf syntax). It runs with
    /// `-N`: only interfaces named by `phyint <if> enable` take part.
    pub fn start(ns: &Netns, config: &str) -> TroglobitPimd {
        let dir = std::env::temp_dir().join(format!("{}-tpimd", ns.name));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let conf = dir.join("pimd.conf");
        std::fs::write(&conf, config).unwrap_or_else(|e| panic!("{}: {e}", conf.display()));
        let log_path = dir.join("pimd.log");
        let log = std::fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("{}: {e}", log_path.display()));
        let log2 = log.try_clone().expect("dup log file");
        let bin = troglobit_pimd_bin();
        // ip netns exec, unshare and sh all exec the next program, so the
        // child's pid is pimd's. Paths go in as $0/$1, never into the script.
        let child = ns
            .cmd("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(
                "mount -t tmpfs tmpfs /var/run && exec \"$0\" -f -N -c \"$1\" \
                 -s debug --debug=pim_hello,pim_neighbors",
            )
            .arg(&bin)
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut p = TroglobitPimd { child, dir };
        // Ready when it answers on its control socket.
        let end = Instant::now() + START_TIMEOUT;
        while p.try_show().is_err() {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!(
                    "troglobit pimd exited with {status} at startup{}",
                    p.log_tail()
                );
            }
            if Instant::now() > end {
                panic!(
                    "troglobit pimd did not answer `pimd -r` within {START_TIMEOUT:?}: {}{}",
                    p.try_show().unwrap_err(),
                    p.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    /// pimd's own view (`pimd -r`: vifs with their PIM neighbors, routes),
    /// asked inside its mount and network namespace; panics if it fails.
    pub fn show(&self) -> String {
        self.try_show()
            .unwrap_or_else(|e| panic!("troglobit pimd: {e}{}", self.log_tail()))
    }

    /// [`TroglobitPimd::show`] returning the error.
    pub fn try_show(&self) -> Result<String, String> {
        let pid = self.child.id().to_string();
        let out = Command::new("nsenter")
            .args(["-t", &pid, "-m", "-n"])
            .arg(troglobit_pimd_bin())
            .arg("-r")
            .output()
            .map_err(|e| format!("cannot run nsenter: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() && text.contains("Virtual Interface Table") {
            Ok(text)
        } else {
            Err(format!(
                "`pimd -r` ({}): {text}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// The last lines of pimd's output, for error messages.
    pub fn log_tail(&self) -> String {
        let p = self.dir.join("pimd.log");
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "\n--- tail of {}:\n{}",
            p.display(),
            lines[lines.len().saturating_sub(25)..].join("\n")
        )
    }
}

impl Drop for TroglobitPimd {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        // The child is not reaped until wait(), so its pid cannot have been
        // reused by another process.
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(
                nix::unistd::Pid::from_raw(self.child.id() as i32),
                Signal::SIGTERM,
            );
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("troglobit pimd log kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
