//! The running set of static rules and its indexes (by id, name and input
//! tuple), which keep a rule's insertion and the checks on it O(log n), and
//! the difference between two sets that the RIB applies. No RFC: this is
//! MCR's own model.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::{FieldError, InputKey, Rule};

/// The running set of static rules: unique ids, unique names, unique
/// input tuples.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleSet {
    rules: BTreeMap<String, Rule>,
    /// Secondary indexes, so that inserting n rules costs O(n log n).
    by_name: BTreeMap<String, String>,
    by_input: BTreeMap<InputKey, String>,
}

/// What changed between two rule sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleDiff {
    pub added: Vec<Rule>,
    pub removed: Vec<Rule>,
    /// (old, new) with the same id.
    pub changed: Vec<(Rule, Rule)>,
}

impl RuleDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl RuleSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.get(id)
    }

    pub fn find_by_name(&self, name: &str) -> Option<&Rule> {
        self.by_name.get(name).and_then(|id| self.rules.get(id))
    }

    /// Rules in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.rules.values()
    }

    /// Validate `rule` and add it. Refused if it is invalid or its id,
    /// name or input tuple is already taken.
    pub fn insert(&mut self, rule: Rule) -> Result<(), Vec<FieldError>> {
        let errs = rule.validate();
        if !errs.is_empty() {
            return Err(errs);
        }
        if self.rules.contains_key(&rule.id) {
            return Err(vec![FieldError::new(
                "id",
                format!("a rule with id {} already exists", rule.id),
            )]);
        }
        if let Some(name) = &rule.name {
            if let Some(other) = self.find_by_name(name) {
                return Err(vec![FieldError::new(
                    "name",
                    format!("name {name:?} is already used by rule {}", other.id),
                )]);
            }
        }
        let key = rule.input_key();
        if let Some(other) = self.by_input.get(&key).and_then(|id| self.rules.get(id)) {
            return Err(vec![FieldError::new(
                "input",
                format!(
                    "duplicate input {}:{}:{}{}: rule {} already takes it",
                    rule.input.interface,
                    rule.input.group,
                    rule.input.port,
                    rule.input
                        .source
                        .map(|s| format!(" from {s}"))
                        .unwrap_or_default(),
                    other.id
                ),
            )]);
        }
        if let Some(name) = &rule.name {
            self.by_name.insert(name.clone(), rule.id.clone());
        }
        self.by_input.insert(key, rule.id.clone());
        self.rules.insert(rule.id.clone(), rule);
        Ok(())
    }

    pub fn remove(&mut self, id: &str) -> Option<Rule> {
        let r = self.rules.remove(id)?;
        if let Some(name) = &r.name {
            self.by_name.remove(name);
        }
        self.by_input.remove(&r.input_key());
        Some(r)
    }

    pub fn remove_by_name(&mut self, name: &str) -> Option<Rule> {
        let id = self.by_name.get(name)?.clone();
        self.remove(&id)
    }

    /// A rule set made of exactly `rules`, each checked against the others.
    /// Field paths are prefixed `rules[i].`.
    pub fn from_rules(rules: impl IntoIterator<Item = Rule>) -> Result<RuleSet, Vec<FieldError>> {
        let mut set = RuleSet::new();
        let mut errs = Vec::new();
        for (i, r) in rules.into_iter().enumerate() {
            if let Err(e) = set.insert(r) {
                errs.extend(e.into_iter().map(|e| e.prefixed(&format!("rules[{i}]."))));
            }
        }
        if errs.is_empty() {
            Ok(set)
        } else {
            Err(errs)
        }
    }

    /// This set with `incoming` merged in by rule id: a rule with an id we
    /// have replaces ours, others are added. The result is checked as a
    /// whole (names and input tuples stay unique).
    pub fn merged(&self, incoming: &[Rule]) -> Result<RuleSet, Vec<FieldError>> {
        let mut base: BTreeMap<String, Rule> = self.rules.clone();
        for r in incoming {
            base.remove(&r.id);
        }
        let incoming_ids: Vec<&str> = incoming.iter().map(|r| r.id.as_str()).collect();
        let mut set = RuleSet::new();
        // Rules from the file first, so errors point at the file's rules.
        let mut errs = Vec::new();
        for (i, r) in incoming.iter().enumerate() {
            if let Err(e) = set.insert(r.clone()) {
                errs.extend(e.into_iter().map(|e| e.prefixed(&format!("rules[{i}]."))));
            }
        }
        for r in base.into_values() {
            if incoming_ids.contains(&r.id.as_str()) {
                continue;
            }
            let id = r.id.clone();
            if let Err(e) = set.insert(r) {
                errs.extend(e.into_iter().map(|e| {
                    FieldError::new(
                        e.field,
                        format!("{} (conflicts with running rule {id})", e.message),
                    )
                }));
            }
        }
        if errs.is_empty() {
            Ok(set)
        } else {
            Err(errs)
        }
    }

    /// What must change to turn `self` into `new`.
    pub fn diff(&self, new: &RuleSet) -> RuleDiff {
        let mut d = RuleDiff::default();
        for (id, old) in &self.rules {
            match new.rules.get(id) {
                None => d.removed.push(old.clone()),
                Some(n) if n != old => d.changed.push((old.clone(), n.clone())),
                Some(_) => {}
            }
        }
        for (id, n) in &new.rules {
            if !self.rules.contains_key(id) {
                d.added.push(n.clone());
            }
        }
        d
    }

    /// The rules whose input is `group` on `interface`, whatever their
    /// port and source filter.
    pub fn taking<'a>(
        &'a self,
        interface: &str,
        group: Ipv4Addr,
    ) -> impl Iterator<Item = &'a Rule> + 'a {
        let from = (interface.to_string(), group, 0, None);
        let to = (
            interface.to_string(),
            group,
            u16::MAX,
            Some(Ipv4Addr::BROADCAST),
        );
        self.by_input
            .range(from..=to)
            .filter_map(|(_, id)| self.rules.get(id))
    }

    /// Every interface a rule reads from.
    pub fn input_interfaces(&self) -> std::collections::BTreeSet<&str> {
        self.rules
            .values()
            .map(|r| r.input.interface.as_str())
            .collect()
    }
}
