//! The supervisor ⇄ worker protocol: the only thing the daemon and its
//! workers share.
//!
//! Owns: the message types (`ToWorker`, `FromWorker`), the forwarding table
//! a worker is given (`TableRule`, with its stable entry hash), the wire
//! encoding (postcard in one `SOCK_SEQPACKET` message each, so message
//! boundaries come from the socket), chunking so that no message exceeds
//! `MAX_MESSAGE`, file-descriptor passing (`fdpass`), and the per-rule
//! packet trace's report (`trace`). The version is checked when a worker
//! says hello.
//!
//! Drift detection: every table message carries a sequence number and the
//! hash the worker's table must have once it is applied. The worker acks
//! with the hash it has; a mismatch or a sequence gap means the supervisor
//! sends the whole table again.

pub mod fdpass;
pub mod trace;

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::hash::{fnv1a64, Fnv64};
use crate::logging::LogLevels;
use crate::rule::OutputMode;

/// Bump on any change to the messages below. postcard is positional, so
/// even a field added with `#[serde(default)]` (there for the JSON of the
/// control protocol) changes the encoding.
pub const IPC_VERSION: u32 = 4;

/// Largest encoded message. The socket pair's buffers are sized above this.
pub const MAX_MESSAGE: usize = 128 * 1024;

/// Rules per table message; keeps every message well under `MAX_MESSAGE`
/// even with many outputs per rule.
pub const RULES_PER_CHUNK: usize = 64;

/// The stable key of a rule in a worker's table.
pub fn rule_key(rule_id: &str) -> u64 {
    fnv1a64(rule_id.as_bytes())
}

/// One output of a table rule, as the worker sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableOutput {
    /// Which egress socket (see `ToWorker::AddEgress`).
    pub egress: u32,
    pub group: Ipv4Addr,
    /// 0 = the packet's own destination port.
    pub port: u16,
    pub mode: OutputMode,
}

/// One rule of a worker's table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRule {
    pub key: u64,
    pub id: String,
    pub group: Ipv4Addr,
    /// 0 = any port.
    pub port: u16,
    pub source: Option<Ipv4Addr>,
    pub outputs: Vec<TableOutput>,
}

impl TableRule {
    /// The hash this rule contributes to its table's `TableHash`.
    pub fn entry_hash(&self) -> u64 {
        let mut h = Fnv64::new();
        h.write_u64(self.key)
            .write(self.id.as_bytes())
            .write_u8(0)
            .write(&self.group.octets())
            .write_u16(self.port)
            .write(&self.source.map(|s| s.octets()).unwrap_or([0; 4]))
            .write_u8(u8::from(self.source.is_some()))
            .write_u32(self.outputs.len() as u32);
        for o in &self.outputs {
            h.write_u32(o.egress)
                .write(&o.group.octets())
                .write_u16(o.port)
                .write_u8(o.mode as u8);
        }
        h.finish()
    }
}

/// An egress socket: which interface and how it sends.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EgressSpec {
    pub id: u32,
    pub interface: String,
    pub ttl: u8,
    pub mode: OutputMode,
    /// The output interface's MTU: GSO segments must fit in it.
    pub mtu: u32,
}

/// How frames from the ingress socket are laid out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameFormat {
    /// A `virtio_net_hdr` comes first (raw sockets with `PACKET_VNET_HDR`),
    /// telling GSO batches apart.
    pub vnet: bool,
    /// Bytes of link-layer header before the IPv4 header (14 on Ethernet,
    /// 0 on tun/WireGuard and cooked sockets).
    pub link_header: u16,
}

impl FrameFormat {
    /// Offset of the IPv4 header in a frame.
    pub fn ip_offset(self) -> usize {
        usize::from(self.link_header)
            + if self.vnet {
                crate::wire::VNET_HDR_LEN
            } else {
                0
            }
    }
}

/// What the worker needs to know at start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerSetup {
    pub version: u32,
    pub interface: String,
    pub ifindex: u32,
    /// Receive buffer size: the interface MTU plus headroom, rounded up.
    pub buffer_size: u32,
    pub format: FrameFormat,
    pub stats_interval_ms: u32,
    pub levels: LogLevels,
    /// Drop to these after the sockets arrive.
    pub uid: u32,
    pub gid: u32,
    pub core: Option<u32>,
    /// How many of this interface's workers there are, and which one this
    /// is (for logs and stats).
    pub worker_index: u32,
    /// The config's `workers.rx_*` keys as they were when this worker
    /// started.
    #[serde(default)]
    pub rx: crate::config::RxConfig,
    /// The Hello carries a second descriptor: the input's early-drop map
    /// (`sys::xdp`), whose flag the worker sets while its ring is nearly
    /// full.
    #[serde(default)]
    pub early_drop: bool,
}

