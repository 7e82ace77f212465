//! The multicast RIB: static rules and learned routes merged into one
//! forwarding table per input interface, and the machinery that keeps
//! each worker's copy equal to it.
//!
//! Owns: the RIB state and its compile step (`Rib`, `merge.rs`), the
//! learned-route vocabulary (`Origin`, `Route`, `SourceFilter`,
//! `learned.rs`), the `mroute` listing (`mroute.rs`), egress socket
//! identities (`EgressMap`), and `TableSync`, the sans-I/O state of one
//! worker's table: it turns a desired table into sequenced, chunked deltas
//! that carry the hash the worker must reach, and decides from acks and
//! heartbeats when a full resync or a restart is needed (DESIGN.md,
//! "Supervisor ⇄ worker", drift recovery).
//!
//! API for the RibActor (all pure; the actor owns one `Rib`):
//! - `Rib::with_rules(Arc<RuleSet>)`, `set_rules` when the rule set changes;
//! - `apply(origin, Route)` / `withdraw(origin, source, group)` /
//!   `withdraw_origin(origin)` / `replace_origin(origin, routes)` for
//!   (*,G) and (S,G) routes from IGMP (proxy upstream), PIM and MSDP,
//!   (S,G) routes optionally carrying (S,G,rpt) prunes; each returns
//!   whether anything changed;
//! - `join(interface, group, SourceFilter)` / `leave` / `leave_interface`
//!   for IGMP memberships, which add outputs to learned entries of their
//!   group and switch static rules' members-only outputs on and off (never
//!   any other static output);
//! - `compile()` → `Tables` (the same `InterfaceTable`s the workers get
//!   today), `tables_hash`, `mroute(&rib)` for the control reply, and
//!   `shadowed()` for learned entries a static rule keeps out;
//! - `patch_static(old, touched)` (`patch.rs`): the same tables after a
//!   change to a few static rules, recompiling only their entries (also
//!   with learned routes installed, unless a touched rule is any-port).
//!
//! `compile(&RuleSet)` remains for callers that only have static rules and
//! equals `Rib::with_rules(..).compile()` (so it leaves every members-only
//! output out). `state::rule_infos_with_members` gives `list` the
//! `no members` state that goes with a `Rib`'s memberships. Merge rules (precedence,
//! (S,G)/(*,G) folding, memberships) are documented in `merge.rs`.

pub mod learned;
pub mod merge;
pub mod mroute;
pub mod patch;
pub mod state;
pub mod sync;
#[cfg(test)]
mod tests_members;
#[cfg(test)]
mod tests_merge;
#[cfg(test)]
mod tests_prop;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use crate::ipc::rule_key;
use crate::rule::{OutputMode, Rule, RuleSet};

pub use learned::{Origin, Route, RouteError, SourceFilter};
pub use merge::{learned_rule_id, tables_hash, LearnedEntry, Rib, RouteId, Tables};
pub use mroute::{mroute, mroute_from_tables};
pub use patch::Touched;
pub use sync::{SyncAction, TableSync};

/// An output with defaults applied, still naming its interface.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CompiledOutput {
    pub interface: String,
    pub group: Ipv4Addr,
    pub port: u16,
    pub ttl: u8,
    pub mode: OutputMode,
}

impl CompiledOutput {
    pub fn egress_key(&self) -> EgressKey {
        EgressKey {
            interface: self.interface.clone(),
            ttl: if self.mode == OutputMode::Route {
                0
            } else {
                self.ttl
            },
            mode: self.mode,
        }
    }
}

/// A rule of an interface's table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledRule {
    pub rule_id: String,
    pub key: u64,
    pub group: Ipv4Addr,
    pub port: u16,
    pub source: Option<Ipv4Addr>,
    pub outputs: Vec<CompiledOutput>,
    /// Where it came from: `Origin::as_str` (`static` for rules).
    pub origin: &'static str,
}

/// The forwarding table of one input interface.
pub type InterfaceTable = Vec<CompiledRule>;

/// Compile a rule set into one table per input interface (static rules
/// only; `Rib::compile` gives the same tables when nothing is learned).
/// Members-only outputs are left out: without memberships none has a
/// member.
pub fn compile(rules: &RuleSet) -> BTreeMap<String, InterfaceTable> {
    let mut out = BTreeMap::new();
    compile_static(rules, &learned::Memberships::new(), &mut out);
    out
}

/// Append the static rules' entries to `out`, in rule id order, with each
/// members-only output only while `members` has a member for it.
fn compile_static(
    rules: &RuleSet,
    members: &learned::Memberships,
    out: &mut BTreeMap<String, InterfaceTable>,
) {
    for r in rules.iter() {
        out.entry(r.input.interface.clone())
            .or_default()
            .push(compile_rule(r, members));
    }
}

