//! PIMv2 wire format for IPv4 (RFC 7761 §4.9).
//!
//! Owns: the common header and its checksum (§4.9, §4.9.3 for Register),
//! the encoded address formats (§4.9.1), and every message type a PIM-SM
//! router meets: Hello with its options (§4.9.2), Register and
//! null-Register (§4.9.3), Register-Stop (§4.9.4), Join/Prune (§4.9.5),
//! Assert (§4.9.6), Bootstrap (RFC 5059 §4.1) and C-RP-Advertisement
//! (RFC 5059 §4.2). Bootstrap is kept as its fixed header plus the raw
//! remainder: BSR itself is a later step, only counting is needed now.
//!
//! `decode` takes the IP payload and never panics on any input; `encode`
//! produces bytes with the checksum filled in, and `decode(encode(m)) == m`.

use std::fmt;
use std::net::Ipv4Addr;

/// ALL-PIM-ROUTERS (RFC 7761 §4.9): Hellos and Join/Prunes go here.
pub const ALL_PIM_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 13);
/// IP protocol number of PIM.
pub const IPPROTO_PIM: u8 = 103;
pub const PIM_VERSION: u8 = 2;

/// Address family numbers of the encoded addresses (IANA, RFC 7761 §4.9.1).
const AF_IPV4: u8 = 1;
/// The only encoding type defined for PIM encoded addresses.
const NATIVE_ENCODING: u8 = 0;

/// Hello option types (RFC 7761 §4.9.2).
pub const OPT_HOLDTIME: u16 = 1;
pub const OPT_LAN_PRUNE_DELAY: u16 = 2;
pub const OPT_DR_PRIORITY: u16 = 19;
pub const OPT_GENERATION_ID: u16 = 20;
pub const OPT_ADDRESS_LIST: u16 = 24;
/// IANA address family 2 in encoded addresses (RFC 7761 §4.9.1).
const AF_IPV6: u8 = 2;

/// Hello holdtime meaning "never time out this neighbor" (§4.9.2).
pub const HOLDTIME_INFINITE: u16 = 0xffff;

/// PIM message types (§4.9). Graft, Graft-Ack and State Refresh belong to
/// PIM-DM and are refused as unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgType {
    Hello = 0,
    Register = 1,
    RegisterStop = 2,
    JoinPrune = 3,
    Bootstrap = 4,
    Assert = 5,
    CandRpAdv = 8,
}

impl MsgType {
    fn from_u8(t: u8) -> Option<Self> {
        Some(match t {
            0 => MsgType::Hello,
            1 => MsgType::Register,
            2 => MsgType::RegisterStop,
            3 => MsgType::JoinPrune,
            4 => MsgType::Bootstrap,
            5 => MsgType::Assert,
            8 => MsgType::CandRpAdv,
            _ => return None,
        })
    }
}

