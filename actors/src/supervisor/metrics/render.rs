//! A scrape's text: the daemon's snapshots encoded through
//! `prometheus-client`, in OpenMetrics 1.0 or in the classic Prometheus
//! text format 0.0.4.
//!
//! Owns: metric names, help texts and labels (the contract documented in
//! user_docs/OPERATIONS.md), and the one difference between the two
//! formats that matters to us: a counter's family is named without
//! `_total` in OpenMetrics and with it in the classic format.

use std::fmt::{self, Write as _};

use mcr::control::{ActorInfo, StatsReport, WorkerInfo};
use mcr::ipc::WorkerCounters;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// What one scrape shows, gathered before any text is built so that no
/// actor waits on the encoding.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub version: String,
    pub instance_id: String,
    /// Rules in the running configuration.
    pub rules: usize,
    /// `None`: the StatsActor did not answer (restarting).
    pub stats: Option<StatsReport>,
    /// `None`: the WorkerManager did not answer (restarting).
    pub workers: Option<Vec<WorkerInfo>>,
    pub actors: Vec<ActorInfo>,
    pub process: ProcessInfo,
}

/// The supervisor process, from /proc; a field is `None` where /proc
/// could not say.
#[derive(Clone, Debug, Default)]
pub struct ProcessInfo {
    pub rss_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_seconds: f64,
    pub uptime_seconds: f64,
}

impl ProcessInfo {
    /// Read /proc/self. Blocking file reads: call off the async workers.
    pub fn read(uptime_seconds: f64) -> ProcessInfo {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rss_bytes = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024);
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64);
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let max_fds = limits
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        ProcessInfo {
            rss_bytes,
            open_fds,
            max_fds,
            start_time_seconds: now - uptime_seconds,
            uptime_seconds,
        }
    }
}

/// The exposition formats a scraper can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/openmetrics-text; version=1.0.0` (what Prometheus asks
    /// for first).
    OpenMetrics,
    /// `text/plain; version=0.0.4`, for everything else (curl, promtool,
    /// older scrapers).
    Classic,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Every worker counter of `mcrctl stats`: metric name (without the
/// `mcr_worker_` prefix and the counter suffix), help, value.
type WorkerField = (&'static str, &'static str, fn(&WorkerCounters) -> u64);
const WORKER_FIELDS: &[WorkerField] = &[
    (
        "recv_packets",
        "Frames the kernel handed to the worker.",
        |c| c.recv,
    ),
    ("recv_bytes", "Bytes of the frames received.", |c| {
        c.recv_bytes
    }),
    ("matched_packets", "Datagrams that matched a rule.", |c| {
        c.matched
    }),
    ("no_match_packets", "UDP datagrams no rule matched.", |c| {
        c.no_match
    }),
    ("fragments", "IP fragments dropped (no reassembly).", |c| {
        c.fragments
    }),
    (
        "malformed_packets",
        "Truncated or malformed IPv4/UDP packets dropped.",
        |c| c.malformed,
    ),
    ("not_udp_packets", "IPv4 packets that are not UDP.", |c| {
        c.not_udp
    }),
    (
        "ttl_expired",
        "Route-mode outputs skipped because the TTL would reach 0.",
        |c| c.ttl_expired,
    ),
    (
        "gso_frames",
        "Received frames that were GSO batches of several datagrams.",
        |c| c.gso_frames,
    ),
    (
        "route_gso_skipped",
        "Route-mode outputs skipped for datagrams of a GSO batch.",
        |c| c.route_gso_skipped,
    ),
    ("buf_exhaust", "Receives that found no free buffer.", |c| {
        c.buf_exhaust
    }),
    (
        "kernel_drops",
        "Packets the kernel dropped on the worker's socket.",
        |c| c.kernel_drops,
    ),
    (
        "early_drops",
        "Frames the input's XDP program dropped while the worker's ring was nearly full.",
        |c| c.early_drops,
    ),
    (
        "sent_packets",
        "Datagrams handed to the kernel on outputs.",
        |c| c.sent,
    ),
    ("sent_bytes", "Bytes of the datagrams sent.", |c| {
        c.sent_bytes
    }),
    ("send_errors", "Sends the kernel refused.", |c| {
        c.send_errors
    }),
    (
        "send_backlog_drops",
        "Sends dropped because every send slot was busy.",
        |c| c.send_backlog_drops,
    ),
    (
        "output_full_drops",
        "Datagrams dropped for one output because its queue was full.",
        |c| c.output_full_drops,
    ),
    ("ring_submits", "io_uring submit calls.", |c| c.ring_submits),
    ("ring_sqes", "io_uring entries submitted.", |c| c.ring_sqes),
    ("ring_cqes", "io_uring completions reaped.", |c| c.ring_cqes),
];

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// One counter family from its rows.
fn counters<S: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (S, u64)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One gauge family from its rows.
fn gauges<S: EncodeLabelSet, V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (S, V)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The snapshot as a `prometheus-client` collector: encoded once per
/// scrape, straight from the snapshot, with no metric objects kept.
#[derive(Debug)]
pub struct SnapshotCollector(pub std::sync::Arc<Snapshot>);

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let s = &*self.0;
        let none: [(&str, &str); 0] = [];
        gauges(
            &mut enc,
            "mcr_build_info",
            "Version and instance id (a UUID per daemon start) of this mcrd; always 1.",
            [(
                [
                    ("version", s.version.as_str()),
                    ("instance_id", s.instance_id.as_str()),
                ],
                1i64,
            )],
        )?;
        gauges(
            &mut enc,
            "mcr_rules",
            "Rules in the running configuration.",
            [(none, s.rules as i64)],
        )?;
        let sources = [
            ("stats", s.stats.is_some()),
            ("workers", s.workers.is_some()),
        ];
        gauges(
            &mut enc,
            "mcr_metrics_source_up",
            "1 when this scrape got the source's data, 0 when the actor was restarting.",
            sources.map(|(n, up)| ([("source", n)], i64::from(up))),
        )?;
        self.process(&mut enc)?;
        self.actors(&mut enc)?;
        if let Some(w) = &s.workers {
            workers(&mut enc, w)?;
        }
        if let Some(st) = &s.stats {
            stats(&mut enc, st)?;
        }
        Ok(())
    }
}

