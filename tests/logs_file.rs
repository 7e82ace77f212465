//! `mcrd supervisor --log-file` and the config's `logging.file`: the
//! supervisor's lines and its workers' land in the file as well as on
//! stderr; with rotation the file name is a link to the current dated file;
//! a bad rotation or path is refused at start; the command line wins over
//! the config; a reload that changes the file says it applies at restart.

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

/// `rule_config` with a `logging` section.
fn config_with_logging(logging: &str) -> String {
    let rules = rule_config("239.1.1.1", 5000, &[("r1", "239.2.2.2", 6000)]);
    let body = rules
        .strip_suffix(" }")
        .expect("rule_config ends its object");
    format!("{body}, logging: {{ {logging} }} }}")
}

fn wait_lines(path: &std::path::Path, d: &Daemon) -> String {
    wait_for(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(path).ok()?;
        (text.contains("listening on") && text.contains("worker 0 for r0 running")).then_some(text)
    })
    .unwrap_or_else(|| {
        panic!(
            "lines missing from {}: {:?}\nstderr:\n{}",
            path.display(),
            std::fs::read_to_string(path),
            d.log_text()
        )
    })
}

#[test]
fn the_config_names_the_log_file_and_the_command_line_wins() {
    if !require_root("the_config_names_the_log_file_and_the_command_line_wins") {
        return;
    }
    let t = Relay3::new("logk");
    let dir = Scratch::new("logcfg");
    let from_config = dir.path("cfg/mcrd.log");
    let config = config_with_logging(&format!(
        "file: {:?}, rotation: \"never\", keep: 3",
        from_config.to_str().expect("utf-8")
    ));
    let mut d = Daemon::start(
        &t.relay,
        DaemonOpts {
            config: Some(&config),
            ..Default::default()
        },
    );
    d.wait_active(Duration::from_secs(20));
    wait_lines(&from_config, &d);
    // No rotation: the file itself, not a link to a dated one.
    let meta = std::fs::symlink_metadata(&from_config).expect("the log file exists");
    assert!(meta.file_type().is_file(), "{meta:?}");

    // A reload that names another file keeps the open one and says so.
    let elsewhere = dir.path("other/mcrd.log");
    let changed = config_with_logging(&format!("file: {:?}", elsewhere.to_str().expect("utf-8")));
    std::fs::write(d.config.as_ref().expect("started with a config"), &changed)
        .expect("rewrite the config");
    d.ctl_ok(&["config", "reload"]);
    let warning = "logging.file, rotation or keep changed; they apply at the next start";
    wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&from_config)
            .ok()
            .filter(|t| t.contains(warning))
    })
    .unwrap_or_else(|| panic!("no reload warning in the open file:\n{}", d.log_text()));
    assert!(
        !elsewhere.exists(),
        "a reload opened {}",
        elsewhere.display()
    );
    d.stop();

    // --log-file overrides the config's file.
    let from_cli = dir.path("cli/mcrd.log");
    let cli_s = from_cli.to_str().expect("utf-8").to_string();
    let mut d = Daemon::start(
        &t.relay,
        DaemonOpts {
            config: Some(&changed),
            args: vec!["--log-file", &cli_s],
            ..Default::default()
        },
    );
    d.wait_active(Duration::from_secs(20));
    wait_lines(&from_cli, &d);
    assert!(!elsewhere.exists(), "the config's file was opened too");
    d.stop();

    // A path the config cannot mean, and one that cannot be created: the
    // daemon does not start, and says which.
    let cases = [
        (
            "file: \"mcrd.log\"",
            "logging.file: the log file path \"mcrd.log\" is not absolute",
        ),
        (
            "file: \"/proc/mcr-no-such/mcrd.log\"",
            "creating /proc/mcr-no-such",
        ),
    ];
    for (logging, words) in cases {
        let config = config_with_logging(logging);
        let mut bad = Daemon::spawn(
            &t.relay,
            DaemonOpts {
                config: Some(&config),
                ..Default::default()
            },
        );
        let st = bad
            .wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{logging}: still running\n{}", bad.log_text()));
        assert_eq!(st.code(), Some(1), "{logging}: {}", bad.log_text());
        assert!(
            bad.log_text().contains(words),
            "{logging}: {}",
            bad.log_text()
        );
    }
}
