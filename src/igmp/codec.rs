//! IGMP wire format, versions 1 to 3: the IP payload only (the shell adds
//! the IP header with TTL 1 and Router Alert).
//!
//! Implements RFC 1112 appendix I (v1 query and report), RFC 2236 §2 (v2
//! message format, Max Response Time in tenths of a second), RFC 3376 §4
//! (v3 query with S flag, QRV, QQIC and sources; v3 report with group
//! records, auxiliary data skipped) including the floating-point codes of
//! §4.1.1 and §4.1.7, and the query version rule of §7.1 (8 bytes with a
//! zero code is v1, 8 bytes is v2, 12 or more is v3). The checksum (RFC
//! 1071, over the whole message) is verified on decode and computed on
//! encode. `decode` never panics: every length is checked before use.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::checksum;

pub const TYPE_QUERY: u8 = 0x11;
pub const TYPE_V1_REPORT: u8 = 0x12;
pub const TYPE_V2_REPORT: u8 = 0x16;
pub const TYPE_V2_LEAVE: u8 = 0x17;
pub const TYPE_V3_REPORT: u8 = 0x22;

/// 224.0.0.1: general queries.
pub const ALL_SYSTEMS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
/// 224.0.0.2: v2 leaves.
pub const ALL_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 2);
/// 224.0.0.22: v3 reports.
pub const ALL_V3_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 22);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than its header or than the counts it carries say.
    Truncated,
    /// The RFC 1071 checksum over the message does not verify.
    Checksum,
    /// A type this router does not know (RFC 3376 §4: ignored).
    UnknownType(u8),
    /// A query whose length fits no version (RFC 3376 §7.1: ignored).
    BadLength(usize),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated => write!(f, "truncated IGMP message"),
            DecodeError::Checksum => write!(f, "bad IGMP checksum"),
            DecodeError::UnknownType(t) => write!(f, "unknown IGMP type {t:#04x}"),
            DecodeError::BadLength(n) => write!(f, "IGMP query of {n} bytes"),
        }
    }
}

impl std::error::Error for DecodeError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V1 = 1,
    V2 = 2,
    V3 = 3,
}

/// A membership query of any version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub version: Version,
    /// The raw Max Resp Code (tenths of a second; floating point in v3).
    pub max_resp_code: u8,
    /// 0.0.0.0 for a general query.
    pub group: Ipv4Addr,
    /// v3 only: Suppress Router-Side Processing.
    pub suppress: bool,
    /// v3 only: Querier's Robustness Variable (0 when above 7).
    pub qrv: u8,
    /// v3 only: Querier's Query Interval Code.
    pub qqic: u8,
    /// v3 only: sources of a group-and-source-specific query.
    pub sources: Vec<Ipv4Addr>,
}

impl Query {
    /// The Max Response Time this query asks for.
    pub fn max_resp(&self) -> Duration {
        let tenths = match self.version {
            Version::V3 => decode_float_code(self.max_resp_code),
            _ => self.max_resp_code as u32,
        };
        Duration::from_millis(tenths as u64 * 100)
    }

    /// The querier's query interval (v3), in seconds.
    pub fn qqi_secs(&self) -> u32 {
        decode_float_code(self.qqic)
    }

    pub fn is_general(&self) -> bool {
        self.group.is_unspecified()
    }
}

/// Group record types of RFC 3376 §4.2.12.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordType {
    IsInclude = 1,
    IsExclude = 2,
    ToInclude = 3,
    ToExclude = 4,
    AllowNew = 5,
    BlockOld = 6,
}

