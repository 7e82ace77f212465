//! What a worker on a PIM interface tells the supervisor about traffic,
//! and how much of it: the first-packet upcall and the register punt.
//!
//! Owns: the decision whether a packet is a PIM upcall candidate (an IPv4
//! multicast (S,G) outside 224.0.0.0/24 that no (S,G) rule covers), the
//! per-(S,G) and global upcall rate limits ([`UpcallLimiter`]), the punt
//! budget of register tunnels ([`PuntBudget`]) and the header peek both
//! need. The worker's ring loop calls in; the clock is a millisecond count
//! it passes, so everything here is testable without time passing.
//!
//! RFC 7761 leaves how data reaches the protocol to the implementation;
//! this is the equivalent of the kernel's multicast routing cache miss
//! (`IGMPMSG_NOCACHE`) and of the whole-packet upcall its register vif
//! makes. It feeds §4.4.1 (the DR's Keepalive Timer and CouldRegister, and
//! the packets it encapsulates) and §4.2 (data on an interface that
//! drives KAT, SPT bit and Assert).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::dataplane::pipeline::Verdict;
use crate::dataplane::table::Table;
use crate::ipc::FrameFormat;

/// One report per (S,G) per this period at most. Repeats while the flow
/// stays uncovered keep its Keepalive Timer (210 s) alive.
pub const FLOW_INTERVAL_MS: u64 = 1000;
/// Upcalls per second per worker at most: a flood of new flows (a scan of
/// sources or groups) must not flood the supervisor.
pub const UPCALLS_PER_SEC: u32 = 200;
/// (S,G)s whose last report is remembered; past this the oldest are
/// forgotten first, and a flood beyond it is bounded by `UPCALLS_PER_SEC`.
pub const MAX_FLOWS: usize = 8192;
/// Register punt budget per worker per second: packets and bytes. Near
/// what the PimActor encapsulates (about 3 000 a second measured in a
/// debug build, PERFORMANCE.md): a faster source is cut here, where the
/// drop is counted, instead of filling the IPC socket and the actor's
/// queue and delaying every later Register by seconds.
pub const PUNT_PACKETS_PER_SEC: u32 = 5_000;
pub const PUNT_BYTES_PER_SEC: u64 = 8 * 1024 * 1024;

/// Source, destination and length of the IPv4 packet in a frame, if it
/// has a whole, valid header: enough to decide on an upcall or a punt
/// without the pipeline's full checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peek {
    pub source: Ipv4Addr,
    pub group: Ipv4Addr,
    /// Offset of the IPv4 header in the frame and the packet's length.
    pub offset: usize,
    pub len: usize,
}

/// Look at the IPv4 header of `frame` (of which `received` bytes are
/// valid). Frames whose IP header cannot be read, or whose stated
/// length exceeds what arrived, give `None`.
pub fn peek(frame: &[u8], received: usize, fmt: FrameFormat) -> Option<Peek> {
    let h = fmt.ip_offset();
    let f = frame.get(h..received.min(frame.len()))?;
    if f.len() < 20 || f[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(f[0] & 0x0f) * 4;
    let len = usize::from(u16::from_be_bytes([f[2], f[3]]));
    if ihl < 20 || len < ihl || len > f.len() {
        return None;
    }
    let source = Ipv4Addr::new(f[12], f[13], f[14], f[15]);
    let group = Ipv4Addr::new(f[16], f[17], f[18], f[19]);
    Some(Peek {
        source,
        group,
        offset: h,
        len,
    })
}

/// Whether PIM cares about data to `group` from `source`: multicast
/// beyond the link-local block (224.0.0.0/24 is never routed, RFC 5771),
/// from a usable unicast source.
pub fn routable(source: Ipv4Addr, group: Ipv4Addr) -> bool {
    group.is_multicast()
        && group.octets()[..3] != [224, 0, 0]
        && !source.is_unspecified()
        && !source.is_multicast()
        && !source.is_broadcast()
}

/// Whether the pipeline's `verdict` leaves a packet uncovered by any (S,G)
/// rule of `table`: no rule took it, or only a rule for any source (a
/// (*,G) route) did. Packets refused before the lookup (malformed,
/// fragments, not UDP, bad checksums, TTL 0) never reach a route.
pub fn uncovered(verdict: Verdict, table: &Table) -> bool {
    match verdict {
        Verdict::NoMatch => true,
        Verdict::Forward { slot } => table.entry(slot).is_some_and(|e| e.rule.source.is_none()),
        _ => false,
    }
}

/// What the limiter decided about one candidate packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send the upcall.
    Report,
    /// This (S,G) was reported less than `FLOW_INTERVAL_MS` ago: nothing
    /// to say (not counted: it is the normal case for every later packet).
    Recent,
    /// The global limit is spent this second (counted).
    Suppressed,
}

/// Per-(S,G) and global rate limits of the upcall.
pub struct UpcallLimiter {
    flow_interval_ms: u64,
    per_sec: u32,
    /// Last report of each (S,G), in ms.
    last: HashMap<(Ipv4Addr, Ipv4Addr), u64>,
    window_start: u64,
    in_window: u32,
}

