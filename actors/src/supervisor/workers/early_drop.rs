//! The supervisor's half of early drop (`mcr::sys::xdp`): attaching the
//! XDP program to a worker's input interface, once per interface, through
//! a BPF link whose descriptor only this process holds, so the program
//! goes when mcrd goes (a crash included) and never outlives it. The
//! worker gets the program's map with its Hello, arms the program with a
//! limit from its ring's size and publishes what it has read; the program
//! drops while what it passed exceeds that by more than the limit. The
//! supervisor disarms it whenever a worker exits (and before handing the
//! map to the next), so a killed or stopped-for-good worker never leaves
//! its input dropping.
//!
//! Where the program cannot go the input simply has no early drop, said
//! once in the log: L3 links (tun, WireGuard: no Ethernet header), an
//! interface with several workers (one program per interface, and a count
//! per worker would need the program to know which worker the fanout
//! picks), a kernel or privilege that refuses, an interface that already
//! has an XDP program. On a veth the program goes in generic mode:
//! native XDP there would change the peer (no GSO, MTU capped at a page).
//!
//! The decision is kept with what it was made from (interface, wanted
//! setting, rx path, worker count) and made again when any of them
//! changes, so a config reload that turns early drop off detaches the
//! program at once, and one that turns it back on attaches it again.

use mcr::config::{EarlyDrop, RxConfig, RxPath};
use mcr::sys::xdp::{attach_early_drop, attach_early_drop_mode, driver_name, Attached, XdpMode};
use mcr::sys::InterfaceInfo;
use tracing::{info, warn};

const ARPHRD_ETHER: u16 = 1;

/// What the supervisor did about early drop on one worker's input.
#[derive(Default)]
pub enum EarlyState {
    /// Not decided yet (or the interface changed).
    #[default]
    Untried,
    /// Attached, decided from this basis.
    Attached(Basis, Attached),
    /// Not used, decided from this basis; the log said why.
    Unused(Basis),
}

/// What a decision was made from: when any of it changes, decide again.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Basis {
    ifindex: u32,
    wanted: EarlyDrop,
    path: RxPath,
    nworkers: u32,
}

impl Basis {
    fn of(info: &InterfaceInfo, nworkers: u32, rx: &RxConfig) -> Basis {
        Basis {
            ifindex: info.ifindex,
            wanted: wanted(rx),
            path: rx.path,
            nworkers,
        }
    }
}

impl EarlyState {
    /// The map for a new worker, or None. The program is disarmed first:
    /// the previous worker's count means nothing to the new one, which
    /// resyncs and arms it again.
    pub fn map_for_worker(&self) -> Option<std::os::fd::OwnedFd> {
        let EarlyState::Attached(_, a) = self else {
            return None;
        };
        a.map.disarm();
        match a.map.dup_fd() {
            Ok(fd) => Some(fd),
            Err(e) => {
                warn!(target: "Ingress", "early drop: cannot duplicate the map: {e}; this worker runs without it");
                None
            }
        }
    }

    /// Whether the program is attached (a worker started before that has
    /// no map to arm).
    pub fn attached(&self) -> bool {
        matches!(self, EarlyState::Attached(..))
    }

    /// A worker exited: whatever it said, the input passes everything
    /// until the next worker decides otherwise.
    pub fn clear(&self) {
        if let EarlyState::Attached(_, a) = self {
            a.map.disarm();
        }
    }
}

/// The mode `MCR_EARLY_DROP` forces, for A/B runs: `generic` = generic
/// (skb) mode even where the driver has native XDP, to measure what
/// generic mode saves; `native` = native mode even on a veth, whose peer
/// then loses GSO and jumbo frames (benchmarks on veth pairs that stand in
/// for a NIC, where native XDP runs before RPS and generic mode after).
fn forced_mode() -> Option<XdpMode> {
    let v = std::env::var("MCR_EARLY_DROP").ok()?;
    let v = v.trim();
    if v.eq_ignore_ascii_case("generic") {
        Some(XdpMode::Generic)
    } else if v.eq_ignore_ascii_case("native") {
        Some(XdpMode::Native)
    } else {
        None
    }
}

/// The config's `workers.early_drop`, unless `MCR_EARLY_DROP` (`off`,
/// `xdp`, `generic` or `native`, for A/B runs) says otherwise.
pub fn wanted(rx: &RxConfig) -> EarlyDrop {
    if forced_mode().is_some() {
        return EarlyDrop::Xdp;
    }
    match std::env::var("MCR_EARLY_DROP") {
        Ok(v) if !v.trim().is_empty() => EarlyDrop::parse(&v).unwrap_or_else(|| {
            warn!(target: "Ingress", "MCR_EARLY_DROP={v:?} is none of \"off\", \"xdp\", \"generic\", \"native\"; ignored, using early_drop {} from the config", rx.early_drop.as_str());
            rx.early_drop
        }),
        _ => rx.early_drop,
    }
}

/// Attach the program to `info`'s interface unless that was decided
/// already from the same interface and settings. Returns whether it
/// decided anew.
pub fn ensure(state: &mut EarlyState, info: &InterfaceInfo, nworkers: u32, rx: &RxConfig) -> bool {
    let basis = Basis::of(info, nworkers, rx);
    let ifindex = info.ifindex;
    let current = match state {
        EarlyState::Attached(b, _) | EarlyState::Unused(b) => *b == basis,
        EarlyState::Untried => false,
    };
    if current {
        return false;
    }
    let was_attached = state.attached();
    // Dropped first: a program left on an old ifindex, or no longer
    // wanted, goes with it.
    *state = EarlyState::Unused(basis);
    if was_attached {
        info!(target: "Ingress", "early drop on {}: XDP program detached (settings or interface changed)", info.name);
    }
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
        return true;
    }
    // Native XDP on a veth changes its peer for as long as it is attached:
    // the kernel turns off the peer's software GSO (a local sender's
    // UDP-GSO batches are cut into single frames before they cross) and
    // caps the peer's MTU at about a page (no jumbo frames). Generic mode
    // changes neither.
    let generic = match forced_mode() {
        Some(mode) => mode == XdpMode::Generic,
        None => driver_name(name).is_some_and(|d| d == "veth"),
    };
    let attached = if generic {
        attach_early_drop_mode(ifindex, XdpMode::Generic)
    } else {
        attach_early_drop(ifindex)
    };
    match attached {
        Ok(a) => {
            info!(target: "Ingress", "early drop on {name}: XDP program attached ({} mode)", a.mode.as_str());
            *state = EarlyState::Attached(basis, a);
        }
        Err(e) => {
            warn!(target: "Ingress", "no early drop on {name}: {e}; forwarding is unaffected, overload is dropped where the worker's ring is full");
        }
    }
    true
}

/// A running worker's settings may have changed (a config reload): decide
/// again if they did. Returns true when the program has just been
/// attached, so the running worker, which got no map, must restart
/// to use it. Nothing is decided before the first worker start.
pub fn follow(state: &mut EarlyState, info: &InterfaceInfo, nworkers: u32, rx: &RxConfig) -> bool {
    if matches!(state, EarlyState::Untried) {
        return false;
    }
    let was_attached = state.attached();
    ensure(state, info, nworkers, rx) && !was_attached && state.attached()
}
