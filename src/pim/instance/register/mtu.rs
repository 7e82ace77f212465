//! Data packets too big to register whole (RFC 7761 §4.4.1): the DR's
//! register tunnel has the MTU of its interface toward the RP less the
//! Register's 28 bytes of overhead (outer IPv4 header and PIM Register
//! header), and a packet over that is handled as a router handles a
//! packet bigger than the next link (RFC 791, RFC 1191): fragmented
//! before encapsulation when the source allows it, each fragment its own
//! Register, so the outer packets never need fragmenting and the RP never
//! reassembles (what the Linux register vif does, hence FRR as DR too);
//! refused with an ICMP Destination Unreachable / Fragmentation Needed
//! carrying the tunnel's MTU when the source set DF, so that its Path MTU
//! Discovery shrinks what it sends.
//!
//! Owns: inner-packet fragmentation, the ICMP message, and the per-source
//! rate limit on those ICMP messages ([`FRAG_NEEDED_INTERVAL`]).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::wire::checksum;

/// The shortest time between two Fragmentation Needed messages to one
/// source. A source doing Path MTU Discovery lowers its packet size after
/// the first; one that does not would otherwise get one per packet.
pub const FRAG_NEEDED_INTERVAL: Duration = Duration::from_millis(500);

/// Sources remembered for the rate limit; past it, sources not heard
/// from within the interval are forgotten, and if all were, the new one
/// waits (a flood of sources gets no ICMP storm either).
const MAX_LIMITED_SOURCES: usize = 1024;

const IP_DF: u16 = 0x4000;
const IP_MF: u16 = 0x2000;
const IP_OFFSET_MASK: u16 = 0x1fff;

/// Split `packet` (a whole IPv4 packet, DF clear, its header already
/// checked) into fragments of at most `max_len` bytes each, header
/// included (RFC 791 §3.2): data in multiples of 8 bytes, the first
/// fragment with every option, later ones with the options whose copied
/// flag is set, MF on all but the last (which keeps the packet's own MF,
/// so a fragment is split the same way), checksums recomputed. `None`
/// when it cannot be split (malformed options, or `max_len` too small for
/// a header and 8 bytes of data).
pub fn fragment(packet: &[u8], max_len: usize) -> Option<Vec<Vec<u8>>> {
    let ihl = usize::from(*packet.first()? & 0x0f) * 4;
    let header = packet.get(..ihl)?;
    if ihl < 20 {
        return None;
    }
    let data = packet.get(ihl..)?;
    let later_header = copied_options_header(header)?;
    let chunk = max_len.checked_sub(ihl)? / 8 * 8;
    if chunk == 0 {
        return None;
    }
    let flags = u16::from_be_bytes([header[6], header[7]]);
    let base_offset = usize::from(flags & IP_OFFSET_MASK) * 8;
    let last_mf = flags & IP_MF != 0;
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let end = (pos + chunk).min(data.len());
        let last = end == data.len();
        let h = if pos == 0 { header } else { &later_header[..] };
        let mut f = Vec::with_capacity(h.len() + end - pos);
        f.extend_from_slice(h);
        f.extend_from_slice(&data[pos..end]);
        let total = u16::try_from(f.len()).ok()?;
        f[2..4].copy_from_slice(&total.to_be_bytes());
        let offset = u16::try_from((base_offset + pos) / 8).ok()?;
        if offset > IP_OFFSET_MASK {
            return None;
        }
        let mf = if last { last_mf } else { true };
        let field = offset | if mf { IP_MF } else { 0 };
        f[6..8].copy_from_slice(&field.to_be_bytes());
        f[10] = 0;
        f[11] = 0;
        let sum = checksum(&f[..h.len()]);
        f[10..12].copy_from_slice(&sum.to_be_bytes());
        out.push(f);
        pos = end;
    }
    Some(out)
}

/// The header of fragments after the first: only options with the
/// copied flag (RFC 791 §3.1), padded to a 4-byte boundary with
/// End-of-Options.
fn copied_options_header(header: &[u8]) -> Option<Vec<u8>> {
    let mut h = header.get(..20)?.to_vec();
    let mut opts = header.get(20..)?;
    while let Some(&kind) = opts.first() {
        match kind {
            0 => break,
            1 => opts = &opts[1..],
            _ => {
                let len = usize::from(*opts.get(1)?);
                if len < 2 {
                    return None;
                }
                let opt = opts.get(..len)?;
                if kind & 0x80 != 0 {
                    h.extend_from_slice(opt);
                }
                opts = &opts[len..];
            }
        }
    }
    while h.len() % 4 != 0 {
        h.push(0);
    }
    let words = u8::try_from(h.len() / 4).ok()?;
    h[0] = 0x40 | words;
    Some(h)
}

