//! The instance's public vocabulary: the inputs the daemon gives it
//! ([`PimInput`]), the events it reports ([`PimEvent`]) with their
//! reasons, the per-interface counters and the snapshots behind `mcrctl
//! pim neighbors` and `pim interfaces`. Behaviour lives in the parent
//! module and its siblings; this file only names things.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::{RpfResult, TreeKey};
use crate::pim::codec::LanPruneDelay;
use crate::pim::state::downstream::JoinState;
/// What the daemon tells the core about its interfaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PimInput {
    /// The interface exists, is up, and has this primary IPv4 address.
    /// Sent again when the name or address changes.
    InterfaceUp {
        ifindex: u32,
        name: String,
        addr: Ipv4Addr,
    },
    /// The interface's other IPv4 addresses (all but the primary one of
    /// `InterfaceUp`), the whole set each time: they are ours too and go
    /// in the Hello Address List option (RFC 7761 §4.3.1).
    InterfaceAddresses {
        ifindex: u32,
        secondary: Vec<Ipv4Addr>,
    },
    /// The interface went down or lost its address: no goodbye is possible.
    InterfaceDown { ifindex: u32 },
    /// The daemon stops: send a goodbye (holdtime 0) on every interface
    /// so neighbors re-elect the DR at once instead of after 105 s.
    Shutdown,
    /// The whole set of local receivers on `ifindex` (IGMP): (*,G) for any
    /// source, (S,G) for a source it includes. Honoured only where we are
    /// DR (§4.1.6 pim_include).
    LocalMembers { ifindex: u32, members: Vec<TreeKey> },
    /// The whole set of (source, group) that the local receivers of a
    /// (*,G) on `ifindex` exclude (IGMPv3 EXCLUDE filters, RFC 7761
    /// §4.1.6 pim_exclude): S of such a G leaves the interface's share of
    /// the shared tree, and is pruned off it upstream (Prune(S,G,rpt))
    /// when nobody else downstream wants it.
    LocalExcludes {
        ifindex: u32,
        excludes: Vec<(Ipv4Addr, Ipv4Addr)>,
    },
    /// One local receiver appeared on `ifindex`.
    LocalJoin { ifindex: u32, key: TreeKey },
    /// One local receiver went away from `ifindex`.
    LocalLeave { ifindex: u32, key: TreeKey },
    /// The shell's answer to [`PimInstance::poll_rpf_request`]: the unicast
    /// route toward `target`, `None` when there is none.
    Rpf {
        target: Ipv4Addr,
        result: Option<RpfResult>,
    },
    /// The unicast routing table changed: every RPF target is asked again.
    RoutesChanged,
    /// Data of (source, group) arrived on `ifindex` (the shell's
    /// first-packet upcall or its periodic per-(S,G) report): drives the
    /// one Keepalive Timer of (S,G), registering at the first-hop DR of a
    /// directly connected source, the last hop's switch to the source
    /// tree, the SPT bit, and an Assert when it arrives on an interface we
    /// forward onto.
    Data {
        ifindex: u32,
        source: Ipv4Addr,
        group: Ipv4Addr,
    },
    // Register input (RFC 7761 §4.4).
    /// A data packet (IP header included) from a directly connected source
    /// on `ifindex`, for the DR to encapsulate while its register tunnel
    /// is up (`PimEvent::RegisterTunnel`).
    RegisterData { ifindex: u32, packet: Vec<u8> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownReason {
    /// Its holdtime ran out.
    Expired,
    /// It sent a Hello with holdtime 0.
    Goodbye,
    /// Our interface went down.
    InterfaceDown,
    /// PIM was turned off on our interface (configuration or shutdown).
    PimDisabled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// A Prune, not overridden within the override interval.
    Pruned,
    /// No Join refreshed it within its holdtime.
    Expired,
    /// PIM stopped on the interface.
    InterfaceGone,
}

/// Events for the rest of the daemon (`subscribe`, and later the
/// Join/Prune layer: a restarted neighbor must be sent our joins again).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PimEvent {
    NeighborUp {
        ifindex: u32,
        interface: String,
        neighbor: Ipv4Addr,
    },
    NeighborDown {
        ifindex: u32,
        interface: String,
        neighbor: Ipv4Addr,
        reason: DownReason,
    },
    NeighborRestarted {
        ifindex: u32,
        interface: String,
        neighbor: Ipv4Addr,
        old_generation_id: u32,
        new_generation_id: u32,
    },
    DrChanged {
        ifindex: u32,
        interface: String,
        old: Option<Ipv4Addr>,
        new: Ipv4Addr,
        we_are_dr: bool,
    },
    /// A downstream router joined (*,G) (`source` is `None`) or (S,G)
    /// through this interface: it belongs in the outgoing list.
    DownstreamJoin {
        ifindex: u32,
        interface: String,
        source: Option<Ipv4Addr>,
        group: Ipv4Addr,
    },
    DownstreamLeave {
        ifindex: u32,
        interface: String,
        source: Option<Ipv4Addr>,
        group: Ipv4Addr,
        reason: LeaveReason,
    },
    // Register/Assert events (RFC 7761 §4.4, §4.6).
    /// The first-hop DR starts (`up`) or stops encapsulating (S,G) to the
    /// RP: the shell sends (S,G) packets as `PimInput::RegisterData` only
    /// while it is up.
    RegisterTunnel {
        source: Ipv4Addr,
        group: Ipv4Addr,
        up: bool,
    },
    /// KeepaliveTimer(S,G) started or expired.
    Keepalive {
        source: Ipv4Addr,
        group: Ipv4Addr,
        running: bool,
    },
    /// An assert machine changed state or winner. Loser: the interface
    /// leaves the outgoing list of (S,G) (`source` given) or (*,G).
    AssertChanged {
        ifindex: u32,
        interface: String,
        source: Option<Ipv4Addr>,
        group: Ipv4Addr,
        state: crate::pim::state::assert::AssertState,
        winner: Option<Ipv4Addr>,
    },
}