/// Why a packet was refused. The instance counts each kind separately
/// because "wrong version" and "bad checksum" point at different problems
/// on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The packet ended before a field it announced.
    Truncated,
    WrongVersion(u8),
    BadChecksum,
    UnknownType(u8),
    /// An encoded address that is not IPv4 with native encoding.
    BadAddress,
    /// A known Hello option with a length its definition does not allow.
    BadOption(u16),
    /// Bytes after the last field a message defines.
    TrailingBytes,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => write!(f, "truncated PIM message"),
            DecodeError::WrongVersion(v) => write!(f, "PIM version {v}, expected 2"),
            DecodeError::BadChecksum => write!(f, "bad PIM checksum"),
            DecodeError::UnknownType(t) => write!(f, "unknown PIM message type {t}"),
            DecodeError::BadAddress => write!(f, "encoded address is not IPv4"),
            DecodeError::BadOption(t) => write!(f, "Hello option {t} has a bad length"),
            DecodeError::TrailingBytes => write!(f, "bytes after the end of the PIM message"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The LAN Prune Delay option (§4.9.2, option 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LanPruneDelay {
    /// T bit: the sender can disable join suppression (tracking support).
    pub tracking: bool,
    /// Milliseconds; 15 bits on the wire.
    pub propagation_delay_ms: u16,
    pub override_interval_ms: u16,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hello {
    pub holdtime: Option<u16>,
    pub lan_prune_delay: Option<LanPruneDelay>,
    pub dr_priority: Option<u32>,
    pub generation_id: Option<u32>,
    /// Secondary addresses of the sender's interface (option 24).
    pub address_list: Vec<Ipv4Addr>,
    /// Options this router does not understand, kept in order so a decode
    /// followed by an encode loses nothing; §4.9.2 says to ignore them.
    pub unknown: Vec<(u16, Vec<u8>)>,
}

/// Encoded-Group address (§4.9.1): a group range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodedGroup {
    /// B bit: bidirectional PIM range (not used by PIM-SM, kept for the wire).
    pub bidir: bool,
    /// Z bit: admin-scope zone.
    pub zone: bool,
    pub mask_len: u8,
    pub addr: Ipv4Addr,
}

impl EncodedGroup {
    pub fn host(addr: Ipv4Addr) -> Self {
        EncodedGroup {
            bidir: false,
            zone: false,
            mask_len: 32,
            addr,
        }
    }
}

/// Encoded-Source address (§4.9.1) with the S, WC and RPT bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodedSource {
    /// S bit: sparse mode; §4.9.1 says it MUST be 1 when sent.
    pub sparse: bool,
    /// WC bit: the join or prune is for (*,G) and `addr` is the RP.
    pub wildcard: bool,
    /// RPT bit: sent along the RP tree.
    pub rpt: bool,
    pub mask_len: u8,
    pub addr: Ipv4Addr,
}

impl EncodedSource {
    /// The entry of a (*,G) Join: the RP with S, WC and RPT set.
    pub fn star_g(rp: Ipv4Addr) -> Self {
        EncodedSource {
            sparse: true,
            wildcard: true,
            rpt: true,
            mask_len: 32,
            addr: rp,
        }
    }

    /// The entry of an (S,G) Join or Prune.
    pub fn s_g(source: Ipv4Addr) -> Self {
        EncodedSource {
            sparse: true,
            wildcard: false,
            rpt: false,
            mask_len: 32,
            addr: source,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinPruneGroup {
    pub group: EncodedGroup,
    pub joins: Vec<EncodedSource>,
    pub prunes: Vec<EncodedSource>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinPrune {
    /// The router the message is meant for; everyone else on the LAN only
    /// listens (join suppression, prune override).
    pub upstream_neighbor: Ipv4Addr,
    /// Seconds the receiver keeps the state.
    pub holdtime: u16,
    pub groups: Vec<JoinPruneGroup>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Register {
    /// B bit: Border router.
    pub border: bool,
    /// N bit: null-Register, `packet` is only the inner IP header.
    pub null: bool,
    /// The encapsulated multicast IP packet, header included.
    pub packet: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterStop {
    pub group: EncodedGroup,
    pub source: Ipv4Addr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assert {
    pub group: EncodedGroup,
    pub source: Ipv4Addr,
    /// RPT bit: the assert is about (*,G).
    pub rpt: bool,
    /// Metric preference (31 bits on the wire).
    pub preference: u32,
    pub metric: u32,
}

/// Bootstrap (RFC 5059 §4.1): the fixed fields, the rest kept raw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bootstrap {
    pub fragment_tag: u16,
    pub hash_mask_len: u8,
    pub bsr_priority: u8,
    pub bsr: Ipv4Addr,
    /// Group and RP entries, undecoded.
    pub rest: Vec<u8>,
}

/// Candidate-RP-Advertisement (RFC 5059 §4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CandRpAdv {
    pub priority: u8,
    pub holdtime: u16,
    pub rp: Ipv4Addr,
    pub groups: Vec<EncodedGroup>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Hello(Hello),
    Register(Register),
    RegisterStop(RegisterStop),
    JoinPrune(JoinPrune),
    Bootstrap(Bootstrap),
    Assert(Assert),
    CandRpAdv(CandRpAdv),
}

impl Message {
    pub fn msg_type(&self) -> MsgType {
        match self {
            Message::Hello(_) => MsgType::Hello,
            Message::Register(_) => MsgType::Register,
            Message::RegisterStop(_) => MsgType::RegisterStop,
            Message::JoinPrune(_) => MsgType::JoinPrune,
            Message::Bootstrap(_) => MsgType::Bootstrap,
            Message::Assert(_) => MsgType::Assert,
            Message::CandRpAdv(_) => MsgType::CandRpAdv,
        }
    }
}

/// The Internet checksum (RFC 1071), the same as every other header's.
pub use crate::wire::checksum;

/// Bytes of a Register the checksum covers (§4.9.3): the PIM header and
/// the flags word, not the data packet.
const REGISTER_CHECKSUM_LEN: usize = 8;

/// A bounds-checked reader: every accessor returns `Truncated` instead of
/// indexing past the end, which is what keeps `decode` panic-free.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn ipv4(&mut self) -> Result<Ipv4Addr, DecodeError> {
        let b = self.take(4)?;
        Ok(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn rest(&mut self) -> &'a [u8] {
        let s = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        s
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }

    fn family(&mut self) -> Result<(), DecodeError> {
        let family = self.u8()?;
        let encoding = self.u8()?;
        if family != AF_IPV4 || encoding != NATIVE_ENCODING {
            return Err(DecodeError::BadAddress);
        }
        Ok(())
    }

    fn unicast(&mut self) -> Result<Ipv4Addr, DecodeError> {
        self.family()?;
        self.ipv4()
    }

    fn group(&mut self) -> Result<EncodedGroup, DecodeError> {
        self.family()?;
        let flags = self.u8()?;
        let mask_len = self.u8()?;
        let addr = self.ipv4()?;
        Ok(EncodedGroup {
            bidir: flags & 0x80 != 0,
            zone: flags & 0x01 != 0,
            mask_len,
            addr,
        })
    }

    fn source(&mut self) -> Result<EncodedSource, DecodeError> {
        self.family()?;
        let flags = self.u8()?;
        let mask_len = self.u8()?;
        let addr = self.ipv4()?;
        Ok(EncodedSource {
            sparse: flags & 0x04 != 0,
            wildcard: flags & 0x02 != 0,
            rpt: flags & 0x01 != 0,
            mask_len,
            addr,
        })
    }
}

/// Decode one PIM message (the IP payload of a protocol-103 packet).
pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader::new(buf);
    let vt = r.u8()?;
    let version = vt >> 4;
    if version != PIM_VERSION {
        return Err(DecodeError::WrongVersion(version));
    }
    let _reserved = r.u8()?;
    let _checksum = r.u16()?;
    let ty = MsgType::from_u8(vt & 0x0f).ok_or(DecodeError::UnknownType(vt & 0x0f))?;
    let covered_ok = if ty == MsgType::Register {
        // §4.9.3: computed over the header only, but a checksum over the
        // whole message "should also be accepted" for interoperability.
        buf.len() >= REGISTER_CHECKSUM_LEN
            && (checksum(&buf[..REGISTER_CHECKSUM_LEN]) == 0 || checksum(buf) == 0)
    } else {
        checksum(buf) == 0
    };
    if !covered_ok {
        // A short Register is truncated rather than mis-summed.
        if buf.len() < REGISTER_CHECKSUM_LEN && ty == MsgType::Register {
            return Err(DecodeError::Truncated);
        }
        return Err(DecodeError::BadChecksum);
    }
    let msg = match ty {
        MsgType::Hello => Message::Hello(decode_hello(&mut r)?),
        MsgType::Register => {
            let flags = r.u32()?;
            Message::Register(Register {
                border: flags & 0x8000_0000 != 0,
                null: flags & 0x4000_0000 != 0,
                packet: r.rest().to_vec(),
            })
        }
        MsgType::RegisterStop => Message::RegisterStop(RegisterStop {
            group: r.group()?,
            source: r.unicast()?,
        }),
        MsgType::JoinPrune => Message::JoinPrune(decode_join_prune(&mut r)?),
        MsgType::Assert => {
            let group = r.group()?;
            let source = r.unicast()?;
            let pref = r.u32()?;
            let metric = r.u32()?;
            Message::Assert(Assert {
                group,
                source,
                rpt: pref & 0x8000_0000 != 0,
                preference: pref & 0x7fff_ffff,
                metric,
            })
        }
        MsgType::Bootstrap => {
            let fragment_tag = r.u16()?;
            let hash_mask_len = r.u8()?;
            let bsr_priority = r.u8()?;
            let bsr = r.unicast()?;
            Message::Bootstrap(Bootstrap {
                fragment_tag,
                hash_mask_len,
                bsr_priority,
                bsr,
                rest: r.rest().to_vec(),
            })
        }
        MsgType::CandRpAdv => {
            let count = r.u8()?;
            let priority = r.u8()?;
            let holdtime = r.u16()?;
            let rp = r.unicast()?;
            let mut groups = Vec::with_capacity(usize::from(count).min(r.remaining() / 8));
            for _ in 0..count {
                groups.push(r.group()?);
            }
            Message::CandRpAdv(CandRpAdv {
                priority,
                holdtime,
                rp,
                groups,
            })
        }
    };
    r.finish()?;
    Ok(msg)
}

fn decode_hello(r: &mut Reader<'_>) -> Result<Hello, DecodeError> {
    let mut h = Hello::default();
    while r.remaining() > 0 {
        let ty = r.u16()?;
        let len = r.u16()?;
        let mut v = Reader::new(r.take(usize::from(len))?);
        let bad = DecodeError::BadOption(ty);
        match ty {
            OPT_HOLDTIME if len == 2 => h.holdtime = Some(v.u16()?),
            OPT_LAN_PRUNE_DELAY if len == 4 => {
                let d = v.u16()?;
                h.lan_prune_delay = Some(LanPruneDelay {
                    tracking: d & 0x8000 != 0,
                    propagation_delay_ms: d & 0x7fff,
                    override_interval_ms: v.u16()?,
                });
            }
            OPT_DR_PRIORITY if len == 4 => h.dr_priority = Some(v.u32()?),
            OPT_GENERATION_ID if len == 4 => h.generation_id = Some(v.u32()?),
            // FRR lists its IPv6 link-local addresses here too (family
            // 2); they say nothing about the IPv4 neighbor and are skipped.
            OPT_ADDRESS_LIST => {
                while v.remaining() > 0 {
                    match (v.u8()?, v.u8()?) {
                        (AF_IPV4, NATIVE_ENCODING) => h.address_list.push(v.ipv4()?),
                        (AF_IPV6, NATIVE_ENCODING) => {
                            v.take(16)?;
                        }
                        _ => return Err(bad),
                    }
                }
            }
            OPT_HOLDTIME | OPT_LAN_PRUNE_DELAY | OPT_DR_PRIORITY | OPT_GENERATION_ID => {
                return Err(bad)
            }
            _ => h.unknown.push((ty, v.rest().to_vec())),
        }
    }
    Ok(h)
}

fn decode_join_prune(r: &mut Reader<'_>) -> Result<JoinPrune, DecodeError> {
    let upstream_neighbor = r.unicast()?;
    let _reserved = r.u8()?;
    let ngroups = r.u8()?;
    let holdtime = r.u16()?;
    // Capacities are bounded by what the buffer can hold so that a forged
    // count cannot make us allocate more than the packet's size.
    let mut groups = Vec::with_capacity(usize::from(ngroups).min(r.remaining() / 12));
    for _ in 0..ngroups {
        let group = r.group()?;
        let njoin = r.u16()?;
        let nprune = r.u16()?;
        let mut joins = Vec::with_capacity(usize::from(njoin).min(r.remaining() / 8));
        for _ in 0..njoin {
            joins.push(r.source()?);
        }
        let mut prunes = Vec::with_capacity(usize::from(nprune).min(r.remaining() / 8));
        for _ in 0..nprune {
            prunes.push(r.source()?);
        }
        groups.push(JoinPruneGroup {
            group,
            joins,
            prunes,
        });
    }
    Ok(JoinPrune {
        upstream_neighbor,
        holdtime,
        groups,
    })
}

/// Encode a message with its checksum. Counts that do not fit their wire
/// field (more than 255 groups in a Join/Prune, a Hello option over
/// 65535 bytes) are the caller's bug; they are cut to what fits so the
/// output stays a well-formed message.
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut out = vec![(PIM_VERSION << 4) | msg.msg_type() as u8, 0, 0, 0];
    match msg {
        Message::Hello(h) => encode_hello(&mut out, h),
        Message::Register(reg) => {
            let mut flags = 0u32;
            if reg.border {
                flags |= 0x8000_0000;
            }
            if reg.null {
                flags |= 0x4000_0000;
            }
            out.extend_from_slice(&flags.to_be_bytes());
            out.extend_from_slice(&reg.packet);
        }
        Message::RegisterStop(rs) => {
            put_group(&mut out, &rs.group);
            put_unicast(&mut out, rs.source);
        }
        Message::JoinPrune(jp) => {
            put_unicast(&mut out, jp.upstream_neighbor);
            let groups = &jp.groups[..jp.groups.len().min(255)];
            out.push(0);
            out.push(groups.len() as u8);
            out.extend_from_slice(&jp.holdtime.to_be_bytes());
            for g in groups {
                put_group(&mut out, &g.group);
                let joins = &g.joins[..g.joins.len().min(0xffff)];
                let prunes = &g.prunes[..g.prunes.len().min(0xffff)];
                out.extend_from_slice(&(joins.len() as u16).to_be_bytes());
                out.extend_from_slice(&(prunes.len() as u16).to_be_bytes());
                for s in joins.iter().chain(prunes) {
                    put_source(&mut out, s);
                }
            }
        }
        Message::Assert(a) => {
            put_group(&mut out, &a.group);
            put_unicast(&mut out, a.source);
            let mut pref = a.preference & 0x7fff_ffff;
            if a.rpt {
                pref |= 0x8000_0000;
            }
            out.extend_from_slice(&pref.to_be_bytes());
            out.extend_from_slice(&a.metric.to_be_bytes());
        }
        Message::Bootstrap(b) => {
            out.extend_from_slice(&b.fragment_tag.to_be_bytes());
            out.push(b.hash_mask_len);
            out.push(b.bsr_priority);
            put_unicast(&mut out, b.bsr);
            out.extend_from_slice(&b.rest);
        }
        Message::CandRpAdv(c) => {
            let groups = &c.groups[..c.groups.len().min(255)];
            out.push(groups.len() as u8);
            out.push(c.priority);
            out.extend_from_slice(&c.holdtime.to_be_bytes());
            put_unicast(&mut out, c.rp);
            for g in groups {
                put_group(&mut out, g);
            }
        }
    }
    let covered = match msg {
        Message::Register(_) => &out[..REGISTER_CHECKSUM_LEN],
        _ => &out[..],
    };
    let sum = checksum(covered);
    out[2..4].copy_from_slice(&sum.to_be_bytes());
    out
}

fn put_option(out: &mut Vec<u8>, ty: u16, value: &[u8]) {
    let value = &value[..value.len().min(0xffff)];
    out.extend_from_slice(&ty.to_be_bytes());
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
}

fn encode_hello(out: &mut Vec<u8>, h: &Hello) {
    // Option order as FRR and pimd send it (ascending type), so a captured
    // Hello re-encodes byte for byte.
    if let Some(t) = h.holdtime {
        put_option(out, OPT_HOLDTIME, &t.to_be_bytes());
    }
    if let Some(d) = h.lan_prune_delay {
        let mut p = d.propagation_delay_ms & 0x7fff;
        if d.tracking {
            p |= 0x8000;
        }
        let mut v = p.to_be_bytes().to_vec();
        v.extend_from_slice(&d.override_interval_ms.to_be_bytes());
        put_option(out, OPT_LAN_PRUNE_DELAY, &v);
    }
    if let Some(p) = h.dr_priority {
        put_option(out, OPT_DR_PRIORITY, &p.to_be_bytes());
    }
    if let Some(g) = h.generation_id {
        put_option(out, OPT_GENERATION_ID, &g.to_be_bytes());
    }
    if !h.address_list.is_empty() {
        let mut v = Vec::with_capacity(h.address_list.len() * 6);
        // An option holds at most 65535 bytes: 10922 addresses.
        for a in h.address_list.iter().take(0xffff / 6) {
            put_unicast(&mut v, *a);
        }
        put_option(out, OPT_ADDRESS_LIST, &v);
    }
    for (ty, v) in &h.unknown {
        put_option(out, *ty, v);
    }
}

fn put_unicast(out: &mut Vec<u8>, a: Ipv4Addr) {
    out.extend_from_slice(&[AF_IPV4, NATIVE_ENCODING]);
    out.extend_from_slice(&a.octets());
}

fn put_group(out: &mut Vec<u8>, g: &EncodedGroup) {
    let mut flags = 0u8;
    if g.bidir {
        flags |= 0x80;
    }
    if g.zone {
        flags |= 0x01;
    }
    out.extend_from_slice(&[AF_IPV4, NATIVE_ENCODING, flags, g.mask_len]);
    out.extend_from_slice(&g.addr.octets());
}

fn put_source(out: &mut Vec<u8>, s: &EncodedSource) {
    let mut flags = 0u8;
    if s.sparse {
        flags |= 0x04;
    }
    if s.wildcard {
        flags |= 0x02;
    }
    if s.rpt {
        flags |= 0x01;
    }
    out.extend_from_slice(&[AF_IPV4, NATIVE_ENCODING, flags, s.mask_len]);
    out.extend_from_slice(&s.addr.octets());
}

#[cfg(test)]
mod tests;
