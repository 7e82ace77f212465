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
    interface_info_with(name, || ipv4_addrs(name))
}

fn interface_info_with(name: &str, addrs: impl FnOnce() -> Vec<Ipv4Addr>) -> Option<InterfaceInfo> {
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
        addrs: addrs(),
    })
}

/// All interfaces in this network namespace. The addresses come from one
/// read of the kernel's whole address table (`getifaddrs` dumps every
/// link and address each time): one read per interface made a scan
/// quadratic, seconds of a runtime thread at 500 interfaces, and the
/// daemon rescans every 2 s.
pub fn list_interfaces() -> Vec<InterfaceInfo> {
    let mut addrs = all_ipv4_addrs();
    let mut v: Vec<InterfaceInfo> = nix::net::if_::if_nameindex()
        .map(|list| {
            list.iter()
                .filter_map(|i| i.name().to_str().ok().map(str::to_string))
                .filter_map(|n| {
                    let a = addrs.remove(&n).unwrap_or_default();
                    interface_info_with(&n, || a)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|i| i.ifindex);
    v
}

/// IPv4 addresses of an interface.
pub fn ipv4_addrs(name: &str) -> Vec<Ipv4Addr> {
    all_ipv4_addrs().remove(name).unwrap_or_default()
}

/// Every interface's IPv4 addresses, in the kernel's order.
fn all_ipv4_addrs() -> std::collections::HashMap<String, Vec<Ipv4Addr>> {
    let mut by_name: std::collections::HashMap<String, Vec<Ipv4Addr>> = Default::default();
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return by_name;
    };
    for a in addrs {
        if let Some(ip) = a
            .address
            .and_then(|s| s.as_sockaddr_in().map(|sin| sin.ip()))
        {
            by_name.entry(a.interface_name).or_default().push(ip);
        }
    }
    by_name
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

    /// A scan reads the address table once and hands each interface its
    /// own addresses: the same as looking each interface up alone.
    #[test]
    fn a_scan_gives_each_interface_its_own_addresses() {
        if !super::super::own_netns_for_test() {
            return;
        }
        // Veths: every test kernel has them (not always the dummy module).
        let script = "link add sc0 type veth peer name sc1\nlink add sc2 type veth peer name sc3\n\
                      addr add 10.77.0.1/24 dev sc0\naddr add 10.77.1.1/24 dev sc0\n\
                      addr add 10.78.0.1/24 dev sc1\nlink set lo up\nlink set sc0 up\n";
        let mut ip = std::process::Command::new("ip")
            .args(["-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("ip");
        std::io::Write::write_all(&mut ip.stdin.take().expect("stdin"), script.as_bytes())
            .expect("ip input");
        assert!(ip.wait().expect("ip").success());
        let all = list_interfaces();
        let mut names: Vec<&str> = all.iter().map(|i| i.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["lo", "sc0", "sc1", "sc2", "sc3"]);
        let addrs = |n: &str| all.iter().find(|i| i.name == n).map(|i| i.addrs.clone());
        let ip4 = |c: u8| Ipv4Addr::new(10, 77 + c / 2, c % 2, 1);
        assert_eq!(addrs("sc0"), Some(vec![ip4(0), ip4(1)]));
        assert_eq!(addrs("sc1"), Some(vec![ip4(2)]));
        assert_eq!(addrs("sc2"), Some(vec![]));
        for i in &all {
            assert_eq!(Some(i), interface_info(&i.name).as_ref(), "{}", i.name);
        }
    }
}
