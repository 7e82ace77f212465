//! The instance's side of Assert (RFC 7761 §4.6): which machine a data
//! packet or an Assert drives, the facts each transition needs (from the
//! [`TreeView`](super::TreeView) and our interface address), the Assert
//! Timers, sending Asserts and AssertCancels to ALL-PIM-ROUTERS, and the
//! forwarding effects the shell and the olists need: lost_assert (§4.6.5
//! on), AssertWinner for RPF' (§4.6.5's "Join/Prune to the assert
//! winner"), and an event on every Winner/Loser change. Transitions are
//! in `state::assert`.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::register::ExtTimer;
use super::{millis, PimEvent, PimInstance};
use crate::pim::codec::{self, Assert, JoinPrune, Message, ALL_PIM_ROUTERS};
use crate::pim::state::assert::{
    assert_message, cancel_message, AssertAction, AssertEntry, AssertFacts, AssertKind,
    AssertMetric, AssertState, RECENT_DATA,
};
use crate::pim::state::downstream::TreeKey;
use crate::proto::Transmit;

/// Assert machines kept at most: sightings of data we could not assert
/// on (one per (S,G) and interface the shell reports) are dropped past
/// this, so a flood of flows on a LAN cannot grow the table.
const MAX_ASSERT_ENTRIES: usize = 4096;

/// One interface's assert state (`mcrctl pim routes`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertSnapshot {
    pub interface: String,
    pub ifindex: u32,
    /// `None` for (*,G).
    pub source: Option<Ipv4Addr>,
    pub group: Ipv4Addr,
    pub state: AssertState,
    pub winner: Option<AssertMetric>,
    /// my_assert_metric on this interface now (§4.6.2; infinite when we
    /// cannot assert).
    pub ours: AssertMetric,
    /// The Assert Timer: when a winner re-asserts, or when a loser
    /// forgets its winner.
    pub timer_in_ms: Option<u64>,
}

impl PimInstance {
    pub fn asserts(&self, now: Instant) -> Vec<AssertSnapshot> {
        self.ra
            .asserts
            .iter()
            .filter(|(_, e)| e.state() != AssertState::NoInfo)
            .filter_map(|((ifindex, key), e)| {
                Some(AssertSnapshot {
                    interface: self.ifaces.get(ifindex)?.name.clone(),
                    ifindex: *ifindex,
                    source: key.source,
                    group: key.group,
                    state: e.state(),
                    winner: e.winner(),
                    ours: self.assert_facts(*ifindex, key).my_metric,
                    timer_in_ms: e.timer().map(|t| millis(t.saturating_duration_since(now))),
                })
            })
            .collect()
    }

    /// AssertWinner(S,G,I) (`source` given) or AssertWinner(*,G,I): the
    /// router to send Joins to instead of the RPF neighbor when we lost
    /// on our RPF interface (§4.6.5), or ourselves when we won.
    pub fn assert_winner(
        &self,
        source: Option<Ipv4Addr>,
        group: Ipv4Addr,
        ifindex: u32,
    ) -> Option<Ipv4Addr> {
        let key = TreeKey { source, group };
        self.ra
            .asserts
            .get(&(ifindex, key))
            .and_then(|e| e.winner())
            .map(|w| w.addr)
    }

    /// lost_assert(S,G,I) or lost_assert(*,G,I) apart from its RPF term:
    /// another router won, so `ifindex` leaves the outgoing list.
    pub fn lost_assert(&self, source: Option<Ipv4Addr>, group: Ipv4Addr, ifindex: u32) -> bool {
        let key = TreeKey { source, group };
        self.ra
            .asserts
            .get(&(ifindex, key))
            .is_some_and(|e| e.state() == AssertState::Loser)
    }

    /// Re-run the CouldAssert/AssertTrackingDesired/metric transitions of
    /// every assert after the trees or routes changed (the TIB layer calls
    /// this; so does a test changing its view).
    pub fn reevaluate_asserts(&mut self) {
        self.reevaluate_asserts_of(None);
    }

