//! What the forwarding benchmarks (`forwarding_rate`, `fair_forwarding`)
//! share: the three-namespace chain they forward across, starting the
//! forwarders that are not mcrd (socat, kernel forwarding through
//! smcrouted), one paced `mcrgen send` run, and the CPU time of the
//! processes under test from /proc.
//!
//! ```text
//!   [snd] s0 10.N.1.1 ── 10.N.1.2 r0 [relay] r1 10.N.2.1 ── 10.N.2.2 d0 [rcv]
//! ```
//!
//! Each bench keeps what it measures differently (its points, its search
//! for the loss-free rate, how it starts and pins mcrd), so that one
//! bench's method can change without moving the other's figures.

// Each bench uses its own part of this module.
#![allow(dead_code)]

use std::ffi::OsString;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::daemon::{Daemon, Scratch};
use crate::common::{veth, Netns};
use mcr::gen::SendReport;

/// The kernel's clock ticks per second, the unit of /proc/PID/stat times.
pub fn clk_tck() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64
}

/// (softirq, all busy) seconds of one core from /proc/stat: busy is
/// everything but idle and iowait.
pub fn core_times(cpu: usize) -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let tag = format!("cpu{cpu} ");
    let Some(l) = s.lines().find(|l| l.starts_with(&tag)) else {
        return (0.0, 0.0);
    };
    let f: Vec<f64> = l
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let g = |i: usize| f.get(i).copied().unwrap_or(0.0);
    // user nice system idle iowait irq softirq steal
    let busy = g(0) + g(1) + g(2) + g(5) + g(6) + g(7);
    (g(6) / clk_tck(), busy / clk_tck())
}

