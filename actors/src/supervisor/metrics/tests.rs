use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcr::control::{ActorInfo, OutputStats, RuleStats, StatsReport, WorkerInfo, WorkerStats};
use mcr::ipc::WorkerCounters;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use super::super::metric_sources::{add_source, all as sources};
use super::http::{self, Request};
use super::render::{render, to_classic, Format, ProcessInfo, Snapshot};
use super::server_counters;

fn rule(i: usize, name: Option<&str>, packets: u64, outputs: usize) -> RuleStats {
    RuleStats {
        id: format!("rule-{i}"),
        name: name.map(str::to_string),
        interface: "eth0".into(),
        packets,
        bytes: packets * 100,
        errors: 1,
        outputs: (0..outputs)
            .map(|o| OutputStats {
                interface: format!("eth{}", o + 1),
                group: Ipv4Addr::new(239, 2, (i / 250) as u8, (i % 250) as u8 + 1),
                port: 6000 + o as u16,
                packets,
                bytes: packets * 100,
                errors: o as u64,
                pps: 0.0,
                bps: 0.0,
            })
            .collect(),
        ..Default::default()
    }
}

fn snapshot(rules: Vec<RuleStats>) -> Snapshot {
    Snapshot {
        version: "9.9.9".into(),
        instance_id: "0f2c6a8e-1111-4222-8333-444455556666".into(),
        rules: rules.len(),
        stats: Some(StatsReport {
            workers: vec![WorkerStats {
                interface: "eth0".into(),
                index: 0,
                pid: Some(42),
                counters: WorkerCounters {
                    recv: 7,
                    kernel_drops: 3,
                    ring_cqes: 11,
                    ..Default::default()
                },
                ..Default::default()
            }],
            rules,
        }),
        workers: Some(vec![WorkerInfo {
            interface: "eth0".into(),
            index: 0,
            pid: Some(42),
            core: None,
            state: "running".into(),
            uptime_secs: 12.5,
            restarts: 2,
            rules: 1,
            table_hash: String::new(),
            expected_hash: String::new(),
            resyncs: 0,
            last_heartbeat_ms: None,
            last_exit: None,
            backoff_ms: None,
        }]),
        actors: vec![
            ActorInfo {
                name: "stats".into(),
                state: "running".into(),
                restarts: 1,
                last_failure: None,
            },
            ActorInfo {
                name: "rib".into(),
                state: "restarting".into(),
                restarts: 4,
                last_failure: Some("boom".into()),
            },
        ],
        process: ProcessInfo::read(3.0),
    }
}

/// `promtool check metrics` on `text`: `Some(Err)` with its complaint,
/// `None` when promtool is not installed (CI installs it: there its
/// absence fails the test).
fn promtool(text: &str) -> Option<Result<(), String>> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is missing in CI (.ci/run installs package prometheus): {e}"
            );
            eprintln!("promtool not installed: exposition not checked by a real parser");
            return None;
        }
    };
    let mut stdin = child.stdin.take().expect("piped stdin");
    let t = text.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(t.as_bytes()));
    let out = child.wait_with_output().expect("promtool runs");
    writer.join().expect("writer").expect("write to promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(said)
    })
}

/// Panics with promtool's complaint if it refuses `text`; passes when
/// promtool is not installed outside CI (see [`promtool`]).
fn assert_promtool_accepts(text: &str) {
    if let Some(r) = promtool(text) {
        r.unwrap_or_else(|e| panic!("promtool refused:\n{e}\n{text}"));
    }
}