    /// [`Self::reevaluate_asserts`] for the asserts of `groups` (all when
    /// `None`): the facts of the others did not change since their last
    /// re-evaluation, which is therefore where it left them.
    pub(super) fn reevaluate_asserts_of(&mut self, groups: Option<&BTreeSet<Ipv4Addr>>) {
        let keys: Vec<(u32, TreeKey)> = self
            .ra
            .asserts
            .keys()
            .filter(|(_, k)| groups.is_none_or(|g| g.contains(&k.group)))
            .copied()
            .collect();
        for (ifindex, key) in keys {
            let f = self.assert_facts(ifindex, &key);
            self.drive_assert(ifindex, key, |e| e.reevaluate(&f));
        }
    }

    /// The facts of one machine, from the view and our address on `ifindex`.
    fn assert_facts(&self, ifindex: u32, key: &TreeKey) -> AssertFacts {
        let addr = self
            .ifaces
            .get(&ifindex)
            .map_or(Ipv4Addr::UNSPECIFIED, |i| i.addr);
        let rp = self.config.rp_for(key.group).map(|m| m.rp);
        let spt = |s: Ipv4Addr| {
            let (preference, metric) = self.fact_route_metric(s);
            AssertMetric {
                rpt: false,
                preference,
                metric,
                addr,
            }
        };
        let rpt = || {
            rp.map(|rp| {
                let (preference, metric) = self.fact_route_metric(rp);
                AssertMetric {
                    rpt: true,
                    preference,
                    metric,
                    addr,
                }
            })
        };
        let could_sg = key
            .source
            .is_some_and(|s| self.fact_could_assert(Some(s), key.group, ifindex));
        let could_g = self.fact_could_assert(None, key.group, ifindex) && rp.is_some();
        // my_assert_metric(S,G,I) falls back to the (*,G) metric (§4.6.2).
        let my_metric = match key.source {
            Some(s) if could_sg => spt(s),
            _ if could_g => rpt().unwrap_or_else(AssertMetric::infinite),
            _ => AssertMetric::infinite(),
        };
        AssertFacts {
            could_assert: if key.source.is_some() {
                could_sg
            } else {
                could_g
            },
            tracking_desired: self.fact_assert_tracking_desired(key.source, key.group, ifindex),
            my_metric,
        }
    }

    /// Apply one transition to the machine of (`ifindex`, `key`), then
    /// send what it asks for, keep its timer and report a state change.
    fn drive_assert(
        &mut self,
        ifindex: u32,
        key: TreeKey,
        step: impl FnOnce(&mut AssertEntry) -> AssertAction,
    ) {
        let slot = (ifindex, key);
        let mut e = self.ra.asserts.get(&slot).copied().unwrap_or_default();
        let before = e;
        let action = step(&mut e);
        let msg_source = key.source.unwrap_or_else(|| {
            self.ra
                .assert_source
                .get(&(ifindex, key.group))
                .copied()
                .unwrap_or(Ipv4Addr::UNSPECIFIED)
        });
        match action {
            AssertAction::Nothing => {}
            AssertAction::SendAssert => {
                let metric = e.winner().unwrap_or_else(AssertMetric::infinite);
                self.ra.counters.assert_tx += 1;
                self.send_assert(ifindex, assert_message(msg_source, key.group, &metric));
            }
            AssertAction::SendCancel => {
                self.ra.counters.assert_cancel_tx += 1;
                self.send_assert(ifindex, cancel_message(msg_source, key.group));
            }
        }
        let timer = ExtTimer::Assert(ifindex, key);
        match e.timer() {
            Some(at) => self.ra.timers.set(timer, at),
            None => {
                self.ra.timers.cancel(&timer);
            }
        }
        // NoInfo is kept only to remember recent data (`recent_data`).
        if e.state() == AssertState::NoInfo && e.data_seen().is_none() {
            self.ra.asserts.remove(&slot);
            if key.source.is_none() {
                self.ra.assert_source.remove(&(ifindex, key.group));
            }
        } else {
            self.ra.asserts.insert(slot, e);
        }
        if before != e || action != AssertAction::Nothing {
            // The trees of the group read the outcome (lost_assert, RPF').
            self.touch_group(key.group);
        }
        let winner = |x: &AssertEntry| x.winner().map(|w| w.addr);
        if e.state() == AssertState::Loser && winner(&before) != winner(&e) {
            self.assert_lost_on_rpf_interface(ifindex, key);
        }
        if before.state() != e.state() || winner(&before) != winner(&e) {
            let Some(ifc) = self.ifaces.get(&ifindex) else {
                return;
            };
            self.events.push_back(PimEvent::AssertChanged {
                ifindex,
                interface: ifc.name.clone(),
                source: key.source,
                group: key.group,
                state: e.state(),
                winner: winner(&e),
            });
        }
    }

