//! Typed rtnetlink events and how each one changes the interface snapshot
//! that the RIB and the WorkerManager work from.
//!
//! Owns the decoding of the kernel's RTM_NEWLINK/RTM_DELLINK (RFC 3549
//! §3.1.1), RTM_NEWADDR/RTM_DELADDR for IPv4 (§3.1.2) and
//! RTM_NEWROUTE/RTM_DELROUTE for IPv4 (§3.1.3) notifications into
//! [`NlEvent`], and [`apply`], which folds an event into an [`Ifaces`]
//! snapshot the same way a full rescan would see it.

use std::net::{IpAddr, Ipv4Addr};

use mcr::dataplane::sockets::InterfaceInfo;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use mcr::iface::Ifaces;

/// What a link message says about one interface.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Carrier and operationally up (IFF_RUNNING).
    pub running: bool,
    pub mtu: Option<u32>,
    /// ARPHRD_* type.
    pub link_type: u16,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NlEvent {
    /// An index not in the snapshot.
    LinkAdded(Link),
    /// A known index; `renamed_from` is its old name if the name changed.
    LinkChanged {
        link: Link,
        renamed_from: Option<String>,
    },
    LinkRemoved {
        index: u32,
        name: String,
    },
    AddrAdded {
        index: u32,
        addr: Ipv4Addr,
        prefix_len: u8,
    },
    AddrRemoved {
        index: u32,
        addr: Ipv4Addr,
        prefix_len: u8,
    },
    /// An IPv4 unicast route appeared, changed or went: what an RPF check
    /// looks up may now answer differently.
    RouteChanged {
        removed: bool,
        dst: Ipv4Addr,
        prefix_len: u8,
        table: u32,
        oif: Option<u32>,
        gateway: Option<Ipv4Addr>,
    },
}

fn name_of(ifaces: &Ifaces, index: u32) -> Option<&str> {
    ifaces
        .values()
        .find(|i| i.ifindex == index)
        .map(|i| i.name.as_str())
}

fn link(m: &LinkMessage) -> Option<Link> {
    let mut name = None;
    let mut mtu = None;
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Mtu(v) => mtu = Some(*v),
            _ => {}
        }
    }
    Some(Link {
        index: m.header.index,
        name: name?,
        up: m.header.flags.contains(LinkFlags::Up),
        running: m.header.flags.contains(LinkFlags::Running),
        mtu,
        link_type: m.header.link_layer_type.into(),
    })
}

/// The interface's own IPv4 address: IFA_LOCAL, which on a point-to-point
/// link differs from IFA_ADDRESS (the peer); getifaddrs() reports the same.
fn addr(m: &AddressMessage) -> Option<Ipv4Addr> {
    if m.header.family != AddressFamily::Inet {
        return None;
    }
    let mut local = None;
    let mut address = None;
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(IpAddr::V4(v)) => local = Some(*v),
            AddressAttribute::Address(IpAddr::V4(v)) => address = Some(*v),
            _ => {}
        }
    }
    local.or(address)
}

fn route(m: &RouteMessage, removed: bool) -> Option<NlEvent> {
    if m.header.address_family != AddressFamily::Inet {
        return None;
    }
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let mut table = u32::from(m.header.table);
    let mut oif = None;
    let mut gateway = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(v)) => dst = *v,
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateway = Some(*g),
            _ => {}
        }
    }
    Some(NlEvent::RouteChanged {
        removed,
        dst,
        prefix_len: m.header.destination_prefix_length,
        table,
        oif,
        gateway,
    })
}

/// Decode one kernel notification. Whether a link is new or changed is
/// judged against `known`, the snapshot the previous events built. `None`
/// for messages this daemon has no use for (IPv6, neighbours, ...).
pub fn decode(msg: &RouteNetlinkMessage, known: &Ifaces) -> Option<NlEvent> {
    match msg {
        RouteNetlinkMessage::NewLink(m) => {
            let l = link(m)?;
            Some(match name_of(known, l.index) {
                None => NlEvent::LinkAdded(l),
                Some(old) => NlEvent::LinkChanged {
                    renamed_from: (old != l.name).then(|| old.to_string()),
                    link: l,
                },
            })
        }
        RouteNetlinkMessage::DelLink(m) => {
            let index = m.header.index;
            let name = link(m)
                .map(|l| l.name)
                .or_else(|| name_of(known, index).map(str::to_string))?;
            Some(NlEvent::LinkRemoved { index, name })
        }
        RouteNetlinkMessage::NewAddress(m) => Some(NlEvent::AddrAdded {
            index: m.header.index,
            addr: addr(m)?,
            prefix_len: m.header.prefix_len,
        }),
        RouteNetlinkMessage::DelAddress(m) => Some(NlEvent::AddrRemoved {
            index: m.header.index,
            addr: addr(m)?,
            prefix_len: m.header.prefix_len,
        }),
        RouteNetlinkMessage::NewRoute(m) => route(m, false),
        RouteNetlinkMessage::DelRoute(m) => route(m, true),
        _ => None,
    }
}

