//! The per-rule packet trace as it crosses IPC (`ToWorker::TraceEnable`,
//! `TraceDisable`, `TraceGet`, `FromWorker::Trace`) and the control
//! protocol: why a packet was dropped, what was done with it, and one
//! rule's report. The worker's side (the rings) is `dataplane::trace`.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::rule::OutputMode;

/// Packets a trace keeps when the operator names no count.
pub const DEFAULT_COUNT: u32 = 100;
/// Most packets one trace may keep: a trace is for looking at, and a
/// report of this many still fits a handful of IPC messages.
pub const MAX_COUNT: u32 = 1000;
/// Packets per `FromWorker::Trace` message; with the widest fan-out
/// (256 outputs, two bytes each) a message stays well under
/// `ipc::MAX_MESSAGE`.
pub const PACKETS_PER_MESSAGE: usize = 100;

/// Why a packet was not forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropReason {
    Malformed,
    BadIpChecksum,
    Fragment,
    NotUdp,
    TtlZero,
    BadUdpChecksum,
    NoMatch,
    /// Matched, but every output was route mode and the TTL would have
    /// reached 0.
    TtlExpired,
    /// Matched, but no output took it (route-mode outputs cannot forward a
    /// GSO batch as one packet).
    NoOutput,
}

impl DropReason {
    pub const ALL: [DropReason; 9] = [
        DropReason::Malformed,
        DropReason::BadIpChecksum,
        DropReason::Fragment,
        DropReason::NotUdp,
        DropReason::TtlZero,
        DropReason::BadUdpChecksum,
        DropReason::NoMatch,
        DropReason::TtlExpired,
        DropReason::NoOutput,
    ];

    /// What an operator reads after "dropped: ".
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed IPv4/UDP (truncated or bad lengths)",
            DropReason::BadIpChecksum => "bad IPv4 header checksum",
            DropReason::Fragment => "IP fragment (not reassembled)",
            DropReason::NotUdp => "not UDP",
            DropReason::TtlZero => "TTL 0",
            DropReason::BadUdpChecksum => "bad UDP checksum",
            DropReason::NoMatch => "no rule matches",
            DropReason::TtlExpired => "TTL would reach 0 on every route-mode output",
            DropReason::NoOutput => "no output could take it (GSO batch on route-mode outputs)",
        }
    }

    /// The `mcrctl stats` counter that counts this drop.
    pub fn counter(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::BadIpChecksum => "ip_checksum_errors",
            DropReason::Fragment => "fragments",
            DropReason::NotUdp => "not_udp",
            DropReason::TtlZero => "ttl_zero",
            DropReason::BadUdpChecksum => "udp_checksum_errors",
            DropReason::NoMatch => "no_match",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::NoOutput => "route_gso_skipped",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to a traced packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Forwarded,
    Dropped(DropReason),
}

/// One output of a traced rule, as the worker's table has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceOutput {
    pub interface: String,
    pub group: Ipv4Addr,
    /// 0: the packet's own port.
    pub port: u16,
    pub mode: OutputMode,
}

/// One traced packet in a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracedPacket {
    pub at_ms: u64,
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
    pub size: u32,
    pub datagrams: u32,
    pub action: Action,
    /// Indices into the rule's `outputs`.
    pub outputs: Vec<u16>,
}

/// A rule's trace, or part of it: a long one spans several messages, each
/// with the next packets (only the first part lists the outputs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleTrace {
    pub key: u64,
    pub capacity: u32,
    pub seen: u64,
    pub outputs: Vec<TraceOutput>,
    pub packets: Vec<TracedPacket>,
}

/// Put parts of one rule's trace back together (reports from several
/// messages arrive in order).
pub fn merge_parts(parts: impl IntoIterator<Item = RuleTrace>) -> Vec<RuleTrace> {
    let mut out: Vec<RuleTrace> = Vec::new();
    for p in parts {
        match out.iter_mut().find(|r| r.key == p.key) {
            Some(r) => {
                r.packets.extend(p.packets);
                if r.outputs.is_empty() {
                    r.outputs = p.outputs;
                }
            }
            None => out.push(p),
        }
    }
    out
}
