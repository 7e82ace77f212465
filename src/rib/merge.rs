//! `Rib`: static rules, learned routes by origin and IGMP memberships, and
//! the one compile step that merges them into per-interface tables.
//!
//! Owns the merge policy (RFC 7761 section 4.1.6 and 4.2 for how (*,G)
//! and (S,G) outgoing lists combine; RFC 3376 section 6.3 for how a
//! membership's source filter decides which sources an interface gets):
//!
//! - **Static rules are never changed** by learned routes. A static rule's
//!   compiled entry is byte for byte what `compile(&RuleSet)` gives,
//!   whatever is learned, except that a members-only output is in it
//!   exactly while its interface has an IGMP member of the output's group
//!   (the group after translation) that accepts the rule's input source
//!   (any member, when the rule takes every source; RFC 3376 section 6.3
//!   for the filter). A
//!   learned entry whose input would take packets away from a static rule
//!   is *shadowed*: left out of the table and reported by `shadowed()`.
//!   Learned entries always match any port, so a static rule with a port
//!   is looked up first by the data plane and cannot be disturbed; a
//!   static any-port rule for G on an interface shadows every learned
//!   entry for G there if it has no source, and the learned (S,G) of its
//!   source if it has one.
//! - **(S,G) inherits (*,G).** The data plane picks one entry per packet
//!   (source-specific first, `dataplane/table.rs`), so an (S,G) entry
//!   would hide the (*,G) outputs from S's packets. Compile therefore
//!   folds: an (S,G) entry's outputs are its own plus those of the (*,G)
//!   with the same upstream interface, plus every membership that accepts
//!   S (RFC 7761 section 4.1.6's inherited_olist).
//! - **(S,G,rpt) prunes take S off one origin's (*,G) outputs.** An (S,G)
//!   route's `rpt_pruned` interfaces are left out of what its entry
//!   inherits from the (*,G) route of the *same origin* on the same
//!   upstream (RFC 7761 section 4.1.6: inherited_olist(S,G,rpt) is the
//!   (*,G) joins less prunes(S,G,rpt)). The (S,G) route's own
//!   `downstream`, other origins' (*,G) outputs and memberships that
//!   accept S are still added: a prune received from a PIM neighbour
//!   says nothing about IGMP receivers or a proxy's routes. An (S,G)
//!   route with no `downstream` and some `rpt_pruned` is how PIM stops S
//!   on the shared tree without a source-tree route of its own.
//! - **An (S,G) route names the one interface S's packets are accepted
//!   on.** Where another interface has a (*,G) entry, compile adds an
//!   (S,G) entry with no outputs there, so that S's packets arriving on
//!   the shared tree are dropped, not forwarded twice (RFC 7761 section
//!   4.2 with the SPT bit set; Linux's MFC drops them the same way). A
//!   PIM engine therefore applies an (S,G) route when it switches to the
//!   shortest-path tree.
//! - **Memberships add outputs, never entries of their own**: a membership
//!   on X for G adds X to learned entries of G on other interfaces. An
//!   EXCLUDE filter adds X to (*,G); each source named by any filter gets
//!   its own (S,G) entry when a (*,G) exists, so that INCLUDE {S} sends
//!   only S and EXCLUDE {S} withholds only S. Such a derived entry is
//!   omitted when it would equal the (*,G) entry.
//!   A route may name the only interfaces whose memberships it takes
//!   (`Route::member_interfaces`, the IGMP proxy's downstream interfaces
//!   where it is the querier, RFC 4605 §4.2): a membership adds its
//!   interface when at least one route of the entry takes it.
//! - Several origins for the same (upstream, S, G) merge into one entry
//!   (union of outputs). An output named by routes in both modes sends in
//!   route mode. An upstream is never one of its own outputs.
//!
//! Determinism: the state is kept in ordered maps keyed by identity and
//! compile walks them in order, so the same state gives the same tables
//! (and `tables_hash`) whatever order it was built in.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::hash::Fnv64;
use crate::ipc::rule_key;
use crate::rule::{OutputMode, RuleOutput, RuleSet, DEFAULT_MULTICAST_TTL};

use super::learned::{
    sg_string, validate_membership, Memberships, Origin, Route, RouteError, SourceFilter,
};
use super::{compile_static, CompiledOutput, CompiledRule, InterfaceTable};

/// Per-interface tables, keyed by input interface.
pub type Tables = BTreeMap<String, InterfaceTable>;

/// The identity of a learned route: one per origin and (S,G).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteId {
    pub origin: Origin,
    pub group: Ipv4Addr,
    pub source: Option<Ipv4Addr>,
}

