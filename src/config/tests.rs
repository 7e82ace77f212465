//! Tests of the config layer as a whole: the schema walk and its errors,
//! the writer's round trip, robustness against arbitrary input, and the
//! example files shipped in `examples/`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::logging::{Facility, LogFormat, Severity};
use crate::rule::{default_rule_id, OutputMode, RuleInput, RuleOutput};

fn ok(text: &str) -> Config {
    match parse(text) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}\n--- text:\n{text}"),
    }
}

fn errs(text: &str) -> Vec<ConfigError> {
    match parse(text) {
        Ok(c) => panic!("expected errors, got {c:?}\n--- text:\n{text}"),
        Err(e) => e.0,
    }
}

/// The only error for `text`.
fn one(text: &str) -> ConfigError {
    let mut e = errs(text);
    assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
    e.remove(0)
}

/// Exactly one error, at `line`/`column`, with `path`, containing `needle`.
fn assert_one(text: &str, line: usize, column: usize, path: &str, needle: &str) {
    let e = one(text);
    assert_eq!(
        (e.line, e.column, e.path.as_str()),
        (line, column, path),
        "{e}"
    );
    assert!(e.message.contains(needle), "{e:?} lacks {needle:?}");
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap_or(Ipv4Addr::UNSPECIFIED)
}

fn input(ifc: &str, group: &str, port: u16) -> RuleInput {
    RuleInput {
        interface: ifc.into(),
        group: ip(group),
        port,
        source: None,
    }
}

fn out(ifc: &str, group: &str, port: u16) -> RuleOutput {
    RuleOutput {
        interface: ifc.into(),
        group: ip(group),
        port,
        ttl: None,
        mode: OutputMode::Republish,
    }
}

/// The smallest useful file: one rule, everything else defaulted.
const ONE_RULE: &str = "{
  rules: [
    {
      input: { interface: 'eth0', group: '239.1.1.1', port: 5000 },
      outputs: [ { interface: 'eth1', group: '239.2.2.2', port: 6000 } ],
    },
  ],
}";

// ---------------------------------------------------------------- valid

#[test]
fn empty_object_is_the_default_config() {
    assert_eq!(ok("{}"), Config::default());
    assert_eq!(ok("// nothing yet\n{ rules: [], }"), Config::default());
}

#[test]
fn minimal_rule_gets_the_default_id() {
    let c = ok(ONE_RULE);
    assert_eq!(c.rules.len(), 1);
    let r = &c.rules[0];
    assert_eq!(r.input, input("eth0", "239.1.1.1", 5000));
    assert_eq!(r.outputs, vec![out("eth1", "239.2.2.2", 6000)]);
    assert_eq!(r.id, default_rule_id(&r.input));
    assert_eq!(r.name, None);
    assert!(c.rule_set().is_ok());
}

#[test]
fn json5_features_in_a_config() {
    let text = r#"
    /* A config using every JSON5 nicety. */
    {
      // unquoted and quoted keys, both quote styles
      "rules": [{
        'id': 'r\x2d1',               // hex escape: r-1
        name: "caf\u00e9 \
feed",                                // line continuation
        input: { interface: 'eth0', group: "239.1.1.1", port: 0x1388, },
        outputs: [
          { interface: 'eth1', group: '239.2.2.2', port: +6000, ttl: 1.6e1 },
        ],
      },],
      workers: { idle_timeout: .5e3, heartbeat_timeout: 2., },
    }"#;
    let c = ok(text);
    let r = &c.rules[0];
    assert_eq!(r.id, "r-1");
    assert_eq!(r.name.as_deref(), Some("café feed"));
    assert_eq!(r.input.port, 5000);
    assert_eq!(r.outputs[0].port, 6000);
    assert_eq!(r.outputs[0].ttl, Some(16));
    assert_eq!(c.workers.idle_timeout, Duration::from_secs(500));
    assert_eq!(c.workers.heartbeat_timeout, Duration::from_secs(2));
}

#[test]
fn every_section_is_read() {
    let text = r#"{
      rules: [{
        id: "a", name: "A",
        input: { interface: "eth0", group: "239.1.1.1", port: 5000, source: "10.0.0.1" },
        outputs: [
          { interface: "eth1", group: "239.2.2.2", port: 6000, ttl: 16, mode: "republish" },
          { interface: "eth2", group: "239.1.1.1", port: 5000, mode: "route" },
        ],
      }],
      pinning: { eth0: [0, 1], "eth0.100": [1023] },
      logging: { level: "warn", facilities: { ingress: "debug", Egress: "err" }, format: "json" },
      control: { socket: "/run/mcr/control.sock", group: "mcr" },
      workers: { idle_timeout: 60, heartbeat_timeout: 0.1, user: "mcr" },
    }"#;
    let c = ok(text);
    assert_eq!(c.rules[0].input.source, Some(ip("10.0.0.1")));
    assert_eq!(c.rules[0].outputs[1].mode, OutputMode::Route);
    let mut pinning = BTreeMap::new();
    pinning.insert("eth0".to_string(), vec![0, 1]);
    pinning.insert("eth0.100".to_string(), vec![1023]);
    assert_eq!(c.pinning, pinning);
    assert_eq!(
        (
            c.workers_for("eth0"),
            c.workers_for("eth0.100"),
            c.workers_for("eth1")
        ),
        (2, 1, 1),
        "one worker per pinned core, one where nothing is pinned"
    );
    assert_eq!(c.logging.levels.global, Severity::Warning);
    assert_eq!(
        c.logging.levels.facilities.get(&Facility::Ingress),
        Some(&Severity::Debug)
    );
    assert_eq!(
        c.logging.levels.facilities.get(&Facility::Egress),
        Some(&Severity::Error)
    );
    assert_eq!(c.logging.format, LogFormat::Json);
    assert_eq!(
        c.control.socket,
        Some(PathBuf::from("/run/mcr/control.sock"))
    );
    assert_eq!(c.control.group.as_deref(), Some("mcr"));
    assert_eq!(c.workers.idle_timeout, Duration::from_secs(60));
    assert_eq!(c.workers.heartbeat_timeout, Duration::from_millis(100));
    assert_eq!(c.workers.user, "mcr");
}

// ---------------------------------------------------------------- syntax

