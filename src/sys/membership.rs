//! Memberships of input groups: what makes a NIC (and, through the IGMP
//! reports the supervisor sends, a snooping switch or a router) deliver an
//! input group to the interface a worker reads.
//!
//! Owns two ways of holding a membership (RFC 1112 §6.4 link-layer
//! mapping of a group to `01:00:5e` plus its low 23 bits):
//!
//! - [`JoinMode::Link`], the default: `PACKET_ADD_MEMBERSHIP` with
//!   `PACKET_MR_MULTICAST` on one `AF_PACKET` socket programs the
//!   interface's multicast MAC filter and nothing else. The kernel's IP
//!   layer has no membership, so it drops the group at its route lookup
//!   instead of delivering every input packet to its own UDP stack (about
//!   a fifth of the relay core's time per packet, PERFORMANCE.md). The
//!   kernel does not report such a membership; the supervisor's
//!   `input_igmp` reporter does (RFC 2236 §3 / RFC 3376 §5 host side).
//! - [`JoinMode::Ip`]: `IP_ADD_MEMBERSHIP` as an ordinary host, the kernel
//!   sending the reports. Kept for the A/B benchmark
//!   (`MCR_INPUT_JOIN=ip`) and for comparison.

use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};

use super::bpf::drop_all;
use super::sockopt::{attach_filter, new_socket, setsockopt, zeroed};

/// How input groups are joined (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JoinMode {
    /// The interface's MAC filter only; reports are the caller's job.
    #[default]
    Link,
    /// An IP host membership; the kernel reports it.
    Ip,
}

impl JoinMode {
    /// `MCR_INPUT_JOIN=ip` selects [`JoinMode::Ip`]; anything else, or
    /// nothing, the default.
    pub fn from_env() -> Self {
        match std::env::var("MCR_INPUT_JOIN").as_deref() {
            Ok("ip") => JoinMode::Ip,
            _ => JoinMode::Link,
        }
    }
}

/// The multicast MAC address of `group` (RFC 1112 §6.4).
pub fn group_mac(group: Ipv4Addr) -> [u8; 6] {
    let o = group.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

/// What holds one membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    /// On the link socket's MAC list.
    Link,
    /// A link without link-layer addresses (tun, WireGuard): there is no
    /// filter to program, every frame reaches the packet socket anyway.
    NoFilter,
    /// An IP membership on membership socket `i`.
    Ip(usize),
}

/// Memberships of input groups, per interface.
///
/// In IP mode the kernel limits the groups one socket may join
/// (`net.ipv4.igmp_max_memberships`, 20 by default), so they are spread
/// over as many sockets as needed. In link mode one socket holds them all
/// (the kernel counts a MAC joined twice on one socket, so two groups that
/// share a MAC are left one at a time). Either way a socket is closed as
/// soon as it holds no group: after churn the process must not keep idle
/// sockets.
#[derive(Default)]
pub struct Memberships {
    mode: JoinMode,
    link: Option<OwnedFd>,
    /// IP mode's slots, so the indices in `joined` stay valid when one is
    /// closed.
    sockets: Vec<Option<(OwnedFd, usize)>>,
    joined: HashMap<(u32, Ipv4Addr), Held>,
}

impl Memberships {
    /// Memberships in the default mode ([`JoinMode::Link`]).
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_mode(mode: JoinMode) -> Self {
        Self {
            mode,
            ..Self::default()
        }
    }

    pub fn mode(&self) -> JoinMode {
        self.mode
    }

    pub fn is_joined(&self, ifindex: u32, group: Ipv4Addr) -> bool {
        self.joined.contains_key(&(ifindex, group))
    }

