//! A worker's memory-mapped receive ring on its AF_PACKET socket
//! (`TPACKET_V3`, packet(7) "PACKET_RX_RING").
//!
//! Owns: switching an ingress socket to a block-based ring, mapping it,
//! walking the blocks the kernel hands over, and handing each block back —
//! once read to its end and, for frames read in place (`next_in_place`),
//! once every send pointing into it has let go (`hold`/`release`): the
//! worker's sends copy straight from the ring, so a 1 KiB frame is copied
//! by the softirq into the ring and by UDP output into an skb, not a third
//! time into a receive buffer.
//! With a ring the kernel copies each frame into the mapping in the receive
//! softirq and frees the skb at once; the worker reads whole blocks per
//! wake-up instead of dequeuing, copying and freeing one skb per `recvmsg`
//! (the third of the relay core that PERFORMANCE.md's profile found there).
//! A block is handed to the worker when it is full or when its timeout
//! (`tp_retire_blk_tov`) expires, whichever comes first.
//!
//! Frames keep the layout `recvmsg` gives: on raw sockets with
//! `PACKET_VNET_HDR` the kernel writes the virtio_net_hdr right before the
//! link-layer header, so `[vnet header][frame]` is one contiguous copy, with
//! the same checksum-offload flags. The socket outlives its worker (the
//! supervisor keeps it across restarts), and so does its ring: a restarted
//! worker maps the ring the previous one left, with what it queued.
//! A worker that is killed never hands back the blocks it held, so the
//! block descriptor itself records how far a block is finished: right
//! before the worker hands its queued sends to the kernel (`mark_sent`,
//! called before each `io_uring_enter`), every block still ours gets its
//! `num_pkts`/`offset_to_first_pkt` moved past the frames read so far (the
//! kernel rewrites both when it opens the block again). A successor reads
//! only frames whose sends were never handed over: a frame is forwarded at
//! most once. UDP sends run inside that `io_uring_enter`, so marking after
//! it returns (or when completions are reaped) would leave a window in
//! which a kill repeats a whole block; marking before it means a kill in
//! the few instructions between the mark and the system call loses those
//! frames instead, as does one that lands while a send waits for room on a
//! full output (such a send is cancelled when the process dies).
//!
//! This is the one place outside the supervisor's socket set-up where `sys`
//! code runs in a worker: the ring has to be mapped by the process that
//! reads it. It needs no privilege.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::sockopt::getsockopt;

const TPACKET_V3: libc::c_int = 2;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;

// Offsets in `struct tpacket_block_desc` (version, offset_to_priv, then
// the 8-byte aligned `tpacket_hdr_v1`).
const BLK_STATUS: usize = 8;
const BLK_NUM_PKTS: usize = 12;
const BLK_FIRST: usize = 16;
const BLK_SEQ: usize = 24;
// Offsets in `struct tpacket3_hdr`.
const PKT_NEXT: usize = 0;
const PKT_SNAPLEN: usize = 12;
const PKT_LEN: usize = 16;
const PKT_MAC: usize = 24;
const PKT_HDR: usize = 48;

/// Shape of a ring: `blocks` blocks of `block_size` bytes (a multiple of
/// the page size), retired after `timeout_ms` even if not full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub block_size: u32,
    pub blocks: u32,
    pub timeout_ms: u32,
}

impl Geometry {
    /// A ring for frames of up to `frame` bytes (virtio_net_hdr included):
    /// blocks of at least 256 KiB that each hold a largest frame with room
    /// to spare, about `total` bytes in all (at least 4 blocks).
    pub fn for_frames(frame: usize, total: usize, timeout_ms: u32) -> Geometry {
        let block = (frame + 4096).next_power_of_two().max(256 * 1024);
        let blocks = (total / block).clamp(4, 4096);
        Geometry {
            block_size: block as u32,
            blocks: blocks as u32,
            timeout_ms: timeout_ms.clamp(1, 1000),
        }
    }

    fn len(self) -> usize {
        self.block_size as usize * self.blocks as usize
    }
}

/// What a ring said about one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Bytes written to the destination.
    pub copied: usize,
    /// The frame's full length as `recvmsg(MSG_TRUNC)` reports it: more
    /// than the destination holds when it did not fit.
    pub len: usize,
}

