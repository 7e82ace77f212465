//! The PimActor's data side: what the RP does with the packets it takes
//! out of Registers, and the per-(S,G) data reports that keep
//! KeepaliveTimer(S,G) running.
//!
//! Owns: the RP's forwarding of decapsulated packets (RFC 7761 §4.4.2,
//! "decapsulate and forward the inner packet to inherited_olist(S,G,rpt)")
//! in route mode, source kept, TTL − 1, header checksum recomputed, one
//! raw socket per outgoing interface (`mcr::sys::pim::open_forward_socket`),
//! counted per interface as `mcr_pim_decapsulated_forwarded_total` and
//! `mcr_pim_decapsulated_dropped_total{reason}`; and the activity reports:
//! about once a second the counters the workers keep for every learned
//! (S,G) route are compared with the last ones, and each route whose count
//! moved becomes `PimInput::Data` on its upstream interface. That is the
//! data the core needs for §4.1.3 (Keepalive Timer), §4.2.2
//! (Update_SPTbit, hence the RP's Register-Stop once native data arrives)
//! and §4.2.1 (the last hop's switch to the source tree) on traffic the
//! workers forward, which never passes through this actor.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mcr::ipc::rule_key;
use mcr::pim::instance::Decapsulated;
use mcr::proto::Protocol;
use mcr::rib::merge::learned_rule_id;
use mcr::rib::Route;
use mcr::sys::pim::{open_forward_socket, send_forward};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use ractor::ActorRef;
use tracing::{debug, warn};

use crate::supervisor::handles::{PimMsg, Stats};
use crate::supervisor::metric_sources::add_source;

/// How often the workers' per-route counters are compared: the workers
/// report once a second, and the Keepalive Timer (210 s) only needs to
/// hear of a flow now and then, but the RP's Register-Stop waits for the
/// first report of native data.
const ACTIVITY_PERIOD: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Iface {
    interface: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Dropped {
    interface: String,
    reason: String,
}

struct Metrics {
    forwarded: Family<Iface, Counter>,
    dropped: Family<Dropped, Counter>,
    data_reports: Counter,
}

fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let m = Metrics {
            forwarded: Family::default(),
            dropped: Family::default(),
            data_reports: Counter::default(),
        };
        let mut r = Registry::with_prefix("mcr_pim");
        r.register(
            "decapsulated_forwarded",
            "Packets the RP took out of Registers and sent on an outgoing interface (route mode, TTL - 1).",
            m.forwarded.clone(),
        );
        r.register(
            "decapsulated_dropped",
            "Decapsulated packets not sent on an outgoing interface, by reason: ttl (TTL <= 1), malformed (inner IPv4 header), no_interface, socket (cannot open the interface's socket), send.",
            m.dropped.clone(),
        );
        r.register(
            "data_reports",
            "Learned (S,G) routes reported to PIM as carrying data (each keeps its Keepalive Timer running).",
            m.data_reports.clone(),
        );
        add_source("pim_register", Arc::new(r));
        m
    })
}

/// Why a decapsulated packet was not sent on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DropReason {
    Ttl,
    Malformed,
    NoInterface,
    Socket,
    Send,
}

impl DropReason {
    fn as_str(self) -> &'static str {
        match self {
            DropReason::Ttl => "ttl",
            DropReason::Malformed => "malformed",
            DropReason::NoInterface => "no_interface",
            DropReason::Socket => "socket",
            DropReason::Send => "send",
        }
    }
}

/// The inner packet as a router forwards it: TTL one lower, header
/// checksum recomputed (the encapsulating DR's checksum is not trusted),
/// everything else, the source address included, unchanged. A packet
/// whose TTL would reach 0 is not forwarded (RFC 1812 §5.3.1).
pub(super) fn route_mode(packet: &[u8]) -> Result<Vec<u8>, DropReason> {
    let first = *packet.first().ok_or(DropReason::Malformed)?;
    let ihl = usize::from(first & 0x0f) * 4;
    let total = packet
        .get(2..4)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        .ok_or(DropReason::Malformed)?;
    if first >> 4 != 4 || ihl < 20 || total < ihl || total > packet.len() {
        return Err(DropReason::Malformed);
    }
    let mut out = packet[..total].to_vec();
    if out[8] <= 1 {
        return Err(DropReason::Ttl);
    }
    out[8] -= 1;
    out[10] = 0;
    out[11] = 0;
    let sum = mcr::wire::checksum(&out[..ihl]);
    out[10..12].copy_from_slice(&sum.to_be_bytes());
    Ok(out)
}

