//! Early drop under overload: a tiny eBPF XDP program on an input
//! interface that, while its worker's receive ring holds more than a
//! limit, drops the frames the worker would relay (IPv4 UDP to a
//! multicast group) before the kernel's receive path pays for them, and
//! counts them.
//!
//! Why: a frame the worker's receive ring has no room for is dropped by the
//! kernel only after the receive softirq has paid for nearly all of its
//! work (backlog, `__netif_receive_skb`, the `AF_PACKET` filter and room
//! check, `ip_rcv`, the skb free), on the relay's core. Under 2× overload
//! that work starves the worker (PERFORMANCE.md, runs J/K). XDP runs in the
//! driver's receive poll, before any of it (generic mode: right after the
//! skb is built, before the taps and the IP stack).
//!
//! The program decides alone, from counts, so a worker starved of CPU (the
//! very case overload creates) need not run for dropping to begin (a flag
//! the worker set, session 7's design, came too late: the ring overflowed
//! first, PERFORMANCE.md run L). For each frame of the class it adds the
//! frame's cost in ring bytes (`ring_cost`) to `passed`; the worker
//! publishes, after each drain, the bytes of such frames it has read
//! (`consumed`, a plain store). `passed − consumed` is the ring's backlog;
//! above the limit the worker set (part of the ring's size) the program
//! drops. The estimate errs in two ways, both corrected by the worker: a
//! frame the program passed that never reaches the ring (the socket filter
//! refused it, the ring was full) stays counted, so the worker adds an
//! estimate of the ring's own drops and, whenever it finds its ring
//! empty, sets `consumed` to `passed` outright; frames in the block the
//! kernel has not handed over yet are counted as consumed at that resync
//! (the error is at most a block, towards passing).
//!
//! What lives here (everything that needs `unsafe`): the `bpf(2)` calls
//! (map create, program load, `BPF_LINK_CREATE` with attach type XDP,
//! `BPF_PROG_TEST_RUN`), the program's instructions, and the shared
//! mapping of the map's one value. The program is assembled here by hand,
//! so no compiler toolchain or libbpf is needed at build time.
//!
//! The map is a one-entry `BPF_MAP_TYPE_ARRAY` created `BPF_F_MMAPABLE`:
//! the worker maps it and writes its limit and count with plain stores (no
//! system call per batch), the program reads them with direct map-value
//! loads and adds to its counters with atomic adds. The worker's words and
//! the program's sit in different cache lines, so the worker's stores do
//! not bounce the line the receiving cores add to. A zero limit means
//! "pass everything": a fresh map, and what the supervisor writes when a
//! worker exits, so a dead worker never leaves its input dropping. The
//! link's descriptor is the only reference that keeps the program
//! attached: when the supervisor closes it or dies, the kernel detaches
//! the program.
//!
//! Not an RFC mechanism; RFC 1112 §6.4 (a host's multicast reception) is
//! what the dropped frames would have been given to.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_ATTACH_XDP: u32 = 37;
const BPF_F_MMAPABLE: u32 = 1 << 10;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// The program's verdicts (`enum xdp_action`).
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

/// Byte offsets in the map's value. The worker writes `LIMIT` and
/// `CONSUMED` (one cache line, read by the program on every frame it
/// judges, but written only once per drain); the program adds to `PASSED`
/// and `DROPS` (another line, written by the receiving cores only).
const LIMIT_OFF: i16 = 0;
const CONSUMED_OFF: i16 = 8;
const PASSED_OFF: i16 = 64;
const DROPS_OFF: i16 = 72;
const VALUE_SIZE: u32 = 128;
/// The mapping covers the value; the kernel maps whole pages.
const MAP_LEN: usize = 4096;

/// What one frame of `len` bytes (link-layer header included) costs in a
/// `TPACKET_V3` ring block: the frame header, `sockaddr_ll` and the
/// virtio_net_hdr before it (92 bytes for a 14-byte link header, see
/// `tpacket_rcv`), the whole rounded up to 8 bytes. The program and the
/// worker both count with it, so their counts agree by construction; how
/// closely it matches the kernel's placement only matters for the limit.
const FRAME_OVERHEAD: u32 = 92;

/// The ring cost the program counts for `frame` (starting at its Ethernet
/// header) when it is of the class the program may drop: IPv4 (no VLAN
/// tag) UDP to a multicast group, with a whole minimal IPv4 header. None
/// for every other frame. Computed from the IPv4 total length, as the
/// program does, not from the frame's length (which may carry padding).
pub fn ring_cost(frame: &[u8]) -> Option<u64> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
        return None;
    }
    if frame[30] & 0xf0 != 0xe0 {
        return None;
    }
    let total = u32::from(u16::from_be_bytes([frame[16], frame[17]]));
    Some(u64::from((14 + total + FRAME_OVERHEAD + 7) & !7))
}