/// The compiled entry of one static rule: it depends on nothing but the
/// rule and the memberships, which is what lets `patch_static` recompile
/// one rule alone.
fn compile_rule(r: &Rule, members: &learned::Memberships) -> CompiledRule {
    CompiledRule {
        rule_id: r.id.clone(),
        key: rule_key(&r.id),
        group: r.input.group,
        port: r.input.port,
        source: r.input.source,
        outputs: r
            .outputs
            .iter()
            .filter(|o| merge::output_sends(members, r.input.source, o))
            .map(|o| CompiledOutput {
                interface: o.interface.clone(),
                group: o.group,
                port: o.port,
                ttl: o.effective_ttl(),
                mode: o.mode,
            })
            .collect(),
        origin: Origin::Static.as_str(),
    }
}

/// What an egress socket is: one per (interface, TTL, mode), shared by
/// every output that sends the same way.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EgressKey {
    pub interface: String,
    pub ttl: u8,
    pub mode: OutputMode,
}

/// Egress ids of one worker. Ids are small and reused, so the worker can
/// index a vector with them.
#[derive(Clone, Debug, Default)]
pub struct EgressMap {
    ids: HashMap<EgressKey, u32>,
    free: Vec<u32>,
    next: u32,
}

impl EgressMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, k: &EgressKey) -> Option<u32> {
        self.ids.get(k).copied()
    }

    /// The id for `k`, allocating one if it is new (second value: new).
    pub fn id(&mut self, k: &EgressKey) -> (u32, bool) {
        if let Some(id) = self.ids.get(k) {
            return (*id, false);
        }
        let id = self.free.pop().unwrap_or_else(|| {
            self.next += 1;
            self.next - 1
        });
        self.ids.insert(k.clone(), id);
        (id, true)
    }

    /// Forget `k`; its id may be reused.
    pub fn release(&mut self, k: &EgressKey) -> Option<u32> {
        let id = self.ids.remove(k)?;
        self.free.push(id);
        Some(id)
    }

    pub fn keys(&self) -> impl Iterator<Item = (&EgressKey, u32)> {
        self.ids.iter().map(|(k, v)| (k, *v))
    }

    pub fn clear(&mut self) {
        *self = EgressMap::default();
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::{Rule, RuleInput, RuleOutput};

    fn rule(ifc: &str, g: &str, outs: &[(&str, &str, u16, Option<u8>)]) -> Rule {
        Rule::new(
            None,
            RuleInput {
                interface: ifc.into(),
                group: g.parse().unwrap(),
                port: 5000,
                source: None,
            },
            outs.iter()
                .map(|(i, g, p, t)| RuleOutput {
                    interface: (*i).into(),
                    group: g.parse().unwrap(),
                    port: *p,
                    ttl: *t,
                    mode: OutputMode::Republish,
                    members_only: false,
                })
                .collect(),
        )
    }

    #[test]
    fn compile_groups_by_input_interface_with_defaults() {
        let set = RuleSet::from_rules([
            rule("eth0", "239.1.1.1", &[("eth1", "239.2.2.2", 6000, None)]),
            rule("eth0", "239.1.1.2", &[("eth2", "10.0.0.9", 6000, None)]),
            rule("eth3", "239.1.1.1", &[("eth1", "239.2.2.2", 6000, Some(9))]),
        ])
        .unwrap();
        let t = compile(&set);
        assert_eq!(t.len(), 2);
        assert_eq!(t["eth0"].len(), 2);
        let ttls: Vec<u8> = t["eth0"].iter().map(|r| r.outputs[0].ttl).collect();
        assert!(ttls.contains(&1), "multicast default TTL 1");
        assert!(ttls.contains(&64), "unicast default TTL 64");
        assert_eq!(t["eth3"][0].outputs[0].ttl, 9);
    }

    #[test]
    fn egress_ids_are_shared_and_reused() {
        let mut m = EgressMap::new();
        let a = EgressKey {
            interface: "eth1".into(),
            ttl: 1,
            mode: OutputMode::Republish,
        };
        let b = EgressKey {
            interface: "eth2".into(),
            ..a.clone()
        };
        assert_eq!(m.id(&a), (0, true));
        assert_eq!(m.id(&a), (0, false));
        assert_eq!(m.id(&b), (1, true));
        assert_eq!(m.release(&a), Some(0));
        let c = EgressKey {
            ttl: 5,
            ..a.clone()
        };
        assert_eq!(m.id(&c), (0, true), "freed id reused");
    }
}
