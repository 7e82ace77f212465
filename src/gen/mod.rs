//! Test traffic: the engine behind `mcrgen send` / `mcrgen recv` and the
//! stream in `mcrd demo`.
//!
//! This module owns the mcrgen payload format ([`payload`]), the paced
//! batched sender ([`send`], [`Sender`]), the receiver that measures loss,
//! duplicates, reordering and latency from that payload ([`recv`],
//! [`Receiver`]), and their reports. The `mcrgen` binary is a thin CLI
//! over it. All `unsafe` (the `sendmmsg`/`recvmmsg` socket layer) is
//! confined to the private `sock` submodule.
//!
//! Both loops are built for benchmark rates: buffers are allocated when a
//! sender or receiver is opened, each batch costs one syscall, and
//! nothing is allocated per packet.

mod pace;
pub mod payload;
mod raw;
mod recv;
mod send;
mod sock;
pub mod stats;

use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use payload::{HEADER_LEN, MAX_PAYLOAD};
pub use recv::{recv, Receiver};
pub use send::{send, Sender};
pub use sock::{inject_ipv4, install_stop_handlers, interface_index, MAX_BATCH};
pub use stats::{LatencySummary, StreamSummary};

/// Port used by the `Default` options.
pub const DEFAULT_PORT: u16 = 5001;

/// What to send. Build with [`SendOpts::new`] (or `Default`) and adjust.
#[derive(Clone, Debug, PartialEq)]
pub struct SendOpts {
    /// Destination: a multicast group, or a unicast / broadcast address.
    pub group: Ipv4Addr,
    pub port: u16,
    /// Packets per second; 0 sends as fast as the kernel accepts.
    pub rate: f64,
    /// UDP payload bytes, at least [`HEADER_LEN`].
    pub size: usize,
    /// Stop after this many packets.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Address to bind (source address of the packets).
    pub source: Option<Ipv4Addr>,
    /// Egress interface: `SO_BINDTODEVICE`, and `IP_MULTICAST_IF` by index.
    pub interface: Option<String>,
    /// IP TTL (`IP_MULTICAST_TTL` for multicast, `IP_TTL` otherwise).
    pub ttl: u8,
    /// Most packets handed to one `sendmmsg`.
    pub batch: usize,
    pub stream_id: u32,
    /// `IP_MULTICAST_LOOP`: off by default so a relay or receiver on the
    /// sending host does not see an unexpected local copy.
    pub multicast_loop: bool,
    /// Pace in bursts: sleep this long whenever nothing is due, instead of
    /// spinning until the next packet's time. Costs burstiness (rate × tick
    /// packets at once) and saves a core; benchmarks on small machines use
    /// it so that the sender does not starve what it measures.
    pub tick: Option<Duration>,
    /// Send whole Ethernet frames on a packet socket (`raw`): no UDP or IP
    /// output per datagram, so one core offers far more. Needs `interface`
    /// and CAP_NET_RAW.
    pub raw: bool,
}

impl SendOpts {
    /// Flat-out, 1024-byte packets, batches of 32, until stopped; TTL 1
    /// for multicast (stay on the link unless a relay forwards it) and 64
    /// otherwise.
    pub fn new(group: Ipv4Addr, port: u16) -> SendOpts {
        SendOpts {
            group,
            port,
            rate: 0.0,
            size: 1024,
            count: None,
            duration: None,
            source: None,
            interface: None,
            ttl: if group.is_multicast() { 1 } else { 64 },
            batch: 32,
            stream_id: 0,
            multicast_loop: false,
            tick: None,
            raw: false,
        }
    }

    /// Checks everything that can be checked without the OS.
    pub fn validate(&self) -> io::Result<()> {
        let bad = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        if self.port == 0 {
            return bad("port must not be 0".into());
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            return bad(format!(
                "rate must be a finite number >= 0 (0 = flat out), not {}",
                self.rate
            ));
        }
        if !(HEADER_LEN..=MAX_PAYLOAD).contains(&self.size) {
            return bad(format!(
                "size must be between {HEADER_LEN} (the mcrgen header) and {MAX_PAYLOAD}, not {}",
                self.size
            ));
        }
        if !(1..=MAX_BATCH).contains(&self.batch) {
            return bad(format!(
                "batch must be between 1 and {MAX_BATCH}, not {}",
                self.batch
            ));
        }
        if self.group.is_unspecified() {
            return bad("destination 0.0.0.0 is not an address one can send to".into());
        }
        Ok(())
    }
}

impl Default for SendOpts {
    fn default() -> Self {
        SendOpts::new(Ipv4Addr::LOCALHOST, DEFAULT_PORT)
    }
}

/// What a send run did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SendReport {
    /// Packets the kernel accepted.
    pub sent: u64,
    /// Packets the kernel refused (each is also a gap in the sequence).
    pub errors: u64,
    /// Payload bytes sent.
    pub bytes: u64,
    /// Run time; seconds in JSON.
    #[serde(with = "secs")]
    pub elapsed: Duration,
    pub achieved_pps: f64,
    /// Sequence numbers of the first and last packet sent (0 if none).
    pub first_seq: u64,
    pub last_seq: u64,
    /// The last refusal, for the operator.
    pub last_error: Option<String>,
}

