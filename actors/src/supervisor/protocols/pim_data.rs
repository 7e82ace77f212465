//! The PimActor's data path as the first-hop DR (RFC 7761 §4.4.1): what
//! the workers report (first-packet upcalls, the register tunnels' whole
//! packets) goes to the core as `PimInput::Data` and
//! `PimInput::RegisterData`; the core's register tunnels
//! (`PimEvent::RegisterTunnel`) become the punt list the WorkerManager
//! hands the worker of each source's interface; and the core's unicast
//! messages (Register, null-Register, Register-Stop) leave through one
//! raw PIM socket that the kernel routes, with the TTL the core asks for,
//! rather than through the per-interface sockets, which are held to TTL 1.
//!
//! Data too big for the register tunnel is cut or refused in the core;
//! the Fragmentation Needed messages it asks for leave here through a raw
//! ICMP socket, and the core learns each interface's MTU from here.
//!
//! Encapsulation itself runs in the core, in this actor: a punted packet
//! crosses the IPC socket once, then is wrapped and sent here. The worker
//! bounds what it punts (`mcr::dataplane::upcall`), so a fast source
//! cannot swamp the actor.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mcr::iface::Ifaces;
use mcr::pim::state::register::RegisterState;
use mcr::pim::{PimEvent, PimInput};
use mcr::proto::{Protocol, Transmit};
use mcr::sys::pim::{open_icmp_socket, send_icmp};
use mcr::sys::sockopt::{attach_filter, new_socket};
use ractor::ActorRef;
use tracing::{debug, info, warn};

use super::PimState;
use crate::supervisor::handles::{PimMsg, WmMsg, Workers};
use crate::supervisor::workers::link::PUNTS_QUEUED;

/// IP protocol number of PIM.
const IPPROTO_PIM: i32 = 103;

/// Data-path state of the actor.
#[derive(Default)]
pub(super) struct DataPath {
    /// The punt list last sent to the WorkerManager; `None` sends it again
    /// (at start, and on each resync in case the WorkerManager restarted).
    punts_sent: Option<BTreeMap<String, Vec<(Ipv4Addr, Ipv4Addr)>>>,
    /// A register tunnel opened or closed since the list was last sent.
    tunnels_changed: bool,
    /// The socket unicast PIM leaves through, opened on first use.
    unicast: Option<OwnedFd>,
    /// The socket Fragmentation Needed messages leave through, opened on
    /// first use.
    icmp: Option<OwnedFd>,
    /// The ICMP socket could not be opened and that was logged.
    icmp_warned: bool,
    /// When the actor last did its full drain after a punted packet.
    last_drain: Option<Instant>,
    /// A full drain is scheduled (a `Drain` message on its way).
    drain_scheduled: bool,
}

/// Between punted packets the actor only sends what the core queued; the
/// rest of its drain (RIB sync, events, RPF questions, the timer) runs at
/// most this often while they stream in. Measured: the full drain per
/// packet carried 3 000 Registers/s, a fraction of what a source sends.
const DRAIN_EVERY: Duration = Duration::from_millis(10);

impl DataPath {
    /// A new actor's: punts queued for a predecessor died with its
    /// mailbox.
    pub(super) fn new() -> Self {
        PUNTS_QUEUED.store(0, Ordering::Relaxed);
        Self::default()
    }

    /// Send the punt list again at the next drain.
    pub(super) fn resend(&mut self) {
        self.punts_sent = None;
    }
}

impl PimState {
    /// A worker's report. Upcalls and punts name their interface; one the
    /// core does not know (PIM just turned off there) is dropped. Returns
    /// whether the caller's full drain is due now; if not, the core's
    /// messages are sent here and a drain follows within `DRAIN_EVERY`.
    pub(super) fn on_data(&mut self, me: &ActorRef<PimMsg>, msg: PimMsg) -> bool {
        let punt = matches!(msg, PimMsg::RegisterData { .. });
        if punt {
            crate::supervisor::workers::link::punt_done();
        }
        self.feed(msg);
        self.send_icmp();
        let now = Instant::now();
        if !punt
            || self
                .data
                .last_drain
                .is_none_or(|t| now.duration_since(t) >= DRAIN_EVERY)
        {
            self.data.last_drain = Some(now);
            return true;
        }
        self.send_queued();
        if !self.data.drain_scheduled {
            self.data.drain_scheduled = true;
            let me = me.clone();
            tokio::spawn(async move {
                tokio::time::sleep(DRAIN_EVERY).await;
                let _ = me.cast(PimMsg::Drain);
            });
        }
        false
    }

    /// Tell the core each interface's MTU: the largest Register it may
    /// send out of it (RFC 7761 §4.4.1).
    pub(super) fn apply_mtus(&mut self, ifaces: &Ifaces) {
        let mtus = ifaces
            .values()
            .map(|i| (i.ifindex, i.mtu as usize))
            .collect();
        self.core.set_link_mtus(mtus);
    }

    /// Send the ICMP messages the core queued (Fragmentation Needed to the
    /// sources of packets too big to register). Only register data makes
    /// them, and it all comes through [`Self::on_data`].
    fn send_icmp(&mut self) {
        while let Some((dst, message)) = self.core.poll_icmp() {
            if self.data.icmp.is_none() {
                match open_icmp_socket() {
                    Ok(fd) => self.data.icmp = Some(fd),
                    Err(e) => {
                        // Once, not per message: the per-source rate limit
                        // still allows thousands of messages a second.
                        if !self.data.icmp_warned {
                            self.data.icmp_warned = true;
                            warn!(target: "Protocol", "cannot open the ICMP socket: {e}; Fragmentation Needed messages are dropped (first to {dst})");
                        }
                        continue;
                    }
                }
            }
            let Some(fd) = &self.data.icmp else {
                continue;
            };
            if let Err(e) = send_icmp(fd.as_fd(), dst, &message) {
                // The source's next oversized packet asks again.
                debug!(target: "Protocol", "ICMP to {dst} failed: {e}");
            }
        }
    }

