//! The instance's side of the upstream machines: building and sending
//! Join/Prunes toward RPF', the Join Timer, what other routers' Join/Prunes
//! on the RPF interface do to ours (join suppression and prune override),
//! a restarted RPF' neighbor, data arrival with the Keepalive Timer, the
//! last-hop switch to the shortest-path tree and Update_SPTbit, and the
//! `pim routes` snapshot.
//!
//! RFC 7761 §4.5.4–§4.5.7 (sending side, §4.5.5's t_suppressed and
//! t_override), §4.2.1 (CheckSwitchToSpt), §4.2.2 (Update_SPTbit),
//! §4.1.3 (Keepalive Timer, Keepalive_Period 210 s). The transitions are
//! in `state::upstream`; which entries are desired is `tib`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::tib::{is_ssm, PimRouteChange};
use super::{millis, DownstreamSnapshot, PimInstance, TimerKey};
use crate::pim::codec::{
    self, EncodedGroup, EncodedSource, JoinPrune, JoinPruneGroup, Message, ALL_PIM_ROUTERS,
};
use crate::pim::config::{GroupPrefix, SptSwitchover};
use crate::pim::state::downstream::TreeKey;
use crate::pim::state::rpt::SgKey;
use crate::pim::state::upstream::{Rpf, UpAction};
use crate::proto::Transmit;

/// Keepalive_Period of §4.11.
pub const KEEPALIVE_PERIOD: Duration = Duration::from_secs(210);

/// One upstream entry (`mcrctl pim routes`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamSnapshot {
    pub source: Option<Ipv4Addr>,
    pub group: Ipv4Addr,
    pub rp: Option<Ipv4Addr>,
    /// Joined toward an upstream neighbor.
    pub joined: bool,
    pub upstream_interface: Option<String>,
    pub upstream_ifindex: Option<u32>,
    pub rpf_neighbor: Option<Ipv4Addr>,
    pub join_timer_in_ms: Option<u64>,
    pub spt_bit: bool,
    pub keepalive_in_ms: Option<u64>,
    /// Sources pruned off this group's RP tree (for (*,G) rows).
    pub rpt_pruned: Vec<Ipv4Addr>,
    /// Interfaces the installed route sends to.
    pub outgoing: Vec<String>,
    /// Downstream routers' Join state for this tree, per interface.
    #[serde(default)]
    pub downstream: Vec<DownstreamSnapshot>,
    /// Interfaces where a downstream router pruned this (S,G) off the RP
    /// tree (prunes(S,G,rpt)); empty for (*,G).
    #[serde(default)]
    pub rpt_pruned_on: Vec<String>,
}

/// One static RP mapping (`mcrctl pim rp`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpSnapshot {
    pub group: GroupPrefix,
    pub rp: Ipv4Addr,
    /// Where the mapping comes from (`static`; BSR later).
    pub origin: String,
    /// The RP is one of our addresses.
    pub i_am_rp: bool,
    /// The 232/8 SSM range never uses an RP, whatever is configured.
    pub ssm: bool,
    /// (*,G) entries this mapping is the longest match for.
    pub groups_joined: usize,
}

impl PimInstance {
    /// The static RP table, longest prefix first (the order lookups use).
    pub fn rp_table(&self) -> Vec<RpSnapshot> {
        let mut v: Vec<RpSnapshot> = self
            .config
            .static_rp
            .iter()
            .map(|m| RpSnapshot {
                group: m.group,
                rp: m.rp,
                origin: "static".into(),
                i_am_rp: self.is_my_address(m.rp),
                ssm: is_ssm(m.group.addr) && m.group.len >= 8,
                groups_joined: self
                    .tib
                    .up
                    .keys()
                    .filter(|k| k.source.is_none() && self.config.rp_for(k.group) == Some(m))
                    .count(),
            })
            .collect();
        v.sort_by(|a, b| {
            b.group
                .len
                .cmp(&a.group.len)
                .then(a.group.addr.cmp(&b.group.addr))
        });
        v
    }

