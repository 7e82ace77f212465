//! Rules for unit tests, written as an operator reads them: an endpoint
//! `"eth0 239.1.1.1:5000"` is an interface, a group and a port. Shared by
//! the tests of `rule` and `rule::loops`, so a change to `RuleInput` or
//! `RuleOutput` is made in one place.

use super::{OutputMode, RuleInput, RuleOutput};

/// `"IFACE GROUP:PORT"`, split. The literals are the tests' own: a
/// malformed one is a bug in the test, so it panics with the text.
fn endpoint(s: &str) -> (String, std::net::Ipv4Addr, u16) {
    let parts = s.split_once(' ').and_then(|(ifc, rest)| {
        let (g, p) = rest.rsplit_once(':')?;
        Some((ifc.to_string(), g.parse().ok()?, p.parse().ok()?))
    });
    parts.unwrap_or_else(|| panic!("test endpoint {s:?} is not \"IFACE GROUP:PORT\""))
}

/// An input from any source.
pub(crate) fn input(s: &str) -> RuleInput {
    let (interface, group, port) = endpoint(s);
    RuleInput {
        interface,
        group,
        port,
        source: None,
    }
}

/// Republishing outputs with the default TTL, to everyone.
pub(crate) fn outputs(list: &[&str]) -> Vec<RuleOutput> {
    list.iter()
        .map(|s| {
            let (interface, group, port) = endpoint(s);
            RuleOutput {
                interface,
                group,
                port,
                ttl: None,
                mode: OutputMode::Republish,
                members_only: false,
            }
        })
        .collect()
}
