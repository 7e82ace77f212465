//! `mcrctl trace enable|disable|show`: the requests and how a trace looks
//! as text (one table per traced rule and worker, oldest packet first).

use mcr::control::trace::{RuleTraceReport, TraceReport};
use mcr::control::{Done, Request};

use crate::args::{Cli, TraceCmd};
use crate::render::Table;
use crate::Fail;

/// The request a `trace` command sends.
pub fn request(cmd: &TraceCmd) -> Request {
    match cmd {
        TraceCmd::Enable { rule_id, count } => Request::TraceEnable {
            rule_id: rule_id.clone(),
            count: *count,
        },
        TraceCmd::Disable { rule_id } => Request::TraceDisable {
            rule_id: rule_id.clone(),
        },
        TraceCmd::Show { rule_id } => Request::TraceShow {
            rule_id: rule_id.clone(),
        },
    }
}

pub fn run(
    cli: &Cli,
    cmd: &TraceCmd,
    mut client: mcr::control::client::Client,
) -> Result<(), Fail> {
    let req = request(cmd);
    match cmd {
        TraceCmd::Show { .. } => {
            let r: TraceReport = client.request(&req)?;
            if cli.json {
                crate::out::json(&r)
            } else {
                crate::out::text(&report(&r))
            }
        }
        _ => {
            let d: Done = client.request(&req)?;
            if cli.json {
                crate::out::json(&d)
            } else {
                crate::out::text(&format!("{}\n", d.message))
            }
        }
    }
}

/// Time of day (UTC) with milliseconds: a trace spans seconds, not days.
fn clock(at_ms: u64) -> String {
    let s = at_ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        at_ms % 1000
    )
}

fn one(r: &RuleTraceReport) -> String {
    let mut out = format!(
        "rule {} on {}#{}: {} packet{} seen, last {} kept (UTC)\n",
        r.rule_id,
        r.interface,
        r.worker,
        r.seen,
        if r.seen == 1 { "" } else { "s" },
        r.capacity
    );
    let mut t = Table::new(&["TIME", "SOURCE", "DESTINATION", "SIZE", "ACTION", "OUTPUTS"]);
    for p in &r.packets {
        let size = if p.datagrams > 1 {
            format!("{} ({} datagrams)", p.size, p.datagrams)
        } else {
            p.size.to_string()
        };
        t.row(vec![
            clock(p.at_ms),
            p.source.to_string(),
            p.destination.to_string(),
            size,
            p.action.clone(),
            if p.outputs.is_empty() {
                "-".into()
            } else {
                p.outputs.join(", ")
            },
        ]);
    }
    out.push_str(&t.render());
    out
}

pub fn report(r: &TraceReport) -> String {
    if r.rules.is_empty() {
        return "no rule is traced (`mcrctl trace enable --rule-id ID` starts one)\n".into();
    }
    r.rules.iter().map(one).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcr::control::trace::TracePacket;

    #[test]
    fn a_trace_reads_as_a_table_per_rule() {
        let r = TraceReport {
            rules: vec![RuleTraceReport {
                rule_id: "r1".into(),
                interface: "eth0".into(),
                worker: 0,
                capacity: 100,
                seen: 2,
                packets: vec![
                    TracePacket {
                        at_ms: 3_723_004,
                        source: "10.0.0.1:4000".parse().unwrap(),
                        destination: "239.1.1.1:5000".parse().unwrap(),
                        size: 128,
                        datagrams: 1,
                        action: "forwarded".into(),
                        outputs: vec!["eth1 239.2.2.2:6000 (republish)".into()],
                    },
                    TracePacket {
                        at_ms: 3_723_005,
                        source: "10.0.0.1:4000".parse().unwrap(),
                        destination: "239.1.1.1:5000".parse().unwrap(),
                        size: 128,
                        datagrams: 1,
                        action: "dropped: TTL 0".into(),
                        outputs: vec![],
                    },
                ],
            }],
        };
        let text = report(&r);
        assert!(text.starts_with("rule r1 on eth0#0: 2 packets seen, last 100 kept"));
        assert!(text.contains("01:02:03.004  10.0.0.1:4000"), "{text}");
        assert!(text.contains("forwarded"), "{text}");
        assert!(text.contains("dropped: TTL 0"), "{text}");
        assert!(report(&TraceReport::default()).contains("no rule is traced"));
    }
}
