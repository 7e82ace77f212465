//! Egress batching: the io_uring `SENDMSG`s of a worker, each carrying up
//! to `MAX_SEGS` datagrams to one destination with UDP GSO
//! (`UDP_SEGMENT`), so that under load the kernel's UDP/IP send path runs
//! once per batch instead of once per datagram.
//!
//! While a worker reaps receive completions it adds every datagram to the
//! open batch of its (egress socket, destination, port); once per loop turn
//! every open batch is flushed as one `SENDMSG`. At low load batches hold
//! one datagram, so batching adds no latency; under load they fill up.
//!
//! GSO rules (Linux `udp_send_skb`): every segment but the last has the
//! same size, the last may be shorter, at most 64 segments, about 64 KB in
//! all. A socket that refuses GSO (some devices, raw sockets) gets batches
//! of one.

use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;

use super::table::IntMap;

/// Most datagrams in one GSO send.
pub const MAX_SEGS: usize = 64;
/// Most payload bytes in one GSO send (the IP length limit, less headers).
pub const MAX_GSO_BYTES: usize = 65_000;

const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;

/// One `SENDMSG` in flight: its header, destination, control message and
/// iovecs, plus what each segment came from (for buffer release and error
/// accounting). Lives in a boxed slice, so the pointers the kernel is
/// given stay valid until completion.
#[repr(C)]
pub struct Batch {
    hdr: libc::msghdr,
    addr: libc::sockaddr_in,
    /// Room for one aligned `cmsghdr` with a u16 payload.
    cmsg: [u64; 4],
    iov: [libc::iovec; MAX_SEGS],
    pub bids: [u16; MAX_SEGS],
    pub keys: [u64; MAX_SEGS],
    pub outs: [u16; MAX_SEGS],
    pub n: usize,
    pub seg: u32,
    pub total: usize,
    /// A shorter segment was added: it must stay the last.
    closed: bool,
    gso: bool,
    pub egress: u32,
    pub fd: RawFd,
}

impl Batch {
    fn empty() -> Batch {
        // SAFETY: every field is plain old data (integers, raw pointers,
        // arrays of them) for which all-zero bytes are a valid value.
        unsafe { mem::zeroed() }
    }

    /// Payload of segment `i`, for tests.
    pub fn segment(&self, i: usize) -> (*const u8, usize) {
        (self.iov[i].iov_base as *const u8, self.iov[i].iov_len)
    }

    pub fn is_gso(&self) -> bool {
        self.n > 1
    }

    /// Where the batch goes.
    pub fn destination(&self) -> (Ipv4Addr, u16) {
        (
            Ipv4Addr::from(u32::from_be(self.addr.sin_addr.s_addr)),
            u16::from_be(self.addr.sin_port),
        )
    }
}

/// What a datagram to send is.
#[derive(Clone, Copy, Debug)]
pub struct Datagram {
    pub fd: RawFd,
    pub egress: u32,
    /// Whether this socket may batch (UDP with GSO accepted).
    pub gso_ok: bool,
    pub dst: Ipv4Addr,
    pub port: u16,
    pub ptr: *const u8,
    pub len: usize,
    pub bid: u16,
    pub key: u64,
    pub out: u16,
}

/// The batches of one worker.
pub struct Batcher {
    /// Made on first use, up to `cap`, inside an allocation reserved for
    /// `cap` up front: a push never moves a batch whose header the kernel
    /// may still be reading. Zeroing all of them at start (~2 KB each, 8 MB
    /// for 4,096) cost a restarted worker 4-20 ms before its first send.
    slots: Vec<Batch>,
    cap: usize,
    free: Vec<u32>,
    /// (egress, destination, port) -> the batch still accepting datagrams.
    open: IntMap<u64, u32>,
    /// Batches to flush at the end of this turn, in creation order.
    pending: Vec<u32>,
}

fn batch_key(egress: u32, dst: Ipv4Addr, port: u16) -> u64 {
    (u64::from(egress & 0xffff) << 48) | (u64::from(u32::from(dst)) << 16) | u64::from(port)
}

impl Batcher {
    pub fn new(slots: usize) -> Batcher {
        Batcher {
            slots: Vec::with_capacity(slots),
            cap: slots,
            free: Vec::new(),
            open: IntMap::default(),
            pending: Vec::with_capacity(slots.min(4096)),
        }
    }

    /// Slots free right now.
    pub fn free(&self) -> usize {
        self.free.len() + (self.cap - self.slots.len())
    }