/// Per-interface packet counters (`mcrctl pim interfaces`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub hello_tx: u64,
    pub hello_rx: u64,
    pub join_prune_rx: u64,
    pub register_rx: u64,
    pub register_stop_rx: u64,
    pub assert_rx: u64,
    pub bootstrap_rx: u64,
    pub cand_rp_adv_rx: u64,
    pub checksum_errors: u64,
    /// Truncated, bad encoded addresses or options, trailing bytes, or a
    /// Hello not sent to ALL-PIM-ROUTERS.
    pub malformed: u64,
    pub wrong_version: u64,
    pub unknown_type: u64,
    /// Join/Prunes naming another router as upstream neighbor (the
    /// upstream machines will use them for suppression and override).
    pub join_prune_not_for_us: u64,
    /// Join/Prunes from a router we have no Hello from.
    pub join_prune_from_non_neighbor: u64,
    /// Join/Prune entries not for (*,G) or (S,G): (S,G,rpt), group
    /// ranges, non-multicast groups.
    pub join_prune_entries_ignored: u64,
    /// (*,G) Joins naming an RP other than the one configured for G.
    pub join_wrong_rp: u64,
    pub prune_echo_tx: u64,
    /// Join/Prunes we sent upstream (triggered and periodic).
    pub join_prune_tx: u64,
    /// (S,G,rpt) Prunes received for us (sources pruned off the RP tree).
    pub rpt_prune_rx: u64,
}

/// One downstream (*,G) or (S,G) entry (`mcrctl pim routes`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownstreamSnapshot {
    pub interface: String,
    pub ifindex: u32,
    pub source: Option<Ipv4Addr>,
    pub group: Ipv4Addr,
    pub rp: Option<Ipv4Addr>,
    pub state: JoinState,
    pub expires_in_ms: u64,
    pub prune_pending_in_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighborSnapshot {
    pub interface: String,
    pub ifindex: u32,
    pub address: Ipv4Addr,
    pub dr_priority: Option<u32>,
    pub is_dr: bool,
    pub holdtime_secs: u16,
    /// `None`: infinite holdtime.
    pub expires_in_ms: Option<u64>,
    pub generation_id: Option<u32>,
    pub uptime_secs: u64,
    pub lan_prune_delay: Option<LanPruneDelay>,
    pub secondary_addresses: Vec<Ipv4Addr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceSnapshot {
    pub interface: String,
    pub ifindex: u32,
    pub address: Ipv4Addr,
    pub dr: Ipv4Addr,
    pub we_are_dr: bool,
    pub dr_priority: u32,
    pub hello_interval_secs: u64,
    pub holdtime_secs: u16,
    pub generation_id: u32,
    pub next_hello_in_ms: Option<u64>,
    pub neighbors: usize,
    pub counters: Counters,
}
