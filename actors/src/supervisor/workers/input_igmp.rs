//! The host side of IGMP for the input groups (RFC 2236 §3, RFC 3376 §5):
//! one [`IgmpHost`] per input interface that reports the groups the
//! workers read there, answers queries for them and leaves them.
//!
//! The input memberships are held at the link layer only
//! (`mcr::sys::membership`, `JoinMode::Link`), so that the kernel does not
//! deliver every input packet to its own UDP stack; then the kernel does
//! not report them either, and this module does what it did: an IGMP
//! snooping switch or a querier upstream must still see a member, or it
//! stops sending the group. (`MCR_INPUT_JOIN=ip` brings back the kernel's
//! join and reports, and this module is not used.)
//!
//! Each interface's host runs as a tokio task owned by [`InputReporters`],
//! which lives with the memberships in the root's shared state, so a
//! WorkerManager restart neither leaves nor re-reports a group. Dropping a
//! reporter makes its task send the leaves (state-change reports, repeated
//! per the robustness variable) and end.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcr::igmp::{HostConfig, IgmpHost, IgmpParams, SetMemberships};
use mcr::proto::{Protocol, Rng};
use mcr::sys::igmp::{open_igmp_host_rx, open_igmp_tx, parse_ipv4, send_igmp};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use crate::supervisor::packet_reader::{self, PacketSink};

/// How long a dropped reporter keeps running to send its leaves.
pub const LEAVE_GRACE: Duration = Duration::from_secs(3);
/// Largest IGMP packet read: a query with sources fills at most an MTU.
const MAX_PACKET: usize = 9216;
/// Queries waiting for the host; a flood beyond this is dropped at the
/// reader rather than queued without bound.
const MAX_QUEUED: usize = 256;
/// How often the reader (a task, see `packet_reader`) looks whether its
/// host is gone.
const POLL: Duration = Duration::from_millis(500);

/// What the hosts' tasks tell their owner, readable without its lock.
#[derive(Default)]
struct Liveness {
    /// Hosts whose task is still running, leaving ones included: the
    /// daemon's shutdown waits for this to reach zero so that the leaves go
    /// out before the runtime ends (they would be lost with it, and the
    /// upstream would keep sending the groups until its membership timer
    /// ran out).
    running: AtomicUsize,
    /// Set when a host's task ended on an error (its sockets failed): the
    /// WorkerManager reconciles the inputs on its next tick even though the
    /// tables and interfaces did not change, and that restarts the host.
    failed: AtomicBool,
}

/// The shutdown's wait for the leaves of dropped hosts.
pub struct Leaves(Arc<Liveness>);

