//! Register state: the first-hop DR's per-(S,G) machine and the RP's
//! decision on a received Register, as pure transitions over explicit
//! times (RFC 7761 §4.4.1, §4.4.2), plus building and checking the
//! encapsulated packet (§4.4.1, §4.9.3).
//!
//! Owns: [`DrRegister`] (NoInfo / Join / Join-Pending / Prune and the
//! Register-Stop Timer deadline), [`encapsulate`] and [`null_register`]
//! (what goes to the RP), [`parse_inner`] (the RP's check of the inner
//! header) and [`rp_decide`] (§4.4.2's "packet arrives on RP tunnel" as a
//! function of the (S,G) facts the caller supplies). The instance keeps the
//! timers, the Keepalive Timers and the facts (CouldRegister, SPTbit,
//! olists); nothing here reads a clock.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::pim::codec::{self, Message, Register, IPPROTO_PIM};
use crate::proto::Rng;
use crate::wire::checksum;

/// Register_Suppression_Time (§4.11): how long a Register-Stop silences
/// the DR, on average.
pub const REGISTER_SUPPRESSION_TIME: Duration = Duration::from_secs(60);
/// Register_Probe_Time (§4.11): how long before the suppression ends the
/// DR asks the RP with a null-Register whether it still wants silence.
pub const REGISTER_PROBE_TIME: Duration = Duration::from_secs(5);
/// Keepalive_Period (§4.11): (S,G) state lives this long after its last
/// data packet.
pub const KEEPALIVE_PERIOD: Duration = Duration::from_secs(210);
/// RP_Keepalive_Period (§4.11): at the RP after a Register-Stop, long
/// enough to see the DR's next probe (3 × suppression + probe).
pub const RP_KEEPALIVE_PERIOD: Duration = Duration::from_secs(3 * 60 + 5);

/// Outer IPv4 header plus the Register's 8-byte PIM header and flags: what
/// encapsulation adds to the data packet.
pub const REGISTER_OVERHEAD: usize = 20 + 8;

const IPV4_HEADER_LEN: usize = 20;

/// The DR's Register state for one (S,G) (§4.4.1). NoInfo is kept as a
/// state rather than the absence of an entry so the snapshot can show it
/// while the Keepalive Timer still runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterState {
    #[default]
    NoInfo,
    /// The register tunnel is up: data is encapsulated to the RP.
    Join,
    /// A null-Register probe is out; silence continues until the RP answers
    /// or the probe time runs out.
    JoinPending,
    /// Suppressed by a Register-Stop.
    Prune,
}

/// One (S,G)'s DR-side Register machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrRegister {
    state: RegisterState,
    /// The Register-Stop Timer, running in Join-Pending and Prune.
    stop_timer: Option<Instant>,
}

/// What a transition asks of the instance besides the new state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrAction {
    Nothing,
    /// Send a null-Register to the RP (the probe of §4.4.1).
    SendNullRegister,
}

impl DrRegister {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn state(&self) -> RegisterState {
        self.state
    }

    pub fn stop_timer(&self) -> Option<Instant> {
        self.stop_timer
    }

    /// Whether data packets of (S,G) go to the RP encapsulated.
    pub fn tunnel_up(&self) -> bool {
        self.state == RegisterState::Join
    }

    /// CouldRegister(S,G) = I_am_DR(RPF_interface(S)) AND KeepaliveTimer(S,G)
    /// running AND DirectlyConnected(S), evaluated by the caller. Becoming
    /// true leaves NoInfo for Join; becoming false returns to NoInfo from
    /// any state and stops the Register-Stop Timer.
    pub fn set_could_register(&mut self, could: bool) {
        match (self.state, could) {
            (RegisterState::NoInfo, true) => self.state = RegisterState::Join,
            (RegisterState::NoInfo, false) | (_, true) => {}
            (_, false) => {
                self.state = RegisterState::NoInfo;
                self.stop_timer = None;
            }
        }
    }

