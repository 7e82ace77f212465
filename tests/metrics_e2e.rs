//! The Prometheus endpoint end to end: a real `mcrd` relaying real
//! traffic in network namespaces, scraped over HTTP, its text checked by
//! `promtool check metrics` (Debian package `prometheus`, installed by
//! .ci/run), its counters compared with the traffic sent, its listener
//! moved by a config reload and restored after its actor fails, and the
//! time of a 10,000-rule scrape.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{Daemon, DaemonOpts};
use common::{require_root, unique_port, wait_for, Netns, Relay3};

const T: Duration = Duration::from_secs(20);

/// An HTTP exchange from inside `ns` (the daemon listens on its loopback):
/// the status line and the body, or the connection error.
fn http(ns: &Netns, port: u16, request: &str) -> Result<(String, String), String> {
    let ns_name = ns.name.clone();
    let request = request.to_string();
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{ns_name}")).map_err(|e| e.to_string())?;
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
        let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(T)).map_err(|e| e.to_string())?;
        s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).map_err(|e| e.to_string())?;
        let text = String::from_utf8(out).map_err(|e| e.to_string())?;
        let (head, body) = text.split_once("\r\n\r\n").ok_or("no end of head")?;
        let status = head.lines().next().unwrap_or("").to_string();
        Ok((status, body.to_string()))
    })
    .join()
    .unwrap_or_else(|_| Err("scrape thread panicked".into()))
}

fn scrape(ns: &Netns, port: u16) -> String {
    let (status, body) = http(ns, port, "GET /metrics HTTP/1.1\r\nHost: mcr\r\n\r\n")
        .unwrap_or_else(|e| panic!("scrape of port {port}: {e}"));
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    body
}

/// `promtool check metrics` must accept `text` without a complaint.
fn promtool_accepts(text: &str) {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool missing in CI: {e}"
            );
            eprintln!("promtool not installed: exposition not checked");
            return;
        }
    };
    let mut stdin = child.stdin.take().expect("stdin");
    let t = text.to_string();
    let w = std::thread::spawn(move || stdin.write_all(t.as_bytes()));
    let out = child.wait_with_output().expect("promtool");
    let _ = w.join();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool refused the scrape: {said}"
    );
}

/// The value of the sample whose line starts with `prefix` (name and
/// labels).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.trim().parse().ok())
}

fn config(port: u16) -> String {
    format!(
        "{{ rules: [ {{ id: \"video\", name: \"feed\", input: {{ interface: \"r0\", group: \"239.1.1.1\", port: 5000 }},\n\
         outputs: [ {{ interface: \"r1\", group: \"239.2.2.2\", port: 6000 }} ] }} ],\n\
         metrics: {{ listen: \"127.0.0.1:{port}\" }} }}\n"
    )
}

