//! The `igmp` and `pim` sections, members-only outputs, and the protocol
//! diff that hot reload applies.

use super::*;
use crate::pim::config::{PimConfig, PimInterfaceConfig, SptSwitchover};

const IGMP: &str = "{
  igmp: {
    querier_interfaces: ['eth1', 'eth2'],
    version: 2,
    query_interval: 12.5,
    query_response_interval: 2,
    robustness: 3,
    last_member_query_interval: 0.2,
    last_member_query_count: 4,
    proxy: { upstream: 'eth0', downstream: ['eth3'] },
  },
}";

const PIM: &str = "{
  pim: {
    enabled: true,
    router_id: '10.0.0.2',
    interfaces: [ { name: 'eth0', dr_priority: 10, hello_interval: 2.5 }, { name: 'eth1' } ],
    static_rp: [ { group: '239.0.0.0/8', rp: '10.0.0.1' } ],
    spt_switchover: 'never',
    join_prune_interval: 30,
  },
}";

#[test]
fn igmp_section_reads_into_the_cores_settings() {
    let c = ok(IGMP);
    let igmp = c.igmp.expect("igmp section");
    assert_eq!(igmp.querier_interfaces, ["eth1", "eth2"]);
    let s = &igmp.settings;
    assert_eq!(
        (s.version, s.robustness, s.last_member_query_count),
        (2, 3, Some(4))
    );
    assert_eq!(
        (
            s.query_interval,
            s.query_response_interval,
            s.last_member_query_interval
        ),
        (12.5, 2.0, 0.2)
    );
    let p = s.validate().unwrap();
    assert_eq!(p.lmqt(), Duration::from_millis(800));
    let proxy = igmp.proxy.expect("proxy");
    assert_eq!(
        (proxy.upstream.as_str(), proxy.downstream),
        ("eth0", vec!["eth3".to_string()])
    );
    // An empty section turns IGMP on with the RFC defaults.
    assert_eq!(ok("{ igmp: {} }").igmp, Some(IgmpConfig::default()));
    assert_eq!(ok("{}").igmp, None);
}

#[test]
fn igmp_errors_name_line_and_key() {
    assert_one(
        "{\n  igmp: { querier_interface: ['eth1'] },\n}",
        2,
        11,
        "igmp.querier_interface",
        "did you mean `querier_interfaces`?",
    );
    assert_one(
        "{\n  igmp: {\n    version: 1,\n  },\n}",
        3,
        14,
        "igmp.version",
        "2..=3",
    );
    // The core's relation between two timers lands on the key it names.
    assert_one(
        "{ igmp: {\n  query_interval: 5,\n  query_response_interval: 10,\n} }",
        3,
        28,
        "igmp.query_response_interval",
        "less than query_interval",
    );
    assert_one(
        "{ igmp: { query_interval: 'soon' } }",
        1,
        27,
        "igmp.query_interval",
        "seconds",
    );
    assert_one(
        "{ igmp: { querier_interfaces: ['eth1',\n 'eth1'] } }",
        2,
        2,
        "igmp.querier_interfaces[1]",
        "listed twice (first on line 1)",
    );
    assert_one(
        "{ igmp: { proxy: { upstream: 'eth0', downstream: ['eth1', 'eth0'] } } }",
        1,
        59,
        "igmp.proxy.downstream[1]",
        "upstream interface",
    );
    assert_one(
        "{ igmp: { proxy: { upstream: 'eth0' } } }",
        1,
        18,
        "igmp.proxy",
        "missing required key `downstream`",
    );
}

#[test]
fn pim_section_reads_into_the_cores_config() {
    let pim = ok(PIM).pim.expect("pim section");
    assert!(pim.enabled);
    assert_eq!(pim.router_id, Some(ip("10.0.0.2")));
    assert_eq!(pim.interfaces.len(), 2);
    assert_eq!(pim.interfaces[0].dr_priority, 10);
    assert_eq!(
        pim.interfaces[0].hello_interval,
        Duration::from_millis(2500)
    );
    // A period shorter than the default triggered delay caps it.
    assert_eq!(
        pim.interfaces[0].triggered_hello_delay,
        Duration::from_millis(2500)
    );
    assert_eq!(pim.interfaces[1], PimInterfaceConfig::named("eth1"));
    assert_eq!(
        pim.rp_for(ip("239.1.2.3")).map(|m| m.rp),
        Some(ip("10.0.0.1"))
    );
    assert_eq!(pim.spt_switchover, SptSwitchover::Never);
    assert_eq!(pim.join_prune_interval, Duration::from_secs(30));
    assert_eq!(ok("{ pim: {} }").pim, Some(PimConfig::default()));
}

#[test]
fn pim_errors_name_line_and_key() {
    assert_one(
        "{ pim: {\n  interfaces: [ { name: 'eth0', hello_interval: 0.5 } ],\n} }",
        2,
        49,
        "pim.interfaces[0].hello_interval",
        "1 to 18724 seconds",
    );
    assert_one(
        "{ pim: { static_rp: [ { group: '239.0.0.0/33', rp: '10.0.0.1' } ] } }",
        1,
        32,
        "pim.static_rp[0].group",
        "prefix length",
    );
    assert_one(
        "{ pim: {\n static_rp: [ { group: '10.0.0.0/8', rp: '10.0.0.1' } ] } }",
        2,
        24,
        "pim.static_rp[0].group",
        "not inside 224.0.0.0/4",
    );
    assert_one(
        "{ pim: { interfaces: [ { name: 'eth0', dr_prority: 3 } ] } }",
        1,
        40,
        "pim.interfaces[0].dr_prority",
        "did you mean `dr_priority`?",
    );
    assert_one(
        "{ pim: { spt_switchover: 'later' } }",
        1,
        26,
        "pim.spt_switchover",
        "\"immediate\" or \"never\"",
    );
    assert_one(
        "{ pim: { enabled: 'yes' } }",
        1,
        19,
        "pim.enabled",
        "true or false",
    );
}

