//! `mcrctl`: the control client of `mcrd`. Every command is one request
//! over the control socket; results print as tables, or as JSON with
//! `--json`. Any error exits non-zero with the daemon's message on stderr.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use mcr::control::client::{Client, ClientError};
use mcr::control::{
    ConfigCheckResult, ConfigText, Done, EventKind, FaultRequest, MrouteEntry, Request, RuleInfo,
    StatsReport, StatusReport, VersionInfo, WorkerInfo, DEFAULT_SOCKET, PROTOCOL_VERSION,
};
use mcr::logging::{Facility, LogLevels, Severity};
use mcr::rule::{parse_output_spec, OutputMode, RuleInput};

#[derive(Parser)]
#[command(
    name = "mcrctl",
    version,
    about = "Control client for the MCR multicast relay daemon (mcrd)"
)]
struct Cli {
    /// Control socket of the daemon.
    #[arg(long, global = true, env = "MCR_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for the daemon.
    #[arg(long, global = true, default_value_t = 15.0)]
    timeout: f64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check that the daemon answers.
    Ping,
    /// Client, daemon and protocol versions.
    Version,
    /// Add a static rule.
    Add(AddArgs),
    /// Remove a rule by id or by name.
    Remove {
        #[arg(long, conflicts_with = "name", required_unless_present = "name")]
        rule_id: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// Rules with their state.
    List,
    /// Per-rule, per-output and per-worker counters and rates.
    Stats,
    /// Worker processes.
    #[command(alias = "list-workers")]
    Workers,
    /// The daemon and its actor tree.
    Status,
    /// The compiled forwarding table.
    Mroute,
    /// Show, check, load, save or reload configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Get or set log levels (supervisor and every worker).
    #[command(subcommand)]
    LogLevel(LogCmd),
    /// Stream events as JSON lines until interrupted.
    Subscribe {
        /// Comma-separated classes: rules, workers, interfaces, config, actors (default: all).
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
    },
    /// Inject a fault (daemon must run with --enable-fault-injection).
    #[command(subcommand)]
    Fault(FaultCmd),
}

#[derive(Args)]
struct AddArgs {
    #[arg(long)]
    input_interface: String,
    #[arg(long)]
    input_group: String,
    /// 0 = any destination port.
    #[arg(long)]
    input_port: String,
    /// GROUP:PORT:INTERFACE[:TTL], comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    outputs: Vec<String>,
    #[arg(long)]
    name: Option<String>,
    /// A custom rule id (default: a stable hash of the input).
    #[arg(long)]
    rule_id: Option<String>,
    /// Only packets from this source address.
    #[arg(long)]
    source: Option<String>,
    /// How outputs send: republish (new datagram) or route (original packet, TTL-1).
    #[arg(long, default_value = "republish")]
    mode: String,
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// The running config as JSON5.
    Show,
    /// Validate a config file.
    Check { file: PathBuf },
    /// Apply a file's rules: merge by rule id, or --replace all rules.
    Load {
        file: PathBuf,
        #[arg(long)]
        replace: bool,
    },
    /// Write the running config to FILE, or to the daemon's startup file.
    Save { file: Option<PathBuf> },
    /// Re-read the daemon's startup config file (like SIGHUP).
    Reload,
}

#[derive(Subcommand)]
enum LogCmd {
    Get,
    Set {
        #[arg(long, conflicts_with = "facility")]
        global: Option<String>,
        #[arg(long, requires = "level")]
        facility: Option<String>,
        #[arg(long)]
        level: Option<String>,
    },
}

#[derive(Subcommand)]
enum FaultCmd {
    /// SIGKILL a worker.
    KillWorker {
        #[arg(long)]
        interface: Option<String>,
    },
    /// Make a worker stop forwarding and heartbeating.
    StallWorker {
        #[arg(long)]
        interface: Option<String>,
    },
    /// Make a worker drop a rule from its table behind the supervisor's back.
    CorruptTable {
        #[arg(long)]
        interface: Option<String>,
    },
    /// Drop the next N table messages to a worker.
    DropIpc {
        count: u32,
        #[arg(long)]
        interface: Option<String>,
    },
    /// Make an actor panic (root, config, rib, workers, stats, control, loglevel, netlink, worker/IFACE/N).
    PanicActor { name: String },
    /// Delete the control socket file.
    #[command(alias = "close-socket")]
    DeleteSocket,
    /// Make a worker panic right after each of its next N starts.
    CrashLoop {
        count: u32,
        #[arg(long)]
        interface: Option<String>,
    },
}

/// A failure, with the exit status it deserves.
struct Fail(u8, String);

impl From<ClientError> for Fail {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Connect { .. } => Fail(3, e.to_string()),
            _ => Fail(1, e.to_string()),
        }
    }
}

