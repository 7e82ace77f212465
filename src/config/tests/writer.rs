//! The writer: layout and the round trip `parse(to_json5(c)) == c`.

use super::*;

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
            o.members_only = rng.below(3) == 0;
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
    if rng.below(2) == 0 {
        c.igmp = Some(random_igmp(rng));
    }
    if rng.below(2) == 0 {
        c.pim = Some(random_pim(rng));
    }
    c
}

/// A valid `igmp` section with arbitrary fractional timers.
fn random_igmp(rng: &mut Lcg) -> IgmpConfig {
    let mut c = IgmpConfig::default();
    for i in 0..rng.below(3) {
        c.querier_interfaces.push(format!("q{i}"));
    }
    let s = &mut c.settings;
    s.version = if rng.below(2) == 0 { 2 } else { 3 };
    // Thousandths and odd fractions: what a user writes and what f64
    // cannot hold exactly.
    s.query_interval = 30.0 + rng.below(100_000) as f64 / 1000.0;
    s.query_response_interval = 0.1 + rng.below(25_000) as f64 / 1000.0 / 3.0;
    s.last_member_query_interval = 0.1 + rng.below(2_000) as f64 / 7.0 / 1000.0;
    s.robustness = 1 + rng.below(7) as u8;
    s.last_member_query_count = (rng.below(2) == 0).then(|| 1 + rng.below(255) as u8);
    if rng.below(2) == 0 {
        c.proxy = Some(IgmpProxyConfig {
            upstream: "up0".into(),
            downstream: (0..1 + rng.below(3)).map(|i| format!("dn{i}")).collect(),
        });
    }
    c
}

fn random_pim(rng: &mut Lcg) -> crate::pim::config::PimConfig {
    use crate::pim::config::{PimConfig, PimInterfaceConfig, SptSwitchover, StaticRp};
    let mut c = PimConfig {
        enabled: rng.below(2) == 0,
        ..PimConfig::default()
    };
    if rng.below(2) == 0 {
        c.router_id = Some(ip(&format!(
            "10.9.{}.{}",
            rng.below(256),
            1 + rng.below(254)
        )));
    }
    for i in 0..rng.below(3) {
        let mut ifc = PimInterfaceConfig::named(&format!("p{i}"));
        ifc.dr_priority = rng.next() as u32;
        ifc.hello_interval = Duration::from_millis(1000 + rng.below(100_000) as u64);
        ifc.triggered_hello_delay = ifc.triggered_hello_delay.min(ifc.hello_interval);
        c.interfaces.push(ifc);
    }
    for i in 0..rng.below(3) {
        c.static_rp.push(StaticRp {
            group: format!("239.{i}.0.0/16").parse().expect("a valid prefix"),
            rp: ip(&format!("10.0.0.{}", 1 + i)),
        });
    }
    if rng.below(2) == 0 {
        c.spt_switchover = SptSwitchover::Never;
        c.join_prune_interval = Duration::new(
            1 + rng.below(18_000) as u64,
            rng.below(1000) as u32 * 1_000_000,
        );
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
        let valid = c.rules.iter().all(|r| r.validate().is_empty())
            && c.rule_set().is_ok()
            && c.igmp.iter().all(|i| i.settings.validate().is_ok())
            && c.pim.iter().all(|p| p.validate().is_empty());
        if valid {
            round_trip(&c);
            checked += 1;
        }
    }
    assert!(checked > 400, "only {checked} generated configs were valid");
}

#[test]
fn emit_read_emit_is_a_fixed_point_for_hand_written_files() {
    // A hand-written file has comments, its own layout and key order; the
    // first write normalises all that, and from then on the text is stable.
    for text in [
        include_str!("../../../examples/full.json5"),
        include_str!("../../../examples/fanout.json5"),
        "{ workers: { user: 'w', idle_timeout: 1.5e1 }, rules: [{ outputs: [{ port: 0x10, \
         group: '239.2.2.2', interface: 'eth1', ttl: 4 }], input: { port: 1, \
         group: '239.1.1.1', interface: 'eth0' }, name: 'n\\u00e9' }] }",
    ] {
        let first = ok(text).to_json5();
        let second = ok(&first).to_json5();
        assert_eq!(first, second, "not a fixed point; first write:\n{first}");
        assert_eq!(ok(&first), ok(text));
    }
}
