//! Receiver bookkeeping: which sequence numbers arrived per stream (for
//! loss, duplicates and reordering) and the latency distribution.
//!
//! Everything here has bounded memory: the latency histogram is a fixed
//! array, and the seen-set grows by one 8 KiB chunk per 65 536 sequence
//! numbers up to a cap. Nothing allocates per packet.

use serde::{Deserialize, Serialize};

use super::payload::{Header, Kind};

/// Values below `2 * SUB` ns get a bucket each; above that every power of
/// two is split into `SUB` buckets, so a bucket is at most 1/64 (1.6 %)
/// of its value wide. That is finer than a linear 1 µs grid at the low
/// latencies loopback and veth produce, and covers any `u64` in 30 KiB.
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = ((64 - SUB_BITS + 1) as usize) << SUB_BITS;

/// Latency histogram over nanoseconds with fixed memory.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    samples: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            samples: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

fn bucket_of(v: u64) -> usize {
    if v < 2 * SUB {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros();
    let shift = exp - SUB_BITS;
    ((shift as usize) << SUB_BITS) + (v >> shift) as usize
}

/// Inclusive lower and exclusive upper bound of a bucket's values.
fn bucket_range(idx: usize) -> (u64, u128) {
    if (idx as u64) < 2 * SUB {
        return (idx as u64, idx as u128 + 1);
    }
    let shift = (idx >> SUB_BITS) - 1;
    let mant = (idx as u64 & (SUB - 1)) + SUB;
    (mant << shift, u128::from(mant + 1) << shift)
}

impl Histogram {
    pub fn record(&mut self, ns: u64) {
        self.counts[bucket_of(ns)] += 1;
        self.samples += 1;
        self.sum += u128::from(ns);
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The value at quantile `q` (0..=1) in ns: the midpoint of the bucket
    /// holding the sample of that rank, clamped to the exact min and max
    /// so that p0 and p100 are exact.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.samples == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.samples as f64).ceil() as u64).clamp(1, self.samples);
        // The extreme ranks are known exactly.
        if rank == 1 {
            return Some(self.min as f64);
        }
        if rank == self.samples {
            return Some(self.max as f64);
        }
        let mut seen = 0u64;
        for (idx, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = bucket_range(idx);
                let mid = (lo as f64 + hi as f64 - 1.0) / 2.0;
                return Some(mid.clamp(self.min as f64, self.max as f64));
            }
        }
        Some(self.max as f64)
    }

    /// Summary in microseconds; all zero when there are no samples.
    pub fn summary_us(&self) -> LatencySummary {
        if self.samples == 0 {
            return LatencySummary::default();
        }
        let us = |ns: f64| ns / 1000.0;
        let q = |p: f64| us(self.quantile(p).unwrap_or(0.0));
        LatencySummary {
            samples: self.samples,
            min: us(self.min as f64),
            mean: us(self.sum as f64 / self.samples as f64),
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            max: us(self.max as f64),
        }
    }
}

/// Latency distribution in microseconds. With no samples every field is 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub samples: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

const CHUNK_BITS: u32 = 16;
const CHUNK_WORDS: usize = 1 << (CHUNK_BITS - 6);

/// Chunks kept per stream: 2^14 × 2^16 = 2^30 (~10^9) sequence numbers,
/// 128 MiB at most. Beyond that the lowest chunk is dropped, so only
/// duplicates of very old packets go unnoticed.
pub const MAX_CHUNKS: usize = 1 << 14;

/// Set of seen sequence numbers: a bitmap split into chunks, allocated on
/// first use and kept sorted by chunk number, so a sparse or huge seq
/// only costs the chunks it touches.
#[derive(Default)]
pub struct SeqSet {
    chunks: Vec<(u64, Box<[u64]>)>,
}

impl SeqSet {
    /// Marks `seq` seen; returns whether it was new.
    pub fn insert(&mut self, seq: u64) -> bool {
        let key = seq >> CHUNK_BITS;
        let bit = seq & ((1 << CHUNK_BITS) - 1);
        // In-order traffic always hits the newest chunk.
        let idx = match self.chunks.last() {
            Some((k, _)) if *k == key => self.chunks.len() - 1,
            _ => match self.chunks.binary_search_by_key(&key, |(k, _)| *k) {
                Ok(i) => i,
                Err(i) => self.add_chunk(i, key),
            },
        };
        let word = &mut self.chunks[idx].1[(bit >> 6) as usize];
        let mask = 1u64 << (bit & 63);
        let new = *word & mask == 0;
        *word |= mask;
        new
    }

