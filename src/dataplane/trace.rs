//! Per-rule packet trace (`mcrctl trace`): what a worker remembers of the
//! last packets of the rules an operator traces, and the report it sends
//! back over IPC.
//!
//! Owns: the bounded ring of one traced rule (allocated once, when the
//! trace is enabled, so recording never allocates), the record of one
//! packet, and a header peek that reads
//! addresses and ports from any frame, including the ones the pipeline
//! refused, so that a dropped packet can still be charged to the rule it
//! was meant for. The report's types and the drop reasons (`ipc::trace`)
//! are the pipeline's verdicts (RFC 791, RFC 768,
//! RFC 1812 §5.2.2 and §5.3.1, see `pipeline`).
//!
//! A trace lives in one worker process: a restarted worker starts with
//! none (the operator enables it again).

use std::net::Ipv4Addr;

use crate::ipc::trace::{
    Action, DropReason, RuleTrace, TraceOutput, TracedPacket, MAX_COUNT, PACKETS_PER_MESSAGE,
};
use crate::ipc::FrameFormat;

use super::pipeline::Verdict;

/// The reason a pipeline verdict stands for (`None`: forwarded).
pub fn reason_of(v: Verdict) -> Option<DropReason> {
    Some(match v {
        Verdict::Forward { .. } => return None,
        Verdict::Malformed => DropReason::Malformed,
        Verdict::BadIpChecksum => DropReason::BadIpChecksum,
        Verdict::BadUdpChecksum => DropReason::BadUdpChecksum,
        Verdict::TtlZero => DropReason::TtlZero,
        Verdict::Fragment => DropReason::Fragment,
        Verdict::NotUdp => DropReason::NotUdp,
        Verdict::NoMatch => DropReason::NoMatch,
    })
}

/// Which of a rule's outputs a packet went to. A rule has at most
/// `rule::MAX_OUTPUTS` (256) outputs: a fixed bitmap keeps a record `Copy`
/// and its recording free of allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputSet([u64; 4]);

impl OutputSet {
    pub fn insert(&mut self, i: u16) {
        if let Some(w) = self.0.get_mut(usize::from(i / 64)) {
            *w |= 1 << (i % 64);
        }
    }

    pub fn contains(&self, i: u16) -> bool {
        self.0
            .get(usize::from(i / 64))
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..256u16).filter(|i| self.contains(*i))
    }
}

/// Addresses, ports and sizes read from a frame without judging it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peek {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// 0 when the packet is not UDP or too short to carry ports.
    pub sport: u16,
    pub dport: u16,
    pub ttl: u8,
    /// Bytes of the IP packet as received.
    pub size: u32,
}

impl Default for Peek {
    fn default() -> Self {
        Peek {
            src: Ipv4Addr::UNSPECIFIED,
            dst: Ipv4Addr::UNSPECIFIED,
            sport: 0,
            dport: 0,
            ttl: 0,
            size: 0,
        }
    }
}

/// Read what a frame claims to be: enough to say which rule it was meant
/// for and where it came from, even when the pipeline refused it. `None`
/// when not even an IPv4 header's addresses are there.
pub fn peek(frame: &[u8], received: usize, fmt: FrameFormat) -> Option<Peek> {
    let h = fmt.ip_offset();
    let end = received.min(frame.len());
    let ip = frame.get(h..end)?;
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let be16 = |b: &[u8], i: usize| b.get(i..i + 2).map(|s| u16::from_be_bytes([s[0], s[1]]));
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let mut p = Peek {
        src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        ttl: ip[8],
        size: ip.len() as u32,
        ..Peek::default()
    };
    // Only the first fragment (offset 0) carries the UDP header.
    let first = be16(ip, 6).is_some_and(|f| f & 0x1fff == 0);
    if ip[9] == crate::wire::IPPROTO_UDP && first && ihl >= 20 {
        if let (Some(s), Some(d)) = (be16(ip, ihl), be16(ip, ihl + 2)) {
            p.sport = s;
            p.dport = d;
        }
    }
    Some(p)
}

/// One traced packet, as the worker keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Wall clock, milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub peek: Peek,
    /// Datagrams in the frame (more than one for a GSO batch).
    pub datagrams: u32,
    pub action: Action,
    pub sent: OutputSet,
}

/// The last `capacity` records of one rule.
#[derive(Debug)]
pub struct Ring {
    buf: Vec<Record>,
    cap: usize,
    next: usize,
    /// Packets recorded since the trace was enabled (more than the ring
    /// holds once it has wrapped).
    seen: u64,
}

