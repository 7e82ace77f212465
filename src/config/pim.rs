//! The `pim` section of the config file: the schema walk from JSON5 to a
//! [`PimConfig`] and the writer back.
//!
//! Owns: which keys the section takes and how each is spelled in the file
//! (durations in seconds, whole or fractional; groups as `239.0.0.0/8`),
//! and placing the RFC-range checks of `PimConfig::validate` at a line of
//! the file. The values, defaults and ranges themselves (RFC 7761 §4.11)
//! belong to `crate::pim::config`.

use std::fmt::Write as _;
use std::time::Duration;

use super::Walker;
use crate::config::document::{join_index, join_key, Kind, Value};
use crate::pim::config::{GroupPrefix, PimConfig, PimInterfaceConfig, SptSwitchover, StaticRp};

const PIM_KEYS: &[&str] = &[
    "enabled",
    "router_id",
    "interfaces",
    "static_rp",
    "spt_switchover",
    "join_prune_interval",
];
const INTERFACE_KEYS: &[&str] = &[
    "name",
    "dr_priority",
    "hello_interval",
    "hello_holdtime",
    "triggered_hello_delay",
    "propagation_delay",
    "override_interval",
];
const RP_KEYS: &[&str] = &["group", "rp"];
/// Wide bounds for the walk; `PimConfig::validate` applies the real ones
/// and its messages are placed at the same keys.
const ANY: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(1_000_000));

impl Walker {
    pub(super) fn pim(&mut self, v: &Value, path: &str) -> Option<PimConfig> {
        self.mark(path, v);
        let members = self.object(v, path, "the pim section")?;
        let mut cfg = PimConfig::default();
        let mut ok = true;
        for m in members {
            let p = join_key(path, &m.key);
            self.mark(&p, &m.value);
            match m.key.as_str() {
                "enabled" => match self.boolean(&m.value, &p) {
                    Some(b) => cfg.enabled = b,
                    None => ok = false,
                },
                "router_id" => match self.ipv4(&m.value, &p) {
                    Some(a) => cfg.router_id = Some(a),
                    None => ok = false,
                },
                "interfaces" => match self.list(&m.value, &p, "PIM interfaces", Self::pim_iface) {
                    Some(l) => cfg.interfaces = l,
                    None => ok = false,
                },
                "static_rp" => match self.list(&m.value, &p, "RP mappings", Self::static_rp) {
                    Some(l) => cfg.static_rp = l,
                    None => ok = false,
                },
                "spt_switchover" => match self.string(&m.value, &p, "\"immediate\" or \"never\"") {
                    Some(s) if s == "immediate" => cfg.spt_switchover = SptSwitchover::Immediate,
                    Some(s) if s == "never" => cfg.spt_switchover = SptSwitchover::Never,
                    Some(s) => {
                        self.field_error(
                            &p,
                            format!("{s:?} is not a policy; use \"immediate\" or \"never\""),
                        );
                        ok = false;
                    }
                    None => ok = false,
                },
                "join_prune_interval" => {
                    match self.seconds(&m.value, &p, ANY.0, ANY.1, "a duration in seconds") {
                        Some(d) => cfg.join_prune_interval = d,
                        None => ok = false,
                    }
                }
                _ => self.unknown(m, &p, PIM_KEYS),
            }
        }
        if !ok {
            return None;
        }
        let errs = cfg.validate();
        for e in &errs {
            // `validate` writes `pim.interfaces[0].name: message`.
            let (field, msg) = e.split_once(": ").unwrap_or(("pim", e.as_str()));
            self.field_error(field, msg.to_string());
        }
        errs.is_empty().then_some(cfg)
    }