fn usage(msg: String) -> Fail {
    Fail(2, msg)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            eprintln!("mcrctl: {msg}");
            ExitCode::from(code)
        }
    }
}

fn connect(cli: &Cli) -> Result<Client, Fail> {
    let t = Duration::from_secs_f64(cli.timeout.max(0.1));
    Ok(Client::connect(&cli.socket, t)?)
}

fn print_json(v: &impl serde::Serialize) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("mcrctl: cannot encode JSON: {e}"),
    }
}

fn done(cli: &Cli, d: Done) {
    if cli.json {
        print_json(&d);
    } else {
        println!("{}", d.message);
    }
}

fn read_file(p: &Path) -> Result<String, Fail> {
    let meta = std::fs::metadata(p).map_err(|e| Fail(1, format!("{}: {e}", p.display())))?;
    if meta.len() > mcr::control::MAX_REQUEST as u64 - 4096 {
        return Err(Fail(
            1,
            format!(
                "{}: {} bytes; a config sent over the control socket is limited to 1 MiB (use the startup file and `config reload` for larger ones)",
                p.display(),
                meta.len()
            ),
        ));
    }
    std::fs::read_to_string(p).map_err(|e| Fail(1, format!("{}: {e}", p.display())))
}

fn ipv4(flag: &str, s: &str) -> Result<Ipv4Addr, Fail> {
    s.parse()
        .map_err(|_| usage(format!("{flag}: {s:?} is not an IPv4 address")))
}

