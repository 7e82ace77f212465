//! The messages of the protocol actors (PimActor, IgmpActor per
//! interface, IgmpProxyActor). They live beside `handles.rs`, which
//! re-exports them, only to keep that file readable: the names and the
//! delivery stay in one module.

use super::*;

pub enum PimMsg {
    Ops(Ops),
    /// A packet read from the PIM socket of `ifindex` (the IP payload).
    Packet {
        ifindex: u32,
        src: std::net::Ipv4Addr,
        dst: std::net::Ipv4Addr,
        payload: Vec<u8>,
    },
    /// The core's `poll_timeout` has come (sent only by the armed timer
    /// task, so the handler may forget it).
    Timer,
    /// Run the full drain (RIB sync, events, timer): the data path asks
    /// for it while punted packets stream in (`pim_data.rs`).
    Drain,
    /// A new interface snapshot (from the NetlinkMonitor).
    Interfaces(Arc<Ifaces>),
    /// The running configuration changed.
    Reconfigure,
    Neighbors(RpcReplyPort<Vec<NeighborSnapshot>>),
    InterfaceList(RpcReplyPort<Vec<InterfaceSnapshot>>),
    Routes(RpcReplyPort<Vec<UpstreamSnapshot>>),
    RpTable(RpcReplyPort<Vec<RpSnapshot>>),
    RegisterState(RpcReplyPort<RegisterReport>),
    AssertState(RpcReplyPort<Vec<AssertSnapshot>>),
    /// The answer to an RPF question of the core (`route_get`).
    Rpf {
        target: Ipv4Addr,
        result: Option<RpfResult>,
    },
    /// The kernel's unicast routes changed (from the NetlinkMonitor).
    RoutesChanged,
    /// IGMP memberships of every interface, after a change (from the RIB,
    /// which IGMP reports to): the local receivers of §4.1.6.
    Memberships(Arc<Memberships>),
    /// The daemon stops: send goodbye Hellos, then answer.
    Shutdown(RpcReplyPort<()>),
    /// (upstream ifindex, source, group) of learned (S,G) routes whose
    /// workers forwarded packets since the last report (about 1 s).
    Activity(Vec<(u32, Ipv4Addr, Ipv4Addr)>),
    /// A worker on `interface` saw (S,G) data no (S,G) rule covers (its
    /// first-packet upcall, repeated at most once a second).
    Data {
        interface: String,
        source: Ipv4Addr,
        group: Ipv4Addr,
    },
    /// A whole packet of a register tunnel from the worker on `interface`.
    RegisterData {
        interface: String,
        packet: Vec<u8>,
    },
    Panic,
}

/// To the IgmpActor of one querier interface.
pub enum IgmpMsg {
    /// An IPv4 packet as the interface's packet socket read it.
    Packet(Vec<u8>),
    /// The protocol's timer fired.
    Tick,
    /// The startup queries' response window is over: report what was
    /// re-learned to the RIB.
    Resync,
    /// The running config's timers (sent every reconcile); applied when
    /// they differ, keeping every membership.
    Params(IgmpParams),
    Snapshot(RpcReplyPort<IgmpSnapshot>),
    Panic,
}

/// To the IGMP proxy (RFC 4605): the downstream queriers' memberships
/// and the upstream interface's I/O.
pub enum IgmpProxyMsg {
    /// A downstream querier's membership of `group` changed; INCLUDE {}
    /// is a leave.
    Membership {
        interface: String,
        group: Ipv4Addr,
        filter: HostFilter,
    },
    /// Every membership of one downstream querier (after its restart,
    /// or empty when its interface went away).
    Memberships {
        interface: String,
        groups: BTreeMap<Ipv4Addr, HostFilter>,
    },
    /// Whether MCR is the querier of a downstream interface now (RFC
    /// 4605 §4.2: the proxy forwards onto a LAN only where it is).
    Querier {
        interface: String,
        local: bool,
    },
    /// Multicast data of `source` to `group` seen on a downstream
    /// interface (at most once a second per (S,G)): RFC 4605 §4.2 sends
    /// it upstream.
    Data {
        interface: String,
        source: Ipv4Addr,
        group: Ipv4Addr,
    },
    /// An IPv4 packet the upstream's packet socket read.
    Packet(Vec<u8>),
    Tick,
    Snapshot(RpcReplyPort<IgmpSnapshot>),
    Panic,
}
