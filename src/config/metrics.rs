//! The `metrics` section: where the Prometheus endpoint listens.
//!
//! Owns: the `MetricsConfig` model and the walk of its keys, with the line
//! and key of every problem. The endpoint itself (HTTP, exposition format)
//! lives in the daemon; this module only decides what a file may say.

use std::net::SocketAddr;
use std::str::FromStr;

use super::document::{self, join_key, Kind, Value};
use super::ConfigError;

/// Keys of `metrics`.
pub(super) const METRICS_KEYS: &[&str] = &["listen"];

/// `metrics: { listen: "127.0.0.1:9464" }`. No section: no endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Address and port of the HTTP listener serving `/metrics`.
    pub listen: Option<SocketAddr>,
}

fn error(errors: &mut Vec<ConfigError>, v: &Value, path: &str, message: String) {
    errors.push(ConfigError {
        line: v.line,
        column: v.column,
        path: path.to_string(),
        message,
    });
}

/// Walk `metrics` at `path`: the section, or `None` with every problem
/// added to `errors`.
pub(super) fn walk(v: &Value, path: &str, errors: &mut Vec<ConfigError>) -> Option<MetricsConfig> {
    let Kind::Object(members) = &v.kind else {
        error(
            errors,
            v,
            path,
            format!(
                "expected the metrics settings (an object `{{ ... }}`), found {}",
                v.describe()
            ),
        );
        return None;
    };
    let before = errors.len();
    let mut out = MetricsConfig::default();
    for m in members {
        let p = join_key(path, &m.key);
        match m.key.as_str() {
            "listen" => out.listen = listen(&m.value, &p, errors),
            _ => errors.push(ConfigError {
                line: m.line,
                column: m.column,
                path: p,
                message: format!(
                    "unknown key `{}`; expected one of: {}",
                    document::snippet(&m.key),
                    METRICS_KEYS.join(", ")
                ),
            }),
        }
    }
    if out.listen.is_none() && errors.len() == before {
        error(errors, v, path, "missing required key `listen`".into());
    }
    (errors.len() == before).then_some(out)
}

fn listen(v: &Value, path: &str, errors: &mut Vec<ConfigError>) -> Option<SocketAddr> {
    let Kind::String(s) = &v.kind else {
        error(
            errors,
            v,
            path,
            format!(
                "expected an address and port in quotes, e.g. \"127.0.0.1:9464\", found {}",
                v.describe()
            ),
        );
        return None;
    };
    match SocketAddr::from_str(s) {
        // An ephemeral port could not be scraped: nobody would know it.
        Ok(a) if a.port() == 0 => {
            error(errors, v, path, "the metrics port must not be 0".into());
            None
        }
        Ok(a) => Some(a),
        Err(_) => {
            error(
                errors,
                v,
                path,
                format!(
                    "{} is not an address and port, e.g. \"127.0.0.1:9464\" or \"[::1]:9464\"",
                    document::quote_snippet(s)
                ),
            );
            None
        }
    }
}

/// The section as the writer lays it out, or nothing when it is absent.
pub(super) fn emit(m: &MetricsConfig) -> Option<String> {
    m.listen
        .map(|a| format!("  metrics: {{\n    listen: \"{a}\",\n  }},\n"))
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn errors(text: &str) -> Vec<ConfigError> {
        match parse(text) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn a_listen_address_is_read_and_written_back() {
        for addr in ["127.0.0.1:9464", "0.0.0.0:1", "[::1]:9464"] {
            let c = parse(&format!(
                "{{ rules: [], metrics: {{ listen: \"{addr}\" }} }}"
            ))
            .unwrap_or_else(|e| panic!("{addr}: {e}"));
            assert_eq!(c.metrics.listen, SocketAddr::from_str(addr).ok());
            assert_eq!(parse(&c.to_json5()).as_ref(), Ok(&c), "{}", c.to_json5());
        }
        let none = parse("{ rules: [] }").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(none.metrics, MetricsConfig::default());
        assert!(!none.to_json5().contains("metrics"));
    }

    #[test]
    fn bad_sections_name_the_key_and_line() {
        let cases: &[(&str, usize, usize, &str, &str)] = &[
            (
                "metrics: { listen: \"localhost:9464\" }",
                2,
                22,
                "metrics.listen",
                "is not an address and port",
            ),
            (
                "metrics: { listen: \"127.0.0.1\" }",
                2,
                22,
                "metrics.listen",
                "is not an address and port",
            ),
            (
                "metrics: { listen: \"127.0.0.1:0\" }",
                2,
                22,
                "metrics.listen",
                "must not be 0",
            ),
            (
                "metrics: { listen: 9464 }",
                2,
                22,
                "metrics.listen",
                "expected an address and port",
            ),
            (
                "metrics: { lisen: \"127.0.0.1:9464\" }",
                2,
                14,
                "metrics.lisen",
                "unknown key `lisen`; expected one of: listen",
            ),
            (
                "metrics: {}",
                2,
                12,
                "metrics",
                "missing required key `listen`",
            ),
            (
                "metrics: true",
                2,
                12,
                "metrics",
                "expected the metrics settings",
            ),
        ];
        for &(section, line, column, path, words) in cases {
            let e = errors(&format!("{{ rules: [],\n  {section},\n}}"));
            assert_eq!(e.len(), 1, "{section}: {e:?}");
            let e = &e[0];
            assert_eq!(
                (e.line, e.column, e.path.as_str()),
                (line, column, path),
                "{section}: {e}"
            );
            assert!(e.message.contains(words), "{section}: {e}");
        }
    }
}