    fn add_chunk(&mut self, mut at: usize, key: u64) -> usize {
        if self.chunks.len() >= MAX_CHUNKS {
            self.chunks.remove(0);
            at = at.saturating_sub(1);
        }
        self.chunks
            .insert(at, (key, vec![0u64; CHUNK_WORDS].into_boxed_slice()));
        at
    }

    pub fn chunks(&self) -> usize {
        self.chunks.len()
    }
}

/// How one valid packet counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    InOrder,
    Reordered,
    Duplicate,
}

/// Per-stream counters.
pub struct StreamTally {
    pub stream_id: u32,
    seen: SeqSet,
    pub unique: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub min_seq: u64,
    pub max_seq: u64,
}

impl StreamTally {
    pub fn new(stream_id: u32) -> StreamTally {
        StreamTally {
            stream_id,
            seen: SeqSet::default(),
            unique: 0,
            duplicates: 0,
            reordered: 0,
            min_seq: u64::MAX,
            max_seq: 0,
        }
    }

    pub fn record(&mut self, seq: u64) -> Arrival {
        if !self.seen.insert(seq) {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        let first = self.unique == 0;
        self.unique += 1;
        self.min_seq = self.min_seq.min(seq);
        if first || seq > self.max_seq {
            self.max_seq = seq;
            Arrival::InOrder
        } else {
            self.reordered += 1;
            Arrival::Reordered
        }
    }

    /// With `expect` (the sender's count), everything of `0..expect` not
    /// seen; otherwise the gaps between the lowest and highest seq seen,
    /// which cannot see loss at either end of the run.
    pub fn lost(&self, expect: Option<u64>) -> u64 {
        match expect {
            Some(n) => n.saturating_sub(self.unique),
            None if self.unique == 0 => 0,
            None => (self.max_seq - self.min_seq + 1).saturating_sub(self.unique),
        }
    }

    pub fn summary(&self, expect: Option<u64>) -> StreamSummary {
        StreamSummary {
            stream_id: self.stream_id,
            unique: self.unique,
            duplicates: self.duplicates,
            reordered: self.reordered,
            lost: self.lost(expect),
            first_seq: (self.unique > 0).then_some(self.min_seq),
            last_seq: (self.unique > 0).then_some(self.max_seq),
        }
    }
}

/// One stream's share of a receive report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamSummary {
    pub stream_id: u32,
    pub unique: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub lost: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
}

/// Streams tracked at most; packets of further stream ids count as
/// foreign so that garbage with a valid magic cannot exhaust memory.
pub const MAX_STREAMS: usize = 1024;

/// Everything the receiver counts.
#[derive(Default)]
pub struct Tally {
    streams: Vec<StreamTally>,
    last_stream: usize,
    pub received: u64,
    pub foreign: u64,
    pub corrupt: u64,
    pub bytes: u64,
    pub latency: Histogram,
}

impl Tally {
    /// Counts one datagram of `len` bytes. `rx_ns` is its receive time
    /// (ns since the epoch), used for the latency of valid packets;
    /// a send time after it (clock skew between hosts) counts as 0.
    pub fn record(&mut self, kind: Kind, len: usize, rx_ns: u64) {
        let hdr: Header = match kind {
            Kind::Foreign => {
                self.foreign += 1;
                return;
            }
            Kind::Corrupt(_) => {
                // Not used for seq accounting: a damaged packet was not
                // delivered, and its header may be damaged too.
                self.received += 1;
                self.corrupt += 1;
                self.bytes += len as u64;
                return;
            }
            Kind::Valid(h) => h,
        };
        let Some(stream) = self.stream(hdr.stream_id) else {
            self.foreign += 1;
            return;
        };
        stream.record(hdr.seq);
        self.received += 1;
        self.bytes += len as u64;
        self.latency.record(rx_ns.saturating_sub(hdr.timestamp_ns));
    }

