//! What each `mcrctl` command does: build its request, send it, and hand
//! the result to `render` (tables) or print it as JSON (`--json`).

use std::io::Read;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use mcr::control::client::Client;
use mcr::control::{
    ConfigCheckResult, ConfigText, Done, EventKind, FaultRequest, MrouteEntry, Request, RuleInfo,
    StatsReport, StatusReport, VersionInfo, WorkerInfo, PROTOCOL_VERSION,
};
use mcr::igmp::instance::{GroupRow, InterfaceRow};
use mcr::logging::{Facility, LogLevels, Severity};
use mcr::pim::instance::{
    AssertSnapshot, InterfaceSnapshot, NeighborSnapshot, RegisterReport, RpSnapshot,
    UpstreamSnapshot,
};
use mcr::rule::{parse_output_spec, OutputMode, RuleInput};

use clap::CommandFactory;

use crate::args::{Cli, Cmd, CompletionShell, ConfigCmd, FaultCmd, IgmpCmd, LogCmd, PimCmd};
use crate::{igmp, out, pim_render, render, Fail};

/// The result as JSON with `--json`, else as `text` renders it.
fn show<T: serde::Serialize>(
    cli: &Cli,
    v: &T,
    text: impl FnOnce(&T) -> String,
) -> Result<(), Fail> {
    if cli.json {
        out::json(v)
    } else {
        out::text(&text(v))
    }
}

fn done(cli: &Cli, d: Done) -> Result<(), Fail> {
    // Warnings go to stderr whatever the format, so a script reading the
    // result on stdout still sees them and the exit status stays 0.
    for w in &d.warnings {
        eprintln!("warning: {w}");
    }
    if cli.json {
        out::json(&d)
    } else {
        out::text(&format!("{}\n", d.message))
    }
}

fn usage(msg: String) -> Fail {
    Fail(2, msg)
}

fn connect(cli: &Cli) -> Result<Client, Fail> {
    let t = Duration::from_secs_f64(cli.timeout.max(0.1));
    Ok(Client::connect(&cli.socket, t)?)
}

/// Longest config text that `config check` and `config load` send: the
/// largest configuration the daemon accepts at all, so any file it could
/// start with can also be loaded (the control request limit has room for
/// it, escaped).
const MAX_CONFIG_TEXT: u64 = mcr::config::MAX_CONFIG_BYTES as u64;

/// Read a config file for the daemon, refusing it before reading more than
/// `MAX_CONFIG_TEXT`: the size the file system reports is no bound
/// (`/dev/zero`, pipes and `/proc` files all say 0).
fn read_file(p: &Path) -> Result<String, Fail> {
    let fail = |e: std::io::Error| Fail(1, format!("{}: {e}", p.display()));
    let too_big = |size: String| {
        Fail(
            1,
            format!(
                "{}: {size}; a configuration is limited to {} MiB ({MAX_CONFIG_TEXT} bytes)",
                p.display(),
                MAX_CONFIG_TEXT >> 20
            ),
        )
    };
    let file = std::fs::File::open(p).map_err(fail)?;
    let meta = file.metadata().map_err(fail)?;
    if meta.len() > MAX_CONFIG_TEXT {
        return Err(too_big(format!("{} bytes", meta.len())));
    }
    let mut bytes = Vec::new();
    (&file)
        .take(MAX_CONFIG_TEXT + 1)
        .read_to_end(&mut bytes)
        .map_err(fail)?;
    if bytes.len() as u64 > MAX_CONFIG_TEXT {
        return Err(too_big(format!("more than {MAX_CONFIG_TEXT} bytes")));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        fail(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })?;
    // Escaping in the request can grow a text past what the control
    // socket takes only with unusual content (control characters in
    // comments take six bytes each); say so rather than let the daemon
    // cut the connection.
    let encoded = serde_json::to_string(&text).map_or(usize::MAX, |s| s.len());
    if encoded + 4096 > mcr::control::MAX_REQUEST {
        return Err(Fail(
            1,
            format!(
                "{}: {encoded} bytes once escaped for the control socket, more than its {}-byte request limit (control characters in the file take six bytes each)",
                p.display(),
                mcr::control::MAX_REQUEST
            ),
        ));
    }
    Ok(text)
}

fn ipv4(flag: &str, s: &str) -> Result<Ipv4Addr, Fail> {
    s.parse()
        .map_err(|_| usage(format!("{flag}: {s:?} is not an IPv4 address")))
}

