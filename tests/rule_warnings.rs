//! `mcrctl` against a running `mcrd`: a forwarding loop across rules is
//! accepted with a warning on stderr (exit 0, `warnings` in `--json`),
//! a source filter that breaks the loop silences it, and a members-only
//! output added with the `:members` suffix is listed as `no members`.

mod common;

use common::daemon::{Daemon, DaemonOpts, Scratch};
use common::{require_root, Relay3};
use mcr::control::Done;

fn add(d: &Daemon, input: &str, group: &str, outputs: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "add",
        "--input-interface",
        input,
        "--input-group",
        group,
        "--input-port",
        "5000",
        "--outputs",
        outputs,
    ];
    args.extend_from_slice(extra);
    let o = d.ctl(&args);
    assert!(
        o.status.success(),
        "mcrctl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn loops_are_warned_about_not_refused_and_members_only_outputs_wait() {
    if !require_root("loops_are_warned_about_not_refused_and_members_only_outputs_wait") {
        return;
    }
    let t = Relay3::new("rwarn");
    let d = Daemon::start(&t.relay, DaemonOpts::default());

    let (_, err) = add(&d, "r0", "239.1.1.1", "239.1.1.1:5000:r1", &[]);
    assert!(err.is_empty(), "no loop yet, no warning: {err}");
    // A source filter naming a remote sender: the relay's own republished
    // packets do not pass it, so this way back is no loop.
    let (_, err) = add(
        &d,
        "r1",
        "239.1.1.1",
        "239.1.1.1:5000:r0",
        &["--source", "10.10.2.2"],
    );
    assert!(err.is_empty(), "a source filter breaks the loop: {err}");

    // The same way back without a filter closes the loop: accepted, warned.
    let (out, err) = add(&d, "r1", "239.1.1.2", "239.1.1.1:5000:r0", &[]);
    assert!(out.contains("added"), "{out}");
    assert!(err.is_empty(), "239.1.1.2 does not come back: {err}");
    let o = d.ctl(&[
        "--json",
        "add",
        "--input-interface",
        "r1",
        "--input-group",
        "239.1.1.1",
        "--input-port",
        "0",
        "--outputs",
        "239.1.1.1:5000:r0",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("warning: forwarding loop: rule "),
        "stderr: {err}"
    );
    let done: Done = serde_json::from_slice(&o.stdout).expect("json reply");
    assert_eq!(done.warnings.len(), 1, "{done:?}");
    assert!(done.warnings[0].contains("r0 239.1.1.1:5000"), "{done:?}");

    // A file that brings its own loop: `config load` warns too.
    let files = Scratch::new("rwarn");
    let f = files.write(
        "loop.json5",
        "{ rules: [
          { input: { interface: 'r0', group: '239.5.5.5', port: 7000 },
            outputs: [{ interface: 'r1', group: '239.6.6.6', port: 7000 }] },
          { input: { interface: 'r1', group: '239.6.6.6', port: 7000 },
            outputs: [{ interface: 'r0', group: '239.5.5.5', port: 7000 }] },
        ] }",
    );
    let o = d.ctl(&["config", "load", f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("warning: forwarding loop").count(), 1, "{err}");
    assert!(err.contains("239.6.6.6:7000"), "{err}");

    // Members-only output from the command line: listed, waiting.
    let (_, err) = add(
        &d,
        "r0",
        "239.7.7.7",
        "239.8.8.8:6000:r1:members,239.9.9.9:6000:r1:4",
        &[],
    );
    assert!(err.is_empty(), "{err}");
    let list = d.list();
    let r = list
        .iter()
        .find(|r| r.input.group == "239.7.7.7".parse::<std::net::Ipv4Addr>().unwrap())
        .expect("rule listed");
    let flags: Vec<(bool, bool)> = r
        .outputs
        .iter()
        .map(|o| (o.output.members_only, o.no_members))
        .collect();
    assert_eq!(flags, [(true, true), (false, false)]);
    let text = d.ctl_ok(&["list"]);
    assert!(
        text.contains("239.8.8.8:6000@r1 members-only [no members]"),
        "{text}"
    );
}