    /// A Register-Stop for (S,G) arrived. In Join or Join-Pending the DR
    /// goes quiet for a random time uniform in (0.5, 1.5) ×
    /// Register_Suppression_Time, minus Register_Probe_Time so the probe
    /// fits before the suppression ends. In NoInfo and Prune it changes
    /// nothing (§4.4.1's table has no such transition).
    pub fn register_stop(&mut self, now: Instant, rng: &mut Rng) {
        if matches!(self.state, RegisterState::Join | RegisterState::JoinPending) {
            self.state = RegisterState::Prune;
            let spread = rng.jitter(REGISTER_SUPPRESSION_TIME);
            let t = (REGISTER_SUPPRESSION_TIME / 2 + spread).saturating_sub(REGISTER_PROBE_TIME);
            self.stop_timer = Some(now + t);
        }
    }

    /// The Register-Stop Timer fired: from Prune, probe with a
    /// null-Register and wait Register_Probe_Time in Join-Pending; from
    /// Join-Pending, the RP did not answer the probe, so the tunnel comes
    /// back up.
    pub fn stop_timer_expired(&mut self, now: Instant) -> DrAction {
        match self.state {
            RegisterState::Prune => {
                self.state = RegisterState::JoinPending;
                self.stop_timer = Some(now + REGISTER_PROBE_TIME);
                DrAction::SendNullRegister
            }
            RegisterState::JoinPending => {
                self.state = RegisterState::Join;
                self.stop_timer = None;
                DrAction::Nothing
            }
            RegisterState::NoInfo | RegisterState::Join => {
                self.stop_timer = None;
                DrAction::Nothing
            }
        }
    }

    /// RP(G) changed: a new RP has not told us to stop, so registering
    /// starts over toward it (Join, timer stopped), from any state but
    /// NoInfo.
    pub fn rp_changed(&mut self) {
        if self.state != RegisterState::NoInfo {
            self.state = RegisterState::Join;
            self.stop_timer = None;
        }
    }
}

/// Why a data packet was not encapsulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncapError {
    /// Not a well-formed IPv4 packet to a multicast group.
    Malformed,
    /// TTL 0 or 1: forwarding it natively would have dropped it, so
    /// registering it would stretch its scope across the RP.
    TtlExpired,
    /// With the Register's overhead it exceeds `max_len` and the source
    /// forbade fragmentation: the shell owes the source an ICMP
    /// Fragmentation Needed carrying `mtu`, the largest packet that fits.
    TooBig { mtu: usize },
}

/// The IPv4 header fields the Register path reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InnerHeader {
    pub source: Ipv4Addr,
    pub group: Ipv4Addr,
    pub ttl: u8,
    pub dont_fragment: bool,
    /// Total length from the header.
    pub total_len: usize,
}

/// Why the RP refused the packet inside a Register (§4.4.2 forwards only
/// what is a multicast data packet from S to G).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InnerError {
    /// Shorter than its header says, or not IPv4.
    Truncated,
    BadVersion,
    BadChecksum,
    /// Destination not multicast, or source not unicast.
    BadAddress,
}

