//! The writer: the running `Config` as JSON5, for `mcrctl config show` and
//! `config save`.
//!
//! Owns: the layout of written files. The contract, tested below, is that
//! `parse(&c.to_json5()) == Ok(c)` for every valid `Config`. Defaults are
//! left out (sections, optional fields, the hashed rule id) so that a
//! saved file shows only what the operator chose and keeps following the
//! defaults of later releases.

use std::fmt::Write as _;
use std::time::Duration;

use super::document::is_plain_identifier;
use super::{Config, ControlConfig, IgmpConfig, LoggingConfig, WorkersConfig};
use crate::igmp::config::IgmpSettings;
use crate::logging::{LogFile, LogFormat, LogLevels, Rotation};
use crate::rule::{self, Rule, RuleInput, RuleOutput};

impl Config {
    /// This configuration as a JSON5 file that reads back to an equal
    /// `Config`.
    pub fn to_json5(&self) -> String {
        let mut out = String::new();
        out.push_str("// MCR configuration (JSON5), written from the running configuration.\n");
        out.push_str("// Comments of the file it was loaded from are not kept.\n");
        out.push_str("{\n");
        write_rules(&mut out, &self.rules);
        if !self.pinning.is_empty() {
            out.push_str("  pinning: {\n");
            for (interface, cores) in &self.pinning {
                let cores: Vec<String> = cores.iter().map(u32::to_string).collect();
                let _ = writeln!(out, "    {}: [{}],", key(interface), cores.join(", "));
            }
            out.push_str("  },\n");
        }
        write_logging(&mut out, &self.logging);
        write_control(&mut out, &self.control);
        write_workers(&mut out, &self.workers);
        if let Some(igmp) = &self.igmp {
            write_igmp(&mut out, igmp);
        }
        if let Some(pim) = &self.pim {
            super::schema::pim::write_pim(&mut out, pim, seconds);
        }
        out.push_str(&super::metrics::emit(&self.metrics).unwrap_or_default());
        out.push_str("}\n");
        out
    }
}

fn write_rules(out: &mut String, rules: &[Rule]) {
    if rules.is_empty() {
        out.push_str("  rules: [],\n");
        return;
    }
    out.push_str("  rules: [\n");
    for r in rules {
        out.push_str("    {\n");
        if r.id != rule::default_rule_id(&r.input) {
            let _ = writeln!(out, "      id: {},", quote(&r.id));
        }
        if let Some(name) = &r.name {
            let _ = writeln!(out, "      name: {},", quote(name));
        }
        let _ = writeln!(out, "      input: {},", input(&r.input));
        if r.outputs.is_empty() {
            out.push_str("      outputs: [],\n");
        } else {
            out.push_str("      outputs: [\n");
            for o in &r.outputs {
                let _ = writeln!(out, "        {},", output(o));
            }
            out.push_str("      ],\n");
        }
        out.push_str("    },\n");
    }
    out.push_str("  ],\n");
}

fn input(i: &RuleInput) -> String {
    let mut s = format!(
        "{{ interface: {}, group: \"{}\", port: {}",
        quote(&i.interface),
        i.group,
        i.port
    );
    if let Some(src) = i.source {
        let _ = write!(s, ", source: \"{src}\"");
    }
    s.push_str(" }");
    s
}

fn output(o: &RuleOutput) -> String {
    let mut s = format!(
        "{{ interface: {}, group: \"{}\", port: {}",
        quote(&o.interface),
        o.group,
        o.port
    );
    if let Some(ttl) = o.ttl {
        let _ = write!(s, ", ttl: {ttl}");
    }
    if o.mode != rule::OutputMode::default() {
        let _ = write!(s, ", mode: \"{}\"", o.mode.as_str());
    }
    if o.members_only {
        s.push_str(", members_only: true");
    }
    s.push_str(" }");
    s
}

fn write_logging(out: &mut String, logging: &LoggingConfig) {
    let (levels, format) = (&logging.levels, logging.format);
    let defaults = LogLevels::default();
    let mut lines = Vec::new();
    if levels.global != defaults.global {
        lines.push(format!("level: \"{}\"", levels.global));
    }
    if !levels.facilities.is_empty() {
        let entries: Vec<String> = levels
            .facilities
            .iter()
            .map(|(f, s)| format!("{}: \"{s}\"", key(f.target())))
            .collect();
        lines.push(format!("facilities: {{ {} }}", entries.join(", ")));
    }
    if format != LogFormat::default() {
        let name = match format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        lines.push(format!("format: \"{name}\""));
    }
    if let Some(f) = &logging.file {
        lines.push(format!("file: {}", quote(&f.path.to_string_lossy())));
        if f.rotation != Rotation::default() {
            lines.push(format!("rotation: \"{}\"", f.rotation.as_str()));
        }
        if f.keep != LogFile::DEFAULT_KEEP {
            lines.push(format!("keep: {}", f.keep));
        }
    }
    write_section(out, "logging", &lines);
}

