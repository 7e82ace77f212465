//! The systemd service protocol (sd_notify(3)) through the `sd-notify`
//! crate: READY, RELOADING (with MONOTONIC_USEC, as `Type=notify-reload`
//! wants), STOPPING, a STATUS line, and the watchdog cadence. Without
//! `NOTIFY_SOCKET` every call here does nothing.
//!
//! What decides whether a watchdog ping is *deserved* (the actor tree
//! answers) lives with the root; this module only speaks the protocol.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::debug;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!(target: "Supervisor", "sd_notify: {e}");
    }
}

/// Start-up finished: the control socket answers and the tree runs.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A configuration reload begins. systemd matches RELOADING=1 with the
/// READY=1 that follows; the timestamp tells it which reload this is.
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(t) = NotifyState::monotonic_usec_now() {
        states.push(t);
    }
    send(&states);
}

/// The reload ended (applied or rejected: either way we serve again).
pub fn reloaded(status: &str) {
    ready(status);
}

/// The orderly shutdown began.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// One watchdog ping, with the current status line.
pub fn watchdog(status: &str) {
    send(&[NotifyState::Watchdog, NotifyState::Status(status)]);
}

/// How often to check the tree and ping, if systemd watches us: a third of
/// the period, so that one slow check does not cost a restart but two
/// failed ones in a row do.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(ping_every)
}

fn ping_every(period: Duration) -> Duration {
    (period / 3).max(Duration::from_millis(50))
}

/// The STATUS= line systemctl shows.
pub fn status_line(rules: usize, workers: usize, state: &str) -> String {
    format!("{state}: {rules} rules, {workers} workers")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_three_times_per_period_but_not_absurdly_fast() {
        assert_eq!(ping_every(Duration::from_secs(30)), Duration::from_secs(10));
        assert_eq!(
            ping_every(Duration::from_micros(10)),
            Duration::from_millis(50)
        );
    }

    #[test]
    fn status_names_rules_workers_and_state() {
        assert_eq!(status_line(3, 2, "running"), "running: 3 rules, 2 workers");
    }
}
