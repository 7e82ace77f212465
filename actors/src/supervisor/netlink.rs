//! NetlinkMonitor: notices interfaces appearing, disappearing, going up
//! or down and changing addresses, and tells the RIB and the
//! WorkerManager. The netlink socket is a doorbell: any message (or an
//! overrun) triggers a rescan and a diff, which cannot miss a change the
//! way parsing individual events could. A slow periodic rescan backs it up.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use mcr::control::Event;
use mcr::dataplane::sockets::{drain, open_netlink_monitor};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{info, warn};

use mcr::iface::{scan as scan_interfaces, Ifaces};

use super::handles::{NetlinkMsg, Rib, RibMsg};
use super::shared::Shared;
use super::util::spawn_ticker;

/// Coalesce bursts of events (an interface coming up sends several).
const DEBOUNCE: Duration = Duration::from_millis(30);
const RESCAN: Duration = Duration::from_secs(2);

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

fn publish_diff(shared: &Shared, old: &Ifaces, new: &Ifaces) {
    for (n, i) in new {
        match old.get(n) {
            None => {
                info!(target: "Network", "interface {n} appeared (ifindex {})", i.ifindex);
                shared.publish(Event::InterfaceAdded {
                    name: n.clone(),
                    ifindex: i.ifindex,
                });
                if i.up {
                    shared.publish(Event::InterfaceUp { name: n.clone() });
                }
            }
            Some(o) => {
                if o.ifindex != i.ifindex {
                    info!(target: "Network", "interface {n} re-created (ifindex {} -> {})", o.ifindex, i.ifindex);
                    shared.publish(Event::InterfaceRemoved { name: n.clone() });
                    shared.publish(Event::InterfaceAdded {
                        name: n.clone(),
                        ifindex: i.ifindex,
                    });
                }
                if o.up != i.up {
                    info!(target: "Network", "interface {n} is {}", if i.up { "up" } else { "down" });
                    shared.publish(if i.up {
                        Event::InterfaceUp { name: n.clone() }
                    } else {
                        Event::InterfaceDown { name: n.clone() }
                    });
                }
            }
        }
    }
    for n in old.keys() {
        if !new.contains_key(n) {
            info!(target: "Network", "interface {n} disappeared");
            shared.publish(Event::InterfaceRemoved { name: n.clone() });
        }
    }
}

/// Wait on the netlink socket on a plain thread and ring the actor. Polls
/// with a timeout so that it notices when the actor is gone and ends.
fn doorbell(fd: OwnedFd, me: ActorRef<NetlinkMsg>) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(0) => {}
            Ok(_) => {
                drain(fd.as_fd());
                std::thread::sleep(DEBOUNCE);
                drain(fd.as_fd());
                if me.cast(NetlinkMsg::Rescan).is_err() {
                    return;
                }
                continue;
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return,
        }
        if me.get_status() >= ractor::ActorStatus::Stopping {
            return;
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
        let mut tasks = Vec::new();
        match open_netlink_monitor() {
            Ok(fd) => {
                let me = myself.clone();
                if let Err(e) = std::thread::Builder::new()
                    .name("mcrd-netlink".into())
                    .spawn(move || doorbell(fd, me))
                {
                    warn!(target: "Network", "cannot start the netlink thread ({e}); interfaces are rescanned every {RESCAN:?}");
                }
            }
            Err(e) => {
                warn!(target: "Network", "cannot open a netlink socket ({e}); interfaces are rescanned every {RESCAN:?}")
            }
        }
        let me = myself.clone();
        tasks.push(spawn_ticker(me, RESCAN, || NetlinkMsg::Rescan));
        Ok(NlState {
            shared,
            last: Arc::new(scan_interfaces()),
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
            NetlinkMsg::Rescan => {
                let now = scan_interfaces();
                if now != *st.last {
                    publish_diff(&st.shared, &st.last, &now);
                    st.last = Arc::new(now);
                    // The RIB passes the snapshot on to the WorkerManager.
                    Rib::tell(RibMsg::Interfaces(st.last.clone()));
                }
            }
            NetlinkMsg::Panic => panic!("fault injection: netlink monitor panic requested"),
        }
        Ok(())
    }
}