    fn stream(&mut self, id: u32) -> Option<&mut StreamTally> {
        let idx = match self.streams.get(self.last_stream) {
            Some(s) if s.stream_id == id => self.last_stream,
            _ => match self.streams.iter().position(|s| s.stream_id == id) {
                Some(i) => i,
                None if self.streams.len() < MAX_STREAMS => {
                    self.streams.push(StreamTally::new(id));
                    self.streams.len() - 1
                }
                None => return None,
            },
        };
        self.last_stream = idx;
        self.streams.get_mut(idx)
    }

    pub fn streams(&self) -> &[StreamTally] {
        &self.streams
    }

    pub fn unique(&self) -> u64 {
        self.streams.iter().map(|s| s.unique).sum()
    }

    pub fn duplicates(&self) -> u64 {
        self.streams.iter().map(|s| s.duplicates).sum()
    }

    pub fn reordered(&self) -> u64 {
        self.streams.iter().map(|s| s.reordered).sum()
    }

    /// Total loss. With `expect` and nothing received at all, the whole
    /// expected stream is lost.
    pub fn lost(&self, expect: Option<u64>) -> u64 {
        if self.streams.is_empty() {
            return expect.unwrap_or(0);
        }
        self.streams.iter().map(|s| s.lost(expect)).sum()
    }

    pub fn first_seq(&self) -> Option<u64> {
        self.streams
            .iter()
            .filter(|s| s.unique > 0)
            .map(|s| s.min_seq)
            .min()
    }

    pub fn last_seq(&self) -> Option<u64> {
        self.streams
            .iter()
            .filter(|s| s.unique > 0)
            .map(|s| s.max_seq)
            .max()
    }
}

