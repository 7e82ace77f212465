//! The worker's half of early drop (`sys::xdp`): it arms the XDP program on
//! its input with a limit taken from its ring's size, counts the ring
//! bytes (`xdp::ring_cost`) of the multicast UDP frames it reads from the
//! ring, and publishes that count after each drain with a plain store. The
//! program compares it with what it passed and drops while the difference,
//! the ring's backlog, is over the limit: the worker need not run for
//! dropping to begin, which is what overload needs (the worker is the one
//! starved).
//!
//! The limit follows what the ring really holds: the kernel hands a block
//! over when it is full or when its timeout expires, so at a rate that
//! does not fill a block per timeout each block carries less than its
//! size; the worker measures the fill of the blocks it reads in place.
//!
//! The count is kept honest here: whenever a drain leaves no frame
//! waiting, the worker sets its count to the program's (a frame the socket
//! filter refused, or the ring had no room for, was passed but will never
//! be read); between such moments, the ring's own drops (read each stats
//! tick) are added at the cost of the last frame read. A new worker
//! resyncs at start, as its predecessor's count means nothing to it; the
//! supervisor disarms the program when a worker exits, and a worker
//! disarms it on its way out, so no input is left dropping without a
//! reader.

use crate::sys::packet_ring::{Geometry, RxRing};
use crate::sys::xdp::{ring_cost, PressureMap};

/// How much of the ring the backlog may fill before the program drops.
/// The rest is for what the estimate cannot see: blocks still held by
/// sends that read from them in place, bursts between two drains. Three
/// quarters by default; `MCR_EARLY_DROP_LIMIT` (read once at worker
/// start, for A/B runs) takes a fraction `N/D` of the ring or `-1block`
/// (the whole ring but one block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Share {
    Fraction(u64, u64),
    AllButOneBlock,
}

impl Share {
    const DEFAULT: Share = Share::Fraction(3, 4);

    /// `None` for a value that names no share of the ring (zero, more
    /// than the whole ring, not a fraction).
    fn parse(v: &str) -> Option<Share> {
        let v = v.trim();
        if v.eq_ignore_ascii_case("-1block") {
            return Some(Share::AllButOneBlock);
        }
        let (n, d) = v.split_once('/')?;
        let (n, d): (u64, u64) = (n.trim().parse().ok()?, d.trim().parse().ok()?);
        (n > 0 && n <= d && d <= 1024).then_some(Share::Fraction(n, d))
    }

    fn from_env() -> Share {
        match std::env::var("MCR_EARLY_DROP_LIMIT") {
            Err(_) => Share::DEFAULT,
            Ok(v) => Share::parse(&v).unwrap_or_else(|| {
                tracing::warn!(value = %v, "MCR_EARLY_DROP_LIMIT is not N/D or -1block; using 3/4");
                Share::DEFAULT
            }),
        }
    }
}

/// The backlog, in ring bytes, above which the program drops: `share` of
/// what the ring holds when each of its blocks carries `fill` bytes of
/// frames.
fn limit(geo: Geometry, fill: u64, share: Share) -> u64 {
    let fill = fill.min(u64::from(geo.block_size));
    let blocks = u64::from(geo.blocks);
    match share {
        Share::Fraction(n, d) => blocks * fill * n / d.max(1),
        Share::AllButOneBlock => blocks.saturating_sub(1) * fill,
    }
    .max(1)
}

/// The least fill assumed for a block, as a fraction of its size: blocks
/// read at low rates were handed over by their timeout nearly empty, and
/// a burst after such a lull must still find room for a quarter of the
/// ring before the program drops.
const FILL_FLOOR_DEN: u64 = 4;

