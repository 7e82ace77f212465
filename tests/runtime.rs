//! End-to-end runtime behaviour of a running `mcrd`: workers that come and
//! go with rules and interfaces, hitless rule changes under traffic, the
//! event stream, log levels pushed to workers, and idle worker exit. Real
//! daemon, real `mcrctl` and `mcrgen`, each host in its own namespace.
//! The cases are in `tests/runtime/` by theme (`lifecycle`, `changes`,
//! `events`); the helpers they share are here.

#[path = "runtime/changes.rs"]
mod changes;
mod common;
#[path = "runtime/events.rs"]
mod events;
#[path = "runtime/lifecycle.rs"]
mod lifecycle;

use std::process::Child;
use std::time::{Duration, Instant};

use common::daemon::{recv, send, send_cmd, Daemon, DaemonOpts};
use common::{require_root, rule_config, veth, wait_for, Netns, Relay3};
use mcr::control::{Done, Event, RuleState, StatusReport, TimedEvent, WorkerInfo};
use mcr::gen::SendReport;
use mcr::logging::{Facility, LogLevels, Severity};

const T: Duration = Duration::from_secs(20);

fn start_empty(ns: &Netns) -> Daemon {
    Daemon::start(ns, DaemonOpts::default())
}

fn start_with(ns: &Netns, config: &str) -> Daemon {
    Daemon::with_config(ns, config)
}

/// `mcrctl --json add` of a rule from `group:port` on `interface` to
/// `outputs` (`group:port:interface[:ttl],...`), with `extra` options;
/// the new rule's id.
fn add(
    d: &Daemon,
    interface: &str,
    group: &str,
    port: u16,
    outputs: &str,
    extra: &[&str],
) -> String {
    let port = port.to_string();
    let mut a = vec![
        "add",
        "--input-interface",
        interface,
        "--input-group",
        group,
        "--input-port",
        &port,
        "--outputs",
        outputs,
    ];
    a.extend_from_slice(extra);
    let done: Done = d.ctl_json(&a);
    done.id.expect("add names the new rule's id")
}

/// The running (pid-holding) worker of `iface`, if any.
fn running_worker(d: &Daemon, iface: &str) -> Option<WorkerInfo> {
    d.workers()
        .into_iter()
        .find(|w| w.interface == iface && w.state == "running" && w.pid.is_some())
}

fn wait_sender(c: Child) -> SendReport {
    let out = c.wait_with_output().expect("mcrgen send");
    assert!(
        out.status.success(),
        "mcrgen send failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("mcrgen send report")
}

/// `mcrctl --json subscribe` as a child process, its event lines read on a
/// thread.
struct Subscriber {
    /// Event lines as printed; parsed by `wait`, so that a bad line fails
    /// the test rather than a reader thread.
    lines: common::daemon::EventLines,
    seen: Vec<TimedEvent>,
}

impl Subscriber {
    /// Start a subscriber for `events` (which must include `rules`) and
    /// wait until the daemon streams to it: a probe rule on an interface
    /// that does not exist is added (and removed) until its `rule-added`
    /// arrives.
    fn start(d: &Daemon, events: &str) -> Subscriber {
        assert!(events.contains("rules"), "the probe needs rule events");
        let mut s = Subscriber {
            lines: common::daemon::subscribe(d, events),
            seen: Vec::new(),
        };
        let probe = [
            "add",
            "--input-interface",
            "probe0",
            "--input-group",
            "239.255.0.1",
            "--input-port",
            "9",
            "--outputs",
            "239.255.0.2:9:probe1",
            "--rule-id",
            "sub-probe",
        ];
        let t0 = Instant::now();
        loop {
            d.ctl_ok(&probe);
            let got = s.wait(
                Duration::from_millis(500),
                |e| matches!(e, Event::RuleAdded { id, .. } if id == "sub-probe"),
            );
            d.ctl_ok(&["remove", "--rule-id", "sub-probe"]);
            if got.is_some() {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the subscriber never received an event"
            );
        }
        s.wait(
            Duration::from_secs(5),
            |e| matches!(e, Event::RuleRemoved { id } if id == "sub-probe"),
        )
        .expect("probe rule-removed");
        s.seen.clear();
        s
    }

    /// The first event (already seen or arriving within `timeout`) for
    /// which `pred` holds.
    fn wait(&mut self, timeout: Duration, pred: impl Fn(&Event) -> bool) -> Option<TimedEvent> {
        if let Some(e) = self.seen.iter().find(|e| pred(&e.event)) {
            return Some(e.clone());
        }
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.lines.recv_timeout(left) {
                Ok(line) => {
                    let e: TimedEvent = serde_json::from_str(&line).unwrap_or_else(|err| {
                        panic!("subscribe printed a line that is not an event ({err}): {line}")
                    });
                    self.seen.push(e.clone());
                    if pred(&e.event) {
                        return Some(e);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Position of the first seen event matching `pred`.
    fn position(&self, pred: impl Fn(&Event) -> bool) -> Option<usize> {
        self.seen.iter().position(|e| pred(&e.event))
    }
}