impl Leaves {
    /// Wait until every host's task has ended (all leaves sent), for at
    /// most `within`. Returns whether they all ended.
    pub async fn sent(&self, within: Duration) -> bool {
        let end = tokio::time::Instant::now() + within;
        while self.0.running.load(Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }
}

/// Counts a host's task in `running` for as long as it lives, however it
/// ends (an error, the leaves sent, or a panic).
struct Running(Arc<Liveness>);

impl Running {
    fn start(live: &Arc<Liveness>) -> Running {
        live.running.fetch_add(1, Ordering::SeqCst);
        Running(live.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What one interface's host is for: the groups, and the interface as it
/// was when the host started (a new name or address starts a new host).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputGroups {
    pub interface: String,
    pub address: Ipv4Addr,
    pub groups: BTreeSet<Ipv4Addr>,
}

struct Reporter {
    interface: String,
    address: Ipv4Addr,
    groups: watch::Sender<BTreeSet<Ipv4Addr>>,
}

/// The input interfaces' IGMP hosts, by ifindex.
#[derive(Default)]
pub struct InputReporters {
    hosts: BTreeMap<u32, Reporter>,
    live: Arc<Liveness>,
}

impl InputReporters {
    /// Whether a host ended on an error since the last call (and so the
    /// inputs should be reconciled to start it again).
    pub fn take_failed(&self) -> bool {
        self.live.failed.swap(false, Ordering::SeqCst)
    }

    /// A handle to wait for the leaves of the hosts dropped so far.
    pub fn leaves(&self) -> Leaves {
        Leaves(self.live.clone())
    }

    /// Report exactly `want` (ifindex → groups): start hosts on new
    /// interfaces, tell running ones their new groups, and drop the rest
    /// (which leave their groups). A host whose task ended (its sockets
    /// failed) is started again.
    pub fn reconcile(&mut self, want: BTreeMap<u32, InputGroups>) {
        self.hosts.retain(|ifindex, r| {
            !r.groups.is_closed()
                && want.get(ifindex).is_some_and(|w| {
                    w.interface == r.interface && w.address == r.address && !w.groups.is_empty()
                })
        });
        for (ifindex, w) in want {
            self.update(ifindex, w);
        }
    }

    /// `reconcile` for one interface only: report `want` on `ifindex`
    /// (None: nothing), leaving every other interface's host alone. What
    /// one `add` among thousands of rules changes.
    pub fn set(&mut self, ifindex: u32, want: Option<InputGroups>) {
        let keep = self.hosts.get(&ifindex).is_some_and(|r| {
            !r.groups.is_closed()
                && want.as_ref().is_some_and(|w| {
                    w.interface == r.interface && w.address == r.address && !w.groups.is_empty()
                })
        });
        if !keep {
            self.hosts.remove(&ifindex);
        }
        if let Some(w) = want {
            self.update(ifindex, w);
        }
    }

    /// Tell the running host of `ifindex` its groups, or start one.
    fn update(&mut self, ifindex: u32, w: InputGroups) {
        if w.groups.is_empty() {
            return;
        }
        if let Some(r) = self.hosts.get(&ifindex) {
            r.groups.send_if_modified(|g| {
                let changed = *g != w.groups;
                *g = w.groups;
                changed
            });
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            warn!(target: "Network", "no runtime to report input groups on {}", w.interface);
            return;
        };
        let (tx, rx) = watch::channel(w.groups.clone());
        let (name, address) = (w.interface.clone(), w.address);
        // Counted before the spawn, so a shutdown that drops this
        // reporter right away still waits for its task.
        let running = Running::start(&self.live);
        rt.spawn(async move {
            let running = running;
            if let Err(e) = run(&name, ifindex, address, rx).await {
                warn!(target: "Network", "IGMP reports for the input groups on {name} stopped: {e}");
                running.0.failed.store(true, Ordering::SeqCst);
            }
        });
        self.hosts.insert(
            ifindex,
            Reporter {
                interface: w.interface,
                address: w.address,
                groups: tx,
            },
        );
    }
}

/// One interface's host until its reporter is dropped and the leaves are
/// sent.
async fn run(
    ifname: &str,
    ifindex: u32,
    address: Ipv4Addr,
    mut groups: watch::Receiver<BTreeSet<Ipv4Addr>>,
) -> io::Result<()> {
    let mut packets = start_reader(open_igmp_host_rx(ifindex)?, ifname)?;
    let tx = open_igmp_tx(ifname, ifindex, address)?;
    let config = HostConfig {
        ifindex,
        address,
        params: IgmpParams::default(),
    };
    let mut host = IgmpHost::new(config, Rng::from_entropy());
    let first = groups.borrow_and_update().clone();
    debug!(target: "Network", "reporting {} input groups on {ifname}", first.len());
    host.handle_event(Instant::now(), SetMemberships::any(first));
    let mut closing: Option<Instant> = None;
    loop {
        flush(&mut host, &tx, ifname);
        let next = host.poll_timeout();
        if let Some(end) = closing {
            if next.is_none_or(|n| n > end) {
                return Ok(());
            }
        }
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(
            next.unwrap_or_else(|| Instant::now() + LEAVE_GRACE),
        ));
        tokio::select! {
            ch = groups.changed(), if closing.is_none() => {
                let now = Instant::now();
                match ch {
                    Ok(()) => {
                        let g = groups.borrow_and_update().clone();
                        host.handle_event(now, SetMemberships::any(g));
                    }
                    Err(_) => {
                        host.handle_event(now, SetMemberships::any(BTreeSet::new()));
                        closing = Some(now + LEAVE_GRACE);
                    }
                }
            }
            p = packets.recv() => {
                let Some(p) = p else {
                    return Err(io::Error::other("the IGMP reader stopped"));
                };
                if let Some((src, dst, igmp)) = parse_ipv4(&p) {
                    host.handle_packet(Instant::now(), ifindex, src, dst, igmp);
                }
            }
            _ = sleep => host.handle_timeout(Instant::now()),
        }
    }
}

/// Read `rx` on a task of the runtime until the host that receives the
/// packets is gone.
fn start_reader(rx: OwnedFd, ifname: &str) -> io::Result<mpsc::Receiver<Vec<u8>>> {
    let (tx, packets) = mpsc::channel(MAX_QUEUED);
    let sink = HostSink {
        tx,
        ifname: ifname.to_string(),
    };
    packet_reader::spawn(rx, format!("igmp-in-{ifname}"), MAX_PACKET, POLL, sink)?;
    Ok(packets)
}

/// Queries on their way to one interface's host.
struct HostSink {
    tx: mpsc::Sender<Vec<u8>>,
    ifname: String,
}

impl PacketSink for HostSink {
    fn stopped(&self) -> bool {
        self.tx.is_closed()
    }