/// `stats --watch`: one frame per interval, each a fresh request, until
/// Ctrl-C (the default SIGINT action ends us; nothing needs restoring, as
/// the screen is only cleared, never switched) or until the reader of a
/// pipe goes away. On a terminal each frame replaces the last; into a pipe
/// frames follow one another under their header lines. A daemon that stops
/// answering is shown in the frame and asked again next time.
fn watch_stats(cli: &Cli, interval: f64) -> Result<(), Fail> {
    use std::io::IsTerminal;
    if !(interval.is_finite() && interval >= 0.1) {
        return Err(usage(format!(
            "--interval: {interval} is not a number of seconds of at least 0.1"
        )));
    }
    let tty = std::io::stdout().is_terminal();
    let mut client: Option<Client> = None;
    let started = std::time::Instant::now();
    loop {
        let t0 = std::time::Instant::now();
        let report = match client.take().map(Ok).unwrap_or_else(|| connect(cli)) {
            Ok(mut c) => match c.request::<StatsReport>(&Request::Stats) {
                Ok(s) => {
                    client = Some(c);
                    Ok(s)
                }
                Err(e) => Err(e.to_string()),
            },
            Err(Fail(_, m)) => Err(m),
        };
        let frame = if cli.json {
            match &report {
                Ok(s) => serde_json::to_string(s).unwrap_or_default() + "\n",
                Err(e) => serde_json::json!({ "error": e }).to_string() + "\n",
            }
        } else {
            let body = match &report {
                Ok(s) => render::stats(s),
                Err(e) => format!("daemon not answering: {e}\n"),
            };
            format!(
                "{}mcrctl stats --watch: every {interval} s, {:.0} s elapsed (Ctrl-C to stop)\n\n{body}",
                if tty { "\x1b[H\x1b[2J" } else { "" },
                started.elapsed().as_secs_f64(),
            )
        };
        // A closed pipe ends the view quietly, and successfully.
        out::text(&frame)?;
        let wait = Duration::from_secs_f64(interval).saturating_sub(t0.elapsed());
        std::thread::sleep(wait);
    }
}