/// Faults the supervisor can ask a worker to suffer (only with
/// `--enable-fault-injection`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// Stop heartbeating and stop forwarding: a stuck loop.
    Stall,
    /// Corrupt the table: drop one rule without being told to.
    CorruptTable,
    /// Panic.
    Panic,
}

/// What PIM asks of the worker of one interface (RFC 7761 §4.4; see
/// `dataplane::upcall`). Sent whole on every change and to every new
/// process, so a lost or reordered message is repaired by the next.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PimData {
    /// PIM runs on this interface: report the first packet of every
    /// (S,G) that no (S,G) rule covers (`FromWorker::Upcall`).
    pub upcall: bool,
    /// (source, group) pairs whose packets are sent whole to the
    /// supervisor (`FromWorker::Punt`): the first-hop DR's register
    /// tunnels. At most `MAX_PUNT_FLOWS`.
    pub punts: Vec<(Ipv4Addr, Ipv4Addr)>,
}

/// Most register tunnels one worker punts for; more are ignored (the
/// message must fit in `MAX_MESSAGE`).
pub const MAX_PUNT_FLOWS: usize = 4096;

/// Supervisor → worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// First message; carries the AF_PACKET socket as its one fd.
    Hello(WorkerSetup),
    /// Carries the socket as its one fd.
    AddEgress(EgressSpec),
    RemoveEgress {
        id: u32,
    },
    /// Upsert and remove rules; afterwards the table hash must be
    /// `expect_hash`.
    ApplyDelta {
        seq: u64,
        upserts: Vec<TableRule>,
        removes: Vec<u64>,
        expect_hash: u64,
    },
    /// Start a full replacement of the table.
    SyncBegin {
        seq: u64,
    },
    SyncChunk {
        seq: u64,
        rules: Vec<TableRule>,
    },
    /// The replacement is complete and must hash to `hash`.
    SyncEnd {
        seq: u64,
        hash: u64,
    },
    SetLogLevel(LogLevels),
    Fault(Fault),
    Shutdown,
    /// Keep the last `count` packets of rule `key` (restarts an existing
    /// trace of it, emptied).
    TraceEnable {
        key: u64,
        count: u32,
    },
    TraceDisable {
        key: u64,
    },
    /// Report the trace of `key` (every traced rule if `None`); answered
    /// with `FromWorker::Trace` messages carrying the same `nonce`.
    TraceGet {
        key: Option<u64>,
        nonce: u64,
    },
    /// Replaces what PIM asked of this worker before.
    PimData(PimData),
}

/// Per-worker counters. Monotonic for the life of the worker process.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerCounters {
    /// Frames handed to us by the kernel.
    pub recv: u64,
    pub recv_bytes: u64,
    /// Frames that matched a rule.
    pub matched: u64,
    /// UDP packets for which no rule matched.
    pub no_match: u64,
    /// IP fragments (dropped: no reassembly).
    pub fragments: u64,
    /// Truncated or malformed IPv4/UDP.
    pub malformed: u64,
    /// IPv4 that is not UDP.
    pub not_udp: u64,
    /// Route-mode outputs skipped because TTL would reach 0.
    pub ttl_expired: u64,
    /// Frames that were GSO batches of several datagrams (split and relayed
    /// one datagram each); datagrams are what `matched` counts.
    pub gso_frames: u64,
    /// Route-mode outputs skipped for datagrams that arrived in a GSO batch:
    /// the original packet cannot be forwarded as one.
    pub route_gso_skipped: u64,
    /// Receives that found no free buffer (the kernel dropped).
    pub buf_exhaust: u64,
    /// Packets the kernel dropped on our socket before we saw them.
    pub kernel_drops: u64,
    /// Datagrams handed to the kernel on outputs.
    pub sent: u64,
    pub sent_bytes: u64,
    pub send_errors: u64,
    /// Sends dropped because every send slot was busy.
    pub send_backlog_drops: u64,
    /// io_uring: `submit` calls, entries submitted, completions reaped.
    pub ring_submits: u64,
    pub ring_sqes: u64,
    pub ring_cqes: u64,
    /// IPv4 headers whose checksum is wrong (dropped: corrupted on the way).
    /// Defaults keep a `stats` reply of an older daemon readable.
    #[serde(default)]
    pub ip_checksum_errors: u64,
    /// Matched UDP datagrams whose checksum is wrong (dropped). Not checked
    /// when the kernel has already checked it or left it to offload.
    #[serde(default)]
    pub udp_checksum_errors: u64,
    /// UDP datagrams that arrived with TTL 0 (dropped: no router or host
    /// may send one, RFC 1812 §5.3.1, RFC 1122 §3.2.1.7).
    #[serde(default)]
    pub ttl_zero: u64,
    /// First packets of an uncovered (S,G) reported to PIM
    /// (`FromWorker::Upcall`).
    #[serde(default)]
    pub upcalls: u64,
    /// Upcalls not sent because the global rate limit was reached (a
    /// flood of new flows); the flow is reported once the limit allows.
    #[serde(default)]
    pub upcalls_suppressed: u64,
    /// Packets of register tunnels sent whole to the supervisor.
    #[serde(default)]
    pub punted: u64,
    /// Packets of register tunnels not sent because the punt budget
    /// (packets or bytes per second) was spent, or the IPC socket was full.
    #[serde(default)]
    pub punt_dropped: u64,
    /// Frames the input's XDP program dropped, before the kernel's receive
    /// path, while this worker's ring was nearly full (`workers.early_drop`).
    #[serde(default)]
    pub early_drops: u64,
    /// Datagrams dropped for one output because its socket's send buffer
    /// (or the device queue) was full: the send fails at once instead of
    /// waiting, so a slow output never holds back the input or the others.
    #[serde(default)]
    pub output_full_drops: u64,
}

