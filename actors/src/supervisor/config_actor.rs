//! ConfigActor: the running configuration. Every change to it (a rule
//! added or removed, a file loaded, a reload, a log level set) goes
//! through here and is validated before it is applied. A whole new config
//! (load, reload, log levels) is validated whole and the RIB is told the
//! new rule set, from which it computes what changed; a single `add` or
//! `remove` is checked against the indexes of the running rule set (id,
//! name, input tuple) and handed to the RIB as that one change, so its
//! cost does not grow with the number of rules.
//!
//! The running config itself is kept by the root (`Shared`), so a restart
//! of this actor loses nothing: it rebuilds its rule set from it.

use std::sync::Arc;

use mcr::config::{self, Config};
use mcr::control::{ConfigCheckResult, ConfigText, Done, Event};
use mcr::rule::{default_rule_id, FieldError, Rule, RuleInput, RuleOutput, RuleSet};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{info, warn};

use super::handles::{ConfigMsg, LogLevel, LogLevelMsg, Rib, RibMsg};
use super::shared::Shared;
use super::systemd;

pub struct ConfigActor;

pub struct ConfigState {
    shared: Arc<Shared>,
    /// The running config's rules with their indexes, kept in step with
    /// `shared`'s config by every change made here (nothing else changes
    /// it), so an `add` need not rebuild them. Shared with the RIB after a
    /// whole-set change, so a loaded config is held once; the first single
    /// change after it makes this actor's own copy.
    rules: Arc<RuleSet>,
}

fn join(errs: &[FieldError]) -> String {
    errs.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Apply `new` as the running config: publish what changed and hand the
/// rules to the RIB.
/// Apply `new`, validating its rules first.
fn commit(st: &mut ConfigState, old: &Config, new: Config) -> Result<(u32, u32, u32), String> {
    let new_set = new.rule_set().map_err(|e| join(&e))?;
    Ok(commit_set(st, old, new, new_set))
}

/// Apply `new` whose rules the caller has already validated into
/// `new_set`: validating a large set costs as much as the rest of a load,
/// so it is done once.
fn commit_set(
    st: &mut ConfigState,
    old: &Config,
    new: Config,
    new_set: RuleSet,
) -> (u32, u32, u32) {
    let shared = &st.shared;
    let d = st.rules.diff(&new_set);
    let levels_changed = old.logging.levels != new.logging.levels;
    let levels = new.logging.levels.clone();
    shared.set_config(new);
    for r in &d.added {
        shared.publish(Event::RuleAdded {
            id: r.id.clone(),
            name: r.name.clone(),
        });
    }
    for r in &d.removed {
        shared.publish(Event::RuleRemoved { id: r.id.clone() });
    }
    for (_, r) in &d.changed {
        shared.publish(Event::RuleChanged { id: r.id.clone() });
    }
    let counts = (
        d.added.len() as u32,
        d.removed.len() as u32,
        d.changed.len() as u32,
    );
    shared.publish(Event::ConfigApplied {
        added: counts.0,
        removed: counts.1,
        changed: counts.2,
    });
    st.rules = Arc::new(new_set);
    Rib::tell(RibMsg::Rules(st.rules.clone()));
    if levels_changed {
        LogLevel::tell(LogLevelMsg::Apply(levels));
    }
    counts
}

/// `running` with `incoming` merged in by rule id: a rule whose id is
/// running takes that rule's place, the others are appended in file order.
/// The id index keeps a load of n rules O(n), where a search per rule made
/// 100k rules take half a minute with the ConfigActor blocked.
fn merge_rules(running: &mut Vec<Rule>, incoming: Vec<Rule>) {
    let mut at: std::collections::HashMap<String, usize> = running
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.clone(), i))
        .collect();
    for r in incoming {
        match at.get(&r.id) {
            Some(&i) => running[i] = r,
            None => {
                at.insert(r.id.clone(), running.len());
                running.push(r);
            }
        }
    }
}

fn parse_errors(e: &config::ConfigErrors) -> String {
    format!("configuration refused, nothing applied:\n{e}")
}

