//! How `mcrctl pim register` and `mcrctl pim assert` look as text.

use mcr::pim::instance::{AssertSnapshot, RegisterReport, RpRegisterState};
use mcr::pim::state::assert::{AssertMetric, AssertState, INFINITE_PREFERENCE};
use mcr::pim::state::register::RegisterState;

use crate::render::{ms, Table};

fn timer(t: Option<u64>) -> String {
    t.map_or_else(|| "-".into(), ms)
}

/// Both sides of Register: what this router registers as first-hop DR,
/// then what it receives as RP, then the instance-wide counters.
pub fn register(r: &RegisterReport) -> String {
    let mut out = String::from("As first-hop DR:\n");
    let mut t = Table::new(&[
        "SOURCE",
        "GROUP",
        "INTERFACE",
        "RP",
        "STATE",
        "REGISTER-STOP TIMER",
        "KEEPALIVE",
    ]);
    for d in &r.dr {
        let state = match d.state {
            RegisterState::NoInfo => "no-info",
            RegisterState::Join => "join (registering)",
            RegisterState::JoinPending => "join-pending (probing)",
            RegisterState::Prune => "prune (stopped)",
        };
        t.row(vec![
            d.source.to_string(),
            d.group.to_string(),
            if d.interface.is_empty() {
                d.ifindex.to_string()
            } else {
                d.interface.clone()
            },
            d.rp.map_or_else(|| "-".into(), |a| a.to_string()),
            state.into(),
            timer(d.register_stop_in_ms),
            timer(d.keepalive_in_ms),
        ]);
    }
    out.push_str(&t.render());
    out.push_str("\nAs RP:\n");
    let mut t = Table::new(&[
        "SOURCE",
        "GROUP",
        "FROM",
        "STATE",
        "SPT",
        "REGISTERS",
        "NULL",
        "STOPS SENT",
        "STOPS HELD",
        "LAST",
        "KEEPALIVE",
    ]);
    for p in &r.rp {
        let state = match p.state {
            RpRegisterState::Forwarding => "forwarding",
            RpRegisterState::Accepted => "accepted",
            RpRegisterState::Stopped => "register-stop",
            RpRegisterState::NotRp => "not RP: register-stop",
            RpRegisterState::ForeignBorder => "other border router: register-stop",
        };
        let from = match p.pmbr {
            Some(b) if b != p.dr => format!("{} (PMBR {b})", p.dr),
            _ => p.dr.to_string(),
        };
        t.row(vec![
            p.source.to_string(),
            p.group.to_string(),
            from,
            state.into(),
            if p.spt_bit { "yes" } else { "no" }.into(),
            p.registers_rx.to_string(),
            p.null_registers_rx.to_string(),
            p.register_stops_tx.to_string(),
            p.register_stops_suppressed.to_string(),
            format!("{} ago", ms(p.last_register_ms_ago)),
            timer(p.keepalive_in_ms),
        ]);
    }
    out.push_str(&t.render());
    let c = &r.counters;
    out.push_str(&format!(
        "\nSent: {} Registers, {} null-Registers, {} Register-Stops ({} held back); \
         {} packets not registered; too big for the tunnel: {} fragmented, {} with DF \
         ({} Fragmentation Needed sent, {} held back); received: {} dropped, {} for groups \
         we are not RP of; {} packets decapsulated\n",
        c.register_tx,
        c.null_register_tx,
        c.register_stop_tx,
        c.register_stop_suppressed,
        c.register_encap_failed,
        c.register_fragmented,
        c.register_too_big,
        c.frag_needed_tx,
        c.frag_needed_suppressed,
        c.register_dropped,
        c.register_not_rp,
        c.decapsulated,
    ));
    out
}

/// An assert metric as `[rpt ]preference/metric from ADDR`, or `infinite`.
fn metric(m: &AssertMetric) -> String {
    if m.preference >= INFINITE_PREFERENCE {
        return "infinite".into();
    }
    let rpt = if m.rpt { "rpt " } else { "" };
    if m.addr.is_unspecified() {
        format!("{rpt}{}/{}", m.preference, m.metric)
    } else {
        format!("{rpt}{}/{} from {}", m.preference, m.metric, m.addr)
    }
}

