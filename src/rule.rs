//! The static forwarding rule: the one model shared by config files, the
//! control protocol, the RIB and the running rule set.
//!
//! A rule says: packets arriving on `input.interface` for
//! `input.group:input.port` (optionally only from `input.source`) are sent
//! to every output. Groups may be multicast or unicast on either side.
//!
//! Validation lives here so that `mcrctl add` and config files refuse the
//! same things with the same words.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::hash::Fnv64;

mod loops;
mod set;
#[cfg(test)]
mod testutil;
pub use loops::{forwarding_loops, loop_warnings};
pub use set::{RuleDiff, RuleSet};

/// Most outputs one rule may have. Beyond this a fan-out belongs in a
/// switch, and the worker's per-packet send list stays bounded.
pub const MAX_OUTPUTS: usize = 256;
/// Longest rule id or name.
pub const MAX_ID_LEN: usize = 64;
/// Linux IFNAMSIZ - 1.
pub const MAX_IFNAME_LEN: usize = 15;

/// Where a rule listens.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub interface: String,
    pub group: Ipv4Addr,
    /// 0 means any destination port.
    pub port: u16,
    /// Only packets from this source, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Ipv4Addr>,
}

/// How a packet leaves on an output.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum OutputMode {
    /// A new UDP datagram from this host: group and port may be translated,
    /// the kernel routes it (so unicast, VLAN and tunnel outputs work).
    #[default]
    Republish,
    /// The original IP packet, source kept, TTL decremented: what a
    /// multicast router does.
    Route,
}

impl OutputMode {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputMode::Republish => "republish",
            OutputMode::Route => "route",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "republish" => Some(OutputMode::Republish),
            "route" => Some(OutputMode::Route),
            _ => None,
        }
    }
}

/// Where a rule sends.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleOutput {
    pub interface: String,
    pub group: Ipv4Addr,
    /// 0 means the packet's own destination port.
    pub port: u16,
    /// IP TTL of republished packets. Default: 1 for multicast
    /// destinations (stays on the link, like the kernel's default), 64 for
    /// unicast. Ignored in route mode (the packet's TTL minus one is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
    #[serde(default, skip_serializing_if = "is_default_mode")]
    pub mode: OutputMode,
    /// Send only while the output interface has an IGMP member of
    /// `group` (the group after translation). Not part of the rule id.
    #[serde(default, skip_serializing_if = "is_false")]
    pub members_only: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_default_mode(m: &OutputMode) -> bool {
    *m == OutputMode::Republish
}

/// Default TTL for republished multicast.
pub const DEFAULT_MULTICAST_TTL: u8 = 1;
/// Default TTL for republished unicast.
pub const DEFAULT_UNICAST_TTL: u8 = 64;

impl RuleOutput {
    /// The TTL this output sends with, defaults applied.
    pub fn effective_ttl(&self) -> u8 {
        self.ttl.unwrap_or(if self.group.is_multicast() {
            DEFAULT_MULTICAST_TTL
        } else {
            DEFAULT_UNICAST_TTL
        })
    }
}

/// A static forwarding rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub input: RuleInput,
    pub outputs: Vec<RuleOutput>,
}

/// The identity of a rule's input: two rules may not share one.
pub type InputKey = (String, Ipv4Addr, u16, Option<Ipv4Addr>);

impl Rule {
    /// A rule with the default (hashed) id.
    pub fn new(name: Option<String>, input: RuleInput, outputs: Vec<RuleOutput>) -> Self {
        Rule {
            id: default_rule_id(&input),
            name,
            input,
            outputs,
        }
    }

    pub fn input_key(&self) -> InputKey {
        (
            self.input.interface.clone(),
            self.input.group,
            self.input.port,
            self.input.source,
        )
    }

