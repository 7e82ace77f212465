//! The life of one worker process as the supervisor sees it, as pure
//! decisions: when a worker that exited restarts (and after what backoff),
//! when a starting or running one is declared stuck and killed, when a
//! drifting table is resynced or the worker restarted, and when a worker
//! without rules idles out. `mcrd`'s WorkerLink carries the decisions out;
//! the timing rules are SPEC.md "Workers" and DESIGN.md "Supervision".

use std::time::{Duration, Instant};

use crate::rib::SyncAction;
use crate::supervise::{Backoff, FailureStreak};

/// A worker must say Hello within this long after it is started.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// A worker that ran this long before it died was not crash-looping: it
/// restarts at once, without backoff.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(5);
/// The wait before the second restart in a row; it doubles from there.
pub const BACKOFF_START: Duration = Duration::from_millis(100);

/// Where a worker is in its life.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    /// Process started, no Hello yet.
    Starting(Instant),
    Running,
    /// Exited; next start not before this instant.
    Restarting(Instant),
    Stopping,
    Stopped,
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Starting(_) => "starting",
            Phase::Running => "running",
            Phase::Restarting(_) => "restarting",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
        }
    }
}

/// The timing settings a decision depends on (from the running config).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub heartbeat_timeout: Duration,
    pub idle_timeout: Duration,
    pub backoff_max: Duration,
}

impl Timing {
    pub fn backoff(&self) -> Backoff {
        Backoff::new(BACKOFF_START, self.backoff_max)
    }
}

/// What the worker looks like to the timers.
#[derive(Clone, Debug)]
pub struct Observed {
    pub phase: Phase,
    /// Its interface has no rules; since when.
    pub idle_since: Option<Instant>,
    pub has_rules: bool,
    pub last_heartbeat: Option<Instant>,
}

/// What a timer tick asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum TickAction {
    Nothing,
    /// Its backoff is over: start a process.
    Start,
    /// Kill the process (it restarts through its exit).
    Kill(String),
    /// No rules for the idle timeout: stop the worker and forget it.
    IdleExit,
}

/// Timers: restart after backoff, Hello and heartbeat deadlines, idle exit.
pub fn on_tick(w: &Observed, now: Instant, t: &Timing) -> TickAction {
    let idle_out = !w.has_rules
        && w.idle_since
            .is_some_and(|s| now.saturating_duration_since(s) >= t.idle_timeout);
    match w.phase {
        Phase::Restarting(at) if now >= at => {
            if idle_out {
                TickAction::IdleExit
            } else {
                TickAction::Start
            }
        }
        Phase::Starting(since) if now.saturating_duration_since(since) > HELLO_TIMEOUT => {
            TickAction::Kill(format!("no Hello within {HELLO_TIMEOUT:?}"))
        }
        Phase::Running => {
            let quiet = w.last_heartbeat.map(|hb| now.saturating_duration_since(hb));
            match quiet {
                Some(q) if q > t.heartbeat_timeout => {
                    TickAction::Kill(format!("no heartbeat for {:.1}s (stuck)", q.as_secs_f64()))
                }
                _ if idle_out => TickAction::IdleExit,
                _ => TickAction::Nothing,
            }
        }
        _ => TickAction::Nothing,
    }
}

/// What to do after the process exited.
#[derive(Clone, Debug, PartialEq)]
pub enum ExitAction {
    /// It was being stopped: it is done.
    Stopped,
    /// Restart it at `at` (`delay` from now; zero means at once).
    Restart { at: Instant, delay: Duration },
}

/// Decide about a process that exited. `started` is when it said Hello.
pub fn on_exit(
    phase: &Phase,
    started: Option<Instant>,
    streak: &mut FailureStreak,
    now: Instant,
    t: &Timing,
) -> ExitAction {
    if *phase == Phase::Stopping {
        return ExitAction::Stopped;
    }
    let n = streak.record(started, now, HEALTHY_AFTER);
    let delay = t.backoff().delay(n);
    ExitAction::Restart {
        at: now + delay,
        delay,
    }
}

/// Decide about a process that could not be started at all: it counts as
/// a failure in a row, so retries back off like a crash loop.
pub fn on_start_failure(streak: &mut FailureStreak, now: Instant, t: &Timing) -> Instant {
    // Never immediate: a start that failed fails again right away.
    let n = streak.record(None, now, HEALTHY_AFTER).max(2);
    now + t.backoff().delay(n)
}

/// What the table-sync machinery's verdict means for the worker.
#[derive(Clone, Debug, PartialEq)]
pub enum DriftAction {
    Nothing,
    /// Resend every egress socket and the whole table.
    Resync(String),
    /// The worker cannot be repaired in place: kill it.
    Kill(String),
}