impl ConfigActor {
    fn add(
        st: &mut ConfigState,
        id: Option<String>,
        name: Option<String>,
        input: RuleInput,
        outputs: Vec<RuleOutput>,
    ) -> Result<Done, String> {
        let rule = Rule {
            id: id.unwrap_or_else(|| default_rule_id(&input)),
            name,
            input,
            outputs,
        };
        // `insert` checks the rule and its id, name and input tuple
        // against the indexes, and changes nothing when it refuses.
        Arc::make_mut(&mut st.rules)
            .insert(rule.clone())
            .map_err(|e| join(&e))?;
        st.shared.update_config(|c| c.rules.push(rule.clone()));
        st.shared.publish(Event::RuleAdded {
            id: rule.id.clone(),
            name: rule.name.clone(),
        });
        st.shared.publish(Event::ConfigApplied {
            added: 1,
            removed: 0,
            changed: 0,
        });
        Rib::tell(RibMsg::RuleDelta {
            added: vec![rule.clone()],
            removed: Vec::new(),
        });
        info!(target: "RuleDispatch", "rule {} added: {}:{}:{} -> {} outputs", rule.id, rule.input.interface, rule.input.group, rule.input.port, rule.outputs.len());
        let warnings = mcr::rule::loop_warnings(&st.rules, &[rule.id.as_str()]);
        for w in &warnings {
            warn!(target: "RuleDispatch", "{w}");
        }
        Ok(Done {
            message: format!("rule {} added", rule.id),
            id: Some(rule.id),
            warnings,
        })
    }

    fn remove(
        st: &mut ConfigState,
        id: Option<String>,
        name: Option<String>,
    ) -> Result<Done, String> {
        let target = match (&id, &name) {
            (Some(i), _) => st
                .rules
                .get(i)
                .ok_or_else(|| format!("no rule with id {i}"))?,
            (None, Some(n)) => st
                .rules
                .find_by_name(n)
                .ok_or_else(|| format!("no rule named {n:?}"))?,
            (None, None) => return Err("remove needs a rule id or a name".into()),
        };
        let removed = target.id.clone();
        Arc::make_mut(&mut st.rules).remove(&removed);
        st.shared
            .update_config(|c| c.rules.retain(|r| r.id != removed));
        st.shared.publish(Event::RuleRemoved {
            id: removed.clone(),
        });
        st.shared.publish(Event::ConfigApplied {
            added: 0,
            removed: 1,
            changed: 0,
        });
        Rib::tell(RibMsg::RuleDelta {
            added: Vec::new(),
            removed: vec![removed.clone()],
        });
        info!(target: "RuleDispatch", "rule {removed} removed");
        Ok(Done {
            message: format!("rule {removed} removed"),
            id: Some(removed),
            warnings: Vec::new(),
        })
    }

    fn load(st: &mut ConfigState, text: &str, replace: bool) -> Result<Done, String> {
        let shared = st.shared.clone();
        let file = config::parse(text).map_err(|e| parse_errors(&e))?;
        let touched: Vec<String> = file.rules.iter().map(|r| r.id.clone()).collect();
        let cfg = shared.config();
        let mut new = (*cfg).clone();
        if replace {
            new.rules = file.rules;
        } else {
            merge_rules(&mut new.rules, file.rules);
        }
        // The merged set must hold together too (names and inputs unique
        // across file and running rules).
        let merged = RuleSet::from_rules(new.rules.iter().cloned()).map_err(|e| {
            format!(
                "configuration refused, nothing applied: the file's rules conflict with running rules: {}",
                join(&e)
            )
        })?;
        let touched: Vec<&str> = touched.iter().map(String::as_str).collect();
        let warnings = mcr::rule::loop_warnings(&merged, &touched);
        let (a, r, c) = commit_set(st, &cfg, new, merged);
        let verb = if replace { "replaced" } else { "merged" };
        for w in &warnings {
            warn!(target: "RuleDispatch", "{w}");
        }
        Ok(Done {
            message: format!("config {verb}: {a} added, {r} removed, {c} changed"),
            id: None,
            warnings,
        })
    }