/// How the program is attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver's receive poll, before any skb exists.
    Native,
    /// After the skb is built (`netif_receive_skb`), for drivers without
    /// native XDP: saves the IP stack and the socket delivery, not the skb.
    Generic,
}

impl XdpMode {
    pub fn as_str(self) -> &'static str {
        match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        }
    }
}

fn bpf(cmd: libc::c_long, attr: &mut [u64; 18]) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a zero-initialised 144-byte buffer, the size of
    // `union bpf_attr` on this kernel ABI; the kernel reads and writes only
    // within the size passed, and any pointers stored in it point to memory
    // the caller keeps alive for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr) as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn fd_of(r: libc::c_long) -> OwnedFd {
    // SAFETY: `r` is a descriptor the bpf() call just returned, owned by
    // no one else.
    unsafe { OwnedFd::from_raw_fd(r as i32) }
}

/// Two u32 fields into the little-endian word holding them.
fn pair(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | (u64::from(hi) << 32)
}

/// The flag and counter map, mapped into this process.
pub struct PressureMap {
    fd: OwnedFd,
    mem: NonNull<u8>,
}

// SAFETY: the mapping is shared memory accessed only through atomics.
unsafe impl Send for PressureMap {}
// SAFETY: as above.
unsafe impl Sync for PressureMap {}

impl PressureMap {
    /// Create the map (privileged) and map it.
    pub fn create() -> io::Result<PressureMap> {
        let mut attr = [0u64; 18];
        attr[0] = pair(BPF_MAP_TYPE_ARRAY, 4); // map_type, key_size
        attr[1] = pair(VALUE_SIZE, 1); // value_size, max_entries
        attr[2] = pair(BPF_F_MMAPABLE, 0); // map_flags, inner_map_fd
        let fd = fd_of(bpf(BPF_MAP_CREATE, &mut attr)?);
        PressureMap::map(fd)
    }

    /// Map a map descriptor received from the supervisor.
    pub fn map(fd: OwnedFd) -> io::Result<PressureMap> {
        // SAFETY: a fresh shared mapping of the map's value page; the
        // kernel checks that the descriptor is an mmapable map and the
        // length fits it. The pointer is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MAP_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mem = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(PressureMap { fd, mem })
    }

    fn word(&self, off: i16) -> &AtomicU64 {
        debug_assert!(off >= 0 && off as u32 + 8 <= VALUE_SIZE && off % 8 == 0);
        // SAFETY: every offset passed is one of the u64 fields of the
        // value, 8-byte aligned inside the page-aligned mapping, which
        // lives as long as `self`; the program reads and adds to these
        // words with single 64-bit loads and atomic adds.
        unsafe { &*self.mem.as_ptr().add(off as usize).cast::<AtomicU64>() }
    }

    /// Let the program drop while the ring's backlog (bytes passed minus
    /// bytes consumed) exceeds `limit` bytes; 0 turns dropping off.
    pub fn arm(&self, limit: u64) {
        self.word(LIMIT_OFF).store(limit, Ordering::Relaxed);
    }

    /// Pass everything, whatever the counts say (a worker exits).
    pub fn disarm(&self) {
        self.arm(0);
    }

    /// The current limit in bytes, 0 when disarmed.
    pub fn limit(&self) -> u64 {
        self.word(LIMIT_OFF).load(Ordering::Relaxed)
    }

    /// Ring bytes (`ring_cost`) of the frames the program passed that are
    /// of the class it may drop, since the map was created.
    pub fn passed(&self) -> u64 {
        self.word(PASSED_OFF).load(Ordering::Relaxed)
    }

    /// Publish how many of the passed bytes the worker has read from its
    /// ring (or knows gone: ring drops, a resync). A plain store: the
    /// worker is the only writer.
    pub fn set_consumed(&self, bytes: u64) {
        self.word(CONSUMED_OFF).store(bytes, Ordering::Relaxed);
    }

    pub fn consumed(&self) -> u64 {
        self.word(CONSUMED_OFF).load(Ordering::Relaxed)
    }

    /// Frames the program has dropped since the map was created.
    pub fn drops(&self) -> u64 {
        self.word(DROPS_OFF).load(Ordering::Relaxed)
    }

