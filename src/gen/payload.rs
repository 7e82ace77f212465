//! The mcrgen payload: a fixed header followed by a pattern derived from
//! the sequence number.
//!
//! Layout, all integers big-endian (network byte order):
//!
//! | offset | size | field                                            |
//! |--------|------|--------------------------------------------------|
//! | 0      | 4    | magic `b"MCRG"`                                  |
//! | 4      | 1    | version (1)                                      |
//! | 5      | 1    | flags (0; ignored by receivers)                  |
//! | 6      | 2    | reserved (0; ignored by receivers)               |
//! | 8      | 4    | stream id                                        |
//! | 12     | 8    | sequence number, 0, 1, 2, ...                    |
//! | 20     | 8    | send time, ns since the epoch (`CLOCK_REALTIME`) |
//!
//! Byte `i` of the payload for `i >= HEADER_LEN` is
//! `(seq as u8).wrapping_add(i as u8)`. Because the pattern only depends on
//! `seq mod 256`, both sides can produce or check it with one `memcpy` /
//! `memcmp` against a precomputed ramp instead of a per-byte loop.

/// Size of the fixed header; the smallest valid payload.
pub const HEADER_LEN: usize = 28;

/// Largest UDP payload an IPv4 datagram can carry.
pub const MAX_PAYLOAD: usize = 65_507;

/// First four bytes of every mcrgen payload.
pub const MAGIC: [u8; 4] = *b"MCRG";

/// Header format version this code writes and accepts.
pub const VERSION: u8 = 1;

/// How many pattern bytes at each end are always checked. Checking both
/// ends catches truncation and most rewrites without touching every byte.
pub const QUICK_CHECK_LEN: usize = 16;

const OFF_STREAM: usize = 8;
const OFF_SEQ: usize = 12;
const OFF_TS: usize = 20;

/// The decoded fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub flags: u8,
    pub stream_id: u32,
    pub seq: u64,
    pub timestamp_ns: u64,
}

impl Header {
    /// Writes the header into the first [`HEADER_LEN`] bytes of `buf`.
    ///
    /// Panics if `buf` is shorter than the header: callers size their
    /// buffers from validated options, so a short buffer is a bug here.
    pub fn encode(&self, buf: &mut [u8]) {
        let h = &mut buf[..HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC);
        h[4] = VERSION;
        h[5] = self.flags;
        h[6..8].copy_from_slice(&[0, 0]);
        h[OFF_STREAM..OFF_SEQ].copy_from_slice(&self.stream_id.to_be_bytes());
        h[OFF_SEQ..OFF_TS].copy_from_slice(&self.seq.to_be_bytes());
        h[OFF_TS..HEADER_LEN].copy_from_slice(&self.timestamp_ns.to_be_bytes());
    }

    /// Decodes the header, or `None` if `buf` is not an mcrgen payload
    /// (too short, wrong magic or an unknown version).
    pub fn decode(buf: &[u8]) -> Option<Header> {
        let h = buf.get(..HEADER_LEN)?;
        if h[0..4] != MAGIC || h[4] != VERSION {
            return None;
        }
        Some(Header {
            flags: h[5],
            stream_id: u32::from_be_bytes(h[OFF_STREAM..OFF_SEQ].try_into().ok()?),
            seq: u64::from_be_bytes(h[OFF_SEQ..OFF_TS].try_into().ok()?),
            timestamp_ns: u64::from_be_bytes(h[OFF_TS..HEADER_LEN].try_into().ok()?),
        })
    }
}

/// Overwrites only the send timestamp: the sender stamps a whole batch
/// right before handing it to the kernel, after the rest is filled in.
pub fn set_timestamp(buf: &mut [u8], timestamp_ns: u64) {
    buf[OFF_TS..HEADER_LEN].copy_from_slice(&timestamp_ns.to_be_bytes());
}

/// Overwrites only the sequence number (the sender reuses its buffers).
pub fn set_seq(buf: &mut [u8], seq: u64) {
    buf[OFF_SEQ..OFF_TS].copy_from_slice(&seq.to_be_bytes());
}

/// What a received datagram turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Not an mcrgen payload at all.
    Foreign,
    /// A valid header whose pattern does not match its sequence number.
    Corrupt(Header),
    /// A valid header and pattern.
    Valid(Header),
}

/// Precomputed ramp `0, 1, 2, ..., 255, 0, 1, ...` long enough that the
/// pattern of any payload up to `max_len` bytes is one contiguous slice.
#[derive(Clone, Debug)]
pub struct Pattern {
    ramp: Vec<u8>,
    max_len: usize,
}

impl Pattern {
    /// A pattern source for payloads of up to `max_len` bytes.
    pub fn new(max_len: usize) -> Pattern {
        let ramp = (0..max_len + 256).map(|i| i as u8).collect();
        Pattern { ramp, max_len }
    }

    /// The expected bytes `payload[from..to]` of the packet with `seq`.
    fn expected(&self, seq: u64, from: usize, to: usize) -> &[u8] {
        let base = usize::from(seq as u8);
        &self.ramp[base + from..base + to]
    }

    /// Fills `payload[HEADER_LEN..]` with the pattern for `seq`.
    pub fn fill(&self, seq: u64, payload: &mut [u8]) {
        let len = payload.len().min(self.max_len);
        if len > HEADER_LEN {
            payload[HEADER_LEN..len].copy_from_slice(self.expected(seq, HEADER_LEN, len));
        }
    }

