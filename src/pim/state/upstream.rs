//! Upstream Join/Prune state for (*,G) and (S,G) as pure transitions over
//! explicit times (RFC 7761 §4.5.4, §4.5.5 and §4.5.6 (their common
//! shape), with the LAN timer rules of §4.5.5 for join suppression and
//! prune override).
//!
//! Owns: for one (*,G) or (S,G), whether we are Joined toward an upstream
//! neighbor, which neighbor and interface that is, the Join Timer (JT)
//! deadline and the SPT bit of §4.2.2. The instance decides JoinDesired
//! and RPF' (from the olists and the RPF cache) and feeds them here; the
//! returned [`UpAction`]s are the Joins and Prunes to send. Keeping the
//! neighbor we joined with in the state is what lets an RPF change send
//! the Prune to the *old* neighbor.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// An upstream neighbor on an interface: RPF' of the RFC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rpf {
    pub ifindex: u32,
    pub neighbor: Ipv4Addr,
}

/// A Join/Prune to send; the instance builds and addresses the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpAction {
    Join(Rpf),
    Prune(Rpf),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Upstream {
    /// `Some` in the Joined state: toward whom, and when the JT fires.
    pub joined: Option<(Rpf, Instant)>,
    /// SPTbit(S,G) (§4.2.2): data arrives on the source tree; unused for
    /// (*,G).
    pub spt_bit: bool,
    /// The neighbor we are joined to is an assert winner rather than the
    /// unicast next hop (§4.6.5): when it changes back or to another
    /// winner, that is an "RPF' change due to an Assert".
    pub via_assert: bool,
}

impl Upstream {
    pub fn is_joined(&self) -> bool {
        self.joined.is_some()
    }

    pub fn join_timer(&self) -> Option<Instant> {
        self.joined.map(|(_, t)| t)
    }

    pub fn rpf(&self) -> Option<Rpf> {
        self.joined.map(|(r, _)| r)
    }

    /// Apply the current JoinDesired and RPF'. NotJoined → Joined sends a
    /// Join with JT = t_periodic; Joined → NotJoined sends a Prune; a new
    /// RPF' while Joined sends a Join to the new neighbor and a Prune to
    /// the old one and restarts the JT (§4.5.5, "RPF'(S,G) changes not due
    /// to an Assert"). An RPF' that vanished (no route, or the next hop is
    /// not a PIM neighbor) leaves nobody to join: Prune the old one and
    /// wait, NotJoined, for a new one.
    pub fn update(
        &mut self,
        now: Instant,
        desired: bool,
        rpf: Option<Rpf>,
        t_periodic: Duration,
    ) -> Vec<UpAction> {
        let mut out = Vec::new();
        match (self.joined, desired, rpf) {
            (None, true, Some(to)) => {
                out.push(UpAction::Join(to));
                self.joined = Some((to, now + t_periodic));
            }
            (Some((old, _)), false, _) | (Some((old, _)), true, None) => {
                out.push(UpAction::Prune(old));
                self.joined = None;
            }
            (Some((old, _)), true, Some(new)) if old != new => {
                out.push(UpAction::Join(new));
                out.push(UpAction::Prune(old));
                self.joined = Some((new, now + t_periodic));
            }
            _ => {}
        }
        out
    }

    /// §4.5.5/§4.5.7 "RPF'(*,G)/RPF'(S,G) changes due to an Assert": an
    /// assert on the RPF interface named another upstream router there.
    /// Stay Joined and send nothing now: the winner already forwards, and
    /// a Prune to the loser would not stop it (it stopped on losing); the
    /// JT is lowered to `t_override` so the next Join goes to the new
    /// RPF' soon. Returns whether it applied (Joined, to another router).
    pub fn assert_moved(&mut self, now: Instant, to: Rpf, t_override: Duration) -> bool {
        match &mut self.joined {
            Some((rpf, at)) if *rpf != to => {
                *rpf = to;
                *at = (*at).min(now + t_override);
                true
            }
            _ => false,
        }
    }

    /// The JT fired: send the periodic Join and restart it. A stale timer
    /// (suppression pushed it on) does nothing.
    pub fn join_timer_expired(&mut self, now: Instant, t_periodic: Duration) -> Option<UpAction> {
        let (to, at) = self.joined?;
        if at > now {
            return None;
        }
        self.joined = Some((to, now + t_periodic));
        Some(UpAction::Join(to))
    }

    /// Another router's Join for this entry, to our RPF' on our RPF
    /// interface: ours is not needed before `now + t_joinsuppress`
    /// (§4.5.5 "See Join to RPF'": increase JT).
    pub fn see_join(&mut self, now: Instant, to: Rpf, t_joinsuppress: Duration) {
        if let Some((rpf, at)) = &mut self.joined {
            if *rpf == to {
                *at = (*at).max(now + t_joinsuppress);
            }
        }
    }

