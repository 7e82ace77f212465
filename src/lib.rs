//! MCR: a multicast relay and router for Linux.
//!
//! This package holds everything that is not async: packet formats
//! (`wire`), the rule model (`rule`), configuration (`config`), the
//! multicast RIB (`rib`), the control protocol (`control`), the supervisor
//! ⇄ worker protocol (`ipc`), the worker's data plane (`dataplane`), the
//! supervisor's sockets and interface facts (`sys`) and the traffic
//! generator (`gen`). The daemon's actor tree lives in package
//! `mcrd` (directory `actors/`); this package depends on neither tokio nor
//! ractor.

pub mod config;
pub mod control;
pub mod dataplane;
pub mod gen;
pub mod hash;
pub mod iface;
pub mod igmp;
pub mod ipc;
pub mod logging;
pub mod pim;
pub mod proto;
pub mod rib;
pub mod rule;
pub mod supervise;
pub mod sys;
pub mod wire;
pub mod worker_policy;

/// An `MCR_*` tuning override from the environment, if it is set and
/// parses (surrounding blanks ignored); callers fall back to their default.
pub fn env_override<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.trim().parse().ok()
}
