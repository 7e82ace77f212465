//! The IGMP router as a sans-I/O [`Protocol`]: it owns one
//! [`Interface`] state machine per configured interface, decodes and
//! validates what arrives (RFC 3376 §4, §9.1: checksum, a multicast group
//! in every report; malformed input is counted, never a panic, and the
//! last drop's reason is kept for the shell's rate-limited log), turns the
//! state machines' actions into [`Transmit`]s (TTL 1, Router Alert, from
//! the interface address: RFC 2236 §2, RFC 3376 §4) and applies a new
//! configuration as a diff (an interface that stays keeps its groups).

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::Ipv4Addr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::codec::{decode, encode, DecodeError, Message, Version};
use super::config::RouterConfig;
use super::state::{Action, GroupSnapshot, IgmpEvent, Interface, QuerierSnapshot};
use crate::proto::{Protocol, Transmit};

/// A row of `igmp groups`: a group on an interface.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupRow {
    pub interface: String,
    pub ifindex: u32,
    #[serde(flatten)]
    pub group: GroupSnapshot,
}

/// What MCR is on an interface of `igmp interfaces`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A querier from `igmp.querier_interfaces`.
    #[default]
    Querier,
    /// A querier whose members the proxy reports upstream (RFC 4605).
    ProxyDownstream,
    /// The proxy's host side: reports, never queries.
    ProxyUpstream,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Querier => "querier",
            Role::ProxyDownstream => "proxy-downstream",
            Role::ProxyUpstream => "proxy-upstream",
        }
    }
}

/// A row of `igmp interfaces`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InterfaceRow {
    pub interface: String,
    pub ifindex: u32,
    /// Absent from daemons that predate the proxy: a querier.
    #[serde(default)]
    pub role: Role,
    #[serde(flatten)]
    pub querier: QuerierSnapshot,
}

/// What `mcrctl igmp groups` / `igmp interfaces` show.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub groups: Vec<GroupRow>,
    pub interfaces: Vec<InterfaceRow>,
}

/// Why a packet was dropped (RFC 3376 §4, §9.1). The counters count
/// every drop; this says what the last one was, for a log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dropped {
    Decode(DecodeError),
    /// A report or query naming a group that is not multicast (or a
    /// report for 224.0.0.1).
    NotMulticast(Ipv4Addr),
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dropped::Decode(e) => e.fmt(f),
            Dropped::NotMulticast(g) => write!(f, "IGMP message for {g}, not a reportable group"),
        }
    }
}

impl Dropped {
    /// The `mcr_igmp_errors_total` kind it is counted under.
    pub fn kind(&self) -> &'static str {
        match self {
            Dropped::Decode(DecodeError::Checksum) => "checksum",
            _ => "malformed",
        }
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct IgmpRouter {
    ifaces: BTreeMap<u32, (String, Interface)>,
    tx: VecDeque<Transmit>,
    events: VecDeque<IgmpEvent>,
    /// The last packet dropped since `take_dropped`: interface, source,
    /// reason.
    dropped: Option<(u32, Ipv4Addr, Dropped)>,
}

impl IgmpRouter {
    pub fn new(now: Instant, config: RouterConfig) -> Self {
        let mut r = IgmpRouter {
            ifaces: BTreeMap::new(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            dropped: None,
        };
        r.handle_config(now, config);
        r
    }

    fn drain(&mut self, ifindex: u32) {
        let Some((_, i)) = self.ifaces.get_mut(&ifindex) else {
            return;
        };
        let src = i.address();
        while let Some(a) = i.poll_action() {
            match a {
                Action::Send(dst, m) => self.tx.push_back(Transmit {
                    ifindex,
                    src: Some(src),
                    dst,
                    ttl: 1,
                    router_alert: true,
                    payload: encode(&m),
                }),
                Action::Event(e) => self.events.push_back(e),
            }
        }
    }

    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let mut s = Snapshot::default();
        for (ifindex, (name, i)) in &self.ifaces {
            for g in i.groups(now) {
                s.groups.push(GroupRow {
                    interface: name.clone(),
                    ifindex: *ifindex,
                    group: g,
                });
            }
            s.interfaces.push(InterfaceRow {
                interface: name.clone(),
                ifindex: *ifindex,
                role: Role::Querier,
                querier: i.querier(now),
            });
        }
        s
    }