    pub fn joined(&self) -> impl Iterator<Item = (u32, Ipv4Addr)> + '_ {
        self.joined.keys().copied()
    }

    /// Sockets open for memberships now.
    pub fn open_sockets(&self) -> usize {
        self.sockets.iter().flatten().count() + usize::from(self.link.is_some())
    }

    /// Join `group` on `ifindex`. Joining twice is a no-op.
    pub fn join(&mut self, ifindex: u32, group: Ipv4Addr) -> io::Result<()> {
        if self.joined.contains_key(&(ifindex, group)) {
            return Ok(());
        }
        let held = match self.mode {
            JoinMode::Link => self.join_link(ifindex, group)?,
            JoinMode::Ip => Held::Ip(self.join_ip(ifindex, group)?),
        };
        self.joined.insert((ifindex, group), held);
        Ok(())
    }

    fn join_link(&mut self, ifindex: u32, group: Ipv4Addr) -> io::Result<Held> {
        let fd = match self.link.take() {
            Some(fd) => fd,
            // Protocol 0: the socket receives nothing, it only holds the
            // MAC list.
            None => new_socket(libc::AF_PACKET, libc::SOCK_RAW, 0)?,
        };
        let r = setsockopt(
            fd.as_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &packet_mreq(ifindex, group),
        );
        let held = match r {
            Ok(()) => Ok(Held::Link),
            // The kernel refuses a 6-byte address on a link whose
            // addresses are shorter (none, on tun and WireGuard).
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(Held::NoFilter),
            Err(e) => Err(e),
        };
        self.link = Some(fd);
        if !matches!(held, Ok(Held::Link)) && !self.joined.values().any(|h| *h == Held::Link) {
            self.link = None;
        }
        held
    }

    fn join_ip(&mut self, ifindex: u32, group: Ipv4Addr) -> io::Result<usize> {
        let req = ip_mreqn(group, ifindex);
        for (i, slot) in self.sockets.iter_mut().enumerate() {
            let Some((fd, n)) = slot else { continue };
            match setsockopt(fd.as_fd(), libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &req) {
                Ok(()) => {
                    *n += 1;
                    return Ok(i);
                }
                // This socket is full; try the next.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
                Err(e) => return Err(e),
            }
        }
        let fd = new_socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDP)?;
        // The membership socket must not receive the traffic itself: it is
        // never read, so a filter that drops everything keeps its queue
        // empty.
        attach_filter(fd.as_fd(), &drop_all())?;
        setsockopt(fd.as_fd(), libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &req)?;
        Ok(match self.sockets.iter().position(Option::is_none) {
            Some(i) => {
                self.sockets[i] = Some((fd, 1));
                i
            }
            None => {
                self.sockets.push(Some((fd, 1)));
                self.sockets.len() - 1
            }
        })
    }

    /// Leave `group` on `ifindex`.
    pub fn leave(&mut self, ifindex: u32, group: Ipv4Addr) -> io::Result<()> {
        let Some(held) = self.joined.remove(&(ifindex, group)) else {
            return Ok(());
        };
        let r = match (held, &self.link) {
            (Held::Link, Some(fd)) => setsockopt(
                fd.as_fd(),
                libc::SOL_PACKET,
                libc::PACKET_DROP_MEMBERSHIP,
                &packet_mreq(ifindex, group),
            ),
            (Held::Ip(i), _) => match self.sockets.get(i) {
                Some(Some((fd, _))) => setsockopt(
                    fd.as_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_DROP_MEMBERSHIP,
                    &ip_mreqn(group, ifindex),
                ),
                _ => Ok(()),
            },
            _ => Ok(()),
        };
        self.release(held);
        r
    }

    /// Forget every membership on an interface that is gone (the kernel
    /// dropped them with the device).
    pub fn forget_interface(&mut self, ifindex: u32) {
        let gone: Vec<_> = self
            .joined
            .keys()
            .filter(|(i, _)| *i == ifindex)
            .copied()
            .collect();
        for k in gone {
            if let Some(held) = self.joined.remove(&k) {
                self.release(held);
            }
        }
    }

    /// One membership fewer: close a socket that holds none.
    fn release(&mut self, held: Held) {
        if let Held::Ip(i) = held {
            if let Some(slot) = self.sockets.get_mut(i) {
                if let Some((_, n)) = slot {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        *slot = None;
                    }
                }
            }
            while matches!(self.sockets.last(), Some(None)) {
                self.sockets.pop();
            }
        }
        if !self.joined.values().any(|h| *h == Held::Link) {
            self.link = None;
        }
    }
}