    /// Every problem with this rule on its own (not against other rules).
    /// Field paths are relative to the rule: `input.group`,
    /// `outputs[1].port`, `id`, `name`.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if let Err(m) = validate_rule_id(&self.id) {
            errs.push(FieldError::new("id", m));
        }
        if let Some(name) = &self.name {
            if let Err(m) = validate_name(name) {
                errs.push(FieldError::new("name", m));
            }
        }
        if let Err(m) = validate_interface_name(&self.input.interface) {
            errs.push(FieldError::new("input.interface", m));
        }
        if let Err(m) = validate_address(self.input.group) {
            errs.push(FieldError::new("input.group", m));
        }
        if let Some(src) = self.input.source {
            if src.is_multicast() || src.is_unspecified() || src.is_broadcast() {
                errs.push(FieldError::new(
                    "input.source",
                    format!("{src} is not a unicast source address"),
                ));
            }
        }
        if self.outputs.is_empty() {
            errs.push(FieldError::new(
                "outputs",
                "a rule needs at least one output",
            ));
        }
        if self.outputs.len() > MAX_OUTPUTS {
            errs.push(FieldError::new(
                "outputs",
                format!(
                    "{} outputs; at most {MAX_OUTPUTS} are allowed",
                    self.outputs.len()
                ),
            ));
        }
        let mut seen: BTreeMap<(&str, Ipv4Addr, u16), usize> = BTreeMap::new();
        for (i, out) in self.outputs.iter().enumerate() {
            let f = |s: &str| format!("outputs[{i}].{s}");
            if let Err(m) = validate_interface_name(&out.interface) {
                errs.push(FieldError::new(f("interface"), m));
            }
            if let Err(m) = validate_address(out.group) {
                errs.push(FieldError::new(f("group"), m));
            }
            if out.members_only && !out.group.is_multicast() {
                errs.push(FieldError::new(
                    f("members_only"),
                    format!(
                        "{} is unicast; only a multicast output can wait for IGMP members",
                        out.group
                    ),
                ));
            }
            if out.ttl == Some(0) {
                errs.push(FieldError::new(
                    f("ttl"),
                    "TTL 0 would never leave this host; use 1..255",
                ));
            }
            if out.mode == OutputMode::Route {
                if out.group != self.input.group || (out.port != 0 && out.port != self.input.port) {
                    errs.push(FieldError::new(
                        f("mode"),
                        "route mode sends the original packet, so its group and port must equal the input's (use republish to translate)",
                    ));
                }
                if out.ttl.is_some() {
                    errs.push(FieldError::new(
                        f("ttl"),
                        "route mode keeps the packet's own TTL minus one; drop ttl or use republish",
                    ));
                }
            }
            if out.interface == self.input.interface
                && out.group == self.input.group
                && (out.port == self.input.port || out.port == 0 || self.input.port == 0)
            {
                errs.push(FieldError::new(
                    f("interface"),
                    format!(
                        "self loop: output {}:{} on {} is the rule's own input",
                        out.group, out.port, out.interface
                    ),
                ));
            }
            if let Some(j) = seen.insert((out.interface.as_str(), out.group, out.port), i) {
                errs.push(FieldError::new(
                    f("group"),
                    format!(
                        "duplicate of outputs[{j}] ({}:{} on {})",
                        out.group, out.port, out.interface
                    ),
                ));
            }
        }
        errs
    }
}

/// A validation problem, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error with a prefix on its field path (`rules[3].` + field).
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}{}", self.field);
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// The default rule id: 16 lowercase hex digits of FNV-1a 64 over
/// `"mcr-rule-v1" NUL interface NUL group NUL port NUL source`, where group
/// and source are dotted quads, port is decimal, and source is empty when
/// absent. Documented in REFERENCE.md; never change it.
pub fn default_rule_id(input: &RuleInput) -> String {
    let mut h = Fnv64::new();
    h.write(b"mcr-rule-v1\0")
        .write(input.interface.as_bytes())
        .write(b"\0")
        .write(input.group.to_string().as_bytes())
        .write(b"\0")
        .write(input.port.to_string().as_bytes())
        .write(b"\0");
    if let Some(s) = input.source {
        h.write(s.to_string().as_bytes());
    }
    format!("{:016x}", h.finish())
}

/// Linux's own rule for device names (`dev_valid_name`), plus our limit.
pub fn validate_interface_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("interface name is empty".into());
    }
    if name.len() > MAX_IFNAME_LEN {
        return Err(format!(
            "interface name {name:?} is {} bytes; Linux allows at most {MAX_IFNAME_LEN}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a valid interface name"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "interface name {name:?} contains {c:?}, which Linux does not allow"
        ));
    }
    Ok(())
}

/// Rule ids set by the user: short, printable, no spaces, so they survive
/// shells and log lines.
pub fn validate_rule_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(format!(
            "rule id must be 1..{MAX_ID_LEN} characters, got {}",
            id.len()
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        return Err(format!(
            "rule id {id:?} contains {c:?}; use letters, digits, '-', '_', '.', ':'"
        ));
    }
    Ok(())
}

pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_ID_LEN {
        return Err(format!(
            "name must be 1..{MAX_ID_LEN} characters, got {}",
            name.len()
        ));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(format!("name {name:?} contains a control character"));
    }
    Ok(())
}