/// A mapped `TPACKET_V3` receive ring. Unmapped on drop; the ring itself
/// stays with the socket.
pub struct RxRing {
    map: NonNull<u8>,
    geo: Geometry,
    /// Bytes the kernel writes before each frame's link-layer header that
    /// belong to it (the virtio_net_hdr), or 0.
    prefix: usize,
    /// The block being read, or the next one to wait for.
    block: usize,
    /// Frames left in `block` and the offset of the next one, once the
    /// kernel handed it over.
    left: u32,
    next: usize,
    reading: bool,
    /// Per block: frames read in place whose sends still point into it.
    refs: Vec<u32>,
    /// Per block: read to the end but not yet handed back, because `refs`
    /// is not zero. The kernel fills blocks in order and stops (dropping)
    /// when it reaches one that is still ours, which is the cheap drop a
    /// full ring should make.
    done: Vec<bool>,
    /// Blocks read to their end (and kept by sends) since the last
    /// `mark_sent`, whose descriptors still show their frames as unread;
    /// `listed` keeps each in it once, so it never outgrows its capacity.
    unmarked: Vec<usize>,
    listed: Vec<bool>,
    /// Frames were read since the last `mark_sent`.
    dirty: bool,
}

// SAFETY: the mapping belongs to this value alone; it is only touched
// through &self/&mut self on the worker's one thread, and this only lets
// the ring be set up on one thread and moved.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Put `fd` (an AF_PACKET socket) in `TPACKET_V3` mode with a ring of
    /// `geo`, or reuse the ring of that shape a previous reader left on it,
    /// and map it. `prefix`: the virtio_net_hdr length if the socket has
    /// `PACKET_VNET_HDR`, else 0.
    pub fn open(fd: BorrowedFd<'_>, geo: Geometry, prefix: usize) -> io::Result<RxRing> {
        let version: libc::c_int = getsockopt(fd, libc::SOL_PACKET, libc::PACKET_VERSION, 0)?;
        if version != TPACKET_V3 {
            set_version(fd)?;
        }
        match set_ring(fd, geo) {
            Ok(()) => {}
            // A ring is there already (the previous worker's): map it if it
            // has our shape, else replace it.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                if let Ok(r) = RxRing::map(fd, geo, prefix) {
                    return Ok(r);
                }
                set_ring(fd, NO_RING)?;
                set_ring(fd, geo)?;
            }
            Err(e) => return Err(e),
        }
        RxRing::map(fd, geo, prefix)
    }

    fn map(fd: BorrowedFd<'_>, geo: Geometry, prefix: usize) -> io::Result<RxRing> {
        // SAFETY: a fresh shared mapping of the socket's ring; the kernel
        // checks the length against the ring's and fails otherwise. No
        // existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                geo.len(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED,
                fd.as_raw_fd(),
                0,
            )
        };
        // MAP_LOCKED can fail on the locked-memory limit; the ring works
        // unlocked too, at the cost of possible page faults.
        let p = if p == libc::MAP_FAILED {
            // SAFETY: as above, without MAP_LOCKED.
            unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    geo.len(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            }
        } else {
            p
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = NonNull::new(p as *mut u8).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        let mut r = RxRing {
            map,
            geo,
            prefix,
            block: 0,
            left: 0,
            next: 0,
            reading: false,
            refs: vec![0; geo.blocks as usize],
            done: vec![false; geo.blocks as usize],
            unmarked: Vec::with_capacity(geo.blocks as usize),
            listed: vec![false; geo.blocks as usize],
            dirty: false,
        };
        // Not `resync`: it keeps block 0 whenever the kernel has handed
        // that one over, but after a predecessor the ring may have wrapped
        // (older blocks, its unread frames, sit before block 0): starting
        // at 0 would read them a whole ring later, out of order, and the
        // kernel would stop at them meanwhile, dropping.
        r.seek_oldest();
        Ok(r)
    }

    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    fn base(&self, block: usize) -> *mut u8 {
        // SAFETY: block < blocks, so the offset stays inside the mapping.
        unsafe {
            self.map
                .as_ptr()
                .add((block % self.geo.blocks as usize) * self.geo.block_size as usize)
        }
    }

    fn status(&self, block: usize) -> &AtomicU32 {
        // SAFETY: the status word lies in the block's descriptor, inside the
        // mapping, 4-byte aligned (blocks are page-aligned); the kernel
        // writes it concurrently, hence atomic access only.
        unsafe { &*(self.base(block).add(BLK_STATUS) as *const AtomicU32) }
    }

    fn read_u32(&self, block: usize, off: usize) -> u32 {
        if off + 4 > self.geo.block_size as usize {
            return 0;
        }
        // SAFETY: off + 4 ≤ block_size (checked), so the read stays in the
        // block; the kernel no longer writes a block it handed over.
        unsafe { std::ptr::read_unaligned(self.base(block).add(off) as *const u32) }
    }

    /// Record in the block's descriptor that the frames before `next` are
    /// finished and `left` remain, for a reader that maps the ring after
    /// us. Only for a block the kernel handed over and we still hold.
    fn mark_finished(&mut self, block: usize, left: u32, next: usize) {
        let base = self.base(block);
        // SAFETY: both words lie in the block's descriptor, inside the
        // mapping, 4-byte aligned; the block is ours (TP_STATUS_USER, not
        // yet handed back), so the kernel neither reads nor writes them
        // until it opens the block again, when it sets both afresh.
        // A kill can land between any two of these stores: the count goes
        // to zero first, so a successor sees either the old pair, an empty
        // block (what was left is lost, never repeated) or the new pair —
        // never the new count from the old offset, which would repeat
        // frames, or the old count from the new offset, which would read
        // past the last frame into stale bytes.
        unsafe {
            std::ptr::write_volatile(base.add(BLK_NUM_PKTS) as *mut u32, 0);
            std::ptr::write_volatile(base.add(BLK_FIRST) as *mut u32, next as u32);
            if left > 0 {
                std::ptr::write_volatile(base.add(BLK_NUM_PKTS) as *mut u32, left);
            }
        }
    }

    /// Every frame read so far is about to be handed to the kernel (its
    /// sends are queued for the next `io_uring_enter`) or needs nothing
    /// sent: record in the descriptors of the blocks still ours that a
    /// reader mapping the ring after us must skip them. Call right before
    /// each `io_uring_enter` that may carry sends of ring frames, whether
    /// read in place or copied out (a part-read block stays ours either
    /// way). Nothing is handed back here: a block a send still reads stays
    /// ours until `release`.
    pub fn mark_sent(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let mut unmarked = std::mem::take(&mut self.unmarked);
        for b in unmarked.drain(..) {
            self.listed[b] = false;
            // Still read to its end and kept by sends, so still ours (a
            // block whose last send has completed went back to the kernel
            // and must not be written).
            if self.done[b] && self.refs[b] > 0 {
                self.mark_finished(b, 0, self.geo.block_size as usize);
            }
        }
        self.unmarked = unmarked;
        if self.reading {
            self.mark_finished(self.block, self.left, self.next);
        }
    }

    fn read_u16(&self, block: usize, off: usize) -> u16 {
        if off + 2 > self.geo.block_size as usize {
            return 0;
        }
        // SAFETY: as in read_u32.
        unsafe { std::ptr::read_unaligned(self.base(block).add(off) as *const u16) }
    }

    fn user(&self, block: usize) -> bool {
        // Acquire: the frames the kernel wrote before setting the status
        // must be visible before we read them.
        self.status(block).load(Ordering::Acquire) & TP_STATUS_USER != 0
    }

    /// Whether a frame (or an empty block to hand back) is waiting.
    pub fn ready(&self) -> bool {
        self.reading || (self.user(self.block) && !self.done[self.block])
    }

    /// Start from the oldest block the kernel has handed over, if any.
    /// Needed once after mapping a ring someone else read, and whenever a
    /// wake-up finds the expected block still the kernel's: the kernel
    /// fills blocks in order, but a reader that lost its place would wait
    /// for a block the kernel will not fill until an older one is returned.
    pub fn resync(&mut self) {
        if self.ready() {
            return;
        }
        self.seek_oldest();
    }

    /// Go to the oldest block the kernel has handed over and we have not
    /// read, if any.
    fn seek_oldest(&mut self) {
        let mut oldest: Option<(u64, usize)> = None;
        for b in 0..self.geo.blocks as usize {
            // A block read to its end that sends still hold is not news.
            if self.user(b) && !self.done[b] {
                let seq = u64::from(self.read_u32(b, BLK_SEQ))
                    | (u64::from(self.read_u32(b, BLK_SEQ + 4)) << 32);
                if oldest.is_none_or(|(s, _)| seq < s) {
                    oldest = Some((seq, b));
                }
            }
        }
        if let Some((_, b)) = oldest {
            self.block = b;
        }
    }

    /// The current block is read to its end: move on, and give it back to
    /// the kernel unless frames read in place still hold it.
    fn hand_back(&mut self) {
        let b = self.block;
        self.done[b] = true;
        self.give_back_if_free(b);
        if self.done[b] && !self.listed[b] {
            self.listed[b] = true;
            self.unmarked.push(b);
        }
        self.block = (self.block + 1) % self.geo.blocks as usize;
        self.reading = false;
    }

    fn give_back_if_free(&mut self, b: usize) {
        if self.done[b] && self.refs[b] == 0 {
            self.done[b] = false;
            // Release: our reads of the block (and the sends that copied
            // from it) happen before the kernel may overwrite it.
            self.status(b).store(TP_STATUS_KERNEL, Ordering::Release);
        }
    }

    /// `n` more sends point into `block`: it stays ours until each is
    /// `release`d.
    pub fn hold(&mut self, block: u16, n: u32) {
        if let Some(r) = self.refs.get_mut(usize::from(block)) {
            *r += n;
        }
    }

    /// One reference into `block` (a frame returned by `next_in_place`, or
    /// a send `hold` counted) is gone.
    pub fn release(&mut self, block: u16) {
        let b = usize::from(block);
        if let Some(r) = self.refs.get_mut(b) {
            debug_assert!(*r > 0, "ring block {b} released more often than held");
            *r = r.saturating_sub(1);
            self.give_back_if_free(b);
        }
    }

    /// Whether the block `n` places past the one being read has been
    /// handed over and not read yet: the kernel fills blocks in order, so
    /// then at least `n` blocks wait for the reader (`worker::pressure`).
    pub fn waiting_ahead(&self, n: usize) -> bool {
        let b = (self.block + n) % self.geo.blocks as usize;
        self.user(b) && !self.done[b]
    }

    /// Blocks read to their end that references still keep from the
    /// kernel.
    pub fn held_blocks(&self) -> usize {
        self.done.iter().filter(|&&d| d).count()
    }

    /// Where the next frame lies: (block, offset of its prefix, bytes there,
    /// full length as `recvmsg(MSG_TRUNC)` would report it). Hands back
    /// blocks that turn out to be empty or are read to their end.
    fn next_span(&mut self) -> Option<(usize, usize, usize, usize)> {
        let bs = self.geo.block_size as usize;
        loop {
            if !self.reading {
                // A block read before and still held by sends is ours but
                // not new: the ring has wrapped round to it.
                if !self.user(self.block) || self.done[self.block] {
                    return None;
                }
                self.left = self.read_u32(self.block, BLK_NUM_PKTS);
                self.next = self.read_u32(self.block, BLK_FIRST) as usize;
                self.reading = true;
            }
            if self.left == 0 || self.next + PKT_HDR > bs {
                self.hand_back();
                continue;
            }
            let b = self.block;
            let at = self.next;
            let snap = self.read_u32(b, at + PKT_SNAPLEN) as usize;
            let len = self.read_u32(b, at + PKT_LEN) as usize;
            let mac = self.read_u16(b, at + PKT_MAC) as usize;
            let step = self.read_u32(b, at + PKT_NEXT) as usize;
            self.left -= 1;
            self.next = if step == 0 { bs } else { at + step };
            self.dirty = true;
            // The frame, with its prefix, as the kernel placed it; anything
            // that would reach outside the block is not a frame.
            let start = at + mac;
            if mac >= self.prefix && start + snap <= bs {
                let mut full = self.prefix + len;
                if snap < len {
                    // Cut short by the block: never pass it off as whole.
                    full = full.max(self.prefix + snap + 1);
                }
                return Some((b, start - self.prefix, self.prefix + snap, full));
            }
            if self.left == 0 {
                self.hand_back();
            }
        }
    }

    /// The next frame where it lies in the ring (the virtio_net_hdr first,
    /// if the socket has one), holding its block for the caller: call
    /// `release(block)` when done with the slice, after `hold`ing the block
    /// for every send that points into it. The slice is writable (route
    /// mode rewrites the TTL in place); the length is the frame's full
    /// length, more than the slice when the kernel cut it short.
    pub fn next_in_place(&mut self) -> Option<(u16, &mut [u8], usize)> {
        let (b, from, n, full) = self.next_span()?;
        self.refs[b] += 1;
        if self.left == 0 {
            self.hand_back();
        }
        // SAFETY: next_span checked from + n ≤ block_size, so the bytes lie
        // inside block b, which the kernel handed over and does not touch
        // until we store TP_STATUS_KERNEL — which the reference just taken
        // prevents until `release`. The returned borrow of self keeps any
        // other slice of this ring from being made meanwhile.
        let frame = unsafe { std::slice::from_raw_parts_mut(self.base(b).add(from), n) };
        Some((b as u16, frame, full))
    }

    /// Copy the next frame into `dst` (the virtio_net_hdr first, if the
    /// socket has one), handing each block back to the kernel once its last
    /// frame is copied (unless frames read in place still hold it).
    /// `None`: nothing waiting.
    pub fn next_into(&mut self, dst: &mut [u8]) -> Option<Frame> {
        let (b, from, n, full) = self.next_span()?;
        let n = n.min(dst.len());
        // SAFETY: next_span checked that the frame lies inside block b,
        // which the kernel handed over and does not write until we hand it
        // back (not before the end of this call); `dst` is a distinct Rust
        // slice of at least n bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(self.base(b).add(from), dst.as_mut_ptr(), n);
        }
        if self.left == 0 {
            self.hand_back();
        }
        let len = if full > n && full <= dst.len() {
            dst.len() + 1
        } else {
            full
        };
        Some(Frame { copied: n, len })
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // Nothing is handed back here: a block read to its end went back
        // the moment its last reference did, so the only ones still ours
        // are those a send still points into (the worker waits for its
        // sends before it goes, within a bound). Handing one back here
        // would let the kernel refill it under a send still to copy it.
        // Kept, it goes to the process that maps the ring next, which
        // finds it marked sent (`mark_sent`) and hands it back at once: by
        // then this process is gone and its unfinished sends were
        // cancelled with it, so nothing reads the block any more. A
        // part-read block keeps its marked position.
        // SAFETY: unmaps exactly the mapping made in `map`; nothing refers
        // to it after drop.
        unsafe {
            libc::munmap(self.map.as_ptr() as *mut libc::c_void, self.geo.len());
        }
    }
}