/// The RP's sockets for decapsulated packets, opened on first use per
/// outgoing interface and closed when the interface goes away.
#[derive(Default)]
pub(super) struct Forwarder {
    socks: BTreeMap<u32, (String, OwnedFd)>,
}

impl Forwarder {
    /// Close the sockets of interfaces that are gone or renamed (also
    /// called when the interface list changes: no packet may come again
    /// to close them).
    pub(super) fn forget_gone(&mut self, links: &BTreeMap<u32, (String, Ipv4Addr)>) {
        self.socks
            .retain(|i, (n, _)| links.get(i).is_some_and(|(name, _)| name == n));
    }

    /// Send `d` on each of its outgoing interfaces (names from `links`).
    pub(super) fn forward(&mut self, d: &Decapsulated, links: &BTreeMap<u32, (String, Ipv4Addr)>) {
        self.forget_gone(links);
        let m = metrics();
        let drop = |ifc: &str, why: DropReason| {
            m.dropped
                .get_or_create(&Dropped {
                    interface: ifc.to_string(),
                    reason: why.as_str().to_string(),
                })
                .inc();
        };
        let packet = route_mode(&d.packet);
        for oif in &d.oifs {
            let Some((name, _)) = links.get(oif) else {
                drop(&format!("ifindex {oif}"), DropReason::NoInterface);
                continue;
            };
            let packet = match &packet {
                Ok(p) => p,
                Err(why) => {
                    drop(name, *why);
                    continue;
                }
            };
            if !self.socks.contains_key(oif) {
                match open_forward_socket(name, *oif) {
                    Ok(fd) => {
                        self.socks.insert(*oif, (name.clone(), fd));
                    }
                    Err(e) => {
                        warn!(target: "Protocol", "cannot open the forwarding socket on {name}: {e}");
                        drop(name, DropReason::Socket);
                        continue;
                    }
                }
            }
            let Some((_, fd)) = self.socks.get(oif) else {
                continue;
            };
            match send_forward(fd.as_fd(), d.group, packet) {
                Ok(()) => {
                    m.forwarded
                        .get_or_create(&Iface {
                            interface: name.clone(),
                        })
                        .inc();
                }
                Err(e) => {
                    debug!(target: "Protocol", "decapsulated ({}, {}) on {name}: {e}", d.source, d.group);
                    drop(name, DropReason::Send);
                }
            }
        }
    }
}

/// One learned (S,G) route whose worker counters are watched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Watched {
    /// The route's input interface: the workers that count it.
    interface: String,
    /// Its rule key in the workers' tables.
    key: u64,
    ifindex: u32,
    source: Ipv4Addr,
    group: Ipv4Addr,
}

/// The (S,G) routes of `sent` that have an upstream interface PIM knows.
pub(super) fn watched(
    sent: &BTreeMap<(Option<Ipv4Addr>, Ipv4Addr), Route>,
    links: &BTreeMap<u32, (String, Ipv4Addr)>,
) -> Vec<Watched> {
    let index: BTreeMap<&str, u32> = links.iter().map(|(i, (n, _))| (n.as_str(), *i)).collect();
    sent.values()
        .filter_map(|r| {
            let source = r.source?;
            let ifindex = *index.get(r.upstream.as_str())?;
            // The RIB keys a learned entry by this id (a different key
            // only on a 64-bit hash collision, which costs one route its
            // reports).
            let key = rule_key(&learned_rule_id(&r.upstream, Some(source), r.group));
            Some(Watched {
                interface: r.upstream.clone(),
                key,
                ifindex,
                source,
                group: r.group,
            })
        })
        .collect()
}