#[test]
fn syntax_errors_come_through_with_positions() {
    let e = one("{\n  rules: [\n    { input: 1 x }\n  ],\n}");
    assert_eq!((e.line, e.column, e.path.as_str()), (3, 16, ""));
    assert_eq!(e.message, "expected ',' or '}' after a value, found 'x'");
    assert_eq!(
        e.to_string(),
        "line 3, column 16: expected ',' or '}' after a value, found 'x'"
    );
    let e = one("{ rules: [ \"open ] }");
    assert_eq!((e.line, e.column), (1, 12));
    assert!(e.message.starts_with("unterminated string"), "{e}");
}

// ---------------------------------------------------------------- keys

#[test]
fn unknown_top_level_key() {
    assert_one(
        "{\n  rules: [],\n  foo: 1,\n}",
        3,
        3,
        "foo",
        "unknown key `foo`; expected one of: rules, pinning, logging, control, workers",
    );
    let e = one("{ rule: [] }");
    assert!(e.message.contains("did you mean `rules`?"), "{e}");
    let e = one("{ '': [] }");
    assert!(e.message.starts_with("unknown key ``"), "{e}");
}

#[test]
fn unknown_nested_keys_name_the_right_place() {
    let text = "{
  rules: [{
    input: { interface: 'eth0', group: '239.1.1.1', port: 5000, prot: 1 },
    outputs: [{ interface: 'eth1', group: '239.2.2.2', port: 6000, tll: 4 }],
    comment: 'x',
  }],
  logging: { levels: 'info' },
  control: { path: '/x' },
  workers: { idle: 5 },
}";
    let e = errs(text);
    let got: Vec<(usize, &str)> = e.iter().map(|e| (e.line, e.path.as_str())).collect();
    assert_eq!(
        got,
        [
            (3, "rules[0].input.prot"),
            (4, "rules[0].outputs[0].tll"),
            (5, "rules[0].comment"),
            (7, "logging.levels"),
            (8, "control.path"),
            (9, "workers.idle"),
        ],
        "{e:#?}"
    );
    assert_eq!(
        e[0].message,
        "unknown key `prot` (did you mean `port`?); expected one of: interface, group, port, source"
    );
    assert!(e[1].message.contains("did you mean `ttl`?"), "{}", e[1]);
    assert!(
        e[1].message.ends_with("interface, group, port, ttl, mode"),
        "{}",
        e[1]
    );
    assert!(
        e[2].message
            .ends_with("expected one of: id, name, input, outputs"),
        "{}",
        e[2]
    );
    assert!(
        e[3].message.ends_with("level, facilities, format"),
        "{}",
        e[3]
    );
    assert!(e[4].message.ends_with("socket, group"), "{}", e[4]);
    assert!(
        e[5].message
            .ends_with("idle_timeout, heartbeat_timeout, restart_backoff_max, user"),
        "{}",
        e[5]
    );
    assert_eq!(e[0].column, 65);
}

#[test]
fn later_release_sections_are_refused() {
    for key in ["igmp", "pim", "msdp", "metrics"] {
        let text = format!("{{\n  rules: [],\n  {key}: {{ enabled: true }},\n}}");
        let e = one(&text);
        assert_eq!((e.line, e.column, e.path.as_str()), (3, 3, key));
        assert_eq!(
            e.message,
            format!("`{key}` is not available in this version of mcrd")
        );
    }
}

#[test]
fn missing_required_keys_point_at_the_enclosing_object() {
    assert_one(
        "{ rules: [\n  { outputs: [] },\n] }",
        2,
        3,
        "rules[0]",
        "missing required key `input`",
    );
    assert_one(
        "{ rules: [\n  { input: { interface: 'eth0', group: '239.1.1.1', port: 1 } },\n] }",
        2,
        3,
        "rules[0]",
        "missing required key `outputs`",
    );
    let e = errs(
        "{ rules: [{\n  input: {\n    interface: 'eth0',\n  },\n  outputs: [\n    { group: '239.2.2.2' },\n  ],\n}] }",
    );
    let got: Vec<(usize, usize, &str, &str)> = e
        .iter()
        .map(|e| (e.line, e.column, e.path.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (2, 10, "rules[0].input", "missing required key `group`"),
            (2, 10, "rules[0].input", "missing required key `port`"),
            (
                6,
                5,
                "rules[0].outputs[0]",
                "missing required key `interface`"
            ),
            (6, 5, "rules[0].outputs[0]", "missing required key `port`"),
        ]
    );
}

#[test]
fn duplicate_keys_are_reported_with_schema_errors() {
    let text = "{
  rules: [{
    input: { interface: 'eth0', group: '239.1.1.1', port: 5000,
             port: 5001 },
    outputs: [{ interface: 'eth1', group: '239.2.2.2', port: 6000 }],
  }],
  workers: { user: '' },
}";
    let e = errs(text);
    assert_eq!(e.len(), 2, "{e:#?}");
    assert_eq!(
        (e[0].line, e[0].column, e[0].path.as_str()),
        (4, 14, "rules[0].input.port")
    );
    assert_eq!(
        e[0].message,
        "duplicate key `port`: first on line 3, again on line 4"
    );
    assert_eq!(e[1].path, "workers.user");
}

// ---------------------------------------------------------------- types