/// The RIB's state. Pure: the RibActor owns one and calls `compile` after
/// changing it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rib {
    rules: Arc<RuleSet>,
    routes: BTreeMap<RouteId, Route>,
    members: Memberships,
}

/// A learned entry as compile sees it, installed or shadowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LearnedEntry {
    pub rule_id: String,
    pub upstream: String,
    pub source: Option<Ipv4Addr>,
    pub group: Ipv4Addr,
    /// Output interface → mode, upstream already removed.
    pub outputs: BTreeMap<String, OutputMode>,
    /// The outputs that only memberships asked for.
    pub member_outputs: BTreeSet<String>,
    /// The origin of the routes that made the entry (for a derived (S,G):
    /// those of its (*,G)); the lowest when several did.
    pub origin: Origin,
    /// Every origin that contributed, `igmp` included when memberships
    /// added outputs.
    pub origins: BTreeSet<Origin>,
    /// The static rule that owns this entry's packets; if set, the entry
    /// is not in the tables.
    pub shadowed_by: Option<String>,
}

impl Rib {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_rules(rules: Arc<RuleSet>) -> Self {
        Rib {
            rules,
            ..Rib::default()
        }
    }

    /// Replace the static rules (the running rule set changed).
    pub fn set_rules(&mut self, rules: Arc<RuleSet>) {
        self.rules = rules;
    }

    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// The static rules, to change a few in place (a single `add` or
    /// `remove`). Copies the set only if another holder still shares it.
    pub fn rules_mut(&mut self) -> &mut RuleSet {
        Arc::make_mut(&mut self.rules)
    }

    /// Add or replace a learned route. Returns whether anything changed,
    /// so a caller can skip recompiling.
    pub fn apply(&mut self, origin: Origin, route: Route) -> Result<bool, RouteError> {
        if origin == Origin::Static {
            return Err(RouteError::StaticOrigin);
        }
        route.validate()?;
        let id = RouteId {
            origin,
            group: route.group,
            source: route.source,
        };
        Ok(self.routes.insert(id, route.clone()).as_ref() != Some(&route))
    }

    /// Remove one learned route.
    pub fn withdraw(
        &mut self,
        origin: Origin,
        source: Option<Ipv4Addr>,
        group: Ipv4Addr,
    ) -> Option<Route> {
        self.routes.remove(&RouteId {
            origin,
            group,
            source,
        })
    }

    /// Remove every route of one origin (its protocol stopped or
    /// restarted and will re-announce). Returns how many were removed.
    pub fn withdraw_origin(&mut self, origin: Origin) -> usize {
        let before = self.routes.len();
        self.routes.retain(|id, _| id.origin != origin);
        before - self.routes.len()
    }

    /// Make `routes` the whole set of `origin`'s routes: what is not in
    /// it is withdrawn, what is there is applied, in one step, so a route
    /// in both the old and the new set never leaves the tables (a
    /// restarted protocol re-announcing what it still wants). All or
    /// nothing: one invalid route and nothing changes. When two routes
    /// share an identity the last wins, as with `apply`. Returns whether
    /// anything changed.
    pub fn replace_origin(
        &mut self,
        origin: Origin,
        routes: Vec<Route>,
    ) -> Result<bool, RouteError> {
        if origin == Origin::Static {
            return Err(RouteError::StaticOrigin);
        }
        routes.iter().try_for_each(Route::validate)?;
        let wanted: BTreeMap<RouteId, Route> = routes
            .into_iter()
            .map(|r| {
                let id = RouteId {
                    origin,
                    group: r.group,
                    source: r.source,
                };
                (id, r)
            })
            .collect();
        let current = self.routes.iter().filter(|(id, _)| id.origin == origin);
        if current.clone().count() == wanted.len()
            && current.zip(wanted.iter()).all(|(a, b)| a == b)
        {
            return Ok(false);
        }
        self.routes.retain(|id, _| id.origin != origin);
        self.routes.extend(wanted);
        Ok(true)
    }

    /// Learned routes in identity order.
    pub fn routes(&self) -> impl Iterator<Item = (&RouteId, &Route)> {
        self.routes.iter()
    }

    /// Set `interface`'s membership in `group`. INCLUDE {} removes it
    /// (RFC 3376: no interest). Returns whether anything changed.
    pub fn join(
        &mut self,
        interface: &str,
        group: Ipv4Addr,
        filter: SourceFilter,
    ) -> Result<bool, RouteError> {
        validate_membership(interface, group, &filter)?;
        let key = (interface.to_string(), group);
        if filter.is_empty() {
            return Ok(self.members.remove(&key).is_some());
        }
        Ok(self.members.insert(key, filter.clone()).as_ref() != Some(&filter))
    }