/// Groups and destinations: any IPv4 address a packet can be addressed to.
fn validate_address(a: Ipv4Addr) -> Result<(), String> {
    if a.is_unspecified() {
        return Err("0.0.0.0 is not a destination".into());
    }
    if a.is_loopback() {
        return Err(format!(
            "{a} is a loopback address and never crosses an interface"
        ));
    }
    Ok(())
}

/// The suffix of an output spec that makes it members-only.
pub const MEMBERS_SUFFIX: &str = "members";

/// Parse a `group:port:interface[:ttl][:members]` output spec as `mcrctl
/// add --outputs` takes it. `members` is recognised only after the
/// interface, so an interface that happens to be called `members` still
/// parses as one.
pub fn parse_output_spec(spec: &str) -> Result<RuleOutput, String> {
    let mut parts: Vec<&str> = spec.split(':').collect();
    let members_only = parts.len() >= 4 && parts.last() == Some(&MEMBERS_SUFFIX);
    if members_only {
        parts.pop();
    }
    if parts.len() < 3 || parts.len() > 4 {
        return Err(format!(
            "output {spec:?}: expected GROUP:PORT:INTERFACE[:TTL][:members], e.g. 239.1.1.1:5000:eth1"
        ));
    }
    let group: Ipv4Addr = parts[0].parse().map_err(|_| {
        format!(
            "output {spec:?}: group {:?} is not an IPv4 address",
            parts[0]
        )
    })?;
    let port: u16 = parts[1].parse().map_err(|_| {
        format!(
            "output {spec:?}: port {:?} is not a number in 0..65535",
            parts[1]
        )
    })?;
    let ttl = match parts.get(3) {
        None => None,
        Some(t) => Some(
            t.parse::<u8>()
                .map_err(|_| format!("output {spec:?}: ttl {t:?} is not a number in 1..255"))?,
        ),
    };
    Ok(RuleOutput {
        interface: parts[2].to_string(),
        group,
        port,
        ttl,
        mode: OutputMode::Republish,
        members_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rule with its default id: `rule("eth0 239.1.1.1:5000", &["eth1 239.2.2.2:6000"])`.
    fn rule(input: &str, outs: &[&str]) -> Rule {
        Rule::new(None, testutil::input(input), testutil::outputs(outs))
    }

    #[test]
    fn default_id_is_stable_and_documented() {
        let r = rule("eth0 239.1.1.1:5000", &["eth1 239.2.2.2:6000"]);
        // Pinned: changing the id scheme breaks every saved config and
        // script that names rule ids. See REFERENCE.md "Rule ids".
        let expect = format!(
            "{:016x}",
            crate::hash::fnv1a64(b"mcr-rule-v1\x00eth0\x00239.1.1.1\x005000\x00")
        );
        assert_eq!(r.id, expect);
        assert_eq!(r.id.len(), 16);
        let with_src = Rule::new(
            None,
            RuleInput {
                source: Some("10.0.0.1".parse().unwrap()),
                ..r.input.clone()
            },
            r.outputs.clone(),
        );
        assert_ne!(with_src.id, r.id, "the source is part of the input tuple");
    }

    #[test]
    fn self_loop_is_refused_naming_the_output() {
        let r = rule("eth0 239.1.1.1:5000", &["eth0 239.1.1.1:5000"]);
        let errs = r.validate();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "outputs[0].interface");
        assert!(errs[0].message.contains("self loop"));
        // Same interface, translated group: fine.
        assert!(rule("eth0 239.1.1.1:5000", &["eth0 239.9.9.9:5000"])
            .validate()
            .is_empty());
        // Any-port input to the same group on the same interface loops.
        assert!(!rule("eth0 239.1.1.1:0", &["eth0 239.1.1.1:7000"])
            .validate()
            .is_empty());
    }

    #[test]
    fn bad_fields_are_named() {
        let mut r = rule(
            "eth0/x 0.0.0.0:5000",
            &["averyveryverylongname 127.0.0.1:1"],
        );
        r.outputs[0].ttl = Some(0);
        r.input.source = Some("239.1.1.1".parse().unwrap());
        let fields: Vec<String> = r.validate().into_iter().map(|e| e.field).collect();
        for f in [
            "input.interface",
            "input.group",
            "input.source",
            "outputs[0].interface",
            "outputs[0].group",
            "outputs[0].ttl",
        ] {
            assert!(fields.iter().any(|x| x == f), "missing {f} in {fields:?}");
        }
        assert!(rule("eth0 239.1.1.1:1", &[]).validate()[0].field == "outputs");
    }

    #[test]
    fn duplicates_are_refused_and_set_unchanged() {
        let mut set = RuleSet::new();
        set.insert(rule("eth0 239.1.1.1:5000", &["eth1 239.2.2.2:6000"]))
            .unwrap();
        let mut dup = rule("eth0 239.1.1.1:5000", &["eth2 239.3.3.3:6000"]);
        dup.id = "other".into();
        let e = set.insert(dup).unwrap_err();
        assert_eq!(e[0].field, "input");
        assert!(e[0].message.contains("duplicate input"));
        let mut named = rule("eth0 239.1.1.2:5000", &["eth1 239.2.2.2:6000"]);
        named.name = Some("video".into());
        set.insert(named).unwrap();
        let mut named2 = rule("eth0 239.1.1.3:5000", &["eth1 239.2.2.2:6000"]);
        named2.name = Some("video".into());
        assert_eq!(set.insert(named2).unwrap_err()[0].field, "name");
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn merge_by_id_and_diff() {
        let a = rule("eth0 239.1.1.1:5000", &["eth1 239.2.2.2:6000"]);
        let b = rule("eth0 239.1.1.2:5000", &["eth1 239.2.2.2:6001"]);
        let set = RuleSet::from_rules([a.clone(), b.clone()]).unwrap();
        let mut a2 = a.clone();
        a2.outputs[0].port = 7000;
        let c = rule("eth0 239.1.1.3:5000", &["eth1 239.2.2.2:6002"]);
        let merged = set.merged(&[a2.clone(), c.clone()]).unwrap();
        assert_eq!(merged.len(), 3);
        assert_eq!(merged.get(&a.id).unwrap().outputs[0].port, 7000);
        let d = set.diff(&merged);
        assert_eq!(d.added, vec![c.clone()]);
        assert_eq!(d.changed, vec![(a.clone(), a2.clone())]);
        assert!(d.removed.is_empty());
        let replaced = RuleSet::from_rules([c.clone()]).unwrap();
        let d = set.diff(&replaced);
        assert_eq!(d.removed.len(), 2);
        assert_eq!(d.added, vec![c]);
    }

    #[test]
    fn output_spec_parsing() {
        let o = parse_output_spec("239.2.2.2:6000:eth1").unwrap();
        assert_eq!(o.port, 6000);
        assert_eq!(o.ttl, None);
        assert_eq!(
            parse_output_spec("10.0.0.9:53:eth1:8").unwrap().ttl,
            Some(8)
        );
        assert!(parse_output_spec("239.2.2.2:eth1")
            .unwrap_err()
            .contains("GROUP:PORT:INTERFACE"));
        assert!(parse_output_spec("239.2.2.x:1:eth1")
            .unwrap_err()
            .contains("group"));
        assert!(parse_output_spec("239.2.2.2:70000:eth1")
            .unwrap_err()
            .contains("port"));
    }

    #[test]
    fn members_suffix_marks_an_output_members_only_and_keeps_the_id() {
        let o = parse_output_spec("239.2.2.2:6000:eth1:members").unwrap();
        assert!(o.members_only);
        assert_eq!((o.interface.as_str(), o.ttl), ("eth1", None));
        let o = parse_output_spec("239.2.2.2:6000:eth1:3:members").unwrap();
        assert_eq!((o.members_only, o.ttl), (true, Some(3)));
        // An interface called `members` is still an interface.
        let o = parse_output_spec("239.2.2.2:6000:members").unwrap();
        assert_eq!((o.interface.as_str(), o.members_only), ("members", false));
        assert!(
            !parse_output_spec("239.2.2.2:6000:eth1")
                .unwrap()
                .members_only
        );
        assert!(parse_output_spec("239.2.2.2:6000:eth1:members:3").is_err());

        let plain = rule("eth0 239.1.1.1:5000", &["eth1 239.2.2.2:6000"]);
        let mut gated = plain.clone();
        gated.outputs[0].members_only = true;
        assert_eq!(
            Rule::new(None, gated.input.clone(), gated.outputs).id,
            plain.id
        );

        // The control request stays compatible: an old client's output has
        // no flag, and an output without it is written without it.
        let old: RuleOutput =
            serde_json::from_str(r#"{"interface":"eth1","group":"239.2.2.2","port":1}"#).unwrap();
        assert!(!old.members_only);
        assert!(!serde_json::to_string(&old)
            .unwrap()
            .contains("members_only"));
    }
}
