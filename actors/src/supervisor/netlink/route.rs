//! Unicast route lookup: what `ip route get ADDR` answers (output
//! interface, gateway, preferred source, table, metric), by an RTM_GETROUTE
//! request (RFC 3549 §3.1.3) that the kernel resolves through its FIB
//! exactly as it would for a packet to that address. PIM's RPF check (RFC
//! 7761 §4.3) is the consumer: the RPF interface and neighbour towards a
//! source or RP are this lookup's output interface and gateway, and the
//! route's protocol and priority give the Assert metrics of §4.6
//! (`preference`, `metric`).
//!
//! [`RouteLookup`] keeps one netlink connection for any number of
//! lookups, so an RPF refresh of many targets does not open a socket per
//! target.

use std::net::Ipv4Addr;
use std::sync::Arc;

use futures_util::stream::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteType,
};
use rtnetlink::packet_route::AddressFamily;

#[derive(Clone, Debug, PartialEq)]
pub struct RouteInfo {
    pub oif: u32,
    /// Name of `oif` when the answer came back; `None` if the interface
    /// went away in between.
    pub oif_name: Option<String>,
    /// Next hop; `None` when the destination is on a connected subnet.
    pub gateway: Option<Ipv4Addr>,
    pub prefsrc: Option<Ipv4Addr>,
    pub table: u32,
    /// The matching route's metric; `None` when it has none (metric 0) or
    /// the kernel does not answer a FIB-match lookup.
    pub metric: Option<u32>,
    /// The administrative distance of the protocol that installed the
    /// route, as FRR's zebra assigns it by default (see [`preference`]);
    /// `None` when the FIB-match lookup gave no answer.
    pub preference: Option<u32>,
}

/// The metric preference (RFC 7761 §4.6.1: the administrative distance of
/// the unicast protocol behind the route) of a route installed by
/// `protocol`. The kernel only records the installing protocol, so the
/// values are FRR's default distances, which is what an FRR neighbour in
/// an Assert compares against: connected and kernel routes 0, static 1,
/// BGP 20 (eBGP: the kernel cannot tell iBGP, whose default is 200),
/// EIGRP 90, Babel 100, OSPF 110, IS-IS 115, RIP 120. FRR's staticd
/// installs with protocol 196 ("zstatic"). Anything else is not from a
/// routing protocol (boot, DHCP, router advertisements, scripts) and
/// counts as a kernel route, as zebra does.
pub fn preference(protocol: RouteProtocol) -> u32 {
    match protocol {
        RouteProtocol::Static | RouteProtocol::Other(196) => 1,
        RouteProtocol::Bgp => 20,
        RouteProtocol::Eigrp => 90,
        RouteProtocol::Babel => 100,
        RouteProtocol::Ospf => 110,
        RouteProtocol::Isis => 115,
        RouteProtocol::Rip => 120,
        _ => 0,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[from] std::io::Error),
    #[error("route lookup for {0} failed: {1}")]
    Netlink(Ipv4Addr, String),
    #[error("no route to {0}")]
    NoRoute(Ipv4Addr),
    /// Local, broadcast, blackhole, unreachable...: nothing a unicast RPF
    /// check could use.
    #[error("{0} is not reached by a unicast route ({1})")]
    NotUnicast(Ipv4Addr, String),
}

fn answer(dst: Ipv4Addr, m: &RouteMessage) -> Result<RouteInfo, RouteError> {
    if m.header.kind != RouteType::Unicast {
        return Err(RouteError::NotUnicast(dst, format!("{:?}", m.header.kind)));
    }
    let mut info = RouteInfo {
        oif: 0,
        oif_name: None,
        gateway: None,
        prefsrc: None,
        table: u32::from(m.header.table),
        metric: None,
        preference: None,
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Oif(i) => info.oif = *i,
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => info.gateway = Some(*g),
            RouteAttribute::PrefSource(RouteAddress::Inet(s)) => info.prefsrc = Some(*s),
            RouteAttribute::Table(t) => info.table = *t,
            _ => {}
        }
    }
    if info.oif == 0 {
        return Err(RouteError::NoRoute(dst));
    }
    Ok(info)
}

