//! IGMP counters for the Prometheus endpoint, one label set per interface
//! and role (`querier`, `proxy-downstream`, `proxy-upstream`).
//!
//! Owns the `mcr_igmp_*` metric families, registered once in a registry
//! of their own through `metric_sources::add_source`. The cores keep the
//! counts (`mcr::igmp::Counters`, RFC 3376 §9.1 for what is counted as an
//! error); the IgmpActors and the proxy copy them here after every step,
//! so a scrape never waits for a protocol actor. A restarted actor starts
//! counting from zero, which Prometheus reads as a counter reset.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use mcr::igmp::instance::Role;
use mcr::igmp::Counters;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::supervisor::metric_sources::add_source;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Iface {
    interface: String,
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorKind {
    interface: String,
    role: String,
    kind: String,
}

struct Metrics {
    queries_sent: Family<Iface, Counter>,
    queries_received: Family<Iface, Counter>,
    reports_received: Family<Iface, Counter>,
    reports_sent: Family<Iface, Counter>,
    leaves_received: Family<Iface, Counter>,
    leaves_sent: Family<Iface, Counter>,
    errors: Family<ErrorKind, Counter>,
    groups: Family<Iface, Gauge>,
    querier: Family<Iface, Gauge>,
}

const ERROR_KINDS: [&str; 2] = ["checksum", "malformed"];

fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let m = Metrics {
            queries_sent: Family::default(),
            queries_received: Family::default(),
            reports_received: Family::default(),
            reports_sent: Family::default(),
            leaves_received: Family::default(),
            leaves_sent: Family::default(),
            errors: Family::default(),
            groups: Family::default(),
            querier: Family::default(),
        };
        let mut r = Registry::with_prefix("mcr_igmp");
        let counters = [
            ("queries_sent", "IGMP queries sent.", &m.queries_sent),
            ("queries_received", "IGMP queries received from other routers.", &m.queries_received),
            ("reports_received", "IGMP membership reports received.", &m.reports_received),
            ("reports_sent", "IGMP membership reports sent (the proxy's upstream).", &m.reports_sent),
            ("leaves_received", "IGMPv2 leaves received.", &m.leaves_received),
            ("leaves_sent", "Leaves (v2) or TO_IN {} (v3) sent (the proxy's upstream).", &m.leaves_sent),
        ];
        for (name, help, f) in counters {
            r.register(name, help, f.clone());
        }
        r.register(
            "errors",
            "IGMP packets dropped, by kind: checksum (RFC 3376 §4.1.2), malformed (truncated, unknown type, a non-multicast group, an unusable IP header).",
            m.errors.clone(),
        );
        r.register("groups", "Groups with members (or joined upstream).", m.groups.clone());
        r.register("querier", "1 while MCR is the querier of the link.", m.querier.clone());
        add_source("igmp", Arc::new(r));
        m
    })
}

fn set(c: &Counter, v: u64) {
    c.inner().store(v, Ordering::Relaxed);
}

/// The counters and state of one interface, as of now.
pub fn publish(interface: &str, role: Role, c: &Counters, groups: usize, querier: bool) {
    let m = metrics();
    let l = Iface {
        interface: interface.to_string(),
        role: role.as_str().to_string(),
    };
    set(&m.queries_sent.get_or_create(&l), c.queries_sent);
    set(&m.queries_received.get_or_create(&l), c.queries_received);
    set(&m.reports_received.get_or_create(&l), c.reports_received);
    set(&m.reports_sent.get_or_create(&l), c.reports_sent);
    set(&m.leaves_received.get_or_create(&l), c.leaves_received);
    set(&m.leaves_sent.get_or_create(&l), c.leaves_sent);
    for (kind, v) in ERROR_KINDS.iter().zip([c.checksum_errors, c.malformed]) {
        let e = ErrorKind {
            interface: l.interface.clone(),
            role: l.role.clone(),
            kind: kind.to_string(),
        };
        set(&m.errors.get_or_create(&e), v);
    }
    m.groups
        .get_or_create(&l)
        .set(i64::try_from(groups).unwrap_or(i64::MAX));
    m.querier.get_or_create(&l).set(i64::from(querier));
}

/// Drop an interface's series (no longer configured in that role).
pub fn forget(interface: &str, role: Role) {
    let m = metrics();
    let l = Iface {
        interface: interface.to_string(),
        role: role.as_str().to_string(),
    };
    for f in [
        &m.queries_sent,
        &m.queries_received,
        &m.reports_received,
        &m.reports_sent,
        &m.leaves_received,
        &m.leaves_sent,
    ] {
        f.remove(&l);
    }
    for kind in ERROR_KINDS {
        m.errors.remove(&ErrorKind {
            interface: l.interface.clone(),
            role: l.role.clone(),
            kind: kind.to_string(),
        });
    }
    m.groups.remove(&l);
    m.querier.remove(&l);
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    fn text() -> String {
        let mut s = String::new();
        let all = crate::supervisor::metric_sources::all();
        for r in all {
            encode(&mut s, &r).unwrap();
        }
        s
    }

    #[test]
    fn counters_are_published_per_interface_and_role_and_forgotten() {
        let c = Counters {
            queries_sent: 4,
            reports_received: 9,
            checksum_errors: 2,
            ..Default::default()
        };
        publish("tst-if0", Role::ProxyDownstream, &c, 3, true);
        let t = text();
        for want in [
            r#"mcr_igmp_queries_sent_total{interface="tst-if0",role="proxy-downstream"} 4"#,
            r#"mcr_igmp_reports_received_total{interface="tst-if0",role="proxy-downstream"} 9"#,
            r#"mcr_igmp_errors_total{interface="tst-if0",role="proxy-downstream",kind="checksum"} 2"#,
            r#"mcr_igmp_groups{interface="tst-if0",role="proxy-downstream"} 3"#,
            r#"mcr_igmp_querier{interface="tst-if0",role="proxy-downstream"} 1"#,
        ] {
            assert!(t.contains(want), "{want} missing:\n{t}");
        }
        // Counts only go forward within one actor's life; a new value
        // replaces the old one.
        publish(
            "tst-if0",
            Role::ProxyDownstream,
            &Counters {
                queries_sent: 6,
                ..c
            },
            0,
            false,
        );
        let t = text();
        assert!(
            t.contains(
                r#"mcr_igmp_queries_sent_total{interface="tst-if0",role="proxy-downstream"} 6"#
            ),
            "{t}"
        );
        assert!(
            t.contains(r#"mcr_igmp_querier{interface="tst-if0",role="proxy-downstream"} 0"#),
            "{t}"
        );
        forget("tst-if0", Role::ProxyDownstream);
        assert!(!text().contains("tst-if0"));
    }
}