    /// §4.6.2 action A6: losing an (S,G) assert on RPF_interface(S) while
    /// joined to S means the winner forwards S's source-tree traffic to
    /// us, so SPTbit(S,G) is set (and the RP tree copy can be pruned).
    fn assert_lost_on_rpf_interface(&mut self, ifindex: u32, key: TreeKey) {
        let Some(s) = key.source else { return };
        if self.fact_rpf_interface(s) != Some(ifindex) {
            return;
        }
        if let Some(up) = self.tib.up.get_mut(&key) {
            if up.is_joined() {
                up.spt_bit = true;
            }
        }
    }

    fn send_assert(&mut self, ifindex: u32, a: Assert) {
        let Some(ifc) = self.ifaces.get(&ifindex) else {
            return;
        };
        self.transmits.push_back(Transmit {
            ifindex,
            src: Some(ifc.addr),
            dst: ALL_PIM_ROUTERS,
            ttl: 1,
            router_alert: false,
            payload: codec::encode(&Message::Assert(a)),
        });
    }

    /// Data for (S,G) arrived on `ifindex`, which is not its RPF interface:
    /// another router forwards onto a LAN we forward onto (§4.6.2/§4.6.3's
    /// "data arrives on I").
    pub(super) fn assert_data(
        &mut self,
        now: Instant,
        ifindex: u32,
        source: Ipv4Addr,
        group: Ipv4Addr,
    ) {
        let sg = TreeKey::s_g(source, group);
        let f = self.assert_facts(ifindex, &sg);
        if f.could_assert {
            self.drive_assert(ifindex, sg, |e| e.data_arrived(now, &f));
            return;
        }
        let g = TreeKey::star_g(group);
        let fg = self.assert_facts(ifindex, &g);
        if fg.could_assert {
            self.ra
                .assert_source
                .entry((ifindex, group))
                .or_insert(source);
            self.drive_assert(ifindex, g, |e| e.data_arrived(now, &fg));
            return;
        }
        // Neither: remember the sighting on the (S,G) machine, in case we
        // start forwarding S onto this interface in a moment.
        if self.ra.asserts.len() < MAX_ASSERT_ENTRIES {
            self.drive_assert(ifindex, sg, |e| e.data_arrived(now, &f));
        }
    }

    /// After the trees changed: a NoInfo machine that saw another router's
    /// data lately asserts if it now could (§4.6.2 A1 on data that keeps
    /// arriving); stale sightings are dropped.
    ///
    /// Only the sightings of `groups` (all when `None`) can assert now: the
    /// others could not at their last look and their facts did not change
    /// since. The stale ones of any group are dropped all the same.
    pub(super) fn assert_recent_data_of(
        &mut self,
        now: Instant,
        groups: Option<&BTreeSet<Ipv4Addr>>,
    ) {
        let stale = |t: Instant| now.saturating_duration_since(t) > RECENT_DATA;
        let keys: Vec<(u32, TreeKey)> = self
            .ra
            .asserts
            .iter()
            .filter(|(_, e)| e.data_seen().is_some())
            .filter(|((_, k), e)| {
                groups.is_none_or(|g| g.contains(&k.group)) || e.data_seen().is_some_and(stale)
            })
            .map(|(k, _)| *k)
            .collect();
        for (ifindex, key) in keys {
            let f = self.assert_facts(ifindex, &key);
            self.drive_assert(ifindex, key, |e| e.recent_data(now, &f));
        }
    }