fn run(cli: &Cli) -> Result<(), Fail> {
    match &cli.cmd {
        Cmd::Ping => {
            let r: String = connect(cli)?.request(&Request::Ping)?;
            if cli.json {
                print_json(&serde_json::json!({ "reply": r }));
            } else {
                println!("{r}");
            }
        }
        Cmd::Version => {
            let v: VersionInfo = connect(cli)?.request(&Request::Version)?;
            if cli.json {
                print_json(&serde_json::json!({
                    "client": env!("CARGO_PKG_VERSION"),
                    "client_protocol": PROTOCOL_VERSION,
                    "daemon": v.daemon,
                    "protocol": v.protocol,
                    "ipc": v.ipc,
                }));
            } else {
                println!(
                    "mcrctl {} (control protocol {PROTOCOL_VERSION})",
                    env!("CARGO_PKG_VERSION")
                );
                println!(
                    "mcrd   {} (control protocol {}, worker IPC {})",
                    v.daemon, v.protocol, v.ipc
                );
            }
        }
        Cmd::Add(a) => {
            let port: u16 = a.input_port.parse().map_err(|_| {
                usage(format!(
                    "--input-port: {:?} is not a port number in 0..65535",
                    a.input_port
                ))
            })?;
            let mode = OutputMode::parse(&a.mode)
                .ok_or_else(|| usage(format!("--mode: {:?} is not republish or route", a.mode)))?;
            let mut outputs = Vec::new();
            for spec in &a.outputs {
                let mut o =
                    parse_output_spec(spec).map_err(|e| usage(format!("--outputs: {e}")))?;
                o.mode = mode;
                outputs.push(o);
            }
            let req = Request::Add {
                id: a.rule_id.clone(),
                name: a.name.clone(),
                input: RuleInput {
                    interface: a.input_interface.clone(),
                    group: ipv4("--input-group", &a.input_group)?,
                    port,
                    source: a
                        .source
                        .as_deref()
                        .map(|s| ipv4("--source", s))
                        .transpose()?,
                },
                outputs,
            };
            let d: Done = connect(cli)?.request(&req)?;
            done(cli, d);
        }
        Cmd::Remove { rule_id, name } => {
            let d: Done = connect(cli)?.request(&Request::Remove {
                id: rule_id.clone(),
                name: name.clone(),
            })?;
            done(cli, d);
        }
        Cmd::List => {
            let rules: Vec<RuleInfo> = connect(cli)?.request(&Request::List)?;
            if cli.json {
                print_json(&rules);
            } else {
                print_rules(&rules);
            }
        }
        Cmd::Stats => {
            let s: StatsReport = connect(cli)?.request(&Request::Stats)?;
            if cli.json {
                print_json(&s);
            } else {
                print_stats(&s);
            }
        }
        Cmd::Workers => {
            let w: Vec<WorkerInfo> = connect(cli)?.request(&Request::Workers)?;
            if cli.json {
                print_json(&w);
            } else {
                print_workers(&w);
            }
        }
        Cmd::Status => {
            let s: StatusReport = connect(cli)?.request(&Request::Status)?;
            if cli.json {
                print_json(&s);
            } else {
                print_status(&s);
            }
        }
        Cmd::Mroute => {
            let m: Vec<MrouteEntry> = connect(cli)?.request(&Request::Mroute)?;
            if cli.json {
                print_json(&m);
            } else {
                let mut t =
                    Table::new(&["INPUT", "GROUP:PORT", "SOURCE", "OUTPUTS", "ORIGIN", "RULE"]);
                for e in &m {
                    t.row(vec![
                        e.interface.clone(),
                        format!("{}:{}", e.group, port_str(e.port)),
                        e.source
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "*".into()),
                        e.outputs.join(", "),
                        e.origin.clone(),
                        e.rule_id.clone(),
                    ]);
                }
                t.print();
            }
        }
        Cmd::Config(c) => config(cli, c)?,
        Cmd::LogLevel(l) => log_level(cli, l)?,
        Cmd::Subscribe { events } => {
            let mut kinds = Vec::new();
            for e in events {
                kinds.push(EventKind::parse(e).map_err(|m| usage(format!("--events: {m}")))?);
            }
            let mut c = connect(cli)?;
            let _: serde_json::Value = c.request(&Request::Subscribe { events: kinds })?;
            c.set_timeout(None).map_err(|e| Fail(1, e.to_string()))?;
            let stdout = std::io::stdout();
            loop {
                match c.next_event()? {
                    Some(ev) => {
                        let mut out = stdout.lock();
                        let line = serde_json::to_string(&ev).unwrap_or_default();
                        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                            return Ok(());
                        }
                    }
                    None => continue,
                }
            }
        }
        Cmd::Fault(f) => {
            let req = match f {
                FaultCmd::KillWorker { interface } => FaultRequest::KillWorker {
                    interface: interface.clone(),
                },
                FaultCmd::StallWorker { interface } => FaultRequest::StallWorker {
                    interface: interface.clone(),
                },
                FaultCmd::CorruptTable { interface } => FaultRequest::CorruptTable {
                    interface: interface.clone(),
                },
                FaultCmd::DropIpc { count, interface } => FaultRequest::DropIpc {
                    count: *count,
                    interface: interface.clone(),
                },
                FaultCmd::PanicActor { name } => FaultRequest::PanicActor { name: name.clone() },
                FaultCmd::DeleteSocket => FaultRequest::DeleteSocket,
                FaultCmd::CrashLoop { count, interface } => FaultRequest::CrashLoop {
                    count: *count,
                    interface: interface.clone(),
                },
            };
            let d: Done = connect(cli)?.request(&Request::Fault(req))?;
            done(cli, d);
        }
    }
    Ok(())
}

