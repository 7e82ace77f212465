//! The operator's tooling around the daemon: shell completions and man
//! pages generated from the real command lines, and `mcrctl stats --watch`
//! as a live view that ends quietly on Ctrl-C or a closed pipe.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::daemon::{Daemon, DaemonOpts, Scratch};
use common::{bin, require_root, Netns};

fn run(name: &str, args: &[&str]) -> String {
    let o = Command::new(bin(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    assert!(
        o.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("utf-8 output")
}

#[test]
fn completions_cover_real_subcommands_in_every_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let s = run("mcrctl", &["completions", shell]);
        let long = |o: &str| match shell {
            "fish" => format!("-l {o}"),
            _ => format!("--{o}"),
        };
        for word in [
            "stats",
            "subscribe",
            "wedge-actor",
            &long("watch"),
            &long("socket"),
        ] {
            assert!(s.contains(word), "{shell} completion lacks {word}");
        }
    }
    assert!(run("mcrctl", &["completions", "zsh"]).starts_with("#compdef mcrctl"));
    assert!(run("mcrctl", &["completions", "fish"]).contains("complete -c mcrctl"));
    let o = Command::new(bin("mcrctl"))
        .args(["completions", "tcsh"])
        .output()
        .expect("run mcrctl");
    assert_eq!(
        o.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn bash_accepts_the_bash_completion_script() {
    let dir = Scratch::new("compl");
    let path = dir.write("mcrctl.bash", &run("mcrctl", &["completions", "bash"]));
    let o = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("run bash");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Sourcing it registers the completion function for mcrctl.
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p mcrctl", path.display()))
        .output()
        .expect("run bash");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("mcrctl"),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn man_pages_for_each_binary_list_their_options() {
    let cases = [
        (
            "mcrctl",
            ".TH mcrctl 1",
            &["\\-\\-socket", "stats", "completions"][..],
        ),
        ("mcrd", ".TH mcrd 8", &["supervisor", "demo"][..]),
        ("mcrgen", ".TH mcrgen 1", &["send", "recv", "inject"][..]),
    ];
    let dir = Scratch::new("man");
    for (name, th, words) in cases {
        let page = run(name, &["man"]);
        assert!(
            page.lines().take(5).any(|l| l.starts_with(th)),
            "{name}: {:?}",
            &page[..page.len().min(120)]
        );
        for w in words {
            assert!(page.contains(w), "{name}(man) lacks {w}");
        }
        // The page renders with man(1) where a real one is installed
        // (minimal images ship none, or a stub).
        if man_db() {
            let f = dir.write(&format!("{name}.man"), &page);
            let o = Command::new("man")
                .arg("-l")
                .arg(&f)
                .env("MANPAGER", "cat")
                .env("PAGER", "cat")
                .env("MANWIDTH", "100")
                .output()
                .expect("run man");
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert!(text.contains(words[0].replace('\\', "").as_str()), "{text}");
        }
    }
}

fn man_db() -> bool {
    Command::new("man")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"man "))
}

/// Lines of a child's stdout, collected by a thread.
fn collect(out: std::process::ChildStdout) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            l.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });
    lines
}

fn frames(lines: &Mutex<Vec<String>>) -> usize {
    lines
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|l| l.starts_with("mcrctl stats --watch: every"))
        .count()
}

const CONFIG: &str = r#"{
  rules: [
    { name: "a", input: { interface: "nosuch0", group: "239.1.1.1", port: 5000 },
      outputs: [{ interface: "nosuch1", group: "239.2.2.1", port: 6000 }] },
  ],
}"#;

#[test]
fn stats_watch_redraws_until_interrupted() {
    if !require_root("stats_watch_redraws_until_interrupted") {
        return;
    }
    let ns = Netns::new("watch");
    let d = Daemon::start(
        &ns,
        DaemonOpts {
            config: Some(CONFIG),
            ..Default::default()
        },
    );
    let mut child = Command::new(bin("mcrctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["stats", "--watch", "--interval", "0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mcrctl");
    let lines = collect(child.stdout.take().expect("stdout"));
    let t0 = Instant::now();
    while frames(&lines) < 4 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{} frames in 10 s",
            frames(&lines)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Each frame is the full table, with the rule and the worker header.
    let all = lines.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
    assert!(all.matches("BUF_EXHAUST").count() >= 4, "{all}");
    assert!(all.contains("nosuch0"), "{all}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let t1 = Instant::now();
    let st = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(3),
            "still running after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Ended by the signal's default action, or by exiting cleanly.
    assert!(
        st.signal() == Some(nix::libc::SIGINT) || st.code() == Some(0),
        "{st}"
    );
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("read stderr");
    assert!(err.is_empty(), "mcrctl said on SIGINT: {err}");
}

#[test]
fn stats_watch_ends_quietly_when_the_pipe_closes() {
    if !require_root("stats_watch_ends_quietly_when_the_pipe_closes") {
        return;
    }
    let ns = Netns::new("watchp");
    let d = Daemon::start(
        &ns,
        DaemonOpts {
            config: Some(CONFIG),
            ..Default::default()
        },
    );
    // `head` reads the first frame's header and goes away.
    let o = Command::new("bash")
        .args(["-o", "pipefail", "-c"])
        .arg(format!(
            "{} --socket {} stats --watch --interval 0.1 | head -1",
            bin("mcrctl").display(),
            d.socket.display()
        ))
        .output()
        .expect("run sh");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("mcrctl stats --watch: every 0.1 s"),
        "{out}"
    );
    assert!(
        o.status.success(),
        "status {}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
