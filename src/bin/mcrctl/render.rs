//! How `mcrctl` shows results as text: every table and summary, built as
//! a string so that the layout is unit-tested and the caller decides how
//! to write it (a closed pipe must end the program quietly, see `main`).
//! The `--json` forms are the response types serialized as they are.

use mcr::control::{MrouteEntry, RuleInfo, StatsReport, StatusReport, WorkerInfo};
use mcr::logging::{Facility, LogLevels};
use mcr::pim::instance::{InterfaceSnapshot, NeighborSnapshot, RpSnapshot, UpstreamSnapshot};
use mcr::pim::state::downstream::JoinState;
use mcr::rule::OutputMode;

pub fn port_str(p: u16) -> String {
    if p == 0 {
        "*".into()
    } else {
        p.to_string()
    }
}

pub fn rules(rules: &[RuleInfo]) -> String {
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
                if o.output.members_only {
                    s.push_str(" members-only");
                }
                if o.no_members {
                    s.push_str(" [no members]");
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
    t.render()
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

pub fn stats(s: &StatsReport) -> String {
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
    let mut out = t.render();
    out.push('\n');
    let mut w = Table::new(&[
        "WORKER",
        "PID",
        "RECV",
        "MATCHED",
        "NO_MATCH",
        "FRAGMENTS",
        "MALFORMED",
        "BAD_CSUM",
        "TTL0",
        "NOT_UDP",
        "BUF_EXHAUST",
        "KERNEL_DROPS",
        "EARLY_DROPS",
        "SENT",
        "SEND_ERR",
        "OUT_FULL",
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
            (c.ip_checksum_errors + c.udp_checksum_errors).to_string(),
            c.ttl_zero.to_string(),
            c.not_udp.to_string(),
            c.buf_exhaust.to_string(),
            c.kernel_drops.to_string(),
            c.early_drops.to_string(),
            c.sent.to_string(),
            c.send_errors.to_string(),
            c.output_full_drops.to_string(),
            human(x.recv_pps),
            human(x.sent_pps),
        ]);
    }
    out.push_str(&w.render());
    out
}

pub fn workers(ws: &[WorkerInfo]) -> String {
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
    t.render()
}

pub fn status(s: &StatusReport) -> String {
    let mut out = format!("mcrd {} pid {} up {:.0}s", s.version, s.pid, s.uptime_secs);
    // An older daemon sends no instance id.
    if !s.instance_id.is_empty() {
        out.push_str(&format!("   instance {}", s.instance_id));
    }
    out.push('\n');
    out.push_str(&format!(
        "config: {}   rules: {}   workers: {}   fault injection: {}",
        s.config_file.as_deref().unwrap_or("(none)"),
        s.rules,
        s.workers,
        if s.fault_injection { "on" } else { "off" }
    ));
    out.push('\n');
    let mut t = Table::new(&["ACTOR", "STATE", "RESTARTS", "LAST_FAILURE"]);
    for a in &s.actors {
        t.row(vec![
            a.name.clone(),
            a.state.clone(),
            a.restarts.to_string(),
            a.last_failure.clone().unwrap_or_default(),
        ]);
    }
    out.push_str(&t.render());
    out
}

/// A plain text table with columns sized to their widest cell.
pub(crate) struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(head: &[&str]) -> Table {
        Table {
            head: head.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, r: Vec<String>) {
        self.rows.push(r);
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let mut w: Vec<usize> = self.head.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if let Some(x) = w.get_mut(i) {
                    *x = (*x).max(c.chars().count());
                }
            }
        }
        let mut line = |cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    s.push_str(c);
                } else {
                    s.push_str(&format!("{c:<width$}  ", width = w[i]));
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(&self.head);
        for r in &self.rows {
            line(r);
        }
        if self.rows.is_empty() {
            out.push_str("(none)\n");
        }
        out
    }
}