pub fn run(cli: &Cli) -> Result<(), Fail> {
    match &cli.cmd {
        Cmd::Ping => {
            let r: String = connect(cli)?.request(&Request::Ping)?;
            if cli.json {
                out::json(&serde_json::json!({ "reply": r }))?;
            } else {
                out::text(&format!("{r}\n"))?;
            }
        }
        Cmd::Version => {
            let v: VersionInfo = connect(cli)?.request(&Request::Version)?;
            if cli.json {
                out::json(&serde_json::json!({
                    "client": env!("CARGO_PKG_VERSION"),
                    "client_protocol": PROTOCOL_VERSION,
                    "daemon": v.daemon,
                    "protocol": v.protocol,
                    "ipc": v.ipc,
                    "instance_id": v.instance_id,
                }))?;
            } else {
                out::text(&format!(
                    "mcrctl {} (control protocol {PROTOCOL_VERSION})\nmcrd   {} (control protocol {}, worker IPC {})\ninstance {}\n",
                    env!("CARGO_PKG_VERSION"),
                    v.daemon,
                    v.protocol,
                    v.ipc,
                    if v.instance_id.is_empty() { "(not reported)" } else { &v.instance_id }
                ))?;
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
            done(cli, d)?;
        }
        Cmd::Remove { rule_id, name } => {
            let d: Done = connect(cli)?.request(&Request::Remove {
                id: rule_id.clone(),
                name: name.clone(),
            })?;
            done(cli, d)?;
        }
        Cmd::List => {
            let rules: Vec<RuleInfo> = connect(cli)?.request(&Request::List)?;
            show(cli, &rules, |r| render::rules(r))?;
        }
        Cmd::Stats { watch: false, .. } => {
            let s: StatsReport = connect(cli)?.request(&Request::Stats)?;
            show(cli, &s, render::stats)?;
        }
        Cmd::Stats {
            watch: true,
            interval,
        } => watch_stats(cli, *interval)?,
        Cmd::Completions { shell } => {
            let shell = match shell {
                CompletionShell::Bash => clap_complete::Shell::Bash,
                CompletionShell::Zsh => clap_complete::Shell::Zsh,
                CompletionShell::Fish => clap_complete::Shell::Fish,
            };
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "mcrctl", &mut buf);
            out::text(&String::from_utf8_lossy(&buf))?;
        }
        Cmd::Man => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut buf)
                .map_err(|e| Fail(1, format!("rendering the man page: {e}")))?;
            out::text(&String::from_utf8_lossy(&buf))?;
        }
        Cmd::Workers => {
            let w: Vec<WorkerInfo> = connect(cli)?.request(&Request::Workers)?;
            show(cli, &w, |w| render::workers(w))?;
        }
        Cmd::Status => {
            let s: StatusReport = connect(cli)?.request(&Request::Status)?;
            show(cli, &s, render::status)?;
        }
        Cmd::Mroute => {
            let m: Vec<MrouteEntry> = connect(cli)?.request(&Request::Mroute)?;
            show(cli, &m, |m| render::mroute(m))?;
        }
        Cmd::Pim(PimCmd::Neighbors) => {
            let n: Vec<NeighborSnapshot> = connect(cli)?.request(&Request::PimNeighbors)?;
            show(cli, &n, |n| render::pim_neighbors(n))?;
        }
        Cmd::Pim(PimCmd::Interfaces) => {
            let i: Vec<InterfaceSnapshot> = connect(cli)?.request(&Request::PimInterfaces)?;
            show(cli, &i, |i| render::pim_interfaces(i))?;
        }
        Cmd::Pim(PimCmd::Routes) => {
            let r: Vec<UpstreamSnapshot> = connect(cli)?.request(&Request::PimRoutes)?;
            show(cli, &r, |r| render::pim_routes(r))?;
        }
        Cmd::Pim(PimCmd::Rp) => {
            let r: Vec<RpSnapshot> = connect(cli)?.request(&Request::PimRp)?;
            show(cli, &r, |r| render::pim_rp(r))?;
        }
        Cmd::Pim(PimCmd::Register) => {
            let r: RegisterReport = connect(cli)?.request(&Request::PimRegister)?;
            show(cli, &r, pim_render::register)?;
        }
        Cmd::Pim(PimCmd::Assert) => {
            let a: Vec<AssertSnapshot> = connect(cli)?.request(&Request::PimAssert)?;
            show(cli, &a, |a| pim_render::asserts(a))?;
        }
        Cmd::Igmp(IgmpCmd::Groups) => {
            let g: Vec<GroupRow> = connect(cli)?.request(&Request::IgmpGroups)?;
            show(cli, &g, |g| igmp::groups(g))?;
        }
        Cmd::Igmp(IgmpCmd::Interfaces) => {
            let i: Vec<InterfaceRow> = connect(cli)?.request(&Request::IgmpInterfaces)?;
            show(cli, &i, |i| igmp::interfaces(i))?;
        }
        Cmd::Trace(t) => crate::trace::run(cli, t, connect(cli)?)?,
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
            loop {
                if let Some(ev) = c.next_event()? {
                    let line = serde_json::to_string(&ev).unwrap_or_default();
                    // Streaming ends when the reader goes, whatever the error.
                    if out::text(&format!("{line}\n")).is_err() {
                        return Ok(());
                    }
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
                FaultCmd::WedgeActor { name, secs } => FaultRequest::WedgeActor {
                    name: name.clone(),
                    secs: *secs,
                },
                FaultCmd::DeleteSocket => FaultRequest::DeleteSocket,
                FaultCmd::CrashLoop { count, interface } => FaultRequest::CrashLoop {
                    count: *count,
                    interface: interface.clone(),
                },
            };
            let d: Done = connect(cli)?.request(&Request::Fault(req))?;
            done(cli, d)?;
        }
    }
    Ok(())
}

fn config(cli: &Cli, c: &ConfigCmd) -> Result<(), Fail> {
    match c {
        ConfigCmd::Show => {
            let t: ConfigText = connect(cli)?.request(&Request::ConfigShow)?;
            if cli.json {
                out::json(&t)?;
            } else {
                out::text(&t.text)?;
            }
        }
        ConfigCmd::Check { file } => {
            let text = read_file(file)?;
            let r: ConfigCheckResult = connect(cli)?.request(&Request::ConfigCheck { text })?;
            if cli.json {
                out::json(&r)?;
            } else if r.valid {
                out::text(&format!("{}: valid ({} rules)\n", file.display(), r.rules))?;
            } else {
                for e in &r.errors {
                    out::error(&format!("{}: {e}", file.display()));
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
            done(cli, d)?;
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
                    warnings: Vec::new(),
                },
            )?;
        }
        ConfigCmd::Save { file: None } => {
            let d: Done = connect(cli)?.request(&Request::ConfigSave)?;
            done(cli, d)?;
        }
        ConfigCmd::Reload => {
            let d: Done = connect(cli)?.request(&Request::ConfigReload)?;
            done(cli, d)?;
        }
    }
    Ok(())
}

fn log_level(cli: &Cli, l: &LogCmd) -> Result<(), Fail> {
    match l {
        LogCmd::Get => {
            let lv: LogLevels = connect(cli)?.request(&Request::LogLevelGet)?;
            show(cli, &lv, render::log_levels)?;
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
            done(cli, d)?;
        }
    }
    Ok(())
}
