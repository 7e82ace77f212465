//! The `mroute` listing: every installed entry of the compiled tables,
//! static and learned, with its origin.
//!
//! Owns how an entry is shown to `mcrctl mroute` (the `MrouteEntry` of the
//! control protocol). An entry's `origin` is the origin that created it
//! (`static`, `igmp`, `pim`, `msdp`); an output that only an IGMP
//! membership asked for is marked `(igmp member)`, so an entry merged from
//! a route and memberships shows both, and `origins` lists every origin
//! that contributed. Learned entries that a static rule shadows are not
//! installed, but are listed with `shadowed_by` naming that rule, so an
//! operator can see why a learned route does not forward.

use std::collections::BTreeMap;

use crate::control::MrouteEntry;
use crate::rule::DEFAULT_MULTICAST_TTL;

use super::merge::{LearnedEntry, Rib, Tables};
use super::CompiledOutput;

/// The `mroute` reply for the RIB's current state: the installed entries
/// in table order (input interface, rule id), and the learned entries a
/// static rule shadows in the same order, marked with that rule.
pub fn mroute(rib: &Rib) -> Vec<MrouteEntry> {
    let (installed, shadowed): (Vec<LearnedEntry>, Vec<LearnedEntry>) = rib
        .learned_entries()
        .into_iter()
        .partition(|e| e.shadowed_by.is_none());
    let learned: BTreeMap<String, LearnedEntry> = installed
        .into_iter()
        .map(|e| (e.rule_id.clone(), e))
        .collect();
    let mut v = listing(
        &rib.compile(),
        |rule_id, ifc| {
            learned
                .get(rule_id)
                .is_some_and(|e| e.member_outputs.contains(ifc))
        },
        |rule_id| learned.get(rule_id).map(origins_of),
    );
    v.extend(shadowed.iter().map(shadowed_entry));
    // Shadowed entries slot in beside the static rule that shadows them.
    v.sort_by(|a, b| (&a.interface, &a.rule_id).cmp(&(&b.interface, &b.rule_id)));
    v
}

/// The `mroute` reply for tables already compiled, without membership
/// marks (for a caller that keeps only the tables).
pub fn mroute_from_tables(tables: &Tables) -> Vec<MrouteEntry> {
    listing(tables, |_, _| false, |_| None)
}

/// `origin` first, then the others that contributed.
fn origins_of(e: &LearnedEntry) -> Vec<String> {
    std::iter::once(e.origin)
        .chain(e.origins.iter().copied().filter(|o| *o != e.origin))
        .map(|o| o.as_str().to_string())
        .collect()
}

fn shadowed_entry(e: &LearnedEntry) -> MrouteEntry {
    MrouteEntry {
        interface: e.upstream.clone(),
        group: e.group,
        port: 0,
        source: e.source,
        outputs: e
            .outputs
            .iter()
            .map(|(ifc, mode)| {
                let o = CompiledOutput {
                    interface: ifc.clone(),
                    group: e.group,
                    port: 0,
                    ttl: DEFAULT_MULTICAST_TTL,
                    mode: *mode,
                };
                format_output(&o, e.member_outputs.contains(ifc))
            })
            .collect(),
        origin: e.origin.as_str().to_string(),
        rule_id: e.rule_id.clone(),
        origins: origins_of(e),
        shadowed_by: e.shadowed_by.clone(),
    }
}

fn listing(
    tables: &Tables,
    member_only: impl Fn(&str, &str) -> bool,
    origins: impl Fn(&str) -> Option<Vec<String>>,
) -> Vec<MrouteEntry> {
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
                origins: origins(&r.rule_id).unwrap_or_else(|| vec![r.origin.to_string()]),
                shadowed_by: None,
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