pub(super) struct EarlyDrop {
    map: PressureMap,
    /// Bytes of passed frames read or known gone, in the program's count.
    consumed: u64,
    /// The cost of the last frame counted: the estimate for ring drops,
    /// which the kernel counts in frames.
    last_cost: u64,
    /// Bytes before the link-layer header of each ring frame (the
    /// virtio_net_hdr).
    prefix: usize,
    geo: Geometry,
    share: Share,
    /// How many bytes of counted frames a block holds, averaged over the
    /// blocks read in place: the kernel hands a block over when it is full
    /// or when its timeout (`rx_block_ms`) expires, so at a rate that fills
    /// less than a block per timeout the ring holds fewer bytes than its
    /// size, and the limit must follow or the ring overflows first.
    fill: u64,
    /// The block being read in place and the bytes counted in it so far.
    block: Option<u16>,
    in_block: u64,
    /// The map's drop counter when this worker started: the counter lives
    /// as long as the map (the supervisor's), the worker reports its own.
    base: u64,
}

impl EarlyDrop {
    pub(super) fn new(map: PressureMap, geo: Geometry, prefix: usize) -> Self {
        let consumed = map.passed();
        map.set_consumed(consumed);
        let fill = u64::from(geo.block_size);
        let share = Share::from_env();
        map.arm(limit(geo, fill, share));
        let base = map.drops();
        EarlyDrop {
            map,
            consumed,
            last_cost: 0,
            prefix,
            geo,
            share,
            fill,
            block: None,
            in_block: 0,
            base,
        }
    }

    /// A frame read in place from ring block `block`: counted as by
    /// `read`, and the block's fill measured.
    #[inline]
    pub(super) fn read_in_block(&mut self, block: u16, frame: &[u8]) {
        if self.block != Some(block) {
            if self.block.is_some() {
                self.block_done();
            }
            self.block = Some(block);
            self.in_block = 0;
        }
        let before = self.consumed;
        self.read(frame);
        self.in_block += self.consumed.wrapping_sub(before);
    }

    /// The block read in place is finished: fold its fill into the average
    /// (a quarter weight per block, so a change of rate shows within a few
    /// blocks), never below the floor.
    fn block_done(&mut self) {
        let size = u64::from(self.geo.block_size);
        let filled = self.in_block.clamp(size / FILL_FLOOR_DEN, size);
        self.fill = (self.fill * 3 + filled) / 4;
    }

    /// A frame read from the ring (`frame` as the ring holds it, prefix
    /// first): count it if the program counted it.
    #[inline]
    pub(super) fn read(&mut self, frame: &[u8]) {
        if let Some(cost) = frame.get(self.prefix..).and_then(ring_cost) {
            self.consumed = self.consumed.wrapping_add(cost);
            self.last_cost = cost;
        }
    }

    /// After a drain: publish the count. If the ring has nothing waiting
    /// for the worker, every frame the program passed has been read or is
    /// gone (but for those in the block the kernel is still filling), so
    /// the count becomes the program's. The program's count is read before
    /// the ring is looked at: a frame it passes in between is then read,
    /// and counted, later.
    pub(super) fn update(&mut self, rx: &RxRing) {
        let passed = self.map.passed();
        if !rx.ready() {
            self.consumed = passed;
        }
        self.map.set_consumed(self.consumed);
        let limit = limit(self.geo, self.fill, self.share);
        if limit != self.map.limit() {
            self.map.arm(limit);
        }
    }

    /// The ring dropped `frames` frames (`PACKET_STATISTICS`) since the
    /// last call: they were passed and will never be read.
    pub(super) fn ring_dropped(&mut self, frames: u64) {
        self.consumed = self
            .consumed
            .wrapping_add(frames.saturating_mul(self.last_cost));
    }

    /// Frames the program dropped while this worker ran.
    pub(super) fn drops(&self) -> u64 {
        self.map.drops().saturating_sub(self.base)
    }
}

impl Drop for EarlyDrop {
    /// On the way out (an unwinding panic included): never leave the input
    /// dropping with no reader. A killed worker cannot; the supervisor
    /// disarms the program then.
    fn drop(&mut self) {
        self.map.disarm();
    }
}

#[cfg(test)]
mod tests {
    use super::{limit, Share};
    use crate::sys::packet_ring::Geometry;

    fn geo(block_size: u32, blocks: u32) -> Geometry {
        Geometry {
            block_size,
            blocks,
            timeout_ms: 1,
        }
    }

