//! IGMP, versions 1 to 3, as a sans-I/O core (see `proto` for the
//! template): the router side of RFC 2236 and RFC 3376 on every configured
//! interface, and the host side that the IGMP proxy (RFC 4605) speaks
//! upstream.
//!
//! | file | owns | RFC sections |
//! |---|---|---|
//! | `codec.rs` | wire format v1/v2/v3, checksums | RFC 1112 app. I, RFC 2236 §2, RFC 3376 §4, §7.1 |
//! | `config.rs` | settings, validation, defaults, derived intervals | RFC 2236 §8, RFC 3376 §8 |
//! | `state.rs` | one interface: querier election, queries, group/source state and timers, compatibility modes | RFC 2236 §3, RFC 3376 §6, §7.3 |
//! | `instance.rs` | [`IgmpRouter`]: the [`crate::proto::Protocol`] over all interfaces, input validation, snapshot | RFC 3376 §4, §9.1 |
//! | `host.rs` | [`IgmpHost`]: membership reports as a host, with source lists, for the proxy's upstream | RFC 4605 §4.1, RFC 2236 §3, RFC 3376 §5, §7.2 |
//! | `proxy.rs` | [`ProxyMembership`]: downstream memberships merged into the upstream one | RFC 4605 §4.1, RFC 3376 §3.2 |
//!
//! The shells (IgmpActor per interface, the proxy's forwarding and
//! members-only outputs) live in package `mcrd`.

pub mod codec;
pub mod config;
pub mod host;
pub mod instance;
pub mod proxy;
pub mod state;

pub use config::{IgmpParams, IgmpSettings, InterfaceConfig, RouterConfig};
pub use host::{HostConfig, HostCounters, HostFilter, IgmpHost, SetMemberships};
pub use instance::{Dropped, IgmpRouter, Snapshot};
pub use proxy::ProxyMembership;
pub use state::{Counters, FilterMode, IgmpEvent};