#[test]
fn members_only_outputs_read_write_and_refuse_unicast() {
    let text = "{ rules: [ { input: { interface: 'eth0', group: '239.1.1.1', port: 5000 },
      outputs: [ { interface: 'eth1', group: '239.2.2.2', port: 6000, members_only: true } ] } ] }";
    let c = ok(text);
    assert!(c.rules[0].outputs[0].members_only);
    // The flag is not part of the rule id.
    assert_eq!(c.rules[0].id, default_rule_id(&c.rules[0].input));
    assert!(c.to_json5().contains("members_only: true"));
    round_trip(&c);
    let e = one(&text.replace("'239.2.2.2'", "'10.1.1.1'"));
    assert_eq!(e.path, "rules[0].outputs[0].members_only");
    assert!(e.message.contains("only a multicast output"), "{e}");
}

#[test]
fn protocol_sections_round_trip_and_emit_is_a_fixed_point() {
    for text in [
        IGMP,
        PIM,
        "{ igmp: {}, pim: {} }",
        "{ pim: { enabled: false, interfaces: [{ name: 'a', hello_interval: 1.25 }] } }",
    ] {
        let c = ok(text);
        round_trip(&c);
    }
    let both = format!(
        "{{ igmp: {}, pim: {} }}",
        section(IGMP, "igmp"),
        section(PIM, "pim")
    );
    round_trip(&ok(&both));
}

/// The `{ ... }` value of `key` in one of the constants above.
fn section<'a>(text: &'a str, key: &str) -> &'a str {
    let start = text.find(&format!("{key}: {{")).unwrap() + key.len() + 2;
    let end = text.rfind("},").unwrap() + 1;
    &text[start..end]
}

#[test]
fn igmp_diff_names_added_removed_and_changed_queriers() {
    let old = ok("{ igmp: { querier_interfaces: ['a', 'b'] } }");
    let new = ok("{ igmp: { querier_interfaces: ['b', 'c'] } }");
    let d = old.protocol_diff(&new);
    assert_eq!(d.igmp.queriers_added, ["c"]);
    assert_eq!(d.igmp.queriers_removed, ["a"]);
    // `b` is untouched: its memberships and timers stay.
    assert!(d.igmp.queriers_changed.is_empty());
    assert!(!d.igmp.proxy_changed && d.pim.is_empty());

    let slower = ok("{ igmp: { querier_interfaces: ['b', 'c'], query_interval: 60 } }");
    let d = new.protocol_diff(&slower);
    assert_eq!(d.igmp.queriers_changed, ["b", "c"]);
    assert!(d.igmp.queriers_added.is_empty() && d.igmp.queriers_removed.is_empty());

    // Removing the section stops every querier.
    let d = new.protocol_diff(&ok("{}"));
    assert_eq!(d.igmp.queriers_removed, ["b", "c"]);
    assert!(ok("{}").protocol_diff(&ok("{}")).is_empty());
    assert!(new.protocol_diff(&new).is_empty());
    let proxied = ok(
        "{ igmp: { querier_interfaces: ['b', 'c'], proxy: { upstream: 'u', downstream: ['b'] } } }",
    );
    assert!(new.protocol_diff(&proxied).igmp.proxy_changed);
}

#[test]
fn pim_diff_names_interfaces_and_globals() {
    let old = ok("{ pim: { enabled: true, interfaces: [{ name: 'a' }, { name: 'b' }] } }");
    let new = ok(
        "{ pim: { enabled: true, interfaces: [{ name: 'b', dr_priority: 5 }, { name: 'c' }] } }",
    );
    let d = old.protocol_diff(&new).pim;
    assert_eq!(
        (
            d.interfaces_added,
            d.interfaces_removed,
            d.interfaces_changed
        ),
        (
            vec!["c".to_string()],
            vec!["a".to_string()],
            vec!["b".to_string()]
        )
    );
    assert!(!d.enabled_changed && !d.globals_changed);

    let rp = ok("{ pim: { enabled: true, interfaces: [{ name: 'a' }, { name: 'b' }], static_rp: [{ group: '239.0.0.0/8', rp: '10.0.0.1' }] } }");
    let d = old.protocol_diff(&rp).pim;
    assert!(d.globals_changed && d.interfaces_added.is_empty() && d.interfaces_changed.is_empty());

    // Switching PIM off removes every interface.
    let off = ok("{ pim: { enabled: false, interfaces: [{ name: 'a' }, { name: 'b' }] } }");
    let d = old.protocol_diff(&off).pim;
    assert!(d.enabled_changed);
    assert_eq!(d.interfaces_removed, ["a", "b"]);
    assert!(
        off.protocol_diff(&ok("{}")).is_empty(),
        "disabled and absent are the same"
    );
}
