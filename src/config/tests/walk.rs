//! The schema walk: valid files, keys, types and ranges, and the rule
//! model's errors placed in the file.

use super::*;

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
        e[1].message
            .ends_with("interface, group, port, ttl, mode, members_only"),
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
        e[3].message
            .ends_with("level, facilities, format, file, rotation, keep"),
        "{}",
        e[3]
    );
    assert!(e[4].message.ends_with("socket, group"), "{}", e[4]);
    assert!(
        e[5].message
            .ends_with("idle_timeout, heartbeat_timeout, restart_backoff_max, user, rx_path, rx_ring_mb, rx_block_ms, early_drop"),
        "{}",
        e[5]
    );
    assert_eq!(e[0].column, 65);
}

#[test]
fn later_release_sections_are_refused() {
    let e = one("{\n  rules: [],\n  msdp: { enabled: true },\n}");
    assert_eq!((e.line, e.column, e.path.as_str()), (3, 3, "msdp"));
    assert_eq!(e.message, "`msdp` is not available in this version of mcrd");
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
  msdp: {},
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
            "msdp",
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
    assert_eq!(e.len(), read::MAX_REPORTED_ERRORS + 1);
    assert_eq!(e[0].path, "rules[0]");
    let last = &e[read::MAX_REPORTED_ERRORS];
    assert_eq!(last.line, 0);
    assert_eq!(
        last.message,
        "and 900 more problems not shown; fix the ones above first"
    );
    // Long user text is cut in messages.
    let e = one(&format!("{{ {}: 1 }}", "k".repeat(10_000)));
    assert!(e.message.len() < 200, "{}", e.message.len());
}

/// The receive path keys: parsed into `workers.rx`, written back by
/// `config save` only where they differ from the defaults, and a wrong
/// value is refused with the key and its line named.
#[test]
fn workers_rx_keys() {
    use crate::config::{RxConfig, RxPath};
    let c = ok("{ workers: { rx_path: 'recv' } }");
    assert_eq!(
        c.workers.rx,
        RxConfig {
            path: RxPath::Recv,
            ring_mb: 16,
            block_ms: 1,
            early_drop: crate::config::EarlyDrop::Off,
        }
    );
    let text = c.to_json5();
    assert!(text.contains("rx_path: \"recv\""), "{text}");
    assert!(
        !text.contains("rx_ring_mb"),
        "defaults are not written: {text}"
    );
    assert_eq!(parse(&text), Ok(c));
    let c = ok("{ workers: { rx_path: 'ring', rx_ring_mb: 64, rx_block_ms: 5 } }");
    assert_eq!(
        (
            c.workers.rx.path,
            c.workers.rx.ring_mb,
            c.workers.rx.block_ms
        ),
        (RxPath::Ring, 64, 5)
    );
    assert_eq!(parse(&c.to_json5()), Ok(c));
    assert_eq!(ok("{}").workers.rx, RxConfig::default());
    let c = ok("{ workers: { early_drop: 'xdp' } }");
    assert_eq!(c.workers.rx.early_drop, crate::config::EarlyDrop::Xdp);
    let text = c.to_json5();
    assert!(text.contains("early_drop: \"xdp\""), "{text}");
    assert_eq!(parse(&text), Ok(c));
    assert_one(
        "{ workers: {\n rx_path: 'fast' } }",
        2,
        11,
        "workers.rx_path",
        "expected \"ring\" (a mapped receive ring, the default) or \"recv\"",
    );
    for (text, path, needle) in [
        (
            "{ workers: { rx_ring_mb: 0 } }",
            "workers.rx_ring_mb",
            "in 1..=1024",
        ),
        (
            "{ workers: { rx_ring_mb: 4096 } }",
            "workers.rx_ring_mb",
            "out of range",
        ),
        (
            "{ workers: { rx_block_ms: 0 } }",
            "workers.rx_block_ms",
            "in 1..=1000",
        ),
        (
            "{ workers: { rx_block_ms: 2.5 } }",
            "workers.rx_block_ms",
            "an integer",
        ),
        ("{ workers: { rx_path: 1 } }", "workers.rx_path", "found"),
        (
            "{ workers: { early_drop: 'on' } }",
            "workers.early_drop",
            "expected \"xdp\"",
        ),
    ] {
        let e = one(text);
        assert_eq!(e.path, path, "{text}");
        assert!(e.message.contains(needle), "{text}: {e:?} lacks {needle:?}");
    }
}
