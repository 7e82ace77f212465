//! The log file keys of the `logging` section: `file`, `rotation`, `keep`.
//!
//! Owns: their validation, with the line and key of every problem. Opening
//! and rotating the file is the daemon's job (`mcrd`'s log setup, through
//! tracing-appender); this module only decides what a file may say. The
//! keys apply at start: the subscriber that writes the file is installed
//! once, and a worker's stderr is routed through the supervisor only when
//! a file was open at the worker's start.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::document::{self, join_key, Kind, Member, Value};
use super::schema::{key_pos, pos, Walker};
use crate::logging::{LogFile, Rotation};

/// More files than anyone keeps; a typo such as `keep: 7000000` is caught.
const MAX_KEEP: i64 = 100_000;

impl Walker {
    /// The log file from the `file`, `rotation` and `keep` members of the
    /// logging section at `path` (already picked out by the caller):
    /// `None` when there is no `file` or something is wrong (reported).
    pub(super) fn log_file(&mut self, path: &str, members: &[&Member]) -> Option<LogFile> {
        let mut file = None;
        let mut rotation = Rotation::default();
        let mut keep = LogFile::DEFAULT_KEEP;
        let mut bad = false;
        let has_file = members.iter().any(|m| m.key == "file");
        for m in members {
            let p = join_key(path, &m.key);
            let v = &m.value;
            match m.key.as_str() {
                "file" => match self.log_path(v, &p) {
                    Some(f) => file = Some(f),
                    None => bad = true,
                },
                // Without a file these keys would silently do nothing.
                "rotation" | "keep" if !has_file => {
                    self.error(
                        key_pos(m),
                        &p,
                        format!(
                            "`{}` applies to the log file; set `file` too, e.g. file: \"/var/log/mcr/mcrd.log\"",
                            m.key
                        ),
                    );
                    bad = true;
                }
                "rotation" => match &v.kind {
                    Kind::String(s) => match Rotation::from_str(s) {
                        Ok(r) => rotation = r,
                        Err(_) => {
                            self.error(
                                pos(v),
                                &p,
                                format!(
                                    "expected \"hourly\", \"daily\" or \"never\", found {}",
                                    v.describe()
                                ),
                            );
                            bad = true;
                        }
                    },
                    _ => {
                        self.error(
                            pos(v),
                            &p,
                            format!(
                                "expected \"hourly\", \"daily\" or \"never\", found {}",
                                v.describe()
                            ),
                        );
                        bad = true;
                    }
                },
                "keep" => match self.integer(v, &p, "the number of log files kept", 0, MAX_KEEP) {
                    // In range, so it fits.
                    Some(k) => keep = usize::try_from(k).unwrap_or(LogFile::DEFAULT_KEEP),
                    None => bad = true,
                },
                _ => {}
            }
        }
        if bad {
            return None;
        }
        file.map(|path| LogFile {
            path,
            rotation,
            keep,
        })
    }

    fn log_path(&mut self, v: &Value, path: &str) -> Option<PathBuf> {
        let s = self.string(v, path, "the log file's absolute path")?;
        let problem = if !s.starts_with('/') {
            // Relative to what? mcrd's working directory is whatever
            // started it (/ under systemd), not the config file's.
            Some(format!(
                "the log file path {} is not absolute; write the full path, e.g. \"/var/log/mcr/mcrd.log\"",
                document::quote_snippet(&s)
            ))
        } else if s.contains('\0') {
            Some("the log file path contains a NUL character".to_string())
        } else if s.ends_with('/') || Path::new(&s).file_name().is_none() {
            Some(format!(
                "the log file path {} names a directory, not a file; e.g. \"/var/log/mcr/mcrd.log\"",
                document::quote_snippet(&s)
            ))
        } else {
            None
        };
        match problem {
            Some(m) => {
                self.error(pos(v), path, m);
                None
            }
            None => Some(PathBuf::from(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;
    use crate::config::ConfigError;

    fn errors(text: &str) -> Vec<ConfigError> {
        match parse(text) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn a_log_file_is_read_with_its_defaults_and_written_back() {
        let cases: &[(&str, Rotation, usize)] = &[
            (r#"file: "/var/log/mcr/mcrd.log""#, Rotation::Daily, 7),
            (
                r#"file: "/var/log/mcr/mcrd.log", rotation: "hourly", keep: 48"#,
                Rotation::Hourly,
                48,
            ),
            (
                r#"keep: 0, rotation: "never", file: "/var/log/mcr/mcrd.log""#,
                Rotation::Never,
                0,
            ),
        ];
        for &(keys, rotation, keep) in cases {
            let c = parse(&format!(
                "{{ rules: [], logging: {{ level: 'debug', {keys} }} }}"
            ))
            .unwrap_or_else(|e| panic!("{keys}: {e}"));
            let want = LogFile {
                path: PathBuf::from("/var/log/mcr/mcrd.log"),
                rotation,
                keep,
            };
            assert_eq!(c.logging.file.as_ref(), Some(&want), "{keys}");
            let text = c.to_json5();
            assert_eq!(parse(&text).as_ref(), Ok(&c), "{text}");
        }
        let none =
            parse("{ rules: [], logging: { level: 'debug' } }").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(none.logging.file, None);
        assert!(!none.to_json5().contains("file: "), "{}", none.to_json5());
    }

    #[test]
    fn bad_log_file_keys_name_the_key_and_line() {
        let cases: &[(&str, usize, &str, &str)] = &[
            (
                r#"file: "mcrd.log""#,
                20,
                "logging.file",
                "the log file path \"mcrd.log\" is not absolute",
            ),
            (
                r#"file: "/var/log/mcr/""#,
                20,
                "logging.file",
                "names a directory, not a file",
            ),
            (
                r#"file: "/var/log/..""#,
                20,
                "logging.file",
                "names a directory, not a file",
            ),
            (
                "file: 7",
                20,
                "logging.file",
                "expected the log file's absolute path (a string in quotes), found 7",
            ),
            (
                r#"file: "/l/m.log", rotation: "weekly""#,
                42,
                "logging.rotation",
                "expected \"hourly\", \"daily\" or \"never\", found the string \"weekly\"",
            ),
            (
                r#"file: "/l/m.log", rotation: 1"#,
                42,
                "logging.rotation",
                "expected \"hourly\", \"daily\" or \"never\", found 1",
            ),
            (
                r#"file: "/l/m.log", keep: -1"#,
                38,
                "logging.keep",
                "the number of log files kept -1 is out of range; it must be an integer in 0..=100000",
            ),
            (
                r#"file: "/l/m.log", keep: "7""#,
                38,
                "logging.keep",
                "expected the number of log files kept (an integer in 0..=100000)",
            ),
            (
                r#"rotation: "hourly""#,
                14,
                "logging.rotation",
                "`rotation` applies to the log file; set `file` too",
            ),
            (
                "keep: 3",
                14,
                "logging.keep",
                "`keep` applies to the log file; set `file` too",
            ),
            (
                r#"file: "/l/m.log", kep: 3"#,
                32,
                "logging.kep",
                "unknown key `kep` (did you mean `keep`?)",
            ),
        ];
        for &(keys, column, path, words) in cases {
            let e = errors(&format!("{{ rules: [],\n  logging: {{ {keys} }},\n}}"));
            assert_eq!(e.len(), 1, "{keys}: {e:?}");
            let e = &e[0];
            assert_eq!(
                (e.line, e.column, e.path.as_str()),
                (2, column, path),
                "{keys}: {e}"
            );
            assert!(e.message.contains(words), "{keys}: {e}");
        }
    }
}