#[test]
fn wrong_types_are_named() {
    let cases: &[(&str, &str, &str)] = &[
        ("[]", "", "expected the configuration (an object `{ ... }`), found an array"),
        ("{ rules: {} }", "rules", "expected a list of rules (an array `[ ... ]`), found an object"),
        ("{ rules: [5] }", "rules[0]", "expected a rule (an object `{ ... }`), found 5"),
        ("{ rules: [{ input: [], outputs: [] }] }", "rules[0].input", "expected the rule's input (an object"),
        ("{ rules: [{ id: 7, input: {interface: 'eth0', group: '239.1.1.1', port: 1}, outputs: [] }] }", "rules[0].id", "expected a rule id (a string in quotes), found 7"),
        ("{ rules: [{ name: null, input: {interface: 'eth0', group: '239.1.1.1', port: 1}, outputs: [] }] }", "rules[0].name", "expected a rule name (a string in quotes), found null"),
        ("{ rules: [{ input: {interface: 0, group: '239.1.1.1', port: 1}, outputs: [] }] }", "rules[0].input.interface", "expected an interface name (a string in quotes), found 0"),
        ("{ rules: [{ input: {interface: 'eth0', group: 239.1, port: 1}, outputs: [] }] }", "rules[0].input.group", "expected an IPv4 address in quotes, e.g. \"239.1.1.1\", found 239.1"),
        ("{ rules: [{ input: {interface: 'eth0', group: '239.1.1.1', port: '5000'}, outputs: [] }] }", "rules[0].input.port", "expected port (an integer in 0..=65535), found the string \"5000\""),
        ("{ rules: [{ input: {interface: 'eth0', group: '239.1.1.1', port: 50.5}, outputs: [] }] }", "rules[0].input.port", "expected port (an integer in 0..=65535), found 50.5"),
        ("{ rules: [{ input: {interface: 'eth0', group: '239.1.1.1', port: NaN}, outputs: [] }] }", "rules[0].input.port", "found NaN"),
        ("{ rules: [{ input: {interface: 'eth0', group: '239.1.1.1', port: Infinity}, outputs: [] }] }", "rules[0].input.port", "found Infinity"),
        ("{ rules: [{ input: {interface: 'eth0', group: '239.1.1.1', port: 1}, outputs: {} }] }", "rules[0].outputs", "expected a list of outputs (an array `[ ... ]`), found an object"),
        ("{ rules: [{ input: {interface: 'eth0', group: '239.1.1.1', port: 1}, outputs: ['eth1'] }] }", "rules[0].outputs[0]", "expected an output (an object `{ ... }`), found the string \"eth1\""),
        ("{ rules: [{ input: {interface: 'eth0', group: '239.1.1.1', port: 1}, outputs: [{interface: 'eth1', group: '239.2.2.2', port: 1, ttl: 1.5}] }] }", "rules[0].outputs[0].ttl", "expected TTL (an integer in 0..=255), found 1.5"),
        ("{ rules: [{ input: {interface: 'eth0', group: '239.1.1.1', port: 1}, outputs: [{interface: 'eth1', group: '239.2.2.2', port: 1, mode: 'bridge'}] }] }", "rules[0].outputs[0].mode", "expected \"republish\" or \"route\", found the string \"bridge\""),
        ("{ pinning: [] }", "pinning", "expected a map from interface to CPU cores (an object"),
        ("{ pinning: { eth0: 1 } }", "pinning.eth0", "expected a list of CPU core numbers such as [0, 1], found 1"),
        ("{ pinning: { eth0: ['1'] } }", "pinning.eth0[0]", "expected CPU core (an integer in 0..=1023), found the string \"1\""),
        ("{ logging: 'debug' }", "logging", "expected the logging section (an object"),
        ("{ logging: { level: 3 } }", "logging.level", "expected a log level (a string in quotes), found 3"),
        ("{ logging: { facilities: [] } }", "logging.facilities", "expected a map from facility to log level"),
        ("{ logging: { format: 'xml' } }", "logging.format", "expected \"text\" or \"json\", found the string \"xml\""),
        ("{ control: { socket: true } }", "control.socket", "expected the control socket path (a string in quotes), found true"),
        ("{ workers: { idle_timeout: '300' } }", "workers.idle_timeout", "expected a number of seconds such as 300 or 2.5, found the string \"300\""),
    ];
    for (text, path, needle) in cases {
        let e = one(text);
        assert_eq!(e.path, *path, "{text}: {e}");
        assert!(e.message.contains(needle), "{text}: {e:?} lacks {needle:?}");
        assert_eq!(e.line, 1, "{text}: {e}");
    }
}

#[test]
fn values_out_of_range_are_named_with_the_range() {
    let rule = |port: &str| {
        format!("{{ rules: [{{ input: {{interface: 'eth0', group: '239.1.1.1', port: {port}}}, outputs: [{{interface: 'eth1', group: '239.2.2.2', port: 1}}] }}] }}")
    };
    let e = one(&rule("70000"));
    assert_eq!(e.path, "rules[0].input.port");
    assert_eq!(
        e.message,
        "port 70000 is out of range; it must be an integer in 0..=65535"
    );
    assert_eq!(e.column, 66);
    assert!(one(&rule("-1")).message.contains("port -1 is out of range"));
    assert!(one(&rule("1e10")).message.contains("out of range"));
    assert!(one(&rule("99999999999999999999999"))
        .message
        .contains("out of range"));
    // 5e3 is exactly 5000, and 0 means any port.
    assert_eq!(ok(&rule("5e3")).rules[0].input.port, 5000);
    assert_eq!(ok(&rule("0")).rules[0].input.port, 0);

    let ttl = "{ rules: [{ input: {interface: 'eth0', group: '239.1.1.1', port: 1}, outputs: [{interface: 'eth1', group: '239.2.2.2', port: 1, ttl: 256}] }] }";
    assert!(one(ttl)
        .message
        .contains("TTL 256 is out of range; it must be an integer in 0..=255"));

    let e = one("{ pinning: { eth0: [0, 1024] } }");
    assert_eq!(e.path, "pinning.eth0[1]");
    assert!(e.message.contains("CPU core 1024 is out of range"), "{e}");

    let cases: &[(&str, &str)] = &[
        (
            "{ workers: { idle_timeout: 0 } }",
            "idle_timeout must be more than 0 and at most 86400 seconds (one day), found 0",
        ),
        ("{ workers: { idle_timeout: 86400.5 } }", "found 86400.5"),
        ("{ workers: { idle_timeout: -5 } }", "found -5"),
        ("{ workers: { idle_timeout: 1e-12 } }", "more than 0"),
        ("{ workers: { idle_timeout: Infinity } }", "found Infinity"),
        (
            "{ workers: { heartbeat_timeout: 0.05 } }",
            "heartbeat_timeout must be between 0.1 and 3600 seconds, found 0.05",
        ),
        ("{ workers: { heartbeat_timeout: 3601 } }", "found 3601"),
        ("{ workers: { heartbeat_timeout: NaN } }", "found NaN"),
    ];
    for (text, needle) in cases {
        let e = one(text);
        assert!(e.message.contains(needle), "{text}: {e:?} lacks {needle:?}");
    }
    let c = ok("{ workers: { restart_backoff_max: 0.25 } }");
    assert_eq!(c.workers.restart_backoff_max, Duration::from_millis(250));
    assert_eq!(parse(&c.to_json5()), Ok(c));
    for bad in [
        "{ workers: { restart_backoff_max: 0.01 } }",
        "{ workers: { restart_backoff_max: 4000 } }",
    ] {
        let e = parse(bad).unwrap_err();
        assert!(
            e.to_string()
                .contains("restart_backoff_max must be between"),
            "{e}"
        );
    }
    let c = ok("{ workers: { idle_timeout: 86400, heartbeat_timeout: 3600 } }");
    assert_eq!(c.workers.idle_timeout, Duration::from_secs(86_400));
    let c = ok("{ workers: { idle_timeout: 0.000000001, heartbeat_timeout: 0.1 } }");
    assert_eq!(c.workers.idle_timeout, Duration::from_nanos(1));
}