fn setsockopt_bytes(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &[u8],
) -> io::Result<()> {
    // SAFETY: `value` is a live byte slice of the length passed; the kernel
    // copies it during the call and keeps no pointer.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value.as_ptr() as *const libc::c_void,
            value.len() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn set_version(fd: BorrowedFd<'_>) -> io::Result<()> {
    let v: libc::c_int = TPACKET_V3;
    setsockopt_bytes(fd, libc::SOL_PACKET, libc::PACKET_VERSION, &v.to_ne_bytes())
}

fn set_ring(fd: BorrowedFd<'_>, geo: Geometry) -> io::Result<()> {
    // struct tpacket_req3, seven unsigned ints. One "frame" per 2 KiB: V3
    // packs frames of any size into blocks, but the kernel still checks
    // that the frame count matches the block size.
    let frame = 2048u32;
    let fields = [
        geo.block_size,
        geo.blocks,
        if geo.blocks == 0 { 0 } else { frame },
        (geo.block_size / frame) * geo.blocks,
        geo.timeout_ms,
        0,
        0,
    ];
    let mut bytes = [0u8; 28];
    for (i, f) in fields.iter().enumerate() {
        bytes[i * 4..i * 4 + 4].copy_from_slice(&f.to_ne_bytes());
    }
    setsockopt_bytes(fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &bytes)
}

/// Whether a reader of this module put `fd` in `TPACKET_V3` mode, which it
/// does only to set a ring: the kernel cannot be asked a ring's shape or
/// timeout, so this is how a new reader knows `RxRing::open` may take over
/// a ring it did not set up.
pub fn had_ring(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let version: libc::c_int = getsockopt(fd, libc::SOL_PACKET, libc::PACKET_VERSION, 0)?;
    Ok(version == TPACKET_V3)
}

/// A request for no ring: how the kernel is told to take one away.
const NO_RING: Geometry = Geometry {
    block_size: 0,
    blocks: 0,
    timeout_ms: 0,
};

/// Take any receive ring off `fd` so that frames go back to its receive
/// queue, for a reader that wants `recvmsg` on a socket a ring reader used
/// before (a restarted worker told to use `rx_path: recv`): while a ring is
/// set the kernel puts every frame in it and `recvmsg` gets nothing.
/// Returns whether the socket was in `TPACKET_V3` mode, i.e. may have had
/// a ring (only this module sets that version).
///
/// The kernel (packet_set_ring) frees the ring on a request with zero
/// blocks and zero frames, and succeeds when there was none; it refuses
/// with EBUSY while any process still maps the ring, so every `RxRing` on
/// it must have been dropped (a dead worker's mapping died with it).
pub fn remove_ring(fd: BorrowedFd<'_>) -> io::Result<bool> {
    if !had_ring(fd)? {
        return Ok(false);
    }
    set_ring(fd, NO_RING)?;
    Ok(true)
}

#[cfg(test)]
mod tests;
