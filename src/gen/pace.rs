//! Sender pacing: packet `n` is due at `start + n / rate`.
//!
//! Computing every due time from the start (instead of adding an interval
//! after each send) means a late wake-up or a slow syscall is caught up
//! by the next batch, so the long-run rate stays exact and errors do not
//! accumulate.

use std::time::Duration;

/// Waits longer than this sleep; shorter ones spin, because a sleep
/// rarely wakes up sooner than some tens of µs after it was due.
pub const SLEEP_THRESHOLD: Duration = Duration::from_micros(200);

/// How early to wake from a sleep, to absorb wake-up latency; the rest is
/// spun.
pub const WAKE_EARLY: Duration = Duration::from_micros(80);

/// Waits below this busy-spin; between it and [`SLEEP_THRESHOLD`] the
/// thread yields, so a co-scheduled receiver on a small VM still runs.
pub const SPIN_THRESHOLD: Duration = Duration::from_micros(20);

/// Never sleep longer than this at once, so a stop request is seen soon.
pub const MAX_SLEEP: Duration = Duration::from_millis(50);

/// A packet schedule at a fixed rate.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    rate: f64,
}

impl Schedule {
    /// `None` for a rate of 0 (or anything not positive and finite):
    /// unpaced, every packet is due immediately.
    pub fn new(rate: f64) -> Option<Schedule> {
        (rate.is_finite() && rate > 0.0).then_some(Schedule { rate })
    }

    /// Offset from the start at which packet `n` is due.
    pub fn due_at(&self, n: u64) -> Duration {
        Duration::from_secs_f64(n as f64 / self.rate)
    }

    /// How many packets (0..result) are due `elapsed` after the start.
    /// Packet 0 is due at once.
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        (elapsed.as_secs_f64() * self.rate).floor() as u64 + 1
    }
}

/// What to do while the next packet is not yet due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    Sleep(Duration),
    Yield,
    Spin,
}

/// The wait for a packet due `ahead` from now.
pub fn wait_for(ahead: Duration) -> Wait {
    if ahead > SLEEP_THRESHOLD {
        Wait::Sleep((ahead - WAKE_EARLY).min(MAX_SLEEP))
    } else if ahead > SPIN_THRESHOLD {
        Wait::Yield
    } else {
        Wait::Spin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_or_invalid_rate_is_unpaced() {
        assert!(Schedule::new(0.0).is_none());
        assert!(Schedule::new(-1.0).is_none());
        assert!(Schedule::new(f64::NAN).is_none());
        assert!(Schedule::new(f64::INFINITY).is_none());
    }

    #[test]
    fn due_times() {
        let s = Schedule::new(20_000.0).expect("valid rate");
        assert_eq!(s.due_at(0), Duration::ZERO);
        assert_eq!(s.due_at(1), Duration::from_micros(50));
        assert_eq!(s.due_at(20_000), Duration::from_secs(1));
        assert_eq!(s.due_by(Duration::ZERO), 1);
        assert_eq!(s.due_by(Duration::from_micros(49)), 1);
        assert_eq!(s.due_by(Duration::from_micros(50)), 2);
        assert_eq!(s.due_by(Duration::from_millis(1)), 21);
        assert_eq!(s.due_by(Duration::from_secs(3)), 60_001);
    }

    #[test]
    fn fractional_rates() {
        let s = Schedule::new(0.5).expect("valid rate");
        assert_eq!(s.due_at(3), Duration::from_secs(6));
        assert_eq!(s.due_by(Duration::from_millis(1999)), 1);
        assert_eq!(s.due_by(Duration::from_secs(2)), 2);
    }

    #[test]
    fn due_by_is_consistent_with_due_at() {
        // At (or just after) its own due time a packet must count as due,
        // or the sender would spin forever waiting for it.
        for rate in [1.0, 3.0, 7_777.0, 20_000.0, 1e6, 3.3e6] {
            let s = Schedule::new(rate).expect("valid rate");
            for n in [1u64, 2, 3, 999, 1_000_003, 123_456_789] {
                let at = s.due_at(n) + Duration::from_nanos(1);
                assert!(s.due_by(at) > n, "rate {rate} n {n}");
                assert!(s.due_by(s.due_at(n)) >= n, "rate {rate} n {n}");
            }
        }
    }

    #[test]
    fn long_run_rate_is_exact() {
        // Over 10 s at 20k pps exactly 200 000 packets are due.
        let s = Schedule::new(20_000.0).expect("valid rate");
        assert_eq!(
            s.due_by(Duration::from_secs(10) - Duration::from_nanos(1)),
            200_000
        );
    }

    #[test]
    fn wait_choice() {
        assert_eq!(wait_for(Duration::from_micros(5)), Wait::Spin);
        assert_eq!(wait_for(Duration::from_micros(100)), Wait::Yield);
        assert_eq!(
            wait_for(Duration::from_micros(1000)),
            Wait::Sleep(Duration::from_micros(920))
        );
        assert_eq!(wait_for(Duration::from_secs(2)), Wait::Sleep(MAX_SLEEP));
    }
}
