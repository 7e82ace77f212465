//! The schema walk: from a JSON5 document to a `Config`.
//!
//! Owns: which keys exist and which are required, their types and ranges,
//! the keys refused because they belong to later releases, and placing the
//! rule model's own validation errors (`Rule::validate`,
//! `RuleSet::from_rules`) at a line of the file. Every problem found is
//! collected; a `Config` comes out only when there are none, so nothing
//! from a half-valid file is ever applied.
//!
//! Semantic checks on rules (addresses, self loops, duplicate ids, names
//! and inputs) live in `crate::rule` so that `mcrctl add` and config files
//! refuse the same things with the same words; this module only adds where.
//! The sections are walked here (rules) and in sibling modules that extend
//! [`Walker`]: `super::settings` (pinning, logging, control, workers),
//! `super::logfile`, `super::igmp` and `super::pim`.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::time::Duration;

use super::document::{self, join_index, join_key, Kind, Member, Number, Value};
use super::words::{duration_from_secs, suggestion};
use super::{Config, ConfigError};
use crate::rule::{self, OutputMode, Rule, RuleInput, RuleOutput, RuleSet};

// A child of this module so that it walks with the same `Walker`.
#[path = "pim.rs"]
pub(super) mod pim;

const TOP_KEYS: &[&str] = &[
    "rules", "pinning", "logging", "control", "workers", "igmp", "pim", "metrics",
];
/// Sections of later releases. Refused loudly: accepting and ignoring them
/// would let an operator believe MSDP is running. A section that lands
/// leaves this list and gets an arm in `Walker::config`.
const REFUSED_KEYS: &[&str] = &["msdp"];
const RULE_KEYS: &[&str] = &["id", "name", "input", "outputs"];
const INPUT_KEYS: &[&str] = &["interface", "group", "port", "source"];
const OUTPUT_KEYS: &[&str] = &["interface", "group", "port", "ttl", "mode", "members_only"];
/// Walk a document: the `Config` when it could be built, and every
/// problem found, added to `errors` (those the reader found), unsorted.
pub(super) fn walk(root: &Value, errors: Vec<ConfigError>) -> (Option<Config>, Vec<ConfigError>) {
    let mut walker = Walker {
        errors,
        spans: HashMap::new(),
    };
    let config = walker.config(root);
    (config, walker.errors)
}

pub(super) type Pos = (usize, usize);

pub(super) fn pos(v: &Value) -> Pos {
    (v.line, v.column)
}

pub(super) fn key_pos(m: &Member) -> Pos {
    (m.line, m.column)
}

/// The walk's state. The `igmp`, `pim` and settings sections are walked
/// by `super::igmp`, `super::pim` and `super::settings`, which extend
/// this type.
pub(super) struct Walker {
    errors: Vec<ConfigError>,
    /// Path -> position of the value found there. Only rules need it: it
    /// places the errors that `crate::rule` reports by field path.
    spans: HashMap<String, Pos>,
}