/// CPU seconds (user+sys) a process and its threads used so far; 0 once it
/// is gone.
pub fn proc_cpu(pid: u32) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which may contain spaces.
    let Some(rest) = s.rfind(')').map(|i| &s[i + 2..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / clk_tck()
}

/// sender ── relay ── receiver on `10.<net>.1.0/24` and `10.<net>.2.0/24`.
pub struct Chain {
    pub snd: Netns,
    pub relay: Netns,
    pub rcv: Netns,
    /// For the forwarders' config and pid files.
    pub scratch: Scratch,
    net: u8,
}

impl Chain {
    /// Build the chain, its namespaces named after `tag`: jumbo MTU (for
    /// the 8000-byte payloads), reverse-path filtering off (the sender's
    /// subnet is not routed back), socket buffers up to 32 MiB so that loss
    /// is the forwarder's and not a receive queue's, and IP forwarding on
    /// in the relay for the kernel forwarder.
    pub fn new(tag: &str, net: u8) -> Chain {
        let snd = Netns::new(&format!("{tag}-snd"));
        let relay = Netns::new(&format!("{tag}-relay"));
        let rcv = Netns::new(&format!("{tag}-rcv"));
        let a = |c: u8, d: u8| format!("10.{net}.{c}.{d}/24");
        veth(&snd, "s0", &a(1, 1), &relay, "r0", &a(1, 2));
        veth(&relay, "r1", &a(2, 1), &rcv, "d0", &a(2, 2));
        for (ns, i) in [(&snd, "s0"), (&relay, "r0"), (&relay, "r1"), (&rcv, "d0")] {
            ns.ip(&["link", "set", i, "mtu", "9000"]);
        }
        for ns in [&relay, &rcv] {
            open_receiver(ns);
        }
        for i in ["r0", "r1"] {
            relay.set_sysctl(&format!("net.ipv4.conf.{i}.rp_filter"), "0");
        }
        relay.set_sysctl("net.ipv4.ip_forward", "1");
        Chain {
            snd,
            relay,
            rcv,
            scratch: Scratch::new(tag),
            net,
        }
    }

    /// The relay's address on its output link, where socat sends from.
    pub fn relay_out_addr(&self) -> String {
        format!("10.{}.2.1", self.net)
    }
}

/// Reverse-path filtering off and deep socket buffers allowed in `ns`.
pub fn open_receiver(ns: &Netns) {
    ns.set_sysctl("net.ipv4.conf.all.rp_filter", "0");
    ns.set_sysctl("net.ipv4.conf.default.rp_filter", "0");
    ns.set_sysctl("net.core.rmem_max", "33554432");
    ns.set_sysctl("net.core.wmem_max", "33554432");
}

/// A forwarder under test; a child process is killed on drop.
pub enum Fwd {
    Mcrd(Daemon),
    Child(Child),
    /// No forwarder: the sender reaches the receiver directly.
    None,
}

impl Fwd {
    /// The processes whose CPU time is the forwarder's: mcrd's supervisor
    /// (it runs under `ip netns exec`, which execs: same pid) and its
    /// workers, or the child.
    pub fn pids(&self) -> Vec<u32> {
        match self {
            Fwd::Mcrd(d) => std::iter::once(d.pid())
                .chain(d.workers().into_iter().filter_map(|w| w.pid))
                .collect(),
            Fwd::Child(c) => vec![c.id()],
            Fwd::None => vec![],
        }
    }
}

impl Drop for Fwd {
    fn drop(&mut self) {
        if let Fwd::Child(c) = self {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// socat's arguments to relay 239.1.1.1:5000 from r0 to 239.2.0.1:6000,
/// sending from the relay's address `out_addr` on r1.
pub fn socat_args(out_addr: &str) -> Vec<String> {
    vec![
        "-u".into(),
        "-b65536".into(),
        "UDP4-RECV:5000,ip-add-membership=239.1.1.1:r0,reuseaddr,rcvbuf=33554432".into(),
        format!(
            "UDP4-SENDTO:239.2.0.1:6000,ip-multicast-if={out_addr},ip-multicast-ttl=8,sndbuf=33554432"
        ),
    ]
}

/// smcrouted's arguments to install the kernel route 239.1.1.1 r0 → r1,
/// with its config, socket and pid file in `scratch`. The kernel cannot
/// translate the group: its receiver listens on 239.1.1.1:5000.
pub fn smcroute_args(scratch: &Scratch) -> Vec<OsString> {
    let conf = scratch.write(
        "smcroute.conf",
        "phyint r0 enable\nphyint r1 enable\nmroute from r0 group 239.1.1.1 to r1\n",
    );
    vec![
        "-n".into(),
        "-l".into(),
        "err".into(),
        "-f".into(),
        conf.into(),
        "-u".into(),
        scratch.path("smcroute.sock").into(),
        "-P".into(),
        scratch.path("smcroute.pid").into(),
    ]
}

/// Spawn a forwarder with its output discarded and give it `settle` to
/// join its group; None if it would not start.
pub fn spawn_forwarder(mut c: Command, settle: Duration) -> Option<Fwd> {
    let child = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(settle);
    Some(Fwd::Child(child))
}

/// One paced send on s0: `rate` pps (0: flat out) of `size`-byte payloads
/// to `group`:`port` for `duration` seconds, in sendmmsg batches of 64
/// paced every `tick_us` so the sender does not spin a core away from the
/// relay. `mcrgen` is the command that runs `mcrgen` (in the sender's
/// namespace, maybe behind nice/taskset). Returns the sender's report, an
/// empty one if it printed none.
pub fn send(
    mcrgen: Command,
    group: &str,
    port: u16,
    size: usize,
    rate: u64,
    duration: f64,
    tick_us: u64,
) -> SendReport {
    send_with(mcrgen, &[], group, port, size, rate, duration, tick_us)
}

/// [`send`] with more `mcrgen send` options (`--raw`).
#[allow(clippy::too_many_arguments)]
pub fn send_with(
    mut mcrgen: Command,
    extra: &[&str],
    group: &str,
    port: u16,
    size: usize,
    rate: u64,
    duration: f64,
    tick_us: u64,
) -> SendReport {
    mcrgen
        .args(["send", "--group", group, "--port", &port.to_string()])
        .args(extra)
        .args(["--interface", "s0", "--size", &size.to_string()])
        .args(["--ttl", "8", "--batch", "64", "--json"])
        .args(["--rate", &rate.to_string()]);
    if rate > 0 {
        let n = ((rate as f64 * duration) as u64).max(1);
        mcrgen.args(["--count", &n.to_string(), "--tick-us", &tick_us.to_string()]);
    } else {
        mcrgen.args(["--duration", &duration.to_string()]);
    }
    let out = mcrgen
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("mcrgen send");
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}