    /// A new descriptor for the same map (to pass to a worker).
    pub fn dup_fd(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }
}

impl Drop for PressureMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`; no reference
        // into it outlives `self`.
        unsafe {
            libc::munmap(self.mem.as_ptr().cast(), MAP_LEN);
        }
    }
}

impl AsFd for PressureMap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One eBPF instruction, encoded.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | (u64::from(dst & 0xf) << 8)
        | (u64::from(src & 0xf) << 12)
        | (u64::from(off as u16) << 16)
        | (u64::from(imm as u32) << 32)
}

// Opcode classes and modes (linux/bpf_common.h, linux/bpf.h).
const LDX_B: u8 = 0x71; // BPF_LDX | BPF_MEM | BPF_B
const LDX_H: u8 = 0x69; // BPF_LDX | BPF_MEM | BPF_H
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const LDX_DW: u8 = 0x79; // BPF_LDX | BPF_MEM | BPF_DW
const MOV64_X: u8 = 0xbf;
const MOV64_K: u8 = 0xb7;
const ADD64_K: u8 = 0x07;
const SUB64_X: u8 = 0x1f;
const AND64_K: u8 = 0x57;
const TO_BE: u8 = 0xdc; // BPF_ALU | BPF_END | BPF_TO_BE
const JGT_X: u8 = 0x2d;
const JSGT_X: u8 = 0x6d;
const JNE_K: u8 = 0x55;
const JEQ_K: u8 = 0x15;
const LD_IMM64: u8 = 0x18;
const ATOMIC_DW: u8 = 0xdb; // BPF_STX | BPF_ATOMIC | BPF_DW
const BPF_ADD: i32 = 0x00;
const EXIT: u8 = 0x95;
const PSEUDO_MAP_VALUE: u8 = 2;

/// Jump targets in `program`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    Count,
    Drop,
    Pass,
}

/// The program. r1 = ctx (struct xdp_md: data, data_end as u32).
/// Every frame but an IPv4 (Ethernet type 0x0800, no VLAN tag) UDP frame
/// to a multicast destination whose whole minimal IPv4 header lies in the
/// frame passes untouched. A frame of that class is dropped (and counted
/// in `DROPS`) while the limit is set and the backlog — `PASSED` minus
/// `CONSUMED`, compared signed so that a worker briefly ahead of the
/// count reads as no backlog and a wrap of the counters changes nothing —
/// exceeds it; otherwise it passes and its `ring_cost` is added to
/// `PASSED` atomically (the program runs on every receiving core at once).
fn program(map_fd: i32) -> Vec<u64> {
    use Item::{At, Insn, Jump};
    use Label::*;
    let p = [
        Insn(insn(LDX_W, 2, 1, 0, 0)),            // r2 = ctx->data
        Insn(insn(LDX_W, 3, 1, 4, 0)),            // r3 = ctx->data_end
        Insn(insn(MOV64_X, 4, 2, 0, 0)),          // r4 = r2
        Insn(insn(ADD64_K, 4, 0, 0, 34)),         // r4 += Ethernet + minimal IPv4 header
        Jump(insn(JGT_X, 4, 3, 0, 0), Pass),      // truncated: pass
        Insn(insn(LDX_H, 5, 2, 12, 0)),           // r5 = EtherType (network order)
        Jump(insn(JNE_K, 5, 0, 0, 0x0008), Pass), // not 0x0800 read little-endian: pass
        Insn(insn(LDX_B, 5, 2, 23, 0)),           // r5 = IPv4 protocol
        Jump(insn(JNE_K, 5, 0, 0, 17), Pass),     // not UDP: pass
        Insn(insn(LDX_B, 5, 2, 30, 0)),           // r5 = first byte of the destination
        Insn(insn(AND64_K, 5, 0, 0, 0xf0)),       // class D is 1110xxxx
        Jump(insn(JNE_K, 5, 0, 0, 0xe0), Pass),   // not multicast: pass
        Insn(insn(LDX_H, 4, 2, 16, 0)),           // r4 = IPv4 total length,
        Insn(insn(TO_BE, 4, 0, 0, 16)),           // in host order
        Insn(insn(ADD64_K, 4, 0, 0, 14 + FRAME_OVERHEAD as i32 + 7)),
        Insn(insn(AND64_K, 4, 0, 0, -8)), // r4 = ring_cost(frame)
        Insn(insn(LD_IMM64, 1, PSEUDO_MAP_VALUE, 0, map_fd)), // r1 = &value (entry 0)
        Insn(insn(0, 0, 0, 0, 0)),        // second half of the load: offset 0
        Insn(insn(LDX_DW, 5, 1, LIMIT_OFF, 0)), // r5 = limit
        Jump(insn(JEQ_K, 5, 0, 0, 0), Count), // disarmed: pass
        Insn(insn(LDX_DW, 0, 1, PASSED_OFF, 0)), // r0 = passed
        Insn(insn(LDX_DW, 6, 1, CONSUMED_OFF, 0)), // r6 = consumed
        Insn(insn(SUB64_X, 0, 6, 0, 0)),  // r0 = backlog
        Jump(insn(JSGT_X, 0, 5, 0, 0), Drop), // backlog > limit: drop
        At(Count),
        Insn(insn(ATOMIC_DW, 1, 4, PASSED_OFF, BPF_ADD)), // passed += cost
        Insn(insn(MOV64_K, 0, 0, 0, XDP_PASS as i32)),
        Insn(insn(EXIT, 0, 0, 0, 0)),
        At(Drop),
        Insn(insn(MOV64_K, 5, 0, 0, 1)),
        Insn(insn(ATOMIC_DW, 1, 5, DROPS_OFF, BPF_ADD)), // drops += 1
        Insn(insn(MOV64_K, 0, 0, 0, XDP_DROP as i32)),
        Insn(insn(EXIT, 0, 0, 0, 0)),
        At(Pass),
        Insn(insn(MOV64_K, 0, 0, 0, XDP_PASS as i32)),
        Insn(insn(EXIT, 0, 0, 0, 0)),
    ];
    assemble(&p)
}

/// One line of `program`: an instruction, a jump to a label, or where a
/// label stands (taking no slot).
#[derive(Clone, Copy)]
enum Item {
    Insn(u64),
    Jump(u64, Label),
    At(Label),
}

/// The instructions of `items`, each jump's offset set to its label's.
fn assemble(items: &[Item]) -> Vec<u64> {
    let mut at = Vec::new();
    let mut n = 0usize;
    for it in items {
        match *it {
            Item::At(l) => at.push((l, n)),
            _ => n += 1,
        }
    }
    let target = |l: Label| at.iter().find(|(x, _)| *x == l).map_or(0, |&(_, i)| i);
    let mut out = Vec::with_capacity(n);
    for it in items {
        match *it {
            Item::Insn(w) => out.push(w),
            Item::Jump(w, l) => {
                let off = target(l).wrapping_sub(out.len() + 1) as u16;
                out.push((w & !(0xffff << 16)) | (u64::from(off) << 16));
            }
            Item::At(_) => {}
        }
    }
    out
}

/// The loaded program (not yet attached anywhere).
pub struct EarlyDropProgram {
    fd: OwnedFd,
}

impl EarlyDropProgram {
    /// Load the program bound to `map` (privileged: CAP_BPF or root).
    /// The verifier's log comes back in the error when it refuses.
    pub fn load(map: &PressureMap) -> io::Result<EarlyDropProgram> {
        let insns = program(map.fd.as_raw_fd());
        let license = b"GPL\0";
        let mut log = vec![0u8; 4096];
        let mut attr = [0u64; 18];
        attr[0] = pair(BPF_PROG_TYPE_XDP, insns.len() as u32);
        attr[1] = insns.as_ptr() as u64;
        attr[2] = license.as_ptr() as u64;
        attr[3] = pair(1, log.len() as u32); // log_level, log_size
        attr[4] = log.as_mut_ptr() as u64;
        // prog_name at byte 48 (words 6 and 7).
        let mut name = [0u8; 16];
        name[..9].copy_from_slice(b"mcr_early");
        attr[6] = u64::from_le_bytes(name[..8].try_into().unwrap_or([0; 8]));
        attr[7] = u64::from_le_bytes(name[8..].try_into().unwrap_or([0; 8]));
        attr[8] = pair(0, BPF_ATTACH_XDP); // prog_ifindex, expected_attach_type
        match bpf(BPF_PROG_LOAD, &mut attr) {
            Ok(fd) => Ok(EarlyDropProgram { fd: fd_of(fd) }),
            Err(e) => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let text = String::from_utf8_lossy(&log[..end]);
                Err(io::Error::new(
                    e.kind(),
                    format!("{e}; verifier: {}", text.trim()),
                ))
            }
        }
    }

    /// Attach to `ifindex` through a BPF link; the program stays attached
    /// until the returned descriptor (and every copy of it) is closed.
    pub fn attach(&self, ifindex: u32, mode: XdpMode) -> io::Result<OwnedFd> {
        let mut attr = [0u64; 18];
        attr[0] = pair(self.fd.as_raw_fd() as u32, ifindex);
        let flags = match mode {
            XdpMode::Native => XDP_FLAGS_DRV_MODE,
            XdpMode::Generic => XDP_FLAGS_SKB_MODE,
        };
        attr[1] = pair(BPF_ATTACH_XDP, flags);
        Ok(fd_of(bpf(BPF_LINK_CREATE, &mut attr)?))
    }

    /// Run the program once on `frame` in the kernel (`BPF_PROG_TEST_RUN`)
    /// and return its verdict: what it would do to that frame on a link.
    pub fn test_run(&self, frame: &[u8]) -> io::Result<u32> {
        let mut attr = [0u64; 18];
        attr[0] = pair(self.fd.as_raw_fd() as u32, 0);
        attr[1] = pair(frame.len() as u32, 0); // data_size_in, data_size_out
        attr[2] = frame.as_ptr() as u64;
        attr[4] = pair(1, 0); // repeat
        bpf(BPF_PROG_TEST_RUN, &mut attr)?;
        Ok((attr[0] >> 32) as u32) // retval
    }
}

/// The name of `ifname`'s driver (`ETHTOOL_GDRVINFO`), e.g. `veth`,
/// `mlx5_core`; None if the interface has no ethtool driver info.
pub fn driver_name(ifname: &str) -> Option<String> {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_GDRVINFO: u32 = 3;
    if ifname.is_empty() || ifname.len() >= 16 {
        return None;
    }
    // struct ethtool_drvinfo: cmd, then driver[32], version[32], … (196 bytes).
    let mut info = [0u8; 196];
    info[..4].copy_from_slice(&ETHTOOL_GDRVINFO.to_ne_bytes());
    // struct ifreq: name[16], then the union whose ifru_data points at `info`.
    let mut ifr = [0u8; 40];
    ifr[..ifname.len()].copy_from_slice(ifname.as_bytes());
    ifr[16..16 + std::mem::size_of::<usize>()]
        .copy_from_slice(&(info.as_mut_ptr() as usize).to_ne_bytes());
    // SAFETY: a plain socket() call; the result is checked and owned below.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return None;
    }
    // SAFETY: `s` was just returned by socket() and nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(s) };
    // SAFETY: `ifr` is a 40-byte `struct ifreq` whose name is NUL-terminated
    // (at most 15 bytes, rest zero) and whose data pointer points at `info`,
    // a 196-byte `struct ethtool_drvinfo` that outlives the call; the
    // kernel writes only within it.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, ifr.as_mut_ptr()) };
    if r < 0 {
        return None;
    }
    let driver = &info[4..36];
    let end = driver.iter().position(|&b| b == 0).unwrap_or(driver.len());
    Some(String::from_utf8_lossy(&driver[..end]).into_owned())
}

/// Where the program ended up on one interface.
pub struct Attached {
    pub map: PressureMap,
    pub mode: XdpMode,
    /// Closing this detaches the program.
    _link: OwnedFd,
}

/// Create the map, load the program and attach it to `ifindex`: natively
/// if the driver can, else in generic mode. The error says why neither
/// worked (no privilege, an XDP program already attached, …).
pub fn attach_early_drop(ifindex: u32) -> io::Result<Attached> {
    let map = PressureMap::create().map_err(|e| io::Error::new(e.kind(), format!("map: {e}")))?;
    let prog = EarlyDropProgram::load(&map)
        .map_err(|e| io::Error::new(e.kind(), format!("program load: {e}")))?;
    let native = prog.attach(ifindex, XdpMode::Native);
    let (link, mode) = match native {
        Ok(l) => (l, XdpMode::Native),
        Err(ne) => match prog.attach(ifindex, XdpMode::Generic) {
            Ok(l) => (l, XdpMode::Generic),
            Err(ge) => {
                return Err(io::Error::new(
                    ge.kind(),
                    format!("attach: native: {ne}; generic: {ge}"),
                ))
            }
        },
    };
    Ok(Attached {
        map,
        mode,
        _link: link,
    })
}

/// Attach in the given mode only (benchmarks and tests compare the modes).
pub fn attach_early_drop_mode(ifindex: u32, mode: XdpMode) -> io::Result<Attached> {
    let map = PressureMap::create()?;
    let prog = EarlyDropProgram::load(&map)?;
    let link = prog.attach(ifindex, mode)?;
    Ok(Attached {
        map,
        mode,
        _link: link,
    })
}

#[cfg(test)]
mod tests;