    /// Checks the pattern after the header: always the first and last
    /// [`QUICK_CHECK_LEN`] bytes, everything when `full`. Payloads longer
    /// than this pattern was built for never match.
    pub fn check(&self, seq: u64, payload: &[u8], full: bool) -> bool {
        let len = payload.len();
        if len > self.max_len {
            return false;
        }
        if len <= HEADER_LEN {
            return true;
        }
        if full || len - HEADER_LEN <= 2 * QUICK_CHECK_LEN {
            return payload[HEADER_LEN..] == *self.expected(seq, HEADER_LEN, len);
        }
        let head_end = HEADER_LEN + QUICK_CHECK_LEN;
        let tail_start = len - QUICK_CHECK_LEN;
        payload[HEADER_LEN..head_end] == *self.expected(seq, HEADER_LEN, head_end)
            && payload[tail_start..] == *self.expected(seq, tail_start, len)
    }

    /// Classifies a received datagram.
    pub fn classify(&self, payload: &[u8], full: bool) -> Kind {
        match Header::decode(payload) {
            None => Kind::Foreign,
            Some(h) if self.check(h.seq, payload, full) => Kind::Valid(h),
            Some(h) => Kind::Corrupt(h),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pattern: &Pattern, seq: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        Header {
            flags: 0,
            stream_id: 7,
            seq,
            timestamp_ns: 123,
        }
        .encode(&mut buf);
        pattern.fill(seq, &mut buf);
        buf
    }

    #[test]
    fn header_round_trip() {
        let h = Header {
            flags: 0xa5,
            stream_id: 0xdead_beef,
            seq: 0x0102_0304_0506_0708,
            timestamp_ns: u64::MAX - 5,
        };
        let mut buf = [0u8; HEADER_LEN];
        h.encode(&mut buf);
        assert_eq!(&buf[..4], b"MCRG");
        assert_eq!(buf[4], VERSION);
        assert_eq!(&buf[12..20], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(Header::decode(&buf), Some(h));

        set_timestamp(&mut buf, 42);
        set_seq(&mut buf, 9);
        let d = Header::decode(&buf).expect("still valid");
        assert_eq!((d.seq, d.timestamp_ns, d.stream_id), (9, 42, 0xdead_beef));
    }

    #[test]
    fn pattern_is_seq_plus_offset() {
        let p = Pattern::new(2000);
        let buf = packet(&p, 300, 1000);
        for (i, &b) in buf.iter().enumerate().skip(HEADER_LEN) {
            assert_eq!(b, (300u64 as u8).wrapping_add(i as u8), "byte {i}");
        }
    }

    #[test]
    fn foreign_detection() {
        let p = Pattern::new(2000);
        let good = packet(&p, 1, 100);
        assert!(matches!(p.classify(&good, true), Kind::Valid(_)));

        assert_eq!(p.classify(&good[..HEADER_LEN - 1], true), Kind::Foreign);
        assert_eq!(p.classify(&[], false), Kind::Foreign);
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        assert_eq!(p.classify(&bad_magic, false), Kind::Foreign);
        let mut bad_version = good.clone();
        bad_version[4] = VERSION + 1;
        assert_eq!(p.classify(&bad_version, false), Kind::Foreign);
        // A header-only payload has no pattern to get wrong.
        assert!(matches!(
            p.classify(&good[..HEADER_LEN], false),
            Kind::Valid(_)
        ));
    }

    #[test]
    fn corrupt_detection() {
        let p = Pattern::new(2000);
        let good = packet(&p, 77, 1000);

        let mut first = good.clone();
        first[HEADER_LEN] ^= 1;
        assert!(matches!(p.classify(&first, false), Kind::Corrupt(_)));

        let mut last = good.clone();
        last[999] ^= 0x80;
        assert!(matches!(p.classify(&last, false), Kind::Corrupt(_)));

        // The middle is only looked at with a full check.
        let mut middle = good.clone();
        middle[500] ^= 1;
        assert!(matches!(p.classify(&middle, false), Kind::Valid(_)));
        assert!(matches!(p.classify(&middle, true), Kind::Corrupt(_)));

        // A seq rewritten without the pattern no longer matches.
        let mut reseq = good.clone();
        set_seq(&mut reseq, 78);
        assert!(matches!(p.classify(&reseq, false), Kind::Corrupt(_)));

        // Truncation shifts the tail so the quick check catches it.
        assert!(matches!(p.classify(&good[..990], false), Kind::Valid(_)));
        let mut trunc = good[..990].to_vec();
        trunc.extend_from_slice(&good[991..]);
        assert!(matches!(p.classify(&trunc, false), Kind::Corrupt(_)));

        // Short payloads (pattern under 32 bytes) are always fully checked.
        let mut short = packet(&p, 5, HEADER_LEN + 20);
        short[HEADER_LEN + 10] ^= 1;
        assert!(matches!(p.classify(&short, false), Kind::Corrupt(_)));

        // Longer than the receiver's pattern: cannot be ours.
        let small = Pattern::new(500);
        assert!(matches!(small.classify(&good, false), Kind::Corrupt(_)));
    }
}
