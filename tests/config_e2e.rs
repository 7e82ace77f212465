//! End-to-end configuration handling of a running `mcrd`: loading files
//! (merge and replace) under traffic, save and load round trips, bad files
//! refused whole with the key and line, a bad startup file, and reloads by
//! SIGHUP and by `mcrctl config reload`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::daemon::{recv, send, send_cmd, Daemon, DaemonOpts, Scratch};
use common::{require_root, wait_for, Relay3};
use mcr::control::{RuleInfo, RuleState, StatusReport};
use mcr::gen::SendReport;
use mcr::logging::LogLevels;

const T: Duration = Duration::from_secs(20);

fn start_with(t: &Relay3, config: &str) -> Daemon {
    Daemon::with_config(&t.relay, config)
}

/// A rule on r0 as one line of a config file.
fn rule(name: &str, in_group: &str, out_group: &str, out_port: u32) -> String {
    format!(
        "    {{ name: \"{name}\", input: {{ interface: \"r0\", group: \"{in_group}\", port: 5000 }}, \
         outputs: [ {{ interface: \"r1\", group: \"{out_group}\", port: {out_port} }} ] }},\n"
    )
}

fn config_of(rules: &[String]) -> String {
    format!("{{\n  rules: [\n{}  ],\n}}\n", rules.concat())
}

