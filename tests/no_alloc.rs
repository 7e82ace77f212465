//! The hot path allocates nothing per packet: a counting global allocator
//! watches the pipeline (parse, lookup, send list, counters) and the egress
//! batcher (group, flush, release) over many packets once they are warm.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};

use mcr::dataplane::egress::{Batcher, Datagram};
use mcr::dataplane::pipeline::{process, Verdict};
use mcr::dataplane::table::Table;
use mcr::ipc::{rule_key, TableOutput, TableRule, WorkerCounters};
use mcr::rule::OutputMode;
use mcr::wire::UdpPacketSpec;

const FMT: mcr::ipc::FrameFormat = mcr::ipc::FrameFormat {
    vnet: true,
    link_header: 0,
};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator, which
// upholds GlobalAlloc's contract; we only count.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `alloc` above with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `p` came from this allocator with layout `l`.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn table(rules: u32, fanout: u32) -> Table {
    let mut t = Table::new();
    for i in 0..rules {
        let id = format!("r{i}");
        t.upsert(TableRule {
            key: rule_key(&id),
            id,
            group: Ipv4Addr::from(0xef01_0000 + i),
            port: 5000,
            source: (i % 3 == 0).then(|| Ipv4Addr::new(10, 0, 0, 1)),
            outputs: (0..fanout)
                .map(|o| TableOutput {
                    egress: o,
                    group: Ipv4Addr::from(0xef02_0000 + o),
                    port: 6000,
                    mode: if o == 0 && i % 2 == 0 {
                        OutputMode::Route
                    } else {
                        OutputMode::Republish
                    },
                })
                .collect(),
        });
    }
    t
}

#[test]
fn pipeline_and_batcher_allocate_nothing_per_packet() {
    let mut t = table(1000, 16);
    let frames: Vec<Vec<u8>> = (0..64u32)
        .map(|i| {
            let mut s = UdpPacketSpec::new(
                Ipv4Addr::new(10, 0, 0, 1 + (i % 2) as u8),
                Ipv4Addr::from(0xef01_0000 + i * 7),
                1234,
                if i % 5 == 0 { 5001 } else { 5000 },
            );
            s.ttl = 64;
            let mut f = mcr::wire::VnetHdr::plain().to_vec();
            f.extend_from_slice(&s.build(&vec![i as u8; 100 + (i as usize * 13) % 1300]));
            f
        })
        .collect();
    let mut bufs: Vec<Vec<u8>> = frames.clone();
    let mut sends = Vec::new();
    let mut c = WorkerCounters::default();
    let mut b = Batcher::new(4096);
    let mut slots = Vec::with_capacity(4096);

    let mut run = |rounds: usize, sends: &mut Vec<_>, c: &mut WorkerCounters, t: &mut Table| {
        let mut forwarded = 0u64;
        for _ in 0..rounds {
            for (i, f) in bufs.iter_mut().enumerate() {
                // Restore the TTL that route mode decremented.
                f.copy_from_slice(&frames[i]);
                let n = f.len();
                if let Verdict::Forward { slot } = process(f, n, FMT, t, sends, c) {
                    forwarded += 1;
                    let key = t.entry(slot).map(|e| e.rule.key).unwrap_or(0);
                    for s in sends.iter() {
                        b.add(Datagram {
                            fd: 3,
                            egress: s.egress,
                            gso_ok: s.mode == OutputMode::Republish,
                            dst: s.dst,
                            port: s.port,
                            ptr: f.as_ptr(),
                            len: s.len as usize,
                            bid: i as u16,
                            key,
                            out: s.output,
                        });
                    }
                }
            }
            slots.clear();
            b.flush(|slot, _, _| slots.push(slot));
            for &s in &slots {
                b.release(s);
            }
        }
        forwarded
    };
    // Warm up: the send list, the batcher's maps and vectors reach their
    // working sizes.
    assert!(run(3, &mut sends, &mut c, &mut t) > 0);
    let before = ALLOCS.load(Ordering::Relaxed);
    let forwarded = run(2000, &mut sends, &mut c, &mut t);
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert!(forwarded > 50_000, "the test forwarded {forwarded} packets");
    assert_eq!(
        allocs, 0,
        "{allocs} allocations while forwarding {forwarded} packets with 16-way fan-out"
    );
    assert!(c.no_match > 0 && c.matched > 0);
}
