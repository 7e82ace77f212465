//! Tests of the config layer as a whole: syntax errors (`syntax`), the
//! schema walk and its errors (`schema`), files and the shipped examples
//! (`files`), the writer's round trip (`writer`) and robustness against
//! arbitrary and hostile input (`robustness`).

mod files;
mod protocols;
mod robustness;
mod syntax;
mod walk;
mod writer;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::logging::{Facility, LogFormat, Severity};
use crate::rule::{default_rule_id, OutputMode, RuleInput, RuleOutput};

fn ok(text: &str) -> Config {
    match parse(text) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}\n--- text:\n{text}"),
    }
}

fn errs(text: &str) -> Vec<ConfigError> {
    match parse(text) {
        Ok(c) => panic!("expected errors, got {c:?}\n--- text:\n{text}"),
        Err(e) => e.0,
    }
}

/// The only error for `text`.
fn one(text: &str) -> ConfigError {
    let mut e = errs(text);
    assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
    e.remove(0)
}

/// Exactly one error, at `line`/`column`, with `path`, containing `needle`.
fn assert_one(text: &str, line: usize, column: usize, path: &str, needle: &str) {
    let e = one(text);
    assert_eq!(
        (e.line, e.column, e.path.as_str()),
        (line, column, path),
        "{e}"
    );
    assert!(e.message.contains(needle), "{e:?} lacks {needle:?}");
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap_or(Ipv4Addr::UNSPECIFIED)
}

fn input(ifc: &str, group: &str, port: u16) -> RuleInput {
    RuleInput {
        interface: ifc.into(),
        group: ip(group),
        port,
        source: None,
    }
}

fn out(ifc: &str, group: &str, port: u16) -> RuleOutput {
    RuleOutput {
        interface: ifc.into(),
        group: ip(group),
        port,
        ttl: None,
        mode: OutputMode::Republish,
        members_only: false,
    }
}

/// The smallest useful file: one rule, everything else defaulted.
const ONE_RULE: &str = "{
  rules: [
    {
      input: { interface: 'eth0', group: '239.1.1.1', port: 5000 },
      outputs: [ { interface: 'eth1', group: '239.2.2.2', port: 6000 } ],
    },
  ],
}";

/// A scratch file name of this test process.
fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mcr-config-test-{}-{tag}", std::process::id()))
}

/// `contents` in a scratch file named `tag`, handed to `read`, then
/// removed whatever `read` made of it.
fn with_file<T>(tag: &str, contents: impl AsRef<[u8]>, read: impl FnOnce(PathBuf) -> T) -> T {
    let path = temp_path(tag);
    let written = std::fs::write(&path, contents);
    assert!(written.is_ok(), "{}: {written:?}", path.display());
    let result = read(path.clone());
    let _ = std::fs::remove_file(&path);
    result
}

/// The errors of a read that must fail; `what` names the input if it
/// did not.
fn refused(parsed: Result<Config, ConfigErrors>, what: &str) -> Vec<ConfigError> {
    match parsed {
        Ok(c) => panic!("{what} read as {c:?}"),
        Err(e) => e.0,
    }
}

/// The writer's contract: what it writes reads back to the same config.
fn round_trip(c: &Config) {
    let text = c.to_json5();
    match parse(&text) {
        Ok(back) => {
            assert_eq!(&back, c, "round trip changed the config; text:\n{text}");
            assert_eq!(
                back.to_json5(),
                text,
                "emit -> read -> emit is not a fixed point"
            );
        }
        Err(e) => panic!("written config does not parse:\n{e}\n--- text:\n{text}"),
    }
}

/// Deterministic pseudo-random numbers (Knuth's MMIX LCG), so the
/// generated cases are the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}
