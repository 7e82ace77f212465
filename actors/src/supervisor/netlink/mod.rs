//! NetlinkMonitor: keeps the daemon's picture of this namespace's
//! interfaces (index, name, up/running, MTU, IPv4 addresses) current and
//! tells the RIB and the WorkerManager whenever it changes.
//!
//! It subscribes on rtnetlink to the link, IPv4 address and IPv4 route
//! groups (RFC 3549 §3.1), turns each notification into a typed event
//! ([`events`]) and folds it into the snapshot. Netlink multicast is
//! lossy: when the socket's buffer overruns (ENOBUFS) events are gone, so
//! the monitor rescans everything; a slow periodic rescan backs that up
//! (a rescan that finds what the events already said changes nothing).
//! A rescan that lands in the middle of a burst may be followed by the
//! burst's older events for one batch; the burst's last events restore
//! the current state tens of milliseconds later.
//! [`route::RouteLookup`] answers unicast route lookups for PIM's RPF.

pub mod events;
pub mod route;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::StreamExt;
use mcr::control::Event;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::MulticastGroup;
use tracing::{debug, info, warn};

use mcr::iface::{self, scan as scan_interfaces, Change, Ifaces};

use super::handles::{NetlinkMsg, Pim, PimMsg, Rib, RibMsg};
use super::shared::Shared;
use super::util::spawn_ticker;

/// Gather a burst of events (an interface coming up sends several) into
/// one update, so the RIB and the workers recompute once.
const DEBOUNCE: Duration = Duration::from_millis(30);
/// Backstop rescan, and the wait before reopening a failed subscription.
const RESCAN: Duration = Duration::from_secs(2);

const GROUPS: [MulticastGroup; 3] = [
    MulticastGroup::Link,
    MulticastGroup::Ipv4Ifaddr,
    MulticastGroup::Ipv4Route,
];

pub struct NetlinkMonitor;