#[test]
fn bad_addresses_and_names() {
    let e = one("{ rules: [{ input: {interface: 'eth0', group: '239.1.1.300', port: 1}, outputs: [{interface: 'eth1', group: '239.2.2.2', port: 1}] }] }");
    assert_eq!(e.path, "rules[0].input.group");
    assert_eq!(e.message, "\"239.1.1.300\" is not an IPv4 address");
    let e = one("{ rules: [{ input: {interface: 'eth0', group: '239.1.1.1', port: 1, source: 'ten'}, outputs: [{interface: 'eth1', group: '239.2.2.2', port: 1}] }] }");
    assert_eq!(e.path, "rules[0].input.source");
    assert_eq!(e.message, "\"ten\" is not an IPv4 address");
    // A bad interface name is named once, though both the walk and
    // Rule::validate check it.
    let e = one("{ rules: [{ input: {interface: 'eth/0', group: '239.1.1.1', port: 1}, outputs: [{interface: 'eth1', group: '239.2.2.2', port: 1}] }] }");
    assert_eq!(e.path, "rules[0].input.interface");
    assert!(e.message.contains("contains '/'"), "{e}");
    let e = one("{ rules: [{ input: {interface: 'eth0', group: '239.1.1.1', port: 1}, outputs: [{interface: '', group: '239.2.2.2', port: 1}] }] }");
    assert_eq!(e.path, "rules[0].outputs[0].interface");
    assert_eq!(e.message, "interface name is empty");
    // A bad interface name does not hide the rest of the rule's problems.
    let e = errs("{ rules: [{ input: {interface: 'eth0', group: '239.1.1.1', port: 1}, outputs: [{interface: 'averyveryverylongname', group: '239.2.2.2', port: 1, ttl: 0}] }] }");
    let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["rules[0].outputs[0].interface", "rules[0].outputs[0].ttl"]
    );
}

#[test]
fn pinning_and_facility_problems() {
    let text = "{
  pinning: {
    'eth/0': [0],
    eth1: [],
    eth2: [3, 4, 3],
  },
  logging: {
    level: 'loud',
    facilities: { Nope: 'info', ingress: 'debug', Ingress: 'trace', Egress: 'x' },
  },
}";
    let e = errs(text);
    let got: Vec<(usize, usize, &str)> = e
        .iter()
        .map(|e| (e.line, e.column, e.path.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (3, 5, "pinning[\"eth/0\"]"),
            (4, 11, "pinning.eth1"),
            (5, 18, "pinning.eth2[2]"),
            (8, 12, "logging.level"),
            (9, 19, "logging.facilities.Nope"),
            (9, 51, "logging.facilities.Ingress"),
            (9, 77, "logging.facilities.Egress"),
        ],
        "{e:#?}"
    );
    assert!(
        e[1].message.contains("list of CPU cores is empty"),
        "{}",
        e[1]
    );
    assert_eq!(
        e[2].message,
        "CPU core 3 is listed twice (first on line 5); each core runs one worker"
    );
    assert!(
        e[3].message
            .starts_with("unknown level \"loud\"; levels are"),
        "{}",
        e[3]
    );
    assert!(
        e[4].message.contains("facilities are Supervisor"),
        "{}",
        e[4]
    );
    assert_eq!(e[5].message, "facility Ingress is already set on line 9");
    assert!(e[6].message.starts_with("unknown level \"x\""), "{}", e[6]);
}

#[test]
fn control_section_checks() {
    let e = one("{ control: { socket: 'run/mcr.sock' } }");
    assert!(e.message.contains("is not absolute"), "{e}");
    let long = format!("/{}", "a".repeat(120));
    let e = one(&format!("{{ control: {{ socket: '{long}' }} }}"));
    assert!(e.message.contains("at most 107"), "{e}");
    let e = one("{ control: { socket: '/run/\\0x' } }");
    assert!(e.message.contains("NUL"), "{e}");
    let e = one("{ control: { group: '' } }");
    assert_eq!(e.path, "control.group");
    assert_eq!(e.message, "the control group name must not be empty");
    let e = one("{ workers: { user: '' } }");
    assert_eq!(e.message, "a user name must not be empty");
}

// ---------------------------------------------------------------- rule model

#[test]
fn self_loop_points_at_the_output() {
    let text = "{
  rules: [
    {
      input: { interface: 'eth0', group: '239.1.1.1', port: 5000 },
      outputs: [
        { interface: 'eth1', group: '239.2.2.2', port: 6000 },
        { interface: 'eth0', group: '239.1.1.1', port: 5000 },
      ],
    },
  ],
}";
    let e = one(text);
    assert_eq!(
        (e.line, e.column, e.path.as_str()),
        (7, 22, "rules[0].outputs[1].interface")
    );
    assert!(e.message.contains("self loop"), "{e}");
}

#[test]
fn duplicate_input_points_at_the_later_rule() {
    let text = "{
  rules: [
    { id: 'a', input: { interface: 'eth0', group: '239.1.1.1', port: 5000 },
      outputs: [{ interface: 'eth1', group: '239.2.2.2', port: 6000 }] },
    { id: 'b',
      input: { interface: 'eth0', group: '239.1.1.1', port: 5000 },
      outputs: [{ interface: 'eth2', group: '239.3.3.3', port: 6000 }] },
  ],
}";
    let e = one(text);
    assert_eq!(
        (e.line, e.column, e.path.as_str()),
        (6, 14, "rules[1].input")
    );
    assert!(
        e.message
            .contains("duplicate input eth0:239.1.1.1:5000: rule a already takes it"),
        "{e}"
    );
}

