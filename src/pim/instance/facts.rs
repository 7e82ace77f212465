//! The tree and route facts Register and Assert ask for, answered from the
//! instance's own Tree Information Base and RPF cache.
//!
//! Owns the RFC 7761 macros that cross the layers: RPF_interface and the
//! route metrics of §4.6.1 (from the RPF answers of the shell),
//! DirectlyConnected(S) of §4.4.1 (an on-link route toward S on that
//! interface), SPTbit and SwitchToSptDesired (§4.2), the olists the RP
//! forwards decapsulated packets to (§4.1.6), CouldAssert and
//! AssertTrackingDesired (§4.6.2, §4.6.3). The olists used here leave
//! lost_assert out on purpose: CouldAssert and AssertTrackingDesired must
//! not depend on the outcome of the assert they decide, or a loser would
//! stop tracking its winner and oscillate.
//!
//! A [`TreeView`] set with [`PimInstance::set_tree_view`] replaces these
//! answers; only tests that pin the facts by hand use it.

use std::net::Ipv4Addr;

use super::tib::is_ssm;
use super::PimInstance;
use crate::pim::config::SptSwitchover;
use crate::pim::state::downstream::TreeKey;

/// Assert metric of a destination without a route: loses to any route.
const NO_ROUTE_METRIC: (u32, u32) = (u32::MAX >> 1, u32::MAX);

impl PimInstance {
    /// RPF_interface(addr) from the cached unicast route.
    pub(super) fn fact_rpf_interface(&self, addr: Ipv4Addr) -> Option<u32> {
        if let Some(v) = &self.ra.view {
            return v.rpf_interface(addr);
        }
        self.tib.route(addr).map(|r| r.ifindex)
    }

    /// (MRIB.pref, MRIB.metric) toward `addr`.
    pub(super) fn fact_route_metric(&self, addr: Ipv4Addr) -> (u32, u32) {
        if let Some(v) = &self.ra.view {
            return v.route_metric(addr);
        }
        self.tib
            .route(addr)
            .map_or(NO_ROUTE_METRIC, |r| (r.metric_preference, r.metric))
    }

    /// DirectlyConnected(S, I): the route toward S leads out of I with no
    /// gateway, i.e. S is on one of I's subnets.
    pub(super) fn fact_directly_connected(&self, source: Ipv4Addr, ifindex: u32) -> bool {
        if let Some(v) = &self.ra.view {
            return v.directly_connected(source, ifindex);
        }
        self.tib
            .route(source)
            .is_some_and(|r| r.ifindex == ifindex && r.next_hop.is_none())
    }

    /// The RPF answer for `addr` is not known yet (never asked, or asked
    /// and unanswered).
    pub(super) fn fact_rpf_unknown(&self, addr: Ipv4Addr) -> bool {
        self.ra.view.is_none() && !self.tib.rpf.contains_key(&addr)
    }

    pub(super) fn fact_spt_bit(&self, source: Ipv4Addr, group: Ipv4Addr) -> bool {
        if let Some(v) = &self.ra.view {
            return v.spt_bit(source, group);
        }
        self.tib
            .up
            .get(&TreeKey::s_g(source, group))
            .is_some_and(|u| u.spt_bit)
    }

    pub(super) fn fact_switch_to_spt_desired(&self, source: Ipv4Addr, group: Ipv4Addr) -> bool {
        if let Some(v) = &self.ra.view {
            return v.switch_to_spt_desired(source, group);
        }
        self.config.spt_switchover == SptSwitchover::Immediate
    }

    /// inherited_olist(S,G,rpt), where the RP sends decapsulated packets.
    pub(super) fn fact_olist_rpt(&self, source: Ipv4Addr, group: Ipv4Addr) -> Vec<u32> {
        if let Some(v) = &self.ra.view {
            return v.olist_rpt(source, group);
        }
        self.rpt_olist(source, group).into_iter().collect()
    }

    /// inherited_olist(S,G).
    pub(super) fn fact_olist(&self, source: Ipv4Addr, group: Ipv4Addr) -> Vec<u32> {
        if let Some(v) = &self.ra.view {
            return v.olist(source, group);
        }
        self.inherited_olist(source, group).into_iter().collect()
    }

    /// CouldAssert(S,G,I) (§4.6.2): SPTbit set, I is not RPF_interface(S)
    /// and I is in inherited_olist(S,G); CouldAssert(*,G,I) (§4.6.3): I
    /// has (*,G) joins or members and is not RPF_interface(RP(G)).
    pub(super) fn fact_could_assert(
        &self,
        source: Option<Ipv4Addr>,
        group: Ipv4Addr,
        ifindex: u32,
    ) -> bool {
        if let Some(v) = &self.ra.view {
            return v.could_assert(source, group, ifindex);
        }
        match source {
            Some(s) => {
                self.fact_spt_bit(s, group)
                    && self.fact_rpf_interface(s) != Some(ifindex)
                    && self.raw_inherited_olist(s, group).contains(&ifindex)
            }
            None => {
                let Some(rp) = self.rp(group) else {
                    return false;
                };
                !is_ssm(group)
                    && self.fact_rpf_interface(rp) != Some(ifindex)
                    && self
                        .raw_immediate_olist(&TreeKey::star_g(group))
                        .contains(&ifindex)
            }
        }
    }

    /// AssertTrackingDesired(S,G,I) / (*,G,I): we forward onto I, or I is
    /// the interface our Joins for the tree go out of (so the assert
    /// winner is the router to join to).
    pub(super) fn fact_assert_tracking_desired(
        &self,
        source: Option<Ipv4Addr>,
        group: Ipv4Addr,
        ifindex: u32,
    ) -> bool {
        if let Some(v) = &self.ra.view {
            return v.assert_tracking_desired(source, group, ifindex);
        }
        let star = TreeKey::star_g(group);
        let star_joined = self.tib.up.get(&star).is_some_and(|u| u.is_joined());
        let rp_if = self.rp(group).and_then(|rp| self.fact_rpf_interface(rp));
        match source {
            Some(s) => {
                let key = TreeKey::s_g(s, group);
                let sg_joined = self.tib.up.get(&key).is_some_and(|u| u.is_joined());
                self.raw_inherited_olist(s, group).contains(&ifindex)
                    || (self.fact_rpf_interface(s) == Some(ifindex) && sg_joined)
                    || (rp_if == Some(ifindex) && star_joined && !self.fact_spt_bit(s, group))
            }
            None => {
                self.raw_immediate_olist(&star).contains(&ifindex)
                    || (rp_if == Some(ifindex) && star_joined)
            }
        }
    }
}
