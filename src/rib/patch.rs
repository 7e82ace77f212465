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
//! touch static rules in two ways only (`merge.rs`): an any-port static
//! rule shadows the learned entries of its (interface, group, source), and
//! learned entries take their keys after the static ones, moving on a
//! 64-bit key collision. So with learned routes a patch still applies when
//! every touched rule is port-specific and no key collides; otherwise the
//! caller compiles the whole RIB as before.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use super::learned::Origin;
use super::merge::Rib;
use super::state::Tables;
use super::{compile_rule, InterfaceTable};
use crate::ipc::rule_key;

/// (input interface, rule id) of each static rule a burst of deltas added
/// or removed: for a removed rule the interface it had, for an added one
/// the interface it has. A rule replaced in place is both.
pub type Touched = BTreeSet<(String, String)>;

impl Rib {
    /// `old` (the tables compiled before the touched rules changed) with
    /// each touched rule's entry recompiled from the current rules, every
    /// untouched interface's table shared by pointer. Equal to
    /// `state::recompile(old, self.compile())` in content. None when a
    /// touched rule could change a learned entry (see the module doc): the
    /// caller then compiles in full.
    pub fn patch_static(&self, old: &Tables, touched: &Touched) -> Option<Tables> {
        if self.routes().next().is_some() && !self.learned_unaffected(old, touched) {
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

    /// Whether changing the `touched` static rules leaves every learned
    /// entry of `old` as a full compile would make it.
    fn learned_unaffected(&self, old: &Tables, touched: &Touched) -> bool {
        // Shadowing: only any-port rules shadow, before or after the change.
        for (ifc, id) in touched {
            let was_any_port = old.get(ifc).is_some_and(|t| {
                t.binary_search_by(|r| r.rule_id.as_str().cmp(id))
                    .is_ok_and(|i| t[i].port == 0)
            });
            if was_any_port || self.rules().get(id).is_some_and(|r| r.input.port == 0) {
                return false;
            }
        }
        // Keys: a learned entry off its natural key collided with another
        // entry, and a static key going away could move it back; a static
        // key arriving on a learned one would move that.
        let static_origin = Origin::Static.as_str();
        let mut learned_keys = HashSet::new();
        for r in old.values().flat_map(|t| t.iter()) {
            if r.origin == static_origin {
                continue;
            }
            if r.key != rule_key(&r.rule_id) {
                return false;
            }
            learned_keys.insert(r.key);
        }
        !touched
            .iter()
            .filter(|(_, id)| self.rules().get(id).is_some())
            .any(|(_, id)| learned_keys.contains(&rule_key(id)))
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
        rule_on_port(name, ifc, g, out, members_only, 5000)
    }

    fn rule_on_port(
        name: &str,
        ifc: &str,
        g: u8,
        out: &str,
        members_only: bool,
        port: u16,
    ) -> Rule {
        Rule::new(
            Some(name.into()),
            RuleInput {
                interface: ifc.into(),
                group: Ipv4Addr::new(239, 1, 1, g),
                port,
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

    /// One change: add (or replace) rule i, or remove it; on which input,
    /// to which output, members-only, any port.
    type Op = (bool, u8, u8, u8, bool, bool);

    /// Apply `ops` one delta at a time the way the RibActor does, with
    /// `routes` ((*,G) or (S,G) learned routes: upstream, group, source?,
    /// downstream) installed first, and compare the patched tables with a
    /// full compile after every burst. Returns how many bursts patched.
    fn check(ops: &[Op], members: &[(u8, u8)], routes: &[(u8, u8, bool, u8)]) -> usize {
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
        for &(up, g, sg, down) in routes {
            let (up, down) = (ifcs[usize::from(up) % 3], ifcs[usize::from(down) % 3]);
            // The static rules' input groups, so that any-port rules
            // shadow some of these.
            let group = Ipv4Addr::new(239, 1, 1, g);
            let route = if sg {
                Route::s_g(Ipv4Addr::new(10, 0, 0, g), group, up, &[down])
            } else {
                Route::star_g(group, up, &[down])
            };
            let _ = rib.apply(Origin::Pim, route);
        }
        let mut tables = recompile(&Tables::new(), rib.compile());
        let mut patched_bursts = 0;
        for burst in ops.chunks(3) {
            let mut touched = Touched::new();
            for &(add, i, ifc, out, mo, any_port) in burst {
                let name = format!("r{i}");
                let rules = rib.rules_mut();
                if let Some(old) = rules.remove_by_name(&name) {
                    touched.insert((old.input.interface.clone(), old.id.clone()));
                }
                if add {
                    let r = rule_on_port(
                        &name,
                        ifcs[usize::from(ifc) % 3],
                        i,
                        ifcs[usize::from(out) % 3],
                        mo,
                        if any_port { 0 } else { 5000 },
                    );
                    touched.insert((r.input.interface.clone(), r.id.clone()));
                    // Output == input interfaces are refused: skip those.
                    let _ = rules.insert(r);
                }
            }
            let full = recompile(&tables, rib.compile());
            let Some(patched) = rib.patch_static(&tables, &touched) else {
                assert!(
                    !routes.is_empty(),
                    "without learned routes a patch always applies"
                );
                tables = full;
                continue;
            };
            patched_bursts += 1;
            assert_eq!(patched, full);
            for (ifc, t) in &tables {
                if !touched.iter().any(|(i, _)| i == ifc) {
                    assert!(Arc::ptr_eq(t, &patched[ifc]), "{ifc} is shared");
                }
            }
            tables = patched;
        }
        patched_bursts
    }

    proptest! {
        #[test]
        fn a_patch_equals_a_full_compile(
            ops in prop::collection::vec(
                (any::<bool>(), 0u8..12, 0u8..3, 0u8..3, any::<bool>(), prop::bool::weighted(0.15)),
                0..40,
            ),
            members in prop::collection::vec((0u8..3, 0u8..12), 0..6),
            routes in prop::collection::vec((0u8..3, 0u8..12, any::<bool>(), 0u8..3), 0..8),
        ) {
            check(&ops, &members, &routes);
        }
    }

    /// With learned routes, port-specific changes still patch (the cost of
    /// an `add` does not return to the rule count once PIM or an IGMP
    /// proxy installs a route), and an any-port one compiles in full.
    #[test]
    fn learned_routes_still_patch_port_specific_changes() {
        let ops: Vec<Op> = (0..12u8)
            .map(|i| (true, i, i % 3, (i + 1) % 3, false, false))
            .collect();
        let routes = [(0, 1, false, 1), (1, 2, true, 2), (2, 3, false, 0)];
        assert_eq!(check(&ops, &[], &routes), 4, "every burst patched");
        let any_port: Vec<Op> = vec![(true, 1, 0, 1, false, true)];
        assert_eq!(
            check(&any_port, &[], &routes),
            0,
            "an any-port rule shadows"
        );
    }

    /// What one `add` costs at 10,000 static rules with 2,000 learned
    /// routes installed: a patch against a full compile (release figures
    /// in PERFORMANCE.md): `cargo test -p mcr --lib --release
    /// patch_with_learned_routes_timing -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing figures, printed on demand"]
    fn patch_with_learned_routes_timing() {
        let rules: Vec<Rule> = (0..10_000u32)
            .map(|i| {
                let mut r = rule(&format!("r{i}"), "eth0", 0, "eth1", false);
                r.input.group = Ipv4Addr::from(0xef01_0000 + i);
                Rule::new(r.name.clone(), r.input, r.outputs)
            })
            .collect();
        let mut rib = Rib::with_rules(Arc::new(RuleSet::from_rules(rules).unwrap()));
        for i in 0..2_000u32 {
            let g = Ipv4Addr::from(0xef05_0000 + i);
            rib.apply(
                Origin::Pim,
                Route::s_g(Ipv4Addr::new(10, 0, 0, 1), g, "eth2", &["eth1"]),
            )
            .unwrap();
        }
        let mut tables = recompile(&Tables::new(), rib.compile());
        let n = 50;
        let (mut patch, mut full) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
        for k in 0..n {
            let mut r = rule(&format!("new{k}"), "eth0", 0, "eth1", false);
            r.input.group = Ipv4Addr::from(0xef09_0000 + k);
            let r = Rule::new(r.name.clone(), r.input, r.outputs);
            let mut touched = Touched::new();
            touched.insert(("eth0".into(), r.id.clone()));
            rib.rules_mut().insert(r).unwrap();
            let t0 = std::time::Instant::now();
            let p = rib
                .patch_static(&tables, &touched)
                .expect("port-specific: patched");
            patch += t0.elapsed();
            let t0 = std::time::Instant::now();
            let f = recompile(&tables, rib.compile());
            full += t0.elapsed();
            assert!(p == f, "add {k}: the patch differs from a full compile");
            tables = p;
        }
        eprintln!(
            "one add at 10,000 rules + 2,000 learned routes: patch {:?}, full compile {:?} (mean of {n})",
            patch / n,
            full / n
        );
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

        // An any-port rule could shadow a learned entry: no patch then.
        rib.apply(
            Origin::Pim,
            Route::star_g(Ipv4Addr::new(239, 9, 9, 9), "eth0", &["eth1"]),
        )
        .unwrap();
        let with_route = recompile(&after, rib.compile());
        assert!(rib.patch_static(&with_route, &touched).is_some());
        let wide = rule_on_port("y", "eth0", 9, "eth1", false, 0);
        touched.insert(("eth0".into(), wide.id.clone()));
        rib.rules_mut().insert(wide).unwrap();
        assert!(rib.patch_static(&with_route, &touched).is_none());
    }
}