/// What to receive. Build with [`RecvOpts::new`] (or `Default`) and adjust.
#[derive(Clone, Debug, PartialEq)]
pub struct RecvOpts {
    /// A multicast group is bound and joined; a unicast address or
    /// 0.0.0.0 is just bound.
    pub group: Ipv4Addr,
    /// 0 binds any free port ([`Receiver::local_addr`] tells which).
    pub port: u16,
    /// Join on this interface (by index); for unicast, `SO_BINDTODEVICE`.
    pub interface: Option<String>,
    /// Stop this long after the start.
    pub duration: Option<Duration>,
    /// Stop after this many mcrgen datagrams.
    pub count: Option<u64>,
    /// Stop this long after the last mcrgen datagram, once one arrived.
    pub idle_timeout: Option<Duration>,
    /// The sender's count: loss is `expect - unique` per stream.
    pub expect: Option<u64>,
    /// Socket receive buffer to ask for; 0 keeps the system default.
    pub rcvbuf: usize,
    /// Check every payload byte, not just both ends of the pattern.
    pub verify_full: bool,
    /// Most datagrams taken per `recvmmsg`.
    pub batch: usize,
}

impl RecvOpts {
    /// Runs until stopped, 8 MiB receive buffer, batches of 64.
    pub fn new(group: Ipv4Addr, port: u16) -> RecvOpts {
        RecvOpts {
            group,
            port,
            interface: None,
            duration: None,
            count: None,
            idle_timeout: None,
            expect: None,
            rcvbuf: 8 << 20,
            verify_full: false,
            batch: 64,
        }
    }

    pub fn validate(&self) -> io::Result<()> {
        if !(1..=MAX_BATCH).contains(&self.batch) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "batch must be between 1 and {MAX_BATCH}, not {}",
                    self.batch
                ),
            ));
        }
        Ok(())
    }
}

impl Default for RecvOpts {
    fn default() -> Self {
        RecvOpts::new(Ipv4Addr::UNSPECIFIED, DEFAULT_PORT)
    }
}

/// What a receive run saw.
///
/// `received = unique + duplicates + corrupt`; foreign datagrams are
/// counted apart. Corrupt packets do not count as delivered, so they also
/// show up as loss unless an intact copy arrived.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecvReport {
    /// mcrgen datagrams received.
    pub received: u64,
    /// Distinct (stream, seq) pairs received intact.
    pub unique: u64,
    pub duplicates: u64,
    /// Packets that arrived after a higher seq of their stream.
    pub reordered: u64,
    /// With `expect`: `expect - unique` per stream; otherwise the gaps
    /// between the first and last seq seen. Progress snapshots always use
    /// the latter.
    pub lost: u64,
    pub loss_pct: f64,
    /// Datagrams that are not mcrgen payloads (or of streams beyond
    /// [`stats::MAX_STREAMS`]).
    pub foreign: u64,
    /// mcrgen headers whose pattern did not match.
    pub corrupt: u64,
    /// Bytes of mcrgen datagrams.
    pub bytes: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub latency_us: LatencySummary,
    /// Run time; seconds in JSON.
    #[serde(with = "secs")]
    pub elapsed: Duration,
    pub streams: u32,
    /// Unique packets per second between the first and last arrival.
    pub rate_pps: f64,
    /// Datagrams the kernel dropped because our socket buffer was full
    /// (`SO_RXQ_OVFL`); part of `lost`, but not the network's fault.
    pub socket_drops: u64,
    /// Whether every latency sample used a kernel receive timestamp
    /// (`SO_TIMESTAMPNS`); otherwise some used the time after their
    /// batch, which adds the time the batch sat in the socket queue.
    pub kernel_timestamps: bool,
    pub per_stream: Vec<StreamSummary>,
    /// Longest time between two consecutive test datagrams (µs): how long
    /// a receiver went without traffic, e.g. while a relay recovered.
    #[serde(default)]
    pub max_gap_us: f64,
}

/// `Duration` as fractional seconds, which is what scripts reading the
/// JSON want.
mod secs {
    use std::time::Duration;

    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Duration::try_from_secs_f64(f64::deserialize(d)?).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_opts_defaults_and_validation() {
        let m = SendOpts::new(Ipv4Addr::new(239, 1, 2, 3), 5000);
        assert_eq!(m.ttl, 1);
        assert!(m.validate().is_ok());
        let u = SendOpts::new(Ipv4Addr::LOCALHOST, 5000);
        assert_eq!(u.ttl, 64);

        let bad = |f: fn(&mut SendOpts), word: &str| {
            let mut o = SendOpts::default();
            f(&mut o);
            let e = o.validate().expect_err(word).to_string();
            assert!(e.contains(word), "{e:?} should mention {word}");
        };
        bad(|o| o.size = HEADER_LEN - 1, "size");
        bad(|o| o.size = MAX_PAYLOAD + 1, "size");
        bad(|o| o.rate = -1.0, "rate");
        bad(|o| o.rate = f64::NAN, "rate");
        bad(|o| o.batch = 0, "batch");
        bad(|o| o.batch = MAX_BATCH + 1, "batch");
        bad(|o| o.port = 0, "port");
        bad(|o| o.group = Ipv4Addr::UNSPECIFIED, "0.0.0.0");
    }

    #[test]
    fn reports_serialize_elapsed_as_seconds() {
        let r = SendReport {
            elapsed: Duration::from_millis(1500),
            ..SendReport::default()
        };
        let v = serde_json::to_value(&r).expect("serializable");
        assert_eq!(v["elapsed"], 1.5);
        let back: SendReport = serde_json::from_value(v).expect("round trip");
        assert_eq!(back, r);

        let r = RecvReport::default();
        let v = serde_json::to_value(&r).expect("serializable");
        assert_eq!(v["latency_us"]["p99"], 0.0);
        assert!(v["first_seq"].is_null());
    }
}
