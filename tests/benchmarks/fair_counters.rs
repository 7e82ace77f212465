//! Counters the fair forwarding benchmark reads around each point to say
//! where the lost datagrams went: the relay core's input backlog,
//! mcrd's worker counters, and the receiving end's drops.

use crate::common::Netns;
use crate::harness::Fwd;

/// Frames the kernel dropped because `cpu`'s input backlog was full
/// (`/proc/net/softnet_stat`, second column, one line per CPU).
pub fn backlog_drops(cpu: usize) -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .unwrap_or_default()
        .lines()
        .nth(cpu)
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|x| u64::from_str_radix(x, 16).ok())
        .unwrap_or(0)
}

/// mcrd's worker counters that say where an overload goes: (frames the
/// AF_PACKET socket dropped, receives without a free buffer, io_uring
/// submits, frames received, frames the early-drop XDP program dropped).
/// Zeros for other forwarders.
pub fn worker_counters(f: &Fwd) -> [u64; 6] {
    let Fwd::Mcrd(d) = f else {
        return [0; 6];
    };
    let r = d.ctl(&["--json", "stats"]);
    let st: Option<mcr::control::StatsReport> = serde_json::from_slice(&r.stdout).ok();
    st.and_then(|s| s.workers.into_iter().next())
        .map(|w| {
            let c = w.counters;
            [
                c.kernel_drops,
                c.buf_exhaust,
                c.ring_submits,
                c.recv,
                c.early_drops,
                c.output_full_drops + c.send_errors + c.send_backlog_drops,
            ]
        })
        .unwrap_or([0; 6])
}

/// Loss the forwarder is not to blame for, in the receiver's namespace:
/// datagrams its UDP socket refused for a full buffer (`UdpRcvbufErrors`,
/// the receiver shares core P with the sender and starves when the
/// sender runs flat out) plus frames `d0` itself dropped.
pub fn receiver_drops(rcv: &Netns) -> u64 {
    let snmp = rcv
        .cmd("cat")
        .arg("/proc/net/snmp")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // Two "Udp:" lines: the names, then the values.
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let rcvbuf = match (udp.next(), udp.next()) {
        (Some(names), Some(values)) => names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == "RcvbufErrors")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0),
        _ => 0,
    };
    let dev = rcv
        .cmd("cat")
        .arg("/sys/class/net/d0/statistics/rx_dropped")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0u64);
    rcvbuf + dev
}
