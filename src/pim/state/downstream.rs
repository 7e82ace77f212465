//! Downstream per-interface Join/Prune state for (*,G) and (S,G), as pure
//! transitions over explicit times (RFC 7761 §4.5.1 and §4.5.2).
//!
//! Owns: for one interface, the NoInfo / Join / Prune-Pending state of
//! every (*,G) and (S,G) a downstream router joined through us, its Expiry
//! Timer (ET) and Prune-Pending Timer (PPT) deadlines. The instance keeps
//! the timers and calls back here when they fire; it only feeds Joins and
//! Prunes whose upstream neighbor field names us. (S,G,rpt) (§4.5.3) is in
//! `rpt`, the upstream machines (§4.5.4 on) in `upstream`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Which tree an entry is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TreeKey {
    /// `None` for (*,G).
    pub source: Option<Ipv4Addr>,
    pub group: Ipv4Addr,
}

impl TreeKey {
    pub fn star_g(group: Ipv4Addr) -> Self {
        TreeKey {
            source: None,
            group,
        }
    }

    pub fn s_g(source: Ipv4Addr, group: Ipv4Addr) -> Self {
        TreeKey {
            source: Some(source),
            group,
        }
    }
}

/// NoInfo is the absence of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinState {
    Join,
    PrunePending,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub state: JoinState,
    /// Expiry Timer deadline.
    pub expires: Instant,
    /// Prune-Pending Timer deadline, in Prune-Pending only.
    pub prune_pending: Option<Instant>,
    /// For (*,G): the RP the downstream router named in its Join.
    pub rp: Option<Ipv4Addr>,
    /// Holdtime of the last Prune, reused by the PruneEcho.
    pub prune_holdtime: u16,
}

/// What a transition means for forwarding; the instance turns these into
/// events (and, for `Echo`, a PruneEcho on the LAN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// NoInfo → Join: the interface joins the outgoing list.
    Joined,
    /// Back to NoInfo: the interface leaves the outgoing list.
    Left,
    /// Back to NoInfo after a prune on a LAN with other routers: §4.5.1
    /// asks for a PruneEcho so a router whose override was lost retries.
    LeftWithEcho { holdtime: u16 },
}

#[derive(Clone, Debug, Default)]
pub struct Downstream {
    entries: BTreeMap<TreeKey, Entry>,
}