pub struct NlState {
    shared: Arc<Shared>,
    last: Arc<Ifaces>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for NlState {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Log and publish what changed between two snapshots
/// (`mcr::iface::diff`, which orders the changes as an observer would see
/// them: a re-created interface is removed, then added).
fn publish_diff(shared: &Shared, old: &Ifaces, new: &Ifaces) {
    for change in iface::diff(old, new) {
        match &change {
            Change::Added { name, ifindex } => {
                info!(target: "Network", "interface {name} appeared (ifindex {ifindex})")
            }
            Change::Removed { name } => info!(target: "Network", "interface {name} disappeared"),
            Change::Up { name } => info!(target: "Network", "interface {name} is up"),
            Change::Down { name } => info!(target: "Network", "interface {name} is down"),
        }
        shared.publish(event_of(change));
    }
}

/// The subscriber event for one change.
fn event_of(change: Change) -> Event {
    match change {
        Change::Added { name, ifindex } => Event::InterfaceAdded { name, ifindex },
        Change::Removed { name } => Event::InterfaceRemoved { name },
        Change::Up { name } => Event::InterfaceUp { name },
        Change::Down { name } => Event::InterfaceDown { name },
    }
}

/// Aborts the connection task when the watcher ends or is aborted, so that
/// no socket outlives the monitor.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type Notifications = futures_channel::mpsc::UnboundedReceiver<(
    NetlinkMessage<RouteNetlinkMessage>,
    rtnetlink::sys::SocketAddr,
)>;

type Subscription = (AbortOnDrop, rtnetlink::Handle, Notifications);

fn subscribe() -> std::io::Result<Subscription> {
    subscribe_with(None)
}

/// `rcvbuf` shrinks the socket's receive buffer, for tests that need the
/// overrun the monitor must survive.
fn subscribe_with(rcvbuf: Option<usize>) -> std::io::Result<Subscription> {
    use rtnetlink::sys::AsyncSocket;
    let (mut conn, handle, rx) = rtnetlink::new_multicast_connection(&GROUPS)?;
    if let Some(n) = rcvbuf {
        conn.socket_mut().socket_mut().set_rx_buf_sz(n)?;
    }
    Ok((AbortOnDrop(tokio::spawn(conn)), handle, rx))
}

/// Sort one received message into the batch.
fn take(
    m: NetlinkMessage<RouteNetlinkMessage>,
    msgs: &mut Vec<RouteNetlinkMessage>,
    overrun: &mut bool,
) {
    match m.payload {
        NetlinkPayload::InnerMessage(x) => msgs.push(x),
        NetlinkPayload::Overrun(_) => *overrun = true,
        _ => {}
    }
}

/// Hand notifications to `deliver` in batches until the socket fails or
/// `deliver` says no one listens any more. Returns whether someone does.
async fn forward(
    rx: &mut Notifications,
    mut deliver: impl FnMut(Vec<RouteNetlinkMessage>, bool) -> bool,
) -> bool {
    while let Some(first) = rx.next().await {
        let (mut msgs, mut overrun) = (Vec::new(), false);
        take(first.0, &mut msgs, &mut overrun);
        let until = tokio::time::Instant::now() + DEBOUNCE;
        while let Ok(Some(m)) = tokio::time::timeout_at(until, rx.next()).await {
            take(m.0, &mut msgs, &mut overrun);
        }
        if !deliver(msgs, overrun) {
            return false;
        }
    }
    true
}

/// Keep a subscription open: if it cannot be opened or its socket fails,
/// try again after a while, and rescan once it is back, since whatever
/// happened in between was not heard.
async fn watch(me: ActorRef<NetlinkMsg>, first: std::io::Result<Subscription>) {
    let mut sub = first;
    // Say so once per outage, not on every retry.
    let mut failing = false;
    loop {
        match sub {
            Ok((_conn, _handle, mut rx)) => {
                failing = false;
                let deliver = |msgs, overrun| me.cast(NetlinkMsg::Kernel { msgs, overrun }).is_ok();
                if !forward(&mut rx, deliver).await {
                    return;
                }
                warn!(target: "Network", "the netlink subscription ended; reopening it in {RESCAN:?}");
            }
            Err(e) if !failing => {
                failing = true;
                warn!(target: "Network", "cannot subscribe to netlink ({e}); interfaces are rescanned every {RESCAN:?} until it works");
            }
            Err(_) => {}
        }
        tokio::time::sleep(RESCAN).await;
        sub = subscribe();
        if sub.is_ok() && me.cast(NetlinkMsg::Rescan).is_err() {
            return;
        }
    }
}

/// The interfaces after a batch of notifications. Events lost to an
/// overrun cannot be replayed, so then only a fresh `scan` can be trusted.
fn next_snapshot(
    last: &Ifaces,
    msgs: &[RouteNetlinkMessage],
    overrun: bool,
    scan: impl FnOnce() -> Ifaces,
) -> Ifaces {
    if overrun {
        warn!(target: "Network", "netlink events were lost (receive buffer overrun); rescanning");
        return scan();
    }
    let mut now = last.clone();
    for m in msgs {
        if let Some(ev) = events::decode(m, &now) {
            debug!(target: "Network", "{}", events::describe(&ev, &now));
            events::apply(&mut now, &ev);
        }
    }
    now
}

impl NlState {
    /// Tell the rest of the tree if the interfaces changed.
    fn update(&mut self, now: Ifaces) {
        if now != *self.last {
            publish_diff(&self.shared, &self.last, &now);
            self.last = Arc::new(now);
            // The RIB passes the snapshot on to the WorkerManager.
            Rib::tell(RibMsg::Interfaces(self.last.clone()));
            Pim::tell(PimMsg::Interfaces(self.last.clone()));
        }
    }
}

impl Actor for NetlinkMonitor {
    type Msg = NetlinkMsg;
    type State = NlState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        myself: ActorRef<NetlinkMsg>,
        shared: Arc<Shared>,
    ) -> Result<NlState, ActorProcessingErr> {
        // Subscribe before the first scan: a change between the two then
        // arrives as an event on top of the scan instead of being missed.
        let sub = subscribe();
        let last = Arc::new(scan_interfaces());
        let tasks = vec![
            tokio::spawn(watch(myself.clone(), sub)),
            spawn_ticker(myself, RESCAN, || NetlinkMsg::Rescan),
        ];
        Ok(NlState {
            shared,
            last,
            tasks,
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<NetlinkMsg>,
        msg: NetlinkMsg,
        st: &mut NlState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NetlinkMsg::Rescan => st.update(scan_interfaces()),
            NetlinkMsg::Kernel { msgs, overrun } => {
                // PIM re-resolves its RPF targets (RFC 7761 §4.5.5: a
                // Join to the new RPF neighbor, a Prune to the old).
                let routes = msgs.iter().any(|m| {
                    matches!(
                        m,
                        RouteNetlinkMessage::NewRoute(_) | RouteNetlinkMessage::DelRoute(_)
                    )
                });
                if routes || overrun {
                    Pim::tell(PimMsg::RoutesChanged);
                }
                st.update(next_snapshot(&st.last, &msgs, overrun, scan_interfaces));
            }
            NetlinkMsg::Panic => panic!("fault injection: netlink monitor panic requested"),
            NetlinkMsg::Ops(o) => o.run("netlink").await,
        }
        Ok(())
    }
}