pub fn mroute(m: &[MrouteEntry]) -> String {
    let mut t = Table::new(&["INPUT", "GROUP:PORT", "SOURCE", "OUTPUTS", "ORIGIN", "RULE"]);
    for e in m {
        t.row(vec![
            e.interface.clone(),
            format!("{}:{}", e.group, port_str(e.port)),
            e.source
                .map(|s| s.to_string())
                .unwrap_or_else(|| "*".into()),
            match &e.shadowed_by {
                // Listed so an operator sees why it does not forward.
                Some(rule) => format!("none: shadowed by rule {rule}"),
                None => e.outputs.join(", "),
            },
            mroute_origin(e),
            e.rule_id.clone(),
        ]);
    }
    t.render()
}

/// Milliseconds as seconds with one decimal, e.g. `"104.5s"`.
pub(crate) fn ms(v: u64) -> String {
    format!("{}.{}s", v / 1000, (v % 1000) / 100)
}

pub fn pim_neighbors(n: &[NeighborSnapshot]) -> String {
    let mut t = Table::new(&[
        "INTERFACE",
        "NEIGHBOR",
        "DR PRIORITY",
        "DR",
        "EXPIRES",
        "GEN ID",
        "UPTIME",
    ]);
    for x in n {
        t.row(vec![
            x.interface.clone(),
            x.address.to_string(),
            x.dr_priority
                .map_or_else(|| "(none)".into(), |p| p.to_string()),
            if x.is_dr { "yes" } else { "no" }.into(),
            x.expires_in_ms.map_or_else(|| "never".into(), ms),
            x.generation_id
                .map_or_else(|| "(none)".into(), |g| format!("{g:#010x}")),
            format!("{}s", x.uptime_secs),
        ]);
    }
    t.render()
}

pub fn pim_interfaces(i: &[InterfaceSnapshot]) -> String {
    let mut t = Table::new(&[
        "INTERFACE",
        "ADDRESS",
        "DR",
        "PRIORITY",
        "NEIGHBORS",
        "HELLO",
        "HELLO TX/RX",
        "J/P RX",
        "BAD (CKSUM/MALFORMED/VERSION/TYPE)",
    ]);
    for x in i {
        let c = &x.counters;
        t.row(vec![
            x.interface.clone(),
            x.address.to_string(),
            format!("{}{}", x.dr, if x.we_are_dr { " (us)" } else { "" }),
            x.dr_priority.to_string(),
            x.neighbors.to_string(),
            format!("{}s", x.hello_interval_secs),
            format!("{}/{}", c.hello_tx, c.hello_rx),
            c.join_prune_rx.to_string(),
            format!(
                "{}/{}/{}/{}",
                c.checksum_errors, c.malformed, c.wrong_version, c.unknown_type
            ),
        ]);
    }
    t.render()
}

pub fn pim_routes(r: &[UpstreamSnapshot]) -> String {
    let mut t = Table::new(&[
        "SOURCE",
        "GROUP",
        "STATE",
        "UPSTREAM",
        "RPF NEIGHBOR",
        "JOIN TIMER",
        "FLAGS",
        "OUTGOING",
        "DOWNSTREAM JOINS",
    ]);
    for x in r {
        let mut flags = Vec::new();
        if x.spt_bit {
            flags.push("spt".to_string());
        }
        if let Some(k) = x.keepalive_in_ms {
            flags.push(format!("ka {}", ms(k)));
        }
        if !x.rpt_pruned.is_empty() {
            let s: Vec<String> = x.rpt_pruned.iter().map(|s| s.to_string()).collect();
            flags.push(format!("rpt-pruned {}", s.join(",")));
        }
        if !x.rpt_pruned_on.is_empty() {
            flags.push(format!("rpt-pruned-on {}", x.rpt_pruned_on.join(",")));
        }
        let joins: Vec<String> = x
            .downstream
            .iter()
            .map(|d| {
                let state = match d.state {
                    JoinState::Join => "join",
                    JoinState::PrunePending => "prune-pending",
                };
                format!("{} {state} {}", d.interface, ms(d.expires_in_ms))
            })
            .collect();
        t.row(vec![
            x.source.map_or_else(|| "*".into(), |s| s.to_string()),
            x.group.to_string(),
            if x.joined { "joined" } else { "not joined" }.into(),
            x.upstream_interface.clone().unwrap_or_else(|| "-".into()),
            x.rpf_neighbor.map_or_else(|| "-".into(), |n| n.to_string()),
            x.join_timer_in_ms.map_or_else(|| "-".into(), ms),
            if flags.is_empty() {
                "-".into()
            } else {
                flags.join(" ")
            },
            if x.outgoing.is_empty() {
                "-".into()
            } else {
                x.outgoing.join(",")
            },
            if joins.is_empty() {
                "-".into()
            } else {
                joins.join(", ")
            },
        ]);
    }
    t.render()
}

