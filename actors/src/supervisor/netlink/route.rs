//! Unicast route lookup: what `ip route get ADDR` answers (output
//! interface, gateway, preferred source, table, metric), by an RTM_GETROUTE
//! request (RFC 3549 §3.1.3) that the kernel resolves through its FIB
//! exactly as it would for a packet to that address. PIM's RPF check (RFC
//! 7761 §4.3) is the consumer: the RPF interface and neighbour towards a
//! source or RP are this lookup's output interface and gateway.

use std::net::Ipv4Addr;

use futures_util::stream::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteType,
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

/// Look up the route the kernel would use for a packet to `dst`, in the
/// network namespace of the calling thread.
pub async fn route_get(dst: Ipv4Addr) -> Result<RouteInfo, RouteError> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    let conn = tokio::spawn(conn);
    let r = lookup(&handle, dst).await;
    conn.abort();
    r
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