    /// Remove `interface`'s membership in `group`.
    pub fn leave(&mut self, interface: &str, group: Ipv4Addr) -> bool {
        self.members
            .remove(&(interface.to_string(), group))
            .is_some()
    }

    /// Remove every membership of `interface` (it went away, or its
    /// querier stopped). Returns how many were removed.
    pub fn leave_interface(&mut self, interface: &str) -> usize {
        let before = self.members.len();
        self.members.retain(|(i, _), _| i != interface);
        before - self.members.len()
    }

    /// Replace every membership of `interface` with `groups` (a restarted
    /// IGMP instance reporting what it has re-learned). All or nothing: if
    /// one membership is invalid, nothing changes. INCLUDE {} entries are
    /// no interest and dropped. Returns whether anything changed.
    pub fn set_memberships(
        &mut self,
        interface: &str,
        groups: &[(Ipv4Addr, SourceFilter)],
    ) -> Result<bool, RouteError> {
        for (g, f) in groups {
            validate_membership(interface, *g, f)?;
        }
        let wanted: BTreeMap<Ipv4Addr, &SourceFilter> = groups
            .iter()
            .filter(|(_, f)| !f.is_empty())
            .map(|(g, f)| (*g, f))
            .collect();
        let current: BTreeMap<Ipv4Addr, &SourceFilter> = self
            .members
            .iter()
            .filter(|((i, _), _)| i == interface)
            .map(|((_, g), f)| (*g, f))
            .collect();
        if current == wanted {
            return Ok(false);
        }
        let wanted: Vec<(Ipv4Addr, SourceFilter)> =
            wanted.into_iter().map(|(g, f)| (g, f.clone())).collect();
        self.leave_interface(interface);
        for (g, f) in wanted {
            self.members.insert((interface.to_string(), g), f);
        }
        Ok(true)
    }

    pub fn memberships(&self) -> &Memberships {
        &self.members
    }

    /// No learned routes and no memberships.
    pub fn is_static_only(&self) -> bool {
        self.routes.is_empty() && self.members.is_empty()
    }

    /// The one compile step: per input interface, the static rules'
    /// entries and the installed learned entries, sorted by rule id.
    pub fn compile(&self) -> Tables {
        let mut tables = Tables::new();
        compile_static(&self.rules, &self.members, &mut tables);
        let mut used: HashSet<u64> = tables.values().flatten().map(|r| r.key).collect();
        for e in self.learned_entries() {
            if e.shadowed_by.is_some() {
                continue;
            }
            let key = unique_key(&e.rule_id, &mut used);
            let outputs = e
                .outputs
                .iter()
                .map(|(ifc, mode)| CompiledOutput {
                    interface: ifc.clone(),
                    group: e.group,
                    // Multicast routing is not port-aware: keep the
                    // packet's own port.
                    port: 0,
                    ttl: DEFAULT_MULTICAST_TTL,
                    mode: *mode,
                })
                .collect();
            tables.entry(e.upstream).or_default().push(CompiledRule {
                rule_id: e.rule_id,
                key,
                group: e.group,
                port: 0,
                source: e.source,
                outputs,
                origin: e.origin.as_str(),
            });
        }
        for t in tables.values_mut() {
            t.sort_by(|a, b| a.rule_id.cmp(&b.rule_id));
        }
        tables
    }

    /// Learned entries that a static rule keeps out of the tables.
    pub fn shadowed(&self) -> Vec<LearnedEntry> {
        self.learned_entries()
            .into_iter()
            .filter(|e| e.shadowed_by.is_some())
            .collect()
    }

