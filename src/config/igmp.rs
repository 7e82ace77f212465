//! The `igmp` section of the config file: its model and its schema walk.
//!
//! Owns: which querier interfaces run an IGMP querier (RFC 2236 §3, RFC
//! 3376 §6), the timers they share (RFC 3376 §8, RFC 2236 §8: seconds,
//! fractions allowed), and the IGMP proxy's upstream and downstream
//! interfaces (RFC 4605 §4). Ranges and the relations between timers are
//! checked by `IgmpSettings::validate`, whose error names the key; this
//! module places that error at the key's line.

use std::collections::HashMap;

use super::document::{join_index, join_key, Kind, Value};
use super::schema::{pos, Walker};
use crate::igmp::config::IgmpSettings;

const IGMP_KEYS: &[&str] = &[
    "querier_interfaces",
    "version",
    "query_interval",
    "query_response_interval",
    "robustness",
    "last_member_query_interval",
    "last_member_query_count",
    "proxy",
];
const PROXY_KEYS: &[&str] = &["upstream", "downstream"];

/// The `igmp` section.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IgmpConfig {
    /// Interfaces where MCR runs a querier, in file order.
    pub querier_interfaces: Vec<String>,
    /// Timers and version shared by every querier (and the proxy's host
    /// side). Only the keys listed in the file differ from the defaults.
    pub settings: IgmpSettings,
    pub proxy: Option<IgmpProxyConfig>,
}

impl IgmpConfig {
    /// Every interface that runs a querier: the listed ones, then the
    /// proxy's downstream interfaces (RFC 4605 §4.1: the proxy is a
    /// router there), each once.
    pub fn queriers(&self) -> Vec<String> {
        let mut v = self.querier_interfaces.clone();
        for d in self.proxy.iter().flat_map(|p| &p.downstream) {
            if !v.contains(d) {
                v.push(d.clone());
            }
        }
        v
    }
}

/// RFC 4605: one upstream interface, where MCR acts as a host, and the
/// downstream interfaces, where it acts as a router.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IgmpProxyConfig {
    pub upstream: String,
    pub downstream: Vec<String>,
}

impl Walker {
    /// The `igmp` section, or `None` (with errors) when it is unusable.
    pub(super) fn igmp(&mut self, v: &Value, path: &str) -> Option<IgmpConfig> {
        let members = self.object(v, path, "the igmp section")?;
        let mut cfg = IgmpConfig::default();
        let mut ok = true;
        for m in members {
            let p = join_key(path, &m.key);
            self.mark(&p, &m.value);
            let s = &mut cfg.settings;
            match m.key.as_str() {
                "querier_interfaces" => match self.interface_list(&m.value, &p, false) {
                    Some(l) => cfg.querier_interfaces = l,
                    None => ok = false,
                },
                "version" => match self.integer(&m.value, &p, "IGMP version", 2, 3) {
                    Some(n) => s.version = n as u8,
                    None => ok = false,
                },
                "robustness" => match self.integer(&m.value, &p, "robustness", 1, 7) {
                    Some(n) => s.robustness = n as u8,
                    None => ok = false,
                },
                "last_member_query_count" => {
                    match self.integer(&m.value, &p, "last member query count", 1, 255) {
                        Some(n) => s.last_member_query_count = Some(n as u8),
                        None => ok = false,
                    }
                }
                "query_interval" => ok &= set_secs(self, &m.value, &p, &mut s.query_interval),
                "query_response_interval" => {
                    ok &= set_secs(self, &m.value, &p, &mut s.query_response_interval)
                }
                "last_member_query_interval" => {
                    ok &= set_secs(self, &m.value, &p, &mut s.last_member_query_interval)
                }
                "proxy" => match self.igmp_proxy(&m.value, &p) {
                    Some(x) => cfg.proxy = Some(x),
                    None => ok = false,
                },
                _ => self.unknown(m, &p, IGMP_KEYS),
            }
        }
        if !ok {
            return None;
        }
        if let Err(e) = cfg.settings.validate() {
            self.field_error(&join_key(path, e.key), e.reason);
            return None;
        }
        if let Some(proxy) = &cfg.proxy {
            if cfg.querier_interfaces.contains(&proxy.upstream) {
                self.field_error(
                    &join_key(path, "proxy.upstream"),
                    format!(
                        "{} is also a querier interface; the proxy is a host there, not a querier",
                        proxy.upstream
                    ),
                );
                return None;
            }
        }
        Some(cfg)
    }

    fn igmp_proxy(&mut self, v: &Value, path: &str) -> Option<IgmpProxyConfig> {
        let members = self.object(v, path, "the igmp proxy")?;
        let (mut upstream, mut downstream) = (None, None);
        let mut ok = true;
        for m in members {
            let p = join_key(path, &m.key);
            self.mark(&p, &m.value);
            match m.key.as_str() {
                "upstream" => {
                    upstream = self.interface(&m.value, &p);
                    ok &= upstream.is_some();
                }
                "downstream" => {
                    downstream = self.interface_list(&m.value, &p, true);
                    ok &= downstream.is_some();
                }
                _ => self.unknown(m, &p, PROXY_KEYS),
            }
        }
        self.require(v, path, members, PROXY_KEYS);
        let (true, Some(upstream), Some(downstream)) = (ok, upstream, downstream) else {
            return None;
        };
        if let Some(i) = downstream.iter().position(|d| *d == upstream) {
            self.field_error(
                &join_index(&join_key(path, "downstream"), i),
                format!("{upstream} is the upstream interface; it cannot be downstream too"),
            );
            return None;
        }
        Some(IgmpProxyConfig {
            upstream,
            downstream,
        })
    }

    /// A list of distinct interface names; `nonempty` refuses `[]`.
    pub(super) fn interface_list(
        &mut self,
        v: &Value,
        path: &str,
        nonempty: bool,
    ) -> Option<Vec<String>> {
        let Kind::Array(items) = &v.kind else {
            self.error(
                pos(v),
                path,
                format!(
                    "expected a list of interface names such as [\"eth1\"], found {}",
                    v.describe()
                ),
            );
            return None;
        };
        if nonempty && items.is_empty() {
            self.error(
                pos(v),
                path,
                "the list is empty; name at least one interface",
            );
            return None;
        }
        let mut names = Vec::with_capacity(items.len());
        let mut first_line: HashMap<String, usize> = HashMap::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let ip = join_index(path, i);
            self.mark(&ip, item);
            let Some(name) = self.interface(item, &ip) else {
                ok = false;
                continue;
            };
            if let Some(line) = first_line.insert(name.clone(), item.line) {
                self.error(
                    pos(item),
                    &ip,
                    format!("{name} is listed twice (first on line {line})"),
                );
                ok = false;
            } else {
                names.push(name);
            }
        }
        ok.then_some(names)
    }
}

/// Read seconds (whole or fractional) into `slot`. The range is the
/// core's (`IgmpSettings::validate`); here only the type and sign.
fn set_secs(w: &mut Walker, v: &Value, path: &str, slot: &mut f64) -> bool {
    let secs = match v.kind {
        Kind::Number(super::document::Number::Int(i)) => Some(i as f64),
        Kind::Number(super::document::Number::Float(f)) => Some(f),
        _ => None,
    };
    match secs {
        Some(s) if s.is_finite() && s > 0.0 => {
            *slot = s;
            true
        }
        _ => {
            w.error(
                pos(v),
                path,
                format!(
                    "expected a positive number of seconds such as 125 or 0.5, found {}",
                    v.describe()
                ),
            );
            false
        }
    }
}
