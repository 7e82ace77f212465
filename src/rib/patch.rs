//! Incremental compile: the tables after a change to a few static rules,
//! made from the tables before it by recompiling only the entries of the
//! rules the change touched.
//!
//! Owns `Rib::patch_static` and the `Touched` set the RibActor collects
//! while a burst of `add`/`remove` deltas is applied. A static rule's
//! compiled entry depends only on the rule itself and the IGMP
//! memberships (`merge.rs`: static rules are never changed by learned
//! routes), so while the RIB holds no learned route the tables after the
//! change are the tables before it with the touched rules' entries taken
//! out and compiled again: the cost is the change, not the rule count
//! (one `add` at 10,000 rules used to compile all 10,000). Learned routes
//! interact with static ones (shadowing, (S,G) folding, key collisions),
//! so with any learned route the caller compiles the whole RIB as before.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::merge::Rib;
use super::state::Tables;
use super::{compile_rule, InterfaceTable};

/// (input interface, rule id) of each static rule a burst of deltas added
/// or removed: for a removed rule the interface it had, for an added one
/// the interface it has. A rule replaced in place is both.
pub type Touched = BTreeSet<(String, String)>;

impl Rib {
    /// `old` (the tables compiled before the touched rules changed) with
    /// each touched rule's entry recompiled from the current rules, every
    /// untouched interface's table shared by pointer. Equal to
    /// `state::recompile(old, self.compile())` in content. None while the
    /// RIB holds learned routes: the caller then compiles in full.
    pub fn patch_static(&self, old: &Tables, touched: &Touched) -> Option<Tables> {
        if self.routes().next().is_some() {
            return None;
        }
        let mut next = old.clone();
        let mut ifc_ids = touched.iter().peekable();
        while let Some((ifc, _)) = ifc_ids.peek() {
            let ifc = ifc.clone();
            let mut table: InterfaceTable =
                old.get(&ifc).map(|t| (**t).clone()).unwrap_or_default();
            let mut changed = false;
            while let Some((_, id)) = ifc_ids.next_if(|(i, _)| *i == ifc) {
                let at = table.binary_search_by(|r| r.rule_id.as_str().cmp(id));
                let fresh = self
                    .rules()
                    .get(id)
                    .filter(|r| r.input.interface == ifc)
                    .map(|r| compile_rule(r, self.memberships()));
                match (at, fresh) {
                    (Ok(i), Some(f)) => {
                        if table[i] != f {
                            table[i] = f;
                            changed = true;
                        }
                    }
                    (Ok(i), None) => {
                        table.remove(i);
                        changed = true;
                    }
                    (Err(i), Some(f)) => {
                        table.insert(i, f);
                        changed = true;
                    }
                    (Err(_), None) => {}
                }
            }
            if !changed {
                continue;
            }
            if table.is_empty() {
                next.remove(&ifc);
            } else {
                next.insert(ifc, Arc::new(table));
            }
        }
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rib::state::recompile;
    use crate::rib::{Origin, Route, SourceFilter};
    use crate::rule::{OutputMode, Rule, RuleInput, RuleOutput, RuleSet};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn rule(name: &str, ifc: &str, g: u8, out: &str, members_only: bool) -> Rule {
        Rule::new(
            Some(name.into()),
            RuleInput {
                interface: ifc.into(),
                group: Ipv4Addr::new(239, 1, 1, g),
                port: 5000,
                source: None,
            },
            vec![RuleOutput {
                interface: out.into(),
                group: Ipv4Addr::new(239, 2, 2, g),
                port: 6000,
                ttl: None,
                mode: OutputMode::Republish,
                members_only,
            }],
        )
    }

    /// Apply `ops` (true: add rule i, false: remove it) one delta at a
    /// time the way the RibActor does, and compare the patched tables
    /// with a full compile after every burst.
    fn check(ops: &[(bool, u8, u8, u8, bool)], members: &[(u8, u8)]) {
        let ifcs = ["eth0", "eth1", "eth2"];
        let mut rib = Rib::new();
        for (o, g) in members {
            rib.join(
                ifcs[usize::from(*o) % 3],
                Ipv4Addr::new(239, 2, 2, *g),
                SourceFilter::any(),
            )
            .unwrap();
        }
        let mut tables = recompile(&Tables::new(), rib.compile());
        for burst in ops.chunks(3) {
            let mut touched = Touched::new();
            for &(add, i, ifc, out, mo) in burst {
                let name = format!("r{i}");
                let rules = rib.rules_mut();
                if let Some(old) = rules.remove_by_name(&name) {
                    touched.insert((old.input.interface.clone(), old.id.clone()));
                }
                if add {
                    let r = rule(
                        &name,
                        ifcs[usize::from(ifc) % 3],
                        i,
                        ifcs[usize::from(out) % 3],
                        mo,
                    );
                    touched.insert((r.input.interface.clone(), r.id.clone()));
                    // Output == input interfaces are refused: skip those.
                    let _ = rules.insert(r);
                }
            }
            let patched = rib.patch_static(&tables, &touched).expect("static only");
            let full = recompile(&tables, rib.compile());
            assert_eq!(patched, full);
            for (ifc, t) in &tables {
                if !touched.iter().any(|(i, _)| i == ifc) {
                    assert!(Arc::ptr_eq(t, &patched[ifc]), "{ifc} is shared");
                }
            }
            tables = patched;
        }
    }

    proptest! {
        #[test]
        fn a_patch_equals_a_full_compile(
            ops in prop::collection::vec((any::<bool>(), 0u8..12, 0u8..3, 0u8..3, any::<bool>()), 0..40),
            members in prop::collection::vec((0u8..3, 0u8..12), 0..6),
        ) {
            check(&ops, &members);
        }
    }

    #[test]
    fn a_patch_recompiles_only_the_touched_entries() {
        let rules: Vec<Rule> = (0..200)
            .map(|i| rule(&format!("r{i}"), "eth0", i as u8, "eth1", false))
            .collect();
        let mut rib = Rib::with_rules(Arc::new(RuleSet::from_rules(rules).unwrap()));
        let before = recompile(&Tables::new(), rib.compile());
        let other = rule("x", "eth5", 1, "eth1", false);
        let mut touched = Touched::new();
        touched.insert(("eth5".into(), other.id.clone()));
        rib.rules_mut().insert(other).unwrap();
        let after = rib.patch_static(&before, &touched).unwrap();
        assert!(Arc::ptr_eq(&before["eth0"], &after["eth0"]));
        assert_eq!(after["eth5"].len(), 1);

        // Learned routes interact with static rules: no patch then.
        rib.apply(
            Origin::Pim,
            Route::star_g(Ipv4Addr::new(239, 9, 9, 9), "eth0", &["eth1"]),
        )
        .unwrap();
        assert!(rib.patch_static(&after, &touched).is_none());
    }
}
