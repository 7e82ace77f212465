//! The PimActor's per-interface PIM sockets (RFC 7761 §4.3.1: Hellos,
//! and every other link-local message, go to ALL-PIM-ROUTERS on each
//! interface that runs PIM, with TTL 1, from the interface's address).
//!
//! Owns: opening and closing one raw socket per configured, usable
//! interface as the configuration and the interfaces change; the reader
//! thread of each socket, which hands packets to the actor; the cap on
//! packets read but not yet handled, so that a flood of Registers (or of
//! anything) cannot grow the actor's mailbox without bound; and sending the
//! core's link-local messages on the right socket (unicast messages leave
//! through `pim_data.rs`'s routed socket instead).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mcr::proto::Protocol;
use mcr::sys::pim::{open_pim_socket, recv_pim, send_pim};
use ractor::ActorRef;
use tracing::{debug, info, warn};

use super::PimState;
use crate::supervisor::handles::PimMsg;

/// How long a reader thread blocks before it checks whether it is still
/// wanted.
const READ_TIMEOUT: Duration = Duration::from_millis(250);

/// One interface's socket and the thread reading it (a blocking read on a
/// thread needs no `unsafe` registration with the async runtime).
pub(super) struct Sock {
    name: String,
    addr: Ipv4Addr,
    fd: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
}

impl Drop for Sock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl PimState {
    /// Open or close sockets so that exactly the configured, usable
    /// interfaces have one (a changed address reopens it: the socket
    /// sends from the address it was opened with).
    pub(super) fn sync_sockets(&mut self, me: &ActorRef<PimMsg>) {
        let cfg = self.core.config().clone();
        let wanted: BTreeMap<u32, (String, Ipv4Addr)> = if cfg.enabled {
            self.links
                .iter()
                .filter(|(_, (n, _))| cfg.interface(n).is_some())
                .map(|(k, v)| (*k, v.clone()))
                .collect()
        } else {
            BTreeMap::new()
        };
        self.socks
            .retain(|k, s| wanted.get(k) == Some(&(s.name.clone(), s.addr)));
        for (ifindex, (name, addr)) in wanted {
            if self.socks.contains_key(&ifindex) {
                continue;
            }
            match open_sock(me, ifindex, &name, addr) {
                Ok(s) => {
                    info!(target: "Protocol", "PIM socket open on {name} ({addr})");
                    self.socks.insert(ifindex, s);
                }
                // Hellos for this interface are lost until the next
                // snapshot retries; the core keeps running.
                Err(e) => warn!(target: "Protocol", "cannot open the PIM socket on {name}: {e}"),
            }
        }
    }

    /// Send the messages the core queued: unicast routed, link-local
    /// multicast on its interface's socket.
    pub(super) fn send_queued(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            if self.send_unicast(&t) {
                continue;
            }
            let Some(s) = self.socks.get(&t.ifindex) else {
                debug!(target: "Protocol", "no PIM socket on ifindex {}; dropped a message", t.ifindex);
                continue;
            };
            // Unicast went out routed above; this is link-local multicast.
            if let Err(e) = send_pim(s.fd.as_fd(), t.dst, &t.payload) {
                // A lost Hello is repaired by the next one.
                debug!(target: "Protocol", "send on {} failed: {e}", s.name);
            }
        }
    }
}

/// Packets read and not yet handled by the actor, over all interfaces.
/// As RP, Registers arrive at a source's data rate: past
/// `MAX_QUEUED_REGISTERS` they are dropped (the DR sends the next one),
/// so Hellos and Join/Prunes still get through; past `MAX_QUEUED` every
/// packet is, so a flood cannot grow the mailbox without bound.
static RX_QUEUED: AtomicUsize = AtomicUsize::new(0);
const MAX_QUEUED_REGISTERS: usize = 1024;
const MAX_QUEUED: usize = 4096;
/// Packets dropped at the cap since the last warning.
static RX_DROPPED: AtomicUsize = AtomicUsize::new(0);

/// Whether the reader hands `payload` to the actor (and counts it queued).
fn admit(payload: &[u8]) -> bool {
    let queued = RX_QUEUED.load(Ordering::Relaxed);
    let register = payload.first().is_some_and(|b| b & 0x0f == 1);
    if queued >= MAX_QUEUED || (register && queued >= MAX_QUEUED_REGISTERS) {
        if RX_DROPPED.fetch_add(1, Ordering::Relaxed) == 0 {
            warn!(target: "Protocol", "PIM flood: {queued} packets wait for the actor; dropping Registers past {MAX_QUEUED_REGISTERS}, everything past {MAX_QUEUED}");
        }
        return false;
    }
    RX_QUEUED.fetch_add(1, Ordering::Relaxed);
    true
}

/// The actor handled one packet the reader admitted.
pub(super) fn rx_handled() {
    let _ = RX_QUEUED.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        Some(n.saturating_sub(1))
    });
    // Let the next flood be reported once the backlog has drained.
    if RX_QUEUED.load(Ordering::Relaxed) == 0 {
        let n = RX_DROPPED.swap(0, Ordering::Relaxed);
        if n > 0 {
            warn!(target: "Protocol", "PIM flood over: {n} packets dropped");
        }
    }
}

fn open_sock(
    me: &ActorRef<PimMsg>,
    ifindex: u32,
    name: &str,
    addr: Ipv4Addr,
) -> std::io::Result<Sock> {
    let fd = Arc::new(open_pim_socket(name, ifindex, addr, READ_TIMEOUT)?);
    let stop = Arc::new(AtomicBool::new(false));
    let (rfd, rstop, me) = (fd.clone(), stop.clone(), me.clone());
    std::thread::Builder::new()
        .name(format!("pim-rx-{name}"))
        .spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !rstop.load(Ordering::Relaxed) {
                match recv_pim(rfd.as_fd(), &mut buf) {
                    Ok(Some(r)) => {
                        let payload = buf
                            .get(r.offset..r.offset + r.len)
                            .map(<[u8]>::to_vec)
                            .unwrap_or_default();
                        if !admit(&payload) {
                            continue;
                        }
                        let msg = PimMsg::Packet {
                            ifindex,
                            src: r.src,
                            dst: r.dst,
                            payload,
                        };
                        if me.cast(msg).is_err() {
                            return;
                        }
                    }
                    // Not a whole IPv4 header: nothing to hand the core.
                    Ok(None) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => {
                        warn!(target: "Protocol", "reading the PIM socket of ifindex {ifindex}: {e}");
                        std::thread::sleep(READ_TIMEOUT);
                    }
                }
            }
        })?;
    Ok(Sock {
        name: name.to_string(),
        addr,
        fd,
        stop,
    })
}

/// A new actor starts with an empty mailbox: packets read for a
/// predecessor died with its own.
pub(super) fn reset_queue() {
    RX_QUEUED.store(0, Ordering::Relaxed);
}
