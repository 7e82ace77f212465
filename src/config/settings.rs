//! The daemon's own settings sections of a config file: `pinning`,
//! `logging` (its file keys are `super::logfile`'s), `control` and
//! `workers`. Owns their keys, types and ranges; the walk that calls them
//! and its helpers are `super::schema`'s. No RFC.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::document::{self, join_index, join_key, Kind, Value};
use super::schema::{key_pos, pos, Walker};
use super::{
    ControlConfig, EarlyDrop, LoggingConfig, RxPath, WorkersConfig, RX_BLOCK_MS_RANGE,
    RX_RING_MB_RANGE,
};
use crate::logging::{Facility, LogFormat, Severity};
use crate::rule;

const LOGGING_KEYS: &[&str] = &["level", "facilities", "format", "file", "rotation", "keep"];
const CONTROL_KEYS: &[&str] = &["socket", "group"];
const WORKERS_KEYS: &[&str] = &[
    "idle_timeout",
    "heartbeat_timeout",
    "restart_backoff_max",
    "user",
    "rx_path",
    "rx_ring_mb",
    "rx_block_ms",
    "early_drop",
];

/// Highest CPU core number accepted in `pinning` (the kernel's default
/// NR_CPUS range).
pub(crate) const MAX_CPU_CORE: i64 = 1023;
/// Longest `workers.idle_timeout` (one day).
pub(crate) const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(86_400);
/// Bounds of `workers.heartbeat_timeout`.
pub(crate) const MIN_HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(100);
pub(crate) const MAX_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3_600);
/// Bounds of `workers.restart_backoff_max`.
pub(crate) const MIN_BACKOFF_MAX: Duration = Duration::from_millis(100);
pub(crate) const MAX_BACKOFF_MAX: Duration = Duration::from_secs(3_600);
/// `sun_path` holds 108 bytes including the terminating NUL.
pub(crate) const MAX_SOCKET_PATH_BYTES: usize = 107;

impl Walker {
    pub(super) fn pinning(&mut self, v: &Value, path: &str) -> Option<BTreeMap<String, Vec<u32>>> {
        let members = self.object(v, path, "a map from interface to CPU cores")?;
        let mut map = BTreeMap::new();
        for m in members {
            let p = join_key(path, &m.key);
            if let Err(msg) = rule::validate_interface_name(&m.key) {
                self.error(key_pos(m), &p, msg);
            }
            let Kind::Array(items) = &m.value.kind else {
                self.error(
                    pos(&m.value),
                    &p,
                    format!(
                        "expected a list of CPU core numbers such as [0, 1], found {}",
                        m.value.describe()
                    ),
                );
                continue;
            };
            if items.is_empty() {
                self.error(
                    pos(&m.value),
                    &p,
                    "the list of CPU cores is empty; name at least one core or remove the entry",
                );
                continue;
            }
            let mut cores = Vec::with_capacity(items.len());
            let mut seen: HashMap<i64, usize> = HashMap::new();
            for (i, item) in items.iter().enumerate() {
                let ip = join_index(&p, i);
                let Some(core) = self.integer(item, &ip, "CPU core", 0, MAX_CPU_CORE) else {
                    continue;
                };
                if let Some(first) = seen.insert(core, item.line) {
                    self.error(
                        pos(item),
                        &ip,
                        format!("CPU core {core} is listed twice (first on line {first}); each core runs one worker"),
                    );
                } else if let Ok(c) = u32::try_from(core) {
                    cores.push(c);
                }
            }
            map.insert(m.key.clone(), cores);
        }
        Some(map)
    }

    fn severity(&mut self, v: &Value, path: &str) -> Option<Severity> {
        let s = self.string(v, path, "a log level")?;
        match Severity::from_str(&s) {
            Ok(sev) => Some(sev),
            Err(msg) => {
                self.error(pos(v), path, msg);
                None
            }
        }
    }

    pub(super) fn logging(&mut self, v: &Value, path: &str) -> Option<LoggingConfig> {
        let members = self.object(v, path, "the logging section")?;
        let mut cfg = LoggingConfig::default();
        let mut file_keys = Vec::new();
        for m in members {
            let p = join_key(path, &m.key);
            match m.key.as_str() {
                "level" => {
                    if let Some(s) = self.severity(&m.value, &p) {
                        cfg.levels.global = s;
                    }
                }
                "facilities" => {
                    let Some(entries) =
                        self.object(&m.value, &p, "a map from facility to log level")
                    else {
                        continue;
                    };
                    // Facility names are case-insensitive, so `ingress` and
                    // `Ingress` are the same key that the reader cannot see.
                    let mut first_line: HashMap<Facility, usize> = HashMap::new();
                    for f in entries {
                        let fp = join_key(&p, &f.key);
                        let facility = match Facility::from_str(&f.key) {
                            Ok(fac) => Some(fac),
                            Err(msg) => {
                                self.error(key_pos(f), &fp, msg);
                                None
                            }
                        };
                        let sev = self.severity(&f.value, &fp);
                        let (Some(facility), Some(sev)) = (facility, sev) else {
                            continue;
                        };
                        if let Some(line) = first_line.insert(facility, f.line) {
                            self.error(
                                key_pos(f),
                                &fp,
                                format!("facility {facility} is already set on line {line}"),
                            );
                        } else {
                            cfg.levels.facilities.insert(facility, sev);
                        }
                    }
                }
                "format" => match &m.value.kind {
                    Kind::String(s) if s == "text" => cfg.format = LogFormat::Text,
                    Kind::String(s) if s == "json" => cfg.format = LogFormat::Json,
                    _ => self.error(
                        pos(&m.value),
                        &p,
                        format!(
                            "expected \"text\" or \"json\", found {}",
                            m.value.describe()
                        ),
                    ),
                },
                "file" | "rotation" | "keep" => file_keys.push(m),
                _ => self.unknown(m, &p, LOGGING_KEYS),
            }
        }
        cfg.file = self.log_file(path, &file_keys);
        Some(cfg)
    }