fn by_name<'a>(l: &'a [RuleInfo], name: &str) -> &'a RuleInfo {
    l.iter()
        .find(|r| r.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no rule named {name}: {l:#?}"))
}

fn ids(l: &[RuleInfo]) -> BTreeSet<String> {
    l.iter().map(|r| r.id.clone()).collect()
}

fn wait_sender(c: std::process::Child) -> SendReport {
    let out = c.wait_with_output().expect("mcrgen send");
    assert!(
        out.status.success(),
        "mcrgen send: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("send report")
}

#[test]
fn config_load_merges_by_rule_id_and_replace_makes_the_file_the_ruleset() {
    if !require_root("config_load_merges_by_rule_id_and_replace_makes_the_file_the_ruleset") {
        return;
    }
    let t = Relay3::new("cload");
    let d = start_with(
        &t,
        &config_of(&[
            rule("a", "239.1.1.1", "239.2.2.1", 6001),
            rule("b", "239.1.1.2", "239.2.2.2", 6002),
        ]),
    );
    let before = d.list();
    let a = by_name(&before, "a").clone();
    let b = by_name(&before, "b").clone();
    let files = Scratch::new("cload");
    let merge = files.write(
        "merge.json5",
        &config_of(&[
            rule("b", "239.1.1.2", "239.2.2.9", 6009),
            rule("c", "239.1.1.3", "239.2.2.3", 6003),
        ]),
    );
    let only_c = files.write(
        "only-c.json5",
        &config_of(&[rule("c", "239.1.1.3", "239.2.2.3", 6003)]),
    );

    // A stream on A runs through the merge.
    let ra = recv(
        &t.dst,
        "239.2.2.1",
        6001,
        Some("d0"),
        &["--expect", "3000", "--idle-timeout", "2"],
    );
    let sa = send_cmd(&t.src, "239.1.1.1", 5000, "s0", 3000, 1000, 400, &[])
        .spawn()
        .expect("sender A");
    let a_packets = |d: &Daemon| {
        d.stats()
            .rules
            .iter()
            .find(|r| r.id == a.id)
            .map(|r| r.packets)
            .unwrap_or(0)
    };
    wait_for(Duration::from_secs(5), || {
        (a_packets(&d) >= 300).then_some(())
    })
    .expect("A relays");

    let out = d.ctl_ok(&["config", "load", merge.to_str().unwrap()]);
    assert!(
        out.contains("merged: 1 added, 0 removed, 1 changed"),
        "{out}"
    );
    let l = d.list();
    assert_eq!(l.len(), 3, "{l:#?}");
    let b2 = by_name(&l, "b");
    assert_eq!(b2.id, b.id, "same input, same default id");
    let outs: Vec<String> = b2
        .outputs
        .iter()
        .map(|o| {
            format!(
                "{}:{}@{}",
                o.output.group, o.output.port, o.output.interface
            )
        })
        .collect();
    assert_eq!(outs, ["239.2.2.9:6009@r1"], "B's outputs are the file's");
    assert_eq!(by_name(&l, "a").rule(), a.rule(), "A untouched");
    let c = by_name(&l, "c").clone();
    d.wait_active(T);
    // B' relays to its new output.
    let rb = recv(
        &t.dst,
        "239.2.2.9",
        6009,
        Some("d0"),
        &["--expect", "300", "--idle-timeout", "1"],
    );
    send(
        &t.src,
        "239.1.1.2",
        5000,
        "s0",
        300,
        1000,
        200,
        &["--stream-id", "2"],
    );
    let repb = rb.finish(T);
    assert_eq!(
        (repb.unique, repb.lost),
        (300, 0),
        "B' relays to its new output: {repb:?}"
    );

    assert_eq!(wait_sender(sa).sent, 3000);
    let rep = ra.finish(T);
    assert_eq!(
        (rep.unique, rep.lost, rep.duplicates),
        (3000, 0, 0),
        "the merge must not disturb A: {rep:?}"
    );

    let out = d.ctl_ok(&["config", "load", "--replace", only_c.to_str().unwrap()]);
    assert!(
        out.contains("replaced: 0 added, 2 removed, 0 changed"),
        "{out}"
    );
    let l = d.list();
    assert_eq!(
        ids(&l),
        BTreeSet::from([c.id.clone()]),
        "only the file's rules remain: {l:#?}"
    );
    let show = d.ctl_ok(&["config", "show"]);
    assert!(
        show.contains("239.1.1.3") && !show.contains("239.1.1.1") && !show.contains("239.1.1.2"),
        "{show}"
    );
}

#[test]
fn save_then_load_round_trip() {
    if !require_root("save_then_load_round_trip") {
        return;
    }
    let t = Relay3::new("csave");
    let mut d1 = Daemon::start(&t.relay, DaemonOpts::default());
    let adds: [&[&str]; 5] = [
        &[
            "--input-group",
            "239.1.1.1",
            "--input-port",
            "5000",
            "--outputs",
            "239.2.2.1:6001:r1",
            "--name",
            "video",
        ],
        &[
            "--input-group",
            "239.1.1.2",
            "--input-port",
            "5000",
            "--outputs",
            "239.2.2.2:6002:r1:7",
            "--rule-id",
            "custom-id.1",
            "--name",
            "audio \"main\"",
        ],
        &[
            "--input-group",
            "239.1.1.3",
            "--input-port",
            "0",
            "--source",
            "10.10.1.1",
            "--outputs",
            "239.2.2.3:6003:r1,10.10.2.2:7000:r1:12",
        ],
        &[
            "--input-group",
            "239.1.1.4",
            "--input-port",
            "5000",
            "--outputs",
            "239.1.1.4:5000:r1",
            "--mode",
            "route",
            "--name",
            "routed",
        ],
        &[
            "--input-group",
            "239.1.1.5",
            "--input-port",
            "5000",
            "--outputs",
            "239.2.2.5:6005:r1",
        ],
    ];
    for (i, a) in adds.iter().enumerate() {
        // The last one waits for an interface that does not exist.
        let ifc = if i == 4 { "r9" } else { "r0" };
        let mut args = vec!["add", "--input-interface", ifc];
        args.extend_from_slice(a);
        d1.ctl_ok(&args);
    }
    d1.ctl_ok(&[
        "log-level",
        "set",
        "--facility",
        "Ingress",
        "--level",
        "debug",
    ]);
    d1.ctl_ok(&["log-level", "set", "--global", "notice"]);
    wait_for(T, || {
        let l = d1.list();
        l.iter()
            .all(|r| {
                r.state
                    == if r.input.interface == "r9" {
                        RuleState::Pending
                    } else {
                        RuleState::Active
                    }
            })
            .then_some(())
    })
    .unwrap_or_else(|| panic!("rules did not settle: {:#?}", d1.list()));
    let list1 = d1.list();
    assert_eq!(list1.len(), 5);
    assert!(list1.iter().any(|r| r.id == "custom-id.1"));
    let show1 = d1.ctl_ok(&["config", "show"]);
    let levels1: LogLevels = d1.ctl_json(&["log-level", "get"]);

    // No startup file: `config save` without FILE says what to do instead.
    let e = d1.ctl_err(&["config", "save"]);
    assert!(
        e.contains("--config") && e.contains("config save FILE"),
        "{e}"
    );
    let files = Scratch::new("csave");
    let saved = files.path("saved.json5");
    let out = d1.ctl_ok(&["config", "save", saved.to_str().unwrap()]);
    assert!(out.contains("saved.json5"), "{out}");
    let text = std::fs::read_to_string(&saved).expect("saved file");
    assert_eq!(text, show1, "the file is what `config show` prints");
    d1.stop();

    // A second daemon in the same namespace, started from the file.
    let d2 = Daemon::start(
        &t.relay,
        DaemonOpts {
            config: Some(&text),
            ..Default::default()
        },
    );
    wait_for(T, || (d2.list() == list1).then_some(())).unwrap_or_else(|| {
        panic!(
            "the reloaded daemon's rules differ:\n{:#?}\nvs\n{list1:#?}",
            d2.list()
        )
    });
    assert_eq!(
        d2.ctl_ok(&["config", "show"]),
        show1,
        "config show is identical"
    );
    let levels2: LogLevels = d2.ctl_json(&["log-level", "get"]);
    assert_eq!(levels2, levels1);

    // `config save` without FILE writes the startup file.
    let startup = d2.config.clone().expect("started with --config");
    d2.ctl_ok(&["remove", "--name", "video"]);
    let out = d2.ctl_ok(&["config", "save"]);
    assert!(out.contains(startup.to_str().unwrap()), "{out}");
    let written = std::fs::read_to_string(&startup).expect("startup file");
    let show2 = d2.ctl_ok(&["config", "show"]);
    assert_eq!(written, show2);
    assert!(
        !written.contains("video"),
        "the removed rule is gone from the file: {written}"
    );
    let parsed = mcr::config::parse(&written)
        .unwrap_or_else(|e| panic!("the saved file does not parse: {e}\n{written}"));
    let running: Vec<_> = d2.list().iter().map(|r| r.rule()).collect();
    let mut from_file = parsed.rules.clone();
    from_file.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(from_file, running, "the saved rules are the running rules");
    assert_eq!(parsed.logging.levels, levels1);
    assert_eq!(
        parsed,
        mcr::config::parse(&show1)
            .map(|mut c| {
                c.rules.retain(|r| r.name.as_deref() != Some("video"));
                c
            })
            .unwrap()
    );
}

/// Refused: non-zero exit, the stderr of `config check` and of `config
/// load` name the line (and the key path when there is one).
fn assert_refused(
    d: &Daemon,
    files: &Scratch,
    name: &str,
    text: &str,
    line: usize,
    path: Option<&str>,
) {
    let f = files.write(&format!("{name}.json5"), text);
    let before = d.list();
    let show = d.ctl_ok(&["config", "show"]);
    let at = format!("line {line},");
    for cmd in ["check", "load"] {
        let e = d.ctl_err(&["config", cmd, f.to_str().unwrap()]);
        assert!(e.contains(&at), "config {cmd} {name}: no {at:?} in: {e}");
        if let Some(p) = path {
            assert!(
                e.contains(p),
                "config {cmd} {name}: no key path {p:?} in: {e}"
            );
        }
        assert_eq!(d.list(), before, "config {cmd} {name} changed the rules");
        assert_eq!(
            d.ctl_ok(&["config", "show"]),
            show,
            "config {cmd} {name} changed the config"
        );
    }
    let o = d.ctl(&["config", "load", "--replace", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "load --replace {name}");
    assert_eq!(
        d.list(),
        before,
        "config load --replace {name} changed the rules"
    );
}

#[test]
fn bad_config_files_are_refused_whole_with_key_and_line() {
    if !require_root("bad_config_files_are_refused_whole_with_key_and_line") {
        return;
    }
    let t = Relay3::new("cbad");
    let d = start_with(&t, &config_of(&[rule("a", "239.1.1.1", "239.2.2.1", 6001)]));
    let files = Scratch::new("cbad");

    // (a) JSON5 syntax: a missing comma (no key path for a syntax error).
    let syntax = "{\n  rules: [\n    { input: { interface: \"r0\", group: \"239.1.1.5\", port: 5000 }\n      \
                  outputs: [ { interface: \"r1\", group: \"239.2.2.5\", port: 6000 } ] },\n  ],\n}\n";
    assert_refused(&d, &files, "syntax", syntax, 4, None);
    // (b) an unknown key, nested in an output.
    let unknown = "{\n  rules: [\n    {\n      input: { interface: \"r0\", group: \"239.1.1.5\", port: 5000 },\n      \
                   outputs: [\n        { interface: \"r1\", group: \"239.2.2.5\", port: 6000, colour: \"red\" },\n      ],\n    },\n  ],\n}\n";
    assert_refused(
        &d,
        &files,
        "unknown",
        unknown,
        6,
        Some("rules[0].outputs[0].colour"),
    );
    // (c) invalid values.
    let port = unknown.replace("port: 6000, colour: \"red\"", "port: 70000");
    assert_refused(
        &d,
        &files,
        "port",
        &port,
        6,
        Some("rules[0].outputs[0].port"),
    );
    let group = unknown
        .replace("group: \"239.1.1.5\"", "group: \"239.1.1.300\"")
        .replace(", colour: \"red\"", "");
    assert_refused(&d, &files, "group", &group, 4, Some("rules[0].input.group"));
    let ifname = unknown
        .replace("interface: \"r1\"", "interface: \"averyveryverylongname\"")
        .replace(", colour: \"red\"", "");
    assert_refused(
        &d,
        &files,
        "ifname",
        &ifname,
        6,
        Some("rules[0].outputs[0].interface"),
    );

    // One good rule and one bad: neither is applied.
    let mixed = format!(
        "{{\n  rules: [\n{}{}  ],\n}}\n",
        rule("good", "239.1.1.8", "239.2.2.8", 6008),
        rule("bad", "239.1.1.9", "239.2.2.9", 65536)
    );
    assert_refused(
        &d,
        &files,
        "mixed",
        &mixed,
        4,
        Some("rules[1].outputs[0].port"),
    );
    assert!(d.list().iter().all(|r| r.name.as_deref() != Some("good")));

    // A good file checks as valid and changes nothing by being checked.
    let good = files.write(
        "good.json5",
        &config_of(&[rule("good", "239.1.1.8", "239.2.2.8", 6008)]),
    );
    let before = d.list();
    let out = d.ctl_ok(&["config", "check", good.to_str().unwrap()]);
    assert!(out.contains("valid"), "{out}");
    assert_eq!(d.list(), before);
}

#[test]
fn daemon_refuses_to_start_with_a_bad_config() {
    if !require_root("daemon_refuses_to_start_with_a_bad_config") {
        return;
    }
    let t = Relay3::new("cstart");
    let cases = [
        (
            "{\n  rules: [\n    {\n      input: { interface: \"r0\", group: \"239.1.1.1\", port: 5000, prot: 1 },\n      \
             outputs: [ { interface: \"r1\", group: \"239.2.2.2\", port: 6000 } ],\n    },\n  ],\n}\n",
            "line 4,",
            "rules[0].input.prot",
        ),
        (
            "{\n  workers: { idle_timeout: 5 },\n  rules: [\n    {\n      input: { interface: \"r0\", group: \"239.1.1.1\", port: 5000 },\n      \
             outputs: [ { interface: \"r1\", group: \"239.2.2.x\", port: 6000 } ],\n    },\n  ],\n}\n",
            "line 6,",
            "rules[0].outputs[0].group",
        ),
    ];
    for (text, line, key) in cases {
        let mut d = Daemon::spawn(
            &t.relay,
            DaemonOpts {
                config: Some(text),
                ..Default::default()
            },
        );
        let st = d
            .wait_exit(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("mcrd kept running with a bad config:\n{}", d.log_text()));
        assert!(!st.success(), "exit status {st}");
        let log = d.log_text();
        assert!(
            log.contains(line) && log.contains(key),
            "the error names {key} at {line}:\n{log}"
        );
        assert!(
            !d.socket.exists(),
            "a socket was left behind at {}",
            d.socket.display()
        );
    }
}

#[test]
fn sighup_and_config_reload_apply_the_startup_file() {
    if !require_root("sighup_and_config_reload_apply_the_startup_file") {
        return;
    }
    let t = Relay3::new("chup");
    let ra = rule("a", "239.1.1.1", "239.2.2.1", 6001);
    let rb = rule("b", "239.1.1.2", "239.2.2.2", 6002);
    let d = start_with(&t, &config_of(std::slice::from_ref(&ra)));
    let file = d.config.clone().expect("startup file");
    let status: StatusReport = d.ctl_json(&["status"]);
    assert_eq!(status.config_file.as_deref(), file.to_str());
    let pid = nix::unistd::Pid::from_raw(status.pid as i32);
    let hup = || nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
    let names =
        |d: &Daemon| -> BTreeSet<String> { d.list().into_iter().filter_map(|r| r.name).collect() };

    // SIGHUP applies an added rule.
    std::fs::write(&file, config_of(&[ra.clone(), rb.clone()])).unwrap();
    hup();
    wait_for(Duration::from_secs(10), || {
        (names(&d) == BTreeSet::from(["a".into(), "b".into()])).then_some(())
    })
    .unwrap_or_else(|| panic!("SIGHUP did not add b: {:#?}", d.list()));
    d.wait_active(T);

    // `config reload` applies a removal.
    std::fs::write(&file, config_of(std::slice::from_ref(&rb))).unwrap();
    let out = d.ctl_ok(&["config", "reload"]);
    assert!(out.contains("0 added, 1 removed, 0 changed"), "{out}");
    assert_eq!(names(&d), BTreeSet::from(["b".into()]));

    // A broken file: refused with the reason, nothing changes.
    let before = d.list();
    std::fs::write(&file, "{\n  rules: [\n    { input: { interface: \"r0\", group: \"239.1.1.3\", port: 5000 }, outputz: [] },\n  ],\n}\n").unwrap();
    let e = d.ctl_err(&["config", "reload"]);
    assert!(
        e.contains("line 3,") && e.contains("rules[0].outputz"),
        "{e}"
    );
    assert!(e.contains(file.to_str().unwrap()), "names the file: {e}");
    assert_eq!(d.list(), before);

    // SIGHUP with the broken file: refused in the log, the daemon lives on.
    let refusals = |d: &Daemon| d.log_text().matches("reload refused").count();
    let n = refusals(&d);
    hup();
    wait_for(Duration::from_secs(10), || (refusals(&d) > n).then_some(()))
        .unwrap_or_else(|| panic!("no refusal logged for SIGHUP:\n{}", d.log_text()));
    assert_eq!(
        d.list(),
        before,
        "SIGHUP with a broken file changed the rules"
    );
    d.ctl_ok(&["ping"]);
    let s2: StatusReport = d.ctl_json(&["status"]);
    assert_eq!(s2.pid, status.pid, "the same daemon");
    // And it still relays.
    let r = recv(
        &t.dst,
        "239.2.2.2",
        6002,
        Some("d0"),
        &["--expect", "300", "--idle-timeout", "1"],
    );
    send(&t.src, "239.1.1.2", 5000, "s0", 300, 1000, 200, &[]);
    let rep = r.finish(T);
    assert_eq!((rep.unique, rep.lost), (300, 0), "{rep:?}");
}
