//! Downstream (S,G,rpt) state of one interface as pure transitions over
//! explicit times (RFC 7761 §4.5.3).
//!
//! Owns: which sources a downstream router pruned off the RP tree through
//! this interface (Prune-Pending while others may still override, then
//! Pruned), with the Expiry and Prune-Pending deadlines. The PruneTmp
//! states of the RFC only exist while one message is processed: a
//! Join(*,G) in a message clears every (S,G,rpt) prune of G that the same
//! message does not repeat, which [`RptDownstream::refresh_with_star_join`]
//! does in one step. `prunes(S,G,rpt)` of §4.1.6 is the set in Pruned.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// (source, group) of an (S,G,rpt) entry.
pub type SgKey = (Ipv4Addr, Ipv4Addr);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RptEntry {
    /// `Some` in Prune-Pending: when the PPT fires.
    pub prune_pending: Option<Instant>,
    pub expires: Instant,
}

impl RptEntry {
    pub fn is_pruned(&self) -> bool {
        self.prune_pending.is_none()
    }
}

#[derive(Clone, Debug, Default)]
pub struct RptDownstream {
    entries: BTreeMap<SgKey, RptEntry>,
}

impl RptDownstream {
    pub fn get(&self, key: &SgKey) -> Option<&RptEntry> {
        self.entries.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&SgKey, &RptEntry)> {
        self.entries.iter()
    }

    /// Receive Prune(S,G,rpt): NoInfo → Prune-Pending (or straight to
    /// Pruned when nobody else on the link could override); in
    /// Prune-Pending or Pruned the Expiry Timer only grows.
    pub fn prune(&mut self, now: Instant, key: SgKey, holdtime: u16, override_interval: Duration) {
        let until = now + Duration::from_secs(u64::from(holdtime));
        match self.entries.get_mut(&key) {
            Some(e) => e.expires = e.expires.max(until),
            None => {
                let pending = (!override_interval.is_zero()).then(|| now + override_interval);
                self.entries.insert(
                    key,
                    RptEntry {
                        prune_pending: pending,
                        expires: until,
                    },
                );
            }
        }
    }

    /// Receive Join(S,G,rpt): back to NoInfo. Returns whether the source
    /// was Pruned (its prune leaves the olist).
    pub fn join(&mut self, key: SgKey) -> bool {
        self.entries.remove(&key).is_some_and(|e| e.is_pruned())
    }

    /// A Join(*,G) arrived in a message that prunes exactly `kept` of
    /// G's sources off the RP tree: every other (S,G,rpt) of G ends.
    pub fn refresh_with_star_join(&mut self, group: Ipv4Addr, kept: &[Ipv4Addr]) -> bool {
        let before = self.entries.len();
        self.entries
            .retain(|(s, g), _| *g != group || kept.contains(s));
        before != self.entries.len()
    }

    /// The PPT fired: Prune-Pending → Pruned. Returns true on a change.
    pub fn prune_pending_expired(&mut self, now: Instant, key: SgKey) -> bool {
        match self.entries.get_mut(&key) {
            Some(e) if e.prune_pending.is_some_and(|at| at <= now) => {
                e.prune_pending = None;
                true
            }
            _ => false,
        }
    }

    /// The ET fired: back to NoInfo unless refreshed since.
    pub fn expiry_expired(&mut self, now: Instant, key: SgKey) -> bool {
        match self.entries.get(&key) {
            Some(e) if e.expires <= now => {
                self.entries.remove(&key);
                true
            }
            _ => false,
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn k(s: u8) -> SgKey {
        (Ipv4Addr::new(10, 1, 1, s), Ipv4Addr::new(239, 1, 1, 1))
    }

    #[test]
    fn prune_waits_for_override_then_expires() {
        let t0 = Instant::now();
        let mut r = RptDownstream::default();
        r.prune(t0, k(1), 210, 3 * S);
        assert!(!r.get(&k(1)).unwrap().is_pruned());
        assert!(!r.prune_pending_expired(t0 + 2 * S, k(1)));
        assert!(r.prune_pending_expired(t0 + 3 * S, k(1)));
        assert!(r.get(&k(1)).unwrap().is_pruned());
        assert!(!r.expiry_expired(t0 + 209 * S, k(1)));
        assert!(r.expiry_expired(t0 + 210 * S, k(1)));
        assert!(r.get(&k(1)).is_none());
    }

    #[test]
    fn join_overrides_and_star_join_clears_what_it_does_not_repeat() {
        let t0 = Instant::now();
        let mut r = RptDownstream::default();
        r.prune(t0, k(1), 210, Duration::ZERO);
        r.prune(t0, k(2), 210, Duration::ZERO);
        r.prune(t0, k(3), 210, 3 * S);
        assert!(!r.join(k(3)), "it was only pending");
        assert!(r.get(&k(3)).is_none());
        assert!(r.refresh_with_star_join(k(1).1, &[k(2).0]));
        assert!(r.get(&k(1)).is_none());
        assert!(r.get(&k(2)).unwrap().is_pruned());
        assert!(r.join(k(2)));
    }
}