impl RecordType {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => RecordType::IsInclude,
            2 => RecordType::IsExclude,
            3 => RecordType::ToInclude,
            4 => RecordType::ToExclude,
            5 => RecordType::AllowNew,
            6 => RecordType::BlockOld,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRecord {
    pub kind: RecordType,
    pub group: Ipv4Addr,
    pub sources: Vec<Ipv4Addr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Query(Query),
    V1Report(Ipv4Addr),
    V2Report(Ipv4Addr),
    V2Leave(Ipv4Addr),
    /// Records of unknown type are dropped on decode (RFC 3376 §4.2.12).
    V3Report(Vec<GroupRecord>),
}

/// RFC 3376 §4.1.1 / §4.1.7: codes below 128 are the value itself, above
/// a 3-bit exponent and 4-bit mantissa: (mant | 0x10) << (exp + 3).
pub fn decode_float_code(code: u8) -> u32 {
    if code < 128 {
        code as u32
    } else {
        let mant = (code & 0x0f) as u32;
        let exp = ((code >> 4) & 0x07) as u32;
        (mant | 0x10) << (exp + 3)
    }
}

/// The code for `value`, rounded down to the nearest representable value
/// (a querier must not promise a longer interval than it runs) and capped
/// at the largest, 31744.
pub fn encode_float_code(value: u32) -> u8 {
    if value < 128 {
        return value as u8;
    }
    for exp in (0..8u32).rev() {
        let mant_full = value >> (exp + 3);
        if mant_full >= 0x10 {
            let mant = mant_full.min(0x1f) & 0x0f;
            return 0x80 | ((exp as u8) << 4) | mant as u8;
        }
    }
    127
}

fn addr(b: &[u8], at: usize) -> Result<Ipv4Addr, DecodeError> {
    let s = b.get(at..at + 4).ok_or(DecodeError::Truncated)?;
    Ok(Ipv4Addr::new(s[0], s[1], s[2], s[3]))
}

fn be16(b: &[u8], at: usize) -> Result<usize, DecodeError> {
    let s = b.get(at..at + 2).ok_or(DecodeError::Truncated)?;
    Ok(u16::from_be_bytes([s[0], s[1]]) as usize)
}

/// Decode one IGMP message (the IP payload).
pub fn decode(b: &[u8]) -> Result<Message, DecodeError> {
    if b.len() < 8 {
        return Err(DecodeError::Truncated);
    }
    if checksum(b) != 0 {
        return Err(DecodeError::Checksum);
    }
    let group = addr(b, 4)?;
    match b[0] {
        TYPE_QUERY => decode_query(b, group).map(Message::Query),
        TYPE_V1_REPORT => Ok(Message::V1Report(group)),
        TYPE_V2_REPORT => Ok(Message::V2Report(group)),
        TYPE_V2_LEAVE => Ok(Message::V2Leave(group)),
        TYPE_V3_REPORT => decode_v3_report(b).map(Message::V3Report),
        t => Err(DecodeError::UnknownType(t)),
    }
}

fn decode_query(b: &[u8], group: Ipv4Addr) -> Result<Query, DecodeError> {
    let mut q = Query {
        version: Version::V2,
        max_resp_code: b[1],
        group,
        suppress: false,
        qrv: 0,
        qqic: 0,
        sources: Vec::new(),
    };
    match b.len() {
        8 if b[1] == 0 => q.version = Version::V1,
        8 => {}
        9..=11 => return Err(DecodeError::BadLength(b.len())),
        _ => {
            q.version = Version::V3;
            q.suppress = b[8] & 0x08 != 0;
            q.qrv = b[8] & 0x07;
            q.qqic = b[9];
            let n = be16(b, 10)?;
            if b.len() < 12 + 4 * n {
                return Err(DecodeError::Truncated);
            }
            q.sources = (0..n)
                .map(|i| addr(b, 12 + 4 * i))
                .collect::<Result<_, _>>()?;
        }
    }
    Ok(q)
}

fn decode_v3_report(b: &[u8]) -> Result<Vec<GroupRecord>, DecodeError> {
    let n = be16(b, 6)?;
    let mut at = 8;
    let mut records = Vec::new();
    for _ in 0..n {
        let head = b.get(at..at + 8).ok_or(DecodeError::Truncated)?;
        let kind = head[0];
        let aux_words = head[1] as usize;
        let nsrc = u16::from_be_bytes([head[2], head[3]]) as usize;
        let group = addr(b, at + 4)?;
        let end = at + 8 + 4 * nsrc + 4 * aux_words;
        if b.len() < end {
            return Err(DecodeError::Truncated);
        }
        let sources = (0..nsrc)
            .map(|i| addr(b, at + 8 + 4 * i))
            .collect::<Result<_, _>>()?;
        if let Some(kind) = RecordType::from_u8(kind) {
            records.push(GroupRecord {
                kind,
                group,
                sources,
            });
        }
        at = end;
    }
    Ok(records)
}

fn finish(mut b: Vec<u8>) -> Vec<u8> {
    let c = checksum(&b);
    b[2..4].copy_from_slice(&c.to_be_bytes());
    b
}

/// Encode a message with its checksum. A v3 query with more sources than
/// fit in a u16 count keeps the first 65535 (the caller splits long lists
/// to fit the MTU long before that).
pub fn encode(m: &Message) -> Vec<u8> {
    let simple = |t: u8, code: u8, g: Ipv4Addr| {
        let mut b = vec![t, code, 0, 0];
        b.extend_from_slice(&g.octets());
        finish(b)
    };
    match m {
        Message::Query(q) => match q.version {
            Version::V1 => simple(TYPE_QUERY, 0, q.group),
            Version::V2 => simple(TYPE_QUERY, q.max_resp_code, q.group),
            Version::V3 => {
                let n = q.sources.len().min(u16::MAX as usize);
                let mut b = vec![TYPE_QUERY, q.max_resp_code, 0, 0];
                b.extend_from_slice(&q.group.octets());
                b.push((q.suppress as u8) << 3 | (q.qrv & 0x07));
                b.push(q.qqic);
                b.extend_from_slice(&(n as u16).to_be_bytes());
                for s in &q.sources[..n] {
                    b.extend_from_slice(&s.octets());
                }
                finish(b)
            }
        },
        Message::V1Report(g) => simple(TYPE_V1_REPORT, 0, *g),
        Message::V2Report(g) => simple(TYPE_V2_REPORT, 0, *g),
        Message::V2Leave(g) => simple(TYPE_V2_LEAVE, 0, *g),
        Message::V3Report(records) => {
            let n = records.len().min(u16::MAX as usize);
            let mut b = vec![TYPE_V3_REPORT, 0, 0, 0, 0, 0];
            b.extend_from_slice(&(n as u16).to_be_bytes());
            for r in &records[..n] {
                let ns = r.sources.len().min(u16::MAX as usize);
                b.extend_from_slice(&[r.kind as u8, 0]);
                b.extend_from_slice(&(ns as u16).to_be_bytes());
                b.extend_from_slice(&r.group.octets());
                for s in &r.sources[..ns] {
                    b.extend_from_slice(&s.octets());
                }
            }
            finish(b)
        }
    }
}

#[cfg(test)]
mod tests;