#[test]
fn defaulted_duplicate_id_points_at_the_rule() {
    // Same input twice without ids: the hashed ids collide first.
    let text = "{
  rules: [
    { input: { interface: 'eth0', group: '239.1.1.1', port: 5000 },
      outputs: [{ interface: 'eth1', group: '239.2.2.2', port: 6000 }] },
    { input: { interface: 'eth0', group: '239.1.1.1', port: 5000 },
      outputs: [{ interface: 'eth2', group: '239.3.3.3', port: 6000 }] },
  ],
}";
    let e = one(text);
    assert_eq!((e.line, e.column, e.path.as_str()), (5, 5, "rules[1].id"));
    assert!(e.message.contains("already exists"), "{e}");
    // An explicit duplicate id points at the id itself.
    let text = "{
  rules: [
    { id: 'x', input: { interface: 'eth0', group: '239.1.1.1', port: 5000 },
      outputs: [{ interface: 'eth1', group: '239.2.2.2', port: 6000 }] },
    { id: 'x', input: { interface: 'eth0', group: '239.1.1.2', port: 5000 },
      outputs: [{ interface: 'eth1', group: '239.2.2.2', port: 6001 }] },
  ],
}";
    let e = one(text);
    assert_eq!((e.line, e.column, e.path.as_str()), (5, 11, "rules[1].id"));
    // A duplicate name points at the name.
    let text = "{
  rules: [
    { name: 'n', input: { interface: 'eth0', group: '239.1.1.1', port: 5000 },
      outputs: [{ interface: 'eth1', group: '239.2.2.2', port: 6000 }] },
    { name: 'n', input: { interface: 'eth0', group: '239.1.1.2', port: 5000 },
      outputs: [{ interface: 'eth1', group: '239.2.2.2', port: 6001 }] },
  ],
}";
    let e = one(text);
    assert_eq!(
        (e.line, e.column, e.path.as_str()),
        (5, 13, "rules[1].name")
    );
}

#[test]
fn cross_rule_errors_keep_file_indexes_when_earlier_rules_are_invalid() {
    // Rule 0 is invalid on its own and is left out of the set check; the
    // duplicate between rules 1 and 2 must still be named rules[2].
    let text = "{
  rules: [
    { input: { interface: 'eth0', group: '127.0.0.1', port: 1 },
      outputs: [{ interface: 'eth1', group: '239.2.2.2', port: 1 }] },
    { id: 'b', input: { interface: 'eth0', group: '239.1.1.1', port: 5000 },
      outputs: [{ interface: 'eth1', group: '239.2.2.2', port: 6000 }] },
    { id: 'c', input: { interface: 'eth0', group: '239.1.1.1', port: 5000 },
      outputs: [{ interface: 'eth2', group: '239.3.3.3', port: 6000 }] },
    { input: { interface: 'eth0', group: '239.1.1.9', port: 'x' },
      outputs: [{ interface: 'eth2', group: '239.3.3.3', port: 6000 }] },
  ],
}";
    let e = errs(text);
    let got: Vec<(usize, &str)> = e.iter().map(|e| (e.line, e.path.as_str())).collect();
    assert_eq!(
        got,
        [
            (3, "rules[0].input.group"),
            (7, "rules[2].input"),
            (9, "rules[3].input.port"),
        ],
        "{e:#?}"
    );
    assert!(e[0].message.contains("loopback"), "{}", e[0]);
}

#[test]
fn rule_validation_errors_are_placed() {
    let text = "{
  rules: [
    { id: 'bad id!',
      input: { interface: 'eth0', group: '239.1.1.1', port: 5000, source: '239.9.9.9' },
      outputs: [
        { interface: 'eth1', group: '239.2.2.2', port: 6000, ttl: 0 },
        { interface: 'eth2', group: '239.7.7.7', port: 5000, mode: 'route' },
        { interface: 'eth1', group: '239.2.2.2', port: 6000 },
      ] },
    { input: { interface: 'eth0', group: '239.1.1.2', port: 1 }, outputs: [] },
  ],
}";
    let e = errs(text);
    let got: Vec<(usize, &str)> = e.iter().map(|e| (e.line, e.path.as_str())).collect();
    assert_eq!(
        got,
        [
            (3, "rules[0].id"),
            (4, "rules[0].input.source"),
            (6, "rules[0].outputs[0].ttl"),
            (7, "rules[0].outputs[1].mode"),
            (8, "rules[0].outputs[2].group"),
            (10, "rules[1].outputs"),
        ],
        "{e:#?}"
    );
    assert!(e[5].message.contains("at least one output"), "{}", e[5]);
}

#[test]
fn many_errors_are_reported_together_in_file_order() {
    let text = "{
  rules: [
    { input: { interface: 'eth0', group: '239.1.1.300', port: 70000 },
      outputs: [{ interface: 'eth1', group: '239.2.2.2', port: 6000, ttl: 300 }] },
  ],
  pim: {},
  logging: { level: 'verbose' },
  workers: { idle_timeout: 0, heartbeat_timeout: 0.01, user: 5 },
  bogus: true,
}";
    let e = errs(text);
    let paths: Vec<&str> = e.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "rules[0].input.group",
            "rules[0].input.port",
            "rules[0].outputs[0].ttl",
            "pim",
            "logging.level",
            "workers.idle_timeout",
            "workers.heartbeat_timeout",
            "workers.user",
            "bogus",
        ],
        "{e:#?}"
    );
    let shown = ConfigErrors(e).to_string();
    assert_eq!(shown.lines().count(), 9);
    assert!(
        shown.starts_with(
            "line 3, column 42: rules[0].input.group: \"239.1.1.300\" is not an IPv4 address\n"
        ),
        "{shown}"
    );
}

