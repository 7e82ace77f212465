//! The instance's side of the downstream Join/Prune machines: which
//! Join/Prunes are acted on, the Expiry and Prune-Pending timers, the
//! PruneEcho (RFC 7761 §4.5.1, §4.5.2), and the `pim routes` snapshot.
//! The transitions themselves are in `state::downstream`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::tib::is_ssm;
use super::{millis, DownstreamSnapshot, LeaveReason, PimEvent, PimInstance, TimerKey};
use crate::pim::codec::{
    self, EncodedGroup, EncodedSource, JoinPrune, JoinPruneGroup, Message, ALL_PIM_ROUTERS,
};
use crate::pim::state::downstream::{Change, TreeKey};
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
        // A neighbor may name any address from our Hello's Address List.
        let for_us = self.is_iface_address(ifindex, jp.upstream_neighbor);
        let Some(ifc) = self.ifaces.get_mut(&ifindex) else {
            return;
        };
        // §4.5: a Join/Prune from an address that sent no Hello SHOULD be
        // discarded; its LAN Prune Delay is unknown, too.
        if ifc.neighbors.get(src).is_none() {
            ifc.counters.join_prune_from_non_neighbor += 1;
            return;
        }
        if !for_us {
            ifc.counters.join_prune_not_for_us += 1;
            self.overheard_join_prune(now, ifindex, jp);
            return;
        }
        // J/P_Override_Interval(I) when others could override a Prune,
        // zero when the pruning router is our only neighbor (§4.5.1).
        let d = ifc.lan_delay();
        let override_interval = if ifc.neighbors.len() > 1 {
            d.override_interval + d.propagation_delay
        } else {
            Duration::ZERO
        };
        let mut changes = Vec::new();
        let mut touched = Vec::new();
        for g in &jp.groups {
            let group_ok = g.group.mask_len == 32 && g.group.addr.is_multicast();
            if group_ok {
                self.rpt_entries(now, ifindex, jp.holdtime, override_interval, g);
            }
            let Some(ifc) = self.ifaces.get_mut(&ifindex) else {
                return;
            };
            for (is_join, entry) in g
                .joins
                .iter()
                .map(|e| (true, e))
                .chain(g.prunes.iter().map(|e| (false, e)))
            {
                if entry.rpt && !entry.wildcard {
                    // (S,G,rpt): handled by `rpt_entries` above.
                    continue;
                }
                let Some((key, rp)) = classify(group_ok, g.group.addr, entry) else {
                    ifc.counters.join_prune_entries_ignored += 1;
                    continue;
                };
                // §4.8.1: no (*,G) state in the SSM range.
                if key.source.is_none() && is_ssm(key.group) {
                    ifc.counters.join_prune_entries_ignored += 1;
                    continue;
                }
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
                touched.push(key);
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
        for key in touched {
            self.touch(key);
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

    /// §4.5.3: the (S,G,rpt) entries of one group of a message for us. A
    /// Join(*,G) in the group ends every (S,G,rpt) prune the group does
    /// not repeat (the RFC's PruneTmp pass).
    fn rpt_entries(
        &mut self,
        now: Instant,
        ifindex: u32,
        holdtime: u16,
        override_interval: Duration,
        g: &JoinPruneGroup,
    ) {
        let group = g.group.addr;
        let is_rpt = |e: &&EncodedSource| e.rpt && !e.wildcard && e.mask_len == 32;
        let pruned: Vec<Ipv4Addr> = g.prunes.iter().filter(is_rpt).map(|e| e.addr).collect();
        let star_join = g.joins.iter().any(|e| e.wildcard && e.rpt);
        let joined: Vec<Ipv4Addr> = g.joins.iter().filter(is_rpt).map(|e| e.addr).collect();
        if pruned.is_empty() && joined.is_empty() && !star_join {
            return;
        }
        if let Some(c) = self.ifaces.get_mut(&ifindex).map(|i| &mut i.counters) {
            c.rpt_prune_rx += pruned.len() as u64;
        }
        self.touch_group(group);
        for &s in pruned.iter().chain(&joined) {
            self.touch(TreeKey::s_g(s, group));
        }
        let r = self.tib.rpt_down.entry(ifindex).or_default();
        if star_join {
            r.refresh_with_star_join(group, &pruned);
        }
        for s in joined {
            r.join((s, group));
        }
        for s in pruned {
            let key = (s, group);
            r.prune(now, key, holdtime, override_interval);
            if let Some(e) = r.get(&key) {
                self.timers
                    .set(TimerKey::RptExpiry(ifindex, key), e.expires);
                if let Some(at) = e.prune_pending {
                    self.timers.set(TimerKey::RptPrunePending(ifindex, key), at);
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
