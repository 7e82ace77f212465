//! The instance's side of the downstream Join/Prune machines: which
//! Join/Prunes are acted on, the Expiry and Prune-Pending timers, the
//! PruneEcho (RFC 7761 §4.5.1, §4.5.2), and the `pim routes` snapshot.
//! The transitions themselves are in `state::downstream`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::{millis, DownstreamSnapshot, LeaveReason, PimEvent, PimInstance, TimerKey};
use crate::pim::codec::{
    self, EncodedGroup, EncodedSource, JoinPrune, JoinPruneGroup, Message, ALL_PIM_ROUTERS,
};
use crate::pim::state::downstream::{Change, TreeKey};
use crate::pim::state::lan_delay;
use crate::proto::Transmit;

impl PimInstance {
    /// The downstream (*,G)/(S,G) entries of every interface.
    pub fn downstream(&self, now: Instant) -> Vec<DownstreamSnapshot> {
        let mut out = Vec::new();
        for (&ifindex, i) in &self.ifaces {
            for (key, e) in i.downstream.iter() {
                out.push(DownstreamSnapshot {
                    interface: i.name.clone(),
                    ifindex,
                    source: key.source,
                    group: key.group,
                    rp: e.rp,
                    state: e.state,
                    expires_in_ms: millis(e.expires.saturating_duration_since(now)),
                    prune_pending_in_ms: e
                        .prune_pending
                        .map(|p| millis(p.saturating_duration_since(now))),
                });
            }
        }
        out
    }

    /// §4.5: act on the Joins and Prunes of a message that names us as
    /// upstream neighbor, through the downstream machines of §4.5.1/§4.5.2.
    pub(super) fn on_join_prune(
        &mut self,
        now: Instant,
        ifindex: u32,
        src: Ipv4Addr,
        jp: &JoinPrune,
    ) {
        let Some(ifc) = self.ifaces.get_mut(&ifindex) else {
            return;
        };
        // §4.5: a Join/Prune from an address that sent no Hello SHOULD be
        // discarded; its LAN Prune Delay is unknown, too.
        if ifc.neighbors.get(src).is_none() {
            ifc.counters.join_prune_from_non_neighbor += 1;
            return;
        }
        if jp.upstream_neighbor != ifc.addr {
            ifc.counters.join_prune_not_for_us += 1;
            return;
        }
        // J/P_Override_Interval(I) when others could override a Prune,
        // zero when the pruning router is our only neighbor (§4.5.1).
        let d = lan_delay(
            &ifc.neighbors,
            ifc.cfg.propagation_delay,
            ifc.cfg.override_interval,
            false,
        );
        let override_interval = if ifc.neighbors.len() > 1 {
            d.override_interval + d.propagation_delay
        } else {
            Duration::ZERO
        };
        let mut changes = Vec::new();
        for g in &jp.groups {
            let group_ok = g.group.mask_len == 32 && g.group.addr.is_multicast();
            for (is_join, entry) in g
                .joins
                .iter()
                .map(|e| (true, e))
                .chain(g.prunes.iter().map(|e| (false, e)))
            {
                let Some((key, rp)) = classify(group_ok, g.group.addr, entry) else {
                    ifc.counters.join_prune_entries_ignored += 1;
                    continue;
                };
                // §4.5.1: a Join(*,G) toward an RP other than RP(G) is
                // dropped; without a mapping for G the sender's RP is taken.
                if let (true, Some(named)) = (is_join, rp) {
                    if let Some(m) = self.config.rp_for(key.group) {
                        if m.rp != named {
                            ifc.counters.join_wrong_rp += 1;
                            continue;
                        }
                    }
                }
                let expiry = TimerKey::Expiry(ifindex, key);
                let pending = TimerKey::PrunePending(ifindex, key);
                let change = if is_join {
                    let change = ifc.downstream.join(now, key, jp.holdtime, rp);
                    self.timers.cancel(&pending);
                    change
                } else {
                    ifc.downstream
                        .prune(now, key, jp.holdtime, override_interval)
                };
                match ifc.downstream.get(&key) {
                    Some(e) => {
                        self.timers.set(expiry, e.expires);
                        if let Some(at) = e.prune_pending {
                            self.timers.set(pending, at);
                        }
                    }
                    None => {
                        self.timers.cancel(&expiry);
                        self.timers.cancel(&pending);
                    }
                }
                if let Some(c) = change {
                    changes.push((key, c));
                }
            }
        }
        for (key, change) in changes {
            match change {
                Change::Joined => self.events.push_back(PimEvent::DownstreamJoin {
                    ifindex,
                    interface: self.ifaces[&ifindex].name.clone(),
                    source: key.source,
                    group: key.group,
                }),
                Change::Left | Change::LeftWithEcho { .. } => {
                    self.leave(ifindex, key, LeaveReason::Pruned)
                }
            }
        }
    }

    pub(super) fn prune_pending_expired(&mut self, now: Instant, ifindex: u32, key: TreeKey) {
        let Some(ifc) = self.ifaces.get_mut(&ifindex) else {
            return;
        };
        let rp = ifc.downstream.get(&key).and_then(|e| e.rp);
        let others = ifc.neighbors.len() > 1;
        let Some(change) = ifc.downstream.prune_pending_expired(now, key, others) else {
            return;
        };
        self.timers.cancel(&TimerKey::Expiry(ifindex, key));
        if let Change::LeftWithEcho { holdtime } = change {
            // §4.5.1: the PruneEcho is a Prune with ourselves as upstream
            // neighbor, so a downstream router whose Join was lost can
            // still override it.
            let entry = match key.source {
                Some(s) => EncodedSource::s_g(s),
                None => EncodedSource::star_g(rp.unwrap_or(Ipv4Addr::UNSPECIFIED)),
            };
            let echo = JoinPrune {
                upstream_neighbor: ifc.addr,
                holdtime,
                groups: vec![JoinPruneGroup {
                    group: EncodedGroup::host(key.group),
                    joins: Vec::new(),
                    prunes: vec![entry],
                }],
            };
            ifc.counters.prune_echo_tx += 1;
            self.transmits.push_back(Transmit {
                ifindex,
                src: Some(ifc.addr),
                dst: ALL_PIM_ROUTERS,
                ttl: 1,
                router_alert: false,
                payload: codec::encode(&Message::JoinPrune(echo)),
            });
        }
        self.leave(ifindex, key, LeaveReason::Pruned);
    }

    pub(super) fn leave(&mut self, ifindex: u32, key: TreeKey, reason: LeaveReason) {
        let Some(ifc) = self.ifaces.get(&ifindex) else {
            return;
        };
        self.events.push_back(PimEvent::DownstreamLeave {
            ifindex,
            interface: ifc.name.clone(),
            source: key.source,
            group: key.group,
            reason,
        });
    }
}

/// Which machine a Join/Prune entry drives (§4.9.5.1): WC+RPT is (*,G)
/// with the RP as address, neither bit is (S,G). (S,G,rpt) and anything
/// malformed (group ranges, non-unicast sources) is left alone.
fn classify(
    group_ok: bool,
    group: Ipv4Addr,
    e: &EncodedSource,
) -> Option<(TreeKey, Option<Ipv4Addr>)> {
    let unicast = !(e.addr.is_multicast() || e.addr.is_unspecified() || e.addr.is_broadcast());
    if !group_ok || e.mask_len != 32 || !unicast {
        return None;
    }
    match (e.wildcard, e.rpt) {
        (true, true) => Some((TreeKey::star_g(group), Some(e.addr))),
        (false, false) => Some((TreeKey::s_g(e.addr, group), None)),
        _ => None,
    }
}