/// Compare the counts of `watched` (same order; `None`: no worker has
/// reported the route) with `last` and return the flows that moved. With
/// `baseline` (the first comparison of this actor) a count only sets the
/// starting point: it may be a predecessor's old traffic. After that a
/// route seen for the first time starts from 0, so its first packets count.
/// A count that went down (a restarted worker counts from 0 again) moved
/// if it is not 0.
pub(super) fn moved(
    last: &mut BTreeMap<u64, u64>,
    watched: &[Watched],
    counts: &[Option<u64>],
    baseline: bool,
) -> Vec<(u32, Ipv4Addr, Ipv4Addr)> {
    let mut out = Vec::new();
    let mut next = BTreeMap::new();
    for (w, c) in watched.iter().zip(counts) {
        let Some(c) = *c else { continue };
        let prev = last
            .get(&w.key)
            .copied()
            .unwrap_or(if baseline { c } else { 0 });
        if c != prev && c > 0 {
            out.push((w.ifindex, w.source, w.group));
        }
        next.insert(w.key, c);
    }
    *last = next;
    out
}

/// The periodic activity report: a task that asks the StatsActor for the
/// counters of the routes it is told to watch and sends the PimActor
/// `PimMsg::Activity` for those that moved. Stopped with its owner.
pub(super) struct Activity {
    routes: tokio::sync::watch::Sender<Vec<Watched>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Activity {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Activity {
    pub(super) fn spawn(me: ActorRef<PimMsg>) -> Activity {
        // Scrapes show the PIM series (at 0) from the start.
        metrics();
        let (routes, mut rx) = tokio::sync::watch::channel(Vec::<Watched>::new());
        let task = tokio::spawn(async move {
            let mut t = tokio::time::interval(ACTIVITY_PERIOD);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last = BTreeMap::new();
            let mut baseline = true;
            loop {
                t.tick().await;
                let w = rx.borrow_and_update().clone();
                if w.is_empty() {
                    // Nothing learned yet: what comes later is new traffic.
                    baseline = false;
                    last.clear();
                    continue;
                }
                let keys = w.iter().map(|x| (x.interface.clone(), x.key)).collect();
                // A StatsActor that is restarting answers next time.
                let Ok(counts) = Stats::rule_packets(keys).await else {
                    continue;
                };
                let flows = moved(&mut last, &w, &counts, baseline);
                baseline = false;
                if !flows.is_empty() && me.cast(PimMsg::Activity(flows)).is_err() {
                    return;
                }
            }
        });
        Activity { routes, task }
    }

    /// Watch the (S,G) routes the actor has told the RIB.
    pub(super) fn watch(
        &self,
        sent: &BTreeMap<(Option<Ipv4Addr>, Ipv4Addr), Route>,
        links: &BTreeMap<u32, (String, Ipv4Addr)>,
    ) {
        let w = watched(sent, links);
        self.routes.send_if_modified(|cur| {
            let changed = *cur != w;
            if changed {
                *cur = w;
            }
            changed
        });
    }
}

/// Hand the flows of one activity report to the core as data arrivals.
pub(super) fn report(
    core: &mut mcr::pim::PimInstance,
    now: std::time::Instant,
    flows: Vec<(u32, Ipv4Addr, Ipv4Addr)>,
) {
    metrics().data_reports.inc_by(flows.len() as u64);
    for (ifindex, source, group) in flows {
        core.handle_event(
            now,
            mcr::pim::PimInput::Data {
                ifindex,
                source,
                group,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// A UDP-sized IPv4 packet from 10.0.0.1 to 239.1.1.1 with `ttl`.
    fn packet(ttl: u8) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&28u16.to_be_bytes());
        p[8] = ttl;
        p[9] = 17;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[239, 1, 1, 1]);
        let c = mcr::wire::checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn forwarded_packets_keep_their_source_lose_one_ttl_and_have_a_valid_checksum() {
        let mut p = packet(16);
        // The DR's checksum is wrong: the RP's copy is right anyway.
        p[10] ^= 0xff;
        p.extend_from_slice(&[0xee; 4]); // trailing bytes past the total length
        let out = route_mode(&p).unwrap();
        assert_eq!(out.len(), 28, "trimmed to the IP total length");
        assert_eq!(out[8], 15);
        assert_eq!(&out[12..16], &[10, 0, 0, 1]);
        assert_eq!(mcr::wire::checksum(&out[..20]), 0, "checksum verifies");
        assert_eq!(&out[20..], &p[20..28]);
    }

    #[test]
    fn expiring_and_malformed_packets_are_refused() {
        assert_eq!(route_mode(&packet(1)), Err(DropReason::Ttl));
        assert_eq!(route_mode(&packet(0)), Err(DropReason::Ttl));
        assert_eq!(route_mode(&[]), Err(DropReason::Malformed));
        let mut p = packet(9);
        p[0] = 0x65;
        assert_eq!(route_mode(&p), Err(DropReason::Malformed), "IPv6");
        let mut p = packet(9);
        p[2..4].copy_from_slice(&60u16.to_be_bytes());
        assert_eq!(
            route_mode(&p),
            Err(DropReason::Malformed),
            "longer than read"
        );
        let mut p = packet(9);
        p[0] = 0x44;
        assert_eq!(route_mode(&p), Err(DropReason::Malformed), "IHL < 5");
        assert_eq!(route_mode(&packet(9)[..3]), Err(DropReason::Malformed));
    }

    fn links() -> BTreeMap<u32, (String, Ipv4Addr)> {
        BTreeMap::from([
            (2, ("up0".to_string(), ip("10.0.12.2"))),
            (3, ("down0".to_string(), ip("10.0.2.1"))),
        ])
    }

    #[test]
    fn only_sg_routes_with_a_known_upstream_are_watched_under_the_ribs_rule_key() {
        let g = ip("239.1.1.1");
        let s = ip("10.0.1.10");
        let sent = BTreeMap::from([
            ((None, g), Route::star_g(g, "up0", &["down0"])),
            ((Some(s), g), Route::s_g(s, g, "up0", &["down0"])),
            (
                (Some(ip("10.0.1.11")), g),
                Route::s_g(ip("10.0.1.11"), g, "gone0", &["down0"]),
            ),
        ]);
        let w = watched(&sent, &links());
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!((w[0].ifindex, w[0].source, w[0].group), (2, s, g));
        assert_eq!(w[0].interface, "up0");
        // The key the RIB's compiled table gives the same route.
        let mut rib = mcr::rib::Rib::new();
        rib.apply(mcr::rib::Origin::Pim, Route::s_g(s, g, "up0", &["down0"]))
            .unwrap();
        let t = rib.compile();
        let e = t["up0"].iter().find(|e| e.source == Some(s)).unwrap();
        assert_eq!(w[0].key, e.key);
    }

    fn w(key: u64, ifindex: u32) -> Watched {
        Watched {
            interface: "up0".into(),
            key,
            ifindex,
            source: ip("10.0.1.10"),
            group: ip("239.1.1.1"),
        }
    }

    #[test]
    fn a_route_is_reported_when_its_count_moves_and_not_when_it_stands() {
        let mut last = BTreeMap::new();
        let routes = [w(1, 2), w(2, 3)];
        // First comparison: old counts are a starting point only.
        assert!(moved(&mut last, &routes, &[Some(50), Some(7)], true).is_empty());
        let r = moved(&mut last, &routes, &[Some(60), Some(7)], false);
        assert_eq!(r, vec![(2, ip("10.0.1.10"), ip("239.1.1.1"))]);
        assert!(moved(&mut last, &routes, &[Some(60), Some(7)], false).is_empty());
        // A restarted worker counts from 0 again: traffic since then moved.
        assert_eq!(
            moved(&mut last, &routes, &[Some(3), Some(7)], false).len(),
            1
        );
        assert!(moved(&mut last, &routes, &[Some(0), None], false).is_empty());
        // Route 2 had no report: when it comes back its count is new.
        assert_eq!(
            moved(&mut last, &routes, &[Some(0), Some(7)], false).len(),
            1
        );
    }

    #[test]
    fn a_route_learned_later_reports_its_first_packets() {
        let mut last = BTreeMap::new();
        assert!(moved(&mut last, &[w(1, 2)], &[Some(5)], true).is_empty());
        let r = moved(&mut last, &[w(1, 2), w(9, 3)], &[Some(5), Some(4)], false);
        assert_eq!(r, vec![(3, ip("10.0.1.10"), ip("239.1.1.1"))]);
        assert_eq!(last.len(), 2);
        moved(&mut last, &[w(9, 3)], &[Some(4)], false);
        assert_eq!(last.len(), 1, "unwatched routes are forgotten");
    }
}
