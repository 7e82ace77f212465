//! `mcrd supervisor --log-file`: the supervisor's lines and its workers'
//! land in the file as well as on stderr; with rotation the file name is
//! a link to the current dated file; a bad rotation is refused at start.

mod common;

use std::time::Duration;

use common::daemon::{Daemon, DaemonOpts, Scratch};
use common::{require_root, rule_config, wait_for, Relay3};

#[test]
fn the_log_file_gets_supervisor_and_worker_lines() {
    if !require_root("the_log_file_gets_supervisor_and_worker_lines") {
        return;
    }
    let t = Relay3::new("logf");
    let dir = Scratch::new("logfile");
    let path = dir.path("logs/mcrd.log");
    let path_s = path.to_str().expect("utf-8").to_string();
    let config = rule_config("239.1.1.1", 5000, &[("r1", "239.2.2.2", 6000)]);
    let mut d = Daemon::start(
        &t.relay,
        DaemonOpts {
            config: Some(&config),
            args: vec!["--log-file", &path_s, "--log-rotation", "daily"],
            ..Default::default()
        },
    );
    d.wait_active(Duration::from_secs(20));
    // A line from each kind of process, and one set at run time.
    d.ctl_ok(&[
        "log-level",
        "set",
        "--facility",
        "Egress",
        "--level",
        "debug",
    ]);
    let text = wait_for(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&path).ok()?;
        (text.contains("listening on")
            && text.contains("worker 0 for r0 running")
            && text.contains("log levels now"))
        .then_some(text)
    })
    .unwrap_or_else(|| {
        panic!(
            "lines missing from {}: {:?}\nstderr:\n{}",
            path.display(),
            std::fs::read_to_string(&path),
            d.log_text()
        )
    });
    // The same lines still reach stderr.
    assert!(d.log_text().contains("worker 0 for r0 running"));
    // PATH links to today's file, PATH.YYYY-MM-DD.
    let target = std::fs::read_link(&path).expect("the log file is a link with rotation");
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("");
    assert!(
        name.starts_with("mcrd.log.") && name.len() == "mcrd.log.2026-01-01".len(),
        "{name}"
    );
    // Whole lines only: workers' lines are copied in one piece each.
    for l in text.lines() {
        let b = l.as_bytes();
        assert!(
            b.len() > 20 && b[..4].iter().all(u8::is_ascii_digit) && b[10] == b'T',
            "a torn or foreign line: {l:?}"
        );
    }
    d.stop();

    let mut bad = Daemon::spawn(
        &t.relay,
        DaemonOpts {
            args: vec!["--log-file", &path_s, "--log-rotation", "weekly-ish"],
            ..Default::default()
        },
    );
    let st = bad
        .wait_exit(Duration::from_secs(10))
        .expect("refused at start");
    assert_eq!(st.code(), Some(1));
    assert!(
        bad.log_text()
            .contains("--log-rotation: \"weekly-ish\" is not hourly, daily or never"),
        "{}",
        bad.log_text()
    );
}