pub fn on_drift(a: SyncAction) -> DriftAction {
    match a {
        SyncAction::None => DriftAction::Nothing,
        SyncAction::Resync(why) => DriftAction::Resync(why),
        SyncAction::Restart(why) => DriftAction::Kill(format!("table drift: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> Timing {
        Timing {
            heartbeat_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(10),
            backoff_max: Duration::from_secs(2),
        }
    }

    fn observed(phase: Phase) -> Observed {
        Observed {
            phase,
            idle_since: None,
            has_rules: true,
            last_heartbeat: None,
        }
    }

    #[test]
    fn restarting_worker_starts_when_its_backoff_ends() {
        let t0 = Instant::now();
        let w = observed(Phase::Restarting(t0 + Duration::from_millis(400)));
        assert_eq!(on_tick(&w, t0, &timing()), TickAction::Nothing);
        assert_eq!(
            on_tick(&w, t0 + Duration::from_millis(400), &timing()),
            TickAction::Start
        );
    }

    #[test]
    fn silent_workers_are_killed() {
        let t0 = Instant::now();
        let w = observed(Phase::Starting(t0));
        assert_eq!(
            on_tick(&w, t0 + HELLO_TIMEOUT, &timing()),
            TickAction::Nothing
        );
        assert!(matches!(
            on_tick(&w, t0 + HELLO_TIMEOUT + Duration::from_millis(1), &timing()),
            TickAction::Kill(r) if r.contains("no Hello")
        ));
        let mut w = observed(Phase::Running);
        w.last_heartbeat = Some(t0);
        assert_eq!(
            on_tick(&w, t0 + Duration::from_secs(3), &timing()),
            TickAction::Nothing
        );
        assert!(matches!(
            on_tick(&w, t0 + Duration::from_millis(3500), &timing()),
            TickAction::Kill(r) if r == "no heartbeat for 3.5s (stuck)"
        ));
    }

    #[test]
    fn a_worker_without_rules_idles_out_after_the_timeout() {
        let t0 = Instant::now();
        let mut w = observed(Phase::Running);
        w.has_rules = false;
        w.idle_since = Some(t0);
        w.last_heartbeat = Some(t0 + Duration::from_secs(9));
        assert_eq!(
            on_tick(&w, t0 + Duration::from_secs(9), &timing()),
            TickAction::Nothing
        );
        assert_eq!(
            on_tick(&w, t0 + Duration::from_secs(10), &timing()),
            TickAction::IdleExit
        );
        // Waiting for a restart without rules: it is not restarted.
        w.phase = Phase::Restarting(t0);
        assert_eq!(
            on_tick(&w, t0 + Duration::from_secs(10), &timing()),
            TickAction::IdleExit
        );
        // Rules came back: no idle exit even if the mark is stale.
        w.has_rules = true;
        assert_eq!(
            on_tick(&w, t0 + Duration::from_secs(10), &timing()),
            TickAction::Start
        );
    }

    #[test]
    fn crash_loop_backs_off_and_a_healthy_run_resets_it() {
        let t0 = Instant::now();
        let t = timing();
        let mut s = FailureStreak::default();
        let running = Phase::Running;
        let mut delays = Vec::new();
        for i in 0..7u32 {
            let now = t0 + Duration::from_millis(u64::from(i) * 10);
            match on_exit(&running, Some(now), &mut s, now, &t) {
                ExitAction::Restart { delay, at } => {
                    assert_eq!(at, now + delay);
                    delays.push(delay.as_millis());
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(delays, [0, 100, 200, 400, 800, 1600, 2000]);
        // It then ran for HEALTHY_AFTER: the next crash restarts at once.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(
            on_exit(&running, Some(later - HEALTHY_AFTER), &mut s, later, &t),
            ExitAction::Restart {
                at: later,
                delay: Duration::ZERO
            }
        );
    }

    #[test]
    fn a_stopping_worker_that_exits_is_stopped_not_restarted() {
        let t0 = Instant::now();
        let mut s = FailureStreak::default();
        assert_eq!(
            on_exit(&Phase::Stopping, None, &mut s, t0, &timing()),
            ExitAction::Stopped
        );
        assert_eq!(s.in_row(), 0);
    }

    #[test]
    fn failed_starts_retry_with_growing_waits() {
        let t0 = Instant::now();
        let mut s = FailureStreak::default();
        let waits: Vec<u128> = (0..4)
            .map(|_| (on_start_failure(&mut s, t0, &timing()) - t0).as_millis())
            .collect();
        assert_eq!(waits, [100, 100, 200, 400]);
    }

    #[test]
    fn drift_maps_to_resync_or_kill() {
        assert_eq!(on_drift(SyncAction::None), DriftAction::Nothing);
        assert_eq!(
            on_drift(SyncAction::Resync("gap".into())),
            DriftAction::Resync("gap".into())
        );
        assert_eq!(
            on_drift(SyncAction::Restart("hash".into())),
            DriftAction::Kill("table drift: hash".into())
        );
    }
}
