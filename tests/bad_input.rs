//! What `mcrd` does with bad input: refused `mcrctl add` fields, garbage
//! and silent clients on the control socket, unprivileged clients and an
//! unprivileged daemon, malformed frames on the wire, and outputs whose
//! interface is missing. In every case the daemon keeps running and what
//! was working keeps working.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{inject, Daemon, Scratch};
use common::{bin, ip, require_root, rule_config, wait_for, Netns, Relay3};
use mcr::control::{Response, RuleInfo};
use mcr::ipc::WorkerCounters;
use mcr::wire::UdpPacketSpec;

fn start_with(t: &Relay3, config: &str) -> Daemon {
    Daemon::with_config(&t.relay, config)
}

fn good_rule() -> String {
    "{ rules: [ { name: \"good\", input: { interface: \"r0\", group: \"239.1.1.1\", port: 5000 }, \
     outputs: [ { interface: \"r1\", group: \"239.2.2.2\", port: 6000 } ] } ] }"
        .to_string()
}

#[test]
fn add_refuses_bad_fields_and_keeps_the_running_rules() {
    if !require_root("add_refuses_bad_fields_and_keeps_the_running_rules") {
        return;
    }
    let t = Relay3::new("badadd");
    let d = start_with(&t, &good_rule());
    let before = d.list();
    let good_id = before[0].id.clone();

    let add = |ifc: &str, group: &str, port: &str, outputs: &str, extra: &[&str]| {
        let mut a = vec![
            "add",
            "--input-interface",
            ifc,
            "--input-group",
            group,
            "--input-port",
            port,
            "--outputs",
            outputs,
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_string).collect::<Vec<String>>()
    };
    // (what, mcrctl arguments, exit status, words stderr must hold)
    // Status 2: refused by mcrctl itself; 1: refused by the daemon.
    let cases: Vec<(&str, Vec<String>, i32, Vec<&str>)> = vec![
        (
            "bad input group",
            add("r0", "239.1.1.x", "5000", "239.2.2.9:6000:r1", &[]),
            2,
            vec!["--input-group", "239.1.1.x"],
        ),
        (
            "bad output group",
            add("r0", "239.1.1.9", "5000", "239.2.2.x:6000:r1", &[]),
            2,
            vec!["--outputs", "group"],
        ),
        (
            "input port 70000",
            add("r0", "239.1.1.9", "70000", "239.2.2.9:6000:r1", &[]),
            2,
            vec!["--input-port", "70000"],
        ),
        (
            "output port 70000",
            add("r0", "239.1.1.9", "5000", "239.2.2.9:70000:r1", &[]),
            2,
            vec!["port", "70000"],
        ),
        (
            "input interface with /",
            add("r0/x", "239.1.1.9", "5000", "239.2.2.9:6000:r1", &[]),
            1,
            vec!["input.interface", "r0/x"],
        ),
        (
            "input interface too long",
            add(
                "averyveryverylongname",
                "239.1.1.9",
                "5000",
                "239.2.2.9:6000:r1",
                &[],
            ),
            1,
            vec!["input.interface", "15"],
        ),
        (
            "output interface with /",
            add("r0", "239.1.1.9", "5000", "239.2.2.9:6000:r1/x", &[]),
            1,
            vec!["outputs[0].interface", "r1/x"],
        ),
        (
            "output spec missing a part",
            add("r0", "239.1.1.9", "5000", "239.2.2.9:6000", &[]),
            2,
            vec!["--outputs", "GROUP:PORT:INTERFACE"],
        ),
        (
            "self loop",
            add("r0", "239.1.1.9", "5000", "239.1.1.9:5000:r0", &[]),
            1,
            vec!["outputs[0].interface", "self loop"],
        ),
        (
            "duplicate input",
            add(
                "r0",
                "239.1.1.1",
                "5000",
                "239.2.2.9:6000:r1",
                &["--rule-id", "other"],
            ),
            1,
            vec!["input", "duplicate input", &good_id],
        ),
        (
            "duplicate name",
            add(
                "r0",
                "239.1.1.9",
                "5000",
                "239.2.2.9:6000:r1",
                &["--name", "good"],
            ),
            1,
            vec!["name", "good", "already used"],
        ),
        (
            "duplicate id",
            add(
                "r0",
                "239.1.1.9",
                "5000",
                "239.2.2.9:6000:r1",
                &["--rule-id", &good_id],
            ),
            1,
            vec!["id", &good_id, "already exists"],
        ),
        (
            "bad rule id",
            add(
                "r0",
                "239.1.1.9",
                "5000",
                "239.2.2.9:6000:r1",
                &["--rule-id", "no spaces"],
            ),
            1,
            vec!["rule id", "no spaces"],
        ),
        (
            "ttl 0",
            add("r0", "239.1.1.9", "5000", "239.2.2.9:6000:r1:0", &[]),
            1,
            vec!["outputs[0].ttl", "TTL 0"],
        ),
        (
            "loopback output",
            add("r0", "239.1.1.9", "5000", "127.0.0.1:6000:r1", &[]),
            1,
            vec!["outputs[0].group", "loopback"],
        ),
        (
            "bad mode",
            add(
                "r0",
                "239.1.1.9",
                "5000",
                "239.2.2.9:6000:r1",
                &["--mode", "teleport"],
            ),
            2,
            vec!["--mode", "teleport"],
        ),
    ];
    for (what, args, code, words) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = d.ctl(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(code),
            "{what}: exit status; stderr: {err}"
        );
        assert!(
            o.stdout.is_empty(),
            "{what}: printed {}",
            String::from_utf8_lossy(&o.stdout)
        );
        for w in words {
            assert!(
                err.contains(w),
                "{what}: stderr does not mention {w:?}: {err}"
            );
        }
        assert_eq!(d.list(), before, "{what} changed the rules");
    }
    let e = d.ctl_err(&["remove", "--rule-id", "nope"]);
    assert!(e.contains("nope"), "{e}");
    let e = d.ctl_err(&["remove", "--name", "nobody-has-this"]);
    assert!(e.contains("nobody-has-this"), "{e}");
    assert_eq!(d.list(), before);
    // The good rule still relays.
    t.relay_all(300, 1000, 200);
}

