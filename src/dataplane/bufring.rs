//! Receive buffers: one io_uring provided-buffer ring per worker, in the
//! size tier its interface's MTU calls for.
//!
//! The kernel picks a free buffer for each received frame (multishot
//! receive), so no receive has to be posted per packet. A buffer goes back
//! to the ring only when every send that references it has completed:
//! fan-out sends the same bytes to every output without copying them.
//! When the ring runs dry the kernel ends the multishot receive with
//! `ENOBUFS`; the worker counts `buf_exhaust` and re-arms once buffers
//! return. Nothing ever blocks on a buffer.
//!
//! A worker reading a memory-mapped ring instead (`sys::packet_ring`) never
//! arms a receive, so the kernel takes nothing from this ring: the worker
//! takes free buffers itself (`take`) and copies frames into them, and
//! everything after that (holds, releases) is the same.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

/// Buffer size tiers, chosen from the interface MTU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// Links with MTU ≤ 512 - headroom (serial, some tunnels).
    Small,
    /// Ethernet-sized links.
    Standard,
    /// Jumbo links (MTU above ~2 KB, up to 16 KB).
    Jumbo,
    /// Links that can deliver GSO batches of up to 64 KB (virtual devices).
    Gso,
}

/// Bytes kept beyond the MTU: a cooked AF_PACKET frame is the IP packet,
/// so this is only slack, plus room to notice an oversized frame.
const HEADROOM: usize = 64;

impl Tier {
    pub const SMALL_SIZE: usize = 512;
    pub const STANDARD_SIZE: usize = 2048;
    pub const JUMBO_MIN_SIZE: usize = 9216;
    pub const JUMBO_MAX_SIZE: usize = 16384;
    /// A 64 KB IP packet, the virtio_net_hdr, and slack.
    pub const GSO_SIZE: usize = 65536 + 1024;

    /// The tier and buffer size for an interface MTU.
    pub fn for_mtu(mtu: u32) -> (Tier, usize) {
        let need = mtu as usize + HEADROOM;
        if need <= Self::SMALL_SIZE {
            (Tier::Small, Self::SMALL_SIZE)
        } else if need <= Self::STANDARD_SIZE {
            (Tier::Standard, Self::STANDARD_SIZE)
        } else if need <= Self::JUMBO_MAX_SIZE {
            (
                Tier::Jumbo,
                need.max(Self::JUMBO_MIN_SIZE).div_ceil(1024) * 1024,
            )
        } else {
            (Tier::Gso, Self::GSO_SIZE)
        }
    }

    /// Default number of buffers, so each tier stays around 8–16 MiB.
    /// `MCR_BUFFER_POOL_SMALL` / `_STANDARD` / `_JUMBO` override it.
    pub fn default_count(self) -> u16 {
        match self {
            Tier::Small => 8192,
            Tier::Standard => 8192,
            Tier::Jumbo => 1024,
            // Measured on veth: 512 lose nothing at 250 000 pps (the
            // socket's own queue absorbs bursts while buffers are in
            // flight), and more of these 64 KiB buffers only spread the
            // working set over more cache and TLB: with 4096, p99 at
            // 8000-byte datagrams rose from ~0.5 ms to 1.5-30 ms.
            Tier::Gso => 512,
        }
    }

    pub fn env_var(self) -> &'static str {
        match self {
            Tier::Small => "MCR_BUFFER_POOL_SMALL",
            Tier::Standard => "MCR_BUFFER_POOL_STANDARD",
            Tier::Jumbo => "MCR_BUFFER_POOL_JUMBO",
            Tier::Gso => "MCR_BUFFER_POOL_GSO",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tier::Small => "small",
            Tier::Standard => "standard",
            Tier::Jumbo => "jumbo",
            Tier::Gso => "gso",
        }
    }

    /// The buffer count for this tier: the environment override rounded to
    /// a power of two in 16..=32768 (the kernel's ring limit), or the
    /// default.
    pub fn count_from_env(self) -> u16 {
        let n =
            crate::env_override::<u32>(self.env_var()).unwrap_or(u32::from(self.default_count()));
        n.clamp(16, 32768).next_power_of_two().min(32768) as u16
    }
}

/// Page-aligned, zeroed memory that is unmapped on drop.
///
/// An anonymous mapping rather than the heap: its pages become resident
/// only when a frame is written to them. `alloc_zeroed` with page
/// alignment goes through `posix_memalign` and then writes zeros over the
/// whole region, which made every worker's gso-tier ring (512 × 65 KiB)
/// resident at start: 34 MB per worker, 8.7 GB for 256 input interfaces,
/// before a single packet.
struct Region {
    ptr: NonNull<u8>,
    len: usize,
}

