//! The supervisor's half of early drop (`mcr::sys::xdp`): attaching the
//! XDP program to a worker's input interface, once per interface, through
//! a BPF link whose descriptor only this process holds, so the program
//! goes when mcrd goes (a crash included) and never outlives it. The
//! worker gets the program's flag map with its Hello and sets the flag
//! while its ring is nearly full; the supervisor clears it whenever a
//! worker exits, so a killed worker never leaves its input dropping.
//!
//! Where the program cannot go the input simply has no early drop, said
//! once in the log: L3 links (tun, WireGuard: no Ethernet header), an
//! interface with several workers (one program per interface, and a flag
//! per worker would need the program to know which worker the fanout
//! picks), a kernel or privilege that refuses, an interface that already
//! has an XDP program.

use mcr::config::{EarlyDrop, RxConfig, RxPath};
use mcr::sys::xdp::{attach_early_drop, attach_early_drop_mode, Attached, XdpMode};
use mcr::sys::InterfaceInfo;
use tracing::{info, warn};

const ARPHRD_ETHER: u16 = 1;

/// What the supervisor did about early drop on one worker's input.
#[derive(Default)]
pub enum EarlyState {
    /// Not decided yet (or the interface changed).
    #[default]
    Untried,
    /// Attached to the interface with this ifindex.
    Attached(u32, Attached),
    /// Not used on the interface with this ifindex; the log said why.
    Unused(u32),
}

impl EarlyState {
    /// The flag map for a new worker, or None. The flag is cleared first:
    /// the previous worker may have died with it set.
    pub fn map_for_worker(&self) -> Option<std::os::fd::OwnedFd> {
        let EarlyState::Attached(_, a) = self else {
            return None;
        };
        a.map.set_pressure(false);
        match a.map.dup_fd() {
            Ok(fd) => Some(fd),
            Err(e) => {
                warn!(target: "Ingress", "early drop: cannot duplicate the flag map: {e}; this worker runs without it");
                None
            }
        }
    }

    /// A worker exited: whatever it said, the input passes everything
    /// until the next worker decides otherwise.
    pub fn clear(&self) {
        if let EarlyState::Attached(_, a) = self {
            a.map.set_pressure(false);
        }
    }
}

/// `MCR_EARLY_DROP=generic`: the program in generic (skb) mode even where
/// the driver has native XDP, to measure what generic mode saves.
fn generic_forced() -> bool {
    std::env::var("MCR_EARLY_DROP").is_ok_and(|v| v.trim().eq_ignore_ascii_case("generic"))
}

/// The config's `workers.early_drop`, unless `MCR_EARLY_DROP` (`off`,
/// `xdp` or `generic`, for A/B runs) says otherwise.
pub fn wanted(rx: &RxConfig) -> EarlyDrop {
    if generic_forced() {
        return EarlyDrop::Xdp;
    }
    match std::env::var("MCR_EARLY_DROP") {
        Ok(v) if !v.trim().is_empty() => EarlyDrop::parse(&v).unwrap_or_else(|| {
            warn!(target: "Ingress", "MCR_EARLY_DROP={v:?} is none of \"off\", \"xdp\", \"generic\"; ignored, using early_drop {} from the config", rx.early_drop.as_str());
            rx.early_drop
        }),
        _ => rx.early_drop,
    }
}

/// Attach the program to `info`'s interface unless that was done (or
/// found impossible) already for this ifindex.
pub fn ensure(state: &mut EarlyState, info: &InterfaceInfo, nworkers: u32, rx: &RxConfig) {
    let ifindex = info.ifindex;
    let current = match state {
        EarlyState::Attached(ix, _) | EarlyState::Unused(ix) => *ix == ifindex,
        EarlyState::Untried => false,
    };
    if current {
        return;
    }
    // Dropped first: a program left on an old ifindex goes with it.
    *state = EarlyState::Unused(ifindex);
    let name = &info.name;
    let why_not = if wanted(rx) == EarlyDrop::Off {
        Some("workers.early_drop is off".to_string())
    } else if rx.path == RxPath::Recv {
        Some("the worker reads frame by frame (rx_path recv)".to_string())
    } else if info.link_type != ARPHRD_ETHER {
        Some(format!(
            "not an Ethernet link (link type {})",
            info.link_type
        ))
    } else if nworkers > 1 {
        Some(format!("{nworkers} workers share the input"))
    } else {
        None
    };
    if let Some(why) = why_not {
        info!(target: "Ingress", "no early drop on {name}: {why}");
        return;
    }
    let attached = if generic_forced() {
        attach_early_drop_mode(ifindex, XdpMode::Generic)
    } else {
        attach_early_drop(ifindex)
    };
    match attached {
        Ok(a) => {
            info!(target: "Ingress", "early drop on {name}: XDP program attached ({} mode)", a.mode.as_str());
            *state = EarlyState::Attached(ifindex, a);
        }
        Err(e) => {
            warn!(target: "Ingress", "no early drop on {name}: {e}; forwarding is unaffected, overload is dropped where the worker's ring is full");
        }
    }
}
