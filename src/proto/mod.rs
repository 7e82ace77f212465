//! The shape every routing protocol of MCR takes (IGMP, PIM-SM, MSDP): a
//! sans-I/O core that never reads the clock, never touches a socket and
//! never spawns (DESIGN.md, "Sans-I/O protocol cores").
//!
//! Owns: the [`Protocol`] trait the actor shells and the simulator drive,
//! the [`Transmit`] a core asks its shell to send, a seeded [`Rng`] for
//! jitter and generation ids, [`Timers`], the deadline set each core
//! keeps so that `poll_timeout` is one lookup, and [`sim`], the
//! virtual-clock simulator that runs many cores on simulated LANs in tests.
//!
//! A protocol lives in `src/<name>/` with the same files for the same jobs:
//!
//! | file | job |
//! |---|---|
//! | `mod.rs` | module doc (RFC sections implemented), re-exports |
//! | `codec.rs` | wire format: `decode(&[u8]) -> Result<Msg, DecodeError>`, `encode(&Msg) -> Vec<u8>`; never panics |
//! | `config.rs` | the protocol's configuration and its validation |
//! | `state.rs` | the state machines, as pure transitions over explicit times |
//! | `instance.rs` | the sans-I/O instance implementing [`Protocol`] |
//!
//! Inputs go in through `handle_*`; after each input the caller drains
//! `poll_transmit`, `poll_event` and reads `poll_timeout` again.

pub mod sim;
pub mod timers;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

pub use timers::Timers;

/// A packet a protocol core wants sent. The shell owns the socket; the
/// core says which interface, to whom, and how the IP header must look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Output interface.
    pub ifindex: u32,
    /// Source address to use, if the core cares (PIM and IGMP send from the
    /// interface's primary address; `None` lets the kernel choose).
    pub src: Option<Ipv4Addr>,
    pub dst: Ipv4Addr,
    /// IP TTL (1 for link-local protocol traffic).
    pub ttl: u8,
    /// Put the IP Router Alert option (RFC 2113) in the header: IGMP
    /// requires it (RFC 2236 §2, RFC 3376 §4).
    pub router_alert: bool,
    /// The protocol message (the IP payload), already encoded with its checksum.
    pub payload: Vec<u8>,
}

/// What every protocol core exposes to its shell and to the simulator.
///
/// `Config` is applied as a whole; the core diffs it against what it runs.
/// `Input` carries events from other parts of the daemon (memberships for
/// PIM, interface changes); `Output` carries events the core raises
/// (membership changes, routes to install, neighbor changes).
pub trait Protocol {
    type Config;
    type Input;
    type Output;

    /// A packet received on `ifindex` from `src` to `dst` (the IP payload).
    /// Malformed input is counted and dropped, never a panic.
    fn handle_packet(
        &mut self,
        now: Instant,
        ifindex: u32,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: &[u8],
    );

    /// Time has reached `now`: fire every timer that is due.
    fn handle_timeout(&mut self, now: Instant);

    /// A new configuration (hot reload); the core keeps the state the
    /// change does not touch.
    fn handle_config(&mut self, now: Instant, config: Self::Config);

    /// An event from elsewhere in the daemon.
    fn handle_event(&mut self, now: Instant, event: Self::Input);

    fn poll_transmit(&mut self) -> Option<Transmit>;

    fn poll_event(&mut self) -> Option<Self::Output>;

    /// The next instant at which `handle_timeout` must be called.
    fn poll_timeout(&self) -> Option<Instant>;
}

/// Randomness for a protocol core: query response jitter, generation ids.
/// The caller seeds it (from the OS at run time, a constant in tests) so a
/// simulation replays exactly.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // A zero state would stay zero forever.
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// A seed from the OS clock and process id, for production shells.
    pub fn from_entropy() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Rng::new(t ^ ((std::process::id() as u64) << 32))
    }

    /// splitmix64: small, fast, and good enough for jitter.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A uniformly chosen duration in `[0, max]`.
    pub fn jitter(&mut self, max: Duration) -> Duration {
        let nanos = max.as_nanos().min(u64::MAX as u128) as u64;
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next_u64() % (nanos + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_jitter_stays_in_range() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let max = Duration::from_millis(250);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            let j = a.jitter(max);
            assert_eq!(j, b.jitter(max));
            assert!(j <= max);
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
        assert_eq!(Rng::new(3).jitter(Duration::ZERO), Duration::ZERO);
    }
}