impl SnapshotCollector {
    fn process(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let p = &self.0.process;
        let none: [(&str, &str); 0] = [];
        let opt = |v: Option<u64>| v.map(|v| (none, i64::try_from(v).unwrap_or(i64::MAX)));
        gauges(
            enc,
            "process_resident_memory_bytes",
            "Resident memory of the supervisor process.",
            opt(p.rss_bytes),
        )?;
        gauges(
            enc,
            "process_open_fds",
            "Open file descriptors of the supervisor process.",
            opt(p.open_fds),
        )?;
        gauges(
            enc,
            "process_max_fds",
            "Limit of open file descriptors of the supervisor process.",
            opt(p.max_fds),
        )?;
        gauges(
            enc,
            "process_start_time_seconds",
            "Start time of the supervisor, in seconds since the Unix epoch.",
            [(none, p.start_time_seconds)],
        )?;
        gauges(
            enc,
            "mcr_uptime_seconds",
            "Seconds since the supervisor started.",
            [(none, p.uptime_seconds)],
        )
    }

    fn actors(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let a = &self.0.actors;
        counters(
            enc,
            "mcr_actor_restarts",
            "Restarts of a supervision-tree actor since the daemon started.",
            a.iter()
                .map(|a| ([("actor", a.name.as_str())], u64::from(a.restarts))),
        )?;
        gauges(
            enc,
            "mcr_actor_up",
            "1 while the actor is running, 0 while it restarts or after it failed.",
            a.iter().map(|a| {
                let up = i64::from(a.state == "running");
                ([("actor", a.name.as_str())], up)
            }),
        )
    }
}

fn workers(enc: &mut DescriptorEncoder, ws: &[WorkerInfo]) -> fmt::Result {
    let index: Vec<String> = ws.iter().map(|w| w.index.to_string()).collect();
    let key = |i: usize| {
        let w = &ws[i];
        vec![
            ("interface", w.interface.as_str()),
            ("index", index[i].as_str()),
        ]
    };
    counters(
        enc,
        "mcr_worker_restarts",
        "Restarts of the worker process since the daemon started.",
        (0..ws.len()).map(|i| (key(i), u64::from(ws[i].restarts))),
    )?;
    gauges(
        enc,
        "mcr_worker_state",
        "1 for the worker's current state (starting, running, restarting, stopping, idle).",
        (0..ws.len()).map(|i| {
            let mut l: Labels = key(i);
            l.push(("state", ws[i].state.as_str()));
            (l, 1i64)
        }),
    )?;
    gauges(
        enc,
        "mcr_worker_uptime_seconds",
        "Seconds since the worker process started.",
        (0..ws.len()).map(|i| (key(i), ws[i].uptime_secs)),
    )
}

