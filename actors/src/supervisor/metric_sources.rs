//! Where any part of the daemon puts counters for the Prometheus endpoint.
//!
//! Owns: the list of extra `prometheus-client` registries every scrape
//! encodes after the daemon's own metrics. It sits outside the metrics
//! actor so that a protocol actor can add its counters without importing
//! another actor's module (DESIGN.md: actor modules never import each
//! other).

use std::sync::{Arc, Mutex};

use prometheus_client::registry::Registry;

use super::util::lock;

static SOURCES: Mutex<Vec<(String, Arc<Registry>)>> = Mutex::new(Vec::new());

/// Add `registry` to every scrape. A protocol keeps its metric handles
/// (counters, families) and registers them once in a registry of its own,
/// prefixed with its name, e.g. `Registry::with_prefix("mcr_igmp")`, then
/// adds it here. Adding under a name already present replaces that
/// source, so an actor that restarts simply adds again.
pub fn add_source(name: &str, registry: Arc<Registry>) {
    let mut s = lock(&SOURCES);
    s.retain(|(n, _)| n != name);
    s.push((name.to_string(), registry));
}

/// Every source, in the order they were added. The lock is held only to
/// clone the list: encoding happens after it is released.
pub fn all() -> Vec<Arc<Registry>> {
    lock(&SOURCES).iter().map(|(_, r)| r.clone()).collect()
}
