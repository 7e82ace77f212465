//! The entry points of reading: `parse` for text, `parse_file` for a file.
//!
//! Owns: the size limit and the UTF-8 check applied before any parsing, and
//! the error list an operator gets: every problem from the reader and the
//! schema walk, once each, in file order, cut short past
//! `MAX_REPORTED_ERRORS`. A `Config` comes out only when there is none.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use super::{document, schema, Config, ConfigError, ConfigErrors, MAX_CONFIG_BYTES};

/// Most problems listed for one file. Past this the file is likely not a
/// configuration at all, and the list would only bury the first lines,
/// which are the ones to fix.
pub(crate) const MAX_REPORTED_ERRORS: usize = 100;

/// Read a configuration from text: a whole valid `Config`, or every
/// problem found, sorted by position. Text larger than `MAX_CONFIG_BYTES`
/// is refused unread, as `parse_file` refuses such a file.
pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(ConfigErrors(vec![ConfigError {
            line: 0,
            column: 0,
            path: String::new(),
            message: format!(
                "the configuration is {} bytes, larger than {MAX_CONFIG_BYTES} bytes; is this really a configuration file?",
                text.len()
            ),
        }]));
    }
    let doc = document::parse_document(text).map_err(|e| ConfigErrors(vec![e]))?;
    let (config, mut errors) = schema::walk(&doc.value, doc.duplicates);
    // The walk checks interface names even in rules it cannot build, and
    // `Rule::validate` checks them again in rules it can: report once.
    let mut seen = HashSet::new();
    errors.retain(|e| seen.insert((e.path.clone(), e.message.clone())));
    errors.sort_by_key(|e| (e.line, e.column));
    if errors.len() > MAX_REPORTED_ERRORS {
        let hidden = errors.len() - MAX_REPORTED_ERRORS;
        errors.truncate(MAX_REPORTED_ERRORS);
        errors.push(ConfigError {
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("and {hidden} more problems not shown; fix the ones above first"),
        });
    }
    match config {
        Some(c) if errors.is_empty() => Ok(c),
        _ if !errors.is_empty() => Err(ConfigErrors(errors)),
        _ => Err(ConfigErrors(vec![ConfigError {
            line: 0,
            column: 0,
            path: String::new(),
            message:
                "internal error: the configuration could not be built, but no problem was named"
                    .into(),
        }])),
    }
}

/// Read a configuration file. Files larger than `MAX_CONFIG_BYTES` are
/// refused before parsing so that a wrong path (a log, a device) cannot
/// make the daemon read without end.
pub fn parse_file(path: &Path) -> Result<Config, ConfigErrors> {
    let single = |message: String| {
        ConfigErrors(vec![ConfigError {
            line: 0,
            column: 0,
            path: String::new(),
            message,
        }])
    };
    let io_error = |e: std::io::Error| single(format!("cannot read {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_CONFIG_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    file.take(limit).read_to_end(&mut bytes).map_err(io_error)?;
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(single(format!(
            "{} is larger than {MAX_CONFIG_BYTES} bytes; is this really a configuration file?",
            path.display()
        )));
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            let before = String::from_utf8_lossy(bytes.get(..valid).unwrap_or(&[]));
            let line = 1 + before.matches('\n').count();
            let column = 1 + before.rsplit('\n').next().map_or(0, |l| l.chars().count());
            return Err(ConfigErrors(vec![ConfigError {
                line,
                column,
                path: String::new(),
                message: format!(
                    "{} is not valid UTF-8 text (save it as UTF-8)",
                    path.display()
                ),
            }]));
        }
    };
    parse(&text)
}