/// Check the inner IPv4 header of a Register. A data Register must carry
/// exactly the packet its header describes; a null-Register carries only
/// a header, whose checksum FRR leaves at zero, so zero is accepted there.
pub fn parse_inner(packet: &[u8], null: bool) -> Result<InnerHeader, InnerError> {
    let first = *packet.first().ok_or(InnerError::Truncated)?;
    if first >> 4 != 4 {
        return Err(InnerError::BadVersion);
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < IPV4_HEADER_LEN {
        return Err(InnerError::Truncated);
    }
    let header = packet.get(..ihl).ok_or(InnerError::Truncated)?;
    let total_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let stored_sum = u16::from_be_bytes([header[10], header[11]]);
    if !(null && stored_sum == 0) && checksum(header) != 0 {
        return Err(InnerError::BadChecksum);
    }
    if !null && (total_len != packet.len() || total_len < ihl) {
        return Err(InnerError::Truncated);
    }
    let source = Ipv4Addr::new(header[12], header[13], header[14], header[15]);
    let group = Ipv4Addr::new(header[16], header[17], header[18], header[19]);
    let unicast = !(source.is_multicast()
        || source.is_unspecified()
        || source.is_broadcast()
        || u32::from(source) >= 0xf000_0000);
    if !group.is_multicast() || !unicast {
        return Err(InnerError::BadAddress);
    }
    Ok(InnerHeader {
        source,
        group,
        ttl: header[8],
        dont_fragment: header[6] & 0x40 != 0,
        total_len,
    })
}

/// The PIM payload of a Register carrying `packet` (§4.4.1), for a
/// Register of at most `max_len` bytes on the wire (outer header
/// included). The inner packet goes as the source sent it, TTL included,
/// as the Linux register vif and FRR send it: the RP's forwarding after
/// decapsulation is the hop that decrements it. A packet too big for
/// `max_len` is still encapsulated when it may be fragmented (the outer
/// packet is then fragmented on the way and reassembled at the RP); the
/// instance cuts such packets before encapsulation instead
/// (`instance::register::mtu`), so that its Registers never need it.
pub fn encapsulate(packet: &[u8], max_len: usize, border: bool) -> Result<Vec<u8>, EncapError> {
    let h = parse_inner(packet, false).map_err(|_| EncapError::Malformed)?;
    if h.ttl <= 1 {
        return Err(EncapError::TtlExpired);
    }
    if packet.len() + REGISTER_OVERHEAD > max_len && h.dont_fragment {
        return Err(EncapError::TooBig {
            mtu: max_len.saturating_sub(REGISTER_OVERHEAD),
        });
    }
    Ok(codec::encode(&Message::Register(Register {
        border,
        null: false,
        packet: packet.to_vec(),
    })))
}

/// The PIM payload of a null-Register probe for (S,G): the N bit and a
/// dummy IPv4 header from S to G with no data (§4.4.1, §4.9.3). The dummy
/// header is laid out as FRR's (TTL 0, protocol PIM), with its checksum
/// filled in so a receiver that checks it accepts it.
pub fn null_register(source: Ipv4Addr, group: Ipv4Addr, border: bool) -> Vec<u8> {
    let mut h = [0u8; IPV4_HEADER_LEN];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&(IPV4_HEADER_LEN as u16).to_be_bytes());
    h[9] = IPPROTO_PIM;
    h[12..16].copy_from_slice(&source.octets());
    h[16..20].copy_from_slice(&group.octets());
    let sum = checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    codec::encode(&Message::Register(Register {
        border,
        null: true,
        packet: h.to_vec(),
    }))
}

/// What the RP knows about (S,G) when a Register for it arrives; the
/// caller evaluates each term from its tree state (§4.1.6, §4.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RpFacts {
    /// SPTbit(S,G): native data already arrives on the shortest-path tree.
    pub spt_bit: bool,
    /// SwitchToSptDesired(S,G) at the RP.
    pub switch_to_spt_desired: bool,
    /// inherited_olist(S,G) is empty: nobody downstream wants S.
    pub olist_empty: bool,
}

/// What the RP does with one Register (§4.4.2, "packet_arrives_on_rp_tunnel",
/// for a Register sent to our RP address for a group we are RP of).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RpDecision {
    /// Send Register-Stop(S,G) to the Register's sender.
    pub register_stop: bool,
    /// Forward the inner packet down inherited_olist(S,G,rpt).
    pub forward: bool,
    /// Restart KeepaliveTimer(S,G) with this period.
    pub keepalive: Option<Duration>,
    /// The Register came from a border router other than the one that
    /// registers (S,G) (PMBR): refused, with a Register-Stop.
    pub foreign_border: bool,
}

/// §4.4.2 for a Register from `outer_src` with the B and N bits given.
/// `pmbr` is the (S,G)'s recorded border router, set by the first
/// Register with the B bit.
pub fn rp_decide(
    facts: RpFacts,
    border: bool,
    null: bool,
    outer_src: Ipv4Addr,
    pmbr: &mut Option<Ipv4Addr>,
) -> RpDecision {
    let mut d = RpDecision::default();
    if border {
        match *pmbr {
            None => *pmbr = Some(outer_src),
            Some(p) if p != outer_src => {
                d.register_stop = true;
                d.foreign_border = true;
                return d;
            }
            Some(_) => {}
        }
    }
    if facts.spt_bit || (facts.switch_to_spt_desired && facts.olist_empty) {
        d.register_stop = true;
    }
    if facts.spt_bit || facts.switch_to_spt_desired {
        d.keepalive = Some(if d.register_stop {
            RP_KEEPALIVE_PERIOD
        } else {
            KEEPALIVE_PERIOD
        });
    }
    d.forward = !facts.spt_bit && !null;
    d
}

#[cfg(test)]
#[path = "register_tests.rs"]
mod tests;
