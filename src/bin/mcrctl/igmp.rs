//! How `mcrctl igmp groups` and `mcrctl igmp interfaces` look as text.

use mcr::igmp::instance::{GroupRow, InterfaceRow};
use mcr::igmp::FilterMode;

use crate::render::Table;

/// Seconds left, as the tables show them.
fn secs(s: Option<f64>) -> String {
    s.map(|v| format!("{v:.1}s")).unwrap_or_else(|| "-".into())
}

pub fn groups(rows: &[GroupRow]) -> String {
    if rows.is_empty() {
        return "no IGMP groups\n".into();
    }
    let mut t = Table::new(&[
        "INTERFACE",
        "GROUP",
        "MODE",
        "SOURCES",
        "LAST REPORTER",
        "EXPIRES",
        "VERSION",
    ]);
    for r in rows {
        let g = &r.group;
        let mode = match g.mode {
            FilterMode::Include => "include",
            FilterMode::Exclude => "exclude",
        };
        let sources = if g.sources.is_empty() {
            "-".to_string()
        } else {
            g.sources
                .iter()
                .map(|(s, left)| match left {
                    Some(l) => format!("{s} ({l:.1}s)"),
                    None => format!("{s} (blocked)"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        t.row(vec![
            r.interface.clone(),
            g.group.to_string(),
            mode.into(),
            sources,
            g.last_reporter.to_string(),
            secs(g.expires),
            format!("v{}", g.version),
        ]);
    }
    t.render()
}

pub fn interfaces(rows: &[InterfaceRow]) -> String {
    if rows.is_empty() {
        return "no IGMP interfaces\n".into();
    }
    let mut t = Table::new(&[
        "INTERFACE",
        "ROLE",
        "ADDRESS",
        "QUERIER",
        "CURRENT QUERIER",
        "OTHER EXPIRES",
        "VERSION",
        "QUERIES TX/RX",
        "REPORTS RX/TX",
        "LEAVES RX/TX",
        "CHECKSUM ERR",
        "MALFORMED",
    ]);
    for r in rows {
        let q = &r.querier;
        let c = &q.counters;
        t.row(vec![
            r.interface.clone(),
            r.role.as_str().into(),
            q.address.to_string(),
            if q.querier { "yes" } else { "no" }.into(),
            q.current_querier.to_string(),
            secs(q.other_querier_expires),
            format!("v{}", q.version),
            format!("{}/{}", c.queries_sent, c.queries_received),
            format!("{}/{}", c.reports_received, c.reports_sent),
            format!("{}/{}", c.leaves_received, c.leaves_sent),
            c.checksum_errors.to_string(),
            c.malformed.to_string(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcr::igmp::instance::Role;
    use mcr::igmp::state::{GroupSnapshot, QuerierSnapshot};
    use mcr::igmp::Counters;

    #[test]
    fn groups_show_mode_sources_reporter_and_expiry() {
        let rows = vec![GroupRow {
            interface: "eth1".into(),
            ifindex: 3,
            group: GroupSnapshot {
                group: [232, 1, 1, 1].into(),
                mode: FilterMode::Include,
                sources: vec![
                    ([10, 0, 0, 5].into(), Some(12.34)),
                    ([10, 0, 0, 6].into(), None),
                ],
                last_reporter: [10, 0, 0, 2].into(),
                expires: None,
                version: 3,
            },
        }];
        let text = groups(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("INTERFACE"), "{text}");
        for want in [
            "eth1",
            "232.1.1.1",
            "include",
            "10.0.0.5 (12.3s), 10.0.0.6 (blocked)",
            "10.0.0.2",
            "v3",
        ] {
            assert!(lines[1].contains(want), "{want} missing: {text}");
        }
        assert_eq!(groups(&[]), "no IGMP groups\n");
    }

    #[test]
    fn interfaces_show_who_queries_and_the_counters() {
        let rows = vec![InterfaceRow {
            interface: "eth1".into(),
            ifindex: 3,
            role: Role::ProxyDownstream,
            querier: QuerierSnapshot {
                address: [10, 0, 0, 9].into(),
                querier: false,
                current_querier: [10, 0, 0, 1].into(),
                other_querier_expires: Some(3.3),
                version: 2,
                counters: Counters {
                    queries_sent: 4,
                    queries_received: 7,
                    reports_received: 11,
                    leaves_received: 2,
                    checksum_errors: 3,
                    malformed: 5,
                    reports_sent: 0,
                    leaves_sent: 1,
                },
            },
        }];
        let text = interfaces(&rows);
        let row = text.lines().nth(1).unwrap_or_default();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "eth1",
                "proxy-downstream",
                "10.0.0.9",
                "no",
                "10.0.0.1",
                "3.3s",
                "v2",
                "4/7",
                "11/0",
                "2/1",
                "3",
                "5"
            ],
            "{text}"
        );
    }
}
