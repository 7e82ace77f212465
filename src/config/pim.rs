//! The `pim` section of the config file: its schema walk into the PIM
//! core's `PimConfig`.
//!
//! Owns: the keys a user writes (`enabled`, `router_id`, `interfaces[]`
//! with `name`, `dr_priority`, `hello_interval`, `static_rp[]` with
//! `group` and `rp`, `spt_switchover`, `join_prune_interval`) and placing
//! the problems that `PimConfig::validate` finds (RFC 7761 §4.11 timer
//! ranges, §4.7 static RP set) at their line. Timers not listed keep the
//! RFC defaults of `crate::pim::config`.

use std::time::Duration;

use super::document::{join_index, join_key, Kind, Value};
use super::schema::{pos, Walker};
use crate::pim::config::{
    GroupPrefix, PimConfig, PimInterfaceConfig, SptSwitchover, StaticRp,
    DEFAULT_TRIGGERED_HELLO_DELAY, MAX_PERIOD_SECS,
};

const PIM_KEYS: &[&str] = &[
    "enabled",
    "router_id",
    "interfaces",
    "static_rp",
    "spt_switchover",
    "join_prune_interval",
];
const INTERFACE_KEYS: &[&str] = &["name", "dr_priority", "hello_interval"];
const RP_KEYS: &[&str] = &["group", "rp"];

/// The widest range the walk accepts for a period; `validate` then says
/// the real one (1 s to `MAX_PERIOD_SECS`) in the core's words.
const MAX_WALK_PERIOD: Duration = Duration::from_secs(MAX_PERIOD_SECS * 10);

impl Walker {
    pub(super) fn pim(&mut self, v: &Value, path: &str) -> Option<PimConfig> {
        let members = self.object(v, path, "the pim section")?;
        let mut cfg = PimConfig::default();
        let mut ok = true;
        for m in members {
            let p = join_key(path, &m.key);
            self.mark(&p, &m.value);
            match m.key.as_str() {
                "enabled" => match self.boolean(&m.value, &p) {
                    Some(b) => cfg.enabled = b,
                    None => ok = false,
                },
                "router_id" => match self.ipv4(&m.value, &p) {
                    Some(a) => cfg.router_id = Some(a),
                    None => ok = false,
                },
                "interfaces" => {
                    match self.list(&m.value, &p, "PIM interfaces", Self::pim_interface) {
                        Some(l) => cfg.interfaces = l,
                        None => ok = false,
                    }
                }
                "static_rp" => match self.list(&m.value, &p, "static RPs", Self::static_rp) {
                    Some(l) => cfg.static_rp = l,
                    None => ok = false,
                },
                "spt_switchover" => match &m.value.kind {
                    Kind::String(s) if s == "immediate" => {
                        cfg.spt_switchover = SptSwitchover::Immediate
                    }
                    Kind::String(s) if s == "never" => cfg.spt_switchover = SptSwitchover::Never,
                    _ => {
                        self.error(
                            pos(&m.value),
                            &p,
                            format!(
                                "expected \"immediate\" or \"never\", found {}",
                                m.value.describe()
                            ),
                        );
                        ok = false;
                    }
                },
                "join_prune_interval" => match self.period(&m.value, &p) {
                    Some(d) => cfg.join_prune_interval = d,
                    None => ok = false,
                },
                _ => self.unknown(m, &p, PIM_KEYS),
            }
        }
        if !ok {
            return None;
        }
        let problems = cfg.validate();
        for line in &problems {
            // The core words each problem `pim.path: message`.
            match line.split_once(": ") {
                Some((at, msg)) => self.field_error(at, msg.to_string()),
                None => self.field_error(path, line.clone()),
            }
        }
        problems.is_empty().then_some(cfg)
    }

    pub(super) fn boolean(&mut self, v: &Value, path: &str) -> Option<bool> {
        match v.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                self.error(
                    pos(v),
                    path,
                    format!("expected true or false, found {}", v.describe()),
                );
                None
            }
        }
    }

    fn period(&mut self, v: &Value, path: &str) -> Option<Duration> {
        self.seconds(
            v,
            path,
            Duration::from_nanos(1),
            MAX_WALK_PERIOD,
            "expected a number of seconds between 1 and 18724",
        )
    }

    /// Every item of an array through `item`; `None` if any failed.
    fn list<T>(
        &mut self,
        v: &Value,
        path: &str,
        what: &str,
        item: fn(&mut Self, &Value, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let Kind::Array(items) = &v.kind else {
            self.error(
                pos(v),
                path,
                format!(
                    "expected a list of {what} (an array `[ ... ]`), found {}",
                    v.describe()
                ),
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, x) in items.iter().enumerate() {
            let p = join_index(path, i);
            self.mark(&p, x);
            match item(self, x, &p) {
                Some(t) => out.push(t),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn pim_interface(&mut self, v: &Value, path: &str) -> Option<PimInterfaceConfig> {
        let members = self.object(v, path, "a PIM interface")?;
        let mut cfg = PimInterfaceConfig::default();
        let mut ok = true;
        for m in members {
            let p = join_key(path, &m.key);
            self.mark(&p, &m.value);
            match m.key.as_str() {
                "name" => match self.interface(&m.value, &p) {
                    Some(n) => cfg.name = n,
                    None => ok = false,
                },
                "dr_priority" => {
                    match self.integer(&m.value, &p, "DR priority", 0, i64::from(u32::MAX)) {
                        Some(n) => cfg.dr_priority = n as u32,
                        None => ok = false,
                    }
                }
                "hello_interval" => match self.period(&m.value, &p) {
                    Some(d) => cfg.hello_interval = d,
                    None => ok = false,
                },
                _ => self.unknown(m, &p, INTERFACE_KEYS),
            }
        }
        self.require(v, path, members, &["name"]);
        // The first Hello waits a random delay up to this (§4.11); it may
        // not exceed a short period, which has no key of its own.
        cfg.triggered_hello_delay = DEFAULT_TRIGGERED_HELLO_DELAY.min(cfg.hello_interval);
        (ok && !cfg.name.is_empty()).then_some(cfg)
    }

    fn static_rp(&mut self, v: &Value, path: &str) -> Option<StaticRp> {
        let members = self.object(v, path, "a static RP mapping")?;
        let (mut group, mut rp) = (None, None);
        let mut ok = true;
        for m in members {
            let p = join_key(path, &m.key);
            self.mark(&p, &m.value);
            match m.key.as_str() {
                "group" => {
                    let s = self.string(&m.value, &p, "a group range such as \"239.0.0.0/8\"");
                    group = s.and_then(|s| match s.parse::<GroupPrefix>() {
                        Ok(g) => Some(g),
                        Err(e) => {
                            self.error(pos(&m.value), &p, e);
                            None
                        }
                    });
                    ok &= group.is_some();
                }
                "rp" => {
                    rp = self.ipv4(&m.value, &p);
                    ok &= rp.is_some();
                }
                _ => self.unknown(m, &p, RP_KEYS),
            }
        }
        self.require(v, path, members, RP_KEYS);
        let (true, Some(group), Some(rp)) = (ok, group, rp) else {
            return None;
        };
        Some(StaticRp { group, rp })
    }
}