#[test]
fn a_flood_of_errors_is_cut_short() {
    let text = format!("{{ rules: [{}] }}", "5,".repeat(1000));
    let e = errs(&text);
    assert_eq!(e.len(), schema::MAX_REPORTED_ERRORS + 1);
    assert_eq!(e[0].path, "rules[0]");
    let last = &e[schema::MAX_REPORTED_ERRORS];
    assert_eq!(last.line, 0);
    assert_eq!(
        last.message,
        "and 900 more problems not shown; fix the ones above first"
    );
    // Long user text is cut in messages.
    let e = one(&format!("{{ {}: 1 }}", "k".repeat(10_000)));
    assert!(e.message.len() < 200, "{}", e.message.len());
}

// ---------------------------------------------------------------- files

fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mcr-config-test-{}-{tag}", std::process::id()))
}

#[test]
fn parse_file_reads_and_reports_io_errors() {
    let missing = temp_path("missing.json5");
    let e = match parse_file(&missing) {
        Ok(c) => panic!("parsed a missing file: {c:?}"),
        Err(e) => e.0,
    };
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].line, e[0].path.as_str()), (0, ""));
    assert!(
        e[0].message.contains(&missing.display().to_string()),
        "{}",
        e[0]
    );
    assert!(e[0].message.contains("os error"), "{}", e[0]);
    assert!(
        !e[0].to_string().starts_with("line"),
        "no position for I/O errors"
    );

    let good = temp_path("good.json5");
    let written = std::fs::write(&good, ONE_RULE);
    assert!(written.is_ok(), "{written:?}");
    let parsed = parse_file(&good);
    let _ = std::fs::remove_file(&good);
    assert_eq!(parsed, Ok(ok(ONE_RULE)));

    let latin1 = temp_path("latin1.json5");
    let written = std::fs::write(&latin1, b"{\n  rules: [],\n  // caf\xe9\n}");
    assert!(written.is_ok(), "{written:?}");
    let parsed = parse_file(&latin1);
    let _ = std::fs::remove_file(&latin1);
    let e = match parsed {
        Ok(c) => panic!("parsed invalid UTF-8: {c:?}"),
        Err(e) => e.0,
    };
    assert_eq!((e[0].line, e[0].column), (3, 9));
    assert!(e[0].message.contains("not valid UTF-8"), "{}", e[0]);

    let big = temp_path("big.json5");
    let written = std::fs::write(&big, vec![b' '; MAX_CONFIG_BYTES + 1]);
    assert!(written.is_ok(), "{written:?}");
    let parsed = parse_file(&big);
    let _ = std::fs::remove_file(&big);
    assert!(
        matches!(&parsed, Err(e) if e.0[0].message.contains("larger than")),
        "{parsed:?}"
    );

    let dir = std::env::temp_dir();
    assert!(parse_file(&dir).is_err());
}

// ---------------------------------------------------------------- writer

fn round_trip(c: &Config) {
    let text = c.to_json5();
    match parse(&text) {
        Ok(back) => assert_eq!(&back, c, "round trip changed the config; text:\n{text}"),
        Err(e) => panic!("written config does not parse:\n{e}\n--- text:\n{text}"),
    }
}

fn rule(id: Option<&str>, name: Option<&str>, input: RuleInput, outputs: Vec<RuleOutput>) -> Rule {
    let mut r = Rule::new(name.map(str::to_string), input, outputs);
    if let Some(id) = id {
        r.id = id.to_string();
    }
    r
}

#[test]
fn default_config_writes_only_rules() {
    let text = Config::default().to_json5();
    assert!(text.starts_with("//"), "{text}");
    assert!(text.contains("\n  rules: [],\n"), "{text}");
    for section in ["pinning", "logging", "control", "workers"] {
        assert!(!text.contains(section), "{text}");
    }
    round_trip(&Config::default());
}

