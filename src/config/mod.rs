//! The JSON5 configuration file: schema, parsing with line numbers,
//! validation, and writing it back.
//!
//! Owns: the `Config` model, reading text into a tree of values with their
//! positions (`document`: the `json5` crate parses through serde, after the
//! non-recursive pre-scan in `scan` has capped nesting and noted where every
//! value starts; `syntax` words the parser's errors), the schema walk that
//! turns the tree into a `Config` and names the key and line of every
//! problem (`schema`), the entry points `parse` / `parse_file` with their
//! size limits and the error list (`read`), and the writer used by `config
//! show` / `config save` (`emit`, entered through `Config::to_json5`).
//! The log file keys of `logging` have their own walker (`logfile`), as do
//! the protocol sections (`igmp`, `pim`), which also have a
//! pure `diff` that tells hot reload what changed in them.
//! Nothing from a file that fails validation is applied: `parse` returns
//! either a whole valid `Config` or every error it found.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::logging::{LogFile, LogFormat, LogLevels};
use crate::rule::{Rule, RuleSet};

mod diff;
mod document;
mod emit;
mod igmp;
mod logfile;
mod metrics;
mod read;
mod scan;
mod schema;
mod settings;
mod syntax;
#[cfg(test)]
mod tests;
mod words;

pub use diff::{IgmpDiff, PimDiff, ProtocolDiff};
pub use igmp::{IgmpConfig, IgmpProxyConfig};
pub use metrics::MetricsConfig;
pub use read::{parse, parse_file};

use crate::pim::config::PimConfig;

/// Largest configuration `parse` and `parse_file` accept: room for about
/// 100,000 rules (10,000 rules take about 1.5 MB), while a wrong path
/// cannot cost unbounded memory. `mcrctl config load` / `config check`
/// send texts up to the same size (the control request limit is sized
/// for it), so a file the daemon starts with can also be loaded.
pub const MAX_CONFIG_BYTES: usize = 16 << 20;

/// The whole running configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    /// Static rules, in file order.
    pub rules: Vec<Rule>,
    /// Input interface -> the CPU cores of its workers (one worker per core).
    pub pinning: BTreeMap<String, Vec<u32>>,
    pub logging: LoggingConfig,
    pub control: ControlConfig,
    pub workers: WorkersConfig,
    /// The `igmp` section; `None` when the file has none (no querier, no
    /// proxy).
    pub igmp: Option<IgmpConfig>,
    /// The `pim` section; `None` when the file has none.
    pub pim: Option<PimConfig>,
    pub metrics: MetricsConfig,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoggingConfig {
    pub levels: LogLevels,
    pub format: LogFormat,
    /// `file`, `rotation`, `keep`; `None`: no log file.
    pub file: Option<LogFile>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ControlConfig {
    /// Control socket path; `None` = the command line's or the default.
    pub socket: Option<PathBuf>,
    /// Group allowed to run mutating commands (besides root).
    pub group: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WorkersConfig {
    /// A worker whose interface has no rules left exits after this long.
    pub idle_timeout: Duration,
    /// A worker silent for this long is restarted.
    pub heartbeat_timeout: Duration,
    /// The user workers drop to after receiving their sockets.
    pub user: String,
    /// Longest wait between restarts of a worker that keeps failing.
    pub restart_backoff_max: Duration,
    /// How workers receive from their input interface (`rx_path`,
    /// `rx_ring_mb`, `rx_block_ms`); read by each worker at its start.
    pub rx: RxConfig,
}

/// How a worker reads frames from its input socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RxPath {
    /// A mapped `TPACKET_V3` ring: fewest system calls at high rates, but
    /// a frame may wait up to `block_ms` for its block to be handed over.
    #[default]
    Ring,
    /// One receive per frame (io_uring multishot): lowest latency at low
    /// rates.
    Recv,
}

impl RxPath {
    pub fn as_str(self) -> &'static str {
        match self {
            RxPath::Ring => "ring",
            RxPath::Recv => "recv",
        }
    }
}

/// The receive path settings a worker is started with. The environment
/// variables `MCR_RX_PATH`, `MCR_RX_RING_MB` and `MCR_RX_BLOCK_MS` of the
/// daemon override them (for A/B benchmarks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RxConfig {
    pub path: RxPath,
    /// Size of the ring, MiB (`RX_RING_MB_RANGE`).
    pub ring_mb: u32,
    /// Longest time the kernel keeps a partly filled block, ms
    /// (`RX_BLOCK_MS_RANGE`).
    pub block_ms: u32,
    /// Drop relayed traffic in XDP while the worker is behind
    /// (`workers.early_drop`; `sys::xdp`).
    #[serde(default)]
    pub early_drop: EarlyDrop,
}

/// Whether the supervisor attaches the early-drop XDP program to input
/// interfaces (`workers.early_drop`; `MCR_EARLY_DROP` overrides it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EarlyDrop {
    /// No program: overload is dropped where the worker's ring is full.
    /// The default: run L (PERFORMANCE.md) measured no gain from the
    /// program yet — the worker that sets its flag is the one the
    /// overload starves, so the ring still overflowed first.
    #[default]
    Off,
    /// An XDP program drops multicast UDP before the kernel's receive
    /// path while the worker's ring is nearly full.
    Xdp,
}

impl EarlyDrop {
    pub fn as_str(self) -> &'static str {
        match self {
            EarlyDrop::Off => "off",
            EarlyDrop::Xdp => "xdp",
        }
    }

    /// `off` or `xdp` in any case, surrounding blanks ignored.
    pub fn parse(v: &str) -> Option<EarlyDrop> {
        let v = v.trim();
        if v.eq_ignore_ascii_case("off") {
            Some(EarlyDrop::Off)
        } else if v.eq_ignore_ascii_case("xdp") {
            Some(EarlyDrop::Xdp)
        } else {
            None
        }
    }
}

/// Bounds of `workers.rx_ring_mb`: the ring is locked memory of each
/// worker, so a typo must not ask for gigabytes.
pub const RX_RING_MB_RANGE: (u32, u32) = (1, 1024);
/// Bounds of `workers.rx_block_ms` (the kernel's block timeout).
pub const RX_BLOCK_MS_RANGE: (u32, u32) = (1, 1000);

impl Default for RxConfig {
    fn default() -> Self {
        RxConfig {
            path: RxPath::Ring,
            ring_mb: 16,
            block_ms: 1,
            early_drop: EarlyDrop::default(),
        }
    }
}

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig {
            idle_timeout: Duration::from_secs(300),
            heartbeat_timeout: Duration::from_secs(5),
            user: "nobody".into(),
            restart_backoff_max: Duration::from_secs(10),
            rx: RxConfig::default(),
        }
    }
}

impl Config {
    /// How many workers serve input interface `ifc`: one per pinned core,
    /// or one.
    pub fn workers_for(&self, ifc: &str) -> usize {
        self.pinning.get(ifc).map_or(1, |c| c.len().max(1))
    }

    /// The rules as a rule set. `parse` has already checked that they form
    /// one, so this cannot fail for a parsed config.
    pub fn rule_set(&self) -> Result<RuleSet, Vec<crate::rule::FieldError>> {
        RuleSet::from_rules(self.rules.iter().cloned())
    }
}

/// One problem in a config file, with where it is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConfigError {
    /// 1-based; 0 when the problem has no place in the text.
    pub line: usize,
    pub column: usize,
    /// Key path, e.g. `rules[0].outputs[1].group`; empty for syntax errors.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}, column {}: ", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// All the problems found in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
