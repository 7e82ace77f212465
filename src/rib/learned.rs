//! What protocols tell the RIB: learned multicast routes with their origin,
//! and IGMP group memberships with their source filters.
//!
//! Owns the input vocabulary of the RIB and its validation: `Origin`,
//! `Route` ((*,G) or (S,G) with an upstream interface, downstream
//! interfaces and an egress mode), `Membership` (an interface's interest in
//! a group, INCLUDE/EXCLUDE source lists as in RFC 3376 section 3.2 and
//! 6.2), and `RouteError`. How these turn into forwarding entries lives in
//! `merge.rs`.
//!
//! Groups in 224.0.0.0/24 are refused: RFC 5771 section 4 and RFC 7761
//! section 4.1 (link-local groups are never forwarded by a router).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::rule::{validate_interface_name, OutputMode};

/// Who put an entry in the RIB. Renders lowercase (`static`, `igmp`, ...),
/// which is what `mroute` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A rule from the config or `mcrctl add`; never a learned route.
    Static,
    Igmp,
    Pim,
    Msdp,
}

impl Origin {
    pub const LEARNED: [Origin; 3] = [Origin::Igmp, Origin::Pim, Origin::Msdp];

    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Static => "static",
            Origin::Igmp => "igmp",
            Origin::Pim => "pim",
            Origin::Msdp => "msdp",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "static" => Some(Origin::Static),
            "igmp" => Some(Origin::Igmp),
            "pim" => Some(Origin::Pim),
            "msdp" => Some(Origin::Msdp),
            _ => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A learned (*,G) or (S,G) route. Within one origin, (source, group)
/// identifies it: a router has one upstream per (S,G), so applying a route
/// with the same identity replaces the previous one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Route {
    /// `None` for (*,G).
    pub source: Option<Ipv4Addr>,
    pub group: Ipv4Addr,
    /// The interface packets must arrive on (RPF interface).
    pub upstream: String,
    /// Outgoing interfaces. The upstream is never sent back to, even if
    /// listed (RFC 7761 section 4.2: the incoming interface is removed
    /// from the outgoing list).
    pub downstream: BTreeSet<String>,
    /// How packets leave. Routers use `Route` (original packet, TTL-1);
    /// `Republish` is allowed for relays that re-send as this host (same
    /// group and port, TTL 1).
    pub mode: OutputMode,
    /// For an (S,G) route: the interfaces S is pruned off its origin's
    /// (*,G) tree on, the (S,G,rpt) prunes of RFC 7761 section 4.1.6.
    /// Compile leaves them out of the outputs the (S,G) entry inherits
    /// from the same origin's (*,G) route on the same upstream; its own
    /// `downstream` and memberships still add them. With an empty
    /// `downstream` such a route only stops S on those interfaces.
    /// Ignored on a (*,G) route.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub rpt_pruned: BTreeSet<String>,
    /// Where IGMP memberships may add outputs to this route's entry:
    /// `None` everywhere, `Some` only on these interfaces. The IGMP proxy
    /// serves only its downstream interfaces, and only those where it is
    /// the querier (RFC 4605 §4.2), so its routes name them; a router's
    /// routes (PIM) leave it `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_interfaces: Option<BTreeSet<String>>,
}

impl Route {
    /// A (*,G) route in route mode.
    pub fn star_g(group: Ipv4Addr, upstream: &str, downstream: &[&str]) -> Self {
        Route {
            source: None,
            group,
            upstream: upstream.to_string(),
            downstream: downstream.iter().map(|s| s.to_string()).collect(),
            mode: OutputMode::Route,
            rpt_pruned: BTreeSet::new(),
            member_interfaces: None,
        }
    }

    /// An (S,G) route in route mode.
    pub fn s_g(source: Ipv4Addr, group: Ipv4Addr, upstream: &str, downstream: &[&str]) -> Self {
        Route {
            source: Some(source),
            ..Route::star_g(group, upstream, downstream)
        }
    }

    pub fn validate(&self) -> Result<(), RouteError> {
        validate_group(self.group)?;
        if let Some(s) = self.source {
            validate_source(s)?;
        }
        validate_interface_name(&self.upstream).map_err(RouteError::Interface)?;
        let members = self.member_interfaces.iter().flatten();
        for d in self
            .downstream
            .iter()
            .chain(&self.rpt_pruned)
            .chain(members)
        {
            validate_interface_name(d).map_err(RouteError::Interface)?;
        }
        Ok(())
    }
}

/// `(S,G)` or `(*,G)`, as routers print it.
pub fn sg_string(source: Option<Ipv4Addr>, group: Ipv4Addr) -> String {
    match source {
        Some(s) => format!("({s},{group})"),
        None => format!("(*,{group})"),
    }
}

/// An interface's source filter for one group (RFC 3376 section 3.2).
/// IGMPv1/v2 membership is `Exclude` with no sources.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFilter {
    /// Only these sources are wanted. Empty means no interest at all.
    Include(BTreeSet<Ipv4Addr>),
    /// Every source but these is wanted.
    Exclude(BTreeSet<Ipv4Addr>),
}

impl SourceFilter {
    /// Any-source membership (IGMPv1/v2 report, or v3 EXCLUDE {}).
    pub fn any() -> Self {
        SourceFilter::Exclude(BTreeSet::new())
    }

