//! The `pim` configuration section, its RFC 7761 defaults, its validation,
//! and the static RP table.
//!
//! Owns: per-interface Hello parameters (§4.11 timer defaults: Hello_Period
//! 30 s, Triggered_Hello_Delay 5 s, Default_Hello_Holdtime 3.5 × period;
//! §4.3.3 Propagation_Delay 500 ms, t_override 2.5 s; §4.3.2 DR priority
//! 1), `join_prune_interval` (t_periodic, 60 s), the SPT switchover policy,
//! and the static group-to-RP mappings with longest-prefix match (§4.7:
//! "static configuration" of the RP set). The JSON5 schema walk that
//! builds a `PimConfig` from the file lives in `crate::config`.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub const DEFAULT_HELLO_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TRIGGERED_HELLO_DELAY: Duration = Duration::from_secs(5);
pub const DEFAULT_DR_PRIORITY: u32 = 1;
pub const DEFAULT_PROPAGATION_DELAY: Duration = Duration::from_millis(500);
pub const DEFAULT_OVERRIDE_INTERVAL: Duration = Duration::from_millis(2500);
pub const DEFAULT_JOIN_PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Longest Hello or Join/Prune period whose 3.5× holdtime still fits the
/// 16-bit holdtime field below its "infinite" value 0xffff.
pub const MAX_PERIOD_SECS: u64 = 18_724;
/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

/// Whether a last-hop router moves from the RP tree to the source tree
/// (§4.2.1 leaves the policy to the implementation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SptSwitchover {
    /// On the first data packet from a source (the usual default).
    #[default]
    Immediate,
    /// Stay on the RP tree.
    Never,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PimInterfaceConfig {
    pub name: String,
    pub dr_priority: u32,
    #[serde(with = "secs")]
    pub hello_interval: Duration,
    /// Holdtime announced in our Hellos; `None` means 3.5 × hello_interval.
    #[serde(with = "opt_secs")]
    pub hello_holdtime: Option<Duration>,
    /// Upper bound of the random delay before the first Hello and before a
    /// Hello triggered by a new or restarted neighbor.
    #[serde(with = "millis")]
    pub triggered_hello_delay: Duration,
    #[serde(with = "millis")]
    pub propagation_delay: Duration,
    #[serde(with = "millis")]
    pub override_interval: Duration,
}

impl Default for PimInterfaceConfig {
    fn default() -> Self {
        PimInterfaceConfig {
            name: String::new(),
            dr_priority: DEFAULT_DR_PRIORITY,
            hello_interval: DEFAULT_HELLO_INTERVAL,
            hello_holdtime: None,
            triggered_hello_delay: DEFAULT_TRIGGERED_HELLO_DELAY,
            propagation_delay: DEFAULT_PROPAGATION_DELAY,
            override_interval: DEFAULT_OVERRIDE_INTERVAL,
        }
    }
}

impl PimInterfaceConfig {
    pub fn named(name: &str) -> Self {
        PimInterfaceConfig {
            name: name.to_string(),
            ..Self::default()
        }
    }

    /// The Holdtime option value of our Hellos, in seconds (§4.11:
    /// Default_Hello_Holdtime = 3.5 × Hello_Period).
    pub fn holdtime_secs(&self) -> u16 {
        let d = self
            .hello_holdtime
            .unwrap_or_else(|| self.hello_interval.mul_f64(3.5));
        // Rounded up so a fractional 3.5× never announces less than that.
        let s = d.as_millis().div_ceil(1000);
        s.min(u128::from(crate::pim::codec::HOLDTIME_INFINITE - 1)) as u16
    }
}

/// A group range whose RP is configured statically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticRp {
    pub group: GroupPrefix,
    pub rp: Ipv4Addr,
}

/// An IPv4 prefix inside 224.0.0.0/4, written `239.0.0.0/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupPrefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl GroupPrefix {
    fn mask(len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len.min(32)))
        }
    }

    pub fn contains(&self, a: Ipv4Addr) -> bool {
        let m = Self::mask(self.len);
        u32::from(a) & m == u32::from(self.addr) & m
    }
}

impl std::fmt::Display for GroupPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl std::str::FromStr for GroupPrefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a prefix like 239.0.0.0/8"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("{a:?} is not an IPv4 address"))?;
        let len: u8 = l
            .parse()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| format!("{l:?} is not a prefix length 0-32"))?;
        Ok(GroupPrefix { addr, len })
    }
}

impl Serialize for GroupPrefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GroupPrefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PimConfig {
    pub enabled: bool,
    /// Identifies this router in later BSR/RP roles; interfaces always
    /// send from their own primary address.
    pub router_id: Option<Ipv4Addr>,
    pub interfaces: Vec<PimInterfaceConfig>,
    pub static_rp: Vec<StaticRp>,
    pub spt_switchover: SptSwitchover,
    /// t_periodic of §4.11: how often Join/Prunes are refreshed.
    #[serde(with = "secs")]
    pub join_prune_interval: Duration,
}