impl Ring {
    pub fn new(capacity: u32) -> Ring {
        let cap = capacity.clamp(1, MAX_COUNT) as usize;
        Ring {
            buf: Vec::with_capacity(cap),
            cap,
            next: 0,
            seen: 0,
        }
    }

    /// Record a packet, forgetting the oldest once full. Never allocates:
    /// the buffer was sized when the trace began.
    pub fn push(&mut self, r: Record) {
        self.seen += 1;
        if self.buf.len() < self.cap {
            self.buf.push(r);
        } else if let Some(slot) = self.buf.get_mut(self.next) {
            *slot = r;
        }
        self.next = (self.next + 1) % self.cap;
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Record> {
        let (newer, older) = if self.buf.len() < self.cap {
            self.buf.split_at(self.buf.len())
        } else {
            self.buf.split_at(self.next)
        };
        older.iter().chain(newer.iter())
    }

    pub fn capacity(&self) -> u32 {
        self.cap as u32
    }

    pub fn seen(&self) -> u64 {
        self.seen
    }
}

/// The traces of one worker, by rule key. An operator traces a handful of
/// rules at most, so a short list beats a map.
#[derive(Debug, Default)]
pub struct Traces {
    rings: Vec<(u64, Ring)>,
}

impl Traces {
    /// The data path's one question when no trace is on.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.rings.is_empty()
    }

    /// Start (or restart, emptied) the trace of `key`.
    pub fn enable(&mut self, key: u64, count: u32) {
        self.disable(key);
        self.rings.push((key, Ring::new(count)));
    }

    /// Returns whether the rule was traced.
    pub fn disable(&mut self, key: u64) -> bool {
        let before = self.rings.len();
        self.rings.retain(|(k, _)| *k != key);
        self.rings.len() != before
    }

    pub fn ring_mut(&mut self, key: u64) -> Option<&mut Ring> {
        self.rings
            .iter_mut()
            .find(|(k, _)| *k == key)
            .map(|(_, r)| r)
    }

    pub fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.rings.iter().map(|(k, _)| *k)
    }

    /// The report of `key` (every traced rule if `None`), split into
    /// messages of at most `PACKETS_PER_MESSAGE` packets. `outputs` says
    /// what a rule's outputs are now. Always at least one message, so
    /// that the asker hears back even when nothing is traced.
    pub fn report(
        &self,
        key: Option<u64>,
        outputs: impl Fn(u64) -> Vec<TraceOutput>,
    ) -> Vec<Vec<RuleTrace>> {
        let mut parts = Vec::new();
        for (k, ring) in &self.rings {
            if key.is_some_and(|want| want != *k) {
                continue;
            }
            let packets: Vec<TracedPacket> = ring.iter().map(|r| TracedPacket::from(*r)).collect();
            let mut rest = packets.as_slice();
            let mut first = true;
            loop {
                let n = rest.len().min(PACKETS_PER_MESSAGE);
                parts.push(RuleTrace {
                    key: *k,
                    capacity: ring.capacity(),
                    seen: ring.seen(),
                    outputs: if first { outputs(*k) } else { Vec::new() },
                    packets: rest[..n].to_vec(),
                });
                first = false;
                rest = &rest[n..];
                if rest.is_empty() {
                    break;
                }
            }
        }
        let mut msgs: Vec<Vec<RuleTrace>> = Vec::new();
        let mut used = 0usize;
        for p in parts {
            let n = p.packets.len().max(1);
            match msgs.last_mut() {
                Some(m) if used + n <= PACKETS_PER_MESSAGE => {
                    m.push(p);
                    used += n;
                }
                _ => {
                    msgs.push(vec![p]);
                    used = n;
                }
            }
        }
        if msgs.is_empty() {
            msgs.push(Vec::new());
        }
        msgs
    }
}

