//! The `mroute` listing: every installed entry of the compiled tables,
//! static and learned, with its origin.
//!
//! Owns how an entry is shown to `mcrctl mroute` (the `MrouteEntry` of the
//! control protocol). An entry's `origin` is the origin that created it
//! (`static`, `igmp`, `pim`, `msdp`); an output that only an IGMP
//! membership asked for is marked `(igmp member)`, so an entry merged from
//! a route and memberships shows both. Learned entries that a static rule
//! shadows are not installed and so not listed; `Rib::shadowed` names them.

use std::collections::BTreeMap;

use crate::control::MrouteEntry;

use super::merge::{LearnedEntry, Rib, Tables};
use super::CompiledOutput;

/// The `mroute` reply for the RIB's current state.
pub fn mroute(rib: &Rib) -> Vec<MrouteEntry> {
    let learned: BTreeMap<String, LearnedEntry> = rib
        .learned_entries()
        .into_iter()
        .filter(|e| e.shadowed_by.is_none())
        .map(|e| (e.rule_id.clone(), e))
        .collect();
    listing(&rib.compile(), |rule_id, ifc| {
        learned
            .get(rule_id)
            .is_some_and(|e| e.member_outputs.contains(ifc))
    })
}

/// The `mroute` reply for tables already compiled, without membership
/// marks (for a caller that keeps only the tables).
pub fn mroute_from_tables(tables: &Tables) -> Vec<MrouteEntry> {
    listing(tables, |_, _| false)
}

fn listing(tables: &Tables, member_only: impl Fn(&str, &str) -> bool) -> Vec<MrouteEntry> {
    let mut v = Vec::new();
    for (ifc, t) in tables {
        for r in t {
            v.push(MrouteEntry {
                interface: ifc.clone(),
                group: r.group,
                port: r.port,
                source: r.source,
                outputs: r
                    .outputs
                    .iter()
                    .map(|o| format_output(o, member_only(&r.rule_id, &o.interface)))
                    .collect(),
                origin: r.origin.to_string(),
                rule_id: r.rule_id.clone(),
            });
        }
    }
    v
}

/// The same words `mroute` has always used for static outputs.
fn format_output(o: &CompiledOutput, member: bool) -> String {
    let mut s = format!(
        "{}:{} on {} ttl {} {}",
        o.group,
        o.port,
        o.interface,
        o.ttl,
        o.mode.as_str()
    );
    if member {
        s.push_str(" (igmp member)");
    }
    s
}
