//! The `mcrd` command line: what a user typing it by hand sees. (Being an
//! integration test of package `mcrd` also makes `cargo test --workspace`
//! build the `mcrd` binary that the end-to-end tests in `tests/` drive.)

use std::process::Command;

fn mcrd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mcrd"))
}

#[test]
fn version_and_help_name_the_subcommands() {
    let out = mcrd().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let help = String::from_utf8_lossy(&mcrd().arg("--help").output().unwrap().stdout).to_string();
    for sub in ["supervisor", "demo"] {
        assert!(help.contains(sub), "--help lists {sub}: {help}");
    }
    assert!(
        !help.contains("demo-peer"),
        "internal subcommands stay hidden"
    );
}

#[test]
fn worker_run_by_hand_explains_itself() {
    // No fd 3 from a supervisor: a clear refusal, not a crash.
    let out = mcrd()
        .args(["worker", "--interface", "eth0"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("started by `mcrd supervisor`") || err.contains("fd 3"),
        "{err}"
    );
}

#[test]
fn bad_flags_are_refused_before_anything_starts() {
    let dir = std::env::temp_dir().join(format!("mcrd-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("s.sock");
    let out = mcrd()
        .args(["supervisor", "--log-level", "loud", "--socket"])
        .arg(&sock)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // Root sees the level error; others first hear about CAP_NET_RAW.
    assert!(
        err.contains("--log-level") || err.contains("CAP_NET_RAW"),
        "{err}"
    );
    assert!(!sock.exists(), "no socket left behind");
    let missing = dir.join("nope.json5");
    let out = mcrd()
        .args(["supervisor", "--config"])
        .arg(&missing)
        .arg("--socket")
        .arg(&sock)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nope.json5") || err.contains("CAP_NET_RAW"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_refuses_bad_sizes() {
    let out = mcrd()
        .args(["demo", "--size", "5", "--duration", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--size") || err.contains("root"), "{err}");
}
