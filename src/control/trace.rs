//! `mcrctl trace`: the request limits and the report a client sees.
//!
//! Owns: the bounds on a trace's length (`check_count`), the report of
//! the traced rules (`TraceReport`), and its making from the workers'
//! IPC reports (`ipc::trace`), where outputs are indices and times are
//! numbers: here they become what an operator reads.

use std::net::SocketAddrV4;

use serde::{Deserialize, Serialize};

use crate::ipc::trace::{Action, TraceOutput, TracedPacket, DEFAULT_COUNT, MAX_COUNT};

/// The length a trace asked for with `--count`, or why it cannot be.
pub fn check_count(count: Option<u32>) -> Result<u32, String> {
    match count {
        None => Ok(DEFAULT_COUNT),
        Some(0) => Err("--count 0: a trace keeps at least 1 packet".into()),
        Some(n) if n > MAX_COUNT => Err(format!(
            "--count {n}: a trace keeps at most {MAX_COUNT} packets"
        )),
        Some(n) => Ok(n),
    }
}

/// Every traced rule (one entry per worker serving it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceReport {
    pub rules: Vec<RuleTraceReport>,
}

/// The trace of one rule in one worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleTraceReport {
    pub rule_id: String,
    pub interface: String,
    pub worker: u32,
    /// Packets the trace keeps.
    pub capacity: u32,
    /// Packets seen since the trace was enabled (older ones are gone once
    /// this exceeds `capacity`).
    pub seen: u64,
    /// Oldest first.
    pub packets: Vec<TracePacket>,
}

/// One packet of a trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TracePacket {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub source: SocketAddrV4,
    pub destination: SocketAddrV4,
    /// Bytes of the IP packet.
    pub size: u32,
    /// Datagrams in it: more than 1 for a GSO batch from a local sender.
    pub datagrams: u32,
    /// `forwarded`, or `dropped: <reason>`.
    pub action: String,
    /// Where it went: `INTERFACE GROUP:PORT (mode)`.
    pub outputs: Vec<String>,
}

impl TracePacket {
    /// What an operator reads of a worker's record: `outputs` are the
    /// rule's outputs that the record's indices point into.
    pub fn from_ipc(p: &TracedPacket, outputs: &[TraceOutput]) -> TracePacket {
        let action = match p.action {
            Action::Forwarded => "forwarded".to_string(),
            Action::Dropped(r) => format!("dropped: {r}"),
        };
        let outputs = p
            .outputs
            .iter()
            .map(|i| match outputs.get(usize::from(*i)) {
                Some(o) => {
                    let port = if o.port == 0 { p.dport } else { o.port };
                    format!("{} {}:{port} ({})", o.interface, o.group, o.mode.as_str())
                }
                None => format!("output #{i}"),
            })
            .collect();
        TracePacket {
            at_ms: p.at_ms,
            source: SocketAddrV4::new(p.src, p.sport),
            destination: SocketAddrV4::new(p.dst, p.dport),
            size: p.size,
            datagrams: p.datagrams,
            action,
            outputs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::trace::DropReason;
    use crate::rule::OutputMode;

    #[test]
    fn counts_are_bounded_with_a_reason() {
        assert_eq!(check_count(None), Ok(DEFAULT_COUNT));
        assert_eq!(check_count(Some(1)), Ok(1));
        assert_eq!(check_count(Some(MAX_COUNT)), Ok(MAX_COUNT));
        assert!(check_count(Some(0)).unwrap_err().contains("at least 1"));
        let e = check_count(Some(MAX_COUNT + 1)).unwrap_err();
        assert!(e.contains(&format!("at most {MAX_COUNT}")), "{e}");
    }

    #[test]
    fn a_record_reads_as_sources_actions_and_outputs() {
        let outs = vec![
            TraceOutput {
                interface: "eth1".into(),
                group: "239.2.2.2".parse().unwrap(),
                port: 6000,
                mode: OutputMode::Republish,
            },
            TraceOutput {
                interface: "eth2".into(),
                group: "239.1.1.1".parse().unwrap(),
                port: 0,
                mode: OutputMode::Route,
            },
        ];
        let mut p = TracedPacket {
            at_ms: 1,
            src: "10.0.0.1".parse().unwrap(),
            sport: 4000,
            dst: "239.1.1.1".parse().unwrap(),
            dport: 5000,
            size: 128,
            datagrams: 1,
            action: Action::Forwarded,
            outputs: vec![0, 1, 9],
        };
        let t = TracePacket::from_ipc(&p, &outs);
        assert_eq!(t.source.to_string(), "10.0.0.1:4000");
        assert_eq!(t.action, "forwarded");
        assert_eq!(
            t.outputs,
            vec![
                "eth1 239.2.2.2:6000 (republish)",
                "eth2 239.1.1.1:5000 (route)",
                "output #9"
            ]
        );
        p.action = Action::Dropped(DropReason::BadIpChecksum);
        p.outputs.clear();
        let t = TracePacket::from_ipc(&p, &outs);
        assert_eq!(t.action, "dropped: bad IPv4 header checksum");
        assert!(t.outputs.is_empty());
    }
}