impl Downstream {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, key: &TreeKey) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&TreeKey, &Entry)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Receive Join: NoInfo → Join with ET = holdtime; in Join or
    /// Prune-Pending, ET = max(ET, holdtime) and the PPT stops.
    pub fn join(
        &mut self,
        now: Instant,
        key: TreeKey,
        holdtime: u16,
        rp: Option<Ipv4Addr>,
    ) -> Option<Change> {
        let until = now + Duration::from_secs(u64::from(holdtime));
        match self.entries.get_mut(&key) {
            None => {
                self.entries.insert(
                    key,
                    Entry {
                        state: JoinState::Join,
                        expires: until,
                        prune_pending: None,
                        rp,
                        prune_holdtime: 0,
                    },
                );
                Some(Change::Joined)
            }
            Some(e) => {
                e.state = JoinState::Join;
                e.prune_pending = None;
                e.expires = e.expires.max(until);
                if rp.is_some() {
                    e.rp = rp;
                }
                None
            }
        }
    }

    /// Receive Prune: Join → Prune-Pending with the PPT at
    /// `now + override_interval`. The caller passes J/P_Override_Interval
    /// when the interface has more than one neighbor and zero otherwise;
    /// zero means the timer expires at once, so the entry goes straight to
    /// NoInfo (without an echo: nobody else could override).
    pub fn prune(
        &mut self,
        now: Instant,
        key: TreeKey,
        holdtime: u16,
        override_interval: Duration,
    ) -> Option<Change> {
        let e = self.entries.get_mut(&key)?;
        if e.state != JoinState::Join {
            return None;
        }
        if override_interval.is_zero() {
            self.entries.remove(&key);
            return Some(Change::Left);
        }
        e.state = JoinState::PrunePending;
        e.prune_pending = Some(now + override_interval);
        e.prune_holdtime = holdtime;
        None
    }

    /// The PPT fired. Stale deadlines (a Join arrived since) do nothing.
    pub fn prune_pending_expired(
        &mut self,
        now: Instant,
        key: TreeKey,
        other_neighbors: bool,
    ) -> Option<Change> {
        let e = self.entries.get(&key)?;
        match e.prune_pending {
            Some(at) if e.state == JoinState::PrunePending && at <= now => {
                let holdtime = e.prune_holdtime;
                self.entries.remove(&key);
                Some(if other_neighbors {
                    Change::LeftWithEcho { holdtime }
                } else {
                    Change::Left
                })
            }
            _ => None,
        }
    }

    /// The ET fired: back to NoInfo from Join or Prune-Pending, unless a
    /// later Join pushed the deadline on.
    pub fn expiry_expired(&mut self, now: Instant, key: TreeKey) -> Option<Change> {
        if self.entries.get(&key)?.expires > now {
            return None;
        }
        self.entries.remove(&key);
        Some(Change::Left)
    }

    /// Drop everything (the interface stopped running PIM).
    pub fn clear(&mut self) -> Vec<TreeKey> {
        std::mem::take(&mut self.entries).into_keys().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn g() -> TreeKey {
        TreeKey::star_g("239.1.1.1".parse().unwrap())
    }

    #[test]
    fn join_then_expiry_and_rejoin_only_extends() {
        let t0 = Instant::now();
        let mut d = Downstream::new();
        assert_eq!(d.join(t0, g(), 210, None), Some(Change::Joined));
        assert_eq!(d.get(&g()).unwrap().expires, t0 + 210 * S);
        // A shorter holdtime does not shorten the ET.
        assert_eq!(d.join(t0 + S, g(), 10, None), None);
        assert_eq!(d.get(&g()).unwrap().expires, t0 + 210 * S);
        assert_eq!(d.join(t0 + 100 * S, g(), 210, None), None);
        assert_eq!(d.expiry_expired(t0 + 210 * S, g()), None, "stale ET");
        assert_eq!(d.expiry_expired(t0 + 310 * S, g()), Some(Change::Left));
        assert!(d.is_empty());
    }

    #[test]
    fn prune_on_a_lan_waits_for_an_override_then_echoes() {
        let t0 = Instant::now();
        let mut d = Downstream::new();
        d.join(t0, g(), 210, None);
        assert_eq!(d.prune(t0, g(), 210, 3 * S), None);
        assert_eq!(d.get(&g()).unwrap().state, JoinState::PrunePending);
        // Another downstream router overrides with a Join.
        d.join(t0 + S, g(), 210, None);
        assert_eq!(d.get(&g()).unwrap().state, JoinState::Join);
        assert_eq!(d.prune_pending_expired(t0 + 3 * S, g(), true), None);
        // No override this time.
        d.prune(t0 + 10 * S, g(), 200, 3 * S);
        assert_eq!(d.prune_pending_expired(t0 + 12 * S, g(), true), None);
        assert_eq!(
            d.prune_pending_expired(t0 + 13 * S, g(), true),
            Some(Change::LeftWithEcho { holdtime: 200 })
        );
        assert!(d.is_empty());
    }

    #[test]
    fn prune_with_a_single_neighbor_leaves_at_once_and_noinfo_ignores_prunes() {
        let t0 = Instant::now();
        let mut d = Downstream::new();
        assert_eq!(d.prune(t0, g(), 210, Duration::ZERO), None);
        d.join(t0, g(), 210, None);
        assert_eq!(d.prune(t0, g(), 210, Duration::ZERO), Some(Change::Left));
        assert!(d.is_empty());
        // Prune-Pending stays put on a second Prune.
        d.join(t0, g(), 210, None);
        d.prune(t0, g(), 210, 3 * S);
        assert_eq!(d.prune(t0 + S, g(), 210, 3 * S), None);
        assert_eq!(d.get(&g()).unwrap().prune_pending, Some(t0 + 3 * S));
        // The ET still ends Prune-Pending.
        assert_eq!(d.expiry_expired(t0 + 210 * S, g()), Some(Change::Left));
    }
}