/// One netlink connection for route lookups, shared by concurrent
/// callers (the handle multiplexes requests by sequence number). Opened
/// in the network namespace of the calling thread; dropping the last
/// clone closes it.
#[derive(Clone)]
pub struct RouteLookup {
    handle: rtnetlink::Handle,
    conn: Arc<ConnTask>,
}

/// Aborts the connection task when the last `RouteLookup` goes.
struct ConnTask(tokio::task::JoinHandle<()>);

impl Drop for ConnTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl RouteLookup {
    /// Must be called inside a tokio runtime: the connection runs as a
    /// task of it.
    pub fn open() -> Result<Self, RouteError> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        Ok(RouteLookup {
            handle,
            conn: Arc::new(ConnTask(tokio::spawn(conn))),
        })
    }

    /// False once the connection has stopped (its socket failed); the
    /// owner opens a new one.
    pub fn is_alive(&self) -> bool {
        !self.conn.0.is_finished()
    }

    pub async fn get(&self, dst: Ipv4Addr) -> Result<RouteInfo, RouteError> {
        lookup(&self.handle, dst).await
    }
}

fn request(dst: Ipv4Addr, flags: RouteFlags) -> RouteMessage {
    let mut req = RouteMessage::default();
    req.header.address_family = AddressFamily::Inet;
    req.header.destination_prefix_length = 32;
    req.header.flags = flags;
    req.attributes
        .push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
    req
}

async fn lookup(handle: &rtnetlink::Handle, dst: Ipv4Addr) -> Result<RouteInfo, RouteError> {
    // Report the table the route was found in, as `ip route get` does,
    // rather than the kernel's default of main.
    let req = request(dst, RouteFlags::LookupTable);
    let mut replies = handle.route().get(req).execute();
    let reply = match replies.try_next().await {
        Ok(Some(m)) => m,
        Ok(None) => return Err(RouteError::NoRoute(dst)),
        Err(rtnetlink::Error::NetlinkError(e))
            if e.raw_code() == -libc::ENETUNREACH || e.raw_code() == -libc::EHOSTUNREACH =>
        {
            return Err(RouteError::NoRoute(dst))
        }
        Err(e) => return Err(RouteError::Netlink(dst, e.to_string())),
    };
    let mut info = answer(dst, &reply)?;
    // The resolved route carries no metric; the FIB entry it came from
    // (`ip route get fibmatch`) does.
    let fib = request(dst, RouteFlags::LookupTable | RouteFlags::FibMatch);
    if let Ok(Some(entry)) = handle.route().get(fib).execute().try_next().await {
        info.preference = Some(preference(entry.header.protocol));
        info.metric = entry.attributes.iter().find_map(|a| match a {
            RouteAttribute::Priority(p) => Some(*p),
            _ => None,
        });
    }
    let mut links = handle.link().get().match_index(info.oif).execute();
    if let Ok(Some(l)) = links.try_next().await {
        info.oif_name = l.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        });
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preference_follows_frr_default_distances() {
        assert_eq!(preference(RouteProtocol::Kernel), 0, "connected");
        assert_eq!(preference(RouteProtocol::Boot), 0, "ip route add");
        assert_eq!(preference(RouteProtocol::Dhcp), 0);
        assert_eq!(preference(RouteProtocol::Static), 1);
        assert_eq!(preference(RouteProtocol::Other(196)), 1, "FRR staticd");
        assert_eq!(preference(RouteProtocol::Bgp), 20);
        assert_eq!(preference(RouteProtocol::Ospf), 110);
        assert_eq!(preference(RouteProtocol::Isis), 115);
        assert_eq!(preference(RouteProtocol::Rip), 120);
        // A lower distance wins an Assert: static beats OSPF beats RIP.
        assert!(preference(RouteProtocol::Static) < preference(RouteProtocol::Ospf));
        assert!(preference(RouteProtocol::Ospf) < preference(RouteProtocol::Rip));
    }
}