impl Region {
    fn new(len: usize) -> io::Result<Region> {
        let len = len.max(1);
        // SAFETY: a fresh private anonymous mapping (no address hint, no
        // file); the kernel checks every argument and returns MAP_FAILED
        // on error, handled below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| {
            io::Error::new(io::ErrorKind::OutOfMemory, "buffer ring allocation failed")
        })?;
        Ok(Region { ptr, len })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` are exactly the mapping made in `new`,
        // unmapped once (the kernel no longer uses it: BufRing unregisters
        // before its regions drop).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A provided-buffer ring registered with one io_uring.
pub struct BufRing {
    ring: Region,
    bufs: Region,
    entries: u16,
    buf_size: usize,
    bgid: u16,
    /// Our copy of the tail; published to the kernel by `commit`.
    tail: u16,
    /// Where `take` finds the next free buffer (unused while the kernel
    /// takes them).
    head: u16,
    /// Sends still using each buffer.
    refs: Vec<u16>,
    /// Buffers currently in the kernel's hands (available for receive).
    available: u32,
    tier: Tier,
}

// SAFETY: BufRing owns its memory regions outright; the raw pointers are
// only dereferenced through &self/&mut self. Workers are single-threaded,
// this only lets the ring be built on one thread and moved.
unsafe impl Send for BufRing {}

impl BufRing {
    /// Allocate `entries` buffers of `buf_size` bytes and register them as
    /// buffer group `bgid` on `ring`. All buffers start available.
    pub fn new(
        ring: &IoUring,
        bgid: u16,
        entries: u16,
        buf_size: usize,
        tier: Tier,
    ) -> io::Result<BufRing> {
        if !entries.is_power_of_two() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer ring size must be a power of two",
            ));
        }
        let ring_mem = Region::new(usize::from(entries) * std::mem::size_of::<BufRingEntry>())?;
        let bufs = Region::new(usize::from(entries) * buf_size)?;
        // SAFETY: `ring_mem` is page-aligned, sized for `entries` entries and
        // lives as long as this BufRing, which unregisters it on drop
        // (before the memory is freed: fields drop after `drop()` runs).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                ring_mem.ptr.as_ptr() as u64,
                entries,
                bgid,
                0,
            )?;
        }
        let mut br = BufRing {
            ring: ring_mem,
            bufs,
            entries,
            buf_size,
            bgid,
            tail: 0,
            head: 0,
            refs: vec![0; usize::from(entries)],
            available: 0,
            tier,
        };
        for bid in 0..entries {
            br.push(bid);
        }
        br.commit();
        Ok(br)
    }

    pub fn bgid(&self) -> u16 {
        self.bgid
    }

    pub fn buf_size(&self) -> usize {
        self.buf_size
    }

    pub fn entries(&self) -> u16 {
        self.entries
    }

    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Buffers the kernel can receive into right now.
    pub fn available(&self) -> u32 {
        self.available
    }

    /// The kernel filled buffer `bid`: it is ours until recycled.
    pub fn taken(&mut self, bid: u16) {
        self.available = self.available.saturating_sub(1);
        if let Some(r) = self.refs.get_mut(usize::from(bid)) {
            *r = 0;
        }
    }

    /// The bytes of buffer `bid`.
    pub fn buf_mut(&mut self, bid: u16) -> &mut [u8] {
        let bid = usize::from(bid) % usize::from(self.entries);
        // SAFETY: `bid` < entries, so the slice lies within `bufs`; we hold
        // &mut self, and the kernel writes a buffer only while it is in
        // the ring (not after it was handed to us and before recycling).
        unsafe {
            std::slice::from_raw_parts_mut(
                self.bufs.ptr.as_ptr().add(bid * self.buf_size),
                self.buf_size,
            )
        }
    }

    /// Address of byte `offset` of buffer `bid`, for a send's iovec.
    pub fn addr(&self, bid: u16, offset: usize) -> *const u8 {
        let bid = usize::from(bid) % usize::from(self.entries);
        debug_assert!(offset <= self.buf_size);
        // SAFETY: stays within the `bufs` allocation (bid < entries,
        // offset ≤ buf_size).
        unsafe {
            self.bufs
                .ptr
                .as_ptr()
                .add(bid * self.buf_size + offset.min(self.buf_size))
        }
    }

    /// Take a free buffer for the worker to fill itself: only while no
    /// receive that selects buffers is armed on the ring.
    pub fn take(&mut self) -> Option<u16> {
        if self.available == 0 {
            return None;
        }
        let idx = usize::from(self.head & (self.entries - 1));
        // SAFETY: idx < entries, so the entry lies within the ring region;
        // no armed receive means the kernel is not reading it.
        let bid = unsafe { (*(self.ring.ptr.as_ptr() as *const BufRingEntry).add(idx)).bid() };
        self.head = self.head.wrapping_add(1);
        self.taken(bid);
        Some(bid)
    }

    /// Record `n` more sends using buffer `bid`.
    pub fn hold(&mut self, bid: u16, n: u16) {
        if let Some(r) = self.refs.get_mut(usize::from(bid)) {
            *r += n;
        }
    }

    /// One send using `bid` completed; recycle the buffer when it was the
    /// last. Returns true if the buffer went back to the ring.
    pub fn release(&mut self, bid: u16) -> bool {
        let Some(r) = self.refs.get_mut(usize::from(bid)) else {
            return false;
        };
        *r = r.saturating_sub(1);
        if *r == 0 {
            self.push(bid);
            true
        } else {
            false
        }
    }

    /// Give `bid` back to the kernel if nothing holds it.
    pub fn recycle_if_free(&mut self, bid: u16) {
        if self.refs.get(usize::from(bid)) == Some(&0) {
            self.push(bid);
        }
    }

    fn push(&mut self, bid: u16) {
        let mask = self.entries - 1;
        let idx = usize::from(self.tail & mask);
        let addr = self.addr(bid, 0) as u64;
        // SAFETY: idx < entries, so the entry lies within the ring region.
        let entry = unsafe { &mut *(self.ring.ptr.as_ptr() as *mut BufRingEntry).add(idx) };
        entry.set_addr(addr);
        entry.set_len(self.buf_size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.available += 1;
    }

    /// Publish buffers pushed since the last commit to the kernel.
    pub fn commit(&mut self) {
        // SAFETY: the ring region starts with a valid, initialised entry;
        // `tail` yields the address of the shared tail field inside it,
        // which is 2-byte aligned and lives as long as the region.
        let tail = unsafe {
            &*(BufRingEntry::tail(self.ring.ptr.as_ptr() as *const BufRingEntry)
                as *const AtomicU16)
        };
        // Release: the entries written above must be visible before the
        // kernel sees the new tail.
        tail.store(self.tail, Ordering::Release);
    }

    /// Unregister from `ring`, before this memory is freed.
    pub fn unregister(&self, ring: &IoUring) {
        let _ = ring.submitter().unregister_buf_ring(self.bgid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_follow_the_mtu() {
        assert_eq!(Tier::for_mtu(300), (Tier::Small, 512));
        assert_eq!(Tier::for_mtu(1500), (Tier::Standard, 2048));
        assert_eq!(Tier::for_mtu(1984), (Tier::Standard, 2048));
        assert_eq!(Tier::for_mtu(1985).0, Tier::Jumbo);
        assert_eq!(Tier::for_mtu(9000), (Tier::Jumbo, 9216));
        let (t, s) = Tier::for_mtu(9216);
        assert_eq!(t, Tier::Jumbo);
        assert!(s >= 9216 + HEADROOM);
        assert_eq!(Tier::for_mtu(16000).0, Tier::Jumbo);
        assert_eq!(Tier::for_mtu(65536), (Tier::Gso, Tier::GSO_SIZE));
        assert!(Tier::GSO_SIZE >= crate::dataplane::sockets::MAX_FRAME as usize);
    }

    #[test]
    fn buffers_cycle_through_the_ring() {
        let ring = match IoUring::new(8) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("SKIP buffers_cycle_through_the_ring: io_uring unavailable: {e}");
                assert!(std::env::var("CI").is_err(), "io_uring must work in CI");
                return;
            }
        };
        let mut br = BufRing::new(&ring, 7, 16, 2048, Tier::Standard).unwrap();
        assert_eq!(br.available(), 16);
        br.taken(3);
        assert_eq!(br.available(), 15);
        br.hold(3, 2);
        assert!(!br.release(3));
        assert!(br.release(3));
        br.commit();
        assert_eq!(br.available(), 16);
        br.buf_mut(3)[0] = 0xaa;
        assert_eq!(br.buf_mut(3)[0], 0xaa);
        br.unregister(&ring);
    }

    #[test]
    fn buffer_memory_is_resident_only_where_written() {
        let len = 16 << 20;
        let r = Region::new(len).unwrap();
        let page = 4096;
        let resident = || {
            let mut v = vec![0u8; len / page];
            // SAFETY: `v` has one byte per page of the region, which is a
            // live page-aligned mapping of `len` bytes.
            let rc = unsafe { libc::mincore(r.ptr.as_ptr().cast(), len, v.as_mut_ptr()) };
            assert_eq!(rc, 0, "mincore: {}", io::Error::last_os_error());
            v.iter().filter(|b| *b & 1 == 1).count()
        };
        assert_eq!(resident(), 0, "a new region must cost no memory");
        // SAFETY: offsets within the region's `len` bytes.
        unsafe {
            r.ptr.as_ptr().write(1);
            r.ptr.as_ptr().add(5 * page + 7).write(2);
        }
        assert_eq!(resident(), 2);
    }

    #[test]
    fn taken_buffers_come_back_in_turn() {
        let ring = match IoUring::new(8) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("SKIP taken_buffers_come_back_in_turn: io_uring unavailable: {e}");
                assert!(std::env::var("CI").is_err(), "io_uring must work in CI");
                return;
            }
        };
        let mut br = BufRing::new(&ring, 7, 16, 512, Tier::Small).unwrap();
        let got: Vec<u16> = std::iter::from_fn(|| br.take()).collect();
        assert_eq!(got, (0..16).collect::<Vec<u16>>());
        assert_eq!(br.available(), 0);
        br.hold(5, 1);
        br.recycle_if_free(5);
        assert_eq!(br.take(), None, "a held buffer is not free");
        assert!(br.release(5));
        br.recycle_if_free(9);
        assert_eq!(br.take(), Some(5));
        assert_eq!(br.take(), Some(9));
        assert_eq!(br.take(), None);
        br.unregister(&ring);
    }
}