impl Default for UpcallLimiter {
    fn default() -> Self {
        Self::new(FLOW_INTERVAL_MS, UPCALLS_PER_SEC)
    }
}

impl UpcallLimiter {
    pub fn new(flow_interval_ms: u64, per_sec: u32) -> Self {
        UpcallLimiter {
            flow_interval_ms,
            per_sec,
            last: HashMap::new(),
            window_start: 0,
            in_window: 0,
        }
    }

    /// A candidate packet of (source, group) at `now_ms`.
    pub fn check(&mut self, now_ms: u64, source: Ipv4Addr, group: Ipv4Addr) -> Decision {
        let key = (source, group);
        if let Some(&at) = self.last.get(&key) {
            if now_ms.saturating_sub(at) < self.flow_interval_ms {
                return Decision::Recent;
            }
        }
        if now_ms.saturating_sub(self.window_start) >= 1000 {
            self.window_start = now_ms;
            self.in_window = 0;
        }
        if self.in_window >= self.per_sec {
            return Decision::Suppressed;
        }
        if self.last.len() >= MAX_FLOWS && !self.last.contains_key(&key) {
            self.forget_old(now_ms);
        }
        self.in_window += 1;
        self.last.insert(key, now_ms);
        Decision::Report
    }

    /// Make room: drop flows whose interval is over (they would be
    /// reported again anyway); if all are recent, drop half of them,
    /// oldest first. Runs at most once per `MAX_FLOWS / 2` new flows.
    fn forget_old(&mut self, now_ms: u64) {
        let interval = self.flow_interval_ms;
        self.last
            .retain(|_, at| now_ms.saturating_sub(*at) < interval);
        if self.last.len() >= MAX_FLOWS {
            let mut ats: Vec<u64> = self.last.values().copied().collect();
            ats.sort_unstable();
            let cut = ats[ats.len() / 2];
            self.last.retain(|_, at| *at > cut);
        }
    }

    /// (S,G)s remembered now.
    pub fn flows(&self) -> usize {
        self.last.len()
    }
}

/// Packets and bytes per second a worker may punt.
pub struct PuntBudget {
    packets: u32,
    bytes: u64,
    window_start: u64,
    used_packets: u32,
    used_bytes: u64,
}

impl Default for PuntBudget {
    fn default() -> Self {
        Self::new(PUNT_PACKETS_PER_SEC, PUNT_BYTES_PER_SEC)
    }
}

impl PuntBudget {
    pub fn new(packets: u32, bytes: u64) -> Self {
        PuntBudget {
            packets,
            bytes,
            window_start: 0,
            used_packets: 0,
            used_bytes: 0,
        }
    }