fn config(cli: &Cli, c: &ConfigCmd) -> Result<(), Fail> {
    match c {
        ConfigCmd::Show => {
            let t: ConfigText = connect(cli)?.request(&Request::ConfigShow)?;
            if cli.json {
                print_json(&t);
            } else {
                print!("{}", t.text);
            }
        }
        ConfigCmd::Check { file } => {
            let text = read_file(file)?;
            let r: ConfigCheckResult = connect(cli)?.request(&Request::ConfigCheck { text })?;
            if cli.json {
                print_json(&r);
            } else if r.valid {
                println!("{}: valid ({} rules)", file.display(), r.rules);
            } else {
                for e in &r.errors {
                    eprintln!("{}: {e}", file.display());
                }
            }
            if !r.valid {
                return Err(Fail(
                    1,
                    format!(
                        "{}: {} problem(s); see above",
                        file.display(),
                        r.errors.len()
                    ),
                ));
            }
        }
        ConfigCmd::Load { file, replace } => {
            let text = read_file(file)?;
            let d: Done = connect(cli)?.request(&Request::ConfigLoad {
                text,
                replace: *replace,
            })?;
            done(cli, d);
        }
        ConfigCmd::Save { file: Some(f) } => {
            let t: ConfigText = connect(cli)?.request(&Request::ConfigShow)?;
            // Write beside the target and rename, so a failure never
            // leaves half a config file.
            let tmp = f.with_extension("mcrctl-tmp");
            std::fs::write(&tmp, &t.text)
                .map_err(|e| Fail(1, format!("writing {}: {e}", tmp.display())))?;
            std::fs::rename(&tmp, f)
                .map_err(|e| Fail(1, format!("replacing {}: {e}", f.display())))?;
            done(
                cli,
                Done {
                    message: format!("running config saved to {}", f.display()),
                    id: None,
                },
            );
        }
        ConfigCmd::Save { file: None } => {
            let d: Done = connect(cli)?.request(&Request::ConfigSave)?;
            done(cli, d);
        }
        ConfigCmd::Reload => {
            let d: Done = connect(cli)?.request(&Request::ConfigReload)?;
            done(cli, d);
        }
    }
    Ok(())
}

fn log_level(cli: &Cli, l: &LogCmd) -> Result<(), Fail> {
    match l {
        LogCmd::Get => {
            let lv: LogLevels = connect(cli)?.request(&Request::LogLevelGet)?;
            if cli.json {
                print_json(&lv);
            } else {
                let mut t = Table::new(&["FACILITY", "LEVEL"]);
                t.row(vec!["(global)".into(), lv.global.to_string()]);
                for f in Facility::ALL {
                    let (lvl, how) = match lv.facilities.get(&f) {
                        Some(s) => (*s, ""),
                        None => (lv.global, " (global)"),
                    };
                    t.row(vec![f.to_string(), format!("{lvl}{how}")]);
                }
                t.print();
            }
        }
        LogCmd::Set {
            global,
            facility,
            level,
        } => {
            let (facility, level) = match (global, facility, level) {
                (Some(g), None, _) => (None, g),
                (None, Some(f), Some(l)) => (
                    Some(
                        f.parse::<Facility>()
                            .map_err(|e| usage(format!("--facility: {e}")))?,
                    ),
                    l,
                ),
                _ => {
                    return Err(usage(
                        "log-level set needs --global LEVEL, or --facility F --level LEVEL".into(),
                    ))
                }
            };
            let level: Severity = level.parse().map_err(|e| usage(format!("level: {e}")))?;
            let d: Done = connect(cli)?.request(&Request::LogLevelSet { facility, level })?;
            done(cli, d);
        }
    }
    Ok(())
}

fn port_str(p: u16) -> String {
    if p == 0 {
        "*".into()
    } else {
        p.to_string()
    }
}

fn print_rules(rules: &[RuleInfo]) {
    let mut t = Table::new(&["ID", "NAME", "INPUT", "OUTPUTS", "STATE"]);
    for r in rules {
        let input = format!(
            "{} {}:{}{}",
            r.input.interface,
            r.input.group,
            port_str(r.input.port),
            r.input
                .source
                .map(|s| format!(" from {s}"))
                .unwrap_or_default()
        );
        let outs: Vec<String> = r
            .outputs
            .iter()
            .map(|o| {
                let mut s = format!(
                    "{}:{}@{}",
                    o.output.group,
                    port_str(o.output.port),
                    o.output.interface
                );
                if let Some(ttl) = o.output.ttl {
                    s.push_str(&format!(" ttl {ttl}"));
                }
                if o.output.mode == OutputMode::Route {
                    s.push_str(" route");
                }
                if let Some(p) = &o.problem {
                    s.push_str(&format!(" [{p}]"));
                }
                s
            })
            .collect();
        let state = match &r.reason {
            Some(why) => format!("{} ({why})", r.state.as_str()),
            None => r.state.as_str().to_string(),
        };
        t.row(vec![
            r.id.clone(),
            r.name.clone().unwrap_or_default(),
            input,
            outs.join(", "),
            state,
        ]);
    }
    t.print();
}