impl Walker {
    pub(super) fn error(&mut self, at: Pos, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            line: at.0,
            column: at.1,
            path: path.to_string(),
            message: message.into(),
        });
    }

    pub(super) fn mark(&mut self, path: &str, v: &Value) {
        self.spans.insert(path.to_string(), pos(v));
    }

    /// The position of the longest prefix of `path` that exists in the
    /// file: a defaulted rule id has no text of its own, so its errors
    /// point at the rule.
    pub(super) fn locate(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(&at) = self.spans.get(p) {
                return at;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = p.get(..i).unwrap_or(""),
                None => return self.spans.get("").copied().unwrap_or((1, 1)),
            }
        }
    }

    pub(super) fn field_error(&mut self, path: &str, message: String) {
        let at = self.locate(path);
        self.error(at, path, message);
    }

    pub(super) fn object<'v>(
        &mut self,
        v: &'v Value,
        path: &str,
        what: &str,
    ) -> Option<&'v [Member]> {
        match &v.kind {
            Kind::Object(members) => Some(members),
            _ => {
                self.error(
                    pos(v),
                    path,
                    format!(
                        "expected {what} (an object `{{ ... }}`), found {}",
                        v.describe()
                    ),
                );
                None
            }
        }
    }

    pub(super) fn unknown(&mut self, m: &Member, path: &str, expected: &[&str]) {
        let hint = suggestion(&m.key, expected)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        self.error(
            key_pos(m),
            path,
            format!(
                "unknown key `{}`{hint}; expected one of: {}",
                document::snippet(&m.key),
                expected.join(", ")
            ),
        );
    }

    /// Report each of `required` absent from `members`, at the object.
    pub(super) fn require(&mut self, v: &Value, path: &str, members: &[Member], required: &[&str]) {
        for key in required {
            if !members.iter().any(|m| m.key == *key) {
                self.error(pos(v), path, format!("missing required key `{key}`"));
            }
        }
    }

    pub(super) fn string(&mut self, v: &Value, path: &str, what: &str) -> Option<String> {
        match &v.kind {
            Kind::String(s) => Some(s.clone()),
            _ => {
                self.error(
                    pos(v),
                    path,
                    format!(
                        "expected {what} (a string in quotes), found {}",
                        v.describe()
                    ),
                );
                None
            }
        }
    }

    pub(super) fn nonempty_string(&mut self, v: &Value, path: &str, what: &str) -> Option<String> {
        let s = self.string(v, path, what)?;
        if s.is_empty() {
            self.error(pos(v), path, format!("{what} must not be empty"));
            return None;
        }
        Some(s)
    }

    /// An interface name. A badly formed name is reported but still
    /// returned, so that the rest of its rule is checked too.
    pub(super) fn interface(&mut self, v: &Value, path: &str) -> Option<String> {
        let name = self.string(v, path, "an interface name")?;
        if let Err(m) = rule::validate_interface_name(&name) {
            self.error(pos(v), path, m);
        }
        Some(name)
    }

    pub(super) fn ipv4(&mut self, v: &Value, path: &str) -> Option<Ipv4Addr> {
        match &v.kind {
            Kind::String(s) => match Ipv4Addr::from_str(s) {
                Ok(a) => Some(a),
                Err(_) => {
                    self.error(
                        pos(v),
                        path,
                        format!("{} is not an IPv4 address", document::quote_snippet(s)),
                    );
                    None
                }
            },
            _ => {
                self.error(
                    pos(v),
                    path,
                    format!(
                        "expected an IPv4 address in quotes, e.g. \"239.1.1.1\", found {}",
                        v.describe()
                    ),
                );
                None
            }
        }
    }

    /// An integer in `min..=max`. `5e3` counts (it is exactly 5000);
    /// `5000.5`, `Infinity` and strings do not.
    pub(super) fn integer(
        &mut self,
        v: &Value,
        path: &str,
        what: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let in_range = match v.kind {
            Kind::Number(Number::Int(i)) => Some((min..=max).contains(&i).then_some(i)),
            Kind::Number(Number::Float(f)) if f.is_finite() && f.fract() == 0.0 => {
                // Whole and in range means exactly representable, so the
                // conversion is exact.
                Some((min as f64 <= f && f <= max as f64).then_some(f as i64))
            }
            _ => None,
        };
        match in_range {
            Some(Some(i)) => Some(i),
            Some(None) => {
                self.error(
                    pos(v),
                    path,
                    format!(
                        "{what} {} is out of range; it must be an integer in {min}..={max}",
                        v.describe()
                    ),
                );
                None
            }
            None => {
                self.error(
                    pos(v),
                    path,
                    format!(
                        "expected {what} (an integer in {min}..={max}), found {}",
                        v.describe()
                    ),
                );
                None
            }
        }
    }

    /// A duration in seconds, whole or fractional, within `min..=max`.
    /// `rule` says the range in words for the message.
    pub(super) fn seconds(
        &mut self,
        v: &Value,
        path: &str,
        min: Duration,
        max: Duration,
        rule: &str,
    ) -> Option<Duration> {
        let d = match v.kind {
            Kind::Number(Number::Int(i)) => u64::try_from(i).ok().map(Duration::from_secs),
            Kind::Number(Number::Float(f)) if f.is_finite() && (0.0..=1e12).contains(&f) => {
                Some(duration_from_secs(f))
            }
            Kind::Number(Number::Float(_)) => None,
            _ => {
                self.error(
                    pos(v),
                    path,
                    format!(
                        "expected a number of seconds such as 300 or 2.5, found {}",
                        v.describe()
                    ),
                );
                return None;
            }
        };
        match d {
            Some(d) if min <= d && d <= max => Some(d),
            _ => {
                self.error(pos(v), path, format!("{rule}, found {}", v.describe()));
                None
            }
        }
    }

    fn config(&mut self, root: &Value) -> Option<Config> {
        self.mark("", root);
        let members = self.object(root, "", "the configuration")?;
        let mut config = Config::default();
        let mut rules = Some(Vec::new());
        for m in members {
            let path = join_key("", &m.key);
            match m.key.as_str() {
                "rules" => rules = self.rules(&m.value, &path),
                "pinning" => {
                    if let Some(p) = self.pinning(&m.value, &path) {
                        config.pinning = p;
                    }
                }
                "logging" => {
                    if let Some(l) = self.logging(&m.value, &path) {
                        config.logging = l;
                    }
                }
                "control" => {
                    if let Some(c) = self.control(&m.value, &path) {
                        config.control = c;
                    }
                }
                "workers" => {
                    if let Some(w) = self.workers(&m.value, &path) {
                        config.workers = w;
                    }
                }
                "igmp" => config.igmp = self.igmp(&m.value, &path),
                "pim" => config.pim = self.pim(&m.value, &path),
                "metrics" => {
                    config.metrics =
                        super::metrics::walk(&m.value, &path, &mut self.errors).unwrap_or_default()
                }
                k if REFUSED_KEYS.contains(&k) => self.error(
                    key_pos(m),
                    &path,
                    format!("`{k}` is not available in this version of mcrd"),
                ),
                _ => self.unknown(m, &path, TOP_KEYS),
            }
        }
        config.rules = rules?;
        Some(config)
    }

    /// All rules, or `None` when any could not be built. Rules that were
    /// built are checked on their own and against each other even when
    /// others were not, to report as much as possible in one run.
    fn rules(&mut self, v: &Value, path: &str) -> Option<Vec<Rule>> {
        self.mark(path, v);
        let Kind::Array(items) = &v.kind else {
            self.error(
                pos(v),
                path,
                format!(
                    "expected a list of rules (an array `[ ... ]`), found {}",
                    v.describe()
                ),
            );
            return None;
        };
        let built: Vec<Option<Rule>> = items
            .iter()
            .enumerate()
            .map(|(i, item)| self.rule(item, &join_index(path, i)))
            .collect();
        let mut valid: Vec<(usize, &Rule)> = Vec::new();
        for (i, r) in built.iter().enumerate() {
            let Some(r) = r else { continue };
            let errs = r.validate();
            if errs.is_empty() {
                valid.push((i, r));
            }
            for e in errs {
                self.field_error(&format!("{}.{}", join_index(path, i), e.field), e.message);
            }
        }
        // Only rules valid on their own go into the set: `insert` would
        // report their own problems a second time.
        if let Err(errs) = RuleSet::from_rules(valid.iter().map(|(_, r)| (*r).clone())) {
            for e in errs {
                let field = renumber(&e.field, &valid);
                self.field_error(&field, e.message);
            }
        }
        built.into_iter().collect()
    }

    fn rule(&mut self, v: &Value, path: &str) -> Option<Rule> {
        self.mark(path, v);
        let members = self.object(v, path, "a rule")?;
        let mut complete = true;
        let (mut id, mut name, mut input, mut outputs) = (None, None, None, None);
        for m in members {
            let p = join_key(path, &m.key);
            self.mark(&p, &m.value);
            match m.key.as_str() {
                "id" => {
                    id = self.string(&m.value, &p, "a rule id");
                    complete &= id.is_some();
                }
                "name" => {
                    name = self.string(&m.value, &p, "a rule name");
                    complete &= name.is_some();
                }
                "input" => {
                    input = self.input(&m.value, &p);
                    complete &= input.is_some();
                }
                "outputs" => {
                    outputs = self.outputs(&m.value, &p);
                    complete &= outputs.is_some();
                }
                _ => self.unknown(m, &p, RULE_KEYS),
            }
        }
        self.require(v, path, members, &["input", "outputs"]);
        let (true, Some(input), Some(outputs)) = (complete, input, outputs) else {
            return None;
        };
        Some(Rule {
            id: id.unwrap_or_else(|| rule::default_rule_id(&input)),
            name,
            input,
            outputs,
        })
    }

    fn input(&mut self, v: &Value, path: &str) -> Option<RuleInput> {
        let members = self.object(v, path, "the rule's input")?;
        let mut complete = true;
        let (mut interface, mut group, mut port, mut source) = (None, None, None, None);
        for m in members {
            let p = join_key(path, &m.key);
            self.mark(&p, &m.value);
            match m.key.as_str() {
                "interface" => {
                    interface = self.interface(&m.value, &p);
                    complete &= interface.is_some();
                }
                "group" => {
                    group = self.ipv4(&m.value, &p);
                    complete &= group.is_some();
                }
                "port" => {
                    port = self.port(&m.value, &p);
                    complete &= port.is_some();
                }
                "source" => {
                    source = self.ipv4(&m.value, &p);
                    complete &= source.is_some();
                }
                _ => self.unknown(m, &p, INPUT_KEYS),
            }
        }
        self.require(v, path, members, &["interface", "group", "port"]);
        let (true, Some(interface), Some(group), Some(port)) = (complete, interface, group, port)
        else {
            return None;
        };
        Some(RuleInput {
            interface,
            group,
            port,
            source,
        })
    }

    fn outputs(&mut self, v: &Value, path: &str) -> Option<Vec<RuleOutput>> {
        let Kind::Array(items) = &v.kind else {
            self.error(
                pos(v),
                path,
                format!(
                    "expected a list of outputs (an array `[ ... ]`), found {}",
                    v.describe()
                ),
            );
            return None;
        };
        let mut outputs = Vec::with_capacity(items.len());
        let mut complete = true;
        for (i, item) in items.iter().enumerate() {
            match self.output(item, &join_index(path, i)) {
                Some(o) => outputs.push(o),
                None => complete = false,
            }
        }
        complete.then_some(outputs)
    }

    fn output(&mut self, v: &Value, path: &str) -> Option<RuleOutput> {
        self.mark(path, v);
        let members = self.object(v, path, "an output")?;
        let mut complete = true;
        let (mut interface, mut group, mut port, mut ttl) = (None, None, None, None);
        let mut mode = OutputMode::default();
        let mut members_only = false;
        for m in members {
            let p = join_key(path, &m.key);
            self.mark(&p, &m.value);
            match m.key.as_str() {
                "interface" => {
                    interface = self.interface(&m.value, &p);
                    complete &= interface.is_some();
                }
                "group" => {
                    group = self.ipv4(&m.value, &p);
                    complete &= group.is_some();
                }
                "port" => {
                    port = self.port(&m.value, &p);
                    complete &= port.is_some();
                }
                "ttl" => {
                    ttl = self
                        .integer(&m.value, &p, "TTL", 0, 255)
                        .and_then(|t| u8::try_from(t).ok());
                    complete &= ttl.is_some();
                }
                "mode" => {
                    let parsed = match &m.value.kind {
                        Kind::String(s) => OutputMode::parse(s),
                        _ => None,
                    };
                    match parsed {
                        Some(x) => mode = x,
                        None => {
                            self.error(
                                pos(&m.value),
                                &p,
                                format!(
                                    "expected \"republish\" or \"route\", found {}",
                                    m.value.describe()
                                ),
                            );
                            complete = false;
                        }
                    }
                }
                "members_only" => match self.boolean(&m.value, &p) {
                    Some(b) => members_only = b,
                    None => complete = false,
                },
                _ => self.unknown(m, &p, OUTPUT_KEYS),
            }
        }
        self.require(v, path, members, &["interface", "group", "port"]);
        let (true, Some(interface), Some(group), Some(port)) = (complete, interface, group, port)
        else {
            return None;
        };
        Some(RuleOutput {
            interface,
            group,
            port,
            ttl,
            mode,
            members_only,
        })
    }

    fn port(&mut self, v: &Value, path: &str) -> Option<u16> {
        self.integer(v, path, "port", 0, i64::from(u16::MAX))
            .and_then(|p| u16::try_from(p).ok())
    }
}

/// Rewrite the `rules[k].` prefix that `RuleSet::from_rules` puts on its
/// errors, where `k` counts only the rules handed to it, into the rule's
/// index in the file.
fn renumber(field: &str, valid: &[(usize, &Rule)]) -> String {
    let renumbered = (|| {
        let rest = field.strip_prefix("rules[")?;
        let close = rest.find(']')?;
        let k: usize = rest.get(..close)?.parse().ok()?;
        let (original, _) = valid.get(k)?;
        Some(format!("rules[{original}]{}", rest.get(close + 1..)?))
    })();
    renumbered.unwrap_or_else(|| field.to_string())
}