    pub(super) fn boolean(&mut self, v: &Value, path: &str) -> Option<bool> {
        match v.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                self.field_error(
                    path,
                    format!("expected true or false, found {}", v.describe()),
                );
                None
            }
        }
    }

    /// An array whose items `item` builds; `None` if any item failed (all
    /// are still checked, so every error is reported at once).
    fn list<T>(
        &mut self,
        v: &Value,
        path: &str,
        what: &str,
        item: fn(&mut Self, &Value, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let Kind::Array(items) = &v.kind else {
            self.field_error(
                path,
                format!(
                    "expected a list of {what} (an array `[ ... ]`), found {}",
                    v.describe()
                ),
            );
            return None;
        };
        let built: Vec<Option<T>> = items
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let p = join_index(path, i);
                self.mark(&p, x);
                item(self, x, &p)
            })
            .collect();
        built.into_iter().collect()
    }

    fn pim_iface(&mut self, v: &Value, path: &str) -> Option<PimInterfaceConfig> {
        let members = self.object(v, path, "a PIM interface")?;
        self.require(v, path, members, &["name"]);
        let mut c = PimInterfaceConfig::default();
        let mut ok = true;
        for m in members {
            let p = join_key(path, &m.key);
            self.mark(&p, &m.value);
            let val = &m.value;
            let got = match m.key.as_str() {
                "name" => self.interface(val, &p).map(|n| c.name = n),
                "dr_priority" => self
                    .integer(val, &p, "a DR priority", 0, i64::from(u32::MAX))
                    .map(|n| c.dr_priority = n as u32),
                "hello_interval" => self
                    .seconds(val, &p, ANY.0, ANY.1, "a duration in seconds")
                    .map(|d| c.hello_interval = d),
                "hello_holdtime" => self
                    .seconds(val, &p, ANY.0, ANY.1, "a duration in seconds")
                    .map(|d| c.hello_holdtime = Some(d)),
                "triggered_hello_delay" => self
                    .seconds(val, &p, ANY.0, ANY.1, "a duration in seconds")
                    .map(|d| c.triggered_hello_delay = d),
                "propagation_delay" => self
                    .seconds(val, &p, ANY.0, ANY.1, "a duration in seconds")
                    .map(|d| c.propagation_delay = d),
                "override_interval" => self
                    .seconds(val, &p, ANY.0, ANY.1, "a duration in seconds")
                    .map(|d| c.override_interval = d),
                _ => {
                    self.unknown(m, &p, INTERFACE_KEYS);
                    Some(())
                }
            };
            ok &= got.is_some();
        }
        // The first Hello's random delay may not exceed the Hello period
        // (RFC 7761 §4.3.1); a short period given alone lowers the default
        // delay with it instead of making the file invalid.
        if !members.iter().any(|m| m.key == "triggered_hello_delay") {
            c.triggered_hello_delay = c.triggered_hello_delay.min(c.hello_interval);
        }
        (ok && members.iter().any(|m| m.key == "name")).then_some(c)
    }

    fn static_rp(&mut self, v: &Value, path: &str) -> Option<StaticRp> {
        let members = self.object(v, path, "an RP mapping")?;
        self.require(v, path, members, RP_KEYS);
        let (mut group, mut rp) = (None, None);
        for m in members {
            let p = join_key(path, &m.key);
            self.mark(&p, &m.value);
            match m.key.as_str() {
                "group" => {
                    let s = self.string(&m.value, &p, "a group prefix like \"239.0.0.0/8\"")?;
                    match s.parse::<GroupPrefix>() {
                        Ok(g) => group = Some(g),
                        Err(e) => self.field_error(&p, e),
                    }
                }
                "rp" => rp = self.ipv4(&m.value, &p),
                _ => self.unknown(m, &p, RP_KEYS),
            }
        }
        Some(StaticRp {
            group: group?,
            rp: rp?,
        })
    }
}

/// The `pim` section as JSON5 lines, or nothing when it is all defaults.
/// Every field is written so that the file reads back to the same config.
pub(crate) fn write_pim(out: &mut String, pim: &PimConfig, seconds: fn(Duration) -> String) {
    out.push_str("  pim: {\n");
    let _ = writeln!(out, "    enabled: {},", pim.enabled);
    if let Some(id) = pim.router_id {
        let _ = writeln!(out, "    router_id: \"{id}\",");
    }
    let _ = writeln!(
        out,
        "    join_prune_interval: {},",
        seconds(pim.join_prune_interval)
    );
    let spt = match pim.spt_switchover {
        SptSwitchover::Immediate => "immediate",
        SptSwitchover::Never => "never",
    };
    let _ = writeln!(out, "    spt_switchover: \"{spt}\",");
    out.push_str("    interfaces: [\n");
    for i in &pim.interfaces {
        let mut f = vec![
            format!("name: {}", serde_json::Value::String(i.name.clone())),
            format!("dr_priority: {}", i.dr_priority),
            format!("hello_interval: {}", seconds(i.hello_interval)),
        ];
        if let Some(h) = i.hello_holdtime {
            f.push(format!("hello_holdtime: {}", seconds(h)));
        }
        f.push(format!(
            "triggered_hello_delay: {}",
            seconds(i.triggered_hello_delay)
        ));
        f.push(format!(
            "propagation_delay: {}",
            seconds(i.propagation_delay)
        ));
        f.push(format!(
            "override_interval: {}",
            seconds(i.override_interval)
        ));
        let _ = writeln!(out, "      {{ {} }},", f.join(", "));
    }
    out.push_str("    ],\n");
    out.push_str("    static_rp: [\n");
    for m in &pim.static_rp {
        let _ = writeln!(out, "      {{ group: \"{}\", rp: \"{}\" }},", m.group, m.rp);
    }
    out.push_str("    ],\n  },\n");
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use std::time::Duration;

    #[test]
    fn pim_section_reads_writes_back_and_places_errors() {
        let text = r#"{
  pim: {
    enabled: true,
    interfaces: [ { name: "veth0", dr_priority: 7, hello_interval: 2, triggered_hello_delay: 0.1 } ],
    static_rp: [ { group: "239.0.0.0/8", rp: "10.0.0.1" } ],
  },
}"#;
        let c = parse(text).unwrap();
        let pim = c.pim.as_ref().expect("pim section");
        assert!(pim.enabled);
        assert_eq!(pim.interfaces[0].dr_priority, 7);
        assert_eq!(
            pim.interfaces[0].triggered_hello_delay,
            Duration::from_millis(100)
        );
        assert_eq!(pim.static_rp[0].rp.to_string(), "10.0.0.1");
        assert_eq!(parse(&c.to_json5()).unwrap(), c);

        let bad = "{\n  pim: {\n    interfaces: [ { name: \"veth0\", hello_interval: 0 } ],\n    frobs: 1,\n  },\n}";
        let e = parse(bad).unwrap_err().to_string();
        assert!(
            e.contains("line 3") && e.contains("pim.interfaces[0].hello_interval"),
            "{e}"
        );
        assert!(e.contains("line 4") && e.contains("pim.frobs"), "{e}");
        let e = parse("{ pim: { interfaces: [ { dr_priority: 1 } ] } }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing required key `name`"), "{e}");
    }
}