/// Loss as a percentage of what should have arrived.
pub fn loss_pct(lost: u64, unique: u64) -> f64 {
    let total = lost + unique;
    if total == 0 {
        0.0
    } else {
        lost as f64 * 100.0 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(stream_id: u32, seq: u64, ts: u64) -> Kind {
        Kind::Valid(Header {
            flags: 0,
            stream_id,
            seq,
            timestamp_ns: ts,
        })
    }

    #[test]
    fn loss_dup_reorder_from_hand_made_sequence() {
        let mut s = StreamTally::new(0);
        let got: Vec<Arrival> = [0, 1, 3, 2, 2, 5].iter().map(|&q| s.record(q)).collect();
        use Arrival::*;
        assert_eq!(
            got,
            [InOrder, InOrder, InOrder, Reordered, Duplicate, InOrder]
        );
        assert_eq!((s.unique, s.duplicates, s.reordered), (5, 1, 1));
        assert_eq!(s.lost(Some(7)), 2);
        // Without expect only the gap (4) is visible.
        assert_eq!(s.lost(None), 1);
        assert_eq!(s.summary(None).first_seq, Some(0));
        assert_eq!(s.summary(None).last_seq, Some(5));
    }

    #[test]
    fn loss_without_expect_starts_at_first_seen() {
        let mut s = StreamTally::new(0);
        for q in [100, 101, 104, 103] {
            s.record(q);
        }
        assert_eq!(s.lost(None), 1);
        assert_eq!(s.reordered, 1);
        // Seeing more than expected (a restarted sender) is not negative.
        assert_eq!(s.lost(Some(2)), 0);
    }

    #[test]
    fn tally_counts_kinds_and_streams() {
        let mut t = Tally::default();
        t.record(Kind::Foreign, 10, 0);
        t.record(valid(1, 0, 1_000), 100, 11_000);
        t.record(valid(1, 1, 1_000), 100, 21_000);
        t.record(valid(2, 0, 1_000), 100, 6_000);
        t.record(valid(2, 0, 1_000), 100, 6_000);
        t.record(
            Kind::Corrupt(Header {
                flags: 0,
                stream_id: 1,
                seq: 2,
                timestamp_ns: 0,
            }),
            100,
            0,
        );
        // Send time after receive time: clamped, not wrapped.
        t.record(valid(2, 1, 9_000), 100, 8_000);

        assert_eq!(t.streams().len(), 2);
        assert_eq!(t.foreign, 1);
        assert_eq!(t.corrupt, 1);
        assert_eq!(t.received, 6);
        assert_eq!(t.unique(), 4);
        assert_eq!(t.duplicates(), 1);
        assert_eq!(t.bytes, 600);
        assert_eq!(t.lost(Some(3)), 2);
        assert_eq!(t.lost(None), 0);
        assert_eq!((t.first_seq(), t.last_seq()), (Some(0), Some(1)));
        let l = t.latency.summary_us();
        assert_eq!(l.samples, 5);
        assert_eq!((l.min, l.max), (0.0, 20.0));
    }

    #[test]
    fn empty_tally_with_expect_lost_everything() {
        let t = Tally::default();
        assert_eq!(t.lost(Some(10)), 10);
        assert_eq!(t.lost(None), 0);
        assert_eq!(loss_pct(10, 0), 100.0);
        assert_eq!(loss_pct(0, 0), 0.0);
        assert_eq!(loss_pct(1, 3), 25.0);
        assert_eq!(t.latency.summary_us(), LatencySummary::default());
    }

    #[test]
    fn too_many_streams_are_foreign() {
        let mut t = Tally::default();
        for id in 0..MAX_STREAMS as u32 + 5 {
            t.record(valid(id, 0, 0), 50, 0);
        }
        assert_eq!(t.streams().len(), MAX_STREAMS);
        assert_eq!(t.foreign, 5);
    }

    #[test]
    fn seqset_sparse_and_large() {
        let mut s = SeqSet::default();
        assert!(s.insert(1_000_000_000));
        assert!(s.insert(5));
        assert!(s.insert(70_000));
        assert!(!s.insert(1_000_000_000));
        assert!(!s.insert(5));
        assert!(s.insert(u64::MAX));
        assert!(!s.insert(u64::MAX));
        assert_eq!(s.chunks(), 4);
        for q in 0..200_000 {
            s.insert(q);
        }
        assert!(!s.insert(199_999));
        assert_eq!(s.chunks(), 6);
    }

    #[test]
    fn seqset_memory_is_capped() {
        let mut s = SeqSet::default();
        for k in 0..MAX_CHUNKS as u64 + 3 {
            s.insert(k << CHUNK_BITS);
        }
        assert_eq!(s.chunks(), MAX_CHUNKS);
        // The oldest chunks went; the newest are still deduplicated.
        assert!(s.insert(0));
        assert!(!s.insert((MAX_CHUNKS as u64 + 2) << CHUNK_BITS));
    }

    #[test]
    fn histogram_buckets_are_contiguous() {
        let mut prev_hi = 0u128;
        for idx in 0..BUCKETS {
            let (lo, hi) = bucket_range(idx);
            assert_eq!(u128::from(lo), prev_hi, "bucket {idx}");
            assert!(hi > u128::from(lo));
            assert_eq!(bucket_of(lo), idx);
            assert_eq!(bucket_of((hi - 1) as u64), idx);
            // Width at most 1/64 of the value above the exact range.
            if lo >= 2 * SUB {
                assert!((hi - u128::from(lo)) * 64 <= u128::from(lo));
            }
            prev_hi = hi;
        }
        assert_eq!(prev_hi, 1u128 << 64);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn histogram_percentiles_on_known_data() {
        let mut h = Histogram::default();
        // 1..=1000 µs, one sample each.
        for us in 1..=1000u64 {
            h.record(us * 1000);
        }
        let s = h.summary_us();
        assert_eq!(s.samples, 1000);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.max, 1000.0);
        assert!((s.mean - 500.5).abs() < 1e-9);
        let near = |got: f64, want: f64| (got - want).abs() <= want / 64.0;
        assert!(near(s.p50, 500.0), "p50 {}", s.p50);
        assert!(near(s.p90, 900.0), "p90 {}", s.p90);
        assert!(near(s.p99, 990.0), "p99 {}", s.p99);
        assert!(near(s.p999, 999.0), "p999 {}", s.p999);
        assert_eq!(h.quantile(0.0), Some(1000.0));
        assert_eq!(h.quantile(1.0), Some(1_000_000.0));
    }

    #[test]
    fn histogram_small_values_exact_and_skewed_data() {
        let mut h = Histogram::default();
        for _ in 0..99 {
            h.record(50);
        }
        h.record(5_000_000_000);
        assert_eq!(h.quantile(0.5), Some(50.0));
        assert_eq!(h.quantile(0.99), Some(50.0));
        assert_eq!(h.quantile(0.999), Some(5_000_000_000.0));
        assert_eq!(Histogram::default().quantile(0.5), None);
    }
}