    /// Every learned entry compile considers, in (upstream, group,
    /// source) order, shadowed ones included.
    pub fn learned_entries(&self) -> Vec<LearnedEntry> {
        let shadows = static_any_port(&self.rules);
        let mut members_of: BTreeMap<Ipv4Addr, Vec<(&str, &SourceFilter)>> = BTreeMap::new();
        for ((ifc, g), f) in &self.members {
            members_of.entry(*g).or_default().push((ifc.as_str(), f));
        }
        let mut by_input: BTreeMap<(&str, Ipv4Addr), Sources> = BTreeMap::new();
        // (group, source) → origins of its (S,G) routes, on any upstream.
        let mut sg_origins: BTreeMap<(Ipv4Addr, Ipv4Addr), BTreeSet<Origin>> = BTreeMap::new();
        for (id, r) in &self.routes {
            let s = by_input.entry((r.upstream.as_str(), r.group)).or_default();
            match r.source {
                None => s.star.push((id.origin, r)),
                Some(src) => {
                    s.sg.entry(src).or_default().push((id.origin, r));
                    sg_origins
                        .entry((r.group, src))
                        .or_default()
                        .insert(id.origin);
                }
            }
        }
        let mut out = Vec::new();
        for ((upstream, group), s) in by_input {
            let members = members_of.get(&group).map(Vec::as_slice).unwrap_or(&[]);
            let star = (!s.star.is_empty()).then(|| {
                let mode = strongest_mode(&s.star);
                fold(upstream, None, group, &[&s.star], mode, members, |f| {
                    f.accepts_unlisted()
                })
            });
            let mut sources: BTreeSet<Ipv4Addr> = s.sg.keys().copied().collect();
            if star.is_some() {
                for (_, f) in members {
                    sources.extend(f.sources());
                }
                sources.extend(
                    sg_origins
                        .range((group, Ipv4Addr::UNSPECIFIED)..=(group, Ipv4Addr::BROADCAST))
                        .map(|((_, src), _)| *src),
                );
            }
            for src in sources {
                let own = s.sg.get(&src);
                if let (None, Some(origins)) = (own, sg_origins.get(&(group, src))) {
                    out.push(wrong_upstream(upstream, src, group, origins));
                    continue;
                }
                let parts: Vec<&[(Origin, &Route)]> = own
                    .map(Vec::as_slice)
                    .into_iter()
                    .chain(star.is_some().then_some(s.star.as_slice()))
                    .collect();
                let mode = parts.iter().map(|p| strongest_mode(p)).max();
                let e = fold(
                    upstream,
                    Some(src),
                    group,
                    &parts,
                    mode.unwrap_or(OutputMode::Route),
                    members,
                    |f| f.accepts(src),
                );
                let redundant =
                    own.is_none() && star.as_ref().is_some_and(|st| st.outputs == e.outputs);
                if !redundant {
                    out.push(e);
                }
            }
            out.extend(star);
        }
        for e in &mut out {
            e.shadowed_by = shadows
                .get(&(e.upstream.clone(), e.group, None))
                .or_else(|| {
                    e.source
                        .and_then(|s| shadows.get(&(e.upstream.clone(), e.group, Some(s))))
                })
                .cloned();
        }
        out.sort_by(|a, b| (&a.upstream, a.group, a.source).cmp(&(&b.upstream, b.group, b.source)));
        out
    }
}

