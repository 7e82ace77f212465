//! The daemon as a `Type=notify` systemd service, against a fake
//! NOTIFY_SOCKET that this test binds: READY with a STATUS line, watchdog
//! pings that stop while an actor is wedged and resume after, RELOADING
//! then READY around a reload, STOPPING on SIGTERM.

mod common;

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::daemon::{Daemon, DaemonOpts, Scratch};
use common::{require_root, Netns};

const CONFIG: &str = r#"{
  rules: [
    { name: "a", input: { interface: "nosuch0", group: "239.1.1.1", port: 5000 },
      outputs: [{ interface: "nosuch1", group: "239.2.2.1", port: 6000 }] },
  ],
}"#;

/// Every datagram the daemon sent, with when it arrived.
#[derive(Clone, Default)]
struct Notes(Arc<Mutex<Vec<(Instant, String)>>>);

impl Notes {
    fn listen(sock: UnixDatagram) -> Notes {
        let notes = Notes::default();
        let n = notes.clone();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends when the test process does.
            loop {
                if let Ok(len) = sock.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..len]).to_string();
                    n.0.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((Instant::now(), text));
                }
            }
        });
        notes
    }

    fn all(&self) -> Vec<(Instant, String)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn has(msg: &str, line: &str) -> bool {
        msg.lines().any(|l| l == line)
    }

    /// Datagrams carrying `line` that arrived in [from, to).
    fn count(&self, line: &str, from: Instant, to: Instant) -> usize {
        self.all()
            .iter()
            .filter(|(t, m)| *t >= from && *t < to && Self::has(m, line))
            .count()
    }

    /// Wait until a datagram after `after` carries `line`; return it.
    fn wait(&self, line: &str, after: Instant, timeout: Duration) -> (Instant, String) {
        let t0 = Instant::now();
        loop {
            if let Some(n) = self
                .all()
                .into_iter()
                .find(|(t, m)| *t >= after && Self::has(m, line))
            {
                return n;
            }
            assert!(
                t0.elapsed() < timeout,
                "no {line} within {timeout:?}; got {:?}",
                self.all().iter().map(|(_, m)| m).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn notify_protocol_and_a_watchdog_that_means_health() {
    if !require_root("notify_protocol_and_a_watchdog_that_means_health") {
        return;
    }
    let ns = Netns::new("sdn");
    let dir = Scratch::new("notify");
    let path = dir.path("notify.sock");
    let notes = Notes::listen(UnixDatagram::bind(&path).expect("bind notify socket"));
    let path_s = path.to_str().expect("utf-8 path").to_string();
    let start = Instant::now();
    let mut d = Daemon::start(
        &ns,
        DaemonOpts {
            config: Some(CONFIG),
            fault_injection: true,
            // 1.2 s period: the daemon checks and pings every 400 ms.
            env: vec![("NOTIFY_SOCKET", &path_s), ("WATCHDOG_USEC", "1200000")],
            ..Default::default()
        },
    );

    let (_, ready) = notes.wait("READY=1", start, Duration::from_secs(10));
    assert!(
        ready.contains("STATUS=running: 1 rules, 0 workers"),
        "{ready:?}"
    );
    // Healthy: pings keep coming (three per period, five in 2 s; a loaded
    // machine may lose one or two).
    let t = Instant::now();
    std::thread::sleep(Duration::from_millis(2000));
    let healthy = notes.count("WATCHDOG=1", t, Instant::now());
    assert!(healthy >= 3, "only {healthy} pings in 2 s");

    // A reload is bracketed by RELOADING=1 (with its timestamp) and READY=1.
    let t = Instant::now();
    d.ctl_ok(&["config", "reload"]);
    let (t_rel, reloading) = notes.wait("RELOADING=1", t, Duration::from_secs(5));
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading:?}");
    notes.wait("READY=1", t_rel, Duration::from_secs(5));

    // A wedged actor stops the pings; they resume once it answers again.
    let t = Instant::now();
    d.ctl_ok(&["fault", "wedge-actor", "rib", "--secs", "5"]);
    // A ping whose check began before the wedge may still land.
    std::thread::sleep(Duration::from_millis(1000));
    let quiet_from = Instant::now();
    std::thread::sleep(Duration::from_millis(3000));
    let wedged = notes.count("WATCHDOG=1", quiet_from, Instant::now());
    assert_eq!(wedged, 0, "pings went on while the rib actor was wedged");
    notes.wait(
        "WATCHDOG=1",
        t + Duration::from_secs(5),
        Duration::from_secs(8),
    );
    assert!(
        d.log_text().contains("watchdog ping withheld"),
        "{}",
        d.log_text()
    );

    // An orderly stop says so.
    let t = Instant::now();
    let st = d.stop().expect("mcrd exit status");
    assert!(st.success(), "mcrd exited with {st}");
    notes.wait("STOPPING=1", t, Duration::from_secs(2));
}

#[test]
fn without_notify_socket_nothing_is_sent_and_the_daemon_runs() {
    if !require_root("without_notify_socket_nothing_is_sent_and_the_daemon_runs") {
        return;
    }
    let ns = Netns::new("sdn0");
    let mut d = Daemon::start(
        &ns,
        DaemonOpts {
            config: Some(CONFIG),
            env: vec![("WATCHDOG_USEC", "1200000")],
            ..Default::default()
        },
    );
    std::thread::sleep(Duration::from_millis(700));
    assert!(d.ctl_ok(&["ping"]).contains("pong"));
    let st = d.stop().expect("mcrd exit status");
    assert!(st.success(), "mcrd exited with {st}");
}