pub fn asserts(a: &[AssertSnapshot]) -> String {
    let mut t = Table::new(&[
        "INTERFACE",
        "SOURCE",
        "GROUP",
        "STATE",
        "WINNER",
        "WINNER METRIC",
        "OUR METRIC",
        "TIMER",
    ]);
    for x in a {
        let state = match x.state {
            AssertState::NoInfo => "no-info",
            AssertState::Winner => "winner",
            AssertState::Loser => "loser",
        };
        t.row(vec![
            x.interface.clone(),
            x.source.map_or_else(|| "*".into(), |s| s.to_string()),
            x.group.to_string(),
            state.into(),
            x.winner.map_or_else(|| "-".into(), |w| w.addr.to_string()),
            x.winner.map_or_else(|| "-".into(), |w| metric(&w)),
            metric(&x.ours),
            timer(x.timer_in_ms),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcr::pim::instance::{RegisterAssertCounters, RegisterSnapshot, RpRegisterSnapshot};
    use std::net::Ipv4Addr;

    #[test]
    fn register_shows_both_ends_with_timers_and_held_back_stops() {
        let r = RegisterReport {
            dr: vec![RegisterSnapshot {
                source: Ipv4Addr::new(10, 1, 0, 5),
                group: Ipv4Addr::new(239, 1, 1, 1),
                interface: "eth1".into(),
                ifindex: 3,
                rp: Some(Ipv4Addr::new(10, 9, 9, 9)),
                state: RegisterState::Prune,
                register_stop_in_ms: Some(41_500),
                keepalive_in_ms: Some(209_000),
            }],
            rp: vec![RpRegisterSnapshot {
                source: Ipv4Addr::new(10, 2, 0, 5),
                group: Ipv4Addr::new(239, 2, 2, 2),
                dr: Ipv4Addr::new(10, 0, 0, 1),
                state: RpRegisterState::Stopped,
                pmbr: None,
                spt_bit: true,
                registers_rx: 12,
                null_registers_rx: 1,
                register_stops_tx: 2,
                register_stops_suppressed: 9,
                last_register_ms_ago: 300,
                keepalive_in_ms: Some(184_000),
            }],
            counters: RegisterAssertCounters {
                register_stop_suppressed: 9,
                register_fragmented: 4,
                register_too_big: 3,
                frag_needed_tx: 2,
                frag_needed_suppressed: 1,
                ..Default::default()
            },
        };
        let out = register(&r);
        assert!(
            out.contains("4 fragmented, 3 with DF (2 Fragmentation Needed sent, 1 held back)"),
            "{out}"
        );
        let dr = out.lines().nth(2).unwrap_or_default();
        assert!(dr.contains("10.1.0.5") && dr.contains("eth1") && dr.contains("10.9.9.9"));
        assert!(
            dr.contains("prune (stopped)") && dr.contains("41.5s"),
            "{out}"
        );
        let rp = out
            .lines()
            .find(|l| l.starts_with("10.2.0.5"))
            .unwrap_or_default();
        assert!(
            rp.contains("10.0.0.1") && rp.contains("register-stop"),
            "{out}"
        );
        assert!(
            rp.contains("12") && rp.contains(" 9 ") && rp.contains("0.3s ago"),
            "{out}"
        );
        assert!(out.contains("(9 held back)"), "{out}");
        let empty = register(&RegisterReport::default());
        assert_eq!(empty.matches("(none)").count(), 2, "{empty}");
    }

    #[test]
    fn assert_shows_winner_metrics_and_ours_infinite_when_we_cannot_assert() {
        let winner = AssertMetric {
            rpt: false,
            preference: 110,
            metric: 20,
            addr: Ipv4Addr::new(10, 0, 0, 2),
        };
        let a = AssertSnapshot {
            interface: "lan0".into(),
            ifindex: 4,
            source: Some(Ipv4Addr::new(10, 1, 0, 5)),
            group: Ipv4Addr::new(239, 1, 1, 1),
            state: AssertState::Loser,
            winner: Some(winner),
            ours: AssertMetric::infinite(),
            timer_in_ms: Some(179_900),
        };
        let star = AssertSnapshot {
            source: None,
            state: AssertState::Winner,
            ours: AssertMetric {
                rpt: true,
                ..winner
            },
            winner: None,
            ..a.clone()
        };
        let out = asserts(&[a, star]);
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[1].contains("loser") && lines[1].contains("10.0.0.2"),
            "{out}"
        );
        assert!(lines[1].contains("110/20 from 10.0.0.2"), "{out}");
        assert!(
            lines[1].contains("infinite") && lines[1].contains("179.9s"),
            "{out}"
        );
        assert!(
            lines[2].contains(" * ") && lines[2].contains("winner"),
            "{out}"
        );
        assert!(lines[2].contains("rpt 110/20"), "{out}");
    }
}