    /// §4.6: an Assert from `src` arrived on `ifindex`. Without the RPT
    /// bit it concerns (S,G) only; with it, the (*,G) machine and also the
    /// (S,G) machine of its source (which answers it if it can).
    pub(super) fn on_assert(&mut self, now: Instant, ifindex: u32, src: Ipv4Addr, a: &Assert) {
        if a.group.mask_len != 32 || !a.group.addr.is_multicast() {
            self.ra.counters.assert_dropped += 1;
            return;
        }
        let group = a.group.addr;
        let m = AssertMetric::of(a, src);
        let source_ok = !(a.source.is_unspecified() || a.source.is_multicast());
        if !source_ok && !a.rpt {
            // An (S,G) assert must name its source.
            self.ra.counters.assert_dropped += 1;
            return;
        }
        if source_ok {
            let sg = TreeKey::s_g(a.source, group);
            let f = self.assert_facts(ifindex, &sg);
            self.drive_assert(ifindex, sg, |e| {
                e.receive(now, AssertKind::SourceGroup, &f, m)
            });
        }
        if a.rpt {
            let g = TreeKey::star_g(group);
            if source_ok {
                self.ra
                    .assert_source
                    .entry((ifindex, group))
                    .or_insert(a.source);
            }
            let f = self.assert_facts(ifindex, &g);
            self.drive_assert(ifindex, g, |e| e.receive(now, AssertKind::AnySource, &f, m));
        }
    }

    pub(super) fn assert_timer(&mut self, now: Instant, ifindex: u32, key: TreeKey) {
        if !self.ra.asserts.contains_key(&(ifindex, key)) {
            return;
        }
        let f = self.assert_facts(ifindex, &key);
        self.drive_assert(ifindex, key, |e| e.timer_expired(now, &f));
    }

    /// A Join addressed to us arrived on `ifindex`: a downstream router
    /// picked us as its upstream there, so a loser forgets the winner
    /// (§4.6.2/§4.6.3, "Receive Join(S,G)/(*,G) on I").
    pub(super) fn assert_on_join(&mut self, ifindex: u32, jp: &JoinPrune) {
        if !self.ifaces.contains_key(&ifindex)
            || !self.is_iface_address(ifindex, jp.upstream_neighbor)
        {
            return;
        }
        for g in &jp.groups {
            for j in &g.joins {
                let key = match (j.wildcard, j.rpt) {
                    (true, true) => TreeKey::star_g(g.group.addr),
                    (false, false) => TreeKey::s_g(j.addr, g.group.addr),
                    _ => continue,
                };
                if self.ra.asserts.contains_key(&(ifindex, key)) {
                    self.drive_assert(ifindex, key, |e| {
                        e.loser_reset();
                        AssertAction::Nothing
                    });
                }
            }
        }
    }

    /// Neighbor `addr` on `ifindex` timed out, said goodbye or restarted:
    /// a loser that followed it forgets it.
    pub(super) fn assert_neighbor_gone(&mut self, ifindex: u32, addr: Ipv4Addr) {
        let keys: Vec<TreeKey> = self
            .ra
            .asserts
            .keys()
            .filter(|(i, _)| *i == ifindex)
            .map(|(_, k)| *k)
            .collect();
        for key in keys {
            self.drive_assert(ifindex, key, |e| {
                e.neighbor_gone(addr);
                AssertAction::Nothing
            });
        }
    }

    /// PIM stopped on `ifindex`: its assert state goes with it.
    pub(super) fn assert_interface_gone(&mut self, ifindex: u32) {
        self.ra.asserts.retain(|(i, _), _| *i != ifindex);
        self.ra.assert_source.retain(|(i, _), _| *i != ifindex);
        self.ra
            .timers
            .retain(|t| !matches!(t, ExtTimer::Assert(i, _) if *i == ifindex));
    }
}