    fn save(shared: &Shared) -> Result<Done, String> {
        let path = shared.settings.config_path.as_ref().ok_or_else(|| {
            "mcrd was started without --config, so there is no startup file to save to; use `mcrctl config save FILE`"
                .to_string()
        })?;
        let text = shared.config().to_json5();
        let tmp = path.with_extension("json5.tmp");
        std::fs::write(&tmp, &text).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("replacing {}: {e}", path.display()))?;
        Ok(Done {
            message: format!("running config saved to {}", path.display()),
            id: None,
            warnings: Vec::new(),
        })
    }

    fn reload(st: &mut ConfigState) -> Result<Done, String> {
        let shared = st.shared.clone();
        let path = shared.settings.config_path.as_ref().ok_or_else(|| {
            "mcrd was started without --config; there is nothing to reload".to_string()
        })?;
        let file = config::parse_file(path)
            .map_err(|e| format!("{}: {}", path.display(), parse_errors(&e)))?;
        let cfg = shared.config();
        if file.control != cfg.control {
            warn!(target: "Supervisor", "control settings changed in {}; they apply at the next start", path.display());
        }
        if file.logging.format != cfg.logging.format {
            warn!(target: "Supervisor", "logging.format changed; it applies at the next start");
        }
        if file.logging.file != cfg.logging.file {
            // The writer is part of the subscriber installed at start, and
            // running workers' stderr is not routed through us without one.
            warn!(target: "Supervisor", "logging.file, rotation or keep changed; they apply at the next start");
        }
        // Reload loads every rule of the file, so every loop is news.
        let set = file.rule_set().map_err(|e| join(&e))?;
        let warnings = {
            let ids: Vec<&str> = set.iter().map(|r| r.id.as_str()).collect();
            mcr::rule::loop_warnings(&set, &ids)
        };
        for w in &warnings {
            warn!(target: "RuleDispatch", "{w}");
        }
        let (a, r, c) = commit_set(st, &cfg, file, set);
        Ok(Done {
            message: format!(
                "reloaded {}: {a} added, {r} removed, {c} changed",
                path.display()
            ),
            id: None,
            warnings,
        })
    }
}