    /// Whether a packet of `len` bytes may be punted at `now_ms`; if so it
    /// is charged.
    pub fn admit(&mut self, now_ms: u64, len: usize) -> bool {
        if now_ms.saturating_sub(self.window_start) >= 1000 {
            self.window_start = now_ms;
            self.used_packets = 0;
            self.used_bytes = 0;
        }
        if self.used_packets >= self.packets || self.used_bytes + len as u64 > self.bytes {
            return false;
        }
        self.used_packets += 1;
        self.used_bytes += len as u64;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{UdpPacketSpec, VnetHdr};

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    const FMT: FrameFormat = FrameFormat {
        vnet: true,
        link_header: 0,
    };

    #[test]
    fn the_header_is_read_and_a_short_frame_is_refused() {
        let pkt = UdpPacketSpec::new(ip("10.1.0.5"), ip("239.1.2.3"), 1, 2).build(b"hello");
        let mut f = VnetHdr::plain().to_vec();
        f.extend_from_slice(&pkt);
        let p = peek(&f, f.len(), FMT).unwrap();
        assert_eq!((p.source, p.group), (ip("10.1.0.5"), ip("239.1.2.3")));
        assert_eq!(&f[p.offset..p.offset + p.len], &pkt[..]);
        // The kernel said fewer bytes arrived than the header claims.
        assert_eq!(peek(&f, f.len() - 1, FMT), None);
        assert_eq!(peek(&f[..20], 20, FMT), None);
        let mut v6 = f.clone();
        v6[FMT.ip_offset()] = 0x60;
        assert_eq!(peek(&v6, v6.len(), FMT), None);
        // Every truncation of every length: never a panic.
        for n in 0..f.len() + 4 {
            let _ = peek(&f[..n.min(f.len())], n, FMT);
        }
    }

    #[test]
    fn link_local_groups_and_bogus_sources_are_not_routable() {
        assert!(routable(ip("10.0.0.1"), ip("239.1.1.1")));
        assert!(routable(ip("10.0.0.1"), ip("224.0.1.1")));
        assert!(!routable(ip("10.0.0.1"), ip("224.0.0.13")));
        assert!(!routable(ip("10.0.0.1"), ip("224.0.0.251")));
        assert!(!routable(ip("10.0.0.1"), ip("10.0.0.2")));
        assert!(!routable(ip("0.0.0.0"), ip("239.1.1.1")));
        assert!(!routable(ip("239.0.0.1"), ip("239.1.1.1")));
    }

    #[test]
    fn only_packets_without_an_s_g_rule_are_uncovered() {
        use crate::dataplane::pipeline::process;
        use crate::ipc::{rule_key, TableOutput, TableRule, WorkerCounters};
        use crate::rule::OutputMode;
        let rule = |id: &str, source: Option<&str>| TableRule {
            key: rule_key(id),
            id: id.into(),
            group: ip("239.1.1.1"),
            port: 0,
            source: source.map(ip),
            outputs: vec![TableOutput {
                egress: 0,
                group: ip("239.1.1.1"),
                port: 0,
                mode: OutputMode::Route,
            }],
        };
        let verdict = |t: &mut Table, src: &str, dst: &str| {
            let pkt = UdpPacketSpec::new(ip(src), ip(dst), 1, 2).build(b"x");
            let mut f = VnetHdr::plain().to_vec();
            f.extend_from_slice(&pkt);
            let n = f.len();
            let mut c = WorkerCounters::default();
            process(&mut f, n, FMT, t, &mut Vec::new(), &mut c)
        };
        let mut t = Table::new();
        // No rule at all.
        let v = verdict(&mut t, "10.0.0.1", "239.1.1.1");
        assert!(uncovered(v, &t), "{v:?}");
        // A (*,G) rule forwards it, but PIM still has to hear of (S,G).
        t.upsert(rule("star", None));
        let v = verdict(&mut t, "10.0.0.1", "239.1.1.1");
        assert!(matches!(v, Verdict::Forward { .. }) && uncovered(v, &t));
        // An (S,G) rule covers its source, not another.
        t.upsert(rule("sg", Some("10.0.0.1")));
        let v = verdict(&mut t, "10.0.0.1", "239.1.1.1");
        assert!(matches!(v, Verdict::Forward { .. }) && !uncovered(v, &t));
        assert!(uncovered(verdict(&mut t, "10.0.0.2", "239.1.1.1"), &t));
        // Refused before the lookup.
        assert!(!uncovered(Verdict::Malformed, &t));
        assert!(!uncovered(Verdict::NotUdp, &t));
    }

    #[test]
    fn one_report_per_flow_per_interval() {
        let mut l = UpcallLimiter::new(1000, 100);
        let (s, g) = (ip("10.0.0.1"), ip("239.1.1.1"));
        assert_eq!(l.check(0, s, g), Decision::Report);
        for t in [1, 500, 999] {
            assert_eq!(l.check(t, s, g), Decision::Recent, "{t}");
        }
        assert_eq!(l.check(1000, s, g), Decision::Report);
        // Another group of the same source is another flow.
        assert_eq!(l.check(1001, s, ip("239.1.1.2")), Decision::Report);
    }

    #[test]
    fn a_flood_of_new_flows_is_bounded_per_second_and_counted() {
        let mut l = UpcallLimiter::new(1000, 200);
        let (mut reported, mut suppressed) = (0, 0);
        // 20 000 new (S,G)s, 10 000 a second, over two seconds.
        for i in 0..20_000u32 {
            let now = u64::from(i) / 10;
            let s = Ipv4Addr::from(0x0a00_0000 + i);
            match l.check(now, s, ip("239.9.9.9")) {
                Decision::Report => reported += 1,
                Decision::Suppressed => suppressed += 1,
                Decision::Recent => panic!("every flow is new"),
            }
        }
        assert_eq!(reported, 400, "200 a second for two seconds");
        assert_eq!(suppressed, 19_600);
        assert!(l.flows() <= MAX_FLOWS);
    }

    #[test]
    fn the_flow_memory_stays_bounded() {
        let mut l = UpcallLimiter::new(60_000, u32::MAX);
        for i in 0..(3 * MAX_FLOWS as u32) {
            let s = Ipv4Addr::from(0x0a00_0000 + i);
            assert_eq!(l.check(u64::from(i), s, ip("239.9.9.9")), Decision::Report);
            assert!(l.flows() <= MAX_FLOWS);
        }
        // The newest are still remembered.
        let newest = Ipv4Addr::from(0x0a00_0000 + 3 * MAX_FLOWS as u32 - 1);
        assert_eq!(
            l.check(3 * MAX_FLOWS as u64, newest, ip("239.9.9.9")),
            Decision::Recent
        );
    }

    #[test]
    fn the_punt_budget_counts_packets_and_bytes() {
        let mut b = PuntBudget::new(3, 10_000);
        assert!(b.admit(0, 100) && b.admit(1, 100) && b.admit(2, 100));
        assert!(!b.admit(3, 100), "a fourth packet in the same second");
        assert!(b.admit(1000, 100), "a new second");
        let mut b = PuntBudget::new(100, 3000);
        assert!(b.admit(0, 1500) && b.admit(0, 1500));
        assert!(!b.admit(0, 1), "bytes spent");
    }
}
