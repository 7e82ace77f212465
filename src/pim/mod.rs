//! PIM-SM (RFC 7761) as a sans-I/O core, first layers.
//!
//! Owns the PIM wire format ([`codec`]), the `pim` configuration and the
//! static RP table ([`config`]), the neighbor, DR and downstream
//! Join/Prune state ([`state`]) and the [`PimInstance`] that runs it all
//! per interface ([`instance`]). Implemented so far: §4.9 (all message
//! formats, checksums), §4.3.1 (Hello timing, neighbor liveness,
//! generation ids), §4.3.2 (DR election), §4.3.3 (LAN prune delay
//! values), §4.5.1/§4.5.2 (downstream (*,G) and (S,G) Join/Prune
//! machines), §4.7's static RP mappings (longest-prefix match), §4.4
//! (Register and Register-Stop at the DR and the RP) and §4.6 (Assert),
//! the last two asking the tree facts they need of a `TreeView`. The
//! (S,G,rpt) and upstream Join/Prune machines come in later layers;
//! `user_docs/PROTOCOLS.md` (PIM-SM) lists every requirement and where it
//! stands.

pub mod codec;
pub mod config;
pub mod instance;
pub mod state;

pub use config::{PimConfig, PimInterfaceConfig, SptSwitchover, StaticRp};
pub use instance::{PimEvent, PimInput, PimInstance};