impl Actor for ConfigActor {
    type Msg = ConfigMsg;
    type State = ConfigState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        _me: ActorRef<ConfigMsg>,
        shared: Arc<Shared>,
    ) -> Result<ConfigState, ActorProcessingErr> {
        // After a restart, make sure the RIB has what we have (an update
        // may have been lost with the failed actor).
        let rules = Arc::new(shared.config().rule_set().unwrap_or_default());
        Rib::tell(RibMsg::Rules(rules.clone()));
        Ok(ConfigState { shared, rules })
    }

    async fn handle(
        &self,
        _me: ActorRef<ConfigMsg>,
        msg: ConfigMsg,
        st: &mut ConfigState,
    ) -> Result<(), ActorProcessingErr> {
        let shared = st.shared.clone();
        match msg {
            ConfigMsg::Add {
                id,
                name,
                input,
                outputs,
                reply,
            } => {
                let _ = reply.send(Self::add(st, id, name, input, outputs));
            }
            ConfigMsg::Remove { id, name, reply } => {
                let _ = reply.send(Self::remove(st, id, name));
            }
            ConfigMsg::Show(reply) => {
                let _ = reply.send(ConfigText {
                    text: shared.config().to_json5(),
                });
            }
            ConfigMsg::Check { text, reply } => {
                let r = match config::parse(&text) {
                    Ok(c) => ConfigCheckResult {
                        valid: true,
                        rules: c.rules.len() as u32,
                        errors: vec![],
                    },
                    Err(e) => ConfigCheckResult {
                        valid: false,
                        rules: 0,
                        errors: e.0,
                    },
                };
                let _ = reply.send(r);
            }
            ConfigMsg::Load {
                text,
                replace,
                reply,
            } => {
                let _ = reply.send(Self::load(st, &text, replace));
            }
            ConfigMsg::Save(reply) => {
                let _ = reply.send(Self::save(&shared));
            }
            ConfigMsg::Reload(reply) => {
                systemd::reloading();
                let r = Self::reload(st);
                let cfg = shared.config();
                let workers = super::util::lock(&shared.registry).len();
                systemd::reloaded(&systemd::status_line(cfg.rules.len(), workers, "running"));
                match &r {
                    Ok(d) => info!(target: "Supervisor", "{}", d.message),
                    Err(e) => warn!(target: "Supervisor", "reload refused: {e}"),
                }
                if let Some(reply) = reply {
                    let _ = reply.send(r);
                }
            }
            ConfigMsg::LogGet(reply) => {
                let _ = reply.send(shared.config().logging.levels.clone());
            }
            ConfigMsg::LogSet {
                facility,
                level,
                reply,
            } => {
                let cfg = shared.config();
                let mut new = (*cfg).clone();
                match facility {
                    Some(f) => {
                        new.logging.levels.facilities.insert(f, level);
                    }
                    // Facility overrides stay: the operator set them on purpose.
                    None => new.logging.levels.global = level,
                }
                let what = facility
                    .map(|f| f.to_string())
                    .unwrap_or_else(|| "global".into());
                let r = commit(st, &cfg, new).map(|_| Done {
                    message: format!("{what} log level set to {level}"),
                    id: None,
                    warnings: Vec::new(),
                });
                let _ = reply.send(r);
            }
            ConfigMsg::Panic => panic!("fault injection: config actor panic requested"),
            ConfigMsg::Ops(o) => o.run("config").await,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Instant;

    /// Rule `i`, reading group 239.x.y.z port 5000 on eth0, sent to `out_port`.
    fn rule(i: u32, out_port: u16) -> Rule {
        let [_, b, c, d] = i.to_be_bytes();
        let input = RuleInput {
            interface: "eth0".into(),
            group: Ipv4Addr::new(239, b, c, d),
            port: 5000,
            source: None,
        };
        let out = mcr::rule::parse_output_spec(&format!("239.9.9.9:{out_port}:eth1"))
            .unwrap_or_else(|e| panic!("{e}"));
        Rule::new(None, input, vec![out])
    }

    #[test]
    fn merge_replaces_by_id_in_place_and_appends_the_rest_in_file_order() {
        let mut running = vec![rule(1, 6000), rule(2, 6000), rule(3, 6000)];
        let incoming = vec![rule(4, 6000), rule(2, 7000), rule(5, 6000), rule(4, 8000)];
        merge_rules(&mut running, incoming);
        let want = vec![
            rule(1, 6000),
            rule(2, 7000),
            rule(3, 6000),
            // A file naming an id twice: the later one wins, at the place
            // of the first.
            rule(4, 8000),
            rule(5, 6000),
        ];
        assert_eq!(running, want);
    }

    /// Prints what a 50k-rule merge into 50k running rules costs (half of
    /// them replacing running ones), beside the per-rule search it replaced.
    /// Run with `--ignored --nocapture`.
    #[test]
    #[ignore]
    fn merge_50k_into_50k_timing() {
        let running: Vec<Rule> = (0..50_000).map(|i| rule(i, 6000)).collect();
        let incoming: Vec<Rule> = (25_000..75_000).map(|i| rule(i, 7000)).collect();
        let t0 = Instant::now();
        let mut merged = running.clone();
        merge_rules(&mut merged, incoming.clone());
        let set = RuleSet::from_rules(merged.iter().cloned()).unwrap_or_else(|e| panic!("{e:?}"));
        let new = t0.elapsed();
        assert_eq!(set.len(), 75_000);
        // The search per rule this replaced, for the comparison.
        let t0 = Instant::now();
        let mut old = running;
        for r in incoming {
            match old.iter_mut().find(|x| x.id == r.id) {
                Some(slot) => *slot = r,
                None => old.push(r),
            }
        }
        let searched = t0.elapsed();
        assert_eq!(old, merged);
        println!(
            "merge 50k into 50k: index + validate {new:?}; per-rule search alone {searched:?}"
        );
    }
}
