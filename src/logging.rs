//! Log facilities and severities: the names operators use in config files
//! and `mcrctl log-level`, and how they map onto `tracing`.
//!
//! Every facility is a `tracing` target of the same name, so
//! `tracing::info!(target: "Ingress", ...)` is the Ingress facility. The
//! nine syslog-style severities collapse onto tracing's five levels;
//! `log-level get` reports the severity the operator set.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tracing_subscriber::filter::{LevelFilter, Targets};

/// A log facility: one `tracing` target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Facility {
    Supervisor,
    RuleDispatch,
    ControlSocket,
    DataPlane,
    Ingress,
    Egress,
    BufferPool,
    PacketParser,
    Stats,
    Security,
    Network,
    Protocol,
}

impl Facility {
    pub const ALL: [Facility; 12] = [
        Facility::Supervisor,
        Facility::RuleDispatch,
        Facility::ControlSocket,
        Facility::DataPlane,
        Facility::Ingress,
        Facility::Egress,
        Facility::BufferPool,
        Facility::PacketParser,
        Facility::Stats,
        Facility::Security,
        Facility::Network,
        Facility::Protocol,
    ];

    /// The `tracing` target of this facility.
    pub fn target(self) -> &'static str {
        match self {
            Facility::Supervisor => "Supervisor",
            Facility::RuleDispatch => "RuleDispatch",
            Facility::ControlSocket => "ControlSocket",
            Facility::DataPlane => "DataPlane",
            Facility::Ingress => "Ingress",
            Facility::Egress => "Egress",
            Facility::BufferPool => "BufferPool",
            Facility::PacketParser => "PacketParser",
            Facility::Stats => "Stats",
            Facility::Security => "Security",
            Facility::Network => "Network",
            Facility::Protocol => "Protocol",
        }
    }
}

impl fmt::Display for Facility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.target())
    }
}

impl FromStr for Facility {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Facility::ALL
            .iter()
            .copied()
            .find(|f| f.target().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<&str> = Facility::ALL.iter().map(|f| f.target()).collect();
                format!(
                    "unknown facility {s:?}; facilities are {}",
                    names.join(", ")
                )
            })
    }
}

/// Syslog-style severity (RFC 5424 names) plus `trace`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Emergency,
    Alert,
    Critical,
    Error,
    Warning,
    Notice,
    Info,
    Debug,
    Trace,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Emergency => "emergency",
            Severity::Alert => "alert",
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
            Severity::Info => "info",
            Severity::Debug => "debug",
            Severity::Trace => "trace",
        }
    }

    /// The `tracing` level that shows this severity and everything more
    /// severe.
    pub fn level_filter(self) -> LevelFilter {
        match self {
            Severity::Emergency | Severity::Alert | Severity::Critical | Severity::Error => {
                LevelFilter::ERROR
            }
            Severity::Warning => LevelFilter::WARN,
            Severity::Notice | Severity::Info => LevelFilter::INFO,
            Severity::Debug => LevelFilter::DEBUG,
            Severity::Trace => LevelFilter::TRACE,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "emergency" | "emerg" => Severity::Emergency,
            "alert" => Severity::Alert,
            "critical" | "crit" => Severity::Critical,
            "error" | "err" => Severity::Error,
            "warning" | "warn" => Severity::Warning,
            "notice" => Severity::Notice,
            "info" | "informational" => Severity::Info,
            "debug" => Severity::Debug,
            "trace" => Severity::Trace,
            _ => {
                return Err(format!(
                    "unknown level {s:?}; levels are emergency, alert, critical, error, warning, notice, info, debug, trace"
                ))
            }
        })
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// How often the log file starts anew.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rotation {
    Hourly,
    #[default]
    Daily,
    Never,
}

impl Rotation {
    pub fn as_str(self) -> &'static str {
        match self {
            Rotation::Hourly => "hourly",
            Rotation::Daily => "daily",
            Rotation::Never => "never",
        }
    }
}

impl FromStr for Rotation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "hourly" => Ok(Rotation::Hourly),
            "daily" => Ok(Rotation::Daily),
            "never" => Ok(Rotation::Never),
            _ => Err(format!("{s:?} is not hourly, daily or never")),
        }
    }
}

/// The optional log file beside stderr/journald: `logging.file` in the
/// config, or `mcrd supervisor --log-file`, which wins over it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFile {
    pub path: std::path::PathBuf,
    pub rotation: Rotation,
    /// Files kept, the current one included (0: all).
    pub keep: usize,
}

impl LogFile {
    /// Files kept when nothing says otherwise: a week of daily files.
    pub const DEFAULT_KEEP: usize = 7;
}

/// The levels in force: a global one and per-facility overrides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLevels {
    pub global: Severity,
    #[serde(default)]
    pub facilities: BTreeMap<Facility, Severity>,
}

impl Default for LogLevels {
    fn default() -> Self {
        LogLevels {
            global: Severity::Info,
            facilities: BTreeMap::new(),
        }
    }
}

impl LogLevels {
    /// The `tracing` filter for these levels. Targets that are not
    /// facilities (library crates) follow the global level, capped at info
    /// so that `trace` on a facility does not drown the log in runtime
    /// internals.
    pub fn targets(&self) -> Targets {
        let mut t = Targets::new().with_default(self.global.level_filter().min(LevelFilter::INFO));
        for f in Facility::ALL {
            let sev = self.facilities.get(&f).copied().unwrap_or(self.global);
            t = t.with_target(f.target(), sev.level_filter());
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn names_round_trip() {
        for f in Facility::ALL {
            assert_eq!(f.target().parse::<Facility>().unwrap(), f);
        }
        assert_eq!("ingress".parse::<Facility>().unwrap(), Facility::Ingress);
        assert!("Nope"
            .parse::<Facility>()
            .unwrap_err()
            .contains("Supervisor"));
        assert_eq!("WARN".parse::<Severity>().unwrap(), Severity::Warning);
        assert_eq!("trace".parse::<Severity>().unwrap(), Severity::Trace);
        assert!("loud".parse::<Severity>().is_err());
    }

    #[test]
    fn facility_override_beats_global() {
        let mut l = LogLevels {
            global: Severity::Warning,
            ..Default::default()
        };
        l.facilities.insert(Facility::Ingress, Severity::Debug);
        let t = l.targets();
        assert!(t.would_enable("Ingress", &Level::DEBUG));
        assert!(!t.would_enable("Egress", &Level::INFO));
        assert!(t.would_enable("Egress", &Level::WARN));
    }
}