/// Per-output counters of one rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputCounters {
    pub packets: u64,
    pub bytes: u64,
    pub errors: u64,
}

/// Counters of one rule, keyed by `TableRule::key`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleCounters {
    pub key: u64,
    pub packets: u64,
    pub bytes: u64,
    pub outputs: Vec<OutputCounters>,
}

/// Worker → supervisor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FromWorker {
    Hello {
        version: u32,
        pid: u32,
    },
    /// After each table message: the last sequence number applied and the
    /// hash of the table now. `gap` is set when a sequence number was
    /// skipped (messages were lost) and the table can no longer be trusted.
    Ack {
        seq: u64,
        hash: u64,
        rules: u32,
        gap: bool,
    },
    /// Periodic; `rules` may be split over several messages, `last` marks
    /// the final one of a report.
    Stats {
        // Boxed: the counters outgrew the other variants many times over.
        counters: Box<WorkerCounters>,
        rules: Vec<RuleCounters>,
        last: bool,
    },
    /// Periodic liveness, with the table state so drift is caught even
    /// when no delta was sent.
    Heartbeat {
        seq: u64,
        hash: u64,
    },
    /// Something the worker could not do (e.g. an output's egress socket is
    /// missing). The worker keeps running.
    Error {
        message: String,
    },
    /// The answer to `TraceGet`, in parts of at most
    /// `trace::PACKETS_PER_MESSAGE` packets; `last` marks the final one.
    Trace {
        nonce: u64,
        rules: Vec<trace::RuleTrace>,
        last: bool,
    },
    /// A multicast packet of (source, group) arrived on a PIM interface and
    /// no (S,G) rule covers it (the kernel's cache-miss upcall). Repeated
    /// at most once per `upcall::FLOW_INTERVAL_MS` while that lasts, so it
    /// also tells PIM the flow is still there.
    Upcall {
        source: Ipv4Addr,
        group: Ipv4Addr,
    },
    /// A whole IPv4 packet (header included, TTL as received) of a flow in
    /// `PimData::punts`, for Register encapsulation.
    Punt {
        #[serde(with = "bytes")]
        packet: Vec<u8>,
    },
}

/// A byte vector encoded as one length-prefixed run of bytes, not as a
/// sequence of `u8`s one serde call each: punted packets cross the IPC
/// socket at data rates, and the per-byte path cost more than the copy.
mod bytes {
    use serde::de::{Deserializer, Error, SeqAccess, Visitor};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(Bytes)
    }

    struct Bytes;

    impl<'de> Visitor<'de> for Bytes {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(65_536));
            while let Some(b) = seq.next_element()? {
                v.push(b);
            }
            Ok(v)
        }
    }
}

/// Why a message could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE}-byte limit")]
    TooLarge(usize),
    #[error("undecodable message: {0}")]
    Decode(String),
}

pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, CodecError> {
    let v = postcard::to_stdvec(msg).map_err(|e| CodecError::Decode(e.to_string()))?;
    if v.len() > MAX_MESSAGE {
        return Err(CodecError::TooLarge(v.len()));
    }
    Ok(v)
}

pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    postcard::from_bytes(bytes).map_err(|e| CodecError::Decode(e.to_string()))
}

/// Hash of a whole table.
pub fn table_hash<'a>(rules: impl IntoIterator<Item = &'a TableRule>) -> u64 {
    let mut h = crate::hash::TableHash::default();
    for r in rules {
        h.add(r.entry_hash());
    }
    h.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(id: &str, outs: usize) -> TableRule {
        TableRule {
            key: rule_key(id),
            id: id.into(),
            group: "239.1.1.1".parse().unwrap(),
            port: 5000,
            source: None,
            outputs: (0..outs)
                .map(|i| TableOutput {
                    egress: i as u32,
                    group: "239.2.2.2".parse().unwrap(),
                    port: 6000 + i as u16,
                    mode: OutputMode::Republish,
                })
                .collect(),
        }
    }

    #[test]
    fn messages_round_trip() {
        let m = ToWorker::ApplyDelta {
            seq: 7,
            upserts: vec![tr("a", 2)],
            removes: vec![3, 4],
            expect_hash: 99,
        };
        let b = encode(&m).unwrap();
        assert_eq!(decode::<ToWorker>(&b).unwrap(), m);
        let s = FromWorker::Stats {
            counters: Box::new(WorkerCounters {
                recv: 5,
                ..Default::default()
            }),
            rules: vec![RuleCounters {
                key: 1,
                packets: 2,
                bytes: 3,
                outputs: vec![OutputCounters::default()],
            }],
            last: true,
        };
        assert_eq!(decode::<FromWorker>(&encode(&s).unwrap()).unwrap(), s);
    }

    #[test]
    fn counters_of_an_older_daemon_still_read() {
        // A `stats` reply from before the checksum counters existed.
        let mut v = serde_json::to_value(WorkerCounters {
            recv: 9,
            malformed: 2,
            ..Default::default()
        })
        .unwrap();
        let obj = v.as_object_mut().unwrap();
        for k in [
            "ip_checksum_errors",
            "udp_checksum_errors",
            "ttl_zero",
            "upcalls",
            "upcalls_suppressed",
            "punted",
            "punt_dropped",
        ] {
            assert!(obj.remove(k).is_some(), "{k} is serialised");
        }
        let c: WorkerCounters = serde_json::from_value(v).unwrap();
        assert_eq!((c.recv, c.malformed, c.udp_checksum_errors), (9, 2, 0));
    }

    #[test]
    fn the_most_punt_flows_and_a_jumbo_punt_fit_in_one_message() {
        let ip = |i: u32| Ipv4Addr::from(0xef00_0000 + i);
        let m = ToWorker::PimData(PimData {
            upcall: true,
            punts: (0..MAX_PUNT_FLOWS as u32).map(|i| (ip(i), ip(i))).collect(),
        });
        assert_eq!(decode::<ToWorker>(&encode(&m).unwrap()).unwrap(), m);
        let p = FromWorker::Punt {
            packet: vec![0x45; 65_535],
        };
        assert_eq!(decode::<FromWorker>(&encode(&p).unwrap()).unwrap(), p);
    }

    #[test]
    fn a_full_chunk_fits_in_one_message() {
        let rules: Vec<TableRule> = (0..RULES_PER_CHUNK)
            .map(|i| {
                tr(
                    &format!("rule-with-a-long-name-{i:040}"),
                    crate::rule::MAX_OUTPUTS / 16,
                )
            })
            .collect();
        let m = ToWorker::SyncChunk { seq: 1, rules };
        assert!(encode(&m).is_ok());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode::<ToWorker>(&[0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert!(decode::<FromWorker>(&[]).is_err());
        let mut x: u32 = 1;
        for len in 0..200usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = decode::<ToWorker>(&bytes);
            let _ = decode::<FromWorker>(&bytes);
        }
    }

    #[test]
    fn entry_hash_sees_every_field() {
        let a = tr("a", 1);
        let mut b = a.clone();
        b.outputs[0].egress = 9;
        assert_ne!(a.entry_hash(), b.entry_hash());
        let mut c = a.clone();
        c.source = Some("10.0.0.1".parse().unwrap());
        assert_ne!(a.entry_hash(), c.entry_hash());
        assert_eq!(table_hash([&a, &b]), table_hash([&b, &a]));
    }
}