#[test]
fn a_scrape_names_every_rule_output_worker_and_actor() {
    let snap = Arc::new(snapshot(vec![
        rule(1, Some("video"), 10, 2),
        rule(2, None, 0, 0),
    ]));
    let text = render(snap, &[], Format::Classic);
    for line in [
        r#"mcr_build_info{version="9.9.9",instance_id="0f2c6a8e-1111-4222-8333-444455556666"} 1"#,
        "# TYPE mcr_rule_packets_total counter",
        r#"mcr_rule_packets_total{rule_id="rule-1",name="video",input_interface="eth0"} 10"#,
        r#"mcr_rule_bytes_total{rule_id="rule-1",name="video",input_interface="eth0"} 1000"#,
        r#"mcr_rule_packets_total{rule_id="rule-2",name="",input_interface="eth0"} 0"#,
        r#"mcr_output_packets_total{rule_id="rule-1",name="video",input_interface="eth0",output_interface="eth2",output_group="239.2.0.2",output_port="6001"} 10"#,
        r#"mcr_output_errors_total{rule_id="rule-1",name="video",input_interface="eth0",output_interface="eth2",output_group="239.2.0.2",output_port="6001"} 1"#,
        r#"mcr_worker_recv_packets_total{interface="eth0",index="0"} 7"#,
        r#"mcr_worker_kernel_drops_total{interface="eth0",index="0"} 3"#,
        r#"mcr_worker_ring_cqes_total{interface="eth0",index="0"} 11"#,
        r#"mcr_worker_restarts_total{interface="eth0",index="0"} 2"#,
        r#"mcr_worker_state{interface="eth0",index="0",state="running"} 1"#,
        r#"mcr_actor_restarts_total{actor="rib"} 4"#,
        r#"mcr_actor_up{actor="rib"} 0"#,
        r#"mcr_actor_up{actor="stats"} 1"#,
        r#"mcr_metrics_source_up{source="stats"} 1"#,
        "mcr_uptime_seconds 3.0",
        "mcr_rules 2",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
    assert!(text.contains("\nprocess_open_fds "), "{text}");
    assert!(!text.contains("# EOF"), "classic format has no EOF marker");
    assert_promtool_accepts(&text);
}

#[test]
fn openmetrics_counters_are_named_without_total_and_end_with_eof() {
    let text = render(
        Arc::new(snapshot(vec![rule(1, None, 5, 1)])),
        &[],
        Format::OpenMetrics,
    );
    assert!(text.contains("# TYPE mcr_rule_packets counter\n"), "{text}");
    assert!(text.contains("\nmcr_rule_packets_total{"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    // The classic text is the same samples under renamed families.
    let classic = to_classic(&text);
    let samples = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(samples(&text), samples(&classic));
    assert!(classic.contains("# HELP mcr_rule_packets_total Datagrams that matched the rule.\n# TYPE mcr_rule_packets_total counter\n"), "{classic}");
}

#[test]
fn missing_sources_are_reported_not_fatal() {
    let mut s = snapshot(vec![]);
    s.stats = None;
    s.workers = None;
    let text = render(Arc::new(s), &[], Format::Classic);
    assert!(
        text.contains("mcr_metrics_source_up{source=\"stats\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("mcr_metrics_source_up{source=\"workers\"} 0\n"),
        "{text}"
    );
    assert!(!text.contains("mcr_rule_packets_total{"), "{text}");
    assert_promtool_accepts(&text);
}

#[test]
fn label_values_from_operators_are_escaped() {
    let name = "a \"quoted\" back\\slash\nnew line";
    let text = render(
        Arc::new(snapshot(vec![rule(1, Some(name), 1, 1)])),
        &[],
        Format::Classic,
    );
    assert!(
        text.contains(r#"name="a \"quoted\" back\\slash\nnew line""#),
        "{text}"
    );
    assert_promtool_accepts(&text);
}

#[test]
fn a_protocol_registry_is_part_of_the_scrape() {
    let mut reg = Registry::with_prefix("mcr_test_proto");
    let queries: Counter = Counter::default();
    reg.register("queries_sent", "Queries sent.", queries.clone());
    queries.inc_by(3);
    let text = render(
        Arc::new(snapshot(vec![])),
        &[Arc::new(reg)],
        Format::Classic,
    );
    assert!(text.contains("# TYPE mcr_test_proto_queries_sent_total counter\nmcr_test_proto_queries_sent_total 3\n"), "{text}");
    assert_promtool_accepts(&text);
}

#[test]
fn sources_are_kept_by_name_and_the_endpoint_counts_itself() {
    let before = server_counters().scrapes.get();
    server_counters().scrapes.inc();
    let text = render(Arc::new(snapshot(vec![])), &sources(), Format::Classic);
    let line = format!("mcr_metrics_scrapes_total {}", before + 1);
    assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    // A second registration under the same name replaces the first.
    let n = sources().len();
    add_source("test-twice", Arc::new(Registry::default()));
    add_source("test-twice", Arc::new(Registry::default()));
    assert_eq!(sources().len(), n + 1);
}

#[test]
fn ten_thousand_rules_render_quickly() {
    let rules: Vec<RuleStats> = (0..10_000)
        .map(|i| rule(i, Some("feed"), i as u64, 2))
        .collect();
    let snap = Arc::new(snapshot(rules));
    let t0 = Instant::now();
    let text = render(snap, &[], Format::Classic);
    let took = t0.elapsed();
    eprintln!(
        "render of 10000 rules x 2 outputs: {took:?}, {} bytes, {} lines",
        text.len(),
        text.lines().count()
    );
    // 3 rule families + 3 output families of 2 each per rule.
    let samples = text
        .lines()
        .filter(|l| l.starts_with("mcr_rule_") || l.starts_with("mcr_output_"))
        .count();
    assert_eq!(samples, 10_000 * 3 + 20_000 * 3);
    // Generous for a debug build on a loaded machine; release is ~10x faster.
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn requests_other_than_get_metrics_are_refused() {
    let p = |s: &str| http::parse(s.as_bytes());
    assert_eq!(
        p("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
        Request::Metrics {
            format: Format::Classic,
            head: false
        }
    );
    assert_eq!(
        p("GET /metrics?x=1 HTTP/1.0\r\nACCEPT: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n"),
        Request::Metrics { format: Format::OpenMetrics, head: false }
    );
    assert_eq!(
        p("HEAD /metrics HTTP/1.1\r\n\r\n"),
        Request::Metrics {
            format: Format::Classic,
            head: true
        }
    );
    for (request, refusal) in [
        ("GET / HTTP/1.1\r\n\r\n", (404, "Not Found")),
        ("GET /metricsx HTTP/1.1\r\n\r\n", (404, "Not Found")),
        (
            "POST /metrics HTTP/1.1\r\n\r\n",
            (405, "Method Not Allowed"),
        ),
        ("GET /metrics\r\n\r\n", (400, "Bad Request")),
        (
            "GET /metrics HTTP/2\r\n\r\n",
            (505, "HTTP Version Not Supported"),
        ),
    ] {
        assert_eq!(
            p(request),
            Request::Refuse(refusal.0, refusal.1),
            "{request:?}"
        );
    }
    assert_eq!(
        http::parse(b"GET /metrics HTTP/1.1\r\n\xff\r\n\r\n"),
        Request::Refuse(400, "Bad Request")
    );
}

fn ask(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    // A refused request may be answered before all of it is written.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_scrapes_and_refuses_the_rest() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let scrape: http::Scrape =
        Arc::new(|f: Format| Box::pin(async move { Some(format!("body for {f:?}\n")) }));
    let refused = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let r = refused.clone();
    let on_refuse: http::OnRefuse = Arc::new(move || {
        r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    let server = tokio::spawn(http::serve(listener, scrape, on_refuse));
    let answers = tokio::task::spawn_blocking(move || {
        let big = format!(
            "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(http::MAX_REQUEST)
        );
        let t0 = Instant::now();
        let slow = ask(addr, b"GET /metrics HTTP/1.1\r\n");
        let slow_took = t0.elapsed();
        (
            ask(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            ask(
                addr,
                b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text\r\n\r\n",
            ),
            ask(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n"),
            ask(addr, b"GET /other HTTP/1.1\r\n\r\n"),
            ask(addr, big.as_bytes()),
            slow,
            slow_took,
        )
    })
    .await
    .expect("client");
    server.abort();
    let (ok, om, head, other, big, slow, slow_took) = answers;
    assert_eq!(
        refused.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "404, 431 and 408"
    );
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(
        ok.contains("Content-Type: text/plain; version=0.0.4"),
        "{ok}"
    );
    assert!(ok.contains("Content-Length: 17\r\n"), "{ok}");
    assert!(ok.ends_with("\r\n\r\nbody for Classic\n"), "{ok}");
    assert!(
        om.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{om}"
    );
    assert!(om.ends_with("body for OpenMetrics\n"), "{om}");
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    assert!(other.starts_with("HTTP/1.1 404 Not Found\r\n"), "{other}");
    assert!(big.starts_with("HTTP/1.1 431 "), "{big}");
    assert!(slow.starts_with("HTTP/1.1 408 "), "{slow}");
    assert!(
        slow_took >= http::READ_TIMEOUT && slow_took < http::READ_TIMEOUT * 3,
        "a client that never ends its request is dropped after the read timeout: {slow_took:?}"
    );
}
