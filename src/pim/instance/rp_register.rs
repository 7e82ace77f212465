//! The RP's per-(S,G) record of the Registers it receives (RFC 7761
//! §4.4.2), behind `mcrctl pim register`, and the rate limit on the
//! Register-Stops it answers them with.
//!
//! Owns: one [`RpRegisterEntry`] per (S,G) and registering DR (what the
//! RP last decided, counts, when it last heard a Register), forgotten one
//! Keepalive_Period after the last Register, and the register views
//! ([`RegisterReport`]) of both the DR and the RP side. §4.4.2 has the RP
//! answer Registers with a Register-Stop without saying how often; a DR
//! that keeps encapsulating (a lost Register-Stop, a flood, a DR that
//! ignores us) would otherwise get one Register-Stop per data packet.
//! MCR sends at most one per (S,G) and DR per [`REGISTER_STOP_INTERVAL`]
//! and counts the rest.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::register::{ExtTimer, RegisterAssertCounters, RegisterSnapshot};
use super::{millis, PimInstance};
use crate::pim::state::downstream::TreeKey;
use crate::pim::state::register::KEEPALIVE_PERIOD;

/// The shortest time between two Register-Stops for one (S,G) to one DR.
/// A DR that obeys stops registering for about a minute after each one
/// and probes with null-Registers at least 5 s apart, so only a flood or
/// a lost Register-Stop is slowed down by this.
pub const REGISTER_STOP_INTERVAL: Duration = Duration::from_secs(1);

/// (S,G, DR) records the RP keeps at most; past it a new (S,G) is still
/// answered, just neither recorded nor rate-limited.
const MAX_RP_ENTRIES: usize = 4096;

/// What the RP did with the last Register of an (S,G) from one DR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RpRegisterState {
    /// The inner packets go down the shared tree (receivers, no SPT yet).
    Forwarding,
    /// Accepted, nothing to forward to (no receivers, or a null-Register),
    /// and no Register-Stop asked for yet.
    Accepted,
    /// Answered with a Register-Stop (native data on the SPT, or no
    /// receivers while the RP would switch to the SPT).
    Stopped,
    /// We are not RP(G) for this group: answered with a Register-Stop.
    NotRp,
    /// Another border router registers this (S,G): refused (§4.4.2 PMBR).
    ForeignBorder,
}

/// One (S,G) and the DR registering it, at the RP.
#[derive(Clone, Copy, Debug)]
pub(super) struct RpRegisterEntry {
    state: RpRegisterState,
    last_register: Instant,
    registers: u64,
    null_registers: u64,
    register_stops: u64,
    stops_suppressed: u64,
    last_stop: Option<Instant>,
}

/// One (S,G) and registering DR as the RP sees it (`mcrctl pim register`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpRegisterSnapshot {
    pub source: Ipv4Addr,
    pub group: Ipv4Addr,
    /// The Register's outer source: the first-hop DR (or border router).
    pub dr: Ipv4Addr,
    pub state: RpRegisterState,
    /// PMBR(S,G) when the Registers carry the Border bit.
    pub pmbr: Option<Ipv4Addr>,
    pub spt_bit: bool,
    pub registers_rx: u64,
    pub null_registers_rx: u64,
    pub register_stops_tx: u64,
    /// Register-Stops not sent because one went to this DR within
    /// [`REGISTER_STOP_INTERVAL`].
    pub register_stops_suppressed: u64,
    pub last_register_ms_ago: u64,
    pub keepalive_in_ms: Option<u64>,
}

/// Register state at both ends (`mcrctl pim register`): the (S,G) this
/// router registers as first-hop DR, and the Registers it receives as RP.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterReport {
    pub dr: Vec<RegisterSnapshot>,
    pub rp: Vec<RpRegisterSnapshot>,
    pub counters: RegisterAssertCounters,
}

/// What [`PimInstance::rp_note_register`] learned about one Register.
pub(super) struct RegisterSeen {
    pub(super) null: bool,
    pub(super) state: RpRegisterState,
    /// The RP's decision asks for a Register-Stop.
    pub(super) wants_stop: bool,
}

impl PimInstance {
    pub fn register_report(&self, now: Instant) -> RegisterReport {
        let left = |t: Instant| millis(t.saturating_duration_since(now));
        let rp = self
            .ra
            .rp
            .iter()
            .filter_map(|((key, dr), e)| {
                let source = key.source?;
                Some(RpRegisterSnapshot {
                    source,
                    group: key.group,
                    dr: *dr,
                    state: e.state,
                    pmbr: self.ra.pmbr.get(key).copied(),
                    spt_bit: self.fact_spt_bit(source, key.group),
                    registers_rx: e.registers,
                    null_registers_rx: e.null_registers,
                    register_stops_tx: e.register_stops,
                    register_stops_suppressed: e.stops_suppressed,
                    last_register_ms_ago: millis(now.saturating_duration_since(e.last_register)),
                    keepalive_in_ms: self.tib.kat.get(key).map(|t| left(*t)),
                })
            })
            .collect();
        RegisterReport {
            dr: self.registers(now),
            rp,
            counters: self.ra.counters,
        }
    }

    /// Record one Register of (S,G) from `dr` and say whether the
    /// Register-Stop it asks for may go now. The record is forgotten a
    /// Keepalive_Period after the last Register.
    pub(super) fn rp_note_register(
        &mut self,
        now: Instant,
        key: TreeKey,
        dr: Ipv4Addr,
        seen: RegisterSeen,
    ) -> bool {
        let id = (key, dr);
        if !self.ra.rp.contains_key(&id) && self.ra.rp.len() >= MAX_RP_ENTRIES {
            return seen.wants_stop;
        }
        let e = self.ra.rp.entry(id).or_insert(RpRegisterEntry {
            state: seen.state,
            last_register: now,
            registers: 0,
            null_registers: 0,
            register_stops: 0,
            stops_suppressed: 0,
            last_stop: None,
        });
        e.state = seen.state;
        e.last_register = now;
        if seen.null {
            e.null_registers += 1;
        } else {
            e.registers += 1;
        }
        let mut send = false;
        if seen.wants_stop {
            let recent = e
                .last_stop
                .is_some_and(|t| now.saturating_duration_since(t) < REGISTER_STOP_INTERVAL);
            if recent {
                e.stops_suppressed += 1;
                self.ra.counters.register_stop_suppressed += 1;
            } else {
                e.register_stops += 1;
                e.last_stop = Some(now);
                send = true;
            }
        }
        self.ra
            .timers
            .set(ExtTimer::RpRegister(key, dr), now + KEEPALIVE_PERIOD);
        send
    }

    /// No Register of (S,G) from `dr` for a Keepalive_Period.
    pub(super) fn rp_register_expired(&mut self, key: TreeKey, dr: Ipv4Addr) {
        self.ra.rp.remove(&(key, dr));
    }
}

/// An (S,G) key for the RP's record.
pub(super) type RpKey = (TreeKey, Ipv4Addr);

/// The RP's records, by (S,G) and DR.
pub(super) type RpRecords = BTreeMap<RpKey, RpRegisterEntry>;