fn packet_mreq(ifindex: u32, group: Ipv4Addr) -> libc::packet_mreq {
    let mut m: libc::packet_mreq = zeroed();
    m.mr_ifindex = ifindex as i32;
    m.mr_type = libc::PACKET_MR_MULTICAST as u16;
    m.mr_alen = 6;
    m.mr_address[..6].copy_from_slice(&group_mac(group));
    m
}

pub(super) fn ip_mreqn(group: Ipv4Addr, ifindex: u32) -> libc::ip_mreqn {
    libc::ip_mreqn {
        imr_multiaddr: libc::in_addr {
            s_addr: u32::from(group).to_be(),
        },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: ifindex as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_maps_to_its_rfc_1112_mac() {
        assert_eq!(
            group_mac("239.129.2.3".parse().unwrap()),
            [0x01, 0x00, 0x5e, 0x01, 0x02, 0x03]
        );
        assert_eq!(
            group_mac("224.0.0.1".parse().unwrap()),
            [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]
        );
    }

    /// IP joins need no privilege, and loopback (ifindex 1) exists in every
    /// namespace, so this runs anywhere.
    #[test]
    fn ip_membership_sockets_are_closed_when_their_last_group_is_left() {
        let mut m = Memberships::with_mode(JoinMode::Ip);
        let groups: Vec<Ipv4Addr> = (0..45u32)
            .map(|i| Ipv4Addr::from(0xef63_0000 + i))
            .collect();
        for g in &groups {
            m.join(1, *g).expect("join on lo");
        }
        let peak = m.open_sockets();
        // 20 per socket by default; a host with a larger limit needs fewer.
        assert!(peak >= 1, "{peak}");
        for g in &groups[..40] {
            m.leave(1, *g).expect("leave");
        }
        assert!(m.open_sockets() <= 2, "{} of {peak}", m.open_sockets());
        // Rejoining reuses or reopens sockets; all of it goes again.
        for g in &groups[..10] {
            m.join(1, *g).expect("rejoin");
        }
        for g in &groups {
            m.leave(1, *g).expect("leave");
        }
        assert_eq!(m.open_sockets(), 0);
        assert_eq!(m.joined().count(), 0);
        m.join(1, groups[0]).expect("join");
        m.forget_interface(1);
        assert_eq!(
            m.open_sockets(),
            0,
            "a vanished interface frees its sockets"
        );
    }

    /// The MAC list of loopback as the kernel shows it (`ip maddr`'s
    /// source), for the link-mode test.
    fn lo_link_groups() -> String {
        std::fs::read_to_string("/proc/net/dev_mcast")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("lo"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Link mode needs CAP_NET_RAW for its packet socket; without it the
    /// test says so and passes.
    #[test]
    fn link_memberships_program_the_mac_list_and_share_one_socket() {
        if !super::super::interfaces::has_cap_net_raw() {
            eprintln!("skipped: needs CAP_NET_RAW");
            return;
        }
        // Two groups with one MAC: leaving one must keep the MAC.
        let a: Ipv4Addr = "239.118.1.2".parse().unwrap();
        let b: Ipv4Addr = "224.118.1.2".parse().unwrap();
        let mac = "01005e760102";
        let before = lo_link_groups();
        if before.contains(mac) {
            eprintln!("skipped: {mac} is already on lo's list");
            return;
        }
        let mut m = Memberships::new();
        m.join(1, a).expect("join a");
        m.join(1, b).expect("join b");
        assert_eq!(m.open_sockets(), 1);
        assert!(lo_link_groups().contains(mac), "{}", lo_link_groups());
        m.leave(1, a).expect("leave a");
        assert!(lo_link_groups().contains(mac), "b still wants it");
        m.leave(1, b).expect("leave b");
        assert!(!lo_link_groups().contains(mac), "{}", lo_link_groups());
        assert_eq!(m.open_sockets(), 0);
        m.join(1, a).expect("join again");
        m.forget_interface(1);
        assert_eq!(m.open_sockets(), 0, "a vanished interface frees it");
    }
}
