//! What changed in the protocol sections between two configs, so that a
//! reload applies only that: a querier or PIM interface that did not
//! change keeps its state (memberships, neighbors, timers), as issue 9 and
//! issue 10 ask of hot reload.
//!
//! Owns: the comparison only. Which actor starts or stops what is the
//! daemon's business.

use std::collections::BTreeSet;

use super::{Config, IgmpConfig};
use crate::pim::config::PimConfig;

/// The difference in the `igmp` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IgmpDiff {
    /// Querier interfaces to start.
    pub queriers_added: Vec<String>,
    /// Querier interfaces to stop.
    pub queriers_removed: Vec<String>,
    /// Querier interfaces that stay but run with other settings (the
    /// version or a timer changed; they all share the settings).
    pub queriers_changed: Vec<String>,
    /// The proxy appeared, went or has other interfaces.
    pub proxy_changed: bool,
}

/// The difference in the `pim` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PimDiff {
    /// PIM was switched on or off (section added, removed, or `enabled`
    /// flipped): every interface below is then added or removed.
    pub enabled_changed: bool,
    pub interfaces_added: Vec<String>,
    pub interfaces_removed: Vec<String>,
    /// Same name, other DR priority or Hello interval.
    pub interfaces_changed: Vec<String>,
    /// `router_id`, `static_rp`, `spt_switchover` or
    /// `join_prune_interval` changed: they apply to the whole instance.
    pub globals_changed: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProtocolDiff {
    pub igmp: IgmpDiff,
    pub pim: PimDiff,
}

impl IgmpDiff {
    pub fn is_empty(&self) -> bool {
        *self == IgmpDiff::default()
    }
}

impl PimDiff {
    pub fn is_empty(&self) -> bool {
        *self == PimDiff::default()
    }
}

impl ProtocolDiff {
    pub fn is_empty(&self) -> bool {
        self.igmp.is_empty() && self.pim.is_empty()
    }
}

impl Config {
    /// What must change in the running protocols to go from `self` to
    /// `new`.
    pub fn protocol_diff(&self, new: &Config) -> ProtocolDiff {
        ProtocolDiff {
            igmp: igmp_diff(self.igmp.as_ref(), new.igmp.as_ref()),
            pim: pim_diff(self.pim.as_ref(), new.pim.as_ref()),
        }
    }
}

/// Names in `a` not in `b`, in `a`'s order.
fn missing(a: &[String], b: &[String]) -> Vec<String> {
    let b: BTreeSet<&String> = b.iter().collect();
    a.iter().filter(|x| !b.contains(x)).cloned().collect()
}

fn igmp_diff(old: Option<&IgmpConfig>, new: Option<&IgmpConfig>) -> IgmpDiff {
    let empty = IgmpConfig::default();
    let (o, n) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let kept: Vec<String> = n
        .querier_interfaces
        .iter()
        .filter(|q| o.querier_interfaces.contains(q))
        .cloned()
        .collect();
    IgmpDiff {
        queriers_added: missing(&n.querier_interfaces, &o.querier_interfaces),
        queriers_removed: missing(&o.querier_interfaces, &n.querier_interfaces),
        queriers_changed: if o.settings != n.settings {
            kept
        } else {
            Vec::new()
        },
        proxy_changed: o.proxy != n.proxy || (n.proxy.is_some() && o.settings != n.settings),
    }
}

fn pim_diff(old: Option<&PimConfig>, new: Option<&PimConfig>) -> PimDiff {
    // A section that is absent or disabled runs no interface at all.
    let running = |c: Option<&PimConfig>| c.filter(|c| c.enabled).cloned();
    let (o, n) = (running(old), running(new));
    let names = |c: &Option<PimConfig>| -> Vec<String> {
        c.iter()
            .flat_map(|c| c.interfaces.iter().map(|i| i.name.clone()))
            .collect()
    };
    let (on, nn) = (names(&o), names(&n));
    let changed = match (&o, &n) {
        (Some(o), Some(n)) => n
            .interfaces
            .iter()
            .filter(|i| o.interface(&i.name).is_some_and(|x| x != *i))
            .map(|i| i.name.clone())
            .collect(),
        _ => Vec::new(),
    };
    let globals = |c: &PimConfig| {
        (
            c.router_id,
            c.static_rp.clone(),
            c.spt_switchover,
            c.join_prune_interval,
        )
    };
    PimDiff {
        enabled_changed: o.is_some() != n.is_some(),
        interfaces_added: missing(&nn, &on),
        interfaces_removed: missing(&on, &nn),
        interfaces_changed: changed,
        globals_changed: matches!((&o, &n), (Some(o), Some(n)) if globals(o) != globals(n)),
    }
}