    pub(super) fn control(&mut self, v: &Value, path: &str) -> Option<ControlConfig> {
        let members = self.object(v, path, "the control section")?;
        let mut cfg = ControlConfig::default();
        for m in members {
            let p = join_key(path, &m.key);
            match m.key.as_str() {
                "socket" => {
                    let Some(s) = self.string(&m.value, &p, "the control socket path") else {
                        continue;
                    };
                    let problem = if !s.starts_with('/') {
                        Some(format!(
                            "the control socket path {} is not absolute; write the full path, e.g. \"/run/mcr/control.sock\"",
                            document::quote_snippet(&s)
                        ))
                    } else if s.contains('\0') {
                        Some("the control socket path contains a NUL character".to_string())
                    } else if s.len() > MAX_SOCKET_PATH_BYTES {
                        Some(format!(
                            "the control socket path is {} bytes long; a Unix socket path may have at most {MAX_SOCKET_PATH_BYTES}",
                            s.len()
                        ))
                    } else {
                        None
                    };
                    match problem {
                        Some(msg) => self.error(pos(&m.value), &p, msg),
                        None => cfg.socket = Some(PathBuf::from(s)),
                    }
                }
                "group" => {
                    cfg.group = self.nonempty_string(&m.value, &p, "the control group name");
                }
                _ => self.unknown(m, &p, CONTROL_KEYS),
            }
        }
        Some(cfg)
    }

    pub(super) fn workers(&mut self, v: &Value, path: &str) -> Option<WorkersConfig> {
        let members = self.object(v, path, "the workers section")?;
        let mut cfg = WorkersConfig::default();
        for m in members {
            let p = join_key(path, &m.key);
            match m.key.as_str() {
                "idle_timeout" => {
                    if let Some(d) = self.seconds(
                        &m.value,
                        &p,
                        Duration::from_nanos(1),
                        MAX_IDLE_TIMEOUT,
                        "idle_timeout must be more than 0 and at most 86400 seconds (one day)",
                    ) {
                        cfg.idle_timeout = d;
                    }
                }
                "heartbeat_timeout" => {
                    if let Some(d) = self.seconds(
                        &m.value,
                        &p,
                        MIN_HEARTBEAT_TIMEOUT,
                        MAX_HEARTBEAT_TIMEOUT,
                        "heartbeat_timeout must be between 0.1 and 3600 seconds",
                    ) {
                        cfg.heartbeat_timeout = d;
                    }
                }
                "restart_backoff_max" => {
                    if let Some(d) = self.seconds(
                        &m.value,
                        &p,
                        MIN_BACKOFF_MAX,
                        MAX_BACKOFF_MAX,
                        "restart_backoff_max must be between 0.1 and 3600 seconds",
                    ) {
                        cfg.restart_backoff_max = d;
                    }
                }
                "user" => {
                    if let Some(u) = self.nonempty_string(&m.value, &p, "a user name") {
                        cfg.user = u;
                    }
                }
                "rx_path" => match &m.value.kind {
                    Kind::String(s) if s == "ring" => cfg.rx.path = RxPath::Ring,
                    Kind::String(s) if s == "recv" => cfg.rx.path = RxPath::Recv,
                    _ => self.error(
                        pos(&m.value),
                        &p,
                        format!(
                            "expected \"ring\" (a mapped receive ring, the default) or \"recv\" (one receive per frame), found {}",
                            m.value.describe()
                        ),
                    ),
                },
                "rx_ring_mb" => {
                    let (lo, hi) = RX_RING_MB_RANGE;
                    let n = self.integer(&m.value, &p, "a ring size in MiB", lo.into(), hi.into());
                    if let Some(n) = n.and_then(|n| u32::try_from(n).ok()) {
                        cfg.rx.ring_mb = n;
                    }
                }
                "rx_block_ms" => {
                    let (lo, hi) = RX_BLOCK_MS_RANGE;
                    let what = "a block timeout in milliseconds";
                    let n = self.integer(&m.value, &p, what, lo.into(), hi.into());
                    if let Some(n) = n.and_then(|n| u32::try_from(n).ok()) {
                        cfg.rx.block_ms = n;
                    }
                }
                "early_drop" => match &m.value.kind {
                    Kind::String(s) if s == "off" => cfg.rx.early_drop = EarlyDrop::Off,
                    Kind::String(s) if s == "xdp" => cfg.rx.early_drop = EarlyDrop::Xdp,
                    _ => self.error(
                        pos(&m.value),
                        &p,
                        format!(
                            "expected \"xdp\" (drop in XDP while the worker is behind, the default) or \"off\", found {}",
                            m.value.describe()
                        ),
                    ),
                },
                _ => self.unknown(m, &p, WORKERS_KEYS),
            }
        }
        Some(cfg)
    }
}