    pub fn interface(&self, ifindex: u32) -> Option<&Interface> {
        self.ifaces.get(&ifindex).map(|(_, i)| i)
    }

    /// The last packet dropped since the previous call: interface,
    /// source and why.
    pub fn take_dropped(&mut self) -> Option<(u32, Ipv4Addr, Dropped)> {
        self.dropped.take()
    }
}

/// A group that a report may name: multicast, and not 224.0.0.1, which
/// every host is in and none reports (RFC 2236 §6).
fn reportable(g: Ipv4Addr) -> bool {
    g.is_multicast() && g != super::codec::ALL_SYSTEMS
}

impl Protocol for IgmpRouter {
    type Config = RouterConfig;
    type Input = Infallible;
    type Output = IgmpEvent;

    fn handle_packet(
        &mut self,
        now: Instant,
        ifindex: u32,
        src: Ipv4Addr,
        _dst: Ipv4Addr,
        payload: &[u8],
    ) {
        let Some((_, i)) = self.ifaces.get_mut(&ifindex) else {
            return;
        };
        if src == i.address() {
            // Our own query looped back by the kernel.
            return;
        }
        let drop = match decode(payload) {
            Err(e) => Some(Dropped::Decode(e)),
            Ok(Message::Query(q)) => {
                if !q.group.is_unspecified() && !q.group.is_multicast() {
                    Some(Dropped::NotMulticast(q.group))
                } else {
                    i.on_query(now, src, &q);
                    None
                }
            }
            Ok(Message::V1Report(g) | Message::V2Report(g) | Message::V2Leave(g))
                if !reportable(g) =>
            {
                Some(Dropped::NotMulticast(g))
            }
            Ok(Message::V1Report(g)) => {
                i.on_old_report(now, src, Version::V1, g);
                None
            }
            Ok(Message::V2Report(g)) => {
                i.on_old_report(now, src, Version::V2, g);
                None
            }
            Ok(Message::V2Leave(g)) => {
                i.on_leave(now, src, g);
                None
            }
            Ok(Message::V3Report(recs)) => match recs.iter().find(|r| !reportable(r.group)) {
                Some(r) => Some(Dropped::NotMulticast(r.group)),
                None => {
                    i.on_v3_report(now, src, &recs);
                    None
                }
            },
        };
        if let Some(d) = drop {
            match d {
                Dropped::Decode(DecodeError::Checksum) => i.counters.checksum_errors += 1,
                _ => i.counters.malformed += 1,
            }
            self.dropped = Some((ifindex, src, d));
            return;
        }
        self.drain(ifindex);
    }

    fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<u32> = self
            .ifaces
            .iter()
            .filter(|(_, (_, i))| i.next_timeout().is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        for ifindex in due {
            if let Some((_, i)) = self.ifaces.get_mut(&ifindex) {
                i.handle_timeout(now);
            }
            self.drain(ifindex);
        }
    }

    fn handle_config(&mut self, now: Instant, config: RouterConfig) {
        // Interfaces that went away (or changed address, which changes the
        // election) lose their members; the others keep their state.
        let keep: BTreeMap<u32, Ipv4Addr> = config
            .interfaces
            .iter()
            .map(|c| (c.ifindex, c.address))
            .collect();
        let gone: Vec<u32> = self
            .ifaces
            .iter()
            .filter(|(k, (_, i))| keep.get(k) != Some(&i.address()))
            .map(|(k, _)| *k)
            .collect();
        for ifindex in gone {
            if let Some((_, i)) = self.ifaces.remove(&ifindex) {
                for (group, _, _) in i.members() {
                    self.events.push_back(IgmpEvent::Leave { ifindex, group });
                }
            }
        }
        for c in &config.interfaces {
            match self.ifaces.get_mut(&c.ifindex) {
                Some((name, i)) => {
                    name.clone_from(&c.name);
                    i.set_params(now, config.params.clone());
                }
                None => {
                    let i = Interface::new(now, c.ifindex, c.address, config.params.clone());
                    self.ifaces.insert(c.ifindex, (c.name.clone(), i));
                    self.drain(c.ifindex);
                }
            }
        }
    }

    fn handle_event(&mut self, _now: Instant, event: Infallible) {
        match event {}
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.tx.pop_front()
    }

    fn poll_event(&mut self) -> Option<IgmpEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.ifaces
            .values()
            .filter_map(|(_, i)| i.next_timeout())
            .min()
    }
}

#[cfg(test)]
mod tests;