/// Fold one event into the snapshot. Interfaces whose names a rule could
/// not use are left out, as the rescan leaves them out.
pub fn apply(ifaces: &mut Ifaces, ev: &NlEvent) {
    match ev {
        NlEvent::LinkAdded(l) | NlEvent::LinkChanged { link: l, .. } => {
            let prev = ifaces
                .iter()
                .find(|(_, i)| i.ifindex == l.index)
                .map(|(n, _)| n.clone())
                .and_then(|n| ifaces.remove(&n));
            if mcr::rule::validate_interface_name(&l.name).is_err() {
                return;
            }
            let addrs = prev.as_ref().map(|p| p.addrs.clone()).unwrap_or_default();
            let mtu = l.mtu.or(prev.as_ref().map(|p| p.mtu)).unwrap_or(1500);
            ifaces.insert(
                l.name.clone(),
                InterfaceInfo {
                    name: l.name.clone(),
                    ifindex: l.index,
                    mtu,
                    up: l.up,
                    running: l.running,
                    addrs,
                    link_type: l.link_type,
                },
            );
        }
        NlEvent::LinkRemoved { index, .. } => {
            ifaces.retain(|_, i| i.ifindex != *index);
        }
        NlEvent::AddrAdded { index, addr, .. } => {
            if let Some(i) = ifaces.values_mut().find(|i| i.ifindex == *index) {
                if !i.addrs.contains(addr) {
                    i.addrs.push(*addr);
                }
            }
        }
        NlEvent::AddrRemoved { index, addr, .. } => {
            if let Some(i) = ifaces.values_mut().find(|i| i.ifindex == *index) {
                i.addrs.retain(|a| a != addr);
            }
        }
        NlEvent::RouteChanged { .. } => {}
    }
}

/// A one-line description for the log.
pub fn describe(ev: &NlEvent, known: &Ifaces) -> String {
    let ifname = |index: &u32| {
        name_of(known, *index)
            .map(str::to_string)
            .unwrap_or_else(|| format!("ifindex {index}"))
    };
    let state = |l: &Link| {
        let mtu = l.mtu.map(|m| format!(", mtu {m}")).unwrap_or_default();
        format!(
            "{}{}{mtu}",
            if l.up { "up" } else { "down" },
            if l.running { ", running" } else { "" }
        )
    };
    match ev {
        NlEvent::LinkAdded(l) => {
            format!("link {} added (ifindex {}, {})", l.name, l.index, state(l))
        }
        NlEvent::LinkChanged {
            link: l,
            renamed_from: Some(old),
        } => format!(
            "link {old} renamed to {} (ifindex {}, {})",
            l.name,
            l.index,
            state(l)
        ),
        NlEvent::LinkChanged { link: l, .. } => format!(
            "link {} changed (ifindex {}, {})",
            l.name,
            l.index,
            state(l)
        ),
        NlEvent::LinkRemoved { index, name } => {
            format!("link {name} removed (ifindex {index})")
        }
        NlEvent::AddrAdded {
            index,
            addr,
            prefix_len,
        } => format!("address {addr}/{prefix_len} added on {}", ifname(index)),
        NlEvent::AddrRemoved {
            index,
            addr,
            prefix_len,
        } => format!("address {addr}/{prefix_len} removed from {}", ifname(index)),
        NlEvent::RouteChanged {
            removed,
            dst,
            prefix_len,
            table,
            oif,
            gateway,
        } => {
            let via = gateway.map(|g| format!(" via {g}")).unwrap_or_default();
            let dev = oif
                .map(|i| format!(" dev {}", ifname(&i)))
                .unwrap_or_default();
            format!(
                "route {dst}/{prefix_len}{via}{dev} table {table} {}",
                if *removed {
                    "removed"
                } else {
                    "added or changed"
                }
            )
        }
    }
}