impl Default for PimConfig {
    fn default() -> Self {
        PimConfig {
            enabled: false,
            router_id: None,
            interfaces: Vec::new(),
            static_rp: Vec::new(),
            spt_switchover: SptSwitchover::Immediate,
            join_prune_interval: DEFAULT_JOIN_PRUNE_INTERVAL,
        }
    }
}

fn is_unicast(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_multicast() || a.is_broadcast() || u32::from(a) >= 0xf000_0000)
}

impl PimConfig {
    /// Every problem found, as `path: message` lines; empty when valid.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if let Some(id) = self.router_id {
            if !is_unicast(id) {
                errs.push(format!("pim.router_id: {id} is not a unicast address"));
            }
        }
        let period = |d: Duration| d >= Duration::from_secs(1) && d.as_secs() <= MAX_PERIOD_SECS;
        if !period(self.join_prune_interval) {
            errs.push(format!(
                "pim.join_prune_interval: must be 1 to {MAX_PERIOD_SECS} seconds"
            ));
        }
        for (i, ifc) in self.interfaces.iter().enumerate() {
            let at = format!("pim.interfaces[{i}]");
            if ifc.name.is_empty() || ifc.name.len() > MAX_IFNAME || ifc.name.contains('/') {
                errs.push(format!(
                    "{at}.name: {:?} is not an interface name",
                    ifc.name
                ));
            }
            if self.interfaces[..i].iter().any(|o| o.name == ifc.name) {
                errs.push(format!("{at}.name: {:?} is listed twice", ifc.name));
            }
            if !period(ifc.hello_interval) {
                errs.push(format!(
                    "{at}.hello_interval: must be 1 to {MAX_PERIOD_SECS} seconds"
                ));
            }
            if let Some(h) = ifc.hello_holdtime {
                // Shorter than the period would drop us between two Hellos.
                if h < ifc.hello_interval || h.as_secs() >= u64::from(u16::MAX) {
                    errs.push(format!(
                        "{at}.hello_holdtime: must be at least hello_interval and below 65535 s"
                    ));
                }
            }
            if ifc.triggered_hello_delay > ifc.hello_interval {
                errs.push(format!(
                    "{at}.triggered_hello_delay: must not exceed hello_interval"
                ));
            }
            if ifc.propagation_delay.as_millis() > 0x7fff {
                errs.push(format!("{at}.propagation_delay: at most 32767 ms"));
            }
            if ifc.override_interval.as_millis() > 0xffff {
                errs.push(format!("{at}.override_interval: at most 65535 ms"));
            }
        }
        for (i, m) in self.static_rp.iter().enumerate() {
            let at = format!("pim.static_rp[{i}]");
            let base = GroupPrefix {
                addr: Ipv4Addr::new(224, 0, 0, 0),
                len: 4,
            };
            if m.group.len < 4 || !base.contains(m.group.addr) {
                errs.push(format!("{at}.group: {} is not inside 224.0.0.0/4", m.group));
            } else if u32::from(m.group.addr) & !GroupPrefix::mask(m.group.len) != 0 {
                errs.push(format!(
                    "{at}.group: {} has bits set past its length",
                    m.group
                ));
            }
            if !is_unicast(m.rp) {
                errs.push(format!("{at}.rp: {} is not a unicast address", m.rp));
            }
            // Two RPs for the same range would need the §4.7.2 hash; a
            // static table has no reason for it, so refuse the ambiguity.
            if self.static_rp[..i].iter().any(|o| o.group == m.group) {
                errs.push(format!("{at}.group: {} is mapped twice", m.group));
            }
        }
        errs
    }

    pub fn interface(&self, name: &str) -> Option<&PimInterfaceConfig> {
        self.interfaces.iter().find(|i| i.name == name)
    }

    /// The RP of `group`: the mapping with the longest matching prefix.
    pub fn rp_for(&self, group: Ipv4Addr) -> Option<&StaticRp> {
        self.static_rp
            .iter()
            .filter(|m| m.group.contains(group))
            .max_by_key(|m| m.group.len)
    }
}

/// Durations as whole seconds in the file (`hello_interval: 30`).
mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs(u64::deserialize(d)?))
    }
}

mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
    }
}

