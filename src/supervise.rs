//! Restart policy shared by every supervisor in `mcrd`: how long to wait
//! before restarting a failed child (`Backoff`) and how many failures a
//! child may have before its supervisor gives up on it (`RestartBudget`).
//!
//! Pure code: every decision takes the current time as `now`, so the
//! policies are tested on a virtual clock. The actor tree only reads the
//! clock and acts on the answers (DESIGN.md, "Actors and supervision").

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Exponential backoff between restarts of one child. The first restart
/// after a healthy run is immediate (a one-off crash costs nothing); each
/// further failure in a row doubles the wait, up to `cap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the second restart in a row.
    pub start: Duration,
    /// No wait is longer than this.
    pub cap: Duration,
}

impl Backoff {
    pub const fn new(start: Duration, cap: Duration) -> Self {
        Backoff { start, cap }
    }

    /// The wait before the next start, after `failures_in_row` failures
    /// in a row (counting the one that just happened).
    pub fn delay(&self, failures_in_row: u32) -> Duration {
        if failures_in_row <= 1 {
            return Duration::ZERO;
        }
        // 2^16 * start is far past any sensible cap; stop doubling there
        // so the multiplication cannot overflow.
        let doublings = (failures_in_row - 2).min(16);
        self.start
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.cap)
            .min(self.cap)
    }
}

/// Failures in a row of one child, reset by a healthy run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailureStreak {
    in_row: u32,
}

impl FailureStreak {
    /// Record a failure of a child that started at `started` (`None`: it
    /// never got going) and return the failures in a row, this one
    /// included. A child that ran for `healthy_after` was not looping: its
    /// streak starts over.
    pub fn record(
        &mut self,
        started: Option<Instant>,
        now: Instant,
        healthy_after: Duration,
    ) -> u32 {
        if started.is_some_and(|t| now.saturating_duration_since(t) >= healthy_after) {
            self.in_row = 0;
        }
        self.in_row = self.in_row.saturating_add(1);
        self.in_row
    }

    pub fn in_row(&self) -> u32 {
        self.in_row
    }
}

/// What a supervisor does with a failed child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Restart it: this is failure `recent` within the window.
    Restart { recent: usize },
    /// It failed `recent` times within `window`, more than the budget
    /// allows: give up on it and escalate.
    GiveUp { recent: usize },
}

/// At most `max` restarts of one child within any `window`. Past that the
/// child is crash-looping and restarting it again only hides the fault, so
/// the supervisor escalates instead.
#[derive(Clone, Debug)]
pub struct RestartBudget {
    pub max: usize,
    pub window: Duration,
    failures: VecDeque<Instant>,
}

impl RestartBudget {
    pub fn new(max: usize, window: Duration) -> Self {
        RestartBudget {
            max,
            window,
            failures: VecDeque::new(),
        }
    }

    /// Record a failure at `now` and decide.
    pub fn record(&mut self, now: Instant) -> Verdict {
        self.failures.push_back(now);
        while self
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > self.window)
        {
            self.failures.pop_front();
        }
        let recent = self.failures.len();
        if recent > self.max {
            Verdict::GiveUp { recent }
        } else {
            Verdict::Restart { recent }
        }
    }

    /// Failures within the window ending at `now`.
    pub fn recent(&self, now: Instant) -> usize {
        self.failures
            .iter()
            .filter(|t| now.saturating_duration_since(**t) <= self.window)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn backoff_is_immediate_then_doubles_up_to_the_cap() {
        let b = Backoff::new(100 * MS, 1000 * MS);
        let waits: Vec<Duration> = (0..8).map(|n| b.delay(n)).collect();
        assert_eq!(
            waits,
            [0, 0, 100, 200, 400, 800, 1000, 1000].map(|m| m * MS)
        );
    }

    #[test]
    fn backoff_survives_huge_failure_counts() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(30));
        // A zero cap means "never wait".
        assert_eq!(Backoff::new(MS, Duration::ZERO).delay(5), Duration::ZERO);
    }

    #[test]
    fn streak_resets_after_a_healthy_run() {
        let t0 = Instant::now();
        let healthy = Duration::from_secs(5);
        let mut s = FailureStreak::default();
        // Never started, then crashed right after start: a loop.
        assert_eq!(s.record(None, t0, healthy), 1);
        assert_eq!(s.record(Some(t0), t0 + MS, healthy), 2);
        assert_eq!(s.record(Some(t0 + MS), t0 + 2 * MS, healthy), 3);
        // Ran 5 s: the next failure is the first of a new streak.
        assert_eq!(s.record(Some(t0), t0 + healthy, healthy), 1);
        assert_eq!(s.in_row(), 1);
    }

    #[test]
    fn budget_gives_up_past_max_failures_in_the_window() {
        let t0 = Instant::now();
        let mut b = RestartBudget::new(3, Duration::from_secs(10));
        for i in 0..3 {
            assert_eq!(
                b.record(t0 + Duration::from_secs(i)),
                Verdict::Restart {
                    recent: i as usize + 1
                }
            );
        }
        assert_eq!(
            b.record(t0 + Duration::from_secs(3)),
            Verdict::GiveUp { recent: 4 }
        );
    }

    #[test]
    fn budget_forgets_failures_older_than_the_window() {
        let t0 = Instant::now();
        let w = Duration::from_secs(10);
        let mut b = RestartBudget::new(2, w);
        b.record(t0);
        b.record(t0 + Duration::from_secs(1));
        // 11 s after the first: only the second still counts.
        assert_eq!(
            b.record(t0 + Duration::from_secs(11)),
            Verdict::Restart { recent: 2 }
        );
        assert_eq!(b.recent(t0 + Duration::from_secs(30)), 0);
        // Exactly one window old still counts.
        let mut b = RestartBudget::new(1, w);
        b.record(t0);
        assert_eq!(b.record(t0 + w), Verdict::GiveUp { recent: 2 });
    }
}