    /// A ring frame with no prefix: Ethernet, IPv4 UDP to 239.1.2.3 with
    /// `payload` bytes of payload.
    fn frame(payload: u16) -> Vec<u8> {
        let mut f = vec![
            0x01, 0x00, 0x5e, 0x01, 0x02, 0x03, 0x02, 0, 0, 0, 0, 1, 0x08, 0,
        ];
        let total = 28 + payload;
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            17,
        ]);
        f.extend_from_slice(&[0, 0, 10, 0, 0, 1, 239, 1, 2, 3]);
        f.extend_from_slice(&[0x13, 0x88, 0x13, 0x88, 0, 0, 0, 0]);
        f.resize(14 + usize::from(total), 0);
        f
    }

    #[test]
    fn a_worker_counts_what_it_reads_and_lowers_the_limit_for_blocks_handed_over_part_full() {
        let map = match crate::sys::xdp::PressureMap::create() {
            Ok(m) => m,
            Err(e) => {
                eprintln!("SKIP: cannot create a BPF map ({e}); run as root");
                assert_ne!(std::env::var("CI").as_deref(), Ok("true"));
                return;
            }
        };
        let g = geo(256 * 1024, 8);
        let mut e = super::EarlyDrop::new(map, g, 0);
        assert_eq!(
            e.map.limit(),
            limit(g, 256 * 1024, Share::DEFAULT),
            "armed for full blocks"
        );
        let f = frame(1000);
        let cost = crate::sys::xdp::ring_cost(&f).expect("of the class");
        // 100 frames in each of 8 blocks: about 44 % of a block each.
        for b in 0..8u16 {
            for _ in 0..100 {
                e.read_in_block(b, &f);
            }
        }
        e.read_in_block(8, &f);
        assert_eq!(e.consumed, 801 * cost);
        let per_block = 100 * cost;
        assert!(
            e.fill < 256 * 1024 && e.fill.abs_diff(per_block) < per_block / 5,
            "fill {} after blocks of {per_block}",
            e.fill
        );
        // Nearly empty blocks (a lull) never bring it under the floor.
        for b in 9..40u16 {
            e.read_in_block(b, &f);
        }
        assert!(e.fill >= 64 * 1024, "fill {}", e.fill);
        // Ring drops count as consumed at the last frame's cost.
        let before = e.consumed;
        e.ring_dropped(3);
        assert_eq!(e.consumed, before + 3 * cost);
        // A frame of another class is not counted.
        let mut unicast = f.clone();
        unicast[30] = 10;
        e.read_in_block(40, &unicast);
        assert_eq!(e.consumed, before + 3 * cost);
        drop(e);
    }

    #[test]
    fn the_limit_is_three_quarters_of_the_blocks_as_filled_and_never_zero() {
        let q = Share::DEFAULT;
        assert_eq!(limit(geo(256 * 1024, 64), 256 * 1024, q), 12 * 1024 * 1024);
        assert_eq!(limit(geo(256 * 1024, 4), 256 * 1024, q), 768 * 1024);
        // Blocks handed over half full hold half the bytes.
        assert_eq!(limit(geo(256 * 1024, 4), 128 * 1024, q), 384 * 1024);
        // A fill can never exceed the block.
        assert_eq!(limit(geo(1024, 4), 1 << 40, q), 3 * 1024);
        // Zero would disarm the program.
        assert_eq!(limit(geo(0, 0), 0, q), 1);
        assert_eq!(limit(geo(1024, 1), 1024, Share::AllButOneBlock), 1);
    }

    #[test]
    fn the_share_of_the_ring_can_be_set_for_an_a_b_run() {
        let g = geo(256 * 1024, 64);
        let seven_eighths = Share::parse("7/8").expect("a fraction");
        assert_eq!(limit(g, 256 * 1024, seven_eighths), 14 * 1024 * 1024);
        let one_short = Share::parse("-1block").expect("all but a block");
        assert_eq!(limit(g, 128 * 1024, one_short), 63 * 128 * 1024);
        for bad in ["0/4", "5/4", "3", "x/8", "1/0", ""] {
            assert_eq!(Share::parse(bad), None, "{bad:?}");
        }
    }
}