fn human(n: f64) -> String {
    if n >= 1e9 {
        format!("{:.2}G", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

fn print_stats(s: &StatsReport) {
    let mut t = Table::new(&[
        "RULE", "NAME", "OUTPUT", "PACKETS", "BYTES", "PPS", "BPS", "ERRORS",
    ]);
    for r in &s.rules {
        t.row(vec![
            r.id.clone(),
            r.name.clone().unwrap_or_default(),
            format!("(in) {}", r.interface),
            r.packets.to_string(),
            r.bytes.to_string(),
            human(r.pps),
            human(r.bps),
            r.errors.to_string(),
        ]);
        for o in &r.outputs {
            t.row(vec![
                String::new(),
                String::new(),
                format!("{}:{}@{}", o.group, port_str(o.port), o.interface),
                o.packets.to_string(),
                o.bytes.to_string(),
                human(o.pps),
                human(o.bps),
                o.errors.to_string(),
            ]);
        }
    }
    t.print();
    println!();
    let mut w = Table::new(&[
        "WORKER",
        "PID",
        "RECV",
        "MATCHED",
        "NO_MATCH",
        "FRAGMENTS",
        "MALFORMED",
        "NOT_UDP",
        "BUF_EXHAUST",
        "KERNEL_DROPS",
        "SENT",
        "SEND_ERR",
        "RX_PPS",
        "TX_PPS",
    ]);
    for x in &s.workers {
        let c = &x.counters;
        w.row(vec![
            format!("{}#{}", x.interface, x.index),
            x.pid.map(|p| p.to_string()).unwrap_or_default(),
            c.recv.to_string(),
            c.matched.to_string(),
            c.no_match.to_string(),
            c.fragments.to_string(),
            c.malformed.to_string(),
            c.not_udp.to_string(),
            c.buf_exhaust.to_string(),
            c.kernel_drops.to_string(),
            c.sent.to_string(),
            c.send_errors.to_string(),
            human(x.recv_pps),
            human(x.sent_pps),
        ]);
    }
    w.print();
}

fn print_workers(ws: &[WorkerInfo]) {
    let mut t = Table::new(&[
        "WORKER",
        "PID",
        "CORE",
        "STATE",
        "UPTIME",
        "RESTARTS",
        "RULES",
        "TABLE_HASH",
        "EXPECTED",
        "RESYNCS",
        "HEARTBEAT",
        "LAST_EXIT",
    ]);
    for w in ws {
        t.row(vec![
            format!("{}#{}", w.interface, w.index),
            w.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            w.core.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
            match w.backoff_ms {
                Some(ms) => format!("{} (in {ms} ms)", w.state),
                None => w.state.clone(),
            },
            format!("{:.0}s", w.uptime_secs),
            w.restarts.to_string(),
            w.rules.to_string(),
            w.table_hash.clone(),
            w.expected_hash.clone(),
            w.resyncs.to_string(),
            w.last_heartbeat_ms
                .map(|m| format!("{m} ms ago"))
                .unwrap_or_else(|| "-".into()),
            w.last_exit.clone().unwrap_or_default(),
        ]);
    }
    t.print();
}

fn print_status(s: &StatusReport) {
    println!("mcrd {} pid {} up {:.0}s", s.version, s.pid, s.uptime_secs);
    println!(
        "config: {}   rules: {}   workers: {}   fault injection: {}",
        s.config_file.as_deref().unwrap_or("(none)"),
        s.rules,
        s.workers,
        if s.fault_injection { "on" } else { "off" }
    );
    let mut t = Table::new(&["ACTOR", "STATE", "RESTARTS", "LAST_FAILURE"]);
    for a in &s.actors {
        t.row(vec![
            a.name.clone(),
            a.state.clone(),
            a.restarts.to_string(),
            a.last_failure.clone().unwrap_or_default(),
        ]);
    }
    t.print();
}

/// A plain text table with columns sized to their widest cell.
struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: &[&str]) -> Table {
        Table {
            head: head.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, r: Vec<String>) {
        self.rows.push(r);
    }

    fn print(&self) {
        let mut w: Vec<usize> = self.head.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if let Some(x) = w.get_mut(i) {
                    *x = (*x).max(c.chars().count());
                }
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    s.push_str(c);
                } else {
                    s.push_str(&format!("{c:<width$}  ", width = w[i]));
                }
            }
            println!("{}", s.trim_end());
        };
        line(&self.head);
        for r in &self.rows {
            line(r);
        }
        if self.rows.is_empty() {
            println!("(none)");
        }
    }
}
