//! What the supervisor knows about interfaces when it checks a rule or
//! opens a worker's sockets: index, MTU, up and running, IPv4 addresses and
//! link type, read through sockets (so the answer is for the caller's own
//! network namespace), and whether the process may open packet sockets.

use std::net::Ipv4Addr;

use super::sockopt::{interface_query, IfQuery};

/// Facts about an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceInfo {
    pub name: String,
    pub ifindex: u32,
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Carrier and operationally up (IFF_RUNNING).
    pub running: bool,
    pub addrs: Vec<Ipv4Addr>,
    /// ARPHRD_* link type (1 Ethernet, 772 loopback, 65534 none).
    pub link_type: u16,
}

/// Look an interface up by name; `None` if it does not exist.
pub fn interface_info(name: &str) -> Option<InterfaceInfo> {
    if crate::rule::validate_interface_name(name).is_err() {
        return None;
    }
    let ifindex = nix::net::if_::if_nametoindex(name).ok()?;
    let mtu = interface_query(name, IfQuery::Mtu).unwrap_or(1500);
    let flags = interface_query(name, IfQuery::Flags).unwrap_or(0);
    let link_type = interface_query(name, IfQuery::LinkType).map_or(0, |t| t as u16);
    Some(InterfaceInfo {
        name: name.to_string(),
        link_type,
        ifindex,
        mtu,
        up: flags & libc::IFF_UP as u32 != 0,
        running: flags & libc::IFF_RUNNING as u32 != 0,
        addrs: ipv4_addrs(name),
    })
}

/// All interfaces in this network namespace.
pub fn list_interfaces() -> Vec<InterfaceInfo> {
    let mut v: Vec<InterfaceInfo> = nix::net::if_::if_nameindex()
        .map(|list| {
            list.iter()
                .filter_map(|i| i.name().to_str().ok().map(str::to_string))
                .filter_map(|n| interface_info(&n))
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|i| i.ifindex);
    v
}

/// IPv4 addresses of an interface.
pub fn ipv4_addrs(name: &str) -> Vec<Ipv4Addr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter(|a| a.interface_name == name)
        .filter_map(|a| {
            a.address
                .and_then(|s| s.as_sockaddr_in().map(|sin| sin.ip()))
        })
        .collect()
}

/// Whether `name` can hand its readers GSO batches (several datagrams in
/// one frame): virtual devices (veth, bridges, tun/tap, loopback) pass a
/// local sender's batches on unsegmented; physical NICs segment before the
/// wire. Physical devices have a `device` link in sysfs.
pub fn may_receive_gso(name: &str) -> bool {
    crate::rule::validate_interface_name(name).is_ok()
        && !std::path::Path::new(&format!("/sys/class/net/{name}/device")).exists()
}

/// Whether this process may open AF_PACKET sockets (CAP_NET_RAW in its
/// effective set), from /proc so that no capability library is needed.
pub fn has_cap_net_raw() -> bool {
    const CAP_NET_RAW: u32 = 13;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_NET_RAW) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_lookup_of_loopback() {
        let lo = interface_info("lo").expect("every namespace has lo");
        assert!(lo.ifindex >= 1);
        assert_eq!(lo.link_type, 772);
        assert!(lo.up);
        assert!(lo.addrs.contains(&Ipv4Addr::LOCALHOST));
        assert!(list_interfaces().iter().any(|i| i.name == "lo"));
        assert!(interface_info("no-such-if0").is_none());
        assert!(
            interface_info("../etc").is_none(),
            "names are validated before touching sysfs"
        );
    }
}