#[test]
fn scrapes_count_relayed_traffic_and_promtool_accepts_them() {
    if !require_root("scrapes_count_relayed_traffic_and_promtool_accepts_them") {
        return;
    }
    let t = Relay3::new("prom");
    let port = unique_port();
    let d = Daemon::start(
        &t.relay,
        DaemonOpts {
            config: Some(&config(port)),
            fault_injection: true,
            ..Default::default()
        },
    );
    d.wait_active(T);
    let rule = r#"mcr_rule_packets_total{rule_id="video",name="feed",input_interface="r0"}"#;
    let output = r#"mcr_output_packets_total{rule_id="video",name="feed",input_interface="r0",output_interface="r1",output_group="239.2.2.2",output_port="6000"}"#;

    let before = scrape(&t.relay, port);
    promtool_accepts(&before);
    assert_eq!(sample(&before, rule), Some(0.0), "{before}");
    assert!(before.contains("mcr_build_info{version=\""), "{before}");
    assert!(
        before.contains("mcr_actor_up{actor=\"stats\"} 1"),
        "{before}"
    );

    t.relay_all(300, 2000, 500);
    // Workers report every 200 ms in tests; the scrape follows.
    let after = wait_for(T, || {
        let text = scrape(&t.relay, port);
        (sample(&text, rule) == Some(300.0)).then_some(text)
    })
    .unwrap_or_else(|| {
        panic!(
            "rule counter never reached 300:\n{}",
            scrape(&t.relay, port)
        )
    });
    promtool_accepts(&after);
    assert_eq!(sample(&after, output), Some(300.0), "{after}");
    let w = r#"mcr_worker_matched_packets_total{interface="r0",index="0"}"#;
    assert_eq!(sample(&after, w), Some(300.0), "{after}");
    assert_eq!(
        sample(
            &after,
            r#"mcr_worker_state{interface="r0",index="0",state="running"}"#
        ),
        Some(1.0),
        "{after}"
    );

    // Prometheus asks for OpenMetrics and gets it.
    let (status, om) = http(
        &t.relay,
        port,
        "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n",
    )
    .expect("openmetrics scrape");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        om.ends_with("# EOF\n") && om.contains("# TYPE mcr_rule_packets counter\n"),
        "{om}"
    );
    // Anything but GET /metrics is refused.
    let (status, _) = http(&t.relay, port, "GET / HTTP/1.1\r\n\r\n").expect("404");
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    // A reload that moves the endpoint rebinds it; the old port closes.
    let new_port = unique_port();
    let path = d.config.clone().expect("config file");
    std::fs::write(&path, config(new_port)).expect("rewrite config");
    d.ctl_ok(&["config", "reload"]);
    let moved = wait_for(Duration::from_secs(5), || {
        http(&t.relay, new_port, "GET /metrics HTTP/1.1\r\n\r\n").ok()
    });
    assert!(moved.is_some_and(|(s, b)| s == "HTTP/1.1 200 OK" && b.contains(rule)));
    assert!(
        http(&t.relay, port, "GET /metrics HTTP/1.1\r\n\r\n").is_err(),
        "the old port still answers after the reload"
    );

    // The endpoint's actor fails: it is restarted and listens again, and
    // the scrape shows the restart.
    d.ctl_ok(&["fault", "panic-actor", "metrics"]);
    let healed = wait_for(Duration::from_secs(10), || {
        let (s, b) = http(&t.relay, new_port, "GET /metrics HTTP/1.1\r\n\r\n").ok()?;
        (s == "HTTP/1.1 200 OK"
            && sample(&b, r#"mcr_actor_restarts_total{actor="metrics"}"#) == Some(1.0))
        .then_some(b)
    })
    .expect("the metrics endpoint is back after its actor panicked");
    promtool_accepts(&healed);
    assert_eq!(
        sample(&healed, rule),
        Some(300.0),
        "counters survive: {healed}"
    );
}

#[test]
fn a_scrape_of_ten_thousand_rules() {
    if !require_root("a_scrape_of_ten_thousand_rules") {
        return;
    }
    let ns = Netns::new("prom10k");
    let port = unique_port();
    // Rules on an interface that does not exist stay pending: no worker,
    // no 10,000 group joins, yet every rule is in every scrape.
    let rules: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                "{{ name: \"feed {i}\", input: {{ interface: \"nx0\", group: \"239.{}.{}.{}\", port: 5000 }}, outputs: [ {{ interface: \"nx1\", group: \"239.200.0.1\", port: {} }} ] }}",
                1 + i / 65_536, (i / 256) % 256, i % 256, 1000 + i % 50_000
            )
        })
        .collect();
    let text = format!(
        "{{ rules: [\n{}\n], metrics: {{ listen: \"127.0.0.1:{port}\" }} }}",
        rules.join(",\n")
    );
    let _d = Daemon::start(
        &ns,
        DaemonOpts {
            config: Some(&text),
            ..Default::default()
        },
    );
    let mut times = Vec::new();
    let mut body = String::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        body = scrape(&ns, port);
        times.push(t0.elapsed());
    }
    let rule_samples = body
        .lines()
        .filter(|l| l.starts_with("mcr_rule_packets_total{"))
        .count();
    let output_samples = body
        .lines()
        .filter(|l| l.starts_with("mcr_output_packets_total{"))
        .count();
    assert_eq!((rule_samples, output_samples), (10_000, 10_000));
    times.sort();
    eprintln!(
        "scrape of 10000 rules over HTTP: best {:?}, median {:?}, worst {:?}, {} bytes",
        times[0],
        times[2],
        times[4],
        body.len()
    );
    promtool_accepts(&body);
    assert!(times[2] < Duration::from_secs(10), "{times:?}");
}