    /// A free slot: a released one, else a new one while under `cap`.
    fn take_slot(&mut self) -> Option<u32> {
        if let Some(idx) = self.free.pop() {
            return Some(idx);
        }
        if self.slots.len() < self.cap {
            // Within the capacity reserved in `new`: no reallocation.
            self.slots.push(Batch::empty());
            return Some(self.slots.len() as u32 - 1);
        }
        None
    }

    /// Add a datagram to its batch. False if every slot is in flight (the
    /// caller counts a drop; the buffer is not held).
    pub fn add(&mut self, d: Datagram) -> bool {
        let k = batch_key(d.egress, d.dst, d.port);
        if d.gso_ok {
            if let Some(&idx) = self.open.get(&k) {
                let b = &mut self.slots[idx as usize];
                if !b.closed
                    && b.n < MAX_SEGS
                    && b.total + d.len <= MAX_GSO_BYTES
                    && d.len as u32 <= b.seg
                    && d.len > 0
                {
                    let i = b.n;
                    b.iov[i] = libc::iovec {
                        iov_base: d.ptr as *mut libc::c_void,
                        iov_len: d.len,
                    };
                    b.bids[i] = d.bid;
                    b.keys[i] = d.key;
                    b.outs[i] = d.out;
                    b.n += 1;
                    b.total += d.len;
                    if (d.len as u32) < b.seg {
                        b.closed = true;
                    }
                    return true;
                }
            }
        }
        let Some(idx) = self.take_slot() else {
            return false;
        };
        let b = &mut self.slots[idx as usize];
        b.iov[0] = libc::iovec {
            iov_base: d.ptr as *mut libc::c_void,
            iov_len: d.len,
        };
        b.bids[0] = d.bid;
        b.keys[0] = d.key;
        b.outs[0] = d.out;
        b.n = 1;
        b.seg = d.len as u32;
        b.total = d.len;
        b.closed = false;
        b.gso = d.gso_ok;
        b.egress = d.egress;
        b.fd = d.fd;
        b.addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: d.port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(d.dst).to_be(),
            },
            sin_zero: [0; 8],
        };
        if d.gso_ok {
            self.open.insert(k, idx);
        }
        self.pending.push(idx);
        true
    }

    /// Close every batch and hand each to `submit` as (slot, header, fd).
    /// The header stays valid until `complete(slot)`.
    pub fn flush(&mut self, mut submit: impl FnMut(u32, *const libc::msghdr, RawFd)) {
        self.open.clear();
        for idx in self.pending.drain(..) {
            let b = &mut self.slots[idx as usize];
            b.hdr.msg_name = (&mut b.addr as *mut libc::sockaddr_in).cast();
            b.hdr.msg_namelen = mem::size_of::<libc::sockaddr_in>() as u32;
            b.hdr.msg_iov = b.iov.as_mut_ptr();
            b.hdr.msg_iovlen = b.n;
            b.hdr.msg_flags = 0;
            if b.n > 1 {
                let space = Self::cmsg_space();
                b.hdr.msg_control = b.cmsg.as_mut_ptr().cast();
                b.hdr.msg_controllen = space;
                // SAFETY: msg_control points at `cmsg`, 32 bytes aligned for
                // cmsghdr, and msg_controllen (CMSG_SPACE of a u16, 24 bytes)
                // fits in it, so FIRSTHDR is non-null and in bounds, and the
                // u16 written at CMSG_DATA lies within the space.
                unsafe {
                    let c = libc::CMSG_FIRSTHDR(&b.hdr);
                    (*c).cmsg_level = SOL_UDP;
                    (*c).cmsg_type = UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as usize;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, b.seg as u16);
                }
            } else {
                b.hdr.msg_control = std::ptr::null_mut();
                b.hdr.msg_controllen = 0;
            }
            submit(idx, &b.hdr, b.fd);
        }
    }

    fn cmsg_space() -> usize {
        // SAFETY: CMSG_SPACE only computes a size.
        unsafe { libc::CMSG_SPACE(mem::size_of::<u16>() as u32) as usize }
    }

    /// The batch in `slot`, once its send completed; call `release` after.
    pub fn get(&self, slot: u32) -> Option<&Batch> {
        self.slots.get(slot as usize)
    }

    pub fn release(&mut self, slot: u32) {
        if (slot as usize) < self.slots.len() {
            self.free.push(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dg(buf: &[u8], egress: u32, dst: &str, port: u16, len: usize, bid: u16) -> Datagram {
        Datagram {
            fd: 7,
            egress,
            gso_ok: true,
            dst: dst.parse().unwrap(),
            port,
            ptr: buf.as_ptr(),
            len,
            bid,
            key: 1,
            out: 0,
        }
    }

    fn flushed(b: &mut Batcher) -> Vec<(u32, usize, u32)> {
        let mut v = Vec::new();
        let mut slots = Vec::new();
        b.flush(|slot, hdr, fd| {
            assert_eq!(fd, 7);
            // SAFETY (test): the header is valid until release.
            let h = unsafe { &*hdr };
            slots.push((slot, h.msg_iovlen, h.msg_controllen));
        });
        for (slot, n, cl) in slots {
            let bt = b.get(slot).unwrap();
            assert_eq!(bt.n, n);
            assert_eq!(cl > 0, n > 1, "a GSO control message exactly when batched");
            v.push((slot, n, bt.seg));
        }
        v
    }

    #[test]
    fn same_size_same_destination_batches_up_to_the_limit() {
        let buf = vec![0u8; 2048];
        let mut b = Batcher::new(16);
        for i in 0..(MAX_SEGS + 3) {
            assert!(b.add(dg(&buf, 0, "239.2.2.2", 6000, 1000, i as u16)));
        }
        let f = flushed(&mut b);
        assert_eq!(f.iter().map(|x| x.1).collect::<Vec<_>>(), vec![MAX_SEGS, 3]);
    }

    #[test]
    fn destinations_and_sizes_split_batches() {
        let buf = vec![0u8; 9000];
        let mut b = Batcher::new(16);
        b.add(dg(&buf, 0, "239.2.2.2", 6000, 1000, 0));
        b.add(dg(&buf, 1, "239.2.2.2", 6000, 1000, 1)); // other socket
        b.add(dg(&buf, 0, "239.2.2.3", 6000, 1000, 2)); // other group
        b.add(dg(&buf, 0, "239.2.2.2", 6001, 1000, 3)); // other port
        b.add(dg(&buf, 0, "239.2.2.2", 6000, 1000, 4)); // joins the first
        b.add(dg(&buf, 0, "239.2.2.2", 6000, 500, 5)); // shorter: joins, closes it
        b.add(dg(&buf, 0, "239.2.2.2", 6000, 500, 6)); // new batch
        b.add(dg(&buf, 0, "239.2.2.2", 6000, 800, 7)); // larger: new batch
        let f = flushed(&mut b);
        let ns: Vec<usize> = f.iter().map(|x| x.1).collect();
        assert_eq!(ns, vec![3, 1, 1, 1, 1, 1]);
        // Byte limit: 8 jumbo segments fit in 64 KB, the 9th starts a batch.
        for i in 0..9 {
            b.add(dg(&buf, 0, "239.2.2.2", 6000, 8000, i));
        }
        let ns: Vec<usize> = flushed(&mut b).iter().map(|x| x.1).collect();
        assert_eq!(ns, vec![8, 1]);
    }

    #[test]
    fn no_gso_means_one_each_and_full_means_refused() {
        let buf = vec![0u8; 100];
        let mut b = Batcher::new(2);
        let mut d = dg(&buf, 0, "239.2.2.2", 6000, 50, 0);
        d.gso_ok = false;
        assert!(b.add(d));
        assert!(b.add(d));
        assert!(!b.add(d), "no free slot");
        let f = flushed(&mut b);
        assert_eq!(f.len(), 2);
        assert_eq!(b.free(), 0);
        for (slot, _, _) in f {
            b.release(slot);
        }
        assert_eq!(b.free(), 2);
    }

    #[test]
    fn slots_are_made_as_needed_and_reused_first() {
        let buf = vec![0u8; 100];
        let mut b = Batcher::new(4096);
        assert_eq!(b.free(), 4096);
        assert_eq!(b.slots.len(), 0, "nothing made before the first send");
        let mut d = dg(&buf, 0, "239.2.2.2", 6000, 50, 0);
        d.gso_ok = false;
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            assert!(b.add(d));
            assert!(b.add(d));
            for (slot, _, _) in flushed(&mut b) {
                seen.insert(slot);
                b.release(slot);
            }
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(
            b.slots.len(),
            2,
            "released slots are reused, not new ones made"
        );
        assert_eq!(b.free(), 4096);
        assert!(b.get(2).is_none());
        b.release(9);
        assert_eq!(b.free(), 4096, "a slot never handed out is not freed");
    }
}