    /// Another router pruned this entry at our RPF': override it within
    /// `t_override` (§4.5.5 "See Prune to RPF'": decrease JT). The same
    /// rule serves a GenID change of RPF' (it lost our Join).
    pub fn hurry(&mut self, now: Instant, to: Rpf, t_override: Duration) {
        if let Some((rpf, at)) = &mut self.joined {
            if *rpf == to {
                *at = (*at).min(now + t_override);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn rpf(n: u8) -> Rpf {
        Rpf {
            ifindex: u32::from(n),
            neighbor: Ipv4Addr::new(10, 0, 0, n),
        }
    }

    #[test]
    fn join_refresh_and_prune() {
        let t0 = Instant::now();
        let mut u = Upstream::default();
        assert!(
            u.update(t0, true, None, 60 * S).is_empty(),
            "nobody to join"
        );
        assert_eq!(
            u.update(t0, true, Some(rpf(1)), 60 * S),
            vec![UpAction::Join(rpf(1))]
        );
        assert!(u.update(t0, true, Some(rpf(1)), 60 * S).is_empty());
        assert_eq!(u.join_timer(), Some(t0 + 60 * S));
        assert_eq!(u.join_timer_expired(t0 + 59 * S, 60 * S), None);
        assert_eq!(
            u.join_timer_expired(t0 + 60 * S, 60 * S),
            Some(UpAction::Join(rpf(1)))
        );
        assert_eq!(u.join_timer(), Some(t0 + 120 * S));
        assert_eq!(
            u.update(t0 + 70 * S, false, Some(rpf(1)), 60 * S),
            vec![UpAction::Prune(rpf(1))]
        );
        assert!(!u.is_joined());
        assert_eq!(u.join_timer_expired(t0 + 200 * S, 60 * S), None);
    }

    #[test]
    fn rpf_change_joins_new_and_prunes_old_and_loss_prunes() {
        let t0 = Instant::now();
        let mut u = Upstream::default();
        u.update(t0, true, Some(rpf(1)), 60 * S);
        assert_eq!(
            u.update(t0 + S, true, Some(rpf(2)), 60 * S),
            vec![UpAction::Join(rpf(2)), UpAction::Prune(rpf(1))]
        );
        assert_eq!(u.join_timer(), Some(t0 + 61 * S));
        assert_eq!(
            u.update(t0 + 2 * S, true, None, 60 * S),
            vec![UpAction::Prune(rpf(2))]
        );
        assert!(!u.is_joined());
    }

    #[test]
    fn an_assert_moves_rpf_prime_without_join_or_prune_and_only_lowers_the_jt() {
        let t0 = Instant::now();
        let mut u = Upstream::default();
        assert!(!u.assert_moved(t0, rpf(2), 2 * S), "not joined: nothing");
        u.update(t0, true, Some(rpf(1)), 60 * S);
        assert!(u.assert_moved(t0 + S, rpf(2), 2 * S));
        assert_eq!(u.rpf(), Some(rpf(2)));
        assert_eq!(u.join_timer(), Some(t0 + 3 * S));
        // Already toward the winner: no change; a JT already sooner stays.
        assert!(!u.assert_moved(t0 + 2 * S, rpf(2), 2 * S));
        assert!(u.assert_moved(t0 + 2 * S, rpf(1), 9 * S));
        assert_eq!(u.join_timer(), Some(t0 + 3 * S), "never raised");
        // The Join goes to the new RPF' when the JT fires; the state
        // machine sees no RPF' change after that.
        assert_eq!(
            u.join_timer_expired(t0 + 3 * S, 60 * S),
            Some(UpAction::Join(rpf(1)))
        );
        assert!(u.update(t0 + 4 * S, true, Some(rpf(1)), 60 * S).is_empty());
    }

    #[test]
    fn suppression_only_delays_and_override_only_hurries_for_our_rpf() {
        let t0 = Instant::now();
        let mut u = Upstream::default();
        u.update(t0, true, Some(rpf(1)), 60 * S);
        u.see_join(t0 + 10 * S, rpf(1), 80 * S);
        assert_eq!(u.join_timer(), Some(t0 + 90 * S));
        u.see_join(t0 + 10 * S, rpf(1), 5 * S);
        assert_eq!(u.join_timer(), Some(t0 + 90 * S), "never lowered");
        u.see_join(t0 + 10 * S, rpf(2), 500 * S);
        assert_eq!(u.join_timer(), Some(t0 + 90 * S), "other neighbor");
        u.hurry(t0 + 20 * S, rpf(1), 2 * S);
        assert_eq!(u.join_timer(), Some(t0 + 22 * S));
        u.hurry(t0 + 20 * S, rpf(1), 9 * S);
        assert_eq!(u.join_timer(), Some(t0 + 22 * S), "never raised");
        assert_eq!(
            u.join_timer_expired(t0 + 22 * S, 60 * S),
            Some(UpAction::Join(rpf(1)))
        );
    }
}