/// Sub-second knobs (propagation delay, override interval) in milliseconds,
/// the unit the Hello option carries.
mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().min(u128::from(u64::MAX)) as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(group: &str, rp: &str) -> StaticRp {
        StaticRp {
            group: group.parse().unwrap(),
            rp: rp.parse().unwrap(),
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_are_the_rfc_values() {
        let c: PimConfig = serde_json::from_str(r#"{"interfaces":[{"name":"eth0"}]}"#).unwrap();
        assert!(!c.enabled);
        assert_eq!(c.join_prune_interval, Duration::from_secs(60));
        assert_eq!(c.spt_switchover, SptSwitchover::Immediate);
        let i = &c.interfaces[0];
        assert_eq!(i.dr_priority, 1);
        assert_eq!(i.hello_interval, Duration::from_secs(30));
        assert_eq!(i.holdtime_secs(), 105);
        assert_eq!(i.triggered_hello_delay, Duration::from_secs(5));
        assert_eq!(i.propagation_delay, Duration::from_millis(500));
        assert_eq!(i.override_interval, Duration::from_millis(2500));
        assert!(c.validate().is_empty());
    }

    #[test]
    fn spec_example_parses_and_holdtime_follows_the_interval() {
        let c: PimConfig = serde_json::from_str(
            r#"{ "enabled": true, "router_id": "10.0.0.1",
                 "interfaces": [{ "name": "eth0", "dr_priority": 100, "hello_interval": 5 }],
                 "static_rp": [{ "group": "239.0.0.0/8", "rp": "10.0.0.1" }],
                 "spt_switchover": "never", "join_prune_interval": 60 }"#,
        )
        .unwrap();
        assert_eq!(c.interfaces[0].holdtime_secs(), 18);
        assert_eq!(c.spt_switchover, SptSwitchover::Never);
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let back: PimConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert!(serde_json::from_str::<PimConfig>(r#"{"hello":1}"#).is_err());
    }

    #[test]
    fn longest_prefix_wins_among_several_mappings() {
        let c = PimConfig {
            static_rp: vec![
                rp("224.0.0.0/4", "10.0.0.1"),
                rp("239.0.0.0/8", "10.0.0.2"),
                rp("239.1.0.0/16", "10.0.0.3"),
                rp("239.1.1.1/32", "10.0.0.4"),
            ],
            ..PimConfig::default()
        };
        assert!(c.validate().is_empty());
        let rp_of = |g: &str| c.rp_for(ip(g)).map(|m| m.rp);
        assert_eq!(rp_of("239.1.1.1"), Some(ip("10.0.0.4")));
        assert_eq!(rp_of("239.1.1.2"), Some(ip("10.0.0.3")));
        assert_eq!(rp_of("239.2.0.1"), Some(ip("10.0.0.2")));
        assert_eq!(rp_of("238.1.1.1"), Some(ip("10.0.0.1")));
        // Order in the file does not matter.
        let mut rev = c.clone();
        rev.static_rp.reverse();
        assert_eq!(
            rev.rp_for(ip("239.1.1.2")).map(|m| m.rp),
            Some(ip("10.0.0.3"))
        );
        let narrow = PimConfig {
            static_rp: vec![rp("239.0.0.0/8", "10.0.0.2")],
            ..PimConfig::default()
        };
        assert_eq!(narrow.rp_for(ip("238.1.1.1")), None);
    }

    #[test]
    fn validation_names_each_bad_field() {
        let mut bad_if = PimInterfaceConfig::named("eth0");
        bad_if.hello_interval = Duration::ZERO;
        let mut long_hold = PimInterfaceConfig::named("eth1");
        long_hold.hello_holdtime = Some(Duration::from_secs(70_000));
        let c = PimConfig {
            enabled: true,
            router_id: Some(ip("239.0.0.1")),
            interfaces: vec![
                bad_if,
                long_hold,
                PimInterfaceConfig::named("eth1"),
                PimInterfaceConfig::named("this-name-is-too-long"),
            ],
            static_rp: vec![
                rp("10.0.0.0/8", "10.0.0.1"),
                rp("239.1.0.0/8", "10.0.0.1"),
                rp("239.0.0.0/8", "224.0.0.1"),
                rp("239.0.0.0/8", "10.0.0.2"),
            ],
            spt_switchover: SptSwitchover::Immediate,
            join_prune_interval: Duration::from_secs(20_000),
        };
        let errs = c.validate();
        for want in [
            "pim.router_id",
            "pim.join_prune_interval",
            "pim.interfaces[0].hello_interval",
            "pim.interfaces[0].triggered_hello_delay",
            "pim.interfaces[1].hello_holdtime",
            "pim.interfaces[2].name: \"eth1\" is listed twice",
            "pim.interfaces[3].name",
            "pim.static_rp[0].group: 10.0.0.0/8 is not inside",
            "pim.static_rp[1].group: 239.1.0.0/8 has bits set",
            "pim.static_rp[2].rp",
            "pim.static_rp[3].group: 239.0.0.0/8 is mapped twice",
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(want)),
                "{want} not in {errs:#?}"
            );
        }
        assert_eq!(errs.len(), 11, "{errs:#?}");
        assert!("239.0.0.0/33".parse::<GroupPrefix>().is_err());
        assert!("239.0.0.0".parse::<GroupPrefix>().is_err());
    }
}