    /// Every route the core has installed, as `Add` changes: what a
    /// restarted RIB must be told again.
    pub fn route_table(&self) -> Vec<PimRouteChange> {
        self.tib
            .routes
            .iter()
            .map(|(k, (up, down))| PimRouteChange::Add {
                source: k.source,
                group: k.group,
                upstream: *up,
                downstream: down.clone(),
            })
            .collect()
    }

    fn name_of(&self, ifindex: u32) -> String {
        self.links
            .get(&ifindex)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| format!("if{ifindex}"))
    }

    /// Every tree with upstream or downstream state (including (S,G,rpt)
    /// prunes) or an installed route.
    pub fn routes(&self, now: Instant) -> Vec<UpstreamSnapshot> {
        let downstream = self.downstream(now);
        let mut keys: Vec<TreeKey> = self.tib.up.keys().copied().collect();
        keys.extend(self.tib.routes.keys().copied());
        keys.extend(downstream.iter().map(|d| TreeKey {
            source: d.source,
            group: d.group,
        }));
        for r in self.tib.rpt_down.values() {
            keys.extend(r.iter().map(|((s, g), _)| TreeKey::s_g(*s, *g)));
        }
        for x in self.tib.local_exclude.values() {
            keys.extend(x.iter().map(|(s, g)| TreeKey::s_g(*s, *g)));
        }
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .map(|k| {
                let up = self.tib.up.get(&k).copied().unwrap_or_default();
                let route = self.tib.routes.get(&k);
                let iif = up.rpf().map(|r| r.ifindex).or(route.map(|r| r.0));
                UpstreamSnapshot {
                    source: k.source,
                    group: k.group,
                    rp: self.rp(k.group),
                    joined: up.is_joined(),
                    upstream_interface: iif.map(|i| self.name_of(i)),
                    upstream_ifindex: iif,
                    rpf_neighbor: up.rpf().map(|r| r.neighbor),
                    join_timer_in_ms: up
                        .join_timer()
                        .map(|t| millis(t.saturating_duration_since(now))),
                    spt_bit: up.spt_bit,
                    keepalive_in_ms: self
                        .tib
                        .kat
                        .get(&k)
                        .map(|t| millis(t.saturating_duration_since(now))),
                    rpt_pruned: match k.source {
                        Some(_) => Vec::new(),
                        None => self
                            .tib
                            .rpt_pruned
                            .iter()
                            .filter(|(_, g)| *g == k.group)
                            .map(|(s, _)| *s)
                            .collect(),
                    },
                    outgoing: route
                        .map(|r| r.1.iter().map(|&i| self.name_of(i)).collect())
                        .unwrap_or_default(),
                    downstream: downstream
                        .iter()
                        .filter(|d| d.source == k.source && d.group == k.group)
                        .cloned()
                        .collect(),
                    rpt_pruned_on: match k.source {
                        None => Vec::new(),
                        Some(s) => self
                            .rpt_left_out(s, k.group)
                            .into_iter()
                            .map(|i| self.name_of(i))
                            .collect(),
                    },
                }
            })
            .collect()
    }

    fn jp_holdtime(&self) -> u16 {
        // §4.11: J/P_HoldTime = 3.5 × t_periodic.
        let secs = self.config.join_prune_interval.mul_f64(3.5).as_secs();
        secs.min(u64::from(codec::HOLDTIME_INFINITE - 1)) as u16
    }

    fn send_jp(
        &mut self,
        to: Rpf,
        group: Ipv4Addr,
        joins: Vec<EncodedSource>,
        prunes: Vec<EncodedSource>,
    ) {
        let holdtime = self.jp_holdtime();
        let Some(ifc) = self.ifaces.get_mut(&to.ifindex) else {
            return;
        };
        let msg = JoinPrune {
            upstream_neighbor: to.neighbor,
            holdtime,
            groups: vec![JoinPruneGroup {
                group: EncodedGroup::host(group),
                joins,
                prunes,
            }],
        };
        ifc.counters.join_prune_tx += 1;
        self.transmits.push_back(Transmit {
            ifindex: to.ifindex,
            src: Some(ifc.addr),
            dst: ALL_PIM_ROUTERS,
            ttl: 1,
            router_alert: false,
            payload: codec::encode(&Message::JoinPrune(msg)),
        });
    }

    fn entry_of(&self, key: TreeKey) -> Option<EncodedSource> {
        match key.source {
            Some(s) => Some(EncodedSource::s_g(s)),
            None => self.rp(key.group).map(EncodedSource::star_g),
        }
    }

    /// A (*,G) Prune names the RP the Joins named.
    fn prune_entry_of(&self, key: TreeKey) -> Option<EncodedSource> {
        match (key.source, self.tib.star_rp.get(&key.group)) {
            (None, Some(&rp)) => Some(EncodedSource::star_g(rp)),
            _ => self.entry_of(key),
        }
    }

    /// Send what an upstream machine asked for. A (*,G) Join carries the
    /// Prune(S,G,rpt) of every source we keep off the RP tree (§4.5.7:
    /// they are refreshed with the (*,G) Join, never alone).
    pub(super) fn send_upstream(&mut self, key: TreeKey, action: UpAction) {
        match action {
            UpAction::Join(to) => {
                let Some(entry) = self.entry_of(key) else {
                    return;
                };
                if key.source.is_none() {
                    self.tib.star_rp.insert(key.group, entry.addr);
                }
                let prunes = match key.source {
                    Some(_) => Vec::new(),
                    None => self
                        .tib
                        .rpt_pruned
                        .iter()
                        .filter(|(_, g)| *g == key.group)
                        .map(|(s, _)| rpt_entry(*s))
                        .collect(),
                };
                self.send_jp(to, key.group, vec![entry], prunes);
            }
            UpAction::Prune(to) => {
                let Some(entry) = self.prune_entry_of(key) else {
                    return;
                };
                if key.source.is_none() {
                    self.tib.star_rp.remove(&key.group);
                }
                self.send_jp(to, key.group, Vec::new(), vec![entry]);
            }
        }
    }

    pub(super) fn send_rpt(&mut self, s: Ipv4Addr, g: Ipv4Addr, to: Rpf, join: bool) {
        if join {
            self.send_jp(to, g, vec![rpt_entry(s)], Vec::new());
        } else {
            self.send_jp(to, g, Vec::new(), vec![rpt_entry(s)]);
        }
    }

    pub(super) fn join_timer_expired(&mut self, now: Instant, key: TreeKey) {
        let period = self.config.join_prune_interval;
        let Some(up) = self.tib.up.get_mut(&key) else {
            return;
        };
        let action = up.join_timer_expired(now, period);
        if let Some(at) = up.join_timer() {
            self.timers.set(TimerKey::JoinTimer(key), at);
        }
        if let Some(a) = action {
            self.send_upstream(key, a);
        }
    }

    pub(super) fn t_override(&mut self, ifindex: u32) -> Duration {
        let Some(ifc) = self.ifaces.get(&ifindex) else {
            return Duration::ZERO;
        };
        let d = ifc.lan_delay();
        self.rng.jitter(d.override_interval)
    }

    fn t_suppressed(&mut self, ifindex: u32) -> Duration {
        let Some(ifc) = self.ifaces.get(&ifindex) else {
            return Duration::ZERO;
        };
        let d = ifc.lan_delay();
        if !d.suppression_enabled {
            return Duration::ZERO;
        }
        let p = self.config.join_prune_interval;
        p.mul_f64(1.1) + self.rng.jitter(p.mul_f64(0.3))
    }

    /// A Join/Prune for another upstream router, overheard on `ifindex`
    /// (§4.5.5, §4.5.4): a Join to our RPF' suppresses ours, a Prune to
    /// it makes us override soon.
    pub(super) fn overheard_join_prune(&mut self, now: Instant, ifindex: u32, jp: &JoinPrune) {
        let Some(ifc) = self.ifaces.get(&ifindex) else {
            return;
        };
        let Some(n) = ifc.neighbors.knows(jp.upstream_neighbor) else {
            return;
        };
        let to = Rpf {
            ifindex,
            neighbor: n.addr,
        };
        for g in &jp.groups {
            if g.group.mask_len != 32 || !g.group.addr.is_multicast() {
                continue;
            }
            let group = g.group.addr;
            // Join Timers move; the group's trees are looked at again.
            self.touch_group(group);
            for e in &g.joins {
                let key = match (e.wildcard, e.rpt) {
                    (true, true) => TreeKey::star_g(group),
                    (false, false) => TreeKey::s_g(e.addr, group),
                    (false, true) => {
                        // Someone else already overrode the (S,G,rpt) Prune.
                        if self.star_rpf(group) == Some(to) {
                            self.timers.cancel(&TimerKey::RptOverride((e.addr, group)));
                        }
                        continue;
                    }
                    _ => continue,
                };
                let sup = self.t_suppressed(ifindex);
                let t = sup.min(Duration::from_secs(u64::from(jp.holdtime)));
                if let Some(up) = self.tib.up.get_mut(&key) {
                    up.see_join(now, to, t);
                    self.rearm(key);
                }
            }
            for e in &g.prunes {
                // A Prune(*,G) or Prune(S,G,rpt) also threatens (S,G)
                // traffic through the same neighbor (§4.5.5).
                let keys = match (e.wildcard, e.rpt) {
                    (true, true) => vec![TreeKey::star_g(group)],
                    (false, false) => vec![TreeKey::s_g(e.addr, group)],
                    (false, true) => vec![TreeKey::s_g(e.addr, group)],
                    _ => continue,
                };
                for key in keys {
                    let t = self.t_override(ifindex);
                    if let Some(up) = self.tib.up.get_mut(&key) {
                        up.hurry(now, to, t);
                        self.rearm(key);
                    }
                }
                if !e.wildcard && e.rpt {
                    self.see_rpt_prune(now, ifindex, to, (e.addr, group));
                }
            }
        }
    }

    fn star_rpf(&self, group: Ipv4Addr) -> Option<Rpf> {
        self.tib
            .up
            .get(&TreeKey::star_g(group))
            .and_then(|u| u.rpf())
    }

    /// §4.5.7, NotPruned(S,G,rpt): another router pruned S off the RP
    /// tree at our RPF'(*,G) while we still want S from it; override with
    /// a Join(S,G,rpt) within t_override, unless someone else does first.
    fn see_rpt_prune(&mut self, now: Instant, ifindex: u32, to: Rpf, key: SgKey) {
        let (s, g) = key;
        let wanted = self.star_rpf(g) == Some(to)
            && !self.tib.rpt_pruned.contains(&key)
            && !self.rpt_olist(s, g).is_empty();
        if wanted {
            let at = now + self.t_override(ifindex);
            self.timers.set_min(TimerKey::RptOverride(key), at);
        }
    }

    pub(super) fn rpt_override_expired(&mut self, key: SgKey) {
        let (s, g) = key;
        let Some(to) = self.star_rpf(g) else { return };
        if !self.tib.rpt_pruned.contains(&key) && !self.rpt_olist(s, g).is_empty() {
            self.send_rpt(s, g, to, true);
        }
    }

    fn rearm(&mut self, key: TreeKey) {
        if let Some(at) = self.tib.up.get(&key).and_then(|u| u.join_timer()) {
            self.timers.set(TimerKey::JoinTimer(key), at);
        }
    }

    /// RPF'(X) restarted (new GenID): it lost our Joins; resend within
    /// t_override (§4.5.4 "RPF' GenID changes").
    pub(super) fn rpf_neighbor_restarted(
        &mut self,
        now: Instant,
        ifindex: u32,
        neighbor: Ipv4Addr,
    ) {
        let to = Rpf { ifindex, neighbor };
        let keys: Vec<TreeKey> = self
            .tib
            .up
            .iter()
            .filter(|(_, u)| u.rpf() == Some(to))
            .map(|(k, _)| *k)
            .collect();
        if !keys.is_empty() {
            // It ignores Join/Prunes from routers it has no Hello from, so
            // ours must not overtake the triggered Hello.
            self.send_hello(now, ifindex);
        }
        for key in keys {
            self.touch(key);
            let t = self.t_override(ifindex);
            if let Some(up) = self.tib.up.get_mut(&key) {
                up.hurry(now, to, t);
            }
            self.rearm(key);
        }
    }

    /// Data of (S,G) arrived on `ifindex` (the shell's upcall for a
    /// packet no route covers, or its per-flow counter moving).
    pub(super) fn on_data(&mut self, now: Instant, ifindex: u32, s: Ipv4Addr, g: Ipv4Addr) {
        let key = TreeKey::s_g(s, g);
        self.touch(key);
        let star = TreeKey::star_g(g);
        let rpf_if_s = self.tib.route(s).map(|r| r.ifindex);
        // §4.2.1 CheckSwitchToSpt: a last-hop router with local receivers
        // moves to the source tree when its policy says so.
        let last_hop =
            !self.immediate_olist(&star).is_empty() || !self.immediate_olist(&key).is_empty();
        let switch = last_hop && self.config.spt_switchover == SptSwitchover::Immediate;
        let on_spt =
            self.tib.up.get(&key).is_some_and(|u| u.is_joined()) && rpf_if_s == Some(ifindex);
        if switch || on_spt || self.tib.kat.contains_key(&key) {
            self.set_keepalive(now, key, KEEPALIVE_PERIOD);
        }
        // The (S,G) Join may need RPF(S) first; reconcile asks for it.
        self.reconcile(now);
        self.update_spt_bit(ifindex, s, g);
    }

    /// §4.2.2 Update_SPTbit(S,G,iif).
    fn update_spt_bit(&mut self, iif: u32, s: Ipv4Addr, g: Ipv4Addr) {
        let key = TreeKey::s_g(s, g);
        let route_s = self.tib.route(s);
        let Some(route_s) = route_s else { return };
        // JoinDesired, not the upstream Joined state: a first-hop router
        // has nobody to join toward a directly connected source, yet it
        // is on the source tree and must be able to assert (CouldAssert
        // needs the SPT bit).
        if route_s.ifindex != iif || !self.join_desired(&key) {
            return;
        }
        let rp_if = self
            .rp(g)
            .and_then(|rp| self.tib.route(rp))
            .map(|r| r.ifindex);
        let sg_rpf = self.tib.up.get(&key).and_then(|u| u.rpf());
        let star_rpf = self.tib.up.get(&TreeKey::star_g(g)).and_then(|u| u.rpf());
        let set = route_s.next_hop.is_none()
            || rp_if != Some(route_s.ifindex)
            || self.rpt_olist(s, g).is_empty()
            || (sg_rpf.is_some() && sg_rpf == star_rpf);
        if set {
            self.touch(key);
            self.tib.up.entry(key).or_default().spt_bit = true;
        }
    }

    /// The Keepalive Timer of (S,G) ran out: the flow stopped, the source
    /// tree is left (§4.1.3; SPTbit goes with the entry).
    pub(super) fn keepalive_expired(&mut self, now: Instant, key: TreeKey) {
        match self.tib.kat.get(&key) {
            Some(&at) if at <= now => {
                self.touch(key);
                self.tib.kat.remove(&key);
                if let Some(up) = self.tib.up.get_mut(&key) {
                    up.spt_bit = false;
                }
                self.register_keepalive_expired(key);
            }
            _ => {}
        }
    }
}

/// The Join/Prune entry of (S,G,rpt): S with only the RPT bit.
fn rpt_entry(s: Ipv4Addr) -> EncodedSource {
    EncodedSource {
        rpt: true,
        ..EncodedSource::s_g(s)
    }
}