/// Routes of one (upstream, group), split into (*,G) and (S,G).
#[derive(Default)]
struct Sources<'a> {
    star: Vec<(Origin, &'a Route)>,
    sg: BTreeMap<Ipv4Addr, Vec<(Origin, &'a Route)>>,
}

/// A router forwards the original packet; republish only if every route
/// of the entry asks for it.
fn strongest_mode(routes: &[(Origin, &Route)]) -> OutputMode {
    routes
        .iter()
        .map(|(_, r)| r.mode)
        .max()
        .unwrap_or(OutputMode::Route)
}

/// One entry from its routes (the first slice names its origin) and the
/// memberships that `wants`.
fn fold(
    upstream: &str,
    source: Option<Ipv4Addr>,
    group: Ipv4Addr,
    parts: &[&[(Origin, &Route)]],
    mode: OutputMode,
    members: &[(&str, &SourceFilter)],
    wants: impl Fn(&SourceFilter) -> bool,
) -> LearnedEntry {
    let mut outputs: BTreeMap<String, OutputMode> = BTreeMap::new();
    let mut origins = BTreeSet::new();
    // (S,G,rpt) prunes, per origin: only that origin's (*,G) said to send
    // there, so only its outputs lose S.
    let pruned: BTreeSet<(Origin, &str)> = parts
        .iter()
        .flat_map(|p| p.iter())
        .filter(|(_, r)| r.source.is_some())
        .flat_map(|(o, r)| r.rpt_pruned.iter().map(move |d| (*o, d.as_str())))
        .collect();
    for (origin, r) in parts.iter().flat_map(|p| p.iter()) {
        origins.insert(*origin);
        for d in &r.downstream {
            if r.source.is_none() && pruned.contains(&(*origin, d.as_str())) {
                continue;
            }
            let m = outputs.entry(d.clone()).or_insert(r.mode);
            *m = (*m).max(r.mode);
        }
    }
    // Every entry has at least one route; the fallback is never shown.
    let origin = parts
        .first()
        .and_then(|p| p.iter().map(|(o, _)| *o).min())
        .unwrap_or(Origin::Pim);
    let routes = || parts.iter().flat_map(|p| p.iter());
    let takes = |ifc: &str| {
        routes().any(|(_, r)| {
            r.member_interfaces
                .as_ref()
                .is_none_or(|only| only.contains(ifc))
        })
    };
    let mut member_outputs = BTreeSet::new();
    for (ifc, f) in members {
        if *ifc == upstream || !wants(f) || !takes(ifc) {
            continue;
        }
        origins.insert(Origin::Igmp);
        if !outputs.contains_key(*ifc) {
            outputs.insert(ifc.to_string(), mode);
            member_outputs.insert(ifc.to_string());
        }
    }
    outputs.remove(upstream);
    LearnedEntry {
        rule_id: learned_rule_id(upstream, source, group),
        upstream: upstream.to_string(),
        source,
        group,
        outputs,
        member_outputs,
        origin,
        origins,
        shadowed_by: None,
    }
}

/// An (S,G) whose route names another upstream: S's packets arriving
/// here on the shared tree are dropped rather than sent down (*,G) a
/// second time (RFC 7761 section 4.2 once the SPT bit is set; the
/// kernel's MFC does the same with its wrong-interface check).
fn wrong_upstream(
    upstream: &str,
    source: Ipv4Addr,
    group: Ipv4Addr,
    origins: &BTreeSet<Origin>,
) -> LearnedEntry {
    LearnedEntry {
        rule_id: learned_rule_id(upstream, Some(source), group),
        upstream: upstream.to_string(),
        source: Some(source),
        group,
        outputs: BTreeMap::new(),
        member_outputs: BTreeSet::new(),
        origin: origins.first().copied().unwrap_or(Origin::Pim),
        origins: origins.clone(),
        shadowed_by: None,
    }
}

/// Whether a static rule's output is in the table: always, unless it is
/// members-only and `members` has no member for it (see the module doc).
pub fn output_sends(members: &Memberships, source: Option<Ipv4Addr>, o: &RuleOutput) -> bool {
    if !o.members_only {
        return true;
    }
    match members.get(&(o.interface.clone(), o.group)) {
        None => false,
        Some(f) => match source {
            Some(s) => f.accepts(s),
            None => !f.is_empty(),
        },
    }
}

/// The rule id of a learned entry: `(S,G)@upstream` or `(*,G)@upstream`.
/// `(`, `*`, `,` and `@` are refused in static rule ids
/// (`rule::validate_rule_id`), so the two kinds can never share an id.
pub fn learned_rule_id(upstream: &str, source: Option<Ipv4Addr>, group: Ipv4Addr) -> String {
    format!("{}@{upstream}", sg_string(source, group))
}

/// `rule_key(id)`, unless another entry already has that key (a 64-bit
/// FNV collision): then the key of `id#1`, `id#2`, ... Learned entries are
/// keyed after static rules, so a static rule always keeps its key.
pub(super) fn unique_key(id: &str, used: &mut HashSet<u64>) -> u64 {
    let mut key = rule_key(id);
    let mut n = 0u32;
    while !used.insert(key) {
        n += 1;
        key = rule_key(&format!("{id}#{n}"));
    }
    key
}

/// Static any-port rules by (interface, group, source) → rule id: the
/// inputs a learned entry could take packets from.
fn static_any_port(rules: &RuleSet) -> BTreeMap<(String, Ipv4Addr, Option<Ipv4Addr>), String> {
    rules
        .iter()
        .filter(|r| r.input.port == 0)
        .map(|r| {
            (
                (r.input.interface.clone(), r.input.group, r.input.source),
                r.id.clone(),
            )
        })
        .collect()
}

/// A content hash of compiled tables: equal tables, equal hash. (The hash
/// a worker acks also covers egress socket ids, which depend on the order
/// sockets were opened; this one does not.)
pub fn tables_hash(tables: &Tables) -> u64 {
    let mut h = Fnv64::new();
    for (ifc, t) in tables {
        h.write(ifc.as_bytes())
            .write_u8(0)
            .write_u32(t.len() as u32);
        for r in t {
            h.write(r.rule_id.as_bytes())
                .write_u8(0)
                .write_u64(r.key)
                .write(&r.group.octets())
                .write_u16(r.port)
                .write(&r.source.map(|s| s.octets()).unwrap_or([0; 4]))
                .write_u8(u8::from(r.source.is_some()))
                .write(r.origin.as_bytes())
                .write_u8(0)
                .write_u32(r.outputs.len() as u32);
            for o in &r.outputs {
                h.write(o.interface.as_bytes())
                    .write_u8(0)
                    .write(&o.group.octets())
                    .write_u16(o.port)
                    .write_u8(o.ttl)
                    .write_u8(o.mode as u8);
            }
        }
    }
    h.finish()
}