#[test]
fn writer_layout() {
    let mut c = Config::default();
    let mut o = out("eth1", "239.2.2.2", 6000);
    o.ttl = Some(16);
    c.rules
        .push(rule(None, None, input("eth0", "239.1.1.1", 5000), vec![o]));
    c.rules.push(rule(
        Some("custom"),
        Some("say \"hi\""),
        input("eth0", "239.1.1.2", 5000),
        vec![out("eth1", "239.2.2.3", 6000)],
    ));
    c.workers.heartbeat_timeout = Duration::from_millis(2500);
    let text = c.to_json5();
    let expected = "{
  rules: [
    {
      input: { interface: \"eth0\", group: \"239.1.1.1\", port: 5000 },
      outputs: [
        { interface: \"eth1\", group: \"239.2.2.2\", port: 6000, ttl: 16 },
      ],
    },
    {
      id: \"custom\",
      name: \"say \\\"hi\\\"\",
      input: { interface: \"eth0\", group: \"239.1.1.2\", port: 5000 },
      outputs: [
        { interface: \"eth1\", group: \"239.2.2.3\", port: 6000 },
      ],
    },
  ],
  workers: {
    heartbeat_timeout: 2.5,
  },
}
";
    let body = text.find('{').map_or("", |i| &text[i..]);
    assert_eq!(body, expected);
    round_trip(&c);
}

#[test]
fn round_trips_of_many_shapes() {
    let mut shapes = Vec::new();

    let mut c = Config::default();
    c.rules.push(rule(
        None,
        None,
        input("eth0", "239.1.1.1", 5000),
        vec![out("eth1", "239.2.2.2", 6000)],
    ));
    shapes.push(c.clone());

    // Custom ids, names needing escapes, sources, TTLs, route mode.
    let mut src = input("eth0", "239.1.1.2", 0);
    src.source = Some(ip("10.0.0.1"));
    let mut ttl = out("eth1", "10.9.9.9", 53);
    ttl.ttl = Some(255);
    let mut route = out("eth2", "239.1.1.2", 0);
    route.mode = OutputMode::Route;
    c.rules.push(rule(
        Some("a-b_c.d:e"),
        Some("quote\" backslash\\ é 日本 😀 \u{2028} /slash"),
        src,
        vec![ttl, route],
    ));
    c.rules.push(rule(
        None,
        Some("'single'"),
        input("wlan0", "224.0.0.251", 5353),
        vec![out("lan0", "224.0.0.251", 5353)],
    ));
    shapes.push(c.clone());

    let mut p = c.clone();
    p.pinning.insert("eth0".into(), vec![3, 1, 2]);
    p.pinning.insert("eth0.100".into(), vec![0]);
    p.pinning.insert("br-lan".into(), vec![1023]);
    p.pinning.insert("_x$".into(), vec![7]);
    shapes.push(p);

    let mut l = Config::default();
    l.logging.levels.global = Severity::Trace;
    shapes.push(l.clone());
    l.logging
        .levels
        .facilities
        .insert(Facility::Ingress, Severity::Debug);
    l.logging
        .levels
        .facilities
        .insert(Facility::PacketParser, Severity::Emergency);
    shapes.push(l.clone());
    l.logging.format = LogFormat::Json;
    shapes.push(l.clone());
    let mut f = Config::default();
    f.logging.format = LogFormat::Json;
    shapes.push(f);

    let mut k = Config::default();
    k.control.socket = Some(PathBuf::from("/run/mcr/control.sock"));
    shapes.push(k.clone());
    k.control.group = Some("mcr admins \"x\"".into());
    shapes.push(k.clone());
    k.control.socket = None;
    shapes.push(k);

    for (idle, hb) in [
        (Duration::from_secs(1), Duration::from_secs(5)),
        (Duration::from_millis(1500), Duration::from_millis(100)),
        (Duration::from_nanos(1), Duration::from_nanos(100_000_001)),
        (Duration::from_secs(86_400), Duration::from_secs(3_600)),
        (
            Duration::new(86_399, 999_999_999),
            Duration::new(3_599, 123_456_789),
        ),
        (Duration::new(12, 340_000_000), Duration::new(1, 1)),
    ] {
        let mut w = Config::default();
        w.workers.idle_timeout = idle;
        w.workers.heartbeat_timeout = hb;
        shapes.push(w.clone());
        w.workers.user = "mcr-worker".into();
        shapes.push(w);
    }

    let mut all = c.clone();
    all.pinning.insert("eth0".into(), vec![0, 1]);
    all.logging.levels.global = Severity::Notice;
    all.logging
        .levels
        .facilities
        .insert(Facility::Stats, Severity::Warning);
    all.logging.format = LogFormat::Json;
    all.control.socket = Some(PathBuf::from("/tmp/ü.sock"));
    all.control.group = Some("wheel".into());
    all.workers.idle_timeout = Duration::from_millis(250);
    all.workers.user = "ünïcødé".into();
    shapes.push(all);

    for c in &shapes {
        round_trip(c);
    }
}

/// Deterministic pseudo-random numbers (Knuth's MMIX LCG), so the
/// generated cases are the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

fn random_config(rng: &mut Lcg) -> Config {
    const IFACES: &[&str] = &["eth0", "eth1", "lan0", "wlan0", "eth0.100", "br-lan"];
    const NAME_CHARS: &[&str] = &[
        "a", "Z", "0", " ", "\"", "\\", "'", "/", "é", "日", "😀", "\u{2028}", "{", "}", ":", ",",
        "//", "/*",
    ];
    let mut c = Config::default();
    let rules = rng.below(5);
    for i in 0..rules {
        let mut inp = input(
            rng.pick(IFACES),
            &format!("239.{}.{}.{}", rng.below(256), i, 1 + rng.below(254)),
            u16::try_from(rng.below(65_536)).unwrap_or(0),
        );
        if rng.below(3) == 0 {
            inp.source = Some(ip(&format!(
                "10.0.{}.{}",
                rng.below(256),
                1 + rng.below(254)
            )));
        }
        let mut outputs = Vec::new();
        for j in 0..1 + rng.below(4) {
            let mut o = if rng.below(4) == 0 {
                let mut o = out("eth9", &inp.group.to_string(), 0);
                o.mode = OutputMode::Route;
                o
            } else {
                let mut o = out(
                    rng.pick(IFACES),
                    &format!("239.200.{i}.{}", 1 + j),
                    u16::try_from(rng.below(65_536)).unwrap_or(0),
                );
                if rng.below(2) == 0 {
                    o.ttl = Some(u8::try_from(1 + rng.below(255)).unwrap_or(1));
                }
                o
            };
            o.interface = format!("{}{}", o.interface.get(..3).unwrap_or("eth"), j);
            outputs.push(o);
        }
        let name = (rng.below(2) == 0).then(|| {
            let mut s = format!("r{i}");
            for _ in 0..rng.below(8) {
                s.push_str(rng.pick(NAME_CHARS));
            }
            s
        });
        let id = (rng.below(3) == 0).then(|| format!("rule-{i}"));
        c.rules
            .push(rule(id.as_deref(), name.as_deref(), inp, outputs));
    }
    for _ in 0..rng.below(3) {
        let cores: Vec<u32> = (0..1 + rng.below(4))
            .map(|k| (k * 7 + rng.below(7)) as u32)
            .collect();
        c.pinning.insert(rng.pick(IFACES).to_string(), cores);
    }
    if rng.below(2) == 0 {
        c.logging.levels.global = rng.pick(&[Severity::Error, Severity::Info, Severity::Trace]);
        c.logging
            .levels
            .facilities
            .insert(rng.pick(&Facility::ALL), Severity::Debug);
    }
    if rng.below(2) == 0 {
        c.workers.idle_timeout =
            Duration::new(rng.below(86_400) as u64, rng.below(1_000_000_000) as u32);
        c.workers.heartbeat_timeout =
            Duration::new(1 + rng.below(3_599) as u64, rng.below(1_000_000_000) as u32);
    }
    c
}

#[test]
fn random_valid_configs_round_trip() {
    let mut rng = Lcg(0x5eed);
    let mut checked = 0;
    for _ in 0..500 {
        let c = random_config(&mut rng);
        // The generator can produce rules that the rule model refuses
        // (e.g. a self loop); the writer's contract covers valid configs.
        let valid = c.rules.iter().all(|r| r.validate().is_empty()) && c.rule_set().is_ok();
        if valid {
            round_trip(&c);
            checked += 1;
        }
    }
    assert!(checked > 400, "only {checked} generated configs were valid");
}

// ---------------------------------------------------------------- robustness

#[test]
fn no_input_makes_the_parser_panic() {
    let seeds: [&str; 4] = [
        include_str!("../../examples/full.json5"),
        include_str!("../../examples/mdns-ssdp.json5"),
        "{ rules: [{ input: { interface: 'eth0', group: '239.1.1.1', port: 0x1388 }, outputs: [{ interface: \"eth1\", group: \"239.2.2.2\", port: 6000, ttl: +1.6e1 }] }], workers: { heartbeat_timeout: .5 } }",
        "{a:'\\u00e9\\x41\\\n',b:[1,-Infinity,NaN,.5,5.,0x1F],/* c */\"d\":{}}",
    ];
    const PALETTE: &[u8] =
        b"{}[]:,'\"\\/*\n\r\t 0123456789xXeE.+-_$aAuU\x00\x7f\xc3\xa9\xe2\x80\xa8\xf0\x9f\x98";
    let mut rng = Lcg(42);
    let mut parsed_ok = 0;
    for case in 0..4000 {
        let mut bytes = seeds[case % seeds.len()].as_bytes().to_vec();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(bytes.len() + 1);
            match rng.below(7) {
                0 if at < bytes.len() => bytes[at] = rng.pick(PALETTE),
                1 => bytes.insert(at, rng.pick(PALETTE)),
                2 => {
                    let end = (at + 1 + rng.below(16)).min(bytes.len());
                    bytes.drain(at.min(end)..end);
                }
                3 => {
                    let end = (at + rng.below(32)).min(bytes.len());
                    let chunk = bytes[at.min(end)..end].to_vec();
                    let to = rng.below(bytes.len() + 1);
                    bytes.splice(to..to, chunk);
                }
                4 => bytes.truncate(at),
                5 => bytes.insert(at, rng.next() as u8),
                _ => {
                    let open = rng.pick(&[&b"["[..], b"{a:", b"/*", b"'", b"\\u"]);
                    for _ in 0..rng.below(100) {
                        bytes.splice(at..at, open.iter().copied());
                    }
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        match parse(&text) {
            Ok(c) => {
                parsed_ok += 1;
                // Whatever parses must also survive the writer.
                round_trip(&c);
            }
            Err(e) => {
                assert!(!e.0.is_empty());
                assert!(e.0.len() <= schema::MAX_REPORTED_ERRORS + 1);
                for err in e.0.iter().take(schema::MAX_REPORTED_ERRORS) {
                    assert!(err.line >= 1 && err.column >= 1, "no position: {err:?}");
                    assert!(!err.message.is_empty());
                }
            }
        }
    }
    // Some mutations (inside comments, say) leave the file valid: the
    // round trip above was exercised.
    assert!(parsed_ok > 0);
}

// ---------------------------------------------------------------- examples

#[test]
fn example_relay() {
    let c = ok(include_str!("../../examples/relay.json5"));
    assert_eq!(c.rules.len(), 1);
    let r = &c.rules[0];
    assert_eq!(r.name.as_deref(), Some("camera-feed"));
    assert_eq!(r.id, default_rule_id(&r.input));
    assert_eq!(r.input, input("eth0", "239.1.1.1", 5000));
    assert_eq!(r.outputs, vec![out("eth1", "239.2.2.2", 6000)]);
    assert_eq!(r.outputs[0].effective_ttl(), 1);
    let defaults = Config {
        rules: c.rules.clone(),
        ..Config::default()
    };
    assert_eq!(c, defaults);
    round_trip(&c);
}

#[test]
fn example_fanout() {
    let c = ok(include_str!("../../examples/fanout.json5"));
    assert_eq!(c.rules.len(), 1);
    let r = &c.rules[0];
    assert_eq!(r.id, "feed-a");
    assert_eq!(r.input.source, Some(ip("10.0.0.10")));
    let got: Vec<(&str, String, u16, Option<u8>)> = r
        .outputs
        .iter()
        .map(|o| (o.interface.as_str(), o.group.to_string(), o.port, o.ttl))
        .collect();
    assert_eq!(
        got,
        [
            ("eth1", "239.10.0.1".to_string(), 5004, Some(3)),
            ("eth2", "239.10.0.1".to_string(), 5004, Some(16)),
            ("wlan0", "239.20.0.1".to_string(), 6004, Some(1)),
        ]
    );
    round_trip(&c);
}

#[test]
fn example_mdns_ssdp() {
    let c = ok(include_str!("../../examples/mdns-ssdp.json5"));
    assert_eq!(c.rules.len(), 4);
    for (r, (from, to, group, port, ttl)) in c.rules.iter().zip([
        ("lan0", "wlan0", "224.0.0.251", 5353, Some(255)),
        ("wlan0", "lan0", "224.0.0.251", 5353, Some(255)),
        ("lan0", "wlan0", "239.255.255.250", 1900, None),
        ("wlan0", "lan0", "239.255.255.250", 1900, None),
    ]) {
        assert_eq!(r.input, input(from, group, port));
        let mut o = out(to, group, port);
        o.ttl = ttl;
        assert_eq!(r.outputs, vec![o]);
    }
    round_trip(&c);
}

#[test]
fn example_full() {
    let c = ok(include_str!("../../examples/full.json5"));
    assert_eq!(c.rules.len(), 2);
    let r = &c.rules[0];
    assert_eq!(
        (r.id.as_str(), r.name.as_deref()),
        ("video-1", Some("Studio video"))
    );
    assert_eq!(r.input.source, Some(ip("10.1.1.5")));
    assert_eq!(r.outputs[0].ttl, Some(8));
    assert_eq!(r.outputs[1].mode, OutputMode::Route);
    assert_eq!(c.rules[1].id, default_rule_id(&c.rules[1].input));
    assert!(!c.rules[1].outputs[0].group.is_multicast());
    assert_eq!(c.pinning.get("eth0"), Some(&vec![2, 3]));
    assert_eq!(c.logging.levels.global, Severity::Notice);
    assert_eq!(c.logging.levels.facilities.len(), 2);
    assert_eq!(c.logging.format, LogFormat::Json);
    assert_eq!(
        c.control.socket,
        Some(PathBuf::from("/run/mcr/control.sock"))
    );
    assert_eq!(c.control.group.as_deref(), Some("mcr"));
    assert_eq!(c.workers.idle_timeout, Duration::from_secs(600));
    assert_eq!(c.workers.heartbeat_timeout, Duration::from_millis(2500));
    assert_eq!(c.workers.user, "mcr-worker");
    round_trip(&c);
}