fn write_control(out: &mut String, control: &ControlConfig) {
    let mut lines = Vec::new();
    if let Some(socket) = &control.socket {
        lines.push(format!("socket: {}", quote(&socket.to_string_lossy())));
    }
    if let Some(group) = &control.group {
        lines.push(format!("group: {}", quote(group)));
    }
    write_section(out, "control", &lines);
}

fn write_workers(out: &mut String, workers: &WorkersConfig) {
    let defaults = WorkersConfig::default();
    let mut lines = Vec::new();
    if workers.idle_timeout != defaults.idle_timeout {
        lines.push(format!("idle_timeout: {}", seconds(workers.idle_timeout)));
    }
    if workers.heartbeat_timeout != defaults.heartbeat_timeout {
        lines.push(format!(
            "heartbeat_timeout: {}",
            seconds(workers.heartbeat_timeout)
        ));
    }
    if workers.restart_backoff_max != defaults.restart_backoff_max {
        lines.push(format!(
            "restart_backoff_max: {}",
            seconds(workers.restart_backoff_max)
        ));
    }
    if workers.user != defaults.user {
        lines.push(format!("user: {}", quote(&workers.user)));
    }
    if workers.rx.path != defaults.rx.path {
        lines.push(format!("rx_path: {}", quote(workers.rx.path.as_str())));
    }
    if workers.rx.ring_mb != defaults.rx.ring_mb {
        lines.push(format!("rx_ring_mb: {}", workers.rx.ring_mb));
    }
    if workers.rx.block_ms != defaults.rx.block_ms {
        lines.push(format!("rx_block_ms: {}", workers.rx.block_ms));
    }
    if workers.rx.early_drop != defaults.rx.early_drop {
        lines.push(format!(
            "early_drop: {}",
            quote(workers.rx.early_drop.as_str())
        ));
    }
    write_section(out, "workers", &lines);
}

/// The `igmp` section, written even when empty: its presence is what
/// turns IGMP on.
fn write_igmp(out: &mut String, igmp: &IgmpConfig) {
    let d = IgmpSettings::default();
    let s = &igmp.settings;
    let mut lines = Vec::new();
    if !igmp.querier_interfaces.is_empty() {
        lines.push(format!(
            "querier_interfaces: [{}]",
            names(&igmp.querier_interfaces)
        ));
    }
    if s.version != d.version {
        lines.push(format!("version: {}", s.version));
    }
    // `{}` of an f64 is the shortest text that reads back to the same
    // value, which keeps emit -> read -> emit a fixed point.
    for (k, v, dv) in [
        ("query_interval", s.query_interval, d.query_interval),
        (
            "query_response_interval",
            s.query_response_interval,
            d.query_response_interval,
        ),
        (
            "last_member_query_interval",
            s.last_member_query_interval,
            d.last_member_query_interval,
        ),
    ] {
        if v != dv {
            lines.push(format!("{k}: {v}"));
        }
    }
    if s.robustness != d.robustness {
        lines.push(format!("robustness: {}", s.robustness));
    }
    if let Some(c) = s.last_member_query_count {
        lines.push(format!("last_member_query_count: {c}"));
    }
    if let Some(p) = &igmp.proxy {
        lines.push(format!(
            "proxy: {{ upstream: {}, downstream: [{}] }}",
            quote(&p.upstream),
            names(&p.downstream)
        ));
    }
    write_section_always(out, "igmp", &lines);
}

fn names(list: &[String]) -> String {
    list.iter().map(|n| quote(n)).collect::<Vec<_>>().join(", ")
}

fn write_section_always(out: &mut String, name: &str, lines: &[String]) {
    if lines.is_empty() {
        let _ = writeln!(out, "  {name}: {{}},");
    } else {
        write_section(out, name, lines);
    }
}

/// A section of `key: value` lines, or nothing when all are defaults.
fn write_section(out: &mut String, name: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "  {name}: {{");
    for l in lines {
        let _ = writeln!(out, "    {l},");
    }
    out.push_str("  },\n");
}

/// Whole seconds as an integer, otherwise an exact decimal down to the
/// nanosecond, so that reading it back gives the same `Duration`.
fn seconds(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        return d.as_secs().to_string();
    }
    let frac = format!("{nanos:09}");
    format!("{}.{}", d.as_secs(), frac.trim_end_matches('0'))
}

/// An object key: bare when every JSON5 reader takes it bare.
fn key(k: &str) -> String {
    if is_plain_identifier(k) {
        k.to_string()
    } else {
        quote(k)
    }
}

/// A double-quoted JSON5 string. Printable non-ASCII is written as is
/// (files are UTF-8); control characters and the two Unicode line
/// separators are escaped so that every string stays on one line.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{C}' => out.push_str("\\f"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