pub fn pim_rp(r: &[RpSnapshot]) -> String {
    let mut t = Table::new(&["GROUP", "RP", "ORIGIN", "US", "(*,G) JOINED"]);
    for x in r {
        let rp = if x.ssm {
            format!("{} (unused: SSM range)", x.rp)
        } else {
            x.rp.to_string()
        };
        t.row(vec![
            x.group.to_string(),
            rp,
            x.origin.clone(),
            if x.i_am_rp { "yes" } else { "no" }.into(),
            x.groups_joined.to_string(),
        ]);
    }
    t.render()
}

/// `pim+igmp` for an entry several origins made; a daemon that does not
/// send `origins` gets its single `origin`.
fn mroute_origin(e: &MrouteEntry) -> String {
    if e.origins.len() > 1 {
        e.origins.join("+")
    } else {
        e.origin.clone()
    }
}

pub fn log_levels(lv: &LogLevels) -> String {
    let mut t = Table::new(&["FACILITY", "LEVEL"]);
    t.row(vec!["(global)".into(), lv.global.to_string()]);
    for f in Facility::ALL {
        let (lvl, how) = match lv.facilities.get(&f) {
            Some(s) => (*s, ""),
            None => (lv.global, " (global)"),
        };
        t.row(vec![f.to_string(), format!("{lvl}{how}")]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcr::control::{ActorInfo, OutputInfo, RuleState};
    use mcr::rule::{RuleInput, RuleOutput};

    fn rule(id: &str, name: Option<&str>, state: RuleState, reason: Option<&str>) -> RuleInfo {
        RuleInfo {
            id: id.into(),
            name: name.map(Into::into),
            input: RuleInput {
                interface: "eth0".into(),
                group: [239, 1, 1, 1].into(),
                port: 0,
                source: Some([10, 0, 0, 1].into()),
            },
            outputs: vec![
                OutputInfo {
                    output: RuleOutput {
                        group: [239, 2, 2, 2].into(),
                        port: 6000,
                        interface: "eth1".into(),
                        ttl: Some(5),
                        mode: OutputMode::Route,
                        members_only: false,
                    },
                    problem: Some("down".into()),
                    no_members: false,
                },
                OutputInfo {
                    output: RuleOutput {
                        group: [239, 2, 2, 3].into(),
                        port: 0,
                        interface: "eth2".into(),
                        ttl: None,
                        mode: OutputMode::Republish,
                        members_only: true,
                    },
                    problem: None,
                    no_members: true,
                },
            ],
            state,
            reason: reason.map(Into::into),
        }
    }

    #[test]
    fn rules_table_aligns_columns_and_spells_out_every_detail() {
        let text = rules(&[
            rule("abc", Some("n1"), RuleState::Error, Some("bad thing")),
            rule("longer-id", None, RuleState::Active, None),
        ]);
        let want = "\
ID         NAME  INPUT                           OUTPUTS                                                                             STATE
abc        n1    eth0 239.1.1.1:* from 10.0.0.1  239.2.2.2:6000@eth1 ttl 5 route [down], 239.2.2.3:*@eth2 members-only [no members]  error (bad thing)
longer-id        eth0 239.1.1.1:* from 10.0.0.1  239.2.2.2:6000@eth1 ttl 5 route [down], 239.2.2.3:*@eth2 members-only [no members]  active
";
        assert_eq!(text, want);
    }

    #[test]
    fn an_empty_table_says_none_under_its_header() {
        assert_eq!(rules(&[]), "ID  NAME  INPUT  OUTPUTS  STATE\n(none)\n");
        assert_eq!(
            mroute(&[]),
            "INPUT  GROUP:PORT  SOURCE  OUTPUTS  ORIGIN  RULE\n(none)\n"
        );
    }

    #[test]
    fn pim_tables_show_dr_holdtime_and_bad_packet_counters() {
        let n = NeighborSnapshot {
            interface: "veth0".into(),
            ifindex: 3,
            address: "10.0.0.1".parse().unwrap(),
            dr_priority: Some(5),
            is_dr: true,
            holdtime_secs: 105,
            expires_in_ms: Some(104_560),
            generation_id: Some(0xdead_beef),
            uptime_secs: 7,
            lan_prune_delay: None,
            secondary_addresses: vec![],
        };
        let out = pim_neighbors(&[n]);
        let row = out.lines().nth(1).unwrap();
        for want in [
            "veth0",
            "10.0.0.1",
            "5",
            "yes",
            "104.5s",
            "0xdeadbeef",
            "7s",
        ] {
            assert!(row.contains(want), "{want} missing in {out}");
        }
        let c = mcr::pim::instance::Counters {
            checksum_errors: 2,
            malformed: 3,
            wrong_version: 1,
            ..Default::default()
        };
        let i = InterfaceSnapshot {
            interface: "veth0".into(),
            ifindex: 3,
            address: "10.0.0.2".parse().unwrap(),
            dr: "10.0.0.2".parse().unwrap(),
            we_are_dr: true,
            dr_priority: 9,
            hello_interval_secs: 30,
            holdtime_secs: 105,
            generation_id: 1,
            next_hello_in_ms: None,
            neighbors: 1,
            counters: c,
        };
        let out = pim_interfaces(&[i]);
        let row = out.lines().nth(1).unwrap();
        assert!(
            row.contains("10.0.0.2 (us)") && row.contains("2/3/1/0"),
            "{out}"
        );
        assert!(pim_neighbors(&[]).ends_with("(none)\n"));
        assert!(pim_routes(&[]).ends_with("(none)\n"));
        let row = UpstreamSnapshot {
            source: None,
            group: "239.1.1.1".parse().unwrap(),
            rp: Some("10.0.0.1".parse().unwrap()),
            joined: true,
            upstream_interface: Some("eth0".into()),
            upstream_ifindex: Some(2),
            rpf_neighbor: Some("10.0.0.1".parse().unwrap()),
            join_timer_in_ms: Some(42_500),
            spt_bit: false,
            keepalive_in_ms: None,
            rpt_pruned: vec!["10.9.0.5".parse().unwrap()],
            outgoing: vec!["eth1".into(), "eth2".into()],
            downstream: vec![mcr::pim::instance::DownstreamSnapshot {
                interface: "eth1".into(),
                ifindex: 3,
                source: None,
                group: "239.1.1.1".parse().unwrap(),
                rp: None,
                state: JoinState::PrunePending,
                expires_in_ms: 200_000,
                prune_pending_in_ms: Some(1_000),
            }],
            rpt_pruned_on: Vec::new(),
        };
        let out = pim_routes(&[row]);
        for want in [
            "*",
            "239.1.1.1",
            "joined",
            "eth0",
            "42.5s",
            "rpt-pruned 10.9.0.5",
            "eth1,eth2",
            "eth1 prune-pending 200.0s",
        ] {
            assert!(out.contains(want), "{want} missing in {out}");
        }
        let rp = RpSnapshot {
            group: "232.0.0.0/8".parse().unwrap(),
            rp: "10.0.0.1".parse().unwrap(),
            origin: "static".into(),
            i_am_rp: true,
            ssm: true,
            groups_joined: 0,
        };
        let out = pim_rp(&[rp]);
        assert!(
            out.contains("232.0.0.0/8") && out.contains("SSM") && out.contains("yes"),
            "{out}"
        );
    }

    #[test]
    fn mroute_shows_merged_origins_and_shadowed_entries() {
        let entry = |rule_id: &str, origins: &[&str], shadowed_by: Option<&str>| MrouteEntry {
            interface: "eth0".into(),
            group: "239.1.1.1".parse().unwrap(),
            port: 0,
            source: None,
            outputs: vec!["239.1.1.1:0 on eth1 ttl 1 route".into()],
            origin: origins[0].into(),
            rule_id: rule_id.into(),
            origins: origins.iter().map(|o| o.to_string()).collect(),
            shadowed_by: shadowed_by.map(String::from),
        };
        let text = mroute(&[
            entry("(*,239.1.1.1)@eth0", &["pim", "igmp"], None),
            entry("(*,239.1.1.2)@eth0", &["msdp"], Some("r1")),
        ]);
        let want = "\
INPUT  GROUP:PORT   SOURCE  OUTPUTS                          ORIGIN    RULE
eth0   239.1.1.1:*  *       239.1.1.1:0 on eth1 ttl 1 route  pim+igmp  (*,239.1.1.1)@eth0
eth0   239.1.1.1:*  *       none: shadowed by rule r1        msdp      (*,239.1.1.2)@eth0
";
        assert_eq!(text, want);
    }

    #[test]
    fn rates_are_abbreviated_and_port_zero_is_any() {
        assert_eq!(human(999.0), "999");
        assert_eq!(human(2500.5), "2.5k");
        assert_eq!(human(1_234_567.0), "1.23M");
        assert_eq!(human(3.2e9), "3.20G");
        assert_eq!(port_str(0), "*");
        assert_eq!(port_str(5000), "5000");
    }

    #[test]
    fn stats_has_a_rule_table_a_blank_line_and_a_worker_table() {
        let text = stats(&StatsReport::default());
        let parts: Vec<&str> = text.split("\n\n").collect();
        assert_eq!(parts.len(), 2, "{text}");
        assert!(parts[0].starts_with("RULE  NAME  OUTPUT"), "{text}");
        assert!(parts[1].starts_with("WORKER  PID  RECV"), "{text}");
        assert!(parts[1].ends_with("TX_PPS\n(none)\n"), "{text}");
    }

    #[test]
    fn workers_show_backoff_and_missing_values_as_dashes() {
        let w = WorkerInfo {
            interface: "eth0".into(),
            index: 1,
            pid: None,
            core: Some(2),
            state: "backoff".into(),
            uptime_secs: 3.4,
            restarts: 2,
            rules: 1,
            table_hash: "ab".into(),
            expected_hash: "cd".into(),
            resyncs: 1,
            last_heartbeat_ms: None,
            last_exit: Some("killed".into()),
            backoff_ms: Some(100),
        };
        let text = workers(&[w]);
        let row = text.lines().nth(1).unwrap_or_default();
        let cells: Vec<&str> = row
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            cells,
            [
                "eth0#1",
                "-",
                "2",
                "backoff (in 100 ms)",
                "3s",
                "2",
                "1",
                "ab",
                "cd",
                "1",
                "-",
                "killed"
            ]
        );
    }

    #[test]
    fn status_heads_the_actor_table_with_two_summary_lines() {
        let mut s = StatusReport {
            version: "1.0".into(),
            pid: 2,
            instance_id: String::new(),
            uptime_secs: 5.5,
            config_file: None,
            fault_injection: true,
            rules: 1,
            workers: 2,
            actors: vec![ActorInfo {
                name: "root".into(),
                state: "running".into(),
                restarts: 1,
                last_failure: None,
            }],
        };
        assert_eq!(
            status(&s),
            "mcrd 1.0 pid 2 up 6s\n\
             config: (none)   rules: 1   workers: 2   fault injection: on\n\
             ACTOR  STATE    RESTARTS  LAST_FAILURE\n\
             root   running  1\n"
        );
        s.instance_id = "0b1c2d3e-0000-4000-8000-000000000001".into();
        assert!(status(&s)
            .starts_with("mcrd 1.0 pid 2 up 6s   instance 0b1c2d3e-0000-4000-8000-000000000001\n"));
    }

    #[test]
    fn log_levels_mark_facilities_that_follow_the_global_level() {
        let mut lv = LogLevels::default();
        lv.facilities
            .insert(Facility::ALL[0], mcr::logging::Severity::Debug);
        let text = log_levels(&lv);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2 + Facility::ALL.len(), "{text}");
        assert!(lines[1].starts_with("(global)"), "{text}");
        assert!(lines[2].ends_with("debug"), "{text}");
        assert!(lines[3].ends_with("(global)"), "{text}");
    }
}