    /// The full drain ran.
    pub(super) fn drained(&mut self) {
        self.data.drain_scheduled = false;
    }

    fn feed(&mut self, msg: PimMsg) {
        let (interface, input) = match msg {
            PimMsg::Data {
                interface,
                source,
                group,
            } => (interface, Input::Data(source, group)),
            PimMsg::RegisterData { interface, packet } => (interface, Input::Register(packet)),
            _ => return,
        };
        let Some(ifindex) = self
            .links
            .iter()
            .find(|(_, (n, _))| *n == interface)
            .map(|(i, _)| *i)
        else {
            return;
        };
        let input = match input {
            Input::Data(source, group) => PimInput::Data {
                ifindex,
                source,
                group,
            },
            Input::Register(packet) => PimInput::RegisterData { ifindex, packet },
        };
        self.core.handle_event(Instant::now(), input);
    }

    /// Note the events the data path acts on (before they are published).
    pub(super) fn data_event(&mut self, ev: &PimEvent) {
        if let PimEvent::RegisterTunnel { source, group, up } = ev {
            if *up {
                info!(target: "Protocol", "register tunnel ({source}, {group}) up: encapsulating to the RP");
            } else {
                // Prune after a Register-Stop; gone when the source went quiet.
                let state = self
                    .core
                    .registers(Instant::now())
                    .into_iter()
                    .find(|r| r.source == *source && r.group == *group)
                    .map(|r| r.state);
                info!(target: "Protocol", "register tunnel ({source}, {group}) down (register state {})", state.map_or("no_info".to_string(), |s| format!("{s:?}").to_lowercase()));
            }
            self.data.tunnels_changed = true;
        }
    }

    /// Tell the WorkerManager which (S,G)s to punt on which interface, if
    /// that changed.
    pub(super) fn sync_punts(&mut self) {
        if !self.data.tunnels_changed && self.data.punts_sent.is_some() {
            return;
        }
        self.data.tunnels_changed = false;
        let mut want: BTreeMap<String, BTreeSet<(Ipv4Addr, Ipv4Addr)>> = BTreeMap::new();
        for r in self.core.registers(Instant::now()) {
            if r.state != RegisterState::Join {
                continue;
            }
            if let Some((name, _)) = self.links.get(&r.ifindex) {
                want.entry(name.clone())
                    .or_default()
                    .insert((r.source, r.group));
            }
        }
        let want: BTreeMap<String, Vec<(Ipv4Addr, Ipv4Addr)>> = want
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().collect()))
            .collect();
        if self.data.punts_sent.as_ref() == Some(&want) {
            return;
        }
        // Not delivered (the WorkerManager is restarting): try again at the
        // next drain.
        if Workers::tell(WmMsg::Punts(want.clone())) {
            self.data.punts_sent = Some(want);
        }
    }

    /// Send `t` if it is unicast PIM; returns whether it was (link-local
    /// messages go out on their interface's socket).
    pub(super) fn send_unicast(&mut self, t: &Transmit) -> bool {
        if t.dst.is_multicast() {
            return false;
        }
        if self.data.unicast.is_none() {
            match open_unicast() {
                Ok(fd) => self.data.unicast = Some(fd),
                Err(e) => {
                    warn!(target: "Protocol", "cannot open the unicast PIM socket: {e}; message to {} dropped", t.dst);
                    return true;
                }
            }
        }
        let Some(fd) = &self.data.unicast else {
            return true;
        };
        let mut r =
            mcr::sys::pim::send_pim_unicast(fd.as_fd(), t.src, t.dst, t.ttl.max(1), &t.payload);
        if let (Err(e), Some(src)) = (&r, t.src) {
            // The source address was removed or renumbered before the core
            // heard of it: the kernel refuses it. Sent from the kernel's
            // choice the Register still arrives (RPs accept any source).
            if matches!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL | libc::EINVAL)) {
                debug!(target: "Protocol", "unicast PIM to {} from {src} refused ({e}); sending from the kernel's choice", t.dst);
                r = mcr::sys::pim::send_pim_unicast(
                    fd.as_fd(),
                    None,
                    t.dst,
                    t.ttl.max(1),
                    &t.payload,
                );
            }
        }
        if let Err(e) = r {
            // A lost Register is a lost data packet; a lost null-Register
            // or Register-Stop is sent again by its timer or the next one.
            debug!(target: "Protocol", "unicast PIM to {} failed: {e}", t.dst);
        }
        true
    }
}

enum Input {
    Data(Ipv4Addr, Ipv4Addr),
    Register(Vec<u8>),
}

/// A raw PIM socket for sending only: routed by the kernel (not bound to
/// an interface), its receive side filtered shut so that it does not
/// queue a copy of every PIM packet the host receives.
fn open_unicast() -> std::io::Result<OwnedFd> {
    let fd = new_socket(libc::AF_INET, libc::SOCK_RAW, IPPROTO_PIM)?;
    let drop_all = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    attach_filter(fd.as_fd(), &drop_all)?;
    Ok(fd)
}