fn connect(d: &Daemon) -> UnixStream {
    let s = UnixStream::connect(&d.socket).expect("connect to the control socket");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Send `line` (a newline is added) and read one response line.
fn exchange(r: &mut BufReader<UnixStream>, line: &str) -> Option<Response> {
    let mut w = r.get_ref().try_clone().unwrap();
    w.write_all(line.as_bytes()).unwrap();
    w.write_all(b"\n").unwrap();
    read_response(r)
}

fn read_response(r: &mut BufReader<UnixStream>) -> Option<Response> {
    let mut resp = String::new();
    match r.read_line(&mut resp) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(
            serde_json::from_str(&resp)
                .unwrap_or_else(|e| panic!("not a response line ({e}): {resp}")),
        ),
    }
}

fn error_of(r: Option<Response>, what: &str) -> String {
    let r = r.unwrap_or_else(|| panic!("{what}: no reply"));
    assert!(!r.ok, "{what}: accepted: {r:?}");
    r.error
        .unwrap_or_else(|| panic!("{what}: an error without a message"))
}

#[test]
fn control_socket_survives_garbage_and_silent_clients() {
    if !require_root("control_socket_survives_garbage_and_silent_clients") {
        return;
    }
    let t = Relay3::new("garbage");
    let d = start_with(&t, &good_rule());
    let before = d.list();

    // (a) not JSON: an error reply, and the connection still serves.
    let mut c = BufReader::new(connect(&d));
    let e = error_of(exchange(&mut c, "{nope"), "not JSON");
    assert!(e.contains("JSON"), "{e}");
    let pong =
        exchange(&mut c, r#"{"version":1,"cmd":"ping"}"#).expect("the connection stays usable");
    assert!(pong.ok, "{pong:?}");
    // (b) an unknown command.
    let e = error_of(
        exchange(&mut c, r#"{"version":1,"cmd":"launch"}"#),
        "unknown command",
    );
    assert!(e.contains("unknown command") && e.contains("launch"), "{e}");
    // (c) a protocol version we do not speak.
    let e = error_of(
        exchange(&mut c, r#"{"version":99,"cmd":"ping"}"#),
        "version 99",
    );
    assert!(e.contains("version 99") && e.contains("version 1"), "{e}");
    // A misspelt field of a command that takes fields.
    let e = error_of(
        exchange(&mut c, r#"{"version":1,"cmd":"remove","rule_idd":"x"}"#),
        "unknown field",
    );
    assert!(e.contains("rule_idd"), "{e}");
    drop(c);

    // (d) a line past the limit without a newline: an error about the
    // limit, then close.
    let s = connect(&d);
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while sent < mcr::control::MAX_REQUEST + (1 << 20) {
            if w.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let mut r = BufReader::new(s);
    let e = error_of(read_response(&mut r), "over-long line");
    assert!(
        e.contains("limit") && e.contains(&mcr::control::MAX_REQUEST.to_string()),
        "{e}"
    );
    let mut rest = Vec::new();
    let closed = r.read_to_end(&mut rest);
    assert!(
        matches!(closed, Ok(0)) || closed.is_err(),
        "the connection is closed after an oversized request: {closed:?} {rest:?}"
    );
    writer.join().unwrap();

    // (e) a silent client and a client stuck mid-line hold up nobody.
    let _silent = connect(&d);
    let mut half = connect(&d);
    half.write_all(br#"{"version":1,"cmd":"#).unwrap();
    // Clients stuck in the middle of long lines, more of them than may
    // read long lines at once, hold up nobody either.
    // Their writers block once the daemon stops reading a line that waits
    // for a permit, so each writes from its own thread until shut down.
    let long: Vec<(UnixStream, std::thread::JoinHandle<()>)> = (0..4)
        .map(|_| {
            let c = connect(&d);
            let mut w = c.try_clone().unwrap();
            let t = std::thread::spawn(move || {
                let _ = w.write_all(br#"{"version":1,"cmd":"config-check","text":""#);
                let _ = w.write_all(&vec![b' '; mcr::control::LARGE_REQUEST + 4096]);
            });
            (c, t)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    d.ctl_ok(&["ping"]);
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "ping took {:?} beside silent clients and long lines",
        t0.elapsed()
    );

    for (c, t) in long {
        let _ = c.shutdown(std::net::Shutdown::Both);
        t.join().unwrap();
    }

    // (f) 50 clients at once.
    let children: Vec<_> = (0..50)
        .map(|_| {
            Command::new(bin("mcrctl"))
                .arg("--socket")
                .arg(&d.socket)
                .args(["--json", "list"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn mcrctl")
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "client {i}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let l: Vec<RuleInfo> =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("client {i}: {e}"));
        assert_eq!(l, before, "client {i}");
    }

    d.ctl_ok(&["ping"]);
    assert_eq!(d.list(), before, "the rules are unchanged");
    t.relay_all(300, 1000, 200);
}

#[test]
fn mutations_need_root_or_the_control_group() {
    if !require_root("mutations_need_root_or_the_control_group") {
        return;
    }
    let t = Relay3::new("perm");
    let d = start_with(&t, &good_rule());
    let before = d.list();
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let mcrctl = bin("mcrctl");
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(&mcrctl)
            .arg("--socket")
            .arg(&d.socket)
            .args(args)
            .output()
            .expect("setpriv")
    };
    let o = as_nobody(&["--json", "list"]);
    assert!(
        o.status.success(),
        "reading works for anyone who can connect: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let l: Vec<RuleInfo> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(l, before);
    assert!(as_nobody(&["stats"]).status.success());

    let mutations: [&[&str]; 4] = [
        &[
            "add",
            "--input-interface",
            "r0",
            "--input-group",
            "239.1.1.9",
            "--input-port",
            "5000",
            "--outputs",
            "239.2.2.9:6000:r1",
        ],
        &["remove", "--name", "good"],
        &["log-level", "set", "--global", "debug"],
        &["config", "reload"],
    ];
    for m in mutations {
        let o = as_nobody(m);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{m:?}: {err}");
        assert!(
            err.contains("permission denied") && err.contains("65534"),
            "{m:?}: {err}"
        );
    }
    assert_eq!(d.list(), before, "rules unchanged");
    assert!(
        d.log_text()
            .contains("refused a mutating request from uid 65534"),
        "the refusal is logged:\n{}",
        d.log_text()
    );
    // Root still may.
    d.ctl_ok(&["remove", "--name", "good"]);
    assert!(d.list().is_empty());
}

#[test]
fn missing_cap_net_raw_gives_one_clear_message() {
    if !require_root("missing_cap_net_raw_gives_one_clear_message") {
        return;
    }
    let ns = Netns::new("nocap");
    let dir = Scratch::new("nocap");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let sock = dir.path("control.sock");
    let mut c = ns.cmd("setpriv");
    c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(bin("mcrd"))
        .arg("supervisor")
        .arg("--socket")
        .arg(&sock)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let t0 = Instant::now();
    let status = wait_for(Duration::from_secs(5), || child.try_wait().unwrap());
    let Some(status) = status else {
        let _ = child.kill();
        panic!("mcrd without CAP_NET_RAW kept running");
    };
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!status.success(), "{status}: {err}");
    assert!(err.contains("CAP_NET_RAW"), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("mcrd:")).count(),
        1,
        "one message:\n{err}"
    );
    assert!(!err.to_lowercase().contains("panicked"), "{err}");
    assert!(!sock.exists(), "a socket was created");
}

fn counters(d: &Daemon) -> WorkerCounters {
    let st = d.stats();
    assert_eq!(st.workers.len(), 1, "{st:?}");
    st.workers[0].counters.clone()
}

#[test]
fn malformed_frames_fragments_and_non_udp_are_counted_not_fatal() {
    if !require_root("malformed_frames_fragments_and_non_udp_are_counted_not_fatal") {
        return;
    }
    let t = Relay3::new("malf");
    let d = start_with(
        &t,
        &rule_config("239.1.1.1", 5000, &[("r1", "239.2.2.2", 6000)]),
    );
    let w0 = d.workers();
    assert_eq!(w0.len(), 1);
    // The worker's first stats report.
    let c0 = d.wait_worker_counters(Duration::from_secs(5), |_| true);

    let pkt = |f: &dyn Fn(&mut UdpPacketSpec)| {
        let mut s = UdpPacketSpec::new(ip("10.10.1.1"), ip("239.1.1.1"), 4000, 5000);
        f(&mut s);
        s.build(&[0xab; 64])
    };
    let good = pkt(&|_| {});
    let mut packets = Vec::new();
    // Fragments: three first fragments (MF set), two later ones (offset != 0).
    for i in 0..3 {
        packets.push(pkt(&|s| {
            s.frag = 0x2000;
            s.ident = 100 + i;
        }));
    }
    for i in 0..2 {
        packets.push(pkt(&|s| {
            s.frag = 0x0010;
            s.ident = 200 + i;
        }));
    }
    // Not UDP: two TCP, one ICMP.
    packets.push(pkt(&|s| s.protocol = 6));
    packets.push(pkt(&|s| s.protocol = 6));
    packets.push(pkt(&|s| s.protocol = 1));
    // Malformed: IHL 3, IP version 6 in an IPv4 frame, UDP length beyond
    // the IP payload, IP total length beyond the bytes sent.
    let mut ihl3 = good.clone();
    ihl3[0] = 0x43;
    let mut v6 = good.clone();
    v6[0] = 0x65;
    let mut udp_long = good.clone();
    let ul = u16::from_be_bytes([udp_long[24], udp_long[25]]) + 100;
    udp_long[24..26].copy_from_slice(&ul.to_be_bytes());
    let mut ip_long = good.clone();
    let tl = u16::from_be_bytes([ip_long[2], ip_long[3]]) + 200;
    ip_long[2..4].copy_from_slice(&tl.to_be_bytes());
    packets.extend([ihl3, v6, udp_long, ip_long]);
    inject(&t.src, "s0", &packets);

    let want = (5u64, 3u64, 4u64);
    let delta = |c: &WorkerCounters| {
        (
            c.fragments - c0.fragments,
            c.not_udp - c0.not_udp,
            c.malformed - c0.malformed,
        )
    };
    let got = wait_for(Duration::from_secs(5), || {
        let c = counters(&d);
        (delta(&c) == want).then_some(c)
    });
    let c1 = got.unwrap_or_else(|| {
        panic!(
            "(fragments, not_udp, malformed) grew by {:?}, want {want:?}: {:?}",
            delta(&counters(&d)),
            counters(&d)
        )
    });
    assert_eq!(c1.matched, c0.matched, "none of them matched the rule");
    assert_eq!(c1.recv - c0.recv, 12, "every frame was seen once: {c1:?}");

    // No crash, no restart.
    let w1 = d.workers();
    assert_eq!(w1.len(), 1);
    assert_eq!(w1[0].pid, w0[0].pid, "the worker survived");
    assert_eq!(w1[0].restarts, 0);
    d.ctl_ok(&["ping"]);

    // And it still relays, every packet.
    t.relay_all(1000, 2000, 300);
    let c2 = wait_for(Duration::from_secs(5), || {
        let c = counters(&d);
        (c.matched - c0.matched == 1000).then_some(c)
    })
    .unwrap_or_else(|| panic!("matched: {:?}", counters(&d)));
    assert_eq!(delta(&c2), want, "good traffic is not miscounted");
}

#[test]
fn output_interface_missing_shows_on_the_rule_and_the_rest_forwards() {
    if !require_root("output_interface_missing_shows_on_the_rule_and_the_rest_forwards") {
        return;
    }
    let t = Relay3::new("noout");
    let d = start_with(
        &t,
        &rule_config(
            "239.1.1.1",
            5000,
            &[("r1", "239.2.2.2", 6000), ("nope0", "239.2.2.3", 6000)],
        ),
    );
    let l = d.list();
    assert_eq!(l.len(), 1);
    let r = &l[0];
    assert_eq!(r.outputs.len(), 2);
    assert_eq!(r.outputs[0].problem, None, "{r:#?}");
    let p = r.outputs[1]
        .problem
        .clone()
        .unwrap_or_else(|| panic!("no problem shown for nope0: {r:#?}"));
    assert!(p.contains("nope0"), "{p}");
    let table = d.ctl_ok(&["list"]);
    assert!(
        table.contains(&format!("[{p}]")),
        "the table shows the problem: {table}"
    );

    // r1 still gets everything.
    t.relay_all(500, 2000, 200);

    let out = |st: &mcr::control::StatsReport, i: &str| {
        st.rules
            .first()
            .and_then(|r| r.outputs.iter().find(|o| o.interface == i))
            .cloned()
    };
    let st = wait_for(Duration::from_secs(5), || {
        let st = d.stats();
        let done = out(&st, "r1").is_some_and(|o| o.packets >= 500)
            && out(&st, "nope0").is_some_and(|o| o.errors >= 500);
        done.then_some(st)
    })
    .unwrap_or_else(|| panic!("stats did not catch up: {:?}", d.stats()));
    let outs = &st.rules[0].outputs;
    let ok = outs
        .iter()
        .find(|o| o.interface == "r1")
        .expect("r1 output");
    let bad = outs
        .iter()
        .find(|o| o.interface == "nope0")
        .expect("nope0 output");
    assert_eq!((ok.packets, ok.errors), (500, 0), "{st:?}");
    assert_eq!(
        bad.errors, 500,
        "every packet is an error on the missing output: {st:?}"
    );
    // REFERENCE.md: an output's `packets` are those handed to the kernel;
    // nothing can be handed to an interface that does not exist.
    assert_eq!(
        (bad.packets, bad.bytes),
        (0, 0),
        "the missing output claims traffic it never sent: {st:?}"
    );
    assert_eq!(st.rules[0].packets, 500);
}

#[test]
fn unknown_request_fields_are_refused_not_ignored() {
    if !require_root("unknown_request_fields_are_refused_not_ignored") {
        return;
    }
    // A client that believes `config-save` takes a file must be told it
    // does not, not have the daemon overwrite its startup file instead.
    let t = Relay3::new("unkf");
    let d = start_with(&t, &good_rule());
    let startup = d.config.clone().expect("startup file");
    let original = std::fs::read_to_string(&startup).unwrap();
    d.ctl_ok(&[
        "add",
        "--input-interface",
        "r0",
        "--input-group",
        "239.1.1.9",
        "--input-port",
        "5000",
        "--outputs",
        "239.2.2.9:6000:r1",
    ]);
    let elsewhere = Scratch::new("unkf");
    let target = elsewhere.path("copy.json5");
    let mut c = BufReader::new(connect(&d));
    let req = serde_json::json!({ "version": 1, "cmd": "config-save", "file": target });
    let r = exchange(&mut c, &req.to_string()).expect("a reply");
    assert!(
        !r.ok,
        "a request with a field the command does not take was carried out: {r:?}"
    );
    assert!(r.error.unwrap_or_default().contains("file"));
    assert_eq!(
        std::fs::read_to_string(&startup).unwrap(),
        original,
        "the startup file was overwritten"
    );
    let req = serde_json::json!({ "version": 1, "cmd": "list", "filter": "r9" });
    let r = exchange(&mut c, &req.to_string()).expect("a reply");
    assert!(!r.ok, "list with an unknown field: {r:?}");
}

/// A client stuck in the middle of a line over `LARGE_REQUEST`: it writes
/// the start of a `config check` and then stalls until shut down (its
/// writer blocks once the daemon stops reading).
fn stalled_large_client(d: &Daemon) -> (UnixStream, std::thread::JoinHandle<()>) {
    let c = connect(d);
    let mut w = c.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        let _ = w.write_all(br#"{"version":1,"cmd":"config-check","text":""#);
        let _ = w.write_all(&vec![b' '; mcr::control::LARGE_REQUEST + 4096]);
    });
    (c, t)
}

#[test]
fn a_large_request_behind_stalled_ones_is_told_busy_and_ping_is_not_slowed() {
    if !require_root("a_large_request_behind_stalled_ones_is_told_busy_and_ping_is_not_slowed") {
        return;
    }
    let t = Relay3::new("busy");
    let d = start_with(&t, &good_rule());
    // Two stalled large lines take both permits.
    let stalled: Vec<_> = (0..2).map(|_| stalled_large_client(&d)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let (third, writer) = stalled_large_client(&d);
    let t0 = Instant::now();
    // While the third waits for a permit, small requests are served at once.
    while t0.elapsed() < Duration::from_secs(3) {
        let p = Instant::now();
        d.ctl_ok(&["ping"]);
        assert!(
            p.elapsed() < Duration::from_secs(1),
            "ping took {:?} while large lines waited",
            p.elapsed()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // It is told why it is turned away, well before the 30 s idle limit.
    let mut r = BufReader::new(third.try_clone().unwrap());
    let e = error_of(
        read_response(&mut r),
        "a large line behind two stalled ones",
    );
    let waited = t0.elapsed();
    assert!(e.starts_with("busy:") && e.contains("retry"), "{e}");
    assert!(
        waited < Duration::from_secs(15),
        "the busy reply came after {waited:?}"
    );
    let _ = third.shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
    for (c, w) in stalled {
        let _ = c.shutdown(std::net::Shutdown::Both);
        w.join().unwrap();
    }
    // With the stalled clients gone their permits are free again: a large
    // request is read and answered.
    let mut c = BufReader::new(connect(&d));
    let pad = " ".repeat(mcr::control::LARGE_REQUEST + 4096);
    let req = serde_json::json!({ "version": 1, "cmd": "config-check", "text": format!("{{ rules: [] }}{pad}") });
    let r = exchange(&mut c, &req.to_string()).expect("a reply to a large request");
    assert!(r.ok, "{r:?}");
    d.ctl_ok(&["ping"]);
}
