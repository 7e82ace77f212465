//! PIM-SM (RFC 7761) as a sans-I/O core.
//!
//! Owns the PIM wire format ([`codec`]), the `pim` configuration and the
//! static RP table ([`config`]), the neighbor, DR, downstream and upstream
//! Join/Prune state ([`state`]) and the [`PimInstance`] that runs it all
//! ([`instance`]). Implemented: §4.9 (all message formats, checksums),
//! §4.3.1 (Hello timing, neighbor liveness, generation ids), §4.3.2 (DR
//! election), §4.3.3 (LAN prune delay values), §4.5.1–§4.5.3 (downstream
//! (*,G), (S,G) and (S,G,rpt) machines), §4.5.4–§4.5.7 (upstream machines
//! with join suppression and prune override), §4.1.6 (olist macros with
//! local receivers), RPF through the shell, §4.2.1/§4.2.2 (last-hop switch
//! to the source tree, SPT bit), §4.8 (no (*,G) in 232/8), §4.7's static
//! RP mappings (longest-prefix match), §4.4 (Register and Register-Stop at
//! the DR and the RP) and §4.6 (Assert). `user_docs/PROTOCOLS.md` (PIM-SM)
//! lists every requirement and where it stands.

pub mod codec;
pub mod config;
pub mod instance;
pub mod state;

pub use config::{PimConfig, PimInterfaceConfig, SptSwitchover, StaticRp};
pub use instance::{PimEvent, PimInput, PimInstance};