fn stats(enc: &mut DescriptorEncoder, st: &StatsReport) -> fmt::Result {
    let index: Vec<String> = st.workers.iter().map(|w| w.index.to_string()).collect();
    let key = |i: usize| {
        [
            ("interface", st.workers[i].interface.as_str()),
            ("index", index[i].as_str()),
        ]
    };
    let mut name = String::new();
    for (field, help, get) in WORKER_FIELDS {
        name.clear();
        let _ = write!(name, "mcr_worker_{field}");
        counters(
            enc,
            &name,
            help,
            (0..st.workers.len()).map(|i| (key(i), get(&st.workers[i].counters))),
        )?;
    }
    // Label values are borrowed from the report; ports and groups are
    // formatted once per output, not once per family.
    counters(
        enc,
        "mcr_rule_packets",
        "Datagrams that matched the rule.",
        st.rules.iter().map(|r| (rule_labels(r), r.packets)),
    )?;
    counters(
        enc,
        "mcr_rule_bytes",
        "Bytes of the datagrams that matched the rule.",
        st.rules.iter().map(|r| (rule_labels(r), r.bytes)),
    )?;
    counters(
        enc,
        "mcr_rule_errors",
        "Send errors on the rule's outputs.",
        st.rules.iter().map(|r| (rule_labels(r), r.errors)),
    )?;
    let texts: Vec<Vec<(String, String)>> = st
        .rules
        .iter()
        .map(|r| {
            r.outputs
                .iter()
                .map(|o| (o.group.to_string(), o.port.to_string()))
                .collect()
        })
        .collect();
    let outputs = || {
        st.rules.iter().zip(&texts).flat_map(move |(r, t)| {
            r.outputs.iter().zip(t).map(move |(o, (group, port))| {
                let mut l = rule_labels(r);
                l.push(("output_interface", o.interface.as_str()));
                l.push(("output_group", group.as_str()));
                l.push(("output_port", port.as_str()));
                (l, o)
            })
        })
    };
    counters(
        enc,
        "mcr_output_packets",
        "Datagrams sent on the output.",
        outputs().map(|(l, o)| (l, o.packets)),
    )?;
    counters(
        enc,
        "mcr_output_bytes",
        "Bytes sent on the output.",
        outputs().map(|(l, o)| (l, o.bytes)),
    )?;
    counters(
        enc,
        "mcr_output_errors",
        "Sends on the output the kernel refused.",
        outputs().map(|(l, o)| (l, o.errors)),
    )
}

fn rule_labels(r: &mcr::control::RuleStats) -> Labels<'_> {
    vec![
        ("rule_id", r.id.as_str()),
        ("name", r.name.as_deref().unwrap_or("")),
        ("input_interface", r.interface.as_str()),
    ]
}

/// The whole text of a scrape: the snapshot, then each extra registry
/// (protocol counters), in `format`.
pub fn render(
    snapshot: std::sync::Arc<Snapshot>,
    extra: &[std::sync::Arc<Registry>],
    format: Format,
) -> String {
    let mut main = Registry::default();
    main.register_collector(Box::new(SnapshotCollector(snapshot)));
    let mut out = String::new();
    // Writing into a String cannot fail; an encoder error would be a bug
    // in a metric name, and the scrape then shows what came before it.
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &main);
    for r in extra {
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, r);
    }
    match format {
        Format::OpenMetrics => {
            let _ = prometheus_client::encoding::text::encode_eof(&mut out);
            out
        }
        Format::Classic => to_classic(&out),
    }
}

/// OpenMetrics text (as `prometheus-client` writes it) to the classic
/// format: a counter family `x` becomes `x_total` in its HELP and TYPE
/// lines (the samples already are `x_total`), and UNIT and EOF lines go.
/// Everything else is the same in both.
pub fn to_classic(om: &str) -> String {
    let mut out = String::with_capacity(om.len() + om.len() / 64);
    // A HELP line waits for its TYPE line, which says whether to rename.
    let mut help: Option<(&str, &str)> = None;
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, text)) = help.take() {
                let _ = writeln!(out, "# HELP {name} {text}");
            }
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let name = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            if let Some((_, text)) = help.take() {
                let _ = writeln!(out, "# HELP {name} {text}");
            }
            let _ = writeln!(out, "# TYPE {name} {kind}");
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if let Some((name, text)) = help {
        let _ = writeln!(out, "# HELP {name} {text}");
    }
    out
}