/// Whether the packet's header sets DF, it is not a later fragment and it
/// is not itself an ICMP error (RFC 1812 §4.3.2.7, RFC 1122 §3.2.2: ICMP
/// errors only about a first fragment, never about an ICMP error).
pub fn wants_frag_needed(packet: &[u8]) -> bool {
    let Some(b) = packet.get(6..8) else {
        return false;
    };
    let flags = u16::from_be_bytes([b[0], b[1]]);
    if flags & IP_DF == 0 || flags & IP_OFFSET_MASK != 0 {
        return false;
    }
    !is_icmp_error(packet)
}

/// ICMP Destination Unreachable, Source Quench, Redirect, Time Exceeded
/// or Parameter Problem.
fn is_icmp_error(packet: &[u8]) -> bool {
    let ihl = packet.first().map_or(0, |b| usize::from(b & 0x0f) * 4);
    packet.get(9) == Some(&1) && matches!(packet.get(ihl), Some(3 | 4 | 5 | 11 | 12))
}

/// ICMP Destination Unreachable, code 4 (Fragmentation Needed and DF
/// set), with the next-hop MTU of RFC 1191 §4 and, as RFC 792 asks, the
/// packet's IP header and its first 8 bytes of data.
pub fn frag_needed(packet: &[u8], mtu: u16) -> Option<Vec<u8>> {
    let ihl = usize::from(*packet.first()? & 0x0f) * 4;
    let quoted = packet.get(..(ihl + 8).min(packet.len()))?;
    let mut m = vec![3, 4, 0, 0, 0, 0];
    m.extend_from_slice(&mtu.to_be_bytes());
    m.extend_from_slice(quoted);
    let sum = checksum(&m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    Some(m)
}

/// Per-source rate limit on Fragmentation Needed messages.
#[derive(Debug, Default)]
pub struct FragNeededLimiter {
    last: BTreeMap<Ipv4Addr, Instant>,
}

impl FragNeededLimiter {
    /// Whether a message to `source` may go now (and note it if so).
    pub fn allow(&mut self, now: Instant, source: Ipv4Addr) -> bool {
        let recent = |t: &Instant| now.saturating_duration_since(*t) < FRAG_NEEDED_INTERVAL;
        if self.last.get(&source).is_some_and(recent) {
            return false;
        }
        if !self.last.contains_key(&source) && self.last.len() >= MAX_LIMITED_SOURCES {
            self.last.retain(|_, t| recent(t));
            if self.last.len() >= MAX_LIMITED_SOURCES {
                return false;
            }
        }
        self.last.insert(source, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP packet from 10.1.1.10 to 239.1.1.1 with `data` bytes after
    /// the 20-byte header, the data counting up so pieces can be checked.
    fn packet(data: usize, df: bool) -> Vec<u8> {
        let mut p = vec![0u8; 20 + data];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&((20 + data) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        if df {
            p[6] = 0x40;
        }
        p[8] = 16;
        p[9] = 17;
        p[12..16].copy_from_slice(&[10, 1, 1, 10]);
        p[16..20].copy_from_slice(&[239, 1, 1, 1]);
        for (i, b) in p[20..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let sum = checksum(&p[..20]);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p
    }

    /// Put fragments back together by offset, as the receiver does.
    fn reassemble(frags: &[Vec<u8>]) -> Vec<u8> {
        let mut data = Vec::new();
        for f in frags {
            let ihl = usize::from(f[0] & 0x0f) * 4;
            let off = usize::from(u16::from_be_bytes([f[6], f[7]]) & IP_OFFSET_MASK) * 8;
            assert_eq!(off, data.len(), "fragments in order, no gap");
            data.extend_from_slice(&f[ihl..]);
        }
        data
    }

    #[test]
    fn a_packet_splits_into_fragments_that_fit_and_reassemble_to_it() {
        let p = packet(1480, false);
        let frags = fragment(&p, 1472).unwrap();
        assert_eq!(frags.len(), 2);
        for (i, f) in frags.iter().enumerate() {
            assert!(f.len() <= 1472, "fragment {i} is {} bytes", f.len());
            assert_eq!(usize::from(u16::from_be_bytes([f[2], f[3]])), f.len());
            assert_eq!(checksum(&f[..20]), 0, "fragment {i} header checksum");
            assert_eq!(&f[4..6], &p[4..6], "same identification");
            assert_eq!(&f[12..20], &p[12..20], "same addresses");
            assert_eq!(f[8], 16, "TTL untouched");
        }
        let first = u16::from_be_bytes([frags[0][6], frags[0][7]]);
        assert_eq!(first, IP_MF, "first: MF, offset 0");
        assert_eq!((frags[0].len() - 20) % 8, 0, "data in 8-byte units");
        let second = u16::from_be_bytes([frags[1][6], frags[1][7]]);
        assert_eq!(second & IP_MF, 0, "last: no MF");
        assert_eq!(reassemble(&frags), p[20..]);
    }

    #[test]
    fn a_fragment_is_split_at_its_own_offset_and_keeps_its_mf() {
        let mut p = packet(64, false);
        // A middle fragment at offset 800 bytes (100 units), MF set.
        p[6..8].copy_from_slice(&(IP_MF | 100).to_be_bytes());
        let frags = fragment(&p, 20 + 40).unwrap();
        let fields: Vec<u16> = frags
            .iter()
            .map(|f| u16::from_be_bytes([f[6], f[7]]))
            .collect();
        assert_eq!(fields, [IP_MF | 100, IP_MF | 105]);
    }

    #[test]
    fn later_fragments_carry_only_copied_options() {
        let mut p = packet(32, false);
        // Options: NOP, a copied option (type 0x94, router alert, 4 bytes),
        // a not-copied one (type 0x07, record route, 7 bytes), End.
        let opts = [1u8, 0x94, 4, 0, 0, 7, 7, 4, 0, 0, 0, 0];
        p.splice(20..20, opts);
        p[0] = 0x48;
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        let frags = fragment(&p, 32 + 16).unwrap();
        assert_eq!(frags[0][0] & 0x0f, 8, "first fragment: every option");
        for f in &frags[1..] {
            assert_eq!(f[0] & 0x0f, 6, "later: 20 + 4 copied bytes");
            assert_eq!(&f[20..24], &[0x94, 4, 0, 0]);
            assert_eq!(checksum(&f[..24]), 0);
        }
        assert_eq!(reassemble(&frags), p[32..]);
        let mut bad = p.clone();
        bad[22] = 40; // an option longer than the header
        assert_eq!(fragment(&bad, 48), None);
        assert_eq!(fragment(&p, 32 + 7), None, "no room for 8 bytes of data");
    }

    #[test]
    fn frag_needed_carries_the_mtu_and_the_start_of_the_packet() {
        let p = packet(1480, true);
        assert!(wants_frag_needed(&p));
        assert!(!wants_frag_needed(&packet(1480, false)));
        let m = frag_needed(&p, 1472).unwrap();
        assert_eq!(
            &m[..2],
            &[3, 4],
            "Destination Unreachable, Fragmentation Needed"
        );
        assert_eq!(u16::from_be_bytes([m[6], m[7]]), 1472);
        assert_eq!(&m[8..], &p[..28], "IP header and 8 bytes of data");
        assert_eq!(checksum(&m), 0, "ICMP checksum verifies");
    }

    #[test]
    fn no_frag_needed_about_an_icmp_error_or_a_later_fragment() {
        let mut err = packet(1480, true);
        err[9] = 1; // ICMP
        err[20] = 3; // Destination Unreachable
        assert!(!wants_frag_needed(&err), "never an ICMP error about one");
        err[20] = 8; // Echo Request: a query, not an error
        assert!(wants_frag_needed(&err));
        let mut later = packet(1480, true);
        later[6..8].copy_from_slice(&(IP_DF | 100).to_be_bytes());
        assert!(!wants_frag_needed(&later), "only about a first fragment");
    }

    #[test]
    fn frag_needed_is_limited_per_source() {
        let mut l = FragNeededLimiter::default();
        let t = Instant::now();
        let a = Ipv4Addr::new(10, 1, 1, 10);
        let b = Ipv4Addr::new(10, 1, 1, 11);
        assert!(l.allow(t, a));
        assert!(!l.allow(t + Duration::from_millis(100), a));
        assert!(l.allow(t + Duration::from_millis(100), b), "per source");
        assert!(l.allow(t + FRAG_NEEDED_INTERVAL, a));
        for i in 0..MAX_LIMITED_SOURCES as u32 {
            l.allow(t, Ipv4Addr::from(0x0a02_0000 + i));
        }
        let c = Ipv4Addr::new(10, 9, 9, 9);
        assert!(!l.allow(t, c), "table full of recent sources");
        assert!(l.allow(t + FRAG_NEEDED_INTERVAL * 2, c), "stale ones go");
    }
}