    fn deliver(&mut self, packet: &[u8]) -> bool {
        // Full: the host is behind a flood; a query lost here is repeated
        // by its querier. Closed: `stopped` ends the reader next.
        let _ = self.tx.try_send(packet.to_vec());
        true
    }

    fn receive_error(&self, e: &io::Error) {
        // Nothing would answer queries for the groups until the tables
        // next changed if this ended the host: reading goes on.
        warn!(target: "Network", "IGMP receive on {}: {e}", self.ifname);
    }
}

/// Send what the host has to send. A lost report is repeated by the host
/// (robustness) or asked for again by the next query.
fn flush(host: &mut IgmpHost, tx: &OwnedFd, ifname: &str) {
    while let Some(t) = host.poll_transmit() {
        if let Err(e) = send_igmp(tx, t.dst, &t.payload) {
            debug!(target: "Network", "IGMP report on {ifname} to {}: {e}", t.dst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host whose sockets cannot be opened (no such interface) ends at
    /// once: that is flagged for the WorkerManager, and the next reconcile
    /// with the same groups starts a new host rather than keeping the dead
    /// one until the groups change.
    #[test]
    fn a_host_that_ended_is_flagged_and_started_again() {
        // One thread: a spawned host runs only while the test awaits, so
        // what is checked between awaits is not raced.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let ifindex = 0x7fff_fff0;
            let want = || {
                BTreeMap::from([(
                    ifindex,
                    InputGroups {
                        interface: "mcr-none0".into(),
                        address: Ipv4Addr::UNSPECIFIED,
                        groups: BTreeSet::from([Ipv4Addr::new(239, 1, 1, 1)]),
                    },
                )])
            };
            let closed = |r: &InputReporters| r.hosts.get(&ifindex).map(|h| h.groups.is_closed());
            let ended = |r: &InputReporters| closed(r) == Some(true);
            let mut r = InputReporters::default();
            for round in 0..2 {
                r.reconcile(want());
                assert_eq!(closed(&r), Some(false), "round {round}: a live host");
                let t0 = Instant::now();
                while !ended(&r) {
                    assert!(
                        t0.elapsed() < Duration::from_secs(5),
                        "the host never ended"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                assert!(r.take_failed(), "round {round}: the failure was flagged");
            }
            // Nothing wanted: the dead host is dropped, not restarted.
            r.reconcile(BTreeMap::new());
            assert!(r.hosts.is_empty());
        });
    }
}