impl From<Record> for TracedPacket {
    fn from(r: Record) -> Self {
        TracedPacket {
            at_ms: r.at_ms,
            src: r.peek.src,
            sport: r.peek.sport,
            dst: r.peek.dst,
            dport: r.peek.dport,
            size: r.peek.size,
            datagrams: r.datagrams,
            action: r.action,
            outputs: r.sent.iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::trace::merge_parts;
    use crate::rule::OutputMode;
    use crate::wire::{UdpPacketSpec, VnetHdr};

    fn rec(i: u32) -> Record {
        Record {
            at_ms: u64::from(i),
            peek: Peek {
                size: i,
                ..Peek::default()
            },
            datagrams: 1,
            action: Action::Forwarded,
            sent: OutputSet::default(),
        }
    }

    #[test]
    fn a_ring_keeps_the_last_n_oldest_first_without_growing() {
        let mut r = Ring::new(3);
        r.push(rec(1));
        r.push(rec(2));
        let sizes: Vec<u32> = r.iter().map(|x| x.peek.size).collect();
        assert_eq!(sizes, vec![1, 2]);
        let cap = r.buf.capacity();
        for i in 3..=10 {
            r.push(rec(i));
        }
        let sizes: Vec<u32> = r.iter().map(|x| x.peek.size).collect();
        assert_eq!(sizes, vec![8, 9, 10]);
        assert_eq!(r.seen(), 10);
        assert_eq!(r.buf.capacity(), cap, "recording never reallocates");
        assert_eq!(Ring::new(0).capacity(), 1);
        assert_eq!(Ring::new(u32::MAX).capacity(), MAX_COUNT);
    }

    #[test]
    fn output_sets_hold_any_of_256_outputs() {
        let mut s = OutputSet::default();
        assert!(s.is_empty());
        for i in [0u16, 63, 64, 200, 255] {
            s.insert(i);
        }
        s.insert(256); // beyond any rule: ignored, not a panic
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 63, 64, 200, 255]);
        assert!(!s.contains(1));
    }

    #[test]
    fn peek_reads_refused_frames_too() {
        let fmt = FrameFormat {
            vnet: true,
            link_header: 0,
        };
        let mut spec = UdpPacketSpec::new(
            "10.0.0.1".parse().unwrap(),
            "239.1.1.1".parse().unwrap(),
            4000,
            5000,
        );
        spec.ttl = 0;
        let mut f = VnetHdr::plain().to_vec();
        f.extend_from_slice(&spec.build(&[0u8; 100]));
        f[10 + 10] ^= 0xff; // a wrong header checksum changes nothing here
        let n = f.len();
        let p = peek(&f, n, fmt).unwrap();
        assert_eq!(
            (p.src, p.dst, p.sport, p.dport, p.ttl, p.size),
            (
                "10.0.0.1".parse().unwrap(),
                "239.1.1.1".parse().unwrap(),
                4000,
                5000,
                0,
                128
            )
        );
        // A later fragment has no ports; a stub has no addresses.
        let mut frag = f.clone();
        frag[10 + 6] = 0x00;
        frag[10 + 7] = 0x10;
        assert_eq!(peek(&frag, n, fmt).unwrap().dport, 0);
        assert_eq!(peek(&f[..25], 25, fmt), None);
        assert_eq!(peek(&f, 5, fmt), None);
        assert_eq!(peek(&[], 0, fmt), None);
    }

    #[test]
    fn reports_are_chunked_and_merge_back() {
        let mut t = Traces::default();
        assert!(t.is_empty());
        t.enable(7, 250);
        t.enable(9, 5);
        for i in 0..300 {
            if let Some(r) = t.ring_mut(7) {
                r.push(rec(i));
            }
        }
        let outs = |k: u64| {
            vec![TraceOutput {
                interface: format!("if{k}"),
                group: Ipv4Addr::new(239, 0, 0, 1),
                port: 1,
                mode: OutputMode::Republish,
            }]
        };
        let msgs = t.report(None, outs);
        assert!(msgs
            .iter()
            .all(|m| m.iter().map(|r| r.packets.len()).sum::<usize>() <= PACKETS_PER_MESSAGE));
        let all = merge_parts(msgs.into_iter().flatten());
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].key, 7);
        assert_eq!(all[0].packets.len(), 250);
        assert_eq!((all[0].seen, all[0].capacity), (300, 250));
        assert_eq!(all[0].packets[0].size, 50, "oldest kept first");
        assert_eq!(all[0].outputs[0].interface, "if7");
        assert_eq!(all[1].packets.len(), 0, "an empty trace is still reported");
        assert_eq!(t.report(Some(9), outs).len(), 1);
        assert!(t.disable(7));
        assert!(!t.disable(7));
        t.disable(9);
        assert!(t.is_empty());
        assert_eq!(t.report(None, outs), vec![Vec::new()]);
    }

    #[test]
    fn every_refusal_has_a_reason_and_a_counter() {
        for r in DropReason::ALL {
            assert!(!r.as_str().is_empty());
            assert!(!r.counter().is_empty());
        }
        assert_eq!(reason_of(Verdict::Forward { slot: 0 }), None);
        assert_eq!(reason_of(Verdict::TtlZero), Some(DropReason::TtlZero));
    }
}
