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
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use mcr::igmp::{HostConfig, IgmpHost, IgmpParams, SetMemberships};
use mcr::proto::{Protocol, Rng};
use mcr::sys::igmp::{open_igmp_host_rx, open_igmp_tx, parse_ipv4, recv_within, send_igmp};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

/// How long a dropped reporter keeps running to send its leaves.
const LEAVE_GRACE: Duration = Duration::from_secs(3);
/// Largest IGMP packet read: a query with sources fills at most an MTU.
const MAX_PACKET: usize = 9216;
/// Queries waiting for the host; a flood beyond this is dropped at the
/// reader rather than queued without bound.
const MAX_QUEUED: usize = 256;
/// How often the reader looks whether its host is gone.
const POLL: Duration = Duration::from_millis(500);

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
}

impl InputReporters {
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
            if w.groups.is_empty() {
                continue;
            }
            if let Some(r) = self.hosts.get(&ifindex) {
                r.groups.send_if_modified(|g| {
                    let changed = *g != w.groups;
                    *g = w.groups.clone();
                    changed
                });
                continue;
            }
            let Ok(rt) = tokio::runtime::Handle::try_current() else {
                warn!(target: "Network", "no runtime to report input groups on {}", w.interface);
                continue;
            };
            let (tx, rx) = watch::channel(w.groups.clone());
            let (name, address) = (w.interface.clone(), w.address);
            rt.spawn(async move {
                if let Err(e) = run(&name, ifindex, address, rx).await {
                    warn!(target: "Network", "IGMP reports for the input groups on {name} stopped: {e}");
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

/// Read `rx` on a thread (blocking reads keep `unsafe` out of the daemon)
/// until the host that receives the packets is gone.
fn start_reader(rx: OwnedFd, ifname: &str) -> io::Result<mpsc::Receiver<Vec<u8>>> {
    let (tx, packets) = mpsc::channel(MAX_QUEUED);
    std::thread::Builder::new()
        .name(format!("igmp-in-{ifname}"))
        .spawn(move || {
            let mut buf = vec![0u8; MAX_PACKET];
            while !tx.is_closed() {
                match recv_within(rx.as_fd(), &mut buf, POLL) {
                    Ok(Some(n)) => {
                        if let Some(p) = buf.get(..n) {
                            // Full: the host is behind a flood; a query
                            // lost here is repeated by its querier.
                            let _ = tx.try_send(p.to_vec());
                        }
                    }
                    Ok(None) => {}
                    Err(_) => return,
                }
            }
        })?;
    Ok(packets)
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