    /// Is traffic from `source` wanted?
    pub fn accepts(&self, source: Ipv4Addr) -> bool {
        match self {
            SourceFilter::Include(s) => s.contains(&source),
            SourceFilter::Exclude(s) => !s.contains(&source),
        }
    }

    /// Is traffic from a source not named in the list wanted?
    pub fn accepts_unlisted(&self) -> bool {
        matches!(self, SourceFilter::Exclude(_))
    }

    pub fn sources(&self) -> &BTreeSet<Ipv4Addr> {
        match self {
            SourceFilter::Include(s) | SourceFilter::Exclude(s) => s,
        }
    }

    /// INCLUDE {} is how RFC 3376 spells "no members".
    pub fn is_empty(&self) -> bool {
        matches!(self, SourceFilter::Include(s) if s.is_empty())
    }

    fn validate(&self) -> Result<(), RouteError> {
        self.sources().iter().try_for_each(|s| validate_source(*s))
    }
}

/// The memberships of every interface: (interface, group) → filter.
pub type Memberships = BTreeMap<(String, Ipv4Addr), SourceFilter>;

/// Check one membership before the RIB accepts it.
pub fn validate_membership(
    interface: &str,
    group: Ipv4Addr,
    filter: &SourceFilter,
) -> Result<(), RouteError> {
    validate_interface_name(interface).map_err(RouteError::Interface)?;
    validate_group(group)?;
    filter.validate()
}

/// Why the RIB refused a learned route or a membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// Static rules come from the rule set, never through `apply`.
    StaticOrigin,
    NotMulticast(Ipv4Addr),
    LinkLocal(Ipv4Addr),
    BadSource(Ipv4Addr),
    Interface(String),
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::StaticOrigin => {
                f.write_str("a learned route cannot have origin static; static entries are rules")
            }
            RouteError::NotMulticast(g) => write!(f, "group {g} is not a multicast address"),
            RouteError::LinkLocal(g) => write!(
                f,
                "group {g} is link-local (224.0.0.0/24) and is never routed"
            ),
            RouteError::BadSource(s) => write!(f, "source {s} is not a unicast address"),
            RouteError::Interface(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for RouteError {}

fn validate_group(g: Ipv4Addr) -> Result<(), RouteError> {
    if !g.is_multicast() {
        return Err(RouteError::NotMulticast(g));
    }
    let [a, b, c, _] = g.octets();
    if (a, b, c) == (224, 0, 0) {
        return Err(RouteError::LinkLocal(g));
    }
    Ok(())
}

fn validate_source(s: Ipv4Addr) -> Result<(), RouteError> {
    if s.is_multicast() || s.is_unspecified() || s.is_broadcast() || s.is_loopback() {
        return Err(RouteError::BadSource(s));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn origins_render_lowercase_and_parse_back() {
        for o in [Origin::Static, Origin::Igmp, Origin::Pim, Origin::Msdp] {
            assert_eq!(Origin::parse(o.as_str()), Some(o));
            assert_eq!(o.to_string(), o.as_str());
            assert_eq!(o.as_str(), o.as_str().to_lowercase());
        }
        assert_eq!(
            serde_json::to_string(&Origin::Pim).unwrap(),
            "\"pim\"",
            "the control protocol shows the same word"
        );
        assert_eq!(Origin::parse("PIM"), None);
    }

    #[test]
    fn route_validation_names_the_problem() {
        let ok = Route::s_g(ip("10.0.0.1"), ip("239.1.1.1"), "eth0", &["eth1"]);
        assert_eq!(ok.validate(), Ok(()));
        let mut r = ok.clone();
        r.group = ip("10.1.1.1");
        assert_eq!(r.validate(), Err(RouteError::NotMulticast(ip("10.1.1.1"))));
        r.group = ip("224.0.0.13");
        assert_eq!(r.validate(), Err(RouteError::LinkLocal(ip("224.0.0.13"))));
        let mut r = ok.clone();
        r.source = Some(ip("239.9.9.9"));
        assert_eq!(r.validate(), Err(RouteError::BadSource(ip("239.9.9.9"))));
        let mut r = ok.clone();
        r.downstream.insert("bad/name".into());
        assert!(matches!(r.validate(), Err(RouteError::Interface(m)) if m.contains("bad/name")));
        let mut r = ok;
        r.upstream = String::new();
        assert!(r.validate().is_err());
    }

    #[test]
    fn source_filters_follow_rfc3376() {
        let s1 = ip("10.0.0.1");
        let s2 = ip("10.0.0.2");
        let inc = SourceFilter::Include([s1].into());
        let exc = SourceFilter::Exclude([s1].into());
        assert!(inc.accepts(s1) && !inc.accepts(s2) && !inc.accepts_unlisted());
        assert!(!exc.accepts(s1) && exc.accepts(s2) && exc.accepts_unlisted());
        assert!(SourceFilter::any().accepts(s1));
        assert!(SourceFilter::Include(BTreeSet::new()).is_empty());
        assert!(!SourceFilter::any().is_empty());
        assert_eq!(
            validate_membership(
                "eth1",
                ip("239.1.1.1"),
                &SourceFilter::Include([ip("0.0.0.0")].into())
            ),
            Err(RouteError::BadSource(ip("0.0.0.0")))
        );
    }
}
